/* standalone */
/*
 * test_kvm.c: the parts of vmm/kvm.c that need no /dev/kvm, run here without one: the
 * PVH entry sregs, segment encoding, the guest page walk, port-exit
 * decoding from a filled kvm_run page, and the state blob's header checks. The backend
 * source is included, over a fake machine that records port accesses.
 */
#include "../../vmm/cpuid.c"
#include "../../vmm/digest.c"
#include "../../vmm/hostkvm.c"
#include "../../vmm/kvm.c"
#include "../../vmm/util.c"
#include "../../vmm/x86dec.c"
#include "../../vmm/x86deliver.c"

#include <criterion/criterion.h>

#if defined(__x86_64__)

/* ---- a fake machine: RAM, a port log, an interrupt line -------------------------- */

#define FM_MAX_PIO 64

struct fm_pio {
	uint16_t port;
	unsigned size;
	bool write;
	uint32_t val;
	vmm_pos_t pos; /* the position the backend reported during the access */
};

struct vmm_machine {
	uint8_t *ram;
	uint64_t ram_size;
	struct fm_pio pio[FM_MAX_PIO];
	unsigned npio;
	uint32_t in_value;  /* what port reads return */
	unsigned stop_at;   /* request a stop after this many accesses (0: never) */
	struct vmm_cpu *cpu;
	bool intr;
	uint8_t vector;
};

uint8_t *vmm_machine_ram(struct vmm_machine *m)
{
	return m->ram;
}

uint64_t vmm_machine_ram_size(struct vmm_machine *m)
{
	return m->ram_size;
}

void vmm_pio(struct vmm_machine *m, uint16_t port, unsigned size, bool write, uint32_t *val)
{
	cr_assert_lt(m->npio, FM_MAX_PIO);
	struct fm_pio *p = &m->pio[m->npio++];
	p->port = port;
	p->size = size;
	p->write = write;
	p->val = write ? *val : 0;
	p->pos = m->cpu ? kvm_pos(m->cpu) : 0;
	if (!write)
		*val = m->in_value;
}

bool vmm_intr_pending(struct vmm_machine *m)
{
	return m->intr;
}

uint8_t vmm_intr_ack(struct vmm_machine *m)
{
	m->intr = false;
	return m->vector;
}

bool vmm_machine_stop_requested(struct vmm_machine *m)
{
	return m->stop_at && m->npio >= m->stop_at;
}

/* ---- PVH entry state ---------------------------------------------------------------- */

Test(kvm_pvh, sregs_are_the_pvh_entry_state)
{
	struct kvm_sregs s;
	memset(&s, 0xa5, sizeof(s)); /* whatever KVM_GET_SREGS gave */
	s.apic_base = 0xfee00000u | MSR_APICBASE_ENABLE | MSR_APICBASE_BSP;
	kvm_pvh_sregs(&s);

	cr_assert_eq(s.cs.selector, 8);
	cr_assert_eq(s.cs.base, 0);
	cr_assert_eq(s.cs.limit, 0xffffffffu, "unpacked limit in bytes");
	cr_assert_eq(s.cs.type, 0xb, "execute/read, accessed");
	cr_assert_eq(s.cs.s, 1);
	cr_assert_eq(s.cs.present, 1);
	cr_assert_eq(s.cs.db, 1);
	cr_assert_eq(s.cs.l, 0);
	cr_assert_eq(s.cs.g, 1);
	cr_assert_eq(s.cs.dpl, 0);
	cr_assert_eq(s.cs.unusable, 0);
	const struct kvm_segment *data[] = {&s.ds, &s.es, &s.fs, &s.gs, &s.ss};
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(data[i]->selector, 0x10);
		cr_assert_eq(data[i]->type, 0x3, "read/write, accessed");
		cr_assert_eq(data[i]->limit, 0xffffffffu);
		cr_assert_eq(data[i]->base, 0);
		cr_assert(data[i]->s && data[i]->present && data[i]->db && data[i]->g);
		cr_assert_eq(data[i]->unusable, 0);
		cr_assert_eq(data[i]->dpl, 0, "SS.DPL must equal CS.DPL");
	}
	cr_assert_eq(s.tr.type, 0xb, "busy 32-bit TSS");
	cr_assert_eq(s.tr.s, 0);
	cr_assert_eq(s.tr.present, 1);
	cr_assert_eq(s.tr.unusable, 0);
	cr_assert_eq(s.tr.selector & 4, 0, "TR selector in the GDT");
	cr_assert_eq(s.tr.limit, 0x67);
	cr_assert_eq(s.tr.g, 0);
	cr_assert_eq(s.ldt.unusable, 1);
	cr_assert_eq(s.cr0, CR0_PE | CR0_ET);
	cr_assert_eq(s.cr3 | s.cr4 | s.cr8 | s.efer, 0);
	/* The entry GDT emu also shows (vmm/loader.h), no IDT. */
	cr_assert_eq(s.gdt.base, VMM_VMM_AREA);
	cr_assert_eq(s.gdt.limit, VMM_PVH_GDT_LIMIT);
	cr_assert_eq(s.idt.base | s.idt.limit, 0);
	for (size_t i = 0; i < sizeof(s.interrupt_bitmap) / sizeof(s.interrupt_bitmap[0]); i++)
		cr_assert_eq(s.interrupt_bitmap[i], 0, "no interrupt pending");
	cr_assert_eq(s.apic_base & MSR_APICBASE_ENABLE, 0,
		     "KVM sets CPUID.1:EDX.APIC from this bit: it must be off");
	cr_assert_eq(s.apic_base, MSR_APICBASE_BSP);
}

/* ---- segments ------------------------------------------------------------------------ */

/* vmm_seg.attr as emu derives it from a GDT descriptor. */
static uint32_t attr_of_descriptor(uint64_t d)
{
	return (uint32_t)((d >> 40) & 0xff) | (uint32_t)(((d >> 52) & 0xf) << 12);
}

Test(kvm_seg, attr_matches_descriptor_layout_and_round_trips)
{
	struct kvm_sregs s;
	memset(&s, 0, sizeof(s));
	kvm_pvh_sregs(&s);
	cr_assert_eq(kvm_seg_attr(&s.cs), attr_of_descriptor(0x00cf9b000000ffffull));
	cr_assert_eq(kvm_seg_attr(&s.ds), attr_of_descriptor(0x00cf93000000ffffull));

	struct kvm_segment l64 = {.base = 0, .limit = 0xffffffffu, .selector = 0x28, .type = 0xb,
				  .present = 1, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1, .avl = 1};
	const struct kvm_segment *all[] = {&s.cs, &s.ds, &s.tr, &s.ldt, &l64};
	for (int i = 0; i < 5; i++) {
		struct vmm_seg v;
		struct kvm_segment back;
		kvm_seg_to_vmm(all[i], &v);
		kvm_seg_from_vmm(&v, &back);
		cr_assert_eq(back.selector, all[i]->selector);
		cr_assert_eq(back.base, all[i]->base);
		cr_assert_eq(back.limit, all[i]->limit);
		cr_assert_eq(back.type, all[i]->type);
		cr_assert_eq(back.s, all[i]->s);
		cr_assert_eq(back.dpl, all[i]->dpl);
		cr_assert_eq(back.present, all[i]->present);
		cr_assert_eq(back.avl, all[i]->avl);
		cr_assert_eq(back.l, all[i]->l);
		cr_assert_eq(back.db, all[i]->db);
		cr_assert_eq(back.g, all[i]->g);
		cr_assert_eq(back.unusable, all[i]->unusable);
	}
}


/* ---- the MSR set -------------------------------------------------------------------- */

Test(kvm_msrs, state_set_has_mtrrs_and_no_duplicates)
{
	bool var[16] = {false}, def = false;
	unsigned fixed = 0;
	for (size_t i = 0; i < KVM_NMSRS; i++) {
		uint32_t m = kvm_state_msrs[i];
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(kvm_state_msrs[j], m, "MSR 0x%x twice", m);
		if (m >= 0x200 && m < 0x210)
			var[m - 0x200] = true;
		if (m == 0x250 || m == 0x258 || m == 0x259 || (m >= 0x268 && m <= 0x26f))
			fixed++;
		def |= m == 0x2ff;
	}
	for (int i = 0; i < 16; i++)
		cr_assert(var[i], "variable MTRR MSR 0x%x missing", 0x200 + i);
	cr_assert_eq(fixed, 11);
	cr_assert(def);
}


/* ---- a vCPU over fake RAM and a fake kvm_run page ------------------------------------ */

#define FM_RAM (4u << 20)
#define FM_RUN_SIZE (3u * 4096u)

static struct vmm_machine fm;
static struct vmm_cpu fcpu;

static void fm_setup(void)
{
	memset(&fm, 0, sizeof(fm));
	memset(&fcpu, 0, sizeof(fcpu));
	fm.ram = calloc(1, FM_RAM);
	fm.ram_size = FM_RAM;
	fm.cpu = &fcpu;
	fcpu.m = &fm;
	fcpu.ram = fm.ram;
	fcpu.ram_size = fm.ram_size;
	fcpu.run = calloc(1, FM_RUN_SIZE);
	fcpu.run_size = FM_RUN_SIZE;
	fcpu.vcpu_fd = fcpu.vm_fd = fcpu.kvm_fd = -1;
	cr_assert(fm.ram && fcpu.run);
}

static void fm_teardown(void)
{
	free(fm.ram);
	free(fcpu.run);
}

static void put64(uint64_t pa, uint64_t v)
{
	memcpy(fm.ram + pa, &v, 8);
}

static void put32(uint64_t pa, uint32_t v)
{
	memcpy(fm.ram + pa, &v, 4);
}

static int walk(const struct kvm_sregs *s, uint64_t va, uint64_t *pa)
{
	uint64_t left = 0;
	return kvm_translate(&fcpu, s, va, pa, &left);
}

/* ---- page walk ------------------------------------------------------------------------ */

Test(kvm_walk, paging_off_is_physical, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	memset(&s, 0, sizeof(s));
	s.cr0 = CR0_PE;
	uint64_t pa = 0, left = 0;
	cr_assert_eq(kvm_translate(&fcpu, &s, 0x12345, &pa, &left), 0);
	cr_assert_eq(pa, 0x12345);
	cr_assert_eq(left, 0x1000 - 0x345);
}

/* Long mode: PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000. */
static void long_tables(struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	s->cr0 = CR0_PE | CR0_PG;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LMA | (1ull << 8);
	s->cr3 = 0x1000 | 0x18; /* PWT/PCD bits are not part of the address */
	put64(0x1000 + 0 * 8, 0x2000 | 3);
	put64(0x1000 + 511 * 8, 0x2000 | 3);           /* the top 512 GiB too */
	put64(0x2000 + 0 * 8, 0x3000 | 3);
	put64(0x2000 + 1 * 8, 0x40000000ull | 0x83);    /* 1 GiB page at 1 GiB */
	put64(0x2000 + 511 * 8, 0x3000 | 3);
	put64(0x3000 + 0 * 8, 0x4000 | 3);
	put64(0x3000 + 1 * 8, 0x200000 | 0x1000 | 0x83); /* 2 MiB page, PAT bit 12 set */
	put64(0x4000 + 5 * 8, 0x8000000000007000ull | 3); /* NX set, 4 KiB page */
}

Test(kvm_walk, long_mode_4k_2m_1g_and_nx, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	long_tables(&s);
	uint64_t pa = 0;
	cr_assert_eq(walk(&s, 0x5123, &pa), 0);
	cr_assert_eq(pa, 0x7123, "NX must not leak into the address");
	cr_assert_eq(walk(&s, 0x212345, &pa), 0);
	cr_assert_eq(pa, 0x212345, "2 MiB page: the PAT bit is not an address bit");
	cr_assert_eq(walk(&s, 0x40000000ull + 0x1234567, &pa), 0);
	cr_assert_eq(pa, 0x41234567ull);
	cr_assert_eq(walk(&s, 0xffffffffc0005123ull, &pa), 0, "high half through entry 511");
	cr_assert_eq(pa, 0x7123);
	cr_assert_eq(walk(&s, 0x6000, &pa), -VMM_EGUEST, "PTE not present");
	cr_assert_eq(walk(&s, 0x0000800000000000ull, &pa), -VMM_EGUEST, "not canonical");
	cr_assert_eq(walk(&s, 0x80000000ull, &pa), -VMM_EGUEST, "PDPTE not present");
}

Test(kvm_walk, long_mode_five_levels, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	long_tables(&s);
	s.cr4 |= CR4_LA57;
	s.cr3 = 0x9000;
	put64(0x9000 + 0 * 8, 0x1000 | 3);
	uint64_t pa = 0;
	cr_assert_eq(walk(&s, 0x5123, &pa), 0);
	cr_assert_eq(pa, 0x7123);
	cr_assert_eq(walk(&s, 0x0000800000000000ull, &pa), -VMM_EGUEST,
		     "canonical with 57 bits but its PML5 entry is absent");
	cr_assert_eq(walk(&s, 0x0100000000000000ull, &pa), -VMM_EGUEST, "not canonical");
}

Test(kvm_walk, pae_and_32bit_pse36, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	memset(&s, 0, sizeof(s));
	s.cr0 = CR0_PE | CR0_PG;
	s.cr4 = CR4_PAE;
	s.cr3 = 0x1020; /* PDPT 32-byte aligned */
	put64(0x1020 + 3 * 8, 0x2000 | 1);
	put64(0x2000 + 2 * 8, 0x600000 | 0x83);
	put64(0x2000 + 3 * 8, 0x3000 | 3);
	put64(0x3000 + 4 * 8, 0x9000 | 3);
	uint64_t pa = 0;
	cr_assert_eq(walk(&s, 0xc0401234u, &pa), 0);
	cr_assert_eq(pa, 0x601234);
	cr_assert_eq(walk(&s, 0xc0604567u, &pa), 0);
	cr_assert_eq(pa, 0x9567);
	cr_assert_eq(walk(&s, 0x00001000u, &pa), -VMM_EGUEST, "PDPTE 0 not present");

	memset(&s, 0, sizeof(s));
	s.cr0 = CR0_PE | CR0_PG;
	s.cr4 = CR4_PSE;
	s.cr3 = 0x5000;
	put32(0x5000 + 0x300 * 4, 0xc0000000u | (0x12u << 13) | 0x83); /* 4 MiB, PA bits 32+ */
	put32(0x5000 + 1 * 4, 0x6000 | 3);
	put32(0x6000 + 2 * 4, 0x8000 | 3);
	cr_assert_eq(walk(&s, 0xc0012345u, &pa), 0);
	cr_assert_eq(pa, 0x12c0012345ull);
	cr_assert_eq(walk(&s, 0x00402abcu, &pa), 0);
	cr_assert_eq(pa, 0x8abc);
	s.cr4 = 0; /* without CR4.PSE the PS bit is ignored: the PDE points at a table */
	put32(0x5000 + 0x300 * 4, 0x6000 | 0x83);
	cr_assert_eq(walk(&s, 0xc0002abcu, &pa), 0);
	cr_assert_eq(pa, 0x8abc);
}

Test(kvm_walk, tables_and_data_outside_ram_fail_cleanly, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	long_tables(&s);
	put64(0x4000 + 6 * 8, 0x7ffff000ull | 3); /* beyond 4 MiB of RAM */
	put64(0x3000 + 2 * 8, 0x7fff0000ull | 3);  /* a table beyond RAM */
	uint64_t pa = 0;
	cr_assert_eq(walk(&s, 0x400000, &pa), -VMM_EGUEST);
	uint8_t b[4];
	cr_assert_eq(kvm_copy_virt(&fcpu, &s, 0x6000, b, 4), -VMM_EGUEST);
	s.cr3 = FM_RAM - 8; /* the PML4 entry read itself would run off the end */
	cr_assert_eq(walk(&s, 0x1000, &pa), -VMM_EGUEST);
}

Test(kvm_walk, copy_crosses_differently_mapped_pages, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_sregs s;
	long_tables(&s);
	put64(0x4000 + 6 * 8, 0x5000 | 3); /* va 0x6000 -> pa 0x5000, after va 0x5000 -> 0x7000 */
	memcpy(fm.ram + 0x7ffe, "ab", 2);
	memcpy(fm.ram + 0x5000, "cd", 2);
	char b[5] = {0};
	cr_assert_eq(kvm_copy_virt(&fcpu, &s, 0x5ffe, b, 4), 0);
	cr_assert_str_eq(b, "abcd");
}

/* ---- exits ---------------------------------------------------------------------------- */

static void io_exit(uint8_t dir, uint8_t size, uint16_t port, uint32_t count, uint64_t off)
{
	struct kvm_run *r = fcpu.run;
	r->exit_reason = KVM_EXIT_IO;
	r->io.direction = dir;
	r->io.size = size;
	r->io.port = port;
	r->io.count = count;
	r->io.data_offset = off;
}

Test(kvm_exit, out_and_string_in_count_one_position_each, .init = fm_setup, .fini = fm_teardown)
{
	uint8_t *page = (uint8_t *)fcpu.run + 4096;
	io_exit(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, 4096);
	page[0] = 'x';
	bool stop = false;
	cr_assert_eq(kvm_do_io(&fcpu, &stop), 0);
	cr_assert_eq(fm.npio, 1);
	cr_assert(fm.pio[0].write);
	cr_assert_eq(fm.pio[0].port, 0x3f8);
	cr_assert_eq(fm.pio[0].val, 'x');
	cr_assert_eq(fm.pio[0].pos, 0, "the access runs at the number of exits before it");
	cr_assert_eq(kvm_pos(&fcpu), 1);

	/* REP INSW, a batch of 3: each element its own access and position. */
	fm.in_value = 0xbeef;
	io_exit(KVM_EXIT_IO_IN, 2, 0x1f0, 3, 4096);
	memset(page, 0, 8);
	cr_assert_eq(kvm_do_io(&fcpu, &stop), 0);
	cr_assert_eq(fm.npio, 4);
	for (int i = 0; i < 3; i++) {
		cr_assert_not(fm.pio[1 + i].write);
		cr_assert_eq(fm.pio[1 + i].size, 2);
		cr_assert_eq(fm.pio[1 + i].pos, 1 + (unsigned)i);
		cr_assert_eq(page[2 * i], 0xef);
		cr_assert_eq(page[2 * i + 1], 0xbe);
	}
	cr_assert_eq(page[6], 0, "nothing written past the batch");
	cr_assert_eq(kvm_pos(&fcpu), 4);
	cr_assert_not(stop);
}

Test(kvm_exit, stop_mid_batch_drops_the_rest, .init = fm_setup, .fini = fm_teardown)
{
	uint8_t *page = (uint8_t *)fcpu.run + 4096;
	fm.stop_at = 2;
	fm.in_value = 0x11;
	io_exit(KVM_EXIT_IO_IN, 1, 0x60, 4, 4096);
	memset(page, 0, 4);
	bool stop = false;
	cr_assert_eq(kvm_do_io(&fcpu, &stop), 0);
	cr_assert(stop);
	cr_assert_eq(fm.npio, 2, "no device access after the stop request");
	cr_assert_eq(kvm_pos(&fcpu), 2);
	cr_assert_eq(page[0], 0x11);
	cr_assert_eq(page[1], 0x11);
	cr_assert_eq(page[2], 0xff, "dropped reads float high");
	cr_assert_eq(page[3], 0xff);
}

Test(kvm_exit, malformed_io_exits_are_backend_errors, .init = fm_setup, .fini = fm_teardown)
{
	bool stop = false;
	io_exit(KVM_EXIT_IO_OUT, 3, 0x80, 1, 4096);
	cr_assert_eq(kvm_do_io(&fcpu, &stop), -VMM_EBACKEND, "size 3");
	io_exit(KVM_EXIT_IO_OUT, 1, 0x80, 1, FM_RUN_SIZE + 1);
	cr_assert_eq(kvm_do_io(&fcpu, &stop), -VMM_EBACKEND, "offset past the mapping");
	io_exit(KVM_EXIT_IO_OUT, 4, 0x80, 2049, 4096);
	cr_assert_eq(kvm_do_io(&fcpu, &stop), -VMM_EBACKEND, "batch past the mapping");
	io_exit(KVM_EXIT_IO_OUT, 4, 0x80, 0x40000001u, 4096);
	cr_assert_eq(kvm_do_io(&fcpu, &stop), -VMM_EBACKEND, "count * size overflows 32 bits");
	cr_assert_eq(fm.npio, 0);
	cr_assert_eq(kvm_pos(&fcpu), 0);
}

Test(kvm_exit, mmio_reads_float_high_and_count, .init = fm_setup, .fini = fm_teardown)
{
	struct kvm_run *r = fcpu.run;
	r->exit_reason = KVM_EXIT_MMIO;
	r->mmio.phys_addr = 0xfee00020;
	r->mmio.len = 4;
	r->mmio.is_write = 0;
	memset(r->mmio.data, 0, sizeof(r->mmio.data));
	kvm_do_mmio(&fcpu);
	cr_assert_eq(r->mmio.data[3], 0xff);
	cr_assert_eq(r->mmio.data[4], 0, "only len bytes");
	cr_assert_eq(kvm_pos(&fcpu), 1);
}

/* ---- the state blob header ------------------------------------------------------------- */

static const uint32_t blob_msrs[] = {RW_MSR_STAR, RW_MSR_PAT, RW_MSR_TSC};

static uint8_t *good_blob(bool xsave, size_t *len)
{
	*len = kvm_state_size(xsave ? KVM_STATE_XSAVE : 0, 3);
	uint8_t *b = calloc(1, *len);
	struct kvm_state_hdr h;
	kvm_state_hdr_init(&h, xsave, blob_msrs, 3, 1234);
	memcpy(b, &h, sizeof(h));
	return b;
}

static int check(const uint8_t *b, size_t len, bool xsave)
{
	struct kvm_state_hdr h;
	return kvm_state_check(b, len, xsave, blob_msrs, 3, &h);
}

Test(kvm_state, header_accepts_own_and_rejects_every_difference)
{
	for (int x = 0; x < 2; x++) {
		size_t len;
		uint8_t *b = good_blob(x, &len);
		struct kvm_state_hdr h;
		cr_assert_eq(kvm_state_check(b, len, x, blob_msrs, 3, &h), 0);
		cr_assert_eq(h.pos, 1234);
		cr_assert_eq(check(b, len, !x), -VMM_ESTATE, "XSAVE presence differs");
		cr_assert_eq(check(b, len - 1, x), -VMM_ESTATE, "short");
		cr_assert_eq(check(b, sizeof(struct kvm_state_hdr) - 1, x), -VMM_ESTATE);
		cr_assert_eq(check(NULL, len, x), -VMM_ESTATE);
		uint32_t other[] = {RW_MSR_STAR, RW_MSR_PAT, RW_MSR_MISC_ENABLE};
		cr_assert_eq(kvm_state_check(b, len, x, other, 3, &h), -VMM_ESTATE, "MSR set");
		cr_assert_eq(kvm_state_check(b, len, x, blob_msrs, 2, &h), -VMM_ESTATE,
			     "MSR count");
		size_t fields[] = {offsetof(struct kvm_state_hdr, magic),
				   offsetof(struct kvm_state_hdr, version),
				   offsetof(struct kvm_state_hdr, sz_regs),
				   offsetof(struct kvm_state_hdr, sz_sregs),
				   offsetof(struct kvm_state_hdr, sz_fpu),
				   offsetof(struct kvm_state_hdr, sz_xsave),
				   offsetof(struct kvm_state_hdr, sz_events),
				   offsetof(struct kvm_state_hdr, sz_debugregs),
				   offsetof(struct kvm_state_hdr, nmsrs)};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			b[fields[i]] ^= 0x40;
			cr_assert_eq(check(b, len, x), -VMM_ESTATE, "field at %zu", fields[i]);
			b[fields[i]] ^= 0x40;
		}
		b[offsetof(struct kvm_state_hdr, nmsrs)] = 0xff; /* never read past msr_index */
		cr_assert_eq(check(b, len, x), -VMM_ESTATE);
		free(b);
	}
}


/* ---- interrupt readiness after state was set from outside ------------------------- */

Test(kvm_intr, ready_needs_if_no_shadow_and_nothing_in_flight)
{
	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	cr_assert(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev));
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED, &ev), "IF clear");
	ev.interrupt.shadow = KVM_X86_SHADOW_INT_STI;
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev), "STI shadow");
	ev.interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS;
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev), "MOV SS shadow");
	memset(&ev, 0, sizeof(ev));
	ev.interrupt.injected = 1;
	ev.interrupt.nr = 0x20;
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev),
		      "an interrupt KVM_INTERRUPT queued is still on its way in");
	memset(&ev, 0, sizeof(ev));
	ev.exception.injected = 1;
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev), "exception in flight");
	memset(&ev, 0, sizeof(ev));
	ev.nmi.injected = 1;
	cr_assert_not(kvm_ready_from(RFLAGS_FIXED | RFLAGS_IF, &ev), "NMI in flight");
}

#else

Test(kvm_cpuid, not_x86_64)
{
	cr_skip_test("the KVM backend is x86-64 only");
}

#endif
