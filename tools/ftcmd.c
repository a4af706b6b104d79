/*
 * ftcmd.c: `rewind ft primary|backup|status|keygen` and `rewind console` (docs/ft.md).
 *
 * The primary records its guest as `rewind record` does, into the stream to the backup
 * (ft/ft.h); the backup replays the stream as it comes and goes live where it ends when
 * it loses its primary and wins the arbiter. Either side that loses the arbiter stops its
 * guest and exits 14. The guest's console is the ft console (ft/console.h) under
 * --serial tcp:ADDR, or the standard output under --serial stdio.
 */
#include "cli.h"

#include "ft/arbiter.h"
#include "ft/chan.h"
#include "ft/console.h"
#include "ft/ft.h"
#include "logfmt/log.h"
#include "record/record.h"
#include "replay/replay.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/cpu.h"
#include "vmm/machine.h"
#include "vmm/vmm.h"

#include <errno.h>
#include <lz4.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The channel purpose of the pair's port (stream, status). */
#define FT_PURPOSE "ft"
#define FT_MSG_STATUS 8    /* status request: no body */
#define FT_MSG_STATUS_OK 9 /* status answer: text lines */

static void usage_ft(FILE *f)
{
	fprintf(f,
		"usage: rewind ft primary --backup HOST:PORT --key KEY --arbiter SPEC [options] GUEST.elf\n"
		"       rewind ft backup --listen HOST:PORT --key KEY --arbiter SPEC [options]\n"
		"       rewind ft backup --join HOST:PORT --key KEY --arbiter SPEC [options]\n"
		"       rewind ft status --key KEY HOST:PORT\n"
		"       rewind ft keygen KEY\n"
		"       rewind console --key KEY [--no-input] HOST:PORT[,HOST:PORT...]\n"
		"\n"
		"A fault-tolerant pair (docs/ft.md): the primary runs the guest and streams its\n"
		"log to the backup, which replays it a few ms behind and takes over, with no\n"
		"console byte lost or repeated, when the primary dies.\n"
		"\n"
		"Options of primary and backup:\n"
		"  --key KEY            the pair's key file (rewind ft keygen; mode 0600)\n"
		"  --arbiter SPEC       file:PATH or etcd:HOST:PORT/KEY, the same on both sides:\n"
		"                       a side must win it before it runs the guest alone\n"
		"  --serial SPEC        tcp:HOST:PORT: the ft console (rewind console), or stdio:\n"
		"                       output on stdout (a backup prints all of it when it goes\n"
		"                       live); default stdio\n"
		"  --timeout SECONDS    silence after which the other side is lost (default 1;\n"
		"                       a closed connection is noticed at once)\n"
		"  --log FILE           also keep a log file of the whole run, across failovers\n"
		"                       and joins ('rewind replay FILE'; not with --join)\n"
		"  --listen HOST:PORT   primary: answer `rewind ft status` and joins here;\n"
		"                       backup: the stream's port (and status)\n"
		"  --precopy-rounds N   when a backup joins (this side as the primary): copy RAM\n"
		"                       while the guest runs, then the pages it wrote meanwhile,\n"
		"                       at most N rounds in all (default 10; 1: one copy, then\n"
		"                       the pause sends every page written during it)\n"
		"Backup only:\n"
		"  --join HOST:PORT     re-protect a running primary that lost its backup (its\n"
		"                       --listen): it sends its machine state, then its log\n"
		"  --backend kvm|emu    replay on this backend (default: the stream's; a stream\n"
		"                       whose positions count exits replays on emu too). With\n"
		"                       --join it must be the primary's: its machine state is\n"
		"                       that backend's\n"
		"Primary only:\n"
		"  --backup HOST:PORT   where the backup listens (tried for --connect-for seconds)\n"
		"  --connect-for SEC    how long to keep trying the backup (default 10)\n"
		"  --mem SIZE           guest RAM (default 128M)\n"
		"  --append TEXT        guest command line\n"
		"  --initrd FILE        an initial ramdisk, as 'rewind record --initrd' (the\n"
		"                       stream carries it: the backup needs no copy)\n"
		"  --backend emu|kvm|auto  where the guest runs (default emu: it records every\n"
		"                       guest exactly). kvm counts exits, places events between\n"
		"                       them by landmarks and leaves RDTSC out of the log\n"
		"  --positions instructions|exits\n"
		"                       what positions count on emu (default instructions);\n"
		"                       exits: as kvm counts them, with landmarks, as 'rewind\n"
		"                       record --positions exits'\n"
		"  --marker-ms MS       a progress marker this often (default 5)\n"
		"  --out-buffer BYTES   output held for the backup's ack before the guest waits\n"
		"                       (default 64K)\n"
		"\n"
		"rewind console prints the guest's output from whichever side is live, going on\n"
		"from where it was after a failover, and sends what it reads from stdin (until\n"
		"its end, or Ctrl-] on a terminal) as typed input; --no-input only watches.\n"
		"After the end of input it prints on until the output has been quiet for 1 s\n"
		"(or the guest's output ends), so that the answer to the input is shown.\n"
		"\n"
		"Exit status: as 'rewind record' (the guest's own status when it exits, see\n"
		"'rewind --help'), and 14: this side lost the arbiter (the other one runs the\n"
		"guest) and stopped its guest.\n");
}

/* ---- addresses ------------------------------------------------------------------------ */

/* The pair's key file, or one line and status 4. */
static void load_key(const char *path, struct ft_key *key)
{
	char err[256];
	if (ft_key_load(path, key, err, sizeof(err)) < 0)
		die_line(EXIT_BADINPUT, "--key %s: %s", path, err);
}

static int resolve(const char *addr, bool passive, struct addrinfo **out, char *err,
		   size_t cap)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1]) {
		snprintf(err, cap, "%s: expected HOST:PORT", addr);
		return -1;
	}
	char host[256];
	size_t hl = (size_t)(colon - addr);
	if (hl >= sizeof(host)) {
		snprintf(err, cap, "%s: host name too long", addr);
		return -1;
	}
	memcpy(host, addr, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	int e = getaddrinfo(host, colon + 1, &hints, out);
	if (e) {
		snprintf(err, cap, "%s: %s", addr, gai_strerror(e));
		return -1;
	}
	return 0;
}

/* Markers and acks are small and must not wait for more to send (Nagle). */
static void nodelay(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int listen_on(const char *addr, char *err, size_t cap)
{
	struct addrinfo *ai;
	if (resolve(addr, true, &ai, err, cap) < 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 8) < 0) {
		snprintf(err, cap, "cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int connect_to(const char *addr, char *err, size_t cap)
{
	struct addrinfo *ai;
	if (resolve(addr, false, &ai, err, cap) < 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			nodelay(fd);
			break;
		}
		snprintf(err, cap, "cannot connect to %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---- what both sides share -------------------------------------------------------------- */

struct side {
	const char *role; /* "primary" or "backup" */
	const char *who;  /* for the arbiter: role and host name */
	struct ft_key key;
	struct ft_arbiter *arb;
	char pair_id[FT_PAIR_ID_MAX + 1];
	uint64_t generation;
	unsigned timeout_ms;
	/* output */
	bool stdio;
	struct ft_console *con;
	pthread_mutex_t out_mu;
	uint8_t *hist; /* stdio backup: output kept until it goes live */
	size_t hist_n, hist_cap;
	bool out_live; /* stdio: write straight to stdout */
	/* status */
	int listen_fd;
	pthread_t status_thread;
	bool status_on;
	struct ft_primary *fp;
	struct ft_backup *fb;
	struct ft_input *in; /* typed input from console clients */
	struct pri_log *log; /* primary: what a join needs */
	const char *backend; /* the backend the guest runs on (a join must restore there) */
	atomic_int state; /* 0 protected/following, 1 alone, 2 loser */
};

static void write_out(const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t k = write(1, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* stdout went away: the guest runs on */
		b += k;
		n -= (size_t)k;
	}
}

/* Guest output that may leave (primary: acked; backup: replayed or live). */
static void side_out(struct side *s, const uint8_t *b, size_t n)
{
	if (!s->stdio) {
		ft_console_publish(s->con, b, n);
		return;
	}
	pthread_mutex_lock(&s->out_mu);
	if (s->out_live) {
		write_out(b, n);
	} else {
		if (s->hist_n + n > s->hist_cap) {
			size_t nc = s->hist_cap ? s->hist_cap * 2 : 1u << 16;
			while (nc < s->hist_n + n)
				nc *= 2;
			uint8_t *h = realloc(s->hist, nc);
			if (!h)
				die_line(EXIT_HOST, "ft: no memory for the guest's output");
			s->hist = h;
			s->hist_cap = nc;
		}
		memcpy(s->hist + s->hist_n, b, n);
		s->hist_n += n;
	}
	pthread_mutex_unlock(&s->out_mu);
}

/* The guest ended: clients get the rest of the output and are told it ended; they have
 * a few seconds to read it before the console stops. */
static void side_end(struct side *s)
{
	if (!s->con)
		return;
	ft_console_end(s->con);
	if (!ft_console_drain(s->con, 5000))
		fprintf(stderr, "%s: ft %s: a console client did not read the end of the output "
				"within 5 s; it is cut off\n", prog, s->role);
	ft_console_stop(s->con);
	s->con = NULL;
}

static void side_go_live(struct side *s)
{
	if (!s->stdio) {
		ft_console_set_live(s->con, true);
		return;
	}
	pthread_mutex_lock(&s->out_mu);
	write_out(s->hist, s->hist_n);
	free(s->hist);
	s->hist = NULL;
	s->hist_n = s->hist_cap = 0;
	s->out_live = true;
	pthread_mutex_unlock(&s->out_mu);
}

static void release_cb(void *opaque, const uint8_t *b, size_t n)
{
	side_out(opaque, b, n);
}

static void replay_out_cb(void *opaque, uint8_t byte)
{
	side_out(opaque, &byte, 1);
}

/* The other side is lost: claim the arbiter. A store that cannot be reached is tried
 * again for a while; a side that still cannot tell stops (it must not run alone). */
static enum ft_verdict claim_cb(void *opaque, const char *why)
{
	struct side *s = opaque;
	const char *other = strcmp(s->role, "primary") ? "primary" : "backup";
	fprintf(stderr, "%s: ft %s: lost the %s: %s; claiming the arbiter %s\n", prog, s->role,
		other, why, ft_arbiter_spec(s->arb));
	char err[256] = "";
	enum ft_claim c = FT_CLAIM_ERROR;
	for (int i = 0; i < 10 && c == FT_CLAIM_ERROR; i++) {
		c = ft_arbiter_claim(s->arb, s->pair_id, s->generation, s->who, err, sizeof(err));
		if (c == FT_CLAIM_ERROR) {
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (c == FT_CLAIM_WON) {
		atomic_store(&s->state, 1);
		fprintf(stderr, "%s: ft %s: won the arbiter (pair %s, generation %" PRIu64 ")%s\n",
			prog, s->role, s->pair_id, s->generation,
			strcmp(s->role, "primary") ? ""
						   : "; running on UNPROTECTED (no backup)");
		return FT_ALONE;
	}
	atomic_store(&s->state, 2);
	if (c == FT_CLAIM_LOST)
		fprintf(stderr, "%s: ft %s: lost the arbiter: %s; stopping the guest\n", prog,
			s->role, err);
	else
		fprintf(stderr, "%s: ft %s: cannot reach the arbiter: %s; stopping the guest\n",
			prog, s->role, err);
	return FT_LOSER;
}

static void side_keys(struct side *s, const char *key_path, const char *arbiter)
{
	char err[256];
	if (!key_path)
		die_line(EXIT_USAGE, "ft %s: --key KEY is required (make one with 'rewind ft "
				     "keygen KEY')", s->role);
	load_key(key_path, &s->key);
	if (!arbiter)
		die_line(EXIT_USAGE, "ft %s: --arbiter SPEC is required on both sides (file:PATH "
				     "or etcd:HOST:PORT/KEY)", s->role);
	if (ft_arbiter_open(arbiter, &s->arb, err, sizeof(err)) < 0)
		die_line(EXIT_HOST, "--arbiter %s: %s", arbiter, err);
	static char who[300];
	char host[256] = "?";
	gethostname(host, sizeof(host) - 1);
	snprintf(who, sizeof(who), "%s@%s[%d]", s->role, host, (int)getpid());
	s->who = who;
}

/* Typed input from a console client (on the console's thread). */
static size_t console_input_cb(void *opaque, uint64_t client, uint64_t seq, const uint8_t *buf,
			       size_t n)
{
	struct side *s = opaque;
	return ft_input_offer(s->in, client, seq, buf, n, 200);
}

static void side_console(struct side *s, const char *serial, bool live, uint64_t base)
{
	pthread_mutex_init(&s->out_mu, NULL);
	if (ft_input_create(&s->in) < 0)
		die_line(EXIT_HOST, "ft: no pipe for the guest's input: %s", strerror(errno));
	if (!strcmp(serial, "stdio")) {
		s->stdio = true;
		s->out_live = live;
		return;
	}
	if (strncmp(serial, "tcp:", 4))
		die_line(EXIT_USAGE, "--serial %s: under 'rewind ft' expected tcp:HOST:PORT (the ft "
				     "console) or stdio", serial);
	char err[256];
	int fd = listen_on(serial + 4, err, sizeof(err));
	if (fd < 0)
		die_line(EXIT_HOST, "--serial: %s", err);
	struct ft_console_config cc = {.listen_fd = fd, .key = &s->key, .out_base = base,
				       .input = console_input_cb, .opaque = s};
	if (ft_console_start(&cc, &s->con, err, sizeof(err)) < 0)
		die_line(EXIT_HOST, "--serial %s: %s", serial, err);
	ft_console_set_live(s->con, live);
}

/* ---- status ------------------------------------------------------------------------------ */

static void status_text(struct side *s, char *buf, size_t cap)
{
	struct ft_stats st = {0};
	int state = atomic_load(&s->state);
	const char *what;
	if (s->fp) {
		ft_primary_stats(s->fp, &st);
		what = state == 1 ? "unprotected (the backup was lost; arbiter won)"
		       : state == 2 ? "stopping (lost the arbiter)"
				    : "protected";
	} else if (s->fb) {
		ft_backup_stats(s->fb, &st);
		what = state == 1 ? "catching up (the primary was lost; arbiter won): replaying "
				    "what it received, then it goes live"
		       : state == 2 ? "stopping (lost the arbiter)"
				    : "following";
	} else {
		what = "starting";
	}
	uint64_t lagpos = st.held > st.replayed && st.held != UINT64_MAX ? st.held - st.replayed
									  : 0;
	snprintf(buf, cap,
		 "role: %s\n"
		 "state: %s\n"
		 "pair: %s generation %" PRIu64 "\n"
		 "acked: %" PRIu64 "\n"
		 "replayed: %" PRIu64 "\n"
		 "lag: %" PRIu64 " positions, %.1f ms\n"
		 "link: %s, last heard %.0f ms ago\n"
		 "log: %" PRIu64 " bytes, %" PRIu64 " markers\n",
		 s->role, what, s->pair_id, s->generation, st.held, st.replayed, lagpos,
		 st.lag_ns / 1e6, st.linked ? "up" : "down", st.last_heard_ns / 1e6, st.log_bytes,
		 st.markers);
	if (s->fp) {
		size_t l = strlen(buf);
		snprintf(buf + l, cap - l,
			 "output: %" PRIu64 " bytes released, %" PRIu64 " waiting for the backup\n",
			 st.out_released, st.out_buffered);
	}
}

/* Connections of the --listen port being served (each on a thread of its own, so that a
 * silent or slow one, or a join that copies RAM, holds up nobody else), and the most. */
#define STATUS_CONNS_MAX 16
static atomic_int g_status_conns;

struct status_conn {
	struct side *s;
	int fd;
};

static void status_serve(struct side *s, int fd);

static void *status_conn_main(void *arg)
{
	struct status_conn sc = *(struct status_conn *)arg;
	free(arg);
	status_serve(sc.s, sc.fd);
	atomic_fetch_sub(&g_status_conns, 1);
	return NULL;
}

static void *status_main(void *arg)
{
	struct side *s = arg;
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		struct status_conn *sc = malloc(sizeof(*sc));
		pthread_t t;
		pthread_attr_t at;
		bool started = false;
		if (sc && atomic_fetch_add(&g_status_conns, 1) < STATUS_CONNS_MAX &&
		    pthread_attr_init(&at) == 0) {
			*sc = (struct status_conn){s, fd};
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			started = pthread_create(&t, &at, status_conn_main, sc) == 0;
			pthread_attr_destroy(&at);
		}
		if (!started) { /* too many at once (or no memory): this one is closed */
			if (sc)
				atomic_fetch_sub(&g_status_conns, 1);
			free(sc);
			close(fd);
		}
	}
}

/* One connection of the --listen port: the handshake, then a status request, a join, or
 * a stream hello that is refused. */
static void status_serve(struct side *s, int fd)
{
	struct ft_chan *c;
	char err[256];
	if (ft_chan_open(fd, &s->key, FT_CHAN_ACCEPTOR, FT_PURPOSE, 2000, &c, err,
			 sizeof(err)) < 0) {
		fprintf(stderr, "%s: ft %s: refused a connection: %s\n", prog, s->role, err);
		return;
	}
	uint8_t type = 0, b[64];
	size_t n;
	int got = ft_chan_recv(c, &type, b, sizeof(b), &n, 2000);
	if (got == 1 && type == FT_MSG_STATUS) {
		char text[1024];
		status_text(s, text, sizeof(text));
		(void)ft_chan_send(c, FT_MSG_STATUS_OK, text, strlen(text));
	} else if (got == 1 && type == FT_MSG_JOIN && s->fp && n > 0 && s->backend &&
		   (n != strlen(s->backend) || memcmp(b, s->backend, n))) {
		/* The joining backup says which backend it runs (JOIN's body; none: it takes
		 * the primary's): the machine state restores on this one only. */
		char why[256];
		snprintf(why, sizeof(why),
			 "this primary runs its guest on %s, and a joining backup restores its "
			 "machine state, which is %s's: join with --backend %s (or without "
			 "--backend)",
			 s->backend, s->backend, s->backend);
		char asked[sizeof(b) + 1], vis[96];
		memcpy(asked, b, n);
		asked[n] = 0;
		fprintf(stderr, "%s: ft primary: refused a backup's join on %s: %s\n", prog,
			cli_visible(asked, vis, sizeof(vis)), why);
		(void)ft_chan_send(c, FT_MSG_REFUSED, why, strlen(why));
	} else if (got == 1 && type == FT_MSG_JOIN && s->fp) {
		struct ft_link link;
		ft_link_chan(&link, c);
		if (ft_primary_join(s->fp, &link, err, sizeof(err)) == 0)
			return; /* the channel is the stream now */
		fprintf(stderr, "%s: ft primary: refused a backup's join: %s\n", prog, err);
		(void)ft_chan_send(c, FT_MSG_REFUSED, err, strlen(err));
	} else if (got == 1 && type == FT_MSG_JOIN) {
		(void)ft_chan_send(c, FT_MSG_REFUSED, "this is not a primary", 21);
	} else if (type == FT_MSG_HELLO) {
		fprintf(stderr, "%s: ft %s: refused a second stream (this side has its pair)\n",
			prog, s->role);
		static const char busy[] = "it follows another primary already";
		(void)ft_chan_send(c, FT_MSG_REFUSED, busy, sizeof(busy) - 1);
	}
	ft_chan_close(c);
}

static void status_start(struct side *s)
{
	if (s->listen_fd < 0)
		return;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&s->status_thread, NULL, status_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		die_line(EXIT_HOST, "ft: starting the status thread: %s", strerror(e));
	s->status_on = true;
}

static int cmd_ft_status(int argc, char **argv)
{
	const char *key_path = NULL;
	static const struct option lo[] = {{"key", required_argument, NULL, 'k'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'k') {
			key_path = optarg;
		} else if (c == 'h') {
			usage_ft(stdout);
			exit(0);
		} else {
			fprintf(stderr, "Try 'rewind ft --help'.\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc - 1 || !key_path)
		die_line(EXIT_USAGE, "ft status: expected --key KEY HOST:PORT");
	struct ft_key key;
	char err[256];
	load_key(key_path, &key);
	int fd = connect_to(argv[optind], err, sizeof(err));
	if (fd < 0)
		die_line(EXIT_HOST, "ft status: %s", err);
	struct ft_chan *ch;
	if (ft_chan_open(fd, &key, FT_CHAN_CONNECTOR, FT_PURPOSE, 5000, &ch, err, sizeof(err)) <
	    0)
		die_line(EXIT_BADINPUT, "ft status %s: %s", argv[optind], err);
	uint8_t type;
	char text[2048];
	size_t n;
	if (ft_chan_send(ch, FT_MSG_STATUS, NULL, 0) < 0 ||
	    ft_chan_recv(ch, &type, text, sizeof(text) - 1, &n, 5000) != 1 ||
	    type != FT_MSG_STATUS_OK)
		die_line(EXIT_HOST, "ft status %s: no answer (%s)", argv[optind],
			 *ft_chan_error(ch) ? ft_chan_error(ch) : "timeout");
	text[n] = 0;
	fputs(text, stdout);
	ft_chan_close(ch);
	return 0;
}

/* ---- options --------------------------------------------------------------------------- */

/*
 * Progress markers' default interval (--marker-ms), whatever positions count: where they
 * count exits a marker waits for the next exit, so it rarely needs a landmark (ft.h's
 * exits; docs/ft.md, "Backends", has what that costs the backup, measured).
 */
#define FT_MARKER_MS 5

/* Pre-copy rounds of a join, at most (--precopy-rounds). */
#define JOIN_ROUNDS_MAX 64

struct ft_opts {
	const char *key, *arbiter, *serial, *log, *listen, *backup, *mem, *append, *join, *initrd;
	const char *backend; /* --backend (NULL: primary emu, backup the stream's) */
	bool exits, positions_given; /* --positions (primary) */
	unsigned timeout_ms, marker_ms, connect_s, precopy_rounds;
	uint64_t out_buffer;
};

static unsigned parse_uint(const char *opt, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (errno || *end || !*v || *v == '-' || x < lo || x > hi)
		die_line(EXIT_USAGE, "%s %s: expected a number from %u to %u", opt, v, lo, hi);
	return (unsigned)x;
}

static void parse_ft_opts(int argc, char **argv, bool primary, struct ft_opts *o)
{
	*o = (struct ft_opts){.serial = "stdio", .mem = "128M", .timeout_ms = 1000,
			      .marker_ms = FT_MARKER_MS, .connect_s = 10, .out_buffer = 64u << 10,
			      .precopy_rounds = 10};
	static const struct option lo[] = {
		{"key", required_argument, NULL, 'k'},      {"arbiter", required_argument, NULL, 'a'},
		{"serial", required_argument, NULL, 's'},   {"log", required_argument, NULL, 'l'},
		{"listen", required_argument, NULL, 'L'},   {"backup", required_argument, NULL, 'B'},
		{"mem", required_argument, NULL, 'm'},      {"append", required_argument, NULL, 'A'},
		{"timeout", required_argument, NULL, 't'},  {"marker-ms", required_argument, NULL, 'M'},
		{"connect-for", required_argument, NULL, 'C'},
		{"out-buffer", required_argument, NULL, 'O'}, {"help", no_argument, NULL, 'h'},
		{"join", required_argument, NULL, 'J'},     {"initrd", required_argument, NULL, 'R'},
		{"precopy-rounds", required_argument, NULL, 'P'},
		{"backend", required_argument, NULL, 'b'},  {"positions", required_argument, NULL, 'X'},
		{NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (!primary && strchr("BmAMCORX", c))
			die_line(EXIT_USAGE, "ft backup: %s is an option of 'rewind ft primary'",
				 argv[optind - 1]);
		switch (c) {
		case 'k': o->key = optarg; break;
		case 'a': o->arbiter = optarg; break;
		case 's': o->serial = optarg; break;
		case 'l': o->log = optarg; break;
		case 'L': o->listen = optarg; break;
		case 'B': o->backup = optarg; break;
		case 'J':
			if (primary)
				die_line(EXIT_USAGE, "ft primary: --join is an option of 'rewind ft "
						     "backup'");
			o->join = optarg;
			break;
		case 'm': o->mem = optarg; break;
		case 'A': o->append = optarg; break;
		case 'R': o->initrd = optarg; break;
		case 't': {
			char *end;
			errno = 0;
			double v = strtod(optarg, &end);
			if (errno || *end || !*optarg || !(v >= 0.05 && v <= 3600))
				die_line(EXIT_USAGE, "--timeout %s: expected seconds, 0.05 to 3600",
					 optarg);
			o->timeout_ms = (unsigned)(v * 1000 + 0.5);
			break;
		}
		case 'M':
			o->marker_ms = parse_uint("--marker-ms", optarg, 1, 1000);
			break;
		case 'b':
			if (!strcmp(optarg, "help")) {
				cli_print_backend_help();
				exit(0);
			}
			if (primary ? strcmp(optarg, "emu") && strcmp(optarg, "kvm") &&
					      strcmp(optarg, "auto")
				    : strcmp(optarg, "emu") && strcmp(optarg, "kvm"))
				die_line(EXIT_USAGE, "--backend %s: expected %s", optarg,
					 primary ? "emu, kvm, auto or help" : "kvm or emu");
			o->backend = optarg;
			break;
		case 'X':
			o->exits = cli_parse_positions(optarg);
			o->positions_given = true;
			break;
		case 'C': o->connect_s = parse_uint("--connect-for", optarg, 0, 86400); break;
		case 'P':
			o->precopy_rounds = parse_uint("--precopy-rounds", optarg, 1, JOIN_ROUNDS_MAX);
			break;
		case 'O':
			if (vmm_parse_size(optarg, &o->out_buffer) < 0 || o->out_buffer < 256 ||
			    o->out_buffer > (64u << 20))
				die_line(EXIT_USAGE, "--out-buffer %s: expected a size from 256 to 64M",
					 optarg);
			break;
		case 'h':
			usage_ft(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'rewind ft --help'.\n");
			exit(EXIT_USAGE);
		}
	}
	if (primary && optind != argc - 1)
		die_line(EXIT_USAGE, "ft primary: expected one guest ELF file (try 'rewind ft --help')");
	if (!primary && optind != argc)
		die_line(EXIT_USAGE, "ft backup: unexpected argument %s (the guest comes from the "
				     "primary)", argv[optind]);
	if (primary && !o->backup)
		die_line(EXIT_USAGE, "ft primary: --backup HOST:PORT is required (where 'rewind ft "
				     "backup --listen' waits)");
	if (!primary && o->join && o->log)
		die_line(EXIT_USAGE, "ft backup: --log with --join: a joining backup starts from the "
				     "primary's machine state, which no log file can start from (keep "
				     "the log on the primary: its --log holds the whole run)");
	if (!primary && !o->listen && !o->join)
		die_line(EXIT_USAGE, "ft backup: --listen HOST:PORT (where the primary connects) or "
				     "--join HOST:PORT (a running primary's --listen) is required");
}

static int open_log(const char *path)
{
	if (!path)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die_line(EXIT_HOST, "--log %s: %s", path, strerror(errno));
	return fd;
}

static int stop_status(struct vmm_machine *m, const struct vmm_stop *stop)
{
	(void)m;
	switch (stop->reason) {
	case VMM_STOP_DEBUG_EXIT:
		return (int)(((stop->exit_value << 1) | 1) & 0xff);
	case VMM_STOP_RESET:
	case VMM_STOP_TRIPLE_FAULT:
		fprintf(stderr, "%s: the guest reset or triple-faulted at position %" PRIu64 "\n",
			prog, stop->pos);
		return EXIT_RESET;
	default:
		return EXIT_POWEROFF;
	}
}

static volatile sig_atomic_t g_sig;
static struct vmm_live *g_ft_live;
static void on_sig(int sig)
{
	g_sig = sig;
	if (g_ft_live)
		vmm_live_request_stop(g_ft_live);
}

/* ---- re-protect: a backup joins a primary that runs alone ------------------------------ */

/* What a primary needs to start a new log when a backup joins. */
struct pri_log {
	struct lf_header hd;
	struct lf_writer_config wc;
	struct lf_io io;
	struct vmm_live *live;
	struct lf_writer *w, *old_w; /* the current log's writer; the one before a join */
	struct rec *rec, *old_rec;
	/* --log: the file's own writer, every recorder's tee (NULL: none) */
	struct lf_writer *tee;
	struct lf_io tee_io;
	struct lf_io_fd tee_fd;
	unsigned marker_ms, timeout_ms;
	/* the join in progress: RAM copied by a thread while the guest runs, then the pages
	 * written meanwhile, the devices and the vCPU while it stands still */
	struct vmm_machine *m;
	const struct ft_link *link;
	pthread_t copier;
	bool copier_on;
	int copy_rc;
	uint64_t *dirty;   /* pages written since the last look (vmm_machine_track) */
	uint64_t *sending; /* the copier's pages in a round after the first */
	size_t words;
	bool tracked;
	unsigned round, max_rounds; /* copy rounds while the guest runs: done, at most */
	uint64_t round_pages[JOIN_ROUNDS_MAX]; /* pages each round sent */
	uint64_t round_dirty;                  /* pages written during the last round */
	uint64_t t0, t_pause, ram_bytes, sent_bytes, dirty_pages;
};

/* A piece of RAM whose worst lz4 output (incompressible pages) still fits one message. */
#define STATE_PIECE (128u << 10)
_Static_assert(STATE_PIECE / 255 + STATE_PIECE + 16 + 20 <= FT_MSG_MAX, "a STATE piece must fit");
/* Pre-copy: rounds while the guest runs stop when the pages written during the last one
 * are this few (256 KiB), or no fewer than the round before wrote, or at --precopy-rounds. */
#define JOIN_SMALL_PAGES 64
#define STATE_HDR 20 /* u64 RAM size, u64 offset, u32 length; then lz4, or nothing: zeros */

/* One piece of RAM [off, off + n) to the joining backup. */
static int send_ram(struct pri_log *pl, const uint8_t *ram, uint64_t size, uint64_t off,
		    size_t n, uint8_t *z, int bound)
{
	const uint8_t *pc = ram + off;
	bool zero = pc[0] == 0 && memcmp(pc, pc + 1, n - 1) == 0;
	int k = zero ? 0 : LZ4_compress_default((const char *)pc, (char *)z + STATE_HDR, (int)n,
						bound);
	if (k <= 0 && !zero)
		return -1;
	for (int i = 0; i < 8; i++) {
		z[i] = (uint8_t)(size >> (8 * i));
		z[8 + i] = (uint8_t)(off >> (8 * i));
	}
	for (int i = 0; i < 4; i++)
		z[16 + i] = (uint8_t)((uint64_t)n >> (8 * i));
	pl->sent_bytes += STATE_HDR + (uint64_t)k;
	return pl->link->ops->send(pl->link->opaque, FT_MSG_STATE, z, STATE_HDR + (size_t)k);
}

/* Send the pages set in bits (all of RAM where bits is NULL), runs of them at most a piece
 * each; counts them in *pages. */
static int send_pages(struct pri_log *pl, const uint8_t *ram, uint64_t size,
		      const uint64_t *bits, uint64_t *pages)
{
	int bound = LZ4_compressBound(STATE_PIECE);
	uint8_t *z = malloc(STATE_HDR + (size_t)bound);
	if (!z)
		return -1;
	uint64_t n = size / 4096;
	int rc = 0;
	for (uint64_t pg = 0; rc == 0 && pg < n;) {
		if (bits && !(bits[pg / 64] >> (pg % 64) & 1)) {
			pg++;
			continue;
		}
		uint64_t first = pg;
		while (pg < n && pg - first < STATE_PIECE / 4096 &&
		       (!bits || (bits[pg / 64] >> (pg % 64) & 1)))
			pg++;
		*pages += pg - first;
		rc = send_ram(pl, ram, size, first * 4096, (size_t)((pg - first) * 4096), z, bound);
	}
	free(z);
	return rc;
}

/* The copier: one round while the guest runs: all of RAM, then the pages written during
 * the round before (what it writes meanwhile goes in the next round, or in the pause). */
static void *copier_main(void *arg)
{
	struct side *s = arg;
	struct pri_log *pl = s->log;
	uint64_t pages = 0;
	pl->copy_rc = send_pages(pl, vmm_machine_ram(pl->m), vmm_machine_ram_size(pl->m),
				 pl->round ? pl->sending : NULL, &pages);
	pl->round_pages[pl->round < JOIN_ROUNDS_MAX ? pl->round : JOIN_ROUNDS_MAX - 1] = pages;
	ft_primary_join_copied(s->fp);
	return NULL;
}

static int copier_start(struct side *s)
{
	struct pri_log *pl = s->log;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&pl->copier, NULL, copier_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		return -1;
	pl->copier_on = true;
	return 0;
}

/* HELLO with the next generation; start watching which pages the guest writes; copy RAM. */
static int join_begin(void *opaque, struct vmm_machine *m, const struct ft_link *link)
{
	struct side *s = opaque;
	struct pri_log *pl = s->log;
	pl->t0 = ft_now_ns();
	pl->m = m;
	pl->link = link;
	pl->sent_bytes = pl->dirty_pages = 0;
	pl->round = 0;
	memset(pl->round_pages, 0, sizeof(pl->round_pages));
	pl->ram_bytes = vmm_machine_ram_size(m);
	char err[256];
	struct ft_hello h = {.generation = s->generation + 1, .marker_ms = pl->marker_ms,
			     .timeout_ms = pl->timeout_ms};
	memcpy(h.pair_id, s->pair_id, sizeof(h.pair_id));
	if (ft_hello_send(link, &h, 5000, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: ft primary: a backup's join failed: %s\n", prog, err);
		return -1;
	}
	pl->words = (size_t)((pl->ram_bytes / 4096 + 63) / 64);
	free(pl->dirty);
	free(pl->sending);
	pl->dirty = calloc(pl->words ? pl->words : 1, sizeof(*pl->dirty));
	pl->sending = calloc(pl->words ? pl->words : 1, sizeof(*pl->sending));
	if (!pl->dirty || !pl->sending)
		return -1;
	struct vmm_track t = {.dirty = pl->dirty};
	/* Where the backend cannot tell written pages, the whole copy waits for the stop. */
	pl->tracked = vmm_machine_track(m, &t) == 0;
	free(t.code);
	pl->copy_rc = 0;
	pl->copier_on = false;
	if (!pl->tracked) {
		ft_primary_join_copied(s->fp);
		return 0;
	}
	return copier_start(s);
}

static uint64_t count_bits(const uint64_t *b, size_t words)
{
	uint64_t n = 0;
	for (size_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

/* At a stop after a copy round: another round while the guest runs (1), or the guest
 * stands still for the pages written since the last round (all of RAM where they are not
 * known), then the devices and the vCPU, and where the output stands (0). */
static int join_end(void *opaque, struct vmm_machine *m, const struct ft_link *link)
{
	struct side *s = opaque;
	struct pri_log *pl = s->log;
	uint64_t t_stop = ft_now_ns();
	if (pl->copier_on) {
		pthread_join(pl->copier, NULL);
		pl->copier_on = false;
	}
	if (pl->copy_rc < 0)
		goto fail;
	const uint8_t *ram = vmm_machine_ram(m);
	uint64_t size = vmm_machine_ram_size(m);
	int rc = 0;
	if (pl->tracked) {
		struct vmm_track t = {.dirty = pl->dirty};
		rc = vmm_machine_track(m, &t);
		free(t.code);
		if (rc < 0)
			goto fail;
		/*
		 * Another round while the guest runs, as long as the pages written during the
		 * last one are many (more than JOIN_SMALL_PAGES), fewer than the round before
		 * wrote (the copy gains on the guest), and the rounds are not used up.
		 */
		uint64_t d = count_bits(pl->dirty, pl->words);
		uint64_t before = pl->round ? pl->round_dirty : UINT64_MAX;
		pl->round_dirty = d;
		if (d > JOIN_SMALL_PAGES && d < before && pl->round + 1 < pl->max_rounds &&
		    pl->round + 1 < JOIN_ROUNDS_MAX) {
			uint64_t *tmp = pl->sending;
			pl->sending = pl->dirty;
			pl->dirty = tmp;
			memset(pl->dirty, 0, pl->words * sizeof(*pl->dirty));
			pl->round++;
			return copier_start(s) < 0 ? -1 : 1;
		}
	}
	pl->t_pause = t_stop;
	uint64_t pages = 0;
	rc = send_pages(pl, ram, size, pl->tracked ? pl->dirty : NULL, &pages);
	pl->dirty_pages = pages;
	if (rc < 0)
		goto fail;
	void *snap;
	size_t len;
	if (vmm_machine_snapshot(m, &snap, &len) < 0 || len + 32 > FT_MSG_MAX)
		goto fail;
	uint8_t *end = malloc(32 + len);
	if (!end) {
		free(snap);
		goto fail;
	}
	uint64_t oh, ob, v[4];
	rec_output(pl->rec, &oh, &ob);
	v[0] = len;
	v[1] = oh;
	v[2] = ob;
	v[3] = vmm_live_host_ns(pl->live);
	for (int f = 0; f < 4; f++)
		for (int i = 0; i < 8; i++)
			end[8 * f + i] = (uint8_t)(v[f] >> (8 * i));
	memcpy(end + 32, snap, len);
	free(snap);
	rc = link->ops->send(link->opaque, FT_MSG_STATE_END, end, 32 + len);
	free(end);
	if (rc < 0)
		goto fail;
	s->generation++;
	atomic_store(&s->state, 0);
	return 0;
fail:
	fprintf(stderr, "%s: ft primary: sending the machine state to a joining backup failed: %s\n",
		prog, *link->ops->error(link->opaque) ? link->ops->error(link->opaque)
						      : "no memory, or a state too large");
	return -1;
}

/* The new log: a new writer on the stream, a recorder that goes on from the output so far. */
static int join_log(void *opaque, struct vmm_machine *m, struct rec **out)
{
	struct side *s = opaque;
	struct pri_log *pl = s->log;
	(void)m;
	/* The log before the previous join is no longer used by anything. */
	if (pl->old_rec) {
		lf_writer_free(pl->old_w);
		rec_free(pl->old_rec);
	}
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	pl->hd.created_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	struct lf_writer *w;
	if (lf_writer_open(&pl->io, &pl->hd, &pl->wc, &w) < 0)
		return -1;
	uint64_t oh, ob;
	rec_output(pl->rec, &oh, &ob);
	struct rec_config rcc = {.inner = &vmm_live_input_ops, .inner_opaque = pl->live,
				 .writer = w, .tee = pl->tee, .resume = true, .out_hash = oh,
				 .out_bytes = ob};
	struct rec *r;
	if (rec_create(&rcc, &r) < 0) {
		lf_writer_free(w);
		return -1;
	}
	pl->old_w = pl->w;
	pl->old_rec = pl->rec;
	pl->w = w;
	pl->rec = r;
	*out = r;
	uint64_t now = ft_now_ns();
	char rounds[200] = "";
	size_t rl = 0;
	for (unsigned i = 1; pl->tracked && i <= pl->round && rl + 24 < sizeof(rounds); i++)
		rl += (size_t)snprintf(rounds + rl, sizeof(rounds) - rl, "%s%" PRIu64,
				       i > 1 ? ", " : "", pl->round_pages[i]);
	fprintf(stderr,
		"%s: ft primary: a backup joined (generation %" PRIu64 "): protected again; the "
		"guest paused %.1f ms for its state (%" PRIu64 " pages written since the last "
		"copy round sent then; %u rounds while it ran%s%s; %.1f MB of RAM, %.1f MB sent "
		"in %.0f ms)\n",
		prog, s->generation, (now - pl->t_pause) / 1e6, pl->dirty_pages,
		pl->tracked ? pl->round + 1 : 0, rl ? ", pages sent again by rounds 2 on: " : "",
		rounds, pl->ram_bytes / 1e6, pl->sent_bytes / 1e6,
		(now - pl->t0) / 1e6);
	return 0;
}

/* ---- primary ------------------------------------------------------------------------------ */

static int cmd_ft_primary(int argc, char **argv)
{
	struct ft_opts o;
	parse_ft_opts(argc, argv, true, &o);
	const char *path = argv[optind];
	static struct side s = {.role = "primary", .listen_fd = -1, .generation = 1};
	uint64_t mem;
	if (vmm_parse_size(o.mem, &mem) < 0 || mem < VMM_MEM_MIN || mem > VMM_MEM_MAX ||
	    (mem & 0xfff))
		die_line(EXIT_USAGE, "--mem %s: expected a multiple of 4K from 2M to 64G", o.mem);
	/* The backend, what positions count, the log's config line and the machine's
	 * portable flags: decided as `rewind record` decides them (machcfg.c), before
	 * anything else (no /dev/kvm: one line, status 10). */
	const struct vmm_cpu_ops *backend = cli_pick_backend(o.backend ? o.backend : "emu");
	bool exits = cli_record_exits(backend, o.positions_given, o.exits);
	static char config[256];
	unsigned portable = cli_record_machine(backend, exits, mem, "real", config,
					       sizeof(config));
	s.backend = backend->name;
	side_keys(&s, o.key, o.arbiter);
	s.timeout_ms = o.timeout_ms;
	char err[256];
	if (o.listen && (s.listen_fd = listen_on(o.listen, err, sizeof(err))) < 0)
		die_line(EXIT_HOST, "--listen: %s", err);
	void *elf;
	size_t elf_len;
	int rc = vmm_read_file(path, 512u << 20, &elf, &elf_len);
	if (rc < 0)
		die_line(rc == -VMM_ENOMEM ? EXIT_HOST : EXIT_BADINPUT, "%s: %s", path,
			 vmm_errdetail());
	void *initrd = NULL;
	size_t initrd_len = 0;
	if (o.initrd)
		cli_read_initrd(o.initrd, mem, &initrd, &initrd_len);
	uint8_t rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		die_line(EXIT_HOST, "ft primary: no random bytes for the pair id");
	snprintf(s.pair_id, sizeof(s.pair_id), "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);

	/* The backup first: nothing runs unprotected from the start. */
	int fd = -1;
	double until = (double)time(NULL) + o.connect_s;
	for (;;) {
		fd = connect_to(o.backup, err, sizeof(err));
		if (fd >= 0 || time(NULL) >= until)
			break;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (fd < 0)
		die_line(EXIT_HOST, "ft primary: %s (is 'rewind ft backup --listen %s' running?)",
			 err, o.backup);
	struct ft_chan *ch;
	if (ft_chan_open(fd, &s.key, FT_CHAN_CONNECTOR, FT_PURPOSE, 10000, &ch, err,
			 sizeof(err)) < 0)
		die_line(EXIT_BADINPUT, "ft primary: the backup at %s: %s", o.backup, err);
	struct ft_link link;
	ft_link_chan(&link, ch);
	struct ft_hello h = {.generation = s.generation, .marker_ms = o.marker_ms,
			     .timeout_ms = o.timeout_ms};
	memcpy(h.pair_id, s.pair_id, sizeof(h.pair_id));
	if (ft_hello_send(&link, &h, 10000, err, sizeof(err)) < 0)
		die_line(EXIT_HOST, "ft primary: %s", err);
	side_console(&s, o.serial, true, 0);

	int log_fd = open_log(o.log);
	static struct pri_log pl;
	s.log = &pl;
	pl.marker_ms = o.marker_ms;
	pl.timeout_ms = o.timeout_ms;
	pl.max_rounds = o.precopy_rounds;
	struct ft_primary_config pc = {.link = link, .marker_ms = o.marker_ms, .exits = exits,
				       .timeout_ms = o.timeout_ms, .out_cap = o.out_buffer,
				       .input = s.in, .release = release_cb,
				       .claim = claim_cb, .join_begin = join_begin,
				       .join_end = join_end, .join_log = join_log, .opaque = &s};
	struct ft_primary *fp;
	if (ft_primary_create(&pc, &fp) < 0)
		die_line(EXIT_HOST, "ft primary: no memory");
	ft_primary_io(fp, &pl.io);
	pl.hd = (struct lf_header){.tool = "rewind " REWIND_VERSION " ft", .config = config,
				   .cmdline = o.append ? o.append : "", .image_path = path,
				   .image_hash = lf_hash64(elf, elf_len), .image_len = elf_len,
				   .image = elf, .initrd_path = o.initrd,
				   .initrd_hash = initrd ? lf_hash64(initrd, initrd_len) : 0,
				   .initrd_len = initrd_len, .initrd = initrd};
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	pl.hd.created_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	pl.wc = (struct lf_writer_config){.codec = LF_CODEC_LZ4};
	rc = lf_writer_open(&pl.io, &pl.hd, &pl.wc, &pl.w);
	if (rc < 0)
		die_lf(rc, "ft primary: starting the stream");
	if (log_fd >= 0) {
		/* The file's own log, fed the same events: it goes on across joins. */
		lf_io_fd_init(&pl.tee_io, &pl.tee_fd, log_fd);
		struct lf_writer_config fwc = {.codec = LF_CODEC_ZSTD};
		rc = lf_writer_open(&pl.tee_io, &pl.hd, &fwc, &pl.tee);
		if (rc < 0)
			die_lf(rc, o.log);
	}
	struct vmm_live_config lc = {.in_fd = ft_input_fd(s.in)};
	if (vmm_live_create(&lc, &pl.live) < 0)
		die_line(EXIT_HOST, "ft primary: %s", vmm_errdetail());
	struct vmm_live *live = pl.live;
	struct rec_config rcc = {.inner = &vmm_live_input_ops, .inner_opaque = live,
				 .writer = pl.w, .tee = pl.tee};
	if (rec_create(&rcc, &pl.rec) < 0)
		die_line(EXIT_HOST, "ft primary: no memory");
	ft_primary_set_rec(fp, pl.rec);
	struct vmm_config cfg = {.mem_size = mem, .backend = backend,
				 .input = &ft_primary_input_ops, .input_opaque = fp,
				 .tap = &ft_primary_input_tap, .tap_opaque = fp};
	struct vmm_machine *m;
	if (vmm_machine_create(&cfg, &m) < 0 || vmm_machine_set_portable(m, portable) < 0)
		die_line(EXIT_HOST, "ft primary: creating the machine: %s", vmm_errdetail());
	if (vmm_machine_load_initrd(m, elf, elf_len, o.append, initrd, initrd_len) < 0)
		die_line(EXIT_BADINPUT, "%s: %s",
			 o.initrd && !strncmp(vmm_errdetail(), "initrd", 6) ? o.initrd : path,
			 vmm_errdetail());
	if (vmm_live_start(live, m) < 0 || ft_primary_start(fp, m) < 0)
		die_line(EXIT_HOST, "ft primary: starting threads: %s", vmm_errdetail());
	s.fp = fp;
	status_start(&s);
	g_ft_live = live;
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr,
		"%s: ft primary: pair %s: streaming to the backup at %s (backend %s, positions "
		"count %s, a marker every %u ms)\n",
		prog, s.pair_id, o.backup, backend->name, exits ? "exits" : "instructions",
		o.marker_ms);

	struct vmm_stop stop;
	rc = vmm_machine_run(m, &stop);
	if (atomic_load(&s.state) == 2)
		exit(EXIT_ARBITER);
	if (rc < 0)
		die_line(EXIT_HOST, "ft primary: %s", vmm_errdetail());
	int status = stop_status(m, &stop);
	rc = rec_finish(pl.rec, m, &stop);
	if (rc < 0)
		die_line(EXIT_HOST, "ft primary: %s", vmm_errdetail());
	if (ft_primary_finish(fp) == FT_LOSER)
		exit(EXIT_ARBITER);
	side_end(&s);
	struct ft_stats st;
	ft_primary_stats(fp, &st);
	fprintf(stderr,
		"%s: ft primary: the guest stopped at position %" PRIu64 "; log %" PRIu64
		" bytes, %" PRIu64 " markers; output %" PRIu64 " bytes, %.1f us per byte "
		"waiting for acks; %" PRIu64 " stalls (%.1f ms)\n",
		prog, stop.pos, st.log_bytes, st.markers, st.out_released,
		st.rel_lat_n ? st.rel_lat_ns / 1e3 / (double)st.rel_lat_n : 0.0, st.stalls,
		st.stall_ns / 1e6);
	if (log_fd >= 0 && close(log_fd) < 0)
		die_line(EXIT_HOST, "--log %s: %s", o.log, strerror(errno));
	return status;
}

/* ---- backup -------------------------------------------------------------------------------- */

/* A joining backup: the primary's RAM, its devices and vCPU, and where its output stood. */
struct join_state {
	uint8_t *ram;
	uint64_t ram_size;
	void *snap;
	size_t snap_len;
	uint64_t out_hash, out_bytes, last_clock;
	bool done;
};

static uint64_t le64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void join_receive(const struct ft_link *l, struct join_state *js)
{
	uint8_t *buf = malloc(FT_MSG_MAX + 64);
	if (!buf)
		die_line(EXIT_HOST, "ft backup: no memory");
	for (;;) {
		uint8_t type;
		size_t n;
		int rc = l->ops->recv(l->opaque, &type, buf, FT_MSG_MAX + 64, &n, 30000);
		if (rc <= 0)
			die_line(EXIT_HOST, "ft backup: receiving the primary's state: %s",
				 rc ? l->ops->error(l->opaque) : "nothing for 30 s");
		if (type == FT_MSG_STATE && n >= STATE_HDR) {
			uint64_t size = le64(buf), off = le64(buf + 8);
			size_t raw = (size_t)buf[16] | (size_t)buf[17] << 8 | (size_t)buf[18] << 16 |
				     (size_t)buf[19] << 24;
			if (!js->ram) {
				if (size < VMM_MEM_MIN || size > VMM_MEM_MAX ||
				    !(js->ram = calloc(1, (size_t)size)))
					die_line(EXIT_HOST, "ft backup: no memory for the primary's "
							    "RAM (%" PRIu64 " bytes)", size);
				js->ram_size = size;
			}
			if (size != js->ram_size || raw > STATE_PIECE || off > size ||
			    raw > size - off)
				die_line(EXIT_BADINPUT, "ft backup: a piece of the primary's RAM does "
							"not fit");
			int k = (int)raw;
			if (n == STATE_HDR) /* a piece of zeros */
				memset(js->ram + off, 0, raw);
			else
				k = LZ4_decompress_safe((const char *)buf + STATE_HDR,
							(char *)js->ram + off, (int)(n - STATE_HDR),
							(int)raw);
			if (k != (int)raw)
				die_line(EXIT_BADINPUT, "ft backup: a piece of the primary's RAM does "
							"not decompress");
		} else if (type == FT_MSG_STATE_END && n >= 32 && js->ram) {
			js->snap_len = (size_t)le64(buf);
			if (js->snap_len != n - 32 || !(js->snap = malloc(js->snap_len)))
				die_line(EXIT_BADINPUT, "ft backup: the primary's machine state is "
							"not whole");
			memcpy(js->snap, buf + 32, js->snap_len);
			js->out_hash = le64(buf + 8);
			js->out_bytes = le64(buf + 16);
			js->last_clock = le64(buf + 24);
			js->done = true;
			free(buf);
			return;
		} else {
			die_line(EXIT_BADINPUT, "ft backup: the primary sent message type %u while "
						"sending its state", type);
		}
	}
}

static int cmd_ft_backup(int argc, char **argv)
{
	struct ft_opts o;
	parse_ft_opts(argc, argv, false, &o);
	static struct side s = {.role = "backup", .listen_fd = -1};
	side_keys(&s, o.key, o.arbiter);
	s.timeout_ms = o.timeout_ms;
	char err[256];
	if (o.listen && (s.listen_fd = listen_on(o.listen, err, sizeof(err))) < 0)
		die_line(EXIT_HOST, "--listen: %s", err);
	signal(SIGPIPE, SIG_IGN);

	struct ft_chan *ch = NULL;
	struct ft_link link;
	struct ft_hello h;
	static struct join_state js;
	if (o.join) {
		/* Re-protect: ask the running primary for its state and its log from there. */
		int fd = connect_to(o.join, err, sizeof(err));
		if (fd < 0)
			die_line(EXIT_HOST, "ft backup --join: %s", err);
		nodelay(fd);
		if (ft_chan_open(fd, &s.key, FT_CHAN_CONNECTOR, FT_PURPOSE, 10000, &ch, err,
				 sizeof(err)) < 0)
			die_line(EXIT_BADINPUT, "ft backup --join %s: %s", o.join, err);
		ft_link_chan(&link, ch);
		uint64_t t0 = ft_now_ns();
		/* JOIN says which backend this backup runs, if it was told (--backend): the
		 * primary refuses at once where its machine state is another backend's. */
		if (ft_chan_send(ch, FT_MSG_JOIN, o.backend, o.backend ? strlen(o.backend) : 0) < 0 ||
		    ft_hello_take(&link, &h, 30000, err, sizeof(err)) < 0)
			die_line(EXIT_BADINPUT, "ft backup --join %s: %s", o.join, err);
		join_receive(&link, &js);
		fprintf(stderr,
			"%s: ft backup: joined the primary at %s: %.1f MB of RAM and its machine "
			"state in %.0f ms\n",
			prog, o.join, js.ram_size / 1e6, (ft_now_ns() - t0) / 1e6);
		side_console(&s, o.serial, false, js.out_bytes);
	} else {
		side_console(&s, o.serial, false, 0);
		fprintf(stderr, "%s: ft backup: waiting for the primary on %s\n", prog, o.listen);
		/* The stream: the first connection that proves the key and says hello. */
		for (;;) {
			int fd = accept4(s.listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				die_line(EXIT_HOST, "ft backup: accept: %s", strerror(errno));
			}
			nodelay(fd);
			if (ft_chan_open(fd, &s.key, FT_CHAN_ACCEPTOR, FT_PURPOSE, 5000, &ch, err,
					 sizeof(err)) < 0) {
				fprintf(stderr, "%s: ft backup: refused a connection: %s\n", prog, err);
				continue;
			}
			ft_link_chan(&link, ch);
			if (ft_hello_take(&link, &h, 5000, err, sizeof(err)) == 0)
				break;
			fprintf(stderr, "%s: ft backup: refused a connection: %s\n", prog, err);
			ft_chan_close(ch);
		}
	}
	memcpy(s.pair_id, h.pair_id, sizeof(s.pair_id));
	s.generation = h.generation;
	fprintf(stderr, "%s: ft backup: following pair %s (generation %" PRIu64 ")\n", prog,
		s.pair_id, s.generation);

	int log_fd = open_log(o.log);
	struct ft_backup_config bc = {.link = link, .timeout_ms = o.timeout_ms, .log_fd = log_fd,
				      .input = s.in, .claim = claim_cb, .opaque = &s};
	struct ft_backup *fb;
	if (ft_backup_create(&bc, &fb) < 0 || ft_backup_start(fb) < 0)
		die_line(EXIT_HOST, "ft backup: no memory");
	s.fb = fb;
	status_start(&s);
	struct lf_io io;
	ft_backup_io(fb, &io);
	struct lf_reader *r;
	int rc = lf_reader_open(&io, &r);
	if (rc < 0) {
		enum ft_backup_state bs0 = ft_backup_state(fb, NULL, 0);
		if (bs0 == FT_B_LOSER)
			exit(EXIT_ARBITER);
		if (bs0 == FT_B_ALONE)
			die_line(EXIT_BADINPUT, "ft backup: the primary was lost before its stream's "
						"header arrived: there is no guest to take over");
		die_lf(rc, "ft backup: the stream's header");
	}
	const struct lf_header *hd = lf_reader_header(r);
	/* The machine that replays the stream, decided as `rewind replay` decides it
	 * (machcfg.c): the stream's backend, or the one asked for where it can replay it
	 * (an exit-counted stream on emu). */
	struct cli_replay_machine rm;
	int mst = cli_replay_machine(hd->config, "ft backup: the stream", o.backend, false, &rm,
				     err, sizeof(err));
	if (mst)
		die_line(mst, "%s", err);
	uint64_t mem = rm.mem;
	if (js.done && strcmp(rm.backend->name, rm.bname))
		die_line(EXIT_USAGE, "ft backup --join: the primary runs its guest on %s, and its "
				     "machine state restores there only: join with --backend %s",
			 rm.bname, rm.bname);
	if (rm.backend == &kvm_cpu_ops && (rc = kvm_cpu_ops.probe()) < 0)
		cli_kvm_unusable(rc, rm.asked ? "--backend kvm"
					      : "ft backup: the stream's guest runs on kvm; "
						"replaying it needs kvm");
	s.backend = rm.backend->name;
	if (!hd->image)
		die_line(EXIT_BADINPUT, "ft backup: the stream carries no guest image");
	struct rpl_config rpc = {.reader = r, .out = replay_out_cb, .out_opaque = &s,
				 .stream = true, .resume = js.done, .out_hash = js.out_hash,
				 .out_bytes = js.out_bytes, .last_clock = js.last_clock};
	struct rpl *rpl;
	if (rpl_create(&rpc, &rpl) < 0)
		die_line(EXIT_HOST, "ft backup: no memory");
	struct vmm_config cfg = {.mem_size = mem, .backend = rm.backend,
				 .input = &ft_backup_input_ops, .input_opaque = fb,
				 .tap = &ft_backup_input_tap, .tap_opaque = fb};
	struct vmm_machine *m;
	if (vmm_machine_create(&cfg, &m) < 0 || vmm_machine_set_portable(m, rm.portable) < 0)
		die_line(EXIT_HOST, "ft backup: creating the machine: %s", vmm_errdetail());
	fprintf(stderr, "%s: ft backup: replaying on %s (the stream's guest runs on %s; "
			"positions count %s)\n",
		prog, rm.backend->name, rm.bname, rm.positions);
	ft_backup_attach(fb, rpl, m);
	if (js.done) {
		if (js.ram_size != vmm_machine_ram_size(m))
			die_line(EXIT_BADINPUT, "ft backup: the primary's RAM is %" PRIu64
						" bytes, its log says %" PRIu64, js.ram_size, mem);
		memcpy(vmm_machine_ram(m), js.ram, js.ram_size);
		if (vmm_machine_restore(m, js.snap, js.snap_len) < 0)
			die_line(EXIT_BADINPUT, "ft backup: the primary's machine state: %s",
				 vmm_errdetail());
		free(js.ram);
		free(js.snap);
		js.ram = js.snap = NULL;
	} else if (hd->initrd_len && !hd->initrd) {
		die_line(EXIT_BADINPUT, "ft backup: the stream's header names an initrd but does not "
					"carry it");
	} else if (vmm_machine_load_initrd(m, hd->image, hd->image_len, hd->cmdline, hd->initrd,
					   (size_t)hd->initrd_len) < 0) {
		/* The image and initrd as a replay loads them (a joined backup gets them with
		 * the primary's RAM instead). */
		die_line(EXIT_BADINPUT, "ft backup: the stream's image: %s", vmm_errdetail());
	}

	struct vmm_stop stop;
	rc = vmm_machine_run(m, &stop);
	char why[256];
	enum ft_backup_state bs = ft_backup_state(fb, why, sizeof(why));
	if (bs == FT_B_LOSER)
		exit(EXIT_ARBITER);
	uint64_t last_clock = 0;
	if (rc == 0 && stop.reason == VMM_STOP_USER && bs == FT_B_ALONE &&
	    rpl_at_log_end(rpl, &last_clock)) {
		/* Go live here, on the same machine: the live source plugged in, recorded as a
		 * primary's is, so that a new backup can join it (--join). */
		ft_input_set_alone(s.in, true);
		struct vmm_live_config lc = {.in_fd = ft_input_fd(s.in),
					     .clock_floor_ns = last_clock};
		static struct pri_log pl;
		/* --log goes on: the events received, then those of the live guest. */
		if (ft_backup_log(fb, &pl.tee, err, sizeof(err)) < 0)
			fprintf(stderr, "%s: ft backup: --log %s: %s; the log stops here\n", prog,
				o.log, err);
		if (vmm_live_create(&lc, &pl.live) < 0)
			die_line(EXIT_HOST, "ft backup: %s", vmm_errdetail());
		s.log = &pl;
		/* It records on in the stream's position kind (an emu backup of an exit-counted
		 * stream counts exits on, with landmarks), with markers as a primary would. */
		pl.marker_ms = FT_MARKER_MS;
		pl.timeout_ms = o.timeout_ms;
		pl.max_rounds = o.precopy_rounds;
		struct ft_primary_config pc = {.alone = true, .marker_ms = pl.marker_ms,
					       .exits = rm.exits,
					       .timeout_ms = o.timeout_ms,
					       .input = s.in, .release = release_cb,
					       .claim = claim_cb, .join_begin = join_begin,
					       .join_end = join_end, .join_log = join_log,
					       .opaque = &s};
		struct ft_primary *fp;
		if (ft_primary_create(&pc, &fp) < 0)
			die_line(EXIT_HOST, "ft backup: no memory");
		ft_primary_io(fp, &pl.io);
		pl.hd = *hd;
		/* The header of the logs it starts when joined names the backend it runs on now
		 * (a kvm stream followed on emu goes on on emu): a joining backup reads it. */
		static char live_config[256];
		(void)cli_record_machine(rm.backend, rm.exits, mem, "real", live_config,
					 sizeof(live_config));
		pl.hd.config = live_config;
		pl.wc = (struct lf_writer_config){.codec = LF_CODEC_LZ4};
		/* (no backup yet: this log goes nowhere; a join starts a new one) */
		if (lf_writer_open(&pl.io, &pl.hd, &pl.wc, &pl.w) < 0)
			die_line(EXIT_HOST, "ft backup: %s", lf_errdetail());
		struct rpl_mark mk;
		rpl_mark(rpl, &mk);
		struct rec_config rcc = {.inner = &vmm_live_input_ops, .inner_opaque = pl.live,
					 .writer = pl.w, .tee = pl.tee, .resume = true,
					 .out_hash = mk.out_hash, .out_bytes = mk.out_bytes};
		if (rec_create(&rcc, &pl.rec) < 0)
			die_line(EXIT_HOST, "ft backup: no memory");
		ft_primary_set_rec(fp, pl.rec);
		vmm_machine_set_input(m, &ft_primary_input_ops, fp, &ft_primary_input_tap, fp);
		if (vmm_live_start(pl.live, m) < 0 || ft_primary_start(fp, m) < 0)
			die_line(EXIT_HOST, "ft backup: %s", vmm_errdetail());
		g_ft_live = pl.live;
		signal(SIGINT, on_sig);
		signal(SIGTERM, on_sig);
		fprintf(stderr,
			"%s: ft backup: went live at position %" PRIu64 " (%" PRIu64
			" bytes of output replayed); running as a primary WITHOUT a backup\n",
			prog, stop.pos, mk.out_bytes);
		s.role = "primary";
		s.fp = fp;
		side_go_live(&s);
		rc = vmm_machine_run(m, &stop);
		if (atomic_load(&s.state) == 2)
			exit(EXIT_ARBITER);
		if (rc < 0)
			die_line(EXIT_HOST, "ft backup (live): %s", vmm_errdetail());
		if (rec_finish(pl.rec, m, &stop) < 0)
			die_line(EXIT_HOST, "ft backup (live): %s", vmm_errdetail());
		if (ft_primary_finish(fp) == FT_LOSER)
			exit(EXIT_ARBITER);
		side_end(&s);
		if (log_fd >= 0 && close(log_fd) < 0)
			die_line(EXIT_HOST, "--log %s: %s", o.log, strerror(errno));
		return stop_status(m, &stop);
	}
	struct rpl_divergence d;
	enum rpl_verdict verdict = rpl_finish(rpl, m, rc, &stop, &d);
	if (verdict == RPL_MATCHED) {
		/* The primary waits for the ack of its whole log: hang up after its END. */
		(void)ft_backup_wait(fb, 2 * o.timeout_ms);
		fprintf(stderr, "%s: ft backup: the primary's run ended at position %" PRIu64
				"; the replay matched\n", prog, stop.pos);
		struct lf_writer *lw;
		if (ft_backup_log(fb, &lw, err, sizeof(err)) < 0)
			fprintf(stderr, "%s: ft backup: --log %s: %s\n", prog, o.log, err);
		if (lw) /* (the primary hung up before its END: the file is cut there) */
			lf_writer_free(lw);
		side_end(&s);
		return stop_status(m, &stop);
	}
	fprintf(stderr, "%s: ft backup: the replay of the stream failed (%s%s%s)\n", prog,
		d.expected, *d.observed ? "; observed: " : "", d.observed);
	return verdict == RPL_DIVERGED ? EXIT_DIVERGED : EXIT_BADINPUT;
}

/* ---- keygen, console ------------------------------------------------------------------------ */

static int cmd_ft_keygen(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage_ft(stdout);
		return 0;
	}
	if (argc != 2)
		die_line(EXIT_USAGE, "ft keygen: expected one file name (try 'rewind ft --help')");
	char err[256];
	if (ft_key_generate(argv[1], err, sizeof(err)) < 0)
		die_line(EXIT_HOST, "ft keygen %s: %s", argv[1], err);
	fprintf(stderr, "%s: wrote a new key to %s (mode 0600); copy it to both hosts\n", prog,
		argv[1]);
	return 0;
}

static void console_notice(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "%s: console: %s\n", prog, line);
}

int cmd_console(int argc, char **argv)
{
	const char *key_path = NULL;
	bool no_input = false;
	static const struct option lo[] = {{"key", required_argument, NULL, 'k'},
					   {"no-input", no_argument, NULL, 'n'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'k') {
			key_path = optarg;
		} else if (c == 'n') {
			no_input = true;
		} else if (c == 'h') {
			usage_ft(stdout);
			exit(0);
		} else {
			fprintf(stderr, "Try 'rewind console --help'.\n");
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc - 1 || !key_path)
		die_line(EXIT_USAGE, "console: expected --key KEY HOST:PORT[,HOST:PORT...]");
	struct ft_key key;
	char err[256];
	load_key(key_path, &key);
	signal(SIGPIPE, SIG_IGN);
	/* On a terminal Ctrl-] ends input (a raw terminal has no end of input). */
	struct ft_console_client_opts co = {.notice = console_notice,
					    .escape = !no_input && isatty(0) ? 0x1d : 0};
	int st = ft_console_client_ex(argv[optind], &key, no_input ? -1 : 0, 1, &co, err,
				      sizeof(err));
	if (st)
		fprintf(stderr, "%s: console: %s\n", prog, err);
	return st;
}

int cmd_ft(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage_ft(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "primary"))
		return cmd_ft_primary(argc - 1, argv + 1);
	if (!strcmp(argv[1], "backup"))
		return cmd_ft_backup(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_ft_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "keygen"))
		return cmd_ft_keygen(argc - 1, argv + 1);
	die_line(EXIT_USAGE, "ft %s: expected primary, backup, status or keygen", argv[1]);
}
