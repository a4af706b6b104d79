/*
 * chan.h: the ft pair's secure channel (docs/ft.md, "The channel").
 *
 * Every ft connection (log stream, status, join, console) runs over one of these: a
 * connected stream socket, a handshake that proves both ends hold the pair's pre-shared
 * key and binds this connection (fresh nonces from both sides, so a captured stream
 * cannot be replayed into a new one), then typed records, each encrypted and
 * authenticated in order (libsodium secretstream, one state per direction). A record that
 * fails to authenticate, arrives out of order or repeated, or is cut, is a link failure:
 * the channel is dead from then on and nothing of the bad record is returned.
 *
 * One thread may send while another receives; two senders (or two receivers) must
 * serialise themselves.
 */
#ifndef REWIND_FT_CHAN_H
#define REWIND_FT_CHAN_H

#include <stddef.h>
#include <stdint.h>

#define FT_KEY_BYTES 32
/* The largest record body ft_chan_send accepts. */
#define FT_CHAN_MAX_RECORD (1u << 20)
/* The longest purpose ft_chan_open accepts (printable, no spaces). */
#define FT_CHAN_MAX_PURPOSE 32

struct ft_key {
	uint8_t k[FT_KEY_BYTES];
};

/*
 * Write a new random key to path: created with mode 0600, never over an existing file.
 * Returns 0, or -1 with a one-line reason in err.
 */
int ft_key_generate(const char *path, char *err, size_t errlen);

/*
 * Read a key file. Refused (-1, reason in err) when it is missing, not exactly a key, or
 * readable or writable by group or others (as ssh refuses such private keys).
 */
int ft_key_load(const char *path, struct ft_key *key, char *err, size_t errlen);

struct ft_chan;

enum ft_chan_role {
	FT_CHAN_CONNECTOR, /* the side that called connect() */
	FT_CHAN_ACCEPTOR,  /* the side that called accept() */
};

/*
 * Run the handshake on a connected socket fd (the channel owns fd from here on, also on
 * failure). purpose names what the connection is for ("stream", "status", "console",
 * ...): both sides must give the same, so a console connection cannot be taken for a log
 * stream. timeout_ms bounds the handshake. Returns 0, or -1 with the reason in err (wrong
 * key, peer closed, timeout, garbage).
 */
int ft_chan_open(int fd, const struct ft_key *key, enum ft_chan_role role,
		 const char *purpose, int timeout_ms, struct ft_chan **out, char *err,
		 size_t errlen);

/* Send one record: a type byte chosen by the caller and len <= FT_CHAN_MAX_RECORD bytes.
 * Returns 0 or -1 (the link is dead: ft_chan_error says why). */
int ft_chan_send(struct ft_chan *c, uint8_t type, const void *buf, size_t len);

/*
 * Receive the next record into buf (cap bytes). Waits at most timeout_ms (-1: forever).
 * Returns 1 with *type and *len set, 0 on timeout (nothing consumed that is lost: call
 * again), or -1 when the link is dead (closed, failed authentication, record larger than
 * cap, replayed or reordered record): ft_chan_error says why.
 */
int ft_chan_recv(struct ft_chan *c, uint8_t *type, void *buf, size_t cap, size_t *len,
		 int timeout_ms);

/*
 * Bound how long one ft_chan_send may wait for the peer to take data (-1, the default:
 * forever). A send that runs out of time kills the channel (a partly sent record cannot
 * be taken back).
 */
void ft_chan_set_send_timeout(struct ft_chan *c, int timeout_ms);

/*
 * Kill the channel now with reason why (for ft_chan_error): a thread blocked in
 * ft_chan_send or ft_chan_recv returns -1 at once, and the peer sees the connection
 * close. Safe from any thread while others use the channel; ft_chan_close still frees.
 */
void ft_chan_shutdown(struct ft_chan *c, const char *why);

/* The socket, for poll() by callers that wait on several things (readable does not
 * promise a whole record: call ft_chan_recv with timeout 0). */
int ft_chan_fd(const struct ft_chan *c);

/* Why the channel died (or "" while it lives). */
const char *ft_chan_error(const struct ft_chan *c);

/* Close the socket and free (NULL is fine). A live channel first tells the peer it closes
 * (its ft_chan_recv then fails with "the peer closed the channel", not a cut link). No
 * other thread may be using c. */
void ft_chan_close(struct ft_chan *c);

#endif
