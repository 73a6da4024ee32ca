/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Instruction bytes -> persistence kind (see pc_insn.h). No libc. */
#include "pc_insn.h"

static int is_legacy_prefix(unsigned char b) {
    switch (b) {
    case 0x66: case 0x67: case 0xF2: case 0xF3: case 0xF0:
    case 0x2E: case 0x3E: case 0x26: case 0x36: case 0x64: case 0x65:
        return 1;
    default:
        return 0;
    }
}

/* Decodes the ModRM memory operand at p[i] (ModRM byte) with REX bits rex. */
static int decode_ea(const unsigned char *p, int len, int i, int rex, pc_ea *ea) {
    if (i >= len) return 0;
    unsigned char modrm = p[i++];
    int mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3) return 0;
    ea->base = -1;
    ea->index = -1;
    ea->scale = 1;
    ea->disp = 0;
    ea->rip_rel = 0;
    if (rm == 4) {
        if (i >= len) return 0;
        unsigned char sib = p[i++];
        int idx = ((sib >> 3) & 7) | ((rex & 2) ? 8 : 0);
        ea->scale = 1 << (sib >> 6);
        ea->index = idx == 4 ? -1 : idx;
        int b = sib & 7;
        if (b == 5 && mod == 0) {
            ea->base = -1;
            mod = 2; /* disp32 follows */
        } else {
            ea->base = b | ((rex & 1) ? 8 : 0);
        }
    } else if (rm == 5 && mod == 0) {
        ea->rip_rel = 1;
        mod = 2;
    } else {
        ea->base = rm | ((rex & 1) ? 8 : 0);
    }
    if (mod == 1) {
        if (i + 1 > len) return 0;
        ea->disp = (signed char)p[i];
    } else if (mod == 2) {
        if (i + 4 > len) return 0;
        int d = (int)((unsigned)p[i] | (unsigned)p[i + 1] << 8 | (unsigned)p[i + 2] << 16 | (unsigned)p[i + 3] << 24);
        ea->disp = d;
    }
    return 1;
}

void pc_classify(const unsigned char *p, int len, pc_insn *out) {
    out->kind = PI_OTHER;
    int i = 0, opsize = 0, rep = 0;
    out->ea.addr32 = 0;
    out->ea.seg = 0;
    while (i < len && is_legacy_prefix(p[i])) {
        if (p[i] == 0x66) opsize = 1;
        if (p[i] == 0x67) out->ea.addr32 = 1;
        if (p[i] == 0xF2 || p[i] == 0xF3) rep = 1;
        if (p[i] == 0x64) out->ea.seg = 1;
        if (p[i] == 0x65) out->ea.seg = 2;
        i++;
    }
    if (i >= len) return;
    if (p[i] == 0x62) { /* EVEX (in 64-bit mode 0x62 is always EVEX) */
        out->kind = PI_EVEX;
        return;
    }
    if (p[i] == 0xC5 || p[i] == 0xC4) { /* VEX: map 0F opcodes 2B, E7, F7 are non-temporal */
        int map = 1, op;
        if (p[i] == 0xC5) {
            if (i + 2 >= len) return;
            op = p[i + 2];
        } else {
            if (i + 3 >= len) return;
            map = p[i + 1] & 0x1F;
            op = p[i + 3];
        }
        if (map == 1 && (op == 0x2B || op == 0xE7 || op == 0xF7)) out->kind = PI_NT;
        return;
    }
    int rex = 0;
    if (p[i] >= 0x40 && p[i] <= 0x4F) rex = p[i++] & 0xF;
    if (i + 1 >= len || p[i] != 0x0F) return;
    unsigned char op = p[i + 1];
    i += 2;
    switch (op) {
    case 0xC3: /* movnti */
    case 0x2B: /* movntps/movntpd (F2/F3 0F 2B: AMD movntsd/ss) */
    case 0xE7: /* movntq/movntdq */
    case 0xF7: /* maskmovq/maskmovdqu */
        out->kind = PI_NT;
        return;
    case 0xA2:
        out->kind = PI_CPUID;
        return;
    case 0x01:
        if (i < len && p[i] == 0xF9) out->kind = PI_RDTSCP;
        return;
    case 0xAE: {
        if (i >= len) return;
        unsigned char modrm = p[i];
        int mod = modrm >> 6, reg = (modrm >> 3) & 7;
        if (mod == 3) {
            if (rep || opsize) return;
            if (reg == 5) out->kind = PI_LFENCE;
            else if (reg == 6) out->kind = PI_MFENCE;
            else if (reg == 7) out->kind = PI_SFENCE;
            return;
        }
        if (rep) return;
        if (reg == 7 || (reg == 6 && opsize)) {
            if (!decode_ea(p, len, i, rex, &out->ea)) return;
            out->kind = reg == 6 ? PI_CLWB : opsize ? PI_CLFLUSHOPT : PI_CLFLUSH;
        }
        return;
    }
    default:
        return;
    }
}

const char *pc_insn_name(pc_insn_kind k) {
    switch (k) {
    case PI_CLWB: return "clwb";
    case PI_CLFLUSHOPT: return "clflushopt";
    case PI_EVEX: return "an AVX-512 (EVEX) instruction";
    case PI_NT: return "a non-temporal store";
    case PI_CLFLUSH: return "clflush";
    default: return "an instruction";
    }
}
