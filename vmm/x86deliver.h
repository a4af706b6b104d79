/*
 * x86deliver.h: delivering an exception or interrupt through the guest's IDT, as the
 * processor does, for the backends that must do it themselves: emu (Unicorn delivers
 * nothing, docs/emu-backend.md) and kvm where the host's KVM cannot run INT n, INT3 or
 * INTO (software-nested KVM, docs/kvm-backend.md, "Instructions the host cannot run").
 *
 * The caller reads the few registers delivery needs into struct vmm_xd_state, calls
 * vmm_xd_deliver with a table of guest-memory accessors, and writes the state back. What
 * is covered: 64-bit and 32-bit interrupt and trap gates (16-bit gates are treated as
 * 32-bit ones), the gate and target code segment checks, the DPL check of software
 * interrupts, IST and privilege-change stack switches through the TSS, error codes,
 * RFLAGS (IF cleared by interrupt gates; TF, NT, RF and VM by both), CR2 for #PF, and the
 * double- and triple-fault rules of the SDM's table 6-5. Not covered: task gates (they
 * raise #GP), LDT selectors (#GP), virtual-8086 mode, real mode, segment limit checks on
 * the stack, and an IDT or TSS that is not mapped (it raises #GP or #TS, not #PF).
 */
#ifndef REWIND_VMM_X86DELIVER_H
#define REWIND_VMM_X86DELIVER_H

#include "vmm/cpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exception vectors delivery itself can raise. */
enum {
	VMM_XD_DF = 8,
	VMM_XD_TS = 10,
	VMM_XD_NP = 11,
	VMM_XD_SS = 12,
	VMM_XD_GP = 13,
	VMM_XD_PF = 14,
};

/*
 * The registers delivery reads and writes. cs and ss must hold the descriptor caches
 * (base, limit, attr as in struct vmm_seg); the CPL is cs.sel & 3. After delivery the
 * caller writes back rip, rsp, rflags, cs, ss and cr2 (the others do not change).
 */
struct vmm_xd_state {
	uint64_t rip, rsp, rflags, cr2;
	struct vmm_seg cs, ss, tr;
	struct vmm_dtable gdt, idt;
	bool lm; /* IA-32e mode (EFER.LMA): 64-bit gates and frames */
};

/* Guest memory, as the backend sees it. Both members must not be NULL. */
struct vmm_xd_ops {
	/*
	 * Read guest-virtual [va, va + len) as the processor reads descriptor tables and
	 * the TSS (supervisor, no accessed/dirty updates). 0, or negative when some byte
	 * is not mapped or not in RAM.
	 */
	int (*read)(void *ctx, uint64_t va, void *buf, size_t len);
	/*
	 * Write the interrupt frame at guest-virtual [va, va + len) as a write at privilege
	 * level cpl: permissions checked, accessed and dirty bits set, and the backend's
	 * record of written pages updated. 0, or VMM_XD_PF with *pferr (the #PF error code)
	 * and *fault_va (the address for CR2) when a page refuses it; then nothing needs to
	 * have been written.
	 */
	int (*write)(void *ctx, uint64_t va, const void *buf, size_t len, int cpl,
		     uint32_t *pferr, uint64_t *fault_va);
};

/* One event to deliver. */
struct vmm_xd_event {
	int vector;
	bool has_err;  /* push err (an exception with an error code) */
	uint32_t err;
	bool soft;     /* INT n, INT3, INTO: gate DPL checked against CPL; EXT = 0 */
	uint64_t ret_rip;   /* the RIP the frame returns to */
	uint64_t fault_rip; /* where a fault raised by delivering it points (the instruction) */
	uint64_t cr2;       /* for #PF: the address CR2 receives */
};

/* Does exception vector v push an error code? */
bool vmm_xd_has_error_code(int v);

/*
 * Deliver ev through the IDT, with the double- and triple-fault rules: a fault while
 * delivering is combined with the event (contributory faults and #PF make #DF; #DF that
 * faults shuts down) and the result delivered instead. Returns 0 with *s updated, or 1
 * when the processor shuts down (triple fault), with *shutdown_vec = ev->vector and *s
 * as far as delivery got (CR2 may have changed).
 */
int vmm_xd_deliver(const struct vmm_xd_ops *ops, void *ctx, struct vmm_xd_state *s,
		   const struct vmm_xd_event *ev, int *shutdown_vec);

/*
 * One attempt, without the fault rules (what vmm_xd_deliver repeats): 0 with *s updated,
 * or the vector of the fault delivery raised (#GP, #NP, #SS, #TS, #PF) with *ferr its
 * error code and, for #PF, *fault_va; *s is then unchanged.
 */
int vmm_xd_deliver_once(const struct vmm_xd_ops *ops, void *ctx, struct vmm_xd_state *s,
			const struct vmm_xd_event *ev, uint32_t *ferr, uint64_t *fault_va);

/*
 * The descriptor at selector sel in the GDT (gdt) as a struct vmm_seg (base, limit with
 * granularity applied, attr). Returns 0, or -1 for a null selector, an LDT selector, one
 * beyond the limit, or a table that cannot be read.
 */
int vmm_xd_read_seg(const struct vmm_xd_ops *ops, void *ctx, const struct vmm_dtable *gdt,
		    uint16_t sel, struct vmm_seg *out);

#endif
