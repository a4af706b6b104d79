/*
 * timeline.h: positions on a replay's timeline, reached forwards and backwards
 * (docs/time-travel.md). Checkpoints are taken while running forward; going back restores
 * the nearest one and runs forward an exact count. Without a replay (a live run under
 * gdb) only the forward half works.
 */
#ifndef REWIND_DEBUGGER_TIMELINE_H
#define REWIND_DEBUGGER_TIMELINE_H

#include "replay/replay.h"
#include "vmm/machine.h"

struct tl;

struct tl_config {
	struct vmm_machine *m;  /* at position 0 (replay) or wherever a live run starts */
	struct rpl *rpl;        /* NULL: live, forward only, no checkpoints */
	uint64_t ck_every;      /* instructions between checkpoints (0: the default) */
	uint64_t ck_mem;        /* bytes for checkpoints before thinning (0: the default) */
	/* Asked between slices of a long run: true stops it (gdb's Ctrl-C). May be NULL. */
	bool (*interrupted)(void *opaque);
	void *opaque;
};

#define TL_CK_EVERY_DEFAULT (2ull << 20)
#define TL_CK_MEM_DEFAULT (512ull << 20)

enum tl_stop_kind {
	TL_STOP_DONE = 1,      /* the step or the position asked for was reached */
	TL_STOP_BREAK,         /* a breakpoint, before its instruction */
	TL_STOP_WATCH,         /* a watchpoint hit: after the access (forward), before it (reverse) */
	TL_STOP_HISTORY_BEGIN, /* reverse execution reached position 0 */
	TL_STOP_HISTORY_END,   /* the recording (or the live guest) ends here */
	TL_STOP_INTERRUPTED,   /* interrupted callback */
};

struct tl_stop {
	enum tl_stop_kind kind;
	vmm_pos_t pos;
	uint64_t addr;              /* TL_STOP_WATCH: the watched address hit */
	enum vmm_access access;     /* TL_STOP_WATCH: the kind of access */
	/* TL_STOP_HISTORY_END: how the guest ended, or why the replay cannot go on */
	struct vmm_stop end;
	char why[640];
};

int tl_create(const struct tl_config *cfg, struct tl **out) VMM_WUR;
void tl_free(struct tl *t);

vmm_pos_t tl_pos(const struct tl *t);
/* The furthest position reached so far: output below it has been shown already. */
vmm_pos_t tl_high_water(const struct tl *t);
bool tl_can_reverse(const struct tl *t);

/* Replace the interrupted callback of the config. */
void tl_set_interrupt(struct tl *t, bool (*fn)(void *opaque), void *opaque);

/* Breakpoints and watchpoints (copied). */
int tl_set_debug(struct tl *t, const uint64_t *bp, unsigned nbp, const struct vmm_watch *wp,
		 unsigned nwp) VMM_WUR;

/* Run forward with the debug stops armed: to position limit (UINT64_MAX: no limit). */
int tl_forward(struct tl *t, vmm_pos_t limit, struct tl_stop *st) VMM_WUR;
/* One instruction forward (debug stops not armed). */
int tl_step(struct tl *t, struct tl_stop *st) VMM_WUR;
/* Go to a position (restoring a checkpoint when it lies behind). */
int tl_goto(struct tl *t, vmm_pos_t pos, struct tl_stop *st) VMM_WUR;
int tl_reverse_step(struct tl *t, struct tl_stop *st) VMM_WUR;
/* The last debug stop before the current position, or position 0. */
int tl_reverse_continue(struct tl *t, struct tl_stop *st) VMM_WUR;

struct tl_stats {
	unsigned checkpoints;
	uint64_t bytes;         /* page versions and snapshots */
	uint64_t pages;         /* page versions kept */
	uint64_t bound;         /* ck_mem */
	uint64_t every;         /* ck_every */
	uint64_t first_pos, last_pos;
	uint64_t thinned;       /* checkpoints dropped to stay within the bound */
	uint64_t reexecuted;    /* instructions run again to go back, so far */
	uint64_t skipped;       /* intervals a reverse search skipped without running them */
};
void tl_stats(const struct tl *t, struct tl_stats *s);
/* Checkpoint i (0-based, in position order): its position; false past the end. */
bool tl_checkpoint_pos(const struct tl *t, unsigned i, vmm_pos_t *pos);

#endif
