/*
 * conform_regs: a deterministic report of integer instruction results, identical on any
 * correct x86-64 machine. Each ALU operation runs over every pair of a set of edge values
 * at 8, 32 and 64 bits; results and the flags the architecture defines for that operation
 * (undefined ones masked off, e.g. AF after logic ops, OF after multi-bit shifts) fold
 * into one FNV-1a hash per operation. Then string instructions (REP MOVS/STOS/CMPS/SCAS
 * forwards and backwards, overlapping), PUSHF after POPF, CMPXCHG/XADD/BSWAP/CMOV/SETcc,
 * and a final hash of the memory region they wrote.
 * Lines: "conform_regs: entry gdtr <base>/<limit> idtr <base>/<limit>" (the descriptor
 * tables the loader left, outside the hash: machines may differ there, rewind's backends
 * must not), "<op>: <hash>", then "conform_regs: memory <hash>", "conform_regs: hash <hash>",
 * "conform_regs: done".
 */
#include "guest.h"

/* The 32-bit SGDT/SIDT stores of entry.S: limit in bits 0-15, base in bits 16-47. */
extern uint64_t g_entry_gdtr, g_entry_idtr;

#define CF 0x001ull
#define PF 0x004ull
#define AF 0x010ull
#define ZF 0x040ull
#define SF 0x080ull
#define OF 0x800ull
#define ALL (CF | PF | AF | ZF | SF | OF)
#define LOGIC (CF | PF | ZF | SF | OF)

static const uint64_t vals[] = {
	0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
	0xffffffff, 0x100000000, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
	0x123456789abcdef0, 0xfedcba9876543210, 0x5555555555555555,
};
#define NVALS (sizeof(vals) / sizeof(vals[0]))


#define line g_report_line

static uint64_t mix(uint64_t h, uint64_t v)
{
	return g_fnv1a(h, &v, sizeof(v));
}

/*
 * Run "insn %src, %dst" over all pairs with CF first set to cf_in; hash dst and masked
 * flags. pre is an instruction run before (e.g. "stc"), after setting up.
 */
#define BINOP(name, pre, insn, mask)                                                        \
	do {                                                                                \
		uint64_t h = G_FNV_INIT;                                                    \
		for (size_t i = 0; i < NVALS; i++)                                          \
			for (size_t j = 0; j < NVALS; j++) {                                \
				uint64_t d = vals[i], f;                                    \
				__asm__ volatile(pre "\n\t" insn "\n\tpushfq\n\tpopq %1"    \
						 : "+r"(d), "=r"(f)                         \
						 : "r"(vals[j])                             \
						 : "cc");                                   \
				h = mix(mix(h, d), f & (mask));                             \
			}                                                                   \
		line("%-14s %016lx", name, h);                                              \
	} while (0)

/* Unary: "insn %dst". */
#define UNOP(name, pre, insn, mask)                                                         \
	do {                                                                                \
		uint64_t h = G_FNV_INIT;                                                    \
		for (size_t i = 0; i < NVALS; i++) {                                        \
			uint64_t d = vals[i], f;                                            \
			__asm__ volatile(pre "\n\t" insn "\n\tpushfq\n\tpopq %1"            \
					 : "+r"(d), "=r"(f)                                 \
					 :                                                  \
					 : "cc");                                           \
			h = mix(mix(h, d), f & (mask));                                     \
		}                                                                           \
		line("%-14s %016lx", name, h);                                              \
	} while (0)

/* Shift/rotate by CL over every value and counts 0..70; the CPU masks the count to
 * cmask (63, or 31 for 32-bit operands). A masked count of 0 changes no flag. */
#define SHIFT(name, insn, cmask, mask1, maskn)                                                     \
	do {                                                                                \
		uint64_t h = G_FNV_INIT;                                                    \
		for (size_t i = 0; i < NVALS; i++)                                          \
			for (uint64_t c = 0; c <= 70; c++) {                                \
				uint64_t d = vals[i], f;                                    \
				__asm__ volatile("clc\n\t" insn "\n\tpushfq\n\tpopq %1"     \
						 : "+r"(d), "=r"(f)                         \
						 : "c"(c)                                   \
						 : "cc");                                   \
				unsigned eff = (unsigned)c & (cmask);                       \
				uint64_t m = eff == 0 ? CF : eff == 1 ? (mask1) : (maskn);  \
				h = mix(mix(h, d), f & m);                                  \
			}                                                                   \
		line("%-14s %016lx", name, h);                                              \
	} while (0)

static void alu(void)
{
	BINOP("add", "", "addq %2, %0", ALL);
	BINOP("addl", "", "addl %k2, %k0", ALL);
	BINOP("addb", "", "addb %b2, %b0", ALL);
	BINOP("adc cf=1", "stc", "adcq %2, %0", ALL);
	BINOP("sub", "", "subq %2, %0", ALL);
	BINOP("subl", "", "subl %k2, %k0", ALL);
	BINOP("sbb cf=1", "stc", "sbbq %2, %0", ALL);
	BINOP("sbbb cf=1", "stc", "sbbb %b2, %b0", ALL);
	BINOP("cmp", "", "cmpq %2, %0", ALL);
	BINOP("and", "", "andq %2, %0", LOGIC);
	BINOP("orl", "", "orl %k2, %k0", LOGIC);
	BINOP("xorb", "", "xorb %b2, %b0", LOGIC);
	BINOP("test", "", "testq %2, %0", LOGIC);
	BINOP("imul", "", "imulq %2, %0", CF | OF);
	BINOP("imull", "", "imull %k2, %k0", CF | OF);
	BINOP("bt", "", "btq %2, %0", CF);
	BINOP("bts", "", "btsq %2, %0", CF);
	BINOP("btr", "", "btrl %k2, %k0", CF);
	BINOP("cmovl", "cmpq $0, %2", "cmovlq %2, %0", 0);
	BINOP("cmova", "cmpq %0, %2", "cmovaq %2, %0", 0);
	BINOP("movsx", "", "movsbq %b2, %0", 0);
	BINOP("movzwl", "", "movzwl %w2, %k0", 0);
	UNOP("neg", "", "negq %0", ALL);
	UNOP("negb", "", "negb %b0", ALL);
	UNOP("not", "", "notq %0", 0);
	UNOP("inc cf=1", "stc", "incq %0", ALL);
	UNOP("decl cf=0", "clc", "decl %k0", ALL);
	UNOP("bswap", "", "bswapq %0", 0);
	UNOP("bswapl", "", "bswapl %k0", 0);
	UNOP("sete", "testq %0, %0", "sete %b0", 0);
	UNOP("setg", "cmpq $5, %0", "setg %b0", 0);
	SHIFT("shl", "shlq %%cl, %0", 63, CF | PF | ZF | SF | OF, CF | PF | ZF | SF);
	SHIFT("shr", "shrq %%cl, %0", 63, CF | PF | ZF | SF | OF, CF | PF | ZF | SF);
	SHIFT("sar", "sarq %%cl, %0", 63, CF | PF | ZF | SF | OF, CF | PF | ZF | SF);
	SHIFT("shll", "shll %%cl, %k0", 31, CF | PF | ZF | SF | OF, CF | PF | ZF | SF);
	SHIFT("rol", "rolq %%cl, %0", 63, CF | OF, CF);
	SHIFT("ror", "rorq %%cl, %0", 63, CF | OF, CF);
	SHIFT("rcl", "rclq %%cl, %0", 63, CF | OF, CF);

	/* mul/div: rdx:rax results; flags CF/OF for mul, none for div. */
	uint64_t h = G_FNV_INIT, hd = G_FNV_INIT;
	for (size_t i = 0; i < NVALS; i++)
		for (size_t j = 0; j < NVALS; j++) {
			uint64_t lo = vals[i], hi, f;
			__asm__ volatile("mulq %3\n\tpushfq\n\tpopq %2"
					 : "+a"(lo), "=d"(hi), "=r"(f)
					 : "r"(vals[j])
					 : "cc");
			h = mix(mix(mix(h, lo), hi), f & (CF | OF));
			uint64_t q = vals[i] << 7, r = vals[i] >> 57;
			if (vals[j] <= r)
				continue; /* would #DE: divide by zero or quotient too big */
			__asm__ volatile("divq %2" : "+a"(q), "+d"(r) : "r"(vals[j]) : "cc");
			hd = mix(mix(hd, q), r);
		}
	line("%-14s %016lx", "mul", h);
	line("%-14s %016lx", "div", hd);

	/* bsf/bsr: only ZF and, for a nonzero source, the result are defined. */
	h = G_FNV_INIT;
	for (size_t i = 0; i < NVALS; i++) {
		uint64_t f, d1 = 0, d2 = 0;
		__asm__ volatile("bsfq %2, %0\n\tpushfq\n\tpopq %1" : "+r"(d1), "=r"(f) : "r"(vals[i]) : "cc");
		h = mix(h, f & ZF);
		__asm__ volatile("bsrq %1, %0" : "+r"(d2) : "r"(vals[i]) : "cc");
		if (vals[i])
			h = mix(mix(h, d1), d2);
	}
	line("%-14s %016lx", "bsf/bsr", h);

	/* cmpxchg: equal and not equal. */
	h = G_FNV_INIT;
	for (size_t i = 0; i < NVALS; i++) {
		uint64_t mem = vals[i], rax = vals[(i * 7) % NVALS], f;
		__asm__ volatile("cmpxchgq %3, %1\n\tpushfq\n\tpopq %2"
				 : "+a"(rax), "+m"(mem), "=r"(f)
				 : "r"(vals[(i + 3) % NVALS])
				 : "cc", "memory");
		h = mix(mix(mix(h, rax), mem), f & ALL);
	}
	line("%-14s %016lx", "cmpxchg", h);
}

static uint8_t region[4096] __attribute__((aligned(64)));

static void strings(void)
{
	for (size_t i = 0; i < sizeof(region); i++)
		region[i] = (uint8_t)(i * 37 + 11);

	/* Overlapping forward copy (smears), then a backward one (moves). */
	uint64_t rsi = (uint64_t)(uintptr_t)region, rdi = rsi + 3, rcx = 200;
	__asm__ volatile("rep movsb" : "+S"(rsi), "+D"(rdi), "+c"(rcx)::"memory");
	uint64_t h = mix(mix(mix(G_FNV_INIT, rsi - (uint64_t)(uintptr_t)region),
			     rdi - (uint64_t)(uintptr_t)region), rcx);
	rsi = (uint64_t)(uintptr_t)region + 1000 + 299;
	rdi = rsi + 17;
	rcx = 300;
	__asm__ volatile("std\n\trep movsb\n\tcld" : "+S"(rsi), "+D"(rdi), "+c"(rcx)::"memory");
	h = mix(mix(h, rsi - (uint64_t)(uintptr_t)region), rdi - (uint64_t)(uintptr_t)region);

	rdi = (uint64_t)(uintptr_t)region + 2048;
	rcx = 32;
	__asm__ volatile("rep stosq" : "+D"(rdi), "+c"(rcx) : "a"(0x0102030405060708ull) : "memory");
	rdi = (uint64_t)(uintptr_t)region + 2400 + 62;
	rcx = 31;
	__asm__ volatile("std\n\trep stosw\n\tcld" : "+D"(rdi), "+c"(rcx) : "a"(0xbeef) : "memory");
	h = mix(h, rdi - (uint64_t)(uintptr_t)region);

	/* repe cmpsb stops after the first difference; repne scasb after the first match. */
	memcpy(region + 3600, region + 3000, 100);
	region[3600 + 40] ^= 0xff;
	region[3500] = 0x5a;
	uint64_t f;
	rsi = (uint64_t)(uintptr_t)region + 3000;
	rdi = (uint64_t)(uintptr_t)region + 3600;
	rcx = 100;
	__asm__ volatile("repe cmpsb\n\tpushfq\n\tpopq %3"
			 : "+S"(rsi), "+D"(rdi), "+c"(rcx), "=r"(f)::"memory", "cc");
	h = mix(mix(h, rcx), f & ALL);
	rdi = (uint64_t)(uintptr_t)region + 3400;
	rcx = 500;
	__asm__ volatile("repne scasb\n\tpushfq\n\tpopq %2"
			 : "+D"(rdi), "+c"(rcx), "=r"(f)
			 : "a"(0x5a)
			 : "memory", "cc");
	h = mix(mix(mix(h, rdi - (uint64_t)(uintptr_t)region), rcx), f & ALL);
	uint64_t al;
	rsi = (uint64_t)(uintptr_t)region + 77;
	__asm__ volatile("lodsq" : "=a"(al), "+S"(rsi)::"memory");
	h = mix(h, al);
	line("%-14s %016lx", "strings", h);

	/* POPF then PUSHF: which flags stick (TF, IF, VIF/VIP, RF and VM left out). */
	const uint64_t keep = ALL | 0x400 /* DF */ | 0x3000 /* IOPL */ | 0x4000 /* NT */ |
			      0x40000 /* AC */ | 0x200000 /* ID */ | 0x2 /* reserved 1 */;
	h = G_FNV_INIT;
	static const uint64_t pats[] = {0, 0xffffffffffffffffull, 0x245cd5, 0x2, 0x40000, 0x200000};
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		uint64_t in = pats[i] & ~(0x100ull | 0x200 | 0x10000 | 0x20000 | 0x80000 | 0x100000),
			 out;
		__asm__ volatile("pushfq\n\t"
				 "pushq %1\n\t"
				 "popfq\n\t"
				 "pushfq\n\t"
				 "popq %0\n\t"
				 "popfq"
				 : "=r"(out)
				 : "r"(in)
				 : "cc", "memory");
		h = mix(h, out & keep);
	}
	line("%-14s %016lx", "popf/pushf", h);

	line("conform_regs: memory %016lx", g_fnv1a(G_FNV_INIT, region, sizeof(region)));
}

int main(void)
{
	g_puts("conform_regs: integer instruction conformance report");
	g_printf("conform_regs: entry gdtr %lx/%lx idtr %lx/%lx\n",
		 (unsigned long)(g_entry_gdtr >> 16), (unsigned long)(g_entry_gdtr & 0xffff),
		 (unsigned long)(g_entry_idtr >> 16), (unsigned long)(g_entry_idtr & 0xffff));
	alu();
	strings();
	g_printf("conform_regs: hash %016lx\n", g_report_hash);
	g_puts("conform_regs: done");
	return 0;
}
