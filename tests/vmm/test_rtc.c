/* standalone */
/*
 * test_rtc.c: vmm/rtc.c against the MC146818 datasheet: time and date from the clock in
 * BCD/binary and 12/24-hour format, setting the time with SET and the divider reset,
 * UIP, registers C and D, periodic, update-ended and alarm interrupts on IRQ 8 from
 * timers that never read the clock, CMOS RAM, save/load.
 */
#include "../../vmm/rtc.c"
#include "devtest.h"

static struct vmm_machine *m;
static void *rtc;

#define OPS (&rtc_dev_ops)
#define SEC 1000000000ull

static uint8_t cmos(uint8_t idx)
{
	dt_out(OPS, rtc, 0x70, idx);
	return dt_in(OPS, rtc, 0x71);
}

static void cmos_set(uint8_t idx, uint8_t v)
{
	dt_out(OPS, rtc, 0x70, idx);
	dt_out(OPS, rtc, 0x71, v);
}

static void setup(void)
{
	m = dt_machine(); /* 2023-11-14 22:13:20 UTC, a Tuesday, on a second boundary */
	rtc = dt_create(OPS, m);
}

static void teardown(void)
{
	OPS->destroy(rtc);
	free(m);
}

TestSuite(rtc, .init = setup, .fini = teardown);

Test(rtc, time_and_date_from_the_clock_in_bcd_24h)
{
	cr_assert_eq(cmos(0x00), 0x20);
	cr_assert_eq(cmos(0x02), 0x13);
	cr_assert_eq(cmos(0x04), 0x22);
	cr_assert_eq(cmos(0x06), 0x03, "Tuesday (Sunday = 1)");
	cr_assert_eq(cmos(0x07), 0x14);
	cr_assert_eq(cmos(0x08), 0x11);
	cr_assert_eq(cmos(0x09), 0x23);
	cr_assert_eq(cmos(0x32), 0x20);
	m->now += SEC - 1;
	cr_assert_eq(cmos(0x00), 0x20);
	m->now += 1;
	cr_assert_eq(cmos(0x00), 0x21);
	/* Across midnight and the year: 2023-12-31 23:59:59 + 1 s. */
	m->now = 1704067199ull * SEC;
	cr_assert_eq(cmos(0x09), 0x23);
	m->now += SEC;
	cr_assert_eq(cmos(0x09), 0x24);
	cr_assert_eq(cmos(0x08), 0x01);
	cr_assert_eq(cmos(0x07), 0x01);
	cr_assert_eq(cmos(0x04), 0x00);
	cr_assert_eq(cmos(0x06), 0x02, "2024-01-01 was a Monday");
	/* 2024-02-29 exists. */
	m->now = 1709164800ull * SEC;
	cr_assert_eq(cmos(0x08), 0x02);
	cr_assert_eq(cmos(0x07), 0x29);
}

Test(rtc, binary_and_12_hour_formats)
{
	cmos_set(0x0b, 0x06); /* binary, 24 h */
	cr_assert_eq(cmos(0x00), 20);
	cr_assert_eq(cmos(0x04), 22);
	cr_assert_eq(cmos(0x09), 23);
	cr_assert_eq(cmos(0x32), 20);
	cmos_set(0x0b, 0x04); /* binary, 12 h */
	cr_assert_eq(cmos(0x04), 0x80 | 10, "10 PM");
	cmos_set(0x0b, 0x00); /* BCD, 12 h */
	cr_assert_eq(cmos(0x04), 0x90, "10 PM in BCD");
	m->now = 1700006400ull * SEC; /* 00:00:00 */
	cr_assert_eq(cmos(0x04), 0x12, "midnight is 12 AM");
	m->now += 12 * 3600 * SEC;
	cr_assert_eq(cmos(0x04), 0x92, "noon is 12 PM");
}

Test(rtc, set_time_with_set_bit_then_count_on)
{
	m->now += SEC / 4; /* phase 250 ms */
	cmos_set(0x0b, 0x82);
	uint8_t frozen = cmos(0x00);
	m->now += 5 * SEC;
	cr_assert_eq(cmos(0x00), frozen, "SET stops the update");
	cr_assert_eq(cmos(0x0a) & 0x80, 0, "no UIP while SET");
	/* 1999-12-31 23:59:58 */
	cmos_set(0x00, 0x58);
	cmos_set(0x02, 0x59);
	cmos_set(0x04, 0x23);
	cmos_set(0x07, 0x31);
	cmos_set(0x08, 0x12);
	cmos_set(0x09, 0x99);
	cmos_set(0x32, 0x19);
	cr_assert_eq(cmos(0x00), 0x58);
	cmos_set(0x0b, 0x02);
	cr_assert_eq(cmos(0x00), 0x58);
	/* The divider kept its 250 ms phase: the next update is 750 ms on. */
	m->now += 3 * SEC / 4 - 1;
	cr_assert_eq(cmos(0x00), 0x58);
	m->now += 1;
	cr_assert_eq(cmos(0x00), 0x59);
	m->now += SEC;
	cr_assert_eq(cmos(0x00), 0x00);
	cr_assert_eq(cmos(0x09), 0x00);
	cr_assert_eq(cmos(0x32), 0x20);
	cr_assert_eq(cmos(0x08), 0x01);
	cr_assert_eq(cmos(0x06), 0x07, "2000-01-01 was a Saturday");
}

/* What Linux's mc146818_set_time() does: SET, divider reset, write, restore B, then A. */
Test(rtc, linux_set_time_sequence_first_update_500ms_after_release)
{
	uint8_t b = cmos(0x0b), a = cmos(0x0a);
	cmos_set(0x0b, b | 0x80);
	cmos_set(0x0a, a | 0x70);
	cmos_set(0x00, 0x00);
	cmos_set(0x02, 0x30);
	cmos_set(0x04, 0x08);
	cmos_set(0x07, 0x01);
	cmos_set(0x08, 0x06);
	cmos_set(0x09, 0x25);
	m->now += 3 * SEC;
	cmos_set(0x0b, b);
	cr_assert_eq(cmos(0x00), 0x00, "still frozen: divider in reset");
	cmos_set(0x0a, a);
	m->now += SEC / 2 - 1;
	cr_assert_eq(cmos(0x00), 0x00);
	m->now += 1;
	cr_assert_eq(cmos(0x00), 0x01);
	cr_assert_eq(cmos(0x02), 0x30);
	cr_assert_eq(cmos(0x04), 0x08);
	cr_assert_eq(cmos(0x08), 0x06);
}

Test(rtc, writing_a_time_register_while_counting_keeps_the_phase)
{
	m->now += SEC / 2;
	cmos_set(0x02, 0x45); /* minutes */
	cr_assert_eq(cmos(0x02), 0x45);
	cr_assert_eq(cmos(0x00), 0x20);
	cr_assert_eq(cmos(0x04), 0x22);
	m->now += SEC / 2;
	cr_assert_eq(cmos(0x00), 0x21);
}

Test(rtc, uip_in_the_244us_before_each_update)
{
	m->now += SEC - 244000 - 1;
	cr_assert_eq(cmos(0x0a), 0x26);
	m->now += 1;
	cr_assert_eq(cmos(0x0a), 0xa6);
	cr_assert_eq(cmos(0x00), 0x20, "registers hold the old second during UIP");
	m->now += 244000;
	cr_assert_eq(cmos(0x0a), 0x26);
	cr_assert_eq(cmos(0x00), 0x21);
	cmos_set(0x0a, 0xa6);
	m->now += SEC - 1000;
	cr_assert_eq(cmos(0x0a), 0xa6, "UIP is read-only but computed");
}

Test(rtc, register_d_vrt_and_cmos_ram)
{
	cr_assert_eq(cmos(0x0d), 0x80);
	cmos_set(0x0d, 0x00);
	cr_assert_eq(cmos(0x0d), 0x80);
	unsigned reads = m->clock_reads;
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cmos_set((uint8_t)i, (uint8_t)(i * 7));
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cr_assert_eq(cmos((uint8_t)i), (uint8_t)(i * 7), "byte 0x%x", i);
	cr_assert_eq(m->clock_reads, reads, "CMOS RAM needs no clock");
	/* Bit 7 of the index is the NMI mask: not part of the address. */
	dt_out(OPS, rtc, 0x70, 0x80 | 0x20);
	cr_assert_eq(dt_in(OPS, rtc, 0x71), (uint8_t)(0x20 * 7));
	cr_assert_eq(dt_in(OPS, rtc, 0x70), 0xff, "the index port is write-only");
}

Test(rtc, periodic_interrupt_at_1024hz_until_pie_off)
{
	uint64_t t0 = m->now;
	cmos_set(0x0b, 0x42); /* PIE */
	cr_assert_eq(m->clock_reads, 1u);
	cr_assert_eq(m->irq[8], 0);
	unsigned n = 0;
	while (m->now < t0 + SEC) {
		struct vmm_timer *t = dt_next_timer(m);
		cr_assert(t);
		dt_run_until(m, t->deadline);
		cr_assert_eq(m->irq[8], 1);
		cr_assert_eq(cmos(0x0c), 0xc0, "IRQF and PF");
		cr_assert_eq(m->irq[8], 0, "reading C lowers IRQ 8");
		cr_assert_eq(cmos(0x0c), 0x00);
		n++;
	}
	cr_assert_eq(n, 1024u);
	cr_assert_eq(m->now, t0 + SEC, "the grid is aligned to the divider");
	cr_assert_eq(m->clock_reads, 1u, "timers never read the clock");
	/* Unacknowledged: the line stays high, a single rise. */
	unsigned rises = m->rises[8];
	dt_advance(m, SEC / 10);
	cr_assert_eq(m->rises[8], rises + 1);
	cmos(0x0c);
	cmos_set(0x0b, 0x02);
	dt_advance(m, SEC);
	cr_assert_eq(m->irq[8], 0);
	cr_assert_eq(cmos(0x0c), 0x00);
}

Test(rtc, periodic_rates_from_register_a)
{
	cmos_set(0x0a, 0x2f); /* rate 15: 2 Hz */
	cmos_set(0x0b, 0x42);
	unsigned n = 0;
	for (int i = 0; i < 4; i++) {
		struct vmm_timer *t = dt_next_timer(m);
		uint64_t before = m->now;
		dt_run_until(m, t->deadline);
		if (i)
			cr_assert_eq(m->now - before, SEC / 2);
		n += cmos(0x0c) == 0xc0;
	}
	cr_assert_eq(n, 4u);
	cmos_set(0x0a, 0x23); /* rate 3: 122.070 us */
	uint64_t t0 = m->now;
	unsigned fired = m->fired;
	dt_run_until(m, t0 + SEC);
	cr_assert_eq(m->fired - fired, 8192u);
	cmos_set(0x0a, 0x20); /* rate 0: off */
	fired = m->fired;
	dt_advance(m, SEC);
	cr_assert_eq(m->fired, fired);
}

Test(rtc, update_ended_interrupt_each_second)
{
	uint64_t t0 = m->now;
	m->now += SEC / 3;
	cmos_set(0x0b, 0x12); /* UIE */
	dt_run_until(m, t0 + SEC - 1);
	cr_assert_eq(m->irq[8], 0);
	dt_run_until(m, t0 + SEC);
	cr_assert_eq(m->irq[8], 1, "at the second boundary");
	cr_assert_eq(cmos(0x0c), 0x90, "IRQF and UF");
	cr_assert_eq(cmos(0x00), 0x21);
	dt_advance(m, SEC);
	cr_assert_eq(cmos(0x0c), 0x90);
	/* Setting SET clears UIE and stops the updates. */
	cmos_set(0x0b, 0x92);
	cr_assert_eq(cmos(0x0b), 0x82);
	dt_advance(m, 3 * SEC);
	cr_assert_eq(cmos(0x0c), 0x00);
}

Test(rtc, alarm_interrupt_when_time_matches)
{
	cmos_set(0x01, 0x25); /* 22:13:25 */
	cmos_set(0x03, 0x13);
	cmos_set(0x05, 0x22);
	cmos_set(0x0b, 0x22); /* AIE */
	dt_advance(m, 4 * SEC);
	cr_assert_eq(m->irq[8], 0);
	uint8_t c = cmos(0x0c);
	cr_assert_eq(c & 0x20, 0, "no alarm yet");
	cr_assert_eq(c & 0x80, 0, "UF alone does not raise IRQF without UIE");
	dt_advance(m, SEC);
	cr_assert_eq(m->irq[8], 1);
	cr_assert_eq(cmos(0x0c) & 0xa0, 0xa0);
	dt_advance(m, SEC);
	cr_assert_eq(cmos(0x0c) & 0x20, 0);
	/* "Don't care" seconds: every second of 22:13. */
	cmos_set(0x01, 0xc0);
	unsigned hits = 0;
	for (int i = 0; i < 60; i++) {
		dt_advance(m, SEC);
		hits += (cmos(0x0c) & 0x20) != 0;
	}
	cr_assert_eq(hits, 33u, "22:13:27 to 22:13:59");
}

Test(rtc, enabling_an_interrupt_with_its_flag_set_raises_irqf)
{
	cmos_set(0x0b, 0x22); /* AIE only: UF gets set without raising IRQF */
	dt_advance(m, SEC);
	cr_assert_eq(m->irq[8], 0);
	cmos_set(0x0b, 0x32); /* UIE too: UF is pending */
	cr_assert_eq(m->irq[8], 1);
	cr_assert_eq(cmos(0x0c) & 0x90, 0x90);
}

Test(rtc, save_load_with_interrupts_running)
{
	m->now += 123456789;
	cmos_set(0x0a, 0x2a); /* 64 Hz */
	cmos_set(0x0b, 0x56); /* PIE, UIE, binary */
	cmos_set(0x40, 0x99);
	cmos_set(0x02, 7);    /* minutes, shifts the offset */
	dt_advance(m, SEC + SEC / 7);
	cmos_set(0x0b, 0xd6); /* and SET: frozen */
	cmos_set(0x00, 42);
	dt_out(OPS, rtc, 0x70, 0x0c);

	struct vmm_machine *m2 = dt_machine();
	void *rtc2 = dt_clone(OPS, rtc, m, m2);
	unsigned e1 = m->nevents, e2 = m2->nevents;
	cr_assert_eq(dt_in(OPS, rtc2, 0x71), dt_in(OPS, rtc, 0x71), "index kept: reads C");
	for (int i = 0; i < 30; i++) {
		dt_advance(m, SEC / 9);
		dt_advance(m2, SEC / 9);
		if (i == 10) {
			cmos_set(0x0b, 0x56);
			dt_out(OPS, rtc2, 0x70, 0x0b);
			dt_out(OPS, rtc2, 0x71, 0x56);
		}
		for (uint8_t r = 0; r <= 0x0c; r++) {
			dt_out(OPS, rtc2, 0x70, r);
			cr_assert_eq(dt_in(OPS, rtc2, 0x71), cmos(r), "register 0x%x", r);
		}
	}
	dt_assert_same_irqs(m, e1, m2, e2);
	cr_assert_gt(m->nevents - e1, 20u);
	OPS->destroy(rtc2);
	free(m2);
}

static void corrupt_irq(void *blob)
{
	((struct rtc_state *)blob)->irq_level ^= 1;
}

static void corrupt_index(void *blob)
{
	((struct rtc_state *)blob)->index = 0x80;
}

static void corrupt_timer(void *blob)
{
	struct rtc_state *s = blob;
	s->cmos[REG_B] &= ~B_PIE;
	s->pi_armed = 1;
}

Test(rtc, load_refuses_bad_state)
{
	dt_assert_load_refuses(OPS, rtc, corrupt_irq);
	dt_assert_load_refuses(OPS, rtc, corrupt_index);
	dt_assert_load_refuses(OPS, rtc, corrupt_timer);
}
