/* integration */
/*
 * test_qemu_boot.c: every guest in guests/ boots unchanged on QEMU (microvm, the LAPIC
 * removed so the 8259 drives INTR, as on rewind's machine) and prints what docs/guests.md
 * says, with the isa-debug-exit status (V << 1) | 1. The conformance guests' report
 * hashes are checked against the values QEMU TCG gives (the same hashes rewind must give).
 * Guest ELFs come from $REWIND_BUILD/guests (default build/); tests run from the repo root.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QEMU "qemu-system-x86_64"
#define TIMEOUT_S 60

/* Report hashes on QEMU TCG (qemu64,-apic); any correct machine must print the same. */
#define CONFORM_EXC_HASH "conform_exc: hash eebeb19296be71c8"
#define CONFORM_IRQ_HASH "conform_irq: hash 064fe47e603cac0f"
#define CONFORM_REGS_HASH "conform_regs: hash b3badc4037f7058f"

struct run {
	char *out;
	size_t len;
	int status; /* exit status of QEMU, -1 if killed or not exited */
};

static bool have_qemu(void)
{
	const char *path = getenv("PATH");
	if (!path)
		return false;
	char *copy = strdup(path), *save = NULL;
	bool found = false;
	for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char buf[4096];
		snprintf(buf, sizeof(buf), "%s/%s", dir, QEMU);
		found = access(buf, X_OK) == 0;
	}
	free(copy);
	return found;
}

static void guest_path(const char *guest, char *buf, size_t size)
{
	const char *b = getenv("REWIND_BUILD");
	snprintf(buf, size, "%s/guests/%s.elf", b && *b ? b : "build", guest);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Run guest on QEMU with the command line append; write input to its serial line once
 * the output contains trigger (at once if trigger is NULL). Collects all output.
 */
static void run_guest(const char *guest, const char *append, const char *input,
		      const char *trigger, struct run *r)
{
	if (!have_qemu())
		cr_skip_test("qemu-system-x86_64 not installed: install qemu-system-x86 to run "
			     "guests on QEMU");
	char elf[4096];
	guest_path(guest, elf, sizeof(elf));
	struct stat st;
	cr_assert(stat(elf, &st) == 0, "%s missing: run make first", elf);

	int in[2], out[2];
	cr_assert(pipe(in) == 0 && pipe(out) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		char *argv[] = {
			QEMU, "-M",
			"microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on",
			"-cpu", "qemu64,-apic", "-m", "128M", "-no-reboot", "-nographic",
			"-nodefaults", "-serial", "stdio", "-device",
			"isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", elf, "-append",
			(char *)(append ? append : ""), NULL,
		};
		execvp(QEMU, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	signal(SIGPIPE, SIG_IGN);

	size_t cap = 1 << 16;
	r->out = malloc(cap);
	r->len = 0;
	r->status = -1;
	bool sent = input == NULL;
	if (!sent && !trigger) {
		sent = write(in[1], input, strlen(input)) == (ssize_t)strlen(input);
		cr_assert(sent);
	}
	double deadline = now_s() + TIMEOUT_S;
	for (;;) {
		double left = deadline - now_s();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = out[0], .events = POLLIN};
		int n = poll(&p, 1, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (cap - r->len < 4096) {
			cap *= 2;
			r->out = realloc(r->out, cap);
		}
		ssize_t got = read(out[0], r->out + r->len, cap - r->len - 1);
		if (got <= 0)
			break;
		r->len += (size_t)got;
		r->out[r->len] = '\0';
		if (!sent && strstr(r->out, trigger)) {
			sent = write(in[1], input, strlen(input)) == (ssize_t)strlen(input);
			cr_assert(sent);
		}
	}
	r->out[r->len] = '\0';
	close(out[0]);
	close(in[1]);
	/* Output closed (QEMU exited) or the deadline passed: wait briefly, then kill. */
	int ws = 0;
	pid_t w = waitpid(pid, &ws, WNOHANG);
	for (int i = 0; w == 0 && i < 50; i++) {
		usleep(100000);
		w = waitpid(pid, &ws, WNOHANG);
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &ws, 0);
		cr_log_error("%s: killed after %d s; output:\n%s", guest, TIMEOUT_S, r->out);
		return;
	}
	if (WIFEXITED(ws))
		r->status = WEXITSTATUS(ws);
}

static void expect_line(const struct run *r, const char *line)
{
	cr_expect(strstr(r->out, line) != NULL, "missing \"%s\" in output:\n%s", line, r->out);
}

static void expect_status(const struct run *r, int status)
{
	cr_expect_eq(r->status, status, "exit status %d, expected %d; output:\n%s", r->status,
		     status, r->out);
}

static void done(struct run *r)
{
	free(r->out);
}

Test(qemu_boot, hello, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("hello", "x=1 flag", NULL, NULL, &r);
	expect_line(&r, "Hello from rewind guest\n");
	expect_line(&r, "cmdline: x=1 flag\n");
	expect_line(&r, "memory: 128 MiB\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, timer, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("timer", "hz=200 ticks=40", NULL, NULL, &r);
	expect_line(&r, "timer: 40 ticks at 200 Hz\n");
	expect_line(&r, "timer: done, 40 ticks\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, echo, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("echo", "", "abcq", "quits\n", &r);
	expect_line(&r, "echo: type; byte 113 quits\n");
	expect_line(&r, "abc\nbye\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, echo_quit_option, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("echo", "quit=0x21", "xyq!", "quits\n", &r);
	expect_line(&r, "echo: type; byte 33 quits\n");
	expect_line(&r, "xyq\nbye\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, compute, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("compute", "n=20", NULL, NULL, &r);
	expect_line(&r, "compute: 20 rounds\n");
	expect_line(&r, "compute: checksum 0cb132a87c6dfb6a\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, spew, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("spew", "lines=300", NULL, NULL, &r);
	expect_line(&r, "spew: 300 lines\n");
	expect_line(&r, "00000299 ");
	expect_line(&r, "spew: done, 300 lines\n");
	size_t lines = 0;
	for (size_t i = 0; i < r.len; i++)
		lines += r.out[i] == '\n';
	cr_expect_eq(lines, 302, "%zu lines", lines);
	expect_status(&r, 1);
	done(&r);
}

static void race_line(const struct run *r, char *buf, size_t size)
{
	const char *p = strstr(r->out, "race: ticks=");
	cr_assert(p, "no result line:\n%s", r->out);
	size_t n = strcspn(p, "\n");
	snprintf(buf, size, "%.*s", (int)n, p);
}

Test(qemu_boot, race_differs_between_runs, .timeout = 2 * TIMEOUT_S + 10)
{
	struct run a, b;
	char la[128], lb[128];
	run_guest("race", "ticks=60", NULL, NULL, &a);
	run_guest("race", "ticks=60", NULL, NULL, &b);
	expect_line(&a, "race: done\n");
	expect_line(&b, "race: done\n");
	race_line(&a, la, sizeof(la));
	race_line(&b, lb, sizeof(lb));
	cr_expect(strncmp(la, "race: ticks=60 main=", 20) == 0, "%s", la);
	cr_expect(strcmp(la, lb) != 0, "two runs agree: %s", la);
	expect_status(&a, 1);
	expect_status(&b, 1);
	done(&a);
	done(&b);
}

Test(qemu_boot, crash_triple_faults, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("crash", "", NULL, NULL, &r);
	expect_line(&r, "crash: this guest faults on purpose\n");
	expect_line(&r, "crash: page fault at 0xdead0000000 ");
	expect_line(&r, "crash: triple fault next\n");
	expect_status(&r, 0); /* -no-reboot: a triple fault ends QEMU with 0 */
	done(&r);
}

Test(qemu_boot, selftest, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("selftest", "", NULL, NULL, &r);
	cr_expect(strstr(r.out, "FAIL:") == NULL, "a check failed:\n%s", r.out);
	expect_line(&r, " passed, 0 failed\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, conform_exc, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("conform_exc", "", NULL, NULL, &r);
	expect_line(&r, CONFORM_EXC_HASH "\n");
	expect_line(&r, "conform_exc: done\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, conform_irq, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("conform_irq", "", NULL, NULL, &r);
	expect_line(&r, "default priority       order 0 4\n");
	expect_line(&r, "sti; mov               count 1 rip label+0\n");
	expect_line(&r, CONFORM_IRQ_HASH "\n");
	expect_line(&r, "conform_irq: done\n");
	expect_status(&r, 1);
	done(&r);
}

Test(qemu_boot, conform_regs, .timeout = TIMEOUT_S + 10)
{
	struct run r;
	run_guest("conform_regs", "", NULL, NULL, &r);
	expect_line(&r, CONFORM_REGS_HASH "\n");
	expect_line(&r, "conform_regs: done\n");
	expect_status(&r, 1);
	done(&r);
}
