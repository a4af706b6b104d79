/*
 * console_proto.h: the console protocol without its transport (docs/ft-console.md): the
 * records' byte layout, the server's output history, and the state each end keeps about
 * output offsets and input sequence numbers. console_server.c and console_client.c move
 * these records over an ft channel; the tests drive this state directly.
 *
 * Every record is one ft channel record: its type byte is the channel's, its body is
 * laid out here, integers little-endian.
 */
#ifndef REWIND_FT_CONSOLE_PROTO_H
#define REWIND_FT_CONSOLE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FT_CON_VERSION 1

/* Record types, client to server. */
#define FT_CON_HELLO 0x01 /* u32 version, u64 client id, u64 output offset, u64 input seq */
#define FT_CON_INPUT 0x02 /* u64 seq, 1..FT_CON_MAX_INPUT bytes */
#define FT_CON_CPING 0x03 /* empty: the client is alive */

/* Record types, server to client. */
#define FT_CON_WELCOME 0x81 /* u32 state, u64 from, u64 gone, u64 end */
#define FT_CON_OUTPUT  0x82 /* u64 offset, 1..FT_CON_MAX_OUTPUT bytes */
#define FT_CON_GONE    0x83 /* u64 from, u64 to: output [from, to) is no longer kept */
#define FT_CON_ACK     0x84 /* u64 seq: input below seq is taken */
#define FT_CON_BYE     0x85 /* u32 reason, u64 end */
#define FT_CON_SPING   0x86 /* empty: the server is alive */

#define FT_CON_HELLO_BYTES   28
#define FT_CON_WELCOME_BYTES 28
#define FT_CON_GONE_BYTES    16
#define FT_CON_ACK_BYTES     8
#define FT_CON_BYE_BYTES     12
#define FT_CON_MAX_INPUT     4096
#define FT_CON_MAX_OUTPUT    65536
/* The largest record body either side receives. */
#define FT_CON_MAX_RECORD (8 + FT_CON_MAX_OUTPUT)

/* WELCOME states. */
enum ft_con_state {
	FT_CON_LIVE = 0,     /* this side serves: output follows from `from` */
	FT_CON_NOT_LIVE = 1, /* a backup: try the next address (the server closes) */
	FT_CON_BUSY = 2,     /* too many clients here (the server closes) */
};

/* BYE reasons. */
enum ft_con_bye {
	FT_CON_BYE_NOT_LIVE = 1, /* this side stopped serving: try the next address */
	FT_CON_BYE_STOPPING = 2, /* this side's console is shutting down: try the next */
	FT_CON_BYE_END = 3,	 /* the guest's output ended at `end`: nothing more will come */
};

/* The server's kept output: the last cap bytes published, by offset. */
struct ft_con_ring {
	uint8_t *buf;
	size_t cap;
	uint64_t start; /* offset of the oldest kept byte */
	uint64_t end;	/* offset one past the newest byte */
};

/* 0, or -1 when memory is short. The first byte appended will have offset base. */
int ft_con_ring_init(struct ft_con_ring *r, size_t cap, uint64_t base);
void ft_con_ring_free(struct ft_con_ring *r);
/* Append; what no longer fits pushes the oldest bytes out. Never fails. */
void ft_con_ring_append(struct ft_con_ring *r, const uint8_t *p, size_t n);
/* Copy up to max bytes from offset off (start <= off <= end); returns how many. */
size_t ft_con_ring_read(const struct ft_con_ring *r, uint64_t off, uint8_t *dst, size_t max);

/* Decoded HELLO and WELCOME bodies. */
struct ft_con_hello {
	uint32_t version;
	uint64_t client;
	uint64_t out_offset; /* first output byte the client has not printed */
	uint64_t in_seq;     /* sequence number of the first input byte not acked to it */
};
struct ft_con_welcome {
	uint32_t state; /* enum ft_con_state */
	uint64_t from;	/* the offset output will be sent from */
	uint64_t gone;	/* bytes the client wanted that are no longer kept (from - wanted) */
	uint64_t end;	/* the server's output end when it answered */
};

void ft_con_hello_encode(uint8_t out[FT_CON_HELLO_BYTES], const struct ft_con_hello *h);
/* 0, or -1 (wrong size or version). */
int ft_con_hello_decode(const uint8_t *p, size_t n, struct ft_con_hello *h);
void ft_con_welcome_encode(uint8_t out[FT_CON_WELCOME_BYTES], const struct ft_con_welcome *w);
int ft_con_welcome_decode(const uint8_t *p, size_t n, struct ft_con_welcome *w);
void ft_con_bye_encode(uint8_t out[FT_CON_BYE_BYTES], uint32_t reason, uint64_t end);
int ft_con_bye_decode(const uint8_t *p, size_t n, uint32_t *reason, uint64_t *end);
void ft_con_gone_encode(uint8_t out[FT_CON_GONE_BYTES], uint64_t from, uint64_t to);
void ft_con_ack_encode(uint8_t out[FT_CON_ACK_BYTES], uint64_t seq);
/* An OUTPUT or INPUT body: the u64 then the bytes; returns the body length. */
size_t ft_con_data_encode(uint8_t *out, uint64_t at, const uint8_t *p, size_t n);
/* Only the u64, for a body whose bytes are already in place after it. */
void ft_con_data_head(uint8_t out[8], uint64_t at);

/*
 * The server's view of one client: what the HELLO asked, the next output offset to send
 * and the next input sequence number it expects.
 */
struct ft_con_srv {
	uint64_t client;
	uint64_t out_next;
	uint64_t in_next;
};

/*
 * Answer a HELLO body given the server's kept output [start, end) and whether it serves.
 * Returns 0 with *w filled (and s set up when live), or -1 for a malformed HELLO.
 */
int ft_con_srv_hello(struct ft_con_srv *s, const uint8_t *p, size_t n, uint64_t start, uint64_t end,
		     enum ft_con_state state, struct ft_con_welcome *w);

/*
 * An INPUT body: 0 with the bytes to offer the core (*seq, *data, *len), or -1 when it is
 * malformed or does not start at in_next (the client sends one record at a time, always
 * from the first byte not acked: anything else is a broken client).
 */
int ft_con_srv_input(const struct ft_con_srv *s, const uint8_t *p, size_t n, uint64_t *seq,
		     const uint8_t **data, size_t *len);
/* The core took `taken` of them: advance and encode the ACK. */
void ft_con_srv_taken(struct ft_con_srv *s, size_t taken, uint8_t ack[FT_CON_ACK_BYTES]);

/*
 * The client's side: where it is in the output, and the input not yet acked (the first
 * byte of in[] has sequence number in_acked; the first in_flight bytes of it were sent
 * in the one INPUT record that waits for its ACK).
 */
struct ft_con_cli {
	uint64_t id;
	uint64_t out_off;
	uint64_t gone_total;
	uint8_t *in;
	size_t in_len, in_cap;
	uint64_t in_acked;
	size_t in_flight;
	bool in_eof;
};

void ft_con_cli_init(struct ft_con_cli *c, uint64_t id);
void ft_con_cli_free(struct ft_con_cli *c);
/* A new connection: encode its HELLO; nothing is in flight on it yet. */
void ft_con_cli_hello(struct ft_con_cli *c, uint8_t out[FT_CON_HELLO_BYTES]);
/*
 * A WELCOME body. Returns -1 when malformed or when a live server would start before
 * what the client asked (it would print bytes twice); else 0 with *w, and when live the
 * client's offset moves to w->from (w->gone bytes skipped, counted in gone_total).
 */
int ft_con_cli_welcome(struct ft_con_cli *c, const uint8_t *p, size_t n, struct ft_con_welcome *w);
/*
 * An OUTPUT body: 0 with the bytes to print, or -1 unless it starts exactly at the
 * client's offset (so nothing is printed twice or skipped).
 */
int ft_con_cli_output(struct ft_con_cli *c, const uint8_t *p, size_t n, const uint8_t **data,
		      size_t *len);
/* A GONE body: 0 with how many bytes are skipped, or -1 unless from is the offset. */
int ft_con_cli_gone(struct ft_con_cli *c, const uint8_t *p, size_t n, uint64_t *count);
/*
 * An ACK body: 0 when all that was in flight was taken, 1 when only part was (the rest
 * is sent again: wait a little first, the core is full), -1 when nothing is in flight or
 * the seq is outside what was sent.
 */
int ft_con_cli_ack(struct ft_con_cli *c, const uint8_t *p, size_t n);
/* Queue typed bytes. 0, or -1 when memory is short. */
int ft_con_cli_input_add(struct ft_con_cli *c, const uint8_t *p, size_t n);
/* The next INPUT body to send into out (room for 8 + FT_CON_MAX_INPUT): its length, or 0
 * when one is already in flight or nothing waits. */
size_t ft_con_cli_input_next(struct ft_con_cli *c, uint8_t *out);
/* Input ended and every byte of it was acked. */
bool ft_con_cli_input_done(const struct ft_con_cli *c);

#endif
