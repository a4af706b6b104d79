/*
 * cpuid.c: the CPUID table both backends give the guest (emu from its CPUID hook, kvm
 * through KVM_SET_CPUID2), and the names of its feature flags for kvm's host check.
 *
 * It is QEMU's qemu64 model (AuthenticAMD, family 15 model 107, "QEMU Virtual CPU
 * version 2.5+") without the local APIC and without CMPXCHG16B, so that:
 *  - a guest sees the same CPU on emu and kvm and on any host, and a log recorded on
 *    one replays on the other (the vendor, family and model are fixed, not the host's:
 *    Linux picks code paths, errata workarounds and idle routines by them);
 *  - everything advertised is executed correctly by Unicorn 2.1.1, whose TCG model is
 *    qemu64 (it raises #UD on POPCNT, SSSE3 and SSE4, so they are absent), and is
 *    available on every x86-64 host KVM runs on (SSE2, SSE3, NX, LM, SYSCALL);
 *  - the guest contract holds (docs/kvm-backend.md): no RDRAND/RDSEED, XSAVE/AVX, RDTSCP,
 *    RDPID, TSC-deadline, x2APIC, PV clocks, no 0x40000000 hypervisor leaves;
 *  - CX16 is left out: a software-nested KVM (PVM) cannot emulate CMPXCHG16B at CPL 0,
 *    and Linux runs without it.
 * The hypervisor bit is set as QEMU sets it: Linux then takes the PMU MSRs that read
 * back 0 for virtualisation, not broken hardware. docs/emu-backend.md and
 * docs/kvm-backend.md list the bits.
 */
#include "cpuid.h"

#include <stdio.h>
#include <string.h>

#define BIT(n) (1u << (n))

/* Leaf 1 EDX: FPU DE PSE TSC MSR PAE MCE CX8 SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH MMX
 * FXSR SSE SSE2 (qemu64's 0x078bfbfd without APIC, bit 9). */
#define L1_EDX (0x078bfbfdu & ~BIT(9))
/* Leaf 1 ECX: SSE3 and the hypervisor bit. */
#define L1_ECX (BIT(0) | BIT(31))
/* Leaf 0x80000001 EDX: the AMD copies of leaf 1's bits (those AMD defines there), SYSCALL,
 * NX, LM. ECX: LAHF/SAHF in long mode. */
#define E1_EDX ((L1_EDX & 0x0183f3ffu) | BIT(11) | BIT(20) | BIT(29))
#define E1_ECX BIT(0)

/* "Auth" "enti" "cAMD" as EBX, EDX, ECX. */
#define VENDOR_EBX 0x68747541u
#define VENDOR_EDX 0x69746e65u
#define VENDOR_ECX 0x444d4163u
/* Family 15, model 107 (extended model 6, model 0xb), stepping 1, as qemu64. */
#define FMS 0x00060fb1u

/* "QEMU Virtual CPU version 2.5+", NUL-padded, four characters a register. */
#define STR4(a, b, c, d)                                                                           \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

const struct vmm_cpuid_leaf vmm_cpuid_leaves[] = {
    {0x0, 0, 0xd, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX},
    /* EBX: CLFLUSH line 8*8 bytes, 1 logical CPU, APIC id 0. */
    {0x1, 0, FMS, 0x00000800, L1_ECX, L1_EDX},
    {0x80000000, 0, 0x80000008, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX},
    {0x80000001, 0, FMS, 0, E1_ECX, E1_EDX},
    {0x80000002, 0, STR4('Q', 'E', 'M', 'U'), STR4(' ', 'V', 'i', 'r'), STR4('t', 'u', 'a', 'l'),
     STR4(' ', 'C', 'P', 'U')},
    {0x80000003, 0, STR4(' ', 'v', 'e', 'r'), STR4('s', 'i', 'o', 'n'), STR4(' ', '2', '.', '5'),
     STR4('+', 0, 0, 0)},
    {0x80000004, 0, 0, 0, 0, 0},
    /* L1 caches and TLBs, L2/L3 as qemu64 reports them. */
    {0x80000005, 0, 0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140},
    {0x80000006, 0, 0, 0x42004200, 0x02008140, 0x00808140},
    /* 40-bit physical, 48-bit virtual addresses. */
    {0x80000008, 0, 0x00003028, 0, 0, 0},
};
const size_t vmm_cpuid_nleaves = sizeof(vmm_cpuid_leaves) / sizeof(vmm_cpuid_leaves[0]);

const struct vmm_cpuid_flags vmm_cpuid_flag_regs[] = {
    {0x1, 2},
    {0x1, 3},
    {0x80000001, 2},
    {0x80000001, 3},
};
const size_t vmm_cpuid_nflag_regs = sizeof(vmm_cpuid_flag_regs) / sizeof(vmm_cpuid_flag_regs[0]);

void vmm_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	(void)sub;
	memset(r, 0, 4 * sizeof(r[0]));
	for (size_t i = 0; i < vmm_cpuid_nleaves; i++) {
		const struct vmm_cpuid_leaf *l = &vmm_cpuid_leaves[i];
		if (l->fn == leaf) {
			r[0] = l->eax;
			r[1] = l->ebx;
			r[2] = l->ecx;
			r[3] = l->edx;
			return;
		}
	}
}

uint32_t vmm_cpuid_isa_mask(uint32_t fn, int reg)
{
	if (fn == 0x1 && reg == 2)
		return BIT(0);	   /* SSE3 */
	if (fn == 0x1 && reg == 3) /* CX8 CMOV CLFSH MMX SSE SSE2 */
		return BIT(8) | BIT(15) | BIT(19) | BIT(23) | BIT(25) | BIT(26);
	if (fn == 0x80000001 && reg == 2)
		return BIT(0);		  /* LAHF/SAHF in long mode */
	if (fn == 0x80000001 && reg == 3) /* CX8 CMOV MMX */
		return BIT(8) | BIT(15) | BIT(23);
	return 0;
}

static const char *const l1_edx_names[32] = {
    "FPU",  "VME",  "DE",   "PSE", "TSC",  "MSR", "PAE",   "MCE", "CX8",   "APIC", NULL,
    "SEP",  "MTRR", "PGE",  "MCA", "CMOV", "PAT", "PSE36", "PSN", "CLFSH", NULL,   "DS",
    "ACPI", "MMX",  "FXSR", "SSE", "SSE2", "SS",  "HTT",   "TM",  NULL,	   "PBE",
};
static const char *const e1_edx_names[32] = {
    "FPU",  "VME",	"DE",	   "PSE",     "TSC",  "MSR", "PAE",	 "MCE",
    "CX8",  "APIC",	NULL,	   "SYSCALL", "MTRR", "PGE", "MCA",	 "CMOV",
    "PAT",  "PSE36",	NULL,	   NULL,      "NX",   NULL,  "MMXEXT",	 "MMX",
    "FXSR", "FXSR_OPT", "PDPE1GB", "RDTSCP",  NULL,   "LM",  "3DNOWEXT", "3DNOW",
};

static const char *flag_name(uint32_t fn, int reg, int bit, char *buf, size_t size)
{
	const char *n = NULL;
	if (fn == 0x1 && reg == 3)
		n = l1_edx_names[bit];
	else if (fn == 0x80000001 && reg == 3)
		n = e1_edx_names[bit];
	else if (fn == 0x1 && reg == 2 && bit == 0)
		n = "SSE3";
	else if (fn == 0x80000001 && reg == 2 && bit == 0)
		n = "LAHF_LM";
	if (n)
		return n;
	static const char *const regs[4] = {"EAX", "EBX", "ECX", "EDX"};
	snprintf(buf, size, "leaf %#x %s bit %d", (unsigned)fn, regs[reg & 3], bit);
	return buf;
}

const char *vmm_cpuid_missing(uint32_t fn, int reg, uint32_t have)
{
	static _Thread_local char buf[48];
	uint32_t r[4];
	vmm_cpuid(fn, 0, r);
	uint32_t want = r[reg & 3];
	if (fn == 0x1 && reg == 2)
		want &= ~BIT(31); /* the hypervisor bit describes us, not the host CPU */
	uint32_t lack = want & ~have;
	if (!lack)
		return NULL;
	return flag_name(fn, reg, __builtin_ctz(lack), buf, sizeof(buf));
}
