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
	 * taken); bytes not taken are sent again by the client later. Each client has a
	 * thread of its own, but calls are serialised: never two at once.
	 */
	size_t (*input)(void *opaque, uint64_t client, uint64_t seq, const uint8_t *buf,
			size_t n);
	void *opaque;
};

/* Start serving (the thread runs until ft_console_stop). 0, or -1 with reason in err. */
int ft_console_start(const struct ft_console_config *cfg, struct ft_console **out,
		     char *err, size_t errlen);

/* Output that may now leave, in guest order: appended to the history, sent to clients.
 * Never waits for a client (only for a memory copy under the console's lock). */
void ft_console_publish(struct ft_console *c, const uint8_t *buf, size_t n);

/* Total output published so far, as an offset (out_base + bytes published). */
uint64_t ft_console_offset(const struct ft_console *c);

/*
 * Whether this side serves clients: a backup's console answers "not live, try the next
 * address" until it goes live; a primary's is live from the start.
 */
void ft_console_set_live(struct ft_console *c, bool live);

/*
 * The guest's output is complete (the guest ended): clients that have printed all of it
 * are told so and their ft_console_client returns 0. Not for a side that merely stops
 * serving (use ft_console_stop or set_live false: clients go on to the next address).
 */
void ft_console_end(struct ft_console *c);

/*
 * After ft_console_end: wait until every connection is over (a client read the rest of the
 * output and BYE and closed; one that says nothing is dropped at the server's own
 * timeouts), at most timeout_ms, so that ft_console_stop cuts nobody still reading the
 * end. Returns whether all were over.
 */
bool ft_console_drain(struct ft_console *c, unsigned timeout_ms);

/* Close every connection (clients go on to the next address), stop the threads, free.
 * It waits for an input call in progress to return: do not call it holding what the
 * input callback needs. */
void ft_console_stop(struct ft_console *c);

/* The client side (`rewind console`): follow addrs (comma-separated HOST:PORT list),
 * printing output to out_fd and sending what is read from in_fd; returns the exit status
 * for the CLI (0 when in_fd ended and everything typed was taken, else a failure status)
 * with a one-line reason in err. */
int ft_console_client(const char *addrs, const struct ft_key *key, int in_fd, int out_fd,
		      char *err, size_t errlen);

/* Exit statuses of ft_console_client (the README's table; docs/ft-console.md). */
#define FT_CONSOLE_OK        0  /* input ended and all was taken, or the output ended */
#define FT_CONSOLE_USAGE     2  /* an address is not HOST:PORT */
#define FT_CONSOLE_BAD_INPUT 4  /* handshake refused (wrong key?), or a protocol error */
#define FT_CONSOLE_HOST      10 /* no live side within the give-up time; an fd failed */
#define FT_CONSOLE_INTERNAL  12 /* out of memory */

/* Knobs of the client; zero means the default given. */
struct ft_console_client_opts {
	int give_up_ms; /* after losing the link (or at start), try this long: 30000 */
	int silence_ms; /* a live link silent this long is lost: 3000 (servers ping each s) */
	int escape;     /* terminal mode: this byte read from in_fd ends input like EOF and
			 * is not sent (a terminal in raw mode has no EOF); 0: none */
	int linger_ms;  /* once input ended and all of it was taken, go on printing until
			 * no output came for this long: 1000; -1: return at once */
	/*
	 * One-line notices (live at, lost, how many bytes are gone), on the caller's thread.
	 * NULL: only the gone notices are shown, written into out_fd between brackets on a
	 * line of their own, since a user must learn that output is missing.
	 */
	void (*notice)(void *opaque, const char *line);
	void *opaque;
};

/* ft_console_client with knobs (opts NULL: all defaults). in_fd < 0: only watch the
 * output, until the guest's output ends or no live side is found in the give-up time. */
int ft_console_client_ex(const char *addrs, const struct ft_key *key, int in_fd, int out_fd,
			 const struct ft_console_client_opts *opts, char *err, size_t errlen);

#endif
