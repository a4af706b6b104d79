/* integration */
/*
 * test_debug_exits.c: logs whose positions count exits (docs/kvm-backend.md, "Portable
 * logs"; docs/time-travel.md, "Exit-counted logs"), as a user meets them. emu records
 * them itself (`record --positions exits`: exits counted and landmarks taken as kvm
 * does), so this runs on every host: timer, race and echo record, replay matched, and
 * debug through real gdb (reverse-stepi retraces every state, reverse-continue returns to
 * the previous breakpoint hit, a watchpoint finds the last write, both ends of history,
 * output once), across the logs' landmarks. Where /dev/kvm opens, the same on kvm
 * recordings. A kvm log made before the architectural digest is refused on emu in one
 * line.
 */
#include "tests/integration/harness.h"
#include "tests/integration/gdbscript.h"
#include "tests/integration/rw.h"

#include "logfmt/log.h"
#include "tests/integration/logedit.h"

#include <fcntl.h>

#define X_TIMEOUT_S 120

/* Record guest on backend ("emu": exit-counted on request; "kvm": by nature). */
static void record_exits(struct h_run *rec, const char *backend, const char *name,
			 const char *append, const char *input, const char *log)
{
	struct h_opts o = {.timeout_s = X_TIMEOUT_S, .input = input};
	if (!strcmp(backend, "emu"))
		RW(rec, &o, "record", "--backend", "emu", "--positions", "exits", "-o", log,
		   "--append", append, guest(name));
	else
		RW(rec, &o, "record", "--backend", "kvm", "-o", log, "--append", append,
		   guest(name));
	cr_assert_eq(rec->status, 1, "record failed (%d):\n%s\n%s", rec->status, rec->out,
		     rec->err);
	cr_assert(strstr(rec->err, " exits, "), "not counted in exits:\n%s", rec->err);
}

/* Replay on emu: same output and end, matched, counting exits; landmarks found (*lm). */
static void replay_matches(const struct h_run *rec, const char *log, unsigned long long *lm)
{
	struct h_opts o = {.timeout_s = X_TIMEOUT_S, .input = "zzzz"};
	struct h_run r;
	RW(&r, &o, "replay", "--backend", "emu", "--verbose", log);
	cr_expect_str_eq(r.out, rec->out, "replay printed:\n%s\nrecording printed:\n%s\n%s",
			 r.out, rec->out, r.err);
	expect_status(&r, rec->status);
	cr_expect(strstr(r.err, " exits, ") && strstr(r.err, ": matched\n"),
		  "replay did not match:\n%s", r.err);
	const char *f = strstr(r.err, " landmarks found");
	*lm = 0;
	while (f && f > r.err && f[-1] >= '0' && f[-1] <= '9')
		f--;
	if (f)
		*lm = strtoull(f, NULL, 10);
	h_free(&r);
}

/* Run `rewind debug LOG -- -batch -nx -x SCRIPT`. */
static void debug_script(const char *log, const char *script, struct h_run *r)
{
	gdb_batch(log, script, "x-script.gdb", X_TIMEOUT_S, r);
	cr_expect_eq(occurrences(r->out, "diverged"), 0, "the replay diverged:\n%s", r->out);
}

/* Step N instructions from the third tick's handler, then back: the same states. */
static void retrace(const char *log, const char *handler)
{
	enum { N = 40 };
	char script[2048];
	struct h_run r;
	snprintf(script, sizeof(script),
		 "break %s\ncontinue\ncontinue\ncontinue\ndelete\nset $i = 0\n"
		 "printf \"S %%d \", $i\nprintf " REGS_FMT "\n"
		 "while $i < %d\n  stepi\n  set $i = $i + 1\n  printf \"S %%d \", $i\n"
		 "  printf " REGS_FMT "\nend\n"
		 "while $i > 0\n  reverse-stepi\n  set $i = $i - 1\n  printf \"R %%d \", $i\n"
		 "  printf " REGS_FMT "\nend\n",
		 handler, N);
	debug_script(log, script, &r);
	for (int k = 0; k < N; k++) {
		char f[512], b[512];
		cr_assert(tagged(r.out, 'S', k, f, sizeof(f)), "no forward state %d:\n%s\n%s", k,
			  r.out, r.err);
		cr_assert(tagged(r.out, 'R', k, b, sizeof(b)), "no reverse state %d:\n%s\n%s", k,
			  r.out, r.err);
		cr_expect_str_eq(f, b, "state %d: forward %s, after reverse-stepi %s", k, f, b);
	}
	h_free(&r);
}

/* Three hits of a breakpoint forward, two reverse-continues back to the earlier ones. */
static void reverse_to_breakpoints(const char *log, const char *where)
{
	char script[512];
	struct h_run r;
	snprintf(script, sizeof(script),
		 "break %s\ncontinue\nwhen\ncontinue\nwhen\ncontinue\nwhen\n"
		 "reverse-continue\nwhen\nreverse-continue\nwhen\ninfo registers rip\n",
		 where);
	debug_script(log, script, &r);
	unsigned long long p[8];
	int n = positions(r.out, p, 8);
	cr_assert_eq(n, 5, "expected 5 positions:\n%s\n%s", r.out, r.err);
	cr_expect(p[0] < p[1] && p[1] < p[2], "hits not increasing:\n%s", r.out);
	cr_expect_eq(p[3], p[1], "first reverse-continue at %llu, the previous hit was %llu",
		     p[3], p[1]);
	cr_expect_eq(p[4], p[0], "second reverse-continue at %llu, the first hit was %llu",
		     p[4], p[0]);
	char want[64];
	snprintf(want, sizeof(want), "<%s>", where);
	cr_expect(strstr(r.out, want), "not stopped in %s:\n%s", where, r.out);
	/* `when` names the log's own position too. */
	cr_expect(strstr(r.out, "log position ") && strstr(r.out, " (exits)"),
		  "no log position in:\n%s", r.out);
	h_free(&r);
}

/* Both ends say so, and the guest's output is printed once. */
static void both_ends(const char *log, const char *done)
{
	struct h_run r;
	debug_script(log,
		     "reverse-stepi\nwhen\ncontinue\nwhen\nreverse-continue\nwhen\ncontinue\nwhen\n",
		     &r);
	cr_expect_eq(occurrences(r.out, "No more reverse-execution history."), 4,
		     "expected four end-of-history stops:\n%s\n%s", r.out, r.err);
	unsigned long long p[4];
	cr_assert_eq(positions(r.out, p, 4), 4, "expected 4 positions:\n%s", r.out);
	cr_expect_eq(p[0], 0);
	cr_expect(p[1] > 0 && p[1] == p[3], "ends at %llu and %llu", p[1], p[3]);
	cr_expect_eq(p[2], 0);
	cr_expect_eq(occurrences(r.out, done), 1, "output printed %d times:\n%s",
		     occurrences(r.out, done), r.out);
	h_free(&r);
}

/* At race's end, the write that left shared_counter's final value, and over it again. */
static void watch_last_write(const char *log)
{
	struct h_run r;
	debug_script(log,
		     "break g_pit_stop\ncontinue\nwhen\nprint/d shared_counter\n"
		     "watch shared_counter\nreverse-continue\nwhen\nx/i $pc\n"
		     "stepi\nprint/d shared_counter\nwhen\n",
		     &r);
	unsigned long long p[4];
	cr_assert_eq(positions(r.out, p, 4), 3, "expected 3 positions:\n%s\n%s", r.out, r.err);
	cr_expect(p[1] < p[0], "the write (%llu) is not before the end (%llu)", p[1], p[0]);
	cr_expect_eq(p[2], p[1] + 1, "stepi from the write went to %llu", p[2]);
	const char *xi = strstr(r.out, "=> 0x");
	cr_assert(xi, "no x/i output:\n%s", r.out);
	const char *eol = strchr(xi, '\n');
	char line[256];
	snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - xi : 200), xi);
	cr_expect(strstr(line, "<shared_counter>"), "the instruction does not write it: %s",
		  line);
	long long v1 = -1, v2 = -2;
	const char *a = strstr(r.out, "$1 = "), *b = strstr(r.out, "$2 = ");
	cr_assert(a && b, "no values printed:\n%s", r.out);
	sscanf(a, "$1 = %lld", &v1);
	sscanf(b, "$2 = %lld", &v2);
	cr_expect_eq(v1, v2, "final value %lld, after re-doing the last write %lld", v1, v2);
	h_free(&r);
}

/* The guests, on a backend: timer idles between ticks (exits place everything), race
 * computes (landmarks place its ticks), echo takes input. */
static const char *log_of(const char *backend, const char *name)
{
	static char path[4][512];
	static int k;
	char n[64];
	snprintf(n, sizeof(n), "x-%s-%s.rwl", backend, name);
	k = (k + 1) % 4;
	snprintf(path[k], sizeof(path[k]), "%s", scratch(n));
	return path[k];
}

static void timer_case(const char *backend)
{
	struct h_run rec;
	const char *log = log_of(backend, "timer");
	record_exits(&rec, backend, "timer", "hz=1000 ticks=30", NULL, log);
	unsigned long long lm;
	replay_matches(&rec, log, &lm);
	struct h_run i;
	RW(&i, NULL, "log", "info", log);
	expect_out(&i, "positions=exits");
	expect_out(&i, "digest=arch");
	h_free(&i);
	reverse_to_breakpoints(log, "pit_irq");
	retrace(log, "pit_irq");
	both_ends(log, "timer: done");
	h_free(&rec);
	unlink(log);
}

static void race_case(const char *backend)
{
	struct h_run rec;
	const char *log = log_of(backend, "race");
	record_exits(&rec, backend, "race", "hz=1000 ticks=12", NULL, log);
	unsigned long long lm;
	replay_matches(&rec, log, &lm);
	cr_expect(lm > 0, "race's ticks hit a computing guest, yet no landmark was found");
	reverse_to_breakpoints(log, "pit_irq");
	retrace(log, "pit_irq");
	watch_last_write(log);
	both_ends(log, "race: done");
	h_free(&rec);
	unlink(log);
}

static void echo_case(const char *backend)
{
	struct h_run rec;
	const char *log = log_of(backend, "echo");
	record_exits(&rec, backend, "echo", "x=1", "typed, counted in exits\nq", log);
	cr_expect(strstr(rec.out, "typed, counted in exits\n"), "echo:\n%s", rec.out);
	unsigned long long lm;
	replay_matches(&rec, log, &lm);
	/* The UART's interrupt handler runs once per byte or so. */
	reverse_to_breakpoints(log, "g_putc");
	both_ends(log, "typed, counted in exits");
	h_free(&rec);
	unlink(log);
}

Test(debug_exits, timer_recorded_on_emu_counting_exits, .timeout = 6 * X_TIMEOUT_S)
{
	NEED_GDB();
	timer_case("emu");
}

Test(debug_exits, race_recorded_on_emu_counting_exits, .timeout = 8 * X_TIMEOUT_S)
{
	NEED_GDB();
	race_case("emu");
}

Test(debug_exits, echo_recorded_on_emu_counting_exits, .timeout = 6 * X_TIMEOUT_S)
{
	NEED_GDB();
	echo_case("emu");
}

#define NEED_KVM()                                                                         \
	do {                                                                                \
		if (!h_have_kvm())                                                          \
			cr_skip_test("no /dev/kvm here: kvm recordings not debugged on emu"); \
	} while (0)

Test(debug_exits, timer_recorded_on_kvm, .timeout = 6 * X_TIMEOUT_S)
{
	NEED_KVM();
	NEED_GDB();
	timer_case("kvm");
}

Test(debug_exits, race_recorded_on_kvm, .timeout = 8 * X_TIMEOUT_S)
{
	NEED_KVM();
	NEED_GDB();
	race_case("kvm");
}

Test(debug_exits, echo_recorded_on_kvm, .timeout = 6 * X_TIMEOUT_S)
{
	NEED_KVM();
	NEED_GDB();
	echo_case("kvm");
}

/*
 * A log of kvm's from before the architectural digest: backend=kvm, positions=exits, no
 * digest= line. Made here from an exit-counted emu log with that header (the events do
 * not matter: it must be refused before any runs).
 */
static void old_kvm_log(const char *from, const char *to)
{
	int in = open(from, O_RDONLY);
	cr_assert(in >= 0);
	struct lf_io io;
	struct lf_io_fd f;
	lf_io_fd_init(&io, &f, in);
	struct lf_reader *r;
	cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
	char config[512];
	const char *mem = strstr(lf_reader_header(r)->config, "mem=");
	cr_assert(mem);
	snprintf(config, sizeof(config),
		 "machine=rewind-pc-2\nbackend=kvm\npositions=exits\n%.*s\nclock=real\n",
		 (int)strcspn(mem, "\n"), mem);
	lf_reader_free(r);
	close(in);
	log_rewrite_header(from, to, config, NULL);
}

Test(debug_exits, a_kvm_log_without_the_arch_digest_is_refused_on_emu, .timeout = X_TIMEOUT_S)
{
	struct h_run rec, r;
	const char *log = log_of("emu", "hello"), *old = scratch("x-old-kvm.rwl");
	record_exits(&rec, "emu", "hello", "a", NULL, log);
	old_kvm_log(log, old);
	RW(&r, NULL, "log", "info", old);
	expect_out(&r, "backend=kvm");
	cr_expect(!strstr(r.out, "digest="), "the old log has a digest line:\n%s", r.out);
	h_free(&r);
	RW(&r, NULL, "replay", "--backend", "emu", old);
	REFUSED(&r, 4, "older rewind", "kvm only");
	h_free(&r);
	RW(&r, NULL, "debug", old);
	REFUSED(&r, 4, "older rewind", "kvm only");
	h_free(&r);
	h_free(&rec);
	unlink(log);
	unlink(old);
}

Test(debug_exits, exit_counting_is_refused_where_it_cannot_work, .timeout = X_TIMEOUT_S)
{
	struct h_run r;
	const char *log = scratch("x-refused.rwl");
	RW(&r, NULL, "record", "--positions", "exits", "--clock", "virtual", "-o", log,
	   guest("hello"));
	REFUSED(&r, 2, "--positions exits", "--clock virtual");
	h_free(&r);
	RW(&r, NULL, "record", "--positions", "exits", "--gdb", "0", "-o", log, guest("hello"));
	REFUSED(&r, 2, "--positions exits", "--gdb");
	h_free(&r);
	RW(&r, NULL, "record", "--positions", "lines", "-o", log, guest("hello"));
	REFUSED(&r, 2, "--positions lines", "instructions or exits");
	h_free(&r);
	RW(&r, NULL, "run", "--positions", "exits", guest("hello"));
	REFUSED(&r, 2, "option of 'rewind record'");
	h_free(&r);
	cr_expect(access(log, F_OK) != 0, "a refused recording left %s", log);
}
