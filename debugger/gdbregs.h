/*
 * gdbregs.h: the x86-64 register file as gdb sees it: the target description XML, the
 * order and size of every register in 'g'/'G' packets, and 'p'/'P' for one register.
 *
 * Always x86-64: a guest in 32-bit (or 16-bit) code shows its registers zero-extended, as
 * QEMU's stub does. Register numbers are the remote protocol's (document order of the
 * XML) and also gdb's own numbers for everything before the system registers:
 *
 *    0..15  rax rbx rcx rdx rsi rdi rbp rsp r8..r15   8 bytes
 *   16      rip                                       8
 *   17      eflags                                    4 (rflags' low half)
 *   18..23  cs ss ds es fs gs                         4 (the selector, zero-extended)
 *   24..31  st0..st7                                 10 (80-bit, ST(i) order)
 *   32..39  fctrl fstat ftag fiseg fioff foseg fooff fop  4
 *   40..55  xmm0..xmm15                              16
 *   56      mxcsr                                     4
 *   57 58   fs_base gs_base                           8  (org.gnu.gdb.i386.segments)
 *   59..65  k_gs_base cr0 cr2 cr3 cr4 cr8 efer        8  (org.rewind.x86.sys: gdb has no
 *           standard feature for these; it shows them in `info registers` and as $cr3)
 *
 * 66 registers, 608 bytes in a 'g' packet.
 */
#ifndef REWIND_DEBUGGER_GDBREGS_H
#define REWIND_DEBUGGER_GDBREGS_H

#include "vmm/cpu.h"

#include <stddef.h>

enum gdb_regno {
	GDB_REG_RAX = 0,
	GDB_REG_RBX,
	GDB_REG_RCX,
	GDB_REG_RDX,
	GDB_REG_RSI,
	GDB_REG_RDI,
	GDB_REG_RBP,
	GDB_REG_RSP,
	GDB_REG_R8,
	GDB_REG_R15 = GDB_REG_R8 + 7,
	GDB_REG_RIP = 16,
	GDB_REG_EFLAGS = 17,
	GDB_REG_CS = 18,
	GDB_REG_SS,
	GDB_REG_DS,
	GDB_REG_ES,
	GDB_REG_FS,
	GDB_REG_GS,
	GDB_REG_ST0 = 24,
	GDB_REG_FCTRL = 32,
	GDB_REG_FSTAT,
	GDB_REG_FTAG,
	GDB_REG_FISEG,
	GDB_REG_FIOFF,
	GDB_REG_FOSEG,
	GDB_REG_FOOFF,
	GDB_REG_FOP,
	GDB_REG_XMM0 = 40,
	GDB_REG_MXCSR = 56,
	GDB_REG_FS_BASE = 57,
	GDB_REG_GS_BASE,
	GDB_REG_K_GS_BASE = 59,
	GDB_REG_CR0,
	GDB_REG_CR2,
	GDB_REG_CR3,
	GDB_REG_CR4,
	GDB_REG_CR8,
	GDB_REG_EFER,
	GDB_REG_COUNT /* 66 */
};

/* Bytes in a 'g' packet (twice that in hex digits). */
#define GDB_REGS_BYTES 608

/* The target description: annex "target.xml" (one file, no includes); NULL for unknown
 * annexes. *len (if len is not NULL) gets its length. The text is static. */
const char *gdb_target_xml(const char *annex, size_t *len);

/* GDB_REG_COUNT. */
unsigned gdb_reg_count(void);

/* A register's name as in the XML ("rip"), NULL for an unknown regno. */
const char *gdb_reg_name(unsigned regno);
/* Its size in bytes (0 for an unknown regno) and byte offset in a 'g' packet (-1). */
unsigned gdb_reg_size(unsigned regno);
int gdb_reg_offset(unsigned regno);

/*
 * 'g' reply: every register in gdb's order, little-endian hex (2 * GDB_REGS_BYTES chars).
 * Writes a NUL after them if there is room. Returns chars written (without the NUL) or 0
 * if cap is too small.
 */
size_t gdb_regs_encode(const struct vmm_regs *r, const struct vmm_fpregs *f, char *out, size_t cap);

/* 'p': one register, little-endian hex (NUL after it if there is room); returns chars
 * written, -1 for an unknown regno, 0 if cap is too small. */
int gdb_reg_encode(unsigned regno, const struct vmm_regs *r, const struct vmm_fpregs *f, char *out,
		   size_t cap);

/*
 * 'G' and 'P': update *r and *f from hex (either case). -1 on bad length (G: exactly
 * 2 * GDB_REGS_BYTES chars; P: exactly twice the register's size), a bad hex digit, an
 * unknown regno, or a segment selector above 0xffff; then nothing is changed.
 */
int gdb_regs_decode(const char *hex, size_t len, struct vmm_regs *r, struct vmm_fpregs *f) VMM_WUR;
int gdb_reg_decode(unsigned regno, const char *hex, size_t len, struct vmm_regs *r,
		   struct vmm_fpregs *f) VMM_WUR;

/* Lookup by name ("rip", "cr3", ...): the regno, or -1 if none. */
int gdb_reg_by_name(const char *name);

#endif
