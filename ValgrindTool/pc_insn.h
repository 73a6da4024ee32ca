/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What an x86-64 instruction does to persistence, told from its bytes. VEX shows a
 * tool non-temporal stores as plain stores, every fence-like instruction as one fence
 * statement, and clflush only as a cache-invalidation of its address rounded down to
 * 256 bytes: the instruction bytes at each instruction mark tell them apart.
 */
#ifndef PC_INSN_H
#define PC_INSN_H

typedef enum {
    PI_OTHER = 0,
    PI_NT,         /* movnti, movntps/pd, movntq, movntdq, maskmovq/maskmovdqu (+VEX) */
    PI_CLFLUSH,    /* clflush m8: `ea` tells how to compute its address */
    PI_CLWB,       /* 66 0F AE /6 m: not decoded by stock VEX (SIGILL) */
    PI_CLFLUSHOPT, /* 66 0F AE /7 m: not decoded by stock VEX (SIGILL) */
    PI_SFENCE,
    PI_MFENCE,
    PI_LFENCE,     /* orders loads only: not a fence for persistence */
    PI_CPUID,      /* serializing: a full fence */
    PI_RDTSCP,     /* waits for earlier instructions, not for stores to drain: not a fence */
    PI_EVEX        /* an AVX-512 (EVEX) instruction: not decoded by stock VEX */
} pc_insn_kind;

/* A memory operand: seg_base? + base + index * scale + disp (+ next rip when rip_rel). */
typedef struct {
    int base;   /* 0-15 (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15) or -1 */
    int index;  /* 0-15 or -1 */
    int scale;  /* 1, 2, 4, 8 */
    long long disp;
    int rip_rel;
    int addr32; /* 0x67: the address is truncated to 32 bits */
    int seg;    /* 0 none, 1 fs, 2 gs */
} pc_ea;

typedef struct {
    pc_insn_kind kind;
    pc_ea ea;   /* PI_CLFLUSH, PI_CLWB, PI_CLFLUSHOPT */
} pc_insn;

/* Classifies the instruction whose `len` bytes are at `p`. */
void pc_classify(const unsigned char *p, int len, pc_insn *out);
/* A short name for messages ("clwb", "clflushopt", "an AVX-512 (EVEX) instruction"). */
const char *pc_insn_name(pc_insn_kind k);

#endif
