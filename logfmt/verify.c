/*
 * verify.c: checking a whole log chunk by chunk (lf_verify) and making a cut one whole
 * again (lf_repair_fd) by dropping its bad tail and appending a fresh index and footer.
 *
 * Both walk the chunks with the reader's own chunk loader, so "good" means exactly what
 * a reader accepts. Repair keeps only the chunks before the first bad one, even when
 * later ones look fine: events after a gap would replay against the wrong past. Verify
 * still looks for those later chunks and counts them, so that the user learns what a
 * repair would leave out before asking for one.
 */
#include "lf_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define LF_SCAN_STEP (64u << 10)

/*
 * Past the first bad chunk: find the chunks that are whole on their own (magic, CRC,
 * decoding), each judged alone, and count them into rep->*_after. A chunk magic inside
 * damaged bytes or a payload does not count unless a whole chunk starts there.
 */
static int lf_verify_scan_after(struct lf_reader *r, struct lf_verify_report *rep)
{
	uint8_t *buf = malloc(LF_SCAN_STEP);
	uint64_t at = rep->good_bytes + 1;
	int rc = 0;

	if (buf == NULL)
		return lf_fail(LF_ENOMEM, "no memory to look past the damage");
	r->indexed = false; /* each chunk is judged by itself */
	while (at + LF_CHUNK_HDR_BYTES < r->file_bytes) {
		size_t got;
		const uint8_t *hit;

		rc = lf_rd_seek(r, at);
		if (rc == 0)
			rc = lf_rd_read(r, buf, LF_SCAN_STEP, &got);
		if (rc < 0)
			break;
		hit = memmem(buf, got, LF_CHUNK_MAGIC, 4);
		if (hit == NULL) {
			if (got < 4)
				break;
			at += got - 3; /* a magic may straddle the step */
			continue;
		}
		at += (uint64_t)(hit - buf);
		/* Chunks that follow one another are read in order from here. */
		for (;;) {
			int lrc;

			rc = lf_rd_seek(r, at);
			if (rc < 0)
				break;
			r->prev_last = 0;
			lrc = lf_rd_load_chunk(r);
			if (lrc == -LF_EIO || lrc == -LF_ENOMEM) {
				rc = lrc;
				break;
			}
			if (lrc != 1) {
				at++;
				break;
			}
			if (rep->chunks_after == 0)
				rep->first_pos_after = r->ch.first_pos;
			rep->chunks_after++;
			rep->events_after += r->ch.events;
			if (r->ch.last_pos > rep->last_pos_after)
				rep->last_pos_after = r->ch.last_pos;
			at = r->off;
		}
		if (rc < 0)
			break;
	}
	free(buf);
	return rc;
}

/* Walk every chunk; with entries set, also collect the index entries of the good ones. */
static int lf_verify_walk(const struct lf_io *io, struct lf_verify_report *rep,
			  struct lf_index_entry **entries, uint64_t *n_entries)
{
	struct lf_reader *r = NULL;
	size_t cap = 0;
	uint64_t n = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = lf_reader_open(io, &r);
	if (rc < 0) {
		snprintf(rep->problem, sizeof(rep->problem), "%s", lf_errdetail());
		return rc;
	}
	rep->header_ok = true;
	rep->header_bytes = r->header_bytes;
	rep->good_bytes = r->header_bytes;
	for (;;) {
		rc = lf_rd_load_chunk(r);
		if (rc <= 0)
			break;
		if (entries) {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				struct lf_index_entry *e = realloc(*entries, ncap * sizeof(*e));

				if (e == NULL) {
					rc = lf_fail(LF_ENOMEM, "no memory for the chunk index");
					break;
				}
				*entries = e;
				cap = ncap;
			}
			(*entries)[n] = (struct lf_index_entry){
			    .offset = r->chunk_off,
			    .first_pos = r->ch.first_pos,
			    .last_pos = r->ch.last_pos,
			    .events = r->ch.events,
			};
		}
		n++;
		if (rep->chunks_ok == 0) {
			rep->first_pos = r->ch.first_pos;
			rep->chunk_codec = r->ch.codec;
		}
		rep->chunks_ok++;
		rep->events += r->ch.events;
		for (int k = 0; k <= LF_KIND_MAX; k++)
			rep->events_by_kind[k] += r->kinds[k];
		rep->last_pos = r->ch.last_pos;
		rep->chunk_bytes += LF_CHUNK_HDR_BYTES + r->ch.stored_len;
		rep->raw_bytes += r->ch.raw_len;
		rep->good_bytes = r->off;
	}
	rep->file_bytes = r->seekable ? r->file_bytes : r->off;
	if (r->index_why[0])
		snprintf(rep->index_problem, sizeof(rep->index_problem), "%s", r->index_why);
	if (rc == 0 && r->finalized) {
		rep->finalized = true;
		rep->index_bytes = lf_tail_bytes(r->foot.chunks);
	} else if (rc == 0) {
		rc = lf_fail(LF_ETRUNC,
			     "%" PRIu64 " good chunks end at offset %" PRIu64 ", then: %s",
			     rep->chunks_ok, rep->good_bytes,
			     r->tail_why ? r->tail_why : "no usable index and footer");
	}
	if (rc < 0) {
		snprintf(rep->problem, sizeof(rep->problem), "%s", lf_errdetail());
		/* Anything wrong past the header leaves a good prefix: the log is cut there. */
		if (rc == -LF_ECORRUPT)
			rc = -LF_ETRUNC;
		if (rc == -LF_ETRUNC && r->seekable) {
			int src = lf_verify_scan_after(r, rep);

			/* An I/O error or no memory is the answer; else the detail stays the
			 * log's problem, not the scan's last failed try. */
			if (src < 0)
				snprintf(rep->problem, sizeof(rep->problem), "%s", lf_errdetail());
			rc = src < 0 ? src : lf_fail(LF_ETRUNC, "%s", rep->problem);
		}
	}
	if (n_entries)
		*n_entries = n;
	lf_reader_free(r);
	return rc;
}

int lf_verify(const struct lf_io *io, struct lf_verify_report *rep)
{
	struct lf_verify_report tmp;

	return lf_verify_walk(io, rep ? rep : &tmp, NULL, NULL);
}

static int lf_pwrite_all(int fd, const uint8_t *p, size_t n, off_t at)
{
	while (n > 0) {
		ssize_t put = pwrite(fd, p, n, at);

		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		p += put;
		n -= (size_t)put;
		at += put;
	}
	return 0;
}

int lf_repair_fd(int fd, struct lf_verify_report *rep)
{
	struct lf_verify_report tmp, after;
	struct lf_index_entry *e = NULL;
	struct lf_io_fd f;
	struct lf_io io;
	uint8_t *tail = NULL;
	uint64_t n = 0;
	size_t len;
	int rc;

	if (rep == NULL)
		rep = &tmp;
	lf_io_fd_init(&io, &f, fd);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return lf_fail(LF_EIO, "seeking the log: %s", strerror(errno));
	rc = lf_verify_walk(&io, rep, &e, &n);
	if (rc != -LF_ETRUNC || !rep->header_ok)
		goto out; /* whole already, or nothing we can rebuild from */
	rc = lf_tail_encode(e, n, rep->good_bytes, &tail, &len);
	if (rc < 0)
		goto out;
	/* The tail is written before the bytes past it are cut: a failed write leaves the
	 * bytes it did not overwrite. */
	if (lf_pwrite_all(fd, tail, len, (off_t)rep->good_bytes) < 0 ||
	    (rep->file_bytes > rep->good_bytes + len &&
	     ftruncate(fd, (off_t)(rep->good_bytes + len)) < 0) ||
	    fdatasync(fd) < 0) {
		rc = lf_fail(LF_EIO, "repairing the log: %s", strerror(errno));
		goto out;
	}
	rep->repaired = true;
	rep->dropped_bytes = rep->file_bytes - rep->good_bytes;
	rep->appended_bytes = len;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		rc = lf_fail(LF_EIO, "seeking the log: %s", strerror(errno));
		goto out;
	}
	/* Prove the repair with the reader's own eyes, keeping the report of the log as
	 * it was. */
	rc = lf_verify_walk(&io, &after, NULL, NULL);
	if (rc == 0 && (after.chunks_ok != rep->chunks_ok || after.events != rep->events))
		rc = lf_fail(LF_ECORRUPT, "the repaired log reads %" PRIu64 " chunks, not %" PRIu64,
			     after.chunks_ok, rep->chunks_ok);
	else if (rc < 0)
		rc = lf_fail(-rc, "the repaired log does not verify: %s", after.problem);
out:
	free(tail);
	free(e);
	return rc;
}
