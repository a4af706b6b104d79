/* standalone */
/*
 * test_kvm.c: the parts of vmm/kvm.c that need no /dev/kvm, run here without one: the
 * CPUID filter, the PVH entry sregs, segment encoding, the guest page walk, port-exit
 * decoding from a filled kvm_run page, and the state blob's header checks. The backend
 * source is included, over a fake machine that records port accesses.
 */
#include "../../vmm/kvm.c"
#include "../../vmm/util.c"

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

/* ---- CPUID ------------------------------------------------------------------------ */

static struct kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t idx, uint32_t a, uint32_t b, uint32_t c,
				    uint32_t d)
{
	struct kvm_cpuid_entry2 e;
	memset(&e, 0, sizeof(e));
	e.function = fn;
	e.index = idx;
	e.eax = a, e.ebx = b, e.ecx = c, e.edx = d;
	return e;
}

Test(kvm_cpuid, leaf1_hides_apic_xsave_avx_rdrand_tscdeadline_hypervisor)
{
	struct kvm_cpuid_entry2 e = leaf(1, 0, 0x000906ea, 0x12345678, 0xffffffffu, 0xffffffffu);
	cr_assert(kvm_cpuid_filter(&e));
	cr_assert_eq(e.eax, 0x000906ea, "family/model/stepping are the host's");
	cr_assert_eq(e.ebx, 0x5678, "APIC id and logical count cleared, CLFLUSH size kept");
	cr_assert_eq(e.edx & BIT(9), 0, "no APIC");
	cr_assert_eq(e.edx & BIT(28), 0, "no HTT");
	cr_assert_eq(e.edx & (BIT(7) | BIT(14)), 0, "no MCE/MCA");
	cr_assert_neq(e.edx & BIT(26), 0, "SSE2 kept");
	cr_assert_neq(e.edx & BIT(12), 0, "MTRR kept");
	cr_assert_eq(e.ecx & BIT(24), 0, "no TSC-deadline");
	cr_assert_eq(e.ecx & (BIT(26) | BIT(27) | BIT(28)), 0, "no XSAVE/OSXSAVE/AVX");
	cr_assert_eq(e.ecx & BIT(30), 0, "no RDRAND");
	cr_assert_eq(e.ecx & BIT(31), 0, "no hypervisor bit");
	cr_assert_eq(e.ecx & BIT(21), 0, "no x2APIC");
	cr_assert_eq(e.ecx, BIT(0) | BIT(9) | BIT(13) | BIT(19) | BIT(20) | BIT(23));
}

Test(kvm_cpuid, leaf7_only_subleaf0_and_empty)
{
	struct kvm_cpuid_entry2 e = leaf(7, 0, 2, 0xffffffffu, 0xffffffffu, 0xffffffffu);
	e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	cr_assert(kvm_cpuid_filter(&e));
	cr_assert_eq(e.eax | e.ebx | e.ecx | e.edx, 0, "no RDSEED, AVX2, WAITPKG, RDPID...");
	cr_assert_eq(e.flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, "index stays significant");
	struct kvm_cpuid_entry2 s1 = leaf(7, 1, 0, 0, 0, 0);
	cr_assert_not(kvm_cpuid_filter(&s1));
}

Test(kvm_cpuid, leaf4_keeps_index_and_drops_sharing_counts)
{
	struct kvm_cpuid_entry2 e = leaf(4, 2, 0xfc004143, 0x01c0003f, 0x3ff, 0);
	e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	cr_assert(kvm_cpuid_filter(&e));
	cr_assert_eq(e.index, 2);
	cr_assert_eq(e.flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	cr_assert_eq(e.eax, 0x00000143, "cache type/level kept, core and thread counts 0");
	cr_assert_eq(e.ebx, 0x01c0003f);
}

Test(kvm_cpuid, dropped_and_capped_leaves)
{
	static const uint32_t dropped[] = {3, 5, 6, 0xa, 0xb, 0xd, 0x14, 0x1f, 0x40000000,
					   0x40000001, 0x40000010, 0x80000009, 0x8000001f};
	for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
		struct kvm_cpuid_entry2 e = leaf(dropped[i], 0, 1, 1, 1, 1);
		cr_assert_not(kvm_cpuid_filter(&e), "leaf 0x%x must be dropped", dropped[i]);
	}
	struct kvm_cpuid_entry2 e0 = leaf(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69);
	cr_assert(kvm_cpuid_filter(&e0));
	cr_assert_eq(e0.eax, 7);
	cr_assert_eq(e0.ebx, 0x756e6547, "vendor kept");
	struct kvm_cpuid_entry2 e8 = leaf(0x80000000, 0, 0x80000021, 0, 0, 0);
	cr_assert(kvm_cpuid_filter(&e8));
	cr_assert_eq(e8.eax, 0x80000008);
	struct kvm_cpuid_entry2 x1 = leaf(0x80000001, 0, 0, 0, 0xffffffffu, 0xffffffffu);
	cr_assert(kvm_cpuid_filter(&x1));
	cr_assert_eq(x1.ecx, 1, "LAHF/SAHF only");
	cr_assert_eq(x1.edx & BIT(27), 0, "no RDTSCP");
	cr_assert_eq(x1.edx & BIT(26), 0, "no 1 GiB pages");
	cr_assert_eq(x1.edx & BIT(9), 0, "no APIC copy");
	cr_assert_eq(x1.edx & (BIT(11) | BIT(20) | BIT(29)), BIT(11) | BIT(20) | BIT(29));
	struct kvm_cpuid_entry2 x7 = leaf(0x80000007, 0, 1, 1, 1, 0x100);
	cr_assert(kvm_cpuid_filter(&x7));
	cr_assert_eq(x7.edx, 0, "no invariant TSC");
	struct kvm_cpuid_entry2 x8 = leaf(0x80000008, 0, 0x3030, 0xffff, 1, 1);
	cr_assert(kvm_cpuid_filter(&x8));
	cr_assert_eq(x8.eax, 0x3030);
	cr_assert_eq(x8.ebx | x8.ecx | x8.edx, 0);
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
	cr_assert_eq(s.gdt.base | s.gdt.limit | s.idt.base | s.idt.limit, 0);
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

#else

Test(kvm_cpuid, not_x86_64)
{
	cr_skip_test("the KVM backend is x86-64 only");
}

#endif
