/*
 * replay.c: the replayer (replay.h, docs/record-replay.md). It reads the log one event
 * ahead and bounds every vCPU run so that the guest stops exactly at the next event's
 * position; there it delivers the event (timer, input), checks it (state hash), or, for a
 * clock read, leaves it for the port access that is about to happen. Anything else is a
 * divergence, reported with where it was noticed and where to look.
 */
#include "replay.h"

#include "logfmt/outhash.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPL_AHEAD 1024

struct rpl {
	struct rpl_config cfg;
	/*
	 * Events read ahead: the head is the next event; behind it only clock reads and at
	 * most one other event (so one input buffer is enough). Clock reads need no stop, so
	 * the budget runs to the first event that does.
	 */
	struct lf_event q[RPL_AHEAD];
	unsigned qh, qn;
	bool log_done;          /* the reader returned its last event */
	int log_err;            /* the reader's error, if it stopped on one */
	char log_errmsg[160];
	bool ended;             /* the end event was consumed */
	uint8_t input[LF_INPUT_MAX];
	uint64_t out_hash, out_bytes;
	uint64_t last_clock;
	vmm_pos_t last_event, last_match;
	bool diverged;
	struct rpl_divergence div;
	struct rpl_stats stats;
	atomic_bool stop; /* the user asked to stop */
	/* The watchdog (cfg.stall_ms): the position last seen and whether it stood still. */
	atomic_bool stalled, watching;
	_Atomic uint64_t progress; /* events consumed: a position with many events moves */
	pthread_t watchdog;
	bool watchdog_started;
	struct vmm_machine *m;
	/* The last consumed events' position and how many were consumed there (rpl_mark). */
	uint64_t run_pos, run_n;
};

#define NEXT(r) ((r)->q[(r)->qh])
#define HAVE_NEXT(r) ((r)->qn > 0)

/* Read one more event into the queue; false at the end of the log or when full. */
static bool read_ahead(struct rpl *r)
{
	if (r->log_done || r->qn == RPL_AHEAD)
		return false;
	struct lf_event *e = &r->q[(r->qh + r->qn) % RPL_AHEAD];
	int rc = lf_reader_next(r->cfg.reader, e);
	if (rc == 1) {
		r->qn++;
		if (e->kind == LF_EV_INPUT) { /* keep the bytes past the next read */
			memcpy(r->input, e->input.data, e->input.len);
			e->input.data = r->input;
		}
		return true;
	}
	r->log_done = true;
	if (rc < 0) {
		r->log_err = rc;
		snprintf(r->log_errmsg, sizeof(r->log_errmsg), "%s",
			 *lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
	}
	return false;
}

static void peek(struct rpl *r)
{
	if (!r->qn)
		read_ahead(r);
}

static void consume(struct rpl *r)
{
	if (NEXT(r).pos == r->run_pos) {
		r->run_n++;
	} else {
		r->run_pos = NEXT(r).pos;
		r->run_n = 1;
	}
	r->qh = (r->qh + 1) % RPL_AHEAD;
	r->qn--;
	r->stats.events++;
	atomic_fetch_add(&r->progress, 1);
}

static void describe(const struct lf_event *ev, char *buf, size_t cap)
{
	char e[128];
	lf_event_format(ev, e, sizeof(e));
	snprintf(buf, cap, "%s at position %" PRIu64, e, ev->pos);
}

/* What the log expects next, in words. */
static void expected_next(struct rpl *r, char *buf, size_t cap)
{
	peek(r);
	if (HAVE_NEXT(r))
		describe(&NEXT(r), buf, cap);
	else if (r->log_err)
		snprintf(buf, cap, "no more events (the log is corrupt: %s)", r->log_errmsg);
	else
		snprintf(buf, cap, "no more events (the log ends)");
}

static int diverge(struct rpl *r, struct vmm_machine *m, const char *expected,
		   const char *observed_fmt, ...) __attribute__((format(printf, 4, 5)));
static int diverge(struct rpl *r, struct vmm_machine *m, const char *expected,
		   const char *observed_fmt, ...)
{
	if (!r->diverged) {
		r->diverged = true;
		r->div.pos = vmm_machine_pos(m);
		snprintf(r->div.expected, sizeof(r->div.expected), "%s", expected);
		va_list ap;
		va_start(ap, observed_fmt);
		vsnprintf(r->div.observed, sizeof(r->div.observed), observed_fmt, ap);
		va_end(ap);
		r->div.last_event = r->last_event;
		r->div.last_match = r->last_match;
		vmm_machine_kick(m);
	}
	return vmm_fail(VMM_EINPUT, "replay diverged at position %" PRIu64, r->div.pos);
}

static uint64_t rpl_clock_read(void *opaque, struct vmm_machine *m)
{
	struct rpl *r = opaque;
	if (r->diverged)
		return r->last_clock;
	vmm_pos_t pos = vmm_machine_pos(m);
	peek(r);
	if (HAVE_NEXT(r) && NEXT(r).kind == LF_EV_CLOCK && NEXT(r).pos == pos) {
		r->last_clock = NEXT(r).clock;
		consume(r);
		return r->last_clock;
	}
	char e[256];
	expected_next(r, e, sizeof(e));
	(void)diverge(r, m, e, "the guest read the clock at position %" PRIu64, pos);
	return r->last_clock;
}

/* Compare a logged state hash with the replayed machine. */
static int check_hash(struct rpl *r, struct vmm_machine *m, const struct lf_event *ev)
{
	uint64_t regs = 0, mem = 0;
	uint32_t f = ev->hash.flags;
	int rc = vmm_machine_hash(m, (f & LF_HASH_REGS) ? &regs : NULL,
				  (f & LF_HASH_MEM) ? &mem : NULL);
	if (rc < 0)
		return rc;
	r->stats.hashes++;
	char e[256];
	describe(ev, e, sizeof(e));
	if ((f & LF_HASH_OUT) && (ev->hash.out_bytes != r->out_bytes || ev->hash.out != r->out_hash))
		return diverge(r, m, e, "guest output differs: %" PRIu64 " bytes, hash %016" PRIx64,
			       r->out_bytes, r->out_hash);
	/* A kvm log on emu: the undefined status flags are the recording's to choose. */
	if ((f & LF_HASH_REGS) && regs != ev->hash.regs &&
	    !vmm_machine_adopt_flags(m, ev->hash.regs))
		return diverge(r, m, e, "registers differ: hash %016" PRIx64, regs);
	if ((f & LF_HASH_MEM) && mem != ev->hash.mem)
		return diverge(r, m, e, "memory differs: hash %016" PRIx64, mem);
	r->last_match = ev->pos;
	return 0;
}

/* The last position the replay checked against the log: an input or timer delivered,
 * or a state hash that matched (a guest that only hashes is checked all the same). */
static vmm_pos_t checked_pos(const struct rpl *r)
{
	return r->last_event > r->last_match ? r->last_event : r->last_match;
}

/* The log has nothing more and the run has not ended: stop (rpl_finish says why). */
static int log_exhausted(struct rpl *r)
{
	if (r->log_err)
		return vmm_fail(VMM_EINPUT, "the log is corrupt after position %" PRIu64 ": %s",
				checked_pos(r), r->log_errmsg);
	return vmm_fail(VMM_EINPUT, "the log ends at position %" PRIu64 " without an end event",
			checked_pos(r));
}

/*
 * A kick came while the replay waited for the guest: the user's stop, or the watchdog
 * (no progress for cfg.stall_ms): the guest runs without reaching what the log expects.
 */
static int stalled_or_stopped(struct rpl *r, struct vmm_machine *m, const char *expected)
{
	if (atomic_load(&r->stop))
		return VMM_INPUT_STOP;
	if (!atomic_load(&r->stalled))
		return 0;
	return diverge(r, m, expected,
		       "no progress for %u s: the guest ran on at position %" PRIu64
		       " without reaching it (no exit, or not the recorded path)",
		       (r->cfg.stall_ms + 999) / 1000, vmm_machine_pos(m));
}

static int rpl_poll(void *opaque, struct vmm_machine *m)
{
	struct rpl *r = opaque;
	if (r->diverged)
		return -VMM_EINPUT;
	if (atomic_load(&r->stop))
		return VMM_INPUT_STOP;
	if (atomic_load(&r->stalled)) {
		char e[256];
		expected_next(r, e, sizeof(e));
		return stalled_or_stopped(r, m, e);
	}
	vmm_pos_t pos = vmm_machine_pos(m);
	for (;;) {
		peek(r);
		if (!HAVE_NEXT(r)) {
			if (r->ended)
				return VMM_INPUT_STOP;
			if (!r->cfg.stream)
				return log_exhausted(r);
			if (r->cfg.flush)
				r->cfg.flush(r->cfg.out_opaque);
			return VMM_INPUT_STOP; /* the stream ended here */
		}
		struct lf_event *ev = &NEXT(r);
		if (ev->pos > pos)
			return 0;
		char e[256];
		if (ev->pos < pos) {
			describe(ev, e, sizeof(e));
			return diverge(r, m, e, "the guest ran past it to position %" PRIu64, pos);
		}
		switch (ev->kind) {
		case LF_EV_CLOCK:
			return 0; /* the instruction about to run reads it */
		case LF_EV_TIMER:
			if (ev->timer >= vmm_timer_count(m)) {
				describe(ev, e, sizeof(e));
				return diverge(r, m, e, "the machine has no timer %u", ev->timer);
			}
			r->last_event = pos;
			consume(r);
			vmm_timer_fire(m, ev->timer);
			break;
		case LF_EV_INPUT: {
			size_t room = vmm_serial_rx_room(m);
			if (ev->input.channel != 0 || ev->input.len > room) {
				describe(ev, e, sizeof(e));
				return diverge(r, m, e,
					       "the serial receiver had room for %zu bytes", room);
			}
			r->last_event = pos;
			consume(r);
			vmm_serial_rx(m, ev->input.data, ev->input.len);
			break;
		}
		case LF_EV_HASH: {
			struct lf_event h = *ev;
			consume(r);
			int rc = check_hash(r, m, &h);
			if (rc < 0)
				return rc;
			break;
		}
		case LF_EV_LANDMARK: {
			struct vmm_landmark lm = {.rip = ev->landmark.rip,
						  .gprs = ev->landmark.gprs,
						  .regs = ev->landmark.regs,
						  .mem = ev->landmark.mem,
						  .pages = ev->landmark.pages};
			struct vmm_seek_stats st;
			describe(ev, e, sizeof(e));
			int rc = vmm_machine_seek_landmark(m, &lm, &st);
			r->stats.landmark_hits += st.hits;
			if (rc < 0)
				return rc;
			if (rc == VMM_SEEK_INTERRUPTED)
				return stalled_or_stopped(r, m, e);
			if (rc == VMM_SEEK_PASSED)
				return diverge(r, m, e,
					       "the guest left position %" PRIu64 " by %s without "
					       "reaching it (%" PRIu64 " passes through rip %#" PRIx64
					       " differed)",
					       pos, st.left_by, st.hits, lm.rip);
			r->stats.landmarks++;
			consume(r);
			break;
		}
		case LF_EV_END:
			if (ev->end.reason == VMM_STOP_USER) {
				consume(r);
				r->ended = true;
				if (r->cfg.flush)
					r->cfg.flush(r->cfg.out_opaque);
				return VMM_INPUT_STOP;
			}
			describe(ev, e, sizeof(e));
			return diverge(r, m, e, "the guest is still running");
		default:
			describe(ev, e, sizeof(e));
			return diverge(r, m, e, "an event this replayer does not know");
		}
	}
}

static int rpl_idle(void *opaque, struct vmm_machine *m)
{
	struct rpl *r = opaque;
	int rc = rpl_poll(opaque, m); /* events at this very position wake it */
	if (rc != 0 || r->diverged)
		return rc;
	char e[256];
	expected_next(r, e, sizeof(e));
	return diverge(r, m, e, "the guest halted at position %" PRIu64 " with nothing due",
		       vmm_machine_pos(m));
}

static uint64_t rpl_run_budget(void *opaque, struct vmm_machine *m)
{
	struct rpl *r = opaque;
	peek(r);
	if (!HAVE_NEXT(r) || r->diverged)
		return 1;
	vmm_pos_t pos = vmm_machine_pos(m);
	if (NEXT(r).pos < pos)
		return 1; /* the next poll reports it */
	/* Clock reads are consumed inside the instructions that do them: run to the first
	 * event that needs a stop (a read that does not come is noticed there, or one
	 * instruction after the last queued read when the queue holds nothing else). */
	while (r->q[(r->qh + r->qn - 1) % RPL_AHEAD].kind == LF_EV_CLOCK && read_ahead(r))
		;
	const struct lf_event *last = &r->q[(r->qh + r->qn - 1) % RPL_AHEAD];
	uint64_t until = last->kind == LF_EV_CLOCK ? last->pos + 1 : last->pos;
	for (unsigned i = 0; i < r->qn; i++) {
		const struct lf_event *e = &r->q[(r->qh + i) % RPL_AHEAD];
		if (e->kind != LF_EV_CLOCK) {
			until = e->pos;
			break;
		}
	}
	return until > pos ? until - pos : 1;
}

static void rpl_timers_changed(void *opaque, struct vmm_machine *m)
{
	(void)opaque;
	(void)m; /* timers expire where the log says, never by the clock */
}

static void rpl_serial_tx(void *opaque, struct vmm_machine *m, uint8_t byte)
{
	struct rpl *r = opaque;
	(void)m;
	r->out_hash = lf_out_hash(r->out_hash, byte);
	r->out_bytes++;
	if (r->cfg.out)
		r->cfg.out(r->cfg.out_opaque, byte);
}

const struct vmm_input_ops rpl_input_ops = {
	.clock_read = rpl_clock_read,
	.poll = rpl_poll,
	.idle = rpl_idle,
	.run_budget = rpl_run_budget,
	.timers_changed = rpl_timers_changed,
	.serial_tx = rpl_serial_tx,
};

/*
 * The watchdog: where positions count exits (kvm), a guest that no longer takes the
 * recorded path may compute forever without an exit, and the budget that would stop it
 * at the next event never runs out. Every 100 ms it looks at the position and, with the
 * landmark searches, at how far they got; after stall_ms without a change it kicks the
 * vCPU and the next poll reports a divergence.
 */
static void *watchdog_main(void *arg)
{
	struct rpl *r = arg;
	uint64_t last = UINT64_MAX, last_hits = 0, still_ms = 0;
	while (atomic_load(&r->watching)) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		uint64_t p = vmm_machine_pos(r->m);
		uint64_t h = atomic_load(&r->progress);
		if (p != last || h != last_hits) {
			last = p;
			last_hits = h;
			still_ms = 0;
			continue;
		}
		still_ms += 100;
		if (still_ms >= r->cfg.stall_ms && !atomic_load(&r->stalled)) {
			atomic_store(&r->stalled, true);
			vmm_machine_kick(r->m);
		}
	}
	return NULL;
}

int rpl_watch(struct rpl *r, struct vmm_machine *m)
{
	if (!r->cfg.stall_ms || r->watchdog_started)
		return 0;
	r->m = m;
	atomic_store(&r->watching, true);
	int e = pthread_create(&r->watchdog, NULL, watchdog_main, r);
	if (e)
		return vmm_fail(VMM_ENOMEM, "replay watchdog: %s", strerror(e));
	r->watchdog_started = true;
	return 0;
}

int rpl_create(const struct rpl_config *cfg, struct rpl **out)
{
	struct rpl *r = calloc(1, sizeof(*r));
	if (!r)
		return -VMM_ENOMEM;
	r->cfg = *cfg;
	r->out_hash = LF_OUT_HASH_INIT;
	if (cfg->resume) {
		r->out_hash = cfg->out_hash;
		r->out_bytes = cfg->out_bytes;
		r->last_clock = cfg->last_clock;
	}
	r->run_pos = UINT64_MAX;
	*out = r;
	return 0;
}

void rpl_request_stop(struct rpl *r, struct vmm_machine *m)
{
	atomic_store(&r->stop, true);
	vmm_machine_kick(m);
}

void rpl_free(struct rpl *r)
{
	if (!r)
		return;
	if (r->watchdog_started) {
		atomic_store(&r->watching, false);
		pthread_join(r->watchdog, NULL);
	}
	free(r);
}

static void describe_stop(const struct vmm_stop *s, char *buf, size_t cap)
{
	switch (s->reason) {
	case VMM_STOP_DEBUG_EXIT:
		snprintf(buf, cap, "the guest exited with value %u", s->exit_value);
		break;
	case VMM_STOP_RESET:
		snprintf(buf, cap, "the guest requested a reset");
		break;
	case VMM_STOP_TRIPLE_FAULT:
		snprintf(buf, cap, "the guest triple-faulted (exception %d)", s->vector);
		break;
	case VMM_STOP_HALTED:
		snprintf(buf, cap, "the guest halted with interrupts disabled");
		break;
	case VMM_STOP_USER:
	case VMM_STOP_LIMIT:
	case VMM_STOP_BREAK:
	case VMM_STOP_WATCH:
		snprintf(buf, cap, "the replay was stopped");
		break;
	}
}

enum rpl_verdict rpl_finish(struct rpl *r, struct vmm_machine *m, int run_rc,
			    const struct vmm_stop *stop, struct rpl_divergence *d)
{
	if (r->cfg.flush)
		r->cfg.flush(r->cfg.out_opaque);
	memset(d, 0, sizeof(*d));
	if (!r->diverged && run_rc < 0) {
		d->pos = checked_pos(r);
		if (r->log_err) {
			snprintf(d->expected, sizeof(d->expected), "%s", r->log_errmsg);
			return RPL_LOG_BAD;
		}
		if (r->log_done && !r->ended) {
			snprintf(d->expected, sizeof(d->expected),
				 "the log ends without an end event (the recording was cut)");
			return RPL_LOG_CUT;
		}
		return RPL_FAILED;
	}
	if (!r->diverged && !r->ended && stop->reason == VMM_STOP_USER) {
		d->pos = stop->pos;
		return RPL_STOPPED;
	}
	if (!r->diverged && !r->ended) {
		/* The guest stopped by itself: the log must say so here, after the final hash. */
		char what[160];
		describe_stop(stop, what, sizeof(what));
		for (;;) {
			peek(r);
			if (!HAVE_NEXT(r)) {
				d->pos = checked_pos(r);
				if (r->log_err) {
					snprintf(d->expected, sizeof(d->expected), "%s",
						 r->log_errmsg);
					return RPL_LOG_BAD;
				}
				snprintf(d->expected, sizeof(d->expected),
					 "the log ends without an end event (the recording was cut)");
				return RPL_LOG_CUT;
			}
			char e[256];
			describe(&NEXT(r), e, sizeof(e));
			if (NEXT(r).pos != stop->pos) {
				(void)diverge(r, m, e, "%s at position %" PRIu64, what, stop->pos);
				break;
			}
			if (NEXT(r).kind == LF_EV_HASH) {
				struct lf_event h = NEXT(r);
				consume(r);
				/* Registers this backend lost at the fault cannot be compared
				 * (KVM on AMD resets the vCPU at a shutdown). */
				if (stop->reason == VMM_STOP_TRIPLE_FAULT && stop->regs_lost)
					h.hash.flags &= ~LF_HASH_REGS;
				if (check_hash(r, m, &h) < 0)
					break;
				continue;
			}
			if (NEXT(r).kind != LF_EV_END) {
				(void)diverge(r, m, e, "%s", what);
				break;
			}
			uint64_t v = stop->reason == VMM_STOP_TRIPLE_FAULT ? (uint64_t)stop->vector
									   : stop->exit_value;
			/* A triple fault's vector that the recording's backend did not know
			 * (hardware KVM: -1) matches the one this backend names. */
			bool any_vector = stop->reason == VMM_STOP_TRIPLE_FAULT &&
					  NEXT(r).end.value == UINT64_MAX;
			if (NEXT(r).end.reason != (uint32_t)stop->reason ||
			    (NEXT(r).end.value != v && !any_vector)) {
				(void)diverge(r, m, e, "%s", what);
				break;
			}
			consume(r);
			r->ended = true;
			break;
		}
	}
	if (r->diverged) {
		*d = r->div;
		return RPL_DIVERGED;
	}
	return RPL_MATCHED;
}

void rpl_mark(struct rpl *r, struct rpl_mark *mk)
{
	memset(mk, 0, sizeof(*mk));
	peek(r);
	if (HAVE_NEXT(r)) {
		mk->next_pos = NEXT(r).pos;
		mk->skip = r->run_pos == mk->next_pos ? r->run_n : 0;
	} else {
		mk->next_pos = UINT64_MAX;
	}
	mk->out_hash = r->out_hash;
	mk->out_bytes = r->out_bytes;
	mk->last_clock = r->last_clock;
	mk->last_event = r->last_event;
	mk->last_match = r->last_match;
	mk->ended = r->ended;
	mk->stats = r->stats;
}

int rpl_seek(struct rpl *r, const struct rpl_mark *mk)
{
	r->qh = r->qn = 0;
	r->diverged = false;
	atomic_store(&r->stop, false);
	atomic_store(&r->stalled, false);
	if (mk->next_pos == UINT64_MAX) {
		r->log_done = true; /* a log error found before stays known */
	} else {
		r->log_done = false;
		r->log_err = 0;
		int rc = lf_reader_seek(r->cfg.reader, mk->next_pos);
		if (rc < 0)
			return vmm_fail(VMM_EIO, "cannot go back in the log: %s",
					*lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
		for (uint64_t i = 0; i < mk->skip; i++) {
			if (!read_ahead(r))
				return vmm_fail(VMM_EIO, "the log changed under the replay");
			r->qh = (r->qh + 1) % RPL_AHEAD;
			r->qn--;
		}
	}
	r->run_pos = mk->next_pos;
	r->run_n = mk->skip;
	r->out_hash = mk->out_hash;
	r->out_bytes = mk->out_bytes;
	r->last_clock = mk->last_clock;
	r->last_event = mk->last_event;
	r->last_match = mk->last_match;
	r->ended = mk->ended;
	r->stats = mk->stats;
	return 0;
}

bool rpl_diverged(const struct rpl *r, struct rpl_divergence *d)
{
	if (r->diverged && d)
		*d = r->div;
	return r->diverged;
}

void rpl_stats(const struct rpl *r, struct rpl_stats *s)
{
	*s = r->stats;
	s->out_bytes = r->out_bytes;
}

bool rpl_at_log_end(const struct rpl *r, uint64_t *last_clock)
{
	if (last_clock)
		*last_clock = r->last_clock;
	return r->log_done && r->qn == 0 && !r->ended;
}
