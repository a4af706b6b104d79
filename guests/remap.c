/*
 * remap: one virtual page, two physical ones, for the time-travel tests. The guest maps
 * the page at 1 GiB (REMAP_VA) to physical page A and writes 42 through it (after
 * computing for spin= iterations), computes again, stores 7 into physical page B directly (not through REMAP_VA), maps
 * REMAP_VA to page B, and computes again. At the end REMAP_VA reads 7 and its last write
 * through REMAP_VA was the 42, into page A, while today's page tables say page B: a
 * reverse watchpoint search that trusted today's mapping for the whole past would skip
 * the interval of that write and find nothing.
 * Output: "remap: A=42 B=7 now=7 x=<16 hex>" (x: what the computing loops reached).
 */
#include "guest.h"

#define REMAP_VA 0x40000000ull

static uint8_t page_a[4096] __attribute__((aligned(4096)));
static uint8_t page_b[4096] __attribute__((aligned(4096)));
static volatile uint64_t sink; /* keeps the loops where they are in program order */

static void __attribute__((noinline)) write_v(uint64_t x)
{
	*(volatile uint64_t *)REMAP_VA = x;
}

static uint64_t __attribute__((noinline)) spin(long long n, uint64_t x)
{
	for (long long i = 0; i < n; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	sink = x;
	return x;
}

static void __attribute__((noinline)) remap_done(uint64_t x)
{
	g_printf("remap: A=%lu B=%lu now=%lu x=%016lx\n", *(volatile uint64_t *)page_a,
		 *(volatile uint64_t *)page_b, *(volatile uint64_t *)REMAP_VA, x);
}

int main(void)
{
	long long n = g_opt_int("spin", 3000000);
	/* Computing first: the start (which clears .bss, page B too) is intervals away. */
	uint64_t x = spin(n, 1);
	if (g_map_page(REMAP_VA, (uint64_t)(uintptr_t)page_a, G_PTE_P | G_PTE_W) < 0)
		return 3;
	write_v(42);
	x = spin(n, x);
	*(volatile uint64_t *)page_b = 7;
	if (g_map_page(REMAP_VA, (uint64_t)(uintptr_t)page_b, G_PTE_P | G_PTE_W) < 0)
		return 3;
	x = spin(n, x);
	remap_done(x);
	return 0;
}
