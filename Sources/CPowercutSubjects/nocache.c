/*
 * nocache.c - the three non-temporal copy cores that Linux x86-64 has used to copy
 * into persistent memory without going through the cache (the routine behind
 * __copy_user_nocache), as the kernel versions behaved. Each copies n bytes from
 * src to d, mostly with movnti, and ends with one sfence; bytes it writes with
 * ordinary stores stay in the cache, and writing those back is left to the wrapper
 * that calls it (subjects.c).
 *
 *   2015 (before Linux 4.6): copies of fewer than 8 bytes, the bytes up to the first
 *        8-byte boundary and the last 0-7 bytes all go through the cache.
 *   2016 (Linux 4.6 to 6.3): as 2015, but a 4-byte aligned piece of 4 bytes in a short
 *        copy or in the tail is a 4-byte movnti.
 *   2023 (Linux 6.4 on): aligns with 1 and 2 cached bytes and a 4-byte movnti,
 *        streams the body with movnti down to the last 0-3 bytes, fences, and only
 *        then stores those last bytes through the cache.
 */
#include "primitives.h"

/* 64-byte blocks of eight 8-byte movnti, then single 8-byte movnti while 8 or more
 * bytes remain. d is 8-byte aligned. Returns how many bytes are left (0-7). */
PC_INLINE size_t pc_movnti_body(pc_byte **dp, const pc_byte **sp, size_t n)
{
    pc_byte *d = *dp;
    const pc_byte *s = *sp;
    while (n >= 64) {
        pc_movnti8(d + 0, s + 0);
        pc_movnti8(d + 8, s + 8);
        pc_movnti8(d + 16, s + 16);
        pc_movnti8(d + 24, s + 24);
        pc_movnti8(d + 32, s + 32);
        pc_movnti8(d + 40, s + 40);
        pc_movnti8(d + 48, s + 48);
        pc_movnti8(d + 56, s + 56);
        d += 64;
        s += 64;
        n -= 64;
    }
    while (n >= 8) {
        pc_movnti8(d, s);
        d += 8;
        s += 8;
        n -= 8;
    }
    *dp = d;
    *sp = s;
    return n;
}

/* Bytes from d up to the next 8-byte boundary: (8 - d mod 8) mod 8. */
PC_INLINE size_t pc_head_to_8(const pc_byte *d) { return (size_t)(-pc_addr(d) & 7); }

void pc_nocache_2015(void *dst, const void *src, size_t n)
{
    pc_byte *d = dst;
    const pc_byte *s = src;

    if (n < 8) {
        pc_cached_small(d, s, n);
        pc_sfence();
        return;
    }
    size_t h = pc_head_to_8(d);
    pc_cached_small(d, s, h);
    d += h;
    s += h;
    n -= h;
    n = pc_movnti_body(&d, &s, n);
    pc_cached_small(d, s, n);
    pc_sfence();
}

void pc_nocache_2016(void *dst, const void *src, size_t n)
{
    pc_byte *d = dst;
    const pc_byte *s = src;

    if (n < 8) {
        if ((pc_addr(d) & 3) == 0 && n >= 4) {
            pc_movnti4(d, s);
            pc_cached_small(d + 4, s + 4, n - 4);
        } else {
            pc_cached_small(d, s, n);
        }
        pc_sfence();
        return;
    }
    size_t h = pc_head_to_8(d);
    pc_cached_small(d, s, h);
    d += h;
    s += h;
    n -= h;
    n = pc_movnti_body(&d, &s, n);
    if (n >= 4) {
        pc_movnti4(d, s);
        pc_cached_small(d + 4, s + 4, n - 4);
    } else {
        pc_cached_small(d, s, n);
    }
    pc_sfence();
}

void pc_nocache_2023(void *dst, const void *src, size_t n)
{
    pc_byte *d = dst;
    const pc_byte *s = src;

    /* Head: each aligning step only when enough bytes remain for it; when one does
     * not fit, nothing later can run either but the tail, so skip to it. */
    if (pc_addr(d) & 1) {
        if (n < 1)
            goto tail;
        pc_store1(d, s);
        d += 1;
        s += 1;
        n -= 1;
    }
    if ((pc_addr(d) & 3) == 2) {
        if (n < 2)
            goto tail;
        pc_store2(d, s);
        d += 2;
        s += 2;
        n -= 2;
    }
    if ((pc_addr(d) & 7) == 4) {
        if (n < 4)
            goto tail;
        pc_movnti4(d, s);
        d += 4;
        s += 4;
        n -= 4;
    }

    /* Body: d is 8-byte aligned. */
    n = pc_movnti_body(&d, &s, n);
    if (n >= 4) {
        pc_movnti4(d, s);
        d += 4;
        s += 4;
        n -= 4;
    }

tail:
    /* The fence comes before the last 0-3 bytes, which stay in the cache. */
    pc_sfence();
    if (n >= 2) {
        pc_store2(d, s);
        d += 2;
        s += 2;
        n -= 2;
    }
    if (n >= 1)
        pc_store1(d, s);
}
