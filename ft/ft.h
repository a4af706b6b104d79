/*
 * ft.h: the fault-tolerant pair's core (docs/ft.md): the log stream, the output rule,
 * heartbeats and what each side does when it loses the other.
 *
 * The primary records its guest as `rewind record` does, but its log writer's bytes go
 * to the backup (an lf_io over the link, ft_primary_io) and, every few ms of host time,
 * it logs a progress marker (rec_mark) and tells the backup its position. The backup
 * feeds what it receives to a log reader (ft_backup_io, which blocks while more may come)
 * and replays it (rpl_config.stream) a short distance behind; it acks every marker it
 * holds. Guest output leaves the primary only once the backup acked the log up to the
 * position that produced it. Both sides send heartbeats; a side that hears nothing for
 * the timeout, or whose link closes or fails, has lost the other: it must win the
 * arbiter (arbiter.h) before it runs the guest alone, and stops the guest when it
 * loses.
 *
 * Threads: each side has one thread of its own (ft_primary_start, ft_backup_start) that
 * receives, sends heartbeats and acks, and decides about a lost peer. The input ops
 * (ft_primary_input_ops, ft_backup_input_ops) run on the vCPU thread, wrapped around the
 * recorder's and the replayer's.
 */
#ifndef REWIND_FT_FT_H
#define REWIND_FT_FT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logfmt/log.h"
#include "record/record.h"
#include "replay/replay.h"
#include "vmm/input.h"
#include "vmm/machine.h"

struct ft_chan;

/*
 * A link carries typed messages between the two sides, in order, whole or not at all:
 * in rewind the secure channel (ft_link_chan); the tests of the layers above it may plug
 * their own. recv: 1 (a message), 0 (timeout, nothing lost), -1 (the link is dead).
 */
struct ft_link_ops {
	int (*send)(void *opaque, uint8_t type, const void *buf, size_t len);
	int (*recv)(void *opaque, uint8_t *type, void *buf, size_t cap, size_t *len,
		    int timeout_ms);
	const char *(*error)(void *opaque);
	/* Make the link dead now, for reason why (what error() says from then on): a send
	 * or recv in progress on another thread returns. */
	void (*shut)(void *opaque, const char *why);
};

struct ft_link {
	const struct ft_link_ops *ops;
	void *opaque;
};

/* A link over a channel (chan.h); the channel stays the caller's. */
void ft_link_chan(struct ft_link *l, struct ft_chan *c);

/* Message types on the stream link (docs/ft.md, "The stream"). */
enum ft_msg {
	FT_MSG_HELLO = 1, /* primary -> backup, first: pair id, generation, timing */
	FT_MSG_LOG = 2,   /* primary -> backup: bytes of the log (header, chunks, index) */
	FT_MSG_MARK = 3,  /* primary -> backup: no event before this position is to come */
	FT_MSG_ACK = 4,   /* backup -> primary: the log held up to a marker; lag */
	FT_MSG_BEAT = 5,  /* either way: a heartbeat */
	FT_MSG_END = 6,   /* primary -> backup: the run ended, the log is complete */
	FT_MSG_HELLO_OK = 7, /* backup -> primary: the answer to HELLO */
	FT_MSG_INPUT = 10, /* primary -> backup: typed input was delivered at a position */
	FT_MSG_JOIN = 11,  /* a joining backup -> primary, first: send me your state */
	FT_MSG_STATE = 12, /* primary -> joining backup: a piece of the machine state */
	FT_MSG_STATE_END = 13, /* ... the last: sizes, output hash and count, last clock */
	FT_MSG_REFUSED = 14, /* either way, instead of an answer: why (text) */
};

#define FT_PAIR_ID_MAX 64
/* The largest message body either side sends or takes. */
#define FT_MSG_MAX (256u << 10)

struct ft_hello {
	char pair_id[FT_PAIR_ID_MAX + 1];
	uint64_t generation;
	uint32_t marker_ms, timeout_ms;
};

/* What a side that lost its peer decides (the answer of a claim on the arbiter). */
enum ft_verdict {
	FT_ALONE = 0,  /* won the arbiter: run on alone */
	FT_LOSER = 1,  /* lost it (or could not reach it): stop the guest, exit 14 */
};

/* A claim on the arbiter, called on the side's own thread when the peer is lost. The
 * reason says why the peer is considered lost; the callback prints what it decides. */
typedef enum ft_verdict (*ft_claim_fn)(void *opaque, const char *why);

/* Counters and health of one side, for `rewind ft status` and the bench. */
struct ft_stats {
	uint64_t held;          /* backup: the last marker held; primary: the last acked */
	uint64_t replayed;      /* backup: its replay's position (as last reported) */
	uint64_t lag_ns;        /* how long ago the primary was where the backup replays */
	uint64_t log_bytes;     /* log bytes sent or received */
	uint64_t markers;       /* markers sent or received */
	uint64_t out_buffered;  /* primary: output bytes waiting for an ack */
	uint64_t out_released;  /* primary: output bytes released */
	uint64_t stalls;        /* primary: times the guest waited for room in the buffer */
	uint64_t stall_ns;      /* ... and how long in all */
	uint64_t rel_lat_ns;    /* primary: total time sampled released bytes waited for their ack */
	uint64_t rel_lat_n;     /* ... and how many were sampled (one in 16) */
	uint64_t last_heard_ns; /* how long since the peer was last heard */
	bool linked;            /* the link to the peer lives */
	bool alone;             /* the peer was lost and the arbiter won */
	bool loser;             /* the arbiter was lost */
};

/* ---- typed console input (input.c) ----------------------------------------------------- */

struct ft_input;

/* A delivery of a client's bytes to the guest: n bytes, up to sequence number seq
 * (exclusive), at position pos. */
struct ft_input_delivery {
	uint64_t client, seq, pos, n;
};

int ft_input_create(struct ft_input **out);
/* The pipe's read end: the live input source's in_fd. */
int ft_input_fd(struct ft_input *in);
/* The console's input callback: bytes seq.. of client; writes what is new to the pipe and
 * waits at most wait_ms for them to be taken. Returns how many are taken (console.h). */
size_t ft_input_offer(struct ft_input *in, uint64_t client, uint64_t seq, const uint8_t *buf,
		      size_t n, unsigned wait_ms);
/* The tap saw n bytes delivered at pos: fills up to cap deliveries (whose bytes they were);
 * returns how many. */
size_t ft_input_delivered(struct ft_input *in, uint64_t pos, size_t n,
			  struct ft_input_delivery *out, size_t cap);
/* The backup holds the log up to held: deliveries before it are taken. */
void ft_input_acked(struct ft_input *in, uint64_t held);
/* No backup (any more): a delivered byte is taken (alone), or a backup joined. */
void ft_input_set_alone(struct ft_input *in, bool alone);
/* Backup: its replay delivered client's bytes up to seq. */
void ft_input_replayed(struct ft_input *in, uint64_t client, uint64_t seq);
/* A tap (opaque: the ft_input) for a side that runs alone: deliveries are taken. */
extern const struct vmm_input_tap ft_input_tap;
void ft_input_free(struct ft_input *in);

/* ---- the primary ------------------------------------------------------------------- */

struct ft_primary;

struct ft_primary_config {
	struct ft_link link;       /* to the backup, HELLO already exchanged (unused if alone) */
	bool alone;                /* start without a backup (one went live): joins only */
	unsigned marker_ms;        /* a progress marker this often (0: 5 ms) */
	/* Positions count exits (kvm, or emu counting them): a due marker waits for the next
	 * exit, where it needs no landmark, unless output waits for it (docs/ft.md). */
	bool exits;
	unsigned timeout_ms;       /* silence that means the backup is lost (0: 1000) */
	size_t out_cap;            /* output bytes buffered before the guest waits (0: 64 KiB) */
	/* (--log is a second writer of the recorders, rec_config.tee: the stream's log
	 * starts anew at each join, the file goes on) */
	struct ft_input *input;    /* typed input, fed to live's in_fd (NULL: none) */
	/* Output that may leave, in guest order (the console). Called with a lock held, on
	 * the primary's thread or the vCPU thread. */
	void (*release)(void *opaque, const uint8_t *buf, size_t n);
	ft_claim_fn claim;
	/*
	 * Re-protect (a new backup joins a primary that runs alone), in three steps, each on
	 * the vCPU thread at a stop. join_begin sends the new backup its HELLO and starts
	 * copying the machine's RAM to it while the guest runs on (a thread of the caller's,
	 * which calls ft_primary_join_copied when done; the core sends nothing on the link
	 * meanwhile). At the next stop after that, join_end either starts another copy round
	 * (the pages written during the last one, again on a thread that calls
	 * ft_primary_join_copied; it returns 1 and is called again at the stop after that) or
	 * sends what changed since the last round (the pages written, the devices and the
	 * vCPU) while the guest stands still, and returns 0. Then the
	 * core takes the link as its stream and join_log starts the new log (a new writer on
	 * ft_primary_io, a resumed recorder) and returns its recorder. Each returns 0 or -1
	 * (the join failed: the primary stays alone). NULL: joins are refused.
	 */
	int (*join_begin)(void *opaque, struct vmm_machine *m, const struct ft_link *link);
	int (*join_end)(void *opaque, struct vmm_machine *m, const struct ft_link *link);
	int (*join_log)(void *opaque, struct vmm_machine *m, struct rec **rec);
	void *opaque;
};

int ft_primary_create(const struct ft_primary_config *cfg, struct ft_primary **out);
/* The io the stream's log writer writes to (never fails: a lost backup is handled
 * apart). */
void ft_primary_io(struct ft_primary *p, struct lf_io *io);
/* Plug in the recorder (after rec_create on ft_primary_io's writer). */
void ft_primary_set_rec(struct ft_primary *p, struct rec *rec);
/* The input ops and tap to give the machine (opaque: the ft_primary), wrapped around
 * rec's. */
extern const struct vmm_input_ops ft_primary_input_ops;
extern const struct vmm_input_tap ft_primary_input_tap;
/* Start the primary's thread for machine m. */
int ft_primary_start(struct ft_primary *p, struct vmm_machine *m);
/*
 * The run ended and rec_finish wrote the end of the log: tell the backup, wait for its
 * ack of everything (at most the timeout; a lost backup is claimed as usual) and release
 * the rest of the output. Returns the verdict (FT_LOSER: the guest's last output was not
 * released).
 */
enum ft_verdict ft_primary_finish(struct ft_primary *p);
/*
 * A backup asks to join over link (any thread; the link stays the caller's to close when
 * this fails). Waits until the vCPU thread did it. Returns 0, or -1 with the reason in
 * err (a backup follows already, the guest ended, the state could not be sent).
 */
int ft_primary_join(struct ft_primary *p, const struct ft_link *link, char *err, size_t cap);
/* The copy join_begin started is done (any thread): the join ends at the next stop. */
void ft_primary_join_copied(struct ft_primary *p);
void ft_primary_stats(struct ft_primary *p, struct ft_stats *s);
/* Stop the thread, free (the link stays the caller's). */
void ft_primary_free(struct ft_primary *p);

/* ---- the backup ---------------------------------------------------------------------- */

struct ft_backup;

struct ft_backup_config {
	struct ft_link link;       /* to the primary, HELLO already exchanged */
	unsigned timeout_ms;       /* silence that means the primary is lost (0: 1000) */
	int log_fd;                /* --log: a log file of its own (-1: no; see ft_backup_log) */
	struct ft_input *input;    /* where replayed input deliveries are counted (NULL: none) */
	ft_claim_fn claim;
	void *opaque;
};

int ft_backup_create(const struct ft_backup_config *cfg, struct ft_backup **out);
/* The io the log reader reads from: blocks while more may come; ends (0) when the log
 * ended or the primary was lost and the arbiter won. */
void ft_backup_io(struct ft_backup *b, struct lf_io *io);
/* The input ops and tap to give the machine (opaque: the ft_backup), wrapped around
 * rpl's. */
extern const struct vmm_input_ops ft_backup_input_ops;
extern const struct vmm_input_tap ft_backup_input_tap;
/* Start the backup's thread: it receives (and acks) from here on, before the reader
 * has even read the header. */
int ft_backup_start(struct ft_backup *b);
/* Plug in the replay and its machine (before running it): a lost arbiter stops it. */
void ft_backup_attach(struct ft_backup *b, struct rpl *rpl, struct vmm_machine *m);

enum ft_backup_state {
	FT_B_FOLLOWING = 0, /* the primary lives */
	FT_B_ENDED,         /* the primary's run ended normally (FT_MSG_END) */
	FT_B_ALONE,         /* the primary was lost and the arbiter won: go live */
	FT_B_LOSER,         /* the primary was lost and so was the arbiter */
};
enum ft_backup_state ft_backup_state(struct ft_backup *b, char *why, size_t cap);
/* Wait (at most timeout_ms) until the state is no longer FT_B_FOLLOWING: a backup whose
 * replay met the log's end waits for the primary's END before it hangs up, so that the
 * primary has the ack of the whole log. Returns the state. */
enum ft_backup_state ft_backup_wait(struct ft_backup *b, unsigned timeout_ms);
void ft_backup_stats(struct ft_backup *b, struct ft_stats *s);
/*
 * --log: the file gets every event of the stream, written by a writer of the backup's own
 * (zstd). Once the replay is over (the state is no longer FT_B_FOLLOWING, or the primary
 * did not say END in time): waits until every event received is in the file (no more are
 * taken). A stream that ended whole made a whole file: *w is NULL. One cut by a lost
 * primary leaves the file open: *w is its writer (events up to where the replay stopped),
 * now the caller's, to go on with (a recorder's tee) and finish. Returns 0, or -1 with
 * the reason in err (the file could not be written: the rest is the caller's choice).
 * Without --log: 0 and NULL.
 */
int ft_backup_log(struct ft_backup *b, struct lf_writer **w, char *err, size_t cap);
void ft_backup_free(struct ft_backup *b);

/* ---- messages -------------------------------------------------------------------------- */

/* HELLO both ways: the primary sends it and waits for HELLO_OK, the backup takes it. */
int ft_hello_send(const struct ft_link *l, const struct ft_hello *h, int timeout_ms,
		  char *err, size_t errlen);
int ft_hello_take(const struct ft_link *l, struct ft_hello *h, int timeout_ms, char *err,
		  size_t errlen);

/* Monotonic host time in ns. */
uint64_t ft_now_ns(void);

#endif
