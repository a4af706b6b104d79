/*
 * reader.c: reading a log: the header, then chunk after chunk, event by event; seeking
 * through the index; telling a finished log from one whose writer died.
 *
 * On a seekable io the footer and index are read first; when they are absent or do not
 * hold together the log is read from its first chunk to the first chunk that is cut or
 * corrupt, and every complete chunk before it still counts. A stream is read in order
 * only, and its trailing index is checked against the chunks it followed.
 *
 * Input is untrusted: every length is bounded before anything is allocated for it (a
 * chunk never claims more than 16 MiB raw; on a seekable io nothing may claim more bytes
 * than the file has), and each chunk is checked whole before its first event is handed
 * out, so a chunk gives all its events or none.
 */
#include "lf_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#define LF_READ_STEP (1u << 20) /* grow a buffer by real data, not by a claimed length */

/* Read up to n bytes (less only at the end of the data). */
static int lf_rd_read(struct lf_reader *r, void *buf, size_t n, size_t *got)
{
	size_t have = 0;

	while (have < n) {
		ssize_t k = r->io.ops->read(r->io.opaque, (uint8_t *)buf + have, n - have);

		if (k < 0)
			return lf_fail(LF_EIO, "reading the log at offset %" PRIu64 ": %s",
				       r->off + have, strerror(errno));
		if (k == 0)
			break;
		if ((size_t)k > n - have)
			return lf_fail(LF_EIO, "the byte I/O read more than asked");
		have += (size_t)k;
	}
	r->off += have;
	*got = have;
	return 0;
}

static int lf_rd_seek(struct lf_reader *r, uint64_t off)
{
	if (off > INT64_MAX - (uint64_t)r->base ||
	    r->io.ops->seek(r->io.opaque, r->base + (int64_t)off, SEEK_SET) < 0)
		return lf_fail(LF_EIO, "seeking the log to offset %" PRIu64 ": %s", off,
			       strerror(errno));
	r->off = off;
	return 0;
}

bool lf_starts_like_log(const void *head, size_t n)
{
	return memcmp(head, LF_MAGIC, n < LF_MAGIC_BYTES ? n : LF_MAGIC_BYTES) == 0;
}

static int lf_rd_bad_magic(const uint8_t *m)
{
	if (m[0] == (LF_MAGIC[0] & 0x7f) && memcmp(m + 1, &LF_MAGIC[1], 3) == 0)
		return lf_fail(LF_EFORMAT, "bad magic: the log's first byte lost its high bit "
					   "(copied through a 7-bit channel?)");
	if (memcmp(m, LF_MAGIC, 4) == 0)
		return lf_fail(LF_EFORMAT, "bad magic: the bytes after \"RWL\" changed (line "
					   "endings converted by a text-mode copy?)");
	return lf_fail(LF_EFORMAT, "bad magic: not a rewind log");
}

static int lf_rd_header(struct lf_reader *r)
{
	uint8_t pre[LF_PREAMBLE_BYTES], *buf = NULL;
	size_t got, have, cap, total;
	uint32_t version, blen;
	int rc;

	rc = lf_rd_read(r, pre, sizeof(pre), &got);
	if (rc < 0)
		return rc;
	if (got == 0)
		return lf_fail(LF_ETRUNC, "the log is empty");
	if (got < LF_MAGIC_BYTES) {
		if (memcmp(pre, LF_MAGIC, got) == 0)
			return lf_fail(LF_ETRUNC, "the log ends inside its magic (%zu bytes)", got);
		return lf_fail(LF_EFORMAT, "bad magic: not a rewind log (%zu bytes)", got);
	}
	if (memcmp(pre, LF_MAGIC, LF_MAGIC_BYTES) != 0)
		return lf_rd_bad_magic(pre);
	if (got < sizeof(pre))
		return lf_fail(LF_ETRUNC, "the header is cut after %zu bytes", got);
	/* Before anything else: another version may lay out everything after this. */
	version = lf_get32(pre + 8);
	if (version < LF_VERSION_MIN || version > LF_VERSION)
		return lf_fail(LF_EVERSION,
			       "the log has format version %" PRIu32
			       "; this build reads versions %d to %d",
			       version, LF_VERSION_MIN, LF_VERSION);
	blen = lf_get32(pre + 12);
	if (blen > LF_HEADER_MAX)
		return lf_fail(LF_ECORRUPT, "header: body length %" PRIu32 " past the limit", blen);
	total = LF_PREAMBLE_BYTES + (size_t)blen + LF_HEADER_CRC_BYTES;
	if (r->seekable && total > r->file_bytes)
		return lf_fail(LF_ETRUNC, "the header needs %zu bytes, the log has %" PRIu64, total,
			       r->file_bytes);

	have = cap = LF_PREAMBLE_BYTES; /* in pre until the first growth */
	while (have < total) {
		size_t want = total - have;

		if (have == cap) {
			/* Grow by at most a step or a doubling: a forged length costs real bytes.
			 */
			size_t ncap = have + (want < LF_READ_STEP ? want : LF_READ_STEP);
			uint8_t *nb;

			if (ncap < 2 * have)
				ncap = 2 * have < total ? 2 * have : total;
			nb = realloc(buf, ncap);
			if (nb == NULL) {
				rc = lf_fail(LF_ENOMEM, "no memory for a header of %zu bytes",
					     total);
				goto out;
			}
			if (buf == NULL)
				memcpy(nb, pre, LF_PREAMBLE_BYTES);
			buf = nb;
			cap = ncap;
		}
		want = cap - have;
		rc = lf_rd_read(r, buf + have, want, &got);
		if (rc < 0)
			goto out;
		have += got;
		if (got < want) {
			rc = lf_fail(LF_ETRUNC, "the header is cut after %zu of %zu bytes", have,
				     total);
			goto out;
		}
	}
	if (!lf_sum_ok(lf_get32(buf + total - LF_HEADER_CRC_BYTES),
		       lf_crc32c(0, buf, total - LF_HEADER_CRC_BYTES))) {
		rc =
		    lf_fail(LF_ECORRUPT, "header: CRC mismatch (the header was damaged or edited)");
		goto out;
	}
	rc = lf_header_parse(buf + LF_PREAMBLE_BYTES, blen, version, &r->hs);
	if (rc < 0)
		goto out;
	r->header_bytes = total;
out:
	free(buf);
	return rc;
}

/*
 * Look for the footer and index at the end of a seekable log. Anything missing or
 * inconsistent only means "not finalized" (tail_why says why); an I/O error is an error.
 */
static int lf_rd_tail(struct lf_reader *r)
{
	uint8_t foot[LF_FOOTER_BYTES], *buf = NULL;
	struct lf_index_entry *e = NULL;
	struct lf_footer f;
	uint64_t size = r->file_bytes, n, sum = 0;
	size_t len, got;
	int rc;

	r->tail_why = "no footer (the writer did not finish)";
	if (size < r->header_bytes + lf_tail_bytes(0))
		return 0;
	rc = lf_rd_seek(r, size - LF_FOOTER_BYTES);
	if (rc == 0)
		rc = lf_rd_read(r, foot, sizeof(foot), &got);
	if (rc < 0)
		return rc;
	if (got < sizeof(foot))
		return 0;
	r->tail_why = lf_footer_parse(foot, &f);
	if (r->tail_why) {
		if (memcmp(foot + 36, LF_END_MAGIC, 8) != 0)
			r->tail_why = "no footer (the writer did not finish)";
		return 0;
	}
	n = f.chunks;
	r->tail_why = "footer does not fit the file";
	if (n > size / LF_INDEX_ENTRY_BYTES || lf_tail_bytes(n) > size ||
	    f.index_offset < r->header_bytes || f.index_offset != size - lf_tail_bytes(n))
		return 0;
	len = (size_t)(lf_tail_bytes(n) - LF_FOOTER_BYTES);
	buf = malloc(len);
	e = malloc(n ? n * sizeof(*e) : 1);
	if (buf == NULL || e == NULL) {
		rc = lf_fail(LF_ENOMEM, "no memory for an index of %" PRIu64 " chunks", n);
		goto out;
	}
	rc = lf_rd_seek(r, f.index_offset);
	if (rc == 0)
		rc = lf_rd_read(r, buf, len, &got);
	if (rc < 0)
		goto out;
	r->tail_why = "index does not match the footer";
	if (got < len || memcmp(buf, LF_INDEX_MAGIC, 4) != 0 || lf_get32(buf + 4) != 0 ||
	    lf_get64(buf + 8) != n)
		goto out;
	r->tail_why = "index CRC mismatch";
	if (!lf_sum_ok(lf_get32(buf + len - 4), lf_crc32c(0, buf, len - 4)))
		goto out;
	r->tail_why = "index entries are inconsistent";
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *p = buf + LF_INDEX_HDR_BYTES + i * LF_INDEX_ENTRY_BYTES;
		uint64_t min_off = i ? e[i - 1].offset + LF_CHUNK_HDR_BYTES + 1 : r->header_bytes;

		e[i].offset = lf_get64(p);
		e[i].first_pos = lf_get64(p + 8);
		e[i].last_pos = lf_get64(p + 16);
		e[i].events = lf_get64(p + 24);
		/* Chunks follow each other from the header on, with positions in order. */
		if ((i == 0 && e[i].offset != r->header_bytes) || e[i].offset < min_off ||
		    e[i].offset > f.index_offset - LF_CHUNK_HDR_BYTES - 1 ||
		    e[i].first_pos > e[i].last_pos ||
		    (i > 0 && e[i].first_pos < e[i - 1].last_pos) || e[i].events == 0 ||
		    e[i].events > LF_CHUNK_RAW_MAX / LF_EV_MIN_BYTES)
			goto out;
		sum += e[i].events;
	}
	if (sum != f.events || (n > 0 && e[n - 1].last_pos != f.last_pos) ||
	    (n == 0 && (f.last_pos != 0 || f.index_offset != r->header_bytes)))
		goto out;
	r->tail_why = NULL;
	r->finalized = r->indexed = true;
	r->foot = f;
	r->index = e;
	e = NULL;
out:
	free(buf);
	free(e);
	return rc;
}

/* A stream met the index magic at index_off: check the index and footer that follow. */
static int lf_rd_stream_tail(struct lf_reader *r, uint64_t index_off)
{
	uint8_t b[LF_FOOTER_BYTES];
	uint32_t crc, ecrc = 0;
	struct lf_footer f;
	size_t got;
	uint64_t n;
	int rc;

	r->tail_why = "the index is cut";
	memcpy(b, LF_INDEX_MAGIC, 4);
	rc = lf_rd_read(r, b + 4, LF_INDEX_HDR_BYTES - 4, &got);
	if (rc < 0 || got < LF_INDEX_HDR_BYTES - 4)
		return rc;
	n = lf_get64(b + 8);
	r->tail_why = "index does not match the chunks";
	if (lf_get32(b + 4) != 0 || n != r->seen_chunks)
		return 0;
	crc = lf_crc32c(0, b, LF_INDEX_HDR_BYTES);
	for (uint64_t i = 0; i < n; i++) {
		rc = lf_rd_read(r, b, LF_INDEX_ENTRY_BYTES, &got);
		if (rc < 0)
			return rc;
		if (got < LF_INDEX_ENTRY_BYTES) {
			r->tail_why = "the index is cut";
			return 0;
		}
		crc = lf_crc32c(crc, b, LF_INDEX_ENTRY_BYTES);
		ecrc = lf_crc32c(ecrc, b, LF_INDEX_ENTRY_BYTES);
	}
	rc = lf_rd_read(r, b, LF_INDEX_CRC_BYTES, &got);
	if (rc < 0 || got < LF_INDEX_CRC_BYTES)
		return rc;
	if (!lf_sum_ok(lf_get32(b), crc)) {
		r->tail_why = "index CRC mismatch";
		return 0;
	}
	/* The entries read must be exactly those of the chunks followed. */
	if (ecrc != r->seen_entries_crc)
		return 0;
	rc = lf_rd_read(r, b, LF_FOOTER_BYTES, &got);
	if (rc < 0)
		return rc;
	r->tail_why = "no footer (the writer did not finish)";
	if (got < LF_FOOTER_BYTES)
		return 0;
	r->tail_why = lf_footer_parse(b, &f);
	if (r->tail_why)
		return 0;
	r->tail_why = "footer does not match the chunks";
	if (f.index_offset != index_off || f.events != r->seen_events || f.chunks != n ||
	    f.last_pos != r->seen_last_pos)
		return 0;
	r->tail_why = NULL;
	r->finalized = true;
	r->foot = f;
	return 0;
}

static int lf_rd_bad_chunk(struct lf_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lf_rd_bad_chunk(struct lf_reader *r, int err, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return lf_fail(err, "chunk %" PRIu64 " at offset %" PRIu64 ": %s", r->chunk_no,
		       r->chunk_off, why);
}

static int lf_rd_grow(uint8_t **buf, size_t *cap, size_t n)
{
	uint8_t *p;

	if (n <= *cap)
		return 0;
	p = realloc(*buf, n);
	if (p == NULL)
		return lf_fail(LF_ENOMEM, "no memory for a chunk of %zu bytes", n);
	*buf = p;
	*cap = n;
	return 0;
}

int lf_rd_load_chunk(struct lf_reader *r)
{
	uint8_t h[LF_CHUNK_HDR_BYTES], entry[LF_INDEX_ENTRY_BYTES];
	const struct lf_index_entry *ie = NULL;
	struct lf_chunk_hdr c;
	const char *why;
	size_t got, at;
	uint32_t crc;
	int rc;

	r->ev_left = 0;
	r->chunk_off = r->off;
	if (r->indexed) {
		if (r->chunk_no == r->foot.chunks)
			return r->off == r->foot.index_offset
				   ? 0
				   : lf_rd_bad_chunk(r, LF_ECORRUPT, "the index ends here");
		ie = &r->index[r->chunk_no];
		if (r->off != ie->offset)
			return lf_rd_bad_chunk(r, LF_ECORRUPT, "the index puts it at %" PRIu64,
					       ie->offset);
	}
	rc = lf_rd_read(r, h, 4, &got);
	if (rc < 0)
		return rc;
	if (got == 0 && ie == NULL)
		return 0; /* the end of a log whose writer did not finish */
	if (got < 4)
		return lf_rd_bad_chunk(r, LF_ETRUNC, "cut after %zu of %d header bytes", got,
				       LF_CHUNK_HDR_BYTES);
	if (ie == NULL && memcmp(h, LF_INDEX_MAGIC, 4) == 0) {
		if (!r->seekable)
			return lf_rd_stream_tail(r, r->chunk_off);
		return 0;
	}
	if (memcmp(h, LF_CHUNK_MAGIC, 4) != 0)
		return lf_rd_bad_chunk(r, LF_ECORRUPT, "bad chunk magic");
	rc = lf_rd_read(r, h + 4, sizeof(h) - 4, &got);
	if (rc < 0)
		return rc;
	if (got < sizeof(h) - 4)
		return lf_rd_bad_chunk(r, LF_ETRUNC, "cut after %zu of %d header bytes", got + 4,
				       LF_CHUNK_HDR_BYTES);
	why = lf_chunk_hdr_parse(h, &c);
	if (why)
		return lf_rd_bad_chunk(r, LF_ECORRUPT, "%s", why);
	if (c.first_pos < r->prev_last)
		return lf_rd_bad_chunk(r, LF_ECORRUPT,
				       "first position %" PRIu64
				       " is before the previous chunk's last %" PRIu64,
				       c.first_pos, r->prev_last);
	if (ie) {
		uint64_t next = r->chunk_no + 1 < r->foot.chunks ? r->index[r->chunk_no + 1].offset
								 : r->foot.index_offset;

		if (r->off + c.stored_len > next)
			return lf_rd_bad_chunk(r, LF_ECORRUPT,
					       "stored length %" PRIu32 " runs past the next chunk",
					       c.stored_len);
	} else if (r->seekable && r->off + c.stored_len > r->file_bytes) {
		return lf_rd_bad_chunk(r, LF_ETRUNC,
				       "cut: %" PRIu32 " payload bytes wanted, %" PRIu64 " left",
				       c.stored_len, r->file_bytes - r->off);
	}
	rc = lf_rd_grow(&r->stored, &r->stored_cap, c.stored_len);
	if (rc < 0)
		return rc;
	rc = lf_rd_read(r, r->stored, c.stored_len, &got);
	if (rc < 0)
		return rc;
	if (got < c.stored_len)
		return lf_rd_bad_chunk(r, LF_ETRUNC, "cut after %zu of %" PRIu32 " payload bytes",
				       got, c.stored_len);
	crc = lf_crc32c(lf_crc32c(0, h, LF_CHUNK_CRC_AT), r->stored, c.stored_len);
	if (!lf_sum_ok(c.crc, crc))
		return lf_rd_bad_chunk(r, LF_ECORRUPT, "CRC mismatch");
	if (c.codec == LF_CODEC_NONE) {
		r->raw = r->stored;
	} else {
		rc = lf_rd_grow(&r->rawbuf, &r->raw_cap, c.raw_len);
		if (rc < 0)
			return rc;
		if (lf_decompress(r->dctx, c.codec, r->stored, c.stored_len, r->rawbuf, c.raw_len,
				  &why) < 0)
			return lf_rd_bad_chunk(r, LF_ECORRUPT, "%s", why);
		r->raw = r->rawbuf;
	}
	memset(r->kinds, 0, sizeof(r->kinds));
	if (lf_chunk_check(&c, r->raw, r->kinds, &why, &at) < 0)
		return lf_rd_bad_chunk(r, LF_ECORRUPT, "payload offset %zu: %s", at, why);
	if (ie &&
	    (ie->first_pos != c.first_pos || ie->last_pos != c.last_pos || ie->events != c.events ||
	     r->off != (r->chunk_no + 1 < r->foot.chunks ? r->index[r->chunk_no + 1].offset
							 : r->foot.index_offset)))
		return lf_rd_bad_chunk(r, LF_ECORRUPT, "disagrees with the index");

	lf_put64(entry, r->chunk_off);
	lf_put64(entry + 8, c.first_pos);
	lf_put64(entry + 16, c.last_pos);
	lf_put64(entry + 24, c.events);
	r->seen_entries_crc = lf_crc32c(r->seen_entries_crc, entry, sizeof(entry));
	r->seen_chunks++;
	r->seen_events += c.events;
	r->seen_last_pos = c.last_pos;

	r->ch = c;
	r->raw_off = 0;
	r->ev_left = c.events;
	r->st = (struct lf_ev_state){.pos = c.first_pos, .clock = c.base_clock};
	r->prev_last = c.last_pos;
	r->chunk_no++;
	return 1;
}

int lf_reader_open(const struct lf_io *io, struct lf_reader **out)
{
	struct lf_reader *r;
	int rc;

	if (out == NULL)
		return lf_fail(LF_EINVAL, "no place for the reader");
	*out = NULL;
	if (io == NULL || io->ops == NULL || io->ops->read == NULL)
		return lf_fail(LF_EINVAL, "the log's byte I/O cannot read");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return lf_fail(LF_ENOMEM, "no memory for a reader");
	r->io = *io;
	if (io->ops->seek) {
		int64_t at = io->ops->seek(io->opaque, 0, SEEK_CUR);
		int64_t end = at >= 0 ? io->ops->seek(io->opaque, 0, SEEK_END) : -1;

		if (at >= 0 && end >= at) {
			r->seekable = true;
			r->base = at;
			r->file_bytes = (uint64_t)(end - at);
			rc = lf_rd_seek(r, 0);
			if (rc < 0)
				goto fail;
		}
	}
	rc = lf_rd_header(r);
	if (rc < 0)
		goto fail;
	if (r->seekable) {
		rc = lf_rd_tail(r);
		if (rc == 0)
			rc = lf_rd_seek(r, r->header_bytes);
		if (rc < 0)
			goto fail;
	}
	r->dctx = ZSTD_createDCtx();
	if (r->dctx == NULL) {
		rc = lf_fail(LF_ENOMEM, "no memory for a zstd context");
		goto fail;
	}
	*out = r;
	return 0;

fail:
	lf_reader_free(r);
	return rc;
}

const struct lf_header *lf_reader_header(const struct lf_reader *r)
{
	return r ? &r->hs.h : NULL;
}

/* The next event in file order, ignoring any pending one. */
static int lf_rd_next(struct lf_reader *r, struct lf_event *ev)
{
	const char *why;
	int rc;

	if (r->done)
		return 0;
	while (r->ev_left == 0) {
		rc = lf_rd_load_chunk(r);
		if (rc <= 0) {
			r->done = true;
			return rc;
		}
	}
	/* Checked when the chunk was loaded; failing now would be our own bug. */
	if (lf_ev_decode(r->raw, r->ch.raw_len, &r->raw_off, &r->st, ev, &why) < 0) {
		r->done = true;
		return lf_fail(LF_ECORRUPT, "chunk %" PRIu64 ": %s", r->chunk_no - 1, why);
	}
	r->ev_left--;
	return 1;
}

int lf_reader_next(struct lf_reader *r, struct lf_event *ev)
{
	int rc;

	if (r == NULL || ev == NULL)
		return lf_fail(LF_EINVAL, "no reader or no event");
	if (r->have_pending) {
		*ev = r->pending;
		r->have_pending = false;
		rc = 1;
	} else {
		rc = lf_rd_next(r, ev);
	}
	if (rc == 1) {
		r->returned_any = true;
		r->returned_pos = ev->pos;
	}
	return rc;
}

/* Read on to the first event at or after pos and keep it for the next lf_reader_next. */
static int lf_rd_skip_to(struct lf_reader *r, uint64_t pos)
{
	for (;;) {
		int rc;

		/* Whole chunks before pos are passed without decoding their events again. */
		if (r->ev_left > 0 && r->ch.last_pos < pos) {
			r->ev_left = 0;
			continue;
		}
		rc = lf_rd_next(r, &r->pending);
		if (rc <= 0)
			return rc;
		if (r->pending.pos >= pos) {
			r->have_pending = true;
			return 0;
		}
	}
}

int lf_reader_seek(struct lf_reader *r, uint64_t pos)
{
	bool had = r && r->have_pending;
	int rc;

	if (r == NULL)
		return lf_fail(LF_EINVAL, "no reader");
	r->have_pending = false;
	if (!r->seekable) {
		if (had && r->pending.pos >= pos) {
			r->have_pending = true;
			return 0;
		}
		if (r->returned_any && r->returned_pos >= pos)
			return lf_fail(LF_ESTATE, "a stream cannot seek back to position %" PRIu64,
				       pos);
		return lf_rd_skip_to(r, pos);
	}
	r->done = false;
	r->ev_left = 0;
	if (r->indexed) {
		uint64_t lo = 0, hi = r->foot.chunks;

		/* The first chunk whose last position reaches pos holds the first such event. */
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;

			if (r->index[mid].last_pos < pos)
				lo = mid + 1;
			else
				hi = mid;
		}
		rc =
		    lf_rd_seek(r, lo < r->foot.chunks ? r->index[lo].offset : r->foot.index_offset);
		r->chunk_no = lo;
		r->prev_last = lo > 0 ? r->index[lo - 1].last_pos : 0;
	} else {
		rc = lf_rd_seek(r, r->header_bytes);
		r->chunk_no = 0;
		r->prev_last = 0;
		r->seen_chunks = r->seen_events = r->seen_last_pos = 0;
		r->seen_entries_crc = 0;
	}
	if (rc < 0) {
		r->done = true;
		return rc;
	}
	return lf_rd_skip_to(r, pos);
}

void lf_reader_info(const struct lf_reader *r, struct lf_reader_info *i)
{
	if (i == NULL)
		return;
	memset(i, 0, sizeof(*i));
	if (r == NULL)
		return;
	i->finalized = r->finalized;
	i->file_bytes = r->seekable ? r->file_bytes : r->off;
	if (r->finalized) {
		i->chunks = r->foot.chunks;
		i->events = r->foot.events;
		i->last_pos = r->foot.last_pos;
	}
	i->header_bytes = r->header_bytes;
}

void lf_reader_free(struct lf_reader *r)
{
	if (r == NULL)
		return;
	lf_header_store_free(&r->hs);
	free(r->index);
	free(r->stored);
	free(r->rawbuf);
	ZSTD_freeDCtx(r->dctx);
	free(r);
}
