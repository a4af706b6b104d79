/*
 * cpu.h: the vCPU backend interface. Two implementations: kvm (vmm/kvm.c, /dev/kvm
 * without in-kernel irqchip or PIT) and emu (vmm/emu.c, Unicorn 2.1.1). One conformance
 * suite (tests/integration/test_conformance.c) runs over both.
 *
 * Port I/O is dispatched by the backend to vmm_pio() while the guest is stopped at the
 * I/O instruction (vmm_machine_pos() is exact there). Interrupts come from the machine's
 * interrupt controller: whenever the guest can take one (IF=1, no STI/MOV-SS shadow) and
 * vmm_intr_pending() is true, the backend calls vmm_intr_ack() for the vector and
 * delivers it through the guest IDT before the next instruction.
 */
#ifndef REWIND_VMM_CPU_H
#define REWIND_VMM_CPU_H

#include "vmm.h"

struct vmm_machine;
struct vmm_cpu;

struct vmm_seg {
	uint16_t sel;
	uint64_t base;
	uint32_t limit;
	uint32_t attr; /* access rights as in the descriptor: type, S, DPL, P, AVL, L, D/B, G */
};

struct vmm_dtable {
	uint64_t base;
	uint16_t limit;
};

/* The architectural state the backends agree on (what gdb, dumps and tests see). */
struct vmm_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
	struct vmm_seg cs, ds, es, fs, gs, ss, tr, ldt;
	struct vmm_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	uint64_t fs_base, gs_base, kernel_gs_base;
};

/*
 * x87 and SSE state, laid out as gdb's i386 target description names it. st[i] is
 * ST(i) (stack order, not physical register order), 80-bit little-endian.
 */
struct vmm_fpregs {
	uint8_t st[8][10];
	uint32_t fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop;
	uint8_t xmm[16][16];
	uint32_t mxcsr;
};

/* Why vmm_cpu_ops.run returned. */
enum vmm_exit_reason {
	VMM_EXIT_BUDGET = 1,   /* the budget given to run() is used up exactly */
	VMM_EXIT_KICK,         /* vmm_machine_kick() or a port access asked for a stop */
	VMM_EXIT_HLT,          /* HLT retired; RIP is after it */
	VMM_EXIT_SHUTDOWN,     /* triple fault */
	VMM_EXIT_POWEROFF,     /* a device asked the machine to power off or reset */
	VMM_EXIT_BREAK,        /* RIP is on a breakpoint (struct vmm_debug); not executed yet */
	VMM_EXIT_WATCH,        /* the instruction at RIP is about to access a watched page */
};

/* Debug stops (set_debug). Addresses are guest-virtual. */
enum vmm_access { VMM_ACCESS_READ = 1, VMM_ACCESS_WRITE = 2, VMM_ACCESS_RW = 3 };

struct vmm_watch {
	uint64_t addr, len;
	enum vmm_access access; /* which accesses trap */
};

struct vmm_debug {
	const uint64_t *bp;     /* stop before an instruction at any of these addresses */
	unsigned nbp;
	const struct vmm_watch *wp; /* stop before an instruction that accesses these pages */
	unsigned nwp;
	/*
	 * No breakpoint stop at this position, and the watched pages are open to the one
	 * instruction run there (the caller resumes from a stop it reported, with budget 1
	 * for a watch). UINT64_MAX: none.
	 */
	vmm_pos_t pass_pos;
};

/*
 * What the guest touched since the last track() call (checkpoints, docs/time-travel.md):
 * guest-physical pages written (by guest instructions or by the backend on the guest's
 * behalf: page-table A/D bits, interrupt frames, string I/O), and guest-virtual pages
 * fetched as code. Supersets, never subsets.
 */
/* Guest-virtual code [addr, end) that ran: a translated block. */
struct vmm_code_range {
	uint64_t addr, end;
};

struct vmm_track {
	uint64_t *dirty;  /* in: bitmap over RAM pages; written pages are OR'ed in */
	/* out: malloc'd, the blocks run, sorted by addr then end, each once */
	struct vmm_code_range *code;
	size_t ncode;
};

/* No block is longer than this (a breakpoint search looks this far back). */
#define VMM_BLOCK_MAX 8192

/*
 * A point inside a position (docs/kvm-backend.md, "Landmarks"). Where positions count
 * something coarser than instructions (kvm: exits), an asynchronous event that came while
 * the guest computed is placed by its position plus this: the instruction pointer, a hash
 * of the general registers (a quick first check), of all registers (and the event on
 * its way in), and a hash of the guest pages written
 * since the previous landmark (logfmt/FORMAT.md, "Landmarks", defines both).
 */
struct vmm_landmark {
	uint64_t rip, gprs, regs, mem;
	uint32_t pages; /* how many pages the mem hash covers */
};

/* How a landmark search ended (vmm_cpu_ops.seek_landmark). */
enum vmm_seek_result {
	VMM_SEEK_FOUND = 0,   /* the vCPU is at the landmark */
	VMM_SEEK_PASSED,      /* the guest left the position (an exit) without meeting it */
	VMM_SEEK_INTERRUPTED, /* a kick stopped the search; the position is unchanged */
};

struct vmm_seek_stats {
	uint64_t hits;  /* breakpoint hits at the landmark's RIP that did not match */
	const char *left_by; /* VMM_SEEK_PASSED: the exit that left the position */
};

struct vmm_exit {
	enum vmm_exit_reason reason;
	/* For VMM_EXIT_SHUTDOWN: the vector of the exception that could not be delivered
	 * (-1: the backend does not know), and whether the vCPU's registers at the fault are
	 * lost (KVM on AMD resets the vCPU before it reports a shutdown). */
	int vector;
	bool regs_lost;
	/* For VMM_EXIT_WATCH: the guest-virtual address accessed and how. */
	uint64_t addr;
	enum vmm_access access;
};

struct vmm_cpu_ops {
	const char *name; /* "emu" or "kvm" */

	/*
	 * Can this backend run here? 0, or -VMM_ENOKVM with a detail message saying why.
	 * Must not be NULL.
	 */
	int (*probe)(void);
	/* Create the vCPU over the machine's RAM. Must not be NULL. */
	int (*create)(struct vmm_machine *m, struct vmm_cpu **out);
	void (*destroy)(struct vmm_cpu *cpu);

	/*
	 * Put the vCPU in the PVH entry state: 32-bit protected mode, paging off, flat
	 * 4 GiB CS/DS, EBX = start_info, EIP = entry; position 0 is the first guest
	 * instruction.
	 */
	int (*reset_pvh)(struct vmm_cpu *cpu, uint32_t entry, uint32_t start_info);

	/*
	 * Run until an exit (see enum vmm_exit_reason). budget: at most this many more
	 * positions (instructions on emu, exits on kvm) are retired; UINT64_MAX for none.
	 * Returns 0 with *exit filled, or a negative vmm_err.
	 */
	int (*run)(struct vmm_cpu *cpu, uint64_t budget, struct vmm_exit *exit);

	/*
	 * Make a running (or the next) run() return VMM_EXIT_KICK soon, at an instruction
	 * boundary. Safe to call from any thread and from inside a port access.
	 */
	void (*kick)(struct vmm_cpu *cpu);

	/* The current position (exact, also inside a port access). */
	vmm_pos_t (*pos)(struct vmm_cpu *cpu);

	int (*get_regs)(struct vmm_cpu *cpu, struct vmm_regs *r);
	/*
	 * Set the state get_regs reports (typically get_regs' result with some fields
	 * changed). A backend that cannot change part of it from outside fails with
	 * -VMM_EBACKEND and a detail message naming it when that part differs from the
	 * current state, and then changes nothing (emu: the general registers, RIP, RFLAGS,
	 * FS/GS base, KERNEL_GS_BASE and CR2 change; segment selectors and descriptors,
	 * descriptor tables, CR0/CR3/CR4/CR8 and EFER do not).
	 */
	int (*set_regs)(struct vmm_cpu *cpu, const struct vmm_regs *r);
	int (*get_fpregs)(struct vmm_cpu *cpu, struct vmm_fpregs *f);

	/*
	 * Tell the backend the interrupt controller's output (INTR) may have changed, so it
	 * re-checks before the next instruction. Called from inside port accesses and from
	 * the run loop. May be NULL if the backend checks at every stop anyway.
	 */
	void (*intr_changed)(struct vmm_cpu *cpu);

	/*
	 * Save the complete vCPU state (registers, MSRs, pending events, position) into a
	 * malloc'd blob; load restores it exactly. Memory is saved by the machine.
	 */
	int (*save)(struct vmm_cpu *cpu, void **blob, size_t *len);
	int (*load)(struct vmm_cpu *cpu, const void *blob, size_t len);

	/* Read guest memory at a virtual address through the guest's page tables. */
	int (*read_virt)(struct vmm_cpu *cpu, uint64_t va, void *buf, size_t len);
	/*
	 * Write guest memory at a virtual address through the guest's page tables, as a
	 * debugger does: every page must be mapped (else -VMM_EGUEST and nothing is
	 * written); write protection is not checked and accessed/dirty bits are left as
	 * they are. Code translated or decoded from the bytes written is dropped, so the
	 * guest runs what is there now. Called with the vCPU stopped. May be NULL.
	 */
	int (*write_virt)(struct vmm_cpu *cpu, uint64_t va, const void *buf, size_t len);

	/*
	 * Debugging (NULL where the backend cannot: callers say so). set_debug replaces the
	 * breakpoints and watchpoints (the arrays are copied). track() reports and restarts
	 * access tracking (struct vmm_track); the first call starts it.
	 */
	int (*set_debug)(struct vmm_cpu *cpu, const struct vmm_debug *d);
	int (*track)(struct vmm_cpu *cpu, struct vmm_track *t);
	/*
	 * Guest-virtual to guest-physical, as a supervisor read would see it. tables (NULL:
	 * not wanted) receives the guest-physical addresses of the page-table entries the
	 * walk read, up to VMM_WALK_MAX, and *ntables their number (0 with paging off).
	 */
	int (*translate)(struct vmm_cpu *cpu, uint64_t va, uint64_t *pa, uint64_t *tables,
			 unsigned *ntables);

	/*
	 * Landmarks, for positions coarser than instructions (kvm; emu counting exits,
	 * VMM_PORT_EXITS: otherwise its every stop is exactly its position and landmark()
	 * returns 0). landmark(): at a stop, 0 when the
	 * position alone names this point (right at an exit), or 1 with *lm filled when the
	 * guest may have run since (it names the point from now on: a second call at the
	 * same stop returns 0). seek_landmark(): from a stop at the landmark's position, run
	 * on to the point it names without leaving the position; returns an enum
	 * vmm_seek_result or a negative vmm_err. Both on the vCPU thread.
	 */
	int (*landmark)(struct vmm_cpu *cpu, struct vmm_landmark *lm);
	int (*seek_landmark)(struct vmm_cpu *cpu, const struct vmm_landmark *lm,
			     struct vmm_seek_stats *st);

	/*
	 * Portable logs (docs/kvm-backend.md, "Portable logs"): VMM_PORT_* flags, set once,
	 * before reset_pvh. Returns 0, or -VMM_EINVAL with a detail message for a flag this
	 * backend cannot honour. NULL: none can.
	 */
	int (*portable)(struct vmm_cpu *cpu, unsigned flags);

	/*
	 * Instruction positions where positions count something coarser (emu counting
	 * exits, VMM_PORT_EXITS): a debugger's timeline is in instructions whatever the log
	 * counts (docs/time-travel.md, "Exit-counted logs"). insns(): instructions retired
	 * since the entry. limit_insns(): from now on run() also returns VMM_EXIT_BUDGET,
	 * and seek_landmark() VMM_SEEK_INTERRUPTED, on arriving at instruction count `at`
	 * (UINT64_MAX: no such stop). Both NULL where the backend has no instruction count
	 * (kvm); on the vCPU thread.
	 */
	uint64_t (*insns)(struct vmm_cpu *cpu);
	void (*limit_insns)(struct vmm_cpu *cpu, uint64_t at);
};

/* Landmarks' regs field is vmm_arch_digest (kvm recordings that say digest=arch). */
#define VMM_PORT_DIGEST 1u
/* Positions count exits as kvm counts them, and landmarks are found (emu). */
#define VMM_PORT_EXITS 2u
/*
 * The log was recorded on emu (record --positions exits): the status flags an instruction
 * leaves undefined are emu's own there, so a landmark search tries no others (each pass
 * through the landmark's RIP costs one digest, not 64).
 */
#define VMM_PORT_OWN_FLAGS 4u

/*
 * The register digest both backends compute alike (vmm/digest.c, logfmt/FORMAT.md
 * "Landmarks"): architectural state only, plus the interrupt injected but not yet taken
 * (-1: none) and flags (1 STI/MOV SS shadow, 2 NMI, 4 exception on its way in).
 */
uint64_t vmm_arch_digest(const struct vmm_regs *r, const struct vmm_fpregs *f, int32_t injected,
			 uint8_t flags);

/*
 * A landmark's gprs field (logfmt/FORMAT.md): the digest of 18 values, RAX RBX RCX RDX RSI
 * RDI RBP RSP R8..R15 RIP RFLAGS, as little-endian u64s. Each backend fills the array from
 * its own register struct.
 */
uint64_t vmm_gprs_digest(const uint64_t v[18]);

/*
 * The status flags (CF PF AF ZF SF OF). Instructions leave some undefined (IMUL: SF ZF AF
 * PF; shifts, BSF...), and the host CPU under kvm and TCG under emu fill them
 * differently, so emu, replaying a kvm log, takes the recording's values where a
 * landmark or state hash names them (docs/kvm-backend.md, "Portable logs").
 * vmm_status_flags gives rflags with the status flags set to combination k (0..63).
 */
#define VMM_RFLAGS_STATUS 0x8d5ull
uint64_t vmm_status_flags(uint64_t rflags, unsigned k);

#define VMM_WALK_MAX 5

extern const struct vmm_cpu_ops emu_cpu_ops;
extern const struct vmm_cpu_ops kvm_cpu_ops;

#endif
