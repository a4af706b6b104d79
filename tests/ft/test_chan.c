/* unit */
/*
 * test_chan.c: ft/keyfile.c and ft/chan.c, the pair's key files and secure channel.
 *
 * Key files: generate (mode, size, never over an existing file), load, and every refusal
 * (missing, group/other bits, wrong size, not a file). The channel runs over socketpairs
 * and loopback TCP, and for attacks through a relay: two threads between the two ends
 * that pass the handshake through, then cut the stream into records by their length
 * prefix and can replay, reorder, drop, flip a bit in, hold back half of, or lie about the
 * length of one chosen record, while capturing every byte in both directions. Covered:
 * round trips of every size (0 to the largest), wrong key and purpose mismatch failing on
 * both sides, garbage instead of a peer, a truncated record, each tampering killing the
 * channel with nothing of the bad record returned, a recorded session replayed into a
 * new acceptor (and connector) failing the handshake, timeouts (handshake, and a recv
 * that times out mid-record keeps what arrived), no plaintext on the wire, clean close
 * against a cut link, shutdown waking a blocked receiver, the send timeout, and
 * concurrent send/recv in both directions.
 */
#include "ft/chan.h"
#include "ft/ft.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMO 20000 /* handshake timeout: generous, the machine is shared */

static char tmpdir[256];

/* Criterion's own .timeout does not stop a worker stuck in pthread_join here: a hung
 * test dies of SIGALRM instead (reported as a crash). */
static void watchdog(unsigned s)
{
	alarm(s);
}

static void mktmp(void)
{
	watchdog(30);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rewind-test-chan-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rmtmp(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", tmpdir);
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, n), (ssize_t)n);
	fchmod(fd, mode);
	close(fd);
}

/* ---- key files ------------------------------------------------------------------------- */

TestSuite(keyfile, .init = mktmp, .fini = rmtmp, .timeout = 30);

Test(keyfile, generate_then_load)
{
	char path[300], err[256];
	snprintf(path, sizeof path, "%s/vm.key", tmpdir);
	umask(022);
	cr_assert_eq(ft_key_generate(path, err, sizeof err), 0, "%s", err);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_expect_eq(st.st_size, FT_KEY_BYTES);
	struct ft_key k1, k2;
	cr_assert_eq(ft_key_load(path, &k1, err, sizeof err), 0, "%s", err);
	int fd = open(path, O_RDONLY);
	uint8_t raw[FT_KEY_BYTES];
	cr_assert_eq(read(fd, raw, sizeof raw), FT_KEY_BYTES);
	close(fd);
	cr_expect_eq(memcmp(raw, k1.k, FT_KEY_BYTES), 0);

	/* Another key is another 32 random bytes. */
	char path2[300];
	snprintf(path2, sizeof path2, "%s/other.key", tmpdir);
	cr_assert_eq(ft_key_generate(path2, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ft_key_load(path2, &k2, err, sizeof err), 0, "%s", err);
	cr_expect_neq(memcmp(k1.k, k2.k, FT_KEY_BYTES), 0);
}

Test(keyfile, never_replaces_a_key)
{
	char path[300], err[256];
	snprintf(path, sizeof path, "%s/vm.key", tmpdir);
	cr_assert_eq(ft_key_generate(path, err, sizeof err), 0, "%s", err);
	struct ft_key before, after;
	cr_assert_eq(ft_key_load(path, &before, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ft_key_generate(path, err, sizeof err), -1);
	cr_expect(strstr(err, "already exists"), "%s", err);
	cr_assert_eq(ft_key_load(path, &after, err, sizeof err), 0, "%s", err);
	cr_expect_eq(memcmp(before.k, after.k, FT_KEY_BYTES), 0);

	/* Nor through a dangling link. */
	char link_path[300], target[300];
	snprintf(link_path, sizeof link_path, "%s/link.key", tmpdir);
	snprintf(target, sizeof target, "%s/target.key", tmpdir);
	cr_assert_eq(symlink(target, link_path), 0);
	cr_expect_eq(ft_key_generate(link_path, err, sizeof err), -1);
	cr_expect_eq(access(target, F_OK), -1, "keygen wrote through a symlink");
}

Test(keyfile, generate_in_missing_folder)
{
	char err[256];
	cr_assert_eq(ft_key_generate("/nonexistent-rewind/vm.key", err, sizeof err), -1);
	cr_expect(strstr(err, "/nonexistent-rewind/vm.key") && strstr(err, "No such file"), "%s",
		  err);
}

Test(keyfile, load_refusals)
{
	char path[300], err[256];
	struct ft_key k;
	uint8_t bytes[FT_KEY_BYTES + 1] = {1, 2, 3};

	snprintf(path, sizeof path, "%s/missing.key", tmpdir);
	cr_expect_eq(ft_key_load(path, &k, err, sizeof err), -1);
	cr_expect(strstr(err, "does not exist") && strstr(err, "keygen"), "%s", err);

	static const mode_t bad[] = {0644, 0640, 0604, 0620, 0602, 0660, 0666, 0700 | 0070};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(path, sizeof path, "%s/bad%zu.key", tmpdir, i);
		write_file(path, bytes, FT_KEY_BYTES, bad[i]);
		cr_expect_eq(ft_key_load(path, &k, err, sizeof err), -1, "mode %o accepted",
			     bad[i]);
		char want[400];
		snprintf(want, sizeof want, "chmod 600 %s", path);
		cr_expect(strstr(err, want), "mode %o: %s", bad[i], err);
		cr_expect_null(strchr(err, '\n'), "more than one line: %s", err);
	}
	/* 0400 and 0600 are fine. */
	snprintf(path, sizeof path, "%s/ro.key", tmpdir);
	write_file(path, bytes, FT_KEY_BYTES, 0400);
	cr_expect_eq(ft_key_load(path, &k, err, sizeof err), 0, "%s", err);
	cr_expect_eq(k.k[0], 1);
	cr_expect_eq(k.k[2], 3);

	static const size_t sizes[] = {0, 1, FT_KEY_BYTES - 1, FT_KEY_BYTES + 1};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		snprintf(path, sizeof path, "%s/size%zu.key", tmpdir, sizes[i]);
		write_file(path, bytes, sizes[i], 0600);
		cr_expect_eq(ft_key_load(path, &k, err, sizeof err), -1, "size %zu", sizes[i]);
		cr_expect(strstr(err, "not a 32-byte key"), "%s", err);
	}

	snprintf(path, sizeof path, "%s/dir.key", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_expect_eq(ft_key_load(path, &k, err, sizeof err), -1);
	cr_expect(strstr(err, "not a regular file"), "%s", err);
}

/* ---- channel helpers ------------------------------------------------------------------- */

static struct ft_key key_a, key_b;

static void keys(void)
{
	watchdog(120);
	for (int i = 0; i < FT_KEY_BYTES; i++) {
		key_a.k[i] = (uint8_t)(i * 7 + 1);
		key_b.k[i] = (uint8_t)(i * 7 + 1);
	}
	key_b.k[31] ^= 1; /* one bit apart */
}

struct opener {
	int fd;
	const struct ft_key *key;
	enum ft_chan_role role;
	const char *purpose;
	int timeout_ms;
	struct ft_chan *chan;
	int rc;
	char err[256];
};

static void *open_thread(void *arg)
{
	struct opener *o = arg;
	o->rc = ft_chan_open(o->fd, o->key, o->role, o->purpose, o->timeout_ms, &o->chan, o->err,
			     sizeof o->err);
	return NULL;
}

/* Open the connector on cfd and the acceptor on afd at once. */
static void open_both(int cfd, const struct ft_key *ckey, const char *cpurpose, int afd,
		      const struct ft_key *akey, const char *apurpose, struct opener *c,
		      struct opener *a)
{
	*c = (struct opener){cfd, ckey, FT_CHAN_CONNECTOR, cpurpose, TMO, NULL, 0, ""};
	*a = (struct opener){afd, akey, FT_CHAN_ACCEPTOR, apurpose, TMO, NULL, 0, ""};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, open_thread, a), 0);
	open_thread(c);
	pthread_join(t, NULL);
}

static void chan_pair(struct ft_chan **c, struct ft_chan **a, const char *purpose)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct opener oc, oa;
	open_both(sv[0], &key_a, purpose, sv[1], &key_a, purpose, &oc, &oa);
	cr_assert_eq(oc.rc, 0, "connector: %s", oc.err);
	cr_assert_eq(oa.rc, 0, "acceptor: %s", oa.err);
	*c = oc.chan;
	*a = oa.chan;
}

/* Deterministic record contents: record i of a stream. */
static size_t fill_record(uint8_t *buf, uint32_t i, size_t len)
{
	uint32_t x = i * 2654435761u + 1;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[j] = (uint8_t)x;
	}
	return len;
}

static size_t size_of(uint32_t i)
{
	static const size_t fixed[] = {0,
				       1,
				       2,
				       15,
				       16,
				       17,
				       4095,
				       4096,
				       65535,
				       65536,
				       65537,
				       FT_CHAN_MAX_RECORD - 1,
				       FT_CHAN_MAX_RECORD};
	if (i < sizeof fixed / sizeof fixed[0])
		return fixed[i];
	uint32_t x = i * 2246822519u;
	x ^= x >> 15;
	return (x & 7) == 0 ? x % 200000 : x % 600;
}

struct sender {
	struct ft_chan *chan;
	uint32_t n, first;
	int rc;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	uint8_t *buf = malloc(FT_CHAN_MAX_RECORD);
	s->rc = 0;
	for (uint32_t i = s->first; i < s->first + s->n; i++) {
		size_t len = fill_record(buf, i, size_of(i));
		if (ft_chan_send(s->chan, (uint8_t)i, buf, len) != 0) {
			s->rc = -1;
			break;
		}
	}
	free(buf);
	return NULL;
}

/* Receive n records as send_thread sends them; returns how many matched. */
static uint32_t recv_check(struct ft_chan *chan, uint32_t first, uint32_t n)
{
	uint8_t *buf = malloc(FT_CHAN_MAX_RECORD), *want = malloc(FT_CHAN_MAX_RECORD);
	uint32_t ok = 0;
	for (uint32_t i = first; i < first + n; i++) {
		uint8_t type;
		size_t len;
		int r = ft_chan_recv(chan, &type, buf, FT_CHAN_MAX_RECORD, &len, 30000);
		if (r != 1)
			break; /* the caller checks the count, and the reason where it expects one
				*/
		size_t wlen = fill_record(want, i, size_of(i));
		if (type != (uint8_t)i || len != wlen || memcmp(buf, want, len) != 0) {
			cr_log_error("record %u: type %u len %zu, want type %u len %zu", i, type,
				     len, (uint8_t)i, wlen);
			break;
		}
		ok++;
	}
	free(buf);
	free(want);
	return ok;
}

/* ---- round trips ----------------------------------------------------------------------- */

TestSuite(chan, .init = keys, .timeout = 120);

Test(chan, round_trip_every_size)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	struct sender s = {c, 300, 0, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	cr_expect_eq(recv_check(a, 0, 300), 300, "%s", ft_chan_error(a));
	pthread_join(t, NULL);
	cr_expect_eq(s.rc, 0, "%s", ft_chan_error(c));
	/* And the other way. */
	s = (struct sender){a, 100, 1000, 0};
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	cr_expect_eq(recv_check(c, 1000, 100), 100, "%s", ft_chan_error(c));
	pthread_join(t, NULL);
	cr_expect_eq(s.rc, 0, "%s", ft_chan_error(a));
	cr_expect_str_empty(ft_chan_error(c));
	cr_expect_str_empty(ft_chan_error(a));
	ft_chan_close(c);
	ft_chan_close(a);
}

static int listen_loopback(uint16_t *port)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(l, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	cr_assert_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0, "%s", strerror(errno));
	cr_assert_eq(listen(l, 4), 0);
	socklen_t sl = sizeof sin;
	getsockname(l, (struct sockaddr *)&sin, &sl);
	*port = ntohs(sin.sin_port);
	return l;
}

static int connect_loopback(uint16_t port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {
	    .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001), .sin_port = htons(port)};
	cr_assert_eq(connect(s, (struct sockaddr *)&sin, sizeof sin), 0, "%s", strerror(errno));
	return s;
}

Test(chan, round_trip_over_tcp)
{
	uint16_t port;
	int l = listen_loopback(&port);
	int cfd = connect_loopback(port);
	int afd = accept(l, NULL, NULL);
	cr_assert_geq(afd, 0);
	close(l);
	struct opener oc, oa;
	open_both(cfd, &key_a, "stream", afd, &key_a, "stream", &oc, &oa);
	cr_assert_eq(oc.rc, 0, "%s", oc.err);
	cr_assert_eq(oa.rc, 0, "%s", oa.err);
	struct sender s = {oc.chan, 400, 0, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	cr_expect_eq(recv_check(oa.chan, 0, 400), 400, "%s", ft_chan_error(oa.chan));
	pthread_join(t, NULL);
	cr_expect_eq(s.rc, 0);
	ft_chan_close(oc.chan);
	/* A clean close reads as one, not as a cut link. */
	uint8_t type, buf[16];
	size_t len;
	cr_expect_eq(ft_chan_recv(oa.chan, &type, buf, sizeof buf, &len, 10000), -1);
	cr_expect_str_eq(ft_chan_error(oa.chan), "the peer closed the channel");
	ft_chan_close(oa.chan);
}

Test(chan, concurrent_send_and_recv)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	/* Each end sends from one thread while it receives on another. */
	struct sender sc = {c, 3000, 100, 0}, sa = {a, 3000, 50000, 0};
	pthread_t tc, ta;
	cr_assert_eq(pthread_create(&tc, NULL, send_thread, &sc), 0);
	cr_assert_eq(pthread_create(&ta, NULL, send_thread, &sa), 0);
	uint32_t ok_a = recv_check(a, 100, 3000);
	uint32_t ok_c = recv_check(c, 50000, 3000);
	pthread_join(tc, NULL);
	pthread_join(ta, NULL);
	cr_expect_eq(ok_a, 3000, "%s", ft_chan_error(a));
	cr_expect_eq(ok_c, 3000, "%s", ft_chan_error(c));
	cr_expect_eq(sc.rc, 0, "%s", ft_chan_error(c));
	cr_expect_eq(sa.rc, 0, "%s", ft_chan_error(a));
	ft_chan_close(c);
	ft_chan_close(a);
}

/* ---- handshake failures ---------------------------------------------------------------- */

Test(chan, wrong_key_fails_both_sides)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct opener oc, oa;
	open_both(sv[0], &key_a, "stream", sv[1], &key_b, "stream", &oc, &oa);
	cr_expect_eq(oc.rc, -1);
	cr_expect_eq(oa.rc, -1);
	cr_expect_null(oc.chan);
	cr_expect_null(oa.chan);
	cr_expect(strstr(oc.err, "does not hold this key"), "connector: %s", oc.err);
	cr_expect(strstr(oa.err, "does not hold this key"), "acceptor: %s", oa.err);
}

Test(chan, purpose_mismatch_fails_both_sides)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct opener oc, oa;
	open_both(sv[0], &key_a, "console", sv[1], &key_a, "stream", &oc, &oa);
	cr_expect_eq(oc.rc, -1);
	cr_expect_eq(oa.rc, -1);
	cr_expect(strstr(oa.err, "'console' connection where this end expects 'stream'"), "%s",
		  oa.err);
	cr_expect(strstr(oc.err, "'stream' connection where this end expects 'console'"), "%s",
		  oc.err);
}

Test(chan, bad_purpose_refused)
{
	int sv[2];
	char err[256];
	struct ft_chan *c;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_expect_eq(
	    ft_chan_open(sv[0], &key_a, FT_CHAN_CONNECTOR, "has space", 100, &c, err, sizeof err),
	    -1);
	cr_expect(strstr(err, "purpose"), "%s", err);
	cr_expect_eq(fcntl(sv[0], F_GETFD), -1, "the channel did not close its fd on failure");
	close(sv[1]);
}

struct garbage {
	int fd;
	const void *data;
	size_t len;
};

static void *garbage_thread(void *arg)
{
	struct garbage *g = arg;
	/* The channel may hang up before taking it all: no SIGPIPE for that. */
	size_t done = 0;
	while (done < g->len) {
		ssize_t w = send(g->fd, (const char *)g->data + done, g->len - done, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	/* Drain whatever the channel says, then hang up. */
	char buf[512];
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	int fl = fcntl(g->fd, F_GETFL);
	fcntl(g->fd, F_SETFL, fl | O_NONBLOCK);
	while (read(g->fd, buf, sizeof buf) > 0)
		;
	close(g->fd);
	return NULL;
}

static void expect_open_fails(enum ft_chan_role role, const void *data, size_t len,
			      const char *want)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct garbage g = {sv[1], data, len};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, garbage_thread, &g), 0);
	char err[256];
	struct ft_chan *c = (struct ft_chan *)1;
	cr_expect_eq(ft_chan_open(sv[0], &key_a, role, "stream", TMO, &c, err, sizeof err), -1);
	cr_expect_null(c);
	cr_expect(strstr(err, want), "want '%s' in: %s", want, err);
	pthread_join(t, NULL);
}

Test(chan, garbage_instead_of_a_peer)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	expect_open_fails(FT_CHAN_ACCEPTOR, http, sizeof http - 1, "not a rewind ft channel");
	expect_open_fails(FT_CHAN_CONNECTOR, http, sizeof http - 1, "not a rewind ft channel");
	uint8_t rnd[4096];
	fill_record(rnd, 7, sizeof rnd);
	expect_open_fails(FT_CHAN_ACCEPTOR, rnd, sizeof rnd, "not a rewind ft channel");
	/* The right magic, then nonsense. */
	uint8_t fake[200];
	fill_record(fake, 9, sizeof fake);
	memcpy(fake, "RWFTCH1\n", 8);
	fake[40] = 200;
	expect_open_fails(FT_CHAN_ACCEPTOR, fake, sizeof fake, "a purpose of 200 bytes");
	fake[40] = 6;
	memcpy(fake + 41, "stream", 6);
	expect_open_fails(FT_CHAN_ACCEPTOR, fake, sizeof fake, "does not hold this key");
	/* A peer that says nothing and hangs up. */
	expect_open_fails(FT_CHAN_ACCEPTOR, "", 0, "closed the connection during the handshake");
	/* Half a hello, then hang-up. */
	expect_open_fails(FT_CHAN_ACCEPTOR, fake, 20, "closed the connection");
}

static void *echo_thread(void *arg)
{
	int fd = *(int *)arg;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
	close(fd);
	return NULL;
}

Test(chan, reflected_connection_refused)
{
	for (int role = 0; role < 2; role++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, echo_thread, &sv[1]), 0);
		char err[256];
		struct ft_chan *c;
		cr_expect_eq(ft_chan_open(sv[0], &key_a, (enum ft_chan_role)role, "stream", TMO, &c,
					  err, sizeof err),
			     -1);
		cr_expect(strstr(err, "sent back this end's own hello"), "%s", err);
		pthread_join(t, NULL);
	}
}

Test(chan, handshake_timeout)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char err[256];
	struct ft_chan *c;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(
	    ft_chan_open(sv[0], &key_a, FT_CHAN_ACCEPTOR, "stream", 300, &c, err, sizeof err), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_expect(strstr(err, "timed out after 300 ms"), "%s", err);
	cr_expect(ms >= 290 && ms < 5000, "took %.0f ms", ms);
	close(sv[1]);
}

/* ---- the relay ------------------------------------------------------------------------- */

enum tamper { PASS, REPLAY, REORDER, DROP, FLIP, HOLD, BIGLEN, CUT };

struct relay;
struct dir {
	struct relay *r;
	int in, out;
	int d; /* 0: connector to acceptor, 1: back */
	uint8_t *cap;
	size_t caplen, capcap;
};

struct relay {
	size_t hs; /* handshake bytes per direction before the records */
	enum tamper mode;
	int dir;	/* which direction to tamper with */
	uint32_t k;	/* which record (0 is the channel's own ready record) */
	ssize_t cut_at; /* CUT: bytes of record k passed before the link is cut (-1: half) */
	int hold_pipe[2];
	struct dir d[2];
	pthread_t t[2];
	int cfd, afd; /* the ends for the channels */
};

static void capture(struct dir *d, const uint8_t *b, size_t n)
{
	if (d->caplen + n > d->capcap) {
		d->capcap = (d->caplen + n) * 2;
		d->cap = realloc(d->cap, d->capcap);
	}
	memcpy(d->cap + d->caplen, b, n);
	d->caplen += n;
}

static int rd(int fd, uint8_t *b, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int wr(int fd, const uint8_t *b, size_t n)
{
	return send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void *relay_thread(void *arg)
{
	struct dir *d = arg;
	struct relay *r = d->r;
	bool mine = r->dir == d->d;
	/* The hello, then the proof and stream header: each waits for the other side's. */
	uint8_t *hs = malloc(r->hs);
	size_t part[2] = {r->hs - 56, 56};
	for (int p = 0; p < 2; p++) {
		if (rd(d->in, hs, part[p]) < 0 || wr(d->out, hs, part[p]) < 0)
			goto done;
		capture(d, hs, part[p]);
	}
	uint8_t *held = NULL;
	size_t heldlen = 0;
	for (uint32_t i = 0;; i++) {
		uint8_t h[4];
		if (rd(d->in, h, 4) < 0)
			break;
		size_t len = (size_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		uint8_t *rec = malloc(4 + len);
		memcpy(rec, h, 4);
		if (rd(d->in, rec + 4, len) < 0) {
			free(rec);
			break;
		}
		capture(d, rec, 4 + len);
		int w = 0;
		if (!mine || i < r->k || r->mode == PASS) {
			w = wr(d->out, rec, 4 + len);
		} else if (i == r->k) {
			switch (r->mode) {
			case REPLAY:
				w = wr(d->out, rec, 4 + len) | wr(d->out, rec, 4 + len);
				break;
			case REORDER:
				held = malloc(4 + len);
				memcpy(held, rec, 4 + len);
				heldlen = 4 + len;
				break;
			case DROP:
				break;
			case FLIP:
				rec[4 + len / 2] ^= 0x10;
				w = wr(d->out, rec, 4 + len);
				break;
			case HOLD: {
				size_t half = (4 + len) / 2;
				char go;
				w = wr(d->out, rec, half);
				if (read(r->hold_pipe[0], &go, 1) != 1)
					w = -1;
				w |= wr(d->out, rec + half, 4 + len - half);
				break;
			}
			case BIGLEN: {
				uint8_t big[4] = {0x7f, 0xff, 0xff, 0xff};
				w = wr(d->out, big, 4) | wr(d->out, rec + 4, len);
				break;
			}
			case CUT:
				w = wr(d->out, rec,
				       r->cut_at >= 0 ? (size_t)r->cut_at : (4 + len) / 2);
				free(rec);
				goto done;
			case PASS:
				break;
			}
		} else {
			/* REORDER: the record after the held one goes first. */
			if (held && i == r->k + 1) {
				w = wr(d->out, rec, 4 + len) | wr(d->out, held, heldlen);
				free(held);
				held = NULL;
			} else {
				w = wr(d->out, rec, 4 + len);
			}
		}
		free(rec);
		if (w)
			break;
	}
	free(held);
done:
	free(hs);
	/* A relay that stops cuts the whole link, as a dead middlebox would. */
	shutdown(d->out, SHUT_RDWR);
	shutdown(d->in, SHUT_RDWR);
	return NULL;
}

static void relay_start(struct relay *r, const char *purpose, enum tamper mode, int dir, uint32_t k,
			ssize_t cut_at)
{
	memset(r, 0, sizeof *r);
	r->cut_at = cut_at;
	r->hs = 8 + 32 + 1 + strlen(purpose) + 32 + 24;
	r->mode = mode;
	r->dir = dir;
	r->k = k;
	cr_assert_eq(pipe(r->hold_pipe), 0);
	int s1[2], s2[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s1), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s2), 0);
	r->cfd = s1[0];
	r->afd = s2[0];
	r->d[0] = (struct dir){r, s1[1], s2[1], 0, NULL, 0, 0};
	r->d[1] = (struct dir){r, s2[1], s1[1], 1, NULL, 0, 0};
	cr_assert_eq(pthread_create(&r->t[0], NULL, relay_thread, &r->d[0]), 0);
	cr_assert_eq(pthread_create(&r->t[1], NULL, relay_thread, &r->d[1]), 0);
}

/* After both channels are closed. */
static void relay_join(struct relay *r)
{
	pthread_join(r->t[0], NULL);
	pthread_join(r->t[1], NULL);
	close(r->d[0].in);
	close(r->d[1].in);
	close(r->hold_pipe[0]);
	close(r->hold_pipe[1]);
}

static void relay_free(struct relay *r)
{
	free(r->d[0].cap);
	free(r->d[1].cap);
}

static void relay_pair(struct relay *r, const char *purpose, enum tamper mode, int dir, uint32_t k,
		       ssize_t cut_at, struct ft_chan **c, struct ft_chan **a)
{
	relay_start(r, purpose, mode, dir, k, cut_at);
	struct opener oc, oa;
	open_both(r->cfd, &key_a, purpose, r->afd, &key_a, purpose, &oc, &oa);
	cr_assert_eq(oc.rc, 0, "connector: %s", oc.err);
	cr_assert_eq(oa.rc, 0, "acceptor: %s", oa.err);
	*c = oc.chan;
	*a = oa.chan;
}

/*
 * Send 10 records from one end through a relay that tampers with record k (counting the
 * channel's ready record as 0, so user record i is relay record i+1); the receiver must
 * get exactly the records before the tampered one, then a dead channel whose reason
 * contains want.
 */
static void tamper_case(enum tamper mode, int dir, uint32_t k, uint32_t good, const char *want)
{
	struct relay r;
	struct ft_chan *c, *a;
	relay_pair(&r, "stream", mode, dir, k, -1, &c, &a);
	struct ft_chan *tx = dir == 0 ? c : a, *rx = dir == 0 ? a : c;
	struct sender s = {tx, 10, 20, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	uint32_t ok = recv_check(rx, 20, 10);
	cr_expect_eq(ok, good, "mode %d dir %d: %u good records, want %u", mode, dir, ok, good);
	uint8_t type;
	size_t len;
	uint8_t *buf = malloc(FT_CHAN_MAX_RECORD);
	cr_expect_eq(ft_chan_recv(rx, &type, buf, FT_CHAN_MAX_RECORD, &len, 1000), -1);
	cr_expect(strstr(ft_chan_error(rx), want), "mode %d: want '%s' in: %s", mode, want,
		  ft_chan_error(rx));
	/* Dead stays dead. */
	cr_expect_eq(ft_chan_recv(rx, &type, buf, FT_CHAN_MAX_RECORD, &len, 0), -1);
	free(buf);
	pthread_join(t, NULL);
	ft_chan_close(c);
	ft_chan_close(a);
	relay_join(&r);
	relay_free(&r);
}

Test(chan, tampered_records_kill_the_channel)
{
	for (int dir = 0; dir < 2; dir++) {
		tamper_case(REPLAY, dir, 3, 3, "failed authentication");
		tamper_case(REORDER, dir, 3, 2, "failed authentication");
		tamper_case(DROP, dir, 5, 4, "failed authentication");
		tamper_case(FLIP, dir, 4, 3, "failed authentication");
		tamper_case(FLIP, dir, 1, 0, "failed authentication");
		tamper_case(BIGLEN, dir, 2, 1, "garbage from the peer: a record of 2147483647");
		tamper_case(CUT, dir, 6, 5, "in the middle of a record");
	}
}

/* A link cut at every byte of a record: the records before it arrive whole, then the
 * channel dies; nothing of the cut record is ever returned. */
Test(chan, cut_at_every_byte_of_a_record)
{
	const size_t body = 20, wire = 4 + 1 + body + 17;
	for (size_t at = 0; at < wire; at++) {
		struct relay r;
		struct ft_chan *c, *a;
		relay_pair(&r, "stream", CUT, 0, 3, (ssize_t)at, &c, &a);
		uint8_t rec[20], buf[64], type;
		size_t len;
		for (uint8_t i = 0; i < 3; i++) {
			memset(rec, 'a' + i, body);
			cr_assert_eq(ft_chan_send(c, i, rec, body), 0, "%s", ft_chan_error(c));
		}
		for (uint8_t i = 0; i < 2; i++) {
			cr_assert_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), 1,
				     "cut at %zu: %s", at, ft_chan_error(a));
			cr_expect(type == i && len == body && buf[0] == 'a' + i);
		}
		cr_expect_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), -1,
			     "cut at %zu: the cut record was returned", at);
		cr_expect(strstr(ft_chan_error(a), at == 0 ? "without closing the channel"
							   : "in the middle of a record"),
			  "cut at %zu: %s", at, ft_chan_error(a));
		ft_chan_close(c);
		ft_chan_close(a);
		relay_join(&r);
		relay_free(&r);
	}
}

/* Signals that interrupt every wait (poll never restarts) change nothing. */
static void on_usr1(int sig)
{
	(void)sig;
}

struct pester {
	pthread_t target[2];
	atomic_bool stop;
	unsigned sent;
};

static void *pester_thread(void *arg)
{
	struct pester *p = arg;
	struct timespec ts = {0, 50 * 1000};
	while (!atomic_load(&p->stop)) {
		pthread_kill(p->target[p->sent++ & 1], SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

Test(chan, interrupted_by_signals)
{
	struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	struct sender s = {c, 300, 0, 0};
	struct pester p = {.sent = 0};
	atomic_init(&p.stop, false);
	pthread_t ts, tp;
	cr_assert_eq(pthread_create(&ts, NULL, send_thread, &s), 0);
	p.target[0] = ts;
	p.target[1] = pthread_self();
	cr_assert_eq(pthread_create(&tp, NULL, pester_thread, &p), 0);
	uint32_t ok = recv_check(a, 0, 300);
	pthread_join(ts, NULL);
	atomic_store(&p.stop, true);
	pthread_join(tp, NULL);
	cr_expect_eq(ok, 300, "%s", ft_chan_error(a));
	cr_expect_eq(s.rc, 0, "%s", ft_chan_error(c));
	cr_log_info("%u signals during the round trip", p.sent);
	cr_expect_gt(p.sent, 10);
	ft_chan_close(c);
	ft_chan_close(a);
}

Test(chan, tampered_ready_record_fails_the_handshake)
{
	for (int dir = 0; dir < 2; dir++) {
		struct relay r;
		relay_start(&r, "stream", FLIP, dir, 0, -1);
		struct opener oc, oa;
		open_both(r.cfd, &key_a, "stream", r.afd, &key_a, "stream", &oc, &oa);
		struct opener *victim = dir == 0 ? &oa : &oc;
		cr_expect_eq(victim->rc, -1);
		cr_expect(strstr(victim->err, "failed authentication during the handshake"), "%s",
			  victim->err);
		/* The other side may have finished first; either way it is told at once. */
		struct opener *other = dir == 0 ? &oc : &oa;
		if (other->rc == 0)
			ft_chan_close(other->chan);
		relay_join(&r);
		relay_free(&r);
	}
}

Test(chan, recv_timeout_keeps_a_partial_record)
{
	struct relay r;
	struct ft_chan *c, *a;
	relay_pair(&r, "stream", HOLD, 0, 2, -1, &c, &a);
	uint8_t want[3000], buf[3000], type;
	size_t len;
	fill_record(want, 1, 1000);
	fill_record(want + 1000, 2, 2000);
	cr_assert_eq(ft_chan_send(c, 1, want, 1000), 0);
	cr_assert_eq(ft_chan_send(c, 2, want + 1000, 2000), 0);
	cr_assert_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), 1);
	cr_expect_eq(len, 1000);
	/* Half of the second record is there; the rest is held back by the relay. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 200), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_expect(ms >= 190 && ms < 5000, "timeout took %.0f ms", ms);
	cr_expect_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 0), 0);
	cr_expect_str_empty(ft_chan_error(a));
	cr_assert_eq(write(r.hold_pipe[1], "g", 1), 1);
	cr_assert_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), 1, "%s",
		     ft_chan_error(a));
	cr_expect_eq(type, 2);
	cr_expect_eq(len, 2000);
	cr_expect_eq(memcmp(buf, want + 1000, 2000), 0);
	ft_chan_close(c);
	ft_chan_close(a);
	relay_join(&r);
	relay_free(&r);
}

Test(chan, no_plaintext_on_the_wire)
{
	struct relay r;
	struct ft_chan *c, *a;
	relay_pair(&r, "console", PASS, 0, 0, -1, &c, &a);
	static const char secret[] = "my password is hunter2-correct-horse";
	uint8_t buf[256], type;
	size_t len;
	for (int i = 0; i < 50; i++) {
		/* Typed one key at a time, and whole. */
		const char *p = i < 36 ? secret + i : secret;
		size_t n = i < 36 ? 1 : sizeof secret - 1;
		cr_assert_eq(ft_chan_send(c, 'i', p, n), 0);
		cr_assert_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), 1);
		cr_assert_eq(len, n);
		cr_assert_eq(memcmp(buf, p, n), 0);
		cr_assert_eq(ft_chan_send(a, 'o', p, n), 0);
		cr_assert_eq(ft_chan_recv(c, &type, buf, sizeof buf, &len, 10000), 1);
	}
	ft_chan_close(c);
	ft_chan_close(a);
	relay_join(&r);
	for (int d = 0; d < 2; d++) {
		cr_expect_gt(r.d[d].caplen, 50 * (4 + 1 + 17)); /* every record went by */
		/* No 4-byte piece of the secret, and not the key, anywhere. */
		for (size_t off = 0; off + 4 <= sizeof secret - 1; off++)
			cr_expect_null(memmem(r.d[d].cap, r.d[d].caplen, secret + off, 4),
				       "'%.4s' on the wire", secret + off);
		cr_expect_null(memmem(r.d[d].cap, r.d[d].caplen, key_a.k, 8));
	}
	relay_free(&r);
}

/* Feed bytes captured from an earlier session to a fresh end, and answer nothing else. */
static void replay_session(enum ft_chan_role role, const uint8_t *bytes, size_t n)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct garbage g = {sv[1], bytes, n};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, garbage_thread, &g), 0);
	char err[256];
	struct ft_chan *c;
	cr_expect_eq(ft_chan_open(sv[0], &key_a, role, "stream", TMO, &c, err, sizeof err), -1,
		     "a replayed session was accepted");
	cr_expect(strstr(err, "does not hold this key"), "%s", err);
	pthread_join(t, NULL);
}

Test(chan, replayed_session_fails_the_handshake)
{
	struct relay r;
	struct ft_chan *c, *a;
	relay_pair(&r, "stream", PASS, 0, 0, -1, &c, &a);
	struct sender s = {c, 30, 0, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	cr_assert_eq(recv_check(a, 0, 30), 30, "%s", ft_chan_error(a));
	pthread_join(t, NULL);
	s = (struct sender){a, 30, 0, 0};
	cr_assert_eq(pthread_create(&t, NULL, send_thread, &s), 0);
	cr_assert_eq(recv_check(c, 0, 30), 30, "%s", ft_chan_error(c));
	pthread_join(t, NULL);
	ft_chan_close(c);
	ft_chan_close(a);
	relay_join(&r);
	/* What the connector sent, to a new acceptor; what the acceptor sent, to a new
	 * connector. Same key, same purpose: only the fresh nonces stop them. */
	replay_session(FT_CHAN_ACCEPTOR, r.d[0].cap, r.d[0].caplen);
	replay_session(FT_CHAN_CONNECTOR, r.d[1].cap, r.d[1].caplen);
	relay_free(&r);
}

/* ---- ends of a channel ----------------------------------------------------------------- */

Test(chan, cut_link_reads_differently_from_close)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "status");
	uint8_t type, buf[16];
	size_t len;
	/* Kill the connector's socket under it, as a dying process would. */
	shutdown(ft_chan_fd(c), SHUT_RDWR);
	cr_expect_eq(ft_chan_recv(a, &type, buf, sizeof buf, &len, 10000), -1);
	cr_expect(strstr(ft_chan_error(a), "without closing the channel"), "%s", ft_chan_error(a));
	cr_expect_eq(ft_chan_send(a, 1, "x", 1), -1);
	ft_chan_close(c);
	ft_chan_close(a);
}

Test(chan, record_larger_than_buffer)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	uint8_t big[100] = {0}, small[50], type;
	size_t len;
	cr_assert_eq(ft_chan_send(c, 1, big, sizeof big), 0);
	cr_expect_eq(ft_chan_recv(a, &type, small, sizeof small, &len, 10000), -1);
	cr_expect(strstr(ft_chan_error(a), "100 bytes does not fit the 50-byte buffer"), "%s",
		  ft_chan_error(a));
	/* Too large to send at all. */
	uint8_t *huge = calloc(1, FT_CHAN_MAX_RECORD + 1);
	cr_expect_eq(ft_chan_send(c, 1, huge, FT_CHAN_MAX_RECORD + 1), -1);
	cr_expect(strstr(ft_chan_error(c), "larger than the channel's largest"), "%s",
		  ft_chan_error(c));
	free(huge);
	ft_chan_close(c);
	ft_chan_close(a);
}

struct blocked {
	struct ft_chan *chan;
	int rc;
};

static void *blocked_recv(void *arg)
{
	struct blocked *b = arg;
	uint8_t type, buf[16];
	size_t len;
	b->rc = ft_chan_recv(b->chan, &type, buf, sizeof buf, &len, -1);
	return NULL;
}

Test(chan, shutdown_wakes_a_blocked_receiver)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	struct blocked b = {a, 99};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, blocked_recv, &b), 0);
	struct timespec ts = {0, 100 * 1000 * 1000};
	nanosleep(&ts, NULL);
	ft_chan_shutdown(a, "no heartbeat for 1000 ms");
	pthread_join(t, NULL);
	cr_expect_eq(b.rc, -1);
	cr_expect_str_eq(ft_chan_error(a), "no heartbeat for 1000 ms");
	/* The peer sees its link go. */
	uint8_t type, buf[16];
	size_t len;
	cr_expect_eq(ft_chan_recv(c, &type, buf, sizeof buf, &len, 10000), -1);
	ft_chan_close(c);
	ft_chan_close(a);
}

Test(chan, send_timeout_when_the_peer_does_not_read)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	ft_chan_set_send_timeout(c, 200);
	uint8_t *buf = calloc(1, 65536);
	int rc = 0, i;
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = ft_chan_send(c, 1, buf, 65536);
	free(buf);
	cr_expect_eq(rc, -1, "a peer that never reads took %d records", i);
	cr_expect(strstr(ft_chan_error(c), "send timed out"), "%s", ft_chan_error(c));
	ft_chan_close(c);
	ft_chan_close(a);
}

static void on_sigpipe(int sig)
{
	(void)sig;
	abort();
}

Test(chan, no_sigpipe)
{
	signal(SIGPIPE, on_sigpipe);
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "stream");
	ft_chan_close(a);
	uint8_t buf[4096] = {0};
	int rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = ft_chan_send(c, 1, buf, sizeof buf);
	cr_expect_eq(rc, -1);
	cr_expect(strstr(ft_chan_error(c), "closed"), "%s", ft_chan_error(c));
	ft_chan_close(c);
}

/* The stream's link over a channel (ft_link_chan): a link killed with a reason is dead
 * with that reason, on the thread that was waiting in recv too (a bare shutdown of the
 * socket made it "the peer closed the connection", which sent readers of the log after
 * the wrong side). */
struct blocked_link {
	struct ft_link l;
	int rc;
};

static void *blocked_link_recv(void *arg)
{
	struct blocked_link *b = arg;
	uint8_t type, buf[16];
	size_t len;
	b->rc = b->l.ops->recv(b->l.opaque, &type, buf, sizeof buf, &len, 10000);
	return NULL;
}

Test(chan, link_shut_says_why)
{
	struct ft_chan *c, *a;
	chan_pair(&c, &a, "ft");
	struct blocked_link b = {.rc = 99};
	ft_link_chan(&b.l, a);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, blocked_link_recv, &b), 0);
	struct timespec ts = {0, 100 * 1000 * 1000};
	nanosleep(&ts, NULL);
	b.l.ops->shut(b.l.opaque, "no word from the backup for 1003 ms");
	pthread_join(t, NULL);
	cr_expect_eq(b.rc, -1);
	cr_expect_str_eq(b.l.ops->error(b.l.opaque), "no word from the backup for 1003 ms");
	cr_expect_eq(b.l.ops->send(b.l.opaque, 5, "x", 1), -1);
	ft_chan_close(c);
	ft_chan_close(a);
}
