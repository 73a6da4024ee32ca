#include "pmcopy.h"

#include <stdint.h>
#include <string.h>
#include <x86intrin.h>

/* Writes back every cache line that holds a byte of [p, p+n). */
static void write_back(const char *p, size_t n) {
    if (n == 0) return;
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + n;
    for (; line < end; line += 64) _mm_clflush((const void *)line);
}

size_t pm_copy(void *dst, const void *src, size_t n, unsigned flags) {
    char *d = dst;
    const char *s = src;
    size_t head = (8 - ((uintptr_t)d & 7)) & 7;
    if (head > n) head = n;
    memcpy(d, s, head);
    if (!(flags & PM_COPY_NO_WRITEBACK)) write_back(d, head);
    size_t i = head;
    for (; i + 8 <= n; i += 8) {
        long long v;
        memcpy(&v, s + i, 8);
        _mm_stream_si64((long long *)(d + i), v);
    }
    memcpy(d + i, s + i, n - i);
    if (!(flags & PM_COPY_NO_WRITEBACK)) write_back(d + i, n - i);
    return n;
}
