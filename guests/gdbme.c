/*
 * gdbme: a guest for the live debugging tests (tests/integration/test_debug_live.c). Each
 * of rounds= rounds (default 3) calls answer(), code with a constant a debugger may patch,
 * and report(), whose arguments a debugger may change in registers, which prints
 * "gdbme: round R answer A secret S". Then "gdbme: done", and the exit status is the
 * variable secret (21 unless a debugger changes it): rewind exits with (secret << 1) | 1.
 * With clock=1 the PIT counts (its IRQ masked) and each round reads it, so that a
 * recording logs the machine clock as the guest sees it, round by round.
 */
#include "guest.h"

volatile long secret = 21;
volatile unsigned long progress; /* a debugger may watch it */

/* noipa: the caller must really call it, and may not know what it returns. */
__attribute__((noipa)) long answer(void)
{
	return 1000;
}

__attribute__((noipa)) void report(long round, long a, long s)
{
	g_printf("gdbme: round %ld answer %ld secret %ld\n", round, a, s);
}

int main(void)
{
	long long rounds = g_opt_int("rounds", 3);
	bool clock = g_opt_int("clock", 0);
	if (clock)
		g_pit_start(100, 2);
	for (long r = 0; r < rounds; r++) {
		if (clock)
			(void)g_pit_read();
		long a = answer();
		progress++;
		report(r, a, secret);
	}
	g_puts("gdbme: done");
	return (int)(secret & 0x7f);
}
