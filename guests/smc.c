/*
 * smc: self-modifying code. Each of n= rounds (default 400) writes a small function into
 * one code page, at the same address every round but with different instructions (a
 * `mov $imm32, %eax` with the round in it, sometimes an `add` after it, then `ret`), and
 * calls it calls= times (default 5000), adding up what it returns. Prints the sum, which
 * depends only on n and calls.
 *
 * It exists to catch stale translated code: an emulator must run the page's current
 * code, both after the guest rewrites it and after a debugger restores an older version
 * of the page from a checkpoint (tests/integration/test_debug.c goes back and forth).
 */
#include "guest.h"

static uint8_t code[4096] __attribute__((aligned(4096)));

static void write_round(uint32_t r)
{
	uint8_t *p = code;
	uint32_t imm = r * 2654435761u;
	*p++ = 0xb8; /* mov $imm32, %eax */
	memcpy(p, &imm, 4);
	p += 4;
	if (r % 3 == 1) {
		*p++ = 0x83; /* add $7, %eax */
		*p++ = 0xc0;
		*p++ = 0x07;
	}
	*p++ = 0xc3; /* ret */
	__asm__ volatile("" ::: "memory");
}

/* The result goes out in %rdi, where a debugger test reads it at a breakpoint here. */
static void __attribute__((noinline)) smc_done(uint64_t sum)
{
	__asm__ volatile("" : : "D"(sum));
	g_printf("smc: sum %016lx\n", sum);
}

int main(void)
{
	long long n = g_opt_int("n", 400);
	long long calls = g_opt_int("calls", 5000);
	uint32_t (*fn)(void) = (uint32_t (*)(void))(uintptr_t)code;
	uint64_t sum = 0;
	g_printf("smc: %lld rounds of %lld calls\n", n, calls);
	for (long long r = 0; r < n; r++) {
		write_round((uint32_t)r);
		for (long long i = 0; i < calls; i++)
			sum = sum * 31 + fn();
	}
	smc_done(sum);
	return 0;
}
