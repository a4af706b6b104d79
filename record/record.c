/*
 * record.c: the recorder (record.h, docs/record-replay.md). It sits between the machine
 * and the real input source and appends one log event per crossing, at the position where
 * the guest observes it. It decides nothing about what the guest sees: the inner source
 * does, and the recorder only writes it down, plus the state hashes replay checks against.
 */
#include "record.h"

#include "logfmt/outhash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rec {
	struct rec_config cfg;
	uint64_t out_hash, out_bytes;
	uint64_t next_hash_pos;
	uint64_t last_mem_ns; /* host monotonic time of the last memory hash */
	int err;              /* first failure (negative vmm_err), sticky */
	char errmsg[256];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Remember the first log failure; the next poll stops the machine with it. */
static void note_lf_error(struct rec *r, int lrc)
{
	if (r->err)
		return;
	r->err = -VMM_EIO;
	snprintf(r->errmsg, sizeof(r->errmsg), "writing the log: %s",
		 *lf_errdetail() ? lf_errdetail() : lf_strerror(lrc));
}

/* Append to the log, and to the tee unless only: the stream's own. */
static void append_to(struct rec *r, const struct lf_event *ev, bool only)
{
	if (r->err)
		return;
	int lrc = lf_writer_append(r->cfg.writer, ev);
	if (lrc >= 0 && r->cfg.tee && !only)
		lrc = lf_writer_append(r->cfg.tee, ev);
	if (lrc < 0)
		note_lf_error(r, lrc);
}

static void append_raw(struct rec *r, const struct lf_event *ev)
{
	append_to(r, ev, false);
}

/*
 * Log an event at the current stop. Where the position alone does not name the point
 * (kvm: the guest computed since its last exit, or an interrupt went in since), a
 * landmark goes first, so that replay delivers this event exactly there.
 */
static void append_at_stop_to(struct rec *r, struct vmm_machine *m, const struct lf_event *ev,
			      bool only)
{
	struct vmm_landmark lm;
	int rc = r->err ? 0 : vmm_machine_landmark(m, &lm);
	if (rc < 0) {
		r->err = rc;
		snprintf(r->errmsg, sizeof(r->errmsg), "taking a landmark: %s", vmm_errdetail());
		return;
	}
	if (rc == 1) {
		struct lf_event l = {.kind = LF_EV_LANDMARK, .pos = ev->pos};
		l.landmark.rip = lm.rip;
		l.landmark.gprs = lm.gprs;
		l.landmark.regs = lm.regs;
		l.landmark.mem = lm.mem;
		l.landmark.pages = lm.pages;
		/* Into the tee too, even before an event that is the stream's alone (a
		 * marker's state check): taking it named this point and started a new page
		 * set, so the tee's next landmark is correct only after this one. */
		append_to(r, &l, false);
	}
	append_to(r, ev, only);
}

static void append_at_stop(struct rec *r, struct vmm_machine *m, const struct lf_event *ev)
{
	append_at_stop_to(r, m, ev, false);
}

static int report(struct rec *r)
{
	return r->err ? vmm_fail(-r->err, "%s", r->errmsg) : 0;
}

/* Log a state check at the current position (only: in the log, not the tee). */
/* A state hash of what (LF_HASH_REGS, LF_HASH_MEM; the output always) to the log, and to
 * the tee unless only. */
static void log_hash_to(struct rec *r, struct vmm_machine *m, uint32_t what, bool only)
{
	struct lf_event ev = {.kind = LF_EV_HASH, .pos = vmm_machine_pos(m)};
	ev.hash.flags = LF_HASH_OUT | (what & (LF_HASH_REGS | LF_HASH_MEM));
	int rc = vmm_machine_hash(m, (what & LF_HASH_REGS) ? &ev.hash.regs : NULL,
				  (what & LF_HASH_MEM) ? &ev.hash.mem : NULL);
	if (rc < 0) {
		if (!r->err) {
			r->err = rc;
			snprintf(r->errmsg, sizeof(r->errmsg), "hashing the machine state: %s",
				 vmm_errdetail());
		}
		return;
	}
	ev.hash.out = r->out_hash;
	ev.hash.out_bytes = r->out_bytes;
	append_at_stop_to(r, m, &ev, only);
}

static void log_hash(struct rec *r, struct vmm_machine *m, bool with_mem)
{
	log_hash_to(r, m, LF_HASH_REGS | (with_mem ? LF_HASH_MEM : 0), false);
}

/* Flush the log (and the tee unless only). */
static void flush_to(struct rec *r, bool only)
{
	if (r->err)
		return;
	int lrc = lf_writer_flush(r->cfg.writer);
	if (lrc >= 0 && r->cfg.tee && !only)
		lrc = lf_writer_flush(r->cfg.tee);
	if (lrc < 0)
		note_lf_error(r, lrc);
}

/* At a stop: a state hash when one is due (by position; memory by host time). */
static void maybe_hash(struct rec *r, struct vmm_machine *m)
{
	vmm_pos_t pos = vmm_machine_pos(m);
	if (pos < r->next_hash_pos)
		return;
	uint64_t now = mono_ns();
	bool with_mem = now - r->last_mem_ns >= (uint64_t)r->cfg.mem_hash_ms * 1000000u;
	log_hash(r, m, with_mem);
	if (with_mem)
		r->last_mem_ns = mono_ns(); /* after hashing: its own cost is not counted */
	r->next_hash_pos = pos + r->cfg.hash_every;
}

static void tick(struct rec *r)
{
	if (r->err)
		return;
	int lrc = lf_writer_tick(r->cfg.writer);
	if (lrc >= 0 && r->cfg.tee)
		lrc = lf_writer_tick(r->cfg.tee);
	if (lrc < 0)
		note_lf_error(r, lrc);
}

static uint64_t rec_clock_read(void *opaque, struct vmm_machine *m)
{
	struct rec *r = opaque;
	uint64_t v = r->cfg.inner->clock_read(r->cfg.inner_opaque, m);
	/* Inside a port access: the exit itself is the point, no landmark needed. */
	struct lf_event ev = {.kind = LF_EV_CLOCK, .pos = vmm_machine_pos(m), .clock = v};
	append_raw(r, &ev);
	return v;
}

static int rec_poll(void *opaque, struct vmm_machine *m)
{
	struct rec *r = opaque;
	maybe_hash(r, m);
	int rc = r->cfg.inner->poll(r->cfg.inner_opaque, m);
	tick(r);
	return r->err ? report(r) : rc;
}

static int rec_idle(void *opaque, struct vmm_machine *m)
{
	struct rec *r = opaque;
	/* Events must not sit in memory through a long wait: a killed recorder would lose
	 * them. Flush when the next deadline is further away than the writer's age limit
	 * (asking the inner clock directly: this is the host's business, not the guest's). */
	uint64_t d = vmm_timer_next_deadline(m);
	uint64_t now = r->cfg.inner->clock_read(r->cfg.inner_opaque, m);
	if (d == UINT64_MAX || d > now + 100000000ull)
		flush_to(r, false);
	int rc = r->cfg.inner->idle(r->cfg.inner_opaque, m);
	tick(r);
	return r->err ? report(r) : rc;
}

static uint64_t rec_run_budget(void *opaque, struct vmm_machine *m)
{
	struct rec *r = opaque;
	uint64_t b = r->cfg.inner->run_budget(r->cfg.inner_opaque, m);
	vmm_pos_t pos = vmm_machine_pos(m);
	uint64_t to_hash = r->next_hash_pos > pos ? r->next_hash_pos - pos : 1;
	return b < to_hash ? b : to_hash;
}

static void rec_timers_changed(void *opaque, struct vmm_machine *m)
{
	struct rec *r = opaque;
	r->cfg.inner->timers_changed(r->cfg.inner_opaque, m);
}

static void rec_serial_tx(void *opaque, struct vmm_machine *m, uint8_t byte)
{
	struct rec *r = opaque;
	r->out_hash = lf_out_hash(r->out_hash, byte);
	r->out_bytes++;
	r->cfg.inner->serial_tx(r->cfg.inner_opaque, m, byte);
}

static void rec_wake(void *opaque)
{
	struct rec *r = opaque;
	if (r->cfg.inner->wake)
		r->cfg.inner->wake(r->cfg.inner_opaque);
}

const struct vmm_input_ops rec_input_ops = {
	.clock_read = rec_clock_read,
	.poll = rec_poll,
	.idle = rec_idle,
	.run_budget = rec_run_budget,
	.timers_changed = rec_timers_changed,
	.serial_tx = rec_serial_tx,
	.wake = rec_wake,
};

static void rec_tap_timer(void *opaque, struct vmm_machine *m, unsigned id)
{
	struct lf_event ev = {.kind = LF_EV_TIMER, .pos = vmm_machine_pos(m), .timer = id};
	append_at_stop(opaque, m, &ev);
}

static void rec_tap_serial_rx(void *opaque, struct vmm_machine *m, const uint8_t *buf,
			      size_t n)
{
	while (n) {
		uint32_t k = n > LF_INPUT_MAX ? LF_INPUT_MAX : (uint32_t)n;
		struct lf_event ev = {.kind = LF_EV_INPUT, .pos = vmm_machine_pos(m)};
		ev.input.channel = 0;
		ev.input.len = k;
		ev.input.data = buf;
		append_at_stop(opaque, m, &ev);
		buf += k;
		n -= k;
	}
}

const struct vmm_input_tap rec_input_tap = {
	.timer = rec_tap_timer,
	.serial_rx = rec_tap_serial_rx,
};

int rec_create(const struct rec_config *cfg, struct rec **out)
{
	struct rec *r = calloc(1, sizeof(*r));
	if (!r)
		return -VMM_ENOMEM;
	r->cfg = *cfg;
	if (!r->cfg.hash_every)
		r->cfg.hash_every = 1ull << 25;
	if (!r->cfg.mem_hash_ms)
		r->cfg.mem_hash_ms = 1000;
	r->out_hash = LF_OUT_HASH_INIT;
	if (cfg->resume) {
		r->out_hash = cfg->out_hash;
		r->out_bytes = cfg->out_bytes;
	}
	r->next_hash_pos = r->cfg.hash_every;
	r->last_mem_ns = mono_ns();
	*out = r;
	return 0;
}

int rec_finish(struct rec *r, struct vmm_machine *m, const struct vmm_stop *stop)
{
	/* (No registers where the backend lost them at a triple fault: KVM on AMD.) */
	bool regs = !(stop->reason == VMM_STOP_TRIPLE_FAULT && stop->regs_lost);
	log_hash_to(r, m, LF_HASH_MEM | (regs ? LF_HASH_REGS : 0), false);
	struct lf_event ev = {.kind = LF_EV_END, .pos = stop->pos};
	ev.end.reason = stop->reason;
	ev.end.value = stop->reason == VMM_STOP_TRIPLE_FAULT ? (uint64_t)stop->vector
							      : stop->exit_value;
	append_at_stop(r, m, &ev);
	if (!r->err) {
		int lrc = lf_writer_finish(r->cfg.writer);
		if (lrc >= 0 && r->cfg.tee)
			lrc = lf_writer_finish(r->cfg.tee);
		if (lrc < 0)
			note_lf_error(r, lrc);
	}
	return report(r);
}

void rec_flush(struct rec *r)
{
	flush_to(r, false);
}

void rec_mark(struct rec *r, struct vmm_machine *m)
{
	log_hash_to(r, m, LF_HASH_REGS, true);
	flush_to(r, true);
}

int rec_error(const struct rec *r)
{
	return r->err;
}

void rec_output(const struct rec *r, uint64_t *out_hash, uint64_t *out_bytes)
{
	*out_hash = r->out_hash;
	*out_bytes = r->out_bytes;
}

void rec_free(struct rec *r)
{
	free(r);
}
