/*
 * test_stream.c: the ft pair's core below the channel (ft/ft.h): a primary machine
 * records into the stream, a backup machine in the same process replays it as it comes,
 * over a socketpair with a framing of the test's own standing in for the secure channel
 * (which has its own tests). Checks: the backup follows to the end and matches; output
 * leaves the primary only once the backup holds the log that produced it (after a cut,
 * every released byte is in the backup's output, which goes on live from where the
 * stream ended); a silent primary is noticed at the timeout.
 */
#include <criterion/criterion.h>

#include "ft/ft.h"
#include "vmm/live.h"
#include "vmm/loader.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern const struct vmm_cpu_ops emu_cpu_ops;

/* ---- a framed link over a socket: [type][len, 4 bytes LE][body] -------------------- */

struct tlink {
	int fd;
	atomic_bool mute; /* stop sending anything (a primary that went silent) */
	unsigned ack_delay_ms; /* a slow network: acks take this long */
	char err[64];
};

static int full_write(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int full_read(int fd, uint8_t *b, size_t n)
{
	while (n) {
		ssize_t k = read(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int t_send(void *o, uint8_t type, const void *buf, size_t len)
{
	struct tlink *l = o;
	if (atomic_load(&l->mute))
		return 0;
	if (type == FT_MSG_ACK && l->ack_delay_ms)
		usleep(l->ack_delay_ms * 1000);
	uint8_t h[5] = {type, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
			(uint8_t)(len >> 24)};
	if (full_write(l->fd, h, 5) < 0 || full_write(l->fd, buf, len) < 0) {
		snprintf(l->err, sizeof(l->err), "send failed");
		return -1;
	}
	return 0;
}

static int t_recv(void *o, uint8_t *type, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	struct tlink *l = o;
	struct pollfd p = {.fd = l->fd, .events = POLLIN};
	int r = poll(&p, 1, timeout_ms);
	if (r == 0)
		return 0;
	uint8_t h[5];
	if (r < 0 || full_read(l->fd, h, 5) < 0) {
		snprintf(l->err, sizeof(l->err), "closed");
		return -1;
	}
	size_t n = h[1] | (size_t)h[2] << 8 | (size_t)h[3] << 16 | (size_t)h[4] << 24;
	if (n > cap || full_read(l->fd, buf, n) < 0) {
		snprintf(l->err, sizeof(l->err), "closed in a message");
		return -1;
	}
	*type = h[0];
	*len = n;
	return 1;
}

static const char *t_error(void *o)
{
	return ((struct tlink *)o)->err;
}

static void t_shut(void *o, const char *why)
{
	struct tlink *l = o;
	if (!l->err[0])
		snprintf(l->err, sizeof(l->err), "%s", why);
	shutdown(l->fd, SHUT_RDWR);
}

static const struct ft_link_ops tlink_ops = {t_send, t_recv, t_error, t_shut};

/* ---- output sinks ------------------------------------------------------------------ */

struct sink {
	pthread_mutex_t mu;
	char buf[1 << 20];
	size_t n;
	unsigned lines;
};

static void sink_put(struct sink *s, const uint8_t *b, size_t n)
{
	pthread_mutex_lock(&s->mu);
	cr_assert_lt(s->n + n, sizeof(s->buf));
	memcpy(s->buf + s->n, b, n);
	s->n += n;
	for (size_t i = 0; i < n; i++)
		s->lines += b[i] == '\n';
	pthread_mutex_unlock(&s->mu);
}

/* ---- the pair --------------------------------------------------------------------- */

struct pair {
	const char *guest, *cmdline;
	void *elf;
	size_t elf_len;
	int sv[2];
	struct tlink pl, bl;
	/* primary */
	struct sink released;
	unsigned kill_after_lines; /* 0: never */
	bool go_silent;            /* instead of dying, the primary goes silent */
	unsigned timeout_ms;
	atomic_bool killed;
	struct vmm_live *plive;
	enum ft_verdict pclaim; /* what the primary's arbiter says */
	struct vmm_stop pstop;
	int prc;
	struct ft_stats pstats;
	/* backup */
	struct sink bout;
	enum ft_verdict bclaim;
	atomic_int bclaims;
	enum rpl_verdict verdict;
	enum ft_backup_state bstate;
	bool went_live;
	struct vmm_stop bstop;
	uint64_t live_at, last_clock;
	struct ft_stats bstats;
};

static void kill_primary(struct pair *p)
{
	if (atomic_exchange(&p->killed, true))
		return;
	if (p->go_silent) {
		atomic_store(&p->pl.mute, true); /* nothing more reaches the backup */
		return;
	}
	t_shut(&p->pl, "killed"); /* the process died: its socket closes */
	vmm_live_request_stop(p->plive);
}

static void on_release(void *opaque, const uint8_t *b, size_t n)
{
	struct pair *p = opaque;
	if (atomic_load(&p->killed))
		return; /* a dead process releases nothing */
	sink_put(&p->released, b, n);
	if (p->kill_after_lines && p->released.lines >= p->kill_after_lines)
		kill_primary(p);
}

static enum ft_verdict pclaim(void *opaque, const char *why)
{
	(void)why;
	return ((struct pair *)opaque)->pclaim;
}

static enum ft_verdict bclaim(void *opaque, const char *why)
{
	struct pair *p = opaque;
	(void)why;
	atomic_fetch_add(&p->bclaims, 1);
	return p->bclaim;
}

static void *primary_main(void *arg)
{
	struct pair *p = arg;
	struct vmm_live_config lc = {.in_fd = -1};
	cr_assert_eq(vmm_live_create(&lc, &p->plive), 0);
	struct ft_primary_config pc = {.link = {&tlink_ops, &p->pl},
				       .marker_ms = 5,
				       .timeout_ms = p->timeout_ms,
				       .out_cap = 4096,
				       .release = on_release,
				       .claim = pclaim,
				       .opaque = p};
	struct ft_primary *fp;
	cr_assert_eq(ft_primary_create(&pc, &fp), 0);
	struct ft_hello h = {.pair_id = "test-pair", .generation = 1, .marker_ms = 5,
			     .timeout_ms = p->timeout_ms};
	char err[256];
	cr_assert_eq(ft_hello_send(&pc.link, &h, 5000, err, sizeof(err)), 0, "%s", err);
	struct lf_io io;
	ft_primary_io(fp, &io);
	struct lf_header hd = {.tool = "test", .config = "mem=33554432\n", .cmdline = p->cmdline,
			       .image_path = p->guest, .image_hash = lf_hash64(p->elf, p->elf_len),
			       .image_len = p->elf_len, .image = p->elf};
	struct lf_writer_config wc = {.codec = LF_CODEC_LZ4};
	struct lf_writer *w;
	cr_assert_eq(lf_writer_open(&io, &hd, &wc, &w), 0);
	struct rec_config rcfg = {.inner = &vmm_live_input_ops, .inner_opaque = p->plive,
				  .writer = w};
	struct rec *rec;
	cr_assert_eq(rec_create(&rcfg, &rec), 0);
	ft_primary_set_rec(fp, rec);
	struct vmm_config cfg = {.mem_size = 32u << 20, .backend = &emu_cpu_ops,
				 .input = &ft_primary_input_ops, .input_opaque = fp,
				 .tap = &ft_primary_input_tap, .tap_opaque = fp};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_load(m, p->elf, p->elf_len, p->cmdline), 0);
	cr_assert_eq(vmm_live_start(p->plive, m), 0);
	cr_assert_eq(ft_primary_start(fp, m), 0);
	p->prc = vmm_machine_run(m, &p->pstop);
	if (!atomic_load(&p->killed)) {
		cr_assert_eq(p->prc, 0, "%s", vmm_errdetail());
		cr_assert_eq(rec_finish(rec, m, &p->pstop), 0, "%s", vmm_errdetail());
		enum ft_verdict v = ft_primary_finish(fp);
		cr_assert(v == FT_ALONE || atomic_load(&p->killed)); /* killed meanwhile */
	}
	ft_primary_stats(fp, &p->pstats);
	ft_primary_free(fp);
	lf_writer_free(w);
	rec_free(rec);
	vmm_live_destroy(p->plive);
	vmm_machine_destroy(m);
	return NULL;
}

static void bak_out(void *opaque, uint8_t byte)
{
	sink_put(&((struct pair *)opaque)->bout, &byte, 1);
}

static void live_out(void *opaque, uint8_t byte)
{
	bak_out(opaque, byte);
}

static void *backup_main(void *arg)
{
	struct pair *p = arg;
	struct ft_backup_config bc = {.link = {&tlink_ops, &p->bl},
				      .timeout_ms = p->timeout_ms,
				      .log_fd = -1,
				      .claim = bclaim,
				      .opaque = p};
	struct ft_hello h;
	char err[256];
	cr_assert_eq(ft_hello_take(&bc.link, &h, 5000, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(h.pair_id, "test-pair");
	struct ft_backup *fb;
	cr_assert_eq(ft_backup_create(&bc, &fb), 0);
	/* The thread runs before the header is read: it fills the queue the reader reads. */
	cr_assert_eq(ft_backup_start(fb), 0);
	struct lf_io io;
	ft_backup_io(fb, &io);
	struct lf_reader *r;
	cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
	const struct lf_header *hd = lf_reader_header(r);
	struct rpl_config rc = {.reader = r, .out = bak_out, .out_opaque = p, .stream = true};
	struct rpl *rpl;
	cr_assert_eq(rpl_create(&rc, &rpl), 0);
	struct vmm_config cfg = {.mem_size = 32u << 20, .backend = &emu_cpu_ops,
				 .input = &ft_backup_input_ops, .input_opaque = fb};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0);
	ft_backup_attach(fb, rpl, m);
	cr_assert_eq(vmm_machine_load(m, hd->image, hd->image_len, hd->cmdline), 0);
	int rc2 = vmm_machine_run(m, &p->bstop);
	p->bstate = ft_backup_state(fb, NULL, 0);
	if (rc2 == 0 && p->bstop.reason == VMM_STOP_USER && rpl_at_log_end(rpl, &p->last_clock) &&
	    p->bstate == FT_B_ALONE) {
		/* Go live here: the same machine, the live source plugged in. */
		p->went_live = true;
		p->live_at = p->bstop.pos;
		struct vmm_live_config lc = {.in_fd = -1, .out = live_out, .out_opaque = p,
					     .clock_floor_ns = p->last_clock};
		struct vmm_live *live;
		cr_assert_eq(vmm_live_create(&lc, &live), 0);
		vmm_machine_set_input(m, &vmm_live_input_ops, live, NULL, NULL);
		cr_assert_eq(vmm_live_start(live, m), 0);
		cr_assert_eq(vmm_machine_run(m, &p->bstop), 0, "%s", vmm_errdetail());
		vmm_live_destroy(live);
	} else {
		struct rpl_divergence d;
		p->verdict = rpl_finish(rpl, m, rc2, &p->bstop, &d);
		cr_assert_eq(p->verdict, RPL_MATCHED, "verdict %d: %s / %s", p->verdict,
			     d.expected, d.observed);
		p->bstate = ft_backup_wait(fb, 5000);
	}
	ft_backup_stats(fb, &p->bstats);
	ft_backup_free(fb);
	rpl_free(rpl);
	lf_reader_free(r);
	vmm_machine_destroy(m);
	return NULL;
}

static void pair_run(struct pair *p)
{
	if (!p->timeout_ms)
		p->timeout_ms = 3000;
	const char *b = getenv("B");
	char path[256];
	snprintf(path, sizeof(path), "%s/guests/%s.elf", b ? b : "build", p->guest);
	cr_assert_eq(vmm_read_file(path, 64u << 20, &p->elf, &p->elf_len), 0, "%s (run make)",
		     path);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
	p->pl.fd = p->sv[0];
	p->bl.fd = p->sv[1];
	pthread_mutex_init(&p->released.mu, NULL);
	pthread_mutex_init(&p->bout.mu, NULL);
	pthread_t tp, tb;
	cr_assert_eq(pthread_create(&tb, NULL, backup_main, p), 0);
	cr_assert_eq(pthread_create(&tp, NULL, primary_main, p), 0);
	pthread_join(tp, NULL);
	pthread_join(tb, NULL);
	close(p->sv[0]);
	close(p->sv[1]);
	free(p->elf);
}

/* The ticker's lines: numbered 0.. in order, then its done line; returns how many. */
static unsigned check_ticker(const char *out, size_t n, long long lines)
{
	const char *s = out, *end = out + n;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	cr_assert(nl, "no header line");
	s = nl + 1;
	long long i = 0;
	while (s < end && *s != 't') {
		char want[32];
		snprintf(want, sizeof(want), "%06lld ", i);
		cr_assert_eq(strncmp(s, want, 7), 0, "line %lld: %.20s", i, s);
		nl = memchr(s, '\n', (size_t)(end - s));
		cr_assert(nl);
		s = nl + 1;
		i++;
	}
	cr_assert_eq(i, lines);
	char done[64];
	snprintf(done, sizeof(done), "ticker: done, %lld lines\n", lines);
	cr_assert_eq((size_t)(end - s), strlen(done));
	cr_assert_eq(strncmp(s, done, strlen(done)), 0);
	return (unsigned)i;
}

Test(stream, backup_follows_to_the_end, .timeout = 120)
{
	static struct pair p = {.guest = "ticker", .cmdline = "lines=30 hz=200",
				.pclaim = FT_ALONE, .bclaim = FT_ALONE};
	pair_run(&p);
	cr_assert_eq(p.pstop.reason, VMM_STOP_DEBUG_EXIT);
	cr_assert_eq(p.verdict, RPL_MATCHED);
	cr_assert_eq(p.bstate, FT_B_ENDED);
	cr_assert_eq(atomic_load(&p.bclaims), 0);
	check_ticker(p.released.buf, p.released.n, 30);
	cr_assert_eq(p.bout.n, p.released.n);
	cr_assert_eq(memcmp(p.bout.buf, p.released.buf, p.bout.n), 0,
		     "the backup's replay printed other bytes than the primary released");
	cr_assert_gt(p.pstats.markers, 10, "markers: %llu",
		     (unsigned long long)p.pstats.markers);
	cr_assert_eq(p.pstats.out_released, p.released.n);
	cr_assert_eq(p.pstats.out_buffered, 0);
}

/* Spew outruns the output buffer: the guest waits for acks, and nothing is lost. */
Test(stream, output_buffer_full_waits, .timeout = 120)
{
	static struct pair p = {.guest = "spew", .cmdline = "lines=2000",
				.pclaim = FT_ALONE, .bclaim = FT_ALONE};
	/* Acks that take a while, so that the buffer fills however fast this host runs
	 * the backup (with prompt acks it filled in most runs, not all). */
	p.bl.ack_delay_ms = 15;
	pair_run(&p);
	cr_assert_eq(p.verdict, RPL_MATCHED);
	cr_assert_eq(p.released.n, p.bout.n);
	cr_assert_eq(memcmp(p.bout.buf, p.released.buf, p.bout.n), 0);
	cr_assert_gt(p.released.n, 2000 * 61);
	cr_assert_gt(p.pstats.stalls, 0, "a 4 KiB buffer should have filled");
}

static void failover(unsigned kill_after, bool silent)
{
	static struct pair p;
	memset(&p, 0, sizeof(p));
	p.guest = "ticker";
	p.cmdline = "lines=60 hz=200";
	p.pclaim = FT_LOSER;
	p.bclaim = FT_ALONE;
	p.kill_after_lines = kill_after;
	p.go_silent = silent;
	p.timeout_ms = silent ? 400 : 3000;
	/* Acks that take a while: the primary's guest runs on meanwhile and writes output
	 * the backup does not hold yet, which must not leave before its ack. */
	p.bl.ack_delay_ms = 15;
	pair_run(&p);
	cr_assert(atomic_load(&p.killed));
	cr_assert(p.went_live, "the backup did not go live (state %d)", p.bstate);
	cr_assert_eq(atomic_load(&p.bclaims), 1);
	cr_assert_eq(p.bstop.reason, VMM_STOP_DEBUG_EXIT);
	/* Every byte the primary released is the backup's too, in the same place. */
	cr_assert_geq(p.bout.n, p.released.n);
	cr_assert_eq(memcmp(p.bout.buf, p.released.buf, p.released.n), 0,
		     "released output is not a prefix of the backup's");
	check_ticker(p.bout.buf, p.bout.n, 60);
	cr_assert_gt(p.live_at, 0);
}

Test(stream, failover_early, .timeout = 120)
{
	failover(3, false);
}

Test(stream, failover_late, .timeout = 120)
{
	failover(40, false);
}

/* A primary that goes silent (a cut network) is lost at the timeout; the backup that won
 * goes live, the primary that then loses the arbiter stops. */
Test(stream, silence_is_noticed, .timeout = 120)
{
	failover(10, true);
}
