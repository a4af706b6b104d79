/* integration */
/*
 * test_debug_stub.c: rewind's gdb server as a client sees it on the wire. The real
 * `rewind replay --gdb 127.0.0.1:0 LOG` serves a recording; a small gdb remote-protocol
 * client written here (framing, checksums, acknowledgements, console output) talks to it.
 * A second client is refused with a well-formed error, the answer to its first packet
 * (which real gdb shows), while one is attached, also while the first one's continue
 * runs, and the first session goes on; Ctrl-C stops a long continue well before the end
 * of the recording, where `monitor when` says; a long continue under a small
 * --checkpoint-mem thins the checkpoints and stays within the bound, as `monitor
 * checkpoints` shows; bad checksums get '-', unknown packets an empty reply, oversized
 * and malformed packets and junk never end the server.
 */
#include "tests/integration/harness.h"
#include "tests/integration/rw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define STUB_TIMEOUT_S 120
#define REPLY_S	       30.0 /* the longest wait for one reply (generous: a loaded machine) */

/* ---- the server: rewind replay --gdb ------------------------------------------------- */

struct server {
	struct h_proc p;
	unsigned port;
	char err[16384]; /* stderr so far */
	size_t errlen;
};

/* Read the server's stderr until it contains s (or the deadline); true if it does. */
static bool server_wait_err(struct server *s, const char *what, double secs)
{
	double end = h_now() + secs;
	while (!strstr(s->err, what) && h_now() < end) {
		struct pollfd pf = {.fd = s->p.err, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(s->p.err, s->err + s->errlen, sizeof(s->err) - 1 - s->errlen);
		if (n <= 0)
			break;
		s->errlen += (size_t)n;
		s->err[s->errlen] = 0;
	}
	return strstr(s->err, what) != NULL;
}

/* Start `rewind replay --gdb 127.0.0.1:0 [opts] log` and learn its port. */
static void server_start(const char *log, const char *opt1, const char *opt2, struct server *s)
{
	char rw[4096];
	char *argv[16];
	int n = 0;
	memset(s, 0, sizeof(*s));
	h_rewind_path(rw, sizeof(rw));
	argv[n++] = rw;
	argv[n++] = "replay";
	argv[n++] = "--gdb";
	argv[n++] = "127.0.0.1:0";
	if (opt1)
		argv[n++] = (char *)opt1;
	if (opt2)
		argv[n++] = (char *)opt2;
	argv[n++] = (char *)log;
	argv[n] = NULL;
	struct h_opts o = {.timeout_s = STUB_TIMEOUT_S};
	h_start(argv, &o, &s->p);
	cr_assert(server_wait_err(s, "(in gdb: target remote", REPLY_S),
		  "the server did not say where it listens:\n%s", s->err);
	const char *at = strstr(s->err, "waiting for gdb on 127.0.0.1:");
	cr_assert(at && sscanf(at, "waiting for gdb on 127.0.0.1:%u", &s->port) == 1, "%s", s->err);
}

/* Wait for the server to end; its exit status (-1 if killed at the deadline). */
static int server_end(struct server *s, struct h_run *r)
{
	h_wait(&s->p, r);
	/* h_wait reads stderr from where server_wait_err left off. */
	return r->status;
}

/* ---- a gdb remote-protocol client ------------------------------------------------------ */

struct client {
	int fd;
	bool eof;
	uint8_t in[1 << 17]; /* received, not consumed */
	size_t len;
	char console[1 << 14]; /* decoded 'O' packets since the last command */
	size_t nconsole;
};

static void client_connect(struct client *c, unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	memset(c, 0, sizeof(*c));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c->fd >= 0);
	cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void send_raw(struct client *c, const void *d, size_t n)
{
	const char *p = d;
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		cr_assert(w > 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static uint8_t checksum(const char *p, size_t n)
{
	uint8_t sum = 0;
	while (n--)
		sum = (uint8_t)(sum + (uint8_t)*p++);
	return sum;
}

/* Frame and send a payload of n bytes (no escaping: callers send none of $#}*). */
static void send_packet_n(struct client *c, const char *payload, size_t n)
{
	char *f = malloc(n + 5);
	cr_assert(f);
	f[0] = '$';
	memcpy(f + 1, payload, n);
	snprintf(f + 1 + n, 4, "#%02x", checksum(payload, n));
	send_raw(c, f, n + 4);
	free(f);
}

static void send_packet(struct client *c, const char *payload)
{
	send_packet_n(c, payload, strlen(payload));
}

/* More bytes, waiting until the deadline; false on timeout or end of stream. */
static bool fill(struct client *c, double deadline)
{
	if (c->eof)
		return false;
	double now = h_now();
	if (now >= deadline)
		return false;
	struct pollfd pf = {.fd = c->fd, .events = POLLIN};
	if (poll(&pf, 1, (int)((deadline - now) * 1000) + 1) <= 0)
		return false;
	cr_assert_lt(c->len, sizeof(c->in), "the server sent more than this client keeps");
	ssize_t n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
	if (n <= 0) {
		c->eof = true;
		return false;
	}
	c->len += (size_t)n;
	return true;
}

static void consume(struct client *c, size_t n)
{
	memmove(c->in, c->in + n, c->len - n);
	c->len -= n;
}

static int hexval(int ch)
{
	return ch >= '0' && ch <= '9'	? ch - '0'
	       : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
	       : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
					: -1;
}

/* A console output packet: 'O' and an even number (> 0) of hex digits. */
static bool is_console(const char *p, size_t n)
{
	if (n < 3 || p[0] != 'O' || (n - 1) % 2)
		return false;
	for (size_t i = 1; i < n; i++)
		if (hexval((unsigned char)p[i]) < 0)
			return false;
	return true;
}

/*
 * The next packet: its payload (NUL-terminated, malloc'd) or NULL on timeout or when the
 * server closed. Acknowledgements before it are skipped (expect_nack looks for '-'). The
 * checksum must be right; the packet is acknowledged. Console output packets are decoded
 * into c->console and skipped.
 */
static char *reply(struct client *c, double secs)
{
	double deadline = h_now() + secs;
	for (;;) {
		while (c->len && (c->in[0] == '+' || c->in[0] == '-'))
			consume(c, 1); /* '-': the server refused junk sent before (bad_packets) */
		cr_assert(!c->len || c->in[0] == '$', "unexpected byte %#x before a packet",
			  c->in[0]);
		uint8_t *hash = c->len ? memchr(c->in, '#', c->len) : NULL;
		if (!hash || (size_t)(hash - c->in) + 3 > c->len) {
			if (!fill(c, deadline))
				return NULL;
			continue;
		}
		size_t n = (size_t)(hash - c->in) - 1;
		const char *p = (const char *)c->in + 1;
		int hi = hexval(hash[1]), lo = hexval(hash[2]);
		cr_assert(hi >= 0 && lo >= 0 && checksum(p, n) == (uint8_t)(hi << 4 | lo),
			  "a reply with a bad checksum: %.*s", (int)(n + 4), (const char *)c->in);
		send_raw(c, "+", 1);
		if (is_console(p, n)) {
			for (size_t i = 1; i + 1 < n && c->nconsole + 1 < sizeof(c->console);
			     i += 2)
				c->console[c->nconsole++] =
				    (char)(hexval(p[i]) << 4 | hexval(p[i + 1]));
			c->console[c->nconsole] = 0;
			consume(c, n + 4);
			continue;
		}
		char *out = malloc(n + 1);
		cr_assert(out);
		memcpy(out, p, n);
		out[n] = 0;
		consume(c, n + 4);
		return out;
	}
}

/* Send a command, get its reply (asserted to come). */
static char *ask(struct client *c, const char *payload)
{
	c->nconsole = 0;
	c->console[0] = 0;
	send_packet(c, payload);
	char *r = reply(c, REPLY_S);
	cr_assert(r, "no reply to %s", payload);
	return r;
}

static void expect_reply(struct client *c, const char *payload, const char *want)
{
	char *r = ask(c, payload);
	cr_expect_str_eq(r, want, "%s: replied \"%s\", expected \"%s\"", payload, r, want);
	free(r);
}

/* `monitor cmd`: its console output into c->console; the reply must be OK. */
static const char *monitor(struct client *c, const char *cmd)
{
	char pkt[512] = "qRcmd,";
	for (const char *p = cmd; *p; p++)
		snprintf(pkt + strlen(pkt), 3, "%02x", (unsigned char)*p);
	char *r = ask(c, pkt);
	cr_assert_str_eq(r, "OK", "monitor %s: %s", cmd, r);
	free(r);
	return c->console;
}

static unsigned long long monitor_when(struct client *c)
{
	unsigned long long pos;
	const char *out = monitor(c, "when");
	cr_assert(sscanf(out, "position %llu", &pos) == 1, "monitor when: %s", out);
	return pos;
}

/* What gdb sends first. */
static void handshake(struct client *c)
{
	send_raw(c, "+", 1);
	char *r =
	    ask(c, "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;xmlRegisters=i386");
	cr_assert(strstr(r, "PacketSize="), "qSupported: %s", r);
	free(r);
	r = ask(c, "?");
	cr_assert(r[0] == 'T' || r[0] == 'S', "?: %s", r);
	free(r);
}

/* Detach and check that the server ends as it should (0) after it. */
static void detach_and_end(struct client *c, struct server *s)
{
	struct h_run r;
	expect_reply(c, "D", "OK");
	client_close(c);
	int st = server_end(s, &r);
	cr_expect_eq(st, 0, "the server ended with %d (signal %d):\n%s%s", st, r.termsig, s->err,
		     r.err);
	h_free(&r);
}

/* Record a guest with --append args; the number of instructions it ran. */
static unsigned long long record(const char *name, const char *guest_name, const char *args)
{
	struct h_run r;
	unsigned long long n = 0;
	RW(&r, NULL, "record", "--backend", "emu", "-o", scratch(name), "--append", args,
	   guest(guest_name));
	cr_assert_eq(r.status, 1, "record %s:\n%s", guest_name, r.err);
	const char *p = strstr(r.err, "recorded ");
	cr_assert(p && sscanf(p, "recorded %llu", &n) == 1, "%s", r.err);
	h_free(&r);
	return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The refusal a second client gets: one well-formed error packet, then the end. */
static void expect_refused(unsigned port)
{
	struct client b;
	client_connect(&b, port);
	send_raw(&b, "+", 1);
	send_packet(&b, "qSupported:multiprocess+");
	char *r = reply(&b, REPLY_S);
	cr_assert(r, "the second client got no well-formed reply (%zu bytes: %.*s)", b.len,
		  (int)b.len, (const char *)b.in);
	cr_expect(r[0] == 'E' && strstr(r, "attached"), "the second client got \"%s\"", r);
	free(r);
	/* Then the server closes it. */
	double end = h_now() + REPLY_S;
	while (!b.eof && h_now() < end) {
		b.len = 0;
		fill(&b, end);
	}
	cr_expect(b.eof, "the second connection was not closed");
	client_close(&b);
}

Test(debug_stub, a_second_client_is_refused_and_the_first_goes_on, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("race.rwl");
	struct server s;
	struct client a;
	record("race.rwl", "race", "ticks=5");
	server_start(log, NULL, NULL, &s);
	client_connect(&a, s.port);
	handshake(&a);
	cr_expect_eq(monitor_when(&a), 0);

	expect_refused(s.port);
	cr_assert(server_wait_err(&s, "refused a second gdb connection", REPLY_S), "%s", s.err);

	/* The first session is as it was: it steps and reads. */
	char *r = ask(&a, "s");
	cr_expect(r[0] == 'T', "s: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), 1);
	r = ask(&a, "g");
	cr_expect(strlen(r) > 16 * 16, "g: %s", r);
	free(r);
	detach_and_end(&a, &s);
}

Test(debug_stub, a_second_gdb_says_why_it_is_refused, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("race.rwl");
	struct server s;
	struct client a;
	struct h_run r;
	char target[64];
	if (!h_have_program("gdb"))
		cr_skip_test("gdb is not installed (apt-get install gdb): this test runs it");
	record("race.rwl", "race", "ticks=5");
	server_start(log, NULL, NULL, &s);
	client_connect(&a, s.port);
	handshake(&a);
	snprintf(target, sizeof(target), "target remote 127.0.0.1:%u", s.port);
	char *argv[] = {"gdb", "-batch", "-nx", "-ex", target, NULL};
	struct h_opts o = {.timeout_s = REPLY_S, .merge = true};
	h_run(argv, &o, &r);
	cr_expect(strstr(r.out, "Remote failure reply: E.rewind: a debugger is attached already"),
		  "gdb did not show why it was refused:\n%s", r.out);
	h_free(&r);
	cr_expect_eq(monitor_when(&a), 0);
	detach_and_end(&a, &s);
}

Test(debug_stub, a_second_client_is_refused_while_the_first_runs, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("compute.rwl");
	struct server s;
	struct client a;
	unsigned long long end = record("compute.rwl", "compute", "n=150");
	server_start(log, NULL, NULL, &s);
	client_connect(&a, s.port);
	handshake(&a);
	send_packet(&a, "c");
	usleep(200 * 1000);
	/* Refused while a's continue runs, not once it ends. */
	expect_refused(s.port);
	send_raw(&a, "\x03", 1);
	char *r = reply(&a, REPLY_S);
	cr_assert(r, "no stop reply after Ctrl-C");
	cr_expect(!strncmp(r, "T02", 3), "stop reply %s, expected SIGINT", r);
	free(r);
	unsigned long long at = monitor_when(&a);
	cr_expect(at > 0 && at < end / 2, "refused before position %llu of %llu", at, end);
	detach_and_end(&a, &s);
}

Test(debug_stub, ctrl_c_stops_a_long_continue_inside_the_run, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("compute.rwl");
	struct server s;
	struct client a;
	unsigned long long end = record("compute.rwl", "compute", "n=150");
	server_start(log, NULL, NULL, &s);
	client_connect(&a, s.port);
	handshake(&a);
	unsigned long long last = 0;
	for (int i = 0; i < 2; i++) {
		send_packet(&a, i ? "vCont;c" : "c");
		usleep(200 * 1000);
		double t0 = h_now();
		send_raw(&a, "\x03", 1);
		char *r = reply(&a, REPLY_S);
		cr_assert(r, "no stop reply within %.0f s of Ctrl-C", REPLY_S);
		cr_log_info("stop reply %s %.3f s after Ctrl-C", r, h_now() - t0);
		cr_expect(!strncmp(r, "T02", 3), "stop reply %s, expected SIGINT (T02)", r);
		free(r);
		unsigned long long at = monitor_when(&a);
		/* The continue ran 0.2 s of a replay that takes seconds. */
		cr_expect(at > last && at < end / 2,
			  "Ctrl-C %d stopped at position %llu (before: %llu; the end: %llu)", i, at,
			  last, end);
		last = at;
	}
	/* The session goes on: a step, and back. */
	char *r = ask(&a, "s");
	cr_expect(r[0] == 'T', "s: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), last + 1);
	r = ask(&a, "bs");
	cr_expect(r[0] == 'T', "bs: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), last);
	detach_and_end(&a, &s);
}

Test(debug_stub, checkpoints_are_thinned_within_the_bound, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("compute.rwl");
	struct server s;
	struct client a;
	unsigned long long end = record("compute.rwl", "compute", "n=12");
	server_start(log, "--checkpoint-every=1M", "--checkpoint-mem=2M", &s);
	client_connect(&a, s.port);
	handshake(&a);
	char *r = ask(&a, "c");
	cr_expect(strstr(r, "replaylog:end"), "continue to the end: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), end);
	const char *out = monitor(&a, "checkpoints");
	unsigned n = 0;
	unsigned long long first, lastck, every, pages, thinned;
	double used, bound;
	const char *m = strstr(out, "memory: ");
	cr_assert(sscanf(out, "%u checkpoints from position %llu to %llu, one every %llu", &n,
			 &first, &lastck, &every) == 4 &&
		      m &&
		      sscanf(m, "memory: %lf MiB of %lf MiB (%llu page versions); %llu thinned",
			     &used, &bound, &pages, &thinned) == 4,
		  "monitor checkpoints:\n%s", out);
	cr_log_info("%s", out);
	/* Thinning doubles the spacing: 1M times a power of two, the same everywhere. */
	unsigned long long k = every >> 20;
	cr_expect(every % (1u << 20) == 0 && k >= 2 && !(k & (k - 1)),
		  "spacing %llu after thinning:\n%s", every, out);
	cr_expect_eq(bound, 2.0);
	cr_expect_gt(thinned, 0, "nothing thinned over %llu instructions:\n%s", end, out);
	cr_expect_leq(used, bound, "checkpoints take more than the bound:\n%s", out);
	cr_expect(n >= 3 && n <= end / every + 2, "%u checkpoints:\n%s", n, out);
	cr_expect(first == 0 && lastck <= end && lastck + 2 * every > end, "%s", out);
	/* Going back still works over the thinned checkpoints. */
	r = ask(&a, "bs");
	cr_expect(r[0] == 'T', "bs: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), end - 1);
	detach_and_end(&a, &s);
}

/* Expect exactly the byte '-' (a bad packet refused) and nothing else pending. */
static void expect_nack(struct client *c)
{
	double end = h_now() + REPLY_S;
	while (!c->len && fill(c, end))
		;
	cr_assert(c->len >= 1, "no answer to a bad packet");
	cr_expect_eq(c->in[0], '-', "a bad packet got %#x, not '-'", c->in[0]);
	consume(c, 1);
}

Test(debug_stub, bad_packets_never_end_the_server, .timeout = STUB_TIMEOUT_S)
{
	const char *log = scratch("race.rwl");
	struct server s;
	struct client a;
	record("race.rwl", "race", "ticks=5");
	server_start(log, NULL, NULL, &s);
	client_connect(&a, s.port);
	handshake(&a);

	/* A bad checksum: '-', and the packet is not carried out. */
	send_raw(&a, "$s#00", 5);
	expect_nack(&a);
	cr_expect_eq(monitor_when(&a), 0, "the packet with a bad checksum was carried out");
	send_raw(&a, "$?#zz", 5);
	expect_nack(&a);
	/* Unknown packets: an empty reply. */
	expect_reply(&a, "vMustReplyEmpty", "");
	expect_reply(&a, "qRewindNoSuchQuery", "");
	expect_reply(&a, "Q", "");
	expect_reply(&a, "!", "");
	/* Oversized: '-', dropped. */
	size_t big = 3 * 16384;
	char *huge = malloc(big);
	memset(huge, 'a', big);
	huge[0] = 'q';
	send_packet_n(&a, huge, big);
	expect_nack(&a);
	free(huge);
	/* Malformed known packets: an error, never a crash. */
	const char *bad[] = {"m",
			     "mzz,4",
			     "m0,",
			     "m0,ffffffff",
			     "p",
			     "pzz",
			     "Z0,zz,1",
			     "Z9,1000,1",
			     "z2,1000",
			     "Z2,1000,0",
			     "Z2,1000,99999",
			     "H",
			     "Hgzz",
			     "T",
			     "qXfer:features:read:",
			     "qXfer:features:read:target.xml:zz,1",
			     "qRcmd,zz",
			     "qRcmd,6",
			     "G00",
			     "P0=zz",
			     "M0,4:zz",
			     "X0,4:",
			     "vCont;x",
			     "c1234zz",
			     "bc1",
			     "s1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *r = ask(&a, bad[i]);
		cr_log_info("%s -> %s", bad[i], r);
		free(r);
		cr_expect_eq(monitor_when(&a), 0, "%s moved the replay", bad[i]);
	}
	/* Junk between packets, a packet cut short by another, Ctrl-C while stopped. */
	send_raw(&a, "junk\x01\x02\xff", 7);
	send_raw(&a, "$qSupp", 6);
	send_raw(&a, "\x03", 1);
	expect_reply(&a, "vMustReplyEmpty", "");
	/* Random packets of every other kind that does not run the guest or end the session. */
	unsigned seed = (unsigned)time(NULL);
	cr_log_info("seed %u", seed);
	srand(seed);
	static const char kinds[] = "qQmgpPzZXMGHT?x";
	for (int i = 0; i < 300; i++) {
		char pkt[64];
		size_t n = 1 + (size_t)rand() % 40;
		pkt[0] = kinds[rand() % (int)(sizeof(kinds) - 1)];
		for (size_t k = 1; k < n; k++) {
			static const char alpha[] = "0123456789abcdefxX,:;=-.zZ";
			pkt[k] = alpha[rand() % (int)(sizeof(alpha) - 1)];
		}
		pkt[n] = 0;
		char *r = ask(&a, pkt);
		free(r);
	}
	/* Still serving, still at 0, and it ends cleanly. */
	cr_expect_eq(monitor_when(&a), 0);
	char *r = ask(&a, "s");
	cr_expect(r[0] == 'T', "s: %s", r);
	free(r);
	cr_expect_eq(monitor_when(&a), 1);
	detach_and_end(&a, &s);
}
