/*
 * patch: rewrites one of its own instructions while it runs, as Linux patches its code
 * at boot. patched() is `mov $imm32, %eax; ret`; each of n= rounds (default 3000) stores a
 * new immediate into it and calls it 50 times, folding what it returned into a checksum,
 * while the PIT interrupts at hz= (default 1000). An emulator that ran a translation of
 * the code from before a write (or, gone back in time, one made from later contents of
 * RAM) prints another checksum and a bad count.
 * Output: "patch: n=N sum=S bad=B" (B: calls that returned another value than the one
 * stored; 0 on a correct machine), then exit 0 (1 if B is not 0).
 */
#include "guest.h"

__asm__(".pushsection .text\n"
	".globl patched\n"
	".type patched, @function\n"
	"patched:\n"
	"\tmovl $0, %eax\n"
	"\tret\n"
	".size patched, .-patched\n"
	".popsection\n");
extern uint32_t patched(void);

#define CALLS 50 /* calls between two rewrites */

static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

int main(void)
{
	long long n = g_opt_int("n", 3000), hz = g_opt_int("hz", 1000);
	volatile uint32_t *imm = (volatile uint32_t *)((uintptr_t)patched + 1);
	uint64_t sum = G_FNV_INIT;
	unsigned long bad = 0;
	if (n < 1 || hz < 19 || hz > 100000) {
		g_printf("patch: bad options n=%lld hz=%lld\n", n, hz);
		return 2;
	}
	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start((unsigned)hz, 2);
	g_pic_unmask(IRQ_PIT);
	g_sti();
	for (long long i = 0; i < n; i++) {
		uint32_t v = (uint32_t)(i * 2654435761u);
		*imm = v;
		for (int k = 0; k < CALLS; k++) {
			uint32_t got = patched();
			bad += got != v;
			sum = g_fnv1a(sum, &got, sizeof(got));
		}
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_printf("patch: n=%lld sum=%016lx bad=%lu\n", n, (unsigned long)sum, bad);
	return bad ? 1 : 0;
}
