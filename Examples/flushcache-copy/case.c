/* The sweep's entry point for pm_copy: `powercut sweep --harness ./libpmcopy-case.so`
 * calls powercut_case(dst, src, n) once per (destination offset, source offset, size),
 * recording everything it executes. It adapts pm_copy's signature (flags, a count) to
 * the sweep's; it must not call the powercut_* functions itself (the sweep records). */
#include <stddef.h>

#include "pmcopy.h"

void powercut_case(void *dst, const void *src, size_t n) { (void)pm_copy(dst, src, n, 0); }
