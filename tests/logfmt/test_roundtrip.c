/* unit */
/*
 * test_roundtrip.c: logfmt's writer and reader together: every kind with extreme values
 * through every codec, seekable and stream reading, many chunks and seeking, chunk
 * closing by count, size and age, the header and embedded image, argument checks, a
 * version mismatch, and file descriptors (a file and a pipe).
 */
#include "lftest.h"

#include "logfmt/lf_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static const uint32_t codecs[] = {LF_CODEC_NONE, LF_CODEC_LZ4, LF_CODEC_ZSTD};

Test(roundtrip, extreme_values_every_codec)
{
	struct lf_event ev[32];
	size_t n = lft_extreme_events(ev, 32);

	for (size_t c = 0; c < 3; c++) {
		for (uint32_t per = 1; per <= 64; per *= 4) {
			struct lf_writer_config cfg = {
			    .codec = codecs[c], .chunk_events = per, .flush_ms = UINT32_MAX};
			struct lf_io_mem m;

			lft_write(&m, ev, n, &cfg, NULL);
			for (int stream = 0; stream < 2; stream++) {
				struct lft_result r = lft_read(m.data, m.len, ev, n, stream);

				cr_assert_eq(r.open_rc, 0, "%s", r.detail);
				cr_assert_eq(r.end_rc, 0, "codec %u per %u: %s", codecs[c], per,
					     r.detail);
				cr_assert_not(r.mismatch, "codec %u per %u: event %zu differs",
					      codecs[c], per, r.bad_at);
				cr_assert_eq(r.events, n);
				cr_assert(r.finalized, "codec %u stream %d", codecs[c], stream);
			}
			free(m.data);
		}
	}
}

Test(roundtrip, stats_and_info)
{
	struct lf_event ev[2000];
	struct lf_writer_config cfg = {
	    .codec = LF_CODEC_ZSTD, .chunk_events = 100, .flush_ms = UINT32_MAX};
	struct lf_writer_stats s;
	struct lf_reader_info info;
	struct lf_verify_report rep;
	struct lf_io_mem m, rm;
	struct lf_io io;
	struct lf_writer *w;
	struct lf_reader *r;
	uint64_t kinds[LF_KIND_MAX + 1] = {0};

	lft_mixed_events(ev, 2000, 1);
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.header_bytes, m.len);
	cr_assert_eq(s.total_bytes, m.len);
	for (size_t i = 0; i < 2000; i++) {
		cr_assert_eq(lf_writer_append(w, &ev[i]), 0);
		kinds[ev[i].kind]++;
	}
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.events, 2000);
	cr_assert_eq(s.chunks, 20);
	cr_assert_eq(memcmp(s.events_by_kind, kinds, sizeof(kinds)), 0);
	cr_assert_eq(s.total_bytes, m.len);
	cr_assert_eq(s.header_bytes + s.chunk_bytes + lf_tail_bytes(20), m.len);
	cr_assert_lt(s.chunk_bytes, s.raw_bytes, "zstd should shrink these events");
	cr_assert_eq(lf_writer_append(w, &ev[0]), -LF_ESTATE);
	cr_assert_eq(lf_writer_finish(w), -LF_ESTATE);
	cr_assert_eq(lf_writer_flush(w), -LF_ESTATE);
	lf_writer_free(w);

	lf_io_mem_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_reader_open(&io, &r), 0);
	lf_reader_info(r, &info);
	cr_assert(info.finalized);
	cr_assert_eq(info.chunks, 20);
	cr_assert_eq(info.events, 2000);
	cr_assert_eq(info.last_pos, ev[1999].pos);
	cr_assert_eq(info.file_bytes, m.len);
	cr_assert_eq(info.header_bytes, s.header_bytes);
	lf_reader_free(r);

	lf_io_mem_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_verify(&io, &rep), 0, "%s", rep.problem);
	cr_assert(rep.header_ok && rep.finalized);
	cr_assert_eq(rep.chunks_ok, 20);
	cr_assert_eq(rep.events, 2000);
	cr_assert_eq(memcmp(rep.events_by_kind, kinds, sizeof(kinds)), 0);
	cr_assert_eq(rep.first_pos, ev[0].pos);
	cr_assert_eq(rep.last_pos, ev[1999].pos);
	cr_assert_eq(rep.header_bytes, s.header_bytes);
	cr_assert_eq(rep.chunk_bytes, s.chunk_bytes);
	cr_assert_eq(rep.raw_bytes, s.raw_bytes);
	cr_assert_eq(rep.index_bytes, lf_tail_bytes(20));
	cr_assert_eq(rep.good_bytes, m.len - lf_tail_bytes(20));
	cr_assert_eq(rep.file_bytes, m.len);
	cr_assert_eq(rep.chunk_codec, LF_CODEC_ZSTD);
	cr_assert_str_eq(rep.problem, "");
	free(m.data);
}

/* Check that after seeking to target the reader yields exactly the events from there on. */
static void check_seek(struct lf_reader *r, const struct lf_event *ev, size_t n, uint64_t target,
		       size_t follow)
{
	size_t i = 0;
	struct lf_event got;

	while (i < n && ev[i].pos < target)
		i++;
	cr_assert_eq(lf_reader_seek(r, target), 0, "seek %llu: %s", (unsigned long long)target,
		     lf_errdetail());
	for (size_t k = 0; k < follow && i < n; k++, i++) {
		cr_assert_eq(lf_reader_next(r, &got), 1, "seek %llu, event %zu: %s",
			     (unsigned long long)target, i, lf_errdetail());
		cr_assert(lft_ev_eq(&ev[i], &got), "seek %llu: event %zu differs",
			  (unsigned long long)target, i);
	}
	if (i == n)
		cr_assert_eq(lf_reader_next(r, &got), 0);
}

Test(roundtrip, many_chunks_and_seek)
{
	enum { N = 3000 };
	static struct lf_event ev[N];
	struct lf_writer_config cfg = {
	    .codec = LF_CODEC_LZ4, .chunk_events = 7, .flush_ms = UINT32_MAX};
	struct lf_io_mem m, rm;
	struct lf_io io;
	struct lf_reader *r;

	lft_mixed_events(ev, N, 2);
	lft_write(&m, ev, N, &cfg, NULL);
	/* Indexed (whole), then rescanning (footer cut off by one byte). */
	for (int cut = 0; cut < 2; cut++) {
		struct lf_reader_info info;

		lf_io_mem_reader(&io, &rm, m.data, m.len - (size_t)cut);
		cr_assert_eq(lf_reader_open(&io, &r), 0);
		lf_reader_info(r, &info);
		cr_assert_eq(info.finalized, !cut);
		check_seek(r, ev, N, 0, 20);
		check_seek(r, ev, N, ev[N - 1].pos, 5);
		check_seek(r, ev, N, ev[N - 1].pos + 1, 5);
		check_seek(r, ev, N, UINT64_MAX, 5);
		check_seek(r, ev, N, ev[N / 2].pos, 30);
		for (size_t i = 0; i < N; i += cut ? 97 : 13) {
			check_seek(r, ev, N, ev[i].pos, 3);
			check_seek(r, ev, N, ev[i].pos + 1, 3);
		}
		/* After a seek, reading runs on to the end. */
		check_seek(r, ev, N, ev[N - 40].pos, 100);
		lf_reader_free(r);
	}
	/* A stream seeks forward only. */
	lft_stream_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_reader_open(&io, &r), 0);
	check_seek(r, ev, N, ev[10].pos, 1);
	check_seek(r, ev, N, ev[100].pos, 1);
	check_seek(r, ev, N, ev[1000].pos, 1);
	cr_assert_eq(lf_reader_seek(r, ev[5].pos), -LF_ESTATE);
	check_seek(r, ev, N, ev[N - 3].pos, 10);
	lf_reader_free(r);
	free(m.data);
}

Test(roundtrip, chunk_closes_by_size)
{
	struct lf_event ev[200];
	struct lf_writer_config cfg = {
	    .codec = LF_CODEC_NONE, .chunk_bytes = 1000, .flush_ms = UINT32_MAX};
	struct lf_writer_stats s;
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;

	lft_pool_init();
	for (size_t i = 0; i < 200; i++)
		ev[i] = (struct lf_event){
		    .kind = LF_EV_INPUT, .pos = i, .input = {.len = 100, .data = lft_pool}};
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), 0);
	for (size_t i = 0; i < 200; i++)
		cr_assert_eq(lf_writer_append(w, &ev[i]), 0);
	lf_writer_stats(w, &s);
	/* 104 bytes an event: a chunk closes at its 10th event. */
	cr_assert_eq(s.chunks, 20);
	cr_assert_eq(s.raw_bytes, 200 * 104);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	struct lft_result r = lft_read(m.data, m.len, ev, 200, false);
	cr_assert_eq(r.events, 200);
	cr_assert_not(r.mismatch);
	free(m.data);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

Test(roundtrip, chunk_closes_by_age)
{
	struct lf_writer_config cfg = {.codec = LF_CODEC_LZ4, .flush_ms = 20};
	struct lf_event ev = {.kind = LF_EV_TIMER, .pos = 1};
	struct lf_writer_stats s;
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;

	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), 0);
	cr_assert_eq(lf_writer_tick(w), 0); /* nothing open: nothing written */
	cr_assert_eq(lf_writer_append(w, &ev), 0);
	cr_assert_eq(lf_writer_tick(w), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.chunks, 0, "a fresh chunk must not close");
	sleep_ms(30);
	cr_assert_eq(lf_writer_tick(w), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.chunks, 1, "tick must close a chunk older than flush_ms");
	/* At append too. */
	cr_assert_eq(lf_writer_append(w, &ev), 0);
	sleep_ms(30);
	cr_assert_eq(lf_writer_append(w, &ev), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.chunks, 2);
	cr_assert_eq(s.events, 3);
	/* flush writes whatever is open, and an empty flush writes nothing. */
	cr_assert_eq(lf_writer_append(w, &ev), 0);
	cr_assert_eq(lf_writer_flush(w), 0);
	cr_assert_eq(lf_writer_flush(w), 0);
	lf_writer_stats(w, &s);
	cr_assert_eq(s.chunks, 3);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	free(m.data);
}

Test(roundtrip, writer_checks_events)
{
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;
	struct lf_event ev = {.kind = LF_EV_TIMER, .pos = 10};
	uint8_t b = 'x';

	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, NULL, &w), 0);
	cr_assert_eq(lf_writer_append(w, &ev), 0);
	ev.pos = 9;
	cr_assert_eq(lf_writer_append(w, &ev), -LF_EINVAL);
	cr_assert(strstr(lf_errdetail(), "before the previous") != NULL, "%s", lf_errdetail());
	ev.pos = 10;
	cr_assert_eq(lf_writer_append(w, &ev), 0, "an equal position is fine");
	ev.kind = 9;
	cr_assert_eq(lf_writer_append(w, &ev), -LF_EINVAL);
	ev = (struct lf_event){.kind = LF_EV_INPUT, .pos = 11, .input = {.len = 0, .data = &b}};
	cr_assert_eq(lf_writer_append(w, &ev), -LF_EINVAL);
	ev.input.len = LF_INPUT_MAX + 1;
	cr_assert_eq(lf_writer_append(w, &ev), -LF_EINVAL);
	ev.input.len = 1;
	cr_assert_eq(lf_writer_append(w, &ev), 0, "the writer works on after a refused event");
	cr_assert_eq(lf_writer_append(w, NULL), -LF_EINVAL);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	lf_io_mem_reader(&io, &m, m.data, m.len);
	struct lf_event want[3] = {
	    {.kind = LF_EV_TIMER, .pos = 10},
	    {.kind = LF_EV_TIMER, .pos = 10},
	    {.kind = LF_EV_INPUT, .pos = 11, .input = {.len = 1, .data = &b}}};
	struct lft_result r = lft_read(m.data, m.len, want, 3, false);
	cr_assert_eq(r.events, 3);
	cr_assert_not(r.mismatch);
	free(m.data);
}

Test(roundtrip, writer_checks_arguments)
{
	struct lf_io_mem m;
	struct lf_io io, ro;
	struct lf_writer *w = (void *)1;
	struct lf_writer_config cfg = {.codec = 3};

	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), -LF_EINVAL);
	cr_assert_null(w);
	cfg = (struct lf_writer_config){.codec = LF_CODEC_ZSTD, .level = 1000};
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), -LF_EINVAL);
	cfg = (struct lf_writer_config){.chunk_bytes = 32u << 20};
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), -LF_EINVAL);
	cr_assert_eq(lf_writer_open(&io, NULL, NULL, &w), -LF_EINVAL);
	cr_assert_eq(lf_writer_open(NULL, &lft_header, NULL, &w), -LF_EINVAL);
	lf_io_mem_reader(&ro, &m, "", 0);
	cr_assert_eq(lf_writer_open(&ro, &lft_header, NULL, &w), -LF_EINVAL);
	/* An embedded image must come with its own hash. */
	struct lf_header h = lft_header;
	h.image = "abc";
	h.image_len = 3;
	h.image_hash = 1;
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &h, NULL, &w), -LF_EINVAL);
	cr_assert_eq(m.len, 0, "nothing may be written for a refused header");
	cr_assert_eq(lf_writer_append(NULL, NULL), -LF_EINVAL);
	lf_writer_free(NULL);
	free(m.data);

	/* In the background the same refusal comes from the first call that writes. */
	struct lf_event ev = {.kind = LF_EV_TIMER, .pos = 1};
	cfg = (struct lf_writer_config){.background_header = true};
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &h, &cfg, &w), 0);
	cr_assert_eq(lf_writer_append(w, &ev), 0, "events are taken meanwhile");
	cr_assert_eq(lf_writer_finish(w), -LF_EINVAL);
	cr_assert_str_eq(lf_errdetail(), "image_hash is not lf_hash64 of the image bytes");
	cr_assert_eq(lf_writer_flush(w), -LF_EIO, "failed for good");
	cr_assert(strstr(lf_errdetail(), "image_hash") != NULL, "%s", lf_errdetail());
	lf_writer_free(w);
	cr_assert_eq(m.len, 0, "nothing may be written for a refused header");
	free(m.data);
}

static void check_header(const struct lf_header *got, const struct lf_header *want)
{
	cr_assert_eq(got->version, want->initrd_len ? LF_VERSION : LF_VERSION_NO_INITRD);
	cr_assert_eq(got->created_ns, want->created_ns);
	cr_assert_str_eq(got->tool, want->tool ? want->tool : "");
	cr_assert_str_eq(got->config, want->config ? want->config : "");
	cr_assert_str_eq(got->cmdline, want->cmdline ? want->cmdline : "");
	cr_assert_str_eq(got->image_path, want->image_path ? want->image_path : "");
	cr_assert_eq(got->image_hash, want->image_hash);
	cr_assert_eq(got->image_len, want->image_len);
}

/*
 * background_header writes the same bytes, from the caller's strings as they were at
 * lf_writer_open (they may change or go right after); lf_writer_free without finish
 * waits for the helper thread.
 */
Test(header, background_header_same_bytes)
{
	enum { LEN = 300000 };
	uint8_t *img = malloc(LEN);
	struct lf_header h = lft_header;
	struct lf_event ev[40];

	for (size_t i = 0; i < LEN; i++)
		img[i] = (uint8_t)(i % 251 < 200 ? i / 1000 : i * 7);
	h.image = img;
	h.image_len = LEN;
	h.image_hash = lf_hash64(img, LEN);
	lft_mixed_events(ev, 40, 7);
	for (size_t c = 0; c < 3; c++) {
		struct lf_io_mem m[2];
		struct lf_writer_stats s[2];

		for (int bg = 0; bg < 2; bg++) {
			struct lf_writer_config cfg = {
			    .codec = codecs[c], .chunk_events = 7, .background_header = bg};
			char config[64];
			struct lf_header hh = h;
			struct lf_io io;
			struct lf_writer *w;

			snprintf(config, sizeof(config), "%s", h.config);
			hh.config = config;
			lf_io_mem_writer(&io, &m[bg]);
			cr_assert_eq(lf_writer_open(&io, &hh, &cfg, &w), 0, "%s", lf_errdetail());
			memset(config, 'x', sizeof(config) - 1); /* the writer kept a copy */
			for (size_t i = 0; i < 40; i++)
				cr_assert_eq(lf_writer_append(w, &ev[i]), 0, "%s", lf_errdetail());
			cr_assert_eq(lf_writer_finish(w), 0, "%s", lf_errdetail());
			lf_writer_stats(w, &s[bg]);
			lf_writer_free(w);
		}
		cr_assert_eq(m[1].len, m[0].len, "codec %u", codecs[c]);
		cr_assert_eq(memcmp(m[1].data, m[0].data, m[0].len), 0, "codec %u", codecs[c]);
		cr_assert_eq(s[1].header_bytes, s[0].header_bytes);
		cr_assert_eq(s[1].total_bytes, s[0].total_bytes);
		free(m[0].data);
		free(m[1].data);
	}

	/* Given up on before anything was written: the thread is waited for. */
	struct lf_writer_config cfg = {.background_header = true};
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &h, &cfg, &w), 0);
	lf_writer_free(w);
	free(m.data);
	free(img);
}

Test(header, image_embedded_every_codec)
{
	enum { LEN = 200000 };
	uint8_t *img = malloc(LEN);
	struct lf_header h = lft_header;

	for (size_t i = 0; i < LEN; i++)
		img[i] = (uint8_t)(i % 251 < 200 ? i / 1000 : i * 7);
	h.image = img;
	h.image_len = LEN;
	h.image_hash = lf_hash64(img, LEN);
	for (size_t c = 0; c < 3; c++) {
		struct lf_writer_config cfg = {.codec = codecs[c]};
		struct lf_writer_stats s;
		struct lf_io_mem m, rm;
		struct lf_io io;
		struct lf_writer *w;
		struct lf_reader *r;
		const struct lf_header *g;

		lf_io_mem_writer(&io, &m);
		cr_assert_eq(lf_writer_open(&io, &h, &cfg, &w), 0, "%s", lf_errdetail());
		cr_assert_eq(lf_writer_finish(w), 0);
		lf_writer_stats(w, &s);
		lf_writer_free(w);
		cr_assert_gt(s.header_bytes, LEN / 100);
		if (codecs[c] != LF_CODEC_NONE)
			cr_assert_lt(s.header_bytes, LEN, "the image should compress");
		lf_io_mem_reader(&io, &rm, m.data, m.len);
		cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
		g = lf_reader_header(r);
		check_header(g, &h);
		cr_assert_not_null(g->image);
		cr_assert_eq(memcmp(g->image, img, LEN), 0);
		cr_assert_eq(g->image_codec, codecs[c]);
		cr_assert_eq(g->image_stored + 57 + strlen(h.tool) + strlen(h.config) +
				 strlen(h.cmdline) + strlen(h.image_path),
			     s.header_bytes);
		lf_reader_free(r);
		free(m.data);
	}
	free(img);
}

Test(header, image_not_embedded_and_empty_strings)
{
	struct lf_header h = {.created_ns = 0, .image_hash = 0xdeadbeef, .image_len = 12345};
	struct lf_io_mem m, rm;
	struct lf_io io;
	struct lf_reader *r;
	const struct lf_header *g;

	lft_write(&m, NULL, 0, NULL, &h);
	lf_io_mem_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
	g = lf_reader_header(r);
	check_header(g, &h);
	cr_assert_null(g->image);
	cr_assert_eq(g->image_stored, 0);
	cr_assert_eq(g->image_codec, LF_CODEC_NONE);
	struct lf_event ev;
	cr_assert_eq(lf_reader_next(r, &ev), 0, "an empty log has no events");
	struct lf_reader_info info;
	lf_reader_info(r, &info);
	cr_assert(info.finalized);
	cr_assert_eq(info.events, 0);
	lf_reader_free(r);
	free(m.data);
}

Test(header, version_mismatch)
{
	struct lf_io_mem m, rm;
	struct lf_io io;
	struct lf_reader *r;
	struct lf_verify_report rep;

	lft_write(&m, NULL, 0, NULL, NULL);
	lf_put32(m.data + 8, LF_VERSION + 1);
	lf_io_mem_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_reader_open(&io, &r), -LF_EVERSION);
	cr_assert_null(r);
	cr_assert_str_eq(lf_errdetail(),
			 "the log has format version 5; this build reads versions 2 to 4");
	lf_io_mem_reader(&io, &rm, m.data, m.len);
	cr_assert_eq(lf_verify(&io, &rep), -LF_EVERSION);
	cr_assert_not(rep.header_ok);
	cr_assert(strstr(rep.problem, "version 5") != NULL);
	free(m.data);
}

Test(header, not_a_log)
{
	struct lf_io_mem rm;
	struct lf_io io;
	struct lf_reader *r;
	static const char text[] = "hello, this is not a log at all";

	lf_io_mem_reader(&io, &rm, text, sizeof(text));
	cr_assert_eq(lf_reader_open(&io, &r), -LF_EFORMAT);
	lf_io_mem_reader(&io, &rm, "", 0);
	cr_assert_eq(lf_reader_open(&io, &r), -LF_ETRUNC);
	cr_assert_str_eq(lf_errdetail(), "the log is empty");
	lf_io_mem_reader(&io, &rm, "\x89RWL", 4);
	cr_assert_eq(lf_reader_open(&io, &r), -LF_ETRUNC);
	/* A text-mode copy turned CR LF into LF. */
	lf_io_mem_reader(&io, &rm, "\x89RWL\n\x1a\n\x01\x00\x00\x00\x00\x00\x00\x00\x00", 16);
	cr_assert_eq(lf_reader_open(&io, &r), -LF_EFORMAT);
	cr_assert(strstr(lf_errdetail(), "text-mode") != NULL, "%s", lf_errdetail());
	lf_io_mem_reader(&io, &rm, "\x09RWL\r\n\x1a\n\x01\x00\x00\x00\x00\x00\x00\x00", 16);
	cr_assert_eq(lf_reader_open(&io, &r), -LF_EFORMAT);
	cr_assert(strstr(lf_errdetail(), "high bit") != NULL, "%s", lf_errdetail());
	cr_assert_eq(lf_reader_open(NULL, &r), -LF_EINVAL);
	cr_assert_eq(lf_reader_next(NULL, NULL), -LF_EINVAL);
	lf_reader_free(NULL);
}

Test(io, file_descriptor_and_pipe)
{
	struct lf_event ev[500];
	struct lf_writer_config cfg = {.codec = LF_CODEC_ZSTD, .chunk_events = 50};
	char path[] = "/tmp/rewind-lf-XXXXXX";
	int fd = mkstemp(path);
	struct lf_io_fd f;
	struct lf_io io;
	struct lf_writer *w;
	struct lf_reader *r;
	struct lf_reader_info info;
	struct lf_event got;
	size_t i = 0;
	int rc;

	cr_assert_geq(fd, 0);
	unlink(path);
	lft_mixed_events(ev, 500, 3);
	lf_io_fd_init(&io, &f, fd);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), 0);
	for (size_t k = 0; k < 500; k++)
		cr_assert_eq(lf_writer_append(w, &ev[k]), 0);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(lf_reader_open(&io, &r), 0);
	lf_reader_info(r, &info);
	cr_assert(info.finalized);
	while ((rc = lf_reader_next(r, &got)) == 1)
		cr_assert(lft_ev_eq(&ev[i++], &got));
	cr_assert_eq(rc, 0);
	cr_assert_eq(i, 500);
	lf_reader_free(r);

	/* The same bytes through a pipe: a stream, read in order, its index checked at the end. */
	off_t size = lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc((size_t)size);
	int p[2];

	cr_assert_lt(size, 60000, "must fit in a pipe buffer");
	cr_assert_eq(pread(fd, buf, (size_t)size, 0), size);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], buf, (size_t)size), size);
	close(p[1]);
	lf_io_fd_init(&io, &f, p[0]);
	cr_assert_eq(lf_reader_open(&io, &r), 0);
	i = 0;
	while ((rc = lf_reader_next(r, &got)) == 1)
		cr_assert(lft_ev_eq(&ev[i++], &got));
	cr_assert_eq(rc, 0, "%s", lf_errdetail());
	cr_assert_eq(i, 500);
	lf_reader_info(r, &info);
	cr_assert(info.finalized);
	cr_assert_eq(info.file_bytes, (uint64_t)size);
	cr_assert_eq(info.events, 500);
	lf_reader_free(r);
	close(p[0]);
	close(fd);
	free(buf);
}
