/*
 * backup.c: the backup side of the ft pair (ft.h, docs/ft.md): the log stream in, acks,
 * heartbeats, and a lost primary.
 *
 * The backup's thread receives the primary's messages: log bytes go to a queue that the
 * replay's log reader reads (blocking while it is empty and more may come), markers are
 * acked at once (the backup holds the log up to there; its replay need not have got
 * there). When the primary is lost the thread asks the arbiter: won, the queue ends, the
 * replay consumes every event it holds and stops where the log ends, and the caller goes
 * live there; lost, the replay is stopped.
 *
 * --log: a second queue gets the same bytes, and a thread of its own (the log copier)
 * reads them as a log and writes every event to the file with a writer of its own. When
 * the stream ends whole, so does the file; when the primary is lost, the copier stops at
 * the same event as the replay (the last of the last whole chunk) and hands its writer to
 * the caller, whose recorder goes on writing to it once the guest is live: one log of the
 * whole run, whatever happened to the stream.
 */
#include "ft.h"

#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MARKS 4096 /* markers remembered for the lag (older ones are dropped) */

struct ft_backup {
	struct ft_backup_config cfg;
	struct rpl *rpl;
	struct vmm_machine *m;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *q;         /* received log bytes not yet read: [qh, qh + qn) */
	size_t qh, qn, qcap;
	bool closed;        /* no more bytes will come */
	enum ft_backup_state state;
	char why[256];
	struct ft_stats st;
	struct {
		uint64_t pos, at;
	} marks[MARKS];     /* markers held, not yet replayed past: when they came */
	unsigned mh, mn;
	struct ft_input_delivery *ins; /* input deliveries told, not yet replayed */
	size_t ih, in_n, icap;

	/* --log: the copier's queue (same mu, cv and closed) and what it made */
	uint8_t *lq;
	size_t lqh, lqn, lqcap;
	pthread_t copier;
	bool copier_on;
	struct lf_io_fd lfd;
	struct lf_writer *lw;   /* the file's writer (NULL: none, or handed over) */
	struct lf_reader *lr;
	bool log_whole;         /* the stream ended whole, and so did the file */
	char log_err[200];

	atomic_uint_fast64_t replayed;
	atomic_uint_fast64_t last_heard;
	atomic_bool quit;
	pthread_t thread;
	bool thread_on;
};

/* ---- the log's io: the queue ---------------------------------------------------------- */

/* Take up to n bytes of a queue, waiting while it is empty and open (mu held). */
static size_t take(struct ft_backup *b, uint8_t **q, size_t *qh, size_t *qn, void *buf,
		   size_t n)
{
	while (!*qn && !b->closed)
		pthread_cond_wait(&b->cv, &b->mu);
	size_t k = n < *qn ? n : *qn;
	memcpy(buf, *q + *qh, k); /* (after the wait: the queue may have moved) */
	*qh += k;
	*qn -= k;
	if (!*qn)
		*qh = 0;
	return k;
}

static ssize_t io_read(void *opaque, void *buf, size_t n)
{
	struct ft_backup *b = opaque;
	pthread_mutex_lock(&b->mu);
	size_t k = take(b, &b->q, &b->qh, &b->qn, buf, n);
	pthread_mutex_unlock(&b->mu);
	return (ssize_t)k;
}

static const struct lf_io_ops backup_io_ops = {.read = io_read};

static ssize_t log_io_read(void *opaque, void *buf, size_t n)
{
	struct ft_backup *b = opaque;
	pthread_mutex_lock(&b->mu);
	size_t k = take(b, &b->lq, &b->lqh, &b->lqn, buf, n);
	pthread_mutex_unlock(&b->mu);
	return (ssize_t)k;
}

static const struct lf_io_ops log_queue_ops = {.read = log_io_read};

void ft_backup_io(struct ft_backup *b, struct lf_io *io)
{
	io->ops = &backup_io_ops;
	io->opaque = b;
}

/* Append n bytes to a queue (mu held). */
static int put(uint8_t **q, size_t *qh, size_t *qn, size_t *qcap, const uint8_t *buf, size_t n)
{
	if (*qh + *qn + n > *qcap) {
		if (*qh) {
			memmove(*q, *q + *qh, *qn);
			*qh = 0;
		}
		if (*qn + n > *qcap) {
			size_t nc = *qcap ? *qcap : 1u << 20;
			while (nc < *qn + n)
				nc *= 2;
			uint8_t *nq = realloc(*q, nc);
			if (!nq)
				return -1;
			*q = nq;
			*qcap = nc;
		}
	}
	memcpy(*q + *qh + *qn, buf, n);
	*qn += n;
	return 0;
}

/* Append received log bytes, for the replay and the log copier (mu held). */
static int enqueue(struct ft_backup *b, const uint8_t *buf, size_t n)
{
	if (put(&b->q, &b->qh, &b->qn, &b->qcap, buf, n) < 0)
		return -1;
	if (b->copier_on && put(&b->lq, &b->lqh, &b->lqn, &b->lqcap, buf, n) < 0)
		return -1;
	pthread_cond_broadcast(&b->cv);
	return 0;
}

/* ---- the log copier (--log) ------------------------------------------------------------ */

static void *copier_main(void *arg)
{
	struct ft_backup *b = arg;
	struct lf_io qio = {&log_queue_ops, b}, fio;
	lf_io_fd_init(&fio, &b->lfd, b->cfg.log_fd);
	int rc = lf_reader_open(&qio, &b->lr);
	if (rc < 0) {
		b->lr = NULL;
		snprintf(b->log_err, sizeof(b->log_err), "the stream's header: %s",
			 *lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
		goto drain;
	}
	struct lf_writer_config wc = {.codec = LF_CODEC_ZSTD};
	rc = lf_writer_open(&fio, lf_reader_header(b->lr), &wc, &b->lw);
	if (rc < 0) {
		b->lw = NULL;
		snprintf(b->log_err, sizeof(b->log_err), "%s",
			 *lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
		goto drain;
	}
	struct lf_event ev;
	while ((rc = lf_reader_next(b->lr, &ev)) == 1) {
		int wrc = lf_writer_append(b->lw, &ev);
		if (wrc < 0) {
			snprintf(b->log_err, sizeof(b->log_err), "%s",
				 *lf_errdetail() ? lf_errdetail() : lf_strerror(wrc));
			goto drain;
		}
	}
drain:
	/* The end of what was read: wait for the end of the stream (whole, or the primary
	 * lost), then finish the file if the stream was whole. */
	pthread_mutex_lock(&b->mu);
	while (!b->closed) {
		b->lqh = b->lqn = 0;
		pthread_cond_wait(&b->cv, &b->mu);
	}
	bool whole = b->state == FT_B_ENDED;
	pthread_mutex_unlock(&b->mu);
	if (b->lw && !b->log_err[0]) {
		rc = whole ? lf_writer_finish(b->lw) : lf_writer_flush(b->lw);
		if (rc < 0)
			snprintf(b->log_err, sizeof(b->log_err), "%s",
				 *lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
		b->log_whole = whole && rc >= 0;
	}
	return NULL;
}

int ft_backup_log(struct ft_backup *b, struct lf_writer **w, char *err, size_t cap)
{
	*w = NULL;
	if (!b->copier_on)
		return 0;
	/* (still following: the replay is over without the primary's END; the file is cut
	 * where the stream is now) */
	pthread_mutex_lock(&b->mu);
	b->closed = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->copier, NULL);
	pthread_mutex_lock(&b->mu);
	b->copier_on = false;
	pthread_mutex_unlock(&b->mu);
	if (b->log_err[0]) {
		snprintf(err, cap, "%s", b->log_err);
		return -1;
	}
	if (!b->log_whole) {
		*w = b->lw;
		b->lw = NULL;
	}
	return 0;
}

/* ---- the input ops: the replay's, watched ----------------------------------------------- */

static uint64_t bak_clock_read(void *opaque, struct vmm_machine *m)
{
	struct ft_backup *b = opaque;
	return rpl_input_ops.clock_read(b->rpl, m);
}

static int bak_poll(void *opaque, struct vmm_machine *m)
{
	struct ft_backup *b = opaque;
	vmm_pos_t pos = vmm_machine_pos(m);
	atomic_store(&b->replayed, pos);
	pthread_mutex_lock(&b->mu);
	if (b->mn && b->marks[b->mh].pos <= pos) {
		uint64_t now = ft_now_ns(), at = 0;
		while (b->mn && b->marks[b->mh].pos <= pos) {
			at = b->marks[b->mh].at;
			b->mh = (b->mh + 1) % MARKS;
			b->mn--;
		}
		b->st.lag_ns = now - at;
	}
	pthread_mutex_unlock(&b->mu);
	return rpl_input_ops.poll(b->rpl, m);
}

static int bak_idle(void *opaque, struct vmm_machine *m)
{
	struct ft_backup *b = opaque;
	return rpl_input_ops.idle(b->rpl, m);
}

static uint64_t bak_run_budget(void *opaque, struct vmm_machine *m)
{
	struct ft_backup *b = opaque;
	return rpl_input_ops.run_budget(b->rpl, m);
}

static void bak_timers_changed(void *opaque, struct vmm_machine *m)
{
	struct ft_backup *b = opaque;
	rpl_input_ops.timers_changed(b->rpl, m);
}

static void bak_serial_tx(void *opaque, struct vmm_machine *m, uint8_t byte)
{
	struct ft_backup *b = opaque;
	rpl_input_ops.serial_tx(b->rpl, m, byte);
}

/* The replay delivered n typed bytes: whose they were, the primary told us before. */
static void bak_tap_serial_rx(void *opaque, struct vmm_machine *m, const uint8_t *buf,
			      size_t n)
{
	struct ft_backup *b = opaque;
	(void)buf;
	(void)m;
	pthread_mutex_lock(&b->mu);
	while (n && b->in_n) {
		struct ft_input_delivery *d = &b->ins[b->ih];
		if (b->cfg.input)
			ft_input_replayed(b->cfg.input, d->client, d->seq);
		n = d->n >= n ? 0 : n - d->n;
		b->ih++;
		b->in_n--;
	}
	pthread_mutex_unlock(&b->mu);
}

const struct vmm_input_tap ft_backup_input_tap = {.serial_rx = bak_tap_serial_rx};

const struct vmm_input_ops ft_backup_input_ops = {
	.clock_read = bak_clock_read,
	.poll = bak_poll,
	.idle = bak_idle,
	.run_budget = bak_run_budget,
	.timers_changed = bak_timers_changed,
	.serial_tx = bak_serial_tx,
};

/* ---- the backup's thread ------------------------------------------------------------- */

static void lost(struct ft_backup *b, const char *why)
{
	b->cfg.link.ops->shut(b->cfg.link.opaque, why);
	enum ft_verdict v = b->cfg.claim(b->cfg.opaque, why);
	pthread_mutex_lock(&b->mu);
	snprintf(b->why, sizeof(b->why), "%s", why);
	b->state = v == FT_ALONE ? FT_B_ALONE : FT_B_LOSER;
	b->closed = true;
	pthread_cond_broadcast(&b->cv);
	struct rpl *rpl = b->rpl;
	struct vmm_machine *m = b->m;
	pthread_mutex_unlock(&b->mu);
	if (v != FT_ALONE && rpl && m)
		rpl_request_stop(rpl, m);
}

static void *backup_main(void *arg)
{
	struct ft_backup *b = arg;
	uint64_t beat_ns = (uint64_t)b->cfg.timeout_ms * 1000000u / 4, last_beat = 0;
	uint8_t *buf = malloc(FT_MSG_MAX);
	if (!buf) {
		lost(b, "no memory for the stream");
		return NULL;
	}
	char why[256] = "";
	while (!atomic_load(&b->quit)) {
		uint8_t type;
		size_t n;
		int rc = b->cfg.link.ops->recv(b->cfg.link.opaque, &type, buf, FT_MSG_MAX, &n, 50);
		uint64_t now = ft_now_ns();
		if (rc < 0) {
			snprintf(why, sizeof(why), "the link to the primary failed: %s",
				 b->cfg.link.ops->error(b->cfg.link.opaque));
			break;
		}
		if (rc == 1) {
			atomic_store(&b->last_heard, now);
			if (type == FT_MSG_LOG) {
				pthread_mutex_lock(&b->mu);
				int e = enqueue(b, buf, n);
				b->st.log_bytes += n;
				pthread_mutex_unlock(&b->mu);
				if (e < 0) {
					snprintf(why, sizeof(why), "no memory for the received log");
					break;
				}
			} else if (type == FT_MSG_MARK && n >= 16) {
				uint64_t pos = ft_get64(buf), t = ft_get64(buf + 8);
				pthread_mutex_lock(&b->mu);
				b->st.held = pos;
				b->st.markers++;
				if (b->mn == MARKS) { /* the replay is far behind: forget the oldest */
					b->mh = (b->mh + 1) % MARKS;
					b->mn--;
				}
				b->marks[(b->mh + b->mn) % MARKS].pos = pos;
				b->marks[(b->mh + b->mn) % MARKS].at = now;
				b->mn++;
				uint64_t lag = b->st.lag_ns;
				pthread_mutex_unlock(&b->mu);
				uint8_t a[32];
				ft_put64(a, pos);
				ft_put64(a + 8, t);
				ft_put64(a + 16, atomic_load(&b->replayed));
				ft_put64(a + 24, lag);
				if (b->cfg.link.ops->send(b->cfg.link.opaque, FT_MSG_ACK, a, sizeof(a)) <
				    0) {
					snprintf(why, sizeof(why), "the link to the primary failed: %s",
						 b->cfg.link.ops->error(b->cfg.link.opaque));
					break;
				}
			} else if (type == FT_MSG_INPUT && n >= 32) {
				pthread_mutex_lock(&b->mu);
				if (b->ih + b->in_n == b->icap) {
					if (b->ih) {
						memmove(b->ins, b->ins + b->ih, b->in_n * sizeof(*b->ins));
						b->ih = 0;
					} else {
						size_t nc = b->icap ? b->icap * 2 : 64;
						struct ft_input_delivery *d =
						    realloc(b->ins, nc * sizeof(*d));
						if (d) {
							b->ins = d;
							b->icap = nc;
						}
					}
				}
				if (b->ih + b->in_n < b->icap)
					b->ins[b->ih + b->in_n++] = (struct ft_input_delivery){
					    .client = ft_get64(buf), .seq = ft_get64(buf + 8),
					    .pos = ft_get64(buf + 16), .n = ft_get64(buf + 24)};
				pthread_mutex_unlock(&b->mu);
			} else if (type == FT_MSG_END) {
				pthread_mutex_lock(&b->mu);
				b->state = FT_B_ENDED;
				b->closed = true;
				pthread_cond_broadcast(&b->cv);
				pthread_mutex_unlock(&b->mu);
				free(buf);
				return NULL;
			} else if (type != FT_MSG_BEAT) {
				snprintf(why, sizeof(why),
					 "the primary sent a message of unknown type %u", type);
				break;
			}
		}
		uint64_t heard = atomic_load(&b->last_heard);
		if (now > heard && now - heard > (uint64_t)b->cfg.timeout_ms * 1000000u) {
			snprintf(why, sizeof(why), "no word from the primary for %" PRIu64 " ms",
				 (now - heard) / 1000000u);
			break;
		}
		if (now - last_beat >= beat_ns) {
			uint8_t t[8];
			ft_put64(t, now);
			if (b->cfg.link.ops->send(b->cfg.link.opaque, FT_MSG_BEAT, t, sizeof(t)) < 0) {
				snprintf(why, sizeof(why), "the link to the primary failed: %s",
					 b->cfg.link.ops->error(b->cfg.link.opaque));
				break;
			}
			last_beat = now;
		}
	}
	free(buf);
	if (!atomic_load(&b->quit))
		lost(b, why);
	return NULL;
}

int ft_backup_create(const struct ft_backup_config *cfg, struct ft_backup **out)
{
	struct ft_backup *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	b->cfg = *cfg;
	if (!b->cfg.timeout_ms)
		b->cfg.timeout_ms = 1000;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	atomic_store(&b->last_heard, ft_now_ns());
	*out = b;
	return 0;
}

void ft_backup_attach(struct ft_backup *b, struct rpl *rpl, struct vmm_machine *m)
{
	pthread_mutex_lock(&b->mu);
	b->rpl = rpl;
	b->m = m;
	bool stop = b->state == FT_B_LOSER;
	pthread_mutex_unlock(&b->mu);
	if (stop)
		rpl_request_stop(rpl, m);
}

int ft_backup_start(struct ft_backup *b)
{
	atomic_store(&b->last_heard, ft_now_ns());
	if (b->cfg.log_fd >= 0) {
		if (pthread_create(&b->copier, NULL, copier_main, b))
			return -1;
		b->copier_on = true;
	}
	int e = pthread_create(&b->thread, NULL, backup_main, b);
	if (e)
		return -1;
	b->thread_on = true;
	return 0;
}

enum ft_backup_state ft_backup_state(struct ft_backup *b, char *why, size_t cap)
{
	pthread_mutex_lock(&b->mu);
	enum ft_backup_state s = b->state;
	if (why)
		snprintf(why, cap, "%s", b->why);
	pthread_mutex_unlock(&b->mu);
	return s;
}

enum ft_backup_state ft_backup_wait(struct ft_backup *b, unsigned timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)timeout_ms * 1000000u;
	dl.tv_sec += (time_t)(ns / 1000000000u);
	dl.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&b->mu);
	while (b->state == FT_B_FOLLOWING &&
	       pthread_cond_timedwait(&b->cv, &b->mu, &dl) != ETIMEDOUT)
		;
	enum ft_backup_state st = b->state;
	pthread_mutex_unlock(&b->mu);
	return st;
}

void ft_backup_stats(struct ft_backup *b, struct ft_stats *s)
{
	pthread_mutex_lock(&b->mu);
	*s = b->st;
	s->alone = b->state == FT_B_ALONE;
	s->loser = b->state == FT_B_LOSER;
	s->linked = b->state == FT_B_FOLLOWING;
	pthread_mutex_unlock(&b->mu);
	s->replayed = atomic_load(&b->replayed);
	uint64_t now = ft_now_ns(), h = atomic_load(&b->last_heard);
	s->last_heard_ns = now > h ? now - h : 0;
}

void ft_backup_free(struct ft_backup *b)
{
	if (!b)
		return;
	if (b->thread_on) {
		atomic_store(&b->quit, true);
		b->cfg.link.ops->shut(b->cfg.link.opaque, "the backup is stopping");
		pthread_join(b->thread, NULL);
	}
	if (b->copier_on) {
		pthread_mutex_lock(&b->mu);
		b->closed = true;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->copier, NULL);
	}
	if (b->lw)
		lf_writer_free(b->lw);
	if (b->lr)
		lf_reader_free(b->lr);
	free(b->lq);
	free(b->q);
	free(b->ins);
	free(b);
}
