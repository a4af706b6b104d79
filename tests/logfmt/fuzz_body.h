/*
 * fuzz_body.h: one input through everything that reads a log: the reader over a
 * seekable memory io and over a stream, formatting every event, seeking, lf_verify, and
 * writing what was read into a new log and reading that back. Shared by the libFuzzer
 * target (fuzz_reader.c) and by test_corpus.c, which replays the checked-in corpus with
 * the normal build, so `make test` runs the same code the fuzzer ran.
 *
 * Besides "no crash, no leak, no bad read", it checks that the answers agree: verify and
 * the reader see the same good events, a stream sees the same events as a seekable
 * reader, a seek lands on exactly the event a scan finds, and what was read re-encodes
 * to the same events. A broken invariant aborts.
 */
#ifndef REWIND_TESTS_FUZZ_BODY_H
#define REWIND_TESTS_FUZZ_BODY_H

#include "logfmt/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LF_FUZZ_CHECK(cond)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s (detail: %s)\n", __FILE__,    \
				__LINE__, #cond, lf_errdetail());                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A digest of everything in an event, to compare events read at different times. */
static uint64_t lf_fuzz_digest(const struct lf_event *ev)
{
	uint64_t v[8] = {ev->kind, ev->pos};

	switch (ev->kind) {
	case LF_EV_CLOCK:
		v[2] = ev->clock;
		break;
	case LF_EV_TIMER:
		v[2] = ev->timer;
		break;
	case LF_EV_INPUT:
		v[2] = ev->input.channel;
		v[3] = ev->input.len;
		v[4] = lf_hash64(ev->input.data, ev->input.len);
		break;
	case LF_EV_HASH:
		v[2] = ev->hash.flags;
		v[3] = ev->hash.regs;
		v[4] = ev->hash.mem;
		v[5] = ev->hash.out;
		v[6] = ev->hash.out_bytes;
		break;
	case LF_EV_END:
		v[2] = ev->end.reason;
		v[3] = ev->end.value;
		break;
	case LF_EV_LANDMARK:
		v[2] = ev->landmark.rip;
		v[3] = ev->landmark.regs;
		v[4] = ev->landmark.mem;
		v[5] = ev->landmark.pages;
		v[6] = ev->landmark.gprs;
		break;
	}
	return lf_hash64(v, sizeof(v));
}

static ssize_t lf_fuzz_stream_read(void *opaque, void *buf, size_t n)
{
	struct lf_io_mem *m = opaque;

	if (n > m->len - m->off)
		n = m->len - m->off;
	if (n > 1000) /* short reads, as from a pipe */
		n = 1000;
	if (n == 0)
		return 0;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static const struct lf_io_ops *lf_fuzz_stream_ops(void)
{
	static const struct lf_io_ops ops = {.read = lf_fuzz_stream_read};

	return &ops;
}

struct lf_fuzz_read {
	int open_rc, end_rc;
	size_t n;
	uint64_t *digest; /* n of them */
	uint64_t *pos;
	bool finalized;
};

/* Read every event; with w set, also append each to w. */
static void lf_fuzz_read_all(const struct lf_io *io, struct lf_fuzz_read *res, struct lf_writer *w)
{
	struct lf_reader *r;
	struct lf_event ev;
	struct lf_reader_info info;
	size_t cap = 0;
	uint64_t last = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	res->open_rc = lf_reader_open(io, &r);
	if (res->open_rc < 0) {
		LF_FUZZ_CHECK(r == NULL);
		return;
	}
	const struct lf_header *h = lf_reader_header(r);
	LF_FUZZ_CHECK(h->tool && h->config && h->cmdline && h->image_path);
	LF_FUZZ_CHECK((h->image != NULL) == (h->image_stored > 0));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	if (h->image)
		LF_FUZZ_CHECK(lf_hash64(h->image, h->image_len) == h->image_hash);
#endif
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		char line[512];

		LF_FUZZ_CHECK(ev.kind >= 1 && ev.kind <= LF_KIND_MAX);
		LF_FUZZ_CHECK(ev.pos >= last);
		if (ev.kind == LF_EV_INPUT)
			LF_FUZZ_CHECK(ev.input.len >= 1 && ev.input.len <= LF_INPUT_MAX);
		last = ev.pos;
		lf_event_format(&ev, line, sizeof(line));
		LF_FUZZ_CHECK(strlen(line) < sizeof(line));
		if (res->n == cap) {
			cap = cap ? 2 * cap : 64;
			res->digest = realloc(res->digest, cap * sizeof(uint64_t));
			res->pos = realloc(res->pos, cap * sizeof(uint64_t));
			LF_FUZZ_CHECK(res->digest && res->pos);
		}
		res->digest[res->n] = lf_fuzz_digest(&ev);
		res->pos[res->n] = ev.pos;
		res->n++;
		if (w)
			LF_FUZZ_CHECK(lf_writer_append(w, &ev) == 0);
	}
	res->end_rc = rc;
	LF_FUZZ_CHECK(rc <= 0);
	LF_FUZZ_CHECK(lf_reader_next(r, &ev) == 0); /* after the end, the end */
	lf_reader_info(r, &info);
	res->finalized = info.finalized;
	if (info.finalized && rc == 0)
		LF_FUZZ_CHECK(info.events == res->n && (res->n == 0 || info.last_pos == last));
	lf_reader_free(r);
}

/* Seeking to pos must land on the first event a scan found at or after pos. */
static void lf_fuzz_seek(struct lf_reader *r, const struct lf_fuzz_read *seq, uint64_t pos)
{
	struct lf_event ev;
	size_t i = 0;
	int rc = lf_reader_seek(r, pos);

	while (i < seq->n && seq->pos[i] < pos)
		i++;
	if (i < seq->n) {
		LF_FUZZ_CHECK(rc == 0);
		LF_FUZZ_CHECK(lf_reader_next(r, &ev) == 1);
		LF_FUZZ_CHECK(lf_fuzz_digest(&ev) == seq->digest[i]);
		if (i + 1 < seq->n) {
			LF_FUZZ_CHECK(lf_reader_next(r, &ev) == 1);
			LF_FUZZ_CHECK(lf_fuzz_digest(&ev) == seq->digest[i + 1]);
		}
	} else if (seq->end_rc == 0) {
		LF_FUZZ_CHECK(rc == 0);
		LF_FUZZ_CHECK(lf_reader_next(r, &ev) == 0);
	}
}

static int lf_fuzz_one(const uint8_t *data, size_t size)
{
	struct lf_fuzz_read seq, str, again;
	struct lf_verify_report rep;
	struct lf_io_mem m, wm;
	struct lf_io io, wio;
	struct lf_writer *w = NULL;
	struct lf_reader *r;
	const struct lf_writer_config cfg = {
	    .codec = LF_CODEC_LZ4, .chunk_events = 5, .flush_ms = UINT32_MAX};
	const struct lf_header wh = {.tool = "fuzz"};
	int vrc;

	lf_io_mem_writer(&wio, &wm);
	LF_FUZZ_CHECK(lf_writer_open(&wio, &wh, &cfg, &w) == 0);
	lf_io_mem_reader(&io, &m, data, size);
	lf_fuzz_read_all(&io, &seq, w);

	/* verify: the same header verdict, the same good events. */
	lf_io_mem_reader(&io, &m, data, size);
	vrc = lf_verify(&io, &rep);
	LF_FUZZ_CHECK(memchr(rep.problem, '\0', sizeof(rep.problem)) != NULL);
	if (seq.open_rc < 0) {
		LF_FUZZ_CHECK(vrc == seq.open_rc && !rep.header_ok);
	} else {
		LF_FUZZ_CHECK(rep.header_ok && rep.events == seq.n);
		LF_FUZZ_CHECK((vrc == 0) == (seq.end_rc == 0 && seq.finalized));
		LF_FUZZ_CHECK(vrc == 0 || vrc == -LF_ETRUNC || vrc == -LF_EIO || vrc == -LF_ENOMEM);
		LF_FUZZ_CHECK(rep.good_bytes <= size);
	}

	/* A stream reads the same chunks, so it yields the same events as far as both go. */
	lf_io_mem_reader(&io, &m, data, size);
	io.ops = lf_fuzz_stream_ops();
	lf_fuzz_read_all(&io, &str, NULL);
	LF_FUZZ_CHECK(str.open_rc == seq.open_rc);
	for (size_t i = 0; i < seq.n && i < str.n; i++)
		LF_FUZZ_CHECK(str.digest[i] == seq.digest[i]);

	if (seq.open_rc == 0) {
		lf_io_mem_reader(&io, &m, data, size);
		LF_FUZZ_CHECK(lf_reader_open(&io, &r) == 0);
		lf_fuzz_seek(r, &seq, 0);
		lf_fuzz_seek(r, &seq, UINT64_MAX);
		if (seq.n > 0) {
			lf_fuzz_seek(r, &seq, seq.pos[seq.n / 2]);
			lf_fuzz_seek(r, &seq, seq.pos[seq.n - 1]);
			lf_fuzz_seek(r, &seq, seq.pos[seq.n - 1] + 1);
			lf_fuzz_seek(r, &seq, seq.pos[0] + 1);
		}
		if (size >= 8) {
			uint64_t p;

			memcpy(&p, data + size - 8, 8);
			lf_fuzz_seek(r, &seq, p);
		}
		lf_reader_free(r);
	}

	/* Re-encoding what was read gives back the same events, in a whole log. */
	LF_FUZZ_CHECK(lf_writer_finish(w) == 0);
	lf_writer_free(w);
	lf_io_mem_reader(&io, &m, wm.data, wm.len);
	lf_fuzz_read_all(&io, &again, NULL);
	LF_FUZZ_CHECK(again.open_rc == 0 && again.end_rc == 0 && again.finalized);
	LF_FUZZ_CHECK(again.n == seq.n);
	for (size_t i = 0; i < seq.n; i++)
		LF_FUZZ_CHECK(again.digest[i] == seq.digest[i]);

	free(wm.data);
	free(seq.digest);
	free(seq.pos);
	free(str.digest);
	free(str.pos);
	free(again.digest);
	free(again.pos);
	return 0;
}

#endif
