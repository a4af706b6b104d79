/*
 * console_server.c: the ft console's server (console.h, docs/ft-console.md). One thread
 * accepts; each connection gets a thread of its own that runs the channel handshake,
 * answers the HELLO and then streams output from the client's offset while it takes
 * typed input. The publisher (the guest's side) only copies into the history ring and
 * pokes each connection's eventfd: a slow or stuck client can hold up nothing but its
 * own thread, and when it falls behind the history it is told how many bytes are gone.
 */
#include "ft/console.h"
#include "ft/console_proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CON_HISTORY_DEFAULT (1u << 20)
#define CON_MAX_CLIENTS	    64	  /* sessions served at once; more are told BUSY */
#define CON_MAX_CONNS	    128	  /* connections (handshaking included); more are closed */
#define CON_HANDSHAKE_MS    5000  /* the channel handshake and the HELLO, each */
#define CON_PING_MS	    1000  /* the server says it is alive this often */
#define CON_CLIENT_SILENCE  15000 /* a client silent this long is dropped */
#define CON_LINGER_MS	    2000  /* after a last word, wait this long for the client to close */
#define CON_STOP_GRACE_MS   200	  /* ft_console_stop lets connections say BYE this long */

struct con_conn {
	struct ft_console *srv;
	int sock; /* our descriptor of the socket (the channel holds a dup): for shutdown */
	int efd;  /* poked when there is news: output, live, end, stop */
	pthread_t thr;
	bool done;    /* the thread has finished (join it) */
	bool session; /* counted in srv->sessions */
	struct con_conn *next;
};

struct ft_console {
	struct ft_console_config cfg;
	pthread_mutex_t mu;	  /* everything below */
	pthread_mutex_t input_mu; /* one cfg.input call at a time */
	struct ft_con_ring ring;
	_Atomic uint64_t end;
	bool live, ended, stopping;
	unsigned nconns, sessions;
	struct con_conn *conns;
	int stop_efd;
	pthread_t thr;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void poke(int efd)
{
	uint64_t one = 1;

	/* Nonblocking; it can only fail when the counter is near 2^64. */
	if (write(efd, &one, sizeof(one)) < 0) {
	}
}

static void drain(int efd)
{
	uint64_t v;

	if (read(efd, &v, sizeof(v)) < 0) {
	}
}

/* Call with mu held. */
static void poke_all(struct ft_console *s)
{
	for (struct con_conn *c = s->conns; c; c = c->next)
		if (!c->done)
			poke(c->efd);
}

/* Wait for the client to close after our last word (so that word is not lost to a reset
 * when its unread input is still in our receive buffer), at most CON_LINGER_MS. */
static void linger(struct ft_chan *ch)
{
	uint8_t buf[8 + FT_CON_MAX_INPUT], type;
	uint64_t until = now_ms() + CON_LINGER_MS;
	size_t len;

	for (uint64_t t = now_ms(); t < until; t = now_ms())
		if (ft_chan_recv(ch, &type, buf, sizeof(buf), &len, (int)(until - t)) != 1)
			return;
}

static int send_bye(struct ft_chan *ch, uint32_t reason, uint64_t end)
{
	uint8_t b[FT_CON_BYE_BYTES];

	ft_con_bye_encode(b, reason, end);
	return ft_chan_send(ch, FT_CON_BYE, b, sizeof(b));
}

/* Take what the client sent. 0 to go on, -1 to drop the connection. */
static int conn_receive(struct con_conn *cn, struct ft_chan *ch, struct ft_con_srv *st,
			uint8_t *buf, size_t cap, uint64_t *last_rx)
{
	struct ft_console *s = cn->srv;
	uint8_t type, ack[FT_CON_ACK_BYTES];
	size_t len;
	int r;

	while ((r = ft_chan_recv(ch, &type, buf, cap, &len, 0)) == 1) {
		const uint8_t *data;
		uint64_t seq;
		size_t n, taken;

		*last_rx = now_ms();
		if (type == FT_CON_CPING && len == 0)
			continue;
		if (type != FT_CON_INPUT || ft_con_srv_input(st, buf, len, &seq, &data, &n) < 0)
			return -1;
		pthread_mutex_lock(&s->input_mu);
		taken = s->cfg.input ? s->cfg.input(s->cfg.opaque, st->client, seq, data, n) : 0;
		pthread_mutex_unlock(&s->input_mu);
		if (taken > n)
			taken = n;
		ft_con_srv_taken(st, taken, ack);
		if (ft_chan_send(ch, FT_CON_ACK, ack, sizeof(ack)) < 0)
			return -1;
	}
	return r < 0 ? -1 : 0;
}

/* Stream output and take input until the client goes, the side stops serving, or the
 * output ended and all of it was sent. */
static void conn_serve(struct con_conn *cn, struct ft_chan *ch, struct ft_con_srv *st)
{
	struct ft_console *s = cn->srv;
	uint8_t *out = malloc(8 + FT_CON_MAX_OUTPUT);
	uint8_t *in = malloc(8 + FT_CON_MAX_INPUT);
	uint64_t last_rx = now_ms(), last_tx = now_ms();

	if (!out || !in)
		goto done;
	for (;;) {
		uint64_t gone_from = 0, gone_to = 0, end;
		uint32_t bye = 0;
		size_t n = 0;
		int timeout;
		struct pollfd pf[2] = {{ft_chan_fd(ch), POLLIN, 0}, {cn->efd, POLLIN, 0}};

		pthread_mutex_lock(&s->mu);
		if (s->stopping)
			bye = FT_CON_BYE_STOPPING;
		else if (!s->live)
			bye = FT_CON_BYE_NOT_LIVE;
		if (!bye && st->out_next < s->ring.start) {
			gone_from = st->out_next;
			gone_to = st->out_next = s->ring.start;
		}
		if (!bye && st->out_next < s->ring.end)
			n = ft_con_ring_read(&s->ring, st->out_next, out + 8, FT_CON_MAX_OUTPUT);
		end = s->ring.end;
		if (!bye && n == 0 && s->ended && st->out_next >= end)
			bye = FT_CON_BYE_END;
		pthread_mutex_unlock(&s->mu);

		if (gone_to) {
			uint8_t g[FT_CON_GONE_BYTES];

			ft_con_gone_encode(g, gone_from, gone_to);
			if (ft_chan_send(ch, FT_CON_GONE, g, sizeof(g)) < 0)
				goto done;
			last_tx = now_ms();
		}
		if (bye) {
			if (send_bye(ch, bye, end) == 0 && bye == FT_CON_BYE_END)
				linger(ch);
			goto done;
		}
		if (n) {
			ft_con_data_head(out, st->out_next);
			if (ft_chan_send(ch, FT_CON_OUTPUT, out, 8 + n) < 0)
				goto done;
			st->out_next += n;
			last_tx = now_ms();
		}
		/* With output still to send, only look at input in passing. */
		timeout = n ? 0 : CON_PING_MS;
		if (poll(pf, 2, timeout) < 0 && errno != EINTR)
			goto done;
		if (pf[1].revents)
			drain(cn->efd);
		/* Always: the channel may hold whole records read along with earlier ones,
		 * which poll cannot see. */
		if (conn_receive(cn, ch, st, in, 8 + FT_CON_MAX_INPUT, &last_rx) < 0)
			goto done;
		if (now_ms() - last_rx > CON_CLIENT_SILENCE)
			goto done;
		if (now_ms() - last_tx >= CON_PING_MS) {
			if (ft_chan_send(ch, FT_CON_SPING, NULL, 0) < 0)
				goto done;
			last_tx = now_ms();
		}
	}
done:
	free(out);
	free(in);
}

static void *conn_main(void *arg)
{
	struct con_conn *cn = arg;
	struct ft_console *s = cn->srv;
	struct ft_chan *ch = NULL;
	struct ft_con_srv st;
	struct ft_con_welcome w;
	enum ft_con_state state;
	uint8_t hello[FT_CON_HELLO_BYTES], wb[FT_CON_WELCOME_BYTES], type;
	char err[256];
	size_t len;
	int fd = dup(cn->sock);

	if (fd < 0)
		goto out;
	/* The channel owns fd from here on, also when the handshake fails. */
	if (ft_chan_open(fd, s->cfg.key, FT_CHAN_ACCEPTOR, "console", CON_HANDSHAKE_MS, &ch, err,
			 sizeof(err)) < 0) {
		ch = NULL;
		goto out;
	}
	/* A client that takes nothing for this long (stopped, or its host gone) is dropped;
	 * when it comes back it resumes and is told what it missed. */
	ft_chan_set_send_timeout(ch, CON_CLIENT_SILENCE);
	if (ft_chan_recv(ch, &type, hello, sizeof(hello), &len, CON_HANDSHAKE_MS) != 1 ||
	    type != FT_CON_HELLO)
		goto out;
	pthread_mutex_lock(&s->mu);
	if (!s->live || s->stopping)
		state = FT_CON_NOT_LIVE;
	else if (s->sessions >= CON_MAX_CLIENTS)
		state = FT_CON_BUSY;
	else
		state = FT_CON_LIVE;
	if (ft_con_srv_hello(&st, hello, len, s->ring.start, s->ring.end, state, &w) < 0) {
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	if (state == FT_CON_LIVE) {
		s->sessions++;
		cn->session = true;
	}
	pthread_mutex_unlock(&s->mu);
	ft_con_welcome_encode(wb, &w);
	if (ft_chan_send(ch, FT_CON_WELCOME, wb, sizeof(wb)) < 0)
		goto out;
	if (state != FT_CON_LIVE) {
		linger(ch);
		goto out;
	}
	conn_serve(cn, ch, &st);
out:
	pthread_mutex_lock(&s->mu);
	ft_chan_close(ch);
	shutdown(cn->sock, SHUT_RDWR);
	close(cn->sock);
	cn->sock = -1;
	if (cn->session)
		s->sessions--;
	cn->done = true;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Join and free finished connections (all of them when all is set, after closing). */
static void reap(struct ft_console *s, bool all)
{
	for (;;) {
		struct con_conn **pp, *c = NULL;

		pthread_mutex_lock(&s->mu);
		for (pp = &s->conns; *pp; pp = &(*pp)->next) {
			if ((*pp)->done || all) {
				c = *pp;
				*pp = c->next;
				s->nconns--;
				break;
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (!c)
			return;
		pthread_join(c->thr, NULL);
		close(c->efd);
		free(c);
	}
}

static void accept_one(struct ft_console *s)
{
	struct con_conn *c;
	int one = 1;
	int fd = accept4(s->cfg.listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->srv = s;
	c->sock = fd;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0)
		goto fail_c;
	pthread_mutex_lock(&s->mu);
	if (s->nconns >= CON_MAX_CONNS) {
		pthread_mutex_unlock(&s->mu);
		goto fail_efd;
	}
	if (pthread_create(&c->thr, NULL, conn_main, c) != 0) {
		pthread_mutex_unlock(&s->mu);
		goto fail_efd;
	}
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	pthread_mutex_unlock(&s->mu);
	return;
fail_efd:
	close(c->efd);
fail_c:
	free(c);
fail:
	close(fd);
}

static void *accept_main(void *arg)
{
	struct ft_console *s = arg;

	for (;;) {
		struct pollfd pf[2] = {{s->cfg.listen_fd, POLLIN, 0}, {s->stop_efd, POLLIN, 0}};

		if (poll(pf, 2, 1000) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (pf[0].revents)
			accept_one(s);
		reap(s, false);
	}
	return NULL;
}

int ft_console_start(const struct ft_console_config *cfg, struct ft_console **out, char *err,
		     size_t errlen)
{
	struct ft_console *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errlen, "console: out of memory");
		goto fail_fd;
	}
	s->cfg = *cfg;
	if (!s->cfg.history_bytes)
		s->cfg.history_bytes = CON_HISTORY_DEFAULT;
	if (ft_con_ring_init(&s->ring, s->cfg.history_bytes, cfg->out_base) < 0) {
		snprintf(err, errlen, "console: no memory for %zu bytes of history",
			 s->cfg.history_bytes);
		goto fail_s;
	}
	atomic_store(&s->end, cfg->out_base);
	s->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->stop_efd < 0) {
		snprintf(err, errlen, "console: eventfd: %s", strerror(errno));
		goto fail_ring;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->input_mu, NULL);
	if (pthread_create(&s->thr, NULL, accept_main, s) != 0) {
		snprintf(err, errlen, "console: cannot start its thread");
		goto fail_efd;
	}
	*out = s;
	return 0;
fail_efd:
	pthread_mutex_destroy(&s->input_mu);
	pthread_mutex_destroy(&s->mu);
	close(s->stop_efd);
fail_ring:
	ft_con_ring_free(&s->ring);
fail_s:
	free(s);
fail_fd:
	close(cfg->listen_fd);
	return -1;
}

void ft_console_publish(struct ft_console *s, const uint8_t *buf, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&s->mu);
	ft_con_ring_append(&s->ring, buf, n);
	atomic_store(&s->end, s->ring.end);
	poke_all(s);
	pthread_mutex_unlock(&s->mu);
}

uint64_t ft_console_offset(const struct ft_console *s)
{
	return atomic_load(&s->end);
}

void ft_console_set_live(struct ft_console *s, bool live)
{
	pthread_mutex_lock(&s->mu);
	s->live = live;
	poke_all(s);
	pthread_mutex_unlock(&s->mu);
}

void ft_console_end(struct ft_console *s)
{
	pthread_mutex_lock(&s->mu);
	s->ended = true;
	poke_all(s);
	pthread_mutex_unlock(&s->mu);
}

bool ft_console_drain(struct ft_console *s, unsigned timeout_ms)
{
	uint64_t until = now_ms() + timeout_ms;

	for (;;) {
		bool all_done = true;

		pthread_mutex_lock(&s->mu);
		for (struct con_conn *c = s->conns; c; c = c->next)
			all_done = all_done && c->done;
		pthread_mutex_unlock(&s->mu);
		if (all_done)
			return true;
		if (now_ms() >= until)
			return false;
		usleep(5000);
	}
}

void ft_console_stop(struct ft_console *s)
{
	uint64_t until;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	poke_all(s);
	pthread_mutex_unlock(&s->mu);
	poke(s->stop_efd);
	pthread_join(s->thr, NULL);
	/* Connections waiting in poll say BYE and go; cut those stuck in a send. */
	until = now_ms() + CON_STOP_GRACE_MS;
	for (;;) {
		bool all_done = true;

		pthread_mutex_lock(&s->mu);
		for (struct con_conn *c = s->conns; c; c = c->next)
			all_done = all_done && c->done;
		if (all_done || now_ms() >= until)
			for (struct con_conn *c = s->conns; c; c = c->next)
				if (!c->done)
					shutdown(c->sock, SHUT_RDWR);
		pthread_mutex_unlock(&s->mu);
		if (all_done || now_ms() >= until)
			break;
		usleep(5000);
	}
	reap(s, true);
	close(s->cfg.listen_fd);
	close(s->stop_efd);
	ft_con_ring_free(&s->ring);
	pthread_mutex_destroy(&s->input_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
