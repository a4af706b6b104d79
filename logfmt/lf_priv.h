/*
 * lf_priv.h: what the files of logfmt/ share and nobody else may use: the byte layout
 * constants of FORMAT.md, little-endian and varint helpers, the event codec, the chunk,
 * index and footer codecs, and the reader's insides (verify.c walks chunks with them).
 *
 * Tests include this header to reach the layout and the two CRC-32C paths; other modules
 * must not (they get log.h only).
 */
#ifndef REWIND_LOGFMT_LF_PRIV_H
#define REWIND_LOGFMT_LF_PRIV_H

#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- layout (FORMAT.md) ---------------------------------------------------------------- */

/* Like PNG's: a high-bit byte, CR LF, ^Z and LF catch 7-bit and text-mode transfers. */
#define LF_MAGIC	    "\x89RWL\r\n\x1a\n"
#define LF_MAGIC_BYTES	    8
#define LF_PREAMBLE_BYTES   16 /* magic, version, body length */
#define LF_HEADER_CRC_BYTES 4

#define LF_CHUNK_MAGIC "RWCK"
#define LF_INDEX_MAGIC "RWIX" /* differs from the chunk magic in two bytes */
#define LF_END_MAGIC   "RWLOGEND"

#define LF_CHUNK_HDR_BYTES   48
#define LF_CHUNK_CRC_AT	     44 /* the CRC field: covers bytes 0..43 and the stored payload */
#define LF_INDEX_HDR_BYTES   16
#define LF_INDEX_ENTRY_BYTES 32
#define LF_INDEX_CRC_BYTES   4
#define LF_FOOTER_BYTES	     44
#define LF_FOOTER_CRC_AT     32

#define LF_CHUNK_RAW_MAX (16u << 20) /* most raw payload bytes in one chunk */
#define LF_EV_MIN_BYTES	 3	     /* the smallest event: tag, pos delta, one more varint */
#define LF_EV_MAX_BYTES	 (1 + 10 + 5 + 5 + LF_INPUT_MAX)
#define LF_TEXT_MAX	 (16u << 20)   /* longest header string */
#define LF_IMAGE_MAX	 (1ull << 30)  /* largest embedded image (raw) */
#define LF_HEADER_MAX	 (0x7fffffffu) /* largest header body */

#define LF_DEFAULT_CHUNK_EVENTS 8192
#define LF_DEFAULT_CHUNK_BYTES	(256u << 10)
#define LF_DEFAULT_FLUSH_MS	500

/*
 * Fuzzing builds skip checksum comparisons so that the fuzzer reaches the decoders
 * behind them (as zstd and others do); nothing else changes.
 */
static inline bool lf_sum_ok(uint64_t stored, uint64_t computed)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)stored;
	(void)computed;
	return true;
#else
	return stored == computed;
#endif
}

/* ---- bytes --------------------------------------------------------------------------- */

static inline void lf_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void lf_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t lf_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t lf_get64(const uint8_t *p)
{
	return (uint64_t)lf_get32(p) | (uint64_t)lf_get32(p + 4) << 32;
}

/* LEB128: 7 bits a byte, low first; at most 10 bytes. Returns the bytes written. */
static inline size_t lf_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

#define LF_VARINT_MAX	10
#define LF_VARINT_SHORT (-1) /* the data ends inside the varint */
#define LF_VARINT_LONG	(-2) /* more than 10 bytes, past 64 bits, or not the shortest form */

/*
 * Read a varint at p[*off], len bytes in all. Only the shortest encoding is accepted, so
 * every value has exactly one form and a flipped bit cannot make an equal-valued twin.
 */
static inline int lf_varint_get(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t x = 0;

	for (size_t i = 0; i < LF_VARINT_MAX; i++) {
		if (*off + i >= len)
			return LF_VARINT_SHORT;
		uint8_t b = p[*off + i];

		if (i == LF_VARINT_MAX - 1 && b > 1)
			return LF_VARINT_LONG;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return LF_VARINT_LONG;
			*off += i + 1;
			*v = x;
			return 0;
		}
	}
	return LF_VARINT_LONG;
}

static inline uint64_t lf_zigzag(uint64_t delta)
{
	return (delta << 1) ^ (0 - (delta >> 63));
}

static inline uint64_t lf_unzigzag(uint64_t z)
{
	return (z >> 1) ^ (0 - (z & 1));
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Record a detail line for this thread (printf-style); returns -err. Keeps errno. */
int lf_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3))) LF_WUR;

/* ---- CRC ------------------------------------------------------------------------------- */

uint32_t lf_crc32c_sw(uint32_t crc, const void *data, size_t len);
/* The SSE4.2 instruction path; the table path where the CPU lacks it. */
uint32_t lf_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool lf_crc32c_hw_available(void);

/* ---- codecs ---------------------------------------------------------------------------- */

/* Largest output lf_compress may produce for n input bytes. */
size_t lf_compress_bound(size_t n);
/*
 * Compress src with codec into dst (cap >= lf_compress_bound(n)). Returns the stored
 * length and sets *used to the codec actually used: LF_CODEC_NONE (a copy) when the codec
 * would not shrink the data or failed. zctx: a ZSTD_CCtx reused between calls, or NULL.
 */
size_t lf_compress(void *zctx, uint32_t codec, int level, const void *src, size_t n, void *dst,
		   size_t cap, uint32_t *used);
/*
 * Decompress exactly raw_len bytes. Returns 0, or -1 with *why set when the stored bytes
 * are not a valid encoding of raw_len bytes. zctx: a ZSTD_DCtx or NULL.
 */
int lf_decompress(void *zctx, uint32_t codec, const void *src, size_t stored, void *dst,
		  size_t raw_len, const char **why) LF_WUR;
/* Whether stored bytes with this codec can plausibly encode raw bytes (before allocating). */
bool lf_stored_plausible(uint32_t codec, uint64_t stored, uint64_t raw);

/* ---- events ---------------------------------------------------------------------------- */

/* Delta state inside one chunk: the previous event's position and the last clock value. */
struct lf_ev_state {
	uint64_t pos, clock;
};

/* Check an event a caller wants to append; returns 0 or -LF_EINVAL with detail. */
int lf_ev_check(const struct lf_event *ev) LF_WUR;
/* Encode a checked event at out (LF_EV_MAX_BYTES free); returns its length. */
size_t lf_ev_encode(uint8_t *out, const struct lf_event *ev, struct lf_ev_state *st);
/* Decode one event at p[*off]; returns 0, or -1 with *why set. INPUT data points into p. */
int lf_ev_decode(const uint8_t *p, size_t len, size_t *off, struct lf_ev_state *st,
		 struct lf_event *ev, const char **why) LF_WUR;

/* ---- header ---------------------------------------------------------------------------- */

/* Encode the whole header (preamble, body, CRC) into a malloc'd buffer. */
int lf_header_encode(const struct lf_header *h, uint32_t codec, int level, uint8_t **out,
		     size_t *len) LF_WUR;

/* A decoded header and the memory behind its strings and image. */
struct lf_header_store {
	struct lf_header h;
	char *text;	/* the strings, NUL-terminated, one after another */
	uint8_t *image; /* the decompressed image, or NULL */
	uint8_t *initrd; /* the decompressed initrd, or NULL */
};
/*
 * Parse a body (bytes after the preamble, before the CRC; CRC already checked) of the
 * given format version (LF_VERSION_MIN .. LF_VERSION).
 */
int lf_header_parse(const uint8_t *body, size_t len, uint32_t version,
		    struct lf_header_store *hs) LF_WUR;
void lf_header_store_free(struct lf_header_store *hs);

/* ---- chunks, index, footer -------------------------------------------------------------- */

struct lf_chunk_hdr {
	uint32_t codec, raw_len, stored_len, events;
	uint64_t first_pos, last_pos, base_clock;
	uint32_t crc;
};

void lf_chunk_hdr_encode(uint8_t *out, const struct lf_chunk_hdr *c);
/* Parse and sanity-check the fixed fields (not the CRC); returns NULL or a reason. */
const char *lf_chunk_hdr_parse(const uint8_t *in, struct lf_chunk_hdr *c);
/*
 * Check a decompressed payload: exactly c->events events that decode, positions from
 * first_pos to last_pos, no byte left over. Counts events by kind into kinds (may be
 * NULL). Returns 0, or -1 with *why and *at (payload offset) set.
 */
int lf_chunk_check(const struct lf_chunk_hdr *c, const uint8_t *raw, uint64_t *kinds,
		   const char **why, size_t *at) LF_WUR;

struct lf_index_entry {
	uint64_t offset, first_pos, last_pos, events;
};

struct lf_footer {
	uint64_t index_offset, events, last_pos, chunks;
};

/* Size of the index and footer for n chunks. */
static inline uint64_t lf_tail_bytes(uint64_t n)
{
	return LF_INDEX_HDR_BYTES + n * LF_INDEX_ENTRY_BYTES + LF_INDEX_CRC_BYTES + LF_FOOTER_BYTES;
}
/* Encode the index and footer for entries (one malloc'd buffer of lf_tail_bytes(n)). */
int lf_tail_encode(const struct lf_index_entry *e, uint64_t n, uint64_t index_offset, uint8_t **out,
		   size_t *len) LF_WUR;
/* Parse a footer (LF_FOOTER_BYTES); returns NULL or a reason. */
const char *lf_footer_parse(const uint8_t *in, struct lf_footer *f);

/* ---- the reader ------------------------------------------------------------------------- */

struct lf_reader {
	struct lf_io io;
	bool seekable;
	int64_t base;	     /* io offset of the log's first byte (seekable) */
	uint64_t off;	     /* log offset of the next byte to read */
	uint64_t file_bytes; /* seekable: size of the log */
	struct lf_header_store hs;
	uint64_t header_bytes;

	/*
	 * finalized: a consistent footer and index were found. indexed: they were read up
	 * front (seekable io) and index holds the entries; a stream checks its trailing
	 * index at the end instead, against what it read (seen_*).
	 */
	bool finalized, indexed;
	struct lf_footer foot;
	struct lf_index_entry *index;
	const char *tail_why; /* why no usable index was found, or NULL */

	/* Streams check a trailing index against what they read instead. */
	uint64_t seen_chunks, seen_events, seen_last_pos;
	uint32_t seen_entries_crc;

	/* The chunk being read. */
	uint64_t chunk_no;  /* number of the next chunk to load */
	uint64_t chunk_off; /* offset of the loaded chunk */
	uint64_t prev_last; /* last_pos of the chunk before the next one */
	struct lf_chunk_hdr ch;
	uint64_t kinds[LF_KIND_MAX + 1]; /* events by kind in the loaded chunk */
	uint8_t *stored;
	size_t stored_cap;
	uint8_t *rawbuf;
	size_t raw_cap;
	const uint8_t *raw; /* stored (codec none) or rawbuf */
	size_t raw_off;
	uint32_t ev_left;
	struct lf_ev_state st;
	void *dctx; /* ZSTD_DCtx */

	bool have_pending; /* an event found by seek, returned by the next lf_reader_next */
	struct lf_event pending;
	bool returned_any; /* streams: an event was handed out (seek cannot go back) */
	uint64_t returned_pos;
	bool done; /* at the end or after an error */
};

/*
 * Load the next chunk (CRC, decompression, payload check). Returns 1 when a chunk is
 * loaded, 0 at the end of the chunks, or a negative lf_err with detail.
 */
int lf_rd_load_chunk(struct lf_reader *r) LF_WUR;

#endif
