/*
 * rtc.c: the MC146818 CMOS real-time clock at 0x70 (index; bit 7 is the NMI mask, ignored)
 * and 0x71 (data), IRQ 8, with 128 bytes of CMOS.
 *
 * Implements (Motorola MC146818 datasheet): time and date registers 0-9 and the century
 * byte at 0x32, in BCD or binary (register B DM) and 12- or 24-hour format (B 24/12, PM in
 * bit 7 of the hour); alarm registers 1, 3, 5 with "don't care" values 0xC0-0xFF;
 * register A (UIP, divider DV, rate select RS), B (SET, PIE, AIE, UIE, DM, 24/12), C
 * (IRQF, PF, AF, UF; reading clears it and lowers IRQ 8) and D (VRT always 1); the other
 * bytes are plain CMOS RAM. IRQ 8 follows IRQF.
 *
 * Time of day is vmm_clock_ns() (ns since the Unix epoch, UTC) plus an offset, changed
 * when the guest writes the time registers. SET=1 or a divider reset (DV=11x) freezes the
 * registers (the guest sees and writes plain bytes); clearing SET resumes counting with
 * the divider's phase kept; releasing the divider resumes with the first update 500 ms
 * later, as the datasheet says. UIP reads 1 during the 244 us before each second boundary.
 * The clock is read only when the guest reads a time register or register A, writes a
 * time register while the clock runs, freezes or resumes the clock, or turns on an
 * interrupt that needs a timer.
 *
 * Periodic (rate from register A), update-ended and alarm interrupts come from two machine
 * timers on the 32768 Hz divider grid and the second boundaries; their callbacks compute
 * the next deadline from the previous one and never read the clock.
 *
 * Leaves out: PF, UF and AF are set only while the matching interrupt is enabled (there is
 * no timer to set them otherwise, so polling C with PIE/UIE/AIE off reads 0); SQWE has no
 * pin to drive; daylight saving (DSE) is ignored; the day of week is derived from the date
 * rather than kept as written; DV values other than 11x count as the normal 32768 Hz time
 * base; out-of-range register values are clamped when the clock resumes. The CMOS RAM
 * starts zeroed (no BIOS memory-size bytes).
 */
#include "devices.h"
#include "guest_abi.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define RTC_STATE_VERSION 1
#define NS_PER_S 1000000000LL
#define DIV_HZ 32768
#define UIP_NS 244000LL /* UIP rises this long before each update */

enum {
	REG_SEC = 0x00,
	REG_SEC_ALARM = 0x01,
	REG_MIN = 0x02,
	REG_MIN_ALARM = 0x03,
	REG_HOUR = 0x04,
	REG_HOUR_ALARM = 0x05,
	REG_DOW = 0x06,
	REG_DAY = 0x07,
	REG_MON = 0x08,
	REG_YEAR = 0x09,
	REG_A = 0x0a,
	REG_B = 0x0b,
	REG_C = 0x0c,
	REG_D = 0x0d,
	REG_CENTURY = 0x32,
};

#define A_UIP 0x80
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80

struct rtc_state {
	uint32_t version;
	uint8_t index;     /* selected CMOS byte */
	uint8_t irq_level; /* the level this device drives on IRQ 8 (= IRQF) */
	uint8_t pi_armed;  /* periodic timer */
	uint8_t upd_armed; /* update-ended / alarm timer */
	int64_t offset_ns; /* guest time = machine clock + offset */
	int64_t pi_tick;   /* divider tick (guest time, 32768 Hz) of the next periodic event */
	uint64_t pi_deadline;
	uint64_t upd_deadline; /* machine clock of the next second boundary */
	uint8_t cmos[128];     /* time bytes here are meaningful only while frozen */
};

struct rtc {
	struct rtc_state st;
	struct vmm_machine *m;
	struct vmm_timer pi_timer;
	struct vmm_timer upd_timer;
};

struct rtc_time {
	int64_t year;
	unsigned mon, day, hour, min, sec, dow; /* dow 1 = Sunday */
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void time_from_secs(int64_t secs, struct rtc_time *t)
{
	int64_t days = floor_div(secs, 86400), rem = secs - days * 86400;
	t->hour = (unsigned)(rem / 3600);
	t->min = (unsigned)(rem / 60 % 60);
	t->sec = (unsigned)(rem % 60);
	t->dow = (unsigned)floor_mod(days + 4, 7) + 1; /* 1970-01-01 was a Thursday */
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	t->day = doy - (153 * mp + 2) / 5 + 1;
	t->mon = mp < 10 ? mp + 3 : mp - 9;
	t->year = (int64_t)yoe + era * 400 + (t->mon <= 2);
}

static bool binary_mode(const struct rtc_state *s)
{
	return s->cmos[REG_B] & B_DM;
}

static uint8_t enc(const struct rtc_state *s, unsigned v)
{
	if (binary_mode(s))
		return (uint8_t)v;
	return (uint8_t)(((v / 10 % 10) << 4) | (v % 10));
}

static unsigned dec(const struct rtc_state *s, uint8_t v)
{
	if (binary_mode(s))
		return v;
	return (v >> 4) * 10u + (v & 0x0f);
}

static uint8_t enc_hour(const struct rtc_state *s, unsigned h)
{
	if (s->cmos[REG_B] & B_24H)
		return enc(s, h);
	unsigned h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(enc(s, h12) | (h >= 12 ? 0x80 : 0));
}

static unsigned dec_hour(const struct rtc_state *s, uint8_t v)
{
	if (s->cmos[REG_B] & B_24H)
		return dec(s, v);
	return dec(s, v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
}

/* The register idx of the time t, in the current format. */
static uint8_t time_reg(const struct rtc_state *s, const struct rtc_time *t, unsigned idx)
{
	switch (idx) {
	case REG_SEC:
		return enc(s, t->sec);
	case REG_MIN:
		return enc(s, t->min);
	case REG_HOUR:
		return enc_hour(s, t->hour);
	case REG_DOW:
		return enc(s, t->dow);
	case REG_DAY:
		return enc(s, t->day);
	case REG_MON:
		return enc(s, t->mon);
	case REG_YEAR:
		return enc(s, (unsigned)floor_mod(t->year, 100));
	default: /* REG_CENTURY */
		return enc(s, (unsigned)floor_mod(floor_div(t->year, 100), 100));
	}
}

static bool is_time_reg(unsigned idx)
{
	return idx == REG_SEC || idx == REG_MIN || idx == REG_HOUR || (idx >= REG_DOW &&
		idx <= REG_YEAR) || idx == REG_CENTURY;
}

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Seconds since the epoch that the (frozen) time registers say. */
static int64_t regs_secs(const struct rtc_state *s)
{
	const uint8_t *c = s->cmos;
	int64_t year = (int64_t)dec(s, c[REG_CENTURY]) * 100 + dec(s, c[REG_YEAR]);
	unsigned mon = clampu(dec(s, c[REG_MON]), 1, 12);
	unsigned day = clampu(dec(s, c[REG_DAY]), 1, 31);
	unsigned hour = clampu(dec_hour(s, c[REG_HOUR]), 0, 23);
	unsigned min = clampu(dec(s, c[REG_MIN]), 0, 59);
	unsigned sec = clampu(dec(s, c[REG_SEC]), 0, 59);
	return days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
}

static bool divider_reset(const struct rtc_state *s)
{
	return (s->cmos[REG_A] & 0x60) == 0x60;
}

static bool frozen(const struct rtc_state *s)
{
	return (s->cmos[REG_B] & B_SET) || divider_reset(s);
}

static int64_t guest_ns(const struct rtc_state *s, uint64_t now)
{
	return (int64_t)now + s->offset_ns;
}

/* Periodic interrupt period in divider ticks, 0 if off (rates 1, 2 as RS 8, 9). */
static int64_t pi_period(const struct rtc_state *s)
{
	unsigned rs = s->cmos[REG_A] & 0x0f;
	if (!rs)
		return 0;
	return rs <= 2 ? (int64_t)1 << (rs + 6) : (int64_t)1 << (rs - 1);
}

static bool need_pi(const struct rtc_state *s)
{
	return (s->cmos[REG_B] & B_PIE) && pi_period(s) && !divider_reset(s);
}

static bool need_upd(const struct rtc_state *s)
{
	return (s->cmos[REG_B] & (B_UIE | B_AIE)) && !frozen(s);
}

static void rtc_update_irq(struct rtc *r)
{
	struct rtc_state *s = &r->st;
	uint8_t b = s->cmos[REG_B], c = s->cmos[REG_C];
	bool irqf = ((c & C_PF) && (b & B_PIE)) || ((c & C_AF) && (b & B_AIE)) ||
		    ((c & C_UF) && (b & B_UIE));
	s->cmos[REG_C] = (uint8_t)((c & 0x70) | (irqf ? C_IRQF : 0));
	if (s->irq_level != irqf) {
		s->irq_level = irqf;
		vmm_irq_set(r->m, IRQ_RTC, irqf);
	}
}

static __int128 floor_div128(__int128 a, __int128 b)
{
	__int128 q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Machine-clock time of divider tick `tick` (guest time), rounded up. */
static uint64_t pi_deadline_of(const struct rtc_state *s, int64_t tick)
{
	int64_t g = (int64_t)-floor_div128(-(__int128)tick * NS_PER_S, DIV_HZ);
	int64_t clk = g - s->offset_ns;
	return clk < 0 ? 0 : (uint64_t)clk;
}

static void pi_arm_tick(struct rtc *r, int64_t tick)
{
	r->st.pi_tick = tick;
	r->st.pi_deadline = pi_deadline_of(&r->st, tick);
	r->st.pi_armed = 1;
	vmm_timer_arm(r->m, &r->pi_timer, r->st.pi_deadline);
}

static void upd_arm(struct rtc *r, uint64_t deadline)
{
	r->st.upd_deadline = deadline;
	r->st.upd_armed = 1;
	vmm_timer_arm(r->m, &r->upd_timer, deadline);
}

/* Bring both timers in line with the registers; now is the clock if have_now. */
static void rtc_sync_timers(struct rtc *r, bool have_now, uint64_t now, bool force)
{
	struct rtc_state *s = &r->st;
	bool pi = need_pi(s), upd = need_upd(s);
	if ((pi && (force || !s->pi_armed)) || (upd && (force || !s->upd_armed))) {
		if (!have_now)
			now = vmm_clock_ns(r->m);
	}
	if (pi && (force || !s->pi_armed)) {
		int64_t p = pi_period(s);
		int64_t tick =
			(int64_t)floor_div128((__int128)guest_ns(s, now) * DIV_HZ, NS_PER_S);
		pi_arm_tick(r, (floor_div(tick, p) + 1) * p);
	} else if (!pi && s->pi_armed) {
		s->pi_armed = 0;
		vmm_timer_cancel(r->m, &r->pi_timer);
	}
	if (upd && (force || !s->upd_armed)) {
		int64_t next = (floor_div(guest_ns(s, now), NS_PER_S) + 1) * NS_PER_S;
		int64_t clk = next - s->offset_ns;
		upd_arm(r, clk < 0 ? 0 : (uint64_t)clk);
	} else if (!upd && s->upd_armed) {
		s->upd_armed = 0;
		vmm_timer_cancel(r->m, &r->upd_timer);
	}
}

static void pi_fire(void *opaque)
{
	struct rtc *r = opaque;
	struct rtc_state *s = &r->st;
	s->pi_armed = 0;
	if (!need_pi(s))
		return;
	s->cmos[REG_C] |= C_PF;
	rtc_update_irq(r);
	pi_arm_tick(r, s->pi_tick + pi_period(s));
}

static bool alarm_match(uint8_t alarm, uint8_t now)
{
	return (alarm & 0xc0) == 0xc0 || alarm == now;
}

static void upd_fire(void *opaque)
{
	struct rtc *r = opaque;
	struct rtc_state *s = &r->st;
	s->upd_armed = 0;
	if (!need_upd(s))
		return;
	/* The deadline was a second boundary of guest time: the new second is exact. */
	struct rtc_time t;
	time_from_secs(floor_div((int64_t)s->upd_deadline + s->offset_ns, NS_PER_S), &t);
	s->cmos[REG_C] |= C_UF;
	if (alarm_match(s->cmos[REG_SEC_ALARM], time_reg(s, &t, REG_SEC)) &&
	    alarm_match(s->cmos[REG_MIN_ALARM], time_reg(s, &t, REG_MIN)) &&
	    alarm_match(s->cmos[REG_HOUR_ALARM], time_reg(s, &t, REG_HOUR)))
		s->cmos[REG_C] |= C_AF;
	rtc_update_irq(r);
	upd_arm(r, s->upd_deadline + NS_PER_S);
}

/* Freeze: copy the running time into the registers. */
static void rtc_snapshot(struct rtc_state *s, uint64_t now)
{
	static const unsigned regs[] = { REG_SEC, REG_MIN, REG_HOUR, REG_DOW,
					 REG_DAY, REG_MON, REG_YEAR, REG_CENTURY };
	struct rtc_time t;
	time_from_secs(floor_div(guest_ns(s, now), NS_PER_S), &t);
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		s->cmos[regs[i]] = time_reg(s, &t, regs[i]);
}

/* Run from the registers' time, at sub-second phase `phase` (ns) now. */
static void rtc_set_offset(struct rtc_state *s, uint64_t now, int64_t phase)
{
	s->offset_ns = regs_secs(s) * NS_PER_S + phase - (int64_t)now;
}

static uint8_t rtc_read_data(struct rtc *r)
{
	struct rtc_state *s = &r->st;
	unsigned idx = s->index;
	if (is_time_reg(idx) && !frozen(s)) {
		struct rtc_time t;
		time_from_secs(floor_div(guest_ns(s, vmm_clock_ns(r->m)), NS_PER_S), &t);
		return time_reg(s, &t, idx);
	}
	switch (idx) {
	case REG_A: {
		uint8_t a = s->cmos[REG_A] & 0x7f;
		if (!frozen(s)) {
			int64_t phase = floor_mod(guest_ns(s, vmm_clock_ns(r->m)), NS_PER_S);
			if (phase >= NS_PER_S - UIP_NS)
				a |= A_UIP;
		}
		return a;
	}
	case REG_C: {
		uint8_t c = s->cmos[REG_C];
		s->cmos[REG_C] = 0;
		rtc_update_irq(r);
		return c;
	}
	case REG_D:
		return D_VRT;
	default:
		return s->cmos[idx];
	}
}

static void rtc_write_time(struct rtc *r, unsigned idx, uint8_t val)
{
	struct rtc_state *s = &r->st;
	if (frozen(s)) {
		s->cmos[idx] = val;
		return;
	}
	/* Counting: apply the byte to the current time, keeping the divider phase. */
	uint64_t now = vmm_clock_ns(r->m);
	int64_t phase = floor_mod(guest_ns(s, now), NS_PER_S);
	rtc_snapshot(s, now);
	s->cmos[idx] = val;
	rtc_set_offset(s, now, phase);
	rtc_sync_timers(r, true, now, true);
}

static void rtc_write_a(struct rtc *r, uint8_t val)
{
	struct rtc_state *s = &r->st;
	bool was_frozen = frozen(s), was_reset = divider_reset(s);
	int64_t old_period = pi_period(s);
	uint64_t now = 0;
	bool have_now = false;

	if (!was_frozen && (val & 0x60) == 0x60) {
		now = vmm_clock_ns(r->m);
		have_now = true;
		rtc_snapshot(s, now);
	}
	s->cmos[REG_A] = val & 0x7f; /* UIP is read-only */
	bool force = false;
	if (was_reset && !divider_reset(s)) {
		/* Divider released: the first update comes 500 ms later. */
		now = vmm_clock_ns(r->m);
		have_now = true;
		rtc_set_offset(s, now, NS_PER_S / 2);
		force = true;
	}
	if (pi_period(s) != old_period)
		force = force || need_pi(s);
	rtc_sync_timers(r, have_now, now, force);
}

static void rtc_write_b(struct rtc *r, uint8_t val)
{
	struct rtc_state *s = &r->st;
	bool was_frozen = frozen(s);
	uint64_t now = 0;
	bool have_now = false, force = false;

	if (val & B_SET)
		val &= ~B_UIE; /* setting SET clears UIE */
	s->cmos[REG_B] = val;
	if (!was_frozen && (val & B_SET)) {
		/* Frozen registers are in the new format: the guest reads them next. */
		now = vmm_clock_ns(r->m);
		have_now = true;
		rtc_snapshot(s, now);
	}
	if (was_frozen && !frozen(s)) {
		/* SET cleared: count on from the registers; the divider kept its phase. */
		now = vmm_clock_ns(r->m);
		have_now = true;
		rtc_set_offset(s, now, floor_mod(guest_ns(s, now), NS_PER_S));
		force = true;
	}
	rtc_sync_timers(r, have_now, now, force);
	rtc_update_irq(r);
}

static void rtc_write_data(struct rtc *r, uint8_t val)
{
	struct rtc_state *s = &r->st;
	unsigned idx = s->index;
	if (is_time_reg(idx))
		rtc_write_time(r, idx, val);
	else if (idx == REG_A)
		rtc_write_a(r, val);
	else if (idx == REG_B)
		rtc_write_b(r, val);
	else if (idx != REG_C && idx != REG_D)
		s->cmos[idx] = val;
}

static uint32_t rtc_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	(void)range;
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		/* The index port is write-only. */
		uint32_t b = off + i == 1 ? rtc_read_data(dev) : 0xff;
		v |= b << (8 * i);
	}
	return v;
}

static void rtc_pio_write(void *dev, unsigned range, uint16_t off, unsigned size, uint32_t val)
{
	struct rtc *r = dev;
	(void)range;
	for (unsigned i = 0; i < size && off + i < 2; i++) {
		uint8_t b = (uint8_t)(val >> (8 * i));
		if (off + i == 0)
			r->st.index = b & 0x7f; /* bit 7 masks NMI, which this machine lacks */
		else
			rtc_write_data(r, b);
	}
}

static int rtc_create(struct vmm_machine *m, void **dev)
{
	struct rtc *r = calloc(1, sizeof(*r));
	if (!r)
		return vmm_fail(VMM_ENOMEM, "rtc: out of memory");
	r->m = m;
	r->st.version = RTC_STATE_VERSION;
	r->st.cmos[REG_A] = 0x26; /* 32768 Hz time base, 1024 Hz periodic rate */
	r->st.cmos[REG_B] = B_24H;
	r->st.cmos[REG_D] = D_VRT;
	int rc = vmm_timer_register(m, &r->pi_timer, "rtc-periodic", pi_fire, r);
	if (rc >= 0)
		rc = vmm_timer_register(m, &r->upd_timer, "rtc-update", upd_fire, r);
	if (rc < 0) {
		free(r);
		return rc;
	}
	*dev = r;
	return 0;
}

static void rtc_destroy(void *dev)
{
	free(dev);
}

static void rtc_save(void *dev, void *buf)
{
	struct rtc *r = dev;
	/* The machine's view of the timers is the truth (it disarms before firing). */
	r->st.pi_armed = r->pi_timer.armed;
	if (r->pi_timer.armed)
		r->st.pi_deadline = r->pi_timer.deadline;
	r->st.upd_armed = r->upd_timer.armed;
	if (r->upd_timer.armed)
		r->st.upd_deadline = r->upd_timer.deadline;
	memcpy(buf, &r->st, sizeof(r->st));
}

static int rtc_load(void *dev, const void *buf)
{
	struct rtc *r = dev;
	struct rtc_state s;
	memcpy(&s, buf, sizeof(s));
	if (s.version != RTC_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "rtc: state version %u, expected %u", s.version,
				RTC_STATE_VERSION);
	if (s.index > 0x7f || s.irq_level != !!(s.cmos[REG_C] & C_IRQF) || (s.cmos[REG_C] & 0x0f) ||
	    (s.cmos[REG_A] & A_UIP) || s.cmos[REG_D] != D_VRT || s.pi_armed > 1 ||
	    s.upd_armed > 1 || (s.pi_armed && !need_pi(&s)) || (s.upd_armed && !need_upd(&s)))
		return vmm_fail(VMM_ESTATE, "rtc: bad state");
	r->st = s;
	if (s.pi_armed)
		vmm_timer_arm(r->m, &r->pi_timer, s.pi_deadline);
	else if (r->pi_timer.armed)
		vmm_timer_cancel(r->m, &r->pi_timer);
	if (s.upd_armed)
		vmm_timer_arm(r->m, &r->upd_timer, s.upd_deadline);
	else if (r->upd_timer.armed)
		vmm_timer_cancel(r->m, &r->upd_timer);
	return 0;
}

const struct vmm_dev_ops rtc_dev_ops = {
	.name = "rtc",
	.ranges = { { 0x70, 2 } },
	.state_size = sizeof(struct rtc_state),
	.create = rtc_create,
	.destroy = rtc_destroy,
	.pio_read = rtc_pio_read,
	.pio_write = rtc_pio_write,
	.save = rtc_save,
	.load = rtc_load,
};
