/* integration */
/*
 * test_debug.c: time-travel debugging as a user does it: `rewind debug LOG` drives
 * Debian's gdb (batch mode, a script) over a recording of the race guest. Forward steps
 * and reverse steps retrace identical registers; reverse-continue finds the previous
 * breakpoint hit and, with a watchpoint, the instruction that last wrote the variable;
 * reverse-finish/next cross a function; goto goes anywhere and back; both ends of the
 * recording say "no more history"; output is printed once; a busy port is refused.
 */
#include "tests/integration/harness.h"
#include "tests/integration/gdbscript.h"
#include "tests/integration/rw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define DEBUG_TIMEOUT_S 120

/* Record race with ticks=10 into a scratch log. */
static const char *record_race(struct h_run *rec)
{
	const char *log = scratch("race.rwl");
	RW(rec, NULL, "record", "--backend", "emu", "-o", log, "--append", "ticks=10",
	   guest("race"));
	cr_assert_eq(rec->status, 1, "record failed:\n%s", rec->err);
	return log;
}

/* Run `rewind debug LOG -- -batch -nx -x SCRIPT`. */
static void debug_script(const char *log, const char *script, struct h_run *r)
{
	gdb_batch(log, script, "script.gdb", DEBUG_TIMEOUT_S, r);
}

Test(debug, stepi_then_reverse_stepi_retraces_every_state, .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	enum { N = 40 };
	char script[2048];
	/* Stop in the timer handler (past the first checkpoint), then step and come back. */
	snprintf(script, sizeof(script),
		 "break pit_irq\ncontinue\ndelete\nset $i = 0\nprintf \"S %%d \", $i\n"
		 "printf " REGS_FMT "\n"
		 "while $i < %d\n  stepi\n  set $i = $i + 1\n  printf \"S %%d \", $i\n"
		 "  printf " REGS_FMT "\nend\n"
		 "while $i > 0\n  reverse-stepi\n  set $i = $i - 1\n  printf \"R %%d \", $i\n"
		 "  printf " REGS_FMT "\nend\n",
		 N);
	debug_script(log, script, &r);
	for (int k = 0; k < N; k++) {
		char f[512], b[512];
		cr_assert(tagged(r.out, 'S', k, f, sizeof(f)), "no forward state %d:\n%s\n%s", k,
			  r.out, r.err);
		cr_assert(tagged(r.out, 'R', k, b, sizeof(b)), "no reverse state %d:\n%s\n%s", k,
			  r.out, r.err);
		cr_expect_str_eq(f, b, "state %d: forward %s, after reverse-stepi %s", k, f, b);
	}
}

Test(debug, reverse_continue_returns_to_the_previous_breakpoint_hit,
     .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	debug_script(log,
		     "break pit_irq\ncontinue\nwhen\ncontinue\nwhen\ncontinue\nwhen\n"
		     "reverse-continue\nwhen\nreverse-continue\nwhen\ninfo registers rip\n",
		     &r);
	unsigned long long p[8];
	int n = positions(r.out, p, 8);
	cr_assert_eq(n, 5, "expected 5 positions:\n%s\n%s", r.out, r.err);
	cr_expect(p[0] < p[1] && p[1] < p[2], "hits not increasing:\n%s", r.out);
	cr_expect_eq(p[3], p[1], "first reverse-continue at %llu, the previous hit was %llu",
		     p[3], p[1]);
	cr_expect_eq(p[4], p[0], "second reverse-continue at %llu, the first hit was %llu",
		     p[4], p[0]);
	cr_expect(strstr(r.out, "<pit_irq>"), "not stopped in pit_irq:\n%s", r.out);
}

Test(debug, watchpoint_and_reverse_continue_find_the_last_write, .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	/* At the end of the race, go back to the write that left the final value. */
	debug_script(log,
		     "break g_pit_stop\ncontinue\nwhen\nprint/d shared_counter\n"
		     "watch shared_counter\nreverse-continue\nwhen\nx/i $pc\n"
		     "stepi\nprint/d shared_counter\nwhen\n",
		     &r);
	unsigned long long p[4];
	cr_assert_eq(positions(r.out, p, 4), 3, "expected 3 positions:\n%s\n%s", r.out, r.err);
	cr_expect(p[1] < p[0], "the write (%llu) is not before the end (%llu)", p[1], p[0]);
	cr_expect_eq(p[2], p[1] + 1, "stepi from the write went to %llu", p[2]);
	cr_expect(strstr(r.out, "Hardware watchpoint 2: shared_counter"), "no watchpoint stop:\n%s",
		  r.out);
	/* The instruction shown writes shared_counter (main's store or the handler's add). */
	const char *xi = strstr(r.out, "=> 0x");
	cr_assert(xi, "no x/i output:\n%s", r.out);
	const char *eol = strchr(xi, '\n');
	char line[256];
	snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - xi : 200), xi);
	cr_expect(strstr(line, "<shared_counter>"), "the instruction does not write the "
						    "variable: %s",
		  line);
	/* Going forward over that instruction gives the final value back. */
	long long v1 = -1, v2 = -2;
	const char *a = strstr(r.out, "$1 = "), *b = strstr(r.out, "$2 = ");
	cr_assert(a && b, "no values printed:\n%s", r.out);
	sscanf(a, "$1 = %lld", &v1);
	sscanf(b, "$2 = %lld", &v2);
	cr_expect_eq(v1, v2, "final value %lld, after re-doing the last write %lld", v1, v2);
	cr_expect(strstr(r.out, "Old value = ") && strstr(r.out, "New value = "),
		  "no old/new values:\n%s", r.out);
}

Test(debug, reverse_finish_and_reverse_next_cross_a_function, .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	/* race.c:51 calls g_pit_start; 52 is the next line. */
	debug_script(log,
		     "break g_pit_start\ncontinue\ndelete\nnext\nnext\nreverse-finish\n"
		     "echo F:\\n\nbt 1\nnext\necho N:\\n\nbt 1\nreverse-next\necho R:\\n\nbt 1\n",
		     &r);
	const char *f = strstr(r.out, "F:"), *n = strstr(r.out, "N:"), *b = strstr(r.out, "R:");
	cr_assert(f && n && b && f < n && n < b, "the script did not get through:\n%s", r.out);
	cr_expect(strstr(f, "in main () at guests/race.c:51") && strstr(f, "in main ()") < n,
		  "reverse-finish did not return to the call in main:\n%s", f);
	cr_expect(strstr(n, "main () at guests/race.c:52") && strstr(n, "race.c:52") < b,
		  "next did not go to line 52:\n%s", n);
	cr_expect(strstr(b, "main () at guests/race.c:51") && !strstr(b, "g_pit_start ("),
		  "reverse-next did not step back over the call to line 51:\n%s", b);
}

Test(debug, goto_a_position_and_back, .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	char script[2048];
	snprintf(script, sizeof(script),
		 "goto 100000\nwhen\nprintf \"A %%d \", 0\nprintf " REGS_FMT "\n"
		 "goto 2500000\nwhen\ngoto 100000\nwhen\nprintf \"B %%d \", 0\nprintf " REGS_FMT
		 "\n");
	debug_script(log, script, &r);
	unsigned long long p[4];
	cr_assert_eq(positions(r.out, p, 4), 3, "expected 3 positions:\n%s\n%s", r.out, r.err);
	cr_expect_eq(p[0], 100000);
	cr_expect_eq(p[1], 2500000);
	cr_expect_eq(p[2], 100000);
	char a[512], b[512];
	cr_assert(tagged(r.out, 'A', 0, a, sizeof(a)) && tagged(r.out, 'B', 0, b, sizeof(b)),
		  "no registers:\n%s", r.out);
	cr_expect_str_eq(a, b, "registers at 100000 differ after going there twice");
}

/*
 * The smc guest rewrites the code at one address every round. Going back restores an
 * older version of that page, and what runs from there must be that version, not code
 * translated from a later one: the sum it reaches at smc_done must be the straight run's.
 */
Test(debug, going_back_runs_the_restored_version_of_rewritten_code,
     .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = scratch("smc.rwl");
	RW(&rec, NULL, "record", "--backend", "emu", "-o", log, guest("smc"));
	cr_assert_eq(rec.status, 1, "record failed:\n%s", rec.err);
	debug_script(log,
		     "break smc_done\ncontinue\nprintf \"A 0 %lx\\n\", $rdi\nwhen\n"
		     "goto 3000001\ncontinue\nprintf \"B 0 %lx\\n\", $rdi\n"
		     "delete\ngoto 15000003\ngoto 9000002\nbreak smc_done\ncontinue\n"
		     "printf \"C 0 %lx\\n\", $rdi\n",
		     &r);
	char a[64], b[64], c[64];
	cr_assert(tagged(r.out, 'A', 0, a, sizeof(a)) && tagged(r.out, 'B', 0, b, sizeof(b)) &&
			  tagged(r.out, 'C', 0, c, sizeof(c)),
		  "no sums:\n%s\n%s", r.out, r.err);
	const char *want = strstr(rec.out, "smc: sum ");
	cr_assert(want, "no sum in the recording's output:\n%s", rec.out);
	cr_expect(!strncmp(want + 9, a, strlen(a)), "straight run: %s, recorded %.30s", a, want);
	cr_expect_str_eq(b, a, "after going back to 3000001 the sum is %s, not %s", b, a);
	cr_expect_str_eq(c, a, "after 15000003 then 9000002 the sum is %s, not %s", c, a);
	cr_expect_eq(occurrences(r.out, "diverged"), 0, "the replay diverged:\n%s", r.out);
}

/*
 * The remap guest writes 42 through a virtual page while it maps physical page A, then
 * maps that virtual page to page B (holding 7). A reverse search for the last write to
 * the virtual address must not take today's physical page (B) for the whole past: the
 * write went to A, in an interval whose page difference holds no B.
 */
Test(debug, reverse_continue_finds_a_write_through_an_older_mapping,
     .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = scratch("remap.rwl");
	RW(&rec, NULL, "record", "--backend", "emu", "-o", log, guest("remap"));
	cr_assert_eq(rec.status, 1, "record failed:\n%s", rec.err);
	cr_assert(strstr(rec.out, "remap: A=42 B=7 now=7"), "guest output:\n%s", rec.out);
	debug_script(log,
		     "break remap_done\ncontinue\ndelete\nwatch -l *(long *)0x40000000\n"
		     "reverse-continue\ninfo symbol $pc\n"
		     "printf \"V 0 %lu\\n\", *(long *)0x40000000\nmonitor checkpoints\n",
		     &r);
	char v[64];
	cr_assert(tagged(r.out, 'V', 0, v, sizeof(v)), "no stop:\n%s\n%s", r.out, r.err);
	/* info symbol: "write_v[.constprop...] in section .text" */
	const char *in = strstr(r.out, " in section .text");
	const char *line = in;
	while (line && line > r.out && line[-1] != '\n')
		line--;
	cr_expect(line && !strncmp(line, "write_v", 7), "not stopped in write_v:\n%s", r.out);
	cr_expect_str_eq(v, "0", "before the write the address reads %s, not 0", v);
	cr_expect(!strstr(r.out, "No more reverse-execution history"),
		  "the write was not found:\n%s", r.out);
	/* Intervals after the remap are still skipped. */
	unsigned long long skipped = 0;
	const char *k = strstr(r.out, "instructions; ");
	cr_expect(k && sscanf(k, "instructions; %llu intervals skipped", &skipped) == 1 &&
			  skipped > 0,
		  "no interval skipped:\n%s", r.out);
}

Test(debug, both_ends_of_history_and_output_printed_once, .timeout = DEBUG_TIMEOUT_S + 30)
{
	NEED_GDB();
	struct h_run rec, r;
	const char *log = record_race(&rec);
	unsigned long long total = 0;
	const char *s = strstr(rec.err, "recorded ");
	cr_assert(s && sscanf(s, "recorded %llu", &total) == 1, "no record summary:\n%s", rec.err);
	debug_script(log,
		     "reverse-stepi\nwhen\ncontinue\nwhen\nreverse-continue\nwhen\ncontinue\nwhen\n",
		     &r);
	cr_expect_eq(occurrences(r.out, "No more reverse-execution history."), 4,
		     "expected four end-of-history stops:\n%s\n%s", r.out, r.err);
	unsigned long long p[4];
	cr_assert_eq(positions(r.out, p, 4), 4, "expected 4 positions:\n%s", r.out);
	cr_expect_eq(p[0], 0);
	cr_expect_eq(p[1], total, "end at %llu, recorded %llu", p[1], total);
	cr_expect_eq(p[2], 0);
	cr_expect_eq(p[3], total);
	cr_expect_eq(occurrences(r.out, "race: done"), 1, "output printed again:\n%s", r.out);
}

Test(debug, a_busy_port_is_refused_with_one_line)
{
	struct h_run rec, r;
	const char *log = record_race(&rec);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s, 1) == 0);
	socklen_t sl = sizeof(sa);
	getsockname(s, (struct sockaddr *)&sa, &sl);
	char spec[32];
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	RW(&r, NULL, "replay", "--gdb", spec, log);
	REFUSED(&r, 10, "cannot listen", "Address already in use");
	RW(&r, NULL, "replay", "--gdb", "nonsense:x", log);
	REFUSED(&r, 2, "expected [HOST:]PORT");
	/* strtoul alone took these. */
	static const char *const bad[] = {" 5", "+5", "127.0.0.1:-1", "99999", "123456"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		RW(&r, NULL, "replay", "--gdb", bad[i], log);
		REFUSED(&r, 2, "expected [HOST:]PORT");
	}
	RW(&r, NULL, "debug", "--checkpoint-mem", "1", log);
	REFUSED(&r, 2, "--checkpoint-mem 1", "at least 1M");
	close(s);
}

Test(debug, a_crash_replay_shows_the_guest_backtrace)
{
	struct h_run rec, r;
	const char *log = scratch("crash.rwl");
	RW(&rec, NULL, "record", "--backend", "emu", "-o", log, guest("crash"));
	cr_assert_eq(rec.status, 6, "record:\n%s", rec.err);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 6);
	const char *names[] = {"guest backtrace:", "in triple_fault+", "in page_fault+",
			       "<exception frame>", "in faulty+", "in do_work+", "in main+",
			       "in g_start+"};
	const char *at = r.err;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = strstr(at, names[i]);
		cr_assert(p, "\"%s\" missing or out of order in:\n%s", names[i], r.err);
		at = p;
	}
	cr_expect(strstr(r.err, ": matched"), "replay did not match:\n%s", r.err);
}
