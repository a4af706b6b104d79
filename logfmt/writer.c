/*
 * writer.c: appending events to a log. Events are encoded into one open chunk in memory;
 * a chunk is closed when it holds chunk_events events or chunk_bytes raw bytes, or when
 * its first event is flush_ms old, then compressed, checksummed and written with one
 * write call. At the end come the index and the footer, again in one write.
 *
 * Memory stays bounded (the open chunk plus 32 bytes of index per chunk) and the writer
 * never seeks, so a pipe or socket works. A failed write is final: what was written
 * before it stays a readable log, and every later call reports the same failure.
 *
 * The header may be written by a helper thread (background_header): it touches only
 * the hdr_* fields and the byte I/O until it is joined, which happens before anything
 * else is written.
 */
#include "lf_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zstd.h>

struct lf_writer {
	struct lf_io io;
	uint32_t codec;
	int level;
	uint32_t chunk_events, chunk_bytes;
	uint64_t flush_ns;
	ZSTD_CCtx *cctx;

	uint8_t *raw; /* the open chunk's events */
	size_t raw_len, raw_cap;
	uint8_t *out; /* the chunk as written: header then stored payload */
	size_t out_cap;
	struct lf_chunk_hdr ch;
	struct lf_ev_state st;
	uint64_t base_clock; /* the clock value the next chunk's deltas start from */
	uint64_t opened_ns;  /* when the open chunk got its first event */
	uint64_t last_pos;

	uint64_t off; /* bytes written */
	struct lf_index_entry *index;
	size_t n_index, index_cap;
	struct lf_writer_stats stats;

	bool failed, finished;
	char why[256]; /* the failure, repeated by every later call */

	/* The header on the helper thread: what to write, then its outcome. */
	bool hdr_pending;  /* the thread runs or has not been joined */
	pthread_t hdr_thread;
	struct lf_header hdr;
	char *hdr_text;    /* hdr's strings, copied */
	int hdr_err;       /* 0, or the lf_err (positive) that stopped it */
	size_t hdr_len;    /* bytes written */
	char hdr_why[256];
};

static uint64_t lf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Write n bytes or enter the failed state; errno names the cause. */
static int lf_writer_put(struct lf_writer *w, const void *p, size_t n, const char *what)
{
	if (w->io.ops->write(w->io.opaque, p, n) < 0) {
		snprintf(w->why, sizeof(w->why), "writing %s at offset %" PRIu64 ": %s", what,
			 w->off, strerror(errno));
		w->failed = true;
		return lf_fail(LF_EIO, "%s", w->why);
	}
	w->off += n;
	return 0;
}

static int lf_writer_usable(struct lf_writer *w)
{
	if (w == NULL)
		return lf_fail(LF_EINVAL, "no writer");
	if (w->failed)
		return lf_fail(LF_EIO, "an earlier write failed: %s", w->why);
	if (w->finished)
		return lf_fail(LF_ESTATE, "the log is already finished");
	return 0;
}

/*
 * Encode and write the header. Runs on the caller's thread or the helper thread, so it
 * reports through *len and its return value (with the detail in why) only.
 */
static int lf_writer_put_header(struct lf_writer *w, const struct lf_header *h, size_t *len,
				char *why, size_t why_cap)
{
	uint8_t *hdr = NULL;
	int rc = lf_header_encode(h, w->codec, w->level, &hdr, len);

	if (rc < 0) {
		snprintf(why, why_cap, "%s", lf_errdetail());
		return rc;
	}
	if (w->io.ops->write(w->io.opaque, hdr, *len) < 0) {
		snprintf(why, why_cap, "writing the header at offset 0: %s", strerror(errno));
		rc = -LF_EIO;
	}
	free(hdr);
	return rc;
}

static void *lf_writer_header_thread(void *arg)
{
	struct lf_writer *w = arg;
	int rc = lf_writer_put_header(w, &w->hdr, &w->hdr_len, w->hdr_why, sizeof(w->hdr_why));

	w->hdr_err = -rc;
	return NULL;
}

/* Wait for the helper thread's header, if any: its failure becomes the writer's. */
static int lf_writer_header_done(struct lf_writer *w)
{
	if (!w->hdr_pending)
		return 0;
	pthread_join(w->hdr_thread, NULL);
	w->hdr_pending = false;
	free(w->hdr_text);
	w->hdr_text = NULL;
	if (w->hdr_err) {
		snprintf(w->why, sizeof(w->why), "%s", w->hdr_why);
		w->failed = true;
		return lf_fail(w->hdr_err, "%s", w->why);
	}
	w->off = w->hdr_len;
	w->stats.header_bytes = w->hdr_len;
	return 0;
}

/* Copy the header's strings (the caller's may not outlive lf_writer_open). */
static int lf_writer_keep_header(struct lf_writer *w, const struct lf_header *h)
{
	const char *const src[5] = {h->tool, h->config, h->cmdline, h->image_path,
				    h->initrd_path};
	const char **dst[5] = {&w->hdr.tool, &w->hdr.config, &w->hdr.cmdline, &w->hdr.image_path,
			       &w->hdr.initrd_path};
	size_t total = 0;
	char *p;

	for (int i = 0; i < 5; i++)
		total += (src[i] ? strlen(src[i]) : 0) + 1;
	w->hdr = *h;
	w->hdr_text = p = malloc(total);
	if (p == NULL)
		return lf_fail(LF_ENOMEM, "no memory for the header's strings");
	for (int i = 0; i < 5; i++) {
		size_t l = src[i] ? strlen(src[i]) : 0;

		memcpy(p, src[i] ? src[i] : "", l + 1);
		*dst[i] = p;
		p += l + 1;
	}
	return 0;
}

static int lf_writer_close_chunk(struct lf_writer *w)
{
	uint32_t used;
	size_t stored, total;
	uint32_t crc;
	int rc;

	if (w->ch.events == 0)
		return 0;
	rc = lf_writer_header_done(w);
	if (rc < 0)
		return rc;
	/* Make room in the index first: no chunk may be written that the index then lacks. */
	if (w->n_index == w->index_cap) {
		size_t cap = w->index_cap ? 2 * w->index_cap : 64;
		struct lf_index_entry *e = realloc(w->index, cap * sizeof(*e));

		if (e == NULL)
			return lf_fail(LF_ENOMEM, "no memory for the chunk index");
		w->index = e;
		w->index_cap = cap;
	}
	stored = lf_compress(w->cctx, w->codec, w->level, w->raw, w->raw_len,
			     w->out + LF_CHUNK_HDR_BYTES, w->out_cap - LF_CHUNK_HDR_BYTES, &used);
	w->ch.codec = used;
	w->ch.raw_len = (uint32_t)w->raw_len;
	w->ch.stored_len = (uint32_t)stored;
	w->ch.last_pos = w->st.pos;
	w->ch.base_clock = w->base_clock;
	w->ch.crc = 0;
	lf_chunk_hdr_encode(w->out, &w->ch);
	crc = lf_crc32c(0, w->out, LF_CHUNK_CRC_AT);
	crc = lf_crc32c(crc, w->out + LF_CHUNK_HDR_BYTES, stored);
	lf_put32(w->out + LF_CHUNK_CRC_AT, crc);
	total = LF_CHUNK_HDR_BYTES + stored;

	w->index[w->n_index] = (struct lf_index_entry){
	    .offset = w->off,
	    .first_pos = w->ch.first_pos,
	    .last_pos = w->ch.last_pos,
	    .events = w->ch.events,
	};
	rc = lf_writer_put(w, w->out, total, "a chunk");
	if (rc < 0)
		return rc;
	w->n_index++;
	w->stats.chunks++;
	w->stats.chunk_bytes += total;
	w->stats.raw_bytes += w->raw_len;
	w->base_clock = w->st.clock;
	w->raw_len = 0;
	w->ch.events = 0;
	return 0;
}

int lf_writer_open(const struct lf_io *io, const struct lf_header *h,
		   const struct lf_writer_config *cfg, struct lf_writer **out)
{
	struct lf_writer_config c = {.codec = LF_CODEC_ZSTD};
	struct lf_writer *w = NULL;
	size_t hdr_len;
	int rc;

	if (out == NULL)
		return lf_fail(LF_EINVAL, "no place for the writer");
	*out = NULL;
	if (io == NULL || io->ops == NULL || io->ops->write == NULL)
		return lf_fail(LF_EINVAL, "the log's byte I/O cannot write");
	if (h == NULL)
		return lf_fail(LF_EINVAL, "no header given");
	if (cfg)
		c = *cfg;
	if (c.codec > LF_CODEC_ZSTD)
		return lf_fail(LF_EINVAL, "unknown codec %" PRIu32, c.codec);
	if (c.codec == LF_CODEC_ZSTD) {
		if (c.level == 0)
			c.level = ZSTD_CLEVEL_DEFAULT;
		if (c.level < ZSTD_minCLevel() || c.level > ZSTD_maxCLevel())
			return lf_fail(LF_EINVAL, "zstd level %d (%d to %d allowed)", c.level,
				       ZSTD_minCLevel(), ZSTD_maxCLevel());
	}
	if (c.chunk_events == 0)
		c.chunk_events = LF_DEFAULT_CHUNK_EVENTS;
	if (c.chunk_bytes == 0)
		c.chunk_bytes = LF_DEFAULT_CHUNK_BYTES;
	if (c.chunk_bytes > LF_CHUNK_RAW_MAX - LF_EV_MAX_BYTES)
		return lf_fail(LF_EINVAL, "chunk_bytes %" PRIu32 " (at most %u)", c.chunk_bytes,
			       LF_CHUNK_RAW_MAX - LF_EV_MAX_BYTES);
	if (c.flush_ms == 0)
		c.flush_ms = LF_DEFAULT_FLUSH_MS;

	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		rc = lf_fail(LF_ENOMEM, "no memory for a writer");
		goto fail;
	}
	w->io = *io;
	w->codec = c.codec;
	w->level = c.level;
	w->chunk_events = c.chunk_events;
	w->chunk_bytes = c.chunk_bytes;
	w->flush_ns = (uint64_t)c.flush_ms * 1000000u;
	/* The last event may start just below chunk_bytes. */
	w->raw_cap = c.chunk_bytes + LF_EV_MAX_BYTES;
	w->out_cap = LF_CHUNK_HDR_BYTES + lf_compress_bound(w->raw_cap);
	w->raw = malloc(w->raw_cap);
	w->out = malloc(w->out_cap);
	if (w->raw == NULL || w->out == NULL) {
		rc = lf_fail(LF_ENOMEM, "no memory for chunk buffers");
		goto fail;
	}
	if (c.codec == LF_CODEC_ZSTD) {
		w->cctx = ZSTD_createCCtx();
		if (w->cctx == NULL) {
			rc = lf_fail(LF_ENOMEM, "no memory for a zstd context");
			goto fail;
		}
	}
	if (c.background_header) {
		rc = lf_writer_keep_header(w, h);
		if (rc < 0)
			goto fail;
		if (pthread_create(&w->hdr_thread, NULL, lf_writer_header_thread, w) == 0) {
			w->hdr_pending = true;
			*out = w;
			return 0;
		}
		/* No thread to be had: write it now, as without background_header. */
		free(w->hdr_text);
		w->hdr_text = NULL;
	}
	rc = lf_writer_put_header(w, h, &hdr_len, w->why, sizeof(w->why));
	if (rc < 0) {
		rc = lf_fail(-rc, "%s", w->why);
		goto fail;
	}
	w->off = hdr_len;
	w->stats.header_bytes = hdr_len;
	*out = w;
	return 0;

fail:
	lf_writer_free(w);
	return rc;
}

static int lf_writer_age_check(struct lf_writer *w)
{
	if (w->ch.events > 0 && lf_now_ns() - w->opened_ns >= w->flush_ns)
		return lf_writer_close_chunk(w);
	return 0;
}

int lf_writer_append(struct lf_writer *w, const struct lf_event *ev)
{
	int rc = lf_writer_usable(w);

	if (rc < 0)
		return rc;
	rc = lf_ev_check(ev);
	if (rc < 0)
		return rc;
	if (ev->pos < w->last_pos)
		return lf_fail(LF_EINVAL,
			       "event position %" PRIu64 " is before the previous event's %" PRIu64,
			       ev->pos, w->last_pos);
	if (w->ch.events == 0) {
		w->ch.first_pos = ev->pos;
		w->st.pos = ev->pos;
		w->st.clock = w->base_clock;
		w->opened_ns = lf_now_ns();
	}
	w->raw_len += lf_ev_encode(w->raw + w->raw_len, ev, &w->st);
	w->ch.events++;
	w->last_pos = ev->pos;
	w->stats.events++;
	w->stats.events_by_kind[ev->kind]++;
	if (w->ch.events >= w->chunk_events || w->raw_len >= w->chunk_bytes)
		return lf_writer_close_chunk(w);
	return lf_writer_age_check(w);
}

int lf_writer_tick(struct lf_writer *w)
{
	int rc = lf_writer_usable(w);

	return rc < 0 ? rc : lf_writer_age_check(w);
}

int lf_writer_flush(struct lf_writer *w)
{
	int rc = lf_writer_usable(w);

	if (rc == 0)
		rc = lf_writer_header_done(w);
	return rc < 0 ? rc : lf_writer_close_chunk(w);
}

int lf_writer_finish(struct lf_writer *w)
{
	uint8_t *tail = NULL;
	size_t len;
	int rc = lf_writer_usable(w);

	if (rc < 0)
		return rc;
	rc = lf_writer_flush(w);
	if (rc < 0)
		return rc;
	rc = lf_tail_encode(w->index, w->n_index, w->off, &tail, &len);
	if (rc < 0)
		return rc;
	rc = lf_writer_put(w, tail, len, "the index and footer");
	free(tail);
	if (rc < 0)
		return rc;
	if (w->io.ops->sync && w->io.ops->sync(w->io.opaque) < 0) {
		snprintf(w->why, sizeof(w->why), "syncing the log: %s", strerror(errno));
		w->failed = true;
		return lf_fail(LF_EIO, "%s", w->why);
	}
	w->finished = true;
	return 0;
}

void lf_writer_free(struct lf_writer *w)
{
	if (w == NULL)
		return;
	if (w->hdr_pending) {
		pthread_join(w->hdr_thread, NULL);
		free(w->hdr_text);
	}
	ZSTD_freeCCtx(w->cctx);
	free(w->raw);
	free(w->out);
	free(w->index);
	free(w);
}

void lf_writer_stats(const struct lf_writer *w, struct lf_writer_stats *s)
{
	if (s == NULL)
		return;
	memset(s, 0, sizeof(*s));
	if (w == NULL)
		return;
	*s = w->stats;
	s->total_bytes = w->off;
}
