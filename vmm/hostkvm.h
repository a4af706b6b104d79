/*
 * hostkvm.h: which kind of KVM this host has, for `--backend auto` and the benchmarks
 * (docs/kvm-backend.md, "Which backend auto picks").
 *
 * A /dev/kvm that opens is not enough: KVM without hardware virtualisation (PVM, the
 * kvm_pvm module, as on hosts that are themselves cloud VMs without nested VMX/SVM) runs
 * guest ring-0 code through its instruction emulator, hundreds of times slower than emu.
 * So the kind is decided from the CPU flags and the loaded modules, by a pure function
 * that tests can feed sample hosts; the caller reads the real files.
 */
#ifndef REWIND_VMM_HOSTKVM_H
#define REWIND_VMM_HOSTKVM_H

enum vmm_hostkvm_kind {
	VMM_HOSTKVM_NONE = 0, /* no KVM that runs guest code in hardware */
	VMM_HOSTKVM_HARDWARE, /* vmx or svm, with kvm_intel or kvm_amd loaded */
	VMM_HOSTKVM_SOFTWARE, /* kvm_pvm loaded: /dev/kvm emulates guest kernel code */
};

struct vmm_hostkvm {
	enum vmm_hostkvm_kind kind;
	/* One word for scripts, stable: "hardware-vmx", "hardware-svm", "software-pvm" or
	 * "none". */
	const char *name;
	/* Why, as one clause for the user (static text), e.g. "/dev/kvm is software-nested
	 * KVM (kvm_pvm), slower than emu". */
	const char *why;
};

/* The module names vmm_hostkvm_classify looks for, NULL-terminated: a caller need only
 * check these (e.g. under /sys/module) to build its module list. */
extern const char *const vmm_hostkvm_modules[];

/*
 * Classify a host. flags: the "flags" line of /proc/cpuinfo, with or without its
 * "flags\t\t: " label (read up to the first newline; NULL or "" when unknown).
 * modules: the names of the loaded kernel modules, NULL-terminated (NULL: none).
 * The rule: kvm_pvm loaded is software KVM, whatever else is there; otherwise vmx with
 * kvm_intel, or svm with kvm_amd, is hardware (also when the host is itself a guest,
 * the "hypervisor" flag: nested VMX/SVM still runs guest code in hardware); anything
 * else is none. Flags are whole words ("svm_lock" is not "svm"). Never fails.
 */
struct vmm_hostkvm vmm_hostkvm_classify(const char *flags, const char *const *modules);

/* This host: vmm_hostkvm_classify over /proc/cpuinfo and /sys/module (unreadable: empty). */
struct vmm_hostkvm vmm_hostkvm_detect(void);

#endif
