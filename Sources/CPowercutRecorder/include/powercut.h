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
 *
 * Under Valgrind (`powercut run -- ./harness`): the same harness records unchanged.
 * Every function then sends a client request to powercut's Valgrind tool, which records
 * every instruction of every thread anyway: powercut_pmem/_pmem_volatile declare
 * ranges, ops/durable/mark become trace records, record_call just calls, the knobs and
 * powercut_write_trace do nothing (`powercut run` writes the trace; see Docs/run.md).
 * Under another Valgrind tool the functions fail with a message saying so.
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

/* Assert that [addr, addr+len) is durable at this point of the program (a `durable`
 * record: the check reports every byte of it that a power failure could still lose). */
int powercut_durable(const void *addr, size_t len);
/* A named point in the run (a `mark` record, shown by `powercut show` and `explain`);
 * any bytes, escaped in the text form. */
int powercut_mark(const char *name);

/* Optional knobs: instructions allowed per recorded call or start/stop region (0 =
 * unlimited, the default); capture the bytes each store wrote (data= in the trace). */
void powercut_set_budget(uint64_t max_instructions);
void powercut_capture_data(int on);

/* Write everything recorded so far (events, pmem ranges, stacks, module map). */
int powercut_write_trace(const char *path);

/* Drop everything recorded and declared. */
void powercut_reset(void);

const char *powercut_error(void);

/* Client requests of powercut's Valgrind tool (what the functions above send when
 * RUNNING_ON_VALGRIND; a harness may also send them by hand with
 * VALGRIND_DO_CLIENT_REQUEST_EXPR). Results: 0 or -1, op begin: the op id. */
#define POWERCUT_VG_BASE ((unsigned)(('p' << 24) | ('c' << 16)))
enum {
    POWERCUT_VG_HELLO = POWERCUT_VG_BASE + 0,       /* () -> POWERCUT_VG_HELLO_ANSWER */
    POWERCUT_VG_PMEM = POWERCUT_VG_BASE + 1,        /* (addr, len, is_volatile) */
    POWERCUT_VG_OP_BEGIN = POWERCUT_VG_BASE + 2,    /* (dst, len, name or 0, contract) */
    POWERCUT_VG_OP_END = POWERCUT_VG_BASE + 3,      /* () */
    POWERCUT_VG_DURABLE = POWERCUT_VG_BASE + 4,     /* (addr, len) */
    POWERCUT_VG_MARK = POWERCUT_VG_BASE + 5,        /* (name) */
    POWERCUT_VG_RESET = POWERCUT_VG_BASE + 6        /* () releases the ranges declared so */
};
#define POWERCUT_VG_HELLO_ANSWER 0x70637574 /* "pcut" */

#ifdef __cplusplus
}
#endif
#endif
