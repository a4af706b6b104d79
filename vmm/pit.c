/*
 * pit.c: the 8254 programmable interval timer (0x40-0x43: three counters and the control
 * word) and port 0x61 (system control port B: counter 2 gate, speaker enable, counter 2
 * OUT, refresh toggle).
 *
 * Implements (Intel 8254 datasheet): modes 0-5, LSB / MSB / LSB-then-MSB access with the
 * read and write flip-flops, the counter latch command, the read-back command (count and
 * status, null count), gate behaviour per mode (counter 2's gate is bit 0 of port 0x61;
 * counters 0 and 1 have their gates tied high, as on a PC). Counter 0 drives IRQ 0.
 *
 * Time: a counter's value and OUT are computed from vmm_clock_ns() at 1193182 Hz, counting
 * from the time the count was loaded (or the gate opened). The clock is read only when the
 * guest loads a count, reads a counter or its status, reads port 0x61, or changes the gate
 * of a counting counter 2: every read becomes a logged event when recording. Counter 0's
 * interrupts come from a machine timer whose deadlines are computed from the tick number
 * of the next event (never from the clock), so periodic deadlines do not drift.
 *
 * IRQ 0 is edge-triggered at the 8259: in modes 2, 3, 4 and 5 each rising edge of OUT is
 * delivered as a pulse on the line (1 then 0) at the start of each period (modes 2, 3) or
 * at the terminal count (modes 4, 5); in modes 0 and 1 the line follows OUT (high from the
 * terminal count until the counter is reprogrammed).
 *
 * Leaves out: BCD counting (the BCD bit is kept and reported in the status, but counters
 * count in binary; a count of 0 means 0x10000), the one-clock delay between writing a count
 * and its loading into the counting element, and the rule that a new count in modes 2 and
 * 3 waits for the end of the current period (it takes effect at once, as in QEMU). In mode
 * 3 with an odd count, reads return N - 2k in both half periods (the chip's exact odd
 * sequence differs by one). A new count in modes 1 and 5 waits for the next gate trigger.
 * Counter 1 (DRAM refresh) counts but drives nothing. After reset the counters are idle
 * until programmed (no BIOS has run).
 */
#include "devices.h"
#include "guest_abi.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define PIT_STATE_VERSION 1
#define PIT_HZ 1193182u
#define NS_PER_S 1000000000u

struct pit_chan {
	uint64_t seg_ns;     /* machine clock when the current counting stretch began */
	uint64_t base_ticks; /* ticks counted before seg_ns (gate pauses) */
	uint64_t next_tick;  /* counter 0: tick of the next event its timer delivers */
	uint32_t count;      /* the count register, 1..0x10000 */
	uint16_t latch;      /* latched count */
	uint8_t mode;        /* 0..5 */
	uint8_t rw;          /* 1 LSB, 2 MSB, 3 LSB then MSB */
	uint8_t bcd;         /* BCD bit of the control word (reported, not used) */
	uint8_t loaded;      /* a count was written since the control word */
	uint8_t running;     /* the counting element is counting now */
	uint8_t triggered;   /* modes 1, 5: a gate trigger was seen */
	uint8_t gate;        /* gate input level */
	uint8_t read_hi;     /* read flip-flop: the next unlatched read returns MSB */
	uint8_t write_hi;    /* write flip-flop: the next write is the MSB */
	uint8_t write_lsb;   /* the LSB written first */
	uint8_t latched;     /* count latch: 0 none, 1 LSB due, 2 MSB due, 3 both (LSB first) */
	uint8_t status_latched;
	uint8_t status;      /* latched status byte */
	uint8_t null_count;  /* status bit 6 */
	uint8_t pad[3];
};

struct pit_state {
	uint32_t version;
	uint8_t port61;    /* bits 0-3 as written (bit 0 = counter 2 gate, bit 1 = speaker) */
	uint8_t irq_level; /* the level this device last drove on IRQ 0 */
	uint8_t timer_armed;
	uint8_t pad;
	uint64_t timer_deadline;
	struct pit_chan ch[3];
};

struct pit {
	struct pit_state st;
	struct vmm_machine *m;
	struct vmm_timer timer; /* counter 0 events */
};

/* Whole ticks in ns nanoseconds. */
static uint64_t ns_to_ticks(uint64_t ns)
{
	return (uint64_t)(((unsigned __int128)ns * PIT_HZ) / NS_PER_S);
}

/* The smallest ns such that ns_to_ticks(ns) >= ticks. */
static uint64_t ticks_to_ns_ceil(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * NS_PER_S + PIT_HZ - 1) / PIT_HZ);
}

/* Ticks counted since the count was loaded, at clock time now. */
static uint64_t chan_elapsed(const struct pit_chan *c, uint64_t now)
{
	uint64_t d = c->base_ticks;
	if (c->running && now > c->seg_ns)
		d += ns_to_ticks(now - c->seg_ns);
	return d;
}

static bool gate_needed(const struct pit_chan *c)
{
	/* Modes 2 and 3 stop counting (OUT high) while the gate is low; 0 and 4 pause. */
	return c->mode == 0 || c->mode == 2 || c->mode == 3 || c->mode == 4;
}

/* OUT after d ticks; only meaningful for a loaded counter. */
static int chan_out_at(const struct pit_chan *c, uint64_t d)
{
	uint64_t n = c->count;
	switch (c->mode) {
	case 0:
		return d >= n;
	case 1:
		return c->triggered ? d >= n : 1;
	case 2:
		if (!c->gate || n < 2)
			return 1;
		return d % n != n - 1;
	case 3:
		if (!c->gate)
			return 1;
		return d % n < (n + 1) / 2;
	case 4:
		return d != n;
	default: /* 5 */
		return c->triggered ? d != n : 1;
	}
}

static uint16_t chan_count_at(const struct pit_chan *c, uint64_t d)
{
	uint64_t n = c->count;
	switch (c->mode) {
	case 2:
		return (uint16_t)(n - d % n);
	case 3: {
		uint64_t p = d % n, h = (n + 1) / 2;
		uint64_t k = p < h ? p : p - h;
		return (uint16_t)(n - 2 * k);
	}
	case 1:
	case 5:
		if (!c->triggered)
			return (uint16_t)n;
		return (uint16_t)(n - d);
	default:
		return (uint16_t)(n - d);
	}
}

static void pit_set_irq0(struct pit *p, int level)
{
	if (p->st.irq_level != level) {
		p->st.irq_level = (uint8_t)level;
		vmm_irq_set(p->m, IRQ_PIT, level);
	}
}

static void pit_timer_arm(struct pit *p, uint64_t deadline)
{
	p->st.timer_armed = 1;
	p->st.timer_deadline = deadline;
	vmm_timer_arm(p->m, &p->timer, deadline);
}

static void pit_timer_cancel(struct pit *p)
{
	if (p->st.timer_armed || p->timer.armed)
		vmm_timer_cancel(p->m, &p->timer);
	p->st.timer_armed = 0;
}

/* Arm counter 0's timer for the event at tick next_tick (relative to the loaded count). */
static void pit_timer_at(struct pit *p, uint64_t tick)
{
	struct pit_chan *c = &p->st.ch[0];
	c->next_tick = tick;
	pit_timer_arm(p, c->seg_ns + ticks_to_ns_ceil(tick - c->base_ticks));
}

/*
 * Counter 0: after a load, schedule the first event that comes after tick d (the ticks
 * already counted at clock time seg_ns).
 */
static void pit_schedule(struct pit *p)
{
	struct pit_chan *c = &p->st.ch[0];
	pit_timer_cancel(p);
	if (!c->loaded || !c->running)
		return;
	uint64_t d = c->base_ticks, n = c->count;
	switch (c->mode) {
	case 0:
	case 4:
		if (d < n)
			pit_timer_at(p, n);
		break;
	case 1:
	case 5:
		if (c->triggered && d < n)
			pit_timer_at(p, n);
		break;
	default: /* 2, 3: a rising edge at the start of every period */
		pit_timer_at(p, (d / n + 1) * n);
		break;
	}
}

/* Counter 0's timer: deliver the event, then schedule the next from its tick number. */
static void pit_timer_fire(void *opaque)
{
	struct pit *p = opaque;
	struct pit_chan *c = &p->st.ch[0];
	p->st.timer_armed = 0;
	if (!c->loaded || !c->running)
		return;
	switch (c->mode) {
	case 0:
	case 1:
		pit_set_irq0(p, 1);
		break;
	case 2:
	case 3:
		pit_set_irq0(p, 1);
		pit_set_irq0(p, 0);
		pit_timer_at(p, c->next_tick + c->count);
		break;
	default:
		pit_set_irq0(p, 1);
		pit_set_irq0(p, 0);
		break;
	}
}

static uint8_t port61_read(struct pit *p)
{
	struct pit_chan *c = &p->st.ch[2];
	uint64_t now = vmm_clock_ns(p->m);
	int out = c->loaded ? chan_out_at(c, chan_elapsed(c, now)) : (c->mode == 0 ? 0 : 1);
	/* Refresh toggles every 15.085 us on a PC; a pure function of time here. */
	int refresh = (int)((now / 15085) & 1);
	return (uint8_t)((p->st.port61 & 0x0f) | (refresh << 4) | (out << 5));
}

/* Counter 2's gate changed to level. Reads the clock only if the counter reacts. */
static void chan_set_gate(struct pit *p, struct pit_chan *c, int level)
{
	if (c->gate == level)
		return;
	bool reacts = c->loaded &&
		      (level ? (!gate_needed(c) || !c->running) : (gate_needed(c) && c->running));
	uint64_t now = reacts ? vmm_clock_ns(p->m) : 0;
	c->gate = (uint8_t)level;
	if (!reacts)
		return;
	if (!level) {
		c->base_ticks = chan_elapsed(c, now);
		c->running = 0;
		return;
	}
	switch (c->mode) {
	case 0:
	case 4: /* resume counting */
		break;
	case 1:
	case 5: /* trigger: reload and start */
		c->triggered = 1;
		c->base_ticks = 0;
		break;
	default: /* 2, 3: the rising gate reloads the counter */
		c->base_ticks = 0;
		break;
	}
	c->seg_ns = now;
	c->running = 1;
}

static void port61_write(struct pit *p, uint8_t val)
{
	p->st.port61 = val & 0x0f;
	chan_set_gate(p, &p->st.ch[2], val & 1);
}

static void chan_load(struct pit *p, unsigned idx, uint32_t val)
{
	struct pit_chan *c = &p->st.ch[idx];
	c->count = val ? val : 0x10000;
	c->loaded = 1;
	c->null_count = 0;
	c->base_ticks = 0;
	c->triggered = 0;
	c->running = 0;
	if (c->mode != 1 && c->mode != 5 && c->gate) {
		c->seg_ns = vmm_clock_ns(p->m);
		c->running = 1;
	}
	if (idx == 0) {
		/* Mode 0: OUT falls when a count is written. */
		pit_set_irq0(p, 0);
		pit_schedule(p);
	}
}

/* The current count, for an unlatched read or a latch command (reads the clock). */
static uint16_t chan_current(struct pit *p, struct pit_chan *c)
{
	if (!c->loaded)
		return (uint16_t)c->count;
	return chan_count_at(c, chan_elapsed(c, vmm_clock_ns(p->m)));
}

static void chan_latch_count(struct pit *p, struct pit_chan *c)
{
	if (c->latched)
		return;
	c->latch = chan_current(p, c);
	c->latched = c->rw;
}

static void chan_latch_status(struct pit *p, struct pit_chan *c)
{
	if (c->status_latched)
		return;
	int out;
	if (c->loaded)
		out = chan_out_at(c, chan_elapsed(c, vmm_clock_ns(p->m)));
	else
		out = c->mode == 0 ? 0 : 1;
	c->status = (uint8_t)((out << 7) | (c->null_count << 6) | (c->rw << 4) | (c->mode << 1) |
			      c->bcd);
	c->status_latched = 1;
}

static void pit_control(struct pit *p, uint8_t val)
{
	unsigned sel = val >> 6;
	if (sel == 3) {
		/* Read-back: bit 5 low latches counts, bit 4 low latches status. */
		for (unsigned i = 0; i < 3; i++) {
			if (!(val & (2u << i)))
				continue;
			if (!(val & 0x10))
				chan_latch_status(p, &p->st.ch[i]);
			if (!(val & 0x20))
				chan_latch_count(p, &p->st.ch[i]);
		}
		return;
	}
	struct pit_chan *c = &p->st.ch[sel];
	unsigned rw = (val >> 4) & 3;
	if (rw == 0) {
		chan_latch_count(p, c);
		return;
	}
	/* A control word resets the counter's control logic; it waits for a new count. */
	c->rw = (uint8_t)rw;
	c->mode = (val >> 1) & 7;
	if (c->mode > 5)
		c->mode &= 3; /* 6 and 7 are 2 and 3 */
	c->bcd = val & 1;
	c->loaded = 0;
	c->running = 0;
	c->triggered = 0;
	c->read_hi = 0;
	c->write_hi = 0;
	c->latched = 0;
	c->status_latched = 0;
	c->null_count = 1;
	if (sel == 0) {
		pit_timer_cancel(p);
		pit_set_irq0(p, 0);
	}
}

static uint8_t chan_read(struct pit *p, struct pit_chan *c)
{
	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	switch (c->latched) {
	case 1:
		c->latched = 0;
		return (uint8_t)c->latch;
	case 2:
		c->latched = 0;
		return (uint8_t)(c->latch >> 8);
	case 3:
		c->latched = 2;
		return (uint8_t)c->latch;
	default:
		break;
	}
	uint16_t v = chan_current(p, c);
	switch (c->rw) {
	case 1:
		return (uint8_t)v;
	case 2:
		return (uint8_t)(v >> 8);
	default:
		if (c->read_hi) {
			c->read_hi = 0;
			return (uint8_t)(v >> 8);
		}
		c->read_hi = 1;
		return (uint8_t)v;
	}
}

static void chan_write(struct pit *p, unsigned idx, uint8_t val)
{
	struct pit_chan *c = &p->st.ch[idx];
	switch (c->rw) {
	case 1:
		chan_load(p, idx, val);
		break;
	case 2:
		chan_load(p, idx, (uint32_t)val << 8);
		break;
	default:
		if (!c->write_hi) {
			c->write_lsb = val;
			c->write_hi = 1;
			/* Mode 0: writing the first byte stops the count and drops OUT. */
			if (c->mode == 0 && idx == 0 && c->loaded) {
				pit_timer_cancel(p);
				pit_set_irq0(p, 0);
			}
		} else {
			c->write_hi = 0;
			chan_load(p, idx, c->write_lsb | (uint32_t)val << 8);
		}
		break;
	}
}

static uint8_t pit_read_byte(struct pit *p, unsigned range, unsigned off)
{
	if (range == 1)
		return port61_read(p);
	if (off < 3)
		return chan_read(p, &p->st.ch[off]);
	return 0xff; /* the control word register is write-only */
}

static void pit_write_byte(struct pit *p, unsigned range, unsigned off, uint8_t val)
{
	if (range == 1)
		port61_write(p, val);
	else if (off < 3)
		chan_write(p, off, val);
	else
		pit_control(p, val);
}

static const uint16_t pit_range_len[2] = { 4, 1 };

static uint32_t pit_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		uint32_t b = 0xff;
		if (range < 2 && off + i < pit_range_len[range])
			b = pit_read_byte(dev, range, off + i);
		v |= b << (8 * i);
	}
	return v;
}

static void pit_pio_write(void *dev, unsigned range, uint16_t off, unsigned size, uint32_t val)
{
	if (range >= 2)
		return;
	for (unsigned i = 0; i < size && off + i < pit_range_len[range]; i++)
		pit_write_byte(dev, range, off + i, (uint8_t)(val >> (8 * i)));
}

static int pit_create(struct vmm_machine *m, void **dev)
{
	struct pit *p = calloc(1, sizeof(*p));
	if (!p)
		return vmm_fail(VMM_ENOMEM, "pit: out of memory");
	p->m = m;
	p->st.version = PIT_STATE_VERSION;
	for (unsigned i = 0; i < 3; i++) {
		struct pit_chan *c = &p->st.ch[i];
		c->count = 0x10000;
		c->rw = 3;
		c->gate = i != 2;
	}
	int rc = vmm_timer_register(m, &p->timer, "pit0", pit_timer_fire, p);
	if (rc < 0) {
		free(p);
		return rc;
	}
	*dev = p;
	return 0;
}

static void pit_destroy(void *dev)
{
	free(dev);
}

static void pit_save(void *dev, void *buf)
{
	struct pit *p = dev;
	p->st.timer_armed = p->timer.armed;
	if (p->timer.armed)
		p->st.timer_deadline = p->timer.deadline;
	memcpy(buf, &p->st, sizeof(p->st));
}

static int pit_load(void *dev, const void *buf)
{
	struct pit *p = dev;
	struct pit_state s;
	memcpy(&s, buf, sizeof(s));
	if (s.version != PIT_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "pit: state version %u, expected %u", s.version,
				PIT_STATE_VERSION);
	if ((s.port61 & ~0x0f) || s.irq_level > 1 || s.timer_armed > 1)
		return vmm_fail(VMM_ESTATE, "pit: bad port 0x61 or timer state");
	for (unsigned i = 0; i < 3; i++) {
		const struct pit_chan *c = &s.ch[i];
		if (c->mode > 5 || c->rw < 1 || c->rw > 3 || c->bcd > 1 || c->count < 1 ||
		    c->count > 0x10000 || c->loaded > 1 || c->running > 1 || c->triggered > 1 ||
		    c->gate > 1 || c->read_hi > 1 || c->write_hi > 1 || c->latched > 3 ||
		    c->status_latched > 1 || c->null_count > 1 || (i != 2 && !c->gate) ||
		    (i == 2 && c->gate != (s.port61 & 1)))
			return vmm_fail(VMM_ESTATE, "pit: bad state of counter %u", i);
	}
	p->st = s;
	if (s.timer_armed)
		vmm_timer_arm(p->m, &p->timer, s.timer_deadline);
	else if (p->timer.armed)
		vmm_timer_cancel(p->m, &p->timer);
	return 0;
}

const struct vmm_dev_ops pit_dev_ops = {
	.name = "pit",
	.ranges = { { 0x40, 4 }, { 0x61, 1 } },
	.state_size = sizeof(struct pit_state),
	.create = pit_create,
	.destroy = pit_destroy,
	.pio_read = pit_pio_read,
	.pio_write = pit_pio_write,
	.save = pit_save,
	.load = pit_load,
};
