/* standalone */
/*
 * test_uart.c: vmm/uart.c against the 16550A datasheet and what Linux's 8250 driver
 * probes: scratch and IER, loopback with the MSR mapping, FIFO detection, THRE interrupt
 * behaviour, RX FIFO trigger levels and timeout indication, overrun, OUT2 gating of IRQ 4,
 * divisor latch, modem status interrupts, save/load.
 */
#include "../../vmm/uart.c"
#include "devtest.h"

static struct vmm_machine *m;
static void *uart;

#define OPS (&uart_dev_ops)
#define COM 0x3f8

static void wr(unsigned reg, uint8_t v)
{
	dt_out(OPS, uart, (uint16_t)(COM + reg), v);
}

static uint8_t rd(unsigned reg)
{
	return dt_in(OPS, uart, (uint16_t)(COM + reg));
}

static void rx(const char *s)
{
	size_t n = strlen(s);
	cr_assert_leq(n, uart_rx_room(uart));
	uart_rx(uart, (const uint8_t *)s, n);
}

static void setup(void)
{
	m = dt_machine();
	uart = dt_create(OPS, m);
}

static void teardown(void)
{
	OPS->destroy(uart);
	free(m);
}

TestSuite(uart, .init = setup, .fini = teardown);

Test(uart, reset_state)
{
	cr_assert_eq(rd(1), 0x00);
	cr_assert_eq(rd(2), 0x01);
	cr_assert_eq(rd(5), 0x60, "THRE and TEMT");
	cr_assert_eq(rd(6) & 0xf0, 0xb0, "CTS, DSR, DCD from the terminal");
	cr_assert_eq(uart_rx_room(uart), 1u, "1-byte holding register without FIFO");
}

Test(uart, scratch_and_ier_probe_as_linux_does)
{
	wr(7, 0xa5);
	cr_assert_eq(rd(7), 0xa5);
	wr(7, 0x5a);
	cr_assert_eq(rd(7), 0x5a);
	wr(1, 0x00);
	cr_assert_eq(rd(1) & 0x0f, 0x00);
	wr(1, 0x0f);
	cr_assert_eq(rd(1), 0x0f);
	wr(1, 0xff);
	cr_assert_eq(rd(1), 0x0f, "IER bits 4-7 are always 0 on a 16550A");
}

Test(uart, loopback_msr_mapping_and_deltas)
{
	rd(6);
	wr(4, 0x10 | 0x0a); /* loop, RTS, OUT2 */
	cr_assert_eq(rd(6) & 0xf0, 0x90, "RTS->CTS, OUT2->DCD");
	wr(4, 0x1f);
	uint8_t msr = rd(6);
	cr_assert_eq(msr & 0xf0, 0xf0);
	cr_assert_eq(msr & 0x0f, 0x02, "DSR rose; CTS, DCD unchanged; RI rose (no TERI)");
	cr_assert_eq(rd(6) & 0x0f, 0, "reading MSR clears the deltas");
	wr(4, 0x1b); /* OUT1 off: RI falls */
	cr_assert_eq(rd(6), 0xb4, "trailing edge of RI");
	wr(4, 0x00);
	cr_assert_eq(rd(6) & 0xf0, 0xb0, "back to the terminal's lines");
	cr_assert_eq(rd(4), 0x00);
	wr(4, 0xff);
	cr_assert_eq(rd(4), 0x1f, "MCR bits 5-7 are 0");
}

Test(uart, loopback_returns_transmitted_bytes_and_sends_nothing)
{
	wr(2, 0x07);
	wr(4, 0x10);
	cr_assert_eq(uart_rx_room(uart), 0u, "the receiver is cut off from the line");
	wr(0, 'x');
	wr(0, 'y');
	cr_assert_eq(m->ntx, 0u);
	cr_assert_eq(rd(5) & 0x01, 0x01);
	cr_assert_eq(rd(0), 'x');
	cr_assert_eq(rd(0), 'y');
	cr_assert_eq(rd(5), 0x60);
	wr(4, 0x00);
	wr(0, 'z');
	cr_assert_eq(m->ntx, 1u);
	cr_assert_eq(m->tx[0], 'z');
}

Test(uart, fifo_detection_via_iir)
{
	wr(2, 0x01);
	cr_assert_eq(rd(2) >> 6, 3, "16550A: both FIFO bits");
	cr_assert_eq(rd(2), 0xc1);
	cr_assert_eq(uart_rx_room(uart), 16u);
	wr(2, 0x00);
	cr_assert_eq(rd(2), 0x01);
	/* LCR 0xBF: no EFR on a 16550A, offset 2 still reads IIR. */
	wr(2, 0x01);
	wr(3, 0xbf);
	cr_assert_neq(rd(2), 0x00);
	wr(3, 0x03);
}

Test(uart, transmit_is_instantaneous)
{
	const char *msg = "hello\n";
	for (const char *p = msg; *p; p++) {
		cr_assert_eq(rd(5) & 0x60, 0x60);
		wr(0, (uint8_t)*p);
	}
	cr_assert_eq(m->ntx, strlen(msg));
	cr_assert_eq(memcmp(m->tx, msg, m->ntx), 0);
	cr_assert_eq(rd(5), 0x60);
}

/* serial8250_do_startup's UART_BUG_THRE test, with the line observed at the PIC. */
Test(uart, thre_interrupt_as_a_16550)
{
	wr(4, 0x08); /* OUT2: IRQ enabled */
	wr(1, 0x02);
	cr_assert_eq(rd(2), 0x02, "ETBEI while THRE raises THRE");
	cr_assert_eq(rd(2), 0x01, "reading IIR cleared it");
	cr_assert_eq(m->irq[4], 0);
	wr(1, 0x00);
	wr(1, 0x02);
	cr_assert_eq(m->irq[4], 1, "re-enabling ETBEI re-asserts");
	cr_assert_eq(rd(2), 0x02);
	/* Each THR write is a new edge: the byte leaves at once. */
	unsigned rises = m->rises[4];
	wr(0, 'a');
	cr_assert_eq(m->rises[4], rises + 1);
	cr_assert_eq(m->irq[4], 1);
	cr_assert_eq(rd(2), 0x02);
	wr(1, 0x00);
	cr_assert_eq(m->irq[4], 0);
}

Test(uart, out2_gates_the_irq_line_and_loopback_forces_it_off)
{
	wr(1, 0x02);
	cr_assert_eq(m->irq[4], 0, "no OUT2, no IRQ");
	cr_assert_eq(rd(2), 0x02, "though the UART has it pending");
	wr(1, 0x00);
	wr(1, 0x02);
	wr(4, 0x08);
	cr_assert_eq(m->irq[4], 1);
	wr(4, 0x18);
	cr_assert_eq(m->irq[4], 0, "loopback: OUT2 pin inactive");
	wr(4, 0x08);
	cr_assert_eq(m->irq[4], 1);
}

Test(uart, rx_without_fifo_and_overrun)
{
	wr(4, 0x08);
	wr(1, 0x05); /* ERBFI, ELSI */
	rx("A");
	cr_assert_eq(uart_rx_room(uart), 0u);
	cr_assert_eq(m->irq[4], 1);
	cr_assert_eq(rd(2), 0x04);
	cr_assert_eq(rd(5), 0x61);
	cr_assert_eq(rd(0), 'A');
	cr_assert_eq(m->irq[4], 0);
	cr_assert_eq(rd(5), 0x60);
	/* More than the room: overrun, the holding register gets the new byte. */
	uart_rx(uart, (const uint8_t *)"BC", 2);
	cr_assert_eq(rd(2), 0x06, "line status outranks data");
	cr_assert_eq(rd(5), 0x63);
	cr_assert_eq(rd(5), 0x61, "reading LSR clears OE");
	cr_assert_eq(rd(2), 0x04);
	cr_assert_eq(rd(0), 'C');
	cr_assert_eq(rd(2), 0x01);
}

Test(uart, rx_fifo_trigger_levels_and_timeout_indication)
{
	static const struct {
		uint8_t fcr;
		unsigned level;
	} cases[] = { { 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 } };
	wr(4, 0x08);
	wr(1, 0x01);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		wr(2, cases[c].fcr | 0x02);
		for (unsigned i = 1; i <= 16; i++) {
			uint8_t b = (uint8_t)('a' + i);
			uart_rx(uart, &b, 1);
			uint8_t want = i < cases[c].level ? 0xcc : 0xc4;
			cr_assert_eq(rd(2), want, "level %u, %u bytes", cases[c].level, i);
			cr_assert_eq(m->irq[4], 1);
			cr_assert_eq(uart_rx_room(uart), 16u - i);
		}
		for (unsigned i = 1; i <= 16; i++)
			cr_assert_eq(rd(0), 'a' + i, "FIFO order");
		cr_assert_eq(rd(2), 0xc1);
		cr_assert_eq(m->irq[4], 0);
	}
	/* A full FIFO drops the next byte and sets OE. */
	wr(2, 0xc3);
	uint8_t buf[17];
	memset(buf, 'q', sizeof(buf));
	buf[16] = 'Z';
	uart_rx(uart, buf, sizeof(buf));
	cr_assert_eq(rd(5) & 0x03, 0x03);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(rd(0), 'q');
	cr_assert_eq(rd(5) & 0x01, 0);
}

Test(uart, fcr_clears_rx_and_fifo_toggle_empties_it)
{
	wr(2, 0x01);
	rx("abc");
	wr(2, 0x03);
	cr_assert_eq(rd(5) & 0x01, 0);
	rx("de");
	wr(2, 0x00); /* FIFO off empties it too */
	cr_assert_eq(rd(5) & 0x01, 0);
	cr_assert_eq(uart_rx_room(uart), 1u);
}

Test(uart, divisor_latch_behind_dlab)
{
	wr(1, 0x05);
	wr(3, 0x83);
	wr(0, 0x01);
	wr(1, 0x00);
	cr_assert_eq(m->ntx, 0u, "DLL write is not a THR write");
	cr_assert_eq(rd(0), 0x01);
	cr_assert_eq(rd(1), 0x00);
	cr_assert_eq(rd(3), 0x83);
	wr(3, 0x03);
	cr_assert_eq(rd(1), 0x05, "IER untouched by DLM writes");
}

Test(uart, modem_status_interrupt)
{
	wr(1, 0x08);
	rd(6);
	cr_assert_eq(rd(2), 0x01);
	wr(4, 0x10 | 0x02); /* loopback changes CTS, DSR, DCD */
	cr_assert_eq(rd(2), 0x00, "modem status interrupt");
	rd(6);
	cr_assert_eq(rd(2), 0x01);
}

Test(uart, save_load_continues_identically)
{
	wr(4, 0x0b);
	wr(1, 0x0f);
	wr(2, 0x81);
	wr(3, 0x03);
	wr(7, 0x42);
	rx("0123456789abc");
	rd(0);
	rd(0);
	rx("XYZ");
	uart_rx(uart, (const uint8_t *)"!!!", 3); /* one more than the room: overrun */

	struct vmm_machine *m2 = dt_machine();
	void *u2 = dt_clone(OPS, uart, m, m2);
	cr_assert_eq(uart_rx_room(u2), uart_rx_room(uart));
	unsigned e1 = m->nevents, e2 = m2->nevents;
	for (int i = 0; i < 20; i++) {
		for (uint16_t r = 0; r < 8; r++)
			cr_assert_eq(dt_in(OPS, u2, COM + r), rd(r), "step %d reg %u", i, r);
		dt_out(OPS, u2, COM, (uint8_t)i);
		wr(0, (uint8_t)i);
	}
	dt_assert_same_irqs(m, e1, m2, e2);
	cr_assert_eq(m2->ntx, 20u);
	cr_assert_eq(memcmp(m2->tx, m->tx + m->ntx - 20, 20), 0);
	OPS->destroy(u2);
	free(m2);
}

static void corrupt_count(void *blob)
{
	((struct uart_state *)blob)->rx_count = 17;
}

static void corrupt_irq(void *blob)
{
	((struct uart_state *)blob)->irq_level ^= 1;
}

Test(uart, load_refuses_bad_state)
{
	wr(2, 0x01);
	dt_assert_load_refuses(OPS, uart, corrupt_count);
	dt_assert_load_refuses(OPS, uart, corrupt_irq);
}
