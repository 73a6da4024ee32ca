/*
 * Module map, the text trace writer and the public powercut.h API.
 */
#if defined(__linux__) && defined(__x86_64__)
#define _GNU_SOURCE
#include "pc_internal.h"
#include "include/powercut.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ modules */

typedef struct {
    char *path;
    uint64_t base, size;
    char build_id[2 * 64 + 1];
} module;

static module *mods;
static size_t nmods, mods_cap;

static void free_modules(void) {
    for (size_t i = 0; i < nmods; i++) free(mods[i].path);
    nmods = 0;
}

static void note_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph, char *out) {
    const uint8_t *p = (const uint8_t *)(uintptr_t)(info->dlpi_addr + ph->p_vaddr);
    size_t len = ph->p_memsz ? ph->p_memsz : ph->p_filesz;
    size_t align = ph->p_align == 8 ? 8 : 4;
    size_t off = 0;
    while (off + 12 <= len) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p + off, 4);
        memcpy(&descsz, p + off + 4, 4);
        memcpy(&type, p + off + 8, 4);
        size_t name_off = off + 12;
        size_t desc_off = name_off + ((namesz + align - 1) & ~(align - 1));
        size_t next = desc_off + ((descsz + align - 1) & ~(align - 1));
        if (desc_off > len || desc_off + descsz > len) break;
        if (type == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 && memcmp(p + name_off, "GNU", 4) == 0 && descsz > 0 &&
            descsz <= 64) {
            static const char hx[] = "0123456789abcdef";
            for (uint32_t i = 0; i < descsz; i++) {
                out[2 * i] = hx[p[desc_off + i] >> 4];
                out[2 * i + 1] = hx[p[desc_off + i] & 15];
            }
            out[2 * descsz] = 0;
            return;
        }
        if (next <= off) break;
        off = next;
    }
}

static int collect_one(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    size_t *index = arg;
    size_t my = (*index)++;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        if (ph->p_vaddr < lo) lo = ph->p_vaddr;
        if (ph->p_vaddr + ph->p_memsz > hi) hi = ph->p_vaddr + ph->p_memsz;
    }
    if (lo >= hi) return 0;
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
    uint64_t base = (info->dlpi_addr + lo) & ~(page - 1);
    uint64_t end = (info->dlpi_addr + hi + page - 1) & ~(page - 1);
    char exe[4096];
    const char *name = info->dlpi_name;
    if (!name || !*name) {
        if (my != 0) return 0; /* only the first object without a name is the program */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return 0;
        exe[n] = 0;
        name = exe;
    }
    if (nmods == mods_cap) {
        size_t cap = mods_cap ? mods_cap * 2 : 32;
        module *m = realloc(mods, cap * sizeof *m);
        if (!m) return 1;
        mods = m;
        mods_cap = cap;
    }
    module *m = &mods[nmods];
    memset(m, 0, sizeof *m);
    m->path = strdup(name);
    if (!m->path) return 1;
    m->base = base;
    m->size = end - base;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_NOTE && !m->build_id[0]) note_build_id(info, &info->dlpi_phdr[i], m->build_id);
    nmods++;
    return 0;
}

int pc_collect_modules(void) {
    free_modules();
    size_t index = 0;
    if (dl_iterate_phdr(collect_one, &index) != 0) {
        pc__set_error("out of memory while listing modules");
        return -1;
    }
    return 0;
}

size_t pc_module_count(void) { return nmods; }
const char *pc_module_path(size_t i) { return i < nmods ? mods[i].path : NULL; }
uint64_t pc_module_base(size_t i) { return i < nmods ? mods[i].base : 0; }
uint64_t pc_module_size(size_t i) { return i < nmods ? mods[i].size : 0; }
const char *pc_module_build_id(size_t i) { return i < nmods ? mods[i].build_id : NULL; }

/* ------------------------------------------------------------------ text trace */

static void put_path(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '#' || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
}

static const char *kind_word(uint8_t k) {
    switch (k) {
    case PC_STORE: return "store";
    case PC_NTSTORE: return "ntstore";
    case PC_CLWB: return "clwb";
    case PC_CLFLUSHOPT: return "clflushopt";
    case PC_CLFLUSH: return "clflush";
    case PC_SFENCE: return "sfence";
    case PC_MFENCE: return "mfence";
    case PC_FENCE: return "fence";
    case PC_WPQFLUSH: return "wpqflush";
    default: return NULL;
    }
}

static const char *contract_word(uint8_t c) {
    return c == PC_CONTRACT_PERSIST ? "persist" : c == PC_CONTRACT_NONE ? "none" : "flushcache";
}

static void put_stack_def(FILE *f, uint32_t id) {
    const uint64_t *fr;
    size_t n = pc_stack_frames(id, &fr);
    fprintf(f, "stack %u", id);
    for (size_t i = 0; i < n; i++) fprintf(f, " 0x%llx", (unsigned long long)fr[i]);
    fputc('\n', f);
}

static int write_body(FILE *f) {
    const pc_event *ev = pc_events();
    size_t nev = pc_event_count();
    const uint8_t *data = pc_data();
    size_t nstk = pc_stack_count();
    uint8_t *defined = calloc(nstk + 1, 1);
    if (!defined && nstk) {
        pc__set_error("out of memory");
        return -1;
    }
    fprintf(f, "powercut-trace 1\n");
    fprintf(f, "meta recorder powercut-c %s\n", PC_VERSION);
    for (size_t i = 0; i < pc_pmem_count(); i++) {
        uint64_t b, l;
        int v;
        pc_pmem_range(i, &b, &l, &v);
        fprintf(f, "pmem 0x%llx 0x%llx%s\n", (unsigned long long)b, (unsigned long long)l, v ? " volatile" : "");
    }
    for (size_t i = 0; i < pc_module_count(); i++) {
        fputs("module ", f);
        put_path(f, pc_module_path(i));
        fprintf(f, " 0x%llx 0x%llx", (unsigned long long)pc_module_base(i), (unsigned long long)pc_module_size(i));
        if (pc_module_build_id(i)[0]) fprintf(f, " build-id=%s", pc_module_build_id(i));
        fputc('\n', f);
    }
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < nev; i++) {
        const pc_event *e = &ev[i];
        if (e->stack && e->stack <= nstk && !defined[e->stack]) {
            put_stack_def(f, e->stack);
            defined[e->stack] = 1;
        }
        switch (e->kind) {
        case PC_STORE:
        case PC_NTSTORE:
            fprintf(f, "%s 0x%llx %llu", kind_word(e->kind), (unsigned long long)e->addr, (unsigned long long)e->size);
            if (e->data_offset != UINT64_MAX) {
                fputs(" data=", f);
                const uint8_t *d = data + e->data_offset;
                for (uint64_t k = 0; k < e->size; k++) {
                    fputc(hx[d[k] >> 4], f);
                    fputc(hx[d[k] & 15], f);
                }
            }
            break;
        case PC_CLWB:
        case PC_CLFLUSHOPT:
        case PC_CLFLUSH:
            fprintf(f, "%s 0x%llx", kind_word(e->kind), (unsigned long long)e->addr);
            break;
        case PC_SFENCE:
        case PC_MFENCE:
        case PC_FENCE:
        case PC_WPQFLUSH:
            fputs(kind_word(e->kind), f);
            break;
        case PC_OP_BEGIN: {
            fprintf(f, "op %llu begin dst=0x%llx len=%llu", (unsigned long long)e->op_id, (unsigned long long)e->addr,
                    (unsigned long long)e->size);
            const char *nm = pc_op_name(e->op_id);
            if (nm) fprintf(f, " name=%s", nm);
            fprintf(f, " contract=%s", contract_word(e->contract));
            break;
        }
        case PC_OP_END:
            fprintf(f, "op %llu end", (unsigned long long)e->op_id);
            break;
        default:
            continue;
        }
        if (e->stack && e->kind != PC_OP_BEGIN && e->kind != PC_OP_END) fprintf(f, " stack=%u", e->stack);
        fputc('\n', f);
    }
    free(defined);
    return 0;
}

static int fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;
    if (fd >= 0) {
        rc = fsync(fd);
        if (rc < 0 && (errno == EINVAL || errno == EROFS)) rc = 0; /* not supported there */
        close(fd);
    }
    free(copy);
    return rc;
}

static int write_trace(const char *path) {
    if (!path || !*path) {
        pc__set_error("no trace path");
        return -1;
    }
    if (pc__stepping()) {
        pc__set_error("cannot write the trace while recording (call powercut_stop first)");
        return -1;
    }
    const pc_event *ev = pc_events();
    size_t nev = pc_event_count();
    for (size_t i = nev; i-- > 0;) {
        if (ev[i].kind == PC_OP_END) break;
        if (ev[i].kind == PC_OP_BEGIN) {
            pc__set_error("op %llu is still open (call powercut_op_end before writing the trace)",
                          (unsigned long long)ev[i].op_id);
            return -1;
        }
    }
    if (pc_collect_modules() < 0) return -1;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".incomplete");
    if (!tmp) {
        pc__set_error("out of memory");
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".incomplete", sizeof ".incomplete");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        pc__set_error("cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        pc__set_error("cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int rc = write_body(f);
    if (rc == 0 && (fflush(f) != 0 || ferror(f) || fsync(fd) != 0)) {
        pc__set_error("cannot write %s: %s", tmp, strerror(errno ? errno : EIO));
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        pc__set_error("cannot write %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        pc__set_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = -1;
    }
    if (rc < 0) {
        unlink(tmp);
    } else if (fsync_dir_of(path) != 0) {
        pc__set_error("cannot sync the directory of %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ powercut.h */

int powercut_pmem(void *addr, size_t len) {
    if (pc_init() < 0) return -1;
    return pc_add_pmem((uint64_t)(uintptr_t)addr, len, 0);
}

int powercut_pmem_volatile(void *addr, size_t len) {
    if (pc_init() < 0) return -1;
    return pc_add_pmem((uint64_t)(uintptr_t)addr, len, 1);
}

int powercut_op_begin(void *dst, size_t len, const char *name, int contract) {
    if (contract < POWERCUT_FLUSHCACHE || contract > POWERCUT_NONE) {
        pc__set_error("unknown contract %d (expected POWERCUT_FLUSHCACHE, POWERCUT_PERSIST or POWERCUT_NONE)", contract);
        return -1;
    }
    return pc_op_begin_named((uint64_t)(uintptr_t)dst, len, name, (pc_contract)contract);
}

int powercut_op_end(void) { return pc_op_end(); }

int powercut_record_call(void (*fn)(void *, const void *, size_t), void *dst, const void *src, size_t n) {
    return pc_record_call3(fn, dst, src, n);
}

int powercut_drain(void) {
    if (pc_init() < 0) return -1;
    if (pc__stepping()) {
        /* stepped: the handler sees and records this sfence */
        __asm__ volatile("sfence" ::: "memory");
        return 0;
    }
    __asm__ volatile("sfence" ::: "memory");
    return pc__append(PC_SFENCE, 0, 0, 0, pc__stack_here());
}

void powercut_set_budget(uint64_t max_instructions) { pc_set_budget(max_instructions); }
void powercut_capture_data(int on) { pc_set_capture_data(on); }
int powercut_write_trace(const char *path) { return write_trace(path); }
void powercut_reset(void) { pc_reset(); }
const char *powercut_error(void) { return pc_error(); }

#endif /* __linux__ && __x86_64__ */
