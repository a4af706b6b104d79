/*
 * record.h: the recording implementation of the input boundary (docs/record-replay.md).
 *
 * The recorder wraps another input implementation (live, or live with the virtual clock)
 * and logs every crossing with its position: clock values (it wraps clock_read), timer
 * expiries and serial input (through the machine's tap, whoever delivers them), plus
 * periodic state hashes, a running hash of the output, and the end of the run. Devices
 * and backends never learn that they are recorded.
 */
#ifndef REWIND_RECORD_RECORD_H
#define REWIND_RECORD_RECORD_H

#include "logfmt/log.h"
#include "vmm/input.h"
#include "vmm/machine.h"

struct rec;

struct rec_config {
	const struct vmm_input_ops *inner; /* what really supplies the inputs */
	void *inner_opaque;
	struct lf_writer *writer;          /* where events go (owned by the caller) */
	/* A second log that gets every event too, or NULL: an ft side's --log file, which
	 * outlives the stream's log (a new one starts at each join), so that the file is one
	 * log of the whole run. rec_mark's state checks and flushes are the stream's alone;
	 * rec_flush, rec_finish and a write error apply to both (owned by the caller). */
	struct lf_writer *tee;
	/* A state hash (registers and output) every this many positions (0: 1 << 25). */
	uint64_t hash_every;
	/* Include a hash of all guest RAM when this many ms have passed since the last
	 * one (0: 1000). The final hash always includes memory. */
	uint32_t mem_hash_ms;
	/* Recording starts in the middle of a run (an ft primary re-protected by a new
	 * backup: the log starts from a machine state): the output the guest wrote before,
	 * as its running hash and byte count, so that the state checks go on from there. */
	bool resume;
	uint64_t out_hash, out_bytes;
};

/* What the recorder gives the machine: pass both in struct vmm_config. */
extern const struct vmm_input_ops rec_input_ops;
extern const struct vmm_input_tap rec_input_tap;

int rec_create(const struct rec_config *cfg, struct rec **out) VMM_WUR;

/*
 * The run ended (vmm_machine_run returned stop): log the final state hash (registers,
 * memory, output) and the end event, then finish the log (index, footer, sync).
 * Returns 0 or a negative vmm_err (detail in vmm_errdetail()).
 */
int rec_finish(struct rec *r, struct vmm_machine *m, const struct vmm_stop *stop) VMM_WUR;

/*
 * Write out the events held in memory now: the guest is about to stand still for a
 * while (stopped at a debugger), and a recorder killed meanwhile would lose them. A
 * failure is kept as rec_error(), as for any write.
 */
void rec_flush(struct rec *r);

/*
 * A progress marker for a log that is streamed (an ft primary's): log a state check
 * (registers and output) at the current stop and write out every event held in memory
 * (of the writer, not the tee),
 * so that a reader that has everything written so far knows that no event before the
 * current position is still to come. Call at a stop of the vCPU (an input poll). A
 * failure is kept as rec_error().
 */
void rec_mark(struct rec *r, struct vmm_machine *m);

/*
 * The first log write error, if any (0 otherwise). When the log cannot be written the
 * recorder stops the machine at its next poll with -VMM_EIO; the log stays readable up
 * to its last complete chunk.
 */
int rec_error(const struct rec *r);

/* The running hash and count of the output so far (what a resumed log goes on from). */
void rec_output(const struct rec *r, uint64_t *out_hash, uint64_t *out_bytes);

void rec_free(struct rec *r);

#endif
