/*
 * chunk.c: the fixed chunk header, the check of a decompressed chunk payload, and the
 * index and footer a finished log ends with (FORMAT.md "Chunks", "Index", "Footer").
 *
 * A payload is checked whole before any of its events is handed out, so a chunk yields
 * all its events or none: a reader never returns half a chunk and then an error.
 */
#include "lf_priv.h"

#include <stdlib.h>

void lf_chunk_hdr_encode(uint8_t *out, const struct lf_chunk_hdr *c)
{
	memcpy(out, LF_CHUNK_MAGIC, 4);
	out[4] = (uint8_t)c->codec;
	out[5] = out[6] = out[7] = 0;
	lf_put32(out + 8, c->raw_len);
	lf_put32(out + 12, c->stored_len);
	lf_put32(out + 16, c->events);
	lf_put64(out + 20, c->first_pos);
	lf_put64(out + 28, c->last_pos);
	lf_put64(out + 36, c->base_clock);
	lf_put32(out + LF_CHUNK_CRC_AT, c->crc);
}

const char *lf_chunk_hdr_parse(const uint8_t *in, struct lf_chunk_hdr *c)
{
	if (memcmp(in, LF_CHUNK_MAGIC, 4) != 0)
		return "bad chunk magic";
	c->codec = in[4];
	c->raw_len = lf_get32(in + 8);
	c->stored_len = lf_get32(in + 12);
	c->events = lf_get32(in + 16);
	c->first_pos = lf_get64(in + 20);
	c->last_pos = lf_get64(in + 28);
	c->base_clock = lf_get64(in + 36);
	c->crc = lf_get32(in + LF_CHUNK_CRC_AT);
	if (c->codec > LF_CODEC_ZSTD)
		return "unknown codec";
	if (in[5] | in[6] | in[7])
		return "reserved bytes are not zero";
	if (c->raw_len > LF_CHUNK_RAW_MAX)
		return "raw length past the 16 MiB limit";
	if (c->events == 0)
		return "no events";
	if (c->events > c->raw_len / LF_EV_MIN_BYTES)
		return "more events than the raw length can hold";
	if (c->first_pos > c->last_pos)
		return "first position after last position";
	if (!lf_stored_plausible(c->codec, c->stored_len, c->raw_len))
		return "codec and lengths do not fit together";
	return NULL;
}

int lf_chunk_check(const struct lf_chunk_hdr *c, const uint8_t *raw, uint64_t *kinds,
		   const char **why, size_t *at)
{
	struct lf_ev_state st = {.pos = c->first_pos, .clock = c->base_clock};
	struct lf_event ev;
	size_t off = 0;

	for (uint32_t i = 0; i < c->events; i++) {
		*at = off;
		if (off == c->raw_len) {
			*why = "fewer events than the chunk header says";
			return -1;
		}
		if (lf_ev_decode(raw, c->raw_len, &off, &st, &ev, why) < 0)
			return -1;
		/* The first delta is from first_pos, so a first event after it is a lie. */
		if (i == 0 && ev.pos != c->first_pos) {
			*why = "first event's position disagrees with the chunk header";
			return -1;
		}
		if (ev.pos > c->last_pos) {
			*why = "event position past the chunk header's last position";
			return -1;
		}
		if (kinds)
			kinds[ev.kind]++;
	}
	*at = off;
	if (off != c->raw_len) {
		*why = "bytes left after the last event (more events than the header says?)";
		return -1;
	}
	if (st.pos != c->last_pos) {
		*why = "last event's position disagrees with the chunk header";
		return -1;
	}
	return 0;
}

int lf_tail_encode(const struct lf_index_entry *e, uint64_t n, uint64_t index_offset, uint8_t **out,
		   size_t *len)
{
	size_t size = lf_tail_bytes(n), at = LF_INDEX_HDR_BYTES;
	uint64_t events = 0, last_pos = 0;
	uint8_t *p = malloc(size);
	uint8_t *foot;

	if (p == NULL)
		return lf_fail(LF_ENOMEM, "no memory for an index of %llu chunks",
			       (unsigned long long)n);
	memcpy(p, LF_INDEX_MAGIC, 4);
	lf_put32(p + 4, 0);
	lf_put64(p + 8, n);
	for (uint64_t i = 0; i < n; i++, at += LF_INDEX_ENTRY_BYTES) {
		lf_put64(p + at, e[i].offset);
		lf_put64(p + at + 8, e[i].first_pos);
		lf_put64(p + at + 16, e[i].last_pos);
		lf_put64(p + at + 24, e[i].events);
		events += e[i].events;
		last_pos = e[i].last_pos;
	}
	lf_put32(p + at, lf_crc32c(0, p, at));
	foot = p + at + LF_INDEX_CRC_BYTES;
	lf_put64(foot, index_offset);
	lf_put64(foot + 8, events);
	lf_put64(foot + 16, last_pos);
	lf_put64(foot + 24, n);
	lf_put32(foot + LF_FOOTER_CRC_AT, lf_crc32c(0, foot, LF_FOOTER_CRC_AT));
	memcpy(foot + 36, LF_END_MAGIC, 8);
	*out = p;
	*len = size;
	return 0;
}

const char *lf_footer_parse(const uint8_t *in, struct lf_footer *f)
{
	if (memcmp(in + 36, LF_END_MAGIC, 8) != 0)
		return "no end magic";
	if (!lf_sum_ok(lf_get32(in + LF_FOOTER_CRC_AT), lf_crc32c(0, in, LF_FOOTER_CRC_AT)))
		return "footer CRC mismatch";
	f->index_offset = lf_get64(in);
	f->events = lf_get64(in + 8);
	f->last_pos = lf_get64(in + 16);
	f->chunks = lf_get64(in + 24);
	return NULL;
}
