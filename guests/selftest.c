/*
 * selftest: checks the machine and the library: exceptions (#DE #UD #BP #GP #PF with
 * error codes, CR2 and RIP), nested software interrupts, IRET state, the STI shadow,
 * CPUID contents, TSC monotonicity, a non-identity page mapping. Each check prints
 * PASS/FAIL; the last line is "selftest: N passed, M failed"; exit 0 only if none failed.
 *
 * CPUID rule (docs/guests.md): assert the vendor string, the baseline (FPU TSC MSR PAE
 * CX8 CMOV SSE SSE2, LM) and the absence of what rewind hides and qemu64 lacks too
 * (RDRAND RDSEED AVX XSAVE RDTSCP TSC-deadline RDPID); print APIC, hypervisor, NX.
 */
#include "guest.h"

#define UNMAPPED 0xdead0000000ul
#define ALIAS_VA 0x4000000000ul /* 256 GiB: no mapping there at boot */

static uint8_t ro_page[4096] __attribute__((aligned(4096)));
static uint8_t alias_page[4096] __attribute__((aligned(4096)));
static uint8_t nx_page[4096] __attribute__((aligned(4096)));

static bool caught(unsigned vector, uint64_t error, int64_t rip_off)
{
	return g_trap.count == 1 && g_trap.vector == vector && g_trap.error_code == error &&
	       g_trap.rip == g_trap_insn + (uint64_t)rip_off;
}

static void test_exceptions(void)
{
	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "divl %%ecx" G_TRY_END ::"a"(1), "d"(0), "c"(0)
			 : "r11", "memory", "cc");
	g_reportf(caught(0, 0, 0), "#DE on div by zero (rip 0x%lx)", g_trap.rip);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "ud2" G_TRY_END ::: "r11", "memory");
	g_reportf(caught(6, 0, 0), "#UD on ud2 (rip 0x%lx)", g_trap.rip);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "int3" G_TRY_END ::: "r11", "memory");
	g_reportf(caught(3, 0, 1), "#BP on int3, rip after it (rip 0x%lx)", g_trap.rip);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movw %%ax, %%ds" G_TRY_END ::"a"(0x1230) : "r11", "memory");
	g_reportf(caught(13, 0x1230, 0), "#GP loading selector 0x1230 (error 0x%lx)",
		  g_trap.error_code);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movq (%%rax), %%rax" G_TRY_END ::"a"(0x8000000000000000ull)
			 : "r11", "memory");
	g_reportf(caught(13, 0, 0), "#GP on a non-canonical address (error 0x%lx)",
		  g_trap.error_code);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movq (%%rax), %%rax" G_TRY_END ::"a"(UNMAPPED)
			 : "r11", "memory");
	g_reportf(caught(14, 0, 0) && g_trap.cr2 == UNMAPPED,
		  "#PF not-present read (error 0x%lx, cr2 0x%lx)", g_trap.error_code, g_trap.cr2);

	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movq %%rax, (%%rax)" G_TRY_END ::"a"(UNMAPPED + 8)
			 : "r11", "memory");
	g_reportf(caught(14, 2, 0) && g_trap.cr2 == UNMAPPED + 8,
		  "#PF not-present write (error 0x%lx, cr2 0x%lx)", g_trap.error_code, g_trap.cr2);

	uint64_t ro = (uint64_t)(uintptr_t)ro_page;
	bool mapped = g_map_page(ro, ro, G_PTE_P) == 0;
	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movb $1, 16(%%rax)" G_TRY_END ::"a"(ro) : "r11", "memory");
	uint8_t after = ro_page[16];
	mapped = mapped && g_map_page(ro, ro, G_PTE_P | G_PTE_W) == 0;
	g_reportf(mapped && caught(14, 3, 0) && g_trap.cr2 == ro + 16 && after == 0,
		  "#PF write to a read-only page with CR0.WP (error 0x%lx, cr2 0x%lx)",
		  g_trap.error_code, g_trap.cr2);
	ro_page[16] = 5;
	g_report("read-only page writable again", ro_page[16] == 5);

	if (g_nx_enabled()) {
		uint64_t nx = (uint64_t)(uintptr_t)nx_page;
		nx_page[0] = 0xc3; /* ret */
		mapped = g_map_page(nx, nx, G_PTE_P | G_PTE_W | G_PTE_NX) == 0;
		g_trap_reset();
		__asm__ volatile(G_TRY_BEGIN "jmp *%%rax" G_TRY_END ::"a"(nx) : "r11", "memory");
		mapped = mapped && g_map_page(nx, nx, G_PTE_P | G_PTE_W) == 0;
		g_reportf(mapped && g_trap.count == 1 && g_trap.vector == 14 &&
				  g_trap.error_code == 0x11 && g_trap.cr2 == nx && g_trap.rip == nx,
			  "#PF fetch from an NX page (error 0x%lx, rip 0x%lx)", g_trap.error_code,
			  g_trap.rip);
	} else {
		g_puts("selftest: no NX, fetch test skipped");
	}
}

static char order[8];
static int norder;

static void int80(struct g_regs *r)
{
	(void)r;
	order[norder++] = 'A';
	__asm__ volatile("int $0x81" ::: "memory");
	order[norder++] = 'C';
}

static void int81(struct g_regs *r)
{
	(void)r;
	order[norder++] = 'B';
}

static uint64_t int82_rip;
static void int82(struct g_regs *r)
{
	int82_rip = r->rip;
	r->rax = 0x1234; /* a handler's change to the frame must reach the interrupted code */
	r->rbx = ~r->rbx;
}

static void test_interrupts(void)
{
	g_set_handler(0x80, int80);
	g_set_handler(0x81, int81);
	__asm__ volatile("int $0x80" ::: "memory");
	order[norder] = 0;
	g_reportf(!strcmp(order, "ABC"), "nested software interrupts (order %s)", order);

	g_set_handler(0x82, int82);
	uint64_t rax = 0, rbx = 0x5555aaaa5555aaaaull, expect_rip, r12 = 0, r13 = 0, fl0, fl1;
	__asm__ volatile("movq $0x1212121212121212, %%r12\n\t"
			 "movq $0x1313131313131313, %%r13\n\t"
			 "stc\n\t"
			 "pushfq\n\tpopq %[fl0]\n\t"
			 "leaq 1f(%%rip), %[rip]\n\t"
			 "int $0x82\n"
			 "1:\n\t"
			 "pushfq\n\tpopq %[fl1]\n\t"
			 "movq %%r12, %[r12]\n\t"
			 "movq %%r13, %[r13]"
			 : "+a"(rax), "+b"(rbx), [rip] "=&r"(expect_rip), [r12] "=&r"(r12),
			   [r13] "=&r"(r13), [fl0] "=&r"(fl0), [fl1] "=&r"(fl1)
			 :
			 : "r12", "r13", "cc", "memory");
	g_reportf(int82_rip == expect_rip, "IRET returns after the INT (0x%lx)", int82_rip);
	g_report("IRET restores registers and flags, frame changes arrive",
		 rax == 0x1234 && rbx == ~0x5555aaaa5555aaaaull && r12 == 0x1212121212121212ull &&
			 r13 == 0x1313131313131313ull && fl0 == fl1 && (fl1 & 1));
}

static volatile int sti_mark;
static volatile int shadow_seen = -1;
static volatile uint64_t shadow_rip;

static void shadow_irq(struct g_regs *r)
{
	shadow_seen = sti_mark;
	shadow_rip = r->rip;
	g_pic_eoi(IRQ_PIT);
}

static void test_sti_shadow(void)
{
	g_cli();
	g_set_irq_handler(IRQ_PIT, shadow_irq);
	g_pit_oneshot(200);
	g_pic_unmask(IRQ_PIT);
	long spins = 0;
	while (!(g_pic_irr() & 1) && spins < 50000000)
		spins++;
	bool pending = (g_pic_irr() & 1) != 0;
	uint64_t label;
	__asm__ volatile("leaq 1f(%%rip), %0\n\t"
			 "movl $0, sti_mark(%%rip)\n\t"
			 "sti\n\t"
			 "movl $1, sti_mark(%%rip)\n"
			 "1:\n\t"
			 "nop\n\t"
			 "cli"
			 : "=&r"(label)
			 :
			 : "memory");
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_reportf(pending && shadow_seen == 1 && shadow_rip == label,
		  "STI shadow: the instruction after STI runs first (pending %d, mark %d, "
		  "rip %s)",
		  pending, shadow_seen, shadow_rip == label ? "at the label" : "elsewhere");
	g_set_irq_handler(IRQ_PIT, NULL);
}

static void test_cpuid(void)
{
	struct g_cpuid c0 = g_cpuid(0, 0), c1 = g_cpuid(1, 0), e0 = g_cpuid(0x80000000, 0);
	char vendor[13];
	memcpy(vendor, &c0.b, 4);
	memcpy(vendor + 4, &c0.d, 4);
	memcpy(vendor + 8, &c0.c, 4);
	vendor[12] = 0;
	bool printable = true;
	for (int i = 0; i < 12; i++)
		printable = printable && vendor[i] >= 0x20 && vendor[i] < 0x7f;
	g_reportf(printable && vendor[0] != ' ', "CPUID vendor string \"%s\"", vendor);

	struct g_cpuid e1 = e0.a >= 0x80000001 ? g_cpuid(0x80000001, 0) : (struct g_cpuid){0};
	struct g_cpuid c7 = c0.a >= 7 ? g_cpuid(7, 0) : (struct g_cpuid){0};
	g_printf("selftest: cpuid max 0x%x/0x%x, 1: ecx 0x%08x edx 0x%08x, 7: ebx 0x%08x ecx "
		 "0x%08x, 80000001: ecx 0x%08x edx 0x%08x\n",
		 c0.a, e0.a, c1.c, c1.d, c7.b, c7.c, e1.c, e1.d);
	const uint32_t base_edx = 1u << 0 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 8 | 1u << 15 |
				  1u << 25 | 1u << 26;
	g_reportf((c1.d & base_edx) == base_edx && (e1.d & (1u << 29)),
		  "CPUID baseline: FPU TSC MSR PAE CX8 CMOV SSE SSE2 LM");
	struct {
		const char *name;
		bool set;
	} hidden[] = {
		{"RDRAND", c1.c & (1u << 30)},   {"RDSEED", c7.b & (1u << 18)},
		{"AVX", c1.c & (1u << 28)},      {"XSAVE", c1.c & (1u << 26)},
		{"RDTSCP", e1.d & (1u << 27)},   {"TSC-deadline", c1.c & (1u << 24)},
		{"RDPID", c7.c & (1u << 22)},
	};
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		g_reportf(!hidden[i].set, "CPUID hides %s", hidden[i].name);
	g_printf("selftest: cpuid info: APIC %d, hypervisor %d, NX %d, x2APIC %d\n",
		 !!(c1.d & (1u << 9)), !!(c1.c & (1u << 31)), !!(e1.d & (1u << 20)),
		 !!(c1.c & (1u << 21)));
}

static void test_tsc(void)
{
	uint64_t t0 = g_rdtsc(), t1 = g_rdtsc();
	volatile uint64_t sink = 0;
	for (int i = 0; i < 100000; i++)
		sink += (uint64_t)i;
	uint64_t t2 = g_rdtsc();
	g_reportf(t1 >= t0 && t2 > t1, "TSC monotonic (%lu, %lu, %lu)", t0, t1, t2);
}

static void test_paging(void)
{
	uint64_t pa = (uint64_t)(uintptr_t)alias_page;
	bool ok = g_map_page(ALIAS_VA, pa, G_PTE_P | G_PTE_W) == 0;
	volatile uint64_t *hi = (volatile uint64_t *)(uintptr_t)ALIAS_VA;
	volatile uint64_t *lo = (volatile uint64_t *)alias_page;
	if (ok) {
		hi[3] = 0xfeedfacecafebeefull;
		ok = lo[3] == 0xfeedfacecafebeefull;
		lo[5] = 0x0123456789abcdefull;
		ok = ok && hi[5] == 0x0123456789abcdefull;
	}
	g_reportf(ok, "page at 0x%lx aliases physical 0x%lx", ALIAS_VA, pa);

	ok = g_unmap_page(ALIAS_VA) == 0;
	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movq (%%rax), %%rax" G_TRY_END ::"a"(ALIAS_VA + 24)
			 : "r11", "memory");
	g_reportf(ok && caught(14, 0, 0) && g_trap.cr2 == ALIAS_VA + 24,
		  "unmapped alias faults after invlpg (cr2 0x%lx)", g_trap.cr2);

	uint64_t cr0 = g_read_cr0(), cr4 = g_read_cr4(), efer = g_rdmsr(0xc0000080);
	g_reportf((cr0 & 0x80010001) == 0x80010001 && (cr4 & 0x20) && (efer & 0x500) == 0x500,
		  "long mode: CR0 0x%lx CR4 0x%lx EFER 0x%lx", cr0, cr4, efer);
}

int main(void)
{
	g_printf("selftest: rewind machine and guest library checks\n");
	test_exceptions();
	test_interrupts();
	test_sti_shadow();
	test_cpuid();
	test_tsc();
	test_paging();
	return g_report_summary("selftest");
}
