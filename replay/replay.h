/*
 * replay.h: the replaying implementation of the input boundary (docs/record-replay.md).
 *
 * Every crossing is supplied from the log at exactly its recorded position: clock reads
 * get the logged values, timers fire and serial bytes arrive where they did. The host is
 * never consulted (no clock, no stdin). Idle time is skipped. Anything the guest does
 * that the log did not foresee (a clock read where none was logged, a logged event the
 * guest ran past, a state hash that differs, another way of stopping) is a divergence:
 * the machine is stopped and the divergence described.
 */
#ifndef REWIND_REPLAY_REPLAY_H
#define REWIND_REPLAY_REPLAY_H

#include "logfmt/log.h"
#include "vmm/input.h"
#include "vmm/machine.h"

struct rpl;

struct rpl_config {
	struct lf_reader *reader; /* positioned at the first event (owned by the caller) */
	/* Guest output (may be NULL: checked, not shown). Called on the vCPU thread. */
	void (*out)(void *opaque, uint8_t byte);
	void *out_opaque;
	/* Flush buffered output (may be NULL): called when the replay stops. */
	void (*flush)(void *opaque);
	/*
	 * Milliseconds without progress (no position reached, no event consumed) after which
	 * the replay ends as a divergence; 0: never (emu, where every run is bounded by an
	 * instruction budget). Started by rpl_watch.
	 */
	unsigned stall_ms;
	/*
	 * The log is a stream that may end anywhere (an ft backup's, whose primary was
	 * lost): where it ends, cut or not, the replay stops the machine as if asked to
	 * (the run returns VMM_STOP_USER there) instead of failing, and rpl_at_log_end says
	 * so. The reader's io blocks while more may come.
	 */
	bool stream;
	/*
	 * The log starts in the middle of a run (an ft backup that joined a running primary
	 * from a machine state): the output hash and byte count the run had there, and the
	 * last clock value its guest read.
	 */
	bool resume;
	uint64_t out_hash, out_bytes, last_clock;
};

extern const struct vmm_input_ops rpl_input_ops;

int rpl_create(const struct rpl_config *cfg, struct rpl **out) VMM_WUR;
/* Start the watchdog of cfg.stall_ms over machine m (nothing when stall_ms is 0). */
int rpl_watch(struct rpl *r, struct vmm_machine *m) VMM_WUR;
/* Stop the replay at the next stop of the vCPU: any thread, async-signal-safe. */
void rpl_request_stop(struct rpl *r, struct vmm_machine *m);
void rpl_free(struct rpl *r);

/* How a replay compares with its recording. */
enum rpl_verdict {
	RPL_MATCHED = 0,  /* every event, hash and the end matched */
	RPL_DIVERGED,     /* see struct rpl_divergence */
	RPL_LOG_CUT,      /* the log ends without an end event: matched up to its last event */
	RPL_LOG_BAD,      /* a chunk of the log is corrupt: matched up to the event before it */
	RPL_FAILED,       /* the run failed for another reason (vmm_errdetail) */
	RPL_STOPPED,      /* the user stopped the replay (rpl_request_stop): matched so far */
};

struct rpl_divergence {
	vmm_pos_t pos;          /* where the replay noticed */
	char expected[256];     /* the logged event, or what the log said should happen */
	char observed[256];     /* what the replayed guest did instead */
	vmm_pos_t last_event;   /* position of the last input event delivered before it */
	vmm_pos_t last_match;   /* position of the last state hash that matched (0: none) */
};

/*
 * After vmm_machine_run returned (0 with *stop, or a negative error from the replay's
 * hooks): check the end of the run against the log. Returns the verdict; *d is filled
 * for RPL_DIVERGED, and for RPL_LOG_CUT/RPL_LOG_BAD d->pos is the last replayed event's
 * position and d->expected says what is wrong with the log.
 */
enum rpl_verdict rpl_finish(struct rpl *r, struct vmm_machine *m, int run_rc,
			    const struct vmm_stop *stop, struct rpl_divergence *d);

struct rpl_stats {
	uint64_t events;        /* events consumed, all kinds */
	uint64_t hashes;        /* state hashes compared */
	uint64_t landmarks;     /* landmarks found */
	uint64_t landmark_hits; /* breakpoint hits at landmark RIPs that were not the point */
	uint64_t out_bytes;
};
void rpl_stats(const struct rpl *r, struct rpl_stats *s);

/*
 * Where a replay stands in its log (debugger checkpoints): rpl_mark takes it at a
 * vCPU stop, rpl_seek puts the replay back there (the machine is restored apart).
 */
struct rpl_mark {
	uint64_t next_pos; /* position of the next event not consumed; UINT64_MAX: none */
	uint64_t skip;     /* events at next_pos consumed already */
	uint64_t out_hash, out_bytes, last_clock;
	vmm_pos_t last_event, last_match;
	bool ended;
	struct rpl_stats stats;
};
void rpl_mark(struct rpl *r, struct rpl_mark *mk);
int rpl_seek(struct rpl *r, const struct rpl_mark *mk) VMM_WUR;
/*
 * Has the replay consumed every event of a log that ended without an end event (with
 * cfg.stream: where to go live)? *last_clock (may be NULL) gets the last clock value the
 * guest read (0: none).
 */
bool rpl_at_log_end(const struct rpl *r, uint64_t *last_clock);
/* Has the replay diverged? *d (may be NULL) gets the report. */
bool rpl_diverged(const struct rpl *r, struct rpl_divergence *d);

#endif
