/* integration */
/*
 * test_run.c: `rewind run` as a user runs it: the real binary on the guests of
 * docs/guests.md, on the emu backend (kvm where the test is about kvm), checking what a
 * user sees: output, stderr lines and exit statuses (docs/architecture.md: the guest's own are
 * (V << 1) | 1, rewind's are even), files and sockets. Every run has a deadline.
 * Paths follow $REWIND_BUILD (default build/); tests run from the repository root.
 */
#include "tests/integration/harness.h"
#include "tests/integration/rw.h"

#include "vmm/hostkvm.h"

#include <arpa/inet.h>
#include <elf.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

/* Report hashes on QEMU TCG; rewind must give the same (conform_exc: see its test). */
#define CONFORM_IRQ_HASH  "conform_irq: hash 8c44c1a616bccc85\n"
#define CONFORM_REGS_HASH "conform_regs: hash b3badc4037f7058f\n"

/* --- guests: output and status ---------------------------------------------------- */

Test(run, hello_prints_and_exits_1, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", guest("hello"));
	expect_out_is(&r, "Hello from rewind guest\ncmdline: \nmemory: 128 MiB\n");
	expect_no_err(&r);
	expect_status(&r, 1); /* (0 << 1) | 1 */
	h_free(&r);
}

Test(run, append_reaches_the_guest, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", "x=1 flag  console=ttyS0",
	   guest("hello"));
	expect_out(&r, "cmdline: x=1 flag  console=ttyS0\n");
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, append_long_line, .timeout = TIMEOUT_S + 10)
{
	/* The guest library keeps 1023 bytes of the line; rewind passes up to 4095. */
	char line[1001], want[1100];
	memset(line, 'a', 1000);
	line[1000] = '\0';
	snprintf(want, sizeof(want), "cmdline: %s\n", line);
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", line, guest("hello"));
	expect_out(&r, want);
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, append_too_long_is_refused, .timeout = TIMEOUT_S + 10)
{
	char *line = malloc(5001);
	memset(line, 'a', 5000);
	line[5000] = '\0';
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", line, guest("hello"));
	REFUSED(&r, 2, "--append");
	h_free(&r);
	free(line);
}

Test(run, mem_sets_guest_ram, .timeout = TIMEOUT_S + 10)
{
	static const struct {
		const char *mem, *line;
	} cases[] = {
	    {"64M", "memory: 64 MiB\n"},
	    {"2M", "memory: 2 MiB\n"},
	    {"1G", "memory: 1024 MiB\n"},
	    {"65536K", "memory: 64 MiB\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h_run r;
		RW(&r, NULL, "run", "--backend", "emu", "--mem", cases[i].mem, guest("hello"));
		cr_expect(strstr(r.out, cases[i].line) != NULL, "--mem %s: no \"%s\" in:\n%s%s",
			  cases[i].mem, cases[i].line, r.out, r.err);
		expect_status(&r, 1);
		h_free(&r);
	}
}

Test(run, timer_counts_ticks, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", "hz=200 ticks=40", guest("timer"));
	expect_out(&r, "timer: 40 ticks at 200 Hz\n");
	expect_out(&r, "timer: divisor 5966, ");
	expect_out(&r, "timer: done, 40 ticks\n");
	expect_status(&r, 1);
	h_free(&r);
}

/*
 * --clock real/N: the machine clock runs N times slower than the host's, so 20 ticks at
 * 100 Hz (0.2 s of guest time) take at least N * 0.2 s; bad N is a usage error.
 */
Test(run, slowed_clock_stretches_guest_time, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--clock", "real/6", "--append",
	   "hz=100 ticks=20", guest("timer"));
	expect_out(&r, "timer: done, 20 ticks\n");
	expect_status(&r, 1);
	cr_expect(r.secs >= 1.1, "20 ticks at 100 Hz with the clock slowed 6x took %.2f s of "
		  "host time, expected at least 1.2", r.secs);
	h_free(&r);
	static const char *const bad[] = {"real/1", "real/0", "real/1001", "real/x", "real/",
					  "real/5s", "fast"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		RW(&r, NULL, "run", "--clock", bad[i], guest("hello"));
		expect_status(&r, 2);
		cr_expect(strstr(r.err, "expected real, real/N") != NULL, "--clock %s: %s", bad[i],
			  r.err);
		h_free(&r);
	}
}

Test(run, timer_bad_option_is_the_guests_status, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", "hz=5", guest("timer"));
	expect_status(&r, 5); /* the guest exits with 2: (2 << 1) | 1 */
	h_free(&r);
}

/* A value the guest library cannot read is an error, not the default (compute n=abc ran
 * its 300 default rounds). */
Test(run, unreadable_guest_option_is_an_error, .timeout = TIMEOUT_S + 10)
{
	static const char *const cases[][3] = {
		{"compute", "n=abc", "option n=abc: expected a number\n"},
		{"timer", "hz=1k", "option hz=1k: expected a number\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h_run r;
		RW(&r, NULL, "run", "--backend", "emu", "--append", cases[i][1], guest(cases[i][0]));
		expect_status(&r, 5);
		expect_out(&r, cases[i][2]);
		h_free(&r);
	}
}

Test(run, echo_echoes_until_q, .timeout = TIMEOUT_S + 10)
{
	/* The input is there before the guest boots: bytes that arrive early are kept. */
	struct h_opts o = {.input = "abcq", .timeout_s = TIMEOUT_S};
	struct h_run r;
	RW(&r, &o, "run", "--backend", "emu", guest("echo"));
	expect_out_is(&r, "echo: type; byte 113 quits\nabc\nbye\n");
	expect_no_err(&r);
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, echo_input_after_boot_and_quit_option, .timeout = TIMEOUT_S + 10)
{
	struct h_opts o = {.input = "xyq!", .input_after = "quits\n", .timeout_s = TIMEOUT_S};
	struct h_run r;
	RW(&r, &o, "run", "--backend", "emu", "--append", "quit=0x21", guest("echo"));
	expect_out_is(&r, "echo: type; byte 33 quits\nxyq\nbye\n");
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, end_of_input_is_silence_and_sigint_stops, .timeout = TIMEOUT_S + 10)
{
	/* stdin ends without the quit byte: the guest idles until SIGINT stops it (status 0). */
	struct h_opts o = {.input = "ab",
			   .sig = SIGINT,
			   .sig_after = "quits\nab",
			   .sig_delay_ms = 300,
			   .timeout_s = TIMEOUT_S};
	struct h_run r;
	RW(&r, &o, "run", "--backend", "emu", guest("echo"));
	expect_out_is(&r, "echo: type; byte 113 quits\nab");
	expect_err(&r, "stopped at position ");
	expect_status(&r, 0);
	cr_expect_eq(r.termsig, 0, "killed by signal %d", r.termsig);
	h_free(&r);
}

Test(run, sigint_stops_a_busy_guest, .timeout = TIMEOUT_S + 10)
{
	/* A fixed delay, not the output: see output_reaches_a_pipe_while_the_guest_computes. */
	struct h_opts o = {.sig = SIGINT, .sig_delay_ms = 1000, .timeout_s = TIMEOUT_S};
	struct h_run r;
	RW(&r, &o, "run", "--backend", "emu", "--append", "n=10000000", guest("compute"));
	expect_out_is(&r, "compute: 10000000 rounds\n");
	expect_err(&r, "stopped at position ");
	expect_status(&r, 0);
	cr_expect_eq(r.termsig, 0, "killed by signal %d", r.termsig);
	h_free(&r);
}

Test(run, output_reaches_a_pipe_while_the_guest_computes, .timeout = TIMEOUT_S + 10)
{
	/*
	 * A harness reading rewind's stdout through a pipe (as one written for QEMU does) sees
	 * each line soon after the guest writes it, not only when the guest idles or exits.
	 * The guest computes for minutes after its first line; SIGINT once the line is seen.
	 */
	struct h_opts o = {.sig = SIGINT, .sig_after = "rounds\n", .timeout_s = 5};
	struct h_run r;
	char *argv[16];
	argv_of((const char *[]){"run", "--backend", "emu", "--append", "n=10000000",
				 guest("compute"), NULL},
		argv, 16);
	h_run(argv, &o, &r);
	cr_expect(!r.timed_out,
		  "\"compute: 10000000 rounds\" did not reach the pipe within 5 s of the start "
		  "while the guest computed (killed at the deadline); stdout: \"%s\"",
		  r.out);
	if (!r.timed_out) {
		expect_status(&r, 0);
		expect_err(&r, "stopped at position ");
	}
	h_free(&r);
}

Test(run, compute_checksum, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", "n=20", guest("compute"));
	expect_out_is(&r, "compute: 20 rounds\ncompute: checksum 0cb132a87c6dfb6a\n");
	expect_status(&r, 1);
	h_free(&r);
}

/* Self-modifying code: each round's new code runs (the sum is QEMU's too). */
Test(run, smc_runs_the_code_it_writes, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", guest("smc"));
	expect_out_is(&r, "smc: 400 rounds of 5000 calls\nsmc: sum 7aab02609934c580\n");
	expect_status(&r, 1);
	h_free(&r);
}

/*
 * Code written and run until Unicorn's translation buffer, made 1 MiB by the test knob
 * REWIND_TCG_BUFFER, has filled and been flushed many times (docs/emu-backend.md, "The
 * translation buffer"): the run ends as on QEMU. A knob that is not a size from 1M to 1G
 * is refused in one line, as a usage error.
 */
Test(run, jit_fills_a_small_translation_buffer, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	cr_assert(setenv("REWIND_TCG_BUFFER", "1M", 1) == 0);
	RW(&r, NULL, "run", "--backend", "emu", guest("jit"));
	expect_out_is(&r, "jit: rounds=4 pages=256 blocks=64 calls=3 sum=ebef2aceffe0d0b7 bad=0\n");
	expect_status(&r, 1);
	h_free(&r);
	static const char *const bad[] = {"12x", "512K", "2G", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(setenv("REWIND_TCG_BUFFER", bad[i], 1) == 0);
		RW(&r, NULL, "run", "--backend", "emu", guest("jit"));
		REFUSED(&r, 2, "REWIND_TCG_BUFFER", "not a size from 1M to 1G");
		h_free(&r);
	}
	unsetenv("REWIND_TCG_BUFFER");
}

/* A virtual page mapped to one physical page, then to another. */
Test(run, remap_moves_a_virtual_page, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", guest("remap"));
	expect_out_is(&r, "remap: A=42 B=7 now=7 x=1dd2fa61b14b2e41\n");
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, selftest_passes, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", guest("selftest"));
	expect_out(&r, "selftest: rewind machine and guest library checks\n");
	cr_expect(strstr(r.out, "FAIL:") == NULL, "a check failed:\n%s", r.out);
	int passed = -1, failed = -1;
	const char *p = strstr(r.out, " passed, ");
	if (p) {
		while (p > r.out && p[-1] >= '0' && p[-1] <= '9')
			p--;
		sscanf(p, "%d passed, %d failed", &passed, &failed);
	}
	cr_expect(passed > 0 && failed == 0, "summary: %d passed, %d failed\n%s", passed, failed,
		  r.out);
	cr_expect_eq(occurrences(r.out, "PASS: "), passed, "PASS lines differ from the count");
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, race_differs_between_runs, .timeout = 5 * TIMEOUT_S + 10)
{
	char finals[5][64];
	int distinct = 0;
	for (int i = 0; i < 5; i++) {
		struct h_run r;
		RW(&r, NULL, "run", "--backend", "emu", "--append", "ticks=40", guest("race"));
		expect_out(&r, "race: 40 ticks at 250 Hz against an unlocked increment\n");
		/* A tick may land between the loop test and the cli: 41 is a fair result. */
		cr_expect(strstr(r.out, "race: ticks=40 main=") || strstr(r.out, "race: ticks=41 main="),
			  "unexpected tick count:\n%s", r.out);
		expect_out(&r, "race: done\n");
		expect_status(&r, 1);
		race_final(&r, finals[i], sizeof(finals[i]));
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= !strcmp(finals[i], finals[j]);
		distinct += !seen;
		h_free(&r);
	}
	cr_expect(distinct >= 2, "5 runs, all %s", finals[0]);
}

static void crash_on(const char *backend)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", backend, guest("crash"));
	expect_out(&r, "crash: this guest faults on purpose\n");
	expect_out(&r, "crash: page fault at 0xdead0000000 (error 0x0, rip 0x");
	expect_out(&r, "crash: triple fault next\n");
	expect_err(&r, "triple fault");
	/* KVM on AMD resets the vCPU before it reports the shutdown: no registers to show,
	 * and it is said. */
	if (!strcmp(backend, "kvm") && !strcmp(vmm_hostkvm_detect().name, "hardware-svm")) {
		expect_err(&r, "(no registers: KVM reset the vCPU when it reported the triple "
			       "fault, as it does on AMD;");
		cr_expect(!strstr(r.err, "RIP="), "registers of a reset vCPU shown:\n%s", r.err);
	} else {
		expect_err(&r, "RIP=");
		expect_err(&r, "CR2=00000dead0000000");
	}
	/* The INT3 whose delivery fails. emu delivers it, and so does rewind on a
	 * software-nested KVM, which cannot; hardware KVM does not say which it was. */
	if (strcmp(backend, "kvm") || vmm_hostkvm_detect().kind == VMM_HOSTKVM_SOFTWARE)
		expect_err(&r, "(exception 3 could not be delivered)");
	expect_status(&r, 6);
	h_free(&r);
}

Test(run, crash_triple_faults_with_register_dump, .timeout = TIMEOUT_S + 10)
{
	crash_on("emu");
}

/*
 * Counting exits, the triple fault is an exit of its own: the final state hash and the
 * end come after the guest's last port access (the same count), and a replay checks
 * them at the fault, not at that access.
 */
Test(run, crash_recorded_counting_exits_replays_to_the_fault, .timeout = TIMEOUT_S + 10)
{
	const char *log = scratch("crash-exits.rwl");
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "--positions", "exits", "-o", log,
	   guest("crash"));
	expect_status(&r, 6);
	expect_err(&r, "triple fault at position 321 (exception 3 could not be delivered)");
	h_free(&r);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 6);
	expect_err(&r, "triple fault at position 321 (exception 3 could not be delivered)");
	expect_err(&r, "CR2=00000dead0000000");
	expect_err(&r, ": matched");
	h_free(&r);
	unlink(log);
}

Test(run, crash_triple_faults_on_kvm, .timeout = TIMEOUT_S + 10)
{
	if (!h_have_kvm())
		cr_skip_test("no /dev/kvm: crash on kvm not run");
	crash_on("kvm");
	/* Recorded on kvm, the crash replays on emu to the same end, registers and all,
	 * whether or not kvm knew the exception or kept the registers. */
	const char *log = scratch("crash-kvm.rwl");
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "kvm", "-o", log, guest("crash"));
	expect_status(&r, 6);
	h_free(&r);
	RW(&r, NULL, "replay", "--backend", "emu", log);
	expect_err(&r, "CR2=00000dead0000000");
	expect_err(&r, "(exception 3 could not be delivered)");
	expect_status(&r, 6);
	h_free(&r);
	unlink(log);
}

Test(run, spew_line_count, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--append", "lines=2000", guest("spew"));
	cr_expect_eq(h_count_lines(r.out, r.len), 2002, "%zu lines", h_count_lines(r.out, r.len));
	cr_expect_eq(r.len, 2000 * 61 + strlen("spew: 2000 lines\nspew: done, 2000 lines\n"),
		     "%zu bytes", r.len);
	cr_expect(!strncmp(r.out, "spew: 2000 lines\n00000000 ", 26), "starts:\n%.100s", r.out);
	expect_out(&r, "\n00001999 ");
	expect_out(&r, "\nspew: done, 2000 lines\n");
	expect_status(&r, 1);
	h_free(&r);
}

/* --- conformance guests: the golden reports ---------------------------------------- */

static void conform_golden(const char *name, struct h_run *r)
{
	char golden[256];
	snprintf(golden, sizeof(golden), "tests/integration/%s.golden", name);
	char *want = h_read_file(golden, NULL);
	cr_assert(want, "cannot read %s", golden);
	RW(r, NULL, "run", "--backend", "emu", guest(name));
	expect_out_is(r, want);
	expect_status(r, 1);
	free(want);
}

Test(run, conform_exc, .timeout = TIMEOUT_S + 10)
{
	/*
	 * Equal to QEMU TCG's report but for INT beyond the IDT limit: #GP's error code is
	 * vector * 8 + 2 (IDT, EXT = 0) as the SDM and KVM have it; QEMU TCG gives
	 * vector * 16 + 2 (0x0602), and so also a different hash (74ca55721cc4ab0d).
	 */
	struct h_run r;
	conform_golden("conform_exc", &r);
	expect_out(&r,
		   "int beyond the IDT limit vector 13 #GP error 0x0302 cr2 -      rip insn+0\n");
	h_free(&r);
}

Test(run, conform_irq, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	conform_golden("conform_irq", &r);
	expect_out(&r, CONFORM_IRQ_HASH);
	h_free(&r);
}

Test(run, conform_regs, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	conform_golden("conform_regs", &r);
	expect_out(&r, CONFORM_REGS_HASH);
	h_free(&r);
}

/* --- bad input: one clear line and an even status ---------------------------------- */

Test(run, missing_file, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "/nonexistent/guest.elf");
	REFUSED(&r, 4, "/nonexistent/guest.elf", "No such file");
	cr_expect_eq(occurrences(r.err, "/nonexistent/guest.elf"), 1, "the path is repeated: %s",
		     r.err);
	h_free(&r);
}

Test(run, directory, .timeout = TIMEOUT_S + 10)
{
	/* Not a file is bad input (docs/architecture.md: 4 = file, ELF, log), like a missing
	 * file. */
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "tests");
	REFUSED(&r, 4, "tests", "directory");
	cr_expect_eq(occurrences(r.err, "tests"), 1, "the path is repeated: %s", r.err);
	h_free(&r);
}

Test(run, not_a_regular_file, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "/dev/null");
	REFUSED(&r, 4, "/dev/null", "not a regular file");
	h_free(&r);
}

Test(run, not_an_elf, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "Makefile");
	REFUSED(&r, 4, "Makefile", "not an ELF");
	h_free(&r);
}

Test(run, host_program_is_not_a_pvh_kernel, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "/bin/true");
	REFUSED(&r, 4, "/bin/true", "PVH");
	h_free(&r);
}

static char *read_guest(const char *name, size_t *len)
{
	char *d = h_read_file(guest(name), len);
	cr_assert(d && *len > sizeof(Elf64_Ehdr), "cannot read %s: run make first", guest(name));
	return d;
}

/* Run rewind on the image d[0..len) written to a scratch file; return its path. */
static const char *run_image(struct h_run *r, const char *name, const void *d, size_t len)
{
	const char *path = scratch(name);
	write_file(path, d, len);
	RW(r, NULL, "run", "--backend", "emu", path);
	unlink(path);
	return path;
}

Test(run, elf_without_pvh_note, .timeout = TIMEOUT_S + 10)
{
	size_t len;
	char *d = read_guest("hello", &len);
	/* The Xen note: namesz 4, descsz 4, type 18, "Xen\0"; make it type 17. */
	char *p = memmem(d, len, "\4\0\0\0\4\0\0\0\22\0\0\0Xen\0", 16);
	cr_assert(p, "no PVH note in hello.elf");
	p[8] = 17;
	struct h_run r;
	run_image(&r, "nonote.elf", d, len);
	REFUSED(&r, 4, "no PVH entry note");
	h_free(&r);
	free(d);
}

Test(run, truncated_elf, .timeout = TIMEOUT_S + 10)
{
	size_t len;
	char *d = read_guest("hello", &len);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
	size_t phend = eh->e_phoff + (size_t)eh->e_phnum * eh->e_phentsize, need = phend;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(d + eh->e_phoff + i * eh->e_phentsize);
		if ((ph->p_type == PT_LOAD || ph->p_type == PT_NOTE) &&
		    ph->p_offset + ph->p_filesz > need)
			need = ph->p_offset + ph->p_filesz;
	}
	cr_assert(need <= len);
	size_t cuts[] = {0, 1, 15, 16, 63, sizeof(Elf64_Ehdr), phend - 1, need / 2, need - 1};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct h_run r;
		run_image(&r, "trunc.elf", d, cuts[i]);
		cr_expect(
		    r.status == 4 && r.len == 0 && h_lines(r.err) == 1 &&
			!strncmp(r.err, "rewind: ", 8),
		    "hello.elf cut to %zu of %zu bytes: status %d, stdout \"%s\", stderr:\n%s",
		    cuts[i], len, r.status, r.out, r.err);
		h_free(&r);
	}
	free(d);
}

Test(run, bad_elf_headers, .timeout = TIMEOUT_S + 10)
{
	size_t len;
	char *orig = read_guest("hello", &len);
	const Elf64_Ehdr *eh0 = (const Elf64_Ehdr *)orig;
	enum { CLASS32, ARM, PADDR_PAST_RAM, PADDR_ZERO, HUGE_MEMSZ, WRAP_MEMSZ, N };
	static const char *names[N] = {"ELFCLASS32",   "EM_ARM",     "segment past RAM",
				       "segment at 0", "memsz 2^48", "memsz wraps"};
	static const char *words[N] = {"32-bit",   "x86-64",	     "past guest RAM",
				       "overlaps", "past guest RAM", "wraps"};
	for (int c = 0; c < N; c++) {
		char *d = malloc(len);
		memcpy(d, orig, len);
		Elf64_Ehdr *eh = (Elf64_Ehdr *)d;
		Elf64_Phdr *load = NULL, *last = NULL;
		for (int i = 0; i < eh0->e_phnum; i++) {
			Elf64_Phdr *ph = (Elf64_Phdr *)(d + eh->e_phoff + i * eh->e_phentsize);
			if (ph->p_type == PT_LOAD) {
				load = load ? load : ph;
				last = ph;
			}
		}
		cr_assert(load && last);
		switch (c) {
		case CLASS32:
			eh->e_ident[EI_CLASS] = ELFCLASS32;
			break;
		case ARM:
			eh->e_machine = EM_ARM;
			break;
		case PADDR_PAST_RAM:
			load->p_paddr = 256ull << 20; /* RAM is 128M */
			break;
		case PADDR_ZERO:
			load->p_paddr = 0;
			break;
		case HUGE_MEMSZ:
			last->p_memsz = 1ull << 48;
			break;
		case WRAP_MEMSZ:
			last->p_memsz = UINT64_MAX;
			break;
		}
		struct h_run r;
		run_image(&r, "bad.elf", d, len);
		cr_expect(r.status == 4 && r.len == 0 && h_lines(r.err) == 1 &&
			      strstr(r.err, words[c]),
			  "%s: status %d (expected 4), stdout \"%s\", stderr (expected one line "
			  "with \"%s\"):\n%s",
			  names[c], r.status, r.out, words[c], r.err);
		h_free(&r);
		free(d);
	}
	free(orig);
}

Test(run, mem_nonsense, .timeout = TIMEOUT_S + 10)
{
	static const char *bad[] = {"abc", "0", "1K", "100G", "", "12Q", "-4M", "1M", "4097K"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct h_run r;
		RW(&r, NULL, "run", "--backend", "emu", "--mem", bad[i], guest("hello"));
		cr_expect(r.status == 2 && r.len == 0 && h_lines(r.err) == 1 &&
			      strstr(r.err, "--mem"),
			  "--mem '%s': status %d (expected 2), stdout \"%s\", stderr:\n%s", bad[i],
			  r.status, r.out, r.err);
		h_free(&r);
	}
}

Test(run, serial_bogus, .timeout = TIMEOUT_S + 10)
{
	static const char *bad[] = {"bogus",
				    "file:",
				    "tcp:",
				    "tcp:127.0.0.1",
				    "tcp::99",
				    "tcp:127.0.0.1:99999", /* getaddrinfo alone would take 34463 */
				    "tcp:127.0.0.1:1x",
				    "tcp:127.0.0.1:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct h_run r;
		RW(&r, NULL, "run", "--backend", "emu", "--serial", bad[i], guest("hello"));
		cr_expect(r.status == 2 && r.len == 0 && h_lines(r.err) == 1 &&
			      strstr(r.err, "--serial"),
			  "--serial '%s': status %d (expected 2), stdout \"%s\", stderr:\n%s",
			  bad[i], r.status, r.out, r.err);
		h_free(&r);
	}
}

Test(run, backend_bogus, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "bogus", guest("hello"));
	REFUSED(&r, 2, "--backend", "bogus");
	h_free(&r);
}

Test(run, backend_kvm_without_dev_kvm, .timeout = TIMEOUT_S + 10)
{
	if (h_have_kvm())
		cr_skip_test("/dev/kvm opens here: the missing-KVM refusal cannot be seen");
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "kvm", guest("hello"));
	REFUSED(&r, 10, "/dev/kvm");
	h_free(&r);
}

/*
 * This host's KVM kind as the rule in vmm/hostkvm.c sees it, from the same files the tool
 * reads (the rule itself is unit-tested on sample hosts in tests/vmm/test_hostkvm.c).
 */
static struct vmm_hostkvm this_host(void)
{
	static char line[8192];
	const char *flags = NULL;
	FILE *f = fopen("/proc/cpuinfo", "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5)) {
			flags = line;
			break;
		}
	fclose(f);
	const char *mods[4] = {NULL};
	size_t n = 0;
	for (const char *const *m = vmm_hostkvm_modules; *m && n < 3; m++) {
		char path[128];
		snprintf(path, sizeof(path), "/sys/module/%s", *m);
		if (access(path, F_OK) == 0)
			mods[n++] = *m;
	}
	return vmm_hostkvm_classify(flags, mods);
}

/* Whether auto should pick kvm here: hardware KVM whose /dev/kvm opens. */
static bool auto_is_kvm(void)
{
	return this_host().kind == VMM_HOSTKVM_HARDWARE && h_have_kvm();
}

Test(run, backend_auto_says_which_and_why, .timeout = TIMEOUT_S + 10)
{
	struct vmm_hostkvm h = this_host();
	struct h_run r;
	RW(&r, NULL, "run", guest("hello"));
	char want[512];
	snprintf(want, sizeof(want), "rewind: backend %s (auto: ", auto_is_kvm() ? "kvm" : "emu");
	cr_expect(!strncmp(r.err, want, strlen(want)), "stderr does not start with \"%s\":\n%s",
		  want, r.err);
	if (h.kind != VMM_HOSTKVM_HARDWARE || auto_is_kvm())
		expect_err(&r, h.why);
	else /* hardware KVM this user cannot open: the reason is why not */
		expect_err(&r, "but /dev/kvm");
	cr_expect_eq(h_lines(r.err), 1, "stderr:\n%s", r.err);
	expect_out(&r, "Hello from rewind guest\n");
	expect_status(&r, 1);
	h_free(&r);
}

/* What a user of this project's PVM machines sees: /dev/kvm opens, yet auto picks emu. */
Test(run, backend_auto_on_software_kvm_picks_emu, .timeout = TIMEOUT_S + 10)
{
	if (access("/sys/module/kvm_pvm", F_OK) != 0)
		cr_skip_test("no kvm_pvm here: not a software-nested KVM host");
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "auto", guest("hello"));
	expect_status(&r, 1);
	cr_expect_str_eq(r.err,
			 "rewind: backend emu (auto: /dev/kvm is software-nested KVM (kvm_pvm), "
			 "slower than emu)\n");
	h_free(&r);
	RW(&r, NULL, "run", "--backend", "help");
	expect_status(&r, 0);
	expect_no_err(&r);
	expect_out(&r, "host kvm: software-pvm (");
	expect_out(&r, "auto picks: emu (");
	h_free(&r);
}

/* --backend help: the host's kind (bench/run.sh reads it) and auto's pick, nothing run. */
Test(run, backend_help_tells_the_hosts_kvm, .timeout = TIMEOUT_S + 10)
{
	struct vmm_hostkvm h = this_host();
	char want[512];
	snprintf(want, sizeof(want), "host kvm: %s (%s)\nauto picks: %s (", h.name, h.why,
		 auto_is_kvm() ? "kvm" : "emu");
	struct h_run r;
	/* No guest needed, and record answers alike. */
	for (int i = 0; i < 2; i++) {
		RW(&r, NULL, i ? "record" : "run", "--backend", "help");
		expect_status(&r, 0);
		expect_no_err(&r);
		cr_expect(!strncmp(r.out, want, strlen(want)), "stdout:\n%s\nexpected it to start:\n%s",
			  r.out, want);
		cr_expect_eq(h_lines(r.out), 2, "stdout:\n%s", r.out);
		h_free(&r);
	}
}

/* Under --gdb and --clock virtual auto has one choice, and says so. */
Test(run, backend_auto_under_gdb_or_virtual_clock_is_emu, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--clock", "virtual", guest("hello"));
	expect_status(&r, 1);
	cr_expect_str_eq(r.err, "rewind: backend emu (auto: --clock virtual needs it)\n");
	h_free(&r);
	RW(&r, NULL, "run", "--clock", "virtual", "--backend", "bogus", guest("hello"));
	REFUSED(&r, 2, "--backend", "bogus");
	h_free(&r);
}

Test(run, usage_errors, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "frob");
	REFUSED(&r, 2, "frob");
	h_free(&r);

	RW(&r, NULL, "run", "--backend", "emu");
	REFUSED(&r, 2, "run");
	h_free(&r);

	RW(&r, NULL, "run", "--backend", "emu", guest("hello"), guest("echo"));
	REFUSED(&r, 2, "run");
	h_free(&r);

	RW(&r, NULL, "run", "--bogus-option", guest("hello"));
	expect_status(&r, 2);
	cr_expect_eq(r.len, 0, "stdout:\n%s", r.out);
	expect_err(&r, "bogus-option");
	h_free(&r);
}

Test(run, no_arguments, .timeout = TIMEOUT_S + 10)
{
	char *argv[2];
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	struct h_run r;
	argv_of((const char *[]){NULL}, argv, 2);
	h_run(argv, &o, &r);
	expect_status(&r, 2);
	cr_expect_eq(r.len, 0, "stdout:\n%s", r.out);
	expect_err(&r, "usage: rewind");
	h_free(&r);
}

Test(run, help, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "--help");
	expect_status(&r, 0);
	expect_no_err(&r);
	static const char *main_words[] = {
	    "usage: rewind", "run", "(V << 1) | 1", "0 ", "2 ", "4 ", "6 ", "8 ",
	    "10 ",	     "12 ", "/dev/kvm"};
	for (size_t i = 0; i < sizeof(main_words) / sizeof(main_words[0]); i++)
		expect_out(&r, main_words[i]);
	h_free(&r);

	RW(&r, NULL, "run", "--help");
	expect_status(&r, 0);
	expect_no_err(&r);
	static const char *run_words[] = {
	    "usage: rewind run", "--backend", "kvm|emu|auto", "default auto", "vmx", "kvm_pvm",
	    "--backend help", "--mem",
	    "--append",		 "--serial",  "stdio",	      "file:PATH",
	    "tcp:HOST:PORT",	 "--verbose", "--help",	      "Ctrl-A x", "--progress"};
	for (size_t i = 0; i < sizeof(run_words) / sizeof(run_words[0]); i++)
		expect_out(&r, run_words[i]);
	h_free(&r);
}

/* --- the serial line's host side ----------------------------------------------------- */

Test(run, serial_file, .timeout = TIMEOUT_S + 10)
{
	const char *path = scratch("serial.txt");
	char spec[600];
	snprintf(spec, sizeof(spec), "file:%s", path);
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--serial", spec, guest("hello"));
	expect_status(&r, 1);
	cr_expect_eq(r.len, 0, "stdout not empty:\n%s", r.out);
	char *got = h_read_file(path, NULL);
	cr_assert(got, "%s not written", path);
	cr_expect_str_eq(got, "Hello from rewind guest\ncmdline: \nmemory: 128 MiB\n");
	free(got);
	h_free(&r);

	/* Enough output to need several flushes, all of it in the file. */
	RW(&r, NULL, "run", "--backend", "emu", "--serial", spec, "--append", "lines=2000",
	   guest("spew"));
	expect_status(&r, 1);
	size_t len;
	got = h_read_file(path, &len);
	cr_assert(got);
	cr_expect_eq(h_count_lines(got, len), 2002, "%zu lines in %s", h_count_lines(got, len),
		     path);
	cr_expect(strstr(got, "\nspew: done, 2000 lines\n"), "file ends:\n%s",
		  len > 100 ? got + len - 100 : got);
	free(got);
	unlink(path);
	h_free(&r);
}

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Connect to 127.0.0.1:port, retrying while the server starts; -1 after the deadline. */
static int connect_retry(int port, double seconds)
{
	double deadline = h_now() + seconds;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	while (h_now() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(fd >= 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(20000);
	}
	return -1;
}

Test(run, serial_tcp, .timeout = TIMEOUT_S + 10)
{
	int port = free_port();
	char spec[64];
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", port);
	char *argv[16];
	argv_of((const char *[]){"run", "--backend", "emu", "--serial", spec, guest("echo"), NULL},
		argv, 16);
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	struct h_proc p;
	h_start(argv, &o, &p);

	int fd = connect_retry(port, 10);
	char got[4096] = "";
	size_t n = 0;
	if (fd >= 0) {
		cr_expect_eq(write(fd, "hiq", 3), 3);
		double deadline = h_now() + TIMEOUT_S;
		while (n + 1 < sizeof(got) && h_now() < deadline) {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			if (poll(&pf, 1, 1000) <= 0)
				continue;
			ssize_t k = read(fd, got + n, sizeof(got) - 1 - n);
			if (k <= 0)
				break; /* rewind closed the connection: the guest is done */
			n += (size_t)k;
		}
		got[n] = '\0';
		close(fd);
	}
	struct h_run r;
	h_wait(&p, &r);
	cr_assert(fd >= 0, "could not connect to %s; stderr:\n%s", spec, r.err);
	cr_expect_str_eq(got, "echo: type; byte 113 quits\nhi\nbye\n");
	char waiting[96];
	snprintf(waiting, sizeof(waiting), "waiting for a serial client on 127.0.0.1:%d\n", port);
	expect_err(&r, waiting);
	cr_expect_eq(r.len, 0, "stdout not empty:\n%s", r.out);
	expect_status(&r, 1);
	h_free(&r);
}

Test(run, serial_tcp_port_in_use, .timeout = TIMEOUT_S + 10)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(fd, 1) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	char spec[64];
	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", ntohs(a.sin_port));
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--serial", spec, guest("echo"));
	REFUSED(&r, 10, "--serial", "in use");
	close(fd);
	h_free(&r);
}

/* --- --verbose -------------------------------------------------------------------------- */

Test(run, verbose_shows_backend_and_unhandled_ports, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--verbose", guest("hello"));
	expect_status(&r, 1);
	expect_out(&r, "Hello from rewind guest\n");
	expect_err(&r, "backend emu");
	cr_expect(strstr(r.err, "unhandled port ") ||
		      strstr(r.err, "no accesses to unhandled ports"),
		  "no line about unhandled ports:\n%s", r.err);
	h_free(&r);
}

/* --- --progress ------------------------------------------------------------------------- */

/* A guest that runs about 2.5 s gets two progress lines, each with the lines it printed so
 * far; emu's lines carry no position (only kvm's is read while the vCPU runs). */
Test(run, progress_prints_a_line_every_n_seconds, .timeout = TIMEOUT_S + 10)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--progress", "1", "--append",
	   "hz=100 ticks=250", guest("timer"));
	expect_status(&r, 1);
	expect_out(&r, "timer: done, 250 ticks\n");
	expect_err(&r, "rewind: progress: 1 s, 1 lines of guest output\n");
	expect_err(&r, "rewind: progress: 2 s, ");
	cr_expect(strstr(r.err, "position") == NULL, "a position on emu:\n%s", r.err);
	h_free(&r);

	static const char *bad[] = {"0", "-1", "x", "86401"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		RW(&r, NULL, "run", "--backend", "emu", "--progress", bad[i], guest("hello"));
		REFUSED(&r, 2, "--progress");
		h_free(&r);
	}
}
