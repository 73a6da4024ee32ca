/* pm_copy: a copy into persistent memory with the signature of a library routine
 * (flags, a count returned), for the powercut examples. */
#ifndef PMCOPY_H
#define PMCOPY_H
#include <stddef.h>

#define PM_COPY_NO_WRITEBACK 1u /* skip the write-backs of the cached head and tail (a bug, on purpose) */

/* Copies n bytes to dst so that, once the caller fences (sfence), they are durable:
 * the 8-byte-aligned body with non-temporal stores, the unaligned head and the tail
 * with ordinary stores whose lines are written back. Returns n. */
size_t pm_copy(void *dst, const void *src, size_t n, unsigned flags);

#endif
