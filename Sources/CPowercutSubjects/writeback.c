/*
 * writeback.c - which instruction writes a cache line back, and the fence.
 *
 * Linux picks the line write-back for persistent memory once, at boot, from CPUID:
 * clwb where the CPU has it (4.13 on), else clflushopt, else clflush. We make the
 * same choice once per process. CPUID bits: leaf 7 subleaf 0 EBX bit 24 = clwb,
 * bit 23 = clflushopt; leaf 1 EDX bit 19 = clflush (every x86-64 CPU has it, so it is
 * also the fallback). POWERCUT_WRITEBACK=clwb|clflushopt|clflush overrides the choice;
 * any other value is ignored.
 *
 * The choice is made by a constructor when the library is loaded, so that neither
 * getenv nor CPUID (a serializing instruction, hence a fence to the persistence
 * model) runs inside a recorded copy. Should a subject run before the constructors
 * (from another constructor), it makes the choice itself; two threads racing there
 * both compute the same answer, and the relaxed atomic keeps that race defined
 * without emitting any locked instruction.
 */
#include "powercut_subjects.h"
#include "primitives.h"

#include <stdatomic.h>
#include <stdlib.h>

enum pc_writeback_kind {
    PC_WB_UNDECIDED = 0,
    PC_WB_CLWB,
    PC_WB_CLFLUSHOPT,
    PC_WB_CLFLUSH,
    PC_WB_NONE, /* not x86-64 */
};

static const char *const pc_writeback_names[] = {
    [PC_WB_UNDECIDED] = "undecided",
    [PC_WB_CLWB] = "clwb",
    [PC_WB_CLFLUSHOPT] = "clflushopt",
    [PC_WB_CLFLUSH] = "clflush",
    [PC_WB_NONE] = "none",
};

static _Atomic int pc_writeback_selected = PC_WB_UNDECIDED;

#if defined(__x86_64__)

static void pc_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
    __asm__ __volatile__("cpuid"
                         : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                         : "a"(leaf), "c"(subleaf));
}

static int pc_writeback_from_cpuid(void)
{
    uint32_t r[4];
    pc_cpuid(0, 0, r);
    uint32_t max_leaf = r[0];
    if (max_leaf >= 7) {
        pc_cpuid(7, 0, r);
        if (r[1] & (UINT32_C(1) << 24))
            return PC_WB_CLWB;
        if (r[1] & (UINT32_C(1) << 23))
            return PC_WB_CLFLUSHOPT;
    }
    /* leaf 1 EDX bit 19 (clflush) is architectural on x86-64: nothing older to fall to */
    return PC_WB_CLFLUSH;
}

static int pc_writeback_decide(void)
{
    const char *forced = getenv("POWERCUT_WRITEBACK");
    if (forced != NULL) {
        for (int k = PC_WB_CLWB; k <= PC_WB_CLFLUSH; k++)
            if (strcmp(forced, pc_writeback_names[k]) == 0)
                return k;
    }
    return pc_writeback_from_cpuid();
}

#else

static int pc_writeback_decide(void) { return PC_WB_NONE; }

#endif

static int pc_writeback_kind(void)
{
    int kind = atomic_load_explicit(&pc_writeback_selected, memory_order_relaxed);
    if (kind == PC_WB_UNDECIDED) {
        kind = pc_writeback_decide();
        atomic_store_explicit(&pc_writeback_selected, kind, memory_order_relaxed);
    }
    return kind;
}

__attribute__((constructor)) static void pc_writeback_init(void) { (void)pc_writeback_kind(); }

void pc_writeback_line(const void *p)
{
#if defined(__x86_64__)
    switch (pc_writeback_kind()) {
    case PC_WB_CLWB:
        __asm__ __volatile__("clwb (%0)" : : "r"(p) : "memory");
        break;
    case PC_WB_CLFLUSHOPT:
        __asm__ __volatile__("clflushopt (%0)" : : "r"(p) : "memory");
        break;
    default:
        __asm__ __volatile__("clflush (%0)" : : "r"(p) : "memory");
        break;
    }
#else
    (void)p;
#endif
}

const char *powercut_subject_writeback_name(void)
{
    return pc_writeback_names[pc_writeback_kind()];
}

void powercut_subject_sfence(void) { pc_sfence(); }
