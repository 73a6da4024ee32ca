/*
 * Self-test of the recorder's C core: records small hand-written routines and checks
 * the exact events (kind, address, size, order), then benchmarks stepping.
 *
 * Build and run: Tools/recorder-selftest/run.sh  (last line: "N passed, M failed").
 */
#define _GNU_SOURCE
#include "../../Sources/CPowercutRecorder/pc_internal.h"
#include "powercut.h"
#include "powercut_recorder.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <x86intrin.h>

static int passed, failed, skipped;

static void ok(const char *name) {
    passed++;
    printf("ok    %s\n", name);
}
static void fail(const char *name, const char *fmt, ...) {
    va_list ap;
    failed++;
    printf("FAIL  %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}
static void skip(const char *name, const char *why) {
    skipped++;
    printf("skip  %s: %s\n", name, why);
}

/* ------------------------------------------------------------------ routines */

#define FN(n) ".globl " #n "\n.type " #n ",@function\n.p2align 4\n" #n ":\n.cfi_startproc\n"
#define END(n) ".cfi_endproc\n.size " #n ", .-" #n "\n"
#define LBL(n) ".globl " #n "\n.hidden " #n "\n" #n ":\n"

__asm__(".text\n"
        FN(t_movnti) "movnti %eax, (%rdi)\n movnti %rax, 8(%rdi)\n ret\n" END(t_movnti)
        FN(t_mov) "movb %al, (%rdi)\n movw %ax, 2(%rdi)\n movl %eax, 4(%rdi)\n movq %rax, 8(%rdi)\n ret\n" END(t_mov)
        FN(t_cross) "movq %rax, 60(%rdi)\n ret\n" END(t_cross)
        FN(t_flush) "clwb (%rdi)\n clwb 13(%rdi)\n clflushopt 64(%rdi)\n clflushopt 77(%rdi)\n"
                    " clflush 128(%rdi)\n clflush 191(%rdi)\n clwb (%rsi)\n clflush 64(%rsi)\n ret\n" END(t_flush)
        FN(t_fences) "sfence\n lfence\n mfence\n ret\n" END(t_fences)
        FN(t_locked) "lock addl $1, (%rdi)\n xchg %rax, 8(%rdi)\n lock addl $1, (%rsi)\n"
                     " lock cmpxchg %rcx, 16(%rdi)\n cmpxchg %rcx, 24(%rdi)\n lock xaddl %eax, 32(%rdi)\n ret\n" END(t_locked)
        FN(t_cpuid) "push %rbx\n .cfi_adjust_cfa_offset 8\n xor %eax, %eax\n cpuid\n pop %rbx\n"
                    " .cfi_adjust_cfa_offset -8\n ret\n" END(t_cpuid)
        FN(t_repmovsb) "mov %rdx, %rcx\n rep movsb\n ret\n" END(t_repmovsb)
        FN(t_repmovsb_back) "lea -1(%rdi,%rdx), %rdi\n lea -1(%rsi,%rdx), %rsi\n mov %rdx, %rcx\n std\n rep movsb\n cld\n ret\n" END(t_repmovsb_back)
        FN(t_repstosq) "mov %rdx, %rcx\n movabs $0x1122334455667788, %rax\n rep stosq\n ret\n" END(t_repstosq)
        FN(t_repstosq_back) "lea -8(%rdi,%rdx,8), %rdi\n mov %rdx, %rcx\n std\n rep stosq\n cld\n ret\n" END(t_repstosq_back)
        /* src: +0 mask (k1), +64 data / index, +128 data */
        FN(t_vmovdqu8_k) "kmovq (%rsi), %k1\n vmovdqu8 64(%rsi), %zmm0\n vmovdqu8 %zmm0, (%rdi){%k1}\n vzeroupper\n ret\n" END(t_vmovdqu8_k)
        FN(t_vmovdqu32_k) "kmovq (%rsi), %k1\n vmovdqu32 64(%rsi), %zmm0\n vmovdqu32 %zmm0, 64(%rdi){%k1}\n vzeroupper\n ret\n" END(t_vmovdqu32_k)
        FN(t_vmovdqu64_k16) "kmovq (%rsi), %k2\n vmovdqu64 64(%rsi), %zmm16\n vmovdqu64 %zmm16, (%rdi){%k2}\n ret\n" END(t_vmovdqu64_k16)
        FN(t_vextract_k) "kmovq (%rsi), %k3\n vmovdqu64 64(%rsi), %zmm0\n vextracti32x4 $1, %zmm0, 16(%rdi){%k3}\n vzeroupper\n ret\n" END(t_vextract_k)
        FN(t_vpmovqd_k) "kmovq (%rsi), %k1\n vmovdqu 64(%rsi), %xmm0\n vpmovqd %xmm0, (%rdi){%k1}\n ret\n" END(t_vpmovqd_k)
        FN(t_vpmovwb) "vmovdqu64 64(%rsi), %zmm0\n vpmovwb %zmm0, (%rdi)\n vzeroupper\n ret\n" END(t_vpmovwb)
        FN(t_compress) "kmovq (%rsi), %k1\n vmovdqu32 64(%rsi), %zmm0\n vpcompressd %zmm0, 4(%rdi){%k1}\n vzeroupper\n ret\n" END(t_compress)
        FN(t_kmovq_st) "kmovq (%rsi), %k5\n kmovq %k5, 8(%rdi)\n kmovd %k5, 16(%rdi)\n ret\n" END(t_kmovq_st)
        FN(t_scatter) "kmovq (%rsi), %k1\n vmovdqu32 64(%rsi), %zmm17\n vmovdqu32 128(%rsi), %zmm0\n"
                      " vpscatterdd %zmm0, 8(%rdi,%zmm17,4){%k1}\n vzeroupper\n ret\n" END(t_scatter)
        FN(t_scatterq) "kmovq (%rsi), %k1\n vmovdqu64 64(%rsi), %zmm4\n vmovdqu64 128(%rsi), %zmm0\n"
                       " vpscatterqq %zmm0, (%rdi,%zmm4,8){%k1}\n vzeroupper\n ret\n" END(t_scatterq)
        FN(t_vmaskmovps) "vmovdqu (%rsi), %ymm1\n vmovdqu 32(%rsi), %ymm2\n vmaskmovps %ymm2, %ymm1, (%rdi)\n vzeroupper\n ret\n" END(t_vmaskmovps)
        FN(t_vpmaskmovq) "vmovdqu (%rsi), %xmm1\n vmovdqu 32(%rsi), %xmm2\n vpmaskmovq %xmm2, %xmm1, 64(%rdi)\n ret\n" END(t_vpmaskmovq)
        FN(t_maskmovdqu) "movdqu (%rsi), %xmm2\n movdqu 16(%rsi), %xmm1\n maskmovdqu %xmm2, %xmm1\n ret\n" END(t_maskmovdqu)
        FN(t_vmovntdq) "vmovdqu (%rsi), %ymm0\n vmovntdq %ymm0, (%rdi)\n vmovdqu64 (%rsi), %zmm1\n vmovntdq %zmm1, 64(%rdi)\n"
                       " vmovntdq %xmm0, 128(%rdi)\n movntdq %xmm0, 144(%rdi)\n vzeroupper\n ret\n" END(t_vmovntdq)
        FN(t_vecstores) "vmovdqu (%rsi), %ymm0\n vmovdqu %ymm0, (%rdi)\n vmovdqu64 (%rsi), %zmm1\n vmovdqu64 %zmm1, 64(%rdi)\n"
                        " movdqa %xmm0, 128(%rdi)\n vmovq %xmm0, 144(%rdi)\n vpextrd $1, %xmm0, 152(%rdi)\n"
                        " vextracti128 $1, %ymm0, 160(%rdi)\n vmovhps %xmm0, 176(%rdi)\n vmovd %xmm16, 184(%rdi)\n"
                        " vmovdqu (%rdi), %ymm3\n vpcmpeqb 64(%rdi), %zmm1, %k1\n vzeroupper\n ret\n" END(t_vecstores)
        FN(t_movdir64b) "movdir64b (%rsi), %rdi\n ret\n" END(t_movdir64b)
        FN(t_nonpmem) "movq %rax, (%rsi)\n movnti %rax, 8(%rsi)\n rep stosb\n ret\n" END(t_nonpmem)
        FN(t_xsave) "mov $-1, %eax\n mov $-1, %edx\n" LBL(L_xsave) "xsave (%rdi)\n ret\n" END(t_xsave)
        FN(t_xsave_stack) "push %rbp\n .cfi_adjust_cfa_offset 8\n mov %rsp, %rbp\n sub $4096, %rsp\n and $-64, %rsp\n"
                          " mov $-1, %eax\n mov $-1, %edx\n xsave (%rsp)\n mov %rbp, %rsp\n pop %rbp\n"
                          " .cfi_adjust_cfa_offset -8\n ret\n" END(t_xsave_stack)
        FN(t_loop) "1: jmp 1b\n" END(t_loop)
        FN(t_nested) "push %rbp\n .cfi_adjust_cfa_offset 8\n call t_inner\n" LBL(L_after_call)
                     "pop %rbp\n .cfi_adjust_cfa_offset -8\n ret\n" END(t_nested)
        FN(t_inner) LBL(L_inner_store) "movq %rax, (%rdi)\n ret\n" END(t_inner)
        FN(t_push_pmem) "mov %rsp, %r8\n .cfi_def_cfa_register %r8\n lea 32768(%rdi), %rsp\n push %rax\n call 1f\n"
                        "1: pop %rax\n pop %rax\n pushq (%rsi)\n popq 16(%rdi)\n mov %r8, %rsp\n .cfi_def_cfa_register %rsp\n ret\n" END(t_push_pmem)
        FN(t_popf) "pushq $0x202\n popfq\n movq %rax, (%rdi)\n ret\n" END(t_popf)
        FN(t_data) "movabs $0x0123456789abcdef, %rax\n movq %rax, (%rdi)\n movl $0xdeadbeef, 8(%rdi)\n"
                   " lea 16(%rdi), %rdi\n mov $3, %ecx\n mov $0x5a, %al\n rep stosb\n ret\n" END(t_data)
        FN(t_bitstr) "mov $70, %rax\n bts %rax, (%rdi)\n btsl $3, 16(%rdi)\n mov $-1, %rax\n btr %rax, 40(%rdi)\n"
                     " bt %rax, 48(%rdi)\n ret\n" END(t_bitstr)
        FN(t_riprel) "movq %rax, pc_test_global(%rip)\n movl %eax, pc_test_global+12(%rip)\n ret\n" END(t_riprel)
        FN(t_tls) "movq %rax, %fs:pc_test_tls@tpoff\n ret\n" END(t_tls)
        FN(t_sys_store) "mov $39, %eax\n syscall\n" LBL(L_after_sys) "movq %rax, (%rdi)\n movq %rcx, 8(%rdi)\n ret\n" END(t_sys_store)
        FN(t_int80_bad) "mov $20, %eax\n int $0x80\n movq %rax, (%rdi)\n ret\n" END(t_int80_bad)
        FN(t_sys_ok) "mov $39, %eax\n syscall\n cmp $-4095, %rax\n movq %rax, (%rdi)\n ret\n" END(t_sys_ok)
        FN(t_bench) "mov %rdx, %rcx\n xor %eax, %eax\n 1: mov %rcx, (%rdi,%rax,8)\n inc %eax\n and $511, %eax\n dec %rcx\n jnz 1b\n ret\n" END(t_bench)
        FN(t_sfence_only) "sfence\n ret\n" END(t_sfence_only)
        FN(t_odd_fences) ".byte 0x0f, 0xae, 0xf9\n .byte 0x0f, 0xae, 0xff\n .byte 0x0f, 0xae, 0xe9\n"
                         " .byte 0x0f, 0xae, 0xf1\n .byte 0x0f, 0xae, 0xf7\n ret\n" END(t_odd_fences)
        FN(t_exit3) "mov $3, %edi\n mov $231, %eax\n syscall\n ret\n" END(t_exit3)
        /* block stepping: runs with a jmp, a jcc taken and not taken, pushes, a loop */
        FN(t_blocks) "push %rbx\n .cfi_adjust_cfa_offset 8\n mov %rdx, %rcx\n xor %eax, %eax\n jmp 2f\n ud2\n"
                     "2: add $1, %eax\n cmp $3, %rcx\n jb 3f\n movq %rcx, (%rdi)\n"
                     "3: lea 1(%rax), %rbx\n sub $1, %rcx\n jnz 2b\n movl %ebx, 8(%rdi)\n pop %rbx\n .cfi_adjust_cfa_offset -8\n ret\n" END(t_blocks)
        FN(t_int3) "int3\n ret\n" END(t_int3)
        FN(t_iretq) "mov %rsp, %r8\n .cfi_def_cfa_register %r8\n mov %ss, %eax\n push %rax\n push %r8\n pushq $0x202\n"
                    " mov %cs, %eax\n push %rax\n lea 1f(%rip), %rax\n push %rax\n iretq\n"
                    "1: movq %rax, (%rdi)\n .cfi_def_cfa_register %rsp\n ret\n" END(t_iretq)
        FN(t_fresh) "movq %rax, (%rdi)\n movq %rax, 4096(%rdi)\n mov $3, %ecx\n lea 8190(%rdi), %rdi\n rep stosb\n ret\n" END(t_fresh));

typedef void fn3(void *, const void *, size_t);
extern fn3 t_movnti, t_mov, t_cross, t_flush, t_fences, t_locked, t_cpuid, t_repmovsb, t_repmovsb_back, t_repstosq,
    t_repstosq_back, t_vmovdqu8_k, t_vmovdqu32_k, t_vmovdqu64_k16, t_vextract_k, t_vpmovqd_k, t_vpmovwb, t_compress,
    t_kmovq_st, t_scatter, t_scatterq, t_vmaskmovps, t_vpmaskmovq, t_maskmovdqu, t_vmovntdq, t_vecstores, t_movdir64b,
    t_nonpmem, t_xsave, t_xsave_stack, t_loop, t_nested, t_inner, t_push_pmem, t_popf, t_data, t_bitstr, t_riprel,
    t_tls, t_sys_store, t_int80_bad, t_sys_ok, t_bench, t_sfence_only, t_int3, t_fresh, t_iretq, t_odd_fences, t_exit3, t_blocks;
extern char L_xsave[], L_after_call[], L_inner_store[], L_after_sys[];

uint64_t pc_test_global[8] __attribute__((aligned(64)));
__thread uint64_t pc_test_tls[8] __attribute__((aligned(64)));

/* ------------------------------------------------------------------ helpers */

static uint8_t *pool;           /* registered pmem */
#define POOL_SIZE (64 * 1024)
static uint8_t *scratch;        /* not pmem */
static uint8_t srcbuf[4096] __attribute__((aligned(64)));

typedef struct {
    int kind;
    uint64_t addr, size;
} ev_t;

static const char *kname(int k) {
    static const char *n[] = {"?", "store", "ntstore", "clwb", "clflushopt", "clflush", "sfence", "mfence",
                              "fence", "wpqflush", "op-begin", "op-end"};
    return k >= 0 && k <= 11 ? n[k] : "?";
}

static void reset_pool(void) {
    pc_reset();
    memset(pool, 0, POOL_SIZE);
    if (pc_add_pmem((uint64_t)(uintptr_t)pool, POOL_SIZE, 0) < 0) {
        printf("pc_add_pmem: %s\n", pc_error());
        exit(2);
    }
}

static void print_events(void) {
    const pc_event *e = pc_events();
    for (size_t i = 0; i < pc_event_count(); i++) {
        long off = (long)(e[i].addr - (uint64_t)(uintptr_t)pool);
        printf("        #%zu %s pool%+ld %llu\n", i, kname(e[i].kind), e[i].addr ? off : 0, (unsigned long long)e[i].size);
    }
}

static int match(const char *name, const ev_t *exp, size_t n) {
    const pc_event *e = pc_events();
    size_t got = pc_event_count();
    int bad = got != n;
    for (size_t i = 0; !bad && i < n; i++)
        if (e[i].kind != exp[i].kind || e[i].addr != exp[i].addr || e[i].size != exp[i].size) bad = 1;
    if (!bad) {
        ok(name);
        return 1;
    }
    fail(name, "events differ (expected %zu, got %zu)", n, got);
    for (size_t i = 0; i < n; i++) {
        long off = (long)(exp[i].addr - (uint64_t)(uintptr_t)pool);
        printf("      expected #%zu %s pool%+ld %llu\n", i, kname(exp[i].kind), exp[i].addr ? off : 0,
               (unsigned long long)exp[i].size);
    }
    print_events();
    return 0;
}

#define P(off) ((uint64_t)(uintptr_t)(pool + (off)))
#define EXPECT(name, ...)                                                  \
    do {                                                                   \
        ev_t _e[] = {__VA_ARGS__};                                         \
        match(name, _e, sizeof _e / sizeof _e[0]);                         \
    } while (0)

static int rec(const char *name, fn3 *fn, void *dst, const void *src, size_t n) {
    int rc = pc_record_call3(fn, dst, src, n);
    if (rc < 0) fail(name, "recording failed: %s", pc_error());
    return rc;
}

/* events for a masked store: runs of set bits, lowest first */
static size_t runs(ev_t *out, int kind, uint64_t base, uint64_t mask, unsigned nelem, unsigned esize) {
    size_t n = 0;
    for (unsigned i = 0; i < nelem;) {
        if (!((mask >> i) & 1)) { i++; continue; }
        unsigned j = i;
        while (j < nelem && ((mask >> j) & 1)) j++;
        out[n].kind = kind;
        out[n].addr = base + (uint64_t)i * esize;
        out[n].size = (uint64_t)(j - i) * esize;
        n++;
        i = j;
    }
    return n;
}

static int has_movdir64b(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (c >> 28) & 1;
}
static int has_avx512bw(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1); /* F, BW, VL */
}

/* ------------------------------------------------------------------ tests */

static void test_basic(void) {
    reset_pool();
    if (rec("movnti 4/8", t_movnti, pool, srcbuf, 0) == 0)
        EXPECT("movnti 4/8", {PC_NTSTORE, P(0), 4}, {PC_NTSTORE, P(8), 8});

    reset_pool();
    if (rec("mov 1/2/4/8", t_mov, pool, srcbuf, 0) == 0)
        EXPECT("mov 1/2/4/8", {PC_STORE, P(0), 1}, {PC_STORE, P(2), 2}, {PC_STORE, P(4), 4}, {PC_STORE, P(8), 8});

    reset_pool();
    if (rec("store crossing a line", t_cross, pool, srcbuf, 0) == 0)
        EXPECT("store crossing a line", {PC_STORE, P(60), 8});

    reset_pool();
    if (rec("clwb/clflushopt/clflush", t_flush, pool, scratch, 0) == 0)
        EXPECT("clwb/clflushopt/clflush (aligned, unaligned; non-pmem lines skipped)", {PC_CLWB, P(0), 0},
               {PC_CLWB, P(13), 0}, {PC_CLFLUSHOPT, P(64), 0}, {PC_CLFLUSHOPT, P(77), 0}, {PC_CLFLUSH, P(128), 0},
               {PC_CLFLUSH, P(191), 0});

    reset_pool();
    if (rec("fences", t_fences, pool, srcbuf, 0) == 0)
        EXPECT("sfence/lfence/mfence (lfence not logged)", {PC_SFENCE, 0, 0}, {PC_MFENCE, 0, 0});

    reset_pool();
    if (rec("locked", t_locked, pool, scratch, 0) == 0)
        EXPECT("lock add / xchg / lock cmpxchg / cmpxchg / lock xadd (store + fence; locked non-pmem: fence)",
               {PC_STORE, P(0), 4}, {PC_FENCE, 0, 0}, {PC_STORE, P(8), 8}, {PC_FENCE, 0, 0}, {PC_FENCE, 0, 0},
               {PC_STORE, P(16), 8}, {PC_FENCE, 0, 0}, {PC_STORE, P(24), 8}, {PC_STORE, P(32), 4},
               {PC_FENCE, 0, 0});

    reset_pool();
    if (rec("cpuid", t_cpuid, pool, srcbuf, 0) == 0) EXPECT("cpuid is a fence", {PC_FENCE, 0, 0});

    reset_pool();
    if (rec("non-pmem stores", t_nonpmem, pool, scratch, 0) == 0) EXPECT("stores to non-pmem are not logged", );
}

static void test_rep(void) {
    for (int back = 0; back < 2; back++) {
        char name[64];
        snprintf(name, sizeof name, "rep movsb DF=%d n=5", back);
        reset_pool();
        memset(srcbuf, 0x33, 64);
        if (rec(name, back ? t_repmovsb_back : t_repmovsb, pool + 100, srcbuf, 5) == 0) {
            ev_t e[5];
            for (int i = 0; i < 5; i++) e[i] = (ev_t){PC_STORE, P(100 + (back ? 4 - i : i)), 1};
            match(name, e, 5);
        }
        snprintf(name, sizeof name, "rep movsb DF=%d n=0", back);
        reset_pool();
        if (rec(name, back ? t_repmovsb_back : t_repmovsb, pool + 100, srcbuf, 0) == 0) EXPECT(name, );

        snprintf(name, sizeof name, "rep stosq DF=%d n=3", back);
        reset_pool();
        if (rec(name, back ? t_repstosq_back : t_repstosq, pool + 200, srcbuf, 3) == 0) {
            ev_t e[3];
            for (int i = 0; i < 3; i++) e[i] = (ev_t){PC_STORE, P(200 + 8 * (back ? 2 - i : i)), 8};
            match(name, e, 3);
        }
        snprintf(name, sizeof name, "rep stosq DF=%d n=0", back);
        reset_pool();
        if (rec(name, back ? t_repstosq_back : t_repstosq, pool + 200, srcbuf, 0) == 0) EXPECT(name, );
    }
}

static void set_mask(uint64_t m) { memcpy(srcbuf, &m, 8); }

static void test_avx512(void) {
    if (!has_avx512bw()) {
        skip("AVX-512 masked stores", "CPU lacks AVX-512F/BW/VL");
        return;
    }
    ev_t e[80];
    size_t n;
    for (int i = 0; i < 256; i++) srcbuf[64 + i] = (uint8_t)(i + 1);

    uint64_t m = 0x8000f00f00000181ull;
    reset_pool();
    set_mask(m);
    if (rec("vmovdqu8 {k1} sparse", t_vmovdqu8_k, pool, srcbuf, 0) == 0) {
        n = runs(e, PC_STORE, P(0), m, 64, 1);
        match("vmovdqu8 [mem]{k1}, zmm with a sparse mask: exactly the written runs", e, n);
        int okb = 1;
        for (int i = 0; i < 64; i++) okb &= pool[i] == (((m >> i) & 1) ? srcbuf[64 + i] : 0);
        if (okb) ok("vmovdqu8 {k1} wrote what the events say");
        else fail("vmovdqu8 {k1} wrote what the events say", "memory differs");
    }

    m = 0xa5c3;
    reset_pool();
    set_mask(m);
    if (rec("vmovdqu32 {k1}", t_vmovdqu32_k, pool, srcbuf, 0) == 0) {
        n = runs(e, PC_STORE, P(64), m, 16, 4);
        match("vmovdqu32 [mem]{k1}, zmm (dword elements)", e, n);
    }

    m = 0x81;
    reset_pool();
    set_mask(m);
    if (rec("vmovdqu64 zmm16 {k2}", t_vmovdqu64_k16, pool, srcbuf, 0) == 0) {
        n = runs(e, PC_STORE, P(0), m, 8, 8);
        match("vmovdqu64 [mem]{k2}, zmm16", e, n);
    }

    m = 0x9; /* elements 0 and 3 of 4 dwords */
    reset_pool();
    set_mask(m);
    if (rec("vextracti32x4 {k3}", t_vextract_k, pool, srcbuf, 0) == 0) {
        n = runs(e, PC_STORE, P(16), m, 4, 4);
        match("vextracti32x4 [mem]{k3} (capstone 4 cannot decode it)", e, n);
    }

    m = 0x2;
    reset_pool();
    set_mask(m);
    if (rec("vpmovqd xmm {k1}", t_vpmovqd_k, pool, srcbuf, 0) == 0)
        EXPECT("vpmovqd [mem]{k1}, xmm (capstone 4 cannot decode it)", {PC_STORE, P(4), 4});

    reset_pool();
    if (rec("vpmovwb", t_vpmovwb, pool, srcbuf, 0) == 0) EXPECT("vpmovwb [mem], zmm", {PC_STORE, P(0), 32});

    m = 0x0f0f;
    reset_pool();
    set_mask(m);
    if (rec("vpcompressd {k1}", t_compress, pool, srcbuf, 0) == 0)
        EXPECT("vpcompressd [mem]{k1}: popcount(k) dwords", {PC_STORE, P(4), 32});

    m = 0xffffffffffull;
    reset_pool();
    set_mask(m);
    if (rec("kmovq/kmovd to memory", t_kmovq_st, pool, srcbuf, 0) == 0)
        EXPECT("kmovq/kmovd [mem], k (capstone 4 cannot decode them)", {PC_STORE, P(8), 8}, {PC_STORE, P(16), 4});

    /* scatter: index dwords at +64, data at +128; element j goes to 8 + idx[j]*4 */
    {
        int32_t idx[16] = {0, 5, 2, 9, 100, 7, -1, 3, 11, 12, 13, 14, 15, 16, 17, 18};
        memcpy(srcbuf + 64, idx, sizeof idx);
        m = 0x00cb; /* elements 0, 1, 3, 6, 7 */
        reset_pool();
        set_mask(m);
        if (rec("vpscatterdd", t_scatter, pool + 256, srcbuf, 0) == 0) {
            n = 0;
            for (int j = 0; j < 16; j++)
                if ((m >> j) & 1) e[n++] = (ev_t){PC_STORE, P(256 + 8 + 4 * idx[j]), 4};
            match("vpscatterdd [mem+zmm17*4]{k1}: one event per element (VSIB from the XSAVE area)", e, n);
        }
        int64_t qidx[8] = {3, 0, -2, 1, 7, 6, 5, 4};
        memcpy(srcbuf + 64, qidx, sizeof qidx);
        m = 0x15;
        reset_pool();
        set_mask(m);
        if (rec("vpscatterqq", t_scatterq, pool + 256, srcbuf, 0) == 0) {
            n = 0;
            for (int j = 0; j < 8; j++)
                if ((m >> j) & 1) e[n++] = (ev_t){PC_STORE, P(256 + 8 * qidx[j]), 8};
            match("vpscatterqq [mem+zmm4*8]{k1}", e, n);
        }
    }

    reset_pool();
    if (rec("vector stores", t_vecstores, pool, srcbuf, 0) == 0)
        EXPECT("vmovdqu ymm / vmovdqu64 zmm / movdqa / vmovq / vpextrd / vextracti128 / vmovhps / vmovd xmm16; loads not logged",
               {PC_STORE, P(0), 32}, {PC_STORE, P(64), 64}, {PC_STORE, P(128), 16}, {PC_STORE, P(144), 8},
               {PC_STORE, P(152), 4}, {PC_STORE, P(160), 16}, {PC_STORE, P(176), 8}, {PC_STORE, P(184), 4});
}

static void test_masked_avx(void) {
    /* vmaskmovps ymm: mask = sign bits of ymm1's dwords (elements 0, 2, 3, 7) */
    uint32_t mk[8] = {0x80000000u, 0, 0xffffffffu, 0x80000001u, 1, 0x7fffffffu, 0, 0x80000000u};
    memset(srcbuf, 0, 64);
    memcpy(srcbuf, mk, sizeof mk);
    for (int i = 0; i < 32; i++) srcbuf[32 + i] = (uint8_t)(0xa0 + i);
    reset_pool();
    ev_t e[16];
    if (rec("vmaskmovps", t_vmaskmovps, pool, srcbuf, 0) == 0) {
        size_t n = runs(e, PC_STORE, P(0), 0x8d, 8, 4);
        match("vmaskmovps [mem], ymm mask, ymm", e, n);
    }
    uint64_t mq[2] = {0, 0x8000000000000000ull};
    memset(srcbuf, 0, 64);
    memcpy(srcbuf, mq, sizeof mq);
    reset_pool();
    if (rec("vpmaskmovq", t_vpmaskmovq, pool, srcbuf, 0) == 0) EXPECT("vpmaskmovq [mem], xmm mask, xmm", {PC_STORE, P(72), 8});

    /* maskmovdqu: byte mask in xmm2 (bytes 1, 2, 5, 15), destination rdi */
    memset(srcbuf, 0, 32);
    srcbuf[1] = srcbuf[2] = srcbuf[5] = srcbuf[15] = 0x80;
    for (int i = 0; i < 16; i++) srcbuf[16 + i] = (uint8_t)(0x10 + i);
    reset_pool();
    if (rec("maskmovdqu", t_maskmovdqu, pool + 32, srcbuf, 0) == 0)
        EXPECT("maskmovdqu (ntstore runs at rdi)", {PC_NTSTORE, P(33), 2}, {PC_NTSTORE, P(37), 1}, {PC_NTSTORE, P(47), 1});

    reset_pool();
    if (has_avx512bw() && rec("vmovntdq", t_vmovntdq, pool, srcbuf, 0) == 0)
        EXPECT("vmovntdq ymm/zmm/xmm, movntdq", {PC_NTSTORE, P(0), 32}, {PC_NTSTORE, P(64), 64},
               {PC_NTSTORE, P(128), 16}, {PC_NTSTORE, P(144), 16});

    if (!has_movdir64b()) {
        skip("movdir64b", "CPU lacks MOVDIR64B (CPUID.7.0:ECX[28]); decoding is checked below");
    } else {
        reset_pool();
        if (rec("movdir64b", t_movdir64b, pool + 128, srcbuf, 0) == 0) EXPECT("movdir64b", {PC_NTSTORE, P(128), 64});
    }
}

static void test_misc(void) {
    reset_pool();
    int rc = pc_record_call3(t_xsave, pool, srcbuf, 0);
    char want[64];
    snprintf(want, sizeof want, "at 0x%llx: t_xsave+0x", (unsigned long long)(uintptr_t)L_xsave);
    if (rc == -1 && strstr(pc_error(), "cannot decode 'xsave") && strstr(pc_error(), want) &&
        strstr(pc_error(), "which writes persistent memory"))
        ok("xsave to pmem: error names the instruction, address and symbol");
    else
        fail("xsave to pmem: error names the instruction", "rc=%d error='%s'", rc, pc_error());
    printf("        (%s)\n", pc_error());

    reset_pool();
    if (rec("xsave to the stack", t_xsave_stack, pool, srcbuf, 0) == 0) EXPECT("xsave to non-pmem (stack) is not an error", );

    reset_pool();
    pc_set_budget(1000);
    rc = pc_record_call3(t_loop, pool, srcbuf, 0);
    pc_set_budget(0);
    if (rc == -1 && strcmp(pc_error(), "instruction budget of 1000 exceeded") == 0)
        ok("budget error on an infinite loop");
    else
        fail("budget error on an infinite loop", "rc=%d error='%s'", rc, pc_error());

    reset_pool();
    if (rec("stacks", t_movnti, pool, srcbuf, 0) == 0) {
        const uint64_t *fr;
        size_t n = pc_stack_frames(pc_events()[0].stack, &fr);
        if (n == 1 && fr[0] == (uint64_t)(uintptr_t)t_movnti) ok("stack: the routine's address first (and only)");
        else fail("stack: the routine's address first", "n=%zu fr0=%#llx", n, n ? (unsigned long long)fr[0] : 0ull);
    }
    reset_pool();
    if (rec("nested stacks", t_nested, pool, srcbuf, 0) == 0) {
        const pc_event *e = pc_events();
        const uint64_t *fr;
        size_t n = pc_event_count() == 1 ? pc_stack_frames(e[0].stack, &fr) : 0;
        if (n == 2 && fr[0] == (uint64_t)(uintptr_t)L_inner_store && fr[1] == (uint64_t)(uintptr_t)L_after_call)
            ok("stack: callee store, then return address in the caller; recorder frames cut");
        else
            fail("stack: nested", "events=%zu frames=%zu", pc_event_count(), n);
    }
    reset_pool();
    if (rec("push/call with rsp in pmem", t_push_pmem, pool, srcbuf, 0) == 0)
        EXPECT("push/call with rsp in pmem, pop to pmem", {PC_STORE, P(32760), 8}, {PC_STORE, P(32752), 8}, {PC_STORE, P(32760), 8},
               {PC_STORE, P(16), 8});

    reset_pool();
    if (rec("popf clearing TF", t_popf, pool, srcbuf, 0) == 0) EXPECT("popf that would clear TF: stepping goes on", {PC_STORE, P(0), 8});

    reset_pool();
    if (rec("bts/btr", t_bitstr, pool, srcbuf, 0) == 0)
        EXPECT("bts/btr with register bit offsets (bit string addressing), bt not logged", {PC_STORE, P(8), 8},
               {PC_STORE, P(16), 4}, {PC_STORE, P(32), 8});

    pc_reset();
    pc_add_pmem((uint64_t)(uintptr_t)pc_test_global, sizeof pc_test_global, 0);
    if (rec("rip-relative", t_riprel, pool, srcbuf, 0) == 0) {
        ev_t e[2] = {{PC_STORE, (uint64_t)(uintptr_t)pc_test_global, 8}, {PC_STORE, (uint64_t)(uintptr_t)pc_test_global + 12, 4}};
        match("rip-relative stores", e, 2);
    }
    pc_reset();
    pc_add_pmem((uint64_t)(uintptr_t)pc_test_tls, sizeof pc_test_tls, 0);
    if (rec("fs-relative", t_tls, pool, srcbuf, 0) == 0) {
        ev_t e[1] = {{PC_STORE, (uint64_t)(uintptr_t)pc_test_tls, 8}};
        match("fs-relative store (TLS)", e, 1);
    }

    reset_pool();
    if (rec("store right after a syscall", t_sys_store, pool, srcbuf, 0) == 0) {
        uint64_t rcx;
        memcpy(&rcx, pool + 8, 8);
        EXPECT("store right after a syscall is seen (syscall runs from the recorder's stub)", {PC_STORE, P(0), 8},
               {PC_STORE, P(8), 8});
        if (rcx == (uint64_t)(uintptr_t)L_after_sys && *(uint64_t *)pool == (uint64_t)getpid())
            ok("syscall from the stub: result in rax, rcx = address after the syscall");
        else
            fail("syscall from the stub", "rcx=%#llx", (unsigned long long)rcx);
    }
    reset_pool();
    rc = pc_record_call3(t_int80_bad, pool, srcbuf, 0);
    if (rc == -1 && strstr(pc_error(), "ran unobserved right after an int/sysenter"))
        ok("a pmem store right after int $0x80 (runs before the next trap) is an error, not a silent drop");
    else
        fail("store after int 0x80", "rc=%d error='%s'", rc, pc_error());
    reset_pool();
    if (rec("syscall then cmp", t_sys_ok, pool, srcbuf, 0) == 0) EXPECT("syscall; cmp; store: recorded", {PC_STORE, P(0), 8});

    /* stores that page-fault (first touch) are seen once */
    {
        uint8_t *fresh = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        pc_reset();
        pc_add_pmem((uint64_t)(uintptr_t)fresh, 3 * 4096, 0);
        if (rec("first-touch page faults", t_fresh, fresh, srcbuf, 0) == 0) {
            uint64_t f = (uint64_t)(uintptr_t)fresh;
            ev_t e[5] = {{PC_STORE, f, 8}, {PC_STORE, f + 4096, 8}, {PC_STORE, f + 8190, 1}, {PC_STORE, f + 8191, 1},
                         {PC_STORE, f + 8192, 1}};
            match("stores that fault on first touch (and a rep stosb across a page) are seen once", e, 5);
        }
        munmap(fresh, 3 * 4096);
    }
    reset_pool();
    if (rec("iretq", t_iretq, pool, srcbuf, 0) == 0)
        EXPECT("iretq is a fence, and an image without TF does not end stepping", {PC_FENCE, 0, 0}, {PC_STORE, P(0), 8});
    reset_pool();
    rc = pc_record_call3(t_int3, pool, srcbuf, 0);
    if (rc == -1 && strstr(pc_error(), "unexpected SIGTRAP")) ok("int3 in the routine is an error");
    else fail("int3 in the routine", "rc=%d '%s'", rc, pc_error());

    /* data capture */
    reset_pool();
    pc_set_capture_data(1);
    if (rec("data capture", t_data, pool, srcbuf, 0) == 0) {
        const pc_event *e = pc_events();
        const uint8_t *d = pc_data();
        int good = pc_event_count() == 5;
        uint64_t v8 = 0x0123456789abcdefull;
        uint32_t v4 = 0xdeadbeefu;
        good = good && e[0].data_offset != UINT64_MAX && memcmp(d + e[0].data_offset, &v8, 8) == 0;
        good = good && e[1].data_offset != UINT64_MAX && memcmp(d + e[1].data_offset, &v4, 4) == 0;
        for (int i = 2; good && i < 5; i++) good = e[i].data_offset != UINT64_MAX && d[e[i].data_offset] == 0x5a && e[i].size == 1;
        if (good) ok("data capture gives the bytes written");
        else fail("data capture", "events=%zu", pc_event_count());
    }
    pc_set_capture_data(0);

    /* fence outside pmem range registration still logged; store to volatile pmem logged */
    pc_reset();
    pc_add_pmem((uint64_t)(uintptr_t)pool, 4096, 1);
    if (rec("volatile pmem", t_mov, pool, srcbuf, 0) == 0) EXPECT("volatile ranges are recorded like pmem",
                                                                   {PC_STORE, P(0), 1}, {PC_STORE, P(2), 2}, {PC_STORE, P(4), 4}, {PC_STORE, P(8), 8});
    /* pmem registration errors */
    pc_reset();
    int a = pc_add_pmem(0x10000, 0x1000, 0), b = pc_add_pmem(0x10800, 0x1000, 0), c = pc_add_pmem(0x20000, 0, 0);
    if (a == 0 && b == -1 && c == -1 && strstr(pc_error(), "length 0")) ok("pc_add_pmem rejects overlap and zero length");
    else fail("pc_add_pmem errors", "%d %d %d '%s'", a, b, c, pc_error());

    /* previous SIGTRAP handler restored */
    struct sigaction sa;
    sigaction(SIGTRAP, NULL, &sa);
    if (sa.sa_handler == SIG_DFL) ok("previous SIGTRAP disposition restored after recording");
    else fail("SIGTRAP restored", "handler still installed");
}

/* decoding of instructions this CPU may not run */
/* Routines that take the process away from the recorder, and signal handlers. */
static void r_sigign(void *d, const void *s, size_t n) { signal(SIGTRAP, SIG_IGN); }
static void r_sigblock(void *d, const void *s, size_t n) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGTRAP);
    sigprocmask(SIG_BLOCK, &m, NULL);
}
static void on_usr2(int sig) { (void)sig; }
static void r_sighandler(void *d, const void *s, size_t n) { signal(SIGUSR2, on_usr2); }
static void on_usr1(int sig) { ((volatile uint64_t *)pool)[16] = 7; }
static void r_kill_self(void *d, const void *s, size_t n) {
    kill(getpid(), SIGUSR1);
    *(volatile uint64_t *)d = 1;
}

static int expect_error(const char *name, fn3 *fn, int kind, const char *words) {
    int rc = pc_record_call3(fn, pool, srcbuf, 0);
    if (rc == 0) fail(name, "recorded without error");
    else if (pc_error_kind() != kind || !strstr(pc_error(), words))
        fail(name, "kind %d, message '%s' (expected kind %d with '%s')", pc_error_kind(), pc_error(), kind, words);
    else {
        ok(name);
        return 1;
    }
    return 0;
}

static void test_takeover(void) {
    reset_pool();
    if (rec("0f ae register forms", t_odd_fences, pool, srcbuf, 0) == 0)
        EXPECT("0f ae f9/ff are sfence, f1/f7 mfence, e9 lfence (not logged)", {PC_SFENCE, 0, 0}, {PC_SFENCE, 0, 0},
               {PC_MFENCE, 0, 0}, {PC_MFENCE, 0, 0});

    reset_pool();
    if (expect_error("exit_group(3) in the routine: an error, the process lives on", t_exit3, PC_ERR_EXIT,
                     "ended the process"))
        printf("        %s\n", pc_error());

    struct sigaction before, after;
    sigaction(SIGTRAP, NULL, &before);
    reset_pool();
    expect_error("signal(SIGTRAP, SIG_IGN) in the routine: an error", r_sigign, PC_ERR_SIGNALS, "disposition of SIGTRAP");
    sigaction(SIGTRAP, NULL, &after);
    if (after.sa_handler == before.sa_handler) ok("SIGTRAP disposition unchanged after the refused signal()");
    else fail("SIGTRAP disposition", "changed by the routine");

    reset_pool();
    expect_error("sigprocmask blocking SIGTRAP in the routine: an error", r_sigblock, PC_ERR_SIGNALS, "blocks SIGTRAP");
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigismember(&cur, SIGTRAP)) ok("SIGTRAP not blocked after the refused sigprocmask");
    else fail("SIGTRAP mask", "blocked by the routine");

    reset_pool();
    expect_error("a handler installed by the routine: an error", r_sighandler, PC_ERR_SIGNALS, "handler for SIGUSR2");

    signal(SIGUSR1, on_usr1);
    reset_pool();
    if (rec("signal handler during the call", r_kill_self, pool, srcbuf, 0) == 0) {
        EXPECT("a signal handler's store during the call is recorded (before the routine's own)", {PC_STORE, P(128), 8},
               {PC_STORE, P(0), 8});
        if (pc_handlers_stepped() == 1) ok("one handler stepped");
        else fail("handlers stepped", "%llu", (unsigned long long)pc_handlers_stepped());
    }
    signal(SIGUSR1, SIG_DFL);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    reset_pool();
    if (rec("after the call", t_mov, pool, srcbuf, 0) == 0 && now.sa_handler == SIG_DFL)
        ok("recording goes on after the handler; its disposition is the program's again");
    else fail("after the handler", "handler %p", (void *)now.sa_handler);
}

static void test_decode_tables(void) {
    struct {
        const char *name;
        uint8_t bytes[15];
        size_t n;
        int cls, ev;
        unsigned size;
    } t[] = {
        {"movdir64b (%rsi),%rdi", {0x66, 0x0f, 0x38, 0xf8, 0x3e}, 5, CLS_MOVDIR64B, PC_NTSTORE, 64},
        {"movdiri %rax,(%rdi)", {0x48, 0x0f, 0x38, 0xf9, 0x07}, 5, CLS_STORE, PC_NTSTORE, 8},
        {"movdiri %eax,(%rdi)", {0x0f, 0x38, 0xf9, 0x07}, 4, CLS_STORE, PC_NTSTORE, 4},
        {"serialize", {0x0f, 0x01, 0xe8}, 3, CLS_FENCE, PC_FENCE, 0},
        {"clzero", {0x0f, 0x01, 0xfc}, 3, CLS_STORE, PC_STORE, 64},
        {"clwb 0x10(%rax)", {0x66, 0x0f, 0xae, 0x70, 0x10}, 5, CLS_FLUSH, PC_CLWB, 0},
        {"clflushopt (%rax)", {0x66, 0x0f, 0xae, 0x38}, 4, CLS_FLUSH, PC_CLFLUSHOPT, 0},
        {"clflush (%rax)", {0x0f, 0xae, 0x38}, 3, CLS_FLUSH, PC_CLFLUSH, 0},
        {"enqcmd (%rsi),%rdi", {0xf2, 0x0f, 0x38, 0xf8, 0x3e}, 5, CLS_WINDOW, 0, 0},
        {"vpscatterdd %zmm0,(%rdi,%zmm4,4){%k1}", {0x62, 0xf2, 0x7d, 0x49, 0xa0, 0x04, 0xa7}, 7, CLS_SCATTER, PC_STORE, 4},
        {"vmovsh %xmm0,(%rdi){%k1}", {0x62, 0xf5, 0x7e, 0x09, 0x11, 0x07}, 6, CLS_MASKED, PC_STORE, 2},
        {"vpcompressb %zmm0,(%rdi){%k1}", {0x62, 0xf2, 0x7d, 0x49, 0x63, 0x07}, 6, CLS_COMPRESS, PC_STORE, 1},
        {"vpcmpeqb (%rdi),%zmm0,%k1 (load)", {0x62, 0xf1, 0x7d, 0x48, 0x74, 0x0f}, 6, CLS_NONE, 0, 0},
        {"tilestored %tmm0,(%rdi,%rax,1)", {0xc4, 0xe2, 0x7a, 0x4b, 0x04, 0x07}, 6, CLS_WINDOW, 0, 0},
        {"fxsave (%rdi)", {0x0f, 0xae, 0x07}, 3, CLS_STORE, PC_STORE, 512},
        {"fnsave (%rdi)", {0xdd, 0x37}, 2, CLS_STORE, PC_STORE, 108},
        {"fnstsw (%rdi)", {0xdd, 0x3f}, 2, CLS_STORE, PC_STORE, 2},
        {"xsaveopt (%rdi)", {0x0f, 0xae, 0x37}, 3, CLS_WINDOW, 0, 0},
        {"nopw 0x0(%rax,%rax,1)", {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00}, 6, CLS_NONE, 0, 0},
        {"cmpxchg16b (%rdi)", {0xf0, 0x48, 0x0f, 0xc7, 0x0f}, 5, CLS_STORE, PC_STORE, 16},
        {"prefetchw (%rdi)", {0x0f, 0x0d, 0x0f}, 3, CLS_NONE, 0, 0},
        {"cldemote (%rdi)", {0x0f, 0x1c, 0x07}, 3, CLS_NONE, 0, 0},
        {"iretq", {0x48, 0xcf}, 2, CLS_IRET, PC_FENCE, 8},
        {"movsd %xmm0,(%rdi) (SSE, not the string op)", {0xf2, 0x0f, 0x11, 0x07}, 4, CLS_STORE, PC_STORE, 8},
        {"movsl (string)", {0xa5}, 1, CLS_REPSTR, PC_STORE, 4},
        {"rep stosw", {0xf3, 0x66, 0xab}, 3, CLS_REPSTR, PC_STORE, 2},
        {"cmpsq (reads)", {0x48, 0xa7}, 2, CLS_NONE, 0, 0},
        {"syscall", {0x0f, 0x05}, 2, CLS_SYSCALL, 0, 0},
        {"sttilecfg (%rdi)", {0xc4, 0xe2, 0x79, 0x49, 0x07}, 5, CLS_STORE, PC_STORE, 64},
        {"vmovdqu8 %zmm0,0x40(%rdi){%k1} (disp8*64)", {0x62, 0xf1, 0x7f, 0x49, 0x7f, 0x47, 0x01}, 7, CLS_MASKED, PC_STORE, 1},
        {"(bad) 0x0e", {0x0e}, 1, CLS_ERROR, 0, 0},
        {"sfence (0f ae f8)", {0x0f, 0xae, 0xf8}, 3, CLS_FENCE, PC_SFENCE, 0},
        {"sfence (0f ae f9, r/m ignored)", {0x0f, 0xae, 0xf9}, 3, CLS_FENCE, PC_SFENCE, 0},
        {"sfence (0f ae ff)", {0x0f, 0xae, 0xff}, 3, CLS_FENCE, PC_SFENCE, 0},
        {"sfence (41 0f ae f8, REX.B ignored)", {0x41, 0x0f, 0xae, 0xf8}, 4, CLS_FENCE, PC_SFENCE, 0},
        {"mfence (0f ae f0)", {0x0f, 0xae, 0xf0}, 3, CLS_FENCE, PC_MFENCE, 0},
        {"mfence (0f ae f1)", {0x0f, 0xae, 0xf1}, 3, CLS_FENCE, PC_MFENCE, 0},
        {"mfence (0f ae f7)", {0x0f, 0xae, 0xf7}, 3, CLS_FENCE, PC_MFENCE, 0},
        {"lfence (0f ae e8, no event)", {0x0f, 0xae, 0xe8}, 3, CLS_NONE, 0, 0},
        {"lfence (0f ae ef, no event)", {0x0f, 0xae, 0xef}, 3, CLS_NONE, 0, 0},
        {"0f ae c0 (#UD: cannot be placed)", {0x0f, 0xae, 0xc0}, 3, CLS_ERROR, 0, 0},
        {"pcommit 66 0f ae f8 (ordered pmem stores: error)", {0x66, 0x0f, 0xae, 0xf8}, 4, CLS_ERROR, 0, 0},
        {"rdfsbase %rax (no event)", {0xf3, 0x48, 0x0f, 0xae, 0xc0}, 5, CLS_NONE, 0, 0},
        {"umwait %ecx (no event)", {0xf2, 0x0f, 0xae, 0xf1}, 4, CLS_NONE, 0, 0},
        {"aadd %eax,%eax (0f 38 fc, register form unknown: error)", {0x0f, 0x38, 0xfc, 0xc0}, 4, CLS_ERROR, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        pc_dentry e;
        pc_decode(0x1000, t[i].bytes, t[i].n, &e);
        char name[96];
        snprintf(name, sizeof name, "decode %s", t[i].name);
        if (e.cls == t[i].cls && (t[i].ev == 0 || e.ev == t[i].ev) && (t[i].size == 0 || e.size == t[i].size) &&
            (t[i].cls == CLS_ERROR || e.len == t[i].n))
            ok(name);
        else
            fail(name, "cls=%d ev=%d size=%u len=%u", e.cls, e.ev, e.size, e.len);
    }
}

/* The recorder's own VEX/EVEX parser against objdump over real libraries. */
static void test_lengths(const char *lib) {
    char cmd[512], line[1024], name[256];
    snprintf(name, sizeof name, "VEX/EVEX instruction lengths agree with objdump over %s", lib);
    if (access(lib, R_OK) != 0) {
        skip(name, "library not found");
        return;
    }
    snprintf(cmd, sizeof cmd, "objdump -d -w '%s' 2>/dev/null", lib);
    FILE *p = popen(cmd, "r");
    if (!p) {
        skip(name, "objdump not available");
        return;
    }
    size_t total = 0, bad = 0;
    while (fgets(line, sizeof line, p)) {
        char *t1 = strchr(line, '\t');
        if (!t1) continue;
        char *t2 = strchr(t1 + 1, '\t');
        if (!t2) continue;
        uint8_t b[16];
        size_t n = 0;
        for (char *q = t1 + 1; q + 1 < t2 && n < 16;) {
            unsigned v;
            if (sscanf(q, "%2x", &v) != 1 || q[0] == ' ') break;
            b[n++] = (uint8_t)v;
            q += 3;
        }
        size_t k = 0;
        while (k < n && (b[k] == 0x66 || b[k] == 0x67 || b[k] == 0xf2 || b[k] == 0xf3 || b[k] == 0x2e || b[k] == 0x3e))
            k++;
        if (k >= n || !(b[k] == 0xc4 || b[k] == 0xc5 || b[k] == 0x62)) continue;
        if (strstr(t2, "(bad)")) continue;
        total++;
        size_t len = pc_decode_length(b, n);
        if (len != n) {
            if (bad < 5) printf("        length %zu != %zu:%s", len, n, t2);
            bad++;
        }
    }
    pclose(p);
    if (total == 0) skip(name, "no VEX/EVEX instructions found (objdump missing?)");
    else if (bad == 0) {
        snprintf(name + strlen(name), sizeof name - strlen(name), " (%zu instructions)", total);
        ok(name);
    } else
        fail(name, "%zu of %zu differ", bad, total);
}

static void test_libpmem(void) {
    void *h = dlopen("libpmem.so.1", RTLD_NOW);
    if (!h) {
        skip("libpmem pmem_memcpy_persist", dlerror());
        return;
    }
    fn3 *cp = (fn3 *)dlsym(h, "pmem_memcpy_persist");
    if (!cp) {
        skip("libpmem pmem_memcpy_persist", "symbol not found");
        return;
    }
    static const size_t cases[][2] = {{0, 8}, {3, 13}, {0, 256}, {5, 1000}, {64, 4096}, {17, 300}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t off = cases[c][0], len = cases[c][1];
        char name[96];
        snprintf(name, sizeof name, "libpmem pmem_memcpy_persist(offset %zu, %zu bytes)", off, len);
        reset_pool();
        uint8_t *src = scratch + 1024;
        for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 7 + 1);
        if (rec(name, cp, pool + 4096 + off, src, len) < 0) continue;
        const pc_event *e = pc_events();
        size_t n = pc_event_count(), nt = 0, wb = 0, sf = 0, st = 0;
        uint8_t *covered = calloc(len, 1);
        uint64_t d = P(4096 + off);
        for (size_t i = 0; i < n; i++) {
            if (e[i].kind == PC_NTSTORE) nt++;
            if (e[i].kind == PC_STORE) st++;
            if (e[i].kind == PC_CLWB || e[i].kind == PC_CLFLUSHOPT || e[i].kind == PC_CLFLUSH) wb++;
            if (e[i].kind == PC_SFENCE) sf++;
            if (e[i].kind == PC_STORE || e[i].kind == PC_NTSTORE)
                for (uint64_t a = e[i].addr; a < e[i].addr + e[i].size; a++)
                    if (a >= d && a < d + len) covered[a - d] = 1;
        }
        size_t cov = 0;
        for (size_t i = 0; i < len; i++) cov += covered[i];
        free(covered);
        int copied = memcmp(pool + 4096 + off, src, len) == 0;
        if ((nt || wb) && sf && cov == len && copied && e[n - 1].kind == PC_SFENCE)
            ok(name);
        else
            fail(name, "ntstores=%zu stores=%zu writebacks=%zu sfences=%zu covered=%zu/%zu copied=%d", nt, st, wb, sf, cov, len,
                 copied);
        printf("        %zu events: %zu store, %zu ntstore, %zu write-back, %zu sfence\n", n, st, nt, wb, sf);
    }
}

/* glibc's own string functions (AVX2/EVEX variants, rep movsb/stosb) and heavier code */
static int coverage(uint64_t d, size_t len, int *nt) {
    const pc_event *e = pc_events();
    uint8_t *cov = calloc(len, 1);
    size_t c = 0;
    *nt = 0;
    for (size_t i = 0; i < pc_event_count(); i++) {
        if (e[i].kind == PC_NTSTORE) (*nt)++;
        if (e[i].kind != PC_STORE && e[i].kind != PC_NTSTORE) continue;
        for (uint64_t a = e[i].addr; a < e[i].addr + e[i].size; a++)
            if (a >= d && a < d + len && !cov[a - d]) { cov[a - d] = 1; c++; }
    }
    free(cov);
    return c == len;
}

static volatile size_t strlen_result;
static void strlen_thunk(void *d, const void *s, size_t n) { strlen_result = strlen(d); }
static void memset_thunk(void *d, const void *s, size_t n) { memset(d, *(const uint8_t *)s, n); }

typedef struct { char *dst; int *arr; size_t n; } heavy_ctx;
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static void heavy(void *p) {
    heavy_ctx *c = p;
    char *tmp = malloc(200);
    snprintf(tmp, 200, "pi=%.5f n=%zu %s", 3.14159265, c->n, "powercut");
    strcpy(c->dst, tmp);
    free(tmp);
    qsort(c->arr, c->n, sizeof(int), cmp_int);
}

/* Records fn twice, each instruction trapped and then with block stepping, and
 * compares the events (kind, address, size, call stack). */
typedef struct {
    pc_event ev[4096];
    size_t n;
    uint64_t frames[4096][8];
    size_t nframes[4096];
} ev_copy;
static ev_copy runs_each, runs_block;

static int record_into(ev_copy *c, fn3 *fn, void *dst, const void *src, size_t n) {
    reset_pool();
    if (pc_record_call3(fn, dst, src, n) < 0) return -1;
    c->n = pc_event_count() < 4096 ? pc_event_count() : 4096;
    memcpy(c->ev, pc_events(), c->n * sizeof(pc_event));
    for (size_t i = 0; i < c->n; i++) {
        const uint64_t *f;
        size_t k = pc_stack_frames(c->ev[i].stack, &f);
        c->nframes[i] = k < 8 ? k : 8;
        if (k) memcpy(c->frames[i], f, c->nframes[i] * 8);
    }
    return 0;
}

static void same_events(const char *name, fn3 *fn, void *dst, const void *src, size_t n) {
    uint64_t b0, b1, i0, i1;
    b0 = pc_blocks_run(&i0);
    pc_set_block_stepping(0);
    int rc1 = record_into(&runs_each, fn, dst, src, n);
    uint64_t each = pc_instructions_stepped();
    pc_set_block_stepping(1);
    int rc2 = record_into(&runs_block, fn, dst, src, n);
    uint64_t total = pc_instructions_stepped() - each;
    b1 = pc_blocks_run(&i1);
    int same = rc1 == 0 && rc2 == 0 && runs_each.n == runs_block.n;
    for (size_t i = 0; same && i < runs_each.n; i++) {
        const pc_event *a = &runs_each.ev[i], *b = &runs_block.ev[i];
        same = a->kind == b->kind && a->addr == b->addr && a->size == b->size &&
               runs_each.nframes[i] == runs_block.nframes[i] &&
               memcmp(runs_each.frames[i], runs_block.frames[i], runs_each.nframes[i] * 8) == 0;
    }
    if (same && b1 > b0) {
        ok(name);
        printf("        %zu events; %llu instructions, %llu of them in %llu native runs\n", runs_block.n,
               (unsigned long long)total, (unsigned long long)(i1 - i0), (unsigned long long)(b1 - b0));
    } else {
        fail(name, "rc %d/%d, %zu vs %zu events, %llu runs ('%s')", rc1, rc2, runs_each.n, runs_block.n,
             (unsigned long long)(b1 - b0), pc_error());
        for (size_t i = 0; i < runs_each.n && i < runs_block.n; i++)
            printf("        #%zu %s %llx %llu (%zu frames, first %llx) | %s %llx %llu (%zu frames, first %llx)\n", i,
                   kname(runs_each.ev[i].kind), (unsigned long long)runs_each.ev[i].addr,
                   (unsigned long long)runs_each.ev[i].size, runs_each.nframes[i],
                   (unsigned long long)runs_each.frames[i][0], kname(runs_block.ev[i].kind),
                   (unsigned long long)runs_block.ev[i].addr, (unsigned long long)runs_block.ev[i].size,
                   runs_block.nframes[i], (unsigned long long)runs_block.frames[i][0]);
    }
}

static void test_block_stepping(void) {
    reset_pool();
    if (rec("block stepping", t_blocks, pool, srcbuf, 5) == 0)
        EXPECT("runs with jmp, jcc taken/not taken, pushes: the same stores", {PC_STORE, P(0), 8}, {PC_STORE, P(0), 8},
               {PC_STORE, P(0), 8}, {PC_STORE, P(8), 4});
    if (*(uint32_t *)(pool + 8) == 6) ok("block stepping: the loop computed what it computes natively");
    else fail("block stepping result", "%u", *(uint32_t *)(pool + 8));
    same_events("block stepping = each instruction trapped: t_blocks", t_blocks, pool, srcbuf, 9);
    static const size_t sizes[] = {0, 1, 7, 63, 100, 1000};
    fn3 *cpy = (fn3 *)(void (*)(void))memcpy;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "block stepping = each instruction trapped: glibc memcpy %zu", sizes[i]);
        same_events(name, cpy, pool + 5 + i, scratch, sizes[i]);
    }
    void *h = dlopen("libpmem.so.1", RTLD_NOW);
    fn3 *pm = h ? (fn3 *)dlsym(h, "pmem_memcpy_persist") : NULL;
    if (!pm) {
        skip("block stepping over libpmem", "no libpmem.so.1");
        return;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "block stepping = each instruction trapped: pmem_memcpy_persist %zu", sizes[i]);
        same_events(name, pm, pool + 64 + 3 * i, scratch, sizes[i]);
    }
}

static void test_glibc(void) {
    static const size_t sizes[] = {7, 33, 100, 1000, 5000, 20000};
    fn3 *cpy = (fn3 *)(void (*)(void))memcpy;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i], off = 3 + i;
        char name[96];
        for (size_t k = 0; k < len; k++) scratch[k] = (uint8_t)(k * 13 + 5);
        snprintf(name, sizeof name, "glibc memcpy %zu bytes to pmem", len);
        reset_pool();
        int nt;
        if (rec(name, cpy, pool + off, scratch, len) == 0) {
            if (coverage(P(off), len, &nt) && memcmp(pool + off, scratch, len) == 0) ok(name);
            else fail(name, "not every byte stored (%zu events)", pc_event_count());
        }
        snprintf(name, sizeof name, "glibc memset %zu bytes of pmem", len);
        reset_pool();
        uint8_t v = 0x6b;
        if (rec(name, memset_thunk, pool + off, &v, len) == 0) {
            int good = coverage(P(off), len, &nt);
            for (size_t k = 0; good && k < len; k++) good = pool[off + k] == 0x6b;
            if (good) ok(name);
            else fail(name, "not every byte stored (%zu events)", pc_event_count());
        }
    }
    reset_pool();
    memset(pool, 'x', 3000);
    pool[3000] = 0;
    if (rec("glibc strlen over pmem", strlen_thunk, pool, NULL, 0) == 0) EXPECT("glibc strlen over pmem: reads only, no events", );

    reset_pool();
    heavy_ctx hc = {(char *)pool, (int *)(pool + 1024), 200};
    for (size_t k = 0; k < hc.n; k++) hc.arr[k] = (int)((k * 7919) % 1000);
    if (pc_record_ctx(heavy, &hc) == 0) {
        int sorted = 1;
        for (size_t k = 1; k < hc.n; k++) sorted &= hc.arr[k - 1] <= hc.arr[k];
        if (sorted && strcmp((char *)pool, "pi=3.14159 n=200 powercut") == 0 && pc_event_count() > 200)
            ok("malloc + snprintf + strcpy + free + qsort into pmem recorded without error");
        else
            fail("heavy libc code", "sorted=%d text='%s' events=%zu", sorted, (char *)pool, pc_event_count());
        printf("        %zu events, %llu instructions stepped so far\n", pc_event_count(),
               (unsigned long long)pc_instructions_stepped());
    } else {
        fail("heavy libc code", "%s", pc_error());
    }
}

static void __attribute__((noinline)) ss_target(volatile uint64_t *p, uint64_t a, uint64_t b, uint64_t c) {
    p[0] = a;
    p[1] = b + c;
}

static void test_public_api(void) {
    pc_reset();
    if (powercut_pmem(pool, 4096) < 0) {
        fail("powercut_pmem", "%s", powercut_error());
        return;
    }
    powercut_capture_data(1);
    int id = powercut_op_begin(pool, 16, "ss_target", POWERCUT_FLUSHCACHE);
    int rc = powercut_start();
    ss_target((volatile uint64_t *)pool, 0x11, 0x22, 0x33);
    int rc2 = powercut_stop();
    powercut_op_end();
    powercut_drain();
    powercut_capture_data(0);
    const pc_event *e = pc_events();
    size_t n = pc_event_count();
    if (id == 1 && rc == 0 && rc2 == 0 && n == 5 && e[0].kind == PC_OP_BEGIN && e[1].kind == PC_STORE && e[1].addr == P(0) &&
        e[1].size == 8 && e[2].kind == PC_STORE && e[2].addr == P(8) && e[3].kind == PC_OP_END && e[4].kind == PC_SFENCE &&
        e[1].op_id == 1 && e[4].stack != 0)
        ok("powercut_start/stop records the stores between, nothing of powercut_stop; drain records an sfence");
    else {
        fail("powercut_start/stop", "id=%d rc=%d/%d n=%zu err='%s'", id, rc, rc2, n, powercut_error());
        print_events();
    }
    /* an error between start and stop is reported by stop */
    pc_reset();
    powercut_pmem(pool, 4096);
    powercut_set_budget(50);
    powercut_start();
    for (volatile int i = 0; i < 1000; i++) {
    }
    rc = powercut_stop();
    powercut_set_budget(0);
    if (rc == -1 && strstr(powercut_error(), "budget of 50")) ok("powercut_stop reports an error from the stepped region");
    else fail("powercut_stop error", "rc=%d '%s'", rc, powercut_error());

    /* the text trace */
    pc_reset();
    powercut_pmem(pool, 4096);
    powercut_pmem_volatile(scratch, 4096);
    powercut_capture_data(1);
    powercut_op_begin(pool + 3, 13, "t_data", POWERCUT_PERSIST);
    rc = powercut_record_call(t_data, pool, srcbuf, 0);
    powercut_op_end();
    powercut_capture_data(0);
    powercut_drain();
    char dir[] = "/tmp/pc-selftest-XXXXXX";
    if (!mkdtemp(dir)) {
        fail("trace", "mkdtemp");
        return;
    }
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/with space.pct", dir);
    snprintf(tmp, sizeof tmp, "%s.incomplete", path);
    int w = powercut_write_trace(path);
    FILE *f = fopen(path, "r");
    char line[4096];
    int l = 0, hdr = 0, meta = 0, pm = 0, pmv = 0, mod = 0, modexe = 0, stack_before = 1, op = 0, data = 0, sf = 0;
    int defined[64] = {0};
    while (f && fgets(line, sizeof line, f)) {
        l++;
        if (l == 1 && strcmp(line, "powercut-trace 1\n") == 0) hdr = 1;
        if (strncmp(line, "meta recorder powercut-c ", 25) == 0) meta = 1;
        unsigned long long b, s;
        if (sscanf(line, "pmem 0x%llx 0x%llx", &b, &s) == 2) {
            if (b == P(0) && s == 4096 && !strstr(line, "volatile")) pm = 1;
            if (b == (uint64_t)(uintptr_t)scratch && strstr(line, " volatile")) pmv = 1;
        }
        if (strncmp(line, "module ", 7) == 0) {
            mod++;
            if (strstr(line, "recorder-selftest") && strstr(line, " build-id=")) modexe = 1;
        }
        unsigned id2;
        if (sscanf(line, "stack %u", &id2) == 1 && id2 < 64) defined[id2] = 1;
        char *sp = strstr(line, "stack=");
        if (sp && !defined[atoi(sp + 6) < 64 ? atoi(sp + 6) : 0]) stack_before = 0;
        if (strstr(line, "op 1 begin dst=") && strstr(line, "len=13 name=t_data contract=persist")) op++;
        if (strcmp(line, "op 1 end\n") == 0) op++;
        if (strstr(line, "store ") == line && strstr(line, " 8 data=efcdab8967452301 stack=")) data = 1;
        if (strncmp(line, "sfence stack=", 13) == 0) sf = 1;
    }
    if (f) fclose(f);
    struct stat stt;
    int noinc = stat(tmp, &stt) != 0;
    if (rc == 0 && w == 0 && hdr && meta && pm && pmv && mod > 1 && op == 2 && data && sf && stack_before && noinc)
        ok("powercut_write_trace: header, pmem, modules, stacks before use, op, data=, sfence; no .incomplete left");
    else
        fail("powercut_write_trace", "w=%d err='%s' hdr=%d meta=%d pmem=%d/%d modules=%d op=%d data=%d sfence=%d stacks=%d noinc=%d",
             w, powercut_error(), hdr, meta, pm, pmv, mod, op, data, sf, stack_before, noinc);
    if (modexe) ok("module map has the executable with its build-id");
    else fail("module map", "executable or build-id missing");
    /* show the trace's head for the log */
    f = fopen(path, "r");
    for (int i = 0; f && i < 40 && fgets(line, sizeof line, f); i++)
        if (strncmp(line, "module", 6) != 0 || strstr(line, "selftest")) printf("        | %s", line);
    if (f) fclose(f);
    unlink(path);
    rmdir(dir);

    pc_reset();
    powercut_op_begin(pool, 8, NULL, POWERCUT_NONE);
    if (powercut_write_trace("/tmp/pc-never.pct") == -1 && strstr(powercut_error(), "still open")) ok("write_trace refuses an open op");
    else fail("write_trace open op", "'%s'", powercut_error());
    powercut_op_end();
    if (powercut_op_begin(pool, 8, "bad name", 0) == -1) ok("op names with spaces are rejected");
    else fail("op name", "accepted a space");
}

/* ------------------------------------------------------------------ benchmark */

static volatile uint64_t bare_count;
static void bare_handler(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    (void)uc;
    bare_count++;
}
__asm__(".text\n" FN(bare_tramp) "push %rbp\n .cfi_adjust_cfa_offset 8\n mov %rdi, %rax\n mov %rsi, %rdi\n mov %rdx, %rsi\n"
        " mov %rcx, %rdx\n pushfq\n orq $0x100, (%rsp)\n popfq\n call *%rax\n pushfq\n andq $-257, (%rsp)\n popfq\n"
        " pop %rbp\n .cfi_adjust_cfa_offset -8\n ret\n" END(bare_tramp));
extern void bare_tramp(fn3 *fn, void *a, const void *b, size_t c);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void benchmark(int rounds) {
    const size_t iters = 200000; /* 5 instructions each: ~1M instructions */
    double best_bare = 1e30, best_quiet = 1e30, best_rec = 1e30;
    double hq = 1e30, hr = 1e30; /* handler's own ticks per trap */
    double tsc_per_s = 0;
    uint64_t bare_n = 0, quiet_n = 0, rec_n = 0;
    size_t events = 0;
    int rc = 0, rc2 = 0;
    /* alternate the three runs and keep the best of each: the VM's trap cost drifts */
    for (int r = 0; r < rounds; r++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = bare_handler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGTRAP, &sa, &old);
        bare_count = 0;
        double t0 = now();
        bare_tramp(t_bench, scratch, srcbuf, iters);
        double t = now() - t0;
        sigaction(SIGTRAP, &old, NULL);
        bare_n = bare_count;
        if (t < best_bare) best_bare = t;

        reset_pool();
        uint64_t s0 = pc_instructions_stepped(), h0 = pc__handler_tsc(), c0 = __rdtsc();
        t0 = now();
        rc |= pc_record_call3(t_bench, scratch, srcbuf, iters);
        t = now() - t0;
        tsc_per_s = (double)(__rdtsc() - c0) / t;
        quiet_n = pc_instructions_stepped() - s0;
        if (t < best_quiet) best_quiet = t;
        if ((double)(pc__handler_tsc() - h0) / quiet_n < hq) hq = (double)(pc__handler_tsc() - h0) / quiet_n;

        reset_pool();
        s0 = pc_instructions_stepped();
        h0 = pc__handler_tsc();
        t0 = now();
        rc2 |= pc_record_call3(t_bench, pool, srcbuf, iters);
        t = now() - t0;
        rec_n = pc_instructions_stepped() - s0;
        if ((double)(pc__handler_tsc() - h0) / rec_n < hr) hr = (double)(pc__handler_tsc() - h0) / rec_n;
        events = pc_event_count();
        if (t < best_rec) best_rec = t;
    }
    double ub = best_bare / bare_n * 1e6, uq = best_quiet / quiet_n * 1e6, ur = best_rec / rec_n * 1e6;
    printf("benchmark: loop of %llu instructions (mov to memory, inc, and, dec, jnz), best of %d\n",
           (unsigned long long)rec_n, rounds);
    printf("  bare single-step (handler only counts):            %7.0f instructions/s  %6.2f us each\n", 1 / ub * 1e6, ub);
    printf("  recorder, loop stores to non-pmem (no events):     %7.0f instructions/s  %6.2f us each  ratio %.2fx\n",
           1 / uq * 1e6, uq, uq / ub);
    printf("  recorder, every 5th instruction a pmem store:      %7.0f instructions/s  %6.2f us each  ratio %.2fx  (%zu events)\n",
           1 / ur * 1e6, ur, ur / ub, events);
    printf("  recorder's handler itself (TSC inside on_sigtrap): %.3f us per trap without events, %.3f us with a store event\n",
           hq / tsc_per_s * 1e6, hr / tsc_per_s * 1e6);
    if (rc == 0 && rc2 == 0 && events == iters && quiet_n == rec_n) ok("benchmark runs recorded without error");
    else fail("benchmark", "rc=%d/%d events=%zu '%s'", rc, rc2, events, pc_error());
}

int main(int argc, char **argv) {
    int bench = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-bench") == 0) bench = 0;
        else if (strcmp(argv[i], "--bench-rounds") == 0 && i + 1 < argc) bench = atoi(argv[++i]);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pc_init() < 0) {
        printf("pc_init: %s\n0 passed, 1 failed\n", pc_error());
        return 1;
    }
    pool = mmap(NULL, POOL_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    scratch = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED || scratch == MAP_FAILED) return 2;

    test_basic();
    test_rep();
    test_avx512();
    test_masked_avx();
    test_misc();
    test_decode_tables();
    test_takeover();
    test_block_stepping();
    test_lengths("/lib/x86_64-linux-gnu/libc.so.6");
    test_lengths("/usr/lib/x86_64-linux-gnu/libpmem.so.1");
    test_libpmem();
    test_glibc();
    test_public_api();
    if (bench > 0) benchmark(bench);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
