/*
 * emu.c: the software vCPU backend, on Unicorn 2.1.1 (QEMU's TCG as a library).
 *
 * Unicorn executes guest code; this file supplies what it lacks for a whole machine
 * (docs/architecture.md, docs/emu-backend.md):
 *  - exact instruction count: a block hook charges each translated block with its
 *    instruction count, decoded once with x86dec and cached (and checked again after a
 *    write to its code page: struct emu_block); a stop inside a block is
 *    corrected to the exact instruction;
 *  - exact stops: Unicorn's own `count` is not honoured by blocks already translated, so
 *    a stop at count N is a code hook placed on the instruction at N (retranslating
 *    that block), which stops before the instruction executes;
 *  - "special" instructions are emulated here at an exact position, through code hooks
 *    placed on each such site the first time its block is seen: port I/O (whose
 *    Unicorn hook neither knows RIP nor can stop after the instruction), RDTSC/RDTSCP
 *    and RDMSR/WRMSR of the TSC (virtual TSC from icount), HLT;
 *  - paging with exact #PF error codes: the TLB is filled by our own page walker;
 *  - exception and interrupt delivery through the guest IDT (vmm/x86deliver.c, shared
 *    with kvm), with the STI/MOV SS shadow and double/triple fault rules;
 *  - user mode: SYSCALL (Unicorn replaces it by its hooks) is performed here at an exact
 *    position (do_syscall); privilege changes load CS, SS and the CPL through a saved
 *    context (load_segs), since Unicorn's register writes set only the selectors; the
 *    special instructions check the privilege they need (site_allowed);
 *  - CPUID: the table of vmm/cpuid.c, shared with kvm.
 * Left out: SYSENTER/SYSEXIT (the CPUID vendor is AMD, whose long mode has none), task
 * gates, virtual-8086 mode, real mode.
 */
#include "cpu.h"
#include "cpuid.h"
#include "loader.h"
#include "machine.h"
#include "x86deliver.h"
#include "x86dec.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unicorn/unicorn.h>
#include <endian.h>
#include <xxhash.h>

#define EMU_BLOCK_BUCKETS (1u << 16)
#define EMU_SITE_BUCKETS (1u << 12)
#define EMU_FRONT 1024u
#define FRONT_IDX(a) ((unsigned)(((a) ^ ((a) >> 10)) & (EMU_FRONT - 1)))
#define PG_NONE UINT32_MAX
#define PG_HOT_WRITES 64 /* see struct emu_block */
/* uc_emu_start's `until` is UINT64_MAX; each run ends with a fetch fill of the page of
 * until - 1 (Unicorn 2.1.1 drops translations there). */
#define EXIT_PAGE (UINT64_MAX & ~0xfffull)

/* Unicorn's translation (code) buffer: docs/emu-backend.md, "The translation buffer".
 * REWIND_TCG_BUFFER (a test knob) sets another size, within Unicorn's own limits. */
#define EMU_TCG_BUFFER (32ull << 20)
#define EMU_TCG_BUFFER_MIN (1ull << 20)
#define EMU_TCG_BUFFER_MAX (1ull << 30)

/* Page states for write tracking (pg_state). */
enum { PG_PLAIN, PG_CODE, PG_HOT };

#define MSR_TSC 0x10
#define MSR_EFER 0xc0000080u
#define MSR_TSC_AUX 0xc0000103u

/* CR0, CR4, EFER and RFLAGS bits used here. */
#define CR0_PE (1ull << 0)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_TSD (1ull << 2)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_DF (1ull << 10)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

/* QEMU's hidden flags (env->hflags) and descriptor cache flags that load_segs sets. */
#define HF_CS32 (1u << 4)
#define HF_SS32 (1u << 5)
#define HF_ADDSEG (1u << 6)
#define HF_LMA (1u << 14)
#define HF_CS64 (1u << 15)
#define DESCF_L (1u << 21)
#define DESCF_B (1u << 22)
#define SEGC_SIZE 24 /* a segment cache: u32 selector, u64 base, u32 limit, u32 flags */
#define SEGC_BASE 8

#define PF_P (1u << 0)
#define PF_W (1u << 1)
#define PF_U (1u << 2)
#define PF_I (1u << 4)


/*
 * A translated block as the block hook sees it, decoded once. Code can change under the
 * same (address, size) (Linux patches alternatives, jump labels and ftrace sites in
 * place, and replaces e.g. a 5-byte call by a 5-byte NOP or by several instructions):
 * QEMU then retranslates the block, but the block hook only sees (address, size), so
 * each cached decode keeps a copy of the bytes it was decoded from and the guest pages
 * they lie on (pg[0], and pg[1] for a block that crosses a page).
 *
 * Comparing the bytes at every execution costs ~40% on a CPU-bound guest, so writes to
 * code pages are tracked instead (page_protect): a page holding a cached decode is
 * "protected", i.e. our TLB fills grant no write permission to it, so the first write
 * to it comes through tlb_fill_hook, which unprotects the page and marks the decodes on
 * it (listed per page) dirty; so do the VMM's own writes to guest RAM. A dirty decode is
 * compared with RAM at its next execution: decoded again if the code differs, else
 * re-armed (block_fresh). A page trapped more than PG_HOT_WRITES times (code and data
 * sharing a page) stays unprotected and its decodes are compared at every execution.
 */
struct emu_block {
	struct emu_block *next;
	uint64_t addr;
	uint32_t size;
	uint16_t n;        /* instructions in the block */
	uint8_t bits;      /* code size it was decoded for */
	uint8_t last_kind; /* enum x86_kind of the last instruction */
	uint8_t has_special;
	uint8_t user;      /* decoded at CPL 3: checked against the current mapping */
	uint16_t len0;     /* bytes of the block in its first page */
	uint8_t dirty;     /* its pages may have been written since it was checked */
	uint64_t seen;     /* the tracking interval it last ran in (c->epoch) */
	uint32_t pg[2];    /* guest page numbers of the code; PG_NONE: none / not in RAM */
	struct emu_block *pnext[2]; /* next block in the list of page pg[i] */
	uint8_t *bytes;    /* copy of the code, after offs[] */
	uint16_t offs[];   /* offs[i]: byte offset of instruction i; offs[n] == size */
};

/* An instruction this file emulates itself, with the code hook placed on it. */
struct emu_site {
	struct emu_site *next;
	uint64_t addr;
	struct x86_insn insn;
	uint8_t bits;
	uc_hook hook;
};

enum emu_stop {
	ES_NONE = 0,
	ES_KICK,        /* kick flag seen in a block hook */
	ES_BUDGET,      /* the target position was reached */
	ES_RETRANSLATE, /* hooks were placed on a block: restart at the same RIP */
	ES_HLT,         /* HLT with nothing deliverable */
	ES_IO_STOP,     /* a port access asked the machine to stop */
	ES_IO_INTR,     /* a port access made an interrupt deliverable */
	ES_EXC,         /* an exception (intr hook or refused TLB fill) */
	ES_IF_OPEN,     /* IF became 1 with an interrupt pending */
	ES_ERROR,       /* unrecoverable (bad site emulation) */
	ES_SYSCALL,     /* before a SYSCALL: emu_run performs it */
	ES_XEXIT,       /* exit counting (xmode): a port access was counted as an exit */
};

struct vmm_cpu {
	uc_engine *uc;
	struct vmm_machine *m;
	uint8_t *ram;
	uint64_t ram_size;

	/* Exact position: instructions retired before the current block started, plus
	 * the block's count once charged. */
	uint64_t icount;
	struct emu_block *cur; /* block being executed, charged in full; NULL if closed */
	/*
	 * The next block hook takes the slow path (see block_hook). Set before every run and
	 * by every other hook, cleared by the slow path when nothing rare is pending.
	 */
	bool slow;
	uint64_t cur_start;    /* icount when cur started */
	uint8_t prev_kind;     /* last kind of the block fully executed before this stop */
	uint64_t target;       /* stop when icount reaches this; UINT64_MAX: never */
	uc_hook budget_hook;
	uint64_t budget_addr;  /* address the budget hook is on, 0 if none */

	enum emu_stop stop;
	bool exc_stop;  /* Unicorn stopped on its own for an exception we know */
	atomic_int kick;
	/*
	 * Position of the last interrupt delivery. No kick stop is taken there: events that a
	 * kick lets in must land before or after the INTA at a position, never in between,
	 * or replay (which delivers every event at a position before running) would see
	 * them in another order. Budget stops are not affected: replay never targets a
	 * position twice.
	 */
	uint64_t intr_pos;
	int bits;              /* current code size: 16, 32, 64 */
	bool bits_dirty;       /* CS was loaded: re-derive bits at the next block */
	bool watch_if;         /* an interrupt waits for IF: check IF at each block */
	uint64_t stop_rip;     /* where a stop in the block hook left the guest */
	bool stop_rip_valid;

	/* Exception waiting to be delivered. */
	int exc_vector;
	bool exc_soft;     /* INT n / INT3 / INTO: return after the instruction */
	uint8_t exc_len;   /* its length */
	bool exc_has_err;
	uint32_t exc_err;
	bool pf_pending;   /* our TLB fill refused an access */
	bool gp_pending;   /* ... because the address was not canonical */
	bool self_halt;    /* Unicorn ended the run by itself (see tlb_fill_hook) */
	uint64_t pf_addr;
	uint32_t pf_err;
	bool pf_fetch;     /* ... for an instruction fetch */

	uint64_t sys_next;     /* the RIP after the SYSCALL an ES_SYSCALL stop is on */
	uint64_t tsc_offset;   /* guest TSC = icount + tsc_offset */
	uint64_t tsc_aux;
	bool efer_lme_shadow;  /* the guest's view of EFER.LME before paging */

	struct calib { int err_off, oldexc_off, data_off, segs_off, hflags_off; } calib; /* in a context */
	uc_context *ctx;

	struct emu_block *blocks[EMU_BLOCK_BUCKETS];
	/* A small direct-mapped front for blocks[]: the hash table is too large to stay in
	 * cache, and the block hook looks a block up on every execution. */
	struct emu_block *front[EMU_FRONT];
	struct emu_site *sites[EMU_SITE_BUCKETS];
	uint64_t nblocks, nsites;
	uc_hook hooks[6];

	/* Write tracking of code pages, per guest page (see struct emu_block). */
	uint32_t npages;
	uint8_t *pg_state;    /* PG_PLAIN, PG_CODE (protected) or PG_HOT */
	uint8_t *pg_wr;       /* a TLB entry may allow writes to it (since the last flush) */
	uint16_t *pg_writes;  /* trapped writes, towards PG_HOT */
	struct emu_block **pg_blocks; /* the cached decodes on each page */

	/* Debugging (emu_set_debug): breakpoints and watchpoints, guest-virtual. */
	uint64_t *bp;
	unsigned nbp;
	struct vmm_watch *wp;
	unsigned nwp;
	vmm_pos_t pass_pos;     /* no debug stop for the instruction at this position */
	uint64_t bp_pos;        /* the budget stop at this position is a breakpoint */
	bool watch_open;        /* this pass runs the instruction at pass_pos: let it through */
	bool watch_opened;      /* ... and a watched page got a TLB entry: flush after */
	bool watch_pending;     /* a fill for a watched page was refused */
	uint64_t watch_va;
	enum vmm_access watch_acc;

	/* Access tracking (emu_track): pages written, code pages fetched (a set of va>>12,
	 * open addressing, 0 = empty slot, keys stored + 1). */
	bool tracking;
	uint8_t *pg_dirt;
	uint64_t epoch;              /* the tracking interval: blocks run in it are listed */
	struct vmm_code_range *ran;  /* once each */
	size_t nran, capran;

	/*
	 * Exit-counted positions (VMM_PORT_EXITS, "exit counting" below): a kvm recording
	 * replayed here. The position is xcount, the exits kvm would have counted; icount
	 * goes on counting instructions.
	 */
	bool xmode;
	bool arch_digest;      /* VMM_PORT_DIGEST */
	bool own_flags;        /* VMM_PORT_OWN_FLAGS: no other status flags are tried */
	bool xseek;            /* a landmark search: any exit ends the run */
	uint64_t xcount;       /* exits as kvm counts them */
	uint64_t xlimit;       /* run() returns BUDGET when xcount reaches it */
	uint64_t xseek_from;   /* xcount when the search began */
	bool want_window;      /* an interrupt waits for a window (kvm's request) */
	int inj_vec;           /* acknowledged, delivered at the next entry; -1: none */
	const char *xlast;     /* the last exit counted, in words */
	uint8_t *lm_dirt;      /* pages written since the last landmark (xmode) */
	/*
	 * The guest got to this boundary by running, and kvm's step has not looked at it yet
	 * (x_entry counts a window that opened here): survives a debug stop, so that resuming
	 * from one goes on exactly as a run that did not stop there.
	 */
	bool xran;
	/* The position alone names this point (right at an exit counted, or at a landmark
	 * taken or found): a recording needs no landmark here (emu_landmark). */
	bool xexact;
	/* run() and seek_landmark() stop on arriving at this instruction count (a debugger's
	 * instruction positions over exit-counted ones: emu_limit_insns); UINT64_MAX: none. */
	uint64_t ilimit;
	/* A landmark search (emu_seek_landmark): its code hook at the landmark's RIP stops
	 * only where the general registers match (seek_hit), so a pass through a loop that
	 * is not the point costs a hook call, not a stop. */
	const struct vmm_landmark *seek_lm;
	uc_hook seek_hook;
	bool seek_hit;
};

static int uc_fail(uc_err e, const char *what)
{
	return vmm_fail(VMM_EBACKEND, "unicorn: %s: %s", what, uc_strerror(e));
}

static uint64_t rreg(struct vmm_cpu *c, int reg)
{
	uint64_t v = 0;
	uc_reg_read(c->uc, reg, &v);
	return v;
}

static void wreg(struct vmm_cpu *c, int reg, uint64_t v)
{
	uc_reg_write(c->uc, reg, &v);
}

static uint64_t rmsr(struct vmm_cpu *c, uint32_t msr)
{
	uc_x86_msr m = {.rid = msr};
	uc_reg_read(c->uc, UC_X86_REG_MSR, &m);
	return m.value;
}

/* ---- guest memory and paging ------------------------------------------------------ */

static bool long_mode(struct vmm_cpu *c)
{
	/* Unicorn keeps EFER.LMA set from our 64-bit start; the guest's own view is PG+LME. */
	return (rreg(c, UC_X86_REG_CR0) & CR0_PG) && (rmsr(c, MSR_EFER) & EFER_LME) &&
	       c->efer_lme_shadow;
}

static uint8_t *ram_ptr(struct vmm_cpu *c, uint64_t pa, uint64_t len)
{
	if (pa >= c->ram_size || len > c->ram_size - pa)
		return NULL;
	return c->ram + pa;
}

static bool pte_read(struct vmm_cpu *c, uint64_t pa, int size, uint64_t *v)
{
	uint8_t *p = ram_ptr(c, pa, size);
	if (!p)
		return false;
	*v = 0;
	memcpy(v, p, size);
	return true;
}

static void pte_set(struct vmm_cpu *c, uint64_t pa, int size, uint64_t bits)
{
	uint8_t *p = ram_ptr(c, pa, size);
	uint64_t v = 0;
	if (!p)
		return;
	memcpy(&v, p, size);
	if ((v & bits) != bits) {
		v |= bits;
		memcpy(p, &v, size);
		if (c->tracking)
			c->pg_dirt[pa >> 12] = 1;
		if (c->lm_dirt)
			c->lm_dirt[pa >> 12] = 1;
	}
}

enum { ACC_READ = 0, ACC_WRITE = 1, ACC_FETCH = 2 };

/* Page pg was (or is about to be) written: its cached decodes must be checked. */
static void page_dirty(struct vmm_cpu *c, uint32_t pg)
{
	for (struct emu_block *b = c->pg_blocks[pg]; b; b = b->pnext[b->pg[1] == pg]) {
		b->dirty = 1;
		if (c->front[FRONT_IDX(b->addr)] == b)
			c->front[FRONT_IDX(b->addr)] = NULL; /* the front holds clean decodes only */
	}
}

/* Every cached decode must be checked (the VMM wrote RAM behind the TLB). */
static void all_dirty(struct vmm_cpu *c)
{
	for (unsigned i = 0; i < EMU_BLOCK_BUCKETS; i++)
		for (struct emu_block *b = c->blocks[i]; b; b = b->next)
			b->dirty = 1;
	memset(c->front, 0, sizeof(c->front));
}

/*
 * Translate va for an access; sets accessed/dirty bits when set_ad. On success *pa and
 * *perm_write / *perm_exec (what a TLB entry may allow). On failure returns false with
 * the #PF error code.
 */
static bool walk_path(struct vmm_cpu *c, uint64_t va, int acc, bool user, bool set_ad,
		      uint64_t *pa, bool *perm_write, bool *perm_exec, uint32_t *pferr,
		      uint64_t *path, unsigned *npath)
{
	uint64_t cr0 = rreg(c, UC_X86_REG_CR0);
	uint64_t cr4 = rreg(c, UC_X86_REG_CR4);
	uint64_t efer = rmsr(c, MSR_EFER);
	bool nxe = efer & EFER_NXE;
	uint32_t ecode = (acc == ACC_WRITE ? PF_W : 0) | (user ? PF_U : 0) |
			 (acc == ACC_FETCH && nxe ? PF_I : 0);

	if (!(cr0 & CR0_PG)) {
		*pa = va & 0xffffffffull;
		*perm_write = *perm_exec = true;
		return true;
	}
	uint64_t cr3 = rreg(c, UC_X86_REG_CR3);
	bool rw = true, us = true, nx = false;
	uint64_t entry_pa[5];
	int entry_size = 8, levels, nent = 0;
	uint64_t table, e = 0, page_mask;

	if (long_mode(c)) {
		levels = 4;
		table = cr3 & PTE_ADDR;
	} else if (cr4 & CR4_PAE) {
		uint64_t pdpte;
		if (!pte_read(c, (cr3 & 0xffffffe0ull) + ((va >> 30) & 3) * 8, 8, &pdpte) ||
		    !(pdpte & PTE_P))
			goto fault_np;
		if (path)
			path[(*npath)++] = (cr3 & 0xffffffe0ull) + ((va >> 30) & 3) * 8;
		levels = 2;
		table = pdpte & PTE_ADDR;
	} else {
		levels = 2;
		entry_size = 4;
		table = cr3 & 0xfffff000ull;
	}

	for (int lvl = levels; lvl >= 1; lvl--) {
		int shift = entry_size == 4 ? 12 + 10 * (lvl - 1) : 12 + 9 * (lvl - 1);
		uint64_t idx = (va >> shift) & (entry_size == 4 ? 0x3ff : 0x1ff);
		uint64_t epa = table + idx * entry_size;
		if (!pte_read(c, epa, entry_size, &e) || !(e & PTE_P))
			goto fault_np;
		entry_pa[nent++] = epa;
		rw = rw && (e & PTE_RW);
		us = us && (e & PTE_US);
		if (nxe && entry_size == 8 && (e & PTE_NX))
			nx = true;
		bool large = (e & PTE_PS) && lvl > 1 &&
			     (entry_size == 8 ? lvl <= 3 : (cr4 & CR4_PSE) != 0);
		if (lvl == 1 || large) {
			page_mask = (1ull << shift) - 1;
			uint64_t base;
			if (entry_size == 4 && large)
				base = (e & 0xffc00000ull) | ((e & 0x1fe000ull) << 19);
			else
				base = e & PTE_ADDR & ~page_mask;
			/* Access rights. */
			if (user && !us)
				goto fault_prot;
			if (acc == ACC_WRITE && !rw && (user || (cr0 & CR0_WP)))
				goto fault_prot;
			if (acc == ACC_FETCH && nx)
				goto fault_prot;
			if (set_ad) {
				for (int i = 0; i < nent - 1; i++)
					pte_set(c, entry_pa[i], entry_size, PTE_A);
				pte_set(c, epa, entry_size,
					PTE_A | (acc == ACC_WRITE ? PTE_D : 0));
				if (acc == ACC_WRITE)
					e |= PTE_D;
			}
			*pa = base | (va & page_mask);
			for (int i = 0; path && i < nent; i++)
				path[(*npath)++] = entry_pa[i];
			bool writable = rw || (!user && !(cr0 & CR0_WP));
			/* Allow writes in the TLB only once D is set, so the first write
			 * comes back here to set it. */
			*perm_write = writable && (e & PTE_D);
			*perm_exec = !nx;
			return true;
		}
		table = e & PTE_ADDR;
	}
fault_np:
	*pferr = ecode;
	return false;
fault_prot:
	*pferr = ecode | PF_P;
	return false;
}

static bool walk(struct vmm_cpu *c, uint64_t va, int acc, bool user, bool set_ad, uint64_t *pa,
		 bool *perm_write, bool *perm_exec, uint32_t *pferr)
{
	return walk_path(c, va, acc, user, set_ad, pa, perm_write, perm_exec, pferr, NULL, NULL);
}

static bool cpl3(struct vmm_cpu *c)
{
	return (rreg(c, UC_X86_REG_CS) & 3) == 3;
}

/* Which accesses to the guest-virtual page of va are watched (0: none). */
static enum vmm_access watched_access(struct vmm_cpu *c, uint64_t va)
{
	unsigned a = 0;
	uint64_t page = va & ~0xfffull;
	for (unsigned i = 0; i < c->nwp; i++) {
		uint64_t first = c->wp[i].addr & ~0xfffull;
		uint64_t last = (c->wp[i].addr + c->wp[i].len - 1) & ~0xfffull;
		if (page >= first && page <= last)
			a |= c->wp[i].access;
	}
	return (enum vmm_access)a;
}

/* Remember that block b ran in this tracking interval (once per interval). */
static void ran_add(struct vmm_cpu *c, struct emu_block *b)
{
	b->seen = c->epoch;
	if (c->nran == c->capran) {
		size_t cap = c->capran ? 2 * c->capran : 256;
		struct vmm_code_range *r = realloc(c->ran, cap * sizeof(*r));
		if (!r) {
			c->tracking = false; /* the next track() reports the failure */
			return;
		}
		c->ran = r;
		c->capran = cap;
	}
	c->ran[c->nran++] = (struct vmm_code_range){b->addr, b->addr + b->size};
}

static bool tlb_fill_hook(uc_engine *uc, uint64_t va, uc_mem_type type, uc_tlb_entry *res,
			  void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	int acc = type == UC_MEM_WRITE ? ACC_WRITE : (type == UC_MEM_FETCH ? ACC_FETCH : ACC_READ);
	uint64_t pa;
	bool w, x;
	uint32_t err;
	/* After a stop Unicorn probes the page of `until`: not a guest access. Only the
	 * first refusal of a run is the guest's. */
	bool record = c->stop == ES_NONE && !c->exc_stop && !c->pf_pending && !c->gp_pending &&
		      !c->watch_pending;
	if (acc == ACC_FETCH && va == EXIT_PAGE && rreg(c, UC_X86_REG_RIP) < EXIT_PAGE - 0x1000) {
		/*
		 * The probe, as no guest fetch can be (a block is under a page long). Seen with
		 * nothing to record, the run ended without a stop of ours or a refused access:
		 * Unicorn ran a HLT itself, one that our decode did not see. Taken for the
		 * guest's, it was a #PF at this page (docs/emu-backend.md, "Code size").
		 */
		if (record)
			c->self_halt = true;
		return false;
	}
	if (long_mode(c) && (uint64_t)((int64_t)(va << 16) >> 16) != va) {
		/* Non-canonical: #GP(0), which our walker must raise since it replaced QEMU's. */
		if (record)
			c->gp_pending = true;
		return false;
	}
	if (!walk(c, va, acc, cpl3(c), true, &pa, &w, &x, &err)) {
		if (!record)
			return false;
		c->pf_pending = true;
		c->pf_fetch = acc == ACC_FETCH;
		c->pf_addr = va;
		c->pf_err = err;
		return false;
	}
	bool r = true;
	if (c->nwp && acc != ACC_FETCH) {
		enum vmm_access watched = watched_access(c, va);
		enum vmm_access now = acc == ACC_WRITE ? VMM_ACCESS_WRITE : VMM_ACCESS_READ;
		if ((watched & now) && !c->watch_open) {
			if (record) {
				c->watch_pending = true;
				c->watch_va = va;
				c->watch_acc = now;
			}
			return false;
		}
		if (watched & now)
			c->watch_opened = true;
		else if (watched) {
			/* The other kind of access must come back here. */
			r = !(watched & VMM_ACCESS_READ);
			w = w && !(watched & VMM_ACCESS_WRITE);
		}
	}
	uint64_t pg = pa >> 12;
	if (pg < c->npages) {
		if (c->tracking && w) {
			/* Write permission only for a write, or for a page already written in
			 * this interval: the first write of an interval comes back here. */
			if (acc == ACC_WRITE)
				c->pg_dirt[pg] = 1;
			else if (!c->pg_dirt[pg])
				w = false;
		}
		if (c->lm_dirt && w) {
			/* The same for the landmark page set (xmode). */
			if (acc == ACC_WRITE)
				c->lm_dirt[pg] = 1;
			else if (!c->lm_dirt[pg])
				w = false;
		}
		if (c->pg_state[pg] == PG_CODE) {
			if (acc == ACC_WRITE) {
				/* A write to code we decoded: let it through, remember it. */
				page_dirty(c, pg);
				c->pg_state[pg] = PG_PLAIN;
				if (c->pg_writes[pg] < PG_HOT_WRITES)
					c->pg_writes[pg]++;
			} else {
				w = false; /* so that a write comes back here */
			}
		}
		if (w)
			c->pg_wr[pg] = 1;
	}
	res->paddr = pa & ~0xfffull;
	res->perms = (r ? UC_PROT_READ : 0) | (w ? UC_PROT_WRITE : 0) | (x ? UC_PROT_EXEC : 0);
	return true;
}

/* Read guest-virtual memory as the supervisor would (no A/D updates). */
static int read_virt_raw(struct vmm_cpu *c, uint64_t va, void *buf, size_t len, bool fetch)
{
	uint8_t *out = buf;
	while (len) {
		uint64_t pa;
		bool w, x;
		uint32_t err;
		if (!walk(c, va, fetch ? ACC_FETCH : ACC_READ, false, false, &pa, &w, &x, &err))
			return -VMM_EGUEST;
		size_t chunk = 0x1000 - (va & 0xfff);
		if (chunk > len)
			chunk = len;
		uint8_t *p = ram_ptr(c, pa, chunk);
		if (!p)
			return -VMM_EGUEST;
		memcpy(out, p, chunk);
		out += chunk;
		va += chunk;
		len -= chunk;
	}
	return 0;
}

/* Write guest-virtual memory as an access at CPL 3 (user) or a supervisor one. */
static int write_virt_raw(struct vmm_cpu *c, uint64_t va, const void *buf, size_t len, bool user,
			  uint32_t *pferr, uint64_t *fault_va)
{
	const uint8_t *in = buf;
	while (len) {
		uint64_t pa;
		bool w, x;
		uint32_t err;
		if (!walk(c, va, ACC_WRITE, user, true, &pa, &w, &x, &err)) {
			*pferr = err;
			*fault_va = va;
			return -VMM_EGUEST;
		}
		size_t chunk = 0x1000 - (va & 0xfff);
		if (chunk > len)
			chunk = len;
		uint8_t *p = ram_ptr(c, pa, chunk);
		if (p)
			memcpy(p, in, chunk);
		if (p && c->tracking)
			c->pg_dirt[pa >> 12] = 1;
		if (p && c->lm_dirt)
			c->lm_dirt[pa >> 12] = 1;
		/* Unicorn caches translated code per page; a write through us must drop it,
		 * and so must our decodes of it. */
		uc_ctl_remove_cache(c->uc, va, va + chunk);
		if ((pa >> 12) < c->npages)
			page_dirty(c, (uint32_t)(pa >> 12));
		in += chunk;
		va += chunk;
		len -= chunk;
	}
	return 0;
}

/* ---- code size and blocks ----------------------------------------------------------- */

/*
 * Re-derive 16/32/64-bit code from the CS descriptor in the GDT. Only right after CS was
 * loaded (a far transfer, a delivery through the IDT): the CPU keeps the descriptor it
 * loaded, whatever the GDT says later. A kernel that loads its 64-bit GDT before setting
 * EFER.LME runs 32-bit code under a GDT whose entry for CS is a 64-bit descriptor until
 * its far jump; read there, it gave 16-bit code, and a HLT that the 16-bit decode did not
 * see ran in Unicorn itself (docs/emu-backend.md, "Code size").
 */
static void update_bits(struct vmm_cpu *c)
{
	c->bits_dirty = false;
	uint64_t sel = rreg(c, UC_X86_REG_CS);
	uc_x86_mmr gdtr = {0};
	uc_reg_read(c->uc, UC_X86_REG_GDTR, &gdtr);
	uint64_t desc = 0;
	if ((sel & ~7ull) + 7 > gdtr.limit ||
	    read_virt_raw(c, gdtr.base + (sel & ~7ull), &desc, 8, false) < 0)
		return; /* keep what we had */
	if (c->xmode && !(desc & (1ull << 40)) && c->icount > 0) {
		/*
		 * Replaying a kvm log: loading a descriptor sets its accessed bit (a processor
		 * and kvm do; Unicorn does so for data segments, not for CS). Not for the PVH
		 * trampoline's load (position 0), which kvm does not make: it sets the entry
		 * state directly. A descriptor the guest mapped read-only stays as it is. Only
		 * in exit counting: done always, it upset conform_user's SYSCALL (not traced).
		 */
		uint64_t a = desc | (1ull << 40);
		uint32_t pferr;
		uint64_t fva;
		if (write_virt_raw(c, gdtr.base + (sel & ~7ull) + 5, (uint8_t *)&a + 5, 1, false, &pferr,
				   &fva) == 0)
			desc = a;
	}
	bool l = (desc >> 53) & 1, d = (desc >> 54) & 1;
	int bits = long_mode(c) && l ? 64 : (d ? 32 : 16);
	if (bits != c->bits)
		memset(c->front, 0, sizeof(c->front)); /* it holds decodes of this size only */
	c->bits = bits;
}

static bool far_transfer(const uint8_t *code, size_t avail)
{
	/* Skip prefixes and REX. */
	size_t i = 0;
	while (i < avail && (code[i] == 0x66 || code[i] == 0x67 || code[i] == 0xF2 ||
			     code[i] == 0xF3 || code[i] == 0xF0 || (code[i] & 0xF0) == 0x40 ||
			     code[i] == 0x2E || code[i] == 0x3E || code[i] == 0x26 ||
			     code[i] == 0x36 || code[i] == 0x64 || code[i] == 0x65))
		i++;
	if (i >= avail)
		return false;
	uint8_t op = code[i];
	if (op == 0xEA || op == 0x9A || op == 0xCA || op == 0xCB || op == 0xCF)
		return true;
	if (op == 0xFF && i + 1 < avail) {
		int reg = (code[i + 1] >> 3) & 7;
		return reg == 3 || reg == 5;
	}
	if (op == 0x0F && i + 1 < avail)
		return code[i + 1] == 0x05 || code[i + 1] == 0x07 || code[i + 1] == 0x34 ||
		       code[i + 1] == 0x35;
	return false;
}

static unsigned block_hash(uint64_t addr, uint32_t size)
{
	uint64_t h = (addr ^ ((uint64_t)size << 40)) * 0x9E3779B97F4A7C15ull;
	return (unsigned)(h >> 48) & (EMU_BLOCK_BUCKETS - 1);
}

static unsigned site_hash(uint64_t addr)
{
	return (unsigned)((addr * 0x9E3779B97F4A7C15ull) >> 52) & (EMU_SITE_BUCKETS - 1);
}

/* The guest page the code at va (fetched by the supervisor) lies on, or PG_NONE. */
static uint32_t code_page(struct vmm_cpu *c, uint64_t va)
{
	uint64_t pa;
	bool w, x;
	uint32_t err;
	if (!walk(c, va, ACC_FETCH, false, false, &pa, &w, &x, &err) || (pa >> 12) >= c->npages)
		return PG_NONE;
	return (uint32_t)(pa >> 12);
}

/* Trap the next write to page pg (unless it is hot): it holds code we decoded. */
static void page_protect(struct vmm_cpu *c, uint32_t pg)
{
	if (pg == PG_NONE || c->pg_state[pg] != PG_PLAIN)
		return;
	if (c->pg_writes[pg] >= PG_HOT_WRITES) {
		c->pg_state[pg] = PG_HOT;
		return;
	}
	c->pg_state[pg] = PG_CODE;
	if (c->pg_wr[pg]) {
		/* A TLB entry may still allow writes: drop them all. */
		uc_ctl_flush_tlb(c->uc);
		memset(c->pg_wr, 0, c->npages);
	}
}

static struct emu_site *site_find(struct vmm_cpu *c, uint64_t addr)
{
	for (struct emu_site *s = c->sites[site_hash(addr)]; s; s = s->next)
		if (s->addr == addr)
			return s;
	return NULL;
}

static void site_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque);

/* A decode just checked against RAM: trap writes to its pages (not possible for hot
 * pages: then it stays dirty, checked at every execution). */
static void block_arm(struct vmm_cpu *c, struct emu_block *b)
{
	b->dirty = 0;
	for (int i = 0; i < 2; i++) {
		if (b->pg[i] == PG_NONE)
			continue;
		page_protect(c, b->pg[i]);
		if (c->pg_state[b->pg[i]] == PG_HOT)
			b->dirty = 1;
	}
}

/* Take b off the lists of its pages (before freeing it). */
static void block_unlink_pages(struct vmm_cpu *c, struct emu_block *b)
{
	for (int i = 0; i < 2; i++) {
		uint32_t pg = b->pg[i];
		if (pg == PG_NONE)
			continue;
		for (struct emu_block **pp = &c->pg_blocks[pg], *x; (x = *pp);
		     pp = &x->pnext[x->pg[1] == pg]) {
			if (x == b) {
				*pp = b->pnext[i];
				break;
			}
		}
	}
}

/*
 * Instructions that get a code hook: those emulated here, and CMPXCHG8B/16B. Unicorn
 * 2.1.1 (QEMU 5.0's translator) calls the CMPXCHG8B/16B helper without first storing the
 * pending lazy-flags operation, so the helper computes the flags it keeps from a stale
 * one: after `add rcx, rbx; cmpxchg16b [rdi]` EFLAGS held RBX's low bits (TF, AC, ID...).
 * That is harmless while the next flag-setting instruction overwrites it, but a stop in
 * between (a budget stop, a hash) makes it EFLAGS for real: TF set, #DB after the next
 * instruction, measured in Linux's SLUB fast path. Unicorn stores the lazy flags before
 * every hooked instruction, so a hook that does nothing makes the helper right.
 */
static bool is_special(uint8_t kind)
{
	return kind == X86_IN || kind == X86_OUT || kind == X86_INS || kind == X86_OUTS ||
	       kind == X86_RDTSC || kind == X86_RDTSCP || kind == X86_RDMSR ||
	       kind == X86_WRMSR || kind == X86_HLT || kind == X86_CMPXCHGB || kind == X86_SYSCALL;
}

/* Decode a new block; place site hooks on its special instructions. NULL on failure. */
static struct emu_block *block_decode(struct vmm_cpu *c, uint64_t addr, uint32_t size,
				      bool *placed)
{
	uint8_t code[8192 + 16];
	*placed = false;
	if (size == 0 || size > 8192 || read_virt_raw(c, addr, code, size, true) < 0)
		return NULL;
	/* A block whose last instruction faults while it is translated is reported cut
	 * short: let that instruction run past the size, as far as memory allows. */
	size_t avail = size;
	while (avail < (size_t)size + 15 && read_virt_raw(c, addr + avail, code + avail, 1, true) == 0)
		avail++;
	uint16_t offs[8193];
	uint32_t off = 0;
	unsigned n = 0;
	uint8_t last = X86_OTHER, special = 0;
	bool last_far = false;
	while (off < size) {
		struct x86_insn in;
		if (x86_decode(code + off, avail - off, c->bits, &in) < 0)
			return NULL;
		offs[n++] = (uint16_t)off;
		last = in.kind;
		last_far = far_transfer(code + off, in.len);
		struct emu_site *old = site_find(c, addr + off);
		if (old && !is_special(in.kind))
			old->insn.kind = X86_OTHER; /* the code there changed: retire the site */
		if (is_special(in.kind)) {
			special = 1;
			uint64_t a = addr + off;
			if (old) {
				old->insn = in; /* same address, maybe another instruction now */
				old->bits = (uint8_t)c->bits;
			} else {
				struct emu_site *s = calloc(1, sizeof(*s));
				if (!s)
					return NULL;
				s->addr = a;
				s->insn = in;
				s->bits = (uint8_t)c->bits;
				if (uc_hook_add(c->uc, &s->hook, UC_HOOK_CODE, (void *)site_hook, c, a,
						a) != UC_ERR_OK) {
					free(s);
					return NULL;
				}
				unsigned h = site_hash(a);
				s->next = c->sites[h];
				c->sites[h] = s;
				c->nsites++;
				*placed = true;
			}
		}
		off += in.len;
	}
	struct emu_block *b = malloc(sizeof(*b) + (n + 1) * sizeof(uint16_t) + size);
	if (!b)
		return NULL;
	b->len0 = (uint16_t)(0x1000 - (addr & 0xfff) < size ? 0x1000 - (addr & 0xfff) : size);
	b->pg[0] = code_page(c, addr);
	b->pg[1] = size > b->len0 ? code_page(c, addr + b->len0) : PG_NONE;
	if (size > b->len0 && b->pg[1] == PG_NONE)
		b->pg[0] = PG_NONE;
	if (b->pg[1] != PG_NONE && b->pg[1] == b->pg[0])
		b->pg[0] = b->pg[1] = PG_NONE; /* both pages map one frame: left unchecked */
	b->bytes = (uint8_t *)&b->offs[n + 1];
	memcpy(b->bytes, code, size);
	for (int i = 0; i < 2; i++) {
		b->pnext[i] = NULL;
		if (b->pg[i] != PG_NONE) {
			b->pnext[i] = c->pg_blocks[b->pg[i]];
			c->pg_blocks[b->pg[i]] = b;
		}
	}
	block_arm(c, b);
	b->seen = 0; /* tracking intervals count from 1 */
	b->addr = addr;
	b->size = size;
	b->n = (uint16_t)n;
	b->bits = (uint8_t)c->bits;
	b->last_kind = last_far ? 0xFF : last;
	b->has_special = special;
	b->user = cpl3(c);
	memcpy(b->offs, offs, n * sizeof(uint16_t));
	b->offs[n] = (uint16_t)size;
	unsigned h = block_hash(addr, size);
	b->next = c->blocks[h];
	c->blocks[h] = b;
	c->nblocks++;
	return b;
}

/* Whether the code a cached decode was made from is still what RAM holds. */
static bool block_fresh(struct vmm_cpu *c, struct emu_block *b)
{
	if (!b->dirty || b->pg[0] == PG_NONE)
		return true; /* no write to its pages since it was checked, or not in RAM */
	const uint8_t *p0 = c->ram + ((uint64_t)b->pg[0] << 12) + (b->addr & 0xfff);
	if (memcmp(p0, b->bytes, b->len0) != 0)
		return false;
	if (b->size > b->len0 &&
	    memcmp(c->ram + ((uint64_t)b->pg[1] << 12), b->bytes + b->len0, b->size - b->len0))
		return false;
	block_arm(c, b); /* unchanged (a data write to a code page): watch again */
	return true;
}

/*
 * The cached decode of the block, dropping one whose code has changed since (then
 * *changed is set: see block_hook, the translated block may be as old as the decode).
 */
static struct emu_block *block_find_slow(struct vmm_cpu *c, uint64_t addr, uint32_t size,
					 bool *changed);

static struct emu_block *block_find(struct vmm_cpu *c, uint64_t addr, uint32_t size,
				    bool *changed)
{
	struct emu_block *b = c->front[FRONT_IDX(addr)];
	*changed = false;
	if (b && b->addr == addr && b->size == size && b->bits == c->bits && !b->dirty)
		return b;
	b = block_find_slow(c, addr, size, changed);
	/* See block_hook: what the front holds, the fast path takes without checks. */
	if (b && !b->dirty && b->last_kind != 0xFF && !b->user)
		c->front[FRONT_IDX(addr)] = b;
	return b;
}

/*
 * User code (CPL 3) lives in many address spaces: one virtual address holds other code in
 * another process. So a decode made at CPL 3 is found only at CPL 3 and only while the
 * address still maps the frames it was decoded from (several decodes of one address can
 * be cached, one per frame); it never enters the front. Kernel code is the same in every
 * address space.
 */
static struct emu_block *block_find_slow(struct vmm_cpu *c, uint64_t addr, uint32_t size,
					 bool *changed)
{
	bool user = cpl3(c);
	uint32_t upg[2] = {PG_NONE, PG_NONE};
	if (user) {
		uint32_t len0 = 0x1000 - (uint32_t)(addr & 0xfff) < size ? 0x1000 - (uint32_t)(addr & 0xfff)
									    : size;
		upg[0] = code_page(c, addr);
		upg[1] = size > len0 ? code_page(c, addr + len0) : PG_NONE;
		if (size > len0 && upg[1] == PG_NONE)
			upg[0] = PG_NONE;
		if (upg[1] != PG_NONE && upg[1] == upg[0])
			upg[0] = upg[1] = PG_NONE;
	}
	for (struct emu_block **pp = &c->blocks[block_hash(addr, size)], *b; (b = *pp);
	     pp = &b->next) {
		if (b->addr == addr && b->size == size && b->bits == c->bits && b->user == user &&
		    (!user || (b->pg[0] == upg[0] && b->pg[1] == upg[1]))) {
			if (block_fresh(c, b))
				return b;
			*pp = b->next; /* c->cur is NULL here: only the front may point at it */
			if (c->front[FRONT_IDX(b->addr)] == b)
				c->front[FRONT_IDX(b->addr)] = NULL;
			block_unlink_pages(c, b);
			free(b);
			c->nblocks--;
			*changed = true;
			return NULL;
		}
	}
	return NULL;
}

/* Index of the instruction at addr inside b, or -1. */
static int block_index(const struct emu_block *b, uint64_t addr)
{
	if (addr < b->addr || addr >= b->addr + b->size)
		return -1;
	uint32_t off = (uint32_t)(addr - b->addr);
	int lo = 0, hi = b->n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (b->offs[mid] == off)
			return mid;
		if (b->offs[mid] < off)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static void budget_hook_cb(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque);

static void budget_clear(struct vmm_cpu *c)
{
	if (c->budget_addr) {
		uc_hook_del(c->uc, c->budget_hook);
		uc_ctl_remove_cache(c->uc, c->budget_addr, c->budget_addr + 1);
		c->budget_addr = 0;
	}
}

static void stop_now(struct vmm_cpu *c, enum emu_stop why)
{
	c->stop = why;
	c->slow = true;
	uc_emu_stop(c->uc);
}

/*
 * Stop before the block at addr runs. Unicorn does not keep RIP current across chained
 * blocks, so the block's address is remembered and written back after the stop.
 */
static void stop_at_block(struct vmm_cpu *c, uint64_t addr, enum emu_stop why)
{
	c->stop_rip = addr;
	c->stop_rip_valid = true;
	stop_now(c, why);
}

/* A breakpoint in block b (about to run from its start) becomes the budget stop. */
static void break_in_block(struct vmm_cpu *c, const struct emu_block *b)
{
	for (unsigned j = 0; j < c->nbp; j++) {
		if (c->bp[j] - b->addr >= b->size)
			continue;
		int i = block_index(b, c->bp[j]);
		if (i < 0 || c->icount + (uint64_t)i == c->pass_pos)
			continue;
		if (c->icount + (uint64_t)i < c->target) {
			c->target = c->icount + (uint64_t)i;
			c->bp_pos = c->target;
		}
	}
}

/* Everything block_hook does, for the cases its fast path leaves out. */
static __attribute__((noinline)) void block_hook_slow(struct vmm_cpu *c, uint64_t addr,
						       uint32_t size)
{
	if (c->stop)
		return; /* a stop is already on its way */
	/* A block completed since the last one started (not a stop without progress). */
	if (c->cur) {
		uint8_t prev = c->cur->last_kind;
		if (prev == 0xFF)
			c->bits_dirty = true;
		c->prev_kind = prev == 0xFF ? X86_OTHER : prev;
		c->cur = NULL;
	}
	if (atomic_load_explicit(&c->kick, memory_order_relaxed) && c->icount != c->intr_pos) {
		stop_at_block(c, addr, ES_KICK);
		return;
	}
	if (c->watch_if && (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF)) {
		c->watch_if = false;
		stop_at_block(c, addr, ES_IF_OPEN);
		return;
	}
	if (c->bits_dirty)
		update_bits(c);
	bool changed;
	struct emu_block *b = block_find(c, addr, size, &changed);
	if (changed) {
		/*
		 * The code under a cached decode changed since it was checked, and Unicorn's
		 * translation of the block may be older than the change: Unicorn 2.1.1 does
		 * not always drop translations when the guest writes to code (measured in a
		 * Linux boot: blocks translated before Linux patched a page kept running its
		 * old code, e.g. a `jmp __x86_return_thunk` patched to `ret; int3`). A stale
		 * block runs old code while we count the new, and whether it is still cached
		 * depends on which translations earlier stops removed, which differs between
		 * a recording (kick stops) and its replay (budget stops): the two diverge.
		 * So every translation of the block goes, and the block is translated again
		 * from RAM and decoded when it comes back here. Every executed block has a
		 * cached decode (made at its first execution, right after its translation),
		 * and every write to its code marks that decode for this check, so a stale
		 * translation is caught here before it runs again.
		 */
		uc_ctl_remove_cache(c->uc, addr, addr + size);
		stop_at_block(c, addr, ES_RETRANSLATE);
		return;
	}
	if (!b) {
		bool placed;
		b = block_decode(c, addr, size, &placed);
		if (!b) {
			stop_at_block(c, addr, ES_ERROR);
			vmm_fail(VMM_EBACKEND, "cannot decode the guest block at %#llx (%u bytes)",
				 (unsigned long long)addr, size);
			return;
		}
		if (placed) {
			/* Hooks take effect only in code translated after they exist. */
			uc_ctl_remove_cache(c->uc, addr, addr + size);
			stop_at_block(c, addr, ES_RETRANSLATE);
			return;
		}
	}
	if (c->tracking && b->seen != c->epoch)
		ran_add(c, b);
	if (c->nbp)
		break_in_block(c, b);
	if (c->target != UINT64_MAX && c->icount + b->n > c->target) {
		uint64_t k = c->target - c->icount;
		if (k == 0) {
			stop_at_block(c, addr, ES_BUDGET);
			return;
		}
		uint64_t at = addr + b->offs[k];
		if (c->budget_addr != at) {
			budget_clear(c);
			if (uc_hook_add(c->uc, &c->budget_hook, UC_HOOK_CODE, (void *)budget_hook_cb,
					c, at, at) != UC_ERR_OK) {
				stop_at_block(c, addr, ES_ERROR);
				vmm_fail(VMM_EBACKEND, "cannot place a stop at %#llx",
					 (unsigned long long)at);
				return;
			}
			c->budget_addr = at;
			uc_ctl_remove_cache(c->uc, addr, addr + size);
			stop_at_block(c, addr, ES_RETRANSLATE);
			return;
		}
	}
	c->cur = b;
	c->cur_start = c->icount;
	c->icount += b->n;
	c->slow = c->watch_if || c->bits_dirty || c->nbp || b->last_kind == 0xFF;
}

/*
 * Called from translated code before every block runs (~1.6 M times per round of the
 * compute guest). Unicorn 2.1.1 calls a lone UC_HOOK_BLOCK hook directly from the
 * translated code, so this function is the whole per-block cost. The common case (the
 * block follows another in the same pass, its decode is in the front cache and clean,
 * no stop, kick, IF watch, code size change, breakpoint, tracking entry or budget stop
 * due in it) does what block_hook_slow would do in that case; it is kept a small leaf
 * so that it needs no stack frame and saves no registers, which the slow path's calls
 * would cost on every block (measured: ~25% of the run time of the compute guest).
 *
 * The rare conditions are one flag, c->slow: it is set before every run, by every
 * other hook and by every stop, and only the slow path clears it, when no stop, IF
 * watch, code size change or breakpoint is pending and the block it made current does
 * not end in a far transfer (such blocks never enter the front, so the fast path never
 * makes one current). So the fast path also knows c->cur is a block.
 *
 * The front holds only decodes that are clean and of the current code size: a block
 * leaves it when its page is written (page_dirty), all leave it when every decode is
 * marked (all_dirty, after the VMM writes RAM or restores) or the code size changes
 * (update_bits), and a block enters it only clean (block_find).
 */
static void block_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque)
{
	struct vmm_cpu *c = opaque;
	struct emu_block *p = c->cur, *b = c->front[FRONT_IDX(addr)];
	(void)uc;
	if (__builtin_expect(!c->slow && b && b->addr == addr && b->size == size &&
				     c->icount + b->n <= c->target &&
				     !(c->tracking && b->seen != c->epoch) &&
				     !atomic_load_explicit(&c->kick, memory_order_relaxed),
			     1)) {
		c->prev_kind = p->last_kind;
		c->cur = b;
		c->cur_start = c->icount;
		c->icount += b->n;
		return;
	}
	block_hook_slow(c, addr, size);
}

/* Position of the instruction at addr in the current block (exact), and close the
 * block there: it will be left at this instruction. */
static bool settle_at(struct vmm_cpu *c, uint64_t addr)
{
	if (!c->cur)
		return false;
	int i = block_index(c->cur, addr);
	if (i < 0)
		return false;
	c->icount = c->cur_start + (uint64_t)i;
	return true;
}

static void budget_hook_cb(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	(void)size;
	if (c->stop || !c->cur)
		return;
	int i = block_index(c->cur, addr);
	if (i < 0 || c->cur_start + (uint64_t)i != c->target)
		return;
	c->icount = c->target;
	c->prev_kind = X86_OTHER;
	c->cur = NULL;
	stop_now(c, ES_BUDGET);
}

/* ---- special instructions ------------------------------------------------------------ */

static uint64_t vtsc(struct vmm_cpu *c)
{
	return c->icount + c->tsc_offset;
}

static bool intr_deliverable(struct vmm_cpu *c)
{
	return (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF) && vmm_intr_pending(c->m);
}

static uint64_t mask_for(int size)
{
	return size == 8 ? ~0ull : ((1ull << (size * 8)) - 1);
}

/* One iteration of INS/OUTS; returns false if a #PF must be raised instead. */
static bool string_io(struct vmm_cpu *c, const struct x86_insn *in, uint16_t port)
{
	uint64_t amask = mask_for(in->addrsize);
	int df = (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_DF) ? -1 : 1;
	uint32_t val = 0;
	if (in->kind == X86_OUTS) {
		/* Segment bases are zero in the flat modes our guests use (FS/GS aside). */
		uint64_t base = in->seg == 0x64 ? rreg(c, UC_X86_REG_FS_BASE)
				: in->seg == 0x65 ? rreg(c, UC_X86_REG_GS_BASE)
						  : 0;
		uint64_t rsi = rreg(c, UC_X86_REG_RSI);
		if (read_virt_raw(c, base + (rsi & amask), &val, in->width, false) < 0) {
			c->pf_pending = true;
			c->pf_addr = base + (rsi & amask);
			c->pf_err = cpl3(c) ? PF_U : 0;
			return false;
		}
		vmm_pio(c->m, port, in->width, true, &val);
		rsi = (rsi & ~amask) | ((rsi + (uint64_t)(df * in->width)) & amask);
		wreg(c, UC_X86_REG_RSI, rsi);
	} else {
		uint64_t rdi = rreg(c, UC_X86_REG_RDI);
		vmm_pio(c->m, port, in->width, false, &val);
		uint32_t err;
		uint64_t fva;
		if (write_virt_raw(c, rdi & amask, &val, in->width, cpl3(c), &err, &fva) < 0) {
			c->pf_pending = true;
			c->pf_addr = fva;
			c->pf_err = err;
			return false;
		}
		rdi = (rdi & ~amask) | ((rdi + (uint64_t)(df * in->width)) & amask);
		wreg(c, UC_X86_REG_RDI, rdi);
	}
	return true;
}

/*
 * May the current privilege level run the special instruction in (the checks before its
 * effect)? HLT, RDMSR and WRMSR need CPL 0; RDTSC and RDTSCP CPL 0 when CR4.TSD is set;
 * port I/O CPL <= IOPL, or else every port byte allowed in the TSS's I/O permission bitmap.
 */
static bool site_allowed(struct vmm_cpu *c, const struct x86_insn *in)
{
	unsigned cpl = (unsigned)rreg(c, UC_X86_REG_CS) & 3;
	if (cpl == 0)
		return true;
	switch (in->kind) {
	case X86_HLT:
	case X86_RDMSR:
	case X86_WRMSR:
		return false;
	case X86_RDTSC:
	case X86_RDTSCP:
		return !(rreg(c, UC_X86_REG_CR4) & CR4_TSD);
	case X86_IN:
	case X86_OUT:
	case X86_INS:
	case X86_OUTS: {
		uint64_t rflags = rreg(c, UC_X86_REG_EFLAGS);
		if (cpl <= ((rflags >> 12) & 3))
			return true;
		uint16_t port = in->port_imm ? in->imm8 : (uint16_t)rreg(c, UC_X86_REG_RDX);
		uc_x86_mmr tr = {0};
		uc_reg_read(c->uc, UC_X86_REG_TR, &tr);
		uint16_t iomap = 0;
		if (tr.limit < 0x67 || read_virt_raw(c, tr.base + 0x66, &iomap, 2, false) < 0)
			return false;
		uint32_t first = iomap + port / 8u, last = iomap + (port + in->width - 1u) / 8u;
		uint8_t bits[2] = {0xff, 0xff};
		if (last > tr.limit || read_virt_raw(c, tr.base + first, bits, last - first + 1,
						      false) < 0)
			return false;
		uint16_t map = (uint16_t)(bits[0] | (last > first ? bits[1] << 8 : 0xff00));
		unsigned mask = ((1u << in->width) - 1u) << (port % 8u);
		return (map & mask) == 0;
	}
	default:
		return true;
	}
}

static void site_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	(void)size;
	if (c->stop)
		return;
	/*
	 * The instruction is taken from the decode of the block being run, not from the
	 * site: user code at this address may be another process's (block_find_slow).
	 */
	int idx = c->cur ? block_index(c->cur, addr) : -1;
	if (idx < 0)
		return; /* not reached through a block we know: let Unicorn run it */
	struct x86_insn insn;
	uint32_t ioff = c->cur->offs[idx];
	if (x86_decode(c->cur->bytes + ioff, c->cur->size - ioff, c->cur->bits, &insn) < 0) {
		/* The last instruction of a block cut short (block_decode): the site's copy. */
		struct emu_site *s = site_find(c, addr);
		if (!s || s->bits != c->cur->bits)
			return;
		insn = s->insn;
	}
	if (!is_special(insn.kind) || insn.kind == X86_CMPXCHGB)
		return; /* nothing to emulate (CMPXCHG8B/16B: the hook's existence is its purpose) */
	const struct x86_insn *in = &insn;
	if (in->kind == X86_RDMSR || in->kind == X86_WRMSR) {
		uint32_t msr = (uint32_t)rreg(c, UC_X86_REG_RCX);
		if (msr != MSR_TSC && msr != MSR_TSC_AUX && msr != MSR_EFER)
			return; /* Unicorn's own RDMSR/WRMSR; the block goes on */
	}
	c->icount = c->cur_start + (uint64_t)idx;
	if (c->icount == c->target) {
		c->cur = NULL;
		c->prev_kind = X86_OTHER;
		stop_now(c, ES_BUDGET);
		return;
	}
	if (in->kind != X86_SYSCALL && !site_allowed(c, in)) {
		/* #GP(0), as the CPU raises it for this instruction at this privilege. */
		c->cur = NULL;
		c->prev_kind = X86_OTHER;
		c->exc_vector = 13;
		c->exc_soft = false;
		c->gp_pending = true; /* error code 0 */
		c->stop_rip = addr;
		c->stop_rip_valid = true;
		stop_now(c, ES_EXC);
		return;
	}
	if (in->kind == X86_SYSCALL) {
		/* Run by emu_run between passes (do_syscall): it changes CPL, CS and SS. */
		c->cur = NULL;
		c->prev_kind = X86_OTHER;
		c->sys_next = addr + in->len;
		c->stop_rip = addr;
		c->stop_rip_valid = true;
		stop_now(c, ES_SYSCALL);
		return;
	}
	uint64_t next = addr + in->len;
	enum emu_stop after = ES_NONE;
	uint32_t val;
	uint64_t rax;
	/* An exit kvm counts (xmode): every port access; a REP with a zero count makes none. */
	bool x_io = in->kind == X86_IN || in->kind == X86_OUT ||
		    ((in->kind == X86_INS || in->kind == X86_OUTS) &&
		     !(in->rep && (rreg(c, UC_X86_REG_RCX) & mask_for(in->addrsize)) == 0));

	switch (in->kind) {
	case X86_IN:
	case X86_OUT: {
		uint16_t port = in->port_imm ? in->imm8 : (uint16_t)rreg(c, UC_X86_REG_RDX);
		rax = rreg(c, UC_X86_REG_RAX);
		if (in->kind == X86_OUT) {
			val = (uint32_t)(rax & mask_for(in->width));
			vmm_pio(c->m, port, in->width, true, &val);
		} else {
			val = 0;
			vmm_pio(c->m, port, in->width, false, &val);
			if (in->width == 4)
				rax = val; /* 32-bit results zero-extend */
			else
				rax = (rax & ~mask_for(in->width)) | (val & mask_for(in->width));
			wreg(c, UC_X86_REG_RAX, rax);
		}
		break;
	}
	case X86_INS:
	case X86_OUTS: {
		uint16_t port = (uint16_t)rreg(c, UC_X86_REG_RDX);
		uint64_t amask = mask_for(in->addrsize);
		if (in->rep) {
			uint64_t rcx = rreg(c, UC_X86_REG_RCX);
			if ((rcx & amask) == 0)
				break;
			if (!string_io(c, in, port)) {
				c->cur = NULL;
				stop_now(c, ES_EXC);
				c->exc_vector = 14;
				return;
			}
			rcx = (rcx & ~amask) | ((rcx - 1) & amask);
			wreg(c, UC_X86_REG_RCX, rcx);
			if (rcx & amask)
				next = addr; /* one iteration retires per position */
		} else if (!string_io(c, in, port)) {
			c->cur = NULL;
			stop_now(c, ES_EXC);
			c->exc_vector = 14;
			return;
		}
		break;
	}
	case X86_RDTSC:
	case X86_RDTSCP: {
		uint64_t t = vtsc(c);
		wreg(c, UC_X86_REG_RAX, t & 0xffffffffull);
		wreg(c, UC_X86_REG_RDX, t >> 32);
		if (in->kind == X86_RDTSCP)
			wreg(c, UC_X86_REG_RCX, c->tsc_aux & 0xffffffffull);
		break;
	}
	case X86_RDMSR: {
		uint32_t msr = (uint32_t)rreg(c, UC_X86_REG_RCX);
		uint64_t v;
		if (msr == MSR_TSC) {
			v = vtsc(c);
		} else if (msr == MSR_TSC_AUX) {
			v = c->tsc_aux;
		} else if (msr == MSR_EFER) {
			v = rmsr(c, MSR_EFER);
			if (!c->efer_lme_shadow)
				v &= ~EFER_LME;
			if (!long_mode(c))
				v &= ~EFER_LMA;
		} else {
			v = 0; /* not reached: filtered above */
		}
		wreg(c, UC_X86_REG_RAX, v & 0xffffffffull);
		wreg(c, UC_X86_REG_RDX, v >> 32);
		break;
	}
	case X86_WRMSR: {
		uint32_t msr = (uint32_t)rreg(c, UC_X86_REG_RCX);
		uint64_t v = (rreg(c, UC_X86_REG_RAX) & 0xffffffffull) |
			     (rreg(c, UC_X86_REG_RDX) << 32);
		if (msr == MSR_TSC) {
			c->tsc_offset = v - c->icount;
		} else if (msr == MSR_TSC_AUX) {
			c->tsc_aux = v;
		} else if (msr == MSR_EFER) {
			c->efer_lme_shadow = v & EFER_LME;
			/* Unicorn must keep LME|LMA (it runs compatibility mode as long mode). */
			uc_x86_msr m = {.rid = MSR_EFER, .value = v | EFER_LME | EFER_LMA};
			uc_reg_write(c->uc, UC_X86_REG_MSR, &m);
			/* No new code size: CS is not reloaded (see update_bits). */
		}
		break;
	}
	case X86_HLT:
		/* With an interrupt deliverable HLT retires and the interrupt is taken at once. */
		after = intr_deliverable(c) ? ES_IO_INTR : ES_HLT;
		break;
	default:
		return;
	}

	c->icount++;
	c->cur = NULL;
	c->prev_kind = in->kind;
	if (c->xmode && (x_io || in->kind == X86_HLT)) {
		/* Exit counting: the run loop takes over after every exit (x_entry). */
		c->xcount++;
		c->xexact = true;
		c->xlast = in->kind == X86_HLT ? "HLT" : "a port access";
		if (in->kind == X86_HLT)
			after = ES_HLT; /* kvm's HLT exit, whatever is pending */
		else if (after == ES_NONE)
			after = vmm_machine_stop_requested(c->m) ? ES_IO_STOP : ES_XEXIT;
	}
	if (after == ES_NONE) {
		if (vmm_machine_stop_requested(c->m))
			after = ES_IO_STOP;
		else if ((in->kind == X86_IN || in->kind == X86_OUT || in->kind == X86_INS ||
			  in->kind == X86_OUTS) &&
			 vmm_intr_pending(c->m)) {
			if (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF)
				after = ES_IO_INTR;
			else
				c->watch_if = true;
		}
		else if (c->icount == c->target)
			after = ES_BUDGET;
		else if (atomic_load_explicit(&c->kick, memory_order_relaxed))
			after = ES_KICK;
	}
	/* Writing RIP in a code hook leaves the translated block here. */
	wreg(c, UC_X86_REG_RIP, next);
	if (after != ES_NONE)
		stop_now(c, after);
}

/* ---- CPUID ---------------------------------------------------------------------- */

static int cpuid_hook(uc_engine *uc, void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	uint32_t r[4];
	vmm_cpuid((uint32_t)rreg(c, UC_X86_REG_RAX), (uint32_t)rreg(c, UC_X86_REG_RCX), r);
	wreg(c, UC_X86_REG_RAX, r[0]);
	wreg(c, UC_X86_REG_RBX, r[1]);
	wreg(c, UC_X86_REG_RCX, r[2]);
	wreg(c, UC_X86_REG_RDX, r[3]);
	return 1;
}

/* ---- exceptions and interrupts ----------------------------------------------------- */

static void intr_hook(uc_engine *uc, uint32_t intno, void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	if (c->stop)
		return;
	uint64_t rip = rreg(c, UC_X86_REG_RIP);

	c->exc_vector = (int)intno;
	c->exc_soft = false;
	c->exc_has_err = false;
	c->exc_err = 0;
	/*
	 * INT n, INT3 and INTO are traps: Unicorn leaves RIP after them, and they end
	 * their block. #BP and #OF only come from those; vectors 32 and up only from INT
	 * n; INT n below 32 is told by its bytes before RIP.
	 */
	uint8_t b[2] = {0, 0};
	bool intn = rip >= 2 && read_virt_raw(c, rip - 2, b, 2, true) == 0 && b[0] == 0xCD &&
		    b[1] == intno;
	c->exc_soft = intno == 3 || intno == 4 || intno >= 32 || intn;
	/* Where the trap instruction starts: a fault while delivering it points there. */
	c->exc_len = c->exc_soft ? (intn || (b[0] == 0xCD && b[1] == intno) ? 2 : 1) : 0;
	if (c->cur)
		settle_at(c, rip); /* outside the block: it ran to its end */
	c->cur = NULL;
	c->prev_kind = X86_OTHER;
	stop_now(c, ES_EXC);
}

static bool insn_invalid_hook(uc_engine *uc, void *opaque)
{
	struct vmm_cpu *c = opaque;
	c->slow = true; /* whatever this hook changes, the next block rechecks */
	(void)uc;
	if (c->stop)
		return false;
	if (c->cur)
		settle_at(c, rreg(c, UC_X86_REG_RIP));
	c->cur = NULL;
	c->prev_kind = X86_OTHER;
	c->exc_vector = 6;
	c->exc_soft = false;
	c->exc_stop = true;
	c->stop = ES_EXC;
	return false; /* Unicorn stops with UC_ERR_INSN_INVALID */
}

/*
 * Our TLB fill sees only the page of a refused access; CR2 must hold the exact address.
 * Find it among the addresses the faulting instruction can touch: its ModRM operand
 * (with an FS/GS base), RSI/RDI for string instructions, the stack for pushes and pops.
 * An access that starts on the page before and crosses into the refused page faults at
 * the page's first byte.
 */
static uint64_t exact_fault_addr(struct vmm_cpu *c, uint64_t page)
{
	uint8_t code[16];
	struct x86_insn in;
	uint64_t rip = rreg(c, UC_X86_REG_RIP);
	if (read_virt_raw(c, rip, code, sizeof(code), true) < 0 ||
	    x86_decode(code, sizeof(code), c->bits, &in) < 0)
		return page;
	static const int ids[16] = {UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
				    UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
				    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
				    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
	uint64_t gpr[16];
	for (int i = 0; i < 16; i++)
		gpr[i] = rreg(c, ids[i]);
	uint64_t cand[6];
	int n = 0;
	uint64_t ea;
	if (x86_modrm_ea(code, &in, gpr, rip + in.len, &ea) == 0) {
		if (in.seg == 0x64)
			ea += rreg(c, UC_X86_REG_FS_BASE);
		else if (in.seg == 0x65)
			ea += rreg(c, UC_X86_REG_GS_BASE);
		cand[n++] = ea;
	}
	cand[n++] = gpr[6];     /* RSI */
	cand[n++] = gpr[7];     /* RDI */
	cand[n++] = gpr[4] - (c->bits == 64 ? 8 : 4); /* a push */
	cand[n++] = gpr[4];     /* a pop or return */
	uint64_t pmask = ~0xfffull;
	for (int i = 0; i < n; i++)
		if ((cand[i] & pmask) == page)
			return cand[i];
	for (int i = 0; i < n; i++)
		if (((cand[i] + 15) & pmask) == page && (cand[i] & pmask) + 0x1000 == page)
			return page; /* crosses into the page */
	return page;
}

/* Unicorn 2.1.1 writes CR3 too when CR2 is written (measured): put CR3 back. */
static void write_cr2(struct vmm_cpu *c, uint64_t v)
{
	uint64_t cr3 = rreg(c, UC_X86_REG_CR3);
	wreg(c, UC_X86_REG_CR2, v);
	if (rreg(c, UC_X86_REG_CR3) != cr3)
		wreg(c, UC_X86_REG_CR3, cr3);
}

/* Guest memory for the shared delivery code (vmm/x86deliver.c). */
static int xd_read(void *ctx, uint64_t va, void *buf, size_t len)
{
	return read_virt_raw(ctx, va, buf, len, false);
}

/* The frame is written at the new CPL: a supervisor write after a change from CPL 3. */
static int xd_write(void *ctx, uint64_t va, const void *buf, size_t len, int cpl,
		    uint32_t *pferr, uint64_t *fault_va)
{
	return write_virt_raw(ctx, va, buf, len, cpl == 3, pferr, fault_va) < 0 ? VMM_XD_PF : 0;
}

static const struct vmm_xd_ops emu_xd_ops = {.read = xd_read, .write = xd_write};

static void seg_from_gdt(struct vmm_cpu *c, uint16_t sel, struct vmm_seg *s);
static int load_segs(struct vmm_cpu *c, const struct vmm_seg *cs, const struct vmm_seg *ss);

/*
 * Deliver an event through the guest IDT with the double- and triple-fault rules
 * (vmm/x86deliver.c). For #PF, CR2 receives c->pf_addr. Returns 0, 1 when the
 * processor shuts down (triple fault) with *shutdown_vec set, or -1 (a backend error).
 */
static int deliver(struct vmm_cpu *c, int vec, bool has_err, uint32_t err, bool soft,
		   uint64_t ret_rip, uint64_t fault_rip, int *shutdown_vec)
{
	struct vmm_xd_state s;
	memset(&s, 0, sizeof(s));
	s.rip = rreg(c, UC_X86_REG_RIP);
	s.rsp = rreg(c, UC_X86_REG_RSP);
	s.rflags = rreg(c, UC_X86_REG_EFLAGS);
	s.cr2 = rreg(c, UC_X86_REG_CR2);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_CS), &s.cs);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_SS), &s.ss);
	uc_x86_mmr tr = {0}, gdtr = {0}, idtr = {0};
	uc_reg_read(c->uc, UC_X86_REG_TR, &tr);
	uc_reg_read(c->uc, UC_X86_REG_GDTR, &gdtr);
	uc_reg_read(c->uc, UC_X86_REG_IDTR, &idtr);
	s.tr.sel = tr.selector;
	s.tr.base = tr.base;
	s.tr.limit = tr.limit;
	s.gdt.base = gdtr.base;
	s.gdt.limit = (uint16_t)gdtr.limit;
	s.idt.base = idtr.base;
	s.idt.limit = (uint16_t)idtr.limit;
	s.lm = long_mode(c);
	struct vmm_xd_state old = s;
	struct vmm_xd_event ev = {.vector = vec, .has_err = has_err, .err = err, .soft = soft,
				  .ret_rip = ret_rip, .fault_rip = fault_rip,
				  .cr2 = c->pf_addr};
	int r = vmm_xd_deliver(&emu_xd_ops, c, &s, &ev, shutdown_vec);
	if (s.cr2 != old.cr2) {
		write_cr2(c, s.cr2);
		c->pf_addr = s.cr2;
	}
	if (r)
		return r;
	/* A new CS or SS (a privilege change loads both): their caches and the CPL. */
	if ((s.cs.sel != old.cs.sel || s.ss.sel != old.ss.sel) &&
	    load_segs(c, s.cs.sel != old.cs.sel ? &s.cs : NULL,
		      s.ss.sel != old.ss.sel ? &s.ss : NULL) < 0)
		return -1;
	wreg(c, UC_X86_REG_EFLAGS, s.rflags);
	wreg(c, UC_X86_REG_RSP, s.rsp);
	wreg(c, UC_X86_REG_RIP, s.rip);
	return 0;
}

/* deliver() for the run loop: a triple fault becomes the exit SHUTDOWN with its vector.
 * Returns 0, 1 (the run ends: exit filled) or a negative vmm_err. */
static int deliver_or_shutdown(struct vmm_cpu *c, int vec, bool has_err, uint32_t err,
			       bool soft, uint64_t ret_rip, uint64_t fault_rip,
			       struct vmm_exit *exit)
{
	int sv;
	int dr = deliver(c, vec, has_err, err, soft, ret_rip, fault_rip, &sv);
	if (dr > 0) {
		exit->reason = VMM_EXIT_SHUTDOWN;
		exit->vector = sv;
		if (c->xmode) { /* an exit kvm counts, at a point it names */
			c->xcount++;
			c->xexact = true;
			c->xlast = "a triple fault";
		}
	}
	return dr;
}

/* ---- the ops ------------------------------------------------------------------------ */

static int emu_probe(void)
{
	return 0;
}

/*
 * Unicorn delivers no exception itself, so two fields of its CPU state must be reached
 * through a saved context: env->error_code (the error code of #GP/#TS/#NP/#SS, which the
 * intr hook does not give) and env->old_exception (never cleared without its own
 * delivery, so a second #GP would become #DF). Find their offsets by raising #GP with two
 * selectors and #DE in scratch engines and comparing the blobs.
 */
static void calib_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
	(void)intno;
	(void)opaque;
	uc_emu_stop(uc);
}

static uint8_t *calib_run(const uint8_t *code, size_t n, size_t *sz)
{
	uc_engine *uc;
	uint8_t *blob = NULL;
	if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK)
		return NULL;
	uc_mem_map(uc, 0, 0x10000, UC_PROT_ALL);
	uc_mem_write(uc, 0x1000, code, n);
	uc_x86_mmr gdtr = {.base = 0x2000, .limit = 0x17};
	uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr);
	uc_hook h;
	uc_hook_add(uc, &h, UC_HOOK_INTR, (void *)calib_intr, NULL, 1, 0);
	uc_emu_start(uc, 0x1000, 0x1100, 0, 0);
	*sz = uc_context_size(uc);
	uc_context *ctx;
	if (uc_context_alloc(uc, &ctx) == UC_ERR_OK) {
		uc_context_save(uc, ctx);
		blob = malloc(*sz);
		if (blob)
			memcpy(blob, ctx, *sz);
		uc_context_free(ctx);
	}
	uc_close(uc);
	return blob;
}

/*
 * Where the segment caches (QEMU's env->segs[], ES CS SS DS FS GS, each {selector, base,
 * limit, flags}) and the hidden flags (env->hflags, just before them: CPL, CS32/CS64,
 * SS32, ADDSEG) lie in a context. In 64-bit mode Unicorn's register write of CS or SS sets
 * the selector only: the descriptor cache and the CPL stay as they were, so a privilege
 * change made here (SYSCALL, a delivery from CPL 3) must write them in a context (see
 * load_segs). Found with marker selectors and an FS base, checked against the flags of
 * a 64-bit engine. Returns the offset of segs[0], or -1 (hflags_off too).
 */
static int calib_segs(int *hflags_off)
{
	*hflags_off = -1;
	uc_engine *uc;
	if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK)
		return -1;
	uint16_t cs = 0x4d4b, ss = 0x5a5b, ds = 0x6c6d;
	uint64_t fsb = 0x1122334455667788ull;
	uc_reg_write(uc, UC_X86_REG_CS, &cs);
	uc_reg_write(uc, UC_X86_REG_SS, &ss);
	uc_reg_write(uc, UC_X86_REG_DS, &ds);
	uc_reg_write(uc, UC_X86_REG_FS_BASE, &fsb);
	int found = -1;
	uc_context *ctx;
	if (uc_context_alloc(uc, &ctx) == UC_ERR_OK) {
		uc_context_save(uc, ctx);
		size_t n = uc_context_size(uc);
		const uint8_t *p = (const uint8_t *)ctx;
		for (size_t off = 32; off + 6 * SEGC_SIZE <= n; off += 4) {
			uint32_t a, b, d, hf;
			uint64_t fb;
			memcpy(&a, p + off + SEGC_SIZE, 4);
			memcpy(&b, p + off + 2 * SEGC_SIZE, 4);
			memcpy(&d, p + off + 3 * SEGC_SIZE, 4);
			memcpy(&fb, p + off + 4 * SEGC_SIZE + SEGC_BASE, 8);
			memcpy(&hf, p + off - 8, 4);
			if (a == cs && b == ss && d == ds && fb == fsb &&
			    (hf & (HF_LMA | HF_CS64)) == (HF_LMA | HF_CS64)) {
				found = (int)off;
				break;
			}
		}
		uc_context_free(ctx);
	}
	uc_close(uc);
	if (found >= 0)
		*hflags_off = found - 8;
	return found;
}

static struct calib calibrate(void)
{
	static struct calib cached;
	static bool done;
	if (done)
		return cached;
	struct calib r = {-1, -1, -1, -1, -1};
	/* Where the CPU state starts: RAX is its first field. */
	uc_engine *uc;
	if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) == UC_ERR_OK) {
		uint64_t magic = 0x5aa5c33c0ff1ce55ull;
		uc_reg_write(uc, UC_X86_REG_RAX, &magic);
		uc_context *ctx;
		if (uc_context_alloc(uc, &ctx) == UC_ERR_OK) {
			uc_context_save(uc, ctx);
			for (int off = 0; off < 64; off++)
				if (!memcmp((uint8_t *)ctx + off, &magic, 8)) {
					r.data_off = off;
					break;
				}
			uc_context_free(ctx);
		}
		uc_close(uc);
	}
	r.segs_off = calib_segs(&r.hflags_off);
	/* mov ax, sel; mov ds, ax -> #GP(sel): the GDT limit is tiny. */
	static const uint8_t gp1[] = {0x66, 0xb8, 0x30, 0x12, 0x8e, 0xd8, 0xf4};
	static const uint8_t gp2[] = {0x66, 0xb8, 0x68, 0x24, 0x8e, 0xd8, 0xf4};
	/* xor ecx, ecx; div ecx -> #DE */
	static const uint8_t de[] = {0x31, 0xc9, 0xf7, 0xf1, 0xf4};
	size_t s1 = 0, s2 = 0, s3 = 0;
	uint8_t *a = calib_run(gp1, sizeof(gp1), &s1), *b = calib_run(gp2, sizeof(gp2), &s2),
		*d = calib_run(de, sizeof(de), &s3);
	int nold = 0;
	if (a && b && d && s1 == s2 && s2 == s3) {
		for (size_t off = 0; off + 4 <= s1; off += 4) {
			int32_t x, y, z;
			memcpy(&x, a + off, 4);
			memcpy(&y, b + off, 4);
			memcpy(&z, d + off, 4);
			if (x == 0x1230 && y == 0x2468 && z == 0)
				r.err_off = (int)off; /* the last one is inside the CPU state */
			else if (x == 13 && y == 13 && z == 0) {
				r.oldexc_off = (int)off;
				nold++;
			}
		}
	}
	if (nold != 1)
		r.oldexc_off = -1;
	free(a);
	free(b);
	free(d);
	cached = r;
	done = true;
	return r;
}

/* After an exception: read Unicorn's error code and clear its exception in flight. */
static uint32_t exc_settle(struct vmm_cpu *c)
{
	uint32_t v = 0;
	if (c->calib.err_off < 0 || uc_context_save(c->uc, c->ctx) != UC_ERR_OK)
		return 0;
	memcpy(&v, (uint8_t *)c->ctx + c->calib.err_off, 4);
	if (c->calib.oldexc_off >= 0) {
		int32_t none = -1;
		memcpy((uint8_t *)c->ctx + c->calib.oldexc_off, &none, 4);
		uc_context_restore(c->uc, c->ctx);
	}
	return v;
}

/* A segment cache as QEMU keeps it: the flags are the descriptor's high dword. */
static uint32_t seg_flags(const struct vmm_seg *sg)
{
	return ((sg->attr & 0xffu) << 8) | (((sg->attr >> 12) & 0xfu) << 20) |
	       (uint32_t)((sg->base >> 16) & 0xff) | (uint32_t)(sg->base & 0xff000000u);
}

/*
 * Load the CS and/or SS descriptor caches (NULL: unchanged) and the hidden flags that
 * follow from them, as the CPU model does when it loads them itself: the CPL is SS's
 * DPL, CS.L in long mode makes 64-bit code, else CS.D 32-bit code; SS.B the stack size;
 * ADDSEG outside 64-bit code when a DS, ES or SS base is not zero.
 */
static int load_segs(struct vmm_cpu *c, const struct vmm_seg *cs, const struct vmm_seg *ss)
{
	if (c->calib.segs_off < 0)
		return vmm_fail(VMM_EBACKEND, "unicorn: the segment caches were not found in "
				"its context (another Unicorn version?)");
	uc_err e = uc_context_save(c->uc, c->ctx);
	if (e != UC_ERR_OK)
		return uc_fail(e, "saving the CPU context");
	uint8_t *segs = (uint8_t *)c->ctx + c->calib.segs_off;
	uint8_t *hfp = (uint8_t *)c->ctx + c->calib.hflags_off;
	const struct vmm_seg *ld[2] = {cs, ss};
	for (int i = 0; i < 2; i++) {
		if (!ld[i])
			continue;
		uint8_t *sc = segs + (size_t)(i + 1) * SEGC_SIZE; /* segs[1] CS, segs[2] SS */
		uint32_t sel = ld[i]->sel, lim = ld[i]->limit, fl = seg_flags(ld[i]);
		uint64_t base = ld[i]->base;
		memcpy(sc, &sel, 4);
		memcpy(sc + SEGC_BASE, &base, 8);
		memcpy(sc + SEGC_BASE + 8, &lim, 4);
		memcpy(sc + SEGC_BASE + 12, &fl, 4);
	}
	uint32_t hf, csf, ssf;
	uint64_t bds, bes, bss;
	memcpy(&hf, hfp, 4);
	memcpy(&csf, segs + SEGC_SIZE + SEGC_BASE + 12, 4);
	memcpy(&ssf, segs + 2 * SEGC_SIZE + SEGC_BASE + 12, 4);
	memcpy(&bes, segs + SEGC_BASE, 8);
	memcpy(&bss, segs + 2 * SEGC_SIZE + SEGC_BASE, 8);
	memcpy(&bds, segs + 3 * SEGC_SIZE + SEGC_BASE, 8);
	if ((hf & HF_LMA) && (csf & DESCF_L))
		hf |= HF_CS32 | HF_SS32 | HF_CS64;
	else
		hf = (hf & ~(HF_CS32 | HF_CS64)) | ((csf & DESCF_B) ? HF_CS32 : 0);
	hf = (hf & ~3u) | ((ssf >> 13) & 3u);
	uint32_t nh = (ssf & DESCF_B) ? HF_SS32 : 0;
	if (!(hf & HF_CS64) && (!(hf & HF_CS32) || (bds | bes | bss) != 0))
		nh |= HF_ADDSEG;
	hf = (hf & ~(HF_SS32 | HF_ADDSEG)) | nh;
	memcpy(hfp, &hf, 4);
	e = uc_context_restore(c->uc, c->ctx);
	if (e != UC_ERR_OK)
		return uc_fail(e, "restoring the CPU context");
	if (cs)
		c->bits_dirty = true;
	return 0;
}

static void emu_destroy(struct vmm_cpu *c);

static int emu_create(struct vmm_machine *m, struct vmm_cpu **out)
{
	struct vmm_cpu *c = calloc(1, sizeof(*c));
	uc_err e;
	int rc;
	if (!c)
		return -VMM_ENOMEM;
	c->m = m;
	c->ram = vmm_machine_ram(m);
	c->ram_size = vmm_machine_ram_size(m);
	c->npages = (uint32_t)(c->ram_size >> 12);
	c->pg_state = calloc(c->npages, 1);
	c->pg_wr = calloc(c->npages, 1);
	c->pg_writes = calloc(c->npages, sizeof(*c->pg_writes));
	c->pg_blocks = calloc(c->npages, sizeof(*c->pg_blocks));
	if (!c->pg_state || !c->pg_wr || !c->pg_writes || !c->pg_blocks) {
		emu_destroy(c);
		return -VMM_ENOMEM;
	}
	c->target = UINT64_MAX;
	c->pass_pos = UINT64_MAX;
	c->ilimit = UINT64_MAX;
	c->bits = 32;
	c->calib = calibrate();
	uint64_t tcg_size = EMU_TCG_BUFFER;
	const char *knob = getenv("REWIND_TCG_BUFFER");
	if (knob && (vmm_parse_size(knob, &tcg_size) < 0 || tcg_size < EMU_TCG_BUFFER_MIN ||
		     tcg_size > EMU_TCG_BUFFER_MAX)) {
		emu_destroy(c);
		return vmm_fail(VMM_EINVAL, "REWIND_TCG_BUFFER=%s: not a size from 1M to 1G", knob);
	}
	e = uc_open(UC_ARCH_X86, UC_MODE_64, &c->uc);
	if (e != UC_ERR_OK) {
		c->uc = NULL;
		emu_destroy(c);
		return uc_fail(e, "uc_open");
	}
	/* Set before the engine initialises (the TLB mode below does that). */
	if ((e = uc_ctl_set_tcg_buffer_size(c->uc, (uint32_t)tcg_size)) != UC_ERR_OK) {
		rc = uc_fail(e, "translation buffer size");
		goto fail;
	}
	if ((e = uc_ctl_tlb_mode(c->uc, UC_TLB_VIRTUAL)) != UC_ERR_OK) {
		rc = uc_fail(e, "TLB mode");
		goto fail;
	}
	/* Unicorn 2.1.1 never makes the code buffer's first region allocation (QEMU does it
	 * per vCPU thread, in tcg_register_thread, which Unicorn left out): the first time
	 * the buffer fills, TCG "allocates" that same region again instead of flushing,
	 * zeroing every live translated block (their code and their TranslationBlock
	 * structs), and the next chained jump crashes. One flush here makes that allocation,
	 * so that every later fill takes TCG's own path: flush, then leave the block loop
	 * and translate again. It zeroes the buffer once, which is why it is not 1 GiB. */
	if ((e = uc_ctl_flush_tb(c->uc)) != UC_ERR_OK) {
		rc = uc_fail(e, "translation buffer");
		goto fail;
	}
	if ((e = uc_mem_map_ptr(c->uc, 0, c->ram_size, UC_PROT_ALL, c->ram)) != UC_ERR_OK) {
		rc = uc_fail(e, "mapping guest RAM");
		goto fail;
	}
	if ((e = uc_context_alloc(c->uc, &c->ctx)) != UC_ERR_OK) {
		rc = uc_fail(e, "context");
		goto fail;
	}
	if ((e = uc_hook_add(c->uc, &c->hooks[0], UC_HOOK_BLOCK, (void *)block_hook, c, 1, 0)) ||
	    (e = uc_hook_add(c->uc, &c->hooks[1], UC_HOOK_INTR, (void *)intr_hook, c, 1, 0)) ||
	    (e = uc_hook_add(c->uc, &c->hooks[2], UC_HOOK_TLB_FILL, (void *)tlb_fill_hook, c, 1,
			     0)) ||
	    (e = uc_hook_add(c->uc, &c->hooks[3], UC_HOOK_INSN, (void *)cpuid_hook, c, 1, 0,
			     UC_X86_INS_CPUID)) ||
	    (e = uc_hook_add(c->uc, &c->hooks[4], UC_HOOK_INSN_INVALID, (void *)insn_invalid_hook,
			     c, 1, 0))) {
		rc = uc_fail(e, "adding hooks");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	emu_destroy(c);
	return rc;
}

static void emu_destroy(struct vmm_cpu *c)
{
	if (!c)
		return;
	if (c->ctx)
		uc_context_free(c->ctx);
	if (c->uc)
		uc_close(c->uc);
	for (unsigned i = 0; i < EMU_BLOCK_BUCKETS; i++)
		for (struct emu_block *b = c->blocks[i], *n; b; b = n) {
			n = b->next;
			free(b);
		}
	for (unsigned i = 0; i < EMU_SITE_BUCKETS; i++)
		for (struct emu_site *s = c->sites[i], *n; s; s = n) {
			n = s->next;
			free(s);
		}
	free(c->pg_state);
	free(c->pg_wr);
	free(c->pg_writes);
	free(c->pg_blocks);
	free(c->pg_dirt);
	free(c->lm_dirt);
	free(c->ran);
	free(c->bp);
	free(c->wp);
	free(c);
}

/*
 * The VMM trampoline at VMM_VMM_AREA: a GDT (null, 32-bit code 0x08, data 0x10) and
 * code that loads the data segments and far-returns into the guest's 32-bit entry in
 * compatibility mode. Its instructions are not counted.
 */
static int emu_reset_pvh(struct vmm_cpu *c, uint32_t entry, uint32_t start_info)
{
	uint8_t *area = ram_ptr(c, VMM_VMM_AREA, 0x100);
	if (!area)
		return vmm_fail(VMM_EINTERNAL, "VMM area outside RAM");
	static const uint64_t gdt[3] = {0, VMM_PVH_GDT_CODE32, VMM_PVH_GDT_DATA32};
	memcpy(area, gdt, sizeof(gdt));
	uint8_t code[] = {
		0x66, 0xb8, 0x10, 0x00, /* mov ax, 0x10 */
		0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xe0, 0x8e, 0xe8, 0x8e, 0xd0, /* ds es fs gs ss */
		0x6a, 0x08,             /* push 8 */
		0x68, 0, 0, 0, 0,       /* push entry (sign-extended imm32: patched below) */
		0x48, 0xcb,             /* retfq */
	};
	memcpy(code + 17, &entry, 4);
	if (entry & 0x80000000u)
		return vmm_fail(VMM_ELAYOUT, "PVH entry %#x above 2 GiB is not supported", entry);
	/* Exit counting (a kvm recording): the page as kvm's reset leaves it, GDT only. */
	uint8_t *vpage = ram_ptr(c, VMM_VMM_AREA, 0x1000);
	uint8_t *keep = c->xmode && vpage ? malloc(0x1000) : NULL;
	if (keep)
		memcpy(keep, vpage, 0x1000);
	memcpy(area + 0x40, code, sizeof(code));
	uc_x86_mmr gdtr = {.base = VMM_VMM_AREA, .limit = sizeof(gdt) - 1};
	uc_x86_mmr idtr = {.base = 0, .limit = 0}; /* as kvm's: no IDT until the guest loads one */
	uc_reg_write(c->uc, UC_X86_REG_GDTR, &gdtr);
	uc_reg_write(c->uc, UC_X86_REG_IDTR, &idtr);
	static const int gprs[] = {UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX,
				   UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_RBP,
				   UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10,
				   UC_X86_REG_R11, UC_X86_REG_R12, UC_X86_REG_R13,
				   UC_X86_REG_R14, UC_X86_REG_R15};
	for (size_t i = 0; i < sizeof(gprs) / sizeof(gprs[0]); i++)
		wreg(c, gprs[i], 0);
	wreg(c, UC_X86_REG_RSP, VMM_VMM_AREA + 0x1000);
	wreg(c, UC_X86_REG_CR0, CR0_PE | (1ull << 4));
	wreg(c, UC_X86_REG_CR4, 0);
	wreg(c, UC_X86_REG_EFLAGS, 2);
	/* x87/SSE state as kvm's reset sets it (FNINIT's control word, MXCSR's power-on
	 * value: every SSE exception masked), the registers zero. Unicorn's own reset leaves
	 * MXCSR 0, which unmasks them all. */
	wreg(c, UC_X86_REG_FPCW, 0x37f);
	wreg(c, UC_X86_REG_FPSW, 0);
	wreg(c, UC_X86_REG_MXCSR, 0x1f80);
	static const uint64_t zero2[2] = {0, 0};
	for (int i = 0; i < 16; i++)
		uc_reg_write(c->uc, i < 8 ? UC_X86_REG_XMM0 + i : UC_X86_REG_XMM8 + (i - 8), zero2);
	/* The trampoline runs at CPL 0 whatever ran before (a reset from user mode). */
	struct vmm_seg cs0 = {.sel = 0x08, .limit = 0xffffffffu, .attr = 0x9bu | (3u << 14)};
	struct vmm_seg ss0 = {.sel = 0x10, .limit = 0xffffffffu, .attr = 0x93u | (3u << 14)};
	int lr = load_segs(c, &cs0, &ss0);
	if (lr < 0)
		return lr;
	c->efer_lme_shadow = false;
	/* The trampoline runs uncounted, with no block accounting. */
	uc_hook_del(c->uc, c->hooks[0]);
	uc_err e = uc_emu_start(c->uc, VMM_VMM_AREA + 0x40, entry, 0, 0);
	uc_hook_add(c->uc, &c->hooks[0], UC_HOOK_BLOCK, (void *)block_hook, c, 1, 0);
	if (keep) {
		/* Its code, its stack and the accessed bits its loads set are emu's alone. */
		memcpy(vpage, keep, 0x1000);
		free(keep);
	}
	if (e != UC_ERR_OK)
		return uc_fail(e, "PVH entry trampoline");
	/* Drop every translation of guest RAM (the trampoline's were made without the block
	 * hook; a previous run's may describe other code). Not uc_ctl_flush_tb: Unicorn
	 * 2.1.1's tb_flush memsets its whole code buffer (EMU_TCG_BUFFER) and everything
	 * must be translated again. Paging is off here, so addresses are physical. */
	uc_ctl_remove_cache(c->uc, 0, c->ram_size);
	all_dirty(c); /* the loader wrote RAM: check every cached decode once */
	wreg(c, UC_X86_REG_RSP, 0);
	wreg(c, UC_X86_REG_RBX, start_info);
	wreg(c, UC_X86_REG_RIP, entry);
	c->icount = 0;
	c->cur = NULL;
	c->prev_kind = X86_OTHER;
	c->bits = 32;
	c->bits_dirty = false;
	c->tsc_offset = 0;
	c->intr_pos = UINT64_MAX;
	c->xcount = 0;
	c->inj_vec = -1;
	c->want_window = false;
	c->xran = false;
	c->xexact = true;
	if (c->lm_dirt)
		memset(c->lm_dirt, 0, c->npages);
	return 0;
}

#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_SFMASK 0xc0000084u
#define EFER_SCE (1ull << 0)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_VM (1ull << 17)

/*
 * SYSCALL, stopped before it (site_hook): Unicorn 2.1.1 replaces it by its hooks, so the
 * whole architectural effect is made here. With EFER.SCE clear it raises #UD (returns 6).
 * In IA-32e mode: RCX = the next RIP, R11 = RFLAGS (RF clear), RFLAGS &= ~SFMASK, CS =
 * STAR[47:32] & ~3 (flat 64-bit code, DPL 0), SS = STAR[47:32] + 8 (flat data, DPL 0),
 * CPL 0, RIP = LSTAR from 64-bit code, CSTAR from compatibility mode (AMD, as the CPUID
 * table says). Outside IA-32e mode (AMD's legacy SYSCALL): ECX = the next EIP, IF, VM and
 * RF cleared, flat 32-bit CS and SS, EIP = STAR[31:0]. The descriptors are not read from
 * the GDT: SYSCALL loads fixed values. Returns 0, 6, or negative on a backend error.
 */
static int do_syscall(struct vmm_cpu *c)
{
	if (!(rmsr(c, MSR_EFER) & EFER_SCE))
		return 6;
	uint64_t star = rmsr(c, MSR_STAR), rflags = rreg(c, UC_X86_REG_EFLAGS);
	uint16_t sel = (uint16_t)(star >> 32);
	bool lm = long_mode(c);
	struct vmm_seg cs = {.sel = (uint16_t)(sel & 0xfffc), .limit = 0xffffffffu,
			     .attr = 0xbu | 0x10u | 0x80u | (1u << 15) | (lm ? 1u << 13 : 1u << 14)};
	struct vmm_seg ss = {.sel = (uint16_t)(sel + 8), .limit = 0xffffffffu,
			     .attr = 0x3u | 0x10u | 0x80u | (1u << 14) | (1u << 15)};
	uint64_t rip;
	if (lm) {
		wreg(c, UC_X86_REG_RCX, c->sys_next);
		wreg(c, UC_X86_REG_R11, rflags & ~RFLAGS_RF);
		rflags &= ~(rmsr(c, MSR_SFMASK) | RFLAGS_RF);
		rip = c->bits == 64 ? rmsr(c, MSR_LSTAR) : rmsr(c, MSR_CSTAR);
	} else {
		wreg(c, UC_X86_REG_RCX, c->sys_next & 0xffffffffull);
		rflags &= ~(RFLAGS_IF | RFLAGS_VM | RFLAGS_RF);
		rip = star & 0xffffffffull;
	}
	int r = load_segs(c, &cs, &ss);
	if (r < 0)
		return r;
	wreg(c, UC_X86_REG_EFLAGS, rflags);
	wreg(c, UC_X86_REG_RIP, rip);
	int bits = lm ? 64 : 32;
	c->bits_dirty = false;
	if (bits != c->bits)
		memset(c->front, 0, sizeof(c->front)); /* it holds decodes of one size */
	c->bits = bits;
	c->icount++;
	c->prev_kind = X86_SYSCALL;
	return 0;
}

static int x_entry(struct vmm_cpu *c, struct vmm_exit *exit);
static void x_prepare(struct vmm_cpu *c);

static int emu_run(struct vmm_cpu *c, uint64_t budget, struct vmm_exit *exit)
{
	uint64_t target = budget == UINT64_MAX ? UINT64_MAX : c->icount + budget;
	if (c->xmode) {
		target = UINT64_MAX; /* the budget counts exits (x_entry) */
		if (!c->xseek)
			c->xlimit = budget > UINT64_MAX - c->xcount ? UINT64_MAX
								   : c->xcount + budget;
	}
	for (;;) {
		if (c->xmode) {
			int xr = x_entry(c, exit);
			if (xr)
				return xr < 0 ? xr : 0;
		} else if (c->icount != c->intr_pos && atomic_exchange(&c->kick, 0)) {
			exit->reason = VMM_EXIT_KICK;
			return 0;
		}
		if (c->xmode) {
			/* x_entry placed c->target */
		} else if (c->icount >= target) {
			exit->reason = VMM_EXIT_BUDGET;
			return 0;
		}
		bool shadow = c->prev_kind == X86_STI || c->prev_kind == X86_MOVSS;
		if (!c->xmode)
			c->target = target;
		if (!c->xmode && intr_deliverable(c)) {
			if (shadow) {
				/* One more instruction, then the interrupt. */
				if (c->target > c->icount + 1)
					c->target = c->icount + 1;
			} else {
				uint8_t vec = vmm_intr_ack(c->m);

				uint64_t rip = rreg(c, UC_X86_REG_RIP);
				c->intr_pos = c->icount;
				int dr = deliver_or_shutdown(c, vec, false, 0, false, rip, rip, exit);
				if (dr)
					return dr < 0 ? dr : 0;
				c->prev_kind = X86_OTHER;
				continue;
			}
		}
		c->stop = ES_NONE;
		c->stop_rip_valid = false;
		c->exc_stop = false;
		c->pf_pending = false;
		c->pf_fetch = false;
		c->gp_pending = false;
		c->watch_pending = false;
		c->self_halt = false;
		c->bp_pos = UINT64_MAX;
		c->watch_open = c->nwp && c->icount == c->pass_pos;
		if (c->watch_open && c->target > c->icount + 1)
			c->target = c->icount + 1; /* one instruction through the watched pages */
		c->cur = NULL;
		c->watch_if = (c->xmode ? c->want_window : vmm_intr_pending(c->m)) &&
			      !(rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF);
		uint64_t rip = rreg(c, UC_X86_REG_RIP);
		c->slow = true;
		c->xexact = false; /* the guest may run: only an exit names the point again */
		uc_err e = uc_emu_start(c->uc, rip, UINT64_MAX, 0, 0);
		enum emu_stop why = c->stop;
		if (c->watch_opened) {
			/* Close the watched pages again: drop the entries the pass made. */
			uc_ctl_flush_tlb(c->uc);
			memset(c->pg_wr, 0, c->npages);
			c->watch_opened = false;
		}
		c->watch_open = false;
		c->stop = ES_NONE;
		c->exc_stop = false;
		if (c->stop_rip_valid) {

			wreg(c, UC_X86_REG_RIP, c->stop_rip);
			c->stop_rip_valid = false;
		}
		if (c->self_halt)
			return vmm_fail(VMM_EBACKEND, "the software CPU ran a HLT by itself (RIP "
					"%#llx after it): our decode of its block did not hold it",
					(unsigned long long)rreg(c, UC_X86_REG_RIP));

		if (e == UC_ERR_EXCEPTION && c->watch_pending && !c->pf_pending && !c->gp_pending &&
		    why == ES_NONE) {
			/*
			 * A watched page: stop before the instruction that accesses it. First
			 * in its block, it may be in the shadow of the STI or MOV SS that ended
			 * the block before (prev_kind): that holds until it has run.
			 */
			if (!c->cur || !settle_at(c, rreg(c, UC_X86_REG_RIP)) ||
			    c->icount != c->cur_start)
				c->prev_kind = X86_OTHER;
			c->cur = NULL;
			c->watch_pending = false;
			exit->reason = VMM_EXIT_WATCH;
			/* The fill saw only the page: the address the instruction accesses. */
			exit->addr = exact_fault_addr(c, c->watch_va & ~0xfffull);
			exit->access = c->watch_acc;
			return 0;
		}
		if (e == UC_ERR_EXCEPTION && (c->pf_pending || c->gp_pending) && why == ES_NONE) {
			/* A refused TLB fill: RIP is on the faulting instruction. */
			uint64_t frip = rreg(c, UC_X86_REG_RIP);
			if (c->cur)
				settle_at(c, frip);
			c->cur = NULL;
			c->exc_vector = c->gp_pending ? 13 : 14;
			c->exc_soft = false;
			why = ES_EXC;
		} else if (e != UC_ERR_OK && why == ES_NONE) {
			return vmm_fail(VMM_EGUEST, "guest stopped the software CPU at %#llx: %s",
					(unsigned long long)rreg(c, UC_X86_REG_RIP),
					uc_strerror(e));
		}
		if (why == ES_NONE && c->cur) {
			/* Returned by itself (e.g. `until`): if RIP is inside the block, settle. */
			settle_at(c, rreg(c, UC_X86_REG_RIP));
		}
		if (c->cur) {
			c->prev_kind = c->cur->last_kind == 0xFF ? X86_OTHER : c->cur->last_kind;
			if (c->cur->last_kind == 0xFF)
				c->bits_dirty = true;
			c->cur = NULL;
		}
		c->xran = true;
		switch (why) {
		case ES_NONE:
		case ES_RETRANSLATE:
		case ES_IO_INTR:
		case ES_IF_OPEN:
			continue;
		case ES_XEXIT:
			c->xran = false; /* counted: x_entry runs kvm's step after it */
			continue;
		case ES_EXC: {
			int v = c->exc_vector;
			bool soft = c->exc_soft;
			uint64_t rip2 = rreg(c, UC_X86_REG_RIP);
			uint64_t ret = rip2; /* after a trap, on a fault */
			uint64_t frip = soft ? rip2 - c->exc_len : rip2;
			bool he = !soft && vmm_xd_has_error_code(v);
			uint32_t err = 0;
			uint32_t uerr = exc_settle(c);
			if (c->gp_pending)
				uerr = 0;
			if (v == 14 && c->pf_pending) {
				err = c->pf_err;
				uint64_t pg = c->pf_addr & ~0xfffull;
				if (c->pf_fetch) /* the instruction's first byte in the page */
					c->pf_addr = (rip2 & ~0xfffull) == pg ? rip2 : pg;
				else
					c->pf_addr = exact_fault_addr(c, pg);
			} else if (v == 14) {
				c->pf_addr = rreg(c, UC_X86_REG_CR2);
			} else if (he && v != 8) {
				err = uerr;
			}
			if (v == 14 && c->pf_pending)
				c->pf_pending = false;
			c->prev_kind = X86_OTHER;

			/* A fault retires nothing: no kick stop at this position after it (see
			 * intr_pos), or the recording would log an event between the delivery
			 * and the next instruction, where a replay cannot stop. */
			if (!soft)
				c->intr_pos = c->icount;
			int dr = deliver_or_shutdown(c, v, he, err, soft, ret, frip, exit);
			if (dr)
				return dr < 0 ? dr : 0;
			continue;
		}
		case ES_HLT:
			c->xran = false; /* an exit */
			exit->reason = VMM_EXIT_HLT;
			return 0; /* xmode: counted, and no step before it returns (as kvm) */
		case ES_BUDGET:
			/* The stop's code hook goes now: left in place, every later pass over
			 * that instruction (a hot loop) would pay for a hook call. */
			budget_clear(c);
			if (c->icount == c->bp_pos) {
				exit->reason = VMM_EXIT_BREAK;
				return 0;
			}
			if (c->icount >= target) {
				exit->reason = VMM_EXIT_BUDGET;
				return 0;
			}
			continue; /* a shadow step ended: deliver now */
		case ES_KICK:
			if (c->xmode)
				continue; /* x_entry: a window that opened here first, then the kick */
			atomic_store(&c->kick, 0);
			exit->reason = VMM_EXIT_KICK;
			return 0;
		case ES_IO_STOP:
			c->xran = false;
			exit->reason = vmm_machine_stop_requested(c->m) ? VMM_EXIT_POWEROFF
									: VMM_EXIT_KICK;
			return 0;
		case ES_ERROR:
			return -VMM_EBACKEND;
		case ES_SYSCALL: {
			int r = do_syscall(c);
			if (r < 0)
				return r;
			if (r > 0) {
				/* #UD: delivered as a fault on the SYSCALL (as ES_EXC: intr_pos). */
				uint64_t at = rreg(c, UC_X86_REG_RIP);
				c->intr_pos = c->icount;
				c->prev_kind = X86_OTHER;
				int dr = deliver_or_shutdown(c, r, false, 0, false, at, at, exit);
				if (dr)
					return dr < 0 ? dr : 0;
			}
			continue;
		}
		}
	}
}

static void emu_kick(struct vmm_cpu *c)
{
	atomic_store(&c->kick, 1);
}

static vmm_pos_t emu_pos(struct vmm_cpu *c)
{
	if (c->xmode)
		return c->xcount;
	return c->icount;
}

/* Segment state beyond the selector is not readable through Unicorn's API; report the
 * selector and, where known, the descriptor from the GDT. */
static void seg_from_gdt(struct vmm_cpu *c, uint16_t sel, struct vmm_seg *s)
{
	memset(s, 0, sizeof(*s));
	s->sel = sel;
	uc_x86_mmr gdtr = {0};
	uc_reg_read(c->uc, UC_X86_REG_GDTR, &gdtr);
	uint64_t d = 0;
	if (sel < 4 || (uint32_t)(sel & ~7) + 7 > gdtr.limit ||
	    read_virt_raw(c, gdtr.base + (sel & ~7u), &d, 8, false) < 0)
		return;
	s->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	s->limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16));
	if ((d >> 55) & 1)
		s->limit = (s->limit << 12) | 0xfff;
	s->attr = (uint32_t)((d >> 40) & 0xff) | (uint32_t)(((d >> 52) & 0xf) << 12);
}

/* The general registers, RIP and RFLAGS: Unicorn's id and their place in vmm_regs. */
static const struct {
	int id;
	size_t off;
} gpr_map[] = {
	{UC_X86_REG_RAX, offsetof(struct vmm_regs, rax)}, {UC_X86_REG_RBX, offsetof(struct vmm_regs, rbx)},
	{UC_X86_REG_RCX, offsetof(struct vmm_regs, rcx)}, {UC_X86_REG_RDX, offsetof(struct vmm_regs, rdx)},
	{UC_X86_REG_RSI, offsetof(struct vmm_regs, rsi)}, {UC_X86_REG_RDI, offsetof(struct vmm_regs, rdi)},
	{UC_X86_REG_RBP, offsetof(struct vmm_regs, rbp)}, {UC_X86_REG_RSP, offsetof(struct vmm_regs, rsp)},
	{UC_X86_REG_R8, offsetof(struct vmm_regs, r8)},   {UC_X86_REG_R9, offsetof(struct vmm_regs, r9)},
	{UC_X86_REG_R10, offsetof(struct vmm_regs, r10)}, {UC_X86_REG_R11, offsetof(struct vmm_regs, r11)},
	{UC_X86_REG_R12, offsetof(struct vmm_regs, r12)}, {UC_X86_REG_R13, offsetof(struct vmm_regs, r13)},
	{UC_X86_REG_R14, offsetof(struct vmm_regs, r14)}, {UC_X86_REG_R15, offsetof(struct vmm_regs, r15)},
	{UC_X86_REG_RIP, offsetof(struct vmm_regs, rip)}, {UC_X86_REG_EFLAGS, offsetof(struct vmm_regs, rflags)},
};

static int emu_get_regs(struct vmm_cpu *c, struct vmm_regs *r)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(gpr_map) / sizeof(gpr_map[0]); i++)
		*(uint64_t *)((uint8_t *)r + gpr_map[i].off) = rreg(c, gpr_map[i].id);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_CS), &r->cs);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_DS), &r->ds);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_ES), &r->es);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_FS), &r->fs);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_GS), &r->gs);
	seg_from_gdt(c, (uint16_t)rreg(c, UC_X86_REG_SS), &r->ss);
	uc_x86_mmr m = {0};
	uc_reg_read(c->uc, UC_X86_REG_GDTR, &m);
	r->gdt.base = m.base;
	r->gdt.limit = (uint16_t)m.limit;
	uc_reg_read(c->uc, UC_X86_REG_IDTR, &m);
	r->idt.base = m.base;
	r->idt.limit = (uint16_t)m.limit;
	uc_reg_read(c->uc, UC_X86_REG_TR, &m);
	r->tr.sel = m.selector;
	r->tr.base = m.base;
	r->tr.limit = m.limit;
	r->tr.attr = m.flags;
	uc_reg_read(c->uc, UC_X86_REG_LDTR, &m);
	r->ldt.sel = m.selector;
	r->ldt.base = m.base;
	r->ldt.limit = m.limit;
	r->ldt.attr = m.flags;
	r->cr0 = rreg(c, UC_X86_REG_CR0);
	r->cr2 = rreg(c, UC_X86_REG_CR2);
	r->cr3 = rreg(c, UC_X86_REG_CR3);
	r->cr4 = rreg(c, UC_X86_REG_CR4);
	r->cr8 = rreg(c, UC_X86_REG_CR8);
	r->efer = rmsr(c, MSR_EFER);
	if (!c->efer_lme_shadow)
		r->efer &= ~EFER_LME;
	if (!long_mode(c))
		r->efer &= ~EFER_LMA;
	r->fs_base = rreg(c, UC_X86_REG_FS_BASE);
	r->gs_base = rreg(c, UC_X86_REG_GS_BASE);
	uc_x86_msr kgs = {.rid = 0xc0000102};
	uc_reg_read(c->uc, UC_X86_REG_MSR, &kgs);
	r->kernel_gs_base = kgs.value;
	return 0;
}

static int emu_get_fpregs(struct vmm_cpu *c, struct vmm_fpregs *f)
{
	memset(f, 0, sizeof(*f));
	f->fctrl = (uint32_t)rreg(c, UC_X86_REG_FPCW);
	f->fstat = (uint32_t)rreg(c, UC_X86_REG_FPSW);
	f->ftag = (uint32_t)rreg(c, UC_X86_REG_FPTAG);
	f->fiseg = (uint32_t)rreg(c, UC_X86_REG_FCS);
	f->fioff = (uint32_t)rreg(c, UC_X86_REG_FIP);
	f->foseg = (uint32_t)rreg(c, UC_X86_REG_FDS);
	f->fooff = (uint32_t)rreg(c, UC_X86_REG_FDP);
	f->fop = (uint32_t)rreg(c, UC_X86_REG_FOP);
	f->mxcsr = (uint32_t)rreg(c, UC_X86_REG_MXCSR);
	/* Unicorn's FP0..7 are the physical registers; ST(i) is R((TOP + i) mod 8). */
	unsigned top = (f->fstat >> 11) & 7;
	for (unsigned i = 0; i < 8; i++) {
		uint8_t v[16] = {0}; /* 64-bit mantissa, then 16-bit sign and exponent */
		uc_reg_read(c->uc, UC_X86_REG_FP0 + (int)((top + i) & 7), v);
		memcpy(f->st[i], v, 10);
	}
	for (int i = 0; i < 16; i++)
		uc_reg_read(c->uc, UC_X86_REG_XMM0 + i, f->xmm[i]);
	return 0;
}

static bool seg_eq(const struct vmm_seg *a, const struct vmm_seg *b)
{
	return a->sel == b->sel && a->base == b->base && a->limit == b->limit && a->attr == b->attr;
}

/*
 * The part of vmm_regs that set_regs leaves alone, compared with the current state: the
 * name of the first field that differs, or NULL. Segment registers hold hidden state
 * that Unicorn reloads from the GDT, and CR0/CR3/CR4/EFER change how this file walks
 * page tables and counts code: changing them from outside would need more than a write.
 */
static const char *fixed_field_changed(const struct vmm_regs *cur, const struct vmm_regs *r)
{
	static const struct {
		const char *name;
		size_t off;
	} segs[] = {
		{"cs", offsetof(struct vmm_regs, cs)}, {"ds", offsetof(struct vmm_regs, ds)},
		{"es", offsetof(struct vmm_regs, es)}, {"fs", offsetof(struct vmm_regs, fs)},
		{"gs", offsetof(struct vmm_regs, gs)}, {"ss", offsetof(struct vmm_regs, ss)},
		{"tr", offsetof(struct vmm_regs, tr)}, {"ldtr", offsetof(struct vmm_regs, ldt)},
	};
	for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
		if (!seg_eq((const struct vmm_seg *)((const uint8_t *)cur + segs[i].off),
			    (const struct vmm_seg *)((const uint8_t *)r + segs[i].off)))
			return segs[i].name;
	if (cur->gdt.base != r->gdt.base || cur->gdt.limit != r->gdt.limit)
		return "gdtr";
	if (cur->idt.base != r->idt.base || cur->idt.limit != r->idt.limit)
		return "idtr";
	if (cur->cr0 != r->cr0)
		return "cr0";
	if (cur->cr3 != r->cr3)
		return "cr3";
	if (cur->cr4 != r->cr4)
		return "cr4";
	if (cur->cr8 != r->cr8)
		return "cr8";
	if (cur->efer != r->efer)
		return "efer";
	return NULL;
}

static int emu_set_regs(struct vmm_cpu *c, const struct vmm_regs *r)
{
	struct vmm_regs cur;
	emu_get_regs(c, &cur);
	const char *fixed = fixed_field_changed(&cur, r);
	if (fixed)
		return vmm_fail(VMM_EBACKEND, "the emu backend cannot change %s from outside the "
				"guest", fixed);
	for (size_t i = 0; i < sizeof(gpr_map) / sizeof(gpr_map[0]); i++)
		wreg(c, gpr_map[i].id, *(const uint64_t *)((const uint8_t *)r + gpr_map[i].off));
	wreg(c, UC_X86_REG_FS_BASE, r->fs_base);
	wreg(c, UC_X86_REG_GS_BASE, r->gs_base);
	write_cr2(c, r->cr2);
	uc_x86_msr kgs = {.rid = 0xc0000102, .value = r->kernel_gs_base};
	uc_reg_write(c->uc, UC_X86_REG_MSR, &kgs);
	return 0;
}

/*
 * Saved state: a header, Unicorn's CPU context, our own counters, and in exit counting
 * (xmode) the landmark page set, one bit a page. A checkpoint of an exit-counted replay
 * must carry all that kvm's step and the landmark search go on from.
 */
struct emu_state_hdr {
	uint32_t magic, version;
	uint64_t icount, tsc_offset, tsc_aux;
	uint32_t bits, efer_lme_shadow, prev_kind, ctx_size;
	/* exit counting */
	uint64_t xcount;
	int32_t inj_vec;
	uint8_t xmode, want_window, xran, xexact;
	uint32_t lm_bytes; /* bytes of landmark page set after the context (0 unless xmode) */
	uint32_t pad;
};
#define EMU_STATE_MAGIC 0x454d5543u /* "EMUC" */

/*
 * The CPU part of a Unicorn context: the context starts with a small header of the
 * engine's own (its first member is the size of the CPU data); the data starts where
 * calibration found RAX. Only the data travels.
 */
static size_t ctx_data(struct vmm_cpu *c, uint8_t **data)
{
	size_t csz = uc_context_size(c->uc), n;
	memcpy(&n, c->ctx, sizeof(n));
	if (c->calib.data_off < 0 || n + (size_t)c->calib.data_off > csz)
		return 0;
	*data = (uint8_t *)c->ctx + c->calib.data_off;
	return n;
}

static int emu_save(struct vmm_cpu *c, void **blob, size_t *len)
{
	uc_err e = uc_context_save(c->uc, c->ctx);
	if (e != UC_ERR_OK)
		return uc_fail(e, "saving the CPU context");
	uint8_t *data;
	size_t n = ctx_data(c, &data);
	if (!n)
		return vmm_fail(VMM_EINTERNAL, "unexpected Unicorn context layout");
	uint32_t lmb = c->xmode ? (c->npages + 7) / 8 : 0;
	uint8_t *b = malloc(sizeof(struct emu_state_hdr) + n + lmb);
	if (!b)
		return -VMM_ENOMEM;
	struct emu_state_hdr h = {.magic = EMU_STATE_MAGIC,
				  .version = 2,
				  .icount = c->icount,
				  .tsc_offset = c->tsc_offset,
				  .tsc_aux = c->tsc_aux,
				  .bits = (uint32_t)c->bits,
				  .efer_lme_shadow = c->efer_lme_shadow,
				  .prev_kind = c->prev_kind,
				  .ctx_size = (uint32_t)n,
				  .xcount = c->xcount,
				  .inj_vec = c->inj_vec,
				  .xmode = c->xmode,
				  .want_window = c->want_window,
				  /* unused outside exit counting: saved as zero there */
				  .xran = c->xmode && c->xran,
				  .xexact = c->xmode && c->xexact,
				  .lm_bytes = lmb};
	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), data, n);
	uint8_t *lm = b + sizeof(h) + n;
	memset(lm, 0, lmb);
	for (uint32_t pg = 0; lmb && pg < c->npages; pg++)
		if (c->lm_dirt[pg])
			lm[pg / 8] |= (uint8_t)(1u << (pg % 8));
	*blob = b;
	*len = sizeof(h) + n + lmb;
	return 0;
}

static int emu_load(struct vmm_cpu *c, const void *blob, size_t len)
{
	struct emu_state_hdr h;
	if (len < sizeof(h))
		return vmm_fail(VMM_ESTATE, "emu state: %zu bytes is too short", len);
	memcpy(&h, blob, sizeof(h));
	uc_context_save(c->uc, c->ctx); /* fills our header */
	uint8_t *data = NULL;
	size_t n = ctx_data(c, &data);
	uint32_t lmb = c->xmode ? (c->npages + 7) / 8 : 0;
	if (h.magic != EMU_STATE_MAGIC || h.version != 2 || h.ctx_size != n || !n ||
	    len != sizeof(h) + n + lmb || (h.bits != 16 && h.bits != 32 && h.bits != 64) ||
	    h.prev_kind > X86_SYSCALL)
		return vmm_fail(VMM_ESTATE, "emu state: bad header or size");
	if (h.xmode != c->xmode || h.lm_bytes != lmb || h.inj_vec < -1 || h.inj_vec > 255)
		return vmm_fail(VMM_ESTATE, "emu state: saved %s exit counting, loaded %s it",
				h.xmode ? "with" : "without", c->xmode ? "with" : "without");
	memcpy(data, (const uint8_t *)blob + sizeof(h), n);
	uc_err e = uc_context_restore(c->uc, c->ctx);
	if (e != UC_ERR_OK)
		return uc_fail(e, "restoring the CPU context");
	uc_ctl_flush_tlb(c->uc);
	/*
	 * RAM may have been loaded too, behind Unicorn's back. Every cached decode is
	 * checked against RAM at its block's next execution, and a block whose code changed
	 * loses its translations there (block_hook): that catches every stale translation,
	 * since each translated block gets its decode at its first execution. Not
	 * uc_ctl_flush_tb: it memsets Unicorn's whole code buffer at every restore.
	 */
	memset(c->pg_wr, 0, c->npages);
	all_dirty(c);
	c->icount = h.icount;
	c->tsc_offset = h.tsc_offset;
	c->intr_pos = UINT64_MAX;
	c->tsc_aux = h.tsc_aux;
	c->bits = (int)h.bits;
	c->efer_lme_shadow = h.efer_lme_shadow;
	c->prev_kind = (uint8_t)h.prev_kind;
	c->cur = NULL;
	c->bits_dirty = false;
	c->xcount = h.xcount;
	c->inj_vec = h.inj_vec;
	c->want_window = h.want_window;
	c->xran = h.xran;
	c->xexact = h.xexact;
	c->xseek = false;
	const uint8_t *lm = (const uint8_t *)blob + sizeof(h) + n;
	for (uint32_t pg = 0; lmb && pg < c->npages; pg++)
		c->lm_dirt[pg] = (lm[pg / 8] >> (pg % 8)) & 1;
	return 0;
}

static int emu_read_virt(struct vmm_cpu *c, uint64_t va, void *buf, size_t len)
{
	return read_virt_raw(c, va, buf, len, false);
}

/*
 * A debugger's write. Pages are translated as the supervisor reads them (a breakpoint
 * byte goes into read-only code, as ptrace allows), all of them before the first byte
 * is written. The VMM writes behind Unicorn's back, so what was made from the old bytes
 * must go: our decodes of the page are marked for checking, and a block whose code
 * changed is retranslated before it runs again (block_hook); the TLB is flushed in case
 * the bytes were page tables.
 */
static int emu_write_virt(struct vmm_cpu *c, uint64_t va, const void *buf, size_t len)
{
	if (!len)
		return 0;
	if (va + len < va)
		return vmm_fail(VMM_EGUEST, "%#llx+%zu wraps around", (unsigned long long)va, len);
	for (uint64_t p = va & ~0xfffull; p < va + len && p >= (va & ~0xfffull); p += 0x1000) {
		uint64_t pa;
		bool w, x;
		uint32_t err;
		uint64_t at = p < va ? va : p;
		if (long_mode(c) && (uint64_t)((int64_t)(at << 16) >> 16) != at)
			return vmm_fail(VMM_EGUEST, "%#llx is not a canonical address",
					(unsigned long long)at);
		if (!walk(c, at, ACC_READ, false, false, &pa, &w, &x, &err) || !ram_ptr(c, pa, 1))
			return vmm_fail(VMM_EGUEST, "%#llx is not mapped to RAM",
					(unsigned long long)at);
	}
	const uint8_t *in = buf;
	while (len) {
		uint64_t pa;
		bool w, x;
		uint32_t err;
		if (!walk(c, va, ACC_READ, false, false, &pa, &w, &x, &err))
			return -VMM_EINTERNAL; /* translated a moment ago */
		size_t chunk = 0x1000 - (va & 0xfff);
		if (chunk > len)
			chunk = len;
		memcpy(ram_ptr(c, pa, 1), in, chunk);
		uint32_t pg = (uint32_t)(pa >> 12);
		if (c->tracking)
			c->pg_dirt[pg] = 1;
		page_dirty(c, pg);
		in += chunk;
		va += chunk;
		len -= chunk;
	}
	uc_ctl_flush_tlb(c->uc);
	memset(c->pg_wr, 0, c->npages);
	return 0;
}

static int emu_set_debug(struct vmm_cpu *c, const struct vmm_debug *d)
{
	uint64_t *bp = NULL;
	struct vmm_watch *wp = NULL;
	if (d->nbp && !(bp = malloc(d->nbp * sizeof(*bp))))
		return -VMM_ENOMEM;
	if (d->nwp && !(wp = malloc(d->nwp * sizeof(*wp)))) {
		free(bp);
		return -VMM_ENOMEM;
	}
	if (d->nbp)
		memcpy(bp, d->bp, d->nbp * sizeof(*bp));
	for (unsigned i = 0; i < d->nwp; i++) {
		if (!d->wp[i].len || d->wp[i].addr + d->wp[i].len < d->wp[i].addr) {
			free(bp);
			free(wp);
			return vmm_fail(VMM_EINVAL, "bad watchpoint range");
		}
		wp[i] = d->wp[i];
	}
	bool had_watch = c->nwp != 0;
	free(c->bp);
	free(c->wp);
	c->bp = bp;
	c->nbp = d->nbp;
	c->wp = wp;
	c->nwp = d->nwp;
	c->pass_pos = d->pass_pos;
	if (d->nwp || had_watch) {
		/* TLB entries made before may open (or keep closed) watched pages. */
		uc_ctl_flush_tlb(c->uc);
		memset(c->pg_wr, 0, c->npages);
	}
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct vmm_code_range *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int emu_track(struct vmm_cpu *c, struct vmm_track *t)
{
	t->code = NULL;
	t->ncode = 0;
	if (!c->pg_dirt) {
		if (!(c->pg_dirt = calloc(c->npages, 1)))
			return -VMM_ENOMEM;
		c->tracking = true;
	} else {
		if (!c->tracking)
			return vmm_fail(VMM_ENOMEM, "access tracking ran out of memory");
		for (uint32_t pg = 0; pg < c->npages; pg++)
			if (c->pg_dirt[pg])
				t->dirty[pg / 64] |= 1ull << (pg % 64);
		/* The blocks run, each once (a block decoded again may be listed twice). */
		if (c->nran)
			qsort(c->ran, c->nran, sizeof(*c->ran), cmp_range);
		size_t n = 0;
		for (size_t i = 0; i < c->nran; i++)
			if (!n || cmp_range(&c->ran[n - 1], &c->ran[i]))
				c->ran[n++] = c->ran[i];
		t->code = c->ran;
		t->ncode = n;
		c->ran = NULL;
		c->nran = c->capran = 0;
	}
	memset(c->pg_dirt, 0, c->npages);
	c->nran = 0;
	c->epoch++; /* every block is listed again at its next run */
	/* Every page touched from now on must come through a fill again. */
	uc_ctl_flush_tlb(c->uc);
	memset(c->pg_wr, 0, c->npages);
	return 0;
}

static int emu_translate(struct vmm_cpu *c, uint64_t va, uint64_t *pa, uint64_t *tables,
			 unsigned *ntables)
{
	bool w, x;
	uint32_t err;
	unsigned n = 0;
	bool ok = walk_path(c, va, ACC_READ, false, false, pa, &w, &x, &err, tables, &n);
	if (ntables)
		*ntables = n;
	if (!ok)
		return vmm_fail(VMM_EGUEST, "%#llx is not mapped", (unsigned long long)va);
	return 0;
}

/* ---- exit counting: a kvm recording replayed here ---------------------------------- */

/*
 * VMM_PORT_EXITS (docs/kvm-backend.md, "Portable logs"). The position is the count of
 * exits kvm takes for the same guest: each port access (each element of a string
 * instruction), each HLT, and each interrupt window that opens. Interrupts follow kvm's
 * step (kvm_prepare in vmm/kvm.c) instead of emu's own rule: at every exit, at the start
 * of run() and before it returns BUDGET or KICK, an interrupt the 8259 has is
 * acknowledged if the guest can take it (IF set, no STI/MOV SS shadow, none already on
 * its way in) and delivered at the next entry; otherwise a window is wanted, and the
 * first instruction boundary the guest reaches by running where it can take one counts
 * as an exit (the window), after which the step runs again. Every exit stops the
 * engine, so all of this happens at exact instruction boundaries. MMIO is not counted:
 * emu has no MMIO (no guest here touches addresses above RAM).
 */

static bool x_ready(struct vmm_cpu *c)
{
	return c->inj_vec < 0 && (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF) &&
	       c->prev_kind != X86_STI && c->prev_kind != X86_MOVSS;
}

/* kvm's step: acknowledge what the guest can take now, else want a window. */
static void x_prepare(struct vmm_cpu *c)
{
	bool pending = vmm_intr_pending(c->m);
	if (pending && x_ready(c)) {
		c->inj_vec = vmm_intr_ack(c->m);
		pending = vmm_intr_pending(c->m);
		/* Events after this INTA must come after it on replay too: a landmark (which
		 * holds the vector on its way in) says so. */
		c->xexact = false;
	}
	c->want_window = pending;
}

/*
 * The run loop's head in xmode. c->xran: the guest reached this boundary by running (not
 * through an exit just counted). Counts a window that opened here, runs the step, ends
 * the run (1, *exit filled) on a kick, when the budget of exits is used (a landmark
 * search: at any exit) or at the instruction limit, delivers the injected interrupt
 * (kvm's entry), and places the engine's instruction target: one instruction when only
 * an STI/MOV SS shadow keeps a wanted window shut, or the instruction limit. Negative: a
 * vmm_err.
 */
static int x_entry(struct vmm_cpu *c, struct vmm_exit *exit)
{
	bool ran = c->xran;
	c->xran = false;
	for (;;) {
		if (ran && c->want_window && x_ready(c)) {
			c->xcount++;
			c->xexact = true;
			c->xlast = "an interrupt window";
		}
		x_prepare(c);
		if (atomic_exchange(&c->kick, 0)) {
			exit->reason = VMM_EXIT_KICK;
			return 1;
		}
		if (c->xseek ? c->xcount != c->xseek_from : c->xcount >= c->xlimit) {
			exit->reason = VMM_EXIT_BUDGET;
			return 1;
		}
		if (c->icount >= c->ilimit) {
			exit->reason = VMM_EXIT_BUDGET;
			return 1;
		}
		if (c->inj_vec < 0)
			break;
		int vec = c->inj_vec;
		c->inj_vec = -1;
		c->xexact = false;
		uint64_t rip = rreg(c, UC_X86_REG_RIP);
		int dr = deliver_or_shutdown(c, vec, false, 0, false, rip, rip, exit);
		if (dr)
			return dr;
		c->prev_kind = X86_OTHER;
		ran = true; /* a window may be open at the handler's first instruction */
	}
	c->target = c->ilimit;
	if (c->want_window && (rreg(c, UC_X86_REG_EFLAGS) & RFLAGS_IF) && c->inj_vec < 0 &&
	    c->icount + 1 < c->target)
		c->target = c->icount + 1; /* the shadow ends after one instruction */
	return 0;
}

/* Forget the pages written so far: the next landmark hashes those written from now. */
static void x_lm_reset(struct vmm_cpu *c)
{
	memset(c->lm_dirt, 0, c->npages);
	/* Every page must come through a fill again for its first write to be seen. */
	uc_ctl_flush_tlb(c->uc);
	memset(c->pg_wr, 0, c->npages);
}

static int emu_portable(struct vmm_cpu *c, unsigned flags)
{
	if (flags & ~(VMM_PORT_DIGEST | VMM_PORT_EXITS | VMM_PORT_OWN_FLAGS))
		return vmm_fail(VMM_EINVAL, "emu: unknown portable-log flags %#x", flags);
	c->arch_digest = flags & VMM_PORT_DIGEST;
	c->own_flags = flags & VMM_PORT_OWN_FLAGS;
	if (flags & VMM_PORT_EXITS) {
		if (!c->arch_digest)
			return vmm_fail(VMM_EINVAL, "emu: exit counting needs the architectural "
						    "digest (VMM_PORT_DIGEST)");
		if (!c->lm_dirt && !(c->lm_dirt = calloc(c->npages ? c->npages : 1, 1)))
			return vmm_fail(VMM_ENOMEM, "emu: out of memory for the landmark page set");
		c->xmode = true;
		c->inj_vec = -1;
		x_lm_reset(c);
	}
	return 0;
}

/* FORMAT.md's gprs (vmm_gprs_digest). */
static uint64_t x_gprs_digest(const struct vmm_regs *r)
{
	const uint64_t v[18] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
				r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
	return vmm_gprs_digest(v);
}

/* The registers part of a landmark (regs: vmm_arch_digest) for registers r. */
static uint64_t x_regs_digest(struct vmm_cpu *c, const struct vmm_regs *r)
{
	struct vmm_fpregs f;
	emu_get_fpregs(c, &f);
	uint8_t flags = (c->prev_kind == X86_STI || c->prev_kind == X86_MOVSS) ? 1 : 0;
	return vmm_arch_digest(r, &f, c->inj_vec, flags);
}

/* A landmark's mem and pages: the pages written since the last landmark (FORMAT.md).
 * False: out of memory. */
static bool x_mem_digest(struct vmm_cpu *c, uint64_t *mem, uint32_t *pages)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return false;
	XXH3_64bits_reset(st);
	*pages = 0;
	for (uint32_t pg = 0; pg < c->npages; pg++) {
		if (!c->lm_dirt[pg])
			continue;
		uint64_t le = htole64(pg);
		XXH3_64bits_update(st, &le, sizeof(le));
		XXH3_64bits_update(st, c->ram + (uint64_t)pg * 4096, 4096);
		(*pages)++;
	}
	*mem = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return true;
}

/*
 * Is the guest at lm? Registers first; the written pages' hash only when they match.
 * The status flags an instruction left undefined may differ from the host CPU's that
 * the recording saw: every combination is tried, and the one the landmark names is
 * taken when everything else matches (vmm_status_flags).
 */
static bool x_at_landmark(struct vmm_cpu *c, const struct vmm_landmark *lm)
{
	if (rreg(c, UC_X86_REG_RIP) != lm->rip)
		return false;
	struct vmm_regs r;
	emu_get_regs(c, &r);
	uint64_t own = r.rflags;
	unsigned k = 0;
	if (c->own_flags) {
		k = x_gprs_digest(&r) == lm->gprs ? 0 : 64;
	} else {
		for (; k < 64; k++) {
			r.rflags = vmm_status_flags(own, k);
			if (x_gprs_digest(&r) == lm->gprs)
				break;
		}
	}
	if (k == 64 || x_regs_digest(c, &r) != lm->regs)
		return false;
	uint64_t mem;
	uint32_t pages;
	if (!x_mem_digest(c, &mem, &pages) || mem != lm->mem || pages != lm->pages)
		return false;
	if (r.rflags != own)
		wreg(c, UC_X86_REG_EFLAGS, r.rflags);
	return true;
}

/*
 * Recording in exit counting (docs/kvm-backend.md, "Exit-counted recording on emu"): a
 * landmark where the position alone does not name the point, in the shape kvm_landmark
 * gives (the same digests x_at_landmark checks), and the point is named from now on.
 */
static int emu_landmark(struct vmm_cpu *c, struct vmm_landmark *lm)
{
	if (!c->xmode || c->xexact)
		return 0;
	struct vmm_regs r;
	memset(lm, 0, sizeof(*lm));
	emu_get_regs(c, &r);
	lm->rip = r.rip;
	lm->gprs = x_gprs_digest(&r);
	lm->regs = x_regs_digest(c, &r);
	if (!x_mem_digest(c, &lm->mem, &lm->pages))
		return vmm_fail(VMM_ENOMEM, "landmark: out of memory");
	x_lm_reset(c);
	c->xexact = true;
	return 1;
}

/* Exit counting under a debugger: stop also at this instruction count (cpu.h). */
static void emu_limit_insns(struct vmm_cpu *c, uint64_t at)
{
	c->ilimit = at;
}

static uint64_t emu_insns(struct vmm_cpu *c)
{
	return c->icount;
}

/* Do the general registers match the landmark's, for some value of the status flags
 * an instruction may have left undefined (x_at_landmark)? The engine's own first. */
static bool x_gprs_match(struct vmm_cpu *c, const struct vmm_landmark *lm)
{
	static const int ids[18] = {
		UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI,
		UC_X86_REG_RDI, UC_X86_REG_RBP, UC_X86_REG_RSP, UC_X86_REG_R8,  UC_X86_REG_R9,
		UC_X86_REG_R10, UC_X86_REG_R11, UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14,
		UC_X86_REG_R15, UC_X86_REG_RIP, UC_X86_REG_EFLAGS};
	uint64_t v[18] = {0};
	void *ptrs[18];
	for (int i = 0; i < 18; i++)
		ptrs[i] = &v[i];
	uc_reg_read_batch(c->uc, (int *)ids, ptrs, 18);
	if (vmm_gprs_digest(v) == lm->gprs)
		return true;
	if (c->own_flags)
		return false;
	uint64_t own = v[17];
	for (unsigned k = 0; k < 64; k++) {
		v[17] = vmm_status_flags(own, k);
		if (v[17] != own && vmm_gprs_digest(v) == lm->gprs)
			return true;
	}
	return false;
}

/* The search's code hook at the landmark's RIP: stop (as a breakpoint) only where the
 * general registers match, and not at the position the search passes. */
static void seek_hook_cb(uc_engine *uc, uint64_t addr, uint32_t size, void *opaque)
{
	struct vmm_cpu *c = opaque;
	(void)uc;
	(void)size;
	c->slow = true;
	if (c->stop || !c->cur || !c->seek_lm || addr != c->seek_lm->rip)
		return;
	int i = block_index(c->cur, addr);
	if (i < 0)
		return;
	uint64_t at = c->cur_start + (uint64_t)i;
	if (at == c->pass_pos || !x_gprs_match(c, c->seek_lm))
		return;
	c->icount = at;
	if (i > 0)
		c->prev_kind = X86_OTHER;
	c->cur = NULL;
	c->bp_pos = at;
	c->seek_hit = true;
	stop_now(c, ES_BUDGET);
}

/*
 * A kvm landmark, found as kvm finds it (kvm_seek_landmark): the step first, then a
 * comparison, then runs to a breakpoint at its RIP (emu's exact stops) compared at each
 * hit, a hit that differs passed over; any exit first leaves the position.
 *
 * Under a debugger the search is part of a run forward, so it keeps the debugger's
 * breakpoints and watchpoints (and the position exempt from them) and its instruction
 * limit: at a debug stop that is not the landmark, or at the limit, it ends as
 * interrupted (the position is unchanged; the caller's run reports the stop, and the
 * next poll there searches on from it).
 */
static int emu_seek_landmark(struct vmm_cpu *c, const struct vmm_landmark *lm,
			     struct vmm_seek_stats *st)
{
	if (!c->xmode)
		return vmm_fail(VMM_EBACKEND, "emu places landmarks only where it counts exits");
	x_prepare(c);
	if (x_at_landmark(c, lm)) {
		x_lm_reset(c);
		c->xexact = true;
		return VMM_SEEK_FOUND;
	}
	vmm_pos_t save_pass = c->pass_pos;
	if (uc_hook_add(c->uc, &c->seek_hook, UC_HOOK_CODE, (void *)seek_hook_cb, c, lm->rip,
			lm->rip) != UC_ERR_OK)
		return vmm_fail(VMM_EBACKEND, "cannot place the landmark search at %#llx",
				(unsigned long long)lm->rip);
	/* Hooks take effect only in code translated after they exist. */
	uc_ctl_remove_cache(c->uc, lm->rip, lm->rip + 1);
	c->seek_lm = lm;
	c->xseek = true;
	c->xseek_from = c->xcount;
	int res = VMM_SEEK_FOUND;
	for (;;) {
		struct vmm_exit ex = {0};
		int rc = emu_run(c, UINT64_MAX, &ex);
		if (rc < 0) {
			res = rc;
			break;
		}
		if (ex.reason == VMM_EXIT_BREAK) {
			bool ours = c->seek_hit;
			c->seek_hit = false;
			if (rreg(c, UC_X86_REG_RIP) == lm->rip && x_at_landmark(c, lm))
				break;
			if (!ours) { /* the debugger's breakpoint: it must see the stop */
				res = VMM_SEEK_INTERRUPTED;
				break;
			}
			st->hits++;
			c->pass_pos = c->icount;
			continue;
		}
		if (ex.reason == VMM_EXIT_KICK || ex.reason == VMM_EXIT_WATCH ||
		    (ex.reason == VMM_EXIT_BUDGET && c->icount >= c->ilimit &&
		     c->xcount == c->xseek_from)) {
			res = VMM_SEEK_INTERRUPTED;
			break;
		}
		res = VMM_SEEK_PASSED;
		st->left_by = ex.reason == VMM_EXIT_SHUTDOWN ? "a triple fault"
			      : ex.reason == VMM_EXIT_POWEROFF ? "a device's stop"
			      : c->xlast ? c->xlast : "an exit";
		break;
	}
	c->xseek = false;
	c->seek_lm = NULL;
	c->seek_hit = false;
	c->pass_pos = save_pass;
	uc_hook_del(c->uc, c->seek_hook);
	uc_ctl_remove_cache(c->uc, lm->rip, lm->rip + 1);
	if (res == VMM_SEEK_FOUND) {
		x_lm_reset(c);
		c->xexact = true;
	}
	return res;
}

const struct vmm_cpu_ops emu_cpu_ops = {
	.name = "emu",
	.probe = emu_probe,
	.create = emu_create,
	.destroy = emu_destroy,
	.reset_pvh = emu_reset_pvh,
	.run = emu_run,
	.kick = emu_kick,
	.pos = emu_pos,
	.get_regs = emu_get_regs,
	.set_regs = emu_set_regs,
	.get_fpregs = emu_get_fpregs,
	.intr_changed = NULL,
	.save = emu_save,
	.load = emu_load,
	.read_virt = emu_read_virt,
	.write_virt = emu_write_virt,
	.set_debug = emu_set_debug,
	.track = emu_track,
	.translate = emu_translate,
	.landmark = emu_landmark,
	.seek_landmark = emu_seek_landmark,
	.portable = emu_portable,
	.insns = emu_insns,
	.limit_insns = emu_limit_insns,
};
