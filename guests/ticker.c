/*
 * ticker: a steady printer for the ft pair's tests. lines= (default 200) numbered lines,
 * one per tick= (default 2) ticks of the PIT at hz= (default 100). Each line says how many
 * times the guest spun (computing) or halted while it waited for its ticks, so the output
 * depends on the host's timing: a backup that went live too early or too late would print
 * other numbers than its primary did. Then "ticker: done, N lines". Even lines wait by
 * computing, odd ones by halting.
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
	long long lines = g_opt_int("lines", 200), hz = g_opt_int("hz", 100);
	long long per = g_opt_int("tick", 2);
	if (hz < 19 || hz > 10000 || lines < 0 || per < 1) {
		g_printf("ticker: bad options lines=%lld hz=%lld tick=%lld\n", lines, hz, per);
		return 2;
	}
	g_printf("ticker: %lld lines, one every %lld ticks at %lld Hz\n", lines, per, hz);
	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start((unsigned)hz, 2);
	g_pic_unmask(IRQ_PIT);
	g_sti();
	for (long long i = 0; i < lines; i++) {
		unsigned long until = ticks + (unsigned long)per, waits = 0;
		if (i % 2 == 0) {
			while (ticks < until)
				waits++;
		} else {
			for (;;) {
				g_cli();
				if (ticks >= until)
					break;
				g_sti_hlt();
				waits++;
			}
			g_sti();
		}
		g_printf("%06lld %s %lu\n", i, i % 2 ? "halts" : "spins", waits);
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_printf("ticker: done, %lld lines\n", lines);
	return 0;
}
