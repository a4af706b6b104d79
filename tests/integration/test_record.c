/* integration */
/*
 * test_record.c: `rewind record`, `rewind replay` and `rewind log` as a user runs them, on
 * the emu backend (and the guests that exit or idle on kvm, where /dev/kvm opens): every guest records and replays to the same output and end; race
 * recordings differ and each replays to its own result; echo replays without input; an
 * altered event is caught as a divergence; cut, corrupt and foreign logs get one clear
 * line; SIGINT, SIGKILL and a full disk while recording leave a log that replays.
 */
#include "tests/integration/harness.h"
#include "tests/integration/logedit.h"
#include "tests/integration/rw.h"

#include "logfmt/log.h"

#include <fcntl.h>
#include <signal.h>

/* Record guest (with rewind args before it), then replay; both must agree. */
struct rr {
	struct h_run rec, rpl;
	char log[512];
};

static void record_replay_on(struct rr *x, const char *backend, const char *name,
			     const char *append, const char *input, const char *logname)
{
	snprintf(x->log, sizeof(x->log), "%s", scratch(logname));
	struct h_opts o = {.timeout_s = TIMEOUT_S, .input = input};
	if (append)
		RW(&x->rec, &o, "record", "--backend", backend, "-o", x->log, "--append", append,
		   guest(name));
	else
		RW(&x->rec, &o, "record", "--backend", backend, "-o", x->log, guest(name));
	cr_expect(strstr(x->rec.err, "rewind: recorded ") != NULL, "no record summary:\n%s",
		  x->rec.err);
	/* Replay gets different stdin on purpose: it must not read it. */
	struct h_opts p = {.timeout_s = TIMEOUT_S, .input = "zzzz"};
	RW(&x->rpl, &p, "replay", x->log);
	cr_expect_str_eq(x->rpl.out, x->rec.out, "replay printed:\n%s\nrecording printed:\n%s\n%s",
			 x->rpl.out, x->rec.out, x->rpl.err);
	cr_expect_eq(x->rpl.status, x->rec.status, "replay status %d, recorded %d\n%s",
		     x->rpl.status, x->rec.status, x->rpl.err);
	if (!strstr(x->rpl.err, ": matched\n")) {
		/* Keep the log for a look: it is the only witness. */
		char keep[600];
		snprintf(keep, sizeof(keep), "%s.failed", x->log);
		rename(x->log, keep);
		cr_expect(0, "replay did not match (log kept in %s):\n%s", keep, x->rpl.err);
	}
}

static void record_replay(struct rr *x, const char *name, const char *append, const char *input,
			  const char *logname)
{
	record_replay_on(x, "emu", name, append, input, logname);
}

static void rr_done(struct rr *x)
{
	unlink(x->log);
	h_free(&x->rec);
	h_free(&x->rpl);
}

#define GUEST_RR(name, append, status)                                                     \
	Test(record, name##_records_and_replays, .timeout = 2 * TIMEOUT_S + 10)             \
	{                                                                                   \
		struct rr x;                                                                \
		record_replay(&x, #name, append, NULL, #name ".rwl");                       \
		expect_status(&x.rec, status);                                              \
		rr_done(&x);                                                                \
	}

GUEST_RR(hello, "a b c", 1)
GUEST_RR(timer, "hz=1000 ticks=200", 1)
GUEST_RR(compute, "n=20", 1)
GUEST_RR(spew, "lines=3000", 1)
GUEST_RR(race, NULL, 1)
GUEST_RR(crash, NULL, 6)
GUEST_RR(selftest, NULL, 1)
GUEST_RR(conform_exc, NULL, 1)
GUEST_RR(conform_irq, NULL, 1)
GUEST_RR(conform_regs, NULL, 1)

/*
 * Unicorn's translation buffer made small (REWIND_TCG_BUFFER=1M, a test knob:
 * docs/emu-backend.md, "The translation buffer"): jit writes new code into 256 pages each
 * round, so the buffer fills and is flushed some 90 times a run, between blocks chained
 * to each other, while the PIT interrupts at 1 kHz. Without emu's first flush of the
 * buffer at start-up, Unicorn's first fill crashed rewind (SIGSEGV in
 * tb_set_jmp_target). The recording, with a state hash every 4096 instructions,
 * replays exactly with the same small buffer and with the default one, which jit never
 * fills: a flush changes nothing the guest sees.
 */
#define JIT_OUT "jit: rounds=4 pages=256 blocks=64 calls=3 sum=ebef2aceffe0d0b7 bad=0\n"

static void expect_replay_matches(const struct rr *x, const struct h_run *r, const char *what)
{
	cr_expect_str_eq(r->out, x->rec.out, "%s printed:\n%s\nrecording printed:\n%s\n%s",
			 what, r->out, x->rec.out, r->err);
	cr_expect_eq(r->status, x->rec.status, "%s: status %d, recorded %d\n%s", what,
		     r->status, x->rec.status, r->err);
	cr_expect(strstr(r->err, ": matched\n") != NULL, "%s did not match:\n%s", what, r->err);
}

Test(record, translation_buffer_flushes_replay_exactly, .timeout = 3 * TIMEOUT_S + 10)
{
	struct rr x;
	snprintf(x.log, sizeof(x.log), "%s", scratch("jit.rwl"));
	cr_assert(setenv("REWIND_TCG_BUFFER", "1M", 1) == 0);
	RW(&x.rec, NULL, "record", "--backend", "emu", "--hash-every", "4096", "-o", x.log,
	   guest("jit"));
	expect_status(&x.rec, 1);
	expect_out_is(&x.rec, JIT_OUT);
	RW(&x.rpl, NULL, "replay", x.log);
	expect_replay_matches(&x, &x.rpl, "replay with the small buffer");
	cr_assert(unsetenv("REWIND_TCG_BUFFER") == 0);
	struct h_run d;
	RW(&d, NULL, "replay", x.log);
	expect_replay_matches(&x, &d, "replay with the default buffer");
	h_free(&d);
	rr_done(&x);
}

/*
 * On kvm (where /dev/kvm opens): positions are exit counts; an interrupt that stops a
 * computing guest between two exits is placed by a landmark (race lives on them). The
 * log says which backend and positions it was made with, and replay uses them. Sized
 * for a software-nested KVM, where ring-0 code runs through KVM's instruction emulator
 * (a compute round takes seconds there).
 */
/*
 * A kvm log replays on emu too (docs/kvm-backend.md, "Portable logs"): emu counts exits
 * as kvm does and finds its landmarks, to the same output, end and state hashes.
 */
static void replay_kvm_log_on_emu(struct rr *x)
{
	struct h_opts p = {.timeout_s = TIMEOUT_S, .input = "zzzz"};
	struct h_run e;
	RW(&e, &p, "replay", "--backend", "emu", x->log);
	cr_expect_str_eq(e.out, x->rec.out, "replay on emu printed:\n%s\nrecording printed:\n%s\n%s",
			 e.out, x->rec.out, e.err);
	cr_expect_eq(e.status, x->rec.status, "replay on emu: status %d, recorded %d\n%s",
		     e.status, x->rec.status, e.err);
	cr_expect(strstr(e.err, " exits, ") && strstr(e.err, ": matched\n"),
		  "replay on emu did not match, counting exits:\n%s", e.err);
	h_free(&e);
}

#define KVM_RR(name, append, input, want, on_emu)                                          \
	Test(record, name##_records_and_replays_on_kvm, .timeout = 3 * TIMEOUT_S + 10)      \
	{                                                                                   \
		if (!h_have_kvm())                                                          \
			cr_skip_test("no /dev/kvm here: kvm record/replay not run");        \
		struct rr x;                                                                \
		record_replay_on(&x, "kvm", #name, append, input, #name "-kvm.rwl");        \
		expect_status(&x.rec, 1);                                                   \
		expect_out(&x.rpl, want);                                                   \
		struct h_run i;                                                             \
		RW(&i, NULL, "log", "info", x.log);                                         \
		expect_status(&i, 0);                                                       \
		expect_out(&i, "backend=kvm");                                                    \
		expect_out(&i, "positions=exits");                                                   \
		expect_out(&i, "digest=arch");                                              \
		h_free(&i);                                                                 \
		if (on_emu)                                                                 \
			replay_kvm_log_on_emu(&x);                                          \
		rr_done(&x);                                                                \
	}

KVM_RR(hello, "a b c", NULL, "Hello from rewind guest", 1)
KVM_RR(timer, "hz=1000 ticks=200", NULL, "timer: done", 0)
/* spew's lines cost some 80 port exits each: 3000 took 20 s a side on a loaded PVM host,
 * close to TIMEOUT_S. */
KVM_RR(spew, "lines=800", NULL, "spew: done, 800 lines\n", 1)
KVM_RR(compute, "n=1", NULL, "compute: checksum ", 1)
/* Not on emu (docs/kvm-backend.md, "Portable logs", what is left): this host's KVM
 * sometimes takes an injected interrupt an instruction late, which timer's landmarks
 * then name and emu does not follow; echo's replay there prints the same and ends at
 * the same exit, but R9 and RFLAGS differ at its last state hash; race's interrupt
 * frames hold status flags the host CPU left undefined, which emu fills otherwise. */
KVM_RR(echo, NULL, "typed on kvm\nq", "typed on kvm\n", 0)
KVM_RR(race, NULL, NULL, "race: done", 0)

Test(record, echo_replays_without_input, .timeout = 2 * TIMEOUT_S + 10)
{
	struct rr x;
	record_replay(&x, "echo", NULL, "hello, replay\nq", "echo.rwl");
	expect_status(&x.rec, 1);
	cr_expect(strstr(x.rpl.out, "hello, replay\n") != NULL, "replay lost the input:\n%s",
		  x.rpl.out);
	/* The input is in the log, as input events. */
	struct h_run d;
	RW(&d, NULL, "log", "dump", "--kind", "input", x.log);
	expect_status(&d, 0);
	expect_out(&d, "input serial");
	h_free(&d);
	rr_done(&x);
}

Test(record, race_recordings_differ_and_each_replays_to_its_own, .timeout = 10 * TIMEOUT_S)
{
	char finals[10][64];
	int distinct = 0;
	for (int i = 0; i < 10; i++) {
		struct rr x;
		char name[32];
		snprintf(name, sizeof(name), "race%d.rwl", i);
		record_replay(&x, "race", "ticks=40", NULL, name);
		expect_status(&x.rec, 1);
		race_final(&x.rec, finals[i], sizeof(finals[i]));
		char again[64];
		race_final(&x.rpl, again, sizeof(again));
		cr_expect_str_eq(again, finals[i], "replay of recording %d gave %s, recorded %s", i,
				 again, finals[i]);
		int seen = 0;
		for (int j = 0; j < i; j++)
			seen |= !strcmp(finals[j], finals[i]);
		distinct += !seen;
		rr_done(&x);
	}
	cr_expect_geq(distinct, 2, "10 recordings of race all gave %s", finals[0]);
}

Test(record, virtual_clock_runs_are_identical, .timeout = 3 * TIMEOUT_S)
{
	struct h_run a, b;
	RW(&a, NULL, "run", "--backend", "emu", "--clock", "virtual", "--append", "ticks=40",
	   guest("race"));
	RW(&b, NULL, "run", "--backend", "emu", "--clock", "virtual", "--append", "ticks=40",
	   guest("race"));
	expect_status(&a, 1);
	cr_expect_str_eq(a.out, b.out, "two virtual-clock runs differ:\n%s\n--\n%s", a.out, b.out);
	expect_out(&a, "race: done\n");
	h_free(&a);
	h_free(&b);
	/* And it records and replays. */
	struct rr x;
	snprintf(x.log, sizeof(x.log), "%s", scratch("vclock.rwl"));
	RW(&x.rec, NULL, "record", "--clock", "virtual", "-o", x.log, guest("timer"));
	expect_status(&x.rec, 1);
	RW(&x.rpl, NULL, "replay", x.log);
	expect_status(&x.rpl, 1);
	cr_expect_str_eq(x.rpl.out, x.rec.out);
	rr_done(&x);
}

Test(record, virtual_clock_refused_on_kvm, .timeout = TIMEOUT_S)
{
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "kvm", "--clock", "virtual", guest("hello"));
	REFUSED(&r, 2, "--clock virtual", "emu");
	h_free(&r);
}

/* An emu log on kvm: refused for its positions, the same way with and without /dev/kvm
 * (it once said "recorded on kvm" where /dev/kvm was missing). */
Test(record, emu_log_replay_on_kvm_refused, .timeout = 2 * TIMEOUT_S)
{
	char log[512];
	snprintf(log, sizeof(log), "%s", scratch("emu-on-kvm.rwl"));
	struct h_run rec, r;
	RW(&rec, NULL, "record", "--backend", "emu", "-o", log, guest("hello"));
	expect_status(&rec, 1);
	RW(&r, NULL, "replay", "--backend", "kvm", log);
	REFUSED(&r, 4, "positions count instructions (recorded on emu)", "the kvm backend");
	cr_expect(strstr(r.err, "recorded on kvm") == NULL, "blames kvm:\n%s", r.err);
	unlink(log);
	h_free(&rec);
	h_free(&r);
}

/* --- which backend record uses ---------------------------------------------------- */

/* record defaults to emu, which records every guest exactly, whatever KVM the host has:
 * no auto line, and the log says emu. */
Test(record, defaults_to_emu, .timeout = 2 * TIMEOUT_S)
{
	char log[512];
	snprintf(log, sizeof(log), "%s", scratch("default.rwl"));
	struct h_run r;
	RW(&r, NULL, "record", "-o", log, guest("hello"));
	expect_status(&r, 1);
	cr_expect(!strncmp(r.err, "rewind: recorded ", 17) && h_lines(r.err) == 1,
		  "expected only the summary on stderr:\n%s", r.err);
	expect_err(&r, " instructions, ");
	h_free(&r);
	RW(&r, NULL, "log", "info", log);
	expect_status(&r, 0);
	expect_out(&r, "backend=emu positions=instructions");
	h_free(&r);
	unlink(log);

	RW(&r, NULL, "record", "--help");
	expect_status(&r, 0);
	expect_out(&r, "--backend emu|kvm|auto");
	expect_out(&r, "default emu");
	expect_out(&r, "RDTSC");
	h_free(&r);
}

/* --backend kvm: one line on what the kvm log leaves out, before the guest runs. */
Test(record, on_kvm_says_what_the_log_leaves_out, .timeout = 2 * TIMEOUT_S)
{
	if (!h_have_kvm())
		cr_skip_test("no /dev/kvm here: record --backend kvm is refused (run tests)");
	char log[512];
	snprintf(log, sizeof(log), "%s", scratch("kvm-note.rwl"));
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "kvm", "-o", log, guest("hello"));
	expect_status(&r, 1);
	cr_expect_eq(h_lines(r.err), 2, "expected the note and the summary:\n%s", r.err);
	cr_expect(!strncmp(r.err, "rewind: recording on kvm, ", 26), "stderr:\n%s", r.err);
	const char *nl = strchr(r.err, '\n');
	cr_assert_not_null(nl);
	cr_expect(memmem(r.err, (size_t)(nl - r.err), "RDTSC", 5) &&
			  memmem(r.err, (size_t)(nl - r.err), "diverge on replay", 17) &&
			  memmem(r.err, (size_t)(nl - r.err), "--backend emu", 13),
		  "the first line does not say what kvm leaves out:\n%s", r.err);
	h_free(&r);

	/* (Time travel in a kvm log runs on emu: tests/integration/test_debug_exits.c.) */
	unlink(log);
}

/* --backend auto on record says which, as on run; the note follows only on kvm. */
Test(record, auto_says_which, .timeout = 2 * TIMEOUT_S)
{
	char log[512];
	snprintf(log, sizeof(log), "%s", scratch("auto.rwl"));
	struct h_run r, i;
	RW(&r, NULL, "record", "--backend", "auto", "-o", log, guest("hello"));
	expect_status(&r, 1);
	cr_expect(!strncmp(r.err, "rewind: backend ", 16) && strstr(r.err, " (auto: "),
		  "stderr:\n%s", r.err);
	bool on_kvm = !strncmp(r.err, "rewind: backend kvm ", 20);
	RW(&i, NULL, "log", "info", log);
	expect_out(&i, on_kvm ? "backend=kvm" : "backend=emu");
	cr_expect_eq(strstr(r.err, "RDTSC") != NULL, on_kvm, "stderr:\n%s", r.err);
	cr_expect_eq(h_lines(r.err), on_kvm ? 3 : 2, "stderr:\n%s", r.err);
	h_free(&i);
	h_free(&r);
	unlink(log);
}

/* --- log info / dump / verify --------------------------------------------------- */

Test(record, log_info_and_dump, .timeout = 2 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "timer", "hz=500 ticks=20", NULL, "info.rwl");
	struct h_run r;
	RW(&r, NULL, "log", "info", x.log);
	expect_status(&r, 0);
	expect_out(&r, "guest:      ");
	expect_out(&r, "timer.elf");
	expect_out(&r, "embedded");
	expect_out(&r, "\nimage:      timer.elf\n"); /* no Linux banner: the file name */
	expect_out(&r, "cmdline:    hz=500 ticks=20\n");
	expect_out(&r, "machine=rewind-pc-2 backend=emu positions=instructions mem=134217728 "
		       "clock=real\n");
	expect_out(&r, "end:        debug exit with value 0 (exit status 1)");
	expect_out(&r, " timer ");
	expect_out(&r, "state:      whole");
	h_free(&r);

	RW(&r, NULL, "log", "dump", "--kind", "timer", x.log);
	expect_status(&r, 0);
	cr_expect_geq(occurrences(r.out, " timer "), 20, "fewer than 20 timer events:\n%s", r.out);
	cr_expect_eq(occurrences(r.out, " clock "), 0);
	h_free(&r);

	RW(&r, NULL, "log", "dump", "--kind", "end", x.log);
	expect_status(&r, 0);
	cr_expect_eq(h_lines(r.out), 1, "one end event expected:\n%s", r.out);
	h_free(&r);

	RW(&r, NULL, "log", "verify", x.log);
	expect_status(&r, 0);
	expect_out(&r, "whole");
	h_free(&r);

	RW(&r, NULL, "log", "dump", "--kind", "bogus", x.log);
	REFUSED(&r, 2, "--kind bogus");
	h_free(&r);
	rr_done(&x);
}

Test(record, no_embed_needs_the_image, .timeout = 2 * TIMEOUT_S)
{
	const char *img = scratch("hello-copy.elf");
	size_t len = 0;
	char *d = h_read_file(guest("hello"), &len);
	cr_assert(d);
	write_file(img, d, len);
	const char *log = scratch("noembed.rwl");
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "--no-embed", "-o", log, img);
	expect_status(&r, 1);
	h_free(&r);
	RW(&r, NULL, "log", "info", log);
	expect_out(&r, "not embedded");
	h_free(&r);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 1);
	expect_out(&r, "Hello from rewind guest");
	h_free(&r);
	/* The image changes: refused, with a way out. */
	d[len - 1] ^= 0xff;
	write_file(img, d, len);
	RW(&r, NULL, "replay", log);
	REFUSED(&r, 4, "not the image");
	h_free(&r);
	unlink(img);
	RW(&r, NULL, "replay", log);
	REFUSED(&r, 4, "--image");
	h_free(&r);
	RW(&r, NULL, "replay", "--image", guest("hello"), log);
	expect_status(&r, 1);
	h_free(&r);
	free(d);
	unlink(log);
}

/* --- divergence ------------------------------------------------------------------ */

/*
 * Position of the first timer expiry that no other event shares (UINT64_MAX: none).
 * Expiries logged at one position reach the guest as one interrupt (the 8259 latches
 * the edge once), so taking one of them away changes nothing the guest sees, and a
 * recording on a busy host often starts with such a group.
 */
static uint64_t lone_timer_pos(const char *log)
{
	int in = open(log, O_RDONLY);
	cr_assert(in >= 0);
	struct lf_io io;
	struct lf_io_fd f;
	lf_io_fd_init(&io, &f, in);
	struct lf_reader *r;
	cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
	struct lf_event ev;
	uint64_t prev_pos = UINT64_MAX, cand = UINT64_MAX, found = UINT64_MAX;
	while (found == UINT64_MAX && lf_reader_next(r, &ev) == 1) {
		if (cand != UINT64_MAX && ev.pos != cand)
			found = cand; /* nothing after it at its position */
		cand = ev.kind == LF_EV_TIMER && ev.pos != prev_pos ? ev.pos : UINT64_MAX;
		prev_pos = ev.pos;
	}
	lf_reader_free(r);
	close(in);
	return found;
}

/*
 * Copy a log, changing the first event of kind `kind` (and its bytes for input; for a
 * timer, the first expiry alone at its position; for a hash, the first that covers
 * memory, and its memory hash; for a landmark, its register hash), with valid CRCs: what
 * a bug in a device, or a wrong log, looks like to replay.
 */
struct alter {
	unsigned kind;
	uint64_t timer_pos, altered;
	uint8_t buf[LF_INPUT_MAX];
};

static void alter_one(struct lf_event *ev, void *opaque)
{
	struct alter *a = opaque;
	unsigned kind = a->kind;
	if (ev->kind != kind || a->altered != UINT64_MAX ||
	    (kind == LF_EV_TIMER && ev->pos != a->timer_pos) ||
	    (kind == LF_EV_HASH && !(ev->hash.flags & LF_HASH_MEM)))
		return;
	a->altered = ev->pos;
	if (kind == LF_EV_INPUT) {
		memcpy(a->buf, ev->input.data, ev->input.len);
		a->buf[0] ^= 0x20; /* another letter */
		ev->input.data = a->buf;
	} else if (kind == LF_EV_TIMER) {
		ev->timer = ev->timer ? 0 : 1; /* another device's timer */
	} else if (kind == LF_EV_HASH) {
		ev->hash.mem ^= 1;
	} else if (kind == LF_EV_LANDMARK) {
		ev->landmark.regs ^= 1;
	}
}

static uint64_t alter_log(const char *from, const char *to, unsigned kind)
{
	struct alter a = {.kind = kind, .altered = UINT64_MAX,
			  .timer_pos = kind == LF_EV_TIMER ? lone_timer_pos(from) : UINT64_MAX};
	log_copy_edit(from, to, NULL, NULL, alter_one, &a);
	cr_assert_neq(a.altered, UINT64_MAX, "no event of kind %u to alter", kind);
	return a.altered;
}

Test(record, altered_input_is_a_divergence, .timeout = 2 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "echo", NULL, "abc\nq", "alter-in.rwl");
	const char *bad = scratch("altered.rwl");
	uint64_t pos = alter_log(x.log, bad, LF_EV_INPUT);
	struct h_run r;
	RW(&r, NULL, "replay", bad);
	expect_status(&r, 8);
	expect_err(&r, "rewind: replay diverged at position ");
	expect_err(&r, "expected: hash ");
	expect_err(&r, "observed: guest output differs");
	/* The report points at an interval that starts at or after the altered event. */
	const char *look = strstr(r.err, "look from position ");
	cr_assert(look, "no interval in:\n%s", r.err);
	unsigned long long from = strtoull(look + 19, NULL, 10), at = 0;
	sscanf(r.err, "rewind: replay diverged at position %llu", &at);
	cr_expect(from >= pos && from <= at, "altered at %llu, report says look from %llu to %llu",
		  (unsigned long long)pos, from, at);
	expect_err(&r, "RIP=");
	h_free(&r);
	unlink(bad);
	rr_done(&x);
}

Test(record, altered_timer_is_a_divergence, .timeout = 2 * TIMEOUT_S)
{
	/*
	 * The PIT's tick becomes another device's timer expiry: the guest misses a tick. On
	 * the virtual clock, so that every expiry is one interrupt the guest takes: on the
	 * host's clock a loaded host can let two expiries meet in the 8259 before the guest
	 * acknowledges the first, and taking one of those away changes nothing it sees.
	 */
	const char *log = scratch("alter-tmr.rwl");
	struct h_run rec;
	RW(&rec, NULL, "record", "--clock", "virtual", "-o", log, "--append", "hz=1000 ticks=50",
	   guest("timer"));
	expect_status(&rec, 1);
	const char *bad = scratch("altered-tmr.rwl");
	alter_log(log, bad, LF_EV_TIMER);
	struct h_run r;
	RW(&r, NULL, "replay", "--quiet", log);
	expect_status(&r, 1);
	expect_err(&r, ": matched");
	h_free(&r);
	RW(&r, NULL, "replay", "--quiet", bad);
	expect_status(&r, 8);
	expect_err(&r, "rewind: replay diverged at position ");
	h_free(&r);
	h_free(&rec);
	unlink(bad);
	unlink(log);
}

/*
 * The memory hash is a function of RAM's contents (logfmt/FORMAT.md), however each side
 * finds the pages it must read: every replay that matches shows that the recorder and
 * the replayer compute it alike; this shows that one that differs is noticed, and named.
 */
Test(record, altered_memory_hash_is_a_divergence, .timeout = 2 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "hello", NULL, NULL, "alter-mem.rwl");
	const char *bad = scratch("altered-mem.rwl");
	alter_log(x.log, bad, LF_EV_HASH);
	struct h_run r;
	RW(&r, NULL, "replay", "--quiet", bad);
	expect_status(&r, 8);
	expect_err(&r, "rewind: replay diverged at position ");
	expect_err(&r, "observed: memory differs");
	h_free(&r);
	unlink(bad);
	rr_done(&x);
}

/* --- bad logs -------------------------------------------------------------------- */

Test(record, not_a_log_and_missing_log, .timeout = TIMEOUT_S)
{
	struct h_run r;
	RW(&r, NULL, "replay", guest("hello"));
	REFUSED(&r, 4, "not a rewind log");
	h_free(&r);
	RW(&r, NULL, "replay", "/nonexistent/run.rwl");
	REFUSED(&r, 4, "/nonexistent/run.rwl");
	h_free(&r);
	RW(&r, NULL, "log", "info", "/nonexistent/run.rwl");
	REFUSED(&r, 4, "/nonexistent/run.rwl");
	h_free(&r);
	RW(&r, NULL, "replay");
	REFUSED(&r, 2, "replay");
	h_free(&r);
	RW(&r, NULL, "record", guest("hello"));
	REFUSED(&r, 2, "-o");
	h_free(&r);
	RW(&r, NULL, "record", "-o", scratch("x.rwl"), "--compress", "gzip", guest("hello"));
	REFUSED(&r, 2, "--compress gzip");
	h_free(&r);
}

Test(record, golden_bad_logs_are_refused, .timeout = TIMEOUT_S)
{
	struct h_run r;
	RW(&r, NULL, "replay", "tests/logfmt/golden/bad-version.rwl");
	REFUSED(&r, 4, "version");
	h_free(&r);
	/* Version 1's memory hash is another function: refused, never a false divergence. */
	RW(&r, NULL, "replay", "tests/logfmt/golden/old-version.rwl");
	REFUSED(&r, 4, "format version 1; this build reads versions 2 to 4");
	h_free(&r);
	RW(&r, NULL, "replay", "tests/logfmt/golden/flipped-header.rwl");
	expect_status(&r, 4);
	h_free(&r);
}

Test(record, flipped_header_bytes_are_refused, .timeout = 3 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "hello", NULL, NULL, "flip.rwl");
	size_t len = 0;
	char *d = h_read_file(x.log, &len);
	cr_assert(d && len > 64);
	const char *bad = scratch("flipped.rwl");
	/* A sample of header bytes (all of them are covered by the logfmt unit tests). */
	for (size_t i = 0; i < 64; i += 7) {
		d[i] ^= 0x10;
		write_file(bad, d, len);
		d[i] ^= 0x10;
		struct h_run r;
		RW(&r, NULL, "replay", bad);
		cr_expect_eq(r.status, 4, "flipping byte %zu: status %d\n%s", i, r.status, r.err);
		cr_expect_eq(h_lines(r.err), 1, "flipping byte %zu:\n%s", i, r.err);
		h_free(&r);
	}
	free(d);
	unlink(bad);
	rr_done(&x);
}

Test(record, cut_log_replays_up_to_its_end_and_repairs, .timeout = 3 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "timer", "hz=1000 ticks=300", NULL, "cut.rwl");
	size_t len = 0;
	char *d = h_read_file(x.log, &len);
	cr_assert(d);
	const char *cut = scratch("cut-short.rwl");
	write_file(cut, d, len - 40); /* into the index/footer and maybe the last chunk */
	struct h_run r;
	RW(&r, NULL, "log", "verify", cut);
	expect_status(&r, 4);
	expect_out(&r, "--repair");
	h_free(&r);
	RW(&r, NULL, "replay", "--quiet", cut);
	cr_expect(r.status == 4 || r.status == 1, "status %d\n%s", r.status, r.err);
	h_free(&r);
	RW(&r, NULL, "log", "verify", "--repair", cut);
	expect_status(&r, 0);
	expect_out(&r, "repaired");
	h_free(&r);
	RW(&r, NULL, "log", "verify", cut);
	expect_status(&r, 0);
	h_free(&r);
	free(d);
	unlink(cut);
	rr_done(&x);
}

/* An empty log or one cut inside its header: verify says nothing can be kept (it once
 * printed "header good" and offered a repair). */
Test(record, verify_of_a_headless_log_offers_no_repair, .timeout = 2 * TIMEOUT_S)
{
	struct rr x;
	record_replay(&x, "hello", NULL, NULL, "headless.rwl");
	size_t len = 0;
	char *d = h_read_file(x.log, &len);
	cr_assert(d && len > 200);
	const char *cut = scratch("headless-cut.rwl");
	static const size_t keep[] = {0, 10, 100};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		write_file(cut, d, keep[i]);
		for (int repair = 0; repair < 2; repair++) {
			struct h_run r;
			if (repair)
				RW(&r, NULL, "log", "verify", "--repair", cut);
			else
				RW(&r, NULL, "log", "verify", cut);
			cr_expect_eq(r.status, 4, "%zu bytes%s: status %d\n%s%s", keep[i],
				     repair ? ", --repair" : "", r.status, r.out, r.err);
			expect_out(&r, "nothing to repair");
			cr_expect(!strstr(r.out, "header good") && !strstr(r.out, "--repair"),
				  "%zu bytes: claims a usable header:\n%s", keep[i], r.out);
			h_free(&r);
		}
	}
	free(d);
	unlink(cut);
	rr_done(&x);
}

Test(record, a_directory_or_device_is_not_a_log, .timeout = TIMEOUT_S)
{
	static const char *const cmds[][3] = {{"replay", NULL, NULL}, {"debug", NULL, NULL},
					     {"log", "info", NULL},  {"log", "dump", NULL},
					     {"log", "verify", NULL}};
	static const char *const paths[] = {"/tmp", "/dev/null"};
	for (size_t p = 0; p < 2; p++)
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			struct h_run r;
			if (cmds[i][1])
				RW(&r, NULL, cmds[i][0], cmds[i][1], paths[p]);
			else
				RW(&r, NULL, cmds[i][0], paths[p]);
			REFUSED(&r, 4, paths[p], "not a log file");
			h_free(&r);
		}
}

/* -o onto a file that is not a log (here the guest itself): refused, the file intact;
 * a log, an empty file and /dev/null are written as before. */
Test(record, output_over_a_non_log_file_is_refused, .timeout = 2 * TIMEOUT_S)
{
	size_t len = 0, len2 = 0;
	char *elf = h_read_file(guest("hello"), &len);
	cr_assert(elf);
	const char *copy = scratch("guest-copy.elf");
	write_file(copy, elf, len);
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "-o", copy, copy);
	REFUSED(&r, 4, copy, "not a rewind log", "not overwriting");
	char *after = h_read_file(copy, &len2);
	cr_expect(after && len2 == len && !memcmp(after, elf, len), "the guest was overwritten");
	h_free(&r);
	free(after);
	const char *log = scratch("over.rwl");
	write_file(log, "", 0);
	for (int i = 0; i < 2; i++) { /* empty, then a log */
		RW(&r, NULL, "record", "--backend", "emu", "-o", log, guest("hello"));
		expect_status(&r, 1);
		h_free(&r);
	}
	unlink(copy);
	unlink(log);
	free(elf);
}

/* --- the recorder stopped, killed, or out of disk ---------------------------------- */

Test(record, sigint_ends_in_a_complete_log, .timeout = 3 * TIMEOUT_S)
{
	const char *log = scratch("sigint.rwl");
	struct h_run r;
	struct h_opts o = {.timeout_s = TIMEOUT_S,
			   .sig = SIGINT,
			   .sig_after = "timer: 100000 ticks",
			   .sig_delay_ms = 300};
	RW(&r, &o, "record", "--backend", "emu", "-o", log, "--append", "hz=1000 ticks=100000",
	   guest("timer"));
	expect_status(&r, 0);
	expect_err(&r, "stopped at position");
	char *rec_out = strdup(r.out);
	h_free(&r);
	RW(&r, NULL, "log", "verify", log);
	expect_status(&r, 0);
	h_free(&r);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 0);
	expect_err(&r, "stopped by the user");
	expect_err(&r, ": matched\n");
	cr_expect_str_eq(r.out, rec_out);
	h_free(&r);
	free(rec_out);
	unlink(log);
}

Test(record, sigkill_leaves_a_log_that_replays_to_its_last_chunk, .timeout = 3 * TIMEOUT_S)
{
	const char *log = scratch("sigkill.rwl");
	struct h_run r;
	struct h_opts o = {.timeout_s = TIMEOUT_S,
			   .sig = SIGKILL,
			   .sig_after = "timer: 100000 ticks",
			   .sig_delay_ms = 1500};
	RW(&r, &o, "record", "--backend", "emu", "-o", log, "--append", "hz=1000 ticks=100000",
	   guest("timer"));
	cr_expect_eq(r.termsig, SIGKILL);
	h_free(&r);
	RW(&r, NULL, "replay", "--quiet", log);
	expect_status(&r, 4);
	expect_err(&r, "cut");
	expect_err(&r, "matched up to position");
	h_free(&r);
	RW(&r, NULL, "log", "verify", "--repair", log);
	expect_status(&r, 0);
	h_free(&r);
	RW(&r, NULL, "log", "info", log);
	expect_out(&r, "end:        none");
	h_free(&r);
	unlink(log);
}

Test(record, full_disk_is_reported, .timeout = TIMEOUT_S)
{
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "-o", "/dev/full", guest("hello"));
	expect_status(&r, 10);
	expect_err(&r, "No space left on device");
	/* The header is written while the guest runs: it is what failed, and it is said. */
	expect_err(&r, "has no complete header");
	h_free(&r);
}

/*
 * Landmarks that replay cannot find end as divergences, never as a spin (docs/
 * kvm-backend.md, "Landmarks"). race computes between ticks without an exit: a landmark
 * whose registers match no pass is searched until the watchdog gives up.
 */
static void record_race_counting_exits(struct rr *x, const char *logname, bool kvm)
{
	snprintf(x->log, sizeof(x->log), "%s", scratch(logname));
	struct h_opts o = {.timeout_s = TIMEOUT_S};
	if (kvm)
		RW(&x->rec, &o, "record", "--backend", "kvm", "-o", x->log, "--append",
		   "ticks=20", guest("race"));
	else
		RW(&x->rec, &o, "record", "--backend", "emu", "--positions", "exits", "-o",
		   x->log, "--append", "ticks=20", guest("race"));
	expect_status(&x->rec, 1);
	memset(&x->rpl, 0, sizeof(x->rpl));
}

static void unreachable_landmark(bool kvm)
{
	struct rr x;
	record_race_counting_exits(&x, "lm-race.rwl", kvm);
	const char *bad = scratch("lm-altered.rwl");
	uint64_t pos = alter_log(x.log, bad, LF_EV_LANDMARK);
	struct h_run r;
	RW(&r, NULL, "replay", "--stall-timeout", "2", bad);
	expect_status(&r, 8);
	char want[128];
	snprintf(want, sizeof(want), "rewind: replay diverged at position %llu\n",
		 (unsigned long long)pos);
	expect_err(&r, want);
	expect_err(&r, "expected: landmark rip=");
	expect_err(&r, "observed: no progress for 2 s");
	expect_err(&r, "RIP=");
	h_free(&r);
	unlink(bad);
	rr_done(&x);
}

Test(record, unreachable_landmark_is_a_divergence_not_a_hang, .timeout = 2 * TIMEOUT_S)
{
	if (!h_have_kvm())
		cr_skip_test("no /dev/kvm here: kvm landmarks not run");
	unreachable_landmark(true);
}

/* The same search on emu, in an exit-counted log emu recorded: every host runs it. */
Test(record, unreachable_landmark_on_emu_is_a_divergence_not_a_hang, .timeout = 2 * TIMEOUT_S)
{
	unreachable_landmark(false);
}

/*
 * A landmark moved one exit earlier than where it was taken: the search runs into that
 * exit first, which it must report as leaving the position, not cross.
 */
/* The first landmark not at the same position as the event before it, one exit earlier. */
struct move_landmark {
	uint64_t prev, moved;
};

static void move_first_landmark(struct lf_event *ev, void *opaque)
{
	struct move_landmark *m = opaque;
	if (ev->kind == LF_EV_LANDMARK && m->moved == UINT64_MAX && ev->pos > m->prev) {
		ev->pos--;
		m->moved = ev->pos;
	}
	m->prev = ev->pos;
}

static void landmark_behind_an_exit(bool kvm)
{
	struct rr x;
	record_race_counting_exits(&x, "lm-race2.rwl", kvm);
	const char *bad = scratch("lm-moved.rwl");
	struct move_landmark mv = {.moved = UINT64_MAX};
	log_copy_edit(x.log, bad, NULL, NULL, move_first_landmark, &mv);
	uint64_t moved = mv.moved;
	cr_assert_neq(moved, UINT64_MAX, "no landmark to move in:\n%s", x.rec.err);
	struct h_run p;
	RW(&p, NULL, "replay", "--stall-timeout", "10", bad);
	expect_status(&p, 8);
	expect_err(&p, "expected: landmark rip=");
	char want[128];
	snprintf(want, sizeof(want), "observed: the guest left position %llu by ",
		 (unsigned long long)moved);
	expect_err(&p, want);
	h_free(&p);
	unlink(bad);
	rr_done(&x);
}

Test(record, landmark_behind_an_exit_is_a_divergence, .timeout = 2 * TIMEOUT_S)
{
	if (!h_have_kvm())
		cr_skip_test("no /dev/kvm here: kvm landmarks not run");
	landmark_behind_an_exit(true);
}

Test(record, landmark_behind_an_exit_on_emu_is_a_divergence, .timeout = 2 * TIMEOUT_S)
{
	landmark_behind_an_exit(false);
}

Test(record, stall_timeout_is_checked, .timeout = TIMEOUT_S)
{
	static const char *const bad[] = {"x", "-1", "", "86401", " 5", "5s"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct h_run r;
		RW(&r, NULL, "replay", "--stall-timeout", bad[i], "nothing.rwl");
		expect_status(&r, 2);
		expect_err(&r, "--stall-timeout");
		expect_err(&r, "expected seconds, 0 to 86400");
		h_free(&r);
	}
}
