/*
 * x86dec.h: an x86 instruction length decoder with the little classification the emu
 * backend needs (which instructions it must emulate itself: port I/O, RDTSC, RDMSR,
 * WRMSR, HLT, SYSCALL; which open an interrupt shadow: STI, MOV SS, POP SS; CMPXCHG8B/16B, which
 * Unicorn needs a code hook on, see vmm/emu.c).
 *
 * It decodes legacy/REX/VEX/EVEX prefixes, the one-, two- and three-byte opcode maps,
 * ModRM/SIB/displacements and immediates in 16-, 32- and 64-bit code. It does not
 * validate operands or tell valid from undefined opcodes beyond what lengths need.
 */
#ifndef REWIND_VMM_X86DEC_H
#define REWIND_VMM_X86DEC_H

#include <stddef.h>
#include <stdint.h>

enum x86_kind {
	X86_OTHER = 0,
	X86_IN,     /* E4/E5 (imm8 port), EC/ED (DX) */
	X86_OUT,    /* E6/E7, EE/EF */
	X86_INS,    /* 6C/6D */
	X86_OUTS,   /* 6E/6F */
	X86_RDTSC,  /* 0F 31 */
	X86_RDTSCP, /* 0F 01 F9 */
	X86_RDMSR,  /* 0F 32 */
	X86_WRMSR,  /* 0F 30 */
	X86_HLT,    /* F4 */
	X86_STI,    /* FB */
	X86_MOVSS,  /* 8E /2, 17 (POP SS) */
	X86_CMPXCHGB, /* 0F C7 /1, memory: CMPXCHG8B / CMPXCHG16B */
	X86_SYSCALL,  /* 0F 05 */
};

struct x86_insn {
	uint8_t len;      /* total length in bytes, 1..15 */
	uint8_t kind;     /* enum x86_kind */
	uint8_t opsize;   /* 2, 4 or 8 */
	uint8_t addrsize; /* 2, 4 or 8 */
	uint8_t rep;      /* F3 or F2 prefix present */
	uint8_t seg;      /* segment override prefix byte, 0 if none */
	uint8_t imm8;     /* the imm8 of IN/OUT imm forms */
	uint8_t port_imm; /* IN/OUT with an imm8 port (E4-E7) rather than DX */
	uint8_t width;    /* IN/OUT/INS/OUTS access size: 1, 2 or 4 */
	uint8_t rex;      /* REX prefix byte, 0 if none */
	uint8_t bits;     /* the code size it was decoded for */
	uint8_t modrm;    /* offset of the ModRM byte, 0 if none (it never starts at 0) */
};

/*
 * Decode one instruction at code[0..avail). bits: 16, 32 or 64 (code-segment mode).
 * Returns 0 and fills *out, or -1 if the bytes run out or the instruction is longer
 * than 15 bytes.
 */
int x86_decode(const uint8_t *code, size_t avail, int bits, struct x86_insn *out);

/*
 * The effective address of insn's ModRM memory operand (segment base not added):
 * gpr[] in the order RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15; next_rip for
 * RIP-relative operands. Returns 0, or -1 if the operand is a register or absent.
 */
int x86_modrm_ea(const uint8_t *code, const struct x86_insn *insn, const uint64_t gpr[16],
		 uint64_t next_rip, uint64_t *ea);

#endif
