/* integration */
/*
 * test_conformance.c: the backend conformance suite (docs/architecture.md): the same guest
 * programs run on every vCPU backend there is here, and what they report (exception
 * vectors, error codes, CR2, interrupt order, ALU results and flags, memory hash) must
 * equal the golden reports in tests/integration/, so emu and kvm are compared with each
 * other through the goldens. emu always runs; kvm runs where /dev/kvm opens and is skipped
 * otherwise. The goldens are QEMU TCG's reports except for one line, where QEMU is wrong
 * (see conform_exc below and test_qemu_boot.c, which checks that).
 */
#include "tests/integration/harness.h"
#include "vmm/hostkvm.h"

#define TIMEOUT_S 30

/*
 * selftest prints host- and backend-specific details (RIPs, TSC values, the CPUID vendor)
 * in parentheses or quotes after each check's name; its golden keeps the check names, the
 * verdicts and the summary line.
 */
static char *normalize_selftest(const char *out)
{
	size_t cap = strlen(out) + 1, n = 0;
	char *res = malloc(cap);
	cr_assert(res);
	for (const char *line = out; *line;) {
		size_t len = strcspn(line, "\n");
		bool verdict = !strncmp(line, "PASS: ", 6) || !strncmp(line, "FAIL: ", 6);
		bool summary = !strncmp(line, "selftest: ", 10) && strstr(line, " passed, ") &&
			       strstr(line, " passed, ") < line + len;
		if (verdict || summary) {
			size_t keep = len;
			for (size_t i = 6; verdict && i + 1 < len; i++)
				if (line[i] == ' ' && (line[i + 1] == '(' || line[i + 1] == '"')) {
					keep = i;
					break;
				}
			memcpy(res + n, line, keep);
			n += keep;
			res[n++] = '\n';
		}
		line += len + (line[len] == '\n');
	}
	res[n] = '\0';
	return res;
}

/* The first line where a and b differ, for the failure message. */
static void first_difference(const char *a, const char *b, char *buf, size_t size)
{
	int line = 1;
	const char *la = a, *lb = b;
	while (*la && *lb) {
		size_t na = strcspn(la, "\n"), nb = strcspn(lb, "\n");
		if (na != nb || memcmp(la, lb, na)) {
			snprintf(buf, size, "line %d: expected \"%.*s\", got \"%.*s\"", line,
				 (int)na, la, (int)nb, lb);
			return;
		}
		la += na + (la[na] == '\n');
		lb += nb + (lb[nb] == '\n');
		line++;
	}
	snprintf(buf, size, "line %d: expected %s, got %s", line, *la ? "more lines" : "the end",
		 *lb ? "more lines" : "the end");
}

/*
 * A software-nested KVM (PVM) shows the guest the host's CPUID leaf 1 ECX/EDX and leaf 0xd
 * whatever KVM_SET_CPUID2 set (docs/kvm-backend.md, "CPUID the guest sees"): the host's
 * limitation, not rewind's, so on such a host those leaves are left out of the comparison
 * (in both the golden and the report), and so are the checks that read them, each named
 * in the test's log. Everything else is compared as on any other host.
 */
static bool pvm_cpuid(const char *backend)
{
	return !strcmp(backend, "kvm") && vmm_hostkvm_detect().kind == VMM_HOSTKVM_SOFTWARE;
}

/* Replace, in place, the rest of every line of text that starts with prefix by
 * " (not checked)" (the lines are longer than that, so the text only shrinks). */
static void blank_lines(char *text, const char *prefix)
{
	static const char mark[] = " (not checked)";
	size_t pl = strlen(prefix), ml = sizeof(mark) - 1;
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		if (len >= pl + ml && !strncmp(line, prefix, pl)) {
			memcpy(line + pl, mark, ml);
			memmove(line + pl + ml, line + len, strlen(line + len) + 1);
			len = pl + ml;
		}
		line += len + (line[len] == '\n');
	}
}

/* conform_cpuid on PVM: leaf 1 ECX/EDX, leaf 0xd and the hash over them are not checked. */
static void pvm_mask_cpuid(char *report)
{
	blank_lines(report, "0000000d:");
	blank_lines(report, "conform_cpuid: hash");
	/* Leaf 1: keep EAX and EBX ("00000001: eax ebx "), blank ECX and EDX. */
	char *l1 = strstr(report, "\n00000001: ");
	if (l1 && strlen(l1) >= 1 + 10 + 18 + 17)
		memset(l1 + 1 + 10 + 18, 'x', 17);
}

/*
 * selftest on PVM: the checks that read leaf 1 ECX (CPUID hides RDRAND, AVX, XSAVE,
 * TSC-deadline) count as passed; returns how many FAILs that turned into PASSes.
 */
static int pvm_mask_selftest(char *report)
{
	static const char *const leaf1[] = {"RDRAND", "AVX", "XSAVE", "TSC-deadline"};
	int fixed = 0;
	for (size_t i = 0; i < sizeof(leaf1) / sizeof(leaf1[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "FAIL: CPUID hides %s\n", leaf1[i]);
		char *at = strstr(report, line);
		if (at) {
			memcpy(at, "PASS", 4);
			fixed++;
		}
	}
	if (fixed) {
		char *sum = strstr(report, "selftest: ");
		unsigned passed, failed;
		if (sum && sscanf(sum, "selftest: %u passed, %u failed", &passed, &failed) == 2 &&
		    failed >= (unsigned)fixed) {
			char buf[64];
			int n = snprintf(buf, sizeof(buf), "selftest: %u passed, %u failed",
					 passed + (unsigned)fixed, failed - (unsigned)fixed);
			size_t old = strcspn(sum, "\n");
			memmove(sum + n, sum + old, strlen(sum + old) + 1);
			memcpy(sum, buf, (size_t)n);
		}
	}
	return fixed;
}

/* Run guest on backend and compare its (normalized) report with the golden file. */
static void conform(const char *guest, const char *backend)
{
	if (!strcmp(backend, "kvm") && !h_have_kvm())
		cr_skip_test("no /dev/kvm: conformance on kvm not run");

	char rw[4096], elf[4096], golden[4096];
	h_rewind_path(rw, sizeof(rw));
	h_guest_path(guest, elf, sizeof(elf));
	snprintf(golden, sizeof(golden), "tests/integration/%s.golden", guest);
	char *expected = h_read_file(golden, NULL);
	cr_assert(expected, "cannot read %s (tests run from the repository root)", golden);

	/* PVM's emulator runs no ring-0 x87 arithmetic: conform_exc leaves out the one case
	 * that needs it (the #MF of a pending exception) and says so. */
	bool pvm_x87 = pvm_cpuid(backend) && !strcmp(guest, "conform_exc");
	char *argv[] = {rw, "run", "--backend", (char *)backend, elf, NULL, NULL, NULL};
	if (pvm_x87) {
		argv[4] = "--append";
		argv[5] = "no-x87-arith";
		argv[6] = elf;
	}
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	struct h_run r;
	h_run(argv, &o, &r);
	cr_assert(!r.timed_out, "%s on %s: killed after %d s; output:\n%s%s", guest, backend,
		  TIMEOUT_S, r.out, r.err);
	char *report = strcmp(guest, "selftest") ? strdup(r.out) : normalize_selftest(r.out);
	int status_ok = 1;
	if (pvm_x87) {
		blank_lines(report, "fwait, x87 #Z pending");
		blank_lines(expected, "fwait, x87 #Z pending");
		blank_lines(report, "conform_exc: hash");
		blank_lines(expected, "conform_exc: hash");
		cr_log_info("conform_exc on kvm: this host's KVM is software-nested (PVM), whose "
			    "emulator runs no ring-0 x87 arithmetic: the #MF of a pending x87 "
			    "exception (and the report hash) not checked; every other case compared");
	} else if (pvm_cpuid(backend) && !strcmp(guest, "conform_cpuid")) {
		pvm_mask_cpuid(report);
		pvm_mask_cpuid(expected);
		cr_log_info("conform_cpuid on kvm: this host's KVM is software-nested (PVM), which "
			    "shows the guest the host's CPUID leaf 1 ECX/EDX and leaf 0xd: those "
			    "(and the report hash) not checked; every other leaf compared");
	} else if (pvm_cpuid(backend) && !strcmp(guest, "selftest")) {
		int fixed = pvm_mask_selftest(report);
		if (fixed) {
			status_ok = 3; /* the guest's own verdict counted those failures */
			cr_log_info("selftest on kvm: this host's KVM is software-nested (PVM), which "
				    "shows the guest the host's CPUID leaf 1 ECX: %d \"CPUID hides\" "
				    "checks of leaf 1 not checked",
				    fixed);
		}
	}
	cr_expect_eq(r.status, status_ok, "%s on %s: exit status %d, expected %d; stderr:\n%s",
		     guest, backend, r.status, status_ok, r.err);

	if (strcmp(report, expected)) {
		char diff[512];
		first_difference(expected, report, diff, sizeof(diff));
		cr_expect_fail("%s on %s differs from %s at %s\nfull output:\n%s", guest, backend,
			       golden, diff, r.out);
	}
	free(report);
	free(expected);
	h_free(&r);
}

Test(conformance, exc_emu, .timeout = TIMEOUT_S + 10)
{
	conform("conform_exc", "emu");
}

Test(conformance, exc_kvm, .timeout = TIMEOUT_S + 10)
{
	conform("conform_exc", "kvm");
}

/*
 * On software KVM, what neither its emulator nor rewind can run ends the run with one
 * line naming every byte of the instruction (here conform_exc's FLDCW with its 32-bit
 * displacement, whose bytes once printed as the first alone), status 10.
 */
Test(conformance, exc_kvm_x87_refused, .timeout = TIMEOUT_S + 10)
{
	if (!h_have_kvm())
		cr_skip_test("no /dev/kvm: not run");
	if (!pvm_cpuid("kvm"))
		cr_skip_test("this host's KVM is hardware: it runs ring-0 x87 code, nothing to "
			     "refuse");
	char rw[4096], elf[4096];
	h_rewind_path(rw, sizeof(rw));
	h_guest_path("conform_exc", elf, sizeof(elf));
	char *argv[] = {rw, "run", "--backend", "kvm", elf, NULL};
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	struct h_run r;
	h_run(argv, &o, &r);
	cr_expect_eq(r.status, 10, "exit status %d, expected 10; stderr:\n%s", r.status, r.err);
	const char *msg = strstr(r.err, "cannot run the instruction d9 2d ");
	cr_assert(msg, "no refusal naming FLDCW's bytes; stderr:\n%s", r.err);
	unsigned b[4];
	cr_expect_eq(sscanf(msg, "cannot run the instruction d9 2d %x %x %x %x at rip", &b[0],
			    &b[1], &b[2], &b[3]),
		     4, "the displacement's 4 bytes are not all named: %s", msg);
	h_free(&r);
}

Test(conformance, irq_emu, .timeout = TIMEOUT_S + 10)
{
	conform("conform_irq", "emu");
}

Test(conformance, irq_kvm, .timeout = TIMEOUT_S + 10)
{
	conform("conform_irq", "kvm");
}

Test(conformance, regs_emu, .timeout = TIMEOUT_S + 10)
{
	conform("conform_regs", "emu");
}

Test(conformance, regs_kvm, .timeout = TIMEOUT_S + 10)
{
	conform("conform_regs", "kvm");
}

/* The same CPU on both backends (vmm/cpuid.c): every leaf, byte for byte. */
Test(conformance, cpuid_emu, .timeout = TIMEOUT_S + 10)
{
	conform("conform_cpuid", "emu");
}

Test(conformance, cpuid_kvm, .timeout = TIMEOUT_S + 10)
{
	conform("conform_cpuid", "kvm");
}

Test(conformance, selftest_emu, .timeout = TIMEOUT_S + 10)
{
	conform("selftest", "emu");
}

Test(conformance, selftest_kvm, .timeout = TIMEOUT_S + 10)
{
	conform("selftest", "kvm");
}

/*
 * conform_user (user mode: SYSCALL/SYSRET, exceptions and an IRQ from CPL 3, IRETQ's
 * selector checks). On a software-nested KVM (PVM) the guest's ring transitions do not
 * complete: a SYSCALL from CPL 3 never reaches the guest's LSTAR, and after an exception
 * from CPL 3 is handled the guest gets no further (the IRETQ back to CPL 3 or the INT from
 * CPL 3 after it; measured on this host, 2026-12-07), so the case is not checked there; on
 * hardware KVM it is compared whole.
 */
Test(conformance, user_emu, .timeout = TIMEOUT_S + 10)
{
	conform("conform_user", "emu");
}

Test(conformance, user_kvm, .timeout = TIMEOUT_S + 10)
{
	if (h_have_kvm() && vmm_hostkvm_detect().kind == VMM_HOSTKVM_SOFTWARE)
		cr_skip_test("conform_user not checked on software-nested KVM (PVM): a SYSCALL "
			     "from CPL 3 does not reach the guest's LSTAR, and after an exception "
			     "from CPL 3 is handled the guest gets no further");
	conform("conform_user", "kvm");
}

/* Replace the line of text starting with prefix by repl (one line, no newline). */
static void replace_line(char *text, const char *prefix, const char *repl)
{
	char *at = strstr(text, prefix);
	if (at && at != text && at[-1] != '\n')
		at = NULL;
	if (!at)
		return;
	size_t len = strcspn(at, "\n"), rl = strlen(repl);
	cr_assert(rl <= len, "replacement longer than the line");
	memcpy(at, repl, rl);
	memmove(at + rl, at + len, strlen(at + len) + 1);
}

/*
 * The golden checked against QEMU TCG (where qemu-system-x86_64 is installed), but for two
 * lines where QEMU 8/9 TCG departs from the SDM and rewind does not: SYSCALL keeps the
 * arithmetic flags not in SFMASK (QEMU clears them all: "kernel rflags 0x2", not 0xc7),
 * and the #GP of an INT n through a gate of lower DPL has the error code vector * 8 + 2
 * (QEMU gives vector * 16 + 2 in IA-32e mode: 0x802, not 0x402). Those lines, and the hash
 * over the report, are compared as QEMU prints them.
 */
Test(conformance, user_qemu, .timeout = TIMEOUT_S + 10)
{
	const char *qemu = "qemu-system-x86_64";
	if (!h_have_program(qemu))
		cr_skip_test("qemu-system-x86_64 not installed: conform_user's golden not checked "
			     "against QEMU (install qemu-system-x86)");
	char elf[4096];
	h_guest_path("conform_user", elf, sizeof(elf));
	char *argv[] = {
		(char *)qemu, "-M",
		"microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on",
		"-cpu", "qemu64,-apic", "-m", "128M", "-no-reboot", "-nographic",
		"-nodefaults", "-serial", "stdio", "-device",
		"isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", elf, "-append", "", NULL,
	};
	struct h_opts o = {.merge = true, .timeout_s = TIMEOUT_S};
	struct h_run r;
	h_run(argv, &o, &r);
	cr_assert(!r.timed_out, "QEMU killed after %d s; output:\n%s", TIMEOUT_S, r.out);
	char *expected = h_read_file("tests/integration/conform_user.golden", NULL);
	cr_assert(expected, "cannot read tests/integration/conform_user.golden");
	replace_line(expected, "syscall: ",
		     "syscall: rcx ret+0 r11 0x4c7 kernel rflags 0x2 cs 0x8 ss 0x10 user rsp top+0");
	char *intn = strstr(expected, "int 0x80 (dpl 0 gate)");
	cr_assert(intn && (intn = strstr(intn, "error 0x0402")), "golden lacks the INT 0x80 line");
	memcpy(intn, "error 0x0802", 12);
	blank_lines(expected, "conform_user: hash");
	char *got = strdup(r.out);
	blank_lines(got, "conform_user: hash");
	cr_expect_eq(r.status, 1, "QEMU exit status %d, expected 1", r.status);
	if (strcmp(got, expected)) {
		char diff[512];
		first_difference(expected, got, diff, sizeof(diff));
		cr_expect_fail("conform_user on QEMU differs from the golden at %s\nfull output:\n%s",
			       diff, r.out);
	}
	free(got);
	free(expected);
	h_free(&r);
}
