/*
 * serial.c: COM1 (16550A at 0x3F8, IRQ 4). Output polls LSR.THRE per byte. Input is
 * polled (LSR.DR) until g_serial_rx_irq_enable(), then taken by the IRQ 4 handler into a
 * ring buffer. Bytes that arrived before g_serial_init() are kept: enabling the FIFO
 * clears the receiver, so they are read out first.
 */
#include "guest.h"

#define THR 0
#define RBR 0
#define DLL 0
#define IER 1
#define DLM 1
#define FCR 2
#define IIR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define RX_SIZE 256

static uint8_t rx_buf[RX_SIZE];
static volatile unsigned rx_head, rx_tail; /* head: next write (IRQ), tail: next read */
static volatile bool rx_irq;

static void rx_push(uint8_t c)
{
	unsigned next = (rx_head + 1) % RX_SIZE;
	if (next == rx_tail)
		return; /* full: drop, as an overrun would */
	rx_buf[rx_head] = c;
	rx_head = next;
}

static void rx_drain(void)
{
	for (int i = 0; i < 64 && (inb(PORT_COM1 + LSR) & LSR_DR); i++)
		rx_push(inb(PORT_COM1 + RBR));
}

void g_serial_init(void)
{
	outb(PORT_COM1 + IER, 0);
	outb(PORT_COM1 + LCR, 0x80); /* DLAB */
	outb(PORT_COM1 + DLL, 1);    /* 115200 baud */
	outb(PORT_COM1 + DLM, 0);
	outb(PORT_COM1 + LCR, 0x03); /* 8N1 */
	rx_drain();                  /* right before the FIFO reset, which drops input */
	outb(PORT_COM1 + FCR, 0x07); /* FIFO on, clear both, trigger at 1 byte */
	outb(PORT_COM1 + MCR, 0x0b); /* DTR, RTS, OUT2 (gates the IRQ line on a PC) */
}

void g_putc(char c)
{
	while (!(inb(PORT_COM1 + LSR) & LSR_THRE))
		g_pause();
	outb(PORT_COM1 + THR, (uint8_t)c);
}

void g_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g_putc(s[i]);
}

void g_puts(const char *s)
{
	while (*s)
		g_putc(*s++);
	g_putc('\n');
}

static void com1_irq(struct g_regs *r)
{
	(void)r;
	rx_drain();
	(void)inb(PORT_COM1 + IIR);
	g_pic_eoi(IRQ_COM1);
}

void g_serial_rx_irq_enable(void)
{
	g_set_irq_handler(IRQ_COM1, com1_irq);
	rx_irq = true;
	outb(PORT_COM1 + MCR, 0x0b);
	outb(PORT_COM1 + IER, 0x01); /* received data available */
	g_pic_unmask(IRQ_COM1);
	bool on = g_irq_save();
	rx_drain(); /* anything already waiting raised no edge we will see */
	g_irq_restore(on);
}

int g_getc_nonblock(void)
{
	bool on = g_irq_save();
	if (!rx_irq)
		rx_drain();
	int c = -1;
	if (rx_tail != rx_head) {
		c = rx_buf[rx_tail];
		rx_tail = (rx_tail + 1) % RX_SIZE;
	}
	g_irq_restore(on);
	return c;
}

int g_getc(void)
{
	for (;;) {
		if (!rx_irq) {
			int c = g_getc_nonblock();
			if (c >= 0)
				return c;
			g_pause();
			continue;
		}
		g_cli();
		if (rx_tail != rx_head) {
			int c = rx_buf[rx_tail];
			rx_tail = (rx_tail + 1) % RX_SIZE;
			g_sti();
			return c;
		}
		g_sti_hlt(); /* the IRQ wakes us; sti's shadow covers hlt, so none is lost */
	}
}
