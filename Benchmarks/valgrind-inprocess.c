/* The in-process side of Benchmarks/run-valgrind.sh: the same routine as
 * valgrind-copy.c (libpmem's pmem_memcpy_persist, 4 KiB calls into a 4 MiB pool file)
 * recorded by the in-process recorder's C core, one recorded call per copy, with the
 * bytes of every store captured (as the Valgrind tool writes them). Prints one line:
 *   calls N instructions I seconds S cpu-seconds C blocks B block-instructions K events E
 * where I is what the recorder decoded (pc_instructions_stepped), S the wall time and
 * C the CPU time (user + system, this process) of the N recorded calls alone (map, init and trace writing excluded: the rate is the
 * recorder's best case). Usage: valgrind-inprocess POOL [CALLS]
 * Built by run-valgrind.sh against the recorder's sources (no Swift runtime). */
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "powercut_recorder.h"

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* pmem_memcpy_persist returns its destination; the recorder calls void fn(dst, src, n). */
static void copy(void *dst, const void *src, size_t n) { pmem_memcpy_persist(dst, src, n); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s POOL [CALLS]\n", argv[0]);
        return 64;
    }
    size_t mapped;
    int is_pmem;
    const size_t pool = 4 << 20, chunk = 4096;
    const size_t calls = argc > 2 ? strtoul(argv[2], 0, 10) : 2048;
    char *p = pmem_map_file(argv[1], pool, PMEM_FILE_CREATE, 0644, &mapped, &is_pmem);
    if (!p) {
        perror("pmem_map_file");
        return 1;
    }
    static char src[4096];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (char)i;
    if (pc_init() < 0 || pc_add_pmem((uint64_t)(uintptr_t)p, pool, 0) < 0) {
        fprintf(stderr, "%s\n", pc_error());
        return 70;
    }
    pc_set_capture_data(1);
    /* one unrecorded call first, so that the first recorded call finds the pool's
     * page mapped (as every call of the native run after the first does) */
    copy(p, src, chunk);
    uint64_t before = pc_instructions_stepped();
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (size_t k = 0; k < calls; k++) {
        size_t off = (k * chunk) % pool;
        if (pc_record_call3(copy, p + off, src, chunk) < 0) {
            fprintf(stderr, "call %zu: %s\n", k, pc_error());
            return 70;
        }
    }
    double t1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t block_insns = 0, blocks = pc_blocks_run(&block_insns);
    printf("calls %zu instructions %llu seconds %.6f cpu-seconds %.6f blocks %llu block-instructions %llu events %zu\n", calls,
           (unsigned long long)(pc_instructions_stepped() - before), t1 - t0, c1 - c0, (unsigned long long)blocks,
           (unsigned long long)block_insns, pc_event_count());
    pmem_unmap(p, mapped);
    return 0;
}
