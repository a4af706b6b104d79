/* integration */
/*
 * test_user.c: user mode (CPL 3) under record and replay on the emu backend.
 *  - conform_user (SYSCALL/SYSRET, faults, traps and an IRQ from CPL 3) recorded with a
 *    state hash every 1000 instructions replays matched: every privilege change lands
 *    at the same position with the same registers;
 *  - Debian's kernel with the busybox initramfs (make linux) boots to the shell, which
 *    runs a scripted session (uname -a, ls /, a loop printing 3000 lines, cat
 *    /proc/interrupts, poweroff -f); the recording of that session replays byte for
 *    byte with its state hashes matched and ends the same way (status 0: a halt with
 *    interrupts disabled). Skipped, saying so, where make linux has not been run.
 */
#include "tests/integration/harness.h"

#include <fcntl.h>
#include <sys/file.h>

#define TIMEOUT_S 60
#define BOOT_TIMEOUT_S 400
#define MARKER "rewind-initramfs: ready"
#define CMDLINE "console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
#define SESSION                                                                             \
	"uname -a\nls /\ni=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done\n"   \
	"cat /proc/interrupts\npoweroff -f\n"

static void tmp_path(const char *name, char *buf, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(buf, size, "%s/rewind-user-%s-%d.rwl", tmp && *tmp ? tmp : "/tmp", name,
		 (int)getpid());
}

static const char *tail(const struct h_run *r)
{
	return r->len > 3000 ? r->out + r->len - 3000 : r->out;
}

Test(user, conform_user_records_and_replays, .timeout = 2 * TIMEOUT_S + 10)
{
	char rw[4096], elf[4096], log[4096];
	h_rewind_path(rw, sizeof(rw));
	h_guest_path("conform_user", elf, sizeof(elf));
	tmp_path("conform", log, sizeof(log));
	char *rec_argv[] = {rw, "record", "--backend", "emu", "--hash-every", "1000", "-o", log,
			    elf, NULL};
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	struct h_run rec, rpl;
	h_run(rec_argv, &o, &rec);
	cr_assert(!rec.timed_out && rec.status == 1, "record: status %d; stderr:\n%s", rec.status,
		  rec.err);
	cr_assert(strstr(rec.out, "conform_user: done"), "record output:\n%s", rec.out);
	char *rpl_argv[] = {rw, "replay", log, NULL};
	h_run(rpl_argv, &o, &rpl);
	cr_expect(!rpl.timed_out && rpl.status == 1, "replay: status %d; stderr:\n%s", rpl.status,
		  rpl.err);
	cr_expect(strstr(rpl.err, ": matched"), "replay did not match:\n%s", rpl.err);
	cr_expect_str_eq(rpl.out, rec.out, "replay output differs from the recording's");
	unlink(log);
	h_free(&rec);
	h_free(&rpl);
}

/* One Linux boot at a time, with the other Linux tests (test_linux.c's lock). */
static void take_turn(void)
{
	char path[512];
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/rewind-test-linux-%d.lock", tmp && *tmp ? tmp : "/tmp",
		 (int)getuid());
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
			;
}

Test(user, linux_shell_session_records_and_replays, .timeout = 2 * BOOT_TIMEOUT_S + 20)
{
	char kernel[4096], initrd[4096], rw[4096], log[4096];
	snprintf(kernel, sizeof(kernel), "%s/linux/vmlinux", h_build_dir());
	snprintf(initrd, sizeof(initrd), "%s/linux/initrd.cpio.gz", h_build_dir());
	if (access(kernel, R_OK) || access(initrd, R_OK))
		cr_skip_test("no Linux kernel or initramfs: run 'make linux' to fetch Debian's "
			     "kernel and busybox");
	h_rewind_path(rw, sizeof(rw));
	tmp_path("shell", log, sizeof(log));
	take_turn();

	char *rec_argv[] = {rw, "record", "--backend", "emu", "-o", log, "--serial", "stdio",
			    "--initrd", initrd, "--append", CMDLINE, kernel, NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S,
			   .input = SESSION,
			   .input_after = MARKER,
			   .hold_stdin = true};
	struct h_run rec, rpl;
	h_run(rec_argv, &o, &rec);
	cr_assert(!rec.timed_out, "record killed after %d s; last output:\n%s", BOOT_TIMEOUT_S,
		  tail(&rec));
	cr_assert_eq(rec.status, 0, "record: status %d, expected 0 (poweroff -f halts); stderr:\n%s"
		     "\nlast output:\n%s", rec.status, rec.err, tail(&rec));
	const char *m = strstr(rec.out, MARKER);
	cr_assert(m, "no marker line; last output:\n%s", tail(&rec));
	cr_expect(strstr(m, "\nLinux (none) "), "no uname -a output:\n%s", m);
	cr_expect(strstr(m, "proc") && strstr(m, "sbin"), "no ls / output:\n%s", tail(&rec));
	cr_expect(strstr(m, "\nline 0\r\n") && strstr(m, "\nline 2999\r\n"),
		  "the loop's lines are missing:\n%s", tail(&rec));
	cr_expect(strstr(m, "XT-PIC") && strstr(m, "timer") && strstr(m, "ttyS0"),
		  "no /proc/interrupts:\n%s", tail(&rec));
	cr_expect(strstr(m, "reboot: System halted"), "no halt after poweroff -f:\n%s", tail(&rec));
	cr_expect(strstr(rec.err, "halted with interrupts disabled"), "stderr:\n%s", rec.err);

	char *rpl_argv[] = {rw, "replay", log, NULL};
	struct h_opts po = {.timeout_s = BOOT_TIMEOUT_S};
	h_run(rpl_argv, &po, &rpl);
	cr_expect(!rpl.timed_out && rpl.status == 0, "replay: status %d; stderr:\n%s", rpl.status,
		  rpl.err);
	cr_expect(strstr(rpl.err, ": matched"), "replay did not match:\n%s", rpl.err);
	cr_expect(rpl.len == rec.len && !memcmp(rpl.out, rec.out, rec.len),
		  "replay output (%zu bytes) differs from the recording's (%zu bytes)", rpl.len,
		  rec.len);
	unlink(log);
	h_free(&rec);
	h_free(&rpl);
}
