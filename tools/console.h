/*
 * console.h: the host side of COM1 for the CLI: stdio (raw terminal with Ctrl-A
 * escapes), file:PATH (output only) or tcp:HOST:PORT (listen, one client).
 */
#ifndef REWIND_TOOLS_CONSOLE_H
#define REWIND_TOOLS_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

struct console {
	int in_fd;      /* guest input, -1 for none */
	int out_fd;     /* guest output, -1 to drop */
	bool escape;    /* stdin is a terminal: Ctrl-A x quits */
	bool tty;
	bool raw_on;
	struct termios saved;
	int listen_fd;
	uint8_t buf[8192];
	size_t len;
	bool out_dead;  /* the output went away (client closed): drop from now on */
	uint8_t last;   /* the last byte the guest wrote */
	char error[256];
};

/* Parse spec and open it. For tcp, waits for a client. Returns 0, -EINVAL for a bad
 * spec, or -errno; c->error says what. */
int console_open(struct console *c, const char *spec);
/* Make a terminal raw (if stdio on a tty). */
void console_start(struct console *c);
/* The live input's output sink and flush. */
void console_out(void *opaque, uint8_t byte);
void console_flush(void *opaque);
/* Flush and restore the terminal. */
void console_finish(struct console *c);
void console_close(struct console *c);

#endif
