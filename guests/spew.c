/*
 * spew: serial-heavy: lines= lines (default 20000) of 60 characters plus newline, then
 * "spew: done, N lines". Used by the benchmarks.
 */
#include "guest.h"

int main(void)
{
	long long lines = g_opt_int("lines", 20000);
	g_printf("spew: %lld lines\n", lines);
	static const char pat[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	for (long long i = 0; i < lines; i++) {
		char line[64];
		int n = g_snprintf(line, sizeof(line), "%08lld ", i);
		for (int k = 0; n < 60; k++)
			line[n++] = pat[(i + k) % (sizeof(pat) - 1)];
		line[n++] = '\n';
		g_write(line, (size_t)n);
	}
	g_printf("spew: done, %lld lines\n", lines);
	return 0;
}
