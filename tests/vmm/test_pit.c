/* standalone */
/*
 * test_pit.c: vmm/pit.c against the 8254 datasheet: counter values and OUT from the clock
 * in modes 0-5, access modes and flip-flops, latch and read-back commands, counter 2's
 * gate and OUT on port 0x61 (Linux's TSC calibration), counter 0 driving IRQ 0 from
 * timers that never read the clock and do not drift, few clock reads, save/load.
 */
#include "../../vmm/pit.c"
#include "devtest.h"

static struct vmm_machine *m;
static void *pit;

#define OPS (&pit_dev_ops)

static void wr(uint16_t port, uint8_t v)
{
	dt_out(OPS, pit, port, v);
}

static uint8_t rd(uint16_t port)
{
	return dt_in(OPS, pit, port);
}

/* ns after which exactly `ticks` ticks have elapsed. */
static uint64_t tns(uint64_t ticks)
{
	return (ticks * 1000000000ull + 1193181) / 1193182;
}

static void load16(unsigned ch, uint16_t v)
{
	wr(0x40 + ch, v & 0xff);
	wr(0x40 + ch, v >> 8);
}

/* Latch and read a counter in LSB-then-MSB mode. */
static uint16_t latch_read(unsigned ch)
{
	wr(0x43, (uint8_t)(ch << 6));
	uint16_t lo = rd(0x40 + ch);
	return (uint16_t)(lo | rd(0x40 + ch) << 8);
}

static uint8_t status(unsigned ch)
{
	wr(0x43, (uint8_t)(0xe0 | (2u << ch))); /* read-back: status only */
	return rd(0x40 + ch);
}

static void setup(void)
{
	m = dt_machine();
	pit = dt_create(OPS, m);
}

static void teardown(void)
{
	OPS->destroy(pit);
	free(m);
}

TestSuite(pit, .init = setup, .fini = teardown);

Test(pit, idle_after_reset_reads_no_clock_and_raises_nothing)
{
	cr_assert_eq(dt_advance(m, 1000000000), 0u);
	cr_assert_eq(m->rises[0], 0u);
	wr(0x43, 0x34);
	cr_assert_eq(m->clock_reads, 0u, "a control word needs no clock");
	cr_assert_eq(m->timers[0]->armed, false, "no count, no timer");
}

Test(pit, mode2_periodic_irq0_at_exact_ticks_without_drift)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x34);
	load16(0, 1193);
	cr_assert_eq(m->clock_reads, 1u, "loading the count reads the clock once");
	dt_run_until(m, t0 + tns(1193) - 1);
	cr_assert_eq(m->rises[0], 0u, "no interrupt before the first period ends");
	dt_run_until(m, t0 + tns(1193));
	cr_assert_eq(m->rises[0], 1u);
	cr_assert_eq(m->irq[0], 0, "the edge is a pulse");
	/* 100000 periods later (about 100 s): no drift from rounding. */
	dt_run_until(m, t0 + tns(1193ull * 100000));
	cr_assert_eq(m->rises[0], 100000u);
	dt_run_until(m, t0 + tns(1193ull * 100001) - 1);
	cr_assert_eq(m->rises[0], 100000u);
	cr_assert_eq(m->timers[0]->deadline, t0 + tns(1193ull * 100001));
	cr_assert_eq(m->clock_reads, 1u, "timers never read the clock");
}

Test(pit, mode2_counter_value_and_reload)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x34);
	load16(0, 1000);
	m->now = t0 + tns(300);
	cr_assert_eq(latch_read(0), 700);
	m->now = t0 + tns(999);
	cr_assert_eq(latch_read(0), 1);
	cr_assert_eq(status(0) & 0x80, 0, "mode 2: OUT low while the count is 1");
	m->now = t0 + tns(1000);
	cr_assert_eq(latch_read(0), 1000, "reloaded");
	cr_assert_eq(status(0) & 0x80, 0x80);
	m->now = t0 + tns(2250);
	cr_assert_eq(latch_read(0), 750);
}

Test(pit, latch_freezes_the_value_until_both_bytes_are_read)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x34);
	load16(0, 0x1234);
	m->now = t0 + tns(0x34);
	wr(0x43, 0x00); /* latch counter 0 */
	unsigned reads = m->clock_reads;
	m->now = t0 + tns(0x200);
	wr(0x43, 0x00); /* a second latch is ignored while one is pending */
	cr_assert_eq(rd(0x40), 0x00);
	cr_assert_eq(rd(0x40), 0x12);
	cr_assert_eq(m->clock_reads, reads, "reading a latched count needs no clock");
	/* Unlatched reads follow the counter and the read flip-flop. */
	cr_assert_eq(rd(0x40), (0x1234 - 0x200) & 0xff);
	cr_assert_eq(rd(0x40), (0x1234 - 0x200) >> 8);
}

Test(pit, lsb_only_and_msb_only_access)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x10 | 0x04); /* counter 0, LSB only, mode 2 */
	wr(0x40, 0x80);
	m->now = t0 + tns(0x10);
	cr_assert_eq(rd(0x40), 0x70);
	cr_assert_eq(rd(0x40), 0x70, "no flip-flop in LSB mode");
	t0 = m->now;
	wr(0x43, 0x20 | 0x04); /* MSB only */
	wr(0x40, 0x02);        /* count 0x200 */
	m->now = t0 + tns(0x101);
	cr_assert_eq(rd(0x40), 0x00); /* 0x0ff */
	cr_assert_eq(status(0) & 0x3f, 0x24);
}

Test(pit, mode0_out_rises_at_terminal_count_and_stays)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x30);
	cr_assert_eq(status(0) & 0xc0, 0x40, "after the CW: OUT low, null count");
	load16(0, 500);
	cr_assert_eq(status(0) & 0xc0, 0x00, "count loaded: null count clear, OUT low");
	dt_run_until(m, t0 + tns(500) - 1);
	cr_assert_eq(m->irq[0], 0);
	dt_run_until(m, t0 + tns(500));
	cr_assert_eq(m->irq[0], 1, "OUT (and IRQ 0) high at terminal count");
	dt_advance(m, 1000000000);
	cr_assert_eq(m->irq[0], 1, "and stays high");
	cr_assert_eq(m->rises[0], 1u);
	/* The counter wraps and keeps counting after terminal count. */
	m->now = t0 + tns(600);
	cr_assert_eq(latch_read(0), (uint16_t)(500 - 600));
	/* Writing the first byte of a new count drops OUT. */
	wr(0x40, 0x10);
	cr_assert_eq(m->irq[0], 0);
	wr(0x40, 0x00);
	t0 = m->now;
	dt_run_until(m, t0 + tns(16));
	cr_assert_eq(m->irq[0], 1);
	/* A new control word drops OUT too. */
	wr(0x43, 0x30);
	cr_assert_eq(m->irq[0], 0);
}

Test(pit, mode4_one_strobe)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x38);
	load16(0, 100);
	dt_run_until(m, t0 + tns(99));
	cr_assert_eq(m->rises[0], 0u);
	dt_run_until(m, t0 + tns(100));
	cr_assert_eq(m->rises[0], 1u);
	cr_assert_eq(m->irq[0], 0);
	dt_advance(m, 1000000000);
	cr_assert_eq(m->rises[0], 1u, "mode 4 strobes once");
	cr_assert_eq(m->timers[0]->armed, false);
}

Test(pit, mode3_square_wave_counts_by_two_and_interrupts_each_period)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x36);
	load16(0, 100);
	m->now = t0 + tns(10);
	cr_assert_eq(latch_read(0), 80);
	cr_assert_eq(status(0) & 0x80, 0x80, "first half: OUT high");
	m->now = t0 + tns(60);
	cr_assert_eq(latch_read(0), 80);
	cr_assert_eq(status(0) & 0x80, 0x00, "second half: OUT low");
	m->now = t0;
	dt_run_until(m, t0 + tns(1000));
	cr_assert_eq(m->rises[0], 10u);
	cr_assert_eq(status(0) & 0x0e, 0x06, "mode 3 in the status");
	/* Mode 7 is mode 3. */
	wr(0x43, 0x3e);
	cr_assert_eq(status(0) & 0x0e, 0x06);
}

Test(pit, readback_latches_status_then_count)
{
	uint64_t t0 = m->now;
	wr(0x43, 0xb0); /* counter 2, LSB/MSB, mode 0 */
	wr(0x43, 0xe8); /* read-back status of counter 2 */
	cr_assert_eq(rd(0x42), 0x70, "OUT low, null count, rw 3, mode 0, binary");
	wr(0x61, 0x01);
	load16(2, 1000);
	m->now = t0 + tns(1500);
	wr(0x43, 0xc8); /* read-back count and status of counter 2 */
	m->now = t0 + tns(1600);
	cr_assert_eq(rd(0x42), 0xb0, "status first: OUT high, count loaded");
	cr_assert_eq(rd(0x42), (uint8_t)(1000 - 1500));
	cr_assert_eq(rd(0x42), (uint8_t)((uint16_t)(1000 - 1500) >> 8));
	/* Read-back of several counters at once. */
	wr(0x43, 0x34);
	load16(0, 50);
	wr(0x43, 0xea); /* status of counters 0 and 2 */
	cr_assert_eq(rd(0x40) & 0x3f, 0x34);
	cr_assert_eq(rd(0x42) & 0x3f, 0x30);
	/* BCD is reported as written. */
	wr(0x43, 0x71);
	cr_assert_eq(status(1) & 0x01, 0x01);
}

/* What Linux's pit_calibrate_tsc() and quick_pit_calibrate() do with counter 2. */
Test(pit, counter2_tsc_calibration_via_port61)
{
	cr_assert_eq(rd(0x61) & 0x03, 0x00);
	uint8_t v = rd(0x61);
	wr(0x61, (uint8_t)((v & ~0x02) | 0x01)); /* gate high, speaker off */
	cr_assert_eq(rd(0x61) & 0x03, 0x01);
	wr(0x43, 0xb0);
	uint64_t t0 = m->now;
	wr(0x42, 11931 & 0xff);
	wr(0x42, 11931 >> 8);
	unsigned reads = m->clock_reads;
	m->now = t0 + tns(11930);
	cr_assert_eq(rd(0x61) & 0x20, 0, "OUT low before terminal count");
	m->now = t0 + tns(11931);
	cr_assert_eq(rd(0x61) & 0x20, 0x20, "OUT high at terminal count");
	cr_assert_eq(m->clock_reads, reads + 2, "one clock read per port 0x61 read");
	cr_assert_eq(m->rises[0], 0u, "counter 2 interrupts nothing");
	/* quick_pit_calibrate: mode 0, 0xffff, unlatched MSB reads. */
	wr(0x43, 0xb0);
	t0 = m->now;
	load16(2, 0xffff);
	m->now = t0 + tns(256 * 3 + 5);
	rd(0x42);
	cr_assert_eq(rd(0x42), 0xfc);
}

Test(pit, counter2_gate_pauses_mode0_and_retriggers_mode1)
{
	wr(0x61, 0x01);
	wr(0x43, 0xb0);
	uint64_t t0 = m->now;
	load16(2, 1000);
	m->now = t0 + tns(100);
	wr(0x61, 0x00); /* gate low: mode 0 pauses */
	m->now = t0 + tns(5000);
	cr_assert_eq(latch_read(2), 900);
	cr_assert_eq(rd(0x61) & 0x20, 0);
	t0 = m->now;
	wr(0x61, 0x01);
	m->now = t0 + tns(900);
	cr_assert_eq(rd(0x61) & 0x20, 0x20, "counting resumed where it paused");

	/* Mode 1: nothing until a rising gate; OUT low during the count. */
	wr(0x61, 0x00);
	wr(0x43, 0xb2);
	load16(2, 300);
	m->now += tns(1000);
	cr_assert_eq(rd(0x61) & 0x20, 0x20, "mode 1 untriggered: OUT high");
	t0 = m->now;
	wr(0x61, 0x01);
	m->now = t0 + tns(100);
	cr_assert_eq(rd(0x61) & 0x20, 0, "OUT low after the trigger");
	cr_assert_eq(latch_read(2), 200);
	wr(0x61, 0x00);
	t0 = m->now;
	wr(0x61, 0x01); /* retrigger restarts the count */
	m->now = t0 + tns(250);
	cr_assert_eq(rd(0x61) & 0x20, 0);
	m->now = t0 + tns(300);
	cr_assert_eq(rd(0x61) & 0x20, 0x20);
}

Test(pit, counter2_gate_low_holds_mode2_out_high_and_reloads_on_rise)
{
	wr(0x61, 0x01);
	wr(0x43, 0xb4);
	uint64_t t0 = m->now;
	load16(2, 100);
	m->now = t0 + tns(99);
	cr_assert_eq(rd(0x61) & 0x20, 0);
	wr(0x61, 0x00);
	cr_assert_eq(rd(0x61) & 0x20, 0x20, "gate low forces OUT high");
	m->now += tns(1000);
	t0 = m->now;
	wr(0x61, 0x01);
	m->now = t0 + tns(30);
	cr_assert_eq(latch_read(2), 70, "rising gate reloaded the count");
}

Test(pit, gate_changes_of_an_idle_counter_read_no_clock)
{
	wr(0x61, 0x01);
	wr(0x61, 0x00);
	wr(0x61, 0x03);
	cr_assert_eq(m->clock_reads, 0u);
}

Test(pit, port61_refresh_bit_toggles_with_time)
{
	m->now = 0;
	uint8_t a = rd(0x61);
	m->now = 15085;
	uint8_t b = rd(0x61);
	cr_assert_neq(a & 0x10, b & 0x10);
	m->now = 2 * 15085;
	cr_assert_eq(rd(0x61) & 0x10, a & 0x10);
	cr_assert_eq(a & 0xc0, 0);
}

Test(pit, count_zero_means_65536)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x34);
	load16(0, 0);
	dt_run_until(m, t0 + tns(65535));
	cr_assert_eq(m->rises[0], 0u);
	dt_run_until(m, t0 + tns(65536));
	cr_assert_eq(m->rises[0], 1u);
}

Test(pit, save_load_mid_period_continues_identically)
{
	uint64_t t0 = m->now;
	wr(0x43, 0x34);
	load16(0, 1193);
	wr(0x61, 0x01);
	wr(0x43, 0xb0);
	load16(2, 40000);
	dt_run_until(m, t0 + tns(1193 * 7 + 500));
	wr(0x43, 0x80); /* latch counter 2, read only its LSB */
	rd(0x42);
	wr(0x43, 0x70); /* counter 1: half-written count */
	wr(0x41, 0x55);

	struct vmm_machine *m2 = dt_machine();
	void *pit2 = dt_clone(OPS, pit, m, m2);
	unsigned e1 = m->nevents, e2 = m2->nevents;
	cr_assert_eq(dt_in(OPS, pit2, 0x42), rd(0x42), "the latched MSB survives");
	dt_out(OPS, pit2, 0x41, 0x01);
	wr(0x41, 0x01);
	for (int i = 0; i < 50; i++) {
		dt_advance(m, 1234567);
		dt_advance(m2, 1234567);
		cr_assert_eq(dt_in(OPS, pit2, 0x61), rd(0x61));
		dt_out(OPS, pit2, 0x43, 0x40);
		wr(0x43, 0x40);
		cr_assert_eq(dt_in(OPS, pit2, 0x41), rd(0x41));
		cr_assert_eq(dt_in(OPS, pit2, 0x41), rd(0x41));
	}
	dt_assert_same_irqs(m, e1, m2, e2);
	cr_assert_gt(m->nevents - e1, 40u);
	OPS->destroy(pit2);
	free(m2);
}

static void corrupt_mode(void *blob)
{
	((struct pit_state *)blob)->ch[1].mode = 6;
}

static void corrupt_count(void *blob)
{
	((struct pit_state *)blob)->ch[0].count = 0x10001;
}

static void corrupt_gate(void *blob)
{
	((struct pit_state *)blob)->ch[0].gate = 0;
}

Test(pit, load_refuses_bad_state)
{
	dt_assert_load_refuses(OPS, pit, corrupt_mode);
	dt_assert_load_refuses(OPS, pit, corrupt_count);
	dt_assert_load_refuses(OPS, pit, corrupt_gate);
}
