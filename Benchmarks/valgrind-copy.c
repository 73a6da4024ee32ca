/* The copy-heavy program of Benchmarks/run-valgrind.sh: 64 MiB (or argv[2] MiB)
 * through pmem_memcpy_persist in 4 KiB calls, into a 4 MiB pool file (16 passes). */
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (size_t done = 0; done < total; done += chunk) pmem_memcpy_persist(p + done % pool, src, chunk);
    pmem_unmap(p, mapped);
    return 0;
}
