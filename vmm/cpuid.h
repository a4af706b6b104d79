/*
 * cpuid.h: the one CPU every backend shows the guest. A fixed table, not the host's, so
 * that a guest cannot tell emu from kvm and a log stays portable between them and
 * between hosts (docs/emu-backend.md and docs/kvm-backend.md, "CPUID").
 */
#ifndef REWIND_VMM_CPUID_H
#define REWIND_VMM_CPUID_H

#include <stddef.h>
#include <stdint.h>

/* One leaf (function, subleaf) of the table. */
struct vmm_cpuid_leaf {
	uint32_t fn, index;
	uint32_t eax, ebx, ecx, edx;
};

/* The table: every leaf the guest can read with a non-zero result, each once. */
extern const struct vmm_cpuid_leaf vmm_cpuid_leaves[];
extern const size_t vmm_cpuid_nleaves;

/*
 * CPUID(leaf, sub) as the guest sees it, r[] = EAX, EBX, ECX, EDX. A leaf not in the
 * table reads as zeros, as on AMD (the vendor the table names), also beyond the max
 * leaf. Subleaves are ignored: no leaf of the table has any.
 */
void vmm_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]);

/*
 * The first feature flag the table advertises in register reg (0 EAX .. 3 EDX) of leaf
 * fn that the host's value `have` lacks, by name ("CX16", "leaf 1 ECX bit 13" where it
 * has none); NULL when the host has them all. For backends that run guest code on the
 * host CPU: a flag the CPU lacks must not be advertised.
 */
const char *vmm_cpuid_missing(uint32_t fn, int reg, uint32_t have);

/*
 * The flags of register reg of leaf fn that are instruction-set extensions only (SSE3,
 * CMOV, ...): the CPU executes them without any help or state from a hypervisor, so a
 * host CPU that has them can run them in a guest even where KVM's supported list leaves
 * them out (a software-nested KVM lists no SSE3 on a CPU that has it).
 */
uint32_t vmm_cpuid_isa_mask(uint32_t fn, int reg);

/* The (fn, reg) pairs that hold feature flags, for vmm_cpuid_missing. */
struct vmm_cpuid_flags {
	uint32_t fn;
	int reg;
};
extern const struct vmm_cpuid_flags vmm_cpuid_flag_regs[];
extern const size_t vmm_cpuid_nflag_regs;

#endif
