/*
 * conform_exc: a deterministic report of exceptions, identical on any correct x86-64
 * machine (KVM, QEMU TCG, rewind's emu backend). For each case: the vector, the error
 * code, CR2 for #PF (as an offset from the page it targets) and the RIP the CPU reported
 * relative to the faulting instruction (0 for faults, the instruction length for traps).
 * Last line: "conform_exc: hash <fnv of the report>" and "conform_exc: done".
 */
#include "guest.h"

#define UNMAPPED 0xdead0000000ul

static uint8_t ro_page[4096] __attribute__((aligned(4096)));
static uint8_t nx_page[4096] __attribute__((aligned(4096)));

#define line g_report_line

/* Print what g_trap caught; cr2_base: the address CR2 is reported against (0: none). */
static void show(const char *name, uint64_t cr2_base)
{
	if (g_trap.count != 1) {
		line("%-24s no exception", name);
		return;
	}
	char cr2[32] = "-";
	if (cr2_base)
		g_snprintf(cr2, sizeof(cr2), "+0x%lx", g_trap.cr2 - cr2_base);
	line("%-24s vector %2lu %-3s error 0x%04lx cr2 %-6s rip insn+%ld", name, g_trap.vector,
	     g_exception_name((unsigned)g_trap.vector), g_trap.error_code, cr2,
	     (long)(g_trap.rip - g_trap_insn));
}

#define TRY(name, cr2_base, insn, ...)                                                      \
	do {                                                                                \
		g_trap_reset();                                                             \
		__asm__ volatile(G_TRY_BEGIN insn G_TRY_END::__VA_ARGS__);                  \
		show(name, cr2_base);                                                       \
	} while (0)

static volatile uint64_t soft_rip, soft_vec, soft_err;
static void soft_handler(struct g_regs *r)
{
	soft_rip = r->rip;
	soft_vec = r->vector;
	soft_err = r->error_code;
}

static volatile uint64_t db_rip, db_count;
static void db_handler(struct g_regs *r)
{
	db_rip = r->rip;
	db_count++;
	r->rflags &= ~0x100ull; /* TF off */
}

int main(void)
{
	g_puts("conform_exc: exception conformance report");
	__asm__ volatile("lldt %w0" ::"r"(0)); /* no LDT: LDT selectors fault the same everywhere */

	TRY("div by zero", 0, "divl %%ecx", "a"(1), "d"(0), "c"(0) : "r11", "memory", "cc");
	TRY("idiv overflow", 0, "idivl %%ecx", "a"(0x80000000), "d"(0xffffffff), "c"(-1)
	    : "r11", "memory", "cc");
	TRY("int3", 0, "int3", "i"(0) : "r11", "memory");
	TRY("ud2", 0, "ud2", "i"(0) : "r11", "memory");
	TRY("into (invalid in 64-bit)", 0, ".byte 0xce", "i"(0) : "r11", "memory");
	TRY("lock on a register op", 0, ".byte 0xf0, 0x01, 0xc0", "i"(0) : "r11", "memory", "cc");
	TRY("bad selector to ds", 0, "movw %%ax, %%ds", "a"(0x1230) : "r11", "memory");
	TRY("ldt selector to es", 0, "movw %%ax, %%es", "a"(0x0014) : "r11", "memory");
	TRY("non-canonical read", 0, "movq (%%rax), %%rax", "a"(0x8000000000000000ul)
	    : "r11", "memory");
	TRY("non-canonical write", 0, "movq %%rax, (%%rax)", "a"(0x0000800000000000ul)
	    : "r11", "memory");
	TRY("not-present read", UNMAPPED, "movb (%%rax), %%al", "a"(UNMAPPED + 0x123)
	    : "r11", "memory");
	TRY("not-present write", UNMAPPED, "movl %%eax, (%%rax)", "a"(UNMAPPED + 0xffe)
	    : "r11", "memory");

	uint64_t ro = (uint64_t)(uintptr_t)ro_page;
	if (g_map_page(ro, ro, G_PTE_P))
		line("map failed");
	TRY("read-only write", ro, "movq %%rax, 8(%%rax)", "a"(ro) : "r11", "memory");
	TRY("read-only rmw", ro, "addl $1, 0x40(%%rax)", "a"(ro) : "r11", "memory", "cc");
	TRY("read-only read ok", 0, "movq 8(%%rax), %%rax", "a"(ro) : "r11", "memory");
	if (g_map_page(ro, ro, G_PTE_P | G_PTE_W))
		line("map failed");

	uint64_t nx = (uint64_t)(uintptr_t)nx_page;
	nx_page[0] = 0xc3;
	if (g_nx_enabled()) {
		if (g_map_page(nx, nx, G_PTE_P | G_PTE_W | G_PTE_NX))
			line("map failed");
		g_trap_reset();
		__asm__ volatile(G_TRY_BEGIN "jmp *%%rax" G_TRY_END ::"a"(nx) : "r11", "memory");
		line("%-24s vector %2lu error 0x%04lx cr2 +0x%lx rip target+%ld", "nx fetch",
		     g_trap.vector, g_trap.error_code, g_trap.cr2 - nx, (long)(g_trap.rip - nx));
		if (g_map_page(nx, nx, G_PTE_P | G_PTE_W))
			line("map failed");
	} else {
		line("%-24s (no NX)", "nx fetch");
	}

	/* #NM: an x87 instruction with CR0.TS set. */
	uint64_t cr0 = g_read_cr0();
	g_write_cr0(cr0 | 0x8);
	TRY("x87 with CR0.TS", 0, "fninit", "i"(0) : "r11", "memory");
	/* WAIT faults on CR0.TS only together with CR0.MP; else it waits for the x87 and
	 * reports a pending unmasked exception as #MF (CR0.NE set). */
	TRY("fwait with CR0.TS", 0, "fwait", "i"(0) : "r11", "memory");
	g_write_cr0(cr0 | 0xa);
	TRY("fwait with CR0.TS+MP", 0, "fwait", "i"(0) : "r11", "memory");
	g_write_cr0((cr0 & ~0xaull) | 0x20);
	TRY("fwait, nothing pending", 0, "fninit; fwait", "i"(0) : "r11", "memory");
	if (g_opt_present("no-x87-arith")) {
		/* A host that cannot run ring-0 x87 arithmetic (software-nested KVM). */
		line("%-24s not run (no-x87-arith)", "fwait, x87 #Z pending");
	} else {
		static const uint16_t fcw_zm_off = 0x37b; /* default control word, #Z unmasked */
		__asm__ volatile("fninit; fldcw %0; fldz; fld1; fdivp" ::"m"(fcw_zm_off)
				 : "memory");
		TRY("fwait, x87 #Z pending", 0, "fwait", "i"(0) : "r11", "memory");
		__asm__ volatile("fninit" ::: "memory");
	}
	g_write_cr0(cr0);

	/* #GP for a vector beyond the IDT limit: error code = vector * 8 + 2 (IDT bit). */
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr, small;
	__asm__ volatile("sidt %0" : "=m"(idtr));
	small = idtr;
	small.limit = 0x50 * 16 - 1;
	__asm__ volatile("lidt %0" ::"m"(small) : "memory");
	TRY("int beyond the IDT limit", 0, "int $0x60", "i"(0) : "r11", "memory");
	__asm__ volatile("lidt %0" ::"m"(idtr) : "memory");

	/* A software interrupt to a vector with a handler: RIP after the 2-byte INT. */
	g_set_handler(0x40, soft_handler);
	uint64_t insn;
	__asm__ volatile("leaq 1f(%%rip), %0\n1:\n\tint $0x40" : "=&r"(insn)::"memory");
	line("%-24s vector 0x%02lx error 0x%04lx rip insn+%ld", "int $0x40", soft_vec, soft_err,
	     (long)(soft_rip - insn));

	/* Single step: POPF sets TF; the trap comes after the instruction that follows. */
	g_set_handler(1, db_handler);
	__asm__ volatile("leaq 1f(%%rip), %0\n\t"
			 "pushfq\n\t"
			 "orq $0x100, (%%rsp)\n\t"
			 "popfq\n\t"
			 "nop\n"
			 "1:\n\t"
			 "nop"
			 : "=&r"(insn)::"memory", "cc");
	line("%-24s count %lu rip label+%ld", "single step after popf", db_count,
	     (long)(db_rip - insn));
	g_set_handler(1, NULL);

	g_printf("conform_exc: hash %016lx\n", g_report_hash);
	g_puts("conform_exc: done");
	return 0;
}
