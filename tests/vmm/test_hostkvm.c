/* unit */
/*
 * test_hostkvm.c: vmm/hostkvm.c: the host classification `--backend auto` and bench/ use,
 * on sample hosts: the flags line of /proc/cpuinfo and the loaded modules of real
 * Intel and AMD machines, a PVM cloud VM, and the ways a host can lack hardware KVM.
 */
#include "vmm/hostkvm.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

/* Shortened flags lines as /proc/cpuinfo prints them. */
#define INTEL_FLAGS                                                                                \
	"flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "            \
	"pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm "      \
	"constant_tsc pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma "         \
	"cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "         \
	"lahf_lm abm flexpriority ept vpid ept_ad fsgsbase bmi1 avx2 smep bmi2 erms invpcid"
#define AMD_FLAGS                                                                                  \
	"flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "            \
	"pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm "         \
	"constant_tsc rep_good nopl pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 "           \
	"movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy "        \
	"abm sse4a npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists"
/* This project's PVM machines: an AMD EPYC cloud VM, no vmx or svm, kvm + kvm_pvm. */
#define PVM_FLAGS                                                                                  \
	"flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "            \
	"pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm "         \
	"constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq "       \
	"pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer "       \
	"aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a "            \
	"misalignsse 3dnowprefetch osvw topoext ssbd ibpb vmmcall fsgsbase tsc_adjust bmi1 "       \
	"avx2 smep bmi2 rdseed adx smap clflushopt sha_ni xsaveopt xsavec xgetbv1 clzero"

static const char *const intel_mods[] = {"kvm", "kvm_intel", "irqbypass", NULL};
static const char *const amd_mods[] = {"kvm", "kvm_amd", "ccp", NULL};
static const char *const pvm_mods[] = {"kvm", "kvm_pvm", NULL};
static const char *const kvm_only[] = {"kvm", NULL};

static void expect_kind(struct vmm_hostkvm h, enum vmm_hostkvm_kind kind, const char *name,
			const char *why_has)
{
	cr_expect_eq(h.kind, kind, "kind %d, expected %d (%s: %s)", h.kind, kind, h.name, h.why);
	cr_expect_str_eq(h.name, name);
	cr_assert_not_null(h.why);
	cr_expect(strstr(h.why, why_has) != NULL, "why \"%s\" lacks \"%s\"", h.why, why_has);
	cr_expect(!strchr(h.why, '\n'), "why is not one clause: \"%s\"", h.why);
}

Test(hostkvm, intel_with_kvm_intel_is_hardware)
{
	expect_kind(vmm_hostkvm_classify(INTEL_FLAGS, intel_mods), VMM_HOSTKVM_HARDWARE,
		    "hardware-vmx", "vmx and kvm_intel");
}

Test(hostkvm, amd_with_kvm_amd_is_hardware)
{
	expect_kind(vmm_hostkvm_classify(AMD_FLAGS, amd_mods), VMM_HOSTKVM_HARDWARE, "hardware-svm",
		    "svm and kvm_amd");
}

Test(hostkvm, pvm_is_software)
{
	struct vmm_hostkvm h = vmm_hostkvm_classify(PVM_FLAGS, pvm_mods);
	expect_kind(h, VMM_HOSTKVM_SOFTWARE, "software-pvm", "kvm_pvm");
	cr_expect(strstr(h.why, "slower than emu") != NULL, "%s", h.why);
}

/* Even beside a hardware module: /dev/kvm may be PVM's, and that costs a factor of
 * hundreds, so the safe guess is software. */
Test(hostkvm, pvm_wins_over_a_hardware_module)
{
	static const char *const both[] = {"kvm_intel", "kvm", "kvm_pvm", NULL};
	expect_kind(vmm_hostkvm_classify(INTEL_FLAGS, both), VMM_HOSTKVM_SOFTWARE, "software-pvm",
		    "kvm_pvm");
}

Test(hostkvm, flags_without_the_module_are_none)
{
	expect_kind(vmm_hostkvm_classify(INTEL_FLAGS, kvm_only), VMM_HOSTKVM_NONE, "none",
		    "kvm_intel is not loaded");
	expect_kind(vmm_hostkvm_classify(AMD_FLAGS, kvm_only), VMM_HOSTKVM_NONE, "none",
		    "kvm_amd is not loaded");
	expect_kind(vmm_hostkvm_classify(AMD_FLAGS, NULL), VMM_HOSTKVM_NONE, "none",
		    "kvm_amd is not loaded");
	/* The other vendor's module does not make up for it. */
	expect_kind(vmm_hostkvm_classify(INTEL_FLAGS, amd_mods), VMM_HOSTKVM_NONE, "none",
		    "kvm_intel is not loaded");
	expect_kind(vmm_hostkvm_classify(AMD_FLAGS, intel_mods), VMM_HOSTKVM_NONE, "none",
		    "kvm_amd is not loaded");
}

/* A cloud VM with nested virtualisation: still hardware, and the reason says nested. */
Test(hostkvm, nested_hypervisor_flag_with_vmx_is_hardware)
{
	struct vmm_hostkvm h = vmm_hostkvm_classify(INTEL_FLAGS " hypervisor", intel_mods);
	expect_kind(h, VMM_HOSTKVM_HARDWARE, "hardware-vmx", "nested");
	h = vmm_hostkvm_classify("flags : svm hypervisor", amd_mods);
	expect_kind(h, VMM_HOSTKVM_HARDWARE, "hardware-svm", "nested");
	/* Without nesting the reason does not claim it. */
	h = vmm_hostkvm_classify(INTEL_FLAGS, intel_mods);
	cr_expect(!strstr(h.why, "nested"), "%s", h.why);
}

/* A guest of a hypervisor that passes no vmx/svm: a kvm module alone is no help. */
Test(hostkvm, nested_hypervisor_flag_without_vmx_is_none)
{
	expect_kind(vmm_hostkvm_classify(PVM_FLAGS, kvm_only), VMM_HOSTKVM_NONE, "none",
		    "hypervisor this host runs under");
	expect_kind(vmm_hostkvm_classify(PVM_FLAGS, amd_mods), VMM_HOSTKVM_NONE, "none",
		    "no vmx or svm");
}

Test(hostkvm, no_flags_at_all_is_none)
{
	expect_kind(vmm_hostkvm_classify("", NULL), VMM_HOSTKVM_NONE, "none", "no CPU flags");
	expect_kind(vmm_hostkvm_classify(NULL, intel_mods), VMM_HOSTKVM_NONE, "none",
		    "no CPU flags");
	expect_kind(vmm_hostkvm_classify("flags\t\t: \n", amd_mods), VMM_HOSTKVM_NONE, "none",
		    "no CPU flags");
	static const char *const none[] = {NULL};
	expect_kind(vmm_hostkvm_classify("", none), VMM_HOSTKVM_NONE, "none", "no CPU flags");
	/* Empty flags with kvm_pvm: the module alone says software. */
	expect_kind(vmm_hostkvm_classify("", pvm_mods), VMM_HOSTKVM_SOFTWARE, "software-pvm",
		    "kvm_pvm");
}

Test(hostkvm, plain_cpu_without_virtualisation_is_none)
{
	expect_kind(vmm_hostkvm_classify("flags\t\t: fpu vme de pse tsc msr pae lm", kvm_only),
		    VMM_HOSTKVM_NONE, "none", "off in the firmware");
}

/* Whole words only: AMD's svm_lock and a made-up vmx_foo are not the flags. */
Test(hostkvm, flags_are_whole_words)
{
	static const char *const all[] = {"kvm_intel", "kvm_amd", NULL};
	expect_kind(vmm_hostkvm_classify("flags : svm_lock nrip_save vmx_foo xvmx", all),
		    VMM_HOSTKVM_NONE, "none", "no vmx or svm");
	/* At either end of the line, with tabs, and without the label. */
	expect_kind(vmm_hostkvm_classify("vmx fpu", all), VMM_HOSTKVM_HARDWARE, "hardware-vmx",
		    "vmx");
	expect_kind(vmm_hostkvm_classify("fpu\tsvm", all), VMM_HOSTKVM_HARDWARE, "hardware-svm",
		    "svm");
	/* Module names are whole too. */
	static const char *const near[] = {"kvm_intel_x", "kvm_pvm2", NULL};
	expect_kind(vmm_hostkvm_classify(INTEL_FLAGS, near), VMM_HOSTKVM_NONE, "none",
		    "kvm_intel is not loaded");
}

/* Only the first line counts: the caller passes the flags line, not the next one. */
Test(hostkvm, reads_up_to_the_first_newline)
{
	expect_kind(vmm_hostkvm_classify("flags\t: fpu lm\nvmx : vmx svm", intel_mods),
		    VMM_HOSTKVM_NONE, "none", "no vmx or svm");
	expect_kind(vmm_hostkvm_classify("flags\t: fpu vmx\nbugs : x", intel_mods),
		    VMM_HOSTKVM_HARDWARE, "hardware-vmx", "kvm_intel");
}

/* The modules a caller must look for are those that change the answer, and no others. */
Test(hostkvm, module_list_is_what_the_rule_reads)
{
	static const char *const hosts[] = {INTEL_FLAGS, AMD_FLAGS, PVM_FLAGS};
	size_t n = 0;
	for (; vmm_hostkvm_modules[n]; n++) {
		const char *const one[] = {vmm_hostkvm_modules[n], NULL};
		bool matters = false;
		for (size_t i = 0; i < 3; i++)
			matters |= vmm_hostkvm_classify(hosts[i], one).kind !=
				   vmm_hostkvm_classify(hosts[i], NULL).kind;
		cr_expect(matters, "%s changes no host's kind", vmm_hostkvm_modules[n]);
	}
	cr_expect_eq(n, 3, "%zu modules listed", n);
	/* kvm itself and others are loaded on every KVM host: they decide nothing. */
	for (size_t i = 0; i < 3; i++)
		cr_expect_eq(vmm_hostkvm_classify(hosts[i], kvm_only).kind,
			     vmm_hostkvm_classify(hosts[i], NULL).kind);
}
