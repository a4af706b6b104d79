/*
 * chan.c: the ft pair's secure channel (chan.h; docs/ft-security.md has the protocol and
 * why it holds).
 *
 * Handshake, both sides at once (neither waits for the other before it speaks):
 *   1. hello: magic "RWFTCH1\n", a fresh 32-byte random nonce, the purpose (length byte
 *      and bytes). A different magic is not an ft endpoint; a different purpose is
 *      refused by name before any key is used.
 *   2. Both compute the transcript hash T = BLAKE2b(label, purpose, connector nonce,
 *      acceptor nonce) and a session master key BLAKE2b keyed by the pre-shared key
 *      over T; from it (crypto_kdf) one secretstream key per direction and one proof
 *      per role. Each side sends its proof and its secretstream header, and checks the
 *      peer's proof in constant time: only a holder of the key computes it, and only for
 *      these two nonces.
 *   3. Each side sends one "ready" record through its secretstream and waits for the
 *      peer's, so ft_chan_open succeeds only when both ends accepted.
 * Records: a 4-byte big-endian length of the ciphertext, then the secretstream
 * ciphertext of (type byte, body). The length is checked against the largest record
 * before anything is allocated or read. ft_chan_close sends a FINAL-tagged record, so a
 * clean close reads differently from a cut connection.
 *
 * The socket is non-blocking from ft_chan_open on; every wait is a poll() with the
 * caller's deadline. Received bytes stay in the channel's buffer across calls, so a
 * ft_chan_recv that times out mid-record loses nothing.
 */
#include "ft/chan.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SS_ABYTES   crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HEADER   crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_TAG_MSG  crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define SS_TAG_FIN  crypto_secretstream_xchacha20poly1305_TAG_FINAL
#define HELLO_MAGIC "RWFTCH1\n"
#define MAGIC_LEN   8
#define NONCE_LEN   32
#define PROOF_LEN   32
#define HELLO_FIXED (MAGIC_LEN + NONCE_LEN + 1)
#define MAX_CIPHER  (FT_CHAN_MAX_RECORD + 1 + SS_ABYTES)
#define READY_BODY  "ready"
#define KDF_CONTEXT "rwftchan"
enum { KDF_C2A = 1, KDF_A2C = 2, KDF_PROOF_C = 3, KDF_PROOF_A = 4 };

/* What the receiver reads at least per recv(): small records come many to a syscall. */
#define RBUF_MIN (64u << 10)

struct ft_chan {
	int fd;
	atomic_bool dead;
	bool opening; /* in ft_chan_open: errors say "during the handshake" */
	char purpose[FT_CHAN_MAX_PURPOSE + 1];
	pthread_mutex_t err_lock;
	char err[256];

	pthread_mutex_t send_lock; /* tx, sbuf, pbuf_tx */
	crypto_secretstream_xchacha20poly1305_state tx;
	uint8_t *sbuf; /* length prefix and ciphertext of the record being sent */
	uint8_t *stx;  /* its plaintext: type byte and body */
	size_t scap;   /* capacity of each */
	atomic_int send_timeout_ms;

	pthread_mutex_t recv_lock; /* rx, rbuf, ptx */
	crypto_secretstream_xchacha20poly1305_state rx;
	uint8_t *rbuf; /* received bytes: [rstart, rend) not yet consumed */
	size_t rcap, rstart, rend;
	uint8_t *rtx; /* plaintext of the record being received */
	size_t rtxcap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* What is left of deadline, as a poll() timeout. */
static int remaining(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

/* The channel is dead from here on: keep the first reason, wake every waiter (and the
 * peer) by shutting the socket down. Returns -1 for the caller to pass on. */
static int die(struct ft_chan *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(struct ft_chan *c, const char *fmt, ...)
{
	pthread_mutex_lock(&c->err_lock);
	if (!atomic_load(&c->dead)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof c->err, fmt, ap);
		va_end(ap);
		atomic_store(&c->dead, true);
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->err_lock);
	return -1;
}

static const char *when(const struct ft_chan *c)
{
	return c->opening ? " during the handshake" : "";
}

/* ---- raw bytes ------------------------------------------------------------------------- */

/* Write all of buf before deadline. */
static int write_all(struct ft_chan *c, const uint8_t *buf, size_t n, int64_t deadline)
{
	size_t done = 0;
	while (done < n) {
		if (atomic_load(&c->dead))
			return -1;
		ssize_t w = send(c->fd, buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			int t = remaining(deadline);
			int r = poll(&p, 1, t);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return die(c, "poll: %s", strerror(errno));
			if (r == 0 && t == 0)
				return die(c, "%s: the peer took no data for too long%s",
					   c->opening ? "handshake timed out" : "send timed out",
					   c->opening ? " (is it a rewind ft endpoint?)"
						      : " (it is not reading)");
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return die(c, "the peer closed the connection%s", when(c));
		return die(c, "send: %s", w < 0 ? strerror(errno) : "sent nothing");
	}
	return 0;
}

/* Make room in rbuf for total bytes from rstart on (fewer than that are there now). */
static int rbuf_reserve(struct ft_chan *c, size_t total)
{
	if (c->rcap - c->rstart >= total)
		return 0;
	if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	if (c->rcap >= total)
		return 0;
	size_t want = total > RBUF_MIN ? total : RBUF_MIN;
	uint8_t *nb = realloc(c->rbuf, want);
	if (!nb)
		return die(c, "out of memory for a %zu-byte record", total);
	c->rbuf = nb;
	c->rcap = want;
	return 0;
}

/* Read what the socket holds (at least one byte) before deadline.
 * Returns 1, 0 on timeout, -1 when dead. */
static int read_some(struct ft_chan *c, int64_t deadline)
{
	for (;;) {
		if (atomic_load(&c->dead))
			return -1;
		ssize_t n = recv(c->fd, c->rbuf + c->rend, c->rcap - c->rend, MSG_DONTWAIT);
		if (n > 0) {
			c->rend += (size_t)n;
			return 1;
		}
		if (n == 0) {
			if (c->rend > c->rstart)
				return die(c,
					   "the peer closed the connection in the middle of a "
					   "%s (%zu bytes of it arrived)",
					   c->opening ? "handshake message" : "record",
					   c->rend - c->rstart);
			return die(c, "the peer closed the connection%s%s", when(c),
				   c->opening ? " (it may hold another key)"
					      : " without closing the channel (it died, or the "
						"link was cut)");
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd p = {.fd = c->fd, .events = POLLIN};
			int t = remaining(deadline);
			int r = poll(&p, 1, t);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return die(c, "poll: %s", strerror(errno));
			if (r == 0 && t == 0)
				return 0;
			continue;
		}
		if (errno == ECONNRESET)
			return die(c, "the connection was reset by the peer%s", when(c));
		return die(c, "receive: %s", strerror(errno));
	}
}

/* Have at least n unconsumed bytes in rbuf. Returns 1, 0 on timeout, -1 when dead. */
static int fill(struct ft_chan *c, size_t n, int64_t deadline)
{
	while (c->rend - c->rstart < n) {
		if (rbuf_reserve(c, n) < 0)
			return -1;
		int r = read_some(c, deadline);
		if (r <= 0)
			return r;
	}
	return 1;
}

/* ---- records --------------------------------------------------------------------------- */

static int send_record(struct ft_chan *c, uint8_t type, const void *body, size_t len,
		       unsigned char tag, int64_t deadline)
{
	size_t clen = 1 + len + SS_ABYTES;
	if (clen + 4 > c->scap) {
		uint8_t *nb = realloc(c->sbuf, clen + 4);
		if (!nb)
			return die(c, "out of memory for a %zu-byte record", len);
		c->sbuf = nb;
		nb = realloc(c->stx, clen + 4);
		if (!nb)
			return die(c, "out of memory for a %zu-byte record", len);
		c->stx = nb;
		c->scap = clen + 4;
	}
	c->stx[0] = type;
	if (len)
		memcpy(c->stx + 1, body, len);
	c->sbuf[0] = (uint8_t)(clen >> 24);
	c->sbuf[1] = (uint8_t)(clen >> 16);
	c->sbuf[2] = (uint8_t)(clen >> 8);
	c->sbuf[3] = (uint8_t)clen;
	crypto_secretstream_xchacha20poly1305_push(&c->tx, c->sbuf + 4, NULL, c->stx, 1 + len, NULL,
						   0, tag);
	sodium_memzero(c->stx, 1 + len);
	return write_all(c, c->sbuf, clen + 4, deadline);
}

/* Returns 1 with the record, 0 on timeout (what arrived stays buffered), -1 when dead. */
static int recv_record(struct ft_chan *c, uint8_t *type, void *buf, size_t cap, size_t *len,
		       int64_t deadline)
{
	int r = fill(c, 4, deadline);
	if (r <= 0)
		return r;
	const uint8_t *h = c->rbuf + c->rstart;
	size_t clen = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	if (clen < 1 + SS_ABYTES || clen > MAX_CIPHER)
		return die(c,
			   "garbage from the peer%s: a record of %zu bytes (the channel's are "
			   "%u to %u)",
			   when(c), clen, (unsigned)(1 + SS_ABYTES), (unsigned)MAX_CIPHER);
	size_t body = clen - 1 - SS_ABYTES;
	if (body > cap)
		return die(c, "a record of %zu bytes does not fit the %zu-byte buffer", body, cap);
	r = fill(c, 4 + clen, deadline);
	if (r <= 0)
		return r;
	if (clen - SS_ABYTES > c->rtxcap) {
		uint8_t *nb = realloc(c->rtx, clen);
		if (!nb)
			return die(c, "out of memory for a %zu-byte record", body);
		c->rtx = nb;
		c->rtxcap = clen;
	}
	unsigned long long mlen;
	unsigned char tag;
	if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, c->rtx, &mlen, &tag,
						       c->rbuf + c->rstart + 4, clen, NULL, 0) != 0)
		return die(c,
			   "a record failed authentication%s: tampered with, replayed, "
			   "reordered, or not from this session",
			   when(c));
	c->rstart += 4 + clen;
	if (tag == SS_TAG_FIN) {
		sodium_memzero(c->rtx, (size_t)mlen);
		return die(c, "the peer closed the channel");
	}
	if (tag != SS_TAG_MSG) {
		sodium_memzero(c->rtx, (size_t)mlen);
		return die(c, "the peer sent a record with an unknown tag %u", tag);
	}
	*type = c->rtx[0];
	if (body)
		memcpy(buf, c->rtx + 1, body);
	*len = body;
	sodium_memzero(c->rtx, (size_t)mlen);
	return 1;
}

/* ---- handshake ------------------------------------------------------------------------- */

static bool purpose_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > FT_CHAN_MAX_PURPOSE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return false;
	return true;
}

static void sanitize(char *out, size_t outlen, const uint8_t *in, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < outlen; i++)
		out[o++] = (in[i] > ' ' && in[i] <= '~') ? (char)in[i] : '?';
	out[o] = 0;
}

static int handshake(struct ft_chan *c, const struct ft_key *key, enum ft_chan_role role,
		     int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	size_t plen = strlen(c->purpose);
	uint8_t hello[HELLO_FIXED + FT_CHAN_MAX_PURPOSE];
	memcpy(hello, HELLO_MAGIC, MAGIC_LEN);
	randombytes_buf(hello + MAGIC_LEN, NONCE_LEN);
	hello[MAGIC_LEN + NONCE_LEN] = (uint8_t)plen;
	memcpy(hello + HELLO_FIXED, c->purpose, plen);
	if (write_all(c, hello, HELLO_FIXED + plen, deadline) < 0)
		return -1;

	/* The magic on its own first, so that a short answer from something else (an HTTP
	 * server, a shell) is named for what it is. */
	int r = fill(c, MAGIC_LEN, deadline);
	if (r == 0)
		goto timeout;
	if (r < 0)
		return -1;
	if (memcmp(c->rbuf + c->rstart, HELLO_MAGIC, MAGIC_LEN) != 0)
		return die(c, "garbage from the peer during the handshake: it is not a rewind "
			      "ft channel endpoint");
	r = fill(c, HELLO_FIXED, deadline);
	if (r == 0)
		goto timeout;
	if (r < 0)
		return -1;
	const uint8_t *peer = c->rbuf + c->rstart;
	size_t peer_plen = peer[MAGIC_LEN + NONCE_LEN];
	if (peer_plen == 0 || peer_plen > FT_CHAN_MAX_PURPOSE)
		return die(c,
			   "garbage from the peer during the handshake: a purpose of %zu "
			   "bytes",
			   peer_plen);
	r = fill(c, HELLO_FIXED + peer_plen, deadline);
	if (r == 0)
		goto timeout;
	if (r < 0)
		return -1;
	peer = c->rbuf + c->rstart;
	if (peer_plen != plen || memcmp(peer + HELLO_FIXED, c->purpose, plen) != 0) {
		char theirs[FT_CHAN_MAX_PURPOSE + 1];
		sanitize(theirs, sizeof theirs, peer + HELLO_FIXED, peer_plen);
		return die(c,
			   "the peer opened a '%s' connection where this end expects '%s' (wrong "
			   "address or port?)",
			   theirs, c->purpose);
	}

	/* Role-bound proofs already refuse a connection that echoes this end's own bytes
	 * back; name it for what it is. */
	if (sodium_memcmp(peer + MAGIC_LEN, hello + MAGIC_LEN, NONCE_LEN) == 0)
		return die(c, "the peer sent back this end's own hello (a connection looped "
			      "back to itself, or reflected)");

	/* T: label, purpose, connector's nonce, acceptor's nonce. */
	const uint8_t *nc = role == FT_CHAN_CONNECTOR ? hello + MAGIC_LEN : peer + MAGIC_LEN;
	const uint8_t *na = role == FT_CHAN_CONNECTOR ? peer + MAGIC_LEN : hello + MAGIC_LEN;
	uint8_t t[32], master[crypto_kdf_KEYBYTES];
	crypto_generichash_state hs;
	static const char label[] = "rewind ft channel v1";
	uint8_t pl = (uint8_t)plen;
	crypto_generichash_init(&hs, NULL, 0, sizeof t);
	crypto_generichash_update(&hs, (const uint8_t *)label, sizeof label);
	crypto_generichash_update(&hs, &pl, 1);
	crypto_generichash_update(&hs, (const uint8_t *)c->purpose, plen);
	crypto_generichash_update(&hs, nc, NONCE_LEN);
	crypto_generichash_update(&hs, na, NONCE_LEN);
	crypto_generichash_final(&hs, t, sizeof t);
	crypto_generichash(master, sizeof master, t, sizeof t, key->k, sizeof key->k);
	c->rstart += HELLO_FIXED + peer_plen;

	uint8_t k_c2a[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t k_a2c[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t p_c[PROOF_LEN], p_a[PROOF_LEN];
	crypto_kdf_derive_from_key(k_c2a, sizeof k_c2a, KDF_C2A, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(k_a2c, sizeof k_a2c, KDF_A2C, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(p_c, sizeof p_c, KDF_PROOF_C, KDF_CONTEXT, master);
	crypto_kdf_derive_from_key(p_a, sizeof p_a, KDF_PROOF_A, KDF_CONTEXT, master);
	sodium_memzero(master, sizeof master);
	bool conn = role == FT_CHAN_CONNECTOR;

	uint8_t msg2[PROOF_LEN + SS_HEADER];
	memcpy(msg2, conn ? p_c : p_a, PROOF_LEN);
	crypto_secretstream_xchacha20poly1305_init_push(&c->tx, msg2 + PROOF_LEN,
							conn ? k_c2a : k_a2c);
	int rc = -1;
	if (write_all(c, msg2, sizeof msg2, deadline) < 0)
		goto out;
	r = fill(c, sizeof msg2, deadline);
	if (r == 0)
		goto timeout_wipe;
	if (r < 0)
		goto out;
	peer = c->rbuf + c->rstart;
	if (sodium_memcmp(peer, conn ? p_a : p_c, PROOF_LEN) != 0) {
		die(c, "the peer does not hold this key (its proof does not match): both "
		       "hosts need the same key file");
		goto out;
	}
	if (crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, peer + PROOF_LEN,
							    conn ? k_a2c : k_c2a) != 0) {
		die(c, "garbage from the peer during the handshake: a bad stream header");
		goto out;
	}
	c->rstart += sizeof msg2;
	if (send_record(c, 0, READY_BODY, strlen(READY_BODY), SS_TAG_MSG, deadline) < 0)
		goto out;
	uint8_t type, body[sizeof READY_BODY];
	size_t len;
	r = recv_record(c, &type, body, sizeof body, &len, deadline);
	if (r == 0)
		goto timeout_wipe;
	if (r < 0)
		goto out;
	if (type != 0 || len != strlen(READY_BODY) || memcmp(body, READY_BODY, len) != 0) {
		die(c, "garbage from the peer during the handshake: no ready record");
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(k_c2a, sizeof k_c2a);
	sodium_memzero(k_a2c, sizeof k_a2c);
	sodium_memzero(p_c, sizeof p_c);
	sodium_memzero(p_a, sizeof p_a);
	return rc;
timeout_wipe:
	sodium_memzero(k_c2a, sizeof k_c2a);
	sodium_memzero(k_a2c, sizeof k_a2c);
	sodium_memzero(p_c, sizeof p_c);
	sodium_memzero(p_a, sizeof p_a);
timeout:
	return die(c,
		   "handshake timed out after %d ms (is the peer a rewind ft endpoint, and "
		   "is it answering?)",
		   timeout_ms);
}

/* ---- the interface --------------------------------------------------------------------- */

static void chan_free(struct ft_chan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	sodium_memzero(&c->tx, sizeof c->tx);
	sodium_memzero(&c->rx, sizeof c->rx);
	if (c->stx)
		sodium_memzero(c->stx, c->scap);
	if (c->rtx)
		sodium_memzero(c->rtx, c->rtxcap);
	free(c->sbuf);
	free(c->stx);
	free(c->rbuf);
	free(c->rtx);
	pthread_mutex_destroy(&c->err_lock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->recv_lock);
	free(c);
}

int ft_chan_open(int fd, const struct ft_key *key, enum ft_chan_role role, const char *purpose,
		 int timeout_ms, struct ft_chan **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!purpose_ok(purpose)) {
		close(fd);
		snprintf(err, errlen, "ft channel purpose '%s' is not 1 to %d printable bytes",
			 purpose, FT_CHAN_MAX_PURPOSE);
		return -1;
	}
	if (sodium_init() < 0) {
		close(fd);
		snprintf(err, errlen, "cannot initialise libsodium (no system randomness?)");
		return -1;
	}
	struct ft_chan *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		snprintf(err, errlen, "out of memory for a channel");
		return -1;
	}
	c->fd = fd;
	c->opening = true;
	atomic_init(&c->dead, false);
	atomic_init(&c->send_timeout_ms, -1);
	pthread_mutex_init(&c->err_lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	strcpy(c->purpose, purpose);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die(c, "cannot use the socket: %s", strerror(errno));
	if (atomic_load(&c->dead) || handshake(c, key, role, timeout_ms) < 0) {
		snprintf(err, errlen, "%s", c->err);
		chan_free(c);
		return -1;
	}
	c->opening = false;
	*out = c;
	return 0;
}

int ft_chan_send(struct ft_chan *c, uint8_t type, const void *buf, size_t len)
{
	if (len > FT_CHAN_MAX_RECORD)
		return die(c,
			   "internal error: a record of %zu bytes is larger than the "
			   "channel's largest (%u)",
			   len, FT_CHAN_MAX_RECORD);
	pthread_mutex_lock(&c->send_lock);
	int rc = -1;
	if (!atomic_load(&c->dead))
		rc = send_record(c, type, buf, len, SS_TAG_MSG,
				 deadline_of(atomic_load(&c->send_timeout_ms)));
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

int ft_chan_recv(struct ft_chan *c, uint8_t *type, void *buf, size_t cap, size_t *len,
		 int timeout_ms)
{
	pthread_mutex_lock(&c->recv_lock);
	int rc = -1;
	if (!atomic_load(&c->dead))
		rc = recv_record(c, type, buf, cap, len, deadline_of(timeout_ms));
	pthread_mutex_unlock(&c->recv_lock);
	return rc;
}

void ft_chan_set_send_timeout(struct ft_chan *c, int timeout_ms)
{
	atomic_store(&c->send_timeout_ms, timeout_ms);
}

void ft_chan_shutdown(struct ft_chan *c, const char *why)
{
	die(c, "%s", why && *why ? why : "shut down by this side");
}

int ft_chan_fd(const struct ft_chan *c)
{
	return c->fd;
}

const char *ft_chan_error(const struct ft_chan *c)
{
	/* err is written once, before dead is set, and never again. */
	return atomic_load(&c->dead) ? c->err : "";
}

void ft_chan_close(struct ft_chan *c)
{
	if (!c)
		return;
	/* A clean close tells the peer so (best effort: never wait for it). */
	if (!atomic_load(&c->dead) && pthread_mutex_trylock(&c->send_lock) == 0) {
		send_record(c, 0, NULL, 0, SS_TAG_FIN, now_ms());
		pthread_mutex_unlock(&c->send_lock);
	}
	chan_free(c);
}
