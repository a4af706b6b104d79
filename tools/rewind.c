/*
 * rewind.c: the command line (docs/architecture.md): run, record, replay; `log` is in logcmd.c.
 * The only place that prints to the user and decides exit statuses. Library errors
 * arrive as negative codes plus vmm_errdetail() / lf_errdetail().
 */
#include "logfmt/log.h"
#include "record/record.h"
#include "replay/replay.h"
#include "vmm/cpu.h"
#include "vmm/hostkvm.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include "tools/cli.h"
#include "tools/console.h"
#include "tools/debugcmd.h"
#include "debugger/backtrace.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *prog = "rewind";

static void usage_main(FILE *f)
{
	fprintf(f,
		"usage: rewind COMMAND [options] ...\n"
		"\n"
		"Commands:\n"
		"  run [options] GUEST.elf               run a PVH guest live, no log\n"
		"  record [options] -o LOG GUEST.elf     run live and log every input\n"
		"                                        (both: --gdb [HOST:]PORT to debug it\n"
		"                                        live with gdb, forward only)\n"
		"  replay [options] LOG                  run the recording again, verified\n"
		"  debug [options] LOG [-- GDB-ARGS]     replay it under gdb, forwards and back\n"
		"  log info|dump|verify LOG              inspect or check a log\n"
		"  ft primary|backup|status|keygen ...   a fault-tolerant pair (rewind ft --help)\n"
		"  console --key KEY ADDR[,ADDR...]      the ft pair's console, following failover\n"
		"\n"
		"Run 'rewind COMMAND --help' for a command's options.\n"
		"\n"
		"Exit status:\n"
		"  odd N     the guest wrote V to isa-debug-exit (port 0xf4): N = (V << 1) | 1\n"
		"            (replay: the status the recorded guest exited with)\n"
		"  0         the guest stopped another way (halted with interrupts off, or\n"
		"            stopped by the user: Ctrl-A x on a terminal, SIGINT otherwise,\n"
		"            kill in gdb)\n"
		"  2         usage error\n"
		"  4         bad input: file, ELF image, log (corrupt, cut, other version)\n"
		"  6         the guest reset the machine or triple-faulted\n"
		"  8         replay diverged from the recording\n"
		"  10        host resource: no /dev/kvm, port in use, disk full\n"
		"  12        internal error\n"
		"  14        ft: this side lost the arbiter and stopped its guest (the other\n"
		"            side runs it)\n");
}

static const char machine_help_head[] =
	"Boot a PVH ELF kernel (Xen PVH entry note) on rewind's PC: 16550A UART (COM1),\n"
	"8259A PICs, 8254 PIT, CMOS RTC, isa-debug-exit at 0xf4.\n"
	"\n"
	"Options:\n";

/* auto's rule in words, for both commands' --backend help (docs/kvm-backend.md). */
#define AUTO_HELP                                                                          \
	"                          auto: kvm where KVM runs guest code in hardware (vmx\n"    \
	"                          or svm, kvm_intel or kvm_amd loaded, no kvm_pvm) and\n"    \
	"                          /dev/kvm opens, else emu (always under --gdb or\n"         \
	"                          --clock virtual); it says which and why on stderr.\n"     \
	"                          --backend help: this host's KVM kind and auto's pick\n"

static const char run_backend_help[] =
	"  --backend kvm|emu|auto  vCPU backend (default auto)\n" AUTO_HELP;

static const char record_backend_help[] =
	"  --backend emu|kvm|auto  vCPU backend (default emu: it records every guest\n"
	"                          exactly). kvm leaves RDTSC out of the log (stock KVM\n"
	"                          cannot trap it): a guest that reads the TSC may\n"
	"                          diverge on replay, and rewind says so when it starts.\n" AUTO_HELP;

static const char machine_help[] =
	"  --mem SIZE              guest RAM, e.g. 128M, 1G (default 128M; 2M to 64G)\n"
	"  --append CMDLINE        kernel command line\n"
	"  --initrd FILE           an initial ramdisk (e.g. a cpio archive) for the\n"
	"                          kernel: placed at the top of RAM below 4 GiB and\n"
	"                          handed over as the one PVH module\n"
	"  --serial stdio|file:PATH|tcp:HOST:PORT\n"
	"                          COM1 (default stdio). stdio on a terminal: raw mode,\n"
	"                          Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"                          file: output only. tcp: listen on HOST:PORT and wait\n"
	"                          for one client, which gets output and gives input\n"
	"                          (PORT 0: a free port, named on stderr; [::1] for IPv6).\n"
	"  --clock real|real/N|virtual\n"
	"                          machine clock (default real: the host's, so timing\n"
	"                          varies from run to run). real/N: the host's slowed down\n"
	"                          N times (2..1000), for a host too slow for the guest's\n"
	"                          timer rate (software KVM). virtual: 1 ns per instruction\n"
	"                          from 2026-01-01, timers at exact instruction counts, the\n"
	"                          same every run without input (emu only).\n"
	"  --gdb [HOST:]PORT       listen there for gdb (host 127.0.0.1 unless given;\n"
	"                          port 0 picks one), say where on stderr, and wait for\n"
	"                          it before the first instruction (QEMU's -s -S); then\n"
	"                          gdb runs the guest forward only: break, watch, step,\n"
	"                          continue, Ctrl-C, 'monitor when'. The guest's clock\n"
	"                          stands still while gdb holds it. Detaching lets the\n"
	"                          guest run on; its exit reaches gdb and sets rewind's\n"
	"                          status as usual. emu backend only\n"
	"  --verbose               show backend, position and unhandled ports at exit\n"
	"  --progress SECONDS      every SECONDS, a line on stderr: time elapsed, lines\n"
	"                          the guest printed and (kvm) the position, for boots\n"
	"                          that take minutes (Linux on software KVM)\n"
	"  -h, --help              this help\n";

static void usage_run(FILE *f)
{
	fprintf(f,
		"usage: rewind run [options] GUEST.elf\n\n%s%s%s\n"
		"Under --gdb, gdb may also change the guest's memory (set var, also code) and\n"
		"registers (the general ones, rip, eflags, fs_base, gs_base).\n"
		"\nExit status: see 'rewind --help'.\n",
		machine_help_head, run_backend_help, machine_help);
}

static void usage_record(FILE *f)
{
	fprintf(f,
		"usage: rewind record [options] -o LOG GUEST.elf\n"
		"\n"
		"Run the guest live, as 'rewind run' does, and write every input it receives\n"
		"(clock reads, timer expiries, serial bytes) to LOG with its position, plus\n"
		"state hashes, so that 'rewind replay LOG' runs it again exactly. Ctrl-A x or\n"
		"SIGINT still end in a complete log; a recorder killed outright leaves a log\n"
		"that replays up to its last complete chunk ('rewind log verify --repair').\n"
		"\n"
		"On emu a position is the count of instructions retired, exact for every event.\n"
		"On kvm it is the count of guest exits (port I/O, HLT, interrupt window), and an\n"
		"event that interrupts a computing guest is placed by a landmark (its registers\n"
		"and the pages it wrote since the last one).\n"
		"\n"
		"%s%s%s"
		"  --positions instructions|exits\n"
		"                          what positions count (emu; default instructions).\n"
		"                          exits: count exits and take landmarks as kvm does, so\n"
		"                          the log has the shape of a kvm recording (replay and\n"
		"                          debug it on emu; it should replay on kvm too). Not\n"
		"                          with --clock virtual or --gdb\n"
		"  -o, --output LOG        the log to write (an existing log is replaced; any\n"
		"                          other existing file is refused, left as it is)\n"
		"  --compress zstd|lz4|none  how chunks are compressed (default zstd)\n"
		"  --no-embed              keep only the image's (and initrd's) path and hash\n"
		"                          in the log (default: embedded, compressed)\n"
		"  --hash-every N          a state hash (registers, output) every N positions\n"
		"                          (default 33554432); smaller finds a divergence closer\n"
		"                          to its cause, at some cost in speed and log size\n"
		"\n"
		"Under --gdb, breakpoints and steps do not change what is logged, and gdb may\n"
		"not change memory or registers: a change the log does not contain would make\n"
		"the recording unreplayable. Replay it with 'rewind debug LOG' to go back.\n"
		"\n"
		"Exit status: as 'rewind run'; see 'rewind --help'.\n",
		machine_help_head, record_backend_help, machine_help);
}

static void usage_replay(FILE *f)
{
	fprintf(f,
		"usage: rewind replay [options] LOG\n"
		"\n"
		"Run a recording again from its log, instruction for instruction: every input\n"
		"comes from the log at its recorded position; the host clock and stdin are not\n"
		"used, and idle time is skipped. The guest's output is printed as the replayed\n"
		"guest produces it and checked against the recording, as are state hashes and\n"
		"the way the run ended. Then one summary line, and the exit status the recorded\n"
		"guest ended with. A mismatch is a divergence: a report naming the position,\n"
		"the expected and the observed event, the registers, and exit status 8.\n"
		"\n"
		"Options:\n"
		"  --backend kvm|emu       replay on this backend (default: the one recorded on;\n"
		"                          a kvm log replays on emu too, counting exits)\n"
		"  --image PATH            the guest image, for a log recorded with --no-embed\n"
		"                          whose image moved (its hash must match)\n"
		"  --initrd PATH           the same for the initrd\n"
		"  --quiet                 do not print the guest's output (it is still checked)\n"
		"  --verbose               more detail in the summary\n"
		"  --stall-timeout SECONDS a replay of a kvm log (on kvm or emu) that makes no\n"
		"                          progress this long (the guest computes without\n"
		"                          reaching the next logged event) ends as a\n"
		"                          divergence (60; 0: wait forever)\n"
		"  --gdb [HOST:]PORT       serve gdb there instead of running to the end: time-\n"
		"                          travel debugging (target remote HOST:PORT; the host\n"
		"                          is 127.0.0.1 unless given). emu backend only\n"
		"  --checkpoint-every N    with --gdb: instructions between checkpoints (2M)\n"
		"  --checkpoint-mem SIZE   with --gdb: memory for checkpoints before older ones\n"
		"                          are thinned (512M; at least 1M)\n"
		"  -h, --help              this help\n"
		"\n"
		"Exit status: the recorded guest's; 4 for a corrupt, cut or foreign log, 8 for a\n"
		"divergence; see 'rewind --help'.\n");
}

static void usage_debug(FILE *f)
{
	fprintf(f,
		"usage: rewind debug [options] LOG [-- GDB-ARGS...]\n"
		"\n"
		"Replay LOG under gdb, with time travel: gdb starts with the guest's symbols,\n"
		"attached at the first instruction. Besides break, watch, step and continue,\n"
		"reverse-stepi, reverse-next, reverse-step, reverse-finish and reverse-continue\n"
		"run backwards (a watchpoint and reverse-continue find the last write). Two gdb\n"
		"commands are defined: 'when' (the current position) and 'goto POS'; 'monitor\n"
		"help' lists the monitor commands. The guest's output is printed once, the\n"
		"first time the replay gets there. Arguments after -- go to gdb (e.g. -batch\n"
		"-x script.gdb). Set REWIND_GDB to use another gdb. It replays on emu; a log\n"
		"whose positions count exits (recorded on kvm, or --positions exits) replays\n"
		"on emu counting them, and its positions in gdb ('when', 'goto') count\n"
		"instructions all the same.\n"
		"\n"
		"Options:\n"
		"  --image PATH            the guest image, for a log recorded with --no-embed\n"
		"  --initrd PATH           the initrd, for a log recorded with --no-embed\n"
		"  --checkpoint-every N    instructions between checkpoints (default 2M)\n"
		"  --checkpoint-mem SIZE   memory for checkpoints before older ones are thinned\n"
		"                          (default 512M; at least 1M)\n"
		"  -h, --help              this help\n"
		"\n"
		"Exit status: gdb's.\n");
}

void die_line(int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

void die_lf(int err, const char *what)
{
	const char *d = lf_errdetail();
	if (!*d)
		d = lf_strerror(err);
	int status = (-err == LF_EIO || -err == LF_ENOMEM) ? EXIT_HOST : EXIT_BADINPUT;
	die_line(status, "%s: %s", what, d);
}

/* Map a vmm error code to rewind's exit status. */
static int status_for(int err)
{
	return cli_status_for(err);
}

/* One line: "rewind: WHAT: DETAIL" (WHAT left out when the detail already starts with it). */
static void fail_with(int status, int err, const char *what) __attribute__((noreturn));
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

static void fail(int err, const char *what) __attribute__((noreturn));
static void fail(int err, const char *what)
{
	fail_with(status_for(err), err, what);
}


struct common_opts {
	const char *backend;
	const char *mem;
	const char *append;
	const char *initrd; /* --initrd FILE, or NULL */
	const char *serial;
	const char *clock;
	bool verbose;
	unsigned progress_s; /* --progress SECONDS, 0 for none */
	const char *gdb; /* --gdb ADDR, or NULL */
	/* record */
	const char *output;
	const char *compress;
	bool no_embed;
	uint64_t hash_every;
	bool exits; /* --positions exits */
	bool positions_given;
};

/* --gdb or --clock virtual: emu (kvm was refused already); auto says so, as it always
 * says which. */
static const struct vmm_cpu_ops *pick_emu_backend(const char *name, const char *needs)
{
	if (!strcmp(name, "auto"))
		fprintf(stderr, "%s: backend emu (auto: %s needs it)\n", prog, needs);
	else if (strcmp(name, "emu"))
		die_line(EXIT_USAGE, "--backend %s: expected kvm, emu, auto or help", name);
	return &emu_cpu_ops;
}

/* The guest image of a replay: for backtraces (NULL: none shown). */
static const void *g_image;
static size_t g_image_len;

static int bt_read(void *opaque, uint64_t va, void *buf, size_t len)
{
	struct vmm_machine *m = opaque;
	return vmm_machine_backend(m)->read_virt(vmm_machine_cpu(m), va, buf, len);
}

/* The guest's call stack, with function names from its ELF (docs/time-travel.md). */
static void print_backtrace(struct vmm_machine *m, const struct vmm_regs *r)
{
	struct bt_image *img;
	if (!g_image || bt_image_open(g_image, g_image_len, &img) < 0)
		return;
	struct bt_frame f[32];
	int n = bt_unwind(img, r, bt_read, m, f, 32);
	if (n > 0) {
		fprintf(stderr, "  guest backtrace:\n");
		for (int i = 0; i < n; i++) {
			char line[256];
			bt_format(&f[i], i, line, sizeof(line));
			fprintf(stderr, "    %s\n", line);
		}
	}
	bt_image_free(img);
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
	print_backtrace(m, &r);
}

/* ---- run and record ----------------------------------------------------------------- */

static struct vmm_live *g_live;
static struct rpl *g_rpl;
static struct vmm_machine *g_machine;

static void on_signal(int sig)
{
	(void)sig;
	if (g_live)
		vmm_live_request_stop(g_live);
	if (g_rpl && g_machine)
		rpl_request_stop(g_rpl, g_machine);
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* The exit status and the user's line for how a run (or its replay) ended. */
static int report_stop(struct vmm_machine *m, const struct vmm_stop *stop, bool replay)
{
	switch (stop->reason) {
	case VMM_STOP_DEBUG_EXIT:
		return (int)(((stop->exit_value << 1) | 1) & 0xff);
	case VMM_STOP_RESET:
		fprintf(stderr, "%s: the guest requested a reset at position %llu\n", prog,
			(unsigned long long)stop->pos);
		dump_regs(m);
		return EXIT_RESET;
	case VMM_STOP_TRIPLE_FAULT:
		fprintf(stderr,
			"%s: triple fault at position %llu (exception %d could not be delivered)\n",
			prog, (unsigned long long)stop->pos, stop->vector);
		if (stop->regs_lost)
			fprintf(stderr, "  (no registers: KVM reset the vCPU when it reported the "
					"triple fault, as it does on AMD; record the run and replay it "
					"with --backend emu to see them)\n");
		else
			dump_regs(m);
		return EXIT_RESET;
	case VMM_STOP_HALTED:
		fprintf(stderr,
			"%s: the guest halted with interrupts disabled at position %llu; nothing "
			"can wake it\n",
			prog, (unsigned long long)stop->pos);
		return EXIT_POWEROFF;
	case VMM_STOP_USER:
		fprintf(stderr, "%s: %s at position %llu\n", prog,
			replay ? "the recording was stopped by the user" : "stopped",
			(unsigned long long)stop->pos);
		return EXIT_POWEROFF;
	case VMM_STOP_LIMIT:
	case VMM_STOP_BREAK:
	case VMM_STOP_WATCH:
		break; /* debugger stops: never the end of a run */
	}
	return EXIT_INTERNAL;
}

static void show_unhandled(struct vmm_machine *m)
{
	struct vmm_unhandled u[64];
	size_t n = vmm_machine_unhandled(m, u, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		fprintf(stderr, "%s: unhandled port %#06x: %llu reads, %llu writes\n", prog,
			u[i].port, (unsigned long long)u[i].reads, (unsigned long long)u[i].writes);
	if (n == 0)
		fprintf(stderr, "%s: no accesses to unhandled ports\n", prog);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parse options shared by run and record (record's own too when record is set). */
/* N of --clock real/N (2..1000), or 0 when spec is not of that form. */
static unsigned clock_slowdown(const char *spec)
{
	if (strncmp(spec, "real/", 5) || spec[5] < '1' || spec[5] > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long n = strtoul(spec + 5, &end, 10);
	return *end || errno || n < 2 || n > 1000 ? 0 : (unsigned)n;
}
static void parse_machine_opts(int argc, char **argv, bool record, struct common_opts *o)
{
	/* record defaults to emu, the backend that records every guest exactly. */
	*o = (struct common_opts){.backend = record ? "emu" : "auto",
				  .mem = "128M", .serial = "stdio",
				  .clock = "real", .compress = "zstd"};
	static const struct option lopts[] = {
		{"backend", required_argument, NULL, 'b'}, {"mem", required_argument, NULL, 'm'},
		{"append", required_argument, NULL, 'a'},  {"serial", required_argument, NULL, 's'},
		{"clock", required_argument, NULL, 'c'},   {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},          {"output", required_argument, NULL, 'o'},
		{"compress", required_argument, NULL, 'z'}, {"no-embed", no_argument, NULL, 'n'},
		{"hash-every", required_argument, NULL, 'H'}, {"gdb", required_argument, NULL, 'g'},
		{"progress", required_argument, NULL, 'P'}, {"initrd", required_argument, NULL, 'R'},
		{"positions", required_argument, NULL, 'X'},
		{NULL, 0, NULL, 0}};
	const char *cmd = record ? "record" : "run";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, record ? "ho:" : "h", lopts, NULL)) != -1) {
		if (!record && (c == 'o' || c == 'z' || c == 'n' || c == 'H' || c == 'X'))
			die_line(EXIT_USAGE, "run: %s is an option of 'rewind record'",
				 argv[optind - 1]);
		switch (c) {
		case 'b':
			if (!strcmp(optarg, "help")) {
				cli_print_backend_help();
				exit(0);
			}
			o->backend = optarg;
			break;
		case 'm':
			o->mem = optarg;
			break;
		case 'a':
			o->append = optarg;
			break;
		case 'R':
			o->initrd = optarg;
			break;
		case 's':
			o->serial = optarg;
			break;
		case 'c':
			o->clock = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'g':
			o->gdb = optarg;
			break;
		case 'P': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || *optarg == '-' || v < 1 || v > 86400)
				die_line(EXIT_USAGE, "--progress %s: expected seconds, 1 to 86400",
					 optarg);
			o->progress_s = (unsigned)v;
			break;
		}
		case 'o':
			o->output = optarg;
			break;
		case 'X':
			o->exits = cli_parse_positions(optarg);
			o->positions_given = true;
			break;
		case 'z':
			o->compress = optarg;
			break;
		case 'n':
			o->no_embed = true;
			break;
		case 'H': {
			char *end;
			errno = 0;
			o->hash_every = strtoull(optarg, &end, 0);
			if (errno || *end || !*optarg || *optarg == '-' || o->hash_every < 1000)
				die_line(EXIT_USAGE, "--hash-every %s: expected a count of at least 1000",
					 optarg);
			break;
		}
		case 'h':
			if (record)
				usage_record(stdout);
			else
				usage_run(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'rewind %s --help'.\n", cmd);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc - 1)
		die_line(EXIT_USAGE, "%s: expected one guest ELF file (try 'rewind %s --help')", cmd,
			 cmd);
	if (record && !o->output)
		die_line(EXIT_USAGE, "record: -o LOG is required (try 'rewind record --help')");
	if (strcmp(o->clock, "real") && strcmp(o->clock, "virtual") && clock_slowdown(o->clock) == 0)
		die_line(EXIT_USAGE, "--clock %s: expected real, real/N (N from 2 to 1000) or virtual",
			 o->clock);
	if (record && lf_codec_parse(o->compress) < 0)
		die_line(EXIT_USAGE, "--compress %s: expected zstd, lz4 or none", o->compress);
}

/*
 * -o names a file that exists: overwrite it only if it is a log (or empty, or not a
 * regular file such as /dev/null). `-o guest.elf guest.elf`, or a mistyped path, would
 * otherwise lose a file the user did not mean to give up.
 */
static void refuse_to_clobber(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* nothing there (or unreadable: creating it will say why) */
	struct stat st;
	uint8_t head[8];
	ssize_t n = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		n = read(fd, head, sizeof(head));
	close(fd);
	if (n > 0 && !lf_starts_like_log(head, (size_t)n))
		die_line(EXIT_BADINPUT,
			 "-o %s: the file exists and is not a rewind log; not overwriting it "
			 "(remove it or choose another path)",
			 path);
}

/* After a failed recording: what of the log can still be used. */
static void log_left(struct lf_writer *w, const char *path)
{
	struct lf_writer_stats ws;
	/* A header still being written is written now or fails: either way it is known. */
	int frc = lf_writer_flush(w);
	(void)frc; /* the failure that brought us here is reported already */
	lf_writer_stats(w, &ws);
	if (ws.header_bytes)
		fprintf(stderr,
			"%s: %s is readable up to its last complete chunk ('rewind log verify "
			"--repair %s')\n",
			prog, path, path);
	else
		fprintf(stderr, "%s: %s has no complete header: nothing in it can be replayed\n",
			prog, path);
}

/*
 * --progress: a thread that prints, every few seconds, how long the guest has run, how
 * many lines it printed and, on kvm, the position. A Linux boot on software KVM takes the
 * best part of an hour and prints nothing for long stretches (its console starts late);
 * the line tells a stuck guest (the position stands still) from a slow one. The position
 * is read only on kvm, where it is an atomic the vCPU thread publishes; emu's instruction
 * count is a plain field of the running vCPU. The thread only reads: the run, and a
 * recording, are the same with it as without.
 */
struct progress {
	struct vmm_machine *m;
	const struct vmm_cpu_ops *backend;
	unsigned every_s;
	double t0;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	bool started;
	pthread_t thread;
};

/* Lines the guest printed, counted on the vCPU thread, read by the progress thread. */
static _Atomic uint64_t g_out_lines;

static void counting_out(void *opaque, uint8_t byte)
{
	if (byte == '\n')
		atomic_fetch_add_explicit(&g_out_lines, 1, memory_order_relaxed);
	console_out(opaque, byte);
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		next.tv_sec += p->every_s;
		while (!p->done && pthread_cond_timedwait(&p->cv, &p->mu, &next) != ETIMEDOUT)
			;
		if (p->done)
			break;
		char pos[64] = "";
		if (p->backend == &kvm_cpu_ops)
			snprintf(pos, sizeof(pos), ", position %llu (exits)",
				 (unsigned long long)vmm_machine_pos(p->m));
		fprintf(stderr, "%s: progress: %.0f s, %llu lines of guest output%s\n", prog,
			mono_s() - p->t0,
			(unsigned long long)atomic_load_explicit(&g_out_lines,
								 memory_order_relaxed),
			pos);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void progress_start(struct progress *p, struct vmm_machine *m,
			   const struct vmm_cpu_ops *backend, unsigned every_s)
{
	*p = (struct progress){.m = m, .backend = backend, .every_s = every_s, .t0 = mono_s()};
	if (!every_s)
		return;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	/* Signals (SIGINT, kvm's SIGUSR1 kick) stay with the threads that expect them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&p->thread, NULL, progress_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		die_line(EXIT_HOST, "--progress: starting its thread: %s", strerror(e));
	p->started = true;
}

static void progress_stop(struct progress *p)
{
	if (!p->started)
		return;
	pthread_mutex_lock(&p->mu);
	p->done = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
}

static int cmd_run_or_record(int argc, char **argv, bool record)
{
	struct common_opts o;
	parse_machine_opts(argc, argv, record, &o);
	const char *path = argv[optind];

	uint64_t mem;
	if (vmm_parse_size(o.mem, &mem) < 0)
		die_line(EXIT_USAGE, "--mem %s: expected a size such as 128M or 1G", o.mem);
	if (mem < VMM_MEM_MIN || mem > VMM_MEM_MAX || (mem & 0xfff))
		die_line(EXIT_USAGE, "--mem %s: must be a multiple of 4K from 2M to 64G", o.mem);
	if (o.append && strlen(o.append) > VMM_CMDLINE_MAX)
		die_line(EXIT_USAGE, "--append: command line longer than %u bytes",
			 VMM_CMDLINE_MAX);
	bool vclock = !strcmp(o.clock, "virtual");
	if (vclock && !strcmp(o.backend, "kvm"))
		die_line(EXIT_USAGE, "--clock virtual needs the emu backend (--backend emu): kvm "
				     "cannot stop a guest at an exact instruction count");
	if (o.gdb && !strcmp(o.backend, "kvm"))
		die_line(EXIT_USAGE, "--gdb needs the emu backend (--backend emu): the kvm "
				     "backend has no breakpoints or single steps yet");
	if (o.exits && vclock)
		die_line(EXIT_USAGE, "--positions exits with --clock virtual: the virtual clock "
				     "counts instructions, exit-counted positions cannot place its "
				     "timers (record with --positions instructions, the default)");
	if (o.exits && o.gdb)
		die_line(EXIT_USAGE, "--positions exits under --gdb is not supported yet: record "
				     "without --gdb, then 'rewind debug LOG'");
	/* Before anything is created: a bad address or a busy port changes nothing. */
	int gdb_fd = o.gdb ? debug_listen(o.gdb, &(uint16_t){0}) : -1;

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
	void *initrd = NULL;
	size_t initrd_len = 0;
	if (o.initrd)
		cli_read_initrd(o.initrd, mem, &initrd, &initrd_len);

	const struct vmm_cpu_ops *backend = vclock  ? pick_emu_backend(o.backend, "--clock virtual")
					    : o.gdb ? pick_emu_backend(o.backend, "--gdb")
						    : cli_pick_backend(o.backend);
	bool exits = record && cli_record_exits(backend, o.positions_given, o.exits);
	/* The log's machine config and the machine's portable flags: one decision, shared
	 * with `rewind ft primary` (machcfg.c). */
	char config[256];
	unsigned portable = cli_record_machine(backend, exits, mem, o.clock, config,
					       sizeof(config));

	struct vmm_live_config lc = {.in_fd = con.in_fd,
				     .escape = con.escape,
				     .out = o.progress_s ? counting_out : console_out,
				     .out_opaque = &con,
				     .flush = console_flush,
				     .virtual_clock = vclock,
				     .slowdown = clock_slowdown(o.clock)};
	struct vmm_live *live;
	rc = vmm_live_create(&lc, &live);
	if (rc < 0)
		fail(rc, "live input");
	struct vmm_config cfg = {.mem_size = mem,
				 .backend = backend,
				 .input = &vmm_live_input_ops,
				 .input_opaque = live};

	/* Recording: the log file, its writer, and the recorder wrapped around live. */
	int log_fd = -1;
	struct lf_io io;
	struct lf_io_fd iofd;
	struct lf_writer *w = NULL;
	struct rec *rec = NULL;
	if (record) {
		refuse_to_clobber(o.output);
		log_fd = open(o.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (log_fd < 0)
			die_line(EXIT_HOST, "cannot create the log %s: %s", o.output,
				 strerror(errno));
		lf_io_fd_init(&io, &iofd, log_fd);
		struct lf_header h = {.created_ns = wall_ns(),
				      .tool = "rewind " REWIND_VERSION,
				      .config = config,
				      .cmdline = o.append ? o.append : "",
				      .image_path = path,
				      .image_hash = lf_hash64(elf, elf_len),
				      .image_len = elf_len,
				      .image = o.no_embed ? NULL : elf,
				      .initrd_path = o.initrd,
				      .initrd_hash = initrd ? lf_hash64(initrd, initrd_len) : 0,
				      .initrd_len = initrd_len,
				      .initrd = o.no_embed ? NULL : initrd};
		/* The image is checked and compressed while the guest runs (0.2 s for a
		 * 66 MB kernel); elf stays until the log is finished. */
		struct lf_writer_config wc = {.codec = (uint32_t)lf_codec_parse(o.compress),
					      .background_header = !o.no_embed};
		rc = lf_writer_open(&io, &h, &wc, &w);
		if (rc < 0)
			die_lf(rc, o.output);
		struct rec_config rc_cfg = {.inner = &vmm_live_input_ops,
					    .inner_opaque = live,
					    .writer = w,
					    .hash_every = o.hash_every};
		rc = rec_create(&rc_cfg, &rec);
		if (rc < 0)
			fail(rc, "recorder");
		cfg.input = &rec_input_ops;
		cfg.input_opaque = rec;
		cfg.tap = &rec_input_tap;
		cfg.tap_opaque = rec;
	}

	struct vmm_machine *m;
	rc = vmm_machine_create(&cfg, &m);
	if (rc < 0)
		fail(rc, "creating the machine");
	if ((rc = vmm_machine_set_portable(m, portable)) < 0)
		fail(rc, "creating the machine");
	rc = vmm_machine_load_initrd(m, elf, elf_len, o.append, initrd, initrd_len);
	if (!record) {
		free(elf);
		elf = NULL;
		free(initrd);
		initrd = NULL;
	}
	if (rc < 0) { /* the loader's message names the initrd where it is the problem */
		char what[320];
		snprintf(what, sizeof(what), "--initrd %s", o.initrd ? o.initrd : "");
		fail(rc, o.initrd && !strncmp(vmm_errdetail(), "initrd", 6) ? what : path);
	}
	rc = vmm_live_start(live, m);
	if (rc < 0)
		fail(rc, "live input");

	g_live = live;
	catch_signals();
	console_start(&con);

	struct vmm_stop stop;
	rc = 0;
	enum debug_live_end dend = DEBUG_LIVE_RUN_ON;
	if (o.gdb) {
		struct debug_opts dbg = {
			.live = live,
			.rec = rec,
			.no_writes = record ? "a change the log does not contain would make the "
					      "recording unreplayable"
					    : NULL};
		char why[640];
		dend = debug_live(m, gdb_fd, &dbg, &stop, why, sizeof(why));
		if (dend == DEBUG_LIVE_ENDED && !stop.reason)
			rc = vmm_fail(record && rec_error(rec) ? VMM_EIO : VMM_EGUEST, "%s", why);
	}
	if (dend == DEBUG_LIVE_RUN_ON) {
		struct progress prog_line;
		progress_start(&prog_line, m, backend, o.progress_s);
		rc = vmm_machine_run(m, &stop);
		progress_stop(&prog_line);
	}
	console_finish(&con);
	if (rc < 0) {
		if (record) {
			/* Keep what was logged: a log that replays up to here. */
			int frc = rec_error(rec) ? -1 : lf_writer_finish(w);
			if (frc < 0)
				log_left(w, o.output);
		}
		fail(rc, "guest");
	}
	int status = report_stop(m, &stop, false);
	if (record) {
		rc = rec_finish(rec, m, &stop);
		if (rc < 0) {
			fprintf(stderr, "%s: %s\n", prog, vmm_errdetail());
			log_left(w, o.output);
			exit(EXIT_HOST);
		}
		struct lf_writer_stats ws;
		lf_writer_stats(w, &ws);
		fprintf(stderr,
			"%s: recorded %llu %s, %llu events in %s: %llu bytes (%llu of image "
			"and header, %llu of events)\n",
			prog, (unsigned long long)stop.pos, exits ? "exits" : "instructions",
			(unsigned long long)ws.events, o.output,
			(unsigned long long)ws.total_bytes, (unsigned long long)ws.header_bytes,
			(unsigned long long)(ws.total_bytes - ws.header_bytes));
		lf_writer_free(w);
		rec_free(rec);
		free(elf);
		free(initrd);
		if (close(log_fd) < 0)
			die_line(EXIT_HOST, "closing the log %s: %s", o.output, strerror(errno));
	}
	if (o.verbose) {
		fprintf(stderr, "%s: backend %s, stopped at position %llu\n", prog, backend->name,
			(unsigned long long)stop.pos);
		show_unhandled(m);
	}
	g_live = NULL;
	vmm_live_destroy(live);
	vmm_machine_destroy(m);
	console_close(&con);
	return status;
}

/* ---- replay ---------------------------------------------------------------------------- */

static void print_divergence(struct vmm_machine *m, const struct rpl_divergence *d)
{
	fprintf(stderr,
		"%s: replay diverged at position %" PRIu64 "\n"
		"  expected: %s\n"
		"  observed: %s\n",
		prog, d->pos, d->expected, d->observed);
	fprintf(stderr, "  last input delivered at position %" PRIu64, d->last_event);
	if (d->last_match)
		fprintf(stderr, "; last matching state hash at position %" PRIu64, d->last_match);
	fprintf(stderr, "\n  look from position %" PRIu64 " on\n",
		d->last_event > d->last_match ? d->last_event : d->last_match);
	fprintf(stderr, "  registers at position %" PRIu64 ":\n", vmm_machine_pos(m));
	dump_regs(m);
}

static int cmd_replay(int argc, char **argv, bool debug)
{
	const char *backend_name = NULL, *image_path = NULL, *initrd_path = NULL;
	bool quiet = false, verbose = false;
	struct debug_opts dbg = {.spawn_gdb = debug};
	bool gdb = debug;
	static const struct option lopts[] = {
		{"backend", required_argument, NULL, 'b'},
		{"image", required_argument, NULL, 'i'},
		{"initrd", required_argument, NULL, 'R'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"gdb", required_argument, NULL, 'g'},
		{"checkpoint-every", required_argument, NULL, 'E'},
		{"checkpoint-mem", required_argument, NULL, 'M'},
		{"stall-timeout", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;
	unsigned stall_s = 60;
	/* `rewind debug LOG -- GDB-ARGS`: what follows -- is gdb's. */
	for (int i = 1; debug && i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dbg.gdb_argc = argc - i - 1;
			dbg.gdb_argv = argv + i + 1;
			argc = i;
			break;
		}
	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", lopts, NULL)) != -1) {
		switch (c) {
		case 'g':
			gdb = true;
			dbg.gdb_addr = optarg;
			break;
		case 'E':
		case 'M': {
			uint64_t v;
			if (vmm_parse_size(optarg, &v) < 0 || !v)
				die_line(EXIT_USAGE, "--%s %s: expected a positive number",
					 c == 'E' ? "checkpoint-every" : "checkpoint-mem", optarg);
			/* Less than a megabyte cannot hold one checkpoint of a real guest;
			 * `--checkpoint-mem 1` is most likely 1G mistyped. */
			if (c == 'M' && v < (1u << 20))
				die_line(EXIT_USAGE,
					 "--checkpoint-mem %s: expected at least 1M (e.g. 512M or 2G)",
					 optarg);
			if (c == 'E')
				dbg.ck_every = v;
			else
				dbg.ck_mem = v;
			break;
		}
		case 'b':
			backend_name = optarg;
			break;
		case 'i':
			image_path = optarg;
			break;
		case 'R':
			initrd_path = optarg;
			break;
		case 'S': {
			char *e;
			errno = 0;
			unsigned long v = strtoul(optarg, &e, 10);
			if (errno || e == optarg || *e || optarg[0] < '0' || optarg[0] > '9' ||
			    v > 86400)
				die_line(EXIT_USAGE,
					 "--stall-timeout %s: expected seconds, 0 to 86400", optarg);
			stall_s = (unsigned)v;
			break;
		}
		case 'q':
			quiet = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			if (debug)
				usage_debug(stdout);
			else
				usage_replay(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'rewind %s --help'.\n", debug ? "debug" : "replay");
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die_line(EXIT_USAGE, "%s: expected one log file (try 'rewind %s --help')",
			 debug ? "debug" : "replay", debug ? "debug" : "replay");
	const char *log_path = argv[optind];

	int fd = open_log_file(log_path, O_RDONLY);
	struct lf_io io;
	struct lf_io_fd iofd;
	lf_io_fd_init(&io, &iofd, fd);
	struct lf_reader *rd;
	int rc = lf_reader_open(&io, &rd);
	if (rc < 0)
		die_lf(rc, log_path);
	const struct lf_header *h = lf_reader_header(rd);

	struct lf_reader_info ri;
	lf_reader_info(rd, &ri);
	if (ri.index_problem)
		fprintf(stderr,
			"%s: %s: %s: not used, its chunks are read in order ('rewind log verify "
			"--repair' rebuilds it)\n",
			prog, log_path, ri.index_problem);

	/* The machine it was recorded on. Everything here comes from the log: a value that
	 * does not fit is bad input (status 4), shown with its invisible bytes escaped. The
	 * decision is shared with `rewind ft backup` (machcfg.c). */
	char v1[8192];
	if (strlen(h->cmdline) > VMM_CMDLINE_MAX)
		die_line(EXIT_BADINPUT,
			 "%s: the command line in the log is %zu bytes, longer than %u: the log "
			 "is damaged or not from this rewind",
			 log_path, strlen(h->cmdline), VMM_CMDLINE_MAX);
	struct cli_replay_machine rm;
	char why[1024];
	int mst = cli_replay_machine(h->config, log_path, backend_name, gdb, &rm, why,
				     sizeof(why));
	if (mst)
		die_line(mst, "%s", why);
	const struct vmm_cpu_ops *backend = rm.backend;
	bool asked = rm.asked, exits_on_emu = rm.exits_on_emu;
	unsigned portable = rm.portable;
	uint64_t mem = rm.mem;
	const char *positions = rm.positions;
	/* Before the kvm probe: on a host without KVM the first thing to learn is that
	 * time travel could not use kvm anyway. */
	if (gdb && backend != &emu_cpu_ops)
		die_line(EXIT_USAGE, "time-travel debugging needs --backend emu (the kvm "
				     "backend has no checkpoints yet)");
	if (backend == &kvm_cpu_ops && (rc = kvm_cpu_ops.probe()) < 0)
		cli_kvm_unusable(rc, asked ? "--backend kvm"
					   : "this log was recorded on kvm; replaying it needs kvm");

	/* The image: embedded, or from its path (or --image), with the recorded hash. */
	const void *image = h->image;
	void *image_file = NULL;
	size_t image_len = (size_t)h->image_len;
	if (!image || image_path) {
		const char *ip = image_path ? image_path : h->image_path;
		rc = vmm_read_file(ip, 512u << 20, &image_file, &image_len);
		if (rc < 0)
			die_line(EXIT_BADINPUT,
				 "%s: the log does not embed its image and %s cannot be read (%s); "
				 "give it with --image PATH",
				 log_path, cli_visible(ip, v1, sizeof(v1)), vmm_errdetail());
		if (lf_hash64(image_file, image_len) != h->image_hash || image_len != h->image_len)
			die_line(EXIT_BADINPUT,
				 "%s: %s is not the image this log was recorded with (its hash "
				 "differs)",
				 log_path, cli_visible(ip, v1, sizeof(v1)));
		image = image_file;
	}
	/* The initrd likewise (a log of version 4; none before). */
	const void *initrd = h->initrd;
	void *initrd_file = NULL;
	size_t initrd_len = (size_t)h->initrd_len;
	if (initrd_path && !h->initrd_len)
		die_line(EXIT_USAGE, "--initrd %s: %s was recorded without an initrd", initrd_path,
			 log_path);
	if (h->initrd_len && (!initrd || initrd_path)) {
		const char *ip = initrd_path ? initrd_path : h->initrd_path;
		rc = vmm_read_file(ip, (size_t)h->initrd_len, &initrd_file, &initrd_len);
		if (rc < 0 && rc != -VMM_EINVAL)
			die_line(EXIT_BADINPUT,
				 "%s: the log does not embed its initrd and %s cannot be read (%s); "
				 "give it with --initrd PATH",
				 log_path, cli_visible(ip, v1, sizeof(v1)), vmm_errdetail());
		if (rc < 0 || lf_hash64(initrd_file, initrd_len) != h->initrd_hash ||
		    initrd_len != h->initrd_len)
			die_line(EXIT_BADINPUT,
				 "%s: %s is not the initrd this log was recorded with (its hash "
				 "differs)",
				 log_path, cli_visible(ip, v1, sizeof(v1)));
		initrd = initrd_file;
	}

	struct console con;
	rc = console_open(&con, "stdio");
	if (rc < 0)
		die_line(EXIT_HOST, "stdout: %s", con.error);
	con.in_fd = -1; /* replay never reads the host */
	con.escape = false;
	if (quiet)
		con.out_fd = -1;

	struct rpl *rp;
	/* Only exit-counted positions can leave a run unbounded (rpl_config.stall_ms). */
	struct rpl_config pc = {.reader = rd,
				.out = console_out,
				.out_opaque = &con,
				.flush = console_flush,
				.stall_ms = backend == &kvm_cpu_ops || exits_on_emu ? stall_s * 1000u
										    : 0};
	if (gdb)
		debug_output(console_out, &con, &pc.out);
	rc = rpl_create(&pc, &rp);
	if (rc < 0)
		fail(rc, "replay");
	struct vmm_config cfg = {
		.mem_size = mem, .backend = backend, .input = &rpl_input_ops, .input_opaque = rp};
	struct vmm_machine *m;
	rc = vmm_machine_create(&cfg, &m);
	if (rc < 0)
		fail(rc, "creating the machine");
	if ((rc = vmm_machine_set_portable(m, portable)) < 0)
		fail(rc, "creating the machine");
	rc = vmm_machine_load_initrd(m, image, image_len, h->cmdline, initrd, initrd_len);
	if (rc < 0) {
		/* The image and command line come from the log: never a usage error. */
		char what[4200];
		snprintf(what, sizeof(what), "%s: the image in the log", log_path);
		int st = status_for(rc);
		fail_with(st == EXIT_USAGE ? EXIT_BADINPUT : st, rc, what);
	}
	if (gdb) {
		dbg.image = image;
		dbg.image_len = image_len;
		int status = debug_session(m, rp, &dbg);
		console_finish(&con);
		free(image_file);
		free(initrd_file);
		rpl_free(rp);
		vmm_machine_destroy(m);
		lf_reader_free(rd);
		close(fd);
		console_close(&con);
		return status;
	}
	g_image = image;
	g_image_len = image_len;

	rc = rpl_watch(rp, m);
	if (rc < 0)
		fail(rc, "replay");
	g_rpl = rp;
	g_machine = m;
	catch_signals();
	double t0 = mono_s();
	struct vmm_stop stop;
	rc = vmm_machine_run(m, &stop);
	double secs = mono_s() - t0;
	struct rpl_divergence d;
	enum rpl_verdict v = rpl_finish(rp, m, rc, &stop, &d);
	console_finish(&con);
	g_rpl = NULL;
	g_machine = NULL;
	struct rpl_stats st;
	rpl_stats(rp, &st);

	int status = EXIT_INTERNAL;
	switch (v) {
	case RPL_MATCHED:
		status = report_stop(m, &stop, true);
		fprintf(stderr, "%s: replayed %" PRIu64 " %s, %" PRIu64 " events in %.2f s: matched\n",
			prog, (uint64_t)stop.pos, positions, st.events, secs);
		if (verbose)
			fprintf(stderr, "%s: %" PRIu64 " state hashes checked, %" PRIu64
					" bytes of output, %" PRIu64 " landmarks found (%" PRIu64
					" breakpoint hits that were not them)\n",
				prog, st.hashes, st.out_bytes, st.landmarks, st.landmark_hits);
		break;
	case RPL_DIVERGED:
		print_divergence(m, &d);
		status = EXIT_DIVERGED;
		break;
	case RPL_LOG_CUT:
		fprintf(stderr,
			"%s: %s: %s; replayed and matched up to position %" PRIu64
			" ('rewind log verify' tells more)\n",
			prog, log_path, d.expected, d.pos);
		status = EXIT_BADINPUT;
		break;
	case RPL_LOG_BAD:
		fprintf(stderr,
			"%s: %s is corrupt: %s; replayed and matched up to position %" PRIu64 "\n",
			prog, log_path, d.expected, d.pos);
		status = EXIT_BADINPUT;
		break;
	case RPL_STOPPED:
		fprintf(stderr, "%s: replay stopped at position %" PRIu64 "; matched so far\n", prog,
			d.pos);
		status = EXIT_POWEROFF;
		break;
	case RPL_FAILED:
		fail(rc, "replay");
	}
	g_image = NULL;
	free(image_file);
	free(initrd_file);
	rpl_free(rp);
	vmm_machine_destroy(m);
	lf_reader_free(rd);
	close(fd);
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
		return cmd_run_or_record(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "record"))
		return cmd_run_or_record(argc - 1, argv + 1, true);
	if (!strcmp(argv[1], "replay"))
		return cmd_replay(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "debug"))
		return cmd_replay(argc - 1, argv + 1, true);
	if (!strcmp(argv[1], "log"))
		return cmd_log(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ft"))
		return cmd_ft(argc - 1, argv + 1);
	if (!strcmp(argv[1], "console"))
		return cmd_console(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s' (try 'rewind --help')\n", prog, argv[1]);
	return EXIT_USAGE;
}
