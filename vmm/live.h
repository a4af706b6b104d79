/*
 * live.h: the live implementation of the input boundary (input.h): the machine clock is
 * the host's, timers expire in host time, serial input comes from a host file
 * descriptor, output goes to a sink callback. Nothing is logged.
 *
 * A watcher thread sleeps until the earliest timer deadline or until input is readable
 * and then kicks the vCPU, so a guest that computes is interrupted in time.
 */
#ifndef REWIND_VMM_LIVE_H
#define REWIND_VMM_LIVE_H

#include "input.h"

struct vmm_live;

struct vmm_live_config {
	int in_fd;       /* serial input (already open, set non-blocking by us), -1: none */
	bool escape;     /* Ctrl-A x stops, Ctrl-A Ctrl-A sends Ctrl-A (terminal mode) */
	/* Where guest output goes (may be NULL: dropped). Called on the vCPU thread. */
	void (*out)(void *opaque, uint8_t byte);
	void *out_opaque;
	/* Flush buffered output (may be NULL): called at each poll and before idling. */
	void (*flush)(void *opaque);
	/*
	 * Virtual clock (--clock virtual, emu only): the machine clock is VMM_VCLOCK_EPOCH
	 * plus one nanosecond per instruction retired, plus the time skipped while halted;
	 * timers expire at exact instruction counts, so a run without input is the same
	 * every time. Serial input still comes from in_fd when it comes.
	 */
	bool virtual_clock;
	/*
	 * Real clock slowed down (--clock real/N): the machine clock advances one ns for every
	 * N ns of host time since the start, so timers come N times less often in host time.
	 * For hosts too slow for the guest's timer rate (software KVM, where one 250 Hz tick
	 * of Linux costs more than its 4 ms). 0 or 1: not slowed.
	 */
	unsigned slowdown;
	/*
	 * The machine clock never reads less than this (ns since the epoch; 0: no floor):
	 * a machine that goes live in the middle of a run (an ft backup taking over) goes on
	 * from the last clock value its guest saw, even where this host's clock is behind.
	 * The clock runs at host speed from there. Not with virtual_clock.
	 */
	uint64_t clock_floor_ns;
};

/* The virtual clock starts at 2026-01-01 00:00:00 UTC, in ns since the epoch. */
#define VMM_VCLOCK_EPOCH 1767225600000000000ull

extern const struct vmm_input_ops vmm_live_input_ops;

int vmm_live_create(const struct vmm_live_config *cfg, struct vmm_live **out) VMM_WUR;
/* Start the watcher thread for machine m (after vmm_machine_create). */
int vmm_live_start(struct vmm_live *l, struct vmm_machine *m) VMM_WUR;
/* Ask the machine to stop: async-signal-safe (SIGINT handlers call it). */
void vmm_live_request_stop(struct vmm_live *l);
/* Was a stop requested (vmm_live_request_stop, Ctrl-A x)? Any thread. */
bool vmm_live_stopping(struct vmm_live *l);
/* Stop the watcher thread and free. */
void vmm_live_destroy(struct vmm_live *l);

/*
 * The host clock as the machine clock uses it: ns since the epoch, monotonic, less the
 * time the clock was held.
 */
uint64_t vmm_live_host_ns(struct vmm_live *l);

/*
 * Hold the machine clock (on) while the guest is stopped from outside (at a debugger),
 * and let it go on (off) from where it stood: the guest does not see the time it spent
 * stopped, so its timers do not all come due at once when it resumes. Holding also
 * flushes the guest's output. Call on the vCPU thread, with the vCPU stopped. No
 * effect on the virtual clock, which stands still anyway while nothing runs.
 */
void vmm_live_hold(struct vmm_live *l, bool on);

#endif
