/*
 * machcfg.c: the decisions `rewind record` and `rewind ft primary` share about the machine
 * they record on (which backend, what its positions count, the config line the log
 * carries, the portable flags the machine gets), and those `rewind replay` and `rewind ft
 * backup` share about the machine a log is replayed on. One place each, so that a log
 * and the stream of an ft pair say the same things and are read the same way
 * (docs/kvm-backend.md, "Portable logs"; docs/ft.md, "Backends").
 */
#include "tools/cli.h"

#include "vmm/cpu.h"
#include "vmm/hostkvm.h"
#include "vmm/loader.h"
#include "vmm/machine.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * The machine model a log is recorded on: bump when anything the guest sees changes (a
 * device's behaviour, the CPU's CPUID, the entry state). 2: one CPUID table for both
 * backends without CX16, GDTR {0x1000, 0x17} and IDTR {0, 0} at entry.
 */
#define MACHINE_MODEL "rewind-pc-2"

/*
 * --backend auto: kvm only where KVM runs guest code in hardware and /dev/kvm opens.
 * A /dev/kvm that opens is not enough: software KVM (PVM) runs a CPU-bound guest hundreds
 * of times slower than emu. The reason goes to why.
 */
static const struct vmm_cpu_ops *auto_backend(struct vmm_hostkvm *host, char *why, size_t cap)
{
	*host = vmm_hostkvm_detect();
	if (host->kind != VMM_HOSTKVM_HARDWARE) {
		snprintf(why, cap, "%s", host->why);
		return &emu_cpu_ops;
	}
	if (kvm_cpu_ops.probe() < 0) {
		snprintf(why, cap, "hardware KVM (%s), but %s", host->name, vmm_errdetail());
		return &emu_cpu_ops;
	}
	snprintf(why, cap, "%s", host->why);
	return &kvm_cpu_ops;
}

void cli_print_backend_help(void)
{
	struct vmm_hostkvm h;
	char why[768];
	const struct vmm_cpu_ops *b = auto_backend(&h, why, sizeof(why));
	printf("host kvm: %s (%s)\n"
	       "auto picks: %s (%s)\n",
	       h.name, h.why, b->name, why);
}

int cli_status_for(int err)
{
	switch (-err) {
	case VMM_EINVAL:
		return EXIT_USAGE;
	case VMM_ENOENT:
	case VMM_EBADELF:
	case VMM_ENOPVH:
	case VMM_ELAYOUT:
	case VMM_ESTATE:
		return EXIT_BADINPUT;
	case VMM_ENOMEM:
	case VMM_EIO:
	case VMM_ENOKVM:
		return EXIT_HOST;
	case VMM_EGUEST:
		return EXIT_RESET;
	case VMM_EINPUT:
		return EXIT_DIVERGED;
	default:
		return EXIT_INTERNAL;
	}
}

void cli_kvm_unusable(int err, const char *what)
{
	const char *d = vmm_errdetail();
	if (!*d)
		d = vmm_strerror(-err);
	int status = cli_status_for(err);
	if (!strncmp(d, what, strlen(what)))
		die_line(status, "%s", d);
	die_line(status, "%s: %s", what, d);
}

const struct vmm_cpu_ops *cli_pick_backend(const char *name)
{
	if (!strcmp(name, "emu"))
		return &emu_cpu_ops;
	if (!strcmp(name, "kvm")) {
		int rc = kvm_cpu_ops.probe();
		if (rc < 0)
			cli_kvm_unusable(rc, "--backend kvm");
		return &kvm_cpu_ops;
	}
	if (!strcmp(name, "auto")) {
		struct vmm_hostkvm h;
		char why[768];
		const struct vmm_cpu_ops *b = auto_backend(&h, why, sizeof(why));
		fprintf(stderr, "%s: backend %s (auto: %s)\n", prog, b->name, why);
		return b;
	}
	die_line(EXIT_USAGE, "--backend %s: expected kvm, emu, auto or help", name);
}

bool cli_record_exits(const struct vmm_cpu_ops *backend, bool positions_given, bool exits)
{
	if (backend == &kvm_cpu_ops && positions_given && !exits)
		die_line(EXIT_USAGE, "--positions instructions: the kvm backend counts exits "
				     "only (it has no instruction count)");
	if (backend == &kvm_cpu_ops)
		fprintf(stderr,
			"%s: recording on kvm, whose log leaves out RDTSC (stock KVM cannot trap "
			"it): a guest that reads the TSC may diverge on replay (docs/kvm-backend.md); "
			"--backend emu records every guest exactly\n",
			prog);
	return backend == &kvm_cpu_ops || exits;
}

unsigned cli_record_machine(const struct vmm_cpu_ops *backend, bool exits, uint64_t mem,
			    const char *clock, char *config, size_t cap)
{
	/* digest=arch: landmarks and hashes use the digest emu computes alike, so the log
	 * replays on emu too (docs/kvm-backend.md, "Portable logs"). */
	snprintf(config, cap,
		 "machine=%s\nbackend=%s\npositions=%s\nmem=%" PRIu64 "\nclock=%s\n%s",
		 MACHINE_MODEL, backend->name, exits ? "exits" : "instructions", mem, clock,
		 exits ? "digest=arch\n" : "");
	/* kvm counts exits by nature; emu does so on request, as kvm would (vmm/emu.c). */
	return !exits ? 0
	       : backend == &kvm_cpu_ops ? VMM_PORT_DIGEST
					 : VMM_PORT_DIGEST | VMM_PORT_EXITS;
}

/* The value of KEY in a config text of key=value lines, copied into buf; false if absent. */
bool cli_config_get(const char *config, const char *key, char *buf, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = config; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > kl && !strncmp(p, key, kl) && p[kl] == '=' && len - kl - 1 < cap) {
			memcpy(buf, p + kl + 1, len - kl - 1);
			buf[len - kl - 1] = 0;
			return true;
		}
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

int cli_replay_machine(const char *config, const char *what, const char *backend_name,
		       bool gdb, struct cli_replay_machine *rm, char *err, size_t cap)
{
	memset(rm, 0, sizeof(*rm));
	char model[64], memtxt[32], v1[2048];
	static const char *const keys[] = {"machine", "backend", "positions", "mem"};
	char *const vals[] = {model, rm->bname, rm->positions, memtxt};
	const size_t caps[] = {sizeof(model), sizeof(rm->bname), sizeof(rm->positions),
			       sizeof(memtxt)};
	for (int i = 0; i < 4; i++)
		if (!cli_config_get(config, keys[i], vals[i], caps[i])) {
			snprintf(err, cap, "%s: the machine config in the log has no usable '%s=' line",
				 what, keys[i]);
			return EXIT_BADINPUT;
		}
	if (strcmp(model, MACHINE_MODEL)) {
		snprintf(err, cap,
			 "%s: recorded on machine model %s; this rewind replays %s only "
			 "(replay it with the rewind that recorded it)",
			 what, cli_visible(model, v1, sizeof(v1)), MACHINE_MODEL);
		return EXIT_BADINPUT;
	}
	char *end;
	errno = 0;
	rm->mem = strtoull(memtxt, &end, 10);
	if (errno || *end || memtxt[0] < '0' || memtxt[0] > '9' || rm->mem < VMM_MEM_MIN ||
	    rm->mem > VMM_MEM_MAX || (rm->mem & 0xfff)) {
		snprintf(err, cap, "%s: bad memory size \"%s\" in the log", what,
			 cli_visible(memtxt, v1, sizeof(v1)));
		return EXIT_BADINPUT;
	}
	if (strcmp(rm->bname, "emu") && strcmp(rm->bname, "kvm")) {
		snprintf(err, cap,
			 "%s: the log names backend \"%s\" (expected kvm or emu): the log is "
			 "damaged or not from this rewind",
			 what, cli_visible(rm->bname, v1, sizeof(v1)));
		return EXIT_BADINPUT;
	}
	rm->asked = backend_name != NULL; /* --backend given, not taken from the log */
	if (!rm->asked) /* time travel replays on emu, whatever the log was recorded on */
		backend_name = gdb ? "emu" : rm->bname;
	if (!strcmp(backend_name, "emu")) {
		rm->backend = &emu_cpu_ops;
	} else if (!strcmp(backend_name, "kvm")) {
		rm->backend = &kvm_cpu_ops;
	} else {
		snprintf(err, cap, "--backend %s: expected kvm or emu", backend_name);
		return EXIT_USAGE;
	}
	/* Whether the positions fit comes first: it does not depend on this host. */
	const char *want_pos = rm->backend == &kvm_cpu_ops ? "exits" : "instructions";
	char digest[16];
	bool arch = cli_config_get(config, "digest", digest, sizeof(digest));
	if (arch && strcmp(digest, "arch")) {
		snprintf(err, cap, "%s: unknown register digest '%s' in the log", what,
			 cli_visible(digest, v1, sizeof(v1)));
		return EXIT_BADINPUT;
	}
	/* A kvm log with the architectural digest replays on emu, counting exits. */
	rm->exits_on_emu = rm->backend == &emu_cpu_ops && !strcmp(rm->positions, "exits");
	rm->portable = (arch ? VMM_PORT_DIGEST : 0) | (rm->exits_on_emu ? VMM_PORT_EXITS : 0) |
		       (rm->exits_on_emu && !strcmp(rm->bname, "emu") ? VMM_PORT_OWN_FLAGS : 0);
	if (rm->exits_on_emu && !arch) {
		snprintf(err, cap,
			 "%s: recorded on kvm by an older rewind, whose landmarks and state hashes "
			 "cover registers only kvm fills alike: it replays on kvm only (--backend "
			 "kvm)",
			 what);
		return EXIT_BADINPUT;
	}
	if (!rm->exits_on_emu && strcmp(rm->positions, want_pos)) {
		snprintf(err, cap,
			 "%s: its positions count %s (recorded on %s); the %s backend counts %s, "
			 "and converting them is not supported yet",
			 what, cli_visible(rm->positions, v1, sizeof(v1)), rm->bname,
			 rm->backend->name, want_pos);
		return EXIT_BADINPUT;
	}
	rm->exits = !strcmp(rm->positions, "exits");
	return 0;
}

void cli_read_initrd(const char *path, uint64_t mem, void **buf, size_t *len)
{
	/* Larger than RAM cannot fit; the loader says so for what is merely too big for the
	 * RAM above the kernel. */
	struct stat st;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > mem)
		die_line(EXIT_BADINPUT,
			 "--initrd %s: %lld bytes do not fit in the guest's %" PRIu64
			 " bytes of RAM: give it more memory (--mem)",
			 path, (long long)st.st_size, mem);
	int rc = vmm_read_file(path, mem, buf, len);
	if (rc < 0)
		die_line(rc == -VMM_ENOMEM ? EXIT_HOST : EXIT_BADINPUT, "--initrd: %s",
			 vmm_errdetail());
	if (*len == 0)
		die_line(EXIT_BADINPUT, "--initrd %s: the file is empty", path);
}

bool cli_parse_positions(const char *arg)
{
	if (strcmp(arg, "exits") && strcmp(arg, "instructions"))
		die_line(EXIT_USAGE, "--positions %s: expected instructions or exits", arg);
	return !strcmp(arg, "exits");
}
