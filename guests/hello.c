/*
 * hello: the smallest guest. Prints a greeting, the command line it got and the RAM in
 * its memory map, then exits 0.
 */
#include "guest.h"

int main(void)
{
	g_puts("Hello from rewind guest");
	g_printf("cmdline: %s\n", g_cmdline());
	uint64_t ram = g_ram_bytes();
	if (ram)
		g_printf("memory: %lu MiB\n", (unsigned long)((ram + (1 << 19)) >> 20));
	else
		g_puts("memory: no memory map");
	return 0;
}
