/*
 * powercut.h - record what a persistent-memory routine really executes, from your own
 * C harness, and write a powercut trace for `powercut check`.
 *
 * The recorder single-steps the calling thread (x86-64 Linux): every instruction
 * between powercut_start() and powercut_stop(), or of one powercut_record_call(), is
 * decoded before it runs. Stores, non-temporal stores, write-backs (clwb, clflushopt,
 * clflush) that touch the memory you declared with powercut_pmem(), and every fence
 * (sfence, mfence, locked instructions, cpuid), become trace events with the call stack
 * of the instruction. Stepping costs a signal per instruction (microseconds), so record
 * small calls. Single-threaded: only the calling thread is recorded; do not call these
 * functions from two threads. Link with -lcapstone -lunwind -lunwind-x86_64 -ldl.
 *
 * Every function returns 0 on success (powercut_op_begin: the op id) and -1 on error,
 * with powercut_error() giving a one-line message, e.g.
 *   cannot decode 'vpscatterdd ...' at 0x7f..: foo+0x1c (libfoo.so) which writes persistent memory
 *   instruction budget of 1000000 exceeded
 *
 * Example:
 *
 *     #include <powercut.h>
 *     static char pool[4096] __attribute__((aligned(64)));
 *     int main(void) {
 *         char src[100] = "hello";
 *         if (powercut_pmem(pool, sizeof pool) < 0) goto fail;
 *         powercut_op_begin(pool + 3, 100, "my_memcpy_flushcache", POWERCUT_FLUSHCACHE);
 *         if (powercut_record_call(my_memcpy_flushcache, pool + 3, src, 100) < 0) goto fail;
 *         powercut_op_end();
 *         powercut_drain();                    // the caller's fence
 *         if (powercut_write_trace("copy.pct") < 0) goto fail;
 *         return 0;
 *     fail:
 *         fprintf(stderr, "%s\n", powercut_error());
 *         return 1;
 *     }
 *
 * For routines of another signature:
 *
 *     powercut_start();
 *     my_copy(pool, src, 100, MY_FLAGS);   // every instruction of this call is recorded
 *     powercut_stop();                      // its own instructions are not
 *
 * powercut_stop() returns -1 if something went wrong while stepping (the error stops
 * the stepping at that instruction; the program goes on unrecorded).
 *
 * The trace is written crash-safely (PATH.incomplete, fsync, rename to PATH, fsync of
 * the directory) in the text format `powercut-trace 1`.
 */
#ifndef POWERCUT_H
#define POWERCUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POWERCUT_FLUSHCACHE 0 /* on return nothing is dirty; the caller's fence drains it */
#define POWERCUT_PERSIST 1    /* on return the whole destination is durable */
#define POWERCUT_NONE 2       /* no promise: the op only labels events */

/* Declare [addr, addr+len) persistent memory (ranges must not overlap). */
int powercut_pmem(void *addr, size_t len);
/* Declare a range that goes through the same code but is DRAM (flushes are overhead). */
int powercut_pmem_volatile(void *addr, size_t len);

/* Bracket one call of a copy routine: destination [dst, dst+len), a name without
 * spaces (or NULL) and the contract POWERCUT_FLUSHCACHE / _PERSIST / _NONE. Ops do not
 * nest. Returns the op id (1, 2, ...) or -1. */
int powercut_op_begin(void *dst, size_t len, const char *name, int contract);
int powercut_op_end(void);

/* Record one call fn(dst, src, n). */
int powercut_record_call(void (*fn)(void *, const void *, size_t), void *dst, const void *src, size_t n);

/* Record everything this thread executes between the two calls. */
int powercut_start(void);
int powercut_stop(void);

/* Executes a real sfence and records it (the caller's drain after flushcache ops). */
int powercut_drain(void);

/* Optional knobs: instructions allowed per recorded call or start/stop region (0 =
 * unlimited, the default); capture the bytes each store wrote (data= in the trace). */
void powercut_set_budget(uint64_t max_instructions);
void powercut_capture_data(int on);

/* Write everything recorded so far (events, pmem ranges, stacks, module map). */
int powercut_write_trace(const char *path);

/* Drop everything recorded and declared. */
void powercut_reset(void);

const char *powercut_error(void);

#ifdef __cplusplus
}
#endif
#endif
