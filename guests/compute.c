/*
 * compute: CPU-bound and deterministic. Each of n= rounds (default 300, about 1.3 s on QEMU TCG) runs a sieve of
 * Eratosthenes over a 256 KiB array, then mixes the array with an xorshift generator
 * and folds it into an FNV-1a checksum. Prints the checksum, which depends only on n.
 *
 * For the time-travel benchmark (bench/reverse.sh), two variables that gdb can watch and a
 * function it can break on: `started` is written once, before the first round, so the
 * last write to it lies as far back as the run is long; `milestone()` runs every mark=
 * rounds (0, the default: never) and writes `last_milestone`. Each variable has a page
 * of its own: rewind's checkpoints record which pages an interval wrote, and a page that
 * holds only the watched variable lets a reverse search skip every interval that did not
 * write it (docs/time-travel.md).
 */
#include "guest.h"

#define SIZE (256 * 1024)

static uint8_t mem[SIZE];

struct page_var {
	volatile uint64_t v;
	uint8_t pad[4096 - 8];
};
static struct page_var started __attribute__((aligned(4096)));
static struct page_var last_milestone __attribute__((aligned(4096)));

static void __attribute__((noinline)) milestone(long long r)
{
	last_milestone.v = (uint64_t)r;
}

static uint64_t round_once(uint64_t h, uint64_t seed)
{
	memset(mem, 1, SIZE);
	mem[0] = mem[1] = 0;
	for (uint32_t i = 2; i * i < SIZE; i++)
		if (mem[i])
			for (uint32_t j = i * i; j < SIZE; j += i)
				mem[j] = 0;
	uint64_t primes = 0;
	for (uint32_t i = 0; i < SIZE; i++)
		primes += mem[i];
	uint64_t x = seed | 1;
	for (uint32_t i = 0; i < SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mem[i] = (uint8_t)(mem[i] + (uint8_t)x);
	}
	h = g_fnv1a(h, mem, SIZE);
	return h ^ primes;
}

int main(void)
{
	long long n = g_opt_int("n", 300);
	long long mark = g_opt_int("mark", 0);
	g_printf("compute: %lld rounds\n", n);
	started.v = 1;
	uint64_t h = G_FNV_INIT;
	for (long long r = 0; r < n; r++) {
		if (mark > 0 && r % mark == 0)
			milestone(r);
		h = round_once(h, (uint64_t)r * 0x9e3779b97f4a7c15ull);
	}
	g_printf("compute: checksum %016lx\n", h);
	return 0;
}
