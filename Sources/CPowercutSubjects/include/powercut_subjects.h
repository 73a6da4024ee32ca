/*
 * powercut_subjects.h - the reference subjects: copy routines to persistent memory
 * that Linux has used on x86-64, current and historical, rebuilt in C from the
 * behaviour documented in the README ("Recording one call"), so that the recorder can run their real
 * instruction sequences and the replayer can be judged on known good and known bad code.
 *
 * Every subject copies n bytes from src to dst (which must not overlap) and has the
 * contract `flushcache`: on return no byte of [dst, dst + n) is left in the cache
 * unwritten-back, and the caller's next fence makes all of it durable. None of them
 * fences at the end; the caller drains (powercut_subject_sfence() after the op).
 * The buggy ones break that contract for some (dst mod 64, n); finding which is
 * powercut's job.
 *
 *   subject                     models (Linux, x86-64)                     status
 *   memcpy_to_pmem_2015         memcpy_to_pmem, 4.2-4.5: 2015 non-temporal  buggy (fixed in 2017)
 *                               copy, no write-back
 *   copy_user_flushcache_2017   __copy_user_flushcache, 4.13 until the 5.9  buggy (fixed in 2020)
 *                               fix: 2016 copy + first-line write-back
 *   copy_user_flushcache_2020   the same from 5.9 to 6.3: 2016 copy +       correct
 *                               fixed write-back
 *   copy_user_flushcache_2023   the same from 6.4 on: 2023 copy + fixed     correct
 *                               write-back
 *   memcpy_flushcache           the in-kernel copy, 4.13 on                 correct
 *   memcpy_flushcache_const     its constant-size fast paths (n = 4, 8, 16), correct
 *                               4.19 on; other n go to memcpy_flushcache
 *
 * Write-back instruction. "Write back a line" means clwb where the CPU has it, else
 * clflushopt, else clflush, read from CPUID once, when the library is loaded (and
 * lazily on first use should that not have happened). The environment variable
 *
 *     POWERCUT_WRITEBACK=clwb | clflushopt | clflush
 *
 * forces one instead; it is read at that same moment, so set it before the process
 * starts (setenv() later has no effect). Any other value is ignored and the CPUID
 * choice kept. A forced instruction is not checked against CPUID: forcing one the CPU
 * lacks makes the first write-back fault with SIGILL. Selecting happens outside any
 * copy, so the serializing CPUID never shows up inside a recorded operation.
 *
 * The instructions are real: movnti, clwb/clflushopt/clflush and sfence are emitted
 * with inline assembly, cached stores are ordinary 1-, 2- and 4-byte stores, each
 * naturally aligned (so no cached store straddles a cache line), and the sequence is
 * the same at every optimisation level. On a CPU other than x86-64 the table is empty
 * (powercut_subject_count() returns 0), and the functions only copy.
 */
#ifndef POWERCUT_SUBJECTS_H
#define POWERCUT_SUBJECTS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The subjects. Each copies n bytes from src to dst; see the table above. */
void memcpy_to_pmem_2015(void *dst, const void *src, size_t n);
void copy_user_flushcache_2017(void *dst, const void *src, size_t n);
void copy_user_flushcache_2020(void *dst, const void *src, size_t n);
void copy_user_flushcache_2023(void *dst, const void *src, size_t n);
void memcpy_flushcache(void *dst, const void *src, size_t n);
void memcpy_flushcache_const(void *dst, const void *src, size_t n);

/* The type every subject has. */
typedef void (*powercut_subject_fn)(void *dst, const void *src, size_t n);

/* The built-in subjects, in the order of the table above, for callers that enumerate
 * them (Swift) without dlsym. For i >= powercut_subject_count() the name, function
 * and summary are NULL. The summary is one line: "<what it is>; Linux <versions>;
 * <status>", the status being "correct" or "buggy (fixed in YEAR)". */
size_t powercut_subject_count(void);
const char *powercut_subject_name(size_t i);
powercut_subject_fn powercut_subject_function(size_t i);
const char *powercut_subject_summary(size_t i);

/* The write-back instruction in use: "clwb", "clflushopt" or "clflush"
 * ("none" on a CPU other than x86-64). */
const char *powercut_subject_writeback_name(void);

/* One sfence: the caller's drain after a flushcache copy. */
void powercut_subject_sfence(void);

#ifdef __cplusplus
}
#endif

#endif /* POWERCUT_SUBJECTS_H */
