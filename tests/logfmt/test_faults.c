/* unit */
/*
 * test_faults.c: logfmt under damage, as SQLite tests itself: a write that fails at every
 * byte offset of a small log, the log cut at every length, every byte of it flipped two
 * ways, and random multi-byte damage. The reader must give exactly the events of the
 * chunks that are whole, then a clean error or a clean end; never a wrong event, never a
 * crash, and never a damaged header or chunk accepted as good.
 */
#include "lftest.h"

#include <errno.h>

enum { N_EV = 10, PER_CHUNK = 3, N_CHUNKS = 4 };

static const uint32_t codecs[] = {LF_CODEC_NONE, LF_CODEC_LZ4, LF_CODEC_ZSTD};

struct small_log {
	struct lf_event ev[N_EV];
	struct lft_rec rec;
	/* ends[0]: header; ends[1..4]: chunks; ends[5]: index and footer */
	size_t ends[N_CHUNKS + 2];
	uint8_t *data;
	size_t len;
};

static const struct lf_writer_config *small_cfg(uint32_t codec)
{
	static struct lf_writer_config cfg;

	cfg = (struct lf_writer_config){
	    .codec = codec, .chunk_events = PER_CHUNK, .flush_ms = UINT32_MAX};
	return &cfg;
}

/* The same, with the header written by the writer's helper thread. */
static const struct lf_writer_config *small_cfg_bg(uint32_t codec, bool background)
{
	static struct lf_writer_config cfg;

	cfg = *small_cfg(codec);
	cfg.background_header = background;
	return &cfg;
}

/* Events that compress a little, so lz4 and zstd really store compressed chunks. */
static void small_events(struct lf_event *ev)
{
	static const uint8_t text[] = "hello hello hello hello hello hello\n";

	for (size_t i = 0; i < N_EV; i++) {
		if (i % 3 == 1)
			ev[i] = (struct lf_event){.kind = LF_EV_INPUT,
						  .pos = 10 * i,
						  .input = {.len = sizeof(text) - 1, .data = text}};
		else if (i % 3 == 2)
			ev[i] = (struct lf_event){
			    .kind = LF_EV_HASH,
			    .pos = 10 * i,
			    .hash = {.flags = 7, .regs = i, .mem = 0, .out = 5, .out_bytes = i}};
		else
			ev[i] = (struct lf_event){
			    .kind = LF_EV_CLOCK, .pos = 10 * i, .clock = 1000 - i};
	}
}

static void small_log_make(struct small_log *s, uint32_t codec)
{
	struct lf_io io;
	struct lf_writer *w;

	small_events(s->ev);
	lft_rec_init(&io, &s->rec);
	cr_assert_eq(lf_writer_open(&io, &lft_header, small_cfg(codec), &w), 0);
	for (size_t i = 0; i < N_EV; i++)
		cr_assert_eq(lf_writer_append(w, &s->ev[i]), 0);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	cr_assert_eq(s->rec.n_ends, N_CHUNKS + 2, "one write for the header, each chunk, the tail");
	memcpy(s->ends, s->rec.ends, sizeof(s->ends));
	s->data = s->rec.mem.data;
	s->len = s->rec.mem.len;
}

/* Events in the chunks wholly inside the first len bytes. */
static size_t events_within(const struct small_log *s, size_t len)
{
	size_t chunks = 0;

	for (size_t i = 1; i <= N_CHUNKS; i++)
		if (s->ends[i] <= len)
			chunks = i;
	return chunks * PER_CHUNK < N_EV ? chunks * PER_CHUNK : N_EV;
}

/* What a reader must say about the first len bytes of a good log (len < whole). */
static void check_prefix(const struct small_log *s, const uint8_t *data, size_t len,
			 const char *what)
{
	for (int stream = 0; stream < 2; stream++) {
		struct lft_result r = lft_read(data, len, s->ev, N_EV, stream);
		bool at_boundary = false;

		if (len < s->ends[0]) {
			cr_assert_eq(r.open_rc, -LF_ETRUNC, "%s %zu: %d %s", what, len, r.open_rc,
				     r.detail);
			continue;
		}
		cr_assert_eq(r.open_rc, 0, "%s %zu: %s", what, len, r.detail);
		cr_assert_not(r.mismatch, "%s %zu: event %zu differs", what, len, r.bad_at);
		cr_assert_eq(r.events, events_within(s, len), "%s %zu (stream %d): %zu events",
			     what, len, stream, r.events);
		for (size_t i = 0; i <= N_CHUNKS; i++)
			at_boundary |= len == s->ends[i];
		/* Past the last chunk, the index magic alone tells a clean end. */
		if (at_boundary || len >= s->ends[N_CHUNKS] + 4)
			cr_assert_eq(r.end_rc, 0, "%s %zu (stream %d): %s", what, len, stream,
				     r.detail);
		else
			cr_assert_eq(r.end_rc, -LF_ETRUNC, "%s %zu (stream %d): %d %s", what, len,
				     stream, r.end_rc, r.detail);
		cr_assert_not(r.finalized, "%s %zu", what, len);
	}
}

/*
 * With background_header, a header that cannot be written fails the first call that
 * writes after it (an append that closes a chunk, or finish) instead of lf_writer_open:
 * the same failure, the same bytes kept.
 */
Test(faults, write_fails_at_every_offset)
{
	for (size_t c = 0; c < 6; c++) {
		struct small_log s;
		bool bg = c >= 3;

		small_log_make(&s, codecs[c % 3]);
		for (size_t fail_at = 1; fail_at < s.len; fail_at++) {
			struct lf_io_mem m;
			struct lf_io io;
			struct lf_writer *w = NULL;
			int rc;
			size_t i = 0;

			lf_io_mem_writer(&io, &m);
			m.fail_at = fail_at;
			rc = lf_writer_open(&io, &lft_header, small_cfg_bg(codecs[c % 3], bg), &w);
			if (bg)
				cr_assert_eq(rc, 0, "the header fails later in the background");
			if (rc == 0) {
				for (; i < N_EV && rc == 0; i++)
					rc = lf_writer_append(w, &s.ev[i]);
				if (rc == 0)
					rc = lf_writer_finish(w);
			} else {
				cr_assert_null(w);
			}
			cr_assert_eq(rc, -LF_EIO, "codec %u bg %d fail_at %zu: %d", codecs[c % 3],
				     bg, fail_at, rc);
			cr_assert(strstr(lf_errdetail(), strerror(ENOSPC)) != NULL, "%s",
				  lf_errdetail());
			if (w) {
				/* Failed for good: every later call says so again. */
				struct lf_event ev = {.kind = LF_EV_TIMER, .pos = UINT64_MAX};

				cr_assert_eq(lf_writer_append(w, &ev), -LF_EIO);
				cr_assert_eq(lf_writer_tick(w), -LF_EIO);
				cr_assert_eq(lf_writer_flush(w), -LF_EIO);
				cr_assert_eq(lf_writer_finish(w), -LF_EIO);
				cr_assert(strstr(lf_errdetail(), strerror(ENOSPC)) != NULL);
				lf_writer_free(w);
			}
			/* A full disk keeps what fit: a prefix of the good log. */
			cr_assert_eq(m.len, fail_at);
			cr_assert_eq(memcmp(m.data, s.data, m.len), 0);
			check_prefix(&s, m.data, m.len, "fail_at");
			free(m.data);
		}
		free(s.data);
	}
}

Test(faults, truncated_at_every_length)
{
	for (size_t c = 0; c < 3; c++) {
		struct small_log s;

		small_log_make(&s, codecs[c]);
		for (size_t len = 0; len < s.len; len++)
			check_prefix(&s, s.data, len, "cut at");
		for (int stream = 0; stream < 2; stream++) {
			struct lft_result r = lft_read(s.data, s.len, s.ev, N_EV, stream);

			cr_assert_eq(r.events, N_EV);
			cr_assert_eq(r.end_rc, 0);
			cr_assert(r.finalized);
		}
		free(s.data);
	}
}

Test(faults, every_byte_flipped)
{
	static const uint8_t flips[] = {0x01, 0x80, 0xff};

	for (size_t c = 0; c < 3; c++) {
		struct small_log s;
		uint8_t *bad;

		small_log_make(&s, codecs[c]);
		bad = malloc(s.len);
		for (size_t at = 0; at < s.len; at++) {
			for (size_t f = 0; f < sizeof(flips); f++) {
				size_t chunk = 0;

				memcpy(bad, s.data, s.len);
				bad[at] ^= flips[f];
				while (chunk <= N_CHUNKS && at >= s.ends[chunk])
					chunk++;
				for (int stream = 0; stream < 2; stream++) {
					struct lft_result r =
					    lft_read(bad, s.len, s.ev, N_EV, stream);

					cr_assert_not(r.mismatch,
						      "codec %u byte %zu ^%02x: event %zu",
						      codecs[c], at, flips[f], r.bad_at);
					if (chunk == 0) {
						/* The header: refused outright. */
						cr_assert_lt(r.open_rc, 0,
							     "byte %zu ^%02x accepted", at,
							     flips[f]);
						continue;
					}
					cr_assert_eq(r.open_rc, 0);
					if (chunk <= N_CHUNKS) {
						/* A chunk: the ones before it, then an error. */
						cr_assert_eq(
						    r.events, (chunk - 1) * PER_CHUNK,
						    "codec %u byte %zu ^%02x stream %d: %zu",
						    codecs[c], at, flips[f], stream, r.events);
						cr_assert_lt(r.end_rc, 0, "codec %u byte %zu ^%02x",
							     codecs[c], at, flips[f]);
					} else {
						/* The index or footer: all events, not finalized.
						 */
						cr_assert_eq(r.events, N_EV);
						cr_assert_not(r.finalized, "byte %zu ^%02x", at,
							      flips[f]);
					}
				}
			}
		}
		free(bad);
		free(s.data);
	}
}

Test(faults, random_damage_never_gives_wrong_events)
{
	enum { N = 300 };
	static struct lf_event ev[N];
	struct lf_writer_config cfg = {
	    .codec = LF_CODEC_ZSTD, .chunk_events = 20, .flush_ms = UINT32_MAX};
	struct lf_io_mem m;
	uint64_t x = 88172645463325252ull;
	uint8_t *bad;

	lft_mixed_events(ev, N, 4);
	lft_write(&m, ev, N, &cfg, NULL);
	bad = malloc(m.len);
	for (int trial = 0; trial < 2000; trial++) {
		size_t len = m.len;

		memcpy(bad, m.data, m.len);
		for (int k = 0; k < 1 + trial % 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			bad[x % m.len] ^= (uint8_t)(1 + (x >> 32) % 255);
		}
		if (trial % 3 == 0)
			len = (size_t)(x >> 20) % m.len;
		struct lft_result r = lft_read(bad, len, ev, N, trial & 1);
		cr_assert_not(r.mismatch, "trial %d: event %zu differs", trial, r.bad_at);
	}
	free(bad);
	free(m.data);
}
