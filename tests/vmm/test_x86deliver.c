/* unit */
/*
 * test_x86deliver.c: the IDT delivery both backends use (vmm/x86deliver.c), over a flat
 * 64 KiB "guest memory" where virtual equals physical: the 64-bit frame and RFLAGS of a
 * software interrupt, the DPL check, IST, a 32-bit frame, a #PF while pushing the frame,
 * and the double/triple fault rules.
 */
#include "vmm/x86deliver.h"

#include <criterion/criterion.h>
#include <string.h>

#define MEM 0x10000u
#define IDT 0x1000u
#define GDT 0x2000u
#define TSS 0x3000u
#define RO_PAGE 0x8000u /* frames pushed below 0x9000 fault here */

static uint8_t mem[MEM];
static int writes;

static int fake_read(void *ctx, uint64_t va, void *buf, size_t len)
{
	(void)ctx;
	if (va > MEM || MEM - va < len)
		return -1;
	memcpy(buf, mem + va, len);
	return 0;
}

static int fake_write(void *ctx, uint64_t va, const void *buf, size_t len, int cpl,
		      uint32_t *pferr, uint64_t *fault_va)
{
	(void)ctx;
	if (va > MEM || MEM - va < len || (va < RO_PAGE + 0x1000 && va + len > RO_PAGE)) {
		*pferr = 3u | (cpl == 3 ? 4u : 0u);
		*fault_va = va < RO_PAGE ? RO_PAGE : va;
		return VMM_XD_PF;
	}
	memcpy(mem + va, buf, len);
	writes++;
	return 0;
}

static const struct vmm_xd_ops ops = {.read = fake_read, .write = fake_write};

static void gate64(int vec, uint64_t off, uint16_t sel, int type, int dpl, int ist)
{
	uint8_t *g = mem + IDT + 16 * vec;
	memset(g, 0, 16);
	uint32_t lo = (uint32_t)(off & 0xffff) | (uint32_t)sel << 16;
	uint32_t hi = (uint32_t)(off & 0xffff0000u) | 1u << 15 | (uint32_t)dpl << 13 |
		      (uint32_t)type << 8 | (uint32_t)ist;
	uint32_t hi2 = (uint32_t)(off >> 32);
	memcpy(g, &lo, 4);
	memcpy(g + 4, &hi, 4);
	memcpy(g + 8, &hi2, 4);
}

static void gate32(int vec, uint32_t off, uint16_t sel, int type, int dpl)
{
	uint8_t *g = mem + IDT + 8 * vec;
	uint32_t lo = (off & 0xffff) | (uint32_t)sel << 16;
	uint32_t hi = (off & 0xffff0000u) | 1u << 15 | (uint32_t)dpl << 13 | (uint32_t)type << 8;
	memcpy(g, &lo, 4);
	memcpy(g + 4, &hi, 4);
}

static void setup(struct vmm_xd_state *s, bool lm)
{
	memset(mem, 0, sizeof(mem));
	writes = 0;
	const uint64_t gdt[] = {0, 0x00af9a000000ffffull /* 0x08 64-bit code */,
				0x00cf92000000ffffull /* 0x10 data */,
				0x00cf9a000000ffffull /* 0x18 32-bit code */};
	memcpy(mem + GDT, gdt, sizeof(gdt));
	uint64_t ist1 = 0xe000;
	memcpy(mem + TSS + 0x24, &ist1, 8);
	memset(s, 0, sizeof(*s));
	s->lm = lm;
	s->rip = 0x4000;
	s->rsp = 0xc008;
	s->rflags = 0x202 | 1u << 8 | 1u << 16; /* IF, TF, RF */
	s->cs.sel = lm ? 0x08 : 0x18;
	s->ss.sel = 0x10;
	s->gdt.base = GDT;
	s->gdt.limit = sizeof(gdt) - 1;
	s->idt.base = IDT;
	s->idt.limit = lm ? 16 * 256 - 1 : 8 * 256 - 1;
	s->tr.sel = 0x20;
	s->tr.base = TSS;
	s->tr.limit = 0x67;
}

static uint64_t q(uint64_t va)
{
	uint64_t v;
	memcpy(&v, mem + va, 8);
	return v;
}

Test(x86deliver, int3_64bit_trap_gate_frame)
{
	struct vmm_xd_state s;
	setup(&s, true);
	gate64(3, 0x123456789a, 0x08, 0xf, 3, 0);
	struct vmm_xd_event ev = {.vector = 3, .soft = true, .ret_rip = 0x4001, .fault_rip = 0x4000};
	int sv = -1;
	cr_assert_eq(vmm_xd_deliver(&ops, NULL, &s, &ev, &sv), 0);
	cr_expect_eq(s.rip, 0x123456789aull);
	/* RSP 0xc008 aligned down to 0xc000, five quadwords below it. */
	cr_expect_eq(s.rsp, 0xc000 - 40);
	cr_expect_eq(q(s.rsp), 0x4001);       /* RIP after the INT3 */
	cr_expect_eq(q(s.rsp + 8), 0x08);     /* CS */
	cr_expect_eq(q(s.rsp + 16), 0x10302); /* RFLAGS as they were */
	cr_expect_eq(q(s.rsp + 24), 0xc008);  /* RSP */
	cr_expect_eq(q(s.rsp + 32), 0x10);    /* SS */
	cr_expect_eq(s.rflags, 0x202, "trap gate: IF kept, TF and RF cleared (0x%llx)",
		     (unsigned long long)s.rflags);
	cr_expect_eq(s.cs.sel, 0x08);
}

Test(x86deliver, interrupt_gate_clears_if_and_ist_switches_stack)
{
	struct vmm_xd_state s;
	setup(&s, true);
	gate64(0x20, 0x5000, 0x08, 0xe, 0, 1);
	struct vmm_xd_event ev = {.vector = 0x20, .ret_rip = 0x4000, .fault_rip = 0x4000};
	int sv;
	cr_assert_eq(vmm_xd_deliver(&ops, NULL, &s, &ev, &sv), 0);
	cr_expect_eq(s.rsp, 0xe000 - 40);
	cr_expect_eq(s.rflags & 0x200, 0);
}

Test(x86deliver, software_int_checks_gate_dpl)
{
	struct vmm_xd_state s;
	setup(&s, true);
	s.cs.sel = 0x0b; /* CPL 3 */
	gate64(0x40, 0x5000, 0x08, 0xe, 0, 0);
	struct vmm_xd_event ev = {.vector = 0x40, .soft = true, .ret_rip = 0x4002, .fault_rip = 0x4000};
	uint32_t ferr = 0;
	uint64_t fva = 0;
	cr_expect_eq(vmm_xd_deliver_once(&ops, NULL, &s, &ev, &ferr, &fva), VMM_XD_GP);
	cr_expect_eq(ferr, 0x40 * 8 + 2);
	cr_expect_eq(writes, 0);
	/* A hardware interrupt ignores the gate's DPL. */
	ev.soft = false;
	s.cs.sel = 0x08;
	cr_expect_eq(vmm_xd_deliver_once(&ops, NULL, &s, &ev, &ferr, &fva), 0);
}

Test(x86deliver, int_beyond_idt_limit_is_gp_then_triple_fault)
{
	struct vmm_xd_state s;
	setup(&s, true);
	struct vmm_xd_event ev = {.vector = 0x60, .soft = true, .ret_rip = 0x4002, .fault_rip = 0x4000};
	uint32_t ferr = 0;
	uint64_t fva = 0;
	s.idt.limit = 16 * 0x60 - 1;
	cr_expect_eq(vmm_xd_deliver_once(&ops, NULL, &s, &ev, &ferr, &fva), VMM_XD_GP);
	cr_expect_eq(ferr, 0x302);
	/* No IDT at all: #GP, then #DF, then shutdown. */
	s.idt.limit = 0;
	ev.vector = 3;
	int sv = -1;
	cr_expect_eq(vmm_xd_deliver(&ops, NULL, &s, &ev, &sv), 1);
	cr_expect_eq(sv, 3);
	cr_expect_eq(s.rip, 0x4000, "state unchanged by a failed delivery");
}

Test(x86deliver, frame_fault_is_pf_then_df)
{
	struct vmm_xd_state s;
	setup(&s, true);
	s.rsp = RO_PAGE + 0x1010; /* the frame lands on the refused page */
	gate64(0x20, 0x5000, 0x08, 0xe, 0, 0);
	gate64(14, 0x6000, 0x08, 0xe, 0, 0);
	gate64(8, 0x7000, 0x08, 0xe, 0, 1); /* #DF on its own stack */
	struct vmm_xd_event ev = {.vector = 0x20, .ret_rip = 0x4000, .fault_rip = 0x4000};
	int sv;
	cr_assert_eq(vmm_xd_deliver(&ops, NULL, &s, &ev, &sv), 0);
	/* The interrupt's frame faults (#PF), the #PF's frame too: #DF, error code 0. */
	cr_expect_eq(s.rip, 0x7000);
	cr_expect_eq(q(s.rsp), 0, "error code");
	cr_expect_eq(q(s.rsp + 8), 0x4000, "#DF returns to the faulting point");
	cr_expect_eq(s.cr2, 0x8fe8, "CR2: where the interrupt's frame faulted");
}

Test(x86deliver, frame_32bit_with_error_code)
{
	struct vmm_xd_state s;
	setup(&s, false);
	gate32(13, 0x5000, 0x18, 0xe, 0);
	struct vmm_xd_event ev = {.vector = 13, .has_err = true, .err = 0x1230,
				  .ret_rip = 0x4000, .fault_rip = 0x4000};
	int sv;
	cr_assert_eq(vmm_xd_deliver(&ops, NULL, &s, &ev, &sv), 0);
	cr_expect_eq(s.rsp, 0xc008 - 16);
	uint32_t f[4];
	memcpy(f, mem + s.rsp, sizeof(f));
	cr_expect_eq(f[0], 0x1230);
	cr_expect_eq(f[1], 0x4000);
	cr_expect_eq(f[2], 0x18);
	cr_expect_eq(f[3], 0x10302);
	cr_expect_eq(s.rip, 0x5000);
	cr_expect_eq(s.rflags & 0x300, 0, "interrupt gate: IF and TF cleared");
}
