/*
 * Module map, the text trace writer and the public powercut.h API.
 */
#if defined(__linux__) && defined(__x86_64__)
#define _GNU_SOURCE
#include "pc_internal.h"
#include "include/powercut.h"
#include "powercut_encoder.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <link.h>
#include <stdio.h> /* rename */
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

/* ------------------------------------------------------------------ markers */

/* durable assertions and marks of powercut.h, kept beside the recorder's events: each
 * goes before the event that was next when it was made (`at`). */
typedef struct {
    size_t at;
    int kind; /* PCE_DURABLE or PCE_MARK */
    uint64_t addr, len;
    char *name;
    uint32_t stack;
} marker;

static marker *markers;
static size_t nmarkers, markers_cap;

static void free_markers(void) {
    for (size_t i = 0; i < nmarkers; i++) free(markers[i].name);
    nmarkers = 0;
}

static int add_marker(int kind, uint64_t addr, uint64_t len, const char *name) {
    if (pc_init() < 0) return -1;
    if (nmarkers == markers_cap) {
        size_t cap = markers_cap ? markers_cap * 2 : 16;
        marker *m = realloc(markers, cap * sizeof *m);
        if (!m) {
            pc__set_error("out of memory");
            return -1;
        }
        markers = m;
        markers_cap = cap;
    }
    char *copy = NULL;
    if (name && !(copy = strdup(name))) {
        pc__set_error("out of memory");
        return -1;
    }
    markers[nmarkers++] = (marker){pc_event_count(), kind, addr, len, copy, pc__stack_here()};
    return 0;
}

/* ------------------------------------------------------------------ trace */

static int fd_flush(void *ctx, const uint8_t *p, size_t n) {
    int fd = *(int *)ctx;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int define_stack(pce_writer *w, uint8_t *defined, size_t nstk, uint32_t id) {
    if (!id || id > nstk || defined[id]) return 0;
    const uint64_t *fr;
    size_t n = pc_stack_frames(id, &fr);
    defined[id] = 1;
    return pce_stack(w, id, fr, n);
}

static int put_marker(pce_writer *w, const marker *m, uint8_t *defined, size_t nstk) {
    if (define_stack(w, defined, nstk, m->stack) < 0) return -1;
    if (m->kind == PCE_DURABLE) return pce_durable(w, m->addr, m->len, m->stack);
    return pce_mark(w, (const uint8_t *)m->name, strlen(m->name), m->stack);
}

static int write_body(pce_writer *w) {
    const pc_event *ev = pc_events();
    size_t nev = pc_event_count();
    const uint8_t *data = pc_data();
    size_t nstk = pc_stack_count();
    uint8_t *defined = calloc(nstk + 1, 1);
    if (!defined) {
        pc__set_error("out of memory");
        return -1;
    }
    static const char recorder_value[] = "powercut-c " PC_VERSION;
    pce_begin(w);
    pce_meta(w, (const uint8_t *)"recorder", 8, (const uint8_t *)recorder_value, sizeof recorder_value - 1);
    for (size_t i = 0; i < pc_pmem_count(); i++) {
        uint64_t b, l;
        int v;
        pc_pmem_range(i, &b, &l, &v);
        pce_pmem(w, b, l, NULL, 0, v, 0);
    }
    for (size_t i = 0; i < pc_module_count(); i++) {
        const char *path = pc_module_path(i);
        pce_module(w, (const uint8_t *)path, strlen(path), pc_module_base(i), pc_module_size(i), pc_module_build_id(i));
    }
    size_t mk = 0;
    for (size_t i = 0; i < nev && !w->failed; i++) {
        for (; mk < nmarkers && markers[mk].at <= i; mk++) put_marker(w, &markers[mk], defined, nstk);
        const pc_event *e = &ev[i];
        /* op records carry no stack (they are the harness's, not the routine's) */
        uint32_t stack = (e->kind == PC_OP_BEGIN || e->kind == PC_OP_END) ? 0 : e->stack;
        define_stack(w, defined, nstk, stack);
        switch (e->kind) {
        case PC_STORE:
        case PC_NTSTORE:
            pce_store(w, e->kind == PC_STORE ? PCE_STORE : PCE_NTSTORE, e->addr, e->size,
                      e->data_offset != UINT64_MAX ? data + e->data_offset : NULL, stack);
            break;
        case PC_CLWB: pce_writeback(w, PCE_CLWB, e->addr, stack); break;
        case PC_CLFLUSHOPT: pce_writeback(w, PCE_CLFLUSHOPT, e->addr, stack); break;
        case PC_CLFLUSH: pce_writeback(w, PCE_CLFLUSH, e->addr, stack); break;
        case PC_SFENCE: pce_fence(w, PCE_SFENCE, stack); break;
        case PC_MFENCE: pce_fence(w, PCE_MFENCE, stack); break;
        case PC_FENCE: pce_fence(w, PCE_FENCE, stack); break;
        case PC_WPQFLUSH: pce_fence(w, PCE_WPQFLUSH, stack); break;
        case PC_OP_BEGIN: {
            const char *nm = pc_op_name(e->op_id);
            int contract = e->contract == PC_CONTRACT_PERSIST ? PCE_PERSIST
                         : e->contract == PC_CONTRACT_NONE  ? PCE_NONE
                                                            : PCE_FLUSHCACHE;
            pce_op_begin(w, e->op_id, e->addr, e->size, 0, 0, (const uint8_t *)nm, nm ? strlen(nm) : 0,
                         contract | PCE_CONTRACT_EXPLICIT, 0);
            break;
        }
        case PC_OP_END: pce_op_end(w, e->op_id, 0); break;
        default: break;
        }
    }
    /* markers made after the last event (those past the end belong to a reset run) */
    for (; mk < nmarkers && markers[mk].at <= nev; mk++) put_marker(w, &markers[mk], defined, nstk);
    free(defined);
    if (pce_finish(w) < 0) {
        pc__set_error("cannot write the trace: %s%s%s", pce_error(w), errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
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
    static uint8_t buf[1 << 20];
    pce_writer w;
    pce_init(&w, PCE_TEXT, buf, sizeof buf, fd_flush, &fd);
    errno = 0;
    int rc = write_body(&w);
    if (rc == 0 && fsync(fd) != 0) {
        pc__set_error("cannot write %s: %s", tmp, strerror(errno ? errno : EIO));
        rc = -1;
    }
    if (close(fd) != 0 && rc == 0) {
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

/* Under Valgrind the calls go to powercut's tool as client requests. Built without
 * Valgrind's headers, the library cannot tell and always records in process. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define PC_HAVE_VALGRIND 1
#endif
#endif

#ifdef PC_HAVE_VALGRIND
/* 1: under powercut's tool; -1: under another tool (error set); 0: not under Valgrind. */
static int under_valgrind(void) {
    if (!RUNNING_ON_VALGRIND) return 0;
    unsigned long answer = VALGRIND_DO_CLIENT_REQUEST_EXPR(0, POWERCUT_VG_HELLO, 0, 0, 0, 0, 0);
    if (answer == POWERCUT_VG_HELLO_ANSWER) return 1;
    pc__set_error("running under a Valgrind tool that is not powercut's (record with `powercut run -- PROGRAM`)");
    return -1;
}
#define VG_REQ(code, a, b, c, d) ((long)VALGRIND_DO_CLIENT_REQUEST_EXPR(-1, (code), (a), (b), (c), (d), 0))
#define UNDER_VALGRIND(fallback)                                                                                      \
    int vg_mode = under_valgrind();                                                                                   \
    if (vg_mode < 0) return fallback;                                                                                 \
    if (vg_mode > 0)
#else
#define VG_REQ(code, a, b, c, d) (-1L)
#define UNDER_VALGRIND(fallback) if (0)
#endif

static int vg_result(long r, const char *what) {
    if (r < 0) {
        pc__set_error("powercut's Valgrind tool refused %s (its message is in the run's output)", what);
        return -1;
    }
    return (int)r;
}

int powercut_pmem(void *addr, size_t len) {
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_PMEM, addr, len, 0, 0), "the pmem range");
    if (pc_init() < 0) return -1;
    return pc_add_pmem((uint64_t)(uintptr_t)addr, len, 0);
}

int powercut_pmem_volatile(void *addr, size_t len) {
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_PMEM, addr, len, 1, 0), "the pmem range");
    if (pc_init() < 0) return -1;
    return pc_add_pmem((uint64_t)(uintptr_t)addr, len, 1);
}

int powercut_op_begin(void *dst, size_t len, const char *name, int contract) {
    if (contract < POWERCUT_FLUSHCACHE || contract > POWERCUT_NONE) {
        pc__set_error("unknown contract %d (expected POWERCUT_FLUSHCACHE, POWERCUT_PERSIST or POWERCUT_NONE)", contract);
        return -1;
    }
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_OP_BEGIN, dst, len, name, contract), "the op");
    return pc_op_begin_named((uint64_t)(uintptr_t)dst, len, name, (pc_contract)contract);
}

int powercut_op_end(void) {
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_OP_END, 0, 0, 0, 0), "the op end");
    return pc_op_end();
}

int powercut_durable(const void *addr, size_t len) {
    if (len == 0) {
        pc__set_error("powercut_durable of 0 bytes (expected len > 0)");
        return -1;
    }
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_DURABLE, addr, len, 0, 0), "the durable assertion");
    if ((uint64_t)(uintptr_t)addr + (len - 1) < (uint64_t)(uintptr_t)addr) {
        pc__set_error("powercut_durable range runs past the end of memory");
        return -1;
    }
    return add_marker(PCE_DURABLE, (uint64_t)(uintptr_t)addr, len, NULL);
}

int powercut_mark(const char *name) {
    if (!name || !*name) {
        pc__set_error("powercut_mark needs a non-empty name");
        return -1;
    }
    UNDER_VALGRIND(-1) return vg_result(VG_REQ(POWERCUT_VG_MARK, name, 0, 0, 0), "the mark");
    return add_marker(PCE_MARK, 0, 0, name);
}

int powercut_record_call(void (*fn)(void *, const void *, size_t), void *dst, const void *src, size_t n) {
    UNDER_VALGRIND(-1) {
        fn(dst, src, n); /* the tool sees every instruction of it */
        return 0;
    }
    return pc_record_call3(fn, dst, src, n);
}

int powercut_drain(void) {
    UNDER_VALGRIND(-1) {
        __asm__ volatile("sfence" ::: "memory"); /* the tool records the instruction */
        return 0;
    }
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

int powercut_write_trace(const char *path) {
    UNDER_VALGRIND(-1) return 0; /* `powercut run` writes the whole program's trace */
    return write_trace(path);
}

void powercut_reset(void) {
#ifdef PC_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND) (void)VG_REQ(POWERCUT_VG_RESET, 0, 0, 0, 0);
#endif
    free_markers();
    pc_reset();
}

const char *powercut_error(void) { return pc_error(); }

#endif /* __linux__ && __x86_64__ */
