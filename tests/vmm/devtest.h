/*
 * devtest.h: a fake machine for device unit tests (header-only).
 *
 * A test file starts with the line "/ * standalone * /" (so the Makefile links it without
 * libvmm.a), includes the device source(s) it tests, then this header. The header
 * defines the machine-side functions devices call (vmm_irq_set, vmm_clock_ns, timers,
 * vmm_serial_tx, vmm_machine_request_stop, vmm_fail) over a struct vmm_machine that the
 * test controls: a settable clock that counts its reads, recorded IRQ levels and edges,
 * recorded TX bytes and stop requests, and a timer table the test fires by advancing
 * the clock.
 */
#ifndef REWIND_TESTS_DEVTEST_H
#define REWIND_TESTS_DEVTEST_H

#include "vmm/dev.h"
#include "vmm/devices.h"
#include "vmm/machine.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DT_MAX_TIMERS 16
#define DT_MAX_TX 4096
#define DT_MAX_EVENTS 4096

/* One change of an IRQ line, in order. */
struct dt_irq_event {
	uint8_t line;
	uint8_t level;
	uint64_t at; /* clock at the change */
};

struct vmm_machine {
	uint64_t now;         /* the clock the devices see */
	unsigned clock_reads; /* how many times they looked */
	int irq[16];          /* current level of each line */
	unsigned rises[16];   /* 0->1 transitions per line */
	unsigned irq_calls;   /* vmm_irq_set calls, any line */
	struct dt_irq_event events[DT_MAX_EVENTS];
	unsigned nevents;
	struct vmm_timer *timers[DT_MAX_TIMERS];
	unsigned ntimers;
	unsigned fired; /* timer callbacks run */
	uint8_t tx[DT_MAX_TX];
	size_t ntx;
	unsigned stops;
	enum vmm_stop_reason stop_why;
	uint32_t stop_value;
};

/* A plausible start: 2023-11-14 22:13:20 UTC. */
#define DT_EPOCH_NS (1700000000ull * 1000000000ull)

static inline struct vmm_machine *dt_machine(void)
{
	struct vmm_machine *m = calloc(1, sizeof(*m));
	cr_assert(m);
	m->now = DT_EPOCH_NS;
	return m;
}

void vmm_irq_set(struct vmm_machine *m, unsigned line, int level)
{
	cr_assert_lt(line, 16u, "irq line %u out of range", line);
	level = level != 0;
	m->irq_calls++;
	if (level && !m->irq[line])
		m->rises[line]++;
	if (m->irq[line] != level && m->nevents < DT_MAX_EVENTS)
		m->events[m->nevents++] = (struct dt_irq_event){ (uint8_t)line, (uint8_t)level, m->now };
	m->irq[line] = level;
}

uint64_t vmm_clock_ns(struct vmm_machine *m)
{
	m->clock_reads++;
	return m->now;
}

int vmm_timer_register(struct vmm_machine *m, struct vmm_timer *t, const char *name,
		       void (*fire)(void *), void *opaque)
{
	cr_assert_lt(m->ntimers, DT_MAX_TIMERS);
	t->fire = fire;
	t->opaque = opaque;
	t->name = name;
	t->id = (int)m->ntimers;
	t->armed = false;
	t->deadline = 0;
	m->timers[m->ntimers++] = t;
	return t->id;
}

void vmm_timer_arm(struct vmm_machine *m, struct vmm_timer *t, uint64_t deadline_ns)
{
	(void)m;
	t->armed = true;
	t->deadline = deadline_ns;
}

void vmm_timer_cancel(struct vmm_machine *m, struct vmm_timer *t)
{
	(void)m;
	t->armed = false;
}

void vmm_serial_tx(struct vmm_machine *m, uint8_t byte)
{
	cr_assert_lt(m->ntx, (size_t)DT_MAX_TX);
	m->tx[m->ntx++] = byte;
}

void vmm_machine_request_stop(struct vmm_machine *m, enum vmm_stop_reason why, uint32_t value)
{
	m->stops++;
	m->stop_why = why;
	m->stop_value = value;
}

static char dt_errbuf[256];

int vmm_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dt_errbuf, sizeof(dt_errbuf), fmt, ap);
	va_end(ap);
	return -err;
}

/* The armed timer with the earliest deadline (lowest id on ties), or NULL. */
static inline struct vmm_timer *dt_next_timer(struct vmm_machine *m)
{
	struct vmm_timer *best = NULL;
	for (unsigned i = 0; i < m->ntimers; i++) {
		struct vmm_timer *t = m->timers[i];
		if (t->armed && (!best || t->deadline < best->deadline))
			best = t;
	}
	return best;
}

/*
 * Move the clock to `to`, firing every timer due on the way at its own deadline (the
 * clock shows the deadline while the callback runs, as the live machine would at best).
 * Returns how many callbacks ran.
 */
static inline unsigned dt_run_until(struct vmm_machine *m, uint64_t to)
{
	unsigned n = 0;
	for (;;) {
		struct vmm_timer *t = dt_next_timer(m);
		if (!t || t->deadline > to)
			break;
		cr_assert_lt(n, 1000000u, "timer storm");
		if (t->deadline > m->now)
			m->now = t->deadline;
		t->armed = false;
		unsigned reads = m->clock_reads;
		t->fire(t->opaque);
		cr_assert_eq(m->clock_reads, reads, "timer %s read the clock", t->name);
		m->fired++;
		n++;
	}
	if (to > m->now)
		m->now = to;
	return n;
}

static inline unsigned dt_advance(struct vmm_machine *m, uint64_t ns)
{
	return dt_run_until(m, m->now + ns);
}

/* Find the device range holding port; returns its index and sets *off. */
static inline unsigned dt_range(const struct vmm_dev_ops *ops, uint16_t port, uint16_t *off)
{
	for (unsigned i = 0; i < VMM_DEV_MAX_RANGES && ops->ranges[i].count; i++) {
		const struct vmm_port_range *r = &ops->ranges[i];
		if (port >= r->base && port < r->base + r->count) {
			*off = (uint16_t)(port - r->base);
			return i;
		}
	}
	cr_assert_fail("%s does not own port 0x%x", ops->name, port);
	return 0;
}

static inline uint32_t dt_in_sz(const struct vmm_dev_ops *ops, void *dev, uint16_t port,
				unsigned size)
{
	uint16_t off;
	unsigned r = dt_range(ops, port, &off);
	return ops->pio_read(dev, r, off, size);
}

static inline void dt_out_sz(const struct vmm_dev_ops *ops, void *dev, uint16_t port,
			     unsigned size, uint32_t val)
{
	uint16_t off;
	unsigned r = dt_range(ops, port, &off);
	ops->pio_write(dev, r, off, size, val);
}

static inline uint8_t dt_in(const struct vmm_dev_ops *ops, void *dev, uint16_t port)
{
	return (uint8_t)dt_in_sz(ops, dev, port, 1);
}

static inline void dt_out(const struct vmm_dev_ops *ops, void *dev, uint16_t port, uint8_t val)
{
	dt_out_sz(ops, dev, port, 1, val);
}

static inline void *dt_create(const struct vmm_dev_ops *ops, struct vmm_machine *m)
{
	void *dev = NULL;
	int rc = ops->create(m, &dev);
	cr_assert_eq(rc, 0, "%s create: %d", ops->name, rc);
	cr_assert(dev);
	return dev;
}

/*
 * Save dev (on machine m), create a fresh device on m2 (its clock set to m's), load the
 * blob into it and check: load returns 0, reads no clock, changes no IRQ line, fires no
 * timer, leaves the new device saving the very same bytes, and re-arms timers exactly as
 * the original's. Returns the new device.
 */
static inline void *dt_clone(const struct vmm_dev_ops *ops, void *dev, struct vmm_machine *m,
			     struct vmm_machine *m2)
{
	uint8_t *a = calloc(1, ops->state_size), *b = calloc(1, ops->state_size);
	cr_assert(a && b);
	ops->save(dev, a);
	m2->now = m->now;
	void *dev2 = dt_create(ops, m2);
	unsigned reads = m2->clock_reads, irqs = m2->irq_calls, fired = m2->fired;
	cr_assert_eq(ops->load(dev2, a), 0, "%s load: %s", ops->name, dt_errbuf);
	cr_assert_eq(m2->clock_reads, reads, "%s load read the clock", ops->name);
	cr_assert_eq(m2->irq_calls, irqs, "%s load touched an IRQ line", ops->name);
	cr_assert_eq(m2->fired, fired, "%s load fired a timer", ops->name);
	ops->save(dev2, b);
	cr_assert_eq(memcmp(a, b, ops->state_size), 0, "%s: saved state differs after load",
		     ops->name);
	cr_assert_eq(m->ntimers, m2->ntimers);
	for (unsigned i = 0; i < m->ntimers; i++) {
		cr_assert_eq(m->timers[i]->armed, m2->timers[i]->armed, "timer %u armed", i);
		if (m->timers[i]->armed)
			cr_assert_eq(m->timers[i]->deadline, m2->timers[i]->deadline,
				     "timer %u deadline", i);
	}
	/* The new machine's lines start where the old one's are. */
	memcpy(m2->irq, m->irq, sizeof(m->irq));
	free(a);
	free(b);
	return dev2;
}

/* Both machines saw the same IRQ changes at the same times since their marks. */
static inline void dt_assert_same_irqs(const struct vmm_machine *a, unsigned from_a,
				       const struct vmm_machine *b, unsigned from_b)
{
	cr_assert_eq(a->nevents - from_a, b->nevents - from_b, "IRQ event counts differ");
	for (unsigned i = 0; i < a->nevents - from_a; i++) {
		const struct dt_irq_event *x = &a->events[from_a + i], *y = &b->events[from_b + i];
		cr_assert(x->line == y->line && x->level == y->level && x->at == y->at,
			  "IRQ event %u differs", i);
	}
}

/* Load must refuse a blob: corrupt one byte/field via the callback, expect -VMM_ESTATE. */
static inline void dt_assert_load_refuses(const struct vmm_dev_ops *ops, void *dev,
					  void (*corrupt)(void *blob))
{
	uint8_t *a = calloc(1, ops->state_size);
	cr_assert(a);
	ops->save(dev, a);
	corrupt(a);
	cr_assert_eq(ops->load(dev, a), -VMM_ESTATE, "%s accepted a corrupt blob", ops->name);
	free(a);
}

#endif
