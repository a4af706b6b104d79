/* unit */
/*
 * test_event.c: logfmt/event.c and err.c: varints at their edges and their malformed
 * forms, zigzag, one event's encoding both ways, the one-line text form, and the names
 * of kinds, codecs and error codes.
 */
#include "logfmt/lf_priv.h"
#include "logfmt/log.h"

#include <criterion/criterion.h>
#include <string.h>

Test(varint, edge_values_round_trip)
{
	static const uint64_t v[] = {0,
				     1,
				     127,
				     128,
				     255,
				     16383,
				     16384,
				     UINT32_MAX,
				     (uint64_t)UINT32_MAX + 1,
				     (1ull << 56) - 1,
				     1ull << 56,
				     (1ull << 63) - 1,
				     1ull << 63,
				     UINT64_MAX - 1,
				     UINT64_MAX};
	static const size_t len[] = {1, 1, 1, 2, 2, 2, 3, 5, 5, 8, 9, 9, 10, 10, 10};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t b[LF_VARINT_MAX + 2];
		size_t n = lf_varint_put(b, v[i]), off = 0;
		uint64_t got;

		cr_assert_eq(n, len[i], "value %llu: %zu bytes", (unsigned long long)v[i], n);
		cr_assert_eq(lf_varint_get(b, n, &off, &got), 0);
		cr_assert_eq(off, n);
		cr_assert_eq(got, v[i]);
		/* Every proper prefix is cut, never a smaller value. */
		for (size_t cut = 0; cut < n; cut++) {
			off = 0;
			cr_assert_eq(lf_varint_get(b, cut, &off, &got), LF_VARINT_SHORT);
			cr_assert_eq(off, 0);
		}
	}
}

Test(varint, malformed_forms_are_rejected)
{
	uint8_t eleven[11], b[10];
	size_t off = 0;
	uint64_t v;

	memset(eleven, 0x80, sizeof(eleven));
	eleven[10] = 0;
	cr_assert_eq(lf_varint_get(eleven, sizeof(eleven), &off, &v), LF_VARINT_LONG);
	/* Ten bytes whose last carries bits past 64. */
	memset(b, 0xff, 9);
	b[9] = 0x02;
	off = 0;
	cr_assert_eq(lf_varint_get(b, 10, &off, &v), LF_VARINT_LONG);
	b[9] = 0x01;
	off = 0;
	cr_assert_eq(lf_varint_get(b, 10, &off, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	/* Not the shortest form: 0 as two bytes, 1 as three. */
	off = 0;
	cr_assert_eq(lf_varint_get((const uint8_t *)"\x80\x00", 2, &off, &v), LF_VARINT_LONG);
	off = 0;
	cr_assert_eq(lf_varint_get((const uint8_t *)"\x81\x80\x00", 3, &off, &v), LF_VARINT_LONG);
}

Test(varint, zigzag)
{
	cr_assert_eq(lf_zigzag(0), 0);
	cr_assert_eq(lf_zigzag((uint64_t)-1), 1);
	cr_assert_eq(lf_zigzag(1), 2);
	cr_assert_eq(lf_zigzag((uint64_t)INT64_MIN), UINT64_MAX);
	cr_assert_eq(lf_zigzag((uint64_t)INT64_MAX), UINT64_MAX - 1);
	for (int64_t d = -1000; d <= 1000; d++)
		cr_assert_eq(lf_unzigzag(lf_zigzag((uint64_t)d)), (uint64_t)d);
	cr_assert_eq(lf_unzigzag(UINT64_MAX), (uint64_t)INT64_MIN);
}

Test(event, encode_decode_each_kind)
{
	static const uint8_t data[3] = {'a', 'b', '\n'};
	const struct lf_event ev[] = {
	    {.kind = LF_EV_CLOCK, .pos = 5, .clock = 1},
	    {.kind = LF_EV_CLOCK, .pos = 5, .clock = UINT64_MAX},
	    {.kind = LF_EV_TIMER, .pos = 9, .timer = UINT32_MAX},
	    {.kind = LF_EV_INPUT, .pos = 9, .input = {.channel = 3, .len = 3, .data = data}},
	    {.kind = LF_EV_HASH,
	     .pos = 10,
	     .hash = {.flags = 7, .regs = 1, .mem = 2, .out = 3, .out_bytes = 4}},
	    {.kind = LF_EV_END, .pos = UINT64_MAX, .end = {.reason = 2, .value = UINT64_MAX}},
	    {.kind = LF_EV_LANDMARK,
	     .pos = UINT64_MAX,
	     .landmark = {.rip = UINT64_MAX,
			  .gprs = 3,
			  .regs = 7,
			  .mem = UINT64_MAX,
			  .pages = UINT32_MAX}},
	};
	uint8_t buf[7 * LF_EV_MAX_BYTES];
	struct lf_ev_state ws = {.pos = 5, .clock = 100}, rs = ws;
	size_t n = 0, off = 0;

	for (size_t i = 0; i < 7; i++) {
		cr_assert_eq(lf_ev_check(&ev[i]), 0);
		n += lf_ev_encode(buf + n, &ev[i], &ws);
	}
	for (size_t i = 0; i < 7; i++) {
		struct lf_event got;
		const char *why = NULL;

		cr_assert_eq(lf_ev_decode(buf, n, &off, &rs, &got, &why), 0, "%zu: %s", i, why);
		cr_assert_eq(got.kind, ev[i].kind);
		cr_assert_eq(got.pos, ev[i].pos);
	}
	cr_assert_eq(off, n);
}

Test(event, decode_rejects_bad_bytes)
{
	struct lf_ev_state st = {0};
	struct lf_event ev;
	const char *why;
	size_t off;

#define BAD(bytes, len, reason)                                                                    \
	do {                                                                                       \
		off = 0;                                                                           \
		st = (struct lf_ev_state){0};                                                      \
		cr_assert_eq(lf_ev_decode((const uint8_t *)(bytes), len, &off, &st, &ev, &why),    \
			     -1);                                                                  \
		cr_assert(strstr(why, reason) != NULL, "got \"%s\", wanted \"%s\"", why, reason);  \
	} while (0)
	BAD("\x00\x00\x00", 3, "unknown event kind");
	BAD("\x07\x00\x00", 3, "unknown event kind");
	BAD("\x01", 1, "past the end");
	BAD("\x01\x00", 2, "past the end");
	BAD("\x01\x80\x00\x00", 4, "overlong");
	BAD("\x02\x00\x80\x80\x80\x80\x10", 7, "timer id past 32 bits");
	BAD("\x03\x00\x00\x00", 4, "input length out of range");
	BAD("\x03\x00\x00\x81\x20", 5, "input length out of range"); /* 4097 */
	BAD("\x03\x00\x00\x05"
	    "abc",
	    7, "past the end");
	BAD("\x04\x00\x08", 3, "unknown hash flags");
	BAD("\x04\x00\x01\x01\x02\x03", 6, "past the end");
	BAD("\x05\x00\x01", 3, "past the end");
#undef BAD
	/* A position delta that wraps past 2^64. */
	uint8_t wrap[16] = {LF_EV_TIMER};
	size_t n = 1 + lf_varint_put(wrap + 1, 2);

	wrap[n++] = 0;
	off = 0;
	st = (struct lf_ev_state){.pos = UINT64_MAX - 1};
	cr_assert_eq(lf_ev_decode(wrap, n, &off, &st, &ev, &why), -1);
	cr_assert_str_eq(why, "position overflows");
}

Test(event, check_rejects_bad_events)
{
	uint8_t b = 0;
	struct lf_event ev = {.kind = 0};

	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	ev.kind = LF_KIND_MAX + 1;
	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	cr_assert(strstr(lf_errdetail(), "unknown event kind 7") != NULL);
	ev = (struct lf_event){.kind = LF_EV_INPUT, .input = {.len = 0, .data = &b}};
	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	ev.input.len = LF_INPUT_MAX + 1;
	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	ev.input.len = 1;
	ev.input.data = NULL;
	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	ev = (struct lf_event){.kind = LF_EV_HASH, .hash = {.flags = 8}};
	cr_assert_eq(lf_ev_check(&ev), -LF_EINVAL);
	cr_assert_eq(lf_ev_check(NULL), -LF_EINVAL);
}

Test(event, format_lines)
{
	char buf[256];
	struct lf_event ev = {.kind = LF_EV_CLOCK, .clock = 1732350000123456789ull};

	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "clock 1732350000123456789");
	ev = (struct lf_event){.kind = LF_EV_TIMER, .timer = 0};
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "timer 0");
	ev = (struct lf_event){.kind = LF_EV_INPUT,
			       .input = {.channel = 0, .len = 3, .data = (const uint8_t *)"ab\n"}};
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "input serial 3 bytes \"ab\\n\"");
	ev.input.channel = 2;
	ev.input.len = 6;
	ev.input.data = (const uint8_t *)"\"\\\x01\xff\t\r";
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "input channel 2 6 bytes \"\\\"\\\\\\x01\\xff\\t\\r\"");
	ev.input.channel = 0;
	ev.input.len = 1;
	ev.input.data = (const uint8_t *)"x";
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "input serial 1 byte \"x\"");
	ev = (struct lf_event){
	    .kind = LF_EV_HASH,
	    .hash = {.flags = 7, .regs = 1, .mem = 0xabc, .out = UINT64_MAX, .out_bytes = 123}};
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "hash regs=0000000000000001 mem=0000000000000abc "
			      "out=ffffffffffffffff/123");
	ev.hash.flags = LF_HASH_MEM;
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "hash mem=0000000000000abc");
	ev = (struct lf_event){.kind = LF_EV_END, .end = {.reason = 1, .value = 7}};
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "end reason=1 value=7");
	ev = (struct lf_event){.kind = LF_EV_LANDMARK,
			       .landmark = {.rip = 0x1234, .gprs = 2, .regs = 1, .mem = 0xabc, .pages = 3}};
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "landmark rip=0x1234 gprs=0000000000000002 regs=0000000000000001 "
			      "mem=0000000000000abc pages=3");
	ev.kind = 77;
	lf_event_format(&ev, buf, sizeof(buf));
	cr_assert_str_eq(buf, "unknown kind 77");
}

Test(event, format_never_overflows)
{
	static uint8_t data[LF_INPUT_MAX];
	char buf[64];
	struct lf_event ev = {.kind = LF_EV_INPUT, .input = {.len = LF_INPUT_MAX, .data = data}};

	memset(buf, 'Z', sizeof(buf));
	lf_event_format(&ev, buf, 20);
	cr_assert_eq(strlen(buf), 19);
	cr_assert_eq(strcmp(buf + 16, "..."), 0, "%s", buf);
	cr_assert_eq(buf[20], 'Z');
	lf_event_format(&ev, buf, 1);
	cr_assert_eq(buf[0], '\0');
	lf_event_format(&ev, buf, 0);
	cr_assert_eq(buf[0], '\0');
	/* A whole 4096-byte input fits in a large enough buffer. */
	char *big = malloc(5 * LF_INPUT_MAX);
	memset(data, 'q', sizeof(data));
	lf_event_format(&ev, big, 5 * LF_INPUT_MAX);
	cr_assert_eq(strlen(big), strlen("input serial 4096 bytes \"\"") + LF_INPUT_MAX);
	free(big);
}

Test(names, kinds_codecs_errors)
{
	for (int k = 1; k <= LF_KIND_MAX; k++) {
		cr_assert_not_null(lf_kind_name((unsigned)k));
		cr_assert_eq(lf_kind_parse(lf_kind_name((unsigned)k)), k);
	}
	cr_assert_str_eq(lf_kind_name(LF_EV_INPUT), "input");
	cr_assert_null(lf_kind_name(0));
	cr_assert_str_eq(lf_kind_name(LF_EV_LANDMARK), "landmark");
	cr_assert_null(lf_kind_name(LF_KIND_MAX + 1));
	cr_assert_eq(lf_kind_parse("bogus"), -1);
	cr_assert_eq(lf_kind_parse(NULL), -1);
	for (int c = LF_CODEC_NONE; c <= LF_CODEC_ZSTD; c++)
		cr_assert_eq(lf_codec_parse(lf_codec_name((unsigned)c)), c);
	cr_assert_str_eq(lf_codec_name(LF_CODEC_ZSTD), "zstd");
	cr_assert_null(lf_codec_name(3));
	cr_assert_eq(lf_codec_parse("gzip"), -1);
	for (int e = LF_OK; e <= LF_ESTATE; e++) {
		cr_assert_str_neq(lf_strerror(e), "unknown error");
		cr_assert_str_eq(lf_strerror(-e), lf_strerror(e));
	}
	cr_assert_str_eq(lf_strerror(99), "unknown error");
}
