/* A log in persistent memory: records appended after the last one, then the commit
 * word (the log's length) updated and made durable. Records one append per record
 * into a powercut trace, each as a `persist` op over the log's header and the new
 * record: when log_append returns, all of it must be durable.
 *
 *     ./harness log.pct                        # correct: `powercut check` finds nothing
 *     ./harness --forget-commit-flush bad.pct  # the commit word left in the cache: a finding
 */
#include <powercut.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <x86intrin.h>

struct log {
    uint64_t committed;                     /* bytes of data[] that are valid */
    char pad[56];
    char data[8192 - 64];
} __attribute__((aligned(64)));

static int forget_commit_flush;

static void write_back(const void *p, size_t n) {
    if (n == 0) return;
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + n;
    for (; line < end; line += 64) _mm_clflush((const void *)line);
}

/* Appends n bytes; returns 0, or -1 when the log is full. */
static int log_append(struct log *log, const void *record, size_t n) {
    uint64_t at = log->committed;
    if (n > sizeof log->data - at) return -1;
    memcpy(log->data + at, record, n);
    write_back(log->data + at, n);
    _mm_sfence(); /* the record is durable before the commit word names it */
    log->committed = at + n;
    if (!forget_commit_flush) write_back(&log->committed, sizeof log->committed);
    _mm_sfence();
    return 0;
}

int main(int argc, char **argv) {
    static struct log log;
    const char *out = "log.pct";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--forget-commit-flush") == 0) forget_commit_flush = 1;
        else out = argv[i];
    }
    if (powercut_pmem(&log, sizeof log) < 0) goto fail;
    static const char *records[] = {"begin", "insert key=1 value=hello", "insert key=2 value=world", "commit"};
    for (size_t i = 0; i < sizeof records / sizeof *records; i++) {
        size_t n = strlen(records[i]) + 1;
        size_t span = (size_t)(log.data - (char *)&log) + log.committed + n;
        if (powercut_op_begin(&log, span, "log_append", POWERCUT_PERSIST) < 0) goto fail;
        if (powercut_start() < 0) goto fail;
        int rc = log_append(&log, records[i], n);
        if (powercut_stop() < 0) goto fail;
        if (powercut_op_end() < 0) goto fail;
        if (rc < 0) {
            fprintf(stderr, "harness: the log is full\n");
            return 1;
        }
    }
    if (powercut_write_trace(out) < 0) goto fail;
    printf("recorded %zu appends (%llu bytes) to %s\n", sizeof records / sizeof *records,
           (unsigned long long)log.committed, out);
    return 0;
fail:
    fprintf(stderr, "harness: %s\n", powercut_error());
    return 1;
}
