/*
 * lftest.h: helpers the logfmt tests share: event lists with extreme values, writing a
 * list into memory, reading a log back and comparing it with what was written, a
 * stream (non-seekable) view of a memory buffer, and a writer io that notes where each
 * write ended.
 */
#ifndef REWIND_TESTS_LFTEST_H
#define REWIND_TESTS_LFTEST_H

#include "logfmt/log.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not every test uses every helper. */
#define LFT_UNUSED __attribute__((unused))

/* Input bytes for events: every byte value, then a pattern. */
LFT_UNUSED static uint8_t lft_pool[2 * LF_INPUT_MAX];

LFT_UNUSED static void lft_pool_init(void)
{
	for (size_t i = 0; i < sizeof(lft_pool); i++)
		lft_pool[i] = (uint8_t)(i < 256 ? i : (i * 2654435761u) >> 13);
}

LFT_UNUSED static const struct lf_header lft_header = {
    .created_ns = 1732350000123456789ull,
    .tool = "rewind test",
    .config = "mem=64M\nbackend=emu\n",
    .cmdline = "console=ttyS0",
    .image_path = "guests/hello.elf",
    .image_hash = 0x1122334455667788ull,
    .image_len = 4096,
};

/* Events of every kind, with the extremes of each field. Returns the count. */
LFT_UNUSED static size_t lft_extreme_events(struct lf_event *ev, size_t max)
{
	size_t n = 0;

	lft_pool_init();
#define LFT_ADD(...)                                                                               \
	do {                                                                                       \
		cr_assert_lt(n, max);                                                              \
		ev[n++] = (struct lf_event){__VA_ARGS__};                                          \
	} while (0)
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = 0, .clock = 1732350000123456789ull);
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = 0, .clock = 0); /* backwards */
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = 1, .clock = UINT64_MAX);
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = 1, .clock = 1);
	LFT_ADD(.kind = LF_EV_TIMER, .pos = 2, .timer = 0);
	LFT_ADD(.kind = LF_EV_TIMER, .pos = 1000, .timer = UINT32_MAX);
	LFT_ADD(.kind = LF_EV_INPUT, .pos = 1000,
		.input = {.channel = 0, .len = 1, .data = lft_pool + 'a'});
	LFT_ADD(.kind = LF_EV_INPUT, .pos = 1001,
		.input = {.channel = UINT32_MAX, .len = LF_INPUT_MAX, .data = lft_pool});
	LFT_ADD(.kind = LF_EV_INPUT, .pos = 1002,
		.input = {.channel = 7, .len = 256, .data = lft_pool});
	LFT_ADD(.kind = LF_EV_HASH, .pos = 1 << 20, .hash = {.flags = 0});
	LFT_ADD(.kind = LF_EV_HASH, .pos = 1 << 20,
		.hash = {.flags = LF_HASH_REGS | LF_HASH_MEM | LF_HASH_OUT,
			 .regs = UINT64_MAX,
			 .mem = 0,
			 .out = 0x8000000000000001ull,
			 .out_bytes = UINT64_MAX});
	LFT_ADD(.kind = LF_EV_HASH, .pos = (1ull << 40),
		.hash = {.flags = LF_HASH_REGS, .regs = 42});
	LFT_ADD(.kind = LF_EV_HASH, .pos = (1ull << 40), .hash = {.flags = LF_HASH_MEM, .mem = 43});
	LFT_ADD(.kind = LF_EV_HASH, .pos = (1ull << 40),
		.hash = {.flags = LF_HASH_OUT, .out = 44, .out_bytes = 0});
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = UINT64_MAX - 1, .clock = 0x8000000000000000ull);
	LFT_ADD(.kind = LF_EV_CLOCK, .pos = UINT64_MAX - 1, .clock = 0x7fffffffffffffffull);
	LFT_ADD(.kind = LF_EV_END, .pos = UINT64_MAX, .end = {.reason = 0, .value = 0});
	LFT_ADD(.kind = LF_EV_END, .pos = UINT64_MAX,
		.end = {.reason = UINT32_MAX, .value = UINT64_MAX});
#undef LFT_ADD
	return n;
}

/* A mixed, deterministic list of n events; positions repeat and grow. */
LFT_UNUSED static void lft_mixed_events(struct lf_event *ev, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, pos = 0, clock = 1000;

	lft_pool_init();
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pos += (x >> 8) % 3 == 0 ? 0 : (x >> 16) % 1000;
		memset(&ev[i], 0, sizeof(ev[i]));
		ev[i].pos = pos;
		ev[i].kind = (uint8_t)(1 + (x >> 24) % LF_KIND_MAX);
		switch (ev[i].kind) {
		case LF_EV_CLOCK:
			clock += (x >> 32) % 5000;
			if ((x >> 40) % 7 == 0)
				clock -= 3000; /* clocks may go back */
			ev[i].clock = clock;
			break;
		case LF_EV_TIMER:
			ev[i].timer = (uint32_t)(x >> 33) % 4;
			break;
		case LF_EV_INPUT:
			ev[i].input.channel = (uint32_t)(x >> 35) % 2;
			ev[i].input.len = 1 + (uint32_t)(x >> 20) % 64;
			ev[i].input.data = lft_pool + (x >> 40) % LF_INPUT_MAX;
			break;
		case LF_EV_HASH:
			ev[i].hash.flags = (uint32_t)(x >> 50) % 8;
			ev[i].hash.regs = ev[i].hash.flags & LF_HASH_REGS ? x : 0;
			ev[i].hash.mem = ev[i].hash.flags & LF_HASH_MEM ? ~x : 0;
			ev[i].hash.out = ev[i].hash.flags & LF_HASH_OUT ? x * 3 : 0;
			ev[i].hash.out_bytes = ev[i].hash.flags & LF_HASH_OUT ? i * 10 : 0;
			break;
		case LF_EV_END:
			ev[i].end.reason = 1;
			ev[i].end.value = x;
			break;
		case LF_EV_LANDMARK:
			/* Few distinct values, as in a loop that is interrupted again and again. */
			ev[i].landmark.rip = 0xffffffff81000000ull + (x >> 40) % 64;
			ev[i].landmark.gprs = x >> 57;
			ev[i].landmark.regs = x >> 58;
			ev[i].landmark.mem = ~(x >> 59);
			ev[i].landmark.pages = (uint32_t)(x >> 61);
			break;
		}
	}
}

LFT_UNUSED static bool lft_ev_eq(const struct lf_event *a, const struct lf_event *b)
{
	if (a->kind != b->kind || a->pos != b->pos)
		return false;
	switch (a->kind) {
	case LF_EV_CLOCK:
		return a->clock == b->clock;
	case LF_EV_TIMER:
		return a->timer == b->timer;
	case LF_EV_INPUT:
		return a->input.channel == b->input.channel && a->input.len == b->input.len &&
		       memcmp(a->input.data, b->input.data, a->input.len) == 0;
	case LF_EV_HASH:
		/* Fields outside flags are not stored: they read back as 0. */
		return a->hash.flags == b->hash.flags &&
		       (a->hash.flags & LF_HASH_REGS ? a->hash.regs : 0) == b->hash.regs &&
		       (a->hash.flags & LF_HASH_MEM ? a->hash.mem : 0) == b->hash.mem &&
		       (a->hash.flags & LF_HASH_OUT ? a->hash.out : 0) == b->hash.out &&
		       (a->hash.flags & LF_HASH_OUT ? a->hash.out_bytes : 0) == b->hash.out_bytes;
	case LF_EV_END:
		return a->end.reason == b->end.reason && a->end.value == b->end.value;
	case LF_EV_LANDMARK:
		return a->landmark.rip == b->landmark.rip && a->landmark.gprs == b->landmark.gprs &&
		       a->landmark.regs == b->landmark.regs &&
		       a->landmark.mem == b->landmark.mem && a->landmark.pages == b->landmark.pages;
	}
	return false;
}

/* A memory buffer read as a stream: no seek member. */
LFT_UNUSED static ssize_t lft_stream_read(void *opaque, void *buf, size_t n)
{
	struct lf_io_mem *m = opaque;
	size_t left = m->len - m->off;

	/* Pipes return little at a time: so do we, to exercise short reads. */
	if (n > 7)
		n = n / 2 + 1;
	if (n > left)
		n = left;
	if (n == 0)
		return 0;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

LFT_UNUSED static const struct lf_io_ops lft_stream_ops = {.read = lft_stream_read};

LFT_UNUSED static void lft_stream_reader(struct lf_io *io, struct lf_io_mem *m, const void *data,
					 size_t len)
{
	lf_io_mem_reader(io, m, data, len);
	io->ops = &lft_stream_ops;
}

/* A writer io over memory that notes the log length after each write call. */
struct lft_rec {
	struct lf_io inner;
	struct lf_io_mem mem;
	size_t ends[256];
	size_t n_ends;
};

LFT_UNUSED static int lft_rec_write(void *opaque, const void *buf, size_t n)
{
	struct lft_rec *r = opaque;
	int rc = r->inner.ops->write(r->inner.opaque, buf, n);

	if (rc == 0 && r->n_ends < 256)
		r->ends[r->n_ends++] = r->mem.len;
	return rc;
}

LFT_UNUSED static const struct lf_io_ops lft_rec_ops = {.write = lft_rec_write};

LFT_UNUSED static void lft_rec_init(struct lf_io *io, struct lft_rec *r)
{
	memset(r, 0, sizeof(*r));
	lf_io_mem_writer(&r->inner, &r->mem);
	io->ops = &lft_rec_ops;
	io->opaque = r;
}

/* Write a whole log of events into m (an lf_io_mem writer); asserts success. */
LFT_UNUSED static void lft_write(struct lf_io_mem *m, const struct lf_event *ev, size_t n,
				 const struct lf_writer_config *cfg, const struct lf_header *h)
{
	struct lf_io io;
	struct lf_writer *w;

	lf_io_mem_writer(&io, m);
	cr_assert_eq(lf_writer_open(&io, h ? h : &lft_header, cfg, &w), 0, "%s", lf_errdetail());
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(lf_writer_append(w, &ev[i]), 0, "event %zu: %s", i, lf_errdetail());
	cr_assert_eq(lf_writer_finish(w), 0, "%s", lf_errdetail());
	lf_writer_free(w);
}

struct lft_result {
	int open_rc;   /* lf_reader_open */
	size_t events; /* events read before the end or an error */
	int end_rc;    /* what ended the reading: 0 or an error */
	bool mismatch; /* an event differed from the expected one (never allowed) */
	size_t bad_at; /* which */
	bool finalized;
	char detail[256];
};

/* Read a log from data and compare each event with exp[] (n of them). */
LFT_UNUSED static struct lft_result lft_read(const uint8_t *data, size_t len,
					     const struct lf_event *exp, size_t n, bool stream)
{
	struct lft_result res = {0};
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_reader *r;
	struct lf_event ev;
	struct lf_reader_info info;
	int rc;

	if (stream)
		lft_stream_reader(&io, &m, data, len);
	else
		lf_io_mem_reader(&io, &m, data, len);
	res.open_rc = lf_reader_open(&io, &r);
	if (res.open_rc < 0) {
		snprintf(res.detail, sizeof(res.detail), "%s", lf_errdetail());
		return res;
	}
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		if (res.events >= n || !lft_ev_eq(&exp[res.events], &ev)) {
			if (!res.mismatch)
				res.bad_at = res.events;
			res.mismatch = true;
		}
		res.events++;
	}
	res.end_rc = rc;
	if (rc < 0)
		snprintf(res.detail, sizeof(res.detail), "%s", lf_errdetail());
	/* After the end or an error, the reader stays at the end. */
	cr_assert_eq(lf_reader_next(r, &ev), 0);
	lf_reader_info(r, &info);
	res.finalized = info.finalized;
	lf_reader_free(r);
	return res;
}

#endif
