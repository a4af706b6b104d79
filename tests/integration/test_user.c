/* integration */
/*
 * test_user.c: user mode (CPL 3) under record and replay on the emu backend:
 * conform_user (SYSCALL/SYSRET, faults, traps and an IRQ from CPL 3) recorded with a state
 * hash every 1000 instructions replays matched, so every privilege change lands at the
 * same position with the same registers. Linux's user space under record and replay (a
 * busybox shell session) is test_linux.c's linux_shell suite.
 */
#include "tests/integration/harness.h"

#define TIMEOUT_S 60

static void tmp_path(const char *name, char *buf, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(buf, size, "%s/rewind-user-%s-%d.rwl", tmp && *tmp ? tmp : "/tmp", name,
		 (int)getpid());
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
