/*
 * x86deliver.c: exception and interrupt delivery through the guest IDT (x86deliver.h),
 * shared by the emu backend, which delivers every event itself, and the kvm backend,
 * which performs INT n, INT3 and INTO where the host's KVM cannot (docs/kvm-backend.md).
 *
 * It follows the SDM's pseudocode for INT n and interrupt delivery (vol. 2, "INT n";
 * vol. 3, chapter 6) in protected and IA-32e mode: the checks in their order, the error
 * codes (with EXT set for events the program did not ask for), the stack frame and the
 * double/triple fault table. It knows nothing of either backend: guest memory comes
 * through struct vmm_xd_ops, registers through struct vmm_xd_state.
 */
#include "vmm/x86deliver.h"

#include <string.h>

#define RFLAGS_TF (1ull << 8)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_NT (1ull << 14)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_VM (1ull << 17)

/* struct vmm_seg attr bits (the descriptor's access byte, then AVL, L, D/B, G). */
#define ATTR_TYPE 0xfu
#define ATTR_S (1u << 4)
#define ATTR_DPL(a) (((a) >> 5) & 3u)
#define ATTR_P (1u << 7)
#define ATTR_L (1u << 13)
#define ATTR_DB (1u << 14)
#define ATTR_UNUSABLE (1u << 16)

bool vmm_xd_has_error_code(int v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
}

static bool contributory(int v)
{
	return v == 0 || (v >= 10 && v <= 13);
}

struct gate {
	uint64_t offset;
	uint16_t sel;
	uint8_t type, dpl, ist;
	bool present;
};

static int read_gate(const struct vmm_xd_ops *ops, void *ctx, const struct vmm_xd_state *s,
		     int vec, struct gate *g)
{
	unsigned esz = s->lm ? 16 : 8;
	if ((uint64_t)vec * esz + esz - 1 > s->idt.limit)
		return -1;
	uint8_t d[16];
	if (ops->read(ctx, s->idt.base + (uint64_t)vec * esz, d, esz) < 0)
		return -1;
	uint32_t lo, hi, hi2 = 0;
	memcpy(&lo, d, 4);
	memcpy(&hi, d + 4, 4);
	if (s->lm)
		memcpy(&hi2, d + 8, 4);
	g->offset = (lo & 0xffff) | (hi & 0xffff0000u) | ((uint64_t)hi2 << 32);
	g->sel = (uint16_t)(lo >> 16);
	g->type = (hi >> 8) & 0xf;
	g->dpl = (hi >> 13) & 3;
	g->present = (hi >> 15) & 1;
	g->ist = s->lm ? (hi & 7) : 0;
	return 0;
}

int vmm_xd_read_seg(const struct vmm_xd_ops *ops, void *ctx, const struct vmm_dtable *gdt,
		    uint16_t sel, struct vmm_seg *out)
{
	if ((sel & ~3u) == 0 || (sel & 4) || (uint32_t)(sel & ~7u) + 7 > gdt->limit)
		return -1;
	uint64_t d = 0;
	if (ops->read(ctx, gdt->base + (sel & ~7u), &d, 8) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	out->sel = sel;
	out->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	out->limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16));
	if ((d >> 55) & 1)
		out->limit = (out->limit << 12) | 0xfff;
	out->attr = (uint32_t)((d >> 40) & 0xff) | (uint32_t)(((d >> 52) & 0xf) << 12);
	return 0;
}

static bool canonical48(uint64_t va)
{
	uint64_t top = va >> 47;
	return top == 0 || top == (UINT64_MAX >> 47);
}

/* A stack pointer from the 64-bit TSS at byte offset off (RSPn at 4 + 8n, ISTn at 0x1c + 8n). */
static int tss64_rsp(const struct vmm_xd_ops *ops, void *ctx, const struct vmm_xd_state *s,
		     uint64_t off, uint64_t *rsp)
{
	if (off + 7 > s->tr.limit)
		return -1;
	return ops->read(ctx, s->tr.base + off, rsp, 8);
}

int vmm_xd_deliver_once(const struct vmm_xd_ops *ops, void *ctx, struct vmm_xd_state *s,
			const struct vmm_xd_event *ev, uint32_t *ferr, uint64_t *fault_va)
{
	int vec = ev->vector;
	uint32_t ext = ev->soft ? 0 : 1;
	uint32_t idt_err = (uint32_t)vec * 8 + 2 + ext; /* IDT flag set: names the gate */
	struct gate g;
	if (read_gate(ops, ctx, s, vec, &g) < 0) {
		*ferr = idt_err;
		return VMM_XD_GP;
	}
	/* Interrupt (x110) and trap (x111) gates; task gates are not supported. In IA-32e
	 * mode only the 64-bit types (1110, 1111) exist. */
	bool intgate = (g.type & 7) == 6, trapgate = (g.type & 7) == 7;
	if ((!intgate && !trapgate) || (s->lm && !(g.type & 8))) {
		*ferr = idt_err;
		return VMM_XD_GP;
	}
	int cpl = s->cs.sel & 3;
	if (ev->soft && g.dpl < cpl) {
		*ferr = (uint32_t)vec * 8 + 2; /* a software interrupt: EXT clear */
		return VMM_XD_GP;
	}
	if (!g.present) {
		*ferr = idt_err;
		return VMM_XD_NP;
	}

	/* The target code segment. */
	uint32_t sel_err = (g.sel & 0xfffcu) | ext;
	struct vmm_seg cs;
	if ((g.sel & ~3u) == 0) {
		*ferr = ext;
		return VMM_XD_GP;
	}
	if (vmm_xd_read_seg(ops, ctx, &s->gdt, g.sel, &cs) < 0 || !(cs.attr & ATTR_S) ||
	    !(cs.attr & 8) || (int)ATTR_DPL(cs.attr) > cpl) {
		*ferr = sel_err;
		return VMM_XD_GP;
	}
	if (!(cs.attr & ATTR_P)) {
		*ferr = sel_err;
		return VMM_XD_NP;
	}
	if (s->lm && (!(cs.attr & ATTR_L) || (cs.attr & ATTR_DB))) {
		*ferr = sel_err;
		return VMM_XD_GP;
	}
	bool conforming = cs.attr & 4;
	int newcpl = conforming ? cpl : (int)ATTR_DPL(cs.attr);
	cs.sel = (uint16_t)((g.sel & ~3u) | (unsigned)newcpl);

	uint64_t rflags = s->rflags;
	uint32_t pferr = 0;
	uint64_t fva = 0;
	struct vmm_seg ss = s->ss;
	uint64_t nrsp;
	if (s->lm) {
		/* IST first, then a privilege change (rsp0-2), else the current stack; the
		 * frame is aligned to 16 bytes in every case. */
		nrsp = s->rsp;
		if (g.ist || newcpl < cpl) {
			uint64_t off = g.ist ? 0x24 + 8 * (uint64_t)(g.ist - 1) : 4 + 8 * (uint64_t)newcpl;
			if (tss64_rsp(ops, ctx, s, off, &nrsp) < 0) {
				*ferr = (s->tr.sel & 0xfffcu) | ext;
				return VMM_XD_TS;
			}
		}
		nrsp &= ~0xfull;
		uint64_t frame[6];
		int n = 0;
		if (ev->has_err)
			frame[n++] = ev->err;
		frame[n++] = ev->ret_rip;
		frame[n++] = s->cs.sel;
		frame[n++] = rflags;
		frame[n++] = s->rsp;
		frame[n++] = s->ss.sel;
		uint64_t base = nrsp - (uint64_t)n * 8;
		if (!canonical48(base) || !canonical48(nrsp - 1)) {
			*ferr = ext;
			return VMM_XD_SS;
		}
		if (ops->write(ctx, base, frame, (size_t)n * 8, newcpl, &pferr, &fva)) {
			*ferr = pferr;
			*fault_va = fva;
			return VMM_XD_PF;
		}
		nrsp = base;
		if (newcpl != cpl) {
			/* A privilege change in IA-32e mode loads SS with a null selector whose
			 * RPL is the new CPL. */
			memset(&ss, 0, sizeof(ss));
			ss.sel = (uint16_t)newcpl;
			ss.attr = ATTR_UNUSABLE | (uint32_t)newcpl << 5;
		}
	} else {
		uint32_t frame[6];
		int n = 0;
		if (ev->has_err)
			frame[n++] = ev->err;
		frame[n++] = (uint32_t)ev->ret_rip;
		frame[n++] = s->cs.sel;
		frame[n++] = (uint32_t)rflags;
		uint32_t esp = (uint32_t)s->rsp;
		if (newcpl < cpl) {
			/* The inner stack from the 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n. */
			uint32_t t[2];
			uint16_t tsel = s->tr.sel & 0xfffcu;
			if (8 + 8 * (uint64_t)newcpl + 3 > s->tr.limit ||
			    ops->read(ctx, s->tr.base + 4 + 8 * (uint64_t)newcpl, t, 8) < 0) {
				*ferr = tsel | ext;
				return VMM_XD_TS;
			}
			uint16_t nss = (uint16_t)t[1];
			if (vmm_xd_read_seg(ops, ctx, &s->gdt, nss, &ss) < 0 ||
			    (nss & 3) != (unsigned)newcpl || (int)ATTR_DPL(ss.attr) != newcpl ||
			    !(ss.attr & ATTR_S) || (ss.attr & 8) || !(ss.attr & 2)) {
				*ferr = (nss & 0xfffcu) | ext;
				return VMM_XD_TS;
			}
			if (!(ss.attr & ATTR_P)) {
				*ferr = (nss & 0xfffcu) | ext;
				return VMM_XD_SS;
			}
			frame[n++] = esp;
			frame[n++] = s->ss.sel;
			esp = t[0];
		}
		uint32_t nesp = esp - (uint32_t)n * 4;
		uint64_t base = (ss.base + nesp) & 0xffffffffull;
		if (ops->write(ctx, base, frame, (size_t)n * 4, newcpl, &pferr, &fva)) {
			*ferr = pferr;
			*fault_va = fva;
			return VMM_XD_PF;
		}
		nrsp = nesp;
	}
	rflags &= ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
	if (intgate)
		rflags &= ~RFLAGS_IF;
	s->cs = cs;
	s->ss = ss;
	s->rflags = rflags;
	s->rsp = nrsp;
	s->rip = s->lm ? g.offset : (g.offset & 0xffffffffull);
	return 0;
}

int vmm_xd_deliver(const struct vmm_xd_ops *ops, void *ctx, struct vmm_xd_state *s,
		   const struct vmm_xd_event *ev, int *shutdown_vec)
{
	struct vmm_xd_event e = *ev;
	for (int round = 0; round < 3; round++) {
		uint32_t ferr = 0;
		uint64_t fva = 0;
		if (e.vector == VMM_XD_PF)
			s->cr2 = e.cr2;
		int f = vmm_xd_deliver_once(ops, ctx, s, &e, &ferr, &fva);
		if (f == 0)
			return 0;
		/* A fault while delivering: combine as the SDM's table 6-5 says. */
		if (e.vector == VMM_XD_DF)
			break;
		bool df = (contributory(e.vector) && contributory(f)) ||
			  (e.vector == VMM_XD_PF && (contributory(f) || f == VMM_XD_PF));
		if (df) {
			e.vector = VMM_XD_DF;
			e.err = 0;
		} else {
			e.vector = f;
			e.err = ferr;
			e.cr2 = fva;
		}
		e.has_err = true;
		e.soft = false;
		e.ret_rip = e.fault_rip;
	}
	*shutdown_vec = ev->vector;
	return 1;
}
