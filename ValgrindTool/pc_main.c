/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * powercut's Valgrind tool: records what a whole program does to persistent memory
 * (stores with their bytes, non-temporal stores, clflush, fences, ops, marks, every
 * thread, stacks) into a powercut binary trace, through the shared trace encoder.
 *
 * Run by `powercut run`, which reads the trace and checks it. Files it writes, each
 * with ".PID" appended (a program that execs another keeps its PID, and the new
 * image's trace replaces the old one's; a child started with fork + exec writes its
 * own files, which powercut run leaves aside):
 *   --events=PATH  the event records and the END record (binary form, no header)
 *   --head=PATH    magic, version and header records (written at exit: modules are
 *                  known only then); the trace is head followed by events
 *   --notes=PATH   one line per thing the user must know ("error ..." / "warning ...")
 */
#include "pub_tool_basics.h"
#include "pub_tool_tooliface.h"
#include "pub_tool_libcassert.h"
#include "pub_tool_libcprint.h"
#include "pub_tool_libcbase.h"
#include "pub_tool_libcfile.h"
#include "pub_tool_mallocfree.h"
#include "pub_tool_options.h"
#include "pub_tool_machine.h"
#include "pub_tool_threadstate.h"
#include "pub_tool_stacktrace.h"
#include "pub_tool_debuginfo.h"
#include "pub_tool_clientstate.h"
#include "pub_tool_transtab.h"
#include "pub_tool_aspacemgr.h"
#include "pub_tool_xarray.h"
#include "pub_tool_vki.h"
#include "pub_tool_libcproc.h"
#include "pub_tool_vkiscnums.h"
#include "libvex_guest_amd64.h"
#include "valgrind.h"

#include "powercut_encoder.h"
#include "powercut.h"
#include "pc_insn.h"

#define PC_TOOL_VERSION "0.1.0"
#define MAX_FRAMES 32

/* ------------------------------------------------------------------ options */

static const HChar *opt_events, *opt_head, *opt_notes;
static Bool opt_count; /* --count-instructions=yes: for benchmarks */
static ULong g_instructions;
static XArray *opt_pmem_files; /* of HChar* */
typedef struct {
    HChar *name;
    int contract;
    int dst_arg, len_arg; /* 1-based integer argument positions */
    ULong calls;
} op_spec;
static XArray *opt_ops; /* of op_spec */

/* ------------------------------------------------------------------ notes */

static Int notes_fd = -1;

static void note(const HChar *level, const HChar *fmt, ...) PRINTF_CHECK(2, 3);
static void note(const HChar *level, const HChar *fmt, ...) {
    HChar line[1024];
    va_list vargs;
    va_start(vargs, fmt);
    Int n = VG_(snprintf)(line, sizeof line - 1, "%s ", level);
    n += VG_(vsnprintf)(line + n, sizeof line - 1 - n, fmt, vargs);
    va_end(vargs);
    if (n > (Int)sizeof line - 2) n = sizeof line - 2;
    for (Int i = 0; i < n; i++)
        if (line[i] == '\n') line[i] = ' ';
    line[n++] = '\n';
    if (notes_fd >= 0) VG_(write)(notes_fd, line, n);
    else VG_(umsg)("powercut: %s", line);
}

/* ------------------------------------------------------------------ output */

/* 1 MiB: the events are written 1 MiB at a time. With a 4 MiB buffer the same bytes
 * cost five times the system time (0.58 s against 0.11 s for a 306 MB trace,
 * Benchmarks/run-valgrind.sh); 256 KiB to 2 MiB measured alike. */
static UChar ev_buf[1 << 20];
static pce_writer ev;
static Int events_fd = -1;
static Bool write_failed;
/* A forked child runs on with a copy of this state (see pc_fork_child). */
static Bool in_child, warned_fork;

static int fd_flush(void *ctx, const uint8_t *p, size_t n) {
    Int fd = *(Int *)ctx;
    while (n > 0) {
        Int k = VG_(write)(fd, p, n > (1 << 30) ? (1 << 30) : (Int)n);
        if (k <= 0) return -1;
        p += k;
        n -= k;
    }
    return 0;
}

static void check_writer(void) {
    if (ev.failed && !write_failed) {
        write_failed = True;
        note("error", "cannot write the trace: %s", pce_error(&ev));
    }
}

/* ------------------------------------------------------------------ pmem ranges */

typedef struct {
    Addr base;
    SizeT len;
    Bool vol;
} range;

#define MAX_RANGES 4096
static range ranges[MAX_RANGES];
static Int nranges;
/* The IR's quick test: a store at a may touch tracked memory iff a - g_lo < g_span. */
static ULong g_lo, g_span;

static void update_bounds(void) {
    if (nranges == 0) {
        g_lo = 0;
        g_span = 0;
        return;
    }
    Addr lo = ranges[0].base, hi = ranges[0].base + ranges[0].len;
    for (Int i = 1; i < nranges; i++) {
        if (ranges[i].base < lo) lo = ranges[i].base;
        if (ranges[i].base + ranges[i].len > hi) hi = ranges[i].base + ranges[i].len;
    }
    /* a store or line starting up to 64 bytes (the widest VEX store, a line) before */
    g_lo = lo >= 64 ? lo - 64 : 0;
    g_span = hi - g_lo;
}

static Bool overlaps_tracked(Addr a, SizeT n) {
    for (Int i = 0; i < nranges; i++)
        if (a < ranges[i].base + ranges[i].len && ranges[i].base < a + n) return True;
    return False;
}

static Bool inside_tracked(Addr a, SizeT n) {
    /* every byte of [a, a+n) in some range (ranges do not overlap) */
    Addr p = a, end = a + n;
    while (p < end) {
        Bool found = False;
        for (Int i = 0; i < nranges; i++)
            if (p >= ranges[i].base && p < ranges[i].base + ranges[i].len) {
                p = ranges[i].base + ranges[i].len;
                found = True;
                break;
            }
        if (!found) return False;
    }
    return True;
}

/* Ranges declared before the first event go into the header. */
typedef struct {
    Addr base;
    SizeT len;
    Bool vol;
    HChar *name;
} header_range;
static XArray *header_ranges;

/* ------------------------------------------------------------------ threads */

typedef struct {
    Addr ra, sp;
    ULong op; /* 0: a nested call (no op of its own) */
} call_frame;

typedef struct {
    Bool pending;   /* an event since this thread's last recorded fence */
    ULong open_op;  /* the op this thread has open (0: none) */
    Bool op_from_request;
    call_frame frames[64];
    Int nframes;
} thread_state;

static thread_state *threads;
static ULong next_op_id = 1;

static thread_state *thr(ThreadId tid) { return &threads[tid < VG_N_THREADS ? tid : 0]; }

/* ------------------------------------------------------------------ stacks */

typedef struct {
    UInt hash, id, n;
    Addr *frames;
} stack_entry;

static stack_entry *stack_table;
static UInt stack_cap, stack_count;

static UInt hash_frames(const Addr *f, UInt n) {
    UInt h = 2166136261u ^ n;
    for (UInt i = 0; i < n; i++) {
        h = (h ^ (UInt)f[i]) * 16777619u;
        h = (h ^ (UInt)(f[i] >> 32)) * 16777619u;
    }
    return h ? h : 1;
}

static void stack_grow(void) {
    UInt cap = stack_cap ? stack_cap * 2 : 4096;
    stack_entry *t = VG_(calloc)("pc.stacks", cap, sizeof *t);
    for (UInt i = 0; i < stack_cap; i++) {
        if (!stack_table[i].hash) continue;
        UInt j = stack_table[i].hash & (cap - 1);
        while (t[j].hash) j = (j + 1) & (cap - 1);
        t[j] = stack_table[i];
    }
    if (stack_table) VG_(free)(stack_table);
    stack_table = t;
    stack_cap = cap;
}

static UInt intern_stack(const Addr *f, UInt n) {
    if (stack_count * 2 >= stack_cap) stack_grow();
    UInt h = hash_frames(f, n);
    UInt j = h & (stack_cap - 1);
    while (stack_table[j].hash) {
        stack_entry *e = &stack_table[j];
        if (e->hash == h && e->n == n && VG_(memcmp)(e->frames, f, n * sizeof(Addr)) == 0) return e->id;
        j = (j + 1) & (stack_cap - 1);
    }
    stack_entry *e = &stack_table[j];
    e->hash = h;
    e->n = n;
    e->id = ++stack_count;
    e->frames = VG_(malloc)("pc.frames", n * sizeof(Addr));
    VG_(memcpy)(e->frames, f, n * sizeof(Addr));
    uint64_t fr[MAX_FRAMES];
    for (UInt i = 0; i < n; i++) fr[i] = f[i];
    pce_stack(&ev, e->id, fr, n);
    return e->id;
}

/* Stacks are cached by (instruction, stack pointer). A cached stack is reused only if
 * every return address it holds is still in its slot on the stack (the unwinder's
 * answer depends on nothing else), so a copy loop unwinds once per call of the loop's
 * function, not once per store. Valgrind's unwinder gives caller frames as the return
 * address - 1; the trace holds the return addresses themselves (as the in-process
 * recorder writes them; the symbolizer looks callers up at return address - 1). */
typedef struct {
    Addr ip, sp;
    UInt id, n; /* n = 0: empty, or a stack that cannot be checked (never reused) */
    Addr slot[MAX_FRAMES], ra[MAX_FRAMES];
} stack_cache_entry;
static stack_cache_entry stack_cache[1024];
static ULong unwinds; /* for --count-instructions */

static UInt stack_of(ThreadId tid, Addr ip) {
    Addr sp = VG_(get_SP)(tid);
    stack_cache_entry *c = &stack_cache[((ip >> 1) ^ (sp >> 3) * 31) & 1023];
    if (c->n && c->ip == ip && c->sp == sp) {
        UInt k = 1;
        while (k < c->n && *(const Addr *)c->slot[k] == c->ra[k]) k++;
        if (k == c->n) return c->id;
    }
    unwinds++;
    Addr ips[MAX_FRAMES], sps[MAX_FRAMES];
    UInt n = VG_(get_StackTrace)(tid, ips, MAX_FRAMES, sps, NULL, 0);
    if (n == 0) n = 1;
    ips[0] = ip;
    Bool checkable = True;
    for (UInt k = 1; k < n; k++) {
        /* the unwinder may go on past the program's first frame into stack words:
         * stop at the first return address outside client code */
        NSegment const *seg = VG_(am_find_nsegment)(ips[k]);
        if (!seg || !seg->hasX || (seg->kind != SkFileC && seg->kind != SkAnonC)) {
            n = k;
            break;
        }
        ips[k] += 1;
        Addr slot = sps[k] - sizeof(Addr);
        if (checkable && VG_(am_is_valid_for_client)(slot, sizeof(Addr), VKI_PROT_READ) && *(const Addr *)slot == ips[k]) {
            c->slot[k] = slot;
            c->ra[k] = ips[k];
        } else {
            checkable = False;
        }
    }
    UInt id = intern_stack(ips, n);
    c->ip = ip;
    c->sp = sp;
    c->id = id;
    c->n = checkable ? n : 0;
    return id;
}

/* The stack of the client-request or syscall point of thread tid. */
static UInt stack_here(ThreadId tid) { return stack_of(tid, VG_(get_IP)(tid)); }

/* ------------------------------------------------------------------ events */

static void begin_event(ThreadId tid) {
    pce_thread(&ev, tid > 0 ? tid - 1 : 0);
    thr(tid)->pending = True;
}

static void add_range(ThreadId tid, Addr base, SizeT len, Bool vol, const HChar *name, UInt stack) {
    if (nranges == MAX_RANGES) {
        note("error", "more than %d persistent-memory ranges at once; the range at 0x%lx is not tracked", MAX_RANGES, base);
        return;
    }
    ranges[nranges++] = (range){base, len, vol};
    update_bounds();
    if (ev.events == 0) {
        header_range h = {base, len, vol, name ? VG_(strdup)("pc.name", name) : NULL};
        VG_(addToXA)(header_ranges, &h);
        return;
    }
    begin_event(tid);
    pce_pmem(&ev, base, len, (const uint8_t *)name, name ? VG_(strlen)(name) : 0, vol, stack);
    check_writer();
}

/* --check-at-release=yes (the default): before a non-volatile range goes (and for every
 * one left at exit), a mark saying why and a durable assertion over the whole range, so
 * the checker reports every byte the program stored there and never made durable, with
 * the stacks of the stores that left it (pmemcheck's "stores not made persistent").
 * The checker's cost follows the lines at risk, not the range's length. */
static Bool opt_check_at_release = True;

static void assert_durable(Int i, const HChar *why, UInt stack) {
    if (!opt_check_at_release || ranges[i].vol) return;
    HChar text[200];
    VG_(snprintf)(text, sizeof text, "powercut: 0x%lx+0x%lx %s", ranges[i].base, ranges[i].len, why);
    pce_mark(&ev, (const uint8_t *)text, VG_(strlen)(text), stack);
    pce_durable(&ev, ranges[i].base, ranges[i].len, stack);
}

static void release_range(ThreadId tid, Int i, const HChar *why, UInt stack) {
    Addr base = ranges[i].base;
    SizeT len = ranges[i].len;
    begin_event(tid);
    assert_durable(i, why, stack);
    ranges[i] = ranges[--nranges];
    update_bounds();
    begin_event(tid);
    pce_pmem_release(&ev, base, len, stack);
    check_writer();
}

/* Releases the ranges inside [a, a+n); a range only partly inside stays tracked. */
static void release_inside(ThreadId tid, Addr a, SizeT n, const HChar *why) {
    for (Int i = 0; i < nranges;) {
        Addr b = ranges[i].base, e = ranges[i].base + ranges[i].len;
        if (b >= a && e <= a + n) {
            HChar because[64];
            VG_(snprintf)(because, sizeof because, "released by %s", why);
            release_range(tid, i, because, tid ? stack_here(tid) : 0);
            continue;
        }
        if (b < a + n && a < e)
            note("warning", "%s of 0x%lx+0x%lx covers only part of the tracked range 0x%lx+0x%lx; it stays tracked",
                 why, a, n, b, e - b);
        i++;
    }
}

static void mark(ThreadId tid, const HChar *text) {
    begin_event(tid);
    pce_mark(&ev, (const uint8_t *)text, VG_(strlen)(text), stack_here(tid));
    check_writer();
}

/* ------------------------------------------------------------------ helpers the IR calls */

static VG_REGPARM(3) void h_store(Addr a, HWord size_kind, Addr ip) {
    SizeT size = size_kind & 0xffff;
    if (!overlaps_tracked(a, size)) return;
    ThreadId tid = VG_(get_running_tid)();
    UInt st = stack_of(tid, ip);
    begin_event(tid);
    pce_store(&ev, (int)(size_kind >> 16), a, size, (const uint8_t *)a, st);
}

static VG_REGPARM(2) void h_flush(Addr ea, Addr ip) {
    Addr line = ea & ~(Addr)63;
    if (!overlaps_tracked(line, 64)) return;
    ThreadId tid = VG_(get_running_tid)();
    UInt st = stack_of(tid, ip);
    begin_event(tid);
    pce_writeback(&ev, PCE_CLFLUSH, ea, st);
}

static VG_REGPARM(2) void h_fence(HWord kind, Addr ip) {
    ThreadId tid = VG_(get_running_tid)();
    thread_state *t = thr(tid);
    if (!t->pending) return; /* nothing this thread did since its last fence: it changes nothing */
    UInt st = stack_of(tid, ip);
    pce_thread(&ev, tid > 0 ? tid - 1 : 0);
    pce_fence(&ev, (int)kind, st);
    t->pending = False;
}

static void h_unsupported(Addr ip, HWord kind) {
    const HChar *where = VG_(describe_IP)(VG_(current_DiEpoch)(), ip, NULL);
    note("unsupported", "%s at %s: stock Valgrind does not decode it and stops the program (SIGILL); "
         "`powercut record` or `powercut sweep` (the in-process recorder) runs that path",
         pc_insn_name((pc_insn_kind)kind), where);
}

/* ------------------------------------------------------------------ ops by symbol */

/* The return address of the innermost --op call of the running thread: the
 * superblock that starts there calls h_ret_site (an op ends when its call returns). */
static ULong g_watch_ra;

static void set_watch(ThreadId tid) {
    thread_state *t = thr(tid);
    g_watch_ra = t->nframes ? t->frames[t->nframes - 1].ra : 0;
}

static void h_op_entry(HWord spec_index, HWord dst, HWord len, HWord sp) {
    ThreadId tid = VG_(get_running_tid)();
    thread_state *t = thr(tid);
    op_spec *spec = VG_(indexXA)(opt_ops, spec_index);
    spec->calls++;
    Addr ra = 0;
    if (VG_(am_is_valid_for_client)(sp, 8, VKI_PROT_READ)) ra = *(Addr *)sp;
    if (t->nframes == 64) {
        note("warning", "calls of --op functions nest more than 64 deep in thread %u; deeper calls are not ops", tid - 1);
        return;
    }
    ULong id = 0;
    if (t->open_op == 0) {
        id = next_op_id++;
        t->open_op = id;
        t->op_from_request = False;
        UInt st = stack_of(tid, VG_(get_IP)(tid));
        begin_event(tid);
        pce_op_begin(&ev, id, dst, len, 0, 0, (const uint8_t *)spec->name, VG_(strlen)(spec->name),
                     spec->contract | PCE_CONTRACT_EXPLICIT, st);
        check_writer();
    }
    t->frames[t->nframes++] = (call_frame){ra, sp, id};
    set_watch(tid);
}

static VG_REGPARM(2) void h_ret_site(Addr ip, HWord sp) {
    ThreadId tid = VG_(get_running_tid)();
    thread_state *t = thr(tid);
    (void)ip;
    while (t->nframes > 0 && sp > t->frames[t->nframes - 1].sp) {
        call_frame f = t->frames[--t->nframes];
        if (f.op) {
            begin_event(tid);
            pce_op_end(&ev, f.op, stack_of(tid, ip));
            t->open_op = 0;
            check_writer();
        }
    }
    set_watch(tid);
}

/* ------------------------------------------------------------------ instrumentation */

static IRExpr *atom(IRSB *sb, IRType ty, IRExpr *e) {
    if (e->tag == Iex_RdTmp || e->tag == Iex_Const) return e;
    IRTemp t = newIRTemp(sb->tyenv, ty);
    addStmtToIRSB(sb, IRStmt_WrTmp(t, e));
    return IRExpr_RdTmp(t);
}

static const Int gpr_offset[16] = {
    offsetof(VexGuestAMD64State, guest_RAX), offsetof(VexGuestAMD64State, guest_RCX),
    offsetof(VexGuestAMD64State, guest_RDX), offsetof(VexGuestAMD64State, guest_RBX),
    offsetof(VexGuestAMD64State, guest_RSP), offsetof(VexGuestAMD64State, guest_RBP),
    offsetof(VexGuestAMD64State, guest_RSI), offsetof(VexGuestAMD64State, guest_RDI),
    offsetof(VexGuestAMD64State, guest_R8),  offsetof(VexGuestAMD64State, guest_R9),
    offsetof(VexGuestAMD64State, guest_R10), offsetof(VexGuestAMD64State, guest_R11),
    offsetof(VexGuestAMD64State, guest_R12), offsetof(VexGuestAMD64State, guest_R13),
    offsetof(VexGuestAMD64State, guest_R14), offsetof(VexGuestAMD64State, guest_R15),
};
/* Integer argument registers of the SysV ABI: rdi, rsi, rdx, rcx, r8, r9. */
static const Int arg_reg[6] = {7, 6, 2, 1, 8, 9};

static IRExpr *get_gpr(IRSB *sb, Int r) { return atom(sb, Ity_I64, IRExpr_Get(gpr_offset[r], Ity_I64)); }

static IRExpr *u64(ULong v) { return IRExpr_Const(IRConst_U64(v)); }

/* The exact address of a memory operand, from the guest registers. */
static IRExpr *ea_expr(IRSB *sb, const pc_ea *ea, Addr next_ip) {
    IRExpr *a = u64((ULong)ea->disp + (ea->rip_rel ? next_ip : 0));
    if (ea->base >= 0) a = atom(sb, Ity_I64, IRExpr_Binop(Iop_Add64, a, get_gpr(sb, ea->base)));
    if (ea->index >= 0) {
        IRExpr *ix = get_gpr(sb, ea->index);
        if (ea->scale > 1) ix = atom(sb, Ity_I64, IRExpr_Binop(Iop_Mul64, ix, u64(ea->scale)));
        a = atom(sb, Ity_I64, IRExpr_Binop(Iop_Add64, a, ix));
    }
    if (ea->addr32) a = atom(sb, Ity_I64, IRExpr_Binop(Iop_And64, a, u64(0xffffffffULL)));
    if (ea->seg) {
        Int off = ea->seg == 1 ? offsetof(VexGuestAMD64State, guest_FS_CONST) : offsetof(VexGuestAMD64State, guest_GS_CONST);
        a = atom(sb, Ity_I64, IRExpr_Binop(Iop_Add64, a, atom(sb, Ity_I64, IRExpr_Get(off, Ity_I64))));
    }
    return a;
}

/* a - g_lo < g_span, as an Ity_I1 atom. */
static IRExpr *near_tracked(IRSB *sb, IRExpr *addr) {
    IRExpr *lo = atom(sb, Ity_I64, IRExpr_Load(Iend_LE, Ity_I64, u64((ULong)(HWord)&g_lo)));
    IRExpr *span = atom(sb, Ity_I64, IRExpr_Load(Iend_LE, Ity_I64, u64((ULong)(HWord)&g_span)));
    IRExpr *d = atom(sb, Ity_I64, IRExpr_Binop(Iop_Sub64, addr, lo));
    return atom(sb, Ity_I1, IRExpr_Binop(Iop_CmpLT64U, d, span));
}

static void call(IRSB *sb, const HChar *name, void *fn, Int regparms, IRExpr **args, IRExpr *guard) {
    IRDirty *di = unsafeIRDirty_0_N(regparms, name, VG_(fnptr_to_fnentry)(fn), args);
    if (guard) di->guard = guard;
    addStmtToIRSB(sb, IRStmt_Dirty(di));
}

static void store_hook(IRSB *sb, IRExpr *addr, Int size, Int kind, Addr ip, IRExpr *extra_guard) {
    addr = atom(sb, Ity_I64, addr);
    IRExpr *g = near_tracked(sb, addr);
    if (extra_guard) {
        IRExpr *a = atom(sb, Ity_I64, IRExpr_Unop(Iop_1Uto64, g));
        IRExpr *b = atom(sb, Ity_I64, IRExpr_Unop(Iop_1Uto64, extra_guard));
        IRExpr *both = atom(sb, Ity_I64, IRExpr_Binop(Iop_And64, a, b));
        g = atom(sb, Ity_I1, IRExpr_Binop(Iop_CmpNE64, both, u64(0)));
    }
    call(sb, "pc_store", h_store, 3, mkIRExprVec_3(addr, u64(((ULong)kind << 16) | (ULong)size), u64(ip)), g);
}

static void fence_hook(IRSB *sb, Int kind, Addr ip) {
    call(sb, "pc_fence", h_fence, 2, mkIRExprVec_2(u64(kind), u64(ip)), NULL);
}

/* Unexpected fence statements are named once per address. */
static Addr warned_fence[64];
static Int nwarned_fence;

static op_spec *op_at(Addr ip, HWord *index) {
    if (!opt_ops || VG_(sizeXA)(opt_ops) == 0) return NULL;
    const HChar *fn;
    if (!VG_(get_fnname_if_entry)(VG_(current_DiEpoch)(), ip, &fn)) return NULL;
    for (Word i = 0; i < VG_(sizeXA)(opt_ops); i++) {
        op_spec *s = VG_(indexXA)(opt_ops, i);
        if (VG_(strcmp)(s->name, fn) == 0) {
            *index = i;
            return s;
        }
    }
    return NULL;
}

static IRSB *pc_instrument(VgCallbackClosure *closure, IRSB *in, const VexGuestLayout *layout,
                           const VexGuestExtents *vge, const VexArchInfo *archinfo_host, IRType gWordTy,
                           IRType hWordTy) {
    (void)closure; (void)layout; (void)vge; (void)archinfo_host; (void)gWordTy; (void)hWordTy;
    IRSB *sb = deepCopyIRSBExceptStmts(in);
    Int i = 0;
    while (i < in->stmts_used && in->stmts[i]->tag != Ist_IMark) addStmtToIRSB(sb, in->stmts[i++]);
    Addr ip = 0;
    Int ilen = 0;
    pc_insn ins;
    ins.kind = PI_OTHER;
    Bool first = True;
    for (; i < in->stmts_used; i++) {
        IRStmt *st = in->stmts[i];
        if (!st || st->tag == Ist_NoOp) continue;
        switch (st->tag) {
        case Ist_IMark: {
            ip = st->Ist.IMark.addr;
            ilen = st->Ist.IMark.len;
            pc_classify((const unsigned char *)ip, ilen, &ins);
            addStmtToIRSB(sb, st);
            if (first) {
                first = False;
                if (opt_count) {
                    /* g_instructions += the superblock's instructions (as if it ran to its end) */
                    ULong n = 0;
                    for (Int k = 0; k < in->stmts_used; k++) n += in->stmts[k]->tag == Ist_IMark;
                    IRExpr *old = atom(sb, Ity_I64, IRExpr_Load(Iend_LE, Ity_I64, u64((ULong)(HWord)&g_instructions)));
                    IRExpr *sum = atom(sb, Ity_I64, IRExpr_Binop(Iop_Add64, old, u64(n)));
                    addStmtToIRSB(sb, IRStmt_Store(Iend_LE, u64((ULong)(HWord)&g_instructions), sum));
                }
                if (VG_(sizeXA)(opt_ops) > 0) {
                    IRExpr *watch = atom(sb, Ity_I64, IRExpr_Load(Iend_LE, Ity_I64, u64((ULong)(HWord)&g_watch_ra)));
                    IRExpr *hit = atom(sb, Ity_I1, IRExpr_Binop(Iop_CmpEQ64, watch, u64(ip)));
                    call(sb, "pc_ret_site", h_ret_site, 2, mkIRExprVec_2(u64(ip), get_gpr(sb, 4)), hit);
                }
                HWord idx;
                op_spec *spec = op_at(ip, &idx);
                if (spec)
                    call(sb, "pc_op_entry", h_op_entry, 0,
                         mkIRExprVec_4(u64(idx), get_gpr(sb, arg_reg[spec->dst_arg - 1]),
                                       get_gpr(sb, arg_reg[spec->len_arg - 1]), get_gpr(sb, 4)),
                         NULL);
            }
            switch (ins.kind) {
            case PI_CLFLUSH: {
                IRExpr *ea = ea_expr(sb, &ins.ea, ip + ilen);
                call(sb, "pc_flush", h_flush, 2, mkIRExprVec_2(ea, u64(ip)), NULL);
                break;
            }
            case PI_SFENCE: fence_hook(sb, PCE_SFENCE, ip); break;
            case PI_MFENCE: fence_hook(sb, PCE_MFENCE, ip); break;
            case PI_CPUID: fence_hook(sb, PCE_FENCE, ip); break;
            default: break;
            }
            continue;
        }
        case Ist_Store: {
            addStmtToIRSB(sb, st);
            Int size = sizeofIRType(typeOfIRExpr(in->tyenv, st->Ist.Store.data));
            store_hook(sb, st->Ist.Store.addr, size, ins.kind == PI_NT ? PCE_NTSTORE : PCE_STORE, ip, NULL);
            continue;
        }
        case Ist_StoreG: {
            addStmtToIRSB(sb, st);
            IRStoreG *sg = st->Ist.StoreG.details;
            Int size = sizeofIRType(typeOfIRExpr(in->tyenv, sg->data));
            store_hook(sb, sg->addr, size, ins.kind == PI_NT ? PCE_NTSTORE : PCE_STORE, ip, sg->guard);
            continue;
        }
        case Ist_CAS: {
            addStmtToIRSB(sb, st);
            IRCAS *cas = st->Ist.CAS.details;
            Int size = sizeofIRType(typeOfIRExpr(in->tyenv, cas->dataLo)) * (cas->dataHi ? 2 : 1);
            store_hook(sb, cas->addr, size, PCE_STORE, ip, NULL);
            fence_hook(sb, PCE_FENCE, ip); /* a locked instruction or xchg with memory */
            continue;
        }
        case Ist_Dirty: {
            addStmtToIRSB(sb, st);
            IRDirty *d = st->Ist.Dirty.details;
            if ((d->mFx == Ifx_Write || d->mFx == Ifx_Modify) && d->mAddr && d->mSize > 0) {
                /* xsave, fxsave and the like: rare and possibly wider than the quick
                 * test's 64-byte margin, so the helper always decides */
                IRExpr *addr = atom(sb, Ity_I64, d->mAddr);
                IRExpr **args = mkIRExprVec_3(addr, u64(((ULong)PCE_STORE << 16) | (ULong)d->mSize), u64(ip));
                call(sb, "pc_store", h_store, 3, args, d->guard);
            }
            continue;
        }
        case Ist_MBE:
            addStmtToIRSB(sb, st);
            if (st->Ist.MBE.event == Imbe_Fence && ins.kind != PI_SFENCE && ins.kind != PI_MFENCE &&
                ins.kind != PI_LFENCE && ins.kind != PI_CPUID && ins.kind != PI_RDTSCP) {
                Bool seen = False;
                for (Int k = 0; k < nwarned_fence; k++) seen |= warned_fence[k] == ip;
                if (!seen && nwarned_fence < 64) {
                    warned_fence[nwarned_fence++] = ip;
                    note("warning", "a fence-like instruction at %s that powercut cannot classify is not recorded as a fence",
                         VG_(describe_IP)(VG_(current_DiEpoch)(), ip, NULL));
                }
            }
            continue;
        default:
            addStmtToIRSB(sb, st);
            continue;
        }
    }
    if (in->jumpkind == Ijk_NoDecode && in->next->tag == Iex_Const) {
        Addr bad = (Addr)in->next->Iex.Const.con->Ico.U64;
        pc_insn b;
        pc_classify((const unsigned char *)bad, 15, &b);
        if (b.kind == PI_CLWB || b.kind == PI_CLFLUSHOPT || b.kind == PI_EVEX)
            call(sb, "pc_unsupported", h_unsupported, 0, mkIRExprVec_2(u64(bad), u64(b.kind)), NULL);
    }
    return sb;
}

/* ------------------------------------------------------------------ client requests */

#define PMC_BASE VG_USERREQ_TOOL_BASE('P', 'C')
enum {
    PMC_REGISTER_PMEM_MAPPING = PMC_BASE,
    PMC_REGISTER_PMEM_FILE,
    PMC_REMOVE_PMEM_MAPPING,
    PMC_CHECK_IS_PMEM_MAPPING,
    PMC_PRINT_PMEM_MAPPINGS,
    PMC_DO_FLUSH,
    PMC_DO_FENCE,
    PMC_RESERVED1,
    PMC_WRITE_STATS,
    PMC_SET_CLEAN = PMC_BASE + 0x11,
    PMC_TX_FIRST = PMC_BASE + 0x12,
    PMC_TX_LAST = PMC_BASE + 0x1c,
    PMC_EMIT_LOG = PMC_BASE + 0x1e,
    PMC_DEEP_SYNC = PMC_BASE + 0x1f
};

/* Copies a client C string (at most n-1 bytes); False if it is not readable. */
static Bool client_string(Addr p, HChar *out, SizeT n) {
    SizeT i = 0;
    for (; i + 1 < n; i++) {
        if (((p + i) & 4095) == 0 || i == 0)
            if (!VG_(am_is_valid_for_client)(p + i, 1, VKI_PROT_READ)) return False;
        out[i] = ((const HChar *)p)[i];
        if (!out[i]) return True;
    }
    out[i] = 0;
    return True;
}

static Bool range_ok(Addr a, SizeT n) { return n > 0 && a + (n - 1) >= a; }

static Bool register_range(ThreadId tid, Addr a, SizeT n, Bool vol, const HChar *name, const HChar *who) {
    if (!range_ok(a, n)) {
        note("warning", "%s of 0x%lx+0x%lx ignored (an empty range or one past the end of memory)", who, a, n);
        return False;
    }
    if (inside_tracked(a, n)) return True; /* already tracked */
    if (overlaps_tracked(a, n)) {
        note("warning", "%s of 0x%lx+0x%lx overlaps a tracked range only in part; ignored", who, a, n);
        return False;
    }
    add_range(tid, a, n, vol, name, stack_here(tid));
    return True;
}

static Bool pc_client_request(ThreadId tid, UWord *arg, UWord *ret) {
    HChar text[4200];
    if (in_child && (VG_IS_TOOL_USERREQ('P', 'C', arg[0]) || VG_IS_TOOL_USERREQ('p', 'c', arg[0]))) {
        *ret = arg[0] == POWERCUT_VG_HELLO ? POWERCUT_VG_HELLO_ANSWER : 0;
        return True;
    }
    if (VG_IS_TOOL_USERREQ('P', 'C', arg[0])) {
        switch (arg[0]) {
        case PMC_REGISTER_PMEM_MAPPING:
            register_range(tid, arg[1], arg[2], False, NULL, "REGISTER_PMEM_MAPPING");
            *ret = 0;
            return True;
        case PMC_REGISTER_PMEM_FILE: {
            HChar link[64], path[4096];
            VG_(snprintf)(link, sizeof link, "/proc/self/fd/%d", (Int)arg[1]);
            Int n = VG_(readlink)(link, path, sizeof path - 1);
            if (n <= 0) VG_(strcpy)(path, "(unknown file)");
            else path[n] = 0;
            VG_(snprintf)(text, sizeof text, "pmemcheck REGISTER_PMEM_FILE %s at 0x%lx+0x%lx offset 0x%lx", path,
                          arg[2], arg[3], arg[4]);
            mark(tid, text);
            *ret = 0;
            return True;
        }
        case PMC_REMOVE_PMEM_MAPPING:
            release_inside(tid, arg[1], arg[2], "REMOVE_PMEM_MAPPING");
            *ret = 0;
            return True;
        case PMC_CHECK_IS_PMEM_MAPPING:
            *ret = range_ok(arg[1], arg[2]) && inside_tracked(arg[1], arg[2]) ? 1 : 0;
            return True;
        case PMC_PRINT_PMEM_MAPPINGS:
            for (Int i = 0; i < nranges; i++)
                VG_(umsg)("powercut: pmem range 0x%lx+0x%lx%s\n", ranges[i].base, ranges[i].len, ranges[i].vol ? " volatile" : "");
            *ret = 0;
            return True;
        case PMC_DO_FLUSH:
        case PMC_SET_CLEAN:
        case PMC_DEEP_SYNC:
            VG_(snprintf)(text, sizeof text, "pmemcheck %s 0x%lx+0x%lx",
                          arg[0] == PMC_DO_FLUSH ? "DO_FLUSH" : arg[0] == PMC_SET_CLEAN ? "SET_CLEAN" : "DEEP_SYNC",
                          arg[1], arg[2]);
            mark(tid, text);
            *ret = 0;
            return True;
        case PMC_DO_FENCE:
            mark(tid, "pmemcheck DO_FENCE");
            *ret = 0;
            return True;
        case PMC_EMIT_LOG: {
            Int n = VG_(snprintf)(text, sizeof text, "pmemcheck EMIT_LOG ");
            if (!client_string(arg[1], text + n, sizeof text - n)) VG_(strcpy)(text + n, "(unreadable string)");
            mark(tid, text);
            *ret = 0;
            return True;
        }
        default:
            *ret = 0; /* statistics and transactions: nothing to record */
            return True;
        }
    }
    if (!VG_IS_TOOL_USERREQ('p', 'c', arg[0])) return False;
    thread_state *t = thr(tid);
    switch (arg[0]) {
    case POWERCUT_VG_HELLO:
        *ret = POWERCUT_VG_HELLO_ANSWER;
        return True;
    case POWERCUT_VG_PMEM:
        *ret = register_range(tid, arg[1], arg[2], arg[3] != 0, NULL, "powercut_pmem") ? 0 : (UWord)-1;
        return True;
    case POWERCUT_VG_OP_BEGIN: {
        if (t->open_op) {
            note("error", "powercut_op_begin while op %llu is open in thread %u (ops of one thread do not nest)",
                 t->open_op, tid - 1);
            *ret = (UWord)-1;
            return True;
        }
        Bool named = arg[3] != 0 && client_string(arg[3], text, 4096) && text[0];
        ULong id = next_op_id++;
        t->open_op = id;
        t->op_from_request = True;
        begin_event(tid);
        pce_op_begin(&ev, id, arg[1], arg[2], 0, 0, named ? (const uint8_t *)text : NULL, named ? VG_(strlen)(text) : 0,
                     (int)arg[4] | PCE_CONTRACT_EXPLICIT, stack_here(tid));
        check_writer();
        *ret = (UWord)id;
        return True;
    }
    case POWERCUT_VG_OP_END:
        if (!t->open_op || !t->op_from_request) {
            note("error", "powercut_op_end with no op open in thread %u", tid - 1);
            *ret = (UWord)-1;
            return True;
        }
        begin_event(tid);
        pce_op_end(&ev, t->open_op, stack_here(tid));
        t->open_op = 0;
        check_writer();
        *ret = 0;
        return True;
    case POWERCUT_VG_DURABLE:
        if (!range_ok(arg[1], arg[2])) {
            *ret = (UWord)-1;
            return True;
        }
        begin_event(tid);
        pce_durable(&ev, arg[1], arg[2], stack_here(tid));
        check_writer();
        *ret = 0;
        return True;
    case POWERCUT_VG_MARK:
        if (!client_string(arg[1], text, 4096) || !text[0]) {
            *ret = (UWord)-1;
            return True;
        }
        mark(tid, text);
        *ret = 0;
        return True;
    case POWERCUT_VG_RESET:
        while (nranges > 0) release_range(tid, nranges - 1, "released by powercut_reset", stack_here(tid));
        *ret = 0;
        return True;
    default:
        return False;
    }
}

/* ------------------------------------------------------------------ syscalls */

static ULong pmem_file_maps;

static Bool is_pmem_file(Int fd, const HChar **which) {
    if (!opt_pmem_files || fd < 0) return False;
    struct vg_stat st;
    if (VG_(fstat)(fd, &st) != 0) return False;
    for (Word i = 0; i < VG_(sizeXA)(opt_pmem_files); i++) {
        const HChar *path = *(HChar **)VG_(indexXA)(opt_pmem_files, i);
        struct vg_stat ps;
        if (sr_isError(VG_(stat)(path, &ps))) continue;
        if (ps.dev == st.dev && ps.ino == st.ino) {
            *which = path;
            return True;
        }
    }
    return False;
}

static void pc_pre_syscall(ThreadId tid, UInt no, UWord *args, UInt nargs) {
    (void)nargs;
    if (no == __NR_munmap && nranges > 0) release_inside(tid, args[0], args[1], "munmap");
    if (no == __NR_mremap && nranges > 0 && overlaps_tracked(args[0], args[1]))
        note("warning", "mremap of 0x%lx+0x%lx moves tracked persistent memory; powercut does not follow it", args[0], args[1]);
}

static void pc_post_syscall(ThreadId tid, UInt no, UWord *args, UInt nargs, SysRes res) {
    (void)nargs;
    if (no != __NR_mmap || sr_isError(res)) return;
    if (args[3] & VKI_MAP_ANONYMOUS) return;
    const HChar *path;
    if (!is_pmem_file((Int)args[4], &path)) return;
    SizeT len = (args[1] + 4095) & ~(SizeT)4095;
    pmem_file_maps++;
    register_range(tid, sr_Res(res), len, False, path, "mmap of a --pmem-file");
}

/* Memory the kernel (a system call) or Valgrind's core (a signal frame) wrote: the
 * program's own instructions did not, so the tool cannot tell how; recorded as cached
 * stores of what was written, with a warning the first time. */
static Bool warned_kernel_write;

static void pc_post_mem_write(CorePart part, ThreadId tid, Addr a, SizeT size) {
    if (size == 0 || !overlaps_tracked(a, size)) return;
    if (!warned_kernel_write) {
        warned_kernel_write = True;
        note("warning", "%s wrote tracked memory at 0x%lx+0x%lx; such writes are recorded as cached stores "
             "(the kernel's copy is not seen instruction by instruction)",
             part == Vg_CoreSysCall ? "a system call" : "Valgrind's core (e.g. a signal frame)", a, size);
    }
    UInt st = tid ? stack_here(tid) : 0;
    for (SizeT off = 0; off < size; off += PCE_MAX_STORE) {
        SizeT n = size - off < PCE_MAX_STORE ? size - off : PCE_MAX_STORE;
        begin_event(tid);
        pce_store(&ev, PCE_STORE, a + off, n, (const uint8_t *)(a + off), st);
    }
    check_writer();
}

/* A forked child runs on under Valgrind with a copy of the tool's state: it records
 * nothing (the parent owns the trace files) and writes nothing at exit. */
static void pc_fork_parent(ThreadId tid) {
    (void)tid;
    if (!warned_fork) {
        warned_fork = True;
        note("warning", "the program forked; only the parent process is recorded");
    }
}

static void pc_fork_child(ThreadId tid) {
    (void)tid;
    in_child = True;
    nranges = 0;
    update_bounds();
    ev.failed = 1; /* the parent flushes what was buffered before the fork */
    write_failed = True;
    notes_fd = -1;
}

/* ------------------------------------------------------------------ threads, signals */

static void pc_start_client_code(ThreadId tid, ULong blocks) {
    (void)blocks;
    set_watch(tid);
}


/* ------------------------------------------------------------------ module map */

/* Reads what the symbolizer needs from an ELF file: the page-aligned address of the
 * first loadable segment, the span of the loadable segments, the GNU build-id. */
static Bool elf_info(const HChar *path, ULong *link_base, ULong *span, HChar *build_id) {
    build_id[0] = 0;
    SysRes r = VG_(open)(path, VKI_O_RDONLY, 0);
    if (sr_isError(r)) return False;
    Int fd = sr_Res(r);
    UChar eh[64];
    Bool ok = False;
    if (VG_(read)(fd, eh, 64) == 64 && eh[0] == 0x7f && eh[1] == 'E' && eh[4] == 2 && eh[5] == 1) {
        ULong phoff = *(ULong *)(eh + 32);
        UShort phentsize = *(UShort *)(eh + 54), phnum = *(UShort *)(eh + 56);
        ULong lo = ~0ULL, hi = 0;
        if (phentsize == 56 && phnum > 0 && phnum < 256) {
            UChar ph[56 * 255];
            VG_(lseek)(fd, phoff, VKI_SEEK_SET);
            if (VG_(read)(fd, ph, phentsize * phnum) == phentsize * phnum) {
                for (Int i = 0; i < phnum; i++) {
                    UChar *p = ph + i * 56;
                    UInt type = *(UInt *)p;
                    ULong off = *(ULong *)(p + 8), vaddr = *(ULong *)(p + 16), filesz = *(ULong *)(p + 32),
                          memsz = *(ULong *)(p + 40);
                    if (type == 1) { /* PT_LOAD */
                        if (vaddr < lo) lo = vaddr;
                        if (vaddr + memsz > hi) hi = vaddr + memsz;
                    } else if (type == 4 && !build_id[0] && filesz < 4096) { /* PT_NOTE */
                        UChar notes[4096];
                        VG_(lseek)(fd, off, VKI_SEEK_SET);
                        if (VG_(read)(fd, notes, filesz) == (Int)filesz) {
                            ULong o = 0;
                            while (o + 12 <= filesz) {
                                UInt namesz = *(UInt *)(notes + o), descsz = *(UInt *)(notes + o + 4),
                                     ntype = *(UInt *)(notes + o + 8);
                                ULong name_off = o + 12, desc_off = name_off + ((namesz + 3) & ~3u);
                                ULong next = desc_off + ((descsz + 3) & ~3u);
                                if (desc_off + descsz > filesz) break;
                                if (ntype == 3 && namesz == 4 && VG_(memcmp)(notes + name_off, "GNU", 4) == 0 &&
                                    descsz > 0 && descsz <= 64) {
                                    static const HChar hx[] = "0123456789abcdef";
                                    for (UInt k = 0; k < descsz; k++) {
                                        build_id[2 * k] = hx[notes[desc_off + k] >> 4];
                                        build_id[2 * k + 1] = hx[notes[desc_off + k] & 15];
                                    }
                                    build_id[2 * descsz] = 0;
                                    break;
                                }
                                if (next <= o) break;
                                o = next;
                            }
                        }
                    }
                }
                if (lo < hi) {
                    *link_base = lo & ~4095ULL;
                    *span = ((hi + 4095) & ~4095ULL) - *link_base;
                    ok = True;
                }
            }
        }
    }
    VG_(close)(fd);
    return ok;
}

static void write_modules(pce_writer *w) {
    for (const DebugInfo *di = VG_(next_DebugInfo)(NULL); di; di = VG_(next_DebugInfo)(di)) {
        const HChar *path = VG_(DebugInfo_get_filename)(di);
        if (!path || !*path) continue;
        NSegment const *seg = VG_(am_find_nsegment)(VG_(DebugInfo_get_text_avma)(di));
        if (!seg || seg->kind != SkFileC) continue; /* Valgrind's own (this tool) */
        ULong link_base, span;
        HChar build_id[130];
        if (!elf_info(path, &link_base, &span, build_id)) continue;
        ULong base = (ULong)VG_(DebugInfo_get_text_bias)(di) + link_base;
        pce_module(w, (const uint8_t *)path, VG_(strlen)(path), base, span, build_id[0] ? build_id : NULL);
    }
}

/* ------------------------------------------------------------------ start and end */

static Bool pc_process_cmd_line_option(const HChar *arg) {
    const HChar *v;
    if (VG_STR_CLO(arg, "--events", opt_events)) return True;
    if (VG_BOOL_CLO(arg, "--count-instructions", opt_count)) return True;
    if (VG_STR_CLO(arg, "--head", opt_head)) return True;
    if (VG_BOOL_CLO(arg, "--check-at-release", opt_check_at_release)) return True;
    if (VG_STR_CLO(arg, "--notes", opt_notes)) return True;
    if (VG_STR_CLO(arg, "--pmem-file", v)) {
        HChar *copy = VG_(strdup)("pc.opt", v);
        VG_(addToXA)(opt_pmem_files, &copy);
        return True;
    }
    if (VG_STR_CLO(arg, "--op", v)) {
        /* SYMBOL[=CONTRACT][:DST:LEN] */
        HChar *s = VG_(strdup)("pc.opt", v);
        op_spec spec = {s, PCE_FLUSHCACHE, 1, 3, 0};
        HChar *colon = VG_(strchr)(s, ':');
        if (colon) {
            *colon = 0;
            HChar *second = VG_(strchr)(colon + 1, ':');
            if (!second) VG_(fmsg_bad_option)(arg, "expected SYMBOL[=CONTRACT][:DST:LEN] with argument positions 1-6\n");
            *second = 0;
            spec.dst_arg = (int)VG_(strtoll10)(colon + 1, NULL);
            spec.len_arg = (int)VG_(strtoll10)(second + 1, NULL);
            if (spec.dst_arg < 1 || spec.dst_arg > 6 || spec.len_arg < 1 || spec.len_arg > 6)
                VG_(fmsg_bad_option)(arg, "argument positions are 1 to 6 (the integer registers)\n");
        }
        HChar *eq = VG_(strchr)(s, '=');
        if (eq) {
            *eq = 0;
            if (VG_(strcmp)(eq + 1, "flushcache") == 0) spec.contract = PCE_FLUSHCACHE;
            else if (VG_(strcmp)(eq + 1, "persist") == 0) spec.contract = PCE_PERSIST;
            else if (VG_(strcmp)(eq + 1, "none") == 0) spec.contract = PCE_NONE;
            else VG_(fmsg_bad_option)(arg, "the contract is flushcache, persist or none\n");
        }
        if (!*s) VG_(fmsg_bad_option)(arg, "name a function\n");
        VG_(addToXA)(opt_ops, &spec);
        return True;
    }
    return False;
}

static void pc_print_usage(void) {
    VG_(printf)("    --events=PATH --head=PATH --notes=PATH   where the trace goes (set by powercut run)\n"
                "    --pmem-file=PATH            every mapping of this file is persistent memory\n"
                "    --op=SYMBOL[=CONTRACT][:DST:LEN]  every call of SYMBOL is an op\n"
                "    --check-at-release=yes|no   assert a range durable when it is unmapped and at exit [yes]\n");
}

static void pc_print_debug_usage(void) {}

static Int open_out(const HChar *prefix) {
    HChar path[4200];
    VG_(snprintf)(path, sizeof path, "%s.%d", prefix, VG_(getpid)());
    SysRes r = VG_(open)(path, VKI_O_WRONLY | VKI_O_CREAT | VKI_O_TRUNC, 0600);
    if (sr_isError(r)) {
        VG_(fmsg)("powercut: cannot create %s\n", path);
        VG_(exit)(1);
    }
    return sr_Res(r);
}

static void pc_post_clo_init(void) {
    if (!opt_events || !opt_head) {
        VG_(fmsg)("powercut: this tool is run by `powercut run` (it needs --events= and --head=)\n");
        VG_(exit)(1);
    }
    if (opt_notes) notes_fd = open_out(opt_notes);
    events_fd = open_out(opt_events);
    pce_init(&ev, PCE_BINARY, ev_buf, sizeof ev_buf, fd_flush, &events_fd);
    threads = VG_(calloc)("pc.threads", VG_N_THREADS, sizeof *threads);
    /* A call must start a superblock at its target: ops by symbol are found there. */
    VG_(clo_vex_control).guest_chase = False;
    VG_(atfork)(NULL, pc_fork_parent, pc_fork_child);
}

static void pc_fini(Int exitcode) {
    if (in_child) return;
    /* ops a thread never returned from (exit or longjmp inside) */
    for (UInt tid = 0; tid < VG_N_THREADS; tid++) {
        thread_state *t = &threads[tid];
        if (!t->open_op) continue;
        note("warning", "op %llu of thread %u was still open at exit; it is closed at the end of the trace",
             t->open_op, tid > 0 ? tid - 1 : 0);
        pce_thread(&ev, tid > 0 ? tid - 1 : 0);
        static const char why[] = "powercut: the program exited inside this op";
        pce_mark(&ev, (const uint8_t *)why, sizeof why - 1, 0);
        pce_op_end(&ev, t->open_op, 0);
    }
    /* what the program left at risk in the memory it still had mapped */
    if (opt_check_at_release && nranges > 0) {
        pce_thread(&ev, 0);
        for (Int i = 0; i < nranges; i++) assert_durable(i, "still mapped at program exit", 0);
    }
    for (Word i = 0; i < VG_(sizeXA)(opt_ops); i++) {
        op_spec *spec = VG_(indexXA)(opt_ops, i);
        if (spec->calls == 0)
            note("warning", "--op %s: the program never called it (no function of that name ran; check the spelling, "
                 "or whether the compiler inlined it)", spec->name);
    }
    if (VG_(sizeXA)(opt_pmem_files) > 0 && pmem_file_maps == 0)
        note("warning", "--pmem-file: the program never mapped %s", *(HChar **)VG_(indexXA)(opt_pmem_files, 0));
    pce_finish(&ev);
    check_writer();
    VG_(close)(events_fd);

    static UChar head_buf[1 << 16];
    Int head_fd = open_out(opt_head);
    pce_writer h;
    pce_init(&h, PCE_BINARY, head_buf, sizeof head_buf, fd_flush, &head_fd);
    pce_begin(&h);
    static const char rec[] = "powercut-valgrind " PC_TOOL_VERSION;
    pce_meta(&h, (const uint8_t *)"recorder", 8, (const uint8_t *)rec, sizeof rec - 1);
    HChar prog[4096];
    Int n = VG_(snprintf)(prog, sizeof prog, "%s", VG_(args_the_exename) ? VG_(args_the_exename) : "?");
    for (Word i = 0; VG_(args_for_client) && i < VG_(sizeXA)(VG_(args_for_client)) && n < (Int)sizeof prog - 2; i++)
        n += VG_(snprintf)(prog + n, sizeof prog - n, " %s", *(HChar **)VG_(indexXA)(VG_(args_for_client), i));
    pce_meta(&h, (const uint8_t *)"program", 7, (const uint8_t *)prog, VG_(strlen)(prog));
    HChar status[32];
    VG_(snprintf)(status, sizeof status, "%d", exitcode);
    pce_meta(&h, (const uint8_t *)"exit-status", 11, (const uint8_t *)status, VG_(strlen)(status));
    for (Word i = 0; i < VG_(sizeXA)(header_ranges); i++) {
        header_range *r = VG_(indexXA)(header_ranges, i);
        pce_pmem(&h, r->base, r->len, (const uint8_t *)r->name, r->name ? VG_(strlen)(r->name) : 0, r->vol, 0);
    }
    write_modules(&h);
    if (pce_flush(&h) < 0) note("error", "cannot write the trace header: %s", pce_error(&h));
    VG_(close)(head_fd);
    if (opt_count) note("info", "instructions %llu unwinds %llu", g_instructions, unwinds);
    if (notes_fd >= 0) VG_(close)(notes_fd);
}

static void pc_pre_clo_init(void) {
    VG_(details_name)("powercut");
    VG_(details_version)(PC_TOOL_VERSION);
    VG_(details_description)("records what a program does to persistent memory");
    VG_(details_copyright_author)("powercut authors; GPL-2.0-or-later");
    VG_(details_bug_reports_to)("the powercut project");
    VG_(basic_tool_funcs)(pc_post_clo_init, pc_instrument, pc_fini);
    VG_(needs_command_line_options)(pc_process_cmd_line_option, pc_print_usage, pc_print_debug_usage);
    VG_(needs_client_requests)(pc_client_request);
    VG_(needs_syscall_wrapper)(pc_pre_syscall, pc_post_syscall);
    VG_(track_start_client_code)(pc_start_client_code);
    VG_(track_post_mem_write)(pc_post_mem_write);
    opt_pmem_files = VG_(newXA)(VG_(malloc), "pc.files", VG_(free), sizeof(HChar *));
    opt_ops = VG_(newXA)(VG_(malloc), "pc.ops", VG_(free), sizeof(op_spec));
    header_ranges = VG_(newXA)(VG_(malloc), "pc.hdr", VG_(free), sizeof(header_range));
}

VG_DETERMINE_INTERFACE_VERSION(pc_pre_clo_init)
