/*
 * hostkvm.c: the rule `--backend auto` and the benchmarks use to tell a hardware KVM
 * from a software one or none (hostkvm.h). Pure: it reads no files, so every kind of
 * host can be tested from sample inputs; tools/ reads /proc/cpuinfo and /sys/module.
 */
#include "hostkvm.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const vmm_hostkvm_modules[] = {"kvm_intel", "kvm_amd", "kvm_pvm", NULL};

/* Whether the flags (up to a newline) hold word as a whole, space-separated word. */
static bool has_flag(const char *flags, const char *word)
{
	size_t wl = strlen(word);
	const char *p = flags;
	while (*p && *p != '\n') {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t\n");
		if (n == wl && !strncmp(p, word, wl))
			return true;
		p += n;
	}
	return false;
}

static bool has_module(const char *const *modules, const char *name)
{
	for (; modules && *modules; modules++)
		if (!strcmp(*modules, name))
			return true;
	return false;
}

static struct vmm_hostkvm host(enum vmm_hostkvm_kind kind, const char *name, const char *why)
{
	return (struct vmm_hostkvm){.kind = kind, .name = name, .why = why};
}

struct vmm_hostkvm vmm_hostkvm_classify(const char *flags, const char *const *modules)
{
	if (!flags)
		flags = "";
	/* "flags\t\t: fpu vme ...": the words start after the label's colon. */
	const char *colon = strchr(flags, ':');
	const char *nl = strchr(flags, '\n');
	if (colon && (!nl || colon < nl))
		flags = colon + 1;
	bool nested = has_flag(flags, "hypervisor");

	/* PVM first: with it loaded, /dev/kvm may be PVM's even if a hardware module is
	 * there too, and guessing wrong costs a factor of hundreds. */
	if (has_module(modules, "kvm_pvm"))
		return host(VMM_HOSTKVM_SOFTWARE, "software-pvm",
			    "/dev/kvm is software-nested KVM (kvm_pvm), slower than emu");
	if (has_flag(flags, "vmx")) {
		if (!has_module(modules, "kvm_intel"))
			return host(VMM_HOSTKVM_NONE, "none",
				    "the CPU has vmx but kvm_intel is not loaded, so there is no "
				    "hardware KVM");
		return host(VMM_HOSTKVM_HARDWARE, "hardware-vmx",
			    nested ? "vmx and kvm_intel (nested under another hypervisor): KVM "
				     "runs guest code in hardware"
				   : "vmx and kvm_intel: KVM runs guest code in hardware");
	}
	if (has_flag(flags, "svm")) {
		if (!has_module(modules, "kvm_amd"))
			return host(VMM_HOSTKVM_NONE, "none",
				    "the CPU has svm but kvm_amd is not loaded, so there is no "
				    "hardware KVM");
		return host(VMM_HOSTKVM_HARDWARE, "hardware-svm",
			    nested ? "svm and kvm_amd (nested under another hypervisor): KVM "
				     "runs guest code in hardware"
				   : "svm and kvm_amd: KVM runs guest code in hardware");
	}
	size_t blank = strspn(flags, " \t");
	if (!flags[blank] || flags[blank] == '\n')
		return host(VMM_HOSTKVM_NONE, "none",
			    "no CPU flags to read, so no sign of hardware KVM");
	if (nested)
		return host(VMM_HOSTKVM_NONE, "none",
			    "no vmx or svm CPU flag (the hypervisor this host runs under does not "
			    "pass them on), so no hardware KVM");
	return host(VMM_HOSTKVM_NONE, "none",
		    "no vmx or svm CPU flag (off in the firmware, or a CPU without them), so no "
		    "hardware KVM");
}

/* The first flags line of /proc/cpuinfo and the modules under /sys/module. A file that
 * cannot be read counts as empty: no flags means no hardware KVM, the safe side. */
struct vmm_hostkvm vmm_hostkvm_detect(void)
{
	char *line = NULL, *flags = NULL;
	size_t cap = 0;
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (f) {
		while (getline(&line, &cap, f) > 0)
			if (!strncmp(line, "flags", 5) && strchr(" \t:", line[5])) {
				flags = line;
				break;
			}
		fclose(f);
	}
	const char *mods[8];
	size_t n = 0;
	for (const char *const *m = vmm_hostkvm_modules; *m && n + 1 < 8; m++) {
		char path[128];
		snprintf(path, sizeof(path), "/sys/module/%s", *m);
		if (access(path, F_OK) == 0)
			mods[n++] = *m;
	}
	mods[n] = NULL;
	struct vmm_hostkvm h = vmm_hostkvm_classify(flags, mods);
	free(line); /* h's texts are static */
	return h;
}
