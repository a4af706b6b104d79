/* unit */
/*
 * test_chunk.c: logfmt/chunk.c and the reader's chunk checks, on hand-built chunks whose
 * CRCs are right but whose contents lie: unknown kinds, overlong varints, lengths past
 * the payload, wrong event counts, positions that disagree with the chunk header or go
 * back, payloads that decompress to another length, and sizes past the limits (refused
 * before anything is allocated for them).
 */
#include "lftest.h"

#include "logfmt/lf_priv.h"

#include <lz4.h>
#include <zstd.h>

struct built {
	uint8_t *data;
	size_t len, cap, header_bytes;
};

/* A log of only a header, as a writer that died before its first chunk leaves it. */
static void built_init(struct built *b)
{
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;

	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, NULL, &w), 0);
	lf_writer_free(w);
	b->data = m.data;
	b->len = b->header_bytes = m.len;
	b->cap = m.cap;
}

static void built_put(struct built *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->data = realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Append a chunk with the given header fields over stored bytes, with a correct CRC. */
static void built_chunk(struct built *b, struct lf_chunk_hdr c, const void *stored)
{
	uint8_t h[LF_CHUNK_HDR_BYTES];

	c.crc = 0;
	lf_chunk_hdr_encode(h, &c);
	c.crc = lf_crc32c(lf_crc32c(0, h, LF_CHUNK_CRC_AT), stored, c.stored_len);
	lf_chunk_hdr_encode(h, &c);
	built_put(b, h, sizeof(h));
	built_put(b, stored, c.stored_len);
}

/* A raw (codec none) chunk of len payload bytes. */
static void raw_chunk(struct built *b, const void *raw, uint32_t len, uint32_t events,
		      uint64_t first, uint64_t last)
{
	built_chunk(b,
		    (struct lf_chunk_hdr){.codec = LF_CODEC_NONE,
					  .raw_len = len,
					  .stored_len = len,
					  .events = events,
					  .first_pos = first,
					  .last_pos = last},
		    raw);
}

/* Read b: expect `good` events and then err with a detail containing `why`. */
static void expect(struct built *b, size_t good, int err, const char *why)
{
	for (int stream = 0; stream < 2; stream++) {
		struct lf_io_mem m;
		struct lf_io io;
		struct lf_reader *r;
		struct lf_event ev;
		size_t n = 0;
		int rc;

		if (stream)
			lft_stream_reader(&io, &m, b->data, b->len);
		else
			lf_io_mem_reader(&io, &m, b->data, b->len);
		cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
		while ((rc = lf_reader_next(r, &ev)) == 1)
			n++;
		cr_assert_eq(n, good, "%s: %zu events", why, n);
		cr_assert_eq(rc, err, "%s: got %d (%s)", why, rc, lf_errdetail());
		if (why)
			cr_assert(strstr(lf_errdetail(), why) != NULL, "wanted \"%s\" in \"%s\"",
				  why, lf_errdetail());
		lf_reader_free(r);
	}
	free(b->data);
}

#define RAW(b, bytes, events, first, last)                                                         \
	raw_chunk(b, bytes, sizeof(bytes) - 1, events, first, last)

Test(chunk, a_good_hand_built_chunk_reads)
{
	struct built b;

	built_init(&b);
	RAW(&b,
	    "\x02\x00\x07"
	    "\x01\x03\x05",
	    2, 0, 3); /* timer 7 at 0, clock +(-3) at 3 */
	expect(&b, 2, 0, NULL);
}

Test(chunk, detail_names_chunk_and_offset)
{
	struct built b;
	char want[128];

	built_init(&b);
	RAW(&b, "\x02\x00\x07", 1, 0, 0);
	size_t second = b.len;
	RAW(&b, "\x09\x00\x00", 1, 0, 0);
	snprintf(want, sizeof(want), "chunk 1 at offset %zu: payload offset 0: unknown event kind",
		 second);
	expect(&b, 1, -LF_ECORRUPT, want);
}

Test(chunk, bad_events)
{
	struct built b;

	built_init(&b);
	RAW(&b, "\x02\x00\x80\x00", 1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "overlong varint");
	built_init(&b);
	RAW(&b, "\x02\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "overlong varint");
	built_init(&b);
	RAW(&b,
	    "\x03\x00\x00\x05"
	    "ab",
	    1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "input bytes run past the end of the payload");
	built_init(&b);
	RAW(&b,
	    "\x03\x00\x00\x81\x20"
	    "abcdefgh",
	    1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "input length out of range");
	built_init(&b);
	RAW(&b, "\x04\x00\x09\x00\x00", 1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "unknown hash flags");
}

Test(chunk, event_count_must_match)
{
	struct built b;

	built_init(&b);
	RAW(&b, "\x02\x00\x07\x02\x00\x08", 1, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "bytes left after the last event");
	built_init(&b);
	RAW(&b, "\x05\x00\x01\x07\x05\x00\x01\x07\x05\x00\x01\x07", 4, 0,
	    0); /* 4 claimed, 3 there */
	expect(&b, 0, -LF_ECORRUPT, "fewer events than the chunk header says");
	built_init(&b);
	RAW(&b, "\x02\x00\x07", 0, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "no events");
	built_init(&b);
	RAW(&b, "\x02\x00\x07\x02\x00", 2, 0, 0); /* 5 bytes cannot hold 2 events of 3 */
	expect(&b, 0, -LF_ECORRUPT, "more events than the raw length can hold");
}

Test(chunk, positions_must_agree)
{
	struct built b;

	built_init(&b);
	RAW(&b, "\x02\x05\x07", 1, 0, 5); /* first event at 5, header says 0 */
	expect(&b, 0, -LF_ECORRUPT, "first event's position disagrees");
	built_init(&b);
	RAW(&b, "\x02\x00\x07", 1, 0, 9);
	expect(&b, 0, -LF_ECORRUPT, "last event's position disagrees");
	built_init(&b);
	RAW(&b, "\x02\x00\x07\x02\x09\x07", 2, 0, 5);
	expect(&b, 0, -LF_ECORRUPT, "past the chunk header's last position");
	built_init(&b);
	RAW(&b, "\x02\x00\x07", 1, 9, 8);
	expect(&b, 0, -LF_ECORRUPT, "first position after last position");
	built_init(&b);
	RAW(&b, "\x02\x00\x07", 1, 100, 100);
	RAW(&b, "\x02\x00\x07", 1, 99, 99);
	expect(&b, 1, -LF_ECORRUPT, "is before the previous chunk's last 100");
	/* A delta that carries past 2^64 - 1. */
	built_init(&b);
	uint8_t wrap[16] = {LF_EV_TIMER, 0, 0, LF_EV_TIMER};
	size_t n = 4 + lf_varint_put(wrap + 4, 2);
	wrap[n++] = 0;
	raw_chunk(&b, wrap, (uint32_t)n, 2, UINT64_MAX - 1, UINT64_MAX);
	expect(&b, 0, -LF_ECORRUPT, "position overflows");
}

Test(chunk, header_fields)
{
	struct built b;
	uint8_t h[LF_CHUNK_HDR_BYTES];
	struct lf_chunk_hdr c = {
	    .codec = LF_CODEC_NONE, .raw_len = 3, .stored_len = 3, .events = 1};

	built_init(&b);
	c.codec = 3;
	built_chunk(&b, c, "\x02\x00\x07");
	expect(&b, 0, -LF_ECORRUPT, "unknown codec");
	built_init(&b);
	c.codec = LF_CODEC_NONE;
	c.stored_len = 2;
	built_chunk(&b, c, "\x02\x00\x07");
	expect(&b, 0, -LF_ECORRUPT, "codec and lengths do not fit together");
	built_init(&b);
	c.stored_len = 3;
	built_chunk(&b, c, "\x02\x00\x07");
	b.data[b.header_bytes + 6] = 1; /* a reserved byte; fix the CRC to match */
	memcpy(h, b.data + b.header_bytes, sizeof(h));
	lf_put32(b.data + b.header_bytes + LF_CHUNK_CRC_AT,
		 lf_crc32c(lf_crc32c(0, h, LF_CHUNK_CRC_AT), "\x02\x00\x07", 3));
	expect(&b, 0, -LF_ECORRUPT, "reserved bytes are not zero");
	built_init(&b);
	built_chunk(&b, c, "\x02\x00\x07");
	b.data[b.len - 1] ^= 1;
	expect(&b, 0, -LF_ECORRUPT, "CRC mismatch");
	built_init(&b);
	built_put(&b, "RWCX", 4);
	expect(&b, 0, -LF_ECORRUPT, "bad chunk magic");
}

Test(chunk, sizes_past_the_limits_are_refused_before_allocating)
{
	struct built b;
	uint8_t h[LF_CHUNK_HDR_BYTES];
	struct lf_chunk_hdr c = {.codec = LF_CODEC_NONE,
				 .raw_len = LF_CHUNK_RAW_MAX + 1,
				 .stored_len = LF_CHUNK_RAW_MAX + 1,
				 .events = 1};

	/* Only the chunk header is there: the claim alone must be refused. */
	built_init(&b);
	lf_chunk_hdr_encode(h, &c);
	built_put(&b, h, sizeof(h));
	expect(&b, 0, -LF_ECORRUPT, "raw length past the 16 MiB limit");
	/* 16 MiB claimed with a few bytes present: cut, and no 16 MiB read from a file. */
	built_init(&b);
	c.raw_len = c.stored_len = LF_CHUNK_RAW_MAX;
	lf_chunk_hdr_encode(h, &c);
	built_put(&b, h, sizeof(h));
	built_put(&b, "\x02\x00\x07", 3);
	expect(&b, 0, -LF_ETRUNC, NULL);
	/* zstd claiming a ratio no zstd frame can reach. */
	built_init(&b);
	c = (struct lf_chunk_hdr){
	    .codec = LF_CODEC_ZSTD, .raw_len = LF_CHUNK_RAW_MAX, .stored_len = 8, .events = 1};
	lf_chunk_hdr_encode(h, &c);
	built_put(&b, h, sizeof(h));
	expect(&b, 0, -LF_ECORRUPT, "codec and lengths do not fit together");
}

/* 300 timer events at one position: compressible. */
static uint32_t timers(uint8_t *raw)
{
	for (int i = 0; i < 300; i++)
		memcpy(raw + 3 * i, "\x02\x00\x01", 3);
	return 900;
}

Test(chunk, payload_must_decompress_to_raw_len)
{
	static uint8_t raw[900], z[2000];
	uint32_t n = timers(raw);
	int lz = LZ4_compress_default((const char *)raw, (char *)z, (int)n, sizeof(z));
	struct built b;

	cr_assert_gt(lz, 0);
	/* Right: reads. */
	built_init(&b);
	built_chunk(
	    &b,
	    (struct lf_chunk_hdr){
		.codec = LF_CODEC_LZ4, .raw_len = n, .stored_len = (uint32_t)lz, .events = 300},
	    z);
	expect(&b, 300, 0, NULL);
	/* lz4 claiming more bytes than it holds. */
	built_init(&b);
	built_chunk(
	    &b,
	    (struct lf_chunk_hdr){
		.codec = LF_CODEC_LZ4, .raw_len = n + 3, .stored_len = (uint32_t)lz, .events = 300},
	    z);
	expect(&b, 0, -LF_ECORRUPT, "lz4 data decodes to a length other than the raw length");
	/* lz4 claiming fewer. */
	built_init(&b);
	built_chunk(
	    &b,
	    (struct lf_chunk_hdr){
		.codec = LF_CODEC_LZ4, .raw_len = n - 3, .stored_len = (uint32_t)lz, .events = 299},
	    z);
	expect(&b, 0, -LF_ECORRUPT, "lz4 data does not decode");

	size_t zs = ZSTD_compress(z, sizeof(z), raw, n, 3);
	cr_assert(!ZSTD_isError(zs));
	built_init(&b);
	built_chunk(
	    &b,
	    (struct lf_chunk_hdr){
		.codec = LF_CODEC_ZSTD, .raw_len = n, .stored_len = (uint32_t)zs, .events = 300},
	    z);
	expect(&b, 300, 0, NULL);
	built_init(&b);
	built_chunk(&b,
		    (struct lf_chunk_hdr){.codec = LF_CODEC_ZSTD,
					  .raw_len = n - 3,
					  .stored_len = (uint32_t)zs,
					  .events = 299},
		    z);
	expect(&b, 0, -LF_ECORRUPT, "zstd data decodes to more than the raw length");
	built_init(&b);
	built_chunk(&b,
		    (struct lf_chunk_hdr){.codec = LF_CODEC_ZSTD,
					  .raw_len = n + 3,
					  .stored_len = (uint32_t)zs,
					  .events = 300},
		    z);
	expect(&b, 0, -LF_ECORRUPT, "zstd data");
	built_init(&b);
	memset(z, 0x55, 20);
	built_chunk(&b,
		    (struct lf_chunk_hdr){
			.codec = LF_CODEC_ZSTD, .raw_len = n, .stored_len = 20, .events = 300},
		    z);
	expect(&b, 0, -LF_ECORRUPT, "zstd data does not decode");
}

Test(chunk, a_chunk_gives_all_its_events_or_none)
{
	struct built b;

	/* Four good events, then a bad fifth: none of the chunk's events come out. */
	built_init(&b);
	RAW(&b, "\x02\x00\x01\x02\x00\x02\x02\x00\x03\x02\x00\x04\x09\x00\x00", 5, 0, 0);
	expect(&b, 0, -LF_ECORRUPT, "payload offset 12: unknown event kind");
}
