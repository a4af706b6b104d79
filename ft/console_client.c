/*
 * console_client.c: `rewind console`'s library half (console.h, docs/ft-console.md).
 * Finds the live side among the addresses, prints output from its byte offset, sends
 * typed input one numbered record at a time, and after a lost link tries the addresses
 * again (bounded backoff, bounded total time), resuming where it was in both directions.
 * File descriptors only: a terminal's raw mode is the caller's business.
 */
#include "ft/console.h"
#include "ft/console_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLI_GIVE_UP_MS	 30000
#define CLI_SILENCE_MS	 3000
#define CLI_PING_MS	 1000
#define CLI_CONNECT_MS	 2000	    /* TCP connect, per address */
#define CLI_HANDSHAKE_MS 5000	    /* channel handshake, then the WELCOME */
#define CLI_BACKOFF_MIN	 10	    /* between rounds over all addresses, doubling ... */
#define CLI_BACKOFF_MAX	 100	    /* ... up to this: a backup that just went live is found fast */
#define CLI_RETRY_MS	 20	    /* before sending again what the core did not take */
#define CLI_MAX_PENDING	 (1u << 20) /* typed bytes held unacked before in_fd waits */
#define CLI_LINGER_MS	 1000	    /* after input ended and was taken: quiet output ends it */

struct cli {
	const struct ft_key *key;
	int in_fd, out_fd;
	struct ft_console_client_opts o;
	struct ft_con_cli st;
	char **addr;
	size_t naddr;
	char *err;
	size_t errlen;
	uint8_t *rx;
	uint64_t retry_at; /* not before then: what the core did not take, again */
	uint64_t last_out; /* when output was last printed, or input was last taken */
	int fatal;	   /* try_addr's status when it says SES_FATAL */
};

/* How a connection attempt or a session ended. */
enum {
	TRY_LIVE,      /* session open */
	TRY_SKIP,      /* not live, busy, unreachable: the next address */
	TRY_HANDSHAKE, /* the channel handshake failed */
	SES_LOST,      /* the link went: try the addresses again */
	SES_DONE,      /* exit 0 */
	SES_FATAL,     /* exit with the status in err */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void notice(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(struct cli *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!c->o.notice)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->o.notice(c->o.opaque, line);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pf = {fd, POLLOUT, 0};

			poll(&pf, 1, -1);
			continue;
		}
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Tell the user that output is missing: by notice, or in the output itself. */
static int tell_gone(struct cli *c, uint64_t count, const char *why)
{
	char line[200];
	int n;

	if (c->o.notice) {
		notice(c, "%llu bytes of output are gone (%s)", (unsigned long long)count, why);
		return 0;
	}
	n = snprintf(line, sizeof(line),
		     "\r\n[rewind console: %llu bytes of output are gone (%s)]\r\n",
		     (unsigned long long)count, why);
	return write_all(c->out_fd, (const uint8_t *)line, (size_t)n);
}

/* Split "HOST:PORT" (HOST may be [v6]); 0 or -1. host and port point into buf. */
static int split_addr(char *buf, char **host, char **port)
{
	char *colon = strrchr(buf, ':');

	if (!colon || colon == buf || !colon[1])
		return -1;
	*colon = 0;
	*port = colon + 1;
	*host = buf;
	if (buf[0] == '[') {
		if (colon[-1] != ']')
			return -1;
		colon[-1] = 0;
		*host = buf + 1;
	}
	for (char *p = *port; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	return **host ? 0 : -1;
}

/* A connected TCP socket to addr within CLI_CONNECT_MS, or -1 with why. */
static int tcp_connect(const char *addr, char *why, size_t whylen)
{
	char buf[256], *host, *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1, r;

	snprintf(buf, sizeof(buf), "%s", addr);
	if (split_addr(buf, &host, &port) < 0) {
		snprintf(why, whylen, "not HOST:PORT");
		return -1;
	}
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		snprintf(why, whylen, "%s", gai_strerror(r));
		return -1;
	}
	snprintf(why, whylen, "no address");
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pf;
		int soerr = 0, one = 1;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			snprintf(why, whylen, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(why, whylen, "%s", strerror(errno));
			goto next;
		}
		pf = (struct pollfd){fd, POLLOUT, 0};
		if (poll(&pf, 1, CLI_CONNECT_MS) <= 0) {
			snprintf(why, whylen, "connect timed out");
			goto next;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			snprintf(why, whylen, "%s", strerror(soerr));
			goto next;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Connect to addr, handshake, HELLO: TRY_LIVE with *out, or why not. */
static int try_addr(struct cli *c, const char *addr, struct ft_chan **out, char *why, size_t whylen)
{
	struct ft_chan *ch;
	struct ft_con_welcome w;
	uint8_t hello[FT_CON_HELLO_BYTES], type;
	size_t len;
	int fd = tcp_connect(addr, why, whylen);

	if (fd < 0)
		return TRY_SKIP;
	if (ft_chan_open(fd, c->key, FT_CHAN_CONNECTOR, "console", CLI_HANDSHAKE_MS, &ch, why,
			 whylen) < 0)
		return TRY_HANDSHAKE;
	ft_con_cli_hello(&c->st, hello);
	if (ft_chan_send(ch, FT_CON_HELLO, hello, sizeof(hello)) < 0 ||
	    ft_chan_recv(ch, &type, c->rx, FT_CON_MAX_RECORD, &len, CLI_HANDSHAKE_MS) != 1) {
		snprintf(why, whylen, "%s", *ft_chan_error(ch) ? ft_chan_error(ch) : "no answer");
		ft_chan_close(ch);
		return TRY_SKIP;
	}
	if (type != FT_CON_WELCOME || ft_con_cli_welcome(&c->st, c->rx, len, &w) < 0) {
		snprintf(why, whylen, "protocol error: a bad WELCOME");
		ft_chan_close(ch);
		c->fatal = FT_CONSOLE_BAD_INPUT;
		return SES_FATAL;
	}
	if (w.state != FT_CON_LIVE) {
		snprintf(why, whylen, "%s",
			 w.state == FT_CON_BUSY ? "too many clients" : "not live");
		ft_chan_close(ch);
		return TRY_SKIP;
	}
	if (w.gone && tell_gone(c, w.gone, "older than the server's history") < 0) {
		snprintf(why, whylen, "writing output: %s", strerror(errno));
		ft_chan_close(ch);
		c->fatal = FT_CONSOLE_HOST;
		return SES_FATAL;
	}
	*out = ch;
	return TRY_LIVE;
}

/* Read what in_fd has. 0, or -1 (why in err). */
static int read_input(struct cli *c)
{
	uint8_t buf[4096];
	ssize_t n = read(c->in_fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0 && errno == EIO) /* a terminal that hung up */
		n = 0;
	if (n < 0) {
		snprintf(c->err, c->errlen, "console: reading input: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		c->st.in_eof = true;
		return 0;
	}
	if (c->o.escape) {
		uint8_t *e = memchr(buf, c->o.escape, (size_t)n);

		if (e) {
			n = e - buf;
			c->st.in_eof = true;
		}
	}
	if (ft_con_cli_input_add(&c->st, buf, (size_t)n) < 0) {
		snprintf(c->err, c->errlen, "console: out of memory for typed input");
		return -1;
	}
	return 0;
}

/* One record from the live server: SES_LOST, SES_DONE, SES_FATAL or -1 to go on. */
static int handle_record(struct cli *c, uint8_t type, size_t len, const char *addr, int *status)
{
	const uint8_t *data;
	uint64_t count, end;
	uint32_t reason;
	size_t n;

	switch (type) {
	case FT_CON_OUTPUT:
		if (ft_con_cli_output(&c->st, c->rx, len, &data, &n) < 0)
			break;
		if (write_all(c->out_fd, data, n) < 0) {
			snprintf(c->err, c->errlen, "console: writing output: %s", strerror(errno));
			*status = FT_CONSOLE_HOST;
			return SES_FATAL;
		}
		c->last_out = now_ms();
		return -1;
	case FT_CON_GONE:
		if (ft_con_cli_gone(&c->st, c->rx, len, &count) < 0)
			break;
		if (tell_gone(c, count, "this client fell behind the server's history") < 0) {
			snprintf(c->err, c->errlen, "console: writing output: %s", strerror(errno));
			*status = FT_CONSOLE_HOST;
			return SES_FATAL;
		}
		return -1;
	case FT_CON_ACK:
		switch (ft_con_cli_ack(&c->st, c->rx, len)) {
		case 0:
			c->last_out = now_ms(); /* the quiet after input counts from here */
			return -1;
		case 1:
			/* The core is full: give it a moment before the rest goes again. */
			c->retry_at = now_ms() + CLI_RETRY_MS;
			return -1;
		}
		break;
	case FT_CON_BYE:
		if (ft_con_bye_decode(c->rx, len, &reason, &end) < 0)
			break;
		if (reason == FT_CON_BYE_END) {
			if (end != c->st.out_off)
				break;
			notice(c, "console %s: the guest's output ended", addr);
			return SES_DONE;
		}
		notice(c, "console %s: %s", addr,
		       reason == FT_CON_BYE_NOT_LIVE ? "no longer live" : "stopping");
		return SES_LOST;
	case FT_CON_SPING:
		if (len == 0)
			return -1;
		break;
	}
	snprintf(c->err, c->errlen,
		 "console %s: protocol error: a bad record (type 0x%02x, %zu bytes) at output "
		 "offset %llu",
		 addr, type, len, (unsigned long long)c->st.out_off);
	*status = FT_CONSOLE_BAD_INPUT;
	return SES_FATAL;
}

/* One live connection, until it is lost or the client is done. */
static int session(struct cli *c, struct ft_chan *ch, const char *addr, int *status)
{
	uint8_t send[8 + FT_CON_MAX_INPUT], type;
	uint64_t last_rx = now_ms(), last_tx = now_ms();

	c->retry_at = 0;
	for (;;) {
		struct pollfd pf[2];
		uint64_t t = now_ms(), wake;
		nfds_t npf = 1;
		size_t n;
		int r;

		/* First what the channel holds: records that came in with earlier ones are
		 * already read from the socket, and poll would not see them. */
		while ((r = ft_chan_recv(ch, &type, c->rx, FT_CON_MAX_RECORD, &n, 0)) == 1) {
			int h;

			last_rx = t = now_ms();
			h = handle_record(c, type, n, addr, status);
			if (h >= 0)
				return h;
		}
		if (r < 0)
			goto lost;
		if (t - last_rx > (uint64_t)c->o.silence_ms) {
			notice(c, "console %s: silent for %d ms", addr, c->o.silence_ms);
			return SES_LOST;
		}
		/* Input ended and all of it was taken: the answer to it may still be on its way
		 * (the output rule holds it for the backup's ack). Print on until the output
		 * has been quiet for linger_ms (or the guest's output ends: BYE), as ssh with a
		 * closed stdin waits for the other side. */
		bool linger = false;
		if (ft_con_cli_input_done(&c->st)) {
			if (c->o.linger_ms < 0 || t >= c->last_out + (uint64_t)c->o.linger_ms)
				return SES_DONE;
			linger = true;
		}
		if (t >= c->retry_at && (n = ft_con_cli_input_next(&c->st, send)) > 0) {
			if (ft_chan_send(ch, FT_CON_INPUT, send, n) < 0)
				goto lost;
			last_tx = t;
		}
		if (t - last_tx >= CLI_PING_MS) {
			if (ft_chan_send(ch, FT_CON_CPING, NULL, 0) < 0)
				goto lost;
			last_tx = t;
		}
		wake = last_tx + CLI_PING_MS;
		if (last_rx + (uint64_t)c->o.silence_ms < wake)
			wake = last_rx + (uint64_t)c->o.silence_ms;
		if (c->retry_at > t && c->st.in_len && !c->st.in_flight && c->retry_at < wake)
			wake = c->retry_at;
		if (linger && c->last_out + (uint64_t)c->o.linger_ms < wake)
			wake = c->last_out + (uint64_t)c->o.linger_ms;
		pf[0] = (struct pollfd){ft_chan_fd(ch), POLLIN, 0};
		if (c->in_fd >= 0 && !c->st.in_eof && c->st.in_len < CLI_MAX_PENDING)
			pf[npf++] = (struct pollfd){c->in_fd, POLLIN, 0};
		if (poll(pf, npf, wake > t ? (int)(wake - t) : 0) < 0 && errno != EINTR) {
			snprintf(c->err, c->errlen, "console: poll: %s", strerror(errno));
			*status = FT_CONSOLE_INTERNAL;
			return SES_FATAL;
		}
		if (npf > 1 && pf[1].revents && read_input(c) < 0) {
			*status = FT_CONSOLE_HOST;
			return SES_FATAL;
		}
	}
lost:
	notice(c, "console %s: %s", addr, ft_chan_error(ch));
	return SES_LOST;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* Split the comma-separated list into c->addr; FT_CONSOLE_OK or a status. */
static int parse_addrs(struct cli *c, const char *addrs)
{
	const char *p = addrs;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char buf[256], *host, *port, **a;

		if (n == 0 || n >= sizeof(buf)) {
			snprintf(c->err, c->errlen, "console: '%s': give HOST:PORT[,HOST:PORT...]",
				 addrs);
			return FT_CONSOLE_USAGE;
		}
		memcpy(buf, p, n);
		buf[n] = 0;
		a = realloc(c->addr, (c->naddr + 1) * sizeof(*a));
		if (!a)
			return FT_CONSOLE_INTERNAL;
		c->addr = a;
		c->addr[c->naddr] = strndup(p, n);
		if (!c->addr[c->naddr])
			return FT_CONSOLE_INTERNAL;
		c->naddr++;
		if (split_addr(buf, &host, &port) < 0) {
			snprintf(c->err, c->errlen, "console: '%s' is not HOST:PORT",
				 c->addr[c->naddr - 1]);
			return FT_CONSOLE_USAGE;
		}
		if (!comma)
			return FT_CONSOLE_OK;
		p = comma + 1;
	}
}

static int run(struct cli *c)
{
	char why[256] = "", last[400] = "";
	uint64_t lost_at = now_ms();
	unsigned backoff = CLI_BACKOFF_MIN;
	bool ever_live = false;

	for (;;) {
		bool handshake_failed = false;

		for (size_t i = 0; i < c->naddr; i++) {
			struct ft_chan *ch = NULL;
			int status = FT_CONSOLE_BAD_INPUT, r;

			r = try_addr(c, c->addr[i], &ch, why, sizeof(why));
			if (r == SES_FATAL) {
				snprintf(c->err, c->errlen, "console %s: %s", c->addr[i], why);
				return c->fatal;
			}
			if (r == TRY_HANDSHAKE) {
				handshake_failed = true;
				snprintf(last, sizeof(last), "%s: handshake failed: %s", c->addr[i],
					 why);
				continue;
			}
			if (r == TRY_SKIP) {
				snprintf(last, sizeof(last), "%s: %s", c->addr[i], why);
				continue;
			}
			notice(c, "console %s: live, from output offset %llu", c->addr[i],
			       (unsigned long long)c->st.out_off);
			ever_live = true;
			r = session(c, ch, c->addr[i], &status);
			ft_chan_close(ch);
			if (r == SES_DONE)
				return FT_CONSOLE_OK;
			if (r == SES_FATAL)
				return status;
			snprintf(last, sizeof(last), "%s: link lost", c->addr[i]);
			lost_at = now_ms();
			backoff = CLI_BACKOFF_MIN;
			i = (size_t)-1; /* the whole list again, from its first address */
		}
		if (!ever_live && handshake_failed) {
			snprintf(c->err, c->errlen, "console %s", last);
			return FT_CONSOLE_BAD_INPUT;
		}
		if (now_ms() - lost_at >= (uint64_t)c->o.give_up_ms) {
			snprintf(c->err, c->errlen,
				 "console: no live side among %zu address(es) for %d s (last: %s)",
				 c->naddr, c->o.give_up_ms / 1000, last);
			return FT_CONSOLE_HOST;
		}
		sleep_ms(backoff);
		backoff = backoff * 2 > CLI_BACKOFF_MAX ? CLI_BACKOFF_MAX : backoff * 2;
	}
}

int ft_console_client_ex(const char *addrs, const struct ft_key *key, int in_fd, int out_fd,
			 const struct ft_console_client_opts *opts, char *err, size_t errlen)
{
	struct cli c = {.key = key, .in_fd = in_fd, .out_fd = out_fd, .err = err, .errlen = errlen};
	uint64_t id;
	int status;

	snprintf(err, errlen, "console: out of memory");
	if (opts)
		c.o = *opts;
	if (c.o.give_up_ms <= 0)
		c.o.give_up_ms = CLI_GIVE_UP_MS;
	if (c.o.silence_ms <= 0)
		c.o.silence_ms = CLI_SILENCE_MS;
	if (c.o.linger_ms == 0)
		c.o.linger_ms = CLI_LINGER_MS;
	if (getrandom(&id, sizeof(id), 0) != sizeof(id)) {
		snprintf(err, errlen, "console: getrandom: %s", strerror(errno));
		return FT_CONSOLE_INTERNAL;
	}
	ft_con_cli_init(&c.st, id);
	c.rx = malloc(FT_CON_MAX_RECORD);
	status = c.rx ? parse_addrs(&c, addrs) : FT_CONSOLE_INTERNAL;
	if (status == FT_CONSOLE_OK)
		status = run(&c);
	if (status == FT_CONSOLE_OK)
		err[0] = 0;
	for (size_t i = 0; i < c.naddr; i++)
		free(c.addr[i]);
	free(c.addr);
	free(c.rx);
	ft_con_cli_free(&c.st);
	return status;
}

int ft_console_client(const char *addrs, const struct ft_key *key, int in_fd, int out_fd, char *err,
		      size_t errlen)
{
	return ft_console_client_ex(addrs, key, in_fd, out_fd, NULL, err, errlen);
}
