/*
 * The recorder: single-stepping with EFLAGS.TF and a SIGTRAP handler that decodes each
 * instruction before it executes.
 *
 * Flow of one recorded call: pc__tramp sets TF with pushfq/or/popfq; a trap set by
 * popfq is taken after the instruction following it, which is the `call` into the
 * routine, so the first trap has RIP = the routine's first instruction. Every trap
 * decodes the instruction at RIP (decode cache), computes its effective addresses from
 * the registers in the signal context, and appends events. The trap whose RIP is the
 * return address in the trampoline clears TF in the saved context and ends stepping.
 * Errors (undecodable pmem write, budget, full buffers) siglongjmp out of the routine
 * back into pc_record_*.
 *
 * Nothing in the handler calls malloc: the event buffer, data pool, stack pool and
 * decode cache are large MAP_NORESERVE mappings made once by pc_init, and capstone
 * allocates from its own arena. libunwind unwinds from the signal context only for
 * instructions that produce events, with a small cache keyed by (rip, rsp) that call and
 * ret invalidate.
 *
 * Where single-stepping does not see an instruction before it runs, and what is done:
 * - syscall: the kernel returns with TF set and the next instruction runs before the
 *   next trap. The handler runs the syscall from pc__sys_stub instead (`syscall; jmp
 *   back`), so the instruction that runs unseen is that jmp, and puts into rcx the
 *   return address the syscall would have left there.
 * - int n / sysenter: the instruction after it runs unseen; at the next trap it is
 *   decoded and, if it could have made an event, recording stops with an error.
 * - popf that would clear TF: TF is forced into the image on the stack before it runs.
 * - Signal handlers: the kernel clears TF for a handler. While a call is recorded, every
 *   handler installed in the process runs behind a wrapper that sets TF again, so the
 *   handler's instructions are stepped and its stores recorded like the routine's
 *   (rt_sigreturn is then run in place, and the instruction it returns to is checked as
 *   after int/sysenter). A routine that installs a handler, changes SIGTRAP's
 *   disposition or blocks SIGTRAP during the call is stopped with an error: what it
 *   sets up would run unseen. Threads the routine creates inherit TF but their traps
 *   are ignored.
 * - exit/exit_group during the call: stopped with an error that names the status,
 *   before the process ends.
 * - Writes the kernel makes on the routine's behalf (read(2) into pmem) are no CPU
 *   stores and are not recorded.
 * - Fences in the dynamic loader (the locks of lazy binding) are not the routine's own
 *   and are dropped; stores there are recorded as anywhere else.
 * Call stacks stop at the trampoline's frame (frames above it are the recorder's).
 */
#if defined(__linux__) && defined(__x86_64__)
#define _GNU_SOURCE
#include "pc_internal.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>
#include <x86intrin.h>

/* Capacities at full size; pc_init reserves them with MAP_NORESERVE (pages cost only
 * when touched) and, where the address space or overcommit policy refuses, retries at a
 * quarter, a sixteenth, ... of these. */
#define EV_CAP_MAX (64ull << 20)      /* events: 64M x 40 bytes */
#define DATA_CAP_MAX (4ull << 30)     /* captured store data */
#define FR_CAP_MAX (32ull << 20)      /* stack frame slots */
#define STK_CAP_MAX (4ull << 20)      /* distinct stacks */
#define EV_CAP (S.ev_cap)
#define DATA_CAP (S.data_cap)
#define FR_CAP (S.fr_cap)
#define STK_CAP (S.stk_cap)
#define STAB_SLOTS (2 * S.stk_cap)    /* stack intern table (power of two) */
#define DC_SLOTS (1u << 18)       /* decode cache (power of two) */
#define SC_SLOTS 1024u            /* stack cache */
#define MAX_FRAMES 32
#define BLK_SIZE 4096u            /* block area: one block at a time */
#define BLK_MAX_INSNS 64u
#define BLK_MAX_BYTES 512u
#define TF 0x100

enum { MODE_IDLE = 0, MODE_CALL, MODE_SS };
enum {
    HERR_NONE = 0, HERR_BUDGET, HERR_DECODE, HERR_UNKNOWN, HERR_EVFULL, HERR_DATAFULL,
    HERR_STACKFULL, HERR_XSAVE, HERR_SIGNAL, HERR_DCFULL, HERR_SYSCALL, HERR_EXIT, HERR_TRAPDISP,
    HERR_TRAPMASK, HERR_SIGACTION
};

typedef struct {
    uint64_t off;
    uint32_t n;
    uint32_t hash;
} stack_rec;

typedef struct {
    uint64_t rip, rsp, epoch;
    uint32_t id;
} scache_ent;

typedef struct {
    uint64_t base, len;
    int vol;
} pmem_range;

static struct {
    int inited;
    uint64_t ev_cap, data_cap, fr_cap, stk_cap;
    /* events and data */
    pc_event *ev;
    size_t nev;
    uint8_t *data;
    size_t ndata;
    size_t pending; /* first event whose data is still to be captured */
    int capture;
    /* stacks */
    uint64_t *frames;
    size_t nframes;
    stack_rec *stk;
    size_t nstk;
    uint32_t *stab;
    scache_ent scache[SC_SLOTS];
    uint64_t epoch;
    /* decode cache */
    pc_dentry *dc;
    size_t dc_used;
    /* pmem */
    pmem_range pm[256];
    int npm;
    uint64_t pm_lo, pm_hi;
    /* ops */
    uint64_t op_counter, cur_op;
    char **op_names;
    size_t op_names_cap;
    /* recording */
    volatile int active;
    int mode;
    char busy; /* a recording is set up (atomic: refuses a second thread) */
    uint64_t budget, traps, total;
    uint64_t handler_tsc; /* TSC ticks spent in the handler, for benchmarks */
    sigjmp_buf jb;
    struct sigaction old_sa;
    sigset_t old_mask;
    uint64_t fsbase, gsbase;
    int seg_valid;
    uint64_t after_kentry;  /* address of the instruction after a stepped int/sysenter */
    int in_stub;            /* the last instruction was a syscall run from pc__sys_stub */
    uint64_t call_sp;       /* MODE_CALL: rsp of the trampoline after the call returns */
    /* per trap */
    ucontext_t *uc;
    uint32_t cur_stack;
    int cur_stack_valid;
    int cur_ldso;
    /* handler error */
    int herr;
    uint64_t herr_rip;
    uint8_t herr_bytes[16];
    size_t herr_nbytes;
    long herr_code;
    /* block stepping (see M_* in pc_internal.h): runs of movable instructions execute
     * natively from a copy in blk, ended by int3 */
    uint8_t *blk;
    int blocks_off;
    int in_block;
    uint64_t blk_end, blk_resume;     /* after the int3 that ends the run; where to go on */
    uint64_t blk_end2, blk_resume2;   /* the same for a final jcc taken */
    uint64_t blocks, block_insns;
    /* signal handlers that ran (stepped) during the recorded call */
    uint64_t handlers_run;
    int last_handler_signal;
    /* xsave layout (CPUID 0xD) */
    uint32_t xoff[8];
    /* message and its kind */
    char err[1024];
    int err_kind;
} S;

uint64_t pc_ldso_lo, pc_ldso_hi;

/* Set on the recording thread only: a thread created by the routine inherits TF, and
 * its traps are not recorded (initial-exec: no allocation in the handler). */
static __thread int tl_recording __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------ trampolines */

/* pc__tramp(fn, a, b, c): calls fn(a, b, c) with TF set. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl pc__tramp\n"
        ".hidden pc__tramp\n"
        ".type pc__tramp,@function\n"
        "pc__tramp:\n"
        "  .cfi_startproc\n"
        "  push %rbp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset %rbp, -16\n"
        "  mov %rsp, %rbp\n"
        "  .cfi_def_cfa_register %rbp\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  mov %rdx, %rsi\n"
        "  mov %rcx, %rdx\n"
        "  pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "  call *%rax\n"
        ".globl pc__tramp_ret\n"
        ".hidden pc__tramp_ret\n"
        "pc__tramp_ret:\n"
        "  pushfq\n"
        "  andq $-257, (%rsp)\n"
        "  popfq\n"
        "  pop %rbp\n"
        "  .cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size pc__tramp, .-pc__tramp\n"

        /* powercut_start: prepare, then set TF; the first trap comes after `ret`, at
         * the caller's next instruction. */
        ".p2align 4\n"
        ".globl powercut_start\n"
        ".type powercut_start,@function\n"
        "powercut_start:\n"
        "  .cfi_startproc\n"
        "  sub $8, %rsp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  call pc__start_prepare\n"
        "  add $8, %rsp\n"
        "  .cfi_def_cfa_offset 8\n"
        "  test %eax, %eax\n"
        "  jnz 1f\n"
        "  pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "1:\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size powercut_start, .-powercut_start\n"

        /* powercut_stop: the handler stops stepping when RIP reaches pc__stop_entry,
         * before any of its instructions runs. */
        ".p2align 4\n"
        ".globl powercut_stop\n"
        ".type powercut_stop,@function\n"
        "powercut_stop:\n"
        ".globl pc__stop_entry\n"
        ".hidden pc__stop_entry\n"
        "pc__stop_entry:\n"
        "  .cfi_startproc\n"
        "  pushfq\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  andq $-257, (%rsp)\n"
        "  popfq\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  jmp pc__stop_finish\n"
        "  .cfi_endproc\n"
        ".size powercut_stop, .-powercut_stop\n"

        /* A stepped syscall runs here: the kernel returns with TF set and the
         * instruction after the syscall runs before the next trap, so that
         * instruction is this jmp back, and the routine's next instruction is still
         * decoded before it runs. */
        ".p2align 4\n"
        ".globl pc__sys_stub\n"
        ".hidden pc__sys_stub\n"
        "pc__sys_stub:\n"
        "  syscall\n"
        "  jmp *pc__sys_back(%rip)\n");

PC_HIDDEN void pc__tramp(void *fn, void *a, const void *b, size_t c);
PC_HIDDEN extern char pc__tramp_ret[];
PC_HIDDEN extern char pc__stop_entry[];
PC_HIDDEN extern char pc__sys_stub[];
PC_HIDDEN uint64_t pc__sys_back;
PC_HIDDEN int pc__start_prepare(void);
PC_HIDDEN int pc__stop_finish(void);

static inline void tf_off(void) { __asm__ volatile("pushfq\n\tandq $-257, (%%rsp)\n\tpopfq" ::: "memory", "cc"); }
static inline void tf_on(void) { __asm__ volatile("pushfq\n\torq $0x100, (%%rsp)\n\tpopfq" ::: "memory", "cc"); }

/* ------------------------------------------------------------------ errors */

void pc__set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.err, sizeof S.err, fmt, ap);
    va_end(ap);
    S.err_kind = PC_ERR_OTHER;
    for (char *p = S.err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

const char *pc_error(void) { return S.err; }
int pc_error_kind(void) { return S.err[0] ? S.err_kind : PC_ERR_NONE; }
uint64_t pc_handlers_stepped(void) { return S.handlers_run; }
const char *pc_version(void) { return PC_VERSION; }

/* ------------------------------------------------------------------ init */

static void *map_big(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int find_ldso(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    uint64_t want = *(uint64_t *)arg;
    if (info->dlpi_addr != want) return 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (lo < hi) {
        pc_ldso_lo = lo;
        pc_ldso_hi = hi;
    }
    return 1;
}

/* Empties the stack intern table. Only the slots of the stacks interned since the last
 * reset are cleared (the table is sized for millions of stacks; zeroing it whole on every
 * reset cost more than the few dozen traps of a short recorded call). Each stack sits in
 * exactly one slot, found by probing from its hash as intern() placed it. */
static void clear_stack_table(void) {
    size_t mask = STAB_SLOTS - 1;
    for (size_t k = 0; k < S.nstk; k++) {
        uint32_t id = (uint32_t)(k + 1);
        size_t i = (size_t)S.stk[k].hash & mask;
        for (size_t probes = 0; probes <= mask && S.stab[i] != id; probes++) i = (i + 1) & mask;
        if (S.stab[i] == id) S.stab[i] = 0;
    }
}

static void release(void *p, size_t used) {
    if (p && used) madvise(p, (used + 4095) & ~(size_t)4095, MADV_DONTNEED);
}

int pc_init(void) {
    if (S.inited) return 0;
    S.dc = map_big((size_t)DC_SLOTS * sizeof(pc_dentry));
    for (unsigned shift = 0;; shift += 2) {
        S.ev_cap = EV_CAP_MAX >> shift;
        S.data_cap = DATA_CAP_MAX >> shift;
        S.fr_cap = FR_CAP_MAX >> shift;
        S.stk_cap = STK_CAP_MAX >> shift;
        S.ev = map_big(S.ev_cap * sizeof(pc_event));
        S.data = map_big(S.data_cap);
        S.frames = map_big(S.fr_cap * sizeof(uint64_t));
        S.stk = map_big(S.stk_cap * sizeof(stack_rec));
        S.stab = map_big(STAB_SLOTS * sizeof(uint32_t));
        if (S.ev && S.data && S.frames && S.stk && S.stab) break;
        int err = errno;
        if (S.ev) munmap(S.ev, S.ev_cap * sizeof(pc_event));
        if (S.data) munmap(S.data, S.data_cap);
        if (S.frames) munmap(S.frames, S.fr_cap * sizeof(uint64_t));
        if (S.stk) munmap(S.stk, S.stk_cap * sizeof(stack_rec));
        if (S.stab) munmap(S.stab, STAB_SLOTS * sizeof(uint32_t));
        S.ev = NULL;
        S.data = NULL;
        S.frames = NULL;
        S.stk = NULL;
        S.stab = NULL;
        if (shift >= 10) {
            pc__set_error("cannot reserve the recorder's buffers: %s", strerror(err));
            return -1;
        }
    }
    if (!S.dc) {
        pc__set_error("cannot reserve the recorder's decode cache: %s", strerror(errno));
        return -1;
    }
    if (pc_decode_init() < 0) return -1;
    /* The block area: executable, written by the handler. Where the system refuses
     * writable code, or POWERCUT_BLOCK_STEP=0 asks for it, every instruction traps. */
    const char *bs = getenv("POWERCUT_BLOCK_STEP");
    if (bs && strcmp(bs, "0") == 0) S.blocks_off = 1;
    S.blk = mmap(NULL, BLK_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (S.blk == MAP_FAILED) {
        S.blk = NULL;
        S.blocks_off = 1;
    }
    for (unsigned i = 2; i < 8; i++) {
        unsigned a, b, c, d;
        if (__get_cpuid_count(0xd, i, &a, &b, &c, &d) && a) S.xoff[i] = b;
    }
    uint64_t base = getauxval(AT_BASE);
    if (base) dl_iterate_phdr(find_ldso, &base);
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    S.epoch = 1;
    S.inited = 1;
    /* libunwind initialises itself on first use: do that here, not in the handler */
    S.nstk = 0;
    (void)pc__stack_here();
    clear_stack_table();
    release(S.frames, S.nframes * sizeof(uint64_t));
    release(S.stk, S.nstk * sizeof(stack_rec));
    S.nstk = S.nframes = 0;
    S.inited = 1;
    return 0;
}

void pc_reset(void) {
    if (S.mode != MODE_IDLE) return; /* not while recording */
    if (S.inited) {
        clear_stack_table();
        release(S.ev, S.nev * sizeof(pc_event));
        release(S.data, S.ndata);
        release(S.frames, S.nframes * sizeof(uint64_t));
        release(S.stk, S.nstk * sizeof(stack_rec));
    }
    S.nev = S.ndata = S.pending = S.nframes = S.nstk = 0;
    memset(S.scache, 0, sizeof S.scache);
    S.epoch++;
    S.npm = 0;
    S.pm_lo = UINT64_MAX;
    S.pm_hi = 0;
    for (size_t i = 0; i < S.op_names_cap; i++) free(S.op_names[i]);
    free(S.op_names);
    S.op_names = NULL;
    S.op_names_cap = 0;
    S.op_counter = S.cur_op = 0;
    S.err[0] = 0;
    S.herr = HERR_NONE;
}

/* ------------------------------------------------------------------ pmem */

int pc_add_pmem(uint64_t base, uint64_t len, int is_volatile) {
    if (len == 0) {
        pc__set_error("pmem range at 0x%llx has length 0", (unsigned long long)base);
        return -1;
    }
    if (base + len < base && base + len != 0) {
        pc__set_error("pmem range 0x%llx + 0x%llx runs past the end of the address space",
                      (unsigned long long)base, (unsigned long long)len);
        return -1;
    }
    uint64_t last = base + (len - 1);
    for (int i = 0; i < S.npm; i++) {
        uint64_t olast = S.pm[i].base + (S.pm[i].len - 1);
        if (base <= olast && S.pm[i].base <= last) {
            pc__set_error("pmem range 0x%llx+0x%llx overlaps range 0x%llx+0x%llx", (unsigned long long)base,
                          (unsigned long long)len, (unsigned long long)S.pm[i].base, (unsigned long long)S.pm[i].len);
            return -1;
        }
    }
    if (S.npm >= (int)(sizeof S.pm / sizeof S.pm[0])) {
        pc__set_error("too many pmem ranges (at most %zu)", sizeof S.pm / sizeof S.pm[0]);
        return -1;
    }
    S.pm[S.npm].base = base;
    S.pm[S.npm].len = len;
    S.pm[S.npm].vol = is_volatile != 0;
    S.npm++;
    if (S.npm == 1) {
        S.pm_lo = UINT64_MAX;
        S.pm_hi = 0;
    }
    if (base < S.pm_lo) S.pm_lo = base;
    uint64_t end = last + 1 == 0 ? UINT64_MAX : last + 1;
    if (end > S.pm_hi) S.pm_hi = end;
    return 0;
}

size_t pc_pmem_count(void) { return (size_t)S.npm; }

int pc_pmem_range(size_t i, uint64_t *base, uint64_t *len, int *is_volatile) {
    if (i >= (size_t)S.npm) return -1;
    if (base) *base = S.pm[i].base;
    if (len) *len = S.pm[i].len;
    if (is_volatile) *is_volatile = S.pm[i].vol;
    return 0;
}

/* Does [a, a+n) (n > 0) overlap any pmem range? */
static inline int overlaps(uint64_t a, uint64_t n) {
    uint64_t end = a + n;
    if (end < a) end = UINT64_MAX;
    if (end <= S.pm_lo || a >= S.pm_hi) return 0;
    for (int i = 0; i < S.npm; i++) {
        uint64_t pend = S.pm[i].base + S.pm[i].len;
        if (pend < S.pm[i].base) pend = UINT64_MAX;
        if (a < pend && S.pm[i].base < end) return 1;
    }
    return 0;
}

void pc_set_budget(uint64_t n) { S.budget = n; }
void pc_set_capture_data(int on) { S.capture = on != 0; }

/* ------------------------------------------------------------------ stacks */

static uint64_t hash_frames(const uint64_t *f, unsigned n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

/* Returns the id, or 0 if the tables are full. */
static uint32_t intern(const uint64_t *f, unsigned n) {
    uint64_t h = hash_frames(f, n);
    size_t mask = STAB_SLOTS - 1, i = (size_t)h & mask;
    for (;;) {
        uint32_t id = S.stab[i];
        if (!id) break;
        const stack_rec *r = &S.stk[id - 1];
        if (r->hash == (uint32_t)h && r->n == n && memcmp(S.frames + r->off, f, n * sizeof *f) == 0) return id;
        i = (i + 1) & mask;
    }
    if (S.nstk >= STK_CAP || S.nframes + n > FR_CAP) return 0;
    memcpy(S.frames + S.nframes, f, n * sizeof *f);
    S.stk[S.nstk].off = S.nframes;
    S.stk[S.nstk].n = n;
    S.stk[S.nstk].hash = (uint32_t)h;
    S.nframes += n;
    S.nstk++;
    S.stab[i] = (uint32_t)S.nstk;
    return (uint32_t)S.nstk;
}

size_t pc_stack_count(void) { return S.nstk; }

size_t pc_stack_frames(uint32_t id, const uint64_t **frames) {
    if (id == 0 || id > S.nstk) {
        if (frames) *frames = NULL;
        return 0;
    }
    if (frames) *frames = S.frames + S.stk[id - 1].off;
    return S.stk[id - 1].n;
}

/* The stack of the instruction at the current trap. */
static int unwind_trap(uint64_t *fr, unsigned *nout) {
    unw_cursor_t c;
    unsigned n = 0;
    uint64_t stop = S.mode == MODE_CALL ? (uint64_t)(uintptr_t)pc__tramp_ret : 0;
    fr[n++] = (uint64_t)S.uc->uc_mcontext.gregs[REG_RIP];
    if (unw_init_local2(&c, (unw_context_t *)S.uc, UNW_INIT_SIGNAL_FRAME) == 0) {
        while (n < MAX_FRAMES && unw_step(&c) > 0) {
            unw_word_t ip = 0;
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0) break;
            if (ip == stop) break;
            if (S.mode == MODE_CALL) {
                /* frames at or above the trampoline's are the recorder's (this also
                 * stops a frame-pointer guess through code without CFI) */
                unw_word_t sp = 0;
                if (unw_get_reg(&c, UNW_REG_SP, &sp) < 0 || (uint64_t)sp >= S.call_sp) break;
            }
            fr[n++] = (uint64_t)ip;
        }
    }
    *nout = n;
    return 0;
}

static uint32_t trap_stack(void) {
    if (S.cur_stack_valid) return S.cur_stack;
    const greg_t *g = S.uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP], rsp = (uint64_t)g[REG_RSP];
    scache_ent *ce = &S.scache[((rip * 0x9e3779b97f4a7c15ull) ^ (rsp >> 3)) & (SC_SLOTS - 1)];
    if (ce->rip == rip && ce->rsp == rsp && ce->epoch == S.epoch && ce->id) {
        S.cur_stack = ce->id;
    } else {
        uint64_t fr[MAX_FRAMES];
        unsigned n = 0;
        unwind_trap(fr, &n);
        S.cur_stack = intern(fr, n);
        ce->rip = rip;
        ce->rsp = rsp;
        ce->epoch = S.epoch;
        ce->id = S.cur_stack;
    }
    S.cur_stack_valid = 1;
    return S.cur_stack;
}

/* The stack of the caller of the function that calls this (skips 1 frame). */
__attribute__((noinline)) uint32_t pc__stack_here(void) {
    unw_context_t ctx;
    unw_cursor_t c;
    uint64_t fr[MAX_FRAMES];
    unsigned n = 0;
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&c, &ctx) != 0) return 0;
    int skip = 1;
    while (n < MAX_FRAMES && unw_step(&c) > 0) {
        unw_word_t ip = 0;
        if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        if (skip-- > 0) continue;
        fr[n++] = (uint64_t)ip;
    }
    if (n == 0) return 0;
    return intern(fr, n);
}

/* ------------------------------------------------------------------ events */

/* Appends one event in the current op, its bytes not yet captured (the caller has checked
 * that the buffer has room). Used by the API and by the trap handler alike. */
static void put_event(uint8_t kind, uint8_t contract, uint64_t addr, uint64_t size, uint32_t stack) {
    pc_event *e = &S.ev[S.nev++];
    e->kind = kind;
    e->contract = contract;
    e->reserved = 0;
    e->stack = stack;
    e->addr = addr;
    e->size = size;
    e->data_offset = UINT64_MAX;
    e->op_id = S.cur_op;
}

int pc__append(uint8_t kind, uint8_t contract, uint64_t addr, uint64_t size, uint32_t stack) {
    if (pc_init() < 0) return -1;
    if (S.nev >= EV_CAP) {
        pc__set_error("event buffer full (%llu events)", (unsigned long long)EV_CAP);
        return -1;
    }
    put_event(kind, contract, addr, size, stack);
    if (!S.active) S.pending = S.nev;
    return 0;
}

int pc_append_event(pc_kind kind, uint64_t addr, uint64_t size) {
    if (kind < PC_STORE || kind > PC_WPQFLUSH) {
        pc__set_error("pc_append_event: kind %d is not an event", (int)kind);
        return -1;
    }
    if ((kind == PC_STORE || kind == PC_NTSTORE) && (size == 0 || size > (1u << 20))) {
        pc__set_error("pc_append_event: store size %llu out of range 1..1048576", (unsigned long long)size);
        return -1;
    }
    return pc__append((uint8_t)kind, 0, addr, size, 0);
}

size_t pc_event_count(void) { return S.nev; }
const pc_event *pc_events(void) { return S.ev; }
const uint8_t *pc_data(void) { return S.data; }
size_t pc_data_size(void) { return S.ndata; }
uint64_t pc_instructions_stepped(void) { return S.total; }
int pc__stepping(void) { return S.active; }

/* ------------------------------------------------------------------ ops */

static int name_ok(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == '#' || *s == '=' || *s == 0x7f) return 0;
    return 1;
}

int pc_op_begin_named(uint64_t dst, uint64_t len, const char *name, pc_contract c) {
    int ss = S.active && S.mode == MODE_SS;
    if (ss) tf_off();
    int rc = -1;
    if (pc_init() < 0) goto out;
    if (S.cur_op) {
        pc__set_error("op %llu is still open: ops do not nest", (unsigned long long)S.cur_op);
        goto out;
    }
    /* len 0 is allowed: a copy of nothing is a case a sweep checks too. */
    if (dst + len < dst && dst + len != 0) {
        pc__set_error("op range 0x%llx + %llu runs past the end of the address space", (unsigned long long)dst,
                      (unsigned long long)len);
        goto out;
    }
    if ((unsigned)c > PC_CONTRACT_NONE) {
        pc__set_error("unknown contract %d", (int)c);
        goto out;
    }
    if (name && !name_ok(name)) {
        pc__set_error("op name '%s' must be non-empty without spaces, '#' or '='", name);
        goto out;
    }
    uint64_t id = S.op_counter + 1;
    if (name) {
        if (id > S.op_names_cap) {
            size_t cap = S.op_names_cap ? S.op_names_cap * 2 : 16;
            while (cap < id) cap *= 2;
            char **p = realloc(S.op_names, cap * sizeof *p);
            if (!p) {
                pc__set_error("out of memory");
                goto out;
            }
            memset(p + S.op_names_cap, 0, (cap - S.op_names_cap) * sizeof *p);
            S.op_names = p;
            S.op_names_cap = cap;
        }
        S.op_names[id - 1] = strdup(name);
        if (!S.op_names[id - 1]) {
            pc__set_error("out of memory");
            goto out;
        }
    }
    S.cur_op = id;
    if (pc__append(PC_OP_BEGIN, (uint8_t)c, dst, len, 0) < 0) {
        S.cur_op = 0;
        goto out;
    }
    S.op_counter = id;
    rc = (int)(id > INT32_MAX ? INT32_MAX : id);
out:
    if (ss) tf_on();
    return rc;
}

int pc_op_begin(uint64_t dst, uint64_t len, pc_contract c) { return pc_op_begin_named(dst, len, NULL, c); }

int pc_op_end(void) {
    int ss = S.active && S.mode == MODE_SS;
    if (ss) tf_off();
    int rc = -1;
    if (!S.cur_op) {
        pc__set_error("op end without an open op");
    } else if (pc__append(PC_OP_END, 0, 0, 0, 0) == 0) {
        S.cur_op = 0;
        rc = 0;
    }
    if (ss) tf_on();
    return rc;
}

const char *pc_op_name(uint64_t op_id) {
    if (op_id == 0 || op_id > S.op_names_cap) return NULL;
    return S.op_names[op_id - 1];
}

/* ------------------------------------------------------------------ XSAVE area */

#define XMAGIC1 0x46505853u

typedef struct {
    const uint8_t *fx;
    uint64_t bv, features;
    uint32_t size;
    int ext;
} xview;

static int xview_get(xview *v) {
    v->fx = (const uint8_t *)S.uc->uc_mcontext.fpregs;
    v->ext = 0;
    v->bv = 3;
    v->features = 3;
    v->size = 512;
    if (!v->fx) return -1;
    uint32_t magic, xsize;
    memcpy(&magic, v->fx + 464, 4);
    if (magic == XMAGIC1) {
        memcpy(&v->features, v->fx + 464 + 8, 8);
        memcpy(&xsize, v->fx + 464 + 16, 4);
        memcpy(&v->bv, v->fx + 512, 8);
        v->size = xsize;
        v->ext = 1;
    }
    return 0;
}

/* Copies `bytes` (8 for k, or 16/32/64) of component `comp` at `off` into out; the init
 * state (xstate_bv bit clear) reads as zero. */
static int xread(const xview *v, unsigned comp, size_t off, size_t bytes, uint8_t *out) {
    if (comp >= 2) {
        if (!v->ext || !(v->features & (1ull << comp)) || !S.xoff[comp]) return -1;
        off += S.xoff[comp];
    }
    if (!(v->bv & (1ull << comp))) {
        memset(out, 0, bytes);
        return 0;
    }
    if (off + bytes > v->size) return -1;
    memcpy(out, v->fx + off, bytes);
    return 0;
}

static int read_k(unsigned k, uint64_t *out) {
    xview v;
    if (xview_get(&v) < 0) return -1;
    return xread(&v, 5, 8 * (size_t)k, 8, (uint8_t *)out);
}

/* Vector register n (0..31), the low `bytes` bytes (16, 32 or 64). */
static int read_v(unsigned n, unsigned bytes, uint8_t out[64]) {
    xview v;
    memset(out, 0, 64);
    if (xview_get(&v) < 0) return -1;
    if (n >= 16) return xread(&v, 7, 64 * (size_t)(n - 16), bytes, out);
    if (xread(&v, 1, 160 + 16 * (size_t)n, 16, out) < 0) return -1;
    if (bytes > 16 && xread(&v, 2, 16 * (size_t)n, 16, out + 16) < 0) return -1;
    if (bytes > 32 && xread(&v, 6, 32 * (size_t)n, 32, out + 32) < 0) return -1;
    return 0;
}

static int read_mm(unsigned n, uint8_t out[8]) {
    xview v;
    if (xview_get(&v) < 0) return -1;
    return xread(&v, 0, 32 + 16 * (size_t)n, 8, out);
}

/* ------------------------------------------------------------------ the handler */

static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static inline uint64_t greg(unsigned r) { return (uint64_t)S.uc->uc_mcontext.gregs[greg_of[r & 15]]; }

static uint64_t segbase(unsigned seg) {
    if (!S.seg_valid) {
        unsigned long fs = 0, gs = 0;
        syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
        syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
        S.fsbase = fs;
        S.gsbase = gs;
        S.seg_valid = 1;
    }
    return seg == 1 ? S.fsbase : seg == 2 ? S.gsbase : 0;
}

static uint64_t ea(const pc_dentry *e) {
    uint64_t a = (uint64_t)e->disp;
    if (e->base == PC_R_RIP) a += e->rip + e->len;
    else if (e->base != PC_R_NONE) a += greg(e->base);
    if (e->index != PC_R_NONE) a += greg(e->index) * e->scale;
    if (e->flags & F_ADDR32) a = (uint32_t)a;
    if (e->seg) a += segbase(e->seg);
    if (e->flags & F_ALIGN64) a &= ~(uint64_t)63;
    return a;
}

static int hfail(int kind, const pc_dentry *e) {
    if (S.herr) return -1;
    S.herr = kind;
    S.herr_rip = (uint64_t)S.uc->uc_mcontext.gregs[REG_RIP];
    S.herr_nbytes = 0;
    if (e) {
        S.herr_nbytes = e->len > 15 ? 15 : e->len;
        memcpy(S.herr_bytes, e->bytes, S.herr_nbytes);
    }
    return -1;
}

static int emit(uint8_t kind, uint64_t addr, uint64_t size) {
    if (kind == PC_SFENCE || kind == PC_MFENCE || kind == PC_FENCE) {
        if (S.cur_ldso) return 0; /* the dynamic loader's locks are not the routine's */
    }
    if (S.nev >= EV_CAP) return hfail(HERR_EVFULL, NULL);
    uint32_t st = trap_stack();
    if (!st) return hfail(HERR_STACKFULL, NULL);
    put_event(kind, 0, addr, size, st);
    return 0;
}

static int capture_pending(void) {
    for (size_t i = S.pending; i < S.nev; i++) {
        pc_event *ev = &S.ev[i];
        if (ev->kind != PC_STORE && ev->kind != PC_NTSTORE) continue;
        if (ev->data_offset != UINT64_MAX) continue;
        if (S.ndata + ev->size > DATA_CAP) {
            S.pending = i;
            return -1;
        }
        memcpy(S.data + S.ndata, (const void *)(uintptr_t)ev->addr, ev->size);
        ev->data_offset = S.ndata;
        S.ndata += ev->size;
    }
    S.pending = S.nev;
    return 0;
}

/* One event per contiguous run of set mask bits, lowest element first. */
static int emit_runs(uint8_t kind, uint64_t base, uint64_t mask, unsigned nelem, unsigned esize) {
    unsigned i = 0;
    while (i < nelem) {
        if (!((mask >> i) & 1)) {
            i++;
            continue;
        }
        unsigned j = i;
        while (j < nelem && ((mask >> j) & 1)) j++;
        uint64_t a = base + (uint64_t)i * esize, n = (uint64_t)(j - i) * esize;
        if (overlaps(a, n) && emit(kind, a, n) < 0) return -1;
        i = j;
    }
    return 0;
}

static inline uint64_t low_bits(unsigned n) { return n >= 64 ? ~0ull : ((1ull << n) - 1); }

static int store_at(const pc_dentry *e, uint64_t a, uint64_t n) {
    if (n && overlaps(a, n)) return emit(e->ev, a, n);
    return 0;
}

static int window_check(const pc_dentry *e, uint64_t a) {
    uint64_t lo = a + (int64_t)e->lo, hi = a + (int64_t)e->hi;
    if (e->lo < 0 && lo > a) lo = 0;
    if (e->hi > 0 && hi < a) hi = UINT64_MAX;
    if (hi > lo && overlaps(lo, hi - lo)) return hfail(HERR_DECODE, e);
    return 0;
}

static pc_dentry *lookup(uint64_t rip) {
    size_t mask = DC_SLOTS - 1, i = (size_t)((rip * 0x9e3779b97f4a7c15ull) >> 40) & mask;
    for (;;) {
        pc_dentry *e = &S.dc[i];
        if (e->rip == rip) {
            if (memcmp(e->bytes, (const void *)(uintptr_t)rip, e->len) == 0) return e;
            break; /* code changed: decode again into this slot */
        }
        if (e->rip == 0) {
            if (S.dc_used >= DC_SLOTS / 2) {
                memset(S.dc, 0, (size_t)DC_SLOTS * sizeof(pc_dentry));
                S.dc_used = 0;
                i = (size_t)((rip * 0x9e3779b97f4a7c15ull) >> 40) & mask;
            }
            S.dc_used++;
            break;
        }
        i = (i + 1) & mask;
    }
    uint8_t buf[16];
    size_t avail = 4096 - (size_t)(rip & 4095);
    if (avail >= 15) {
        memcpy(buf, (const void *)(uintptr_t)rip, 15);
        avail = 15;
    } else {
        memcpy(buf, (const void *)(uintptr_t)rip, avail);
        struct iovec l = {buf + avail, 15 - avail}, r = {(void *)(uintptr_t)(rip + avail), 15 - avail};
        ssize_t k = syscall(SYS_process_vm_readv, (long)getpid(), &l, 1L, &r, 1L, 0L);
        if (k > 0) avail += (size_t)k;
    }
    pc_decode(rip, buf, avail, &S.dc[i]);
    return &S.dc[i];
}

/* Syscalls that would take the process out of the recorder's hands. */
static int check_syscall(const pc_dentry *e) {
    const greg_t *g = S.uc->uc_mcontext.gregs;
    uint64_t nr = (uint64_t)g[REG_RAX], a0 = (uint64_t)g[REG_RDI], a1 = (uint64_t)g[REG_RSI];
    switch (nr) {
    case SYS_exit:
    case SYS_exit_group:
        S.herr_code = (long)(int)a0;
        return hfail(HERR_EXIT, e);
    case SYS_rt_sigaction: {
        if (!a1) return 0; /* a query */
        uint64_t handler = *(const uint64_t *)(uintptr_t)a1;
        S.herr_code = (long)a0;
        if (a0 == SIGTRAP) return hfail(HERR_TRAPDISP, e);
        if (handler != (uint64_t)(uintptr_t)SIG_DFL && handler != (uint64_t)(uintptr_t)SIG_IGN)
            return hfail(HERR_SIGACTION, e);
        return 0;
    }
    case SYS_rt_sigprocmask: {
        if (!a1 || (a0 != SIG_BLOCK && a0 != SIG_SETMASK)) return 0;
        uint64_t set = *(const uint64_t *)(uintptr_t)a1;
        if (set & (1ull << (SIGTRAP - 1))) return hfail(HERR_TRAPMASK, e);
        return 0;
    }
    default:
        return 0;
    }
}

static int step(const pc_dentry *e) {
    const greg_t *g = S.uc->uc_mcontext.gregs;
    switch (e->cls) {
    case CLS_NONE:
        break;
    case CLS_STORE:
        if (store_at(e, ea(e), e->size) < 0) return -1;
        break;
    case CLS_REPSTR: {
        if (e->flags & F_REP) {
            uint64_t rcx = (uint64_t)g[REG_RCX];
            if (e->flags & F_ADDR32) rcx = (uint32_t)rcx;
            if (rcx == 0) break;
        }
        uint64_t a = (uint64_t)g[REG_RDI];
        if (e->flags & F_ADDR32) a = (uint32_t)a;
        if (store_at(e, a, e->size) < 0) return -1;
        break;
    }
    case CLS_PUSH:
        if (store_at(e, (uint64_t)g[REG_RSP] - e->size, e->size) < 0) return -1;
        break;
    case CLS_POPMEM: {
        uint64_t a = ea(e);
        if (e->base == 4) a += e->size;
        if (store_at(e, a, e->size) < 0) return -1;
        break;
    }
    case CLS_BITSTR: {
        uint64_t off = greg(e->vreg);
        int64_t s = e->isize == 2 ? (int16_t)off : e->isize == 4 ? (int32_t)off : (int64_t)off;
        unsigned sh = e->size == 2 ? 4 : e->size == 4 ? 5 : 6;
        uint64_t a = ea(e) + (uint64_t)((s >> sh) * (int64_t)e->size);
        if (store_at(e, a, e->size) < 0) return -1;
        break;
    }
    case CLS_MASKED: {
        uint64_t a = ea(e);
        if (!overlaps(a, (uint64_t)e->nelem * e->size)) break;
        uint64_t k;
        if (read_k(e->mreg, &k) < 0) return hfail(HERR_XSAVE, e);
        if (emit_runs(e->ev, a, k & low_bits(e->nelem), e->nelem, e->size) < 0) return -1;
        break;
    }
    case CLS_COMPRESS: {
        uint64_t a = ea(e);
        if (!overlaps(a, (uint64_t)e->nelem * e->size)) break;
        uint64_t k = ~0ull;
        if (e->mreg && read_k(e->mreg, &k) < 0) return hfail(HERR_XSAVE, e);
        unsigned cnt = (unsigned)__builtin_popcountll(k & low_bits(e->nelem));
        if (store_at(e, a, (uint64_t)cnt * e->size) < 0) return -1;
        break;
    }
    case CLS_VMASKMOV: {
        uint64_t a = ea(e);
        unsigned bytes = (unsigned)e->nelem * e->size;
        if (!overlaps(a, bytes)) break;
        uint8_t v[64];
        if (read_v(e->mreg, bytes <= 16 ? 16 : 32, v) < 0) return hfail(HERR_XSAVE, e);
        uint64_t m = 0;
        for (unsigned i = 0; i < e->nelem; i++)
            if (v[i * e->size + e->size - 1] & 0x80) m |= 1ull << i;
        if (emit_runs(e->ev, a, m, e->nelem, e->size) < 0) return -1;
        break;
    }
    case CLS_MASKMOVDQU: {
        uint64_t a = (uint64_t)g[REG_RDI];
        if (e->flags & F_ADDR32) a = (uint32_t)a;
        if (!overlaps(a, e->size)) break;
        uint8_t v[64];
        int rc = (e->flags & F_MMX) ? read_mm(e->mreg, v) : read_v(e->mreg, 16, v);
        if (rc < 0) return hfail(HERR_XSAVE, e);
        uint64_t m = 0;
        for (unsigned i = 0; i < e->size; i++)
            if (v[i] & 0x80) m |= 1ull << i;
        if (emit_runs(e->ev, a, m, e->size, 1) < 0) return -1;
        break;
    }
    case CLS_MOVDIR64B: {
        uint64_t a = greg(e->base);
        if (e->flags & F_ADDR32) a = (uint32_t)a;
        if (store_at(e, a, 64) < 0) return -1;
        break;
    }
    case CLS_SCATTER: {
        uint64_t k;
        if (read_k(e->mreg, &k) < 0) return hfail(HERR_XSAVE, e);
        k &= low_bits(e->nelem);
        if (!k) break;
        uint8_t v[64];
        if (read_v(e->vreg, 64, v) < 0) return hfail(HERR_XSAVE, e);
        uint64_t b = (uint64_t)e->disp;
        if (e->base == PC_R_RIP) b += e->rip + e->len;
        else if (e->base != PC_R_NONE) b += greg(e->base);
        for (unsigned j = 0; j < e->nelem; j++) {
            if (!((k >> j) & 1)) continue;
            int64_t idx;
            if (e->isize == 4) {
                int32_t t;
                memcpy(&t, v + 4 * j, 4);
                idx = t;
            } else {
                memcpy(&idx, v + 8 * j, 8);
            }
            uint64_t a = b + (uint64_t)(idx * (int64_t)e->scale);
            if (e->flags & F_ADDR32) a = (uint32_t)a;
            if (e->seg) a += segbase(e->seg);
            if (store_at(e, a, e->size) < 0) return -1;
        }
        break;
    }
    case CLS_FLUSH: {
        uint64_t a = ea(e);
        if (overlaps(a & ~(uint64_t)63, 64) && emit(e->ev, a, 0) < 0) return -1;
        break;
    }
    case CLS_FENCE:
        if (emit(e->ev, 0, 0) < 0) return -1;
        break;
    case CLS_WINDOW:
        if (window_check(e, ea(e)) < 0) return -1;
        break;
    case CLS_ENTER: {
        uint64_t n = e->size ? (uint64_t)e->size + 1 : 1;
        if (store_at(e, (uint64_t)g[REG_RSP] - 8 * n, 8 * n) < 0) return -1;
        break;
    }
    case CLS_POPF: {
        uint64_t sp = (uint64_t)g[REG_RSP];
        if (e->size == 2) {
            uint16_t *p = (uint16_t *)(uintptr_t)sp;
            *p |= TF;
        } else {
            uint64_t *p = (uint64_t *)(uintptr_t)sp;
            *p |= TF;
        }
        break;
    }
    case CLS_IRET: {
        uint64_t fl = (uint64_t)g[REG_RSP] + 2 * (uint64_t)e->size;
        if (e->size == 2) *(uint16_t *)(uintptr_t)fl |= TF;
        else if (e->size == 4) *(uint32_t *)(uintptr_t)fl |= TF;
        else *(uint64_t *)(uintptr_t)fl |= TF;
        if (emit(e->ev, 0, 0) < 0) return -1;
        break;
    }
    case CLS_SYSCALL:
        if (check_syscall(e) < 0) return -1;
        if ((uint64_t)g[REG_RAX] == SYS_rt_sigreturn) {
            /* runs in place (it never returns here); the context it restores resumes
             * with TF set, so its first instruction runs before the next trap */
            const ucontext_t *to = (const ucontext_t *)(uintptr_t)(uint64_t)g[REG_RSP];
            if (to->uc_mcontext.gregs[REG_EFL] & TF) S.after_kentry = (uint64_t)to->uc_mcontext.gregs[REG_RIP];
            S.epoch++;
            break;
        }
        pc__sys_back = e->rip + e->len;
        S.uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)pc__sys_stub;
        S.in_stub = 1;
        break;
    case CLS_KENTRY:
        S.after_kentry = e->rip + e->len;
        break;
    case CLS_ERROR:
    default:
        return hfail(HERR_UNKNOWN, e);
    }
    if ((e->flags & F_FENCE) && emit(PC_FENCE, 0, 0) < 0) return -1;
    return 0;
}

static void stop_stepping(ucontext_t *uc) {
    uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)TF;
    S.active = 0;
}

static void on_sigtrap_body(siginfo_t *si, ucontext_t *uc);

static void on_sigtrap(int sig, siginfo_t *si, void *ucv) {
    (void)sig;
    uint64_t t0 = __rdtsc();
    on_sigtrap_body(si, (ucontext_t *)ucv);
    S.handler_tsc += __rdtsc() - t0;
}

uint64_t pc__handler_tsc(void) { return S.handler_tsc; }

/* Starts a block at rip if at least two movable instructions follow (rip's included):
 * copies them to the block area with int3 after them, points RIP there and clears TF.
 * Returns 1 if it did. */
static int start_block(uint64_t rip, greg_t *g) {
    uint64_t cur = rip, sp = (uint64_t)g[REG_RSP];
    unsigned n = 0;
    size_t len = 0;
    int rsp_moved = 0, jcc = 0;
    uint64_t taken = 0;
    /* pushes write below rsp: only when the stack there is not pmem */
    int pushes_ok = !overlaps(sp - 8 * BLK_MAX_INSNS, 8 * BLK_MAX_INSNS);
    uint64_t room = S.budget ? (S.budget > S.traps ? S.budget - S.traps : 0) : UINT64_MAX;
    while (n < BLK_MAX_INSNS && n < room) {
        const pc_dentry *d = lookup(cur);
        if (d->movable & M_JMP) { /* nothing to copy: the run goes on at the target */
            cur = (uint64_t)d->disp;
            n++;
            continue;
        }
        if (d->movable & M_JCC) {
            if (len + 6 + 2 > BLK_MAX_BYTES) break;
            /* jcc rel32 to the second int3; the first int3 is the fall-through */
            uint8_t *j = S.blk + len;
            j[0] = 0x0f;
            j[1] = (uint8_t)(0x80 | (d->mreg & 15));
            int32_t rel = 1; /* over the fall-through int3 */
            memcpy(j + 2, &rel, 4);
            taken = (uint64_t)d->disp;
            cur += d->len;
            len += 6;
            n++;
            jcc = 1;
            break;
        }
        if (!(d->movable & M_YES) || len + d->len + 2 > BLK_MAX_BYTES) break;
        if ((d->movable & M_PUSH) && (rsp_moved || !pushes_ok)) break;
        if (d->movable & M_RSP) rsp_moved = 1;
        memcpy(S.blk + len, d->bytes, d->len);
        len += d->len;
        cur += d->len;
        n++;
    }
    if (n < 2) return 0;
    S.blk[len] = 0xcc; /* int3: the run ends (or its jcc was not taken) */
    S.in_block = 1;
    S.blk_end = (uint64_t)(uintptr_t)S.blk + len + 1;
    S.blk_resume = cur;
    S.blk_end2 = 0;
    if (jcc) {
        S.blk[len + 1] = 0xcc; /* the jcc taken */
        S.blk_end2 = (uint64_t)(uintptr_t)S.blk + len + 2;
        S.blk_resume2 = taken;
    }
    S.traps += n - 1;
    S.total += n - 1;
    S.blocks++;
    S.block_insns += n;
    g[REG_RIP] = (greg_t)(uintptr_t)S.blk;
    g[REG_EFL] &= ~(greg_t)TF;
    return 1;
}

void pc_set_block_stepping(int on) { S.blocks_off = !on || !S.blk; }
uint64_t pc_blocks_run(uint64_t *instructions) {
    if (instructions) *instructions = S.block_insns;
    return S.blocks;
}

static void on_sigtrap_body(siginfo_t *si, ucontext_t *uc) {
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP];
    if (!S.active || !tl_recording) {
        g[REG_EFL] &= ~(greg_t)TF;
        return;
    }
    S.uc = uc;
    int resumed = 0;
    if (S.in_block && (rip == S.blk_end || (S.blk_end2 && rip == S.blk_end2)) && si->si_code == SI_KERNEL) {
        /* the run's int3: go on at the instruction after it, as if its own trap had come */
        S.in_block = 0;
        rip = rip == S.blk_end ? S.blk_resume : S.blk_resume2;
        g[REG_RIP] = (greg_t)rip;
        g[REG_EFL] |= TF;
        resumed = 1;
    }
    if (S.capture && S.pending < S.nev && capture_pending() < 0) {
        hfail(HERR_DATAFULL, NULL);
        goto abort;
    }
    if ((S.mode == MODE_CALL && rip == (uint64_t)(uintptr_t)pc__tramp_ret) ||
        (S.mode == MODE_SS && rip == (uint64_t)(uintptr_t)pc__stop_entry)) {
        stop_stepping(uc);
        return;
    }
    if (!resumed && si->si_code != TRAP_TRACE) {
        S.herr_code = si->si_code;
        hfail(HERR_SIGNAL, NULL);
        goto abort;
    }
    S.traps++;
    S.total++;
    if (S.traps == 1 && S.mode == MODE_CALL) S.call_sp = (uint64_t)g[REG_RSP] + 8;
    if (S.budget && S.traps > S.budget) {
        hfail(HERR_BUDGET, NULL);
        goto abort;
    }
    if (S.in_stub) {
        /* back from pc__sys_stub: rcx holds the return address syscall would have put
         * there, had it run in place */
        S.in_stub = 0;
        if (rip == pc__sys_back) g[REG_RCX] = (greg_t)rip;
    }
    if (S.after_kentry) {
        /* The kernel returns from int/sysenter with TF set, so the instruction after
         * it ran before this trap: it must not have been one that makes events. */
        uint64_t next = S.after_kentry;
        S.after_kentry = 0;
        S.epoch++;
        if (rip != next) {
            pc_dentry *m = lookup(next);
            if (m->cls != CLS_NONE || (m->flags & F_FENCE)) {
                S.uc = uc;
                hfail(HERR_SYSCALL, m);
                S.herr_rip = next;
                goto abort;
            }
        }
    }
    if (!S.blocks_off && !S.in_block && !S.in_stub && start_block(rip, g)) return;
    pc_dentry *e = lookup(rip);
    S.cur_stack_valid = 0;
    S.cur_ldso = (e->flags & F_LDSO) != 0;
    if (step(e) < 0) goto abort;
    if (e->flags & F_EPOCH) {
        S.epoch++;
        /* the routine's own return into the trampoline: nothing after it is the
         * routine's, so stepping ends here rather than one trap later */
        if (S.mode == MODE_CALL && e->len && e->bytes[e->len - 1] == 0xc3 &&
            (uint64_t)g[REG_RSP] + 8 == S.call_sp &&
            *(const uint64_t *)(uintptr_t)(uint64_t)g[REG_RSP] == (uint64_t)(uintptr_t)pc__tramp_ret) {
            stop_stepping(uc);
            return;
        }
    }
    if (e->flags & F_SEGRELOAD) S.seg_valid = 0;
    return;
abort:
    if (S.mode == MODE_CALL) {
        S.active = 0;
        siglongjmp(S.jb, 1);
    }
    stop_stepping(uc);
}

/* ------------------------------------------------------------------ recording */

/* The handlers installed in the process when a recording starts, each replaced by
 * on_other_signal for the length of the call. */
#define PC_NSIG 65
static struct sigaction wrapped_sa[PC_NSIG];
static unsigned char wrapped[PC_NSIG];

/* Runs a handler that was installed before the recording with TF set, so that what it
 * executes is stepped and recorded like the routine (the kernel enters every handler
 * with TF clear). Off the recording thread, or when no call is recorded, it only calls
 * the handler. */
static void on_other_signal(int sig, siginfo_t *si, void *uc) {
    const struct sigaction *o = &wrapped_sa[sig];
    int stepping = S.active && tl_recording;
    uint64_t back = pc__sys_back, kentry = S.after_kentry;
    int stub = S.in_stub;
    if (stepping) {
        S.handlers_run++;
        S.last_handler_signal = sig;
        S.after_kentry = 0;
        S.in_stub = 0;
        S.epoch++;
        tf_on();
    }
    if (o->sa_flags & SA_SIGINFO) o->sa_sigaction(sig, si, uc);
    else if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) o->sa_handler(sig);
    if (stepping) {
        /* TF stays set to the end (the recorder keeps it set through popf); the
         * interrupted context's flags come back with rt_sigreturn */
        pc__sys_back = back;
        S.after_kentry = kentry;
        S.in_stub = stub;
        S.epoch++;
    }
}

static void wrap_handlers(void) {
    for (int sig = 1; sig < PC_NSIG; sig++) {
        wrapped[sig] = 0;
        if (sig == SIGTRAP || sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) < 0) continue;
        int has = (cur.sa_flags & SA_SIGINFO) ? cur.sa_sigaction != NULL
                                              : (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);
        if (!has) continue;
        struct sigaction w = cur;
        w.sa_sigaction = on_other_signal;
        w.sa_flags = (cur.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
        sigdelset(&w.sa_mask, SIGTRAP);
        wrapped_sa[sig] = cur;
        if (sigaction(sig, &w, NULL) == 0) wrapped[sig] = 1;
    }
}

static void unwrap_handlers(void) {
    for (int sig = 1; sig < PC_NSIG; sig++)
        if (wrapped[sig]) {
            sigaction(sig, &wrapped_sa[sig], NULL);
            wrapped[sig] = 0;
        }
}

static int install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigtrap;
    sa.sa_flags = SA_SIGINFO;
    /* no other handler may run inside this one (they are stepped themselves) */
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGTRAP, &sa, &S.old_sa) < 0) {
        pc__set_error("cannot install the SIGTRAP handler: %s", strerror(errno));
        return -1;
    }
    sigset_t un;
    sigemptyset(&un);
    sigaddset(&un, SIGTRAP);
    sigprocmask(SIG_UNBLOCK, &un, &S.old_mask);
    wrap_handlers();
    return 0;
}

static void uninstall(void) {
    unwrap_handlers();
    sigaction(SIGTRAP, &S.old_sa, NULL);
    sigprocmask(SIG_SETMASK, &S.old_mask, NULL);
}

static void describe(uint64_t rip, char *out, size_t n) {
    Dl_info di;
    memset(&di, 0, sizeof di);
    if (dladdr((void *)(uintptr_t)rip, &di) && di.dli_fname) {
        const char *lib = strrchr(di.dli_fname, '/');
        lib = lib ? lib + 1 : di.dli_fname;
        if (!*lib) lib = "main program";
        if (di.dli_sname && di.dli_saddr)
            snprintf(out, n, "%s+0x%llx (%s)", di.dli_sname, (unsigned long long)(rip - (uint64_t)(uintptr_t)di.dli_saddr),
                     lib);
        else
            snprintf(out, n, "%s+0x%llx", lib, (unsigned long long)(rip - (uint64_t)(uintptr_t)di.dli_fbase));
    } else {
        snprintf(out, n, "unknown code");
    }
}

/* Turns the handler's error into the message. */
static void report_herr(void) {
    char text[160] = "", where[512];
    if (S.herr_nbytes) pc_decode_text(S.herr_rip, S.herr_bytes, S.herr_nbytes, text, sizeof text);
    describe(S.herr_rip, where, sizeof where);
    unsigned long long rip = (unsigned long long)S.herr_rip;
    switch (S.herr) {
    case HERR_BUDGET:
        pc__set_error("instruction budget of %llu exceeded", (unsigned long long)S.budget);
        break;
    case HERR_DECODE:
        pc__set_error("cannot decode '%s' at 0x%llx: %s which writes persistent memory", text, rip, where);
        break;
    case HERR_UNKNOWN:
        pc__set_error("cannot decode '%s' at 0x%llx: %s which may write persistent memory", text, rip, where);
        break;
    case HERR_EVFULL:
        pc__set_error("event buffer full (%llu events) at 0x%llx: %s", (unsigned long long)EV_CAP, rip, where);
        break;
    case HERR_DATAFULL:
        pc__set_error("data capture buffer full (%llu bytes) at 0x%llx: %s", (unsigned long long)DATA_CAP, rip, where);
        break;
    case HERR_STACKFULL:
        pc__set_error("stack table full (%llu stacks) at 0x%llx: %s", (unsigned long long)STK_CAP, rip, where);
        break;
    case HERR_XSAVE:
        pc__set_error("cannot read the mask or vector register of '%s' at 0x%llx: %s from the signal frame", text, rip,
                      where);
        break;
    case HERR_SIGNAL:
        pc__set_error("unexpected SIGTRAP (si_code %ld) at 0x%llx: %s while stepping (a breakpoint in the routine?)",
                      S.herr_code, rip, where);
        break;
    case HERR_SYSCALL:
        pc__set_error("'%s' at 0x%llx: %s ran unobserved right after an int/sysenter and may write persistent memory or fence",
                      text, rip, where);
        break;
    case HERR_EXIT:
        pc__set_error("the routine ended the process ('%s', status %ld) at 0x%llx: %s during the recorded call", text,
                      S.herr_code, rip, where);
        break;
    case HERR_TRAPDISP:
        pc__set_error("the routine changes the disposition of SIGTRAP ('%s' at 0x%llx: %s), which the recorder steps with",
                      text, rip, where);
        break;
    case HERR_TRAPMASK:
        pc__set_error("the routine blocks SIGTRAP ('%s' at 0x%llx: %s), which the recorder steps with", text, rip, where);
        break;
    case HERR_SIGACTION:
        pc__set_error("the routine installs a handler for SIG%s ('%s' at 0x%llx: %s) during the recorded call: it would "
                      "run unrecorded", sigabbrev_np((int)S.herr_code) ? sigabbrev_np((int)S.herr_code) : "?", text, rip,
                      where);
        break;
    default:
        pc__set_error("recording failed at 0x%llx", rip);
    }
    switch (S.herr) {
    case HERR_BUDGET: S.err_kind = PC_ERR_BUDGET; break;
    case HERR_DECODE: case HERR_UNKNOWN: case HERR_XSAVE: case HERR_SYSCALL: S.err_kind = PC_ERR_UNRECORDABLE; break;
    case HERR_EVFULL: case HERR_DATAFULL: case HERR_STACKFULL: case HERR_DCFULL: S.err_kind = PC_ERR_CAPACITY; break;
    case HERR_EXIT: S.err_kind = PC_ERR_EXIT; break;
    case HERR_SIGNAL: case HERR_TRAPDISP: case HERR_TRAPMASK: case HERR_SIGACTION: S.err_kind = PC_ERR_SIGNALS; break;
    default: S.err_kind = PC_ERR_OTHER;
    }
}

static int begin_recording(int mode) {
    if (pc_init() < 0) return -1;
    if (__atomic_test_and_set(&S.busy, __ATOMIC_ACQUIRE)) {
        pc__set_error("already recording (the recorder records one call at a time, on one thread)");
        return -1;
    }
    if (install() < 0) {
        __atomic_clear(&S.busy, __ATOMIC_RELEASE);
        return -1;
    }
    S.mode = mode;
    S.traps = 0;
    S.herr = HERR_NONE;
    S.seg_valid = 0;
    S.after_kentry = 0;
    S.in_stub = 0;
    S.handlers_run = 0;
    S.in_block = 0;
    tl_recording = 1;
    S.pending = S.nev;
    S.epoch++;
    return 0;
}

static int end_recording(void) {
    S.active = 0;
    tl_recording = 0;
    int rc = 0;
    if (S.capture && S.pending < S.nev && capture_pending() < 0 && !S.herr) {
        S.herr = HERR_DATAFULL;
        S.herr_rip = 0;
        S.herr_nbytes = 0;
    }
    S.pending = S.nev;
    S.mode = MODE_IDLE;
    uninstall();
    __atomic_clear(&S.busy, __ATOMIC_RELEASE);
    if (S.herr) {
        report_herr();
        rc = -1;
    }
    return rc;
}

static int record(void *fn, void *a, const void *b, size_t c) {
    if (!fn) {
        pc__set_error("no function to record");
        return -1;
    }
    if (begin_recording(MODE_CALL) < 0) return -1;
    S.active = 1;
    if (sigsetjmp(S.jb, 1) == 0) pc__tramp(fn, a, b, c);
    return end_recording();
}

int pc_record_call3(pc_fn3 fn, void *dst, const void *src, size_t n) { return record((void *)fn, dst, src, n); }

int pc_record_ctx(pc_fn_ctx fn, void *ctx) { return record((void *)fn, ctx, NULL, 0); }

int pc__start_prepare(void) {
    if (begin_recording(MODE_SS) < 0) return -1;
    S.active = 1;
    return 0;
}

int pc__stop_finish(void) {
    if (S.mode != MODE_SS) {
        pc__set_error("powercut_stop without powercut_start");
        return -1;
    }
    return end_recording();
}

#endif /* __linux__ && __x86_64__ */
