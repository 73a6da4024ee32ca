/*
 * Instruction classification for the recorder: what an instruction does to memory.
 *
 * Legacy-encoded instructions go through capstone 4 (with detail). VEX/EVEX-encoded
 * ones go through the recorder's own parser and tables: capstone 4.0.2 fails to decode
 * many AVX-512 store forms (masked vextract*, vpmovwb, vpmovqd xmm/ymm, kmovd/kmovq to
 * memory, scatters with zmm16+ indices), reports the VSIB index of scatters as a GPR,
 * and its operand access flags say READ for most stores (movnti, vmovdqu8, cmpxchg...),
 * so neither its success nor its CS_AC_WRITE can be trusted there. What capstone does
 * not know among legacy instructions (movdir64b, movdiri, serialize, clzero, enqcmd,
 * cldemote) is recognised from the opcode bytes.
 *
 * Runs in the SIGTRAP handler on a decode-cache miss: no malloc (capstone allocates
 * from a private arena, set up before cs_open).
 */
#if defined(__linux__) && defined(__x86_64__)
#define _GNU_SOURCE
#include "pc_internal.h"

#include <capstone/capstone.h>
#include <cpuid.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

uint32_t pc_xsave_max = 4096;

/* ---------------------------------------------------------------- capstone arena */

#define ARENA_SIZE (64u << 20)
static uint8_t *arena;
static size_t arena_used;

static void *CAPSTONE_API a_malloc(size_t n) {
    if (!arena) return NULL;
    size_t need = ((n + 15) & ~(size_t)15) + 16;
    if (arena_used + need > ARENA_SIZE) return NULL;
    uint8_t *p = arena + arena_used;
    arena_used += need;
    *(size_t *)p = n;
    return p + 16;
}
static void *CAPSTONE_API a_calloc(size_t nm, size_t sz) {
    if (sz && nm > SIZE_MAX / sz) return NULL;
    void *p = a_malloc(nm * sz);
    if (p) memset(p, 0, nm * sz);
    return p;
}
static void CAPSTONE_API a_free(void *p) {
    if (!p) return;
    uint8_t *h = (uint8_t *)p - 16;
    size_t need = ((*(size_t *)h + 15) & ~(size_t)15) + 16;
    if (h + need == arena + arena_used) arena_used -= need; /* last block: give back */
}
static void *CAPSTONE_API a_realloc(void *p, size_t n) {
    if (!p) return a_malloc(n);
    size_t old = *(size_t *)((uint8_t *)p - 16);
    if (n <= old) return p;
    void *q = a_malloc(n);
    if (q) {
        memcpy(q, p, old);
        a_free(p);
    }
    return q;
}
static int CAPSTONE_API a_vsnprintf(char *s, size_t n, const char *fmt, va_list ap) {
    return vsnprintf(s, n, fmt, ap);
}

static csh cs;
static cs_insn *insn;
static int decode_ready;
static uint8_t ro_ids[X86_INS_ENDING]; /* instructions whose memory operands are only read */

static const unsigned read_only_ids[] = {
    X86_INS_CMP, X86_INS_TEST, X86_INS_BT, X86_INS_NOP, X86_INS_JMP, X86_INS_LJMP,
    X86_INS_PREFETCH, X86_INS_PREFETCHNTA, X86_INS_PREFETCHT0, X86_INS_PREFETCHT1,
    X86_INS_PREFETCHT2, X86_INS_PREFETCHW,
    X86_INS_FLD, X86_INS_FILD, X86_INS_FBLD, X86_INS_FLDCW, X86_INS_FLDENV, X86_INS_FRSTOR,
    X86_INS_FCOM, X86_INS_FCOMP, X86_INS_FICOM, X86_INS_FICOMP, X86_INS_FADD, X86_INS_FIADD,
    X86_INS_FSUB, X86_INS_FISUB, X86_INS_FSUBR, X86_INS_FISUBR, X86_INS_FMUL, X86_INS_FIMUL,
    X86_INS_FDIV, X86_INS_FIDIV, X86_INS_FDIVR, X86_INS_FIDIVR,
    X86_INS_FXRSTOR, X86_INS_FXRSTOR64, X86_INS_XRSTOR, X86_INS_XRSTOR64, X86_INS_XRSTORS,
    X86_INS_XRSTORS64, X86_INS_LDMXCSR, X86_INS_VLDMXCSR,
    X86_INS_MUL, X86_INS_IMUL, X86_INS_DIV, X86_INS_IDIV,
    X86_INS_VERR, X86_INS_VERW, X86_INS_LGDT, X86_INS_LIDT, X86_INS_LLDT, X86_INS_LTR,
    X86_INS_LMSW, X86_INS_INVLPG, X86_INS_BOUND, X86_INS_XLATB,
    X86_INS_LODSB, X86_INS_LODSW, X86_INS_LODSD, X86_INS_LODSQ,
    X86_INS_SCASB, X86_INS_SCASW, X86_INS_SCASD, X86_INS_SCASQ,
    X86_INS_CMPSB, X86_INS_CMPSW, X86_INS_CMPSD, X86_INS_CMPSQ,
    X86_INS_OUTSB, X86_INS_OUTSW, X86_INS_OUTSD, X86_INS_CLFLUSH, X86_INS_CLFLUSHOPT,
    X86_INS_CLWB, X86_INS_LEA,
};

int pc_decode_init(void) {
    if (decode_ready) return 0;
    arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
        arena = NULL;
        pc__set_error("cannot map the disassembler's arena");
        return -1;
    }
    cs_opt_mem mem = {a_malloc, a_calloc, a_realloc, a_free, a_vsnprintf};
    if (cs_option(0, CS_OPT_MEM, (size_t)&mem) != CS_ERR_OK) {
        pc__set_error("capstone refused a custom allocator");
        return -1;
    }
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
        pc__set_error("capstone cannot open an x86-64 disassembler");
        return -1;
    }
    cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    insn = cs_malloc(cs);
    if (!insn) {
        pc__set_error("capstone cannot allocate an instruction");
        return -1;
    }
    for (size_t i = 0; i < sizeof read_only_ids / sizeof read_only_ids[0]; i++) ro_ids[read_only_ids[i]] = 1;
    /* capstone builds some tables on its first decode (and sorts one with libc's qsort,
     * which mallocs): do that here, not in the signal handler */
    static const uint8_t warm[] = {0x48, 0x89, 0x07, 0xf0, 0x48, 0x0f, 0xb1, 0x0f, 0xf3, 0xa4};
    const uint8_t *wp = warm;
    size_t wn = sizeof warm;
    uint64_t wa = 0x1000;
    while (wn && cs_disasm_iter(cs, &wp, &wn, &wa, insn)) {
    }
    unsigned a, b, c, d;
    if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d) && b >= 576) pc_xsave_max = b;
    decode_ready = 1;
    return 0;
}

/* ---------------------------------------------------------------- raw parser */

enum { ENC_LEGACY = 0, ENC_VEX, ENC_EVEX, ENC_XOP };

typedef struct {
    uint8_t enc, p66, p67, rep, lock, seg, rex;
    uint8_t map, op;
    uint8_t W, R, X, B, Rp, Vp, vvvv, L, pp, aaa, z, bc;
    uint8_t has_modrm, modrm, mod, reg, rm;
    uint8_t base, index, scale, has_sib, vsib;
    uint8_t disp8; /* mod == 1: the displacement may be compressed (EVEX) */
    int64_t disp;
    uint8_t imm_size, len, opc_off;
} raw_t;

static int modrm_map1(uint8_t op) {
    if (op >= 0x80 && op <= 0x8f) return 0;
    if (op >= 0xc8 && op <= 0xcf) return 0;
    if (op >= 0x30 && op <= 0x37) return 0;
    switch (op) {
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0b: case 0x0e:
    case 0x77: case 0xa0: case 0xa1: case 0xa2: case 0xa8: case 0xa9: case 0xaa:
        return 0;
    default:
        return 1;
    }
}
static int imm_map1(uint8_t op) {
    switch (op) {
    case 0x70: case 0x71: case 0x72: case 0x73: case 0xa4: case 0xac: case 0xba:
    case 0xc2: case 0xc4: case 0xc5: case 0xc6: case 0x0f:
        return 1;
    default:
        return 0;
    }
}

/* Parses prefixes, VEX/EVEX/XOP, opcode, ModRM, SIB, displacement and the immediate's
 * size. Returns 0, or -1 when the bytes run out or the opcode map is the one-byte map
 * of a legacy instruction past its opcode (only the opcode byte is parsed then: *r has
 * op and prefixes, has_modrm = 0, len = 0). */
static int parse(const uint8_t *b, size_t n, raw_t *r) {
    memset(r, 0, sizeof *r);
    r->base = r->index = PC_R_NONE;
    r->scale = 1;
    size_t i = 0;
    for (;; i++) {
        if (i >= n || i >= 15) return -1;
        uint8_t c = b[i];
        if (c == 0x66) r->p66 = 1;
        else if (c == 0x67) r->p67 = 1;
        else if (c == 0xf2 || c == 0xf3) r->rep = c;
        else if (c == 0xf0) r->lock = 1;
        else if (c == 0x64) r->seg = 1;
        else if (c == 0x65) r->seg = 2;
        else if (c == 0x2e || c == 0x36 || c == 0x3e || c == 0x26) { /* null in 64-bit mode */ }
        else break;
    }
    uint8_t c = b[i];
    if (c == 0xc5 || c == 0xc4 || c == 0x62 || (c == 0x8f && i + 1 < n && (b[i + 1] & 0x1f) >= 8)) {
        if (c == 0xc5) {
            if (i + 2 >= n) return -1;
            uint8_t p = b[i + 1];
            r->enc = ENC_VEX;
            r->R = !(p & 0x80);
            r->X = r->B = 0;
            r->vvvv = (~p >> 3) & 15;
            r->L = (p & 4) ? 32 : 16;
            r->pp = p & 3;
            r->map = 1;
            r->opc_off = i + 2;
            i += 2;
        } else if (c == 0xc4 || c == 0x8f) {
            if (i + 3 >= n) return -1;
            uint8_t p0 = b[i + 1], p1 = b[i + 2];
            r->enc = c == 0xc4 ? ENC_VEX : ENC_XOP;
            r->R = !(p0 & 0x80);
            r->X = !(p0 & 0x40);
            r->B = !(p0 & 0x20);
            r->map = p0 & 0x1f;
            r->W = p1 >> 7;
            r->vvvv = (~p1 >> 3) & 15;
            r->L = (p1 & 4) ? 32 : 16;
            r->pp = p1 & 3;
            r->opc_off = i + 3;
            i += 3;
        } else {
            if (i + 4 >= n) return -1;
            uint8_t p0 = b[i + 1], p1 = b[i + 2], p2 = b[i + 3];
            r->enc = ENC_EVEX;
            r->R = !(p0 & 0x80);
            r->X = !(p0 & 0x40);
            r->B = !(p0 & 0x20);
            r->Rp = !(p0 & 0x10);
            r->map = p0 & 7;
            r->W = p1 >> 7;
            r->vvvv = ((~p1 >> 3) & 15) | ((p2 & 8) ? 0 : 16);
            r->Vp = !(p2 & 8);
            r->pp = p1 & 3;
            r->z = p2 >> 7;
            r->L = 16 << ((p2 >> 5) & 3);
            if (r->L > 64) r->L = 64;
            r->bc = (p2 >> 4) & 1;
            r->aaa = p2 & 7;
            r->opc_off = i + 4;
            i += 4;
        }
        r->op = b[i++];
        r->has_modrm = !(r->enc == ENC_VEX && r->map == 1 && r->op == 0x77);
        if (r->enc == ENC_XOP) r->imm_size = r->map == 8 ? 1 : r->map == 10 ? 4 : 0;
        else if (r->map == 3) r->imm_size = 1;
        else if (r->map == 1) r->imm_size = (r->op >= 0x70 && r->op <= 0x73) || (r->op >= 0xc2 && r->op <= 0xc6 && r->op != 0xc3);
        else r->imm_size = 0;
    } else {
        r->enc = ENC_LEGACY;
        if ((c & 0xf0) == 0x40) {
            r->rex = c;
            r->W = (c >> 3) & 1;
            r->R = (c >> 2) & 1;
            r->X = (c >> 1) & 1;
            r->B = c & 1;
            i++;
            if (i >= n) return -1;
            c = b[i];
        }
        r->opc_off = (uint8_t)i;
        if (c != 0x0f) {
            r->map = 0;
            r->op = c;
            return -1; /* the one-byte map is capstone's */
        }
        if (i + 1 >= n) return -1;
        if (b[i + 1] == 0x38 || b[i + 1] == 0x3a) {
            if (i + 2 >= n) return -1;
            r->map = b[i + 1] == 0x38 ? 2 : 3;
            r->op = b[i + 2];
            i += 3;
            r->has_modrm = 1;
            r->imm_size = r->map == 3;
        } else {
            r->map = 1;
            r->op = b[i + 1];
            i += 2;
            r->has_modrm = (uint8_t)modrm_map1(r->op);
            r->imm_size = (uint8_t)imm_map1(r->op);
        }
    }
    if (r->has_modrm) {
        if (i >= n) return -1;
        r->modrm = b[i++];
        r->mod = r->modrm >> 6;
        r->reg = ((r->modrm >> 3) & 7) | (r->R << 3) | (r->Rp << 4);
        r->rm = r->modrm & 7;
        if (r->mod != 3) {
            int disp_size = r->mod == 1 ? 1 : r->mod == 2 ? 4 : 0;
            if (r->rm == 4) {
                if (i >= n) return -1;
                uint8_t sib = b[i++];
                uint8_t idx = ((sib >> 3) & 7) | (r->X << 3);
                r->scale = (uint8_t)(1 << (sib >> 6));
                r->has_sib = 1;
                r->vsib = idx | (r->Vp << 4); /* as a vector index (scatter/gather) */
                if (idx != 4) r->index = idx;
                if ((sib & 7) == 5 && r->mod == 0) disp_size = 4;
                else r->base = (sib & 7) | (r->B << 3);
            } else if (r->rm == 5 && r->mod == 0) {
                r->base = PC_R_RIP;
                disp_size = 4;
            } else {
                r->base = r->rm | (r->B << 3);
            }
            if (i + disp_size > n) return -1;
            if (disp_size == 1) {
                r->disp = (int8_t)b[i];
                r->disp8 = 1;
            } else if (disp_size == 4) {
                int32_t d;
                memcpy(&d, b + i, 4);
                r->disp = d;
            }
            i += disp_size;
        } else {
            r->rm |= (r->B << 3) | (r->enc == ENC_EVEX ? (r->X << 4) : 0);
        }
    }
    i += r->imm_size;
    if (i > n || i > 15) return -1;
    r->len = (uint8_t)i;
    return 0;
}

size_t pc_decode_length(const uint8_t *code, size_t avail) {
    raw_t r;
    return parse(code, avail, &r) == 0 ? r.len : 0;
}

/* ---------------------------------------------------------------- entry builders */

static void set_mem_from_raw(pc_dentry *e, const raw_t *r, int disp_n) {
    e->base = r->base;
    e->index = r->index == PC_R_NONE ? PC_R_NONE : (uint8_t)(r->index & 15);
    e->scale = r->scale;
    e->disp = r->disp * (r->enc == ENC_EVEX && r->disp8 ? disp_n : 1);
    e->seg = r->seg;
    if (r->p67) e->flags |= F_ADDR32;
}

static void make_store(pc_dentry *e, const raw_t *r, uint8_t ev, unsigned size) {
    e->cls = CLS_STORE;
    e->ev = ev;
    e->size = (uint16_t)size;
    set_mem_from_raw(e, r, (int)size);
}

/* A store of `memsize` bytes made of elements of `esize` under the EVEX mask aaa. */
static void make_masked(pc_dentry *e, const raw_t *r, unsigned esize, unsigned memsize) {
    set_mem_from_raw(e, r, (int)memsize);
    if (r->aaa == 0) {
        e->cls = CLS_STORE;
        e->ev = PC_STORE;
        e->size = (uint16_t)memsize;
        return;
    }
    e->cls = CLS_MASKED;
    e->ev = PC_STORE;
    e->size = (uint16_t)esize;
    e->nelem = (uint8_t)(memsize / esize);
    e->mreg = r->aaa;
}

static void make_window(pc_dentry *e, const raw_t *r, int32_t lo, int32_t hi) {
    e->cls = CLS_WINDOW;
    e->lo = lo;
    e->hi = hi;
    set_mem_from_raw(e, r, 64);
    if (r->enc == ENC_EVEX && r->disp8) {
        /* disp8*N with N unknown (1..64): cover every N */
        int64_t d = r->disp;
        e->disp = 0;
        int64_t a = d, bnd = d * 64;
        int64_t mn = a < bnd ? a : bnd, mx = a < bnd ? bnd : a;
        e->lo = (int32_t)(mn + lo);
        e->hi = (int32_t)(mx + hi);
    }
}

/* Map 3, 66 prefix, VEX and EVEX alike: pextrb/pextrw/pextrd-q/extractps to memory
 * (0x14..0x17) store one element of its own size. Returns 1 when `r` is one of them. */
static int make_extract(pc_dentry *e, const raw_t *r) {
    switch (r->op) {
    case 0x14: make_store(e, r, PC_STORE, 1); return 1;
    case 0x15: make_store(e, r, PC_STORE, 2); return 1;
    case 0x16: make_store(e, r, PC_STORE, r->W ? 8 : 4); return 1;
    case 0x17: make_store(e, r, PC_STORE, 4); return 1;
    }
    return 0;
}

static void classify_evex(pc_dentry *e, const raw_t *r) {
    unsigned L = r->L, pp = r->pp, W = r->W;
    if (r->mod == 3) return; /* no EVEX instruction writes memory from a register form */
    switch (r->map) {
    case 1:
        switch (r->op) {
        case 0x11:
            if (pp == 0) make_masked(e, r, 4, L);
            else if (pp == 1) make_masked(e, r, 8, L);
            else if (pp == 2) make_masked(e, r, 4, 4);
            else make_masked(e, r, 8, 8);
            return;
        case 0x13: case 0x17:
            if (pp <= 1) make_store(e, r, PC_STORE, 8);
            return;
        case 0x29:
            if (pp <= 1) make_masked(e, r, pp ? 8 : 4, L);
            return;
        case 0x2b:
            if (pp <= 1) make_store(e, r, PC_NTSTORE, L);
            return;
        case 0x7e:
            if (pp == 1) make_store(e, r, PC_STORE, W ? 8 : 4);
            return;
        case 0x7f:
            if (pp == 1 || pp == 2) make_masked(e, r, W ? 8 : 4, L);
            else if (pp == 3) make_masked(e, r, W ? 2 : 1, L);
            return;
        case 0xd6:
            if (pp == 1) make_store(e, r, PC_STORE, 8);
            return;
        case 0xe7:
            if (pp == 1) make_store(e, r, PC_NTSTORE, L);
            return;
        }
        return;
    case 2: {
        uint8_t hi = r->op & 0xf0, lo = r->op & 0x0f;
        if (pp == 2 && (hi == 0x10 || hi == 0x20 || hi == 0x30) && lo <= 5) {
            static const uint8_t src[6] = {2, 4, 8, 4, 8, 8}, dst[6] = {1, 1, 1, 2, 2, 4};
            unsigned nel = L / src[lo];
            make_masked(e, r, dst[lo], nel * dst[lo]);
            return;
        }
        if (pp != 1) return;
        if (r->op == 0x63 || r->op == 0x8a || r->op == 0x8b) {
            unsigned es = r->op == 0x63 ? (W ? 2 : 1) : (W ? 8 : 4);
            e->cls = CLS_COMPRESS;
            e->ev = PC_STORE;
            e->size = (uint16_t)es;
            e->nelem = (uint8_t)(L / es);
            e->mreg = r->aaa;
            set_mem_from_raw(e, r, (int)es);
            return;
        }
        if (r->op >= 0xa0 && r->op <= 0xa3) {
            unsigned es = W ? 8 : 4, is = (r->op & 1) ? 8 : 4;
            unsigned nel = (is == 4 && !W) ? L / 4 : L / 8;
            if (!r->has_sib) { e->cls = CLS_ERROR; return; }
            e->cls = CLS_SCATTER;
            e->ev = PC_STORE;
            e->size = (uint16_t)es;
            e->isize = (uint8_t)is;
            e->nelem = (uint8_t)nel;
            e->mreg = r->aaa;
            set_mem_from_raw(e, r, (int)es);
            e->vreg = r->vsib; /* full 0..31 vector register */
            e->index = PC_R_NONE;
            return;
        }
        return;
    }
    case 3:
        if (pp != 1 || make_extract(e, r)) return;
        switch (r->op) {
        case 0x19: case 0x39: make_masked(e, r, W ? 8 : 4, 16); return;
        case 0x1b: case 0x3b: make_masked(e, r, W ? 8 : 4, 32); return;
        case 0x1d: make_masked(e, r, 2, L / 2); return;
        }
        return;
    case 5:
        if (r->op == 0x11 && pp == 2) make_masked(e, r, 2, 2);
        else if (r->op == 0x7e && pp == 1) make_store(e, r, PC_STORE, 2);
        return;
    }
}

static void classify_vex(pc_dentry *e, const raw_t *r) {
    unsigned L = r->L, pp = r->pp, W = r->W;
    if (r->map == 1 && r->op == 0xf7 && pp == 1 && r->mod == 3) { /* vmaskmovdqu */
        e->cls = CLS_MASKMOVDQU;
        e->ev = PC_NTSTORE;
        e->size = 16;
        e->mreg = r->rm & 15;
        if (r->p67) e->flags |= F_ADDR32;
        return;
    }
    if (!r->has_modrm || r->mod == 3) return;
    switch (r->map) {
    case 1:
        switch (r->op) {
        case 0x11:
            if (pp <= 1) make_store(e, r, PC_STORE, L);
            else make_store(e, r, PC_STORE, pp == 2 ? 4 : 8);
            return;
        case 0x13: case 0x17: if (pp <= 1) make_store(e, r, PC_STORE, 8); return;
        case 0x29: if (pp <= 1) make_store(e, r, PC_STORE, L); return;
        case 0x2b: if (pp <= 1) make_store(e, r, PC_NTSTORE, L); return;
        case 0x7e: if (pp == 1) make_store(e, r, PC_STORE, W ? 8 : 4); return;
        case 0x7f: if (pp == 1 || pp == 2) make_store(e, r, PC_STORE, L); return;
        case 0xd6: if (pp == 1) make_store(e, r, PC_STORE, 8); return;
        case 0xe7: if (pp == 1) make_store(e, r, PC_NTSTORE, L); return;
        case 0xae: if (((r->modrm >> 3) & 7) == 3) make_store(e, r, PC_STORE, 4); return; /* vstmxcsr */
        case 0x91: /* kmov m, k */
            if (pp == 0) make_store(e, r, PC_STORE, W ? 8 : 2);
            else if (pp == 1) make_store(e, r, PC_STORE, W ? 4 : 1);
            return;
        }
        return;
    case 2:
        if (pp == 1 && (r->op == 0x2e || r->op == 0x2f || r->op == 0x8e)) {
            unsigned es = r->op == 0x2e ? 4 : r->op == 0x2f ? 8 : (W ? 8 : 4);
            e->cls = CLS_VMASKMOV;
            e->ev = PC_STORE;
            e->size = (uint16_t)es;
            e->nelem = (uint8_t)(L / es);
            e->mreg = r->vvvv & 15;
            set_mem_from_raw(e, r, 1);
            return;
        }
        if (r->op == 0x49 && pp == 1) { /* sttilecfg m512 */
            make_store(e, r, PC_STORE, 64);
            return;
        }
        if (r->op == 0x4b && pp == 2) { /* AMX tilestored: rows at a register stride */
            make_window(e, r, INT32_MIN, INT32_MAX);
            return;
        }
        return;
    case 3:
        if (pp != 1 || make_extract(e, r)) return;
        switch (r->op) {
        case 0x19: case 0x39: make_store(e, r, PC_STORE, 16); return;
        case 0x1d: make_store(e, r, PC_STORE, L == 32 ? 16 : 8); return;
        }
        return;
    }
}

/* Legacy instructions capstone 4 does not decode. */
static void classify_legacy_unknown(pc_dentry *e, const raw_t *r, int parsed) {
    if (!parsed) {
        e->cls = CLS_ERROR;
        return;
    }
    e->len = r->len;
    if (r->map == 2 && r->op == 0xf8 && r->mod != 3) {
        if (r->p66 && !r->rep) { /* movdir64b r, m512 */
            e->cls = CLS_MOVDIR64B;
            e->ev = PC_NTSTORE;
            e->size = 64;
            e->base = r->reg & 15;
            if (r->p67) e->flags |= F_ADDR32;
            return;
        }
        if (r->rep) { /* enqcmd/enqcmds: 64 bytes at ES:[reg] */
            e->cls = CLS_WINDOW;
            e->base = r->reg & 15;
            e->index = PC_R_NONE;
            e->lo = 0;
            e->hi = 64;
            if (r->p67) e->flags |= F_ADDR32;
            return;
        }
    }
    if (r->map == 2 && r->op == 0xf9 && r->mod != 3 && !r->p66 && !r->rep) { /* movdiri */
        make_store(e, r, PC_NTSTORE, r->W ? 8 : 4);
        return;
    }
    if (r->map == 1 && r->op == 0x01 && r->mod == 3) {
        if (r->modrm == 0xe8 && !r->p66 && !r->rep) { e->cls = CLS_FENCE; e->ev = PC_FENCE; return; } /* serialize */
        if (r->modrm == 0xfc) { /* clzero: 64 bytes at rAX aligned down */
            e->cls = CLS_STORE;
            e->ev = PC_STORE;
            e->size = 64;
            e->base = 0;
            e->index = PC_R_NONE;
            e->flags |= F_ALIGN64 | (r->p67 ? F_ADDR32 : 0);
            return;
        }
        return; /* other 0F 01 register forms: system/hint instructions without stores */
    }
    if (r->map == 1 && r->op == 0xae && r->mod != 3) {
        unsigned sub = (r->modrm >> 3) & 7;
        if (sub == 7 || (sub == 6 && r->p66)) {
            e->cls = CLS_FLUSH;
            e->ev = sub == 6 ? PC_CLWB : r->p66 ? PC_CLFLUSHOPT : PC_CLFLUSH;
            set_mem_from_raw(e, r, 1);
            return;
        }
        if (sub == 4 && r->rep == 0xf3) return; /* ptwrite m: reads */
    }
    if (r->map == 1 && r->op >= 0x18 && r->op <= 0x1f) return; /* hint NOPs, cldemote, MPX */
    /* Not known to capstone nor above: without a memory operand it cannot be placed
     * either (it may be a fence, a serializing or a cache-control instruction). */
    if (!r->has_modrm || r->mod == 3) {
        e->cls = CLS_ERROR;
        return;
    }
    make_window(e, r, 0, 64);
}

/* 0F AE with mod = 3 (register forms). Without a 66/F2/F3 prefix: /5 lfence (orders
 * loads only: no event), /6 mfence, /7 sfence, /0-/4 #UD. F3 /0-/3 rd/wr fs/gs base
 * (wr* changes a segment base the recorder caches), F3 /5 incssp, F3 /6 umonitor, 66 /6
 * tpause, F2 /6 umwait: no memory written, no store ordered. Anything else (66 /7 was
 * pcommit, which ordered persistent stores) cannot be placed: an error. */
static void classify_0fae_reg(pc_dentry *e, const raw_t *r) {
    unsigned sub = r->reg & 7;
    if (!r->p66 && !r->rep) {
        if (sub == 5) return;
        if (sub == 6) { e->cls = CLS_FENCE; e->ev = PC_MFENCE; return; }
        if (sub == 7) { e->cls = CLS_FENCE; e->ev = PC_SFENCE; return; }
        e->cls = CLS_ERROR;
        return;
    }
    if (r->rep == 0xf3 && !r->p66) {
        if (sub <= 3) { if (sub >= 2) e->flags |= F_SEGRELOAD; return; }
        if (sub == 5 || sub == 6) return;
    }
    if (sub == 6 && ((r->p66 && !r->rep) || (r->rep == 0xf2 && !r->p66))) return;
    e->cls = CLS_ERROR;
}

static uint8_t gpr_num(x86_reg reg) {
    switch (reg) {
    case X86_REG_RAX: case X86_REG_EAX: return 0;
    case X86_REG_RCX: case X86_REG_ECX: return 1;
    case X86_REG_RDX: case X86_REG_EDX: return 2;
    case X86_REG_RBX: case X86_REG_EBX: return 3;
    case X86_REG_RSP: case X86_REG_ESP: return 4;
    case X86_REG_RBP: case X86_REG_EBP: return 5;
    case X86_REG_RSI: case X86_REG_ESI: return 6;
    case X86_REG_RDI: case X86_REG_EDI: return 7;
    case X86_REG_R8: case X86_REG_R8D: return 8;
    case X86_REG_R9: case X86_REG_R9D: return 9;
    case X86_REG_R10: case X86_REG_R10D: return 10;
    case X86_REG_R11: case X86_REG_R11D: return 11;
    case X86_REG_R12: case X86_REG_R12D: return 12;
    case X86_REG_R13: case X86_REG_R13D: return 13;
    case X86_REG_R14: case X86_REG_R14D: return 14;
    case X86_REG_R15: case X86_REG_R15D: return 15;
    case X86_REG_RIP: case X86_REG_EIP: return PC_R_RIP;
    default: return PC_R_NONE;
    }
}
static unsigned gpr_width(x86_reg reg) {
    switch (reg) {
    case X86_REG_AX: case X86_REG_CX: case X86_REG_DX: case X86_REG_BX: case X86_REG_SP:
    case X86_REG_BP: case X86_REG_SI: case X86_REG_DI: case X86_REG_R8W: case X86_REG_R9W:
    case X86_REG_R10W: case X86_REG_R11W: case X86_REG_R12W: case X86_REG_R13W:
    case X86_REG_R14W: case X86_REG_R15W:
        return 2;
    case X86_REG_EAX: case X86_REG_ECX: case X86_REG_EDX: case X86_REG_EBX: case X86_REG_ESP:
    case X86_REG_EBP: case X86_REG_ESI: case X86_REG_EDI: case X86_REG_R8D: case X86_REG_R9D:
    case X86_REG_R10D: case X86_REG_R11D: case X86_REG_R12D: case X86_REG_R13D:
    case X86_REG_R14D: case X86_REG_R15D:
        return 4;
    default:
        return 8;
    }
}

static int set_mem_from_cs(pc_dentry *e, const cs_x86_op *o, const raw_t *r) {
    e->base = o->mem.base == X86_REG_INVALID ? PC_R_NONE : gpr_num(o->mem.base);
    e->index = o->mem.index == X86_REG_INVALID ? PC_R_NONE : gpr_num(o->mem.index);
    if ((o->mem.base != X86_REG_INVALID && e->base == PC_R_NONE) ||
        (o->mem.index != X86_REG_INVALID && e->index == PC_R_NONE && o->mem.index != X86_REG_RIZ &&
         o->mem.index != X86_REG_EIZ))
        return -1;
    if (e->index == PC_R_RIP) return -1;
    e->scale = (uint8_t)(o->mem.scale > 0 ? o->mem.scale : 1);
    e->disp = o->mem.disp;
    e->seg = r->seg;
    if (o->mem.segment == X86_REG_FS) e->seg = 1;
    else if (o->mem.segment == X86_REG_GS) e->seg = 2;
    if (r->p67) e->flags |= F_ADDR32;
    return 0;
}

static void classify_legacy_cs(pc_dentry *e, const raw_t *r, const cs_insn *in) {
    const cs_x86 *x = &in->detail->x86;
    unsigned id = in->id;
    int mi = -1;
    for (int i = 0; i < x->op_count; i++)
        if (x->operands[i].type == X86_OP_MEM) { mi = i; break; }
    const cs_x86_op *m = mi >= 0 ? &x->operands[mi] : NULL;
    uint8_t map0op = (r->map == 0) ? r->op : 0;

    if (r->lock) e->flags |= F_FENCE;

    /* string stores, by opcode (capstone's MOVSD id is shared with the SSE move) */
    if (r->map == 0 && (map0op == 0xa4 || map0op == 0xa5 || map0op == 0xaa || map0op == 0xab ||
                        map0op == 0x6c || map0op == 0x6d)) {
        e->cls = CLS_REPSTR;
        e->ev = PC_STORE;
        e->size = (map0op & 1) ? (r->W ? 8 : r->p66 ? 2 : 4) : 1;
        if (r->rep) e->flags |= F_REP;
        if (r->p67) e->flags |= F_ADDR32;
        return;
    }
    if (r->map == 0 && ((map0op >= 0xa6 && map0op <= 0xa7) || (map0op >= 0xac && map0op <= 0xaf) ||
                        map0op == 0x6e || map0op == 0x6f))
        return; /* cmps, lods, scas, outs: reads */

    switch (id) {
    case X86_INS_SFENCE: e->cls = CLS_FENCE; e->ev = PC_SFENCE; return;
    case X86_INS_MFENCE: e->cls = CLS_FENCE; e->ev = PC_MFENCE; return;
    case X86_INS_LFENCE: return;
    case X86_INS_CPUID: e->cls = CLS_FENCE; e->ev = PC_FENCE; return;
    case X86_INS_IRET: case X86_INS_IRETD: case X86_INS_IRETQ:
        e->cls = CLS_IRET; e->ev = PC_FENCE; e->flags |= F_EPOCH;
        e->size = r->W ? 8 : r->p66 ? 2 : 4;
        return;
    case X86_INS_RET: case X86_INS_RETF: case X86_INS_RETFQ:
        e->flags |= F_EPOCH; return;
    case X86_INS_SYSCALL:
        e->cls = CLS_SYSCALL; e->flags |= F_SEGRELOAD; return;
    case X86_INS_INT: case X86_INS_INTO: case X86_INS_SYSENTER:
        e->cls = CLS_KENTRY; e->flags |= F_SEGRELOAD; return;
    case X86_INS_WRFSBASE: case X86_INS_WRGSBASE:
        e->flags |= F_SEGRELOAD; return;
    case X86_INS_CLWB: case X86_INS_CLFLUSHOPT: case X86_INS_CLFLUSH:
        if (!m || set_mem_from_cs(e, m, r) < 0) { e->cls = CLS_ERROR; return; }
        e->cls = CLS_FLUSH;
        e->ev = id == X86_INS_CLWB ? PC_CLWB : id == X86_INS_CLFLUSHOPT ? PC_CLFLUSHOPT : PC_CLFLUSH;
        return;
    case X86_INS_MASKMOVDQU: case X86_INS_VMASKMOVDQU: case X86_INS_MASKMOVQ:
        e->cls = CLS_MASKMOVDQU;
        e->ev = PC_NTSTORE;
        e->size = id == X86_INS_MASKMOVQ ? 8 : 16;
        if (id == X86_INS_MASKMOVQ) { e->flags |= F_MMX; e->mreg = r->modrm & 7; }
        else e->mreg = (r->modrm & 7) | (r->B << 3);
        if (r->p67) e->flags |= F_ADDR32;
        return;
    case X86_INS_PUSH: case X86_INS_PUSHF: case X86_INS_PUSHFD: case X86_INS_PUSHFQ:
        e->cls = CLS_PUSH; e->ev = PC_STORE; e->size = r->p66 ? 2 : 8; return;
    case X86_INS_CALL:
        e->cls = CLS_PUSH; e->ev = PC_STORE; e->size = 8; e->flags |= F_EPOCH; return;
    case X86_INS_LCALL:
        e->cls = CLS_WINDOW; e->base = 4; e->index = PC_R_NONE; e->lo = -16; e->hi = 0;
        e->flags |= F_EPOCH; return;
    case X86_INS_ENTER:
        e->cls = CLS_ENTER; e->ev = PC_STORE;
        e->size = (x->op_count >= 2 && x->operands[1].type == X86_OP_IMM) ? (uint16_t)(x->operands[1].imm & 31) : 0;
        return;
    case X86_INS_POPF: case X86_INS_POPFD: case X86_INS_POPFQ:
        e->cls = CLS_POPF; e->size = r->p66 ? 2 : 8; return;
    default:
        break;
    }
    if (!m) return;
    if (id == X86_INS_POP) {
        if (set_mem_from_cs(e, m, r) < 0) { e->cls = CLS_ERROR; return; }
        e->cls = CLS_POPMEM; e->ev = PC_STORE; e->size = r->p66 ? 2 : 8;
        return;
    }
    if (ro_ids[id]) return;
    /* which memory operand is written: the destination (Intel order: first) */
    int written = (mi == 0) || (m->access & CS_AC_WRITE);
    if (!written) return;
    if (set_mem_from_cs(e, m, r) < 0) { e->cls = CLS_ERROR; return; }
    unsigned size = m->size;
    switch (id) {
    case X86_INS_FXSAVE: case X86_INS_FXSAVE64: size = 512; break;
    case X86_INS_FNSAVE: size = r->p66 ? 94 : 108; break;
    case X86_INS_FNSTENV: size = r->p66 ? 14 : 28; break;
    case X86_INS_FNSTSW: size = 2; break;
    case X86_INS_SGDT: case X86_INS_SIDT: size = 10; break;
    case X86_INS_SLDT: case X86_INS_STR: case X86_INS_SMSW: size = 2; break;
    case X86_INS_XSAVE: case X86_INS_XSAVE64: case X86_INS_XSAVEC: case X86_INS_XSAVEC64:
    case X86_INS_XSAVEOPT: case X86_INS_XSAVEOPT64: case X86_INS_XSAVES: case X86_INS_XSAVES64:
        /* which components are written depends on RFBM, XINUSE and the modified
         * optimisation: not modelled */
        e->cls = CLS_WINDOW; e->lo = 0; e->hi = (int32_t)pc_xsave_max;
        return;
    case X86_INS_MOVNTI: case X86_INS_MOVNTDQ: case X86_INS_MOVNTPS: case X86_INS_MOVNTPD:
    case X86_INS_MOVNTQ: case X86_INS_MOVNTSD: case X86_INS_MOVNTSS:
        e->cls = CLS_STORE; e->ev = PC_NTSTORE; e->size = (uint16_t)size;
        if (!size) { e->cls = CLS_WINDOW; e->lo = 0; e->hi = 64; }
        return;
    case X86_INS_XCHG:
        e->flags |= F_FENCE; /* xchg with memory is locked */
        break;
    case X86_INS_BTS: case X86_INS_BTR: case X86_INS_BTC:
        if (x->op_count >= 2 && x->operands[1].type == X86_OP_REG) {
            uint8_t g = gpr_num(x->operands[1].reg);
            if (g > 15) {
                /* 16-bit register names are not in gpr_num: map them */
                static const x86_reg r16[16] = {X86_REG_AX, X86_REG_CX, X86_REG_DX, X86_REG_BX, X86_REG_SP,
                                                X86_REG_BP, X86_REG_SI, X86_REG_DI, X86_REG_R8W, X86_REG_R9W,
                                                X86_REG_R10W, X86_REG_R11W, X86_REG_R12W, X86_REG_R13W,
                                                X86_REG_R14W, X86_REG_R15W};
                for (uint8_t k = 0; k < 16; k++)
                    if (r16[k] == x->operands[1].reg) g = k;
            }
            if (g > 15 || !size) { e->cls = CLS_ERROR; return; }
            e->cls = CLS_BITSTR; e->ev = PC_STORE; e->size = (uint16_t)size;
            e->vreg = g; e->isize = (uint8_t)gpr_width(x->operands[1].reg);
            return;
        }
        break;
    default:
        break;
    }
    if (!size) { e->cls = CLS_WINDOW; e->lo = 0; e->hi = 64; return; }
    e->cls = CLS_STORE;
    e->ev = PC_STORE;
    e->size = (uint16_t)size;
}

/* See M_* in pc_internal.h. Conservative: anything that transfers control, traps,
 * reads its own address or is not plain register/load work stays single-stepped. */
static uint8_t legacy_movable(pc_dentry *e, const cs_insn *in) {
    if (e->flags & (F_FENCE | F_EPOCH | F_SEGRELOAD | F_LDSO)) return M_NONE;
    unsigned id = in->id;
    if (e->cls == CLS_PUSH) {
        if (id != X86_INS_PUSH) return M_NONE; /* not pushf (its image would lack TF) nor call */
    } else if (e->cls != CLS_NONE) {
        return M_NONE;
    }
    const cs_detail *d = in->detail;
    if (e->cls == CLS_NONE && d->x86.op_count == 1 && d->x86.operands[0].type == X86_OP_IMM && in->size >= 2) {
        /* direct jumps by their opcode: EB/E9 jmp; 7x and 0F 8x jcc (not jrcxz, loop) */
        const uint8_t *b = in->bytes;
        size_t k = 0;
        while (k < in->size && (b[k] == 0x66 || b[k] == 0x67 || b[k] == 0xf2 || b[k] == 0xf3 || b[k] == 0x2e ||
                                b[k] == 0x3e || (b[k] & 0xf0) == 0x40))
            k++;
        int is_jmp = k < in->size && (b[k] == 0xeb || b[k] == 0xe9) && id == X86_INS_JMP;
        int cc = -1;
        if (k < in->size && (b[k] & 0xf0) == 0x70) cc = b[k] & 15;
        else if (k + 1 < in->size && b[k] == 0x0f && (b[k + 1] & 0xf0) == 0x80) cc = b[k + 1] & 15;
        if (is_jmp || cc >= 0) {
            e->disp = d->x86.operands[0].imm;
            if (is_jmp) return M_JMP;
            e->mreg = (uint8_t)cc;
            return M_JCC;
        }
    }
    for (unsigned i = 0; i < d->groups_count; i++) {
        switch (d->groups[i]) {
        case X86_GRP_JUMP: case X86_GRP_CALL: case X86_GRP_RET: case X86_GRP_INT: case X86_GRP_IRET:
        case X86_GRP_BRANCH_RELATIVE: case X86_GRP_PRIVILEGE:
            return M_NONE;
        default:
            break;
        }
    }
    switch (id) {
    case X86_INS_UD2: case X86_INS_UD0: case X86_INS_HLT: case X86_INS_INT3: case X86_INS_INT: case X86_INS_INTO:
    case X86_INS_XBEGIN: case X86_INS_XABORT: case X86_INS_XEND: case X86_INS_SYSCALL: case X86_INS_SYSENTER:
    case X86_INS_SYSEXIT: case X86_INS_SYSRET: case X86_INS_POPF: case X86_INS_POPFD: case X86_INS_POPFQ:
    case X86_INS_PUSHF: case X86_INS_PUSHFD: case X86_INS_PUSHFQ: case X86_INS_LEAVE: case X86_INS_ENTER:
    case X86_INS_CPUID: case X86_INS_XSAVE: case X86_INS_XRSTOR: case X86_INS_WAIT:
        return M_NONE;
    default:
        break;
    }
    const cs_x86 *x = &d->x86;
    int writes_rsp = 0;
    for (int i = 0; i < x->op_count; i++) {
        const cs_x86_op *o = &x->operands[i];
        if (o->type == X86_OP_MEM && (o->mem.base == X86_REG_RIP || o->mem.base == X86_REG_EIP)) return M_NONE;
        if (o->type == X86_OP_REG && (o->reg == X86_REG_RIP || o->reg == X86_REG_EIP)) return M_NONE;
        if (o->type == X86_OP_REG && (o->reg == X86_REG_RSP || o->reg == X86_REG_ESP || o->reg == X86_REG_SP ||
                                      o->reg == X86_REG_SPL) && (o->access & CS_AC_WRITE))
            writes_rsp = 1;
    }
    if (e->cls == CLS_PUSH) return M_YES | M_PUSH;
    /* pop moves rsp up (pushes after it stay in the window checked), unless it pops rsp */
    if (id == X86_INS_POP) return M_YES | (writes_rsp ? M_RSP : 0);
    for (unsigned i = 0; i < d->regs_write_count; i++)
        if (d->regs_write[i] == X86_REG_RSP || d->regs_write[i] == X86_REG_ESP || d->regs_write[i] == X86_REG_SP)
            writes_rsp = 1;
    return M_YES | (writes_rsp ? M_RSP : 0);
}

void pc_decode(uint64_t rip, const uint8_t *code, size_t avail, pc_dentry *e) {
    memset(e, 0, sizeof *e);
    e->rip = rip;
    e->base = e->index = PC_R_NONE;
    e->scale = 1;
    if (avail > 15) avail = 15;
    raw_t r;
    int parsed = parse(code, avail, &r) == 0;
    if (r.enc == ENC_VEX || r.enc == ENC_EVEX || r.enc == ENC_XOP) {
        if (!parsed) { e->cls = CLS_ERROR; e->len = (uint8_t)avail; goto out; }
        e->len = r.len;
        if (r.enc == ENC_EVEX) classify_evex(e, &r);
        else if (r.enc == ENC_VEX) classify_vex(e, &r);
        /* VEX/EVEX: no branches; loads and register work move unless rip-relative */
        if (e->cls == CLS_NONE && r.base != PC_R_RIP) e->movable = M_YES;
        goto out; /* XOP: AMD arithmetic, loads only */
    }
    if (parsed && r.map == 1 && r.op == 0xae && r.mod == 3) {
        /* By the opcode bytes, not capstone: 0F AE with ModRM.mod = 3 is lfence (/5),
         * mfence (/6), sfence (/7) whatever the r/m bits (the CPU ignores them; capstone
         * only decodes E8, F0, F8). With a 66/F2/F3 prefix the same bytes are other
         * instructions (rd/wr fs/gs base, incssp, tpause, umonitor, umwait, pcommit). */
        e->len = r.len;
        classify_0fae_reg(e, &r);
        goto out;
    }
    {
        const uint8_t *p = code;
        size_t sz = avail;
        uint64_t a = rip;
        if (decode_ready && cs_disasm_iter(cs, &p, &sz, &a, insn)) {
            e->len = (uint8_t)insn->size;
            classify_legacy_cs(e, &r, insn);
            e->movable = legacy_movable(e, insn);
        } else {
            e->len = parsed ? r.len : (uint8_t)avail;
            classify_legacy_unknown(e, &r, parsed);
        }
    }
out:
    if (e->len == 0 || e->len > 15) e->len = (uint8_t)(avail ? avail : 1);
    memcpy(e->bytes, code, e->len < avail ? e->len : avail);
    if (rip >= pc_ldso_lo && rip < pc_ldso_hi) e->flags |= F_LDSO;
}

void pc_decode_text(uint64_t rip, const uint8_t *code, size_t avail, char *out, size_t outlen) {
    if (avail > 15) avail = 15;
    const uint8_t *p = code;
    size_t sz = avail;
    uint64_t a = rip;
    raw_t r;
    int parsed = parse(code, avail, &r) == 0;
    int vex = r.enc != ENC_LEGACY;
    if (decode_ready && cs_disasm_iter(cs, &p, &sz, &a, insn) && (!vex || !parsed || insn->size == r.len)) {
        snprintf(out, outlen, "%s%s%s", insn->mnemonic, insn->op_str[0] ? " " : "", insn->op_str);
        return;
    }
    size_t n = parsed ? r.len : avail, o = 0;
    o += (size_t)snprintf(out + o, outlen - o, "(bytes");
    for (size_t i = 0; i < n && o + 4 < outlen; i++) o += (size_t)snprintf(out + o, outlen - o, " %02x", code[i]);
    if (o + 2 < outlen) snprintf(out + o, outlen - o, ")");
}

#endif /* __linux__ && __x86_64__ */
