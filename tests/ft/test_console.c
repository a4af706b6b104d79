/* unit */
/*
 * test_console.c: the ft console (ft/console_proto.c, console_server.c,
 * console_client.c). First the protocol without transport: the history ring at and
 * across its wrap, record layouts, a server's answer to every kind of HELLO, and the
 * client's offset and input bookkeeping against lying or confused servers. Then server
 * and client over real loopback sockets and the real channel: resume by offset, bytes
 * gone (on connect and for a client that fell behind), failover by a stopped console and
 * by a cut link mid-stream with every byte printed once, typed input resent across a
 * failover and applied once, skipped addresses, a wrong key, a capture of the wire,
 * many clients, terminal mode, and peers that break the protocol.
 */
#include "ft/console_proto.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Byte i of the test output stream: varied enough that a shift or repeat shows. */
static uint8_t stream_byte(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

static void stream_fill(uint8_t *p, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = stream_byte(from + i);
}

static void check_stream(const uint8_t *p, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(p[i], stream_byte(from + i), "byte at offset %llu",
			     (unsigned long long)(from + i));
}

Test(proto, ring_keeps_the_last_cap_bytes_across_wraps)
{
	struct ft_con_ring r;
	uint8_t buf[300], out[300];
	uint64_t off = 1000;

	cr_assert_eq(ft_con_ring_init(&r, 256, off), 0);
	cr_assert_eq(ft_con_ring_read(&r, off, out, sizeof(out)), 0, "empty ring reads nothing");
	/* Odd-sized appends so that every wrap position is crossed. */
	for (size_t step = 1; step < 300; step += 37) {
		stream_fill(buf, off - 1000, step);
		ft_con_ring_append(&r, buf, step);
		off += step;
		cr_assert_eq(r.end, off);
		cr_assert_eq(r.start, off - 1000 > 256 ? off - 256 : 1000);
		for (uint64_t from = r.start; from <= r.end; from += 19) {
			size_t k = ft_con_ring_read(&r, from, out, sizeof(out));

			cr_assert_eq(k, r.end - from);
			check_stream(out, from - 1000, k);
		}
		cr_assert_eq(ft_con_ring_read(&r, r.start - 1, out, 10), 0, "before start");
	}
	ft_con_ring_free(&r);
}

Test(proto, ring_append_larger_than_cap_keeps_its_tail)
{
	struct ft_con_ring r;
	uint8_t buf[1000], out[100];

	cr_assert_eq(ft_con_ring_init(&r, 100, 0), 0);
	stream_fill(buf, 0, 7);
	ft_con_ring_append(&r, buf, 7);
	stream_fill(buf, 7, sizeof(buf));
	ft_con_ring_append(&r, buf, sizeof(buf));
	cr_assert_eq(r.end, 1007);
	cr_assert_eq(r.start, 907);
	cr_assert_eq(ft_con_ring_read(&r, 907, out, 100), 100);
	check_stream(out, 907, 100);
	cr_assert_eq(ft_con_ring_read(&r, 950, out, 10), 10, "read is capped at max");
	check_stream(out, 950, 10);
	ft_con_ring_free(&r);
}

Test(proto, hello_and_welcome_layout_is_little_endian_and_exact)
{
	struct ft_con_hello h = {FT_CON_VERSION, 0x1122334455667788ull, 0x0102030405060708ull, 9};
	struct ft_con_hello h2;
	uint8_t b[FT_CON_HELLO_BYTES];
	static const uint8_t want[FT_CON_HELLO_BYTES] = {
	    1, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 8, 7,
	    6, 5, 4, 3, 2,    1,    9,	  0,	0,    0,    0,	  0,	0, 0};

	ft_con_hello_encode(b, &h);
	cr_assert_arr_eq(b, want, sizeof(want));
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b), &h2), 0);
	cr_assert_eq(h2.client, h.client);
	cr_assert_eq(h2.out_offset, h.out_offset);
	cr_assert_eq(h2.in_seq, 9);
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b) - 1, &h2), -1, "short");
	b[0] = 2;
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b), &h2), -1, "another version");

	struct ft_con_welcome w = {FT_CON_NOT_LIVE, 5, 6, 7}, w2;
	uint8_t wb[FT_CON_WELCOME_BYTES];

	ft_con_welcome_encode(wb, &w);
	cr_assert_eq(ft_con_welcome_decode(wb, sizeof(wb), &w2), 0);
	cr_assert_eq(w2.state, FT_CON_NOT_LIVE);
	cr_assert_eq(w2.from, 5);
	cr_assert_eq(w2.gone, 6);
	cr_assert_eq(w2.end, 7);
	wb[0] = 3;
	cr_assert_eq(ft_con_welcome_decode(wb, sizeof(wb), &w2), -1, "unknown state");

	uint8_t yb[FT_CON_BYE_BYTES];
	uint32_t reason;
	uint64_t end;

	ft_con_bye_encode(yb, FT_CON_BYE_END, 77);
	cr_assert_eq(ft_con_bye_decode(yb, sizeof(yb), &reason, &end), 0);
	cr_assert_eq(reason, FT_CON_BYE_END);
	cr_assert_eq(end, 77);
	ft_con_bye_encode(yb, 0, 77);
	cr_assert_eq(ft_con_bye_decode(yb, sizeof(yb), &reason, &end), -1, "reason 0");
}

/* A HELLO as a client at (out, in) would send. */
static void hello_at(uint8_t b[FT_CON_HELLO_BYTES], uint64_t id, uint64_t out, uint64_t in)
{
	struct ft_con_hello h = {FT_CON_VERSION, id, out, in};

	ft_con_hello_encode(b, &h);
}

Test(proto, server_answers_from_the_offset_or_says_what_is_gone)
{
	struct ft_con_srv s;
	struct ft_con_welcome w;
	uint8_t b[FT_CON_HELLO_BYTES];

	/* Kept [1000, 5000): an offset inside is served from there. */
	hello_at(b, 42, 3000, 7);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.state, FT_CON_LIVE);
	cr_assert_eq(w.from, 3000);
	cr_assert_eq(w.gone, 0);
	cr_assert_eq(w.end, 5000);
	cr_assert_eq(s.client, 42);
	cr_assert_eq(s.out_next, 3000);
	cr_assert_eq(s.in_next, 7);

	/* Older than the history: from the oldest kept byte, and how many are gone. */
	hello_at(b, 42, 200, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.from, 1000);
	cr_assert_eq(w.gone, 800);

	/* Ahead of what this side produced yet: waited for, nothing gone. */
	hello_at(b, 42, 6000, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.from, 6000);
	cr_assert_eq(w.gone, 0);

	/* A backup says so and nothing else. */
	hello_at(b, 42, 3000, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_NOT_LIVE, &w), 0);
	cr_assert_eq(w.state, FT_CON_NOT_LIVE);
	cr_assert_eq(w.from, 0);

	cr_assert_eq(ft_con_srv_hello(&s, b, 27, 1000, 5000, FT_CON_LIVE, &w), -1, "short");
}

Test(proto, server_takes_input_only_from_the_expected_seq)
{
	struct ft_con_srv s = {.client = 1, .out_next = 0, .in_next = 10};
	uint8_t b[8 + FT_CON_MAX_INPUT + 1], ack[FT_CON_ACK_BYTES];
	const uint8_t *data;
	uint64_t seq;
	size_t len, n;

	memset(b, 'x', sizeof(b));
	n = ft_con_data_encode(b, 10, (const uint8_t *)"hello", 5);
	cr_assert_eq(ft_con_srv_input(&s, b, n, &seq, &data, &len), 0);
	cr_assert_eq(seq, 10);
	cr_assert_eq(len, 5);
	cr_assert_arr_eq(data, "hello", 5);
	ft_con_srv_taken(&s, 3, ack);
	cr_assert_eq(s.in_next, 13);
	cr_assert_eq(ack[0], 13);

	/* The same record again (the rest not taken is resent from 13, not from 10). */
	cr_assert_eq(ft_con_srv_input(&s, b, n, &seq, &data, &len), -1, "stale seq");
	ft_con_data_encode(b, 14, (const uint8_t *)"o", 1);
	cr_assert_eq(ft_con_srv_input(&s, b, 9, &seq, &data, &len), -1, "gap");
	ft_con_data_encode(b, 13, (const uint8_t *)"lo", 2);
	cr_assert_eq(ft_con_srv_input(&s, b, 8, &seq, &data, &len), -1, "no bytes");
	cr_assert_eq(ft_con_srv_input(&s, b, 8 + FT_CON_MAX_INPUT, &seq, &data, &len), 0);
	cr_assert_eq(ft_con_srv_input(&s, b, sizeof(b), &seq, &data, &len), -1, "oversize");
}

/* Feed the client a record body built by the server side's encoders. */
static int cli_output(struct ft_con_cli *c, uint64_t at, size_t n)
{
	uint8_t b[8 + 512], p[512];
	const uint8_t *data;
	size_t len;
	int r;

	stream_fill(p, at, n);
	r = ft_con_cli_output(c, b, ft_con_data_encode(b, at, p, n), &data, &len);
	if (r == 0) {
		cr_assert_eq(len, n);
		check_stream(data, at, n);
	}
	return r;
}

Test(proto, client_prints_each_offset_once_and_refuses_gaps_and_repeats)
{
	struct ft_con_cli c;
	struct ft_con_welcome w = {FT_CON_LIVE, 0, 0, 0};
	uint8_t b[FT_CON_WELCOME_BYTES], g[FT_CON_GONE_BYTES];
	uint64_t count;

	ft_con_cli_init(&c, 5);
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	cr_assert_eq(cli_output(&c, 0, 100), 0);
	cr_assert_eq(cli_output(&c, 100, 50), 0);
	cr_assert_eq(c.out_off, 150);
	cr_assert_eq(cli_output(&c, 100, 50), -1, "a repeat is refused");
	cr_assert_eq(cli_output(&c, 151, 50), -1, "a gap is refused");
	cr_assert_eq(cli_output(&c, 150, 0), -1, "an empty OUTPUT is malformed");
	cr_assert_eq(c.out_off, 150, "refused records move nothing");

	/* A reconnect: the new server starts at the offset. */
	ft_con_cli_hello(&c, (uint8_t[FT_CON_HELLO_BYTES]){0});
	w = (struct ft_con_welcome){FT_CON_LIVE, 150, 0, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	/* One that would start earlier would print bytes twice. */
	w = (struct ft_con_welcome){FT_CON_LIVE, 149, 0, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), -1);
	/* One that starts later must say how many are gone, exactly. */
	w = (struct ft_con_welcome){FT_CON_LIVE, 200, 49, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), -1);
	w = (struct ft_con_welcome){FT_CON_LIVE, 200, 50, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	cr_assert_eq(c.out_off, 200);
	cr_assert_eq(c.gone_total, 50);

	/* Falling behind mid-stream. */
	ft_con_gone_encode(g, 210, 300);
	cr_assert_eq(ft_con_cli_gone(&c, g, sizeof(g), &count), -1, "not at the offset");
	ft_con_gone_encode(g, 200, 300);
	cr_assert_eq(ft_con_cli_gone(&c, g, sizeof(g), &count), 0);
	cr_assert_eq(count, 100);
	cr_assert_eq(c.gone_total, 150);
	cr_assert_eq(cli_output(&c, 300, 10), 0);
	ft_con_cli_free(&c);
}

/* Answer the client's record in flight: the core took `taken` of it. */
static int cli_ack(struct ft_con_cli *c, uint64_t seq)
{
	uint8_t a[FT_CON_ACK_BYTES];

	ft_con_ack_encode(a, seq);
	return ft_con_cli_ack(c, a, sizeof(a));
}

Test(proto, client_input_is_sent_once_in_flight_and_resent_until_taken)
{
	struct ft_con_cli c;
	uint8_t b[8 + FT_CON_MAX_INPUT], big[FT_CON_MAX_INPUT + 100];
	size_t n;

	ft_con_cli_init(&c, 5);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 0, "nothing typed");
	cr_assert_eq(ft_con_cli_input_add(&c, (const uint8_t *)"abcdef", 6), 0);
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 14);
	cr_assert_eq(b[0], 0, "seq 0");
	cr_assert_arr_eq(b + 8, "abcdef", 6);
	cr_assert_eq(ft_con_cli_input_add(&c, (const uint8_t *)"gh", 2), 0);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 0, "one record in flight at a time");

	/* The core took 4 of 6: the rest goes again, with what was typed since. */
	cr_assert_eq(cli_ack(&c, 5), 1, "partial");
	cr_assert_eq(c.in_acked, 5);
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 8 + 3);
	cr_assert_eq(b[0], 5);
	cr_assert_arr_eq(b + 8, "fgh", 3);
	cr_assert_eq(cli_ack(&c, 9), -1, "more than was sent");
	cr_assert_eq(cli_ack(&c, 4), -1, "less than was acked");

	/* The link drops before the ACK: the new connection resends from 5. */
	ft_con_cli_hello(&c, (uint8_t[FT_CON_HELLO_BYTES]){0});
	cr_assert_eq(cli_ack(&c, 8), -1, "nothing in flight on a new connection");
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 8 + 3);
	cr_assert_eq(b[0], 5);
	cr_assert_eq(cli_ack(&c, 8), 0);
	cr_assert_eq(c.in_len, 0);

	/* Large input is cut into records of at most FT_CON_MAX_INPUT. */
	memset(big, 'z', sizeof(big));
	cr_assert_eq(ft_con_cli_input_add(&c, big, sizeof(big)), 0);
	c.in_eof = true;
	cr_assert_eq(ft_con_cli_input_next(&c, b), 8 + FT_CON_MAX_INPUT);
	cr_assert_not(ft_con_cli_input_done(&c));
	cr_assert_eq(cli_ack(&c, 8 + FT_CON_MAX_INPUT), 0);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 8 + 100);
	cr_assert_eq(cli_ack(&c, 8 + sizeof(big)), 0);
	cr_assert(ft_con_cli_input_done(&c));
	ft_con_cli_free(&c);
}

/*
 * The server and the client over real loopback sockets and the real channel. A "core"
 * stands in for the ft core: it applies typed input per client by sequence number,
 * skipping what it already applied, optionally a few bytes per call only.
 */
#include "ft/console.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct ft_key key_a = {{1,	 2,  3,	 4,  5,	 6,  7,	 8,  9,	 10, 11,
				     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
				     23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};
static const struct ft_key key_b = {{9}};

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap(unsigned ms)
{
	usleep(ms * 1000);
}

/* A listening loopback socket on a free port. */
static int listen_any(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A port nothing listens on (bound and closed: refused on connect). */
static int dead_port(void)
{
	int port, fd = listen_any(&port);

	close(fd);
	return port;
}

struct core {
	pthread_mutex_t mu;
	uint64_t client; /* the one client seen (0: none yet) */
	uint64_t next;	 /* next seq to apply */
	uint8_t applied[1 << 16];
	size_t per_call;  /* apply at most this many per call (0: all) */
	uint64_t lose_at; /* a call that applies past this seq answers 0 taken once */
	atomic_bool lost; /* ... and says so here */
	atomic_int calls;
};

/* One side of the pair in front of the shared core; a side that "died" takes nothing. */
struct side {
	struct core *k;
	atomic_bool dead;
};

static size_t core_input(void *opaque, uint64_t client, uint64_t seq, const uint8_t *buf, size_t n)
{
	struct side *sd = opaque;
	struct core *k = sd->k;
	size_t skip, take;

	atomic_fetch_add(&k->calls, 1);
	if (atomic_load(&sd->dead))
		return 0;
	pthread_mutex_lock(&k->mu);
	if (!k->client)
		k->client = client;
	cr_assert_eq(client, k->client, "one client id throughout, across reconnects");
	if (seq > k->next) { /* a gap: never applied out of order */
		pthread_mutex_unlock(&k->mu);
		cr_assert_fail("input seq %llu skips past %llu", (unsigned long long)seq,
			       (unsigned long long)k->next);
	}
	skip = k->next - seq < n ? (size_t)(k->next - seq) : n;
	take = n - skip;
	if (k->per_call && take > k->per_call)
		take = k->per_call;
	cr_assert_leq(k->next + take, sizeof(k->applied));
	memcpy(k->applied + k->next, buf + skip, take);
	k->next += take;
	if (k->lose_at && k->next > k->lose_at && !atomic_load(&k->lost)) {
		/* Applied (and, in a real pair, logged) but the answer never reaches the
		 * client: this side is dead from here on. */
		atomic_store(&k->lost, true);
		atomic_store(&sd->dead, true);
		pthread_mutex_unlock(&k->mu);
		return 0;
	}
	pthread_mutex_unlock(&k->mu);
	return skip + take;
}

static void core_init(struct core *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
}

static struct ft_console *server(int *port, const struct ft_key *key, size_t history, bool live,
				 struct core *k)
{
	static struct side sides[4]; /* each test runs in a process of its own */
	static int nsides;
	struct side *sd = nsides < 4 ? &sides[nsides++] : NULL;
	struct ft_console_config cfg = {
	    .key = key,
	    .history_bytes = history,
	    .input = core_input,
	    .opaque = sd,
	};
	struct ft_console *c;
	char err[256];

	cr_assert_not_null(sd);
	sd->k = k;
	cfg.listen_fd = listen_any(port);
	cr_assert_eq(ft_console_start(&cfg, &c, err, sizeof(err)), 0, "%s", err);
	ft_console_set_live(c, live);
	return c;
}

static void publish_stream(struct ft_console *c, uint64_t from, size_t n)
{
	uint8_t buf[1000];

	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		stream_fill(buf, from, k);
		ft_console_publish(c, buf, k);
		from += k;
		n -= k;
	}
	cr_assert_eq(ft_console_offset(c), from);
}

/* A client on its own thread, printing into a memfd, typing from a pipe. */
struct client {
	char addrs[200];
	const struct ft_key *key;
	struct ft_console_client_opts opts;
	bool use_opts;
	int out_fd, in_fd, type_fd; /* type_fd: the test's end of in_fd (-1: watch only) */
	int status;
	char err[256];
	pthread_t thr;
	atomic_bool finished;
	pthread_mutex_t mu;
	char notices[4096];
};

static void client_notice(void *opaque, const char *line)
{
	struct client *cl = opaque;

	pthread_mutex_lock(&cl->mu);
	strncat(cl->notices, line, sizeof(cl->notices) - strlen(cl->notices) - 2);
	strcat(cl->notices, "\n");
	pthread_mutex_unlock(&cl->mu);
}

static void *client_main(void *arg)
{
	struct client *cl = arg;

	cl->status = cl->use_opts ? ft_console_client_ex(cl->addrs, cl->key, cl->in_fd, cl->out_fd,
							 &cl->opts, cl->err, sizeof(cl->err))
				  : ft_console_client(cl->addrs, cl->key, cl->in_fd, cl->out_fd,
						      cl->err, sizeof(cl->err));
	atomic_store(&cl->finished, true);
	return NULL;
}

/* The give-up time and escape byte of clients started with notices. */
static int client_give_up_ms = 10000;
static int client_escape;

/* Start a client on "127.0.0.1:P,..." for the ports given (0 ends the list). */
static void client_start(struct client *cl, const struct ft_key *key, bool typing, bool notices,
			 const int *ports)
{
	memset(cl, 0, sizeof(*cl));
	pthread_mutex_init(&cl->mu, NULL);
	for (size_t i = 0; ports[i]; i++)
		snprintf(cl->addrs + strlen(cl->addrs), sizeof(cl->addrs) - strlen(cl->addrs),
			 "%s127.0.0.1:%d", i ? "," : "", ports[i]);
	cl->key = key;
	cl->out_fd = memfd_create("transcript", MFD_CLOEXEC);
	cr_assert_geq(cl->out_fd, 0);
	cl->in_fd = cl->type_fd = -1;
	if (typing) {
		int p[2];

		cr_assert_eq(pipe(p), 0);
		cl->in_fd = p[0];
		cl->type_fd = p[1];
	}
	if (notices) {
		cl->use_opts = true;
		cl->opts.notice = client_notice;
		cl->opts.opaque = cl;
		cl->opts.give_up_ms = client_give_up_ms;
		cl->opts.escape = client_escape;
	}
	cr_assert_eq(pthread_create(&cl->thr, NULL, client_main, cl), 0);
}

static size_t client_printed(struct client *cl)
{
	struct stat st;

	cr_assert_eq(fstat(cl->out_fd, &st), 0);
	return (size_t)st.st_size;
}

/* Wait until the client printed at least n bytes (or fail after ms). */
static void client_wait_printed(struct client *cl, size_t n, unsigned ms)
{
	uint64_t until = ms_now() + ms;

	while (client_printed(cl) < n) {
		cr_assert_lt(ms_now(), until, "client printed %zu of %zu bytes in %u ms (%s)",
			     client_printed(cl), n, ms, cl->err);
		cr_assert_not(atomic_load(&cl->finished), "client ended early: %d %s", cl->status,
			      cl->err);
		nap(2);
	}
}

static int client_join(struct client *cl, unsigned ms)
{
	uint64_t until = ms_now() + ms;

	while (!atomic_load(&cl->finished)) {
		cr_assert_lt(ms_now(), until, "the client did not end within %u ms", ms);
		nap(5);
	}
	pthread_join(cl->thr, NULL);
	if (cl->in_fd >= 0)
		close(cl->in_fd);
	return cl->status;
}

/* The transcript is exactly the stream [from, from + n). */
static void client_check_transcript(struct client *cl, uint64_t from, size_t n)
{
	uint8_t *buf = malloc(n + 1);
	ssize_t got = pread(cl->out_fd, buf, n + 1, 0);

	cr_assert_eq((size_t)got, n, "transcript has %zd bytes, want %zu", got, n);
	check_stream(buf, from, n);
	free(buf);
}

static void client_free(struct client *cl)
{
	close(cl->out_fd);
	if (cl->type_fd >= 0)
		close(cl->type_fd);
}

Test(console, output_streams_to_a_client_and_ends, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct client cl;

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	publish_stream(s, 0, 5000);
	client_start(&cl, &key_a, false, false, (int[]){port, 0});
	client_wait_printed(&cl, 5000, 10000);
	publish_stream(s, 5000, 300000);
	ft_console_end(s);
	cr_assert_eq(client_join(&cl, 10000), FT_CONSOLE_OK, "%s", cl.err);
	client_check_transcript(&cl, 0, 305000);
	client_free(&cl);
	ft_console_stop(s);
}

/* A hand-driven client: channel, HELLO at (out, in), the WELCOME. */
static struct ft_chan *raw_connect(int port, const struct ft_key *key, uint64_t out, uint64_t in,
				   struct ft_con_welcome *w)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint8_t hello[FT_CON_HELLO_BYTES], wb[64], type;
	struct ft_con_hello h = {FT_CON_VERSION, 77, out, in};
	struct ft_chan *ch;
	char err[256];
	size_t len;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(
	    ft_chan_open(fd, key, FT_CHAN_CONNECTOR, "console", 5000, &ch, err, sizeof(err)), 0,
	    "%s", err);
	ft_con_hello_encode(hello, &h);
	cr_assert_eq(ft_chan_send(ch, FT_CON_HELLO, hello, sizeof(hello)), 0);
	cr_assert_eq(ft_chan_recv(ch, &type, wb, sizeof(wb), &len, 5000), 1, "%s",
		     ft_chan_error(ch));
	cr_assert_eq(type, FT_CON_WELCOME);
	cr_assert_eq(ft_con_welcome_decode(wb, len, w), 0);
	return ch;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Receive records until output reaches `until`; check offsets and bytes; count GONE. */
static uint64_t raw_read_output(struct ft_chan *ch, uint64_t off, uint64_t until, uint64_t *gone)
{
	uint8_t *buf = malloc(FT_CON_MAX_RECORD), type;
	size_t len;

	while (off < until) {
		cr_assert_eq(ft_chan_recv(ch, &type, buf, FT_CON_MAX_RECORD, &len, 10000), 1, "%s",
			     ft_chan_error(ch));
		if (type == FT_CON_SPING)
			continue;
		if (type == FT_CON_GONE) {
			cr_assert_eq(len, FT_CON_GONE_BYTES);
			cr_assert_eq(le64(buf), off, "GONE starts at the client's offset");
			cr_assert_gt(le64(buf + 8), off);
			*gone += le64(buf + 8) - off;
			off = le64(buf + 8);
			continue;
		}
		cr_assert_eq(type, FT_CON_OUTPUT);
		cr_assert_eq(le64(buf), off, "output continues at the offset");
		check_stream(buf + 8, off, len - 8);
		off += len - 8;
	}
	free(buf);
	return off;
}

Test(console, a_hello_resumes_from_its_offset_or_is_told_what_is_gone, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct ft_con_welcome w;
	struct ft_chan *ch;
	uint64_t gone = 0;

	core_init(&k);
	s = server(&port, &key_a, 4096, true, &k);
	publish_stream(s, 0, 3000);

	ch = raw_connect(port, &key_a, 1234, 0, &w);
	cr_assert_eq(w.state, FT_CON_LIVE);
	cr_assert_eq(w.from, 1234);
	cr_assert_eq(w.gone, 0);
	cr_assert_eq(w.end, 3000);
	cr_assert_eq(raw_read_output(ch, 1234, 3000, &gone), 3000);
	cr_assert_eq(gone, 0);
	ft_chan_close(ch);

	/* 10000 bytes out, 4096 kept: asking for 0 gets 5904 gone and the last 4096. */
	publish_stream(s, 3000, 7000);
	ch = raw_connect(port, &key_a, 0, 0, &w);
	cr_assert_eq(w.from, 10000 - 4096);
	cr_assert_eq(w.gone, 10000 - 4096);
	cr_assert_eq(raw_read_output(ch, w.from, 10000, &gone), 10000);
	ft_chan_close(ch);

	/* Ahead of the output: nothing until it is published, then exactly from there. */
	ch = raw_connect(port, &key_a, 12000, 0, &w);
	cr_assert_eq(w.from, 12000);
	publish_stream(s, 10000, 5000);
	cr_assert_eq(raw_read_output(ch, 12000, 15000, &gone), 15000);
	cr_assert_eq(gone, 0);
	ft_chan_close(ch);
	ft_console_stop(s);
}

Test(console, a_client_too_far_behind_is_told_how_many_bytes_are_gone, .timeout = 60)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct ft_con_welcome w;
	struct ft_chan *ch;
	uint64_t gone = 0, t0;
	const size_t total = 16u << 20;

	core_init(&k);
	s = server(&port, &key_a, 64 << 10, true, &k);
	ch = raw_connect(port, &key_a, 0, 0, &w);
	/* This client reads nothing while 16 MiB go out: the publisher must not wait. */
	t0 = ms_now();
	publish_stream(s, 0, total);
	cr_assert_lt(ms_now() - t0, 5000, "publishing waited for a client that does not read");
	cr_assert_eq(raw_read_output(ch, 0, total, &gone), total);
	cr_assert_gt(gone, 0, "16 MiB cannot all have been in flight");
	cr_assert_lt(gone, total);
	ft_chan_close(ch);
	ft_console_stop(s);
}

Test(console, history_overflow_is_shown_to_the_user, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct client cl;
	char buf[200];
	const char *want = "\r\n[rewind console: 6000 bytes of output are gone (older than the "
			   "server's history)]\r\n";
	size_t wl = strlen(want);

	core_init(&k);
	s = server(&port, &key_a, 4000, true, &k);
	publish_stream(s, 0, 10000);
	client_start(&cl, &key_a, false, false, (int[]){port, 0});
	ft_console_end(s);
	cr_assert_eq(client_join(&cl, 10000), FT_CONSOLE_OK, "%s", cl.err);
	cr_assert_eq(client_printed(&cl), wl + 4000);
	cr_assert_eq(pread(cl.out_fd, buf, wl, 0), (ssize_t)wl);
	cr_assert_arr_eq(buf, want, wl);
	uint8_t tail[4000];
	cr_assert_eq(pread(cl.out_fd, tail, 4000, (off_t)wl), 4000);
	check_stream(tail, 6000, 4000);
	client_free(&cl);
	ft_console_stop(s);
}

/* Publishes the stream into a server in small pieces until told to stop. */
struct feeder {
	struct ft_console *s;
	uint64_t off, limit;
	atomic_bool stop;
	pthread_t thr;
};

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	uint8_t buf[700];

	while (!atomic_load(&f->stop) && f->off < f->limit) {
		size_t n =
		    f->limit - f->off < sizeof(buf) ? (size_t)(f->limit - f->off) : sizeof(buf);

		stream_fill(buf, f->off, n);
		ft_console_publish(f->s, buf, n);
		f->off += n;
		usleep(200);
	}
	return NULL;
}

Test(console, failover_mid_stream_prints_every_byte_once, .timeout = 60)
{
	int pa, pb;
	struct core k;
	struct ft_console *a, *b;
	struct client cl;
	struct feeder f = {.limit = 400000};
	const size_t total = 600000;

	core_init(&k);
	a = server(&pa, &key_a, 0, true, &k);
	b = server(&pb, &key_a, 0, false, &k);
	/* The backup holds all the output; the primary releases it bit by bit and dies. */
	publish_stream(b, 0, total);
	f.s = a;
	client_start(&cl, &key_a, false, true, (int[]){pa, pb, 0});
	cr_assert_eq(pthread_create(&f.thr, NULL, feeder_main, &f), 0);
	client_wait_printed(&cl, 100000, 20000);
	atomic_store(&f.stop, true);
	pthread_join(f.thr, NULL);
	ft_console_stop(a);
	ft_console_set_live(b, true);
	ft_console_end(b);
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_OK, "%s", cl.err);
	client_check_transcript(&cl, 0, total);
	cr_log_info("failover at %llu of %zu bytes; notices:\n%s", (unsigned long long)f.off, total,
		    cl.notices);
	client_free(&cl);
	ft_console_stop(b);
}

Test(console, a_backup_behind_the_client_sends_from_the_clients_offset, .timeout = 60)
{
	int pa, pb;
	struct core k;
	struct ft_console *a, *b;
	struct client cl;

	core_init(&k);
	a = server(&pa, &key_a, 0, true, &k);
	b = server(&pb, &key_a, 0, false, &k);
	publish_stream(a, 0, 50000);
	publish_stream(b, 0, 20000);
	client_start(&cl, &key_a, false, true, (int[]){pa, pb, 0});
	client_wait_printed(&cl, 50000, 10000);
	/* This time the primary stops serving (it lost the arbiter) rather than dying. */
	ft_console_set_live(b, true);
	ft_console_set_live(a, false);
	nap(100);
	publish_stream(b, 20000, 80000);
	ft_console_end(b);
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_OK, "%s", cl.err);
	client_check_transcript(&cl, 0, 100000);
	cr_assert(strstr(cl.notices, "no longer live"), "%s", cl.notices);
	client_free(&cl);
	ft_console_stop(a);
	ft_console_stop(b);
}

/* Type n bytes of the test text into the client, in pieces, then end input. */
static void type_input(struct client *cl, size_t n)
{
	uint8_t buf[97];

	for (size_t at = 0; at < n;) {
		size_t k = n - at < sizeof(buf) ? n - at : sizeof(buf);

		stream_fill(buf, at + 5, k);
		cr_assert_eq(write(cl->type_fd, buf, k), (ssize_t)k);
		at += k;
		nap(1);
	}
	close(cl->type_fd);
	cl->type_fd = -1;
}

static void core_check_applied(struct core *k, size_t n)
{
	pthread_mutex_lock(&k->mu);
	cr_assert_eq(k->next, n, "applied %llu of %zu typed bytes", (unsigned long long)k->next, n);
	check_stream(k->applied, 5, n);
	pthread_mutex_unlock(&k->mu);
}

Test(console, input_not_acked_before_failover_is_resent_and_applied_once, .timeout = 60)
{
	int pa, pb;
	struct core k;
	struct ft_console *a, *b;
	struct client cl;
	const size_t n = 20000;

	/* One core behind both sides, as the log carries applied input to the backup. */
	core_init(&k);
	k.per_call = 300; /* partial takes: the client must send the rest again */
	k.lose_at = 7000;
	a = server(&pa, &key_a, 0, true, &k);
	b = server(&pb, &key_a, 0, false, &k);
	client_start(&cl, &key_a, true, true, (int[]){pa, pb, 0});
	type_input(&cl, n);
	while (!atomic_load(&k.lost))
		nap(1);
	/* The primary dies having applied input whose ACK the client never got. */
	ft_console_stop(a);
	ft_console_set_live(b, true);
	cr_assert_eq(client_join(&cl, 30000), FT_CONSOLE_OK, "%s", cl.err);
	core_check_applied(&k, n);
	cr_assert_gt(atomic_load(&k.calls), (int)(n / 300), "input went in partial takes");
	client_free(&cl);
	ft_console_stop(b);
}

Test(console, end_of_input_waits_until_all_was_taken, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct client cl;

	core_init(&k);
	k.per_call = 7;
	s = server(&port, &key_a, 0, true, &k);
	client_start(&cl, &key_a, true, false, (int[]){port, 0});
	type_input(&cl, 500);
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_OK, "%s", cl.err);
	core_check_applied(&k, 500);
	client_free(&cl);
	ft_console_stop(s);
}

Test(console, unreachable_and_not_live_addresses_are_skipped, .timeout = 30)
{
	int pa, pb;
	struct core k;
	struct ft_console *a, *b;
	struct client cl;

	core_init(&k);
	a = server(&pa, &key_a, 0, true, &k);
	b = server(&pb, &key_a, 0, false, &k);
	publish_stream(a, 0, 3000);
	publish_stream(b, 0, 3000);
	ft_console_end(a);
	ft_console_end(b);
	client_start(&cl, &key_a, false, true, (int[]){dead_port(), pb, pa, 0});
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_OK, "%s", cl.err);
	client_check_transcript(&cl, 0, 3000);
	cr_assert(strstr(cl.notices, "live, from output offset 0"), "%s", cl.notices);
	client_free(&cl);
	ft_console_stop(a);
	ft_console_stop(b);
}

Test(console, a_wrong_key_is_refused_and_others_still_served, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct client bad, good;
	uint64_t t0 = ms_now();

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	publish_stream(s, 0, 1000);
	client_start(&bad, &key_b, true, false, (int[]){port, 0});
	cr_assert_eq(write(bad.type_fd, "secret", 6), 6);
	cr_assert_eq(client_join(&bad, 20000), FT_CONSOLE_BAD_INPUT, "%s", bad.err);
	cr_assert_lt(ms_now() - t0, 10000, "refused at once, not after the give-up time");
	cr_assert(strstr(bad.err, "handshake"), "%s", bad.err);
	cr_log_info("refused in %llu ms: %s", (unsigned long long)(ms_now() - t0), bad.err);
	cr_assert_eq(client_printed(&bad), 0);
	cr_assert_eq(k.next, 0, "nothing of it reached the core");
	client_free(&bad);

	ft_console_end(s);
	client_start(&good, &key_a, false, false, (int[]){port, 0});
	cr_assert_eq(client_join(&good, 20000), FT_CONSOLE_OK, "%s", good.err);
	client_check_transcript(&good, 0, 1000);
	client_free(&good);
	ft_console_stop(s);
}

Test(console, no_live_side_gives_up_after_the_given_time, .timeout = 30)
{
	int pb;
	struct core k;
	struct ft_console *b;
	struct client cl;
	uint64_t t0 = ms_now();

	core_init(&k);
	b = server(&pb, &key_a, 0, false, &k);
	client_give_up_ms = 1500;
	client_start(&cl, &key_a, false, true, (int[]){pb, dead_port(), 0});
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_HOST, "%s", cl.err);
	cr_assert(strstr(cl.err, "no live side"), "%s", cl.err);
	cr_log_info("gave up after %llu ms: %s", (unsigned long long)(ms_now() - t0), cl.err);
	client_free(&cl);
	ft_console_stop(b);
}

Test(console, bad_addresses_are_a_usage_error, .timeout = 10)
{
	char err[256];

	cr_assert_eq(ft_console_client("127.0.0.1", &key_a, -1, 1, err, sizeof(err)),
		     FT_CONSOLE_USAGE);
	cr_assert(strstr(err, "HOST:PORT"), "%s", err);
	cr_assert_eq(ft_console_client("a:1,,b:2", &key_a, -1, 1, err, sizeof(err)),
		     FT_CONSOLE_USAGE);
	cr_assert_eq(ft_console_client("a:x", &key_a, -1, 1, err, sizeof(err)), FT_CONSOLE_USAGE);
}

Test(console, many_clients_watch_at_once, .timeout = 60)
{
	enum { N = 24 };
	int port;
	struct core k;
	struct ft_console *s;
	static struct client cl[N];

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	publish_stream(s, 0, 10000);
	for (int i = 0; i < N; i++)
		client_start(&cl[i], &key_a, false, false, (int[]){port, 0});
	publish_stream(s, 10000, 190000);
	ft_console_end(s);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(client_join(&cl[i], 30000), FT_CONSOLE_OK, "client %d: %s", i,
			     cl[i].err);
		client_check_transcript(&cl[i], 0, 200000);
		client_free(&cl[i]);
	}
	ft_console_stop(s);
}

/*
 * A relay between client and server that the test controls: it forwards both ways,
 * keeps everything that crossed it, and can be cut at once as a killed host would be.
 */
struct relay {
	int lfd, port, target;
	pthread_t thr;
	pthread_mutex_t mu;
	uint8_t *cap;
	size_t caplen, capcap;
	atomic_bool cut;
};

static void relay_keep(struct relay *r, const uint8_t *p, size_t n)
{
	pthread_mutex_lock(&r->mu);
	if (r->caplen + n > r->capcap) {
		r->capcap = (r->caplen + n) * 2;
		r->cap = realloc(r->cap, r->capcap);
		cr_assert_not_null(r->cap);
	}
	memcpy(r->cap + r->caplen, p, n);
	r->caplen += n;
	pthread_mutex_unlock(&r->mu);
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	int pairs[16][2], np = 0;

	while (!atomic_load(&r->cut)) {
		struct pollfd pf[1 + 32];
		int n = 0;

		pf[n++] = (struct pollfd){r->lfd, POLLIN, 0};
		for (int i = 0; i < np; i++) {
			pf[n++] = (struct pollfd){pairs[i][0], POLLIN, 0};
			pf[n++] = (struct pollfd){pairs[i][1], POLLIN, 0};
		}
		if (poll(pf, (nfds_t)n, 20) <= 0)
			continue;
		if (pf[0].revents && np < 16) {
			struct sockaddr_in sa = {.sin_family = AF_INET,
						 .sin_port = htons((uint16_t)r->target),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int a = accept(r->lfd, NULL, NULL), b = socket(AF_INET, SOCK_STREAM, 0);

			cr_assert_eq(connect(b, (struct sockaddr *)&sa, sizeof(sa)), 0);
			pairs[np][0] = a;
			pairs[np][1] = b;
			np++;
		}
		for (int i = 0; i < np; i++)
			for (int d = 0; d < 2; d++) {
				uint8_t buf[65536];
				ssize_t k;

				if (!pf[1 + 2 * i + d].revents)
					continue;
				k = read(pairs[i][d], buf, sizeof(buf));
				if (k <= 0) {
					shutdown(pairs[i][!d], SHUT_WR);
					continue;
				}
				relay_keep(r, buf, (size_t)k);
				cr_assert_eq(write(pairs[i][!d], buf, (size_t)k), k);
			}
	}
	/* Cut: both ends see the connection reset, nothing more crosses. */
	for (int i = 0; i < np; i++)
		for (int d = 0; d < 2; d++) {
			struct linger lg = {1, 0};

			setsockopt(pairs[i][d], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(pairs[i][d]);
		}
	return NULL;
}

static void relay_start(struct relay *r, int target)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->target = target;
	r->lfd = listen_any(&r->port);
	cr_assert_eq(pthread_create(&r->thr, NULL, relay_main, r), 0);
}

static void relay_cut(struct relay *r)
{
	atomic_store(&r->cut, true);
	pthread_join(r->thr, NULL);
	close(r->lfd); /* from now on connecting is refused, as to a dead host */
}

static bool relay_saw(struct relay *r, const void *s, size_t n)
{
	bool found;

	pthread_mutex_lock(&r->mu);
	found = memmem(r->cap, r->caplen, s, n) != NULL;
	pthread_mutex_unlock(&r->mu);
	return found;
}

Test(console, a_killed_primary_mid_stream_loses_and_repeats_nothing, .timeout = 60)
{
	int pa, pb;
	struct core k;
	struct ft_console *a, *b;
	struct relay r;
	struct client cl;
	struct feeder f = {.limit = 2000000};
	const size_t total = 3000000;
	uint64_t at, t_live, gap;

	core_init(&k);
	a = server(&pa, &key_a, 0, true, &k);
	b = server(&pb, &key_a, total, false, &k); /* all of it kept */
	publish_stream(b, 0, total);
	relay_start(&r, pa);
	f.s = a;
	client_start(&cl, &key_a, false, true, (int[]){r.port, pb, 0});
	cr_assert_eq(pthread_create(&f.thr, NULL, feeder_main, &f), 0);
	client_wait_printed(&cl, 300000, 20000);
	/* The primary's host goes away while it is still producing output; the backup
	 * goes live a while later (failure detection, the arbiter). */
	relay_cut(&r);
	atomic_store(&f.stop, true);
	pthread_join(f.thr, NULL);
	nap(300); /* what had reached the client before the cut is printed by now */
	at = client_printed(&cl);
	nap(100);
	cr_assert_eq(client_printed(&cl), at, "nothing printed while no side is live");
	t_live = ms_now();
	ft_console_set_live(b, true);
	while (client_printed(&cl) == at)
		nap(1);
	gap = ms_now() - t_live;
	cr_assert_lt(gap, 3000, "the client found the live backup only after %llu ms",
		     (unsigned long long)gap);
	ft_console_end(b);
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_OK, "%s", cl.err);
	client_check_transcript(&cl, 0, total);
	free(r.cap);
	cr_log_info("cut at %llu bytes printed, %llu published; output again %llu ms after "
		    "the backup went live; notices:\n%s",
		    (unsigned long long)at, (unsigned long long)f.off, (unsigned long long)gap,
		    cl.notices);
	client_free(&cl);
	ft_console_stop(a);
	ft_console_stop(b);
}

Test(console, typed_input_and_output_never_cross_the_wire_in_clear, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct relay r;
	struct client cl;
	const char *secret = "hunter2-correct-horse-battery-staple";
	const char *shown = "Password accepted: welcome to the guest";

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	relay_start(&r, port);
	ft_console_publish(s, (const uint8_t *)shown, strlen(shown));
	client_start(&cl, &key_a, true, false, (int[]){r.port, 0});
	client_wait_printed(&cl, strlen(shown), 10000);
	cr_assert_eq(write(cl.type_fd, secret, strlen(secret)), (ssize_t)strlen(secret));
	close(cl.type_fd);
	cl.type_fd = -1;
	cr_assert_eq(client_join(&cl, 10000), FT_CONSOLE_OK, "%s", cl.err);
	pthread_mutex_lock(&k.mu);
	cr_assert_eq(k.next, strlen(secret));
	cr_assert_arr_eq(k.applied, secret, strlen(secret), "the core got the typed text");
	pthread_mutex_unlock(&k.mu);
	relay_cut(&r);
	cr_assert_gt(r.caplen, strlen(secret) + strlen(shown), "the relay carried the session");
	cr_assert_not(relay_saw(&r, secret, strlen(secret)), "typed text crossed in clear");
	cr_assert_not(relay_saw(&r, secret, 8), "part of the typed text crossed in clear");
	cr_assert_not(relay_saw(&r, shown, strlen(shown)), "output crossed in clear");
	free(r.cap);
	client_free(&cl);
	ft_console_stop(s);
}

Test(console, terminal_mode_ends_input_at_the_escape_byte, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct client cl;

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	client_escape = 0x1d;
	client_start(&cl, &key_a, true, true, (int[]){port, 0});
	/* A terminal in raw mode: no EOF, the input stays open. */
	cr_assert_eq(write(cl.type_fd, "ls -l\r\x1dnot sent", 15), 15);
	cr_assert_eq(client_join(&cl, 10000), FT_CONSOLE_OK, "%s", cl.err);
	pthread_mutex_lock(&k.mu);
	cr_assert_eq(k.next, 6);
	cr_assert_arr_eq(k.applied, "ls -l\r", 6);
	pthread_mutex_unlock(&k.mu);
	client_free(&cl);
	ft_console_stop(s);
}

Test(console, a_client_breaking_the_protocol_is_dropped_alone, .timeout = 30)
{
	int port;
	struct core k;
	struct ft_console *s;
	struct ft_con_welcome w;
	struct ft_chan *bad, *good;
	uint8_t b[64], type;
	size_t len;
	uint64_t gone = 0;

	core_init(&k);
	s = server(&port, &key_a, 0, true, &k);
	publish_stream(s, 0, 100);
	good = raw_connect(port, &key_a, 0, 0, &w);
	cr_assert_eq(raw_read_output(good, 0, 100, &gone), 100);

	/* Input that does not start at the first unacknowledged byte. */
	bad = raw_connect(port, &key_a, 100, 5, &w);
	cr_assert_eq(ft_chan_send(bad, FT_CON_INPUT, b, ft_con_data_encode(b, 9, b, 3)), 0);
	while (ft_chan_recv(bad, &type, b, sizeof(b), &len, 5000) == 1)
		cr_assert_neq(type, FT_CON_ACK, "a gap in input was acknowledged");
	cr_assert_eq(k.next, 0, "none of it reached the core");
	ft_chan_close(bad);

	/* A record only a server sends. */
	bad = raw_connect(port, &key_a, 100, 0, &w);
	cr_assert_eq(ft_chan_send(bad, FT_CON_OUTPUT, b, ft_con_data_encode(b, 100, b, 3)), 0);
	while (ft_chan_recv(bad, &type, b, sizeof(b), &len, 5000) == 1)
		;
	cr_assert(strlen(ft_chan_error(bad)) > 0, "the server closed it");
	ft_chan_close(bad);

	/* The well-behaved client was not disturbed. */
	publish_stream(s, 100, 100);
	cr_assert_eq(raw_read_output(good, 100, 200, &gone), 200);
	ft_chan_close(good);
	ft_console_stop(s);
}

/* A server that answers HELLO with a WELCOME starting past what the client asked without
 * saying those bytes are gone: the client must stop rather than skip them. */
struct liar {
	int lfd;
	pthread_t thr;
};

static void *liar_main(void *arg)
{
	struct liar *l = arg;
	struct ft_chan *ch;
	struct ft_con_hello h;
	struct ft_con_welcome w = {FT_CON_LIVE, 0, 0, 0};
	uint8_t b[64], type;
	size_t len;
	char err[256];
	int fd = accept(l->lfd, NULL, NULL);

	if (ft_chan_open(fd, &key_a, FT_CHAN_ACCEPTOR, "console", 5000, &ch, err, sizeof(err)) < 0)
		return NULL;
	if (ft_chan_recv(ch, &type, b, sizeof(b), &len, 5000) == 1 &&
	    ft_con_hello_decode(b, len, &h) == 0) {
		w.from = h.out_offset + 5;
		ft_con_welcome_encode(b, &w);
		ft_chan_send(ch, FT_CON_WELCOME, b, FT_CON_WELCOME_BYTES);
		ft_chan_recv(ch, &type, b, sizeof(b), &len, 5000);
	}
	ft_chan_close(ch);
	return NULL;
}

Test(console, a_server_that_would_skip_output_stops_the_client, .timeout = 30)
{
	int port;
	struct liar l;
	struct client cl;

	l.lfd = listen_any(&port);
	cr_assert_eq(pthread_create(&l.thr, NULL, liar_main, &l), 0);
	client_start(&cl, &key_a, false, false, (int[]){port, 0});
	cr_assert_eq(client_join(&cl, 20000), FT_CONSOLE_BAD_INPUT, "%s", cl.err);
	cr_assert(strstr(cl.err, "protocol error"), "%s", cl.err);
	cr_assert_eq(client_printed(&cl), 0);
	pthread_join(l.thr, NULL);
	close(l.lfd);
	client_free(&cl);
}

/* A client that reads slowly (it is busy for 700 ms) when the guest ends: ft_console_drain
 * waits until it has read the rest and BYE and closed, so the stop that follows cuts
 * nobody (the side used to sleep 300 ms and stop). */
struct slow_reader {
	int port;
	uint64_t got;
	uint32_t bye;
};

static void *slow_reader_main(void *arg)
{
	struct slow_reader *r = arg;
	struct ft_con_welcome w;
	struct ft_chan *ch = raw_connect(r->port, &key_a, 0, 0, &w);
	uint8_t *buf = malloc(FT_CON_MAX_RECORD), type;
	size_t len;

	nap(700);
	while (ft_chan_recv(ch, &type, buf, FT_CON_MAX_RECORD, &len, 10000) == 1) {
		if (type == FT_CON_OUTPUT) {
			check_stream(buf + 8, le64(buf), len - 8);
			r->got = le64(buf) + len - 8;
		} else if (type == FT_CON_BYE) {
			uint64_t end;

			cr_assert_eq(ft_con_bye_decode(buf, len, &r->bye, &end), 0);
			break;
		}
	}
	free(buf);
	ft_chan_close(ch);
	return NULL;
}

Test(console, drain_waits_for_a_slow_client_to_read_the_end, .timeout = 30)
{
	struct slow_reader r = {0};
	struct core k;
	struct ft_console *s;
	pthread_t t;

	core_init(&k);
	s = server(&r.port, &key_a, 4u << 20, true, &k);
	cr_assert_eq(pthread_create(&t, NULL, slow_reader_main, &r), 0);
	nap(100); /* it is connected and busy */
	publish_stream(s, 0, 3u << 20);
	ft_console_end(s);
	uint64_t t0 = ms_now();
	cr_assert(ft_console_drain(s, 10000), "drain gave up");
	cr_assert_geq(ms_now() - t0, 400, "drain did not wait for the reader");
	ft_console_stop(s);
	pthread_join(t, NULL);
	cr_assert_eq(r.got, 3u << 20, "the reader got %llu bytes", (unsigned long long)r.got);
	cr_assert_eq(r.bye, FT_CON_BYE_END);
	/* Nothing connected: at once. */
	s = server(&r.port, &key_a, 0, true, &k);
	ft_console_end(s);
	t0 = ms_now();
	cr_assert(ft_console_drain(s, 10000));
	cr_assert_lt(ms_now() - t0, 100);
	ft_console_stop(s);
}
