/*
 * primary.c: the primary side of the ft pair (ft.h, docs/ft.md): the log stream out,
 * progress markers, the output rule, heartbeats, a lost backup, and a new one joining.
 *
 * Output rule: a byte the guest writes at position p may leave once the backup acked a
 * marker at a position > p (it then holds every event up to p, so its replay writes the
 * same byte). Until then the byte waits in a buffer; the guest runs on and waits only
 * when the buffer is full, at its next stop (the buffer then asks for a stop: a kick).
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

#define LAT_SAMPLE 16

struct ft_primary {
	struct ft_primary_config cfg;
	struct rec *rec;
	struct vmm_machine *m;
	pthread_mutex_t send_mu; /* link sends: the vCPU thread, the writer's, ours */

	pthread_mutex_t mu; /* everything below but the atomics */
	pthread_cond_t cv;
	/* The output buffer: bytes [oh, oh + on) of ob, with the position that produced
	 * each and (one in LAT_SAMPLE) the host time it was produced. It grows past
	 * cfg.out_cap only by what the guest writes before the kick stops it. */
	uint8_t *ob;
	uint64_t *opos, *ot;
	size_t oh, on, ocap;
	uint64_t pushed;    /* bytes ever buffered */
	uint64_t acked;     /* the backup holds the log up to here */
	bool alone, loser;  /* the backup was lost: the arbiter's answer */
	bool done;          /* the backup acked the whole log (the run ended) */
	char why[256];      /* why the backup was lost */
	struct ft_stats st;

	atomic_bool linked;
	atomic_bool idling;
	atomic_bool quit;
	atomic_uint_fast64_t last_heard;
	pthread_t thread;
	bool thread_on;

	/* vCPU thread only */
	uint64_t last_mark_ns, last_mark_pos;
	uint64_t exit_wait;    /* exits: a run bounded to one exit for a marker began here */
	uint64_t exit_wait_ns; /* ... at this host time */

	/* A join handed over by ft_primary_join (mu) */
	enum { J_NONE, J_PENDING, J_COPYING, J_FINAL } join;
	int join_rc;
	struct ft_link join_link;
};

static void maybe_join(struct ft_primary *p, struct vmm_machine *m);

static void link_dead(struct ft_primary *p, const char *why)
{
	if (!atomic_exchange(&p->linked, false))
		return;
	pthread_mutex_lock(&p->mu);
	if (!p->why[0])
		snprintf(p->why, sizeof(p->why), "%s", why);
	pthread_mutex_unlock(&p->mu);
	if (p->cfg.link.ops)
		p->cfg.link.ops->shut(p->cfg.link.opaque, why);
}

static void send_msg(struct ft_primary *p, uint8_t type, const void *buf, size_t len)
{
	if (!atomic_load(&p->linked))
		return;
	pthread_mutex_lock(&p->send_mu);
	int rc = p->cfg.link.ops->send(p->cfg.link.opaque, type, buf, len);
	pthread_mutex_unlock(&p->send_mu);
	if (rc < 0) {
		char why[200];
		snprintf(why, sizeof(why), "the stream to the backup broke: %s",
			 p->cfg.link.ops->error(p->cfg.link.opaque));
		link_dead(p, why);
	}
}

/* ---- the log's io ------------------------------------------------------------------ */

static int io_write(void *opaque, const void *buf, size_t n)
{
	struct ft_primary *p = opaque;
	const uint8_t *b = buf;
	for (size_t off = 0; off < n;) {
		size_t k = n - off > FT_MSG_MAX ? FT_MSG_MAX : n - off;
		send_msg(p, FT_MSG_LOG, b + off, k);
		off += k;
	}
	pthread_mutex_lock(&p->mu);
	p->st.log_bytes += n;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static int io_sync(void *opaque)
{
	(void)opaque; /* the backup's ack is the stream's sync */
	return 0;
}

static const struct lf_io_ops primary_io_ops = {.write = io_write, .sync = io_sync};

void ft_primary_io(struct ft_primary *p, struct lf_io *io)
{
	io->ops = &primary_io_ops;
	io->opaque = p;
}

/* ---- output ------------------------------------------------------------------------ */

/* Release the first n buffered bytes (mu held). */
static void release_n(struct ft_primary *p, size_t n)
{
	if (!n)
		return;
	uint64_t now = ft_now_ns();
	for (size_t i = 0; i < n; i++)
		if (p->ot[p->oh + i]) {
			p->st.rel_lat_ns += now - p->ot[p->oh + i];
			p->st.rel_lat_n++;
		}
	p->cfg.release(p->cfg.opaque, p->ob + p->oh, n);
	p->oh += n;
	p->on -= n;
	p->st.out_released += n;
	if (!p->on)
		p->oh = 0;
	pthread_cond_broadcast(&p->cv);
}

/* The backup holds the log up to acked: release what was written before it (mu held). */
static void release_acked(struct ft_primary *p)
{
	size_t n = 0;
	while (n < p->on && p->opos[p->oh + n] < p->acked)
		n++;
	release_n(p, n);
}

static int push_out(struct ft_primary *p, uint8_t byte, uint64_t pos)
{
	if (p->oh + p->on == p->ocap) {
		if (p->oh) {
			memmove(p->ob, p->ob + p->oh, p->on);
			memmove(p->opos, p->opos + p->oh, p->on * sizeof(*p->opos));
			memmove(p->ot, p->ot + p->oh, p->on * sizeof(*p->ot));
			p->oh = 0;
		} else {
			size_t nc = p->ocap * 2;
			uint8_t *b = realloc(p->ob, nc);
			if (b)
				p->ob = b;
			uint64_t *q = realloc(p->opos, nc * sizeof(*q));
			if (q)
				p->opos = q;
			uint64_t *t = realloc(p->ot, nc * sizeof(*t));
			if (t)
				p->ot = t;
			if (!b || !q || !t)
				return -1;
			p->ocap = nc;
		}
	}
	size_t i = p->oh + p->on++;
	p->ob[i] = byte;
	p->opos[i] = pos;
	/* The wait of one byte in LAT_SAMPLE is measured (a clock read per byte would cost
	 * a spewing guest more than the rule itself). */
	p->ot[i] = p->pushed++ % LAT_SAMPLE ? 0 : ft_now_ns();
	return 0;
}

/* ---- the input ops ------------------------------------------------------------------- */

/* Is a marker due by time? */
static bool mark_due(const struct ft_primary *p, uint64_t now)
{
	return now - p->last_mark_ns >= (uint64_t)p->cfg.marker_ms * 1000000u;
}

/*
 * A progress marker at this stop when one is due (force: whenever the position moved).
 * Where positions count exits, a marker at a stop that is not right after an exit (a
 * kick) needs a landmark, which the backup finds only by running to it through every
 * pass of the loop the guest was in; so a due marker waits for the next exit (the run
 * is bounded to one, pri_run_budget) unless output waits for it.
 */
static void maybe_mark(struct ft_primary *p, struct vmm_machine *m, bool force)
{
	if (!atomic_load(&p->linked))
		return;
	uint64_t now = ft_now_ns();
	vmm_pos_t pos = vmm_machine_pos(m);
	if (pos == p->last_mark_pos)
		return;
	if (!force && !mark_due(p, now))
		return;
	if (!force && p->cfg.exits && !(p->exit_wait != UINT64_MAX && pos > p->exit_wait)) {
		/* Not right after an exit: only output that waited a whole marker interval
		 * more for an exit (the guest computes without one) takes a landmark. */
		pthread_mutex_lock(&p->mu);
		bool waiting = p->on > 0;
		pthread_mutex_unlock(&p->mu);
		if (!waiting || p->exit_wait == UINT64_MAX ||
		    now - p->exit_wait_ns < (uint64_t)p->cfg.marker_ms * 1000000u)
			return;
	}
	p->exit_wait = UINT64_MAX;
	rec_mark(p->rec, m);
	uint8_t b[16];
	ft_put64(b, pos);
	ft_put64(b + 8, now);
	send_msg(p, FT_MSG_MARK, b, sizeof(b));
	p->last_mark_ns = now;
	p->last_mark_pos = pos;
	pthread_mutex_lock(&p->mu);
	p->st.markers++;
	pthread_mutex_unlock(&p->mu);
}

static uint64_t pri_clock_read(void *opaque, struct vmm_machine *m)
{
	struct ft_primary *p = opaque;
	return rec_input_ops.clock_read(p->rec, m);
}

static int pri_poll(void *opaque, struct vmm_machine *m)
{
	struct ft_primary *p = opaque;
	maybe_join(p, m);
	int rc = rec_input_ops.poll(p->rec, m);
	if (rc)
		return rc;
	pthread_mutex_lock(&p->mu);
	/* Half full: a marker now, so that its ack frees the buffer while the guest fills
	 * the other half. */
	bool half = p->on >= p->cfg.out_cap / 2;
	pthread_mutex_unlock(&p->mu);
	maybe_mark(p, m, half);
	pthread_mutex_lock(&p->mu);
	if (p->on >= p->cfg.out_cap && !p->alone && !p->loser) {
		/* Full: the guest waits here for acks (a marker first, so that they come). */
		pthread_mutex_unlock(&p->mu);
		maybe_mark(p, m, true);
		uint64_t t0 = ft_now_ns();
		pthread_mutex_lock(&p->mu);
		p->st.stalls++;
		while (p->on >= p->cfg.out_cap && !p->alone && !p->loser)
			pthread_cond_wait(&p->cv, &p->mu);
		p->st.stall_ns += ft_now_ns() - t0;
	}
	bool stop = p->loser;
	pthread_mutex_unlock(&p->mu);
	return stop ? VMM_INPUT_STOP : 0;
}

static int pri_idle(void *opaque, struct vmm_machine *m)
{
	struct ft_primary *p = opaque;
	maybe_join(p, m);
	/* The guest waits: tell the backup how far it got, so that its output can leave. */
	maybe_mark(p, m, true);
	atomic_store(&p->idling, true);
	int rc = rec_input_ops.idle(p->rec, m);
	atomic_store(&p->idling, false);
	pthread_mutex_lock(&p->mu);
	bool stop = p->loser;
	pthread_mutex_unlock(&p->mu);
	return stop ? VMM_INPUT_STOP : rc;
}

static uint64_t pri_run_budget(void *opaque, struct vmm_machine *m)
{
	struct ft_primary *p = opaque;
	uint64_t b = rec_input_ops.run_budget(p->rec, m);
	/* Exits: a marker is due, so the run stops right after the next exit, where the
	 * position alone names the point (maybe_mark). */
	if (p->cfg.exits && atomic_load(&p->linked) && mark_due(p, ft_now_ns())) {
		if (p->exit_wait == UINT64_MAX) {
			p->exit_wait = vmm_machine_pos(m);
			p->exit_wait_ns = ft_now_ns();
		}
		b = 1;
	}
	return b;
}

static void pri_timers_changed(void *opaque, struct vmm_machine *m)
{
	struct ft_primary *p = opaque;
	rec_input_ops.timers_changed(p->rec, m);
}

static void pri_serial_tx(void *opaque, struct vmm_machine *m, uint8_t byte)
{
	struct ft_primary *p = opaque;
	rec_input_ops.serial_tx(p->rec, m, byte);
	pthread_mutex_lock(&p->mu);
	if (p->alone) {
		p->st.out_released++;
		p->cfg.release(p->cfg.opaque, &byte, 1);
	} else if (p->loser) {
		/* the guest is being stopped: its output never leaves */
	} else if (push_out(p, byte, vmm_machine_pos(m)) < 0 || p->on >= p->cfg.out_cap ||
		   p->on == p->cfg.out_cap / 2) {
		/* Half full: stop soon for a marker. Full: stop and wait for acks. */
		vmm_machine_kick(m);
	}
	pthread_mutex_unlock(&p->mu);
}

static void pri_wake(void *opaque)
{
	struct ft_primary *p = opaque;
	rec_input_ops.wake(p->rec);
}

const struct vmm_input_ops ft_primary_input_ops = {
	.clock_read = pri_clock_read,
	.poll = pri_poll,
	.idle = pri_idle,
	.run_budget = pri_run_budget,
	.timers_changed = pri_timers_changed,
	.serial_tx = pri_serial_tx,
	.wake = pri_wake,
};

static void pri_tap_timer(void *opaque, struct vmm_machine *m, unsigned id)
{
	struct ft_primary *p = opaque;
	rec_input_tap.timer(p->rec, m, id);
}

/* Typed input reached the guest: tell the backup whose bytes they were, before the log
 * event can reach it (it applies this when its replay delivers the input there). */
static void pri_tap_serial_rx(void *opaque, struct vmm_machine *m, const uint8_t *buf,
			      size_t n)
{
	struct ft_primary *p = opaque;
	rec_input_tap.serial_rx(p->rec, m, buf, n);
	if (!p->cfg.input)
		return;
	struct ft_input_delivery d[16];
	size_t k = ft_input_delivered(p->cfg.input, vmm_machine_pos(m), n, d, 16);
	for (size_t i = 0; i < k; i++) {
		uint8_t b[32];
		ft_put64(b, d[i].client);
		ft_put64(b + 8, d[i].seq);
		ft_put64(b + 16, d[i].pos);
		ft_put64(b + 24, d[i].n);
		send_msg(p, FT_MSG_INPUT, b, sizeof(b));
	}
}

const struct vmm_input_tap ft_primary_input_tap = {
	.timer = pri_tap_timer,
	.serial_rx = pri_tap_serial_rx,
};

/* ---- the primary's thread ------------------------------------------------------------ */

/* The backup is lost: ask the arbiter, then run alone or stop the guest. */
static void lost(struct ft_primary *p)
{
	pthread_mutex_lock(&p->mu);
	bool decided = p->alone || p->loser || p->done;
	char why[256];
	snprintf(why, sizeof(why), "%s", p->why[0] ? p->why : "the backup was lost");
	pthread_mutex_unlock(&p->mu);
	if (decided)
		return;
	enum ft_verdict v = p->cfg.claim(p->cfg.opaque, why);
	pthread_mutex_lock(&p->mu);
	if (v == FT_ALONE) {
		p->alone = true;
		release_n(p, p->on);
		if (p->cfg.input)
			ft_input_set_alone(p->cfg.input, true);
	} else {
		p->loser = true;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->m) {
		vmm_machine_kick(p->m);
		rec_input_ops.wake(p->rec);
	}
}

static void *primary_main(void *arg)
{
	struct ft_primary *p = arg;
	uint64_t beat_ns = (uint64_t)p->cfg.timeout_ms * 1000000u / 4;
	uint64_t mark_ns = (uint64_t)p->cfg.marker_ms * 1000000u;
	uint64_t last_beat = 0, last_kick = ft_now_ns();
	int wait_ms = (int)(p->cfg.marker_ms < 50 ? p->cfg.marker_ms : 50);
	uint8_t *buf = malloc(FT_MSG_MAX);
	if (!buf) {
		link_dead(p, "no memory for the stream");
		lost(p);
		return NULL;
	}
	while (!atomic_load(&p->quit)) {
		if (!atomic_load(&p->linked)) {
			lost(p); /* decided once; then only wait for the end */
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		uint8_t type;
		size_t n;
		int rc = p->cfg.link.ops->recv(p->cfg.link.opaque, &type, buf, FT_MSG_MAX, &n,
					       wait_ms);
		uint64_t now = ft_now_ns();
		if (rc < 0) {
			char why[220];
			snprintf(why, sizeof(why), "the link to the backup failed: %s",
				 p->cfg.link.ops->error(p->cfg.link.opaque));
			link_dead(p, why);
			continue;
		}
		if (rc == 1) {
			atomic_store(&p->last_heard, now);
			if (type == FT_MSG_ACK && n >= 24) {
				uint64_t held = ft_get64(buf), t = ft_get64(buf + 8);
				pthread_mutex_lock(&p->mu);
				if (held > p->acked)
					p->acked = held;
				p->st.held = p->acked;
				p->st.replayed = ft_get64(buf + 16);
				if (n >= 32)
					p->st.lag_ns = ft_get64(buf + 24);
				(void)t;
				release_acked(p);
				if (p->cfg.input)
					ft_input_acked(p->cfg.input, p->acked);
				if (p->acked == UINT64_MAX)
					p->done = true;
				pthread_cond_broadcast(&p->cv);
				pthread_mutex_unlock(&p->mu);
			} else if (type != FT_MSG_BEAT) {
				char why[120];
				snprintf(why, sizeof(why),
					 "the backup sent a message of unknown type %u", type);
				link_dead(p, why);
				continue;
			}
		}
		pthread_mutex_lock(&p->mu);
		bool done = p->done;
		pthread_mutex_unlock(&p->mu);
		if (done)
			break; /* the backup holds the whole log: nothing more to guard */
		uint64_t heard = atomic_load(&p->last_heard);
		if (now > heard && now - heard > (uint64_t)p->cfg.timeout_ms * 1000000u) {
			char why[160];
			snprintf(why, sizeof(why), "no word from the backup for %" PRIu64 " ms",
				 (now - heard) / 1000000u);
			link_dead(p, why);
			continue;
		}
		if (now - last_beat >= beat_ns) {
			uint8_t b[8];
			ft_put64(b, now);
			send_msg(p, FT_MSG_BEAT, b, sizeof(b));
			last_beat = now;
		}
		if (p->m && !atomic_load(&p->idling) && now - last_kick >= mark_ns) {
			vmm_machine_kick(p->m); /* a computing guest stops for its marker */
			last_kick = now;
		}
	}
	free(buf);
	return NULL;
}

int ft_primary_create(const struct ft_primary_config *cfg, struct ft_primary **out)
{
	struct ft_primary *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	p->cfg = *cfg;
	if (!p->cfg.marker_ms)
		p->cfg.marker_ms = 5;
	if (!p->cfg.timeout_ms)
		p->cfg.timeout_ms = 1000;
	if (!p->cfg.out_cap)
		p->cfg.out_cap = 64u << 10;
	p->ocap = p->cfg.out_cap + 4096;
	p->ob = malloc(p->ocap);
	p->opos = malloc(p->ocap * sizeof(*p->opos));
	p->ot = malloc(p->ocap * sizeof(*p->ot));
	if (!p->ob || !p->opos || !p->ot) {
		ft_primary_free(p);
		return -1;
	}
	pthread_mutex_init(&p->send_mu, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	atomic_store(&p->linked, !cfg->alone);
	p->alone = cfg->alone;
	atomic_store(&p->last_heard, ft_now_ns());
	p->last_mark_pos = UINT64_MAX;
	p->exit_wait = UINT64_MAX;
	*out = p;
	return 0;
}

void ft_primary_set_rec(struct ft_primary *p, struct rec *rec)
{
	p->rec = rec;
}

int ft_primary_start(struct ft_primary *p, struct vmm_machine *m)
{
	p->m = m;
	atomic_store(&p->last_heard, ft_now_ns());
	int e = pthread_create(&p->thread, NULL, primary_main, p);
	if (e)
		return -1;
	p->thread_on = true;
	return 0;
}

enum ft_verdict ft_primary_finish(struct ft_primary *p)
{
	uint8_t b[16];
	ft_put64(b, UINT64_MAX);
	ft_put64(b + 8, ft_now_ns());
	send_msg(p, FT_MSG_MARK, b, sizeof(b));
	send_msg(p, FT_MSG_END, NULL, 0);
	pthread_mutex_lock(&p->mu);
	while (!p->done && !p->alone && !p->loser)
		pthread_cond_wait(&p->cv, &p->mu);
	enum ft_verdict v = p->loser ? FT_LOSER : FT_ALONE;
	pthread_mutex_unlock(&p->mu);
	return v;
}

/* At a stop: a backup waits to join (pending: start copying the machine while the guest
 * runs; final: the copy is done, the rest goes while the guest stands still). */
static void maybe_join(struct ft_primary *p, struct vmm_machine *m)
{
	pthread_mutex_lock(&p->mu);
	int st = p->join;
	pthread_mutex_unlock(&p->mu);
	if (st != J_PENDING && st != J_FINAL)
		return;
	int rc;
	if (st == J_PENDING) {
		rc = p->cfg.join_begin(p->cfg.opaque, m, &p->join_link);
		pthread_mutex_lock(&p->mu);
		if (rc == 0 && p->join == J_PENDING)
			p->join = J_COPYING; /* (or J_FINAL already: the copy was quick) */
		pthread_mutex_unlock(&p->mu);
		if (rc == 0)
			return;
	} else {
		/* (before join_end: the copier of a further round it starts reports J_FINAL) */
		pthread_mutex_lock(&p->mu);
		p->join = J_COPYING;
		pthread_mutex_unlock(&p->mu);
		rc = p->cfg.join_end(p->cfg.opaque, m, &p->join_link);
		if (rc == 1)
			return; /* another copy round while the guest runs */
	}
	if (rc == 0) {
		pthread_mutex_lock(&p->mu);
		p->cfg.link = p->join_link;
		p->alone = p->loser = p->done = false;
		p->acked = 0;
		p->why[0] = 0;
		p->st.held = p->st.replayed = p->st.lag_ns = 0;
		pthread_mutex_unlock(&p->mu);
		p->last_mark_pos = UINT64_MAX;
		atomic_store(&p->last_heard, ft_now_ns());
		if (p->cfg.input)
			ft_input_set_alone(p->cfg.input, false);
		atomic_store(&p->linked, true);
		struct rec *nr = NULL;
		rc = p->cfg.join_log(p->cfg.opaque, m, &nr);
		if (rc == 0)
			p->rec = nr;
		else
			link_dead(p, "the new log could not be started");
	}
	pthread_mutex_lock(&p->mu);
	p->join_rc = rc;
	p->join = J_NONE;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void ft_primary_join_copied(struct ft_primary *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->join == J_COPYING || p->join == J_PENDING)
		p->join = J_FINAL;
	pthread_mutex_unlock(&p->mu);
	if (p->m) {
		vmm_machine_kick(p->m);
		rec_input_ops.wake(p->rec);
	}
}

int ft_primary_join(struct ft_primary *p, const struct ft_link *link, char *err, size_t cap)
{
	pthread_mutex_lock(&p->mu);
	const char *why = !p->cfg.join_begin ? "this primary takes no joins"
			  : !p->alone ? (atomic_load(&p->linked) ? "a backup follows this primary already"
								  : "the lost backup is still being decided")
			  : p->loser ? "this primary is stopping"
			  : p->join != J_NONE ? "another backup is joining"
					      : NULL;
	if (why) {
		pthread_mutex_unlock(&p->mu);
		snprintf(err, cap, "%s", why);
		return -1;
	}
	p->join_link = *link;
	p->join = J_PENDING;
	pthread_mutex_unlock(&p->mu);
	if (p->m) {
		vmm_machine_kick(p->m);
		rec_input_ops.wake(p->rec);
	}
	pthread_mutex_lock(&p->mu);
	while (p->join != J_NONE)
		pthread_cond_wait(&p->cv, &p->mu);
	int rc = p->join_rc;
	pthread_mutex_unlock(&p->mu);
	if (rc < 0)
		snprintf(err, cap, "the primary could not send its state");
	return rc;
}

void ft_primary_stats(struct ft_primary *p, struct ft_stats *s)
{
	pthread_mutex_lock(&p->mu);
	*s = p->st;
	s->out_buffered = p->on;
	s->alone = p->alone;
	s->loser = p->loser;
	pthread_mutex_unlock(&p->mu);
	s->linked = atomic_load(&p->linked);
	uint64_t now = ft_now_ns(), h = atomic_load(&p->last_heard);
	s->last_heard_ns = now > h ? now - h : 0;
}

void ft_primary_free(struct ft_primary *p)
{
	if (!p)
		return;
	if (p->thread_on) {
		atomic_store(&p->quit, true);
		if (p->cfg.link.ops)
			p->cfg.link.ops->shut(p->cfg.link.opaque, "the primary is stopping");
		pthread_join(p->thread, NULL);
	}
	free(p->ob);
	free(p->opos);
	free(p->ot);
	free(p);
}
