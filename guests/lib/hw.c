/*
 * hw.c: the 8259A PIC pair (remapped to 0x20/0x28, edge triggered, normal EOI), the
 * 8254 PIT channel 0 and the CMOS RTC.
 */
#include "guest.h"

#define PIC1_CMD PORT_PIC1
#define PIC1_DATA (PORT_PIC1 + 1)
#define PIC2_CMD PORT_PIC2
#define PIC2_DATA (PORT_PIC2 + 1)

static uint16_t pic_masks = 0xffff;

static void pic_write_masks(void)
{
	outb(PIC1_DATA, (uint8_t)pic_masks);
	outb(PIC2_DATA, (uint8_t)(pic_masks >> 8));
}

void g_pic_init(void)
{
	outb(PIC1_CMD, 0x11); /* ICW1: edge, cascade, ICW4 follows */
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, G_IRQ_BASE);     /* ICW2: vector base */
	outb(PIC2_DATA, G_IRQ_BASE + 8);
	outb(PIC1_DATA, 0x04);           /* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, 0x02);           /* ICW3: slave identity 2 */
	outb(PIC1_DATA, 0x01);           /* ICW4: 8086 mode, normal EOI */
	outb(PIC2_DATA, 0x01);
	pic_masks = 0xffff & ~(1u << 2); /* everything masked but the cascade */
	pic_write_masks();
}

void g_pic_mask(unsigned irq)
{
	pic_masks |= (uint16_t)(1u << irq);
	pic_write_masks();
}

void g_pic_unmask(unsigned irq)
{
	pic_masks &= (uint16_t)~(1u << irq);
	if (irq >= 8)
		pic_masks &= (uint16_t)~(1u << 2);
	pic_write_masks();
}

void g_pic_set_masks(uint16_t mask)
{
	pic_masks = mask;
	pic_write_masks();
}

uint16_t g_pic_get_masks(void)
{
	return pic_masks;
}

void g_pic_eoi(unsigned irq)
{
	if (irq >= 8)
		outb(PIC2_CMD, 0x20);
	outb(PIC1_CMD, 0x20);
}

static uint16_t pic_read_reg(uint8_t ocw3)
{
	outb(PIC1_CMD, ocw3);
	outb(PIC2_CMD, ocw3);
	uint16_t v = (uint16_t)(inb(PIC1_CMD) | (inb(PIC2_CMD) << 8));
	outb(PIC1_CMD, 0x0a); /* back to reading IRR (the reset default) */
	outb(PIC2_CMD, 0x0a);
	return v;
}

uint16_t g_pic_irr(void)
{
	return pic_read_reg(0x0a);
}

uint16_t g_pic_isr(void)
{
	return pic_read_reg(0x0b);
}

uint32_t g_pit_start(unsigned hz, int mode)
{
	if (hz == 0)
		hz = 1;
	uint32_t div = (G_PIT_HZ + hz / 2) / hz;
	if (div < 2)
		div = 2;
	if (div > 65536)
		div = 65536;
	outb(PORT_PIT_CTRL, (uint8_t)(0x30 | ((mode == 3 ? 3 : 2) << 1))); /* ch0, lo/hi */
	outb(PORT_PIT, (uint8_t)div);         /* 65536 is written as 0 */
	outb(PORT_PIT, (uint8_t)(div >> 8));
	return div;
}

void g_pit_oneshot(uint16_t count)
{
	outb(PORT_PIT_CTRL, 0x30); /* ch0, lo/hi, mode 0 */
	outb(PORT_PIT, (uint8_t)count);
	outb(PORT_PIT, (uint8_t)(count >> 8));
}

void g_pit_stop(void)
{
	outb(PORT_PIT_CTRL, 0x30); /* mode 0, count not written: the counter waits, OUT low */
}

uint16_t g_pit_read(void)
{
	outb(PORT_PIT_CTRL, 0x00); /* latch ch0 */
	uint8_t lo = inb(PORT_PIT);
	uint8_t hi = inb(PORT_PIT);
	return (uint16_t)(lo | (hi << 8));
}

uint8_t g_cmos_read(uint8_t reg)
{
	outb(PORT_CMOS, reg & 0x7f);
	return inb(PORT_CMOS + 1);
}

void g_cmos_write(uint8_t reg, uint8_t v)
{
	outb(PORT_CMOS, reg & 0x7f);
	outb(PORT_CMOS + 1, v);
}

static unsigned from_bcd(uint8_t v, bool bcd)
{
	return bcd ? (unsigned)((v >> 4) * 10 + (v & 0xf)) : v;
}

void g_rtc_read(struct g_rtc_time *t)
{
	for (int i = 0; i < 1000000 && (g_cmos_read(0x0a) & 0x80); i++)
		g_pause();
	uint8_t b = g_cmos_read(0x0b);
	bool bcd = !(b & 0x04), h24 = (b & 0x02) != 0;
	uint8_t hour = g_cmos_read(0x04);
	t->second = from_bcd(g_cmos_read(0x00), bcd);
	t->minute = from_bcd(g_cmos_read(0x02), bcd);
	t->hour = from_bcd(hour & 0x7f, bcd);
	if (!h24) {
		t->hour %= 12;
		if (hour & 0x80)
			t->hour += 12;
	}
	t->day = from_bcd(g_cmos_read(0x07), bcd);
	t->month = from_bcd(g_cmos_read(0x08), bcd);
	t->year = 2000 + from_bcd(g_cmos_read(0x09), bcd);
}
