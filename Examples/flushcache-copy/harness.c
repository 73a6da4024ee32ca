/* Records pm_copy over a few alignments and sizes into a powercut trace.
 *
 *     ./harness copy.pct                 # pm_copy as shipped: `powercut check` finds nothing
 *     ./harness --no-writeback bad.pct   # the head and tail left in the cache: findings
 */
#include <powercut.h>

#include <stdio.h>
#include <string.h>

#include "pmcopy.h"

static unsigned flags;

/* pm_copy has four arguments and a result; powercut_start/stop record any code. */
static int record_copy(char *dst, const char *src, size_t n) {
    if (powercut_op_begin(dst, n, "pm_copy", POWERCUT_FLUSHCACHE) < 0) return -1;
    if (powercut_start() < 0) return -1;
    size_t copied = pm_copy(dst, src, n, flags);
    if (powercut_stop() < 0) return -1;
    if (powercut_op_end() < 0) return -1;
    if (powercut_drain() < 0) return -1; /* the caller's fence */
    return copied == n ? 0 : -1;
}

int main(int argc, char **argv) {
    static char pool[8192] __attribute__((aligned(4096)));
    static char src[512];
    const char *out = "copy.pct";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-writeback") == 0) flags |= PM_COPY_NO_WRITEBACK;
        else out = argv[i];
    }
    for (size_t i = 0; i < sizeof src; i++) src[i] = (char)(i * 7 + 1);
    if (powercut_pmem(pool, sizeof pool) < 0) goto fail;
    static const size_t offsets[] = {0, 3, 61}, sizes[] = {0, 5, 64, 300};
    for (size_t o = 0; o < sizeof offsets / sizeof *offsets; o++)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            if (record_copy(pool + 1024 * o + offsets[o], src, sizes[k]) < 0) goto fail;
    if (powercut_write_trace(out) < 0) goto fail;
    printf("recorded %zu copies to %s\n", sizeof offsets / sizeof *offsets * (sizeof sizes / sizeof *sizes), out);
    return 0;
fail:
    fprintf(stderr, "harness: %s\n", powercut_error());
    return 1;
}
