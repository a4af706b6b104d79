/*
 * echo: echoes every byte received on COM1 (IRQ 4 driven, idling with hlt) and exits 0
 * when the byte given by quit= arrives (default 'q'; a single non-digit character is
 * that character, anything else a number: quit=113, quit=0x71). The quit byte is not
 * echoed; "bye" follows on a line of its own. spin=N (default 0) makes it work N loop
 * iterations before it echoes each byte: an answer that comes a while after the input.
 */
#include "guest.h"

int main(void)
{
	const char *q = g_opt_str("quit", "q");
	int quit = (q[0] && !q[1] && (q[0] < '0' || q[0] > '9')) ? (unsigned char)q[0] :
								     (int)g_opt_int("quit", 'q');
	long long spin = g_opt_int("spin", 0);
	g_printf("echo: type; byte %d quits\n", quit);
	g_serial_rx_irq_enable();
	g_sti();
	for (;;) {
		int c = g_getc();
		if (c == quit)
			break;
		for (volatile long long i = 0; i < spin; i++)
			;
		g_putc((char)c);
	}
	g_puts("\nbye");
	return 0;
}
