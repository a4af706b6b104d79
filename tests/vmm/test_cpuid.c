/* unit */
/*
 * test_cpuid.c: the CPU both backends show (vmm/cpuid.c): the guest contract's hidden
 * features stay hidden, CX16 and the LAPIC are absent, the host check names the first
 * missing flag and never asks the host for the hypervisor bit.
 */
#include "vmm/cpuid.h"

#include <criterion/criterion.h>
#include <string.h>

Test(cpuid, vendor_and_max_leaves)
{
	uint32_t r[4];
	vmm_cpuid(0, 0, r);
	char v[13];
	memcpy(v, &r[1], 4);
	memcpy(v + 4, &r[3], 4);
	memcpy(v + 8, &r[2], 4);
	v[12] = 0;
	cr_expect_str_eq(v, "AuthenticAMD");
	cr_expect_eq(r[0], 0xd);
	vmm_cpuid(0x80000000u, 0, r);
	cr_expect_eq(r[0], 0x80000008u);
}

Test(cpuid, hidden_features)
{
	uint32_t l1[4], l7[4], e1[4];
	vmm_cpuid(1, 0, l1);
	vmm_cpuid(7, 0, l7);
	vmm_cpuid(0x80000001u, 0, e1);
	cr_expect_eq(l1[2] & (1u << 13), 0, "CX16 advertised");
	cr_expect_eq(l1[3] & (1u << 9), 0, "APIC advertised");
	cr_expect_eq(l1[2] & ((1u << 9) | (1u << 19) | (1u << 20) | (1u << 23)), 0,
		     "SSSE3/SSE4/POPCNT advertised (Unicorn cannot run them)");
	cr_expect_eq(l1[2] & ((1u << 21) | (1u << 24) | (1u << 26) | (1u << 28) | (1u << 30)), 0,
		     "x2APIC, TSC-deadline, XSAVE, AVX or RDRAND advertised");
	cr_expect_eq(l7[1] | l7[2] | l7[3], 0, "leaf 7 not empty");
	cr_expect_eq(e1[3] & (1u << 27), 0, "RDTSCP advertised");
	cr_expect_neq(e1[3] & (1u << 29), 0, "no LM");
	uint32_t hv[4];
	vmm_cpuid(0x40000000u, 0, hv);
	cr_expect_eq(hv[0] | hv[1] | hv[2] | hv[3], 0, "hypervisor leaves present");
}

Test(cpuid, missing_names_the_first_flag)
{
	uint32_t l1[4];
	vmm_cpuid(1, 0, l1);
	cr_expect_null(vmm_cpuid_missing(1, 3, 0xffffffffu));
	cr_expect_str_eq(vmm_cpuid_missing(1, 3, l1[3] & ~(1u << 26)), "SSE2");
	cr_expect_str_eq(vmm_cpuid_missing(1, 3, 0), "FPU");
	/* The hypervisor bit is ours, never the host's. */
	cr_expect_null(vmm_cpuid_missing(1, 2, 1u));
	cr_expect_str_eq(vmm_cpuid_missing(1, 2, 0), "SSE3");
	cr_expect_str_eq(vmm_cpuid_missing(0x80000001u, 3, 0xffffffffu & ~(1u << 20)), "NX");
}

Test(cpuid, table_has_each_leaf_once)
{
	for (size_t i = 0; i < vmm_cpuid_nleaves; i++)
		for (size_t j = i + 1; j < vmm_cpuid_nleaves; j++)
			cr_expect(vmm_cpuid_leaves[i].fn != vmm_cpuid_leaves[j].fn ||
				      vmm_cpuid_leaves[i].index != vmm_cpuid_leaves[j].index,
				  "leaf %#x twice", vmm_cpuid_leaves[i].fn);
}
