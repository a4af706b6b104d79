/*
 * machine.h: the PC subset (docs/architecture.md) and the run loop.
 *
 * Three audiences: tools (create, load, run, stop), devices (irq lines, clock, timers),
 * and backends (memory, port dispatch, interrupt acknowledge).
 */
#ifndef REWIND_VMM_MACHINE_H
#define REWIND_VMM_MACHINE_H

#include "cpu.h"
#include "input.h"
#include "vmm.h"

struct vmm_machine;

/* ---- for tools ---------------------------------------------------------------- */

struct vmm_config {
	uint64_t mem_size;                  /* bytes of guest RAM */
	const struct vmm_cpu_ops *backend;  /* &emu_cpu_ops or &kvm_cpu_ops */
	const struct vmm_input_ops *input;  /* live, record or replay */
	void *input_opaque;
	const struct vmm_input_tap *tap;    /* may be NULL: nobody watches deliveries */
	void *tap_opaque;
};

/* How a run ended. */
enum vmm_stop_reason {
	VMM_STOP_DEBUG_EXIT = 1, /* guest wrote V to isa-debug-exit (0xF4): status (V<<1)|1 */
	VMM_STOP_RESET,          /* reset request (0xCF9, keyboard controller 0xFE) */
	VMM_STOP_TRIPLE_FAULT,   /* shutdown: an exception could not be delivered */
	VMM_STOP_HALTED,         /* HLT with interrupts disabled: nothing can wake it */
	VMM_STOP_USER,           /* the user asked to stop (Ctrl-A x, SIGINT) */
	VMM_STOP_LIMIT,          /* vmm_machine_run_until: the position asked for */
	VMM_STOP_BREAK,          /* a breakpoint (vmm_machine_set_debug), before its instruction */
	VMM_STOP_WATCH,          /* an access to a watched page, before its instruction */
};

struct vmm_stop {
	enum vmm_stop_reason reason;
	uint32_t exit_value; /* VMM_STOP_DEBUG_EXIT: the value V written */
	int vector;          /* VMM_STOP_TRIPLE_FAULT: the exception that was not delivered
			      * (-1: not known) */
	bool regs_lost;      /* VMM_STOP_TRIPLE_FAULT: the registers at the fault are gone
			      * (KVM on AMD resets the vCPU at a shutdown) */
	vmm_pos_t pos;       /* where it stopped */
	uint64_t addr;       /* VMM_STOP_WATCH: the guest-virtual address accessed */
	enum vmm_access access; /* VMM_STOP_WATCH: read or write */
};

int vmm_machine_create(const struct vmm_config *cfg, struct vmm_machine **out) VMM_WUR;
void vmm_machine_destroy(struct vmm_machine *m);

/* Host pointer to guest RAM and its size. */
uint8_t *vmm_machine_ram(struct vmm_machine *m);
uint64_t vmm_machine_ram_size(struct vmm_machine *m);
struct vmm_cpu *vmm_machine_cpu(struct vmm_machine *m);
const struct vmm_cpu_ops *vmm_machine_backend(struct vmm_machine *m);

/*
 * Load a PVH ELF image (bytes in memory) with a command line; build hvm_start_info and
 * the memory map; put the vCPU in the PVH entry state. See loader.h.
 */
int vmm_machine_load(struct vmm_machine *m, const void *elf, size_t len,
		     const char *cmdline) VMM_WUR;
/* The same with an initrd (NULL and 0 for none), placed as loader.h says. */
int vmm_machine_load_initrd(struct vmm_machine *m, const void *elf, size_t len,
			    const char *cmdline, const void *initrd, size_t initrd_len) VMM_WUR;

/* Run the guest until it stops (see enum vmm_stop_reason). */
int vmm_machine_run(struct vmm_machine *m, struct vmm_stop *stop) VMM_WUR;
/*
 * The same, and stop with VMM_STOP_LIMIT on arriving at position until (before the
 * input events due there are delivered). The state at a position is therefore always
 * the one on arrival there: what checkpoints keep and what a debugger shows.
 */
int vmm_machine_run_until(struct vmm_machine *m, vmm_pos_t until,
			  struct vmm_stop *stop) VMM_WUR;

/*
 * Instruction positions (docs/time-travel.md, "Exit-counted logs"): the instructions
 * retired since the entry, where the backend counts them (emu, also while its positions
 * count exits), else the position. And vmm_machine_run_until with the limit in
 * instructions: it stops with VMM_STOP_LIMIT on arriving at instruction count until,
 * after the input events due there (where positions are instructions, it is
 * vmm_machine_run_until). A debugger's timeline works in these.
 */
vmm_pos_t vmm_machine_insns(struct vmm_machine *m);
int vmm_machine_run_until_insn(struct vmm_machine *m, vmm_pos_t until,
			       struct vmm_stop *stop) VMM_WUR;

/*
 * Debugging and checkpoints (struct vmm_debug, struct vmm_track in cpu.h): breakpoints
 * and watchpoints make vmm_machine_run stop with VMM_STOP_BREAK / VMM_STOP_WATCH; track
 * reports the pages written and the code pages run since its last call. Both fail with
 * -VMM_EBACKEND and a detail message on a backend that cannot do them.
 */
int vmm_machine_set_debug(struct vmm_machine *m, const struct vmm_debug *d) VMM_WUR;
int vmm_machine_track(struct vmm_machine *m, struct vmm_track *t) VMM_WUR;

/*
 * A debugger's write to guest-virtual memory (vmm_cpu_ops.write_virt: through the page
 * tables, nothing written unless every page is mapped, stale translated code dropped).
 * Fails with -VMM_EBACKEND on a backend that cannot, -VMM_EGUEST where a page is not
 * mapped. The caller decides whether a write is allowed: one a log does not contain
 * makes a recording unreplayable.
 */
int vmm_machine_write_virt(struct vmm_machine *m, uint64_t va, const void *buf,
			   size_t len) VMM_WUR;

/*
 * While on, the run loop does not wait for a halted guest (HLT with interrupts enabled):
 * vmm_machine_run_until returns VMM_STOP_LIMIT at the current position instead, and a
 * wait in progress ends soon (vmm_input_ops.wake). A computing guest is not stopped: the
 * caller bounds its runs. For a debugger's Ctrl-C; any thread.
 */
void vmm_machine_interrupt(struct vmm_machine *m, bool on);

/*
 * Everything but RAM (every device, the vCPU, the run loop's own state) into a
 * malloc'd blob, and back: checkpoints keep RAM themselves, as page differences.
 */
int vmm_machine_snapshot(struct vmm_machine *m, void **blob, size_t *len) VMM_WUR;
int vmm_machine_restore(struct vmm_machine *m, const void *blob, size_t len) VMM_WUR;

/*
 * Landmarks (vmm_cpu_ops.landmark/seek_landmark): at a stop, does this point need a
 * landmark besides its position (1, *lm filled) or not (0)? And run from a stop at a
 * landmark's position to it (enum vmm_seek_result, or a negative vmm_err). On a backend
 * without landmarks the first is always 0 and the second fails with -VMM_EBACKEND.
 */
int vmm_machine_landmark(struct vmm_machine *m, struct vmm_landmark *lm) VMM_WUR;
int vmm_machine_seek_landmark(struct vmm_machine *m, const struct vmm_landmark *lm,
			      struct vmm_seek_stats *st) VMM_WUR;

/*
 * Plug another input boundary (and tap) into a stopped machine: the next
 * vmm_machine_run goes on from the current position with it. A backup of the ft pair
 * goes live this way, from the replay source to the live one, without a restart. Call
 * between runs, on the thread that runs the machine. tap may be NULL.
 */
void vmm_machine_set_input(struct vmm_machine *m, const struct vmm_input_ops *input,
			   void *input_opaque, const struct vmm_input_tap *tap, void *tap_opaque);

/* Stop a running machine soon: any thread, async-signal-safe. */
void vmm_machine_kick(struct vmm_machine *m);

/* The current position on the timeline. */
vmm_pos_t vmm_machine_pos(struct vmm_machine *m);

/*
 * Hashes of the machine state for divergence checks: *regs over the vCPU's registers
 * (struct vmm_regs), *mem over the contents of all of guest RAM (either pointer may be
 * NULL). Equal hashes at equal positions in two runs mean, with overwhelming probability,
 * equal state. The memory hash is defined in logfmt/FORMAT.md ("State hashes"): all-zero
 * pages do not enter it, so its cost follows the memory the guest has touched, not the
 * size of RAM.
 */
int vmm_machine_hash(struct vmm_machine *m, uint64_t *regs, uint64_t *mem) VMM_WUR;
/*
 * Portable logs (docs/kvm-backend.md, "Portable logs"): VMM_PORT_DIGEST makes the regs of
 * vmm_machine_hash and of landmarks vmm_arch_digest (no interrupt in flight for the
 * former); VMM_PORT_EXITS makes emu count positions as kvm does. Before loading the
 * image. -VMM_EINVAL (detail set) where the backend cannot.
 */
int vmm_machine_set_portable(struct vmm_machine *m, unsigned flags) VMM_WUR;
/*
 * Emu replaying a kvm log (VMM_PORT_EXITS): when the registers differ from a logged
 * hash (vmm_machine_hash) only in status flags an instruction left undefined, take the
 * logged ones (the host CPU's, on the recording) and return true; else false.
 */
bool vmm_machine_adopt_flags(struct vmm_machine *m, uint64_t regs_hash);

/* Port accesses that hit no device: count of reads and writes, per port. */
struct vmm_unhandled {
	uint16_t port;
	uint64_t reads, writes;
};
/* Fills up to cap entries sorted by port; returns how many ports were touched. */
size_t vmm_machine_unhandled(struct vmm_machine *m, struct vmm_unhandled *out, size_t cap);

/*
 * Save the whole machine (RAM, every device in array order, the vCPU) into a malloc'd
 * blob; load restores it exactly into a machine created with the same config.
 */
int vmm_machine_save(struct vmm_machine *m, void **blob, size_t *len) VMM_WUR;
int vmm_machine_load_state(struct vmm_machine *m, const void *blob, size_t len) VMM_WUR;

/* ---- for devices ---------------------------------------------------------------- */

/* Drive ISA interrupt line 0..15 (into the 8259 pair) to level 0 or 1. */
void vmm_irq_set(struct vmm_machine *m, unsigned line, int level);

/* The machine clock in ns since the epoch; crosses the input boundary. */
uint64_t vmm_clock_ns(struct vmm_machine *m);

/*
 * Device timers. Each has a fixed id (its index in the machine's timer table, assigned
 * in registration order at machine creation, so the same in every run). A timer fires
 * when the input boundary says so (live: the clock passed the deadline); its callback
 * runs on the vCPU thread and must not read the clock to compute its next deadline.
 */
struct vmm_timer {
	void (*fire)(void *opaque);
	void *opaque;
	const char *name;
	int id;
	bool armed;
	uint64_t deadline; /* machine-clock ns */
};
/* Register a timer; returns its id or a negative vmm_err. */
int vmm_timer_register(struct vmm_machine *m, struct vmm_timer *t, const char *name,
		       void (*fire)(void *), void *opaque);
void vmm_timer_arm(struct vmm_machine *m, struct vmm_timer *t, uint64_t deadline_ns);
void vmm_timer_cancel(struct vmm_machine *m, struct vmm_timer *t);

/* Ask the machine to power off (debug-exit) or reset at the current instruction. */
void vmm_machine_request_stop(struct vmm_machine *m, enum vmm_stop_reason why,
			      uint32_t value);

/* ---- for the input boundary implementations ----------------------------------- */

/* Number of timers, and timer i (for polling deadlines). */
unsigned vmm_timer_count(struct vmm_machine *m);
struct vmm_timer *vmm_timer_get(struct vmm_machine *m, unsigned id);
/* The earliest armed deadline, or UINT64_MAX. */
uint64_t vmm_timer_next_deadline(struct vmm_machine *m);
/* Run timer id's callback now (it is disarmed first; the callback may re-arm). */
void vmm_timer_fire(struct vmm_machine *m, unsigned id);

/* How many bytes the UART's receiver can take now (FIFO room). */
size_t vmm_serial_rx_room(struct vmm_machine *m);
/* Hand bytes from the host to the UART receiver; n <= vmm_serial_rx_room(). */
void vmm_serial_rx(struct vmm_machine *m, const uint8_t *buf, size_t n);
/* Used by the UART: a byte leaves the guest. */
void vmm_serial_tx(struct vmm_machine *m, uint8_t byte);

/* ---- for backends ---------------------------------------------------------------- */

/* A port access from the guest. *val is read or written; size 1, 2 or 4. */
void vmm_pio(struct vmm_machine *m, uint16_t port, unsigned size, bool write, uint32_t *val);
/* Is the interrupt controller's INTR output asserted? */
bool vmm_intr_pending(struct vmm_machine *m);
/* Acknowledge INTR (the INTA cycle): returns the vector (spurious 7/15 included). */
uint8_t vmm_intr_ack(struct vmm_machine *m);
/* Set when a device has requested a stop; backends check it after each port access. */
bool vmm_machine_stop_requested(struct vmm_machine *m);

#endif
