/* integration */
/*
 * test_debug_live.c: `rewind run --gdb` and `rewind record --gdb` as a user drives them:
 * rewind says where it listens and waits; Debian's gdb (batch mode, `target remote`)
 * breaks, steps, prints, changes memory (code too) and registers in a run, and continues
 * to the guest's exit, whose status reaches gdb and rewind's exit; a recording made under
 * breakpoints, steps and watchpoints replays matched, and refuses writes; Ctrl-C stops a
 * guest that computes and one that idles; gdb cannot go back; the guest's clock stands
 * still while gdb holds it; a busy port and a bad address are refused.
 */
#include "tests/integration/harness.h"
#include "tests/integration/rw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define LIVE_TIMEOUT_S 90

/* rewind under test: started, and waiting for gdb at addr. */
struct live {
	struct h_proc p;
	char *out, *err; /* what it printed before h_wait */
	size_t olen, ocap, elen, ecap;
	char addr[64]; /* HOST:PORT from its "waiting for gdb on" line */
};

static void live_read(struct live *l, int ms)
{
	struct pollfd pf[2] = {{.fd = l->p.out, .events = POLLIN},
			       {.fd = l->p.err, .events = POLLIN}};
	if (poll(pf, 2, ms) <= 0)
		return;
	if (pf[0].revents)
		h_read_into(&l->p.out, &l->out, &l->olen, &l->ocap);
	if (pf[1].revents)
		h_read_into(&l->p.err, &l->err, &l->elen, &l->ecap);
}

/* Read rewind's stdout and stderr until one holds s. */
static void live_wait_for(struct live *l, const char *s)
{
	double deadline = h_now() + LIVE_TIMEOUT_S;
	while (!strstr(l->out, s) && !strstr(l->err, s)) {
		cr_assert(h_now() < deadline && (l->p.out >= 0 || l->p.err >= 0),
			  "rewind never printed \"%s\"\nstdout:\n%s\nstderr:\n%s", s, l->out,
			  l->err);
		live_read(l, 100);
	}
}

/* Start rewind with args; return once it says where it waits for gdb. */
static void live_start(struct live *l, const char **args)
{
	char *argv[64];
	argv_of(args, argv, 64);
	struct h_opts o = {.timeout_s = LIVE_TIMEOUT_S, .hold_stdin = true};
	memset(l, 0, sizeof(*l));
	h_start(argv, &o, &l->p);
	l->ocap = l->ecap = 1 << 12;
	l->out = calloc(1, l->ocap);
	l->err = calloc(1, l->ecap);
	cr_assert(l->out && l->err);
	live_wait_for(l, "waiting for gdb on ");
	const char *at = strstr(l->err, "waiting for gdb on ");
	while (!strchr(at, '\n')) {
		live_read(l, 100);
		at = strstr(l->err, "waiting for gdb on ");
	}
	cr_assert_eq(sscanf(at, "waiting for gdb on %63s", l->addr), 1, "%s", l->err);
	cr_assert(!strncmp(l->addr, "127.0.0.1:", 10), "not on loopback: %s", l->addr);
}

#define LIVE(l, ...) live_start(l, (const char *[]){__VA_ARGS__, NULL})

/* Wait for rewind to exit; r holds everything it printed. */
static void live_finish(struct live *l, struct h_run *r)
{
	h_wait(&l->p, r);
	cr_assert(!r->timed_out, "rewind killed after its deadline\nstdout:\n%s%s\nstderr:\n%s%s",
		  l->out, r->out, l->err, r->err);
	char *out = malloc(l->olen + r->len + 1), *err = malloc(l->elen + r->err_len + 1);
	cr_assert(out && err);
	snprintf(out, l->olen + r->len + 1, "%s%s", l->out, r->out);
	snprintf(err, l->elen + r->err_len + 1, "%s%s", l->err, r->err);
	free(r->out);
	free(r->err);
	free(l->out);
	free(l->err);
	r->out = out;
	r->len = strlen(out);
	r->err = err;
	r->err_len = strlen(err);
}

/* gdb with the guest's symbols, connected to l, one -ex per line of script. */
static void gdb_start(const struct live *l, const char *guest_name, const char *script,
		      struct h_proc *p)
{
	static char elf[4096], target[128], lines[8192];
	static char *argv[256];
	h_guest_path(guest_name, elf, sizeof(elf));
	snprintf(target, sizeof(target), "target remote %s", l->addr);
	snprintf(lines, sizeof(lines), "%s", script);
	int n = 0;
	argv[n++] = "gdb";
	argv[n++] = "-q";
	argv[n++] = "-batch";
	argv[n++] = "-nx";
	argv[n++] = elf;
	argv[n++] = "-ex";
	argv[n++] = target;
	/* One -ex each: an error (a refused write) then ends only its own command. */
	for (char *save, *c = strtok_r(lines, "\n", &save); c && n < 252;
	     c = strtok_r(NULL, "\n", &save)) {
		argv[n++] = "-ex";
		argv[n++] = c;
	}
	argv[n] = NULL;
	struct h_opts o = {.timeout_s = LIVE_TIMEOUT_S, .merge = true};
	h_start(argv, &o, p);
}

static void gdb_wait(struct h_proc *p, struct h_run *r)
{
	h_wait(p, r);
	cr_assert(!r->timed_out, "gdb killed after its deadline:\n%s", r->out);
}

/* rewind ARGS under gdb running script; g: gdb's output, r: rewind's. */
static void under_gdb(const char *guest_name, const char *script, struct h_run *g, struct h_run *r,
		      const char **args)
{
	struct live l;
	struct h_proc gp;
	live_start(&l, args);
	gdb_start(&l, guest_name, script, &gp);
	gdb_wait(&gp, g);
	live_finish(&l, r);
}

#define UNDER_GDB(guest_name, script, g, r, ...)                                                   \
	under_gdb(guest_name, script, g, r, (const char *[]){__VA_ARGS__, NULL})

static const char gdbme_out[] = "gdbme: round 0 answer 1000 secret 21\n"
				"gdbme: round 1 answer 1000 secret 21\n"
				"gdbme: round 2 answer 1000 secret 21\n"
				"gdbme: done\n";

Test(debug_live, run_break_print_stepi_and_continue_to_the_exit, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	UNDER_GDB("gdbme",
		  "break report\ncontinue\nprint secret\nprint round\nmonitor when\nstepi\n"
		  "monitor when\ndelete\ncontinue\n",
		  &g, &r, "run", "--gdb", "127.0.0.1:0", guest("gdbme"));
	cr_expect(strstr(g.out, "Breakpoint 1, report (round=round@entry=0, a=1000, s=21)"),
		  "no stop at report:\n%s", g.out);
	cr_expect(strstr(g.out, "$1 = 21") && strstr(g.out, "$2 = 0"), "values:\n%s", g.out);
	unsigned long long p[2];
	cr_assert_eq(positions(g.out, p, 2), 2, "no positions:\n%s", g.out);
	cr_expect_eq(p[1], p[0] + 1, "stepi went from %llu to %llu", p[0], p[1]);
	/* (21 << 1) | 1 = 43 = 053, as gdb prints it. */
	cr_expect(strstr(g.out, "exited with code 053"), "gdb did not see the exit:\n%s", g.out);
	expect_status(&r, 43);
	expect_out_is(&r, gdbme_out);
	expect_err(&r, "rewind: waiting for gdb on 127.0.0.1:");
	expect_err(&r, "gdb attached");
}

Test(debug_live, run_lets_gdb_change_memory_code_and_registers, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	/*
	 * Round 0 has run answer() (its code is translated); then its constant becomes 7
	 * and secret 5; in round 1 report's second argument is set in its register.
	 */
	UNDER_GDB(
	    "gdbme",
	    "break report\ncontinue\nfind /w (char *)answer, +32, 1000\n"
	    "set var *(int *)$_ = 7\nset var secret = 5\ncontinue\nset $rsi = 4242\n"
	    "set $fs_base = 0x5000\nstepi\np/x $fs_base\nset var *(char *)0x100000000000 = 1\n"
	    "delete\ncontinue\n",
	    &g, &r, "run", "--gdb", ":0", guest("gdbme"));
	cr_expect(strstr(g.out, "report (round=round@entry=1, a=7, s=5)"),
		  "the writes did not reach the guest:\n%s", g.out);
	cr_expect(strstr(g.out, "= 0x5000"), "fs_base not written:\n%s", g.out);
	cr_expect(strstr(g.out, "Cannot access memory at address 0x100000000000"),
		  "a write to an unmapped address was not refused:\n%s", g.out);
	expect_status(&r, 11);
	expect_out_is(&r, "gdbme: round 0 answer 1000 secret 21\n"
			  "gdbme: round 1 answer 4242 secret 5\n"
			  "gdbme: round 2 answer 7 secret 5\n"
			  "gdbme: done\n");
}

/* Replay log: matched, printing what the recording printed, with the same status. */
static void expect_replay_matches(const char *log, const struct h_run *rec)
{
	struct h_run r;
	RW(&r, NULL, "replay", log);
	expect_status(&r, rec->status);
	expect_err(&r, ": matched");
	cr_expect_str_eq(r.out, rec->out, "replayed output:\n%s\nrecorded:\n%s", r.out, rec->out);
	h_free(&r);
}

Test(debug_live, a_recording_made_under_gdb_replays_matched, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	const char *log = scratch("live-race.rwl");
	/*
	 * race's result depends on where each timer interrupt lands: stops at breakpoints,
	 * on an interrupt's first instruction (vector 0x20's stub), single steps and
	 * watchpoint hits must leave every event where it was.
	 */
	UNDER_GDB("race",
		  "break pit_irq\ncontinue\ncontinue\nstepi\nstepi\nstepi\ndelete\n"
		  "break *((char *)g_isr_stubs + 16 * 0x20)\ncontinue\nstepi\nstepi\ncontinue\n"
		  "delete\nwatch shared_counter\ncontinue\ncontinue\ncontinue\ndelete\n"
		  "continue\n",
		  &g, &r, "record", "--gdb", ":0", "-o", log, "--append", "ticks=12",
		  guest("race"));
	cr_expect(strstr(g.out, "Breakpoint 1, pit_irq"), "no stop in pit_irq:\n%s", g.out);
	cr_expect(strstr(g.out, "Breakpoint 2, g_isr_stubs"), "no stop at the stub:\n%s", g.out);
	cr_expect(occurrences(g.out, "Hardware watchpoint 3: shared_counter") >= 3,
		  "no watchpoint hits:\n%s", g.out);
	cr_expect(strstr(g.out, "exited with code 01]"), "gdb did not see the exit:\n%s", g.out);
	expect_status(&r, 1);
	expect_out(&r, "race: done");
	expect_err(&r, "rewind: recorded ");
	expect_replay_matches(log, &r);
	unlink(log);
}

Test(debug_live, a_recording_refuses_writes_and_says_why, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	const char *log = scratch("live-gdbme.rwl");
	UNDER_GDB("gdbme",
		  "break report\ncontinue\nset var secret = 5\nset $rsi = 1\nprint secret\n"
		  "print a\ndelete\ncontinue\n",
		  &g, &r, "record", "--gdb", ":0", "-o", log, guest("gdbme"));
	cr_expect(strstr(g.out, "Cannot access memory at address"), "write not refused:\n%s",
		  g.out);
	cr_expect(strstr(g.out, "Could not write register") && strstr(g.out, "unreplayable"),
		  "register write not refused with the reason:\n%s", g.out);
	cr_expect(strstr(g.out, "$1 = 21") && strstr(g.out, "$2 = 1000"),
		  "the guest changed anyway:\n%s", g.out);
	expect_err(&r, "gdb may not change the guest's memory: a change the log does not "
		       "contain would make the recording unreplayable");
	expect_status(&r, 43);
	expect_out_is(&r, gdbme_out);
	expect_replay_matches(log, &r);
	unlink(log);
}

Test(debug_live, a_live_run_cannot_go_back, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	UNDER_GDB("gdbme",
		  "stepi\nstepi\nreverse-stepi\nreverse-continue\nmonitor goto 1\nmonitor when\n"
		  "monitor goto 1000\nmonitor when\ncontinue\n",
		  &g, &r, "run", "--gdb", ":0", guest("gdbme"));
	cr_expect_eq(occurrences(g.out, "Target remote does not support this command."), 2,
		     "reverse execution not refused:\n%s", g.out);
	cr_expect(strstr(g.out, "goto: position 1 is behind this one (2), and a live run only "
				"goes forward"),
		  "no message for goto backwards:\n%s", g.out);
	unsigned long long p[2];
	cr_assert_eq(positions(g.out, p, 2), 2, "no positions:\n%s", g.out);
	cr_expect_eq(p[0], 2);
	cr_expect_eq(p[1], 1000, "goto forward went to %llu", p[1]);
	expect_status(&r, 43);
	expect_out_is(&r, gdbme_out);
}

Test(debug_live, detach_lets_the_guest_run_on, .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	UNDER_GDB("gdbme", "break report\ncontinue\ncontinue\ndetach\n", &g, &r, "run", "--gdb",
		  ":0", guest("gdbme"));
	cr_expect(strstr(g.out, "report (round=round@entry=1"), "no second stop:\n%s", g.out);
	expect_status(&r, 43);
	expect_out_is(&r, gdbme_out);
	expect_err(&r, "gdb detached");
}

/* Ctrl-C in gdb while the guest runs (once its output shows trigger), then kill. */
static void interrupt_and_kill(const char *guest_name, const char *trigger, struct h_run *g,
			       struct h_run *r, const char **args)
{
	struct live l;
	struct h_proc gp;
	live_start(&l, args);
	gdb_start(&l, guest_name, "continue\nmonitor when\nkill\n", &gp);
	/* The guest prints only after gdb's continue: gdb waits for it now. */
	live_wait_for(&l, trigger);
	kill(gp.pid, SIGINT);
	gdb_wait(&gp, g);
	live_finish(&l, r);
	cr_expect(strstr(g->out, "Program received signal SIGINT"), "no stop on Ctrl-C:\n%s",
		  g->out);
	cr_expect(strstr(g->out, "killed]"), "not killed:\n%s", g->out);
	expect_status(r, 0);
	expect_err(r, "gdb killed the session");
	expect_err(r, "stopped at position ");
}

Test(debug_live, ctrl_c_stops_a_guest_that_idles_or_computes, .timeout = LIVE_TIMEOUT_S * 3)
{
	NEED_GDB();
	struct h_run g, r;
	/* echo waits in HLT for input that never comes. */
	interrupt_and_kill("echo", "echo: type", &g, &r,
			   (const char *[]){"run", "--gdb", ":0", guest("echo"), NULL});
	cr_expect(strstr(g.out, "g_getc"), "not stopped in the input wait:\n%s", g.out);
	h_free(&g);
	h_free(&r);
	/* compute would take minutes; recorded, and killed, the log still replays. */
	const char *log = scratch("live-compute.rwl");
	interrupt_and_kill("compute", "compute: 100000 rounds", &g, &r,
			   (const char *[]){"record", "--gdb", ":0", "-o", log, "--append",
					    "n=100000", guest("compute"), NULL});
	unsigned long long p[1];
	cr_assert_eq(positions(g.out, p, 1), 1, "no position:\n%s", g.out);
	cr_expect_gt(p[0], 0);
	struct h_run rp;
	RW(&rp, NULL, "replay", "--quiet", log);
	expect_status(&rp, 0);
	expect_err(&rp, "stopped by the user");
	expect_err(&rp, ": matched");
	h_free(&rp);
	unlink(log);
}

/* The clock values a log holds, in order. */
static int clock_values(const char *log, unsigned long long *v, int max)
{
	struct h_run d;
	RW(&d, NULL, "log", "dump", log);
	expect_status(&d, 0);
	int n = 0;
	for (const char *p = d.out; (p = strstr(p, " clock ")) && n < max; p++)
		if (sscanf(p, " clock %llu", &v[n]) == 1)
			n++;
	h_free(&d);
	return n;
}

Test(debug_live, the_guest_clock_stands_still_while_gdb_holds_the_guest,
     .timeout = LIVE_TIMEOUT_S * 2)
{
	NEED_GDB();
	struct h_run g, r;
	const char *log = scratch("live-clock.rwl");
	/* gdbme clock=1 reads the PIT, so the clock at each round is in the log. */
	UNDER_GDB("gdbme", "break report\ncontinue\nshell sleep 3\ncontinue\ndelete\ncontinue\n",
		  &g, &r, "record", "--gdb", ":0", "-o", log, "--append", "clock=1",
		  guest("gdbme"));
	expect_status(&r, 43);
	unsigned long long v[8];
	int n = clock_values(log, v, 8);
	cr_assert_geq(n, 4, "expected the PIT start and 3 reads in the log");
	/* The guest itself runs for milliseconds; it was held for 3 s. */
	cr_expect_lt(v[n - 1] - v[0], 1500000000ull,
		     "the guest saw %llu ns pass across a 3 s stop at gdb", v[n - 1] - v[0]);
	expect_replay_matches(log, &r);
	unlink(log);
}

/* A packet in the remote protocol's framing. */
static void send_packet(int s, const char *payload)
{
	unsigned sum = 0;
	for (const char *p = payload; *p; p++)
		sum += (unsigned char)*p;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "$%s#%02x", payload, sum & 0xff);
	cr_assert_eq(send(s, buf, (size_t)n, MSG_NOSIGNAL), n);
}

/* The next reply's payload (acks skipped). */
static void recv_packet(int s, char *buf, size_t cap)
{
	size_t n = 0;
	bool in = false;
	for (;;) {
		char c;
		struct pollfd pf = {.fd = s, .events = POLLIN};
		cr_assert(poll(&pf, 1, LIVE_TIMEOUT_S * 1000) == 1, "no reply");
		cr_assert_eq(recv(s, &c, 1, 0), 1, "connection closed");
		if (!in) {
			in = c == '$';
			continue;
		}
		if (c == '#')
			break;
		cr_assert(n + 1 < cap);
		buf[n++] = c;
	}
	buf[n] = 0;
	char sum[2];
	cr_assert_eq(recv(s, sum, 2, MSG_WAITALL), 2);
	cr_assert_eq(send(s, "+", 1, MSG_NOSIGNAL), 1);
}

Test(debug_live, the_protocol_offers_no_reverse_and_stops_on_ctrl_c, .timeout = LIVE_TIMEOUT_S)
{
	struct live l;
	LIVE(&l, "run", "--gdb", ":0", guest("echo"));
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(strchr(l.addr, ':') + 1))};
	cr_assert_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char reply[4096];
	send_packet(s, "qSupported:swbreak+;hwbreak+");
	recv_packet(s, reply, sizeof(reply));
	cr_expect(strstr(reply, "swbreak+") && !strstr(reply, "Reverse"),
		  "qSupported in a live run: %s", reply);
	send_packet(s, "bs");
	recv_packet(s, reply, sizeof(reply));
	cr_expect(!strncmp(reply, "E.", 2) && strstr(reply, "cannot go back"), "bs: %s", reply);
	send_packet(s, "bc");
	recv_packet(s, reply, sizeof(reply));
	cr_expect(reply[0] == 'E', "bc: %s", reply);
	send_packet(s, "vCont;c");
	live_wait_for(&l, "echo: type");
	cr_assert_eq(send(s, "\x03", 1, MSG_NOSIGNAL), 1);
	recv_packet(s, reply, sizeof(reply));
	cr_expect(!strncmp(reply, "T02", 3), "stop reply after Ctrl-C: %s", reply);
	send_packet(s, "k");
	struct h_run r;
	live_finish(&l, &r);
	close(s);
	expect_status(&r, 0);
	expect_err(&r, "gdb killed the session");
}

Test(debug_live, a_busy_port_or_a_bad_address_is_refused_with_one_line, .timeout = TIMEOUT_S * 2)
{
	struct h_run r;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s, 1) == 0);
	socklen_t sl = sizeof(sa);
	getsockname(s, (struct sockaddr *)&sa, &sl);
	char spec[32];
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	RW(&r, NULL, "run", "--gdb", spec, guest("hello"));
	REFUSED(&r, 10, "cannot listen", "Address already in use");
	h_free(&r);
	/* Refused before anything is made: no log. */
	const char *log = scratch("busy.rwl");
	unlink(log);
	RW(&r, NULL, "record", "--gdb", spec, "-o", log, guest("hello"));
	REFUSED(&r, 10, "cannot listen", "Address already in use");
	cr_expect(access(log, F_OK) != 0, "a log was created");
	h_free(&r);
	close(s);
	RW(&r, NULL, "run", "--gdb", "nonsense:x", guest("hello"));
	REFUSED(&r, 2, "expected [HOST:]PORT");
	h_free(&r);
	RW(&r, NULL, "record", "--gdb", "10.0.0.300:1234", "-o", log, guest("hello"));
	REFUSED(&r, 2, "not an IPv4 address");
	h_free(&r);
	RW(&r, NULL, "run", "--backend", "kvm", "--gdb", ":0", guest("hello"));
	REFUSED(&r, 2, "--gdb needs the emu backend");
	h_free(&r);
}

Test(debug_live, a_signal_while_waiting_for_gdb_ends_the_run_cleanly, .timeout = TIMEOUT_S * 2)
{
	struct h_run r;
	const char *log = scratch("sig.rwl");
	struct h_opts o = {.timeout_s = TIMEOUT_S, .sig = SIGTERM, .sig_after = "waiting for gdb"};
	RW(&r, &o, "record", "--gdb", ":0", "-o", log, guest("hello"));
	expect_status(&r, 0);
	expect_err(&r, "stopped at position 0");
	h_free(&r);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 0);
	expect_err(&r, ": matched");
	h_free(&r);
	unlink(log);
}

Test(debug_live, help_tells_of_gdb, .timeout = TIMEOUT_S)
{
	struct h_run r;
	RW(&r, NULL, "run", "--help");
	expect_status(&r, 0);
	expect_out(&r, "--gdb [HOST:]PORT");
	expect_out(&r, "forward only");
	expect_out(&r, "may also change the guest's memory");
	h_free(&r);
	RW(&r, NULL, "record", "--help");
	expect_status(&r, 0);
	expect_out(&r, "--gdb [HOST:]PORT");
	expect_out(&r, "unreplayable");
	h_free(&r);
	RW(&r, NULL, "--help");
	expect_out(&r, "--gdb [HOST:]PORT");
	expect_out(&r, "kill in gdb");
	h_free(&r);
}
