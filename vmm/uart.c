/*
 * uart.c: the 16550A UART on COM1 (0x3F8-0x3FF, IRQ 4).
 *
 * Implements (16550A datasheet): RBR/THR, IER (low four bits), IIR with its priorities
 * (line status, received data, character timeout, THR empty, modem status) and the FIFO
 * bits 0xC0, FCR (FIFO enable, RX/TX clear, trigger levels 1/4/8/14), LCR with DLAB and
 * the divisor latch, MCR (DTR, RTS, OUT1, OUT2, loopback), LSR (DR, OE, THRE, TEMT), MSR
 * with delta bits and the loopback mapping (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD), SCR.
 * As on a PC, OUT2 gates the interrupt line, and in loopback mode the OUT2 pin is forced
 * inactive, so no interrupt reaches the PIC while looping back.
 *
 * Transmission is instantaneous: a THR write hands the byte to vmm_serial_tx() (or, in
 * loopback, to the receiver) and THRE/TEMT stay set. As on a 16550, the THR-empty
 * interrupt is raised when ETBEI turns on while THRE, and after each THR write (the byte
 * is gone at once, so the line drops and rises again: a new edge at the PIC); reading IIR
 * while it reports THRE clears it.
 *
 * RX: uart_rx_room()/uart_rx() feed a 16-byte FIFO (a 1-byte holding register with the
 * FIFO off); received-data interrupts come at the trigger level. There is no real time,
 * so the character timeout (IIR 0xC) is signalled, deterministically, whenever the FIFO
 * holds fewer bytes than the trigger level but at least one: a guest drains them at once
 * instead of 4 character times later. Bytes beyond the room set OE (the machine should
 * never deliver them); with the FIFO off the new byte overwrites the holding register.
 *
 * Leaves out: parity, framing and break errors (never happen: the line is perfect), the
 * baud rate (the divisor is stored, nothing is timed), the TX FIFO (never fills), DMA mode
 * (FCR bit 3 is stored and ignored) and the modem input lines, which read as a connected
 * terminal: CTS, DSR, DCD high, RI low.
 */
#include "devices.h"
#include "guest_abi.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define UART_STATE_VERSION 1
#define UART_FIFO 16

#define IER_ERBFI 0x01
#define IER_ETBEI 0x02
#define IER_ELSI 0x04
#define IER_EDSSI 0x08

#define IIR_NONE 0x01
#define IIR_MSR 0x00
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_RLS 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct uart_state {
	uint32_t version;
	uint8_t fifo[UART_FIFO];
	uint8_t rx_head;  /* index of the oldest byte */
	uint8_t rx_count; /* bytes in the FIFO (or holding register) */
	uint8_t ier;
	uint8_t fcr;      /* last FCR written (bits 0, 3, 6, 7 matter) */
	uint8_t lcr;
	uint8_t mcr;
	uint8_t lsr_oe;   /* overrun seen since the last LSR read */
	uint8_t msr;      /* input levels (high nibble) and deltas (low nibble) */
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t thr_pending; /* THR-empty interrupt pending */
	uint8_t irq_level;   /* the level this device drives on IRQ 4 */
	uint8_t pad[3];
};

struct uart {
	struct uart_state st;
	struct vmm_machine *m;
};

static bool fifo_on(const struct uart_state *s)
{
	return s->fcr & FCR_ENABLE;
}

static unsigned trigger_level(const struct uart_state *s)
{
	static const uint8_t levels[4] = { 1, 4, 8, 14 };
	return fifo_on(s) ? levels[s->fcr >> 6] : 1;
}

static unsigned rx_capacity(const struct uart_state *s)
{
	return fifo_on(s) ? UART_FIFO : 1;
}

/* The highest-priority interrupt identification now (without the FIFO bits). */
static uint8_t uart_iir(const struct uart_state *s)
{
	if ((s->ier & IER_ELSI) && s->lsr_oe)
		return IIR_RLS;
	if ((s->ier & IER_ERBFI) && s->rx_count) {
		if (s->rx_count >= trigger_level(s))
			return IIR_RDA;
		return IIR_TIMEOUT; /* below the trigger: the timeout is deemed to have passed */
	}
	if ((s->ier & IER_ETBEI) && s->thr_pending)
		return IIR_THRE;
	if ((s->ier & IER_EDSSI) && (s->msr & 0x0f))
		return IIR_MSR;
	return IIR_NONE;
}

static void uart_update_irq(struct uart *u)
{
	struct uart_state *s = &u->st;
	/* OUT2 enables the PC's IRQ driver; loopback forces the OUT2 pin inactive. */
	int level = uart_iir(s) != IIR_NONE && (s->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
	if (s->irq_level != level) {
		s->irq_level = (uint8_t)level;
		vmm_irq_set(u->m, IRQ_COM1, level);
	}
}

/* The modem input levels: a terminal when not looping back, else the MCR outputs. */
static uint8_t modem_inputs(uint8_t mcr)
{
	if (!(mcr & MCR_LOOP))
		return MSR_CTS | MSR_DSR | MSR_DCD;
	uint8_t v = 0;
	if (mcr & MCR_RTS)
		v |= MSR_CTS;
	if (mcr & MCR_DTR)
		v |= MSR_DSR;
	if (mcr & MCR_OUT1)
		v |= MSR_RI;
	if (mcr & MCR_OUT2)
		v |= MSR_DCD;
	return v;
}

static void set_modem_inputs(struct uart_state *s, uint8_t in)
{
	uint8_t old = s->msr & 0xf0, delta = 0;
	if ((old ^ in) & MSR_CTS)
		delta |= MSR_DCTS;
	if ((old ^ in) & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(in & MSR_RI))
		delta |= MSR_TERI; /* trailing edge only */
	if ((old ^ in) & MSR_DCD)
		delta |= MSR_DDCD;
	s->msr = (uint8_t)(in | (s->msr & 0x0f) | delta);
}

static void rx_push(struct uart_state *s, uint8_t byte)
{
	unsigned cap = rx_capacity(s);
	if (s->rx_count >= cap) {
		s->lsr_oe = 1;
		/* Without a FIFO the new byte overwrites the holding register. */
		if (!fifo_on(s))
			s->fifo[s->rx_head] = byte;
		return;
	}
	s->fifo[(s->rx_head + s->rx_count) % UART_FIFO] = byte;
	s->rx_count++;
}

static void rx_clear(struct uart_state *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
	memset(s->fifo, 0, sizeof(s->fifo));
}

size_t uart_rx_room(void *uart)
{
	struct uart *u = uart;
	/* In loopback the receiver hears only the transmitter. */
	if (u->st.mcr & MCR_LOOP)
		return 0;
	return rx_capacity(&u->st) - u->st.rx_count;
}

void uart_rx(void *uart, const uint8_t *buf, size_t n)
{
	struct uart *u = uart;
	for (size_t i = 0; i < n; i++)
		rx_push(&u->st, buf[i]);
	uart_update_irq(u);
}

static void thr_write(struct uart *u, uint8_t byte)
{
	struct uart_state *s = &u->st;
	/* Writing THR clears the THRE interrupt... */
	s->thr_pending = 0;
	uart_update_irq(u);
	if (s->mcr & MCR_LOOP)
		rx_push(s, byte);
	else
		vmm_serial_tx(u->m, byte);
	/* ...and the byte is gone at once, so THR is empty again and says so. */
	s->thr_pending = 1;
	uart_update_irq(u);
}

static uint8_t uart_read_byte(struct uart *u, unsigned off)
{
	struct uart_state *s = &u->st;
	uint8_t v;
	switch (off) {
	case 0:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return s->fifo[s->rx_head]; /* the last byte, as the holding register keeps it */
		v = s->fifo[s->rx_head];
		s->rx_count--;
		if (s->rx_count)
			s->rx_head = (uint8_t)((s->rx_head + 1) % UART_FIFO);
		uart_update_irq(u);
		return v;
	case 1:
		return s->lcr & LCR_DLAB ? s->dlm : s->ier;
	case 2:
		v = uart_iir(s);
		if (v == IIR_THRE) {
			s->thr_pending = 0;
			uart_update_irq(u);
		}
		return (uint8_t)(v | (fifo_on(s) ? IIR_FIFO : 0));
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		v = (uint8_t)(LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0) |
			      (s->lsr_oe ? LSR_OE : 0));
		if (s->lsr_oe) {
			s->lsr_oe = 0;
			uart_update_irq(u);
		}
		return v;
	case 6:
		v = s->msr;
		if (s->msr & 0x0f) {
			s->msr &= 0xf0;
			uart_update_irq(u);
		}
		return v;
	default:
		return s->scr;
	}
}

static void uart_write_byte(struct uart *u, unsigned off, uint8_t val)
{
	struct uart_state *s = &u->st;
	switch (off) {
	case 0:
		if (s->lcr & LCR_DLAB)
			s->dll = val;
		else
			thr_write(u, val);
		break;
	case 1:
		if (s->lcr & LCR_DLAB) {
			s->dlm = val;
			break;
		}
		val &= 0x0f;
		/* ETBEI turning on while THR is empty raises THRE (16550 and PC practice). */
		if ((val & IER_ETBEI) && !(s->ier & IER_ETBEI))
			s->thr_pending = 1;
		s->ier = val;
		uart_update_irq(u);
		break;
	case 2:
		/* Turning the FIFO on or off empties both FIFOs. */
		if ((val ^ s->fcr) & FCR_ENABLE)
			val |= FCR_CLEAR_RX | FCR_CLEAR_TX;
		if (val & FCR_CLEAR_RX)
			rx_clear(s);
		if (val & FCR_CLEAR_TX)
			s->thr_pending = 1; /* TX FIFO empty, THRE set */
		s->fcr = val & 0xc9;
		uart_update_irq(u);
		break;
	case 3:
		s->lcr = val;
		break;
	case 4:
		s->mcr = val & 0x1f;
		set_modem_inputs(s, modem_inputs(s->mcr));
		uart_update_irq(u);
		break;
	case 5:
	case 6:
		break; /* LSR and MSR writes are for factory test; ignored */
	default:
		s->scr = val;
		break;
	}
}

static uint32_t uart_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	(void)range;
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		uint32_t b = off + i < 8 ? uart_read_byte(dev, off + i) : 0xff;
		v |= b << (8 * i);
	}
	return v;
}

static void uart_pio_write(void *dev, unsigned range, uint16_t off, unsigned size, uint32_t val)
{
	(void)range;
	for (unsigned i = 0; i < size && off + i < 8; i++)
		uart_write_byte(dev, off + i, (uint8_t)(val >> (8 * i)));
}

static int uart_create(struct vmm_machine *m, void **dev)
{
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return vmm_fail(VMM_ENOMEM, "uart: out of memory");
	u->m = m;
	u->st.version = UART_STATE_VERSION;
	u->st.msr = modem_inputs(0);
	*dev = u;
	return 0;
}

static void uart_destroy(void *dev)
{
	free(dev);
}

static void uart_save(void *dev, void *buf)
{
	struct uart *u = dev;
	memcpy(buf, &u->st, sizeof(u->st));
}

static int uart_load(void *dev, const void *buf)
{
	struct uart *u = dev;
	struct uart_state s;
	memcpy(&s, buf, sizeof(s));
	if (s.version != UART_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "uart: state version %u, expected %u", s.version,
				UART_STATE_VERSION);
	if (s.rx_head >= UART_FIFO || s.rx_count > rx_capacity(&s) || (s.ier & 0xf0) ||
	    (s.fcr & ~0xc9) || (s.mcr & 0xe0) || s.lsr_oe > 1 || s.thr_pending > 1 ||
	    s.irq_level > 1 ||
	    s.irq_level != (uart_iir(&s) != IIR_NONE && (s.mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2))
		return vmm_fail(VMM_ESTATE, "uart: bad state");
	u->st = s;
	return 0;
}

const struct vmm_dev_ops uart_dev_ops = {
	.name = "uart",
	.ranges = { { PORT_COM1, 8 } },
	.state_size = sizeof(struct uart_state),
	.create = uart_create,
	.destroy = uart_destroy,
	.pio_read = uart_pio_read,
	.pio_write = uart_pio_write,
	.save = uart_save,
	.load = uart_load,
};
