/*
 * primitives.h - the few machine operations every subject is built from, private to
 * this target: cached stores, 4- and 8-byte non-temporal stores (movnti), the
 * write-back of one cache line, and sfence.
 *
 * Each helper is one instruction (a store also needs the load from src before it),
 * forced inline so that the instruction sits in the subject's own code at every
 * optimisation level. The rules that keep the sequence identical from -O0 to -O2:
 *   - loads from src are memcpy into a local of constant size (no unaligned-pointer
 *     UB; compilers turn these into a single mov at every level);
 *   - a cached store is a memcpy of constant size 1, 2 or 4 to an address aligned to
 *     that size: one ordinary mov; the compiler never makes an ordinary store
 *     non-temporal, and as every cached piece has its own constant size there is no
 *     variable-length copy it could hand to the C library;
 *   - movnti, the write-backs and sfence are `asm volatile` with a "memory" clobber,
 *     so the compiler keeps every store in program order around them and can neither
 *     drop nor merge them.
 * Nothing here issues a locked instruction or a serializing one (both are fences in
 * the persistence model).
 *
 * A cache line is 64 bytes, as on every x86-64 the subjects ran on.
 */
#ifndef POWERCUT_SUBJECTS_PRIMITIVES_H
#define POWERCUT_SUBJECTS_PRIMITIVES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PC_LINE_SIZE ((uintptr_t)64)
#define PC_INLINE static inline __attribute__((always_inline))
#define PC_HIDDEN __attribute__((visibility("hidden")))

typedef unsigned char pc_byte;

PC_INLINE uintptr_t pc_addr(const void *p) { return (uintptr_t)p; }

/* ---- cached (ordinary) stores ---- */

PC_INLINE void pc_store1(pc_byte *d, const pc_byte *s) { memcpy(d, s, 1); }
PC_INLINE void pc_store2(pc_byte *d, const pc_byte *s) { memcpy(d, s, 2); }
PC_INLINE void pc_store4(pc_byte *d, const pc_byte *s) { memcpy(d, s, 4); }

/* Copies n < 8 bytes with cached stores, each naturally aligned: first 1, 2 and 4
 * bytes as needed to bring d to an 8-byte boundary, then 4, 2 and 1 bytes of what is
 * left. The pieces are in address order and none crosses a cache line. */
PC_INLINE void pc_cached_small(pc_byte *d, const pc_byte *s, size_t n)
{
    if ((pc_addr(d) & 1) && n >= 1) { pc_store1(d, s); d += 1; s += 1; n -= 1; }
    if ((pc_addr(d) & 2) && n >= 2) { pc_store2(d, s); d += 2; s += 2; n -= 2; }
    if ((pc_addr(d) & 4) && n >= 4) { pc_store4(d, s); d += 4; s += 4; n -= 4; }
    if (n >= 4) { pc_store4(d, s); d += 4; s += 4; n -= 4; }
    if (n >= 2) { pc_store2(d, s); d += 2; s += 2; n -= 2; }
    if (n >= 1) { pc_store1(d, s); }
}

/* ---- non-temporal stores, write-back, fence ---- */

#if defined(__x86_64__)

PC_INLINE void pc_movnti4(pc_byte *d, const pc_byte *s)
{
    uint32_t v;
    memcpy(&v, s, 4);
    __asm__ __volatile__("movnti %k1, (%0)" : : "r"(d), "r"(v) : "memory");
}

PC_INLINE void pc_movnti8(pc_byte *d, const pc_byte *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    __asm__ __volatile__("movnti %q1, (%0)" : : "r"(d), "r"(v) : "memory");
}

PC_INLINE void pc_sfence(void) { __asm__ __volatile__("sfence" : : : "memory"); }

#else /* not x86-64: no such instructions; plain stores keep the copy correct */

PC_INLINE void pc_movnti4(pc_byte *d, const pc_byte *s) { memcpy(d, s, 4); }
PC_INLINE void pc_movnti8(pc_byte *d, const pc_byte *s) { memcpy(d, s, 8); }
PC_INLINE void pc_sfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#endif

/* Writes back the cache line that contains p, with the selected instruction (issued
 * at p itself; the instruction acts on the whole line). Defined in writeback.c. */
PC_HIDDEN void pc_writeback_line(const void *p);

/* Writes back every line that [p, p + n) touches, each once, lowest first; nothing
 * when n = 0. */
PC_INLINE void pc_writeback_range(const pc_byte *p, size_t n)
{
    uintptr_t a = pc_addr(p);
    uintptr_t end = a + n;
    while (a < end) {
        pc_writeback_line((const void *)a);
        a = (a | (PC_LINE_SIZE - 1)) + 1;
    }
}

/* ---- the non-temporal copy cores (nocache.c) ---- */

/* Each copies n bytes and ends with its sfence, as the kernel routine did. */
PC_HIDDEN void pc_nocache_2015(void *dst, const void *src, size_t n);
PC_HIDDEN void pc_nocache_2016(void *dst, const void *src, size_t n);
PC_HIDDEN void pc_nocache_2023(void *dst, const void *src, size_t n);

#endif /* POWERCUT_SUBJECTS_PRIMITIVES_H */
