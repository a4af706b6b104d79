/* standalone */
/*
 * test_pic.c: vmm/pic.c against the 8259A datasheet: initialisation, priorities and
 * rotation, EOI kinds, masks, auto-EOI, cascade, spurious IRQ 7/15, ELCR level mode,
 * poll and special mask modes, save/load.
 */
#include "../../vmm/pic.c"
#include "devtest.h"

static struct vmm_machine *m;
static void *pic;

#define OPS (&pic_dev_ops)

static void wr(uint16_t port, uint8_t v)
{
	dt_out(OPS, pic, port, v);
}

static uint8_t rd(uint16_t port)
{
	return dt_in(OPS, pic, port);
}

/* The initialisation Linux does: cascade, ICW4 8086 mode, vectors 0x20 and 0x28. */
static void init_pair(uint8_t icw4)
{
	wr(0x20, 0x11);
	wr(0x21, 0x20);
	wr(0x21, 0x04);
	wr(0x21, icw4);
	wr(0xa0, 0x11);
	wr(0xa1, 0x28);
	wr(0xa1, 0x02);
	wr(0xa1, icw4);
	wr(0x21, 0x00);
	wr(0xa1, 0x00);
}

static uint8_t isr(uint16_t cmd)
{
	wr(cmd, 0x0b);
	return rd(cmd);
}

static uint8_t irr(uint16_t cmd)
{
	wr(cmd, 0x0a);
	return rd(cmd);
}

static void pulse(unsigned line)
{
	pic_set_irq(pic, line, 1);
	pic_set_irq(pic, line, 0);
}

static void setup(void)
{
	m = dt_machine();
	pic = dt_create(OPS, m);
	init_pair(0x01);
}

static void teardown(void)
{
	OPS->destroy(pic);
	free(m);
}

TestSuite(pic, .init = setup, .fini = teardown);

Test(pic, icw2_sets_vector_base_and_ack_moves_irr_to_isr)
{
	cr_assert_not(pic_intr(pic));
	pic_set_irq(pic, 1, 1);
	cr_assert(pic_intr(pic));
	cr_assert_eq(irr(0x20), 0x02);
	cr_assert_eq(pic_ack(pic), 0x21);
	cr_assert_eq(isr(0x20), 0x02);
	cr_assert_eq(irr(0x20), 0x00);
	cr_assert_not(pic_intr(pic));
	/* A base with low bits set is truncated to a multiple of 8. */
	wr(0x20, 0x11);
	wr(0x21, 0x47);
	wr(0x21, 0x04);
	wr(0x21, 0x01);
	pulse(3);
	cr_assert_eq(pic_ack(pic), 0x43);
}

Test(pic, edge_pulse_is_latched_and_a_held_line_does_not_retrigger)
{
	pulse(0);
	cr_assert(pic_intr(pic), "a 1-0 pulse must stay latched in IRR");
	cr_assert_eq(pic_ack(pic), 0x20);
	wr(0x20, 0x20);
	cr_assert_not(pic_intr(pic));
	pic_set_irq(pic, 0, 1);
	cr_assert_eq(pic_ack(pic), 0x20);
	wr(0x20, 0x20);
	pic_set_irq(pic, 0, 1); /* still high: no edge */
	cr_assert_not(pic_intr(pic));
	pic_set_irq(pic, 0, 0);
	pic_set_irq(pic, 0, 1);
	cr_assert(pic_intr(pic));
}

Test(pic, in_service_blocks_equal_and_lower_until_eoi)
{
	pulse(3);
	cr_assert_eq(pic_ack(pic), 0x23);
	pulse(3);
	pulse(5);
	cr_assert_not(pic_intr(pic), "IR3 in service blocks IR3 and IR5");
	pulse(1);
	cr_assert(pic_intr(pic), "IR1 outranks IR3 in service");
	cr_assert_eq(pic_ack(pic), 0x21);
	cr_assert_eq(isr(0x20), 0x0a);
	/* Non-specific EOI ends the highest level in service: IR1. */
	wr(0x20, 0x20);
	cr_assert_eq(isr(0x20), 0x08);
	cr_assert_not(pic_intr(pic));
	wr(0x20, 0x20);
	cr_assert_eq(isr(0x20), 0x00);
	cr_assert_eq(pic_ack(pic), 0x23);
	wr(0x20, 0x20);
	cr_assert_eq(pic_ack(pic), 0x25);
}

Test(pic, specific_eoi_clears_only_the_named_level)
{
	pulse(4);
	cr_assert_eq(pic_ack(pic), 0x24);
	pulse(2 + 0); /* line 2 does not exist: ignored */
	pulse(0);
	cr_assert_eq(pic_ack(pic), 0x20);
	cr_assert_eq(isr(0x20), 0x11);
	wr(0x20, 0x64); /* specific EOI, IR4 */
	cr_assert_eq(isr(0x20), 0x01);
}

Test(pic, imr_masks_and_reads_back_request_waits_in_irr)
{
	wr(0x21, 0x40);
	cr_assert_eq(rd(0x21), 0x40);
	pulse(6);
	cr_assert_not(pic_intr(pic));
	cr_assert_eq(irr(0x20), 0x40);
	wr(0x21, 0x00);
	cr_assert(pic_intr(pic));
	cr_assert_eq(pic_ack(pic), 0x26);
}

Test(pic, spurious_irq7_when_request_vanishes_before_inta)
{
	/* A level line that drops before INTA. */
	wr(0x4d0, 0x20);
	pic_set_irq(pic, 5, 1);
	cr_assert(pic_intr(pic));
	pic_set_irq(pic, 5, 0);
	cr_assert_eq(pic_ack(pic), 0x27);
	cr_assert_eq(isr(0x20), 0x00, "spurious must not set ISR");
	/* An edge request masked after INTR was seen. */
	pulse(4);
	cr_assert(pic_intr(pic));
	wr(0x21, 0x10);
	cr_assert_eq(pic_ack(pic), 0x27);
	cr_assert_eq(isr(0x20), 0x00);
}

Test(pic, spurious_irq15_keeps_cascade_in_service_on_master)
{
	wr(0x4d1, 0x10); /* IRQ 12 level */
	pic_set_irq(pic, 12, 1);
	cr_assert(pic_intr(pic));
	pic_set_irq(pic, 12, 0);
	cr_assert_eq(pic_ack(pic), 0x2f);
	cr_assert_eq(isr(0x20), 0x04, "master has IR2 in service");
	cr_assert_eq(isr(0xa0), 0x00, "slave has nothing in service");
}

Test(pic, cascade_delivers_slave_vector_and_needs_both_eois)
{
	pulse(9);
	cr_assert(pic_intr(pic));
	cr_assert_eq(pic_ack(pic), 0x29);
	cr_assert_eq(isr(0x20), 0x04);
	cr_assert_eq(isr(0xa0), 0x02);
	/* IRQ 8 on the slave outranks 9 there, but master IR2 is in service. */
	pulse(8);
	cr_assert_not(pic_intr(pic));
	/* Master IR0 and IR1 outrank the cascade. */
	pulse(1);
	cr_assert(pic_intr(pic));
	cr_assert_eq(pic_ack(pic), 0x21);
	wr(0x20, 0x20); /* ends IR1 */
	wr(0xa0, 0x20); /* ends IRQ 9 on the slave */
	cr_assert_not(pic_intr(pic), "master IR2 still in service");
	wr(0x20, 0x20);
	cr_assert(pic_intr(pic));
	cr_assert_eq(pic_ack(pic), 0x28);
	/* Masking IR2 on the master masks the whole slave. */
	wr(0xa0, 0x20);
	wr(0x20, 0x20);
	wr(0x21, 0x04);
	pulse(15);
	cr_assert_not(pic_intr(pic));
	wr(0x21, 0x00);
	cr_assert_eq(pic_ack(pic), 0x2f);
	cr_assert_eq(isr(0xa0), 0x80, "a real IRQ 15 is in service, unlike a spurious one");
}

Test(pic, slave_requests_are_not_lost_across_ack_in_auto_eoi)
{
	init_pair(0x03);
	pulse(10);
	pulse(11);
	cr_assert_eq(pic_ack(pic), 0x2a);
	cr_assert(pic_intr(pic), "IRQ 11 is still requested after IRQ 10's INTA");
	cr_assert_eq(pic_ack(pic), 0x2b);
	cr_assert_not(pic_intr(pic));
	cr_assert_eq(isr(0x20), 0x00);
	cr_assert_eq(isr(0xa0), 0x00);
}

Test(pic, auto_eoi_sets_no_isr)
{
	init_pair(0x03);
	pulse(3);
	cr_assert_eq(pic_ack(pic), 0x23);
	cr_assert_eq(isr(0x20), 0x00);
	pulse(3);
	cr_assert(pic_intr(pic), "no EOI is needed in auto-EOI mode");
}

Test(pic, rotate_on_nonspecific_eoi_makes_serviced_level_lowest)
{
	pulse(0);
	cr_assert_eq(pic_ack(pic), 0x20);
	wr(0x20, 0xa0); /* rotate on non-specific EOI */
	pulse(0);
	pulse(1);
	cr_assert_eq(pic_ack(pic), 0x21, "IR0 is now the lowest priority");
	wr(0x20, 0xa0); /* IR1 becomes lowest: order 2..7,0,1 */
	cr_assert_eq(pic_ack(pic), 0x20);
	wr(0x20, 0x20);
}

Test(pic, set_priority_and_rotate_on_specific_eoi)
{
	wr(0x20, 0xc4); /* IR4 lowest, IR5 highest */
	pulse(3);
	pulse(6);
	cr_assert_eq(pic_ack(pic), 0x26);
	cr_assert(pic_intr(pic) == false, "IR3 ranks below IR6 in service now");
	wr(0x20, 0xe6); /* rotate on specific EOI 6: IR7 highest */
	cr_assert_eq(pic_ack(pic), 0x23);
	pulse(7);
	cr_assert(pic_intr(pic), "IR7 is now the highest priority");
}

Test(pic, rotate_in_auto_eoi_mode)
{
	init_pair(0x03);
	wr(0x20, 0x80); /* set rotate in AEOI */
	pulse(0);
	cr_assert_eq(pic_ack(pic), 0x20);
	pulse(0);
	pulse(5);
	cr_assert_eq(pic_ack(pic), 0x25, "IR0 became lowest at its INTA");
	wr(0x20, 0x00); /* clear rotate in AEOI */
	cr_assert_eq(pic_ack(pic), 0x20);
	pulse(6);
	pulse(5);
	cr_assert_eq(pic_ack(pic), 0x26, "priorities stay where the last rotation left them");
}

Test(pic, elcr_level_lines_follow_the_line_and_reassert_after_eoi)
{
	wr(0x4d0, 0xff);
	wr(0x4d1, 0xff);
	cr_assert_eq(rd(0x4d0), 0xf8, "IRQ 0-2 cannot be level");
	cr_assert_eq(rd(0x4d1), 0xde, "IRQ 8 and 13 cannot be level");
	cr_assert_eq(dt_in_sz(OPS, pic, 0x4d0, 2), 0xdef8u);
	pic_set_irq(pic, 10, 1);
	cr_assert_eq(pic_ack(pic), 0x2a);
	wr(0xa0, 0x20);
	wr(0x20, 0x20);
	cr_assert(pic_intr(pic), "a level line still high requests again");
	/* The request vanishes after the cascade latched it: spurious IRQ 15. */
	pic_set_irq(pic, 10, 0);
	cr_assert_eq(irr(0xa0), 0x00);
	cr_assert_eq(pic_ack(pic), 0x2f);
	wr(0x20, 0x20);
	cr_assert_not(pic_intr(pic));
	/* Edge again: a held-high line gives one interrupt. */
	wr(0x4d1, 0x00);
	pic_set_irq(pic, 10, 1);
	cr_assert_eq(pic_ack(pic), 0x2a);
	wr(0xa0, 0x20);
	wr(0x20, 0x20);
	cr_assert_not(pic_intr(pic));
}

Test(pic, icw1_ltim_makes_all_lines_level)
{
	wr(0x20, 0x19);
	wr(0x21, 0x20);
	wr(0x21, 0x04);
	wr(0x21, 0x01);
	pic_set_irq(pic, 0, 1);
	pic_set_irq(pic, 0, 0);
	cr_assert_not(pic_intr(pic), "a pulse is not latched in level mode");
}

Test(pic, poll_command_acknowledges_by_read)
{
	wr(0x21, 0xff); /* polling works with INTR masked... */
	wr(0x21, 0x00); /* ...but IMR still masks: unmask */
	wr(0x20, 0x0c);
	cr_assert_eq(rd(0x20), 0x00, "nothing pending: bit 7 clear");
	pulse(5);
	wr(0x20, 0x0c);
	cr_assert_eq(rd(0x21), 0x85, "poll byte on either port");
	cr_assert_eq(isr(0x20), 0x20);
	cr_assert_eq(rd(0x21), 0x00, "next read is IMR again");
}

Test(pic, special_mask_mode_lets_lower_levels_through)
{
	pulse(3);
	cr_assert_eq(pic_ack(pic), 0x23);
	pulse(5);
	cr_assert_not(pic_intr(pic));
	wr(0x20, 0x68); /* set special mask */
	wr(0x21, 0x08); /* mask IR3, which is in service */
	cr_assert(pic_intr(pic));
	cr_assert_eq(pic_ack(pic), 0x25);
	wr(0x20, 0x48); /* reset special mask */
	wr(0x21, 0x00);
	pulse(6);
	cr_assert_not(pic_intr(pic), "normal nesting again");
}

Test(pic, icw1_clears_mask_isr_and_edge_latches)
{
	wr(0x21, 0x55);
	pulse(0);
	wr(0x20, 0x11);
	cr_assert_eq(rd(0x21), 0x00, "ICW1 clears IMR");
	wr(0x21, 0x20);
	wr(0x21, 0x04);
	wr(0x21, 0x01);
	cr_assert_not(pic_intr(pic), "ICW1 clears the latched edge");
	pulse(7);
	cr_assert_eq(irr(0x20), 0x80);
	cr_assert_eq(isr(0x20), 0x00);
}

Test(pic, single_mode_without_icw3)
{
	wr(0x20, 0x13); /* single, ICW4 */
	wr(0x21, 0x50);
	wr(0x21, 0x01); /* this is ICW4, not ICW3 */
	wr(0x21, 0xfe);
	cr_assert_eq(rd(0x21), 0xfe);
	pulse(0);
	cr_assert_eq(pic_ack(pic), 0x50);
}

Test(pic, save_load_continues_identically)
{
	wr(0x4d1, 0x04); /* IRQ 10 level */
	wr(0x20, 0xc2);  /* IR2 lowest */
	pulse(4);
	cr_assert_eq(pic_ack(pic), 0x24);
	pulse(1);
	pic_set_irq(pic, 10, 1);
	pulse(14);
	wr(0xa1, 0x40); /* mask 14 */
	wr(0x20, 0x0b); /* read ISR next */

	struct vmm_machine *m2 = dt_machine();
	void *pic2 = dt_clone(OPS, pic, m, m2);
	cr_assert_eq(pic_intr(pic2), pic_intr(pic));
	cr_assert_eq(dt_in(OPS, pic2, 0x20), dt_in(OPS, pic, 0x20));
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(pic_intr(pic2), pic_intr(pic));
		uint8_t a = pic_ack(pic), b = pic_ack(pic2);
		cr_assert_eq(a, b, "ack %d: 0x%x vs 0x%x", i, a, b);
		wr(0xa0, 0x20);
		dt_out(OPS, pic2, 0xa0, 0x20);
		wr(0x20, 0x20);
		dt_out(OPS, pic2, 0x20, 0x20);
		if (i == 2) {
			pic_set_irq(pic, 10, 0);
			pic_set_irq(pic2, 10, 0);
			wr(0xa1, 0x00);
			dt_out(OPS, pic2, 0xa1, 0x00);
		}
	}
	uint8_t a[sizeof(struct pic_state)], b[sizeof(struct pic_state)];
	OPS->save(pic, a);
	OPS->save(pic2, b);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0, "the two runs ended in different states");
	OPS->destroy(pic2);
	free(m2);
}

static void corrupt_rotation(void *blob)
{
	((struct pic_state *)blob)->chip[0].lowest = 9;
}

static void corrupt_version(void *blob)
{
	((struct pic_state *)blob)->version = 77;
}

static void corrupt_cascade(void *blob)
{
	((struct pic_state *)blob)->chip[0].lines ^= 4;
}

Test(pic, load_refuses_bad_state)
{
	dt_assert_load_refuses(OPS, pic, corrupt_rotation);
	dt_assert_load_refuses(OPS, pic, corrupt_version);
	dt_assert_load_refuses(OPS, pic, corrupt_cascade);
}
