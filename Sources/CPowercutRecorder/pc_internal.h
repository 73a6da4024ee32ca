/* Internal declarations of the recorder (not part of the public headers). */
#ifndef PC_INTERNAL_H
#define PC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>

#include "include/powercut_recorder.h"

#define PC_VERSION "0.1.0"

#ifdef __GNUC__
#define PC_HIDDEN __attribute__((visibility("hidden")))
#else
#define PC_HIDDEN
#endif

/* Register numbering inside decode entries: 0-15 = rax, rcx, rdx, rbx, rsp, rbp, rsi,
 * rdi, r8..r15 (hardware order); PC_R_RIP = rip-relative; PC_R_NONE = absent. */
enum { PC_R_RIP = 16, PC_R_NONE = 0xff };

/* What an instruction does to memory, decoded once per address. */
enum pc_cls {
    CLS_NONE = 0,    /* no event (reads, register work, stores never touching memory) */
    CLS_STORE,       /* writes `size` bytes at EA; ev = PC_STORE or PC_NTSTORE */
    CLS_REPSTR,      /* movs/stos: element of `size` at rDI; with F_REP only if rCX != 0 */
    CLS_PUSH,        /* push/pushf/call: writes `size` bytes at rSP - size */
    CLS_POPMEM,      /* pop r/m: EA evaluated with rSP already incremented by size */
    CLS_BITSTR,      /* bts/btr/btc m, r: `size` bytes at EA + (offset >> log2 bits) * size */
    CLS_MASKED,      /* AVX-512 masked store: nelem elements of esize under k[mreg] */
    CLS_COMPRESS,    /* vpcompress/vcompress to memory: popcount(k) elements, contiguous */
    CLS_VMASKMOV,    /* vmaskmovps/pd, vpmaskmovd/q store: mask = sign bits of vreg mreg */
    CLS_MASKMOVDQU,  /* maskmovdqu/vmaskmovdqu/maskmovq: ntstore at rDI, byte mask mreg */
    CLS_MOVDIR64B,   /* ntstore of 64 bytes at the GPR `base` (ModRM.reg) */
    CLS_SCATTER,     /* AVX-512 scatter: per-element addresses from vector index vreg */
    CLS_FLUSH,       /* clwb/clflushopt/clflush at EA; ev says which */
    CLS_FENCE,       /* ev = PC_SFENCE, PC_MFENCE or PC_FENCE */
    CLS_WINDOW,      /* writes somewhere in [EA+lo, EA+hi) in a way not modelled: error
                        if that window overlaps pmem */
    CLS_ENTER,       /* enter imm16, imm8 (size = nesting level) */
    CLS_POPF,        /* popf: keep TF set in the popped image */
    CLS_IRET,        /* iret: a fence; TF forced into the popped flags image (size = the
                        operand size: flags at rSP + 2 * size) */
    CLS_SYSCALL,     /* syscall: executed from the recorder's stub so that the instruction
                        after it is still seen before it runs */
    CLS_KENTRY,      /* int n, sysenter: the kernel returns with TF set and the next
                        instruction runs before the next trap: it is checked afterwards */
    CLS_ERROR        /* cannot tell what it does: error */
};

/* Flags of a decode entry. */
enum {
    F_FENCE = 1 << 0,    /* emit a fence after the store(s): locked RMW, xchg m */
    F_ADDR32 = 1 << 1,   /* 0x67: 32-bit addressing (EA and rDI/rCX truncated) */
    F_REP = 1 << 2,      /* rep/repne prefix on a string store */
    F_EPOCH = 1 << 3,    /* call/ret-like: invalidates the stack cache */
    F_LDSO = 1 << 4,     /* in the dynamic loader: fences are not the routine's */
    F_ALIGN64 = 1 << 5,  /* EA is aligned down to 64 (clzero) */
    F_SEGRELOAD = 1 << 6,/* may change fs/gs base (wrfsbase, syscall) */
    F_MMX = 1 << 7       /* mask register of CLS_MASKMOVDQU is an MMX register */
};

typedef struct {
    uint64_t rip;       /* 0 = empty slot */
    int64_t disp;
    int32_t lo, hi;     /* CLS_WINDOW */
    uint16_t size;      /* bytes written (or element size for masked classes) */
    uint8_t len;        /* instruction length */
    uint8_t cls;
    uint8_t ev;         /* pc_kind of the event(s) */
    uint8_t flags;
    uint8_t base, index;/* PC_R_* or 0..15 */
    uint8_t scale;      /* 1, 2, 4, 8 */
    uint8_t seg;        /* 0 none, 1 fs, 2 gs */
    uint8_t nelem;      /* masked classes: number of elements */
    uint8_t mreg;       /* mask register: k0-7 (0 = unmasked) or vector register */
    uint8_t vreg;       /* scatter: index vector register; bitstr: offset GPR */
    uint8_t isize;      /* scatter: index element size; bitstr: offset register width */
    uint8_t movable;    /* M_* below: may run natively from a copy (block stepping) */
    uint8_t bytes[16];  /* the instruction's bytes, to notice code that changed */
} pc_dentry;

/* Block stepping: an instruction that neither branches nor depends on its own address
 * (no rip-relative operand) and makes no event (CLS_NONE) gives the same result when a
 * copy of it runs elsewhere; a run of them is executed natively from a copy ending in
 * int3, one trap for the run instead of one per instruction. A push (CLS_PUSH) may join
 * when the stack it writes is not pmem; M_RSP marks instructions that change rsp in
 * other ways (after one of them, no push joins the run). */
enum { M_NONE = 0, M_YES = 1, M_PUSH = 2, M_RSP = 4, M_JMP = 8, M_JCC = 16 };
/* M_JMP (jmp rel) and M_JCC (jcc rel, condition in mreg): direct branches with their
 * target in disp. A run follows a jmp to its target and ends with a jcc, rewritten in
 * the copy to branch to one of two int3 (taken, not taken). */

/* Decodes the instruction at `rip` whose bytes are code[0..avail) and fills *e (which
 * may come out CLS_ERROR). Called from the SIGTRAP handler: no malloc once
 * pc_decode_init ran (capstone allocates from a private arena and was warmed up). */
PC_HIDDEN int pc_decode_init(void);
PC_HIDDEN void pc_decode(uint64_t rip, const uint8_t *code, size_t avail, pc_dentry *e);
/* Text of the instruction for messages: capstone's "mnemonic op_str" or the bytes. */
PC_HIDDEN void pc_decode_text(uint64_t rip, const uint8_t *code, size_t avail, char *out, size_t outlen);
/* Length of the instruction as the recorder's own parser sees it (0 if it cannot
 * parse it); for self-tests. */
PC_HIDDEN size_t pc_decode_length(const uint8_t *code, size_t avail);

/* The size of an XSAVE image for the features enabled in XCR0 (CPUID 0xD.0 EBX). */
PC_HIDDEN extern uint32_t pc_xsave_max;

/* Range of the dynamic loader's mapping. */
PC_HIDDEN extern uint64_t pc_ldso_lo, pc_ldso_hi;

/* Appends an event from outside the handler (ops, drains). */
PC_HIDDEN int pc__append(uint8_t kind, uint8_t contract, uint64_t addr, uint64_t size, uint32_t stack);
/* Interns the stack of the caller of the caller (for powercut_drain). */
PC_HIDDEN uint32_t pc__stack_here(void);
PC_HIDDEN void pc__set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
PC_HIDDEN int pc__stepping(void);
/* TSC ticks spent inside the SIGTRAP handler so far (benchmarks). */
PC_HIDDEN uint64_t pc__handler_tsc(void);

#endif
