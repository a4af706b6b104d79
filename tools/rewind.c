/*
 * rewind.c: the command line (DESIGN.md §1). The only place that prints to the user and
 * decides exit statuses. Library errors arrive as negative codes plus vmm_errdetail().
 */
#include "vmm/cpu.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include "tools/console.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* rewind's own exit statuses (even; the guest's are odd: (V << 1) | 1). */
enum {
	EXIT_POWEROFF = 0,
	EXIT_USAGE = 2,
	EXIT_BADINPUT = 4,
	EXIT_RESET = 6,
	EXIT_DIVERGED = 8,
	EXIT_HOST = 10,
	EXIT_INTERNAL = 12,
};

static const char *prog = "rewind";

static void usage_main(FILE *f)
{
	fprintf(f,
		"usage: rewind COMMAND [options] ...\n"
		"\n"
		"Commands:\n"
		"  run [options] GUEST.elf     run a PVH guest live, no log\n"
		"\n"
		"Run 'rewind COMMAND --help' for a command's options.\n"
		"\n"
		"Exit status:\n"
		"  odd N     the guest wrote V to isa-debug-exit (port 0xf4): N = (V << 1) | 1\n"
		"  0         the guest stopped another way (halted with interrupts off, or\n"
		"            stopped by the user: Ctrl-A x on a terminal, SIGINT otherwise)\n"
		"  2         usage error\n"
		"  4         bad input: file, ELF image, log\n"
		"  6         the guest reset the machine or triple-faulted\n"
		"  8         replay diverged from the recording\n"
		"  10        host resource: no /dev/kvm, port in use, disk full\n"
		"  12        internal error\n");
}

static void usage_run(FILE *f)
{
	fprintf(f,
		"usage: rewind run [options] GUEST.elf\n"
		"\n"
		"Boot a PVH ELF kernel (Xen PVH entry note) on rewind's PC: 16550A UART (COM1),\n"
		"8259A PICs, 8254 PIT, CMOS RTC, isa-debug-exit at 0xf4.\n"
		"\n"
		"Options:\n"
		"  --backend kvm|emu|auto  vCPU backend (default auto: kvm when /dev/kvm opens,\n"
		"                          else emu, and say which on stderr)\n"
		"  --mem SIZE              guest RAM, e.g. 128M, 1G (default 128M; 2M to 64G)\n"
		"  --append CMDLINE        kernel command line\n"
		"  --serial stdio|file:PATH|tcp:HOST:PORT\n"
		"                          COM1 (default stdio). stdio on a terminal: raw mode,\n"
		"                          Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.\n"
		"                          file: output only. tcp: listen on HOST:PORT and wait\n"
		"                          for one client, which gets output and gives input.\n"
		"  --verbose               show backend, position and unhandled ports at exit\n"
		"  -h, --help              this help\n"
		"\n"
		"Exit status: see 'rewind --help'.\n");
}

static void die_line(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die_line(int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* Map a vmm error code to rewind's exit status. */
static int status_for(int err)
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
	default:
		return EXIT_INTERNAL;
	}
}

/* One line: "rewind: WHAT: DETAIL" (WHAT left out when the detail already starts with it). */
static void fail_with(int status, int err, const char *what)
{
	const char *d = vmm_errdetail();
	if (!*d)
		d = vmm_strerror(-err);
	if (!strncmp(d, what, strlen(what)))
		fprintf(stderr, "%s: %s\n", prog, d);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, d);
	exit(status);
}

static void fail(int err, const char *what)
{
	fail_with(status_for(err), err, what);
}

struct common_opts {
	const char *backend;
	const char *mem;
	const char *append;
	const char *serial;
	bool verbose;
};

static const struct vmm_cpu_ops *pick_backend(const char *name, bool verbose)
{
	if (!strcmp(name, "emu"))
		return &emu_cpu_ops;
	if (!strcmp(name, "kvm")) {
		int rc = kvm_cpu_ops.probe();
		if (rc < 0)
			fail(rc, "--backend kvm");
		return &kvm_cpu_ops;
	}
	if (!strcmp(name, "auto")) {
		if (kvm_cpu_ops.probe() == 0) {
			fprintf(stderr, "%s: using the kvm backend\n", prog);
			return &kvm_cpu_ops;
		}
		if (verbose)
			fprintf(stderr, "%s: using the emu backend (%s)\n", prog, vmm_errdetail());
		else
			fprintf(stderr, "%s: using the emu backend (no usable /dev/kvm)\n", prog);
		return &emu_cpu_ops;
	}
	die_line(EXIT_USAGE, "--backend %s: expected kvm, emu or auto", name);
	return NULL;
}

static void dump_regs(struct vmm_machine *m)
{
	struct vmm_regs r;
	const struct vmm_cpu_ops *ops = vmm_machine_backend(m);
	if (ops->get_regs(vmm_machine_cpu(m), &r) < 0)
		return;
	fprintf(stderr,
		"  RIP=%016llx RFLAGS=%08llx CS=%04x SS=%04x\n"
		"  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
		"  RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
		"  R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
		"  R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
		"  CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%08llx\n"
		"  GDT=%016llx/%04x IDT=%016llx/%04x\n",
		(unsigned long long)r.rip, (unsigned long long)r.rflags, r.cs.sel, r.ss.sel,
		(unsigned long long)r.rax, (unsigned long long)r.rbx, (unsigned long long)r.rcx,
		(unsigned long long)r.rdx, (unsigned long long)r.rsi, (unsigned long long)r.rdi,
		(unsigned long long)r.rbp, (unsigned long long)r.rsp, (unsigned long long)r.r8,
		(unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11,
		(unsigned long long)r.r12, (unsigned long long)r.r13, (unsigned long long)r.r14,
		(unsigned long long)r.r15, (unsigned long long)r.cr0, (unsigned long long)r.cr2,
		(unsigned long long)r.cr3, (unsigned long long)r.cr4, (unsigned long long)r.efer,
		(unsigned long long)r.gdt.base, r.gdt.limit, (unsigned long long)r.idt.base,
		r.idt.limit);
}

static struct vmm_live *g_live;

static void on_signal(int sig)
{
	(void)sig;
	if (g_live)
		vmm_live_request_stop(g_live);
}

static int cmd_run(int argc, char **argv)
{
	struct common_opts o = {.backend = "auto", .mem = "128M", .serial = "stdio"};
	static const struct option lopts[] = {
		{"backend", required_argument, NULL, 'b'}, {"mem", required_argument, NULL, 'm'},
		{"append", required_argument, NULL, 'a'},  {"serial", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o.backend = optarg;
			break;
		case 'm':
			o.mem = optarg;
			break;
		case 'a':
			o.append = optarg;
			break;
		case 's':
			o.serial = optarg;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			usage_run(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'rewind run --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die_line(EXIT_USAGE, "run: expected one guest ELF file (try 'rewind run --help')");
	const char *path = argv[optind];

	uint64_t mem;
	if (vmm_parse_size(o.mem, &mem) < 0)
		die_line(EXIT_USAGE, "--mem %s: expected a size such as 128M or 1G", o.mem);
	if (mem < VMM_MEM_MIN || mem > VMM_MEM_MAX || (mem & 0xfff))
		die_line(EXIT_USAGE, "--mem %s: must be a multiple of 4K from 2M to 64G", o.mem);
	if (o.append && strlen(o.append) > VMM_CMDLINE_MAX)
		die_line(EXIT_USAGE, "--append: command line longer than %u bytes",
			 VMM_CMDLINE_MAX);

	struct console con;
	int rc = console_open(&con, o.serial);
	if (rc < 0)
		die_line(rc == -EINVAL ? EXIT_USAGE : EXIT_HOST, "--serial %s: %s", o.serial,
			 con.error);

	void *elf;
	size_t elf_len;
	rc = vmm_read_file(path, 512u << 20, &elf, &elf_len);
	if (rc < 0) /* missing, a directory, not a regular file, too large: bad input */
		fail_with(rc == -VMM_ENOMEM ? EXIT_HOST : EXIT_BADINPUT, rc, path);

	const struct vmm_cpu_ops *backend = pick_backend(o.backend, o.verbose);

	struct vmm_live_config lc = {.in_fd = con.in_fd,
				     .escape = con.escape,
				     .out = console_out,
				     .out_opaque = &con,
				     .flush = console_flush};
	struct vmm_live *live;
	rc = vmm_live_create(&lc, &live);
	if (rc < 0)
		fail(rc, "live input");
	struct vmm_config cfg = {.mem_size = mem,
				 .backend = backend,
				 .input = &vmm_live_input_ops,
				 .input_opaque = live};
	struct vmm_machine *m;
	rc = vmm_machine_create(&cfg, &m);
	if (rc < 0)
		fail(rc, "creating the machine");
	rc = vmm_machine_load(m, elf, elf_len, o.append);
	free(elf);
	if (rc < 0)
		fail(rc, path);
	rc = vmm_live_start(live, m);
	if (rc < 0)
		fail(rc, "live input");

	g_live = live;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	console_start(&con);

	struct vmm_stop stop;
	rc = vmm_machine_run(m, &stop);
	console_finish(&con);
	if (rc < 0)
		fail(rc, "guest");

	int status = EXIT_POWEROFF;
	switch (stop.reason) {
	case VMM_STOP_DEBUG_EXIT:
		status = (int)(((stop.exit_value << 1) | 1) & 0xff);
		break;
	case VMM_STOP_RESET:
		fprintf(stderr, "%s: the guest requested a reset at position %llu\n", prog,
			(unsigned long long)stop.pos);
		dump_regs(m);
		status = EXIT_RESET;
		break;
	case VMM_STOP_TRIPLE_FAULT:
		fprintf(stderr,
			"%s: triple fault at position %llu (exception %d could not be delivered)\n",
			prog, (unsigned long long)stop.pos, stop.vector);
		dump_regs(m);
		status = EXIT_RESET;
		break;
	case VMM_STOP_HALTED:
		fprintf(stderr,
			"%s: the guest halted with interrupts disabled at position %llu; nothing "
			"can wake it\n",
			prog, (unsigned long long)stop.pos);
		break;
	case VMM_STOP_USER:
		fprintf(stderr, "%s: stopped at position %llu\n", prog,
			(unsigned long long)stop.pos);
		break;
	}
	if (o.verbose) {
		fprintf(stderr, "%s: backend %s, stopped at position %llu\n", prog, backend->name,
			(unsigned long long)stop.pos);
		struct vmm_unhandled u[64];
		size_t n = vmm_machine_unhandled(m, u, 64);
		for (size_t i = 0; i < n && i < 64; i++)
			fprintf(stderr, "%s: unhandled port %#06x: %llu reads, %llu writes\n", prog,
				u[i].port, (unsigned long long)u[i].reads,
				(unsigned long long)u[i].writes);
		if (n == 0)
			fprintf(stderr, "%s: no accesses to unhandled ports\n", prog);
	}
	g_live = NULL;
	vmm_live_destroy(live);
	vmm_machine_destroy(m);
	console_close(&con);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s' (try 'rewind --help')\n", prog, argv[1]);
	return EXIT_USAGE;
}
