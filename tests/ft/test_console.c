/* unit */
/*
 * test_console.c: the ft console (ft/console_proto.c, console_server.c,
 * console_client.c). First the protocol without transport: the history ring at and
 * across its wrap, record layouts, a server's answer to every kind of HELLO, and the
 * client's offset and input bookkeeping against lying or confused servers.
 */
#include "ft/console_proto.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Byte i of the test output stream: varied enough that a shift or repeat shows. */
static uint8_t stream_byte(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

static void stream_fill(uint8_t *p, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = stream_byte(from + i);
}

static void check_stream(const uint8_t *p, uint64_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(p[i], stream_byte(from + i), "byte at offset %llu",
			     (unsigned long long)(from + i));
}

Test(proto, ring_keeps_the_last_cap_bytes_across_wraps)
{
	struct ft_con_ring r;
	uint8_t buf[300], out[300];
	uint64_t off = 1000;

	cr_assert_eq(ft_con_ring_init(&r, 256, off), 0);
	cr_assert_eq(ft_con_ring_read(&r, off, out, sizeof(out)), 0, "empty ring reads nothing");
	/* Odd-sized appends so that every wrap position is crossed. */
	for (size_t step = 1; step < 300; step += 37) {
		stream_fill(buf, off - 1000, step);
		ft_con_ring_append(&r, buf, step);
		off += step;
		cr_assert_eq(r.end, off);
		cr_assert_eq(r.start, off - 1000 > 256 ? off - 256 : 1000);
		for (uint64_t from = r.start; from <= r.end; from += 19) {
			size_t k = ft_con_ring_read(&r, from, out, sizeof(out));

			cr_assert_eq(k, r.end - from);
			check_stream(out, from - 1000, k);
		}
		cr_assert_eq(ft_con_ring_read(&r, r.start - 1, out, 10), 0, "before start");
	}
	ft_con_ring_free(&r);
}

Test(proto, ring_append_larger_than_cap_keeps_its_tail)
{
	struct ft_con_ring r;
	uint8_t buf[1000], out[100];

	cr_assert_eq(ft_con_ring_init(&r, 100, 0), 0);
	stream_fill(buf, 0, 7);
	ft_con_ring_append(&r, buf, 7);
	stream_fill(buf, 7, sizeof(buf));
	ft_con_ring_append(&r, buf, sizeof(buf));
	cr_assert_eq(r.end, 1007);
	cr_assert_eq(r.start, 907);
	cr_assert_eq(ft_con_ring_read(&r, 907, out, 100), 100);
	check_stream(out, 907, 100);
	cr_assert_eq(ft_con_ring_read(&r, 950, out, 10), 10, "read is capped at max");
	check_stream(out, 950, 10);
	ft_con_ring_free(&r);
}

Test(proto, hello_and_welcome_layout_is_little_endian_and_exact)
{
	struct ft_con_hello h = {FT_CON_VERSION, 0x1122334455667788ull, 0x0102030405060708ull, 9};
	struct ft_con_hello h2;
	uint8_t b[FT_CON_HELLO_BYTES];
	static const uint8_t want[FT_CON_HELLO_BYTES] = {
	    1, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 8, 7,
	    6, 5, 4, 3, 2,    1,    9,	  0,	0,    0,    0,	  0,	0, 0};

	ft_con_hello_encode(b, &h);
	cr_assert_arr_eq(b, want, sizeof(want));
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b), &h2), 0);
	cr_assert_eq(h2.client, h.client);
	cr_assert_eq(h2.out_offset, h.out_offset);
	cr_assert_eq(h2.in_seq, 9);
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b) - 1, &h2), -1, "short");
	b[0] = 2;
	cr_assert_eq(ft_con_hello_decode(b, sizeof(b), &h2), -1, "another version");

	struct ft_con_welcome w = {FT_CON_NOT_LIVE, 5, 6, 7}, w2;
	uint8_t wb[FT_CON_WELCOME_BYTES];

	ft_con_welcome_encode(wb, &w);
	cr_assert_eq(ft_con_welcome_decode(wb, sizeof(wb), &w2), 0);
	cr_assert_eq(w2.state, FT_CON_NOT_LIVE);
	cr_assert_eq(w2.from, 5);
	cr_assert_eq(w2.gone, 6);
	cr_assert_eq(w2.end, 7);
	wb[0] = 3;
	cr_assert_eq(ft_con_welcome_decode(wb, sizeof(wb), &w2), -1, "unknown state");

	uint8_t yb[FT_CON_BYE_BYTES];
	uint32_t reason;
	uint64_t end;

	ft_con_bye_encode(yb, FT_CON_BYE_END, 77);
	cr_assert_eq(ft_con_bye_decode(yb, sizeof(yb), &reason, &end), 0);
	cr_assert_eq(reason, FT_CON_BYE_END);
	cr_assert_eq(end, 77);
	ft_con_bye_encode(yb, 0, 77);
	cr_assert_eq(ft_con_bye_decode(yb, sizeof(yb), &reason, &end), -1, "reason 0");
}

/* A HELLO as a client at (out, in) would send. */
static void hello_at(uint8_t b[FT_CON_HELLO_BYTES], uint64_t id, uint64_t out, uint64_t in)
{
	struct ft_con_hello h = {FT_CON_VERSION, id, out, in};

	ft_con_hello_encode(b, &h);
}

Test(proto, server_answers_from_the_offset_or_says_what_is_gone)
{
	struct ft_con_srv s;
	struct ft_con_welcome w;
	uint8_t b[FT_CON_HELLO_BYTES];

	/* Kept [1000, 5000): an offset inside is served from there. */
	hello_at(b, 42, 3000, 7);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.state, FT_CON_LIVE);
	cr_assert_eq(w.from, 3000);
	cr_assert_eq(w.gone, 0);
	cr_assert_eq(w.end, 5000);
	cr_assert_eq(s.client, 42);
	cr_assert_eq(s.out_next, 3000);
	cr_assert_eq(s.in_next, 7);

	/* Older than the history: from the oldest kept byte, and how many are gone. */
	hello_at(b, 42, 200, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.from, 1000);
	cr_assert_eq(w.gone, 800);

	/* Ahead of what this side produced yet: waited for, nothing gone. */
	hello_at(b, 42, 6000, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_LIVE, &w), 0);
	cr_assert_eq(w.from, 6000);
	cr_assert_eq(w.gone, 0);

	/* A backup says so and nothing else. */
	hello_at(b, 42, 3000, 0);
	cr_assert_eq(ft_con_srv_hello(&s, b, sizeof(b), 1000, 5000, FT_CON_NOT_LIVE, &w), 0);
	cr_assert_eq(w.state, FT_CON_NOT_LIVE);
	cr_assert_eq(w.from, 0);

	cr_assert_eq(ft_con_srv_hello(&s, b, 27, 1000, 5000, FT_CON_LIVE, &w), -1, "short");
}

Test(proto, server_takes_input_only_from_the_expected_seq)
{
	struct ft_con_srv s = {.client = 1, .out_next = 0, .in_next = 10};
	uint8_t b[8 + FT_CON_MAX_INPUT + 1], ack[FT_CON_ACK_BYTES];
	const uint8_t *data;
	uint64_t seq;
	size_t len, n;

	memset(b, 'x', sizeof(b));
	n = ft_con_data_encode(b, 10, (const uint8_t *)"hello", 5);
	cr_assert_eq(ft_con_srv_input(&s, b, n, &seq, &data, &len), 0);
	cr_assert_eq(seq, 10);
	cr_assert_eq(len, 5);
	cr_assert_arr_eq(data, "hello", 5);
	ft_con_srv_taken(&s, 3, ack);
	cr_assert_eq(s.in_next, 13);
	cr_assert_eq(ack[0], 13);

	/* The same record again (the rest not taken is resent from 13, not from 10). */
	cr_assert_eq(ft_con_srv_input(&s, b, n, &seq, &data, &len), -1, "stale seq");
	ft_con_data_encode(b, 14, (const uint8_t *)"o", 1);
	cr_assert_eq(ft_con_srv_input(&s, b, 9, &seq, &data, &len), -1, "gap");
	ft_con_data_encode(b, 13, (const uint8_t *)"lo", 2);
	cr_assert_eq(ft_con_srv_input(&s, b, 8, &seq, &data, &len), -1, "no bytes");
	cr_assert_eq(ft_con_srv_input(&s, b, 8 + FT_CON_MAX_INPUT, &seq, &data, &len), 0);
	cr_assert_eq(ft_con_srv_input(&s, b, sizeof(b), &seq, &data, &len), -1, "oversize");
}

/* Feed the client a record body built by the server side's encoders. */
static int cli_output(struct ft_con_cli *c, uint64_t at, size_t n)
{
	uint8_t b[8 + 512], p[512];
	const uint8_t *data;
	size_t len;
	int r;

	stream_fill(p, at, n);
	r = ft_con_cli_output(c, b, ft_con_data_encode(b, at, p, n), &data, &len);
	if (r == 0) {
		cr_assert_eq(len, n);
		check_stream(data, at, n);
	}
	return r;
}

Test(proto, client_prints_each_offset_once_and_refuses_gaps_and_repeats)
{
	struct ft_con_cli c;
	struct ft_con_welcome w = {FT_CON_LIVE, 0, 0, 0};
	uint8_t b[FT_CON_WELCOME_BYTES], g[FT_CON_GONE_BYTES];
	uint64_t count;

	ft_con_cli_init(&c, 5);
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	cr_assert_eq(cli_output(&c, 0, 100), 0);
	cr_assert_eq(cli_output(&c, 100, 50), 0);
	cr_assert_eq(c.out_off, 150);
	cr_assert_eq(cli_output(&c, 100, 50), -1, "a repeat is refused");
	cr_assert_eq(cli_output(&c, 151, 50), -1, "a gap is refused");
	cr_assert_eq(cli_output(&c, 150, 0), -1, "an empty OUTPUT is malformed");
	cr_assert_eq(c.out_off, 150, "refused records move nothing");

	/* A reconnect: the new server starts at the offset. */
	ft_con_cli_hello(&c, (uint8_t[FT_CON_HELLO_BYTES]){0});
	w = (struct ft_con_welcome){FT_CON_LIVE, 150, 0, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	/* One that would start earlier would print bytes twice. */
	w = (struct ft_con_welcome){FT_CON_LIVE, 149, 0, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), -1);
	/* One that starts later must say how many are gone, exactly. */
	w = (struct ft_con_welcome){FT_CON_LIVE, 200, 49, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), -1);
	w = (struct ft_con_welcome){FT_CON_LIVE, 200, 50, 400};
	ft_con_welcome_encode(b, &w);
	cr_assert_eq(ft_con_cli_welcome(&c, b, sizeof(b), &w), 0);
	cr_assert_eq(c.out_off, 200);
	cr_assert_eq(c.gone_total, 50);

	/* Falling behind mid-stream. */
	ft_con_gone_encode(g, 210, 300);
	cr_assert_eq(ft_con_cli_gone(&c, g, sizeof(g), &count), -1, "not at the offset");
	ft_con_gone_encode(g, 200, 300);
	cr_assert_eq(ft_con_cli_gone(&c, g, sizeof(g), &count), 0);
	cr_assert_eq(count, 100);
	cr_assert_eq(c.gone_total, 150);
	cr_assert_eq(cli_output(&c, 300, 10), 0);
	ft_con_cli_free(&c);
}

/* Answer the client's record in flight: the core took `taken` of it. */
static int cli_ack(struct ft_con_cli *c, uint64_t seq)
{
	uint8_t a[FT_CON_ACK_BYTES];

	ft_con_ack_encode(a, seq);
	return ft_con_cli_ack(c, a, sizeof(a));
}

Test(proto, client_input_is_sent_once_in_flight_and_resent_until_taken)
{
	struct ft_con_cli c;
	uint8_t b[8 + FT_CON_MAX_INPUT], big[FT_CON_MAX_INPUT + 100];
	size_t n;

	ft_con_cli_init(&c, 5);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 0, "nothing typed");
	cr_assert_eq(ft_con_cli_input_add(&c, (const uint8_t *)"abcdef", 6), 0);
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 14);
	cr_assert_eq(b[0], 0, "seq 0");
	cr_assert_arr_eq(b + 8, "abcdef", 6);
	cr_assert_eq(ft_con_cli_input_add(&c, (const uint8_t *)"gh", 2), 0);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 0, "one record in flight at a time");

	/* The core took 4 of 6: the rest goes again, with what was typed since. */
	cr_assert_eq(cli_ack(&c, 5), 1, "partial");
	cr_assert_eq(c.in_acked, 5);
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 8 + 3);
	cr_assert_eq(b[0], 5);
	cr_assert_arr_eq(b + 8, "fgh", 3);
	cr_assert_eq(cli_ack(&c, 9), -1, "more than was sent");
	cr_assert_eq(cli_ack(&c, 4), -1, "less than was acked");

	/* The link drops before the ACK: the new connection resends from 5. */
	ft_con_cli_hello(&c, (uint8_t[FT_CON_HELLO_BYTES]){0});
	cr_assert_eq(cli_ack(&c, 8), -1, "nothing in flight on a new connection");
	n = ft_con_cli_input_next(&c, b);
	cr_assert_eq(n, 8 + 3);
	cr_assert_eq(b[0], 5);
	cr_assert_eq(cli_ack(&c, 8), 0);
	cr_assert_eq(c.in_len, 0);

	/* Large input is cut into records of at most FT_CON_MAX_INPUT. */
	memset(big, 'z', sizeof(big));
	cr_assert_eq(ft_con_cli_input_add(&c, big, sizeof(big)), 0);
	c.in_eof = true;
	cr_assert_eq(ft_con_cli_input_next(&c, b), 8 + FT_CON_MAX_INPUT);
	cr_assert_not(ft_con_cli_input_done(&c));
	cr_assert_eq(cli_ack(&c, 8 + FT_CON_MAX_INPUT), 0);
	cr_assert_eq(ft_con_cli_input_next(&c, b), 8 + 100);
	cr_assert_eq(cli_ack(&c, 8 + sizeof(big)), 0);
	cr_assert(ft_con_cli_input_done(&c));
	ft_con_cli_free(&c);
}
