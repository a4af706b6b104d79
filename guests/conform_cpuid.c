/*
 * conform_cpuid: every CPUID leaf the guest can read, one line each, so that the
 * conformance suite can check that emu and kvm show the same CPU (vmm/cpuid.c).
 * Basic leaves 0..max and extended leaves 0x80000000..max, subleaf 0, and one leaf past
 * each max (zeros on the AuthenticAMD CPU rewind shows).
 * Last lines: "conform_cpuid: hash <fnv of the report>", "conform_cpuid: done".
 */
#include "guest.h"

#define line g_report_line

static void dump(uint32_t first)
{
	uint32_t max = g_cpuid(first, 0).a;
	if (max < first || max - first > 64)
		max = first; /* not a leaf count: print the first one only */
	for (uint32_t l = first; l <= max + 1; l++) {
		struct g_cpuid r = g_cpuid(l, 0);
		line("%08x: %08x %08x %08x %08x", l, r.a, r.b, r.c, r.d);
	}
}

int main(void)
{
	g_puts("conform_cpuid: the CPUID leaves this CPU shows");
	dump(0);
	dump(0x80000000u);
	g_printf("conform_cpuid: hash %016lx\n", g_report_hash);
	g_puts("conform_cpuid: done");
	return 0;
}
