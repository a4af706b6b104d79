/*
 * input.h: the input boundary (docs/architecture.md, docs/input-boundary.md).
 *
 * Every value that enters the guest and could differ between two runs crosses this table:
 * clock reads, timer expiries (asynchronous events) and host input bytes (serial). Guest
 * output leaves through it too, so replay can check it. There are three implementations:
 * live (vmm/live.c: host clock, host fds), record (record/: live + log) and replay
 * (replay/: from the log). Devices and backends never know which one is plugged in.
 *
 * All members are called on the vCPU thread, with the vCPU stopped at an instruction
 * boundary (or inside a port access, for clock_read and serial_tx); vmm_machine_pos() is
 * exact at every call. None may be NULL but wake.
 */
#ifndef REWIND_VMM_INPUT_H
#define REWIND_VMM_INPUT_H

#include "vmm.h"

struct vmm_machine;

struct vmm_input_ops {
	/*
	 * The machine clock: nanoseconds since the Unix epoch, monotonic over one run.
	 * Called whenever a device (PIT counter, RTC) or the machine needs the time.
	 */
	uint64_t (*clock_read)(void *opaque, struct vmm_machine *m);

	/*
	 * Deliver every asynchronous event due now: for each due timer call
	 * vmm_timer_fire(), for host input call vmm_serial_rx() with at most
	 * vmm_serial_rx_room() bytes. Called by the run loop at every stop of the vCPU.
	 * Returns 0 or a negative vmm_err (replay: divergence, log exhausted).
	 */
	int (*poll)(void *opaque, struct vmm_machine *m);

	/*
	 * The guest is idle (HLT, interrupts enabled, nothing pending). Block until an
	 * asynchronous event is due, then deliver it as poll() does. Live: sleep on the
	 * host clock and input fds. Replay: jump straight to the next logged event.
	 * Returns 0, a negative vmm_err, or VMM_INPUT_STOP when the user asked to stop.
	 */
	int (*idle)(void *opaque, struct vmm_machine *m);

	/*
	 * How many instructions (emu) or exits (kvm) the vCPU may run from the current
	 * position before it must stop and call poll() again. UINT64_MAX: no bound (live
	 * mode stops the vCPU with vmm_machine_kick() instead).
	 */
	uint64_t (*run_budget)(void *opaque, struct vmm_machine *m);

	/*
	 * A device armed or cancelled a timer (vmm_timer_next_deadline() may have moved).
	 * Live: tell the thread that interrupts a computing guest.
	 */
	void (*timers_changed)(void *opaque, struct vmm_machine *m);

	/* The guest wrote one byte to the serial line. */
	void (*serial_tx)(void *opaque, struct vmm_machine *m, uint8_t byte);

	/*
	 * Make an idle() in progress return soon, with 0 and nothing delivered (a spurious
	 * early return of a later idle() is allowed). Called from any thread
	 * (vmm_machine_interrupt). May be NULL: idle() never waits long (replay).
	 */
	void (*wake)(void *opaque);
};

/*
 * A tap sees every asynchronous delivery the moment the machine makes it, whoever called
 * it (live or virtual-clock source): the recorder logs these. Clock values need no tap:
 * the recorder wraps clock_read. Called on the vCPU thread; a member may be NULL.
 */
struct vmm_input_tap {
	/* vmm_timer_fire(m, id) is about to run timer id's callback. */
	void (*timer)(void *opaque, struct vmm_machine *m, unsigned id);
	/* vmm_serial_rx(m, buf, n) is about to hand n bytes to the UART. */
	void (*serial_rx)(void *opaque, struct vmm_machine *m, const uint8_t *buf, size_t n);
};

/* Returned by idle() (positive) when the user asked the machine to stop. */
#define VMM_INPUT_STOP 1

#endif
