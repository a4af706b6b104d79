/*
 * compute: CPU-bound and deterministic. Each of n= rounds (default 300, about 1.3 s on QEMU TCG) runs a sieve of
 * Eratosthenes over a 256 KiB array, then mixes the array with an xorshift generator
 * and folds it into an FNV-1a checksum. Prints the checksum, which depends only on n.
 */
#include "guest.h"

#define SIZE (256 * 1024)

static uint8_t mem[SIZE];

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
	g_printf("compute: %lld rounds\n", n);
	uint64_t h = G_FNV_INIT;
	for (long long r = 0; r < n; r++)
		h = round_once(h, (uint64_t)r * 0x9e3779b97f4a7c15ull);
	g_printf("compute: checksum %016lx\n", h);
	return 0;
}
