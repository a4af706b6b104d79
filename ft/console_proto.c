/*
 * console_proto.c: the console protocol's records, the server's output history and the
 * offset and sequence-number bookkeeping of both ends (console_proto.h,
 * docs/ft-console.md). No sockets, no threads, no time: the transport lives in
 * console_server.c and console_client.c.
 */
#include "ft/console_proto.h"

#include <stdlib.h>
#include <string.h>

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int ft_con_ring_init(struct ft_con_ring *r, size_t cap, uint64_t base)
{
	r->buf = malloc(cap ? cap : 1);
	if (!r->buf)
		return -1;
	r->cap = cap;
	r->start = r->end = base;
	return 0;
}

void ft_con_ring_free(struct ft_con_ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

void ft_con_ring_append(struct ft_con_ring *r, const uint8_t *p, size_t n)
{
	if (r->cap == 0) {
		r->start = r->end += n;
		return;
	}
	/* Only the last cap bytes can survive: skip the rest of a huge append. */
	if (n > r->cap) {
		r->end += n - r->cap;
		p += n - r->cap;
		n = r->cap;
	}
	while (n) {
		size_t at = (size_t)(r->end % r->cap);
		size_t k = r->cap - at < n ? r->cap - at : n;

		memcpy(r->buf + at, p, k);
		r->end += k;
		p += k;
		n -= k;
	}
	if (r->end - r->start > r->cap)
		r->start = r->end - r->cap;
}

size_t ft_con_ring_read(const struct ft_con_ring *r, uint64_t off, uint8_t *dst, size_t max)
{
	size_t done = 0;

	if (off < r->start || off >= r->end)
		return 0;
	if (r->end - off < max)
		max = (size_t)(r->end - off);
	while (done < max) {
		size_t at = (size_t)((off + done) % r->cap);
		size_t k = r->cap - at < max - done ? r->cap - at : max - done;

		memcpy(dst + done, r->buf + at, k);
		done += k;
	}
	return done;
}

void ft_con_hello_encode(uint8_t out[FT_CON_HELLO_BYTES], const struct ft_con_hello *h)
{
	put32(out, h->version);
	put64(out + 4, h->client);
	put64(out + 12, h->out_offset);
	put64(out + 20, h->in_seq);
}

int ft_con_hello_decode(const uint8_t *p, size_t n, struct ft_con_hello *h)
{
	if (n != FT_CON_HELLO_BYTES)
		return -1;
	h->version = get32(p);
	h->client = get64(p + 4);
	h->out_offset = get64(p + 12);
	h->in_seq = get64(p + 20);
	return h->version == FT_CON_VERSION ? 0 : -1;
}

void ft_con_welcome_encode(uint8_t out[FT_CON_WELCOME_BYTES], const struct ft_con_welcome *w)
{
	put32(out, w->state);
	put64(out + 4, w->from);
	put64(out + 12, w->gone);
	put64(out + 20, w->end);
}

int ft_con_welcome_decode(const uint8_t *p, size_t n, struct ft_con_welcome *w)
{
	if (n != FT_CON_WELCOME_BYTES)
		return -1;
	w->state = get32(p);
	w->from = get64(p + 4);
	w->gone = get64(p + 12);
	w->end = get64(p + 20);
	return w->state <= FT_CON_BUSY ? 0 : -1;
}

void ft_con_bye_encode(uint8_t out[FT_CON_BYE_BYTES], uint32_t reason, uint64_t end)
{
	put32(out, reason);
	put64(out + 4, end);
}

int ft_con_bye_decode(const uint8_t *p, size_t n, uint32_t *reason, uint64_t *end)
{
	if (n != FT_CON_BYE_BYTES)
		return -1;
	*reason = get32(p);
	*end = get64(p + 4);
	return *reason >= FT_CON_BYE_NOT_LIVE && *reason <= FT_CON_BYE_END ? 0 : -1;
}

void ft_con_gone_encode(uint8_t out[FT_CON_GONE_BYTES], uint64_t from, uint64_t to)
{
	put64(out, from);
	put64(out + 8, to);
}

void ft_con_ack_encode(uint8_t out[FT_CON_ACK_BYTES], uint64_t seq)
{
	put64(out, seq);
}

void ft_con_data_head(uint8_t out[8], uint64_t at)
{
	put64(out, at);
}

size_t ft_con_data_encode(uint8_t *out, uint64_t at, const uint8_t *p, size_t n)
{
	put64(out, at);
	memcpy(out + 8, p, n);
	return 8 + n;
}

int ft_con_srv_hello(struct ft_con_srv *s, const uint8_t *p, size_t n, uint64_t start, uint64_t end,
		     enum ft_con_state state, struct ft_con_welcome *w)
{
	struct ft_con_hello h;

	if (ft_con_hello_decode(p, n, &h) < 0)
		return -1;
	memset(w, 0, sizeof(*w));
	w->state = state;
	w->end = end;
	if (state != FT_CON_LIVE)
		return 0;
	/*
	 * An offset past the end is output this side has not produced yet (a backup that
	 * went live behind what the old primary released): it is sent once published.
	 */
	w->from = h.out_offset < start ? start : h.out_offset;
	w->gone = w->from - h.out_offset;
	s->client = h.client;
	s->out_next = w->from;
	s->in_next = h.in_seq;
	return 0;
}

int ft_con_srv_input(const struct ft_con_srv *s, const uint8_t *p, size_t n, uint64_t *seq,
		     const uint8_t **data, size_t *len)
{
	if (n <= 8 || n > 8 + FT_CON_MAX_INPUT)
		return -1;
	*seq = get64(p);
	if (*seq != s->in_next)
		return -1;
	*data = p + 8;
	*len = n - 8;
	return 0;
}

void ft_con_srv_taken(struct ft_con_srv *s, size_t taken, uint8_t ack[FT_CON_ACK_BYTES])
{
	s->in_next += taken;
	ft_con_ack_encode(ack, s->in_next);
}

void ft_con_cli_init(struct ft_con_cli *c, uint64_t id)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
}

void ft_con_cli_free(struct ft_con_cli *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
}

void ft_con_cli_hello(struct ft_con_cli *c, uint8_t out[FT_CON_HELLO_BYTES])
{
	struct ft_con_hello h = {
	    .version = FT_CON_VERSION,
	    .client = c->id,
	    .out_offset = c->out_off,
	    .in_seq = c->in_acked,
	};

	c->in_flight = 0;
	ft_con_hello_encode(out, &h);
}

int ft_con_cli_welcome(struct ft_con_cli *c, const uint8_t *p, size_t n, struct ft_con_welcome *w)
{
	if (ft_con_welcome_decode(p, n, w) < 0)
		return -1;
	if (w->state != FT_CON_LIVE)
		return 0;
	if (w->from < c->out_off || w->from - c->out_off != w->gone)
		return -1;
	c->gone_total += w->gone;
	c->out_off = w->from;
	return 0;
}

int ft_con_cli_output(struct ft_con_cli *c, const uint8_t *p, size_t n, const uint8_t **data,
		      size_t *len)
{
	if (n <= 8 || n > 8 + FT_CON_MAX_OUTPUT || get64(p) != c->out_off)
		return -1;
	*data = p + 8;
	*len = n - 8;
	c->out_off += *len;
	return 0;
}

int ft_con_cli_gone(struct ft_con_cli *c, const uint8_t *p, size_t n, uint64_t *count)
{
	uint64_t from, to;

	if (n != FT_CON_GONE_BYTES)
		return -1;
	from = get64(p);
	to = get64(p + 8);
	if (from != c->out_off || to <= from)
		return -1;
	*count = to - from;
	c->gone_total += *count;
	c->out_off = to;
	return 0;
}

int ft_con_cli_ack(struct ft_con_cli *c, const uint8_t *p, size_t n)
{
	uint64_t seq, taken;

	if (n != FT_CON_ACK_BYTES || c->in_flight == 0)
		return -1;
	seq = get64(p);
	if (seq < c->in_acked || seq - c->in_acked > c->in_flight)
		return -1;
	taken = seq - c->in_acked;
	memmove(c->in, c->in + taken, c->in_len - (size_t)taken);
	c->in_len -= (size_t)taken;
	c->in_acked = seq;
	n = c->in_flight;
	c->in_flight = 0;
	return taken == n ? 0 : 1;
}

int ft_con_cli_input_add(struct ft_con_cli *c, const uint8_t *p, size_t n)
{
	if (c->in_len + n > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		uint8_t *b;

		while (cap < c->in_len + n)
			cap *= 2;
		b = realloc(c->in, cap);
		if (!b)
			return -1;
		c->in = b;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	return 0;
}

size_t ft_con_cli_input_next(struct ft_con_cli *c, uint8_t *out)
{
	size_t n = c->in_len < FT_CON_MAX_INPUT ? c->in_len : FT_CON_MAX_INPUT;

	if (c->in_flight || n == 0)
		return 0;
	c->in_flight = n;
	return ft_con_data_encode(out, c->in_acked, c->in, n);
}

bool ft_con_cli_input_done(const struct ft_con_cli *c)
{
	return c->in_eof && c->in_len == 0;
}
