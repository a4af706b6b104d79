/*
 * console.h: the guest's console as the ft pair serves it (docs/ft.md, "Console").
 *
 * Under `rewind ft`, `--serial tcp:ADDR` speaks only this small framed protocol, over an
 * ft channel (chan.h, purpose "console"). A client (`rewind console`) says where it is in
 * the guest's output (a byte offset from the start of the run) and which input sequence
 * number it will send next; the server sends the output from that offset on (or says how
 * many bytes are gone when the offset is older than the kept history) and takes typed input
 * in numbered pieces, so that after a failover the client resumes on the other host with
 * nothing lost or repeated, in either direction.
 *
 * The server runs its own thread (accept, handshake, clients). The ft core feeds it the
 * output that may leave (the output rule is the core's business) and decides about input.
 */
#ifndef REWIND_FT_CONSOLE_H
#define REWIND_FT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ft/chan.h"

struct ft_console;

struct ft_console_config {
	int listen_fd;             /* bound, listening stream socket (owned from here on) */
	const struct ft_key *key;
	size_t history_bytes;      /* output kept for clients that resume (0: 1 MiB) */
	uint64_t out_base;         /* offset of the first byte ft_console_publish will get */
	/*
	 * Typed input from client `client` (a random id the client chose): n bytes whose
	 * first has sequence number seq. Called on the console's thread. Returns how many of
	 * them the core took (it skips a prefix it has already applied and counts it as
	 * taken); bytes not taken are sent again by the client later.
	 */
	size_t (*input)(void *opaque, uint64_t client, uint64_t seq, const uint8_t *buf,
			size_t n);
	void *opaque;
};

/* Start serving (the thread runs until ft_console_stop). 0, or -1 with reason in err. */
int ft_console_start(const struct ft_console_config *cfg, struct ft_console **out,
		     char *err, size_t errlen);

/* Output that may now leave, in guest order: appended to the history, sent to clients. */
void ft_console_publish(struct ft_console *c, const uint8_t *buf, size_t n);

/* Total output published so far, as an offset (out_base + bytes published). */
uint64_t ft_console_offset(const struct ft_console *c);

/*
 * Whether this side serves clients: a backup's console answers "not live, try the next
 * address" until it goes live; a primary's is live from the start.
 */
void ft_console_set_live(struct ft_console *c, bool live);

void ft_console_stop(struct ft_console *c);

/* The client side (`rewind console`): follow addrs (comma-separated HOST:PORT list),
 * printing output to out_fd and sending what is read from in_fd; returns the exit status
 * for the CLI (0 when in_fd ended and everything typed was taken, else a failure status)
 * with a one-line reason in err. */
int ft_console_client(const char *addrs, const struct ft_key *key, int in_fd, int out_fd,
		      char *err, size_t errlen);

#endif
