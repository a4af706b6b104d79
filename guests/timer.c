/*
 * timer: the PIT on IRQ 0 at hz= (default 100) for ticks= (default 50) ticks, counted in
 * the interrupt handler, idling with sti;hlt in between. Options: hz=, ticks=, mode=
 * (2 rate generator, default, or 3 square wave).
 */
#include "guest.h"

static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

int main(void)
{
	long long hz = g_opt_int("hz", 100), want = g_opt_int("ticks", 50);
	int mode = (int)g_opt_int("mode", 2);
	if (hz < 19 || hz > 1193182 || want < 0) {
		g_printf("timer: bad options hz=%lld ticks=%lld (hz: 19..1193182)\n", hz, want);
		return 2;
	}
	g_printf("timer: %lld ticks at %lld Hz\n", want, hz);
	g_set_irq_handler(IRQ_PIT, pit_irq);
	uint32_t div = g_pit_start((unsigned)hz, mode);
	g_pic_unmask(IRQ_PIT);
	unsigned long halts = 0;
	for (;;) {
		g_cli();
		if (ticks >= (unsigned long)want)
			break;
		g_sti_hlt();
		halts++;
	}
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_printf("timer: divisor %u, %lu halts\n", div, halts);
	g_printf("timer: done, %lu ticks\n", ticks);
	return 0;
}
