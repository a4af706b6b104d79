/*
 * x86dec.c: instruction lengths for x86 (see x86dec.h). Table-driven over the opcode
 * maps of the Intel SDM vol. 2 appendix A; the emu backend decodes each translated block
 * once with it, so it must agree with the CPU on every length it sees.
 */
#include "x86dec.h"

#include <stdbool.h>
#include <string.h>

/* Per-opcode flags for the one-byte and 0F maps. */
enum {
	M = 1 << 0,   /* has ModRM */
	IB = 1 << 1,  /* imm8 */
	IW = 1 << 2,  /* imm16 */
	IZ = 1 << 3,  /* imm16/32 by operand size */
	IV = 1 << 4,  /* imm16/32/64 by operand size (B8-BF) */
	MO = 1 << 5,  /* moffs by address size (A0-A3) */
	FP = 1 << 6,  /* far pointer: imm16 + imm16/32 */
	GRP3 = 1 << 7 /* F6/F7: immediate only for /0 and /1 */
};

#define R4(x) x, x, x, x
#define R8(x) R4(x), R4(x)

static const uint8_t map1[256] = {
	/* 00 */ M, M, M, M, IB, IZ, 0, 0, M, M, M, M, IB, IZ, 0, 0,
	/* 10 */ M, M, M, M, IB, IZ, 0, 0, M, M, M, M, IB, IZ, 0, 0,
	/* 20 */ M, M, M, M, IB, IZ, 0, 0, M, M, M, M, IB, IZ, 0, 0,
	/* 30 */ M, M, M, M, IB, IZ, 0, 0, M, M, M, M, IB, IZ, 0, 0,
	/* 40 */ R8(0), R8(0),
	/* 50 */ R8(0), R8(0),
	/* 60 */ 0, 0, M, M, 0, 0, 0, 0, IZ, M | IZ, IB, M | IB, 0, 0, 0, 0,
	/* 70 */ R8(IB), R8(IB),
	/* 80 */ M | IB, M | IZ, M | IB, M | IB, M, M, M, M, M, M, M, M, M, M, M, M,
	/* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, FP, 0, 0, 0, 0, 0,
	/* A0 */ MO, MO, MO, MO, 0, 0, 0, 0, IB, IZ, 0, 0, 0, 0, 0, 0,
	/* B0 */ R8(IB), R8(IV),
	/* C0 */ M | IB, M | IB, IW, 0, M, M, M | IB, M | IZ, IW | IB, 0, IW, 0, 0, IB, 0, 0,
	/* D0 */ M, M, M, M, IB, IB, 0, 0, M, M, M, M, M, M, M, M,
	/* E0 */ IB, IB, IB, IB, IB, IB, IB, IB, IZ, IZ, FP, IB, 0, 0, 0, 0,
	/* F0 */ 0, 0, 0, 0, 0, 0, M | GRP3, M | GRP3, 0, 0, 0, 0, 0, 0, M, M,
};

static const uint8_t map0f[256] = {
	/* 00 */ M, M, M, M, 0, 0, 0, 0, 0, 0, 0, 0, 0, M, 0, M | IB,
	/* 10 */ R8(M), R8(M),
	/* 20 */ R8(M), R8(M),
	/* 30 */ R8(0), M, 0, M, 0, 0, 0, 0, 0, /* 38, 3A: escapes handled apart */
	/* 40 */ R8(M), R8(M),
	/* 50 */ R8(M), R8(M),
	/* 60 */ R8(M), R8(M),
	/* 70 */ M | IB, M | IB, M | IB, M | IB, M, M, M, 0, M, M, M, M, M, M, M, M,
	/* 80 */ R8(IZ), R8(IZ),
	/* 90 */ R8(M), R8(M),
	/* A0 */ 0, 0, 0, M, M | IB, M, 0, 0, 0, 0, 0, M, M | IB, M, M, M,
	/* B0 */ M, M, M, M, M, M, M, M, M, M, M | IB, M, M, M, M, M,
	/* C0 */ M, M, M | IB, M, M | IB, M | IB, M | IB, M, R8(0),
	/* D0 */ R8(M), R8(M),
	/* E0 */ R8(M), R8(M),
	/* F0 */ R8(M), R8(M),
};

/* Length of ModRM + SIB + displacement starting at p (ModRM byte), or -1. */
static int modrm_len(const uint8_t *p, size_t avail, int addrsize)
{
	if (avail < 1)
		return -1;
	uint8_t modrm = p[0];
	int mod = modrm >> 6, rm = modrm & 7;
	int n = 1;
	if (mod == 3)
		return 1;
	if (addrsize == 2) {
		if (mod == 0 && rm == 6)
			n += 2;
		else if (mod == 1)
			n += 1;
		else if (mod == 2)
			n += 2;
		return n;
	}
	if (rm == 4) {
		if (avail < 2)
			return -1;
		uint8_t sib = p[1];
		n++;
		if (mod == 0 && (sib & 7) == 5)
			n += 4;
	}
	if (mod == 0 && rm == 5)
		n += 4;
	else if (mod == 1)
		n += 1;
	else if (mod == 2)
		n += 4;
	return n;
}

int x86_decode(const uint8_t *code, size_t avail, int bits, struct x86_insn *out)
{
	size_t i = 0;
	bool opsize_prefix = false, addr_prefix = false, rex_w = false;
	memset(out, 0, sizeof(*out));
	out->bits = (uint8_t)bits;

	/* Prefixes. */
	for (;;) {
		if (i >= avail || i >= 15)
			return -1;
		uint8_t b = code[i];
		if (b == 0x66)
			opsize_prefix = true;
		else if (b == 0x67)
			addr_prefix = true;
		else if (b == 0xF2 || b == 0xF3)
			out->rep = b;
		else if (b == 0xF0)
			;
		else if (b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65)
			out->seg = b;
		else
			break;
		i++;
	}
	if (bits == 64 && (code[i] & 0xF0) == 0x40) {
		rex_w = code[i] & 8;
		out->rex = code[i];
		i++;
		if (i >= avail)
			return -1;
	}

	int def = bits == 16 ? 2 : 4;
	out->opsize = rex_w ? 8 : (opsize_prefix ? (def == 2 ? 4 : 2) : def);
	if (bits == 64)
		out->addrsize = addr_prefix ? 4 : 8;
	else
		out->addrsize = addr_prefix ? (bits == 16 ? 4 : 2) : (bits == 16 ? 2 : 4);

	uint8_t op = code[i++];
	uint8_t flags;
	int map = 1;

	/* VEX (C4/C5) and EVEX (62): in 64-bit mode always; elsewhere only if ModRM.mod==3. */
	if ((op == 0xC4 || op == 0xC5 || op == 0x62) && i < avail &&
	    (bits == 64 || (code[i] & 0xC0) == 0xC0)) {
		int vmap;
		if (op == 0xC5) {
			vmap = 1;
			i += 1;
		} else if (op == 0xC4) {
			vmap = code[i] & 0x1F;
			i += 2;
		} else {
			vmap = code[i] & 0x03;
			i += 3;
		}
		if (i >= avail)
			return -1;
		uint8_t vop = code[i++];
		if (vmap == 1 && vop == 0x77) /* VZEROUPPER/VZEROALL: no ModRM */
			goto done;
		out->modrm = (uint8_t)i;
		int ml = modrm_len(code + i, avail - i, out->addrsize);
		if (ml < 0)
			return -1;
		i += ml;
		if (vmap == 3)
			i += 1;
		goto done;
	}

	if (op == 0x0F) {
		if (i >= avail)
			return -1;
		uint8_t op2 = code[i++];
		if (op2 == 0x38 || op2 == 0x3A) {
			if (i >= avail)
				return -1;
			i++; /* the third opcode byte */
			out->modrm = (uint8_t)i;
			int ml = modrm_len(code + i, avail - i, out->addrsize);
			if (ml < 0)
				return -1;
			i += ml;
			if (op2 == 0x3A)
				i += 1;
			goto done;
		}
		map = 2;
		flags = map0f[op2];
		switch (op2) {
		case 0x31:
			out->kind = X86_RDTSC;
			break;
		case 0x32:
			out->kind = X86_RDMSR;
			break;
		case 0x30:
			out->kind = X86_WRMSR;
			break;
		case 0x05:
			out->kind = X86_SYSCALL;
			break;
		case 0x01:
			if (i < avail && code[i] == 0xF9)
				out->kind = X86_RDTSCP;
			break;
		case 0xC7:
			if (i < avail && ((code[i] >> 3) & 7) == 1 && (code[i] >> 6) != 3)
				out->kind = X86_CMPXCHGB;
			break;
		}
		op = op2;
	} else {
		flags = map1[op];
		switch (op) {
		case 0xE4:
		case 0xE5:
		case 0xEC:
		case 0xED:
			out->kind = X86_IN;
			break;
		case 0xE6:
		case 0xE7:
		case 0xEE:
		case 0xEF:
			out->kind = X86_OUT;
			break;
		case 0x6C:
		case 0x6D:
			out->kind = X86_INS;
			break;
		case 0x6E:
		case 0x6F:
			out->kind = X86_OUTS;
			break;
		case 0xF4:
			out->kind = X86_HLT;
			break;
		case 0xFB:
			out->kind = X86_STI;
			break;
		case 0x17:
			if (bits != 64)
				out->kind = X86_MOVSS;
			break;
		case 0x8E:
			if (i < avail && ((code[i] >> 3) & 7) == 2)
				out->kind = X86_MOVSS;
			break;
		}
		if (out->kind == X86_IN || out->kind == X86_OUT || out->kind == X86_INS ||
		    out->kind == X86_OUTS) {
			out->width = (op & 1) ? (out->opsize == 2 ? 2 : 4) : 1;
			if (op >= 0xE4 && op <= 0xE7 && i < avail) {
				out->imm8 = code[i];
				out->port_imm = 1;
			}
		}
	}

	if (flags & M) {
		out->modrm = (uint8_t)i;
		int ml = modrm_len(code + i, avail - i, out->addrsize);
		if (ml < 0)
			return -1;
		if ((flags & GRP3) && ((code[i] >> 3) & 7) < 2)
			i += (op == 0xF6) ? 1 : (out->opsize == 2 ? 2 : 4);
		i += ml;
	}
	if (flags & IB)
		i += 1;
	if (flags & IW)
		i += 2;
	if (flags & IZ) {
		/* Near branches (E8, E9, 0F 8x) take 32-bit displacements in 64-bit mode. */
		bool branch = (map == 1 && (op == 0xE8 || op == 0xE9)) || (map == 2);
		if (bits == 64 && branch)
			i += 4;
		else
			i += out->opsize == 2 ? 2 : 4;
	}
	if (flags & IV)
		i += out->opsize;
	if (flags & MO)
		i += out->addrsize;
	if (flags & FP)
		i += 2 + (out->opsize == 2 ? 2 : 4);
done:
	if (i > 15 || i > avail)
		return -1;
	out->len = (uint8_t)i;
	return 0;
}

int x86_modrm_ea(const uint8_t *code, const struct x86_insn *in, const uint64_t gpr[16],
		 uint64_t next_rip, uint64_t *ea)
{
	if (!in->modrm)
		return -1;
	const uint8_t *p = code + in->modrm;
	int mod = p[0] >> 6, rm = p[0] & 7;
	if (mod == 3)
		return -1;
	uint64_t amask = in->addrsize == 8 ? ~0ull : (in->addrsize == 4 ? 0xffffffffull : 0xffff);
	int64_t disp = 0;
	uint64_t a = 0;
	if (in->addrsize == 2) {
		static const int b16[8][2] = {{3, 6}, {3, 7}, {5, 6}, {5, 7}, {6, -1}, {7, -1},
					      {5, -1}, {3, -1}};
		const uint8_t *d = p + 1;
		if (mod == 0 && rm == 6) {
			disp = (int16_t)(d[0] | d[1] << 8);
		} else {
			a = gpr[b16[rm][0]] + (b16[rm][1] >= 0 ? gpr[b16[rm][1]] : 0);
			if (mod == 1)
				disp = (int8_t)d[0];
			else if (mod == 2)
				disp = (int16_t)(d[0] | d[1] << 8);
		}
		*ea = (a + (uint64_t)disp) & amask;
		return 0;
	}
	int rexb = (in->rex & 1) ? 8 : 0, rexx = (in->rex & 2) ? 8 : 0;
	const uint8_t *d = p + 1;
	if (rm == 4) {
		uint8_t sib = p[1];
		int scale = sib >> 6, idx = ((sib >> 3) & 7) | rexx, base = (sib & 7);
		d = p + 2;
		if (idx != 4)
			a += gpr[idx] << scale;
		if (base == 5 && mod == 0) {
			int32_t v;
			memcpy(&v, d, 4);
			disp = v;
		} else {
			a += gpr[base | rexb];
		}
	} else if (rm == 5 && mod == 0) {
		int32_t v;
		memcpy(&v, d, 4);
		disp = v;
		if (in->bits == 64)
			a = next_rip; /* RIP-relative */
	} else {
		a = gpr[rm | rexb];
	}
	if (mod == 1) {
		disp = (int8_t)d[0];
	} else if (mod == 2) {
		int32_t v;
		memcpy(&v, d, 4);
		disp = v;
	}
	*ea = (a + (uint64_t)disp) & amask;
	return 0;
}
