/*
 * dirty: writes much of its RAM, steadily, for the ft pair's join (docs/ft.md,
 * "Re-protect"): a sweep over mb= MiB (default 64) from 16 MiB up, rate= pages (default
 * 16) per tick of the PIT at hz= (default 1000). Each page is read (a word that depends on
 * its whole history) and then rewritten whole with fresh pseudo-random words, so that the
 * pages do not compress to nothing and a page whose copy was missed or stale changes what
 * the guest prints. Every every= ticks (default 100) it prints the tick, the page it is at
 * and a running sum of what it read; after lines= lines (default 50) "dirty: done".
 */
#include "guest.h"

#define BASE (16ull << 20)

static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

int main(void)
{
	long long mb = g_opt_int("mb", 64), rate = g_opt_int("rate", 16);
	long long hz = g_opt_int("hz", 1000), every = g_opt_int("every", 100);
	long long lines = g_opt_int("lines", 50);
	if (mb < 1 || BASE + ((uint64_t)mb << 20) > g_ram_bytes() || rate < 1 || rate > 4096 ||
	    hz < 19 || hz > 10000 || every < 1 || lines < 0) {
		g_printf("dirty: bad options (mb=%lld must fit above 16 MiB of %lu bytes)\n", mb,
			 (unsigned long)g_ram_bytes());
		return 2;
	}
	uint64_t pages = (uint64_t)mb << 8, page = 0, sum = 0, x = 0x9e3779b97f4a7c15ull;
	g_printf("dirty: %lld MiB, %lld pages per tick at %lld Hz\n", mb, rate, hz);
	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start((unsigned)hz, 2);
	g_pic_unmask(IRQ_PIT);
	for (long long line = 0; line < lines;) {
		unsigned long t;
		for (;;) { /* the next tick */
			g_cli();
			t = ticks;
			static unsigned long seen;
			if (t != seen) {
				seen = t;
				break;
			}
			g_sti_hlt();
		}
		g_sti();
		for (long long k = 0; k < rate; k++) {
			uint64_t *p = (uint64_t *)(uintptr_t)(BASE + page * 4096);
			sum = sum * 31 + p[(page * 7) % 512];
			for (unsigned i = 0; i < 512; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				p[i] = x + sum;
			}
			page = (page + 1) % pages;
		}
		if (t % (unsigned long)every == 0)
			g_printf("%06lld tick %lu page %lu sum %016lx\n", line++, t,
				 (unsigned long)page, (unsigned long)sum);
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_printf("dirty: done, %lld lines\n", lines);
	return 0;
}
