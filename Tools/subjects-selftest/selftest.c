/*
 * selftest.c - checks that every reference subject copies exactly what it is asked to,
 * whatever the alignment: for each subject, destination offset 0-63 (from a 64-byte
 * line boundary), source offset 0 and 3, and sizes 0-300, 511-513, 1023-1025 and
 * 4095-4097, it copies into a guarded buffer and checks that [dst, dst + n) now equals
 * the source, that no byte around it changed, and that the source is untouched.
 * It also checks the table API and prints the write-back instruction in use. Built
 * and run by run.sh, once per POWERCUT_WRITEBACK value.
 *
 * This says nothing about durability: which bytes a subject leaves unflushed is for
 * powercut's replayer to find from a recorded trace.
 *
 * Output: one line per failure (at most 20 printed), then "N passed, M failed".
 * Exit status 0 when nothing failed, 1 otherwise.
 */
#include "powercut_subjects.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZE 4097
#define GUARD 256               /* untouched bytes checked on each side */
#define LINE 64
#define BUF_SIZE (GUARD + LINE + MAX_SIZE + GUARD)

static _Alignas(4096) unsigned char dst_buf[BUF_SIZE];
static _Alignas(4096) unsigned char pristine[BUF_SIZE];  /* dst_buf before each copy */
static _Alignas(4096) unsigned char src_buf[MAX_SIZE + LINE];
static unsigned char src_saved[MAX_SIZE + LINE];
static unsigned char src_inverted[MAX_SIZE + LINE];

static unsigned long passed, failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
        return;
    }
    if (failed < 20)
        printf("FAIL %s\n", what);
    failed++;
}

static uint32_t rng_state = 0x9e3779b9u;

static unsigned char random_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (unsigned char)(rng_state >> 24);
}

/* Index of the first byte where a and b differ, or -1. */
static long first_difference(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (memcmp(a, b, n) == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (long)i;
    return -1;
}

static void check_copy(size_t subject, size_t dst_off, size_t src_off, size_t n)
{
    const char *name = powercut_subject_name(subject);
    powercut_subject_fn copy = powercut_subject_function(subject);
    unsigned char *dst = dst_buf + GUARD + dst_off;
    const unsigned char *src = src_buf + src_off;

    /* Random bytes around the target; inside it the complement of what should land
     * there, so that a byte the subject fails to write cannot match by chance. */
    memcpy(dst_buf, pristine, BUF_SIZE);
    memcpy(dst, src_inverted + src_off, n);

    copy(dst, src, n);

    size_t before = GUARD + dst_off;
    size_t after = before + n;
    long bad_before = first_difference(dst_buf, pristine, before);
    long bad_inside = first_difference(dst, src, n);
    long bad_after = first_difference(dst_buf + after, pristine + after, BUF_SIZE - after);
    long bad_src = first_difference(src_buf, src_saved, sizeof src_buf);

    char what[200];
    if (bad_before >= 0)
        snprintf(what, sizeof what, "%s dst%%64=%zu src_off=%zu n=%zu: byte dst-%zu changed",
                 name, dst_off, src_off, n, before - (size_t)bad_before);
    else if (bad_inside >= 0)
        snprintf(what, sizeof what, "%s dst%%64=%zu src_off=%zu n=%zu: byte dst+%ld wrong",
                 name, dst_off, src_off, n, bad_inside);
    else if (bad_after >= 0)
        snprintf(what, sizeof what, "%s dst%%64=%zu src_off=%zu n=%zu: byte dst+%zu changed",
                 name, dst_off, src_off, n, n + (size_t)bad_after);
    else if (bad_src >= 0)
        snprintf(what, sizeof what, "%s dst%%64=%zu src_off=%zu n=%zu: source byte %ld changed",
                 name, dst_off, src_off, n, bad_src);
    else
        what[0] = '\0';
    check(what[0] == '\0', what);

    if (bad_src >= 0) /* keep later cases meaningful */
        memcpy(src_buf, src_saved, sizeof src_buf);
}

static void check_table(void)
{
    static const char *const expected[] = {
        "memcpy_to_pmem_2015",       "copy_user_flushcache_2017",
        "copy_user_flushcache_2020", "copy_user_flushcache_2023",
        "memcpy_flushcache",         "memcpy_flushcache_const",
    };
    static const powercut_subject_fn functions[] = {
        memcpy_to_pmem_2015,       copy_user_flushcache_2017,
        copy_user_flushcache_2020, copy_user_flushcache_2023,
        memcpy_flushcache,         memcpy_flushcache_const,
    };
    static const char *const status[] = {
        "; buggy (fixed in 2017)", "; buggy (fixed in 2020)", "; correct",
        "; correct",               "; correct",               "; correct",
    };
    size_t count = powercut_subject_count();
    check(count == 6, "powercut_subject_count() is 6");
    for (size_t i = 0; i < count && i < 6; i++) {
        char what[200];
        const char *summary = powercut_subject_summary(i);
        snprintf(what, sizeof what, "table entry %zu is %s with its function", i, expected[i]);
        check(strcmp(powercut_subject_name(i), expected[i]) == 0 &&
                  powercut_subject_function(i) == functions[i],
              what);
        size_t sl = summary ? strlen(summary) : 0, tl = strlen(status[i]);
        snprintf(what, sizeof what, "summary of %s is one line ending \"%s\"", expected[i],
                 status[i]);
        check(summary && !strchr(summary, '\n') && sl > tl &&
                  strcmp(summary + sl - tl, status[i]) == 0,
              what);
    }
    check(powercut_subject_name(count) == NULL && powercut_subject_function(count) == NULL &&
              powercut_subject_summary(count) == NULL,
          "entries past the end are NULL");
}

/* Whether this CPU has the named write-back instruction (so a forced one can run). */
static int cpu_has(const char *insn)
{
    unsigned a, b, c, d;
    if (strcmp(insn, "clflush") == 0)
        return __get_cpuid(1, &a, &b, &c, &d) && (d & (1u << 19));
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    if (strcmp(insn, "clwb") == 0)
        return (b >> 24) & 1;
    if (strcmp(insn, "clflushopt") == 0)
        return (b >> 23) & 1;
    return 0;
}

int main(void)
{
    const char *forced = getenv("POWERCUT_WRITEBACK");
    const char *writeback = powercut_subject_writeback_name();
    int valid = forced && (!strcmp(forced, "clwb") || !strcmp(forced, "clflushopt") ||
                           !strcmp(forced, "clflush"));
    if (valid) {
        printf("write-back: %s (forced by POWERCUT_WRITEBACK)\n", writeback);
        check(strcmp(writeback, forced) == 0, "POWERCUT_WRITEBACK selects the instruction");
        if (!cpu_has(forced)) {
            printf("skipped: this CPU has no %s\n", forced);
            return 0;
        }
    } else {
        printf("write-back: %s (from CPUID%s)\n", writeback,
               forced ? "; POWERCUT_WRITEBACK value not recognised, ignored" : "");
        check(cpu_has(writeback), "the CPUID choice is an instruction this CPU has");
    }
    check_table();

    for (size_t i = 0; i < BUF_SIZE; i++)
        pristine[i] = random_byte();
    for (size_t i = 0; i < sizeof src_buf; i++) {
        src_buf[i] = src_saved[i] = random_byte();
        src_inverted[i] = (unsigned char)~src_buf[i];
    }

    static const size_t extra_sizes[] = {511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097};
    static const size_t src_offsets[] = {0, 3};
    for (size_t subject = 0; subject < powercut_subject_count(); subject++)
        for (size_t dst_off = 0; dst_off < LINE; dst_off++)
            for (size_t k = 0; k < 2; k++) {
                for (size_t n = 0; n <= 300; n++)
                    check_copy(subject, dst_off, src_offsets[k], n);
                for (size_t e = 0; e < sizeof extra_sizes / sizeof extra_sizes[0]; e++)
                    check_copy(subject, dst_off, src_offsets[k], extra_sizes[e]);
            }

    printf("%lu passed, %lu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
