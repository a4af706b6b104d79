/*
 * pic.c: the 8259A master/slave pair of the PC (0x20-0x21, 0xA0-0xA1) and the ELCR
 * edge/level control registers (0x4D0-0x4D1).
 *
 * Implements (Intel 8259A datasheet): ICW1-ICW4 initialisation (single or cascade, ICW4
 * optional, LTIM level mode), OCW1 mask, OCW2 EOI commands (non-specific, specific,
 * rotate on non-specific / specific EOI, set priority, rotate in auto-EOI), OCW3 (read
 * IRR/ISR select, poll command, special mask mode), auto-EOI, special fully nested mode,
 * fixed priorities with rotation, the cascade on master IR2, spurious IRQ 7/15, and the
 * PIIX ELCR for per-line level triggering (IRQ 0, 1, 2, 8 and 13 stay edge, as on PIIX).
 *
 * Leaves out: 8080/8085 mode (ICW4 uPM=0 is treated as 8086 mode), buffered mode (the
 * BUF and M/S bits of ICW4 are accepted and ignored) and the address-bus details of the
 * cascade. Master IR2 latches the rising edge of the slave's INT output, and is latched
 * again after an INTA cycle if the slave still requests, so no slave request is lost
 * across an acknowledge (auto-EOI, nested requests). ISA line 2 does not exist on a PC (it is the cascade); pic_set_irq()
 * ignores it.
 *
 * Edge-triggered lines latch IRR on a rising edge and keep it when the line falls, so a
 * device may pulse a line (1 then 0) to request one interrupt. If the request is gone
 * (masked, or a level line dropped) by the INTA cycle, the pair answers the spurious
 * vector base+7 without setting ISR, as the datasheet describes.
 */
#include "devices.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define PIC_STATE_VERSION 1

/* Which ELCR bits a PIIX lets the guest set: IRQ 0, 1, 2, 8, 13 are always edge. */
static const uint8_t elcr_mask[2] = { 0xf8, 0xde };

struct pic_chip {
	uint8_t irr;          /* interrupt request register */
	uint8_t isr;          /* in-service register */
	uint8_t imr;          /* interrupt mask register (OCW1) */
	uint8_t lines;        /* current input levels, for edge detection */
	uint8_t base;         /* vector base from ICW2 (low 3 bits zero) */
	uint8_t lowest;       /* priority rotation: IR (lowest + 1) & 7 has top priority */
	uint8_t read_isr;     /* OCW3 RIS: port reads return ISR rather than IRR */
	uint8_t poll;         /* OCW3 poll command: the next read is a poll */
	uint8_t special_mask; /* OCW3 special mask mode */
	uint8_t init_step;    /* 0 ready, 1 expecting ICW2, 2 ICW3, 3 ICW4 */
	uint8_t need_icw4;    /* ICW1 IC4 */
	uint8_t single;       /* ICW1 SNGL: no ICW3 */
	uint8_t ltim;         /* ICW1 LTIM: every line level-triggered */
	uint8_t icw3;
	uint8_t auto_eoi;     /* ICW4 AEOI */
	uint8_t rotate_aeoi;  /* OCW2 rotate in automatic EOI mode */
	uint8_t sfnm;         /* ICW4 special fully nested mode */
	uint8_t elcr;         /* ELCR: per-line level triggering */
};

struct pic_state {
	uint32_t version;
	struct pic_chip chip[2]; /* 0 master, 1 slave */
};

struct pic {
	struct pic_state st;
	struct vmm_machine *m;
};

/* Lines that are level-triggered on this chip (ELCR or LTIM). */
static uint8_t level_lines(const struct pic_chip *c)
{
	return c->ltim ? 0xff : c->elcr;
}

/*
 * The priority of the highest-priority bit in mask, 0 (highest) to 7, or 8 if none:
 * priorities rotate with c->lowest.
 */
static int best_priority(const struct pic_chip *c, uint8_t mask)
{
	if (!mask)
		return 8;
	for (int p = 0; p < 8; p++)
		if (mask & (1u << ((p + c->lowest + 1) & 7)))
			return p;
	return 8;
}

/* The IR this chip would present on INTA now, or -1 (nothing beats what is in service). */
static int chip_pending(const struct pic_chip *c, bool master)
{
	int p = best_priority(c, c->irr & ~c->imr);
	if (p == 8)
		return -1;
	uint8_t in_service = c->isr;
	/* Special mask mode: a masked in-service level no longer blocks lower ones. */
	if (c->special_mask)
		in_service &= ~c->imr;
	/* Special fully nested: the slave may interrupt its own in-service cascade. */
	if (c->sfnm && master)
		in_service &= ~(1u << 2);
	if (p < best_priority(c, in_service))
		return (p + c->lowest + 1) & 7;
	return -1;
}

static void chip_set_line(struct pic_chip *c, unsigned ir, int level)
{
	uint8_t bit = (uint8_t)(1u << ir);
	if (level_lines(c) & bit) {
		if (level)
			c->irr |= bit;
		else
			c->irr &= ~bit;
	} else if (level && !(c->lines & bit)) {
		c->irr |= bit;
	}
	if (level)
		c->lines |= bit;
	else
		c->lines &= ~bit;
}

/*
 * Master IR2 is an edge input driven by the slave's INT. After an INTA cycle
 * (relatch) a slave still requesting is latched again, because its INT never fell and
 * no edge would otherwise be seen (auto-EOI, or a second request of higher priority).
 */
static void update_cascade(struct pic_state *s, bool relatch)
{
	bool out = chip_pending(&s->chip[1], false) >= 0;
	chip_set_line(&s->chip[0], 2, out);
	if (relatch && out)
		s->chip[0].irr |= 1u << 2;
}

void pic_set_irq(void *pic, unsigned line, int level)
{
	struct pic *p = pic;
	if (line >= 16 || line == 2)
		return;
	chip_set_line(&p->st.chip[line >> 3], line & 7, level != 0);
	update_cascade(&p->st, false);
}

bool pic_intr(void *pic)
{
	struct pic *p = pic;
	return chip_pending(&p->st.chip[0], true) >= 0;
}

/* The acknowledge half of INTA (or of a poll read): ISR, auto-EOI, edge IRR. */
static void chip_ack(struct pic_chip *c, int ir)
{
	uint8_t bit = (uint8_t)(1u << ir);
	if (c->auto_eoi) {
		if (c->rotate_aeoi)
			c->lowest = (uint8_t)ir;
	} else {
		c->isr |= bit;
	}
	/* A level request stays in IRR while the line is high (ISR blocks it until EOI). */
	if (!(level_lines(c) & bit))
		c->irr &= ~bit;
}

uint8_t pic_ack(void *pic)
{
	struct pic *p = pic;
	struct pic_state *s = &p->st;
	uint8_t vec;
	int ir = chip_pending(&s->chip[0], true);

	if (ir < 0) {
		/* The request went away before INTA: spurious IRQ 7, ISR untouched. */
		vec = (uint8_t)(s->chip[0].base + 7);
	} else if (ir == 2 && !s->chip[0].single) {
		chip_ack(&s->chip[0], 2);
		int sir = chip_pending(&s->chip[1], false);
		if (sir < 0) {
			/* Spurious on the slave: the master keeps IR2 in service. */
			vec = (uint8_t)(s->chip[1].base + 7);
		} else {
			chip_ack(&s->chip[1], sir);
			vec = (uint8_t)(s->chip[1].base + sir);
		}
	} else {
		chip_ack(&s->chip[0], ir);
		vec = (uint8_t)(s->chip[0].base + ir);
	}
	update_cascade(s, true);
	return vec;
}

/* ICW1: reset the chip's control logic, keep the ELCR and the input levels. */
static void chip_icw1(struct pic_chip *c, uint8_t val)
{
	uint8_t elcr = c->elcr, lines = c->lines;
	memset(c, 0, sizeof(*c));
	c->elcr = elcr;
	c->lines = lines;
	c->init_step = 1;
	c->need_icw4 = val & 1;
	c->single = (val >> 1) & 1;
	c->ltim = (val >> 3) & 1;
	/*
	 * The edge-sense latches are cleared: an edge line that is already high must fall
	 * and rise again. Level lines request as long as they are high.
	 */
	c->irr = c->lines & level_lines(c);
	c->lowest = 7;
}

static void chip_ocw2(struct pic_chip *c, uint8_t val)
{
	int ir = val & 7;
	switch (val >> 5) {
	case 0: /* clear rotate in automatic EOI mode */
	case 4: /* set rotate in automatic EOI mode */
		c->rotate_aeoi = (val >> 7) & 1;
		break;
	case 1: /* non-specific EOI */
	case 5: { /* rotate on non-specific EOI */
		int p = best_priority(c, c->isr);
		if (p == 8)
			break;
		ir = (p + c->lowest + 1) & 7;
		c->isr &= ~(1u << ir);
		if (val >> 5 == 5)
			c->lowest = (uint8_t)ir;
		break;
	}
	case 3: /* specific EOI */
		c->isr &= ~(1u << ir);
		break;
	case 7: /* rotate on specific EOI */
		c->isr &= ~(1u << ir);
		c->lowest = (uint8_t)ir;
		break;
	case 6: /* set priority: ir becomes the lowest */
		c->lowest = (uint8_t)ir;
		break;
	default: /* 2: no operation */
		break;
	}
}

static void chip_write(struct pic_chip *c, unsigned a0, uint8_t val)
{
	if (a0 == 0) {
		if (val & 0x10) {
			chip_icw1(c, val);
		} else if (val & 0x08) {
			if (val & 0x04)
				c->poll = 1;
			if (val & 0x02)
				c->read_isr = val & 1;
			if (val & 0x40)
				c->special_mask = (val >> 5) & 1;
		} else {
			chip_ocw2(c, val);
		}
		return;
	}
	switch (c->init_step) {
	case 1:
		c->base = val & 0xf8;
		if (!c->single)
			c->init_step = 2;
		else
			c->init_step = c->need_icw4 ? 3 : 0;
		break;
	case 2:
		c->icw3 = val;
		c->init_step = c->need_icw4 ? 3 : 0;
		break;
	case 3:
		c->auto_eoi = (val >> 1) & 1;
		c->sfnm = (val >> 4) & 1;
		c->init_step = 0;
		break;
	default:
		c->imr = val;
		break;
	}
}

/* A poll read acts as an INTA on this chip: 0x80 | IR, or 0 when nothing is pending. */
static uint8_t chip_poll(struct pic_state *s, unsigned which)
{
	struct pic_chip *c = &s->chip[which];
	c->poll = 0;
	int ir = chip_pending(c, which == 0);
	if (ir < 0)
		return 0;
	chip_ack(c, ir);
	update_cascade(s, true);
	return (uint8_t)(0x80 | ir);
}

static uint8_t pic_read_byte(struct pic *p, unsigned range, unsigned off)
{
	struct pic_state *s = &p->st;
	if (range == 2)
		return s->chip[off].elcr;
	struct pic_chip *c = &s->chip[range];
	/* The poll command turns the next read of either port into the poll byte. */
	if (c->poll)
		return chip_poll(s, range);
	if (off == 1)
		return c->imr;
	return c->read_isr ? c->isr : c->irr;
}

static void pic_write_byte(struct pic *p, unsigned range, unsigned off, uint8_t val)
{
	struct pic_state *s = &p->st;
	if (range == 2) {
		struct pic_chip *c = &s->chip[off];
		c->elcr = val & elcr_mask[off];
		/* Lines that became level-triggered request as long as they are high. */
		c->irr = (uint8_t)((c->irr & ~level_lines(c)) | (c->lines & level_lines(c)));
	} else {
		chip_write(&s->chip[range], off, val);
	}
	update_cascade(s, false);
}

/* Multi-byte accesses split into byte cycles, as an ISA bus does for an 8-bit device. */
static uint32_t pic_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		uint32_t b = off + i < 2 ? pic_read_byte(dev, range, off + i) : 0xff;
		v |= b << (8 * i);
	}
	return v;
}

static void pic_pio_write(void *dev, unsigned range, uint16_t off, unsigned size, uint32_t val)
{
	for (unsigned i = 0; i < size && off + i < 2; i++)
		pic_write_byte(dev, range, off + i, (uint8_t)(val >> (8 * i)));
}

static void pic_reset(struct pic_state *s)
{
	memset(s, 0, sizeof(*s));
	s->version = PIC_STATE_VERSION;
	for (int i = 0; i < 2; i++)
		s->chip[i].lowest = 7;
}

static int pic_create(struct vmm_machine *m, void **dev)
{
	struct pic *p = calloc(1, sizeof(*p));
	if (!p)
		return vmm_fail(VMM_ENOMEM, "pic: out of memory");
	p->m = m;
	pic_reset(&p->st);
	*dev = p;
	return 0;
}

static void pic_destroy(void *dev)
{
	free(dev);
}

static void pic_save(void *dev, void *buf)
{
	struct pic *p = dev;
	memcpy(buf, &p->st, sizeof(p->st));
}

static int pic_load(void *dev, const void *buf)
{
	struct pic *p = dev;
	struct pic_state s;
	memcpy(&s, buf, sizeof(s));
	if (s.version != PIC_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "pic: state version %u, expected %u", s.version,
				PIC_STATE_VERSION);
	for (int i = 0; i < 2; i++) {
		const struct pic_chip *c = &s.chip[i];
		if (c->lowest > 7 || c->init_step > 3 || (c->base & 7) || c->read_isr > 1 ||
		    c->poll > 1 || c->special_mask > 1 || c->need_icw4 > 1 || c->single > 1 ||
		    c->ltim > 1 || c->auto_eoi > 1 || c->rotate_aeoi > 1 || c->sfnm > 1 ||
		    (c->elcr & ~elcr_mask[i]))
			return vmm_fail(VMM_ESTATE, "pic: bad state of chip %d", i);
	}
	/* The cascade input must agree with the slave's INT output. */
	bool slave_int = chip_pending(&s.chip[1], false) >= 0;
	if (slave_int != !!(s.chip[0].lines & 4))
		return vmm_fail(VMM_ESTATE, "pic: cascade line disagrees with the slave");
	p->st = s;
	return 0;
}

const struct vmm_dev_ops pic_dev_ops = {
	.name = "pic",
	.ranges = { { 0x20, 2 }, { 0xa0, 2 }, { 0x4d0, 2 } },
	.state_size = sizeof(struct pic_state),
	.create = pic_create,
	.destroy = pic_destroy,
	.pio_read = pic_pio_read,
	.pio_write = pic_pio_write,
	.save = pic_save,
	.load = pic_load,
};
