/* The copy-heavy program of Benchmarks/run-valgrind.sh: 64 MiB (or argv[2] MiB)
 * through pmem_memcpy_persist in 4 KiB calls, into a 4 MiB pool file (16 passes).
 * With a third argument it prints, on standard error, the wall and CPU seconds of the
 * copy loop alone ("loop-seconds W user-seconds U system-seconds S"), so that a benchmark can leave out
 * start-up and exit (under Valgrind, CPU time is the whole process's: the tool's too). */
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec * 1e-6; }

int main(int argc, char **argv) {
    size_t mapped;
    int is_pmem;
    const size_t pool = 4 << 20, chunk = 4096;
    const size_t total = (argc > 2 ? strtoul(argv[2], 0, 10) : 64) << 20;
    char *p = pmem_map_file(argv[1], pool, PMEM_FILE_CREATE, 0644, &mapped, &is_pmem);
    if (!p) {
        perror("pmem_map_file");
        return 1;
    }
    static char src[4096];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (char)i;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double w0 = now();
    for (size_t done = 0; done < total; done += chunk) pmem_memcpy_persist(p + done % pool, src, chunk);
    double w1 = now();
    getrusage(RUSAGE_SELF, &r1);
    if (argc > 3)
        fprintf(stderr, "loop-seconds %.6f user-seconds %.6f system-seconds %.6f\n", w1 - w0,
                seconds(r1.ru_utime) - seconds(r0.ru_utime), seconds(r1.ru_stime) - seconds(r0.ru_stime));
    pmem_unmap(p, mapped);
    return 0;
}
