/*
 * subjects.c - the six reference subjects and the table that lists them.
 *
 * Four are a non-temporal copy core (nocache.c) followed by a write-back wrapper that
 * writes back the lines where the core may have left cached bytes:
 *
 *   no write-back      (memcpy_to_pmem, Linux 4.2 to 4.12): nothing.
 *   first-line         (__copy_user_flushcache, Linux 4.13 until the 5.9 fix): for a
 *                      short copy only the line holding the first byte; for a longer
 *                      one the first line if the copy starts off an 8-byte boundary
 *                      and the last line if it ends off one.
 *   fixed              (Linux 5.9 on): as first-line, but a short copy gets every line
 *                      it touches.
 *
 * The other two are the in-kernel copy memcpy_flushcache (Linux 4.13 on), which writes
 * back as it goes, and memcpy_flushcache_const (Linux 4.19 on), its fast paths for a
 * compile-time constant size of 4, 8 or 16 bytes. No subject fences at the end: the
 * caller's next fence is the drain. All follow the kernel versions step for step.
 */
#include "powercut_subjects.h"
#include "primitives.h"

/* ---- write-back wrappers (run after a core has returned) ---- */

/* Lines [d, d + n) that a first-line or fixed wrapper writes back for n >= 8: line(d)
 * if d is not 8-byte aligned; line(d + n - 1) if the copy reaches past
 * f = (bytes from d to the next line boundary, or 0 when d is 8-byte aligned) and
 * n - f is not a multiple of 8. */
PC_INLINE void pc_writeback_long_copy(const pc_byte *d, size_t n)
{
    size_t f = 0;
    if (pc_addr(d) & 7) {
        pc_writeback_line(d);
        f = (size_t)(PC_LINE_SIZE - (pc_addr(d) & (PC_LINE_SIZE - 1)));
    }
    if (n > f && (n - f) % 8 != 0)
        pc_writeback_line(d + n - 1);
}

/* A short copy that is exactly one aligned 4-byte piece went out as one movnti. */
PC_INLINE int pc_short_copy_is_one_movnti(const pc_byte *d, size_t n)
{
    return (pc_addr(d) & 3) == 0 && n == 4;
}

PC_INLINE void pc_writeback_first_line(const pc_byte *d, size_t n)
{
    if (n < 8) {
        if (!pc_short_copy_is_one_movnti(d, n))
            pc_writeback_line(d); /* even when the copy runs into the next line */
        return;
    }
    pc_writeback_long_copy(d, n);
}

PC_INLINE void pc_writeback_fixed(const pc_byte *d, size_t n)
{
    if (n < 8) {
        if (!pc_short_copy_is_one_movnti(d, n))
            pc_writeback_range(d, n);
        return;
    }
    pc_writeback_long_copy(d, n);
}

/* ---- the subjects built from a core and a wrapper ---- */

void memcpy_to_pmem_2015(void *dst, const void *src, size_t n)
{
    pc_nocache_2015(dst, src, n);
}

void copy_user_flushcache_2017(void *dst, const void *src, size_t n)
{
    pc_nocache_2016(dst, src, n);
    pc_writeback_first_line(dst, n);
}

void copy_user_flushcache_2020(void *dst, const void *src, size_t n)
{
    pc_nocache_2016(dst, src, n);
    pc_writeback_fixed(dst, n);
}

void copy_user_flushcache_2023(void *dst, const void *src, size_t n)
{
    pc_nocache_2023(dst, src, n);
    pc_writeback_fixed(dst, n);
}

/* ---- memcpy_flushcache ---- */

void memcpy_flushcache(void *dst, const void *src, size_t n)
{
    pc_byte *d = dst;
    const pc_byte *s = src;

    /* Head up to the 8-byte boundary: cached, then its line written back. */
    if (pc_addr(d) & 7) {
        size_t k = 8 - (size_t)(pc_addr(d) & 7);
        if (k > n)
            k = n;
        pc_cached_small(d, s, k);
        pc_writeback_line(d);
        d += k;
        s += k;
        n -= k;
        if (n == 0)
            return;
    }

    while (n >= 32) {
        pc_movnti8(d + 0, s + 0);
        pc_movnti8(d + 8, s + 8);
        pc_movnti8(d + 16, s + 16);
        pc_movnti8(d + 24, s + 24);
        d += 32;
        s += 32;
        n -= 32;
    }
    while (n >= 8) {
        pc_movnti8(d, s);
        d += 8;
        s += 8;
        n -= 8;
    }
    while (n >= 4) {
        pc_movnti4(d, s);
        d += 4;
        s += 4;
        n -= 4;
    }

    /* Last 0-3 bytes (d is 4-byte aligned): cached, then their line written back. */
    if (n != 0) {
        if (n >= 2) {
            pc_store2(d, s);
            d += 2;
            s += 2;
            n -= 2;
        }
        if (n >= 1)
            pc_store1(d, s);
        pc_writeback_line(d);
    }
}

/* ---- memcpy_flushcache_const ---- */

/* The constant-size fast paths: called only with a literal 4, 8 or 16, so that the
 * compiler sees the size as a constant, as it does in the kernel's inline version.
 * No alignment check, no write-back, no fence. */
PC_INLINE void pc_flushcache_const_size(pc_byte *d, const pc_byte *s, size_t size)
{
    switch (size) {
    case 4:
        pc_movnti4(d, s);
        break;
    case 8:
        pc_movnti8(d, s);
        break;
    case 16:
        pc_movnti8(d, s);
        pc_movnti8(d + 8, s + 8);
        break;
    }
}

void memcpy_flushcache_const(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 4:
        pc_flushcache_const_size(dst, src, 4);
        return;
    case 8:
        pc_flushcache_const_size(dst, src, 8);
        return;
    case 16:
        pc_flushcache_const_size(dst, src, 16);
        return;
    default:
        memcpy_flushcache(dst, src, n);
        return;
    }
}

/* ---- the table ---- */

static const struct {
    const char *name;
    powercut_subject_fn function;
    const char *summary;
} pc_subjects[] = {
    {"memcpy_to_pmem_2015", memcpy_to_pmem_2015,
     "memcpy_to_pmem: 2015 non-temporal copy, no write-back; Linux 4.2 to 4.5; "
     "buggy (fixed in 2017)"},
    {"copy_user_flushcache_2017", copy_user_flushcache_2017,
     "__copy_user_flushcache: 2016 non-temporal copy, first-line write-back; "
     "Linux 4.13 until the 5.9 fix; buggy (fixed in 2020)"},
    {"copy_user_flushcache_2020", copy_user_flushcache_2020,
     "__copy_user_flushcache: 2016 non-temporal copy, fixed write-back; "
     "Linux 5.9 to 6.3; correct"},
    {"copy_user_flushcache_2023", copy_user_flushcache_2023,
     "__copy_user_flushcache: 2023 non-temporal copy, fixed write-back; "
     "Linux 6.4 on; correct"},
    {"memcpy_flushcache", memcpy_flushcache,
     "memcpy_flushcache: in-kernel copy, cached head and tail written back, movnti body; "
     "Linux 4.13 on; correct"},
    {"memcpy_flushcache_const", memcpy_flushcache_const,
     "memcpy_flushcache with a constant size: bare movnti for 4, 8, 16 bytes, "
     "else memcpy_flushcache; Linux 4.19 on; correct"},
};

#define PC_SUBJECT_COUNT (sizeof pc_subjects / sizeof pc_subjects[0])

size_t powercut_subject_count(void)
{
#if defined(__x86_64__)
    return PC_SUBJECT_COUNT;
#else
    return 0; /* the subjects only mean something with the x86-64 instructions */
#endif
}

const char *powercut_subject_name(size_t i)
{
    return i < powercut_subject_count() ? pc_subjects[i].name : NULL;
}

powercut_subject_fn powercut_subject_function(size_t i)
{
    return i < powercut_subject_count() ? pc_subjects[i].function : NULL;
}

const char *powercut_subject_summary(size_t i)
{
    return i < powercut_subject_count() ? pc_subjects[i].summary : NULL;
}
