/*
 * race: a data race whose outcome depends on where timer interrupts land. The main loop
 * increments shared_counter with a read-modify-write split over several instructions;
 * the PIT handler adds 1000 to it. A tick that lands between main's load and store is
 * lost (main's store overwrites it). With real time driving the PIT every run differs;
 * given the exact instruction positions of the interrupts the result is determined.
 * Options: hz= (default 250), ticks= (default 100).
 * Output: "race: ticks=T main=M final=F lost=L" then "race: done".
 */
#include "guest.h"

#define TICK_ADD 1000

volatile uint64_t shared_counter; /* written by both activities; a debugger test watches it */
static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	shared_counter += TICK_ADD;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

/* One unlocked increment: load, some work while the value sits in a register, store. */
static inline void racy_increment(void)
{
	__asm__ volatile("movq shared_counter(%%rip), %%rax\n\t"
			 "movl $4, %%ecx\n"
			 "1:\t"
			 "imulq $3, %%rdx, %%rdx\n\t"
			 "rolq $7, %%rdx\n\t"
			 "decl %%ecx\n\t"
			 "jnz 1b\n\t" /* branches end translated blocks: emulators see the window too */
			 "addq $1, %%rax\n\t"
			 "movq %%rax, shared_counter(%%rip)"
			 :
			 :
			 : "rax", "rcx", "rdx", "cc", "memory");
}

int main(void)
{
	long long hz = g_opt_int("hz", 250), want = g_opt_int("ticks", 100);
	if (hz < 19 || hz > 100000 || want < 1) {
		g_printf("race: bad options hz=%lld ticks=%lld\n", hz, want);
		return 2;
	}
	g_printf("race: %lld ticks at %lld Hz against an unlocked increment\n", want, hz);
	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start((unsigned)hz, 2);
	g_pic_unmask(IRQ_PIT);
	g_sti();
	uint64_t main_incs = 0;
	while (ticks < (unsigned long)want) {
		racy_increment();
		main_incs++;
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	uint64_t final = shared_counter;
	uint64_t t = ticks, applied = (final - main_incs) / TICK_ADD;
	g_printf("race: ticks=%lu main=%lu final=%lu lost=%lu\n", t, main_incs, final, t - applied);
	g_puts("race: done");
	return 0;
}
