/*
 * header.c: the file header both ways (FORMAT.md "Header"): the preamble (magic,
 * version, body length), the body (creation time, four strings, the image's hash, length
 * and stored bytes; in version 4 also the initrd's path, hash, length and stored bytes)
 * and the CRC-32C over all of it.
 *
 * The parser trusts nothing in the body even after the CRC matched: every length is
 * checked against what is left, strings may not hold NUL bytes (they become C strings),
 * and an embedded image or initrd must decompress to its stated length and match its
 * hash.
 */
#include "lf_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* Bytes of a stored file's fixed fields: hash, length, codec, stored length. */
#define LF_BLOB_FIXED (8 + 8 + 1 + 8)

static const char *lf_or_empty(const char *s)
{
	return s ? s : "";
}

/* A file the header carries (the image, the initrd), as the writer sees it. */
struct lf_blob {
	const char *name; /* "image", "initrd": for messages */
	uint64_t hash, len;
	const void *data; /* NULL: not embedded */
};

static int lf_blob_check(const struct lf_blob *b)
{
	if (b->data == NULL || b->len == 0)
		return 0;
	if (b->len > LF_IMAGE_MAX)
		return lf_fail(LF_EINVAL, "%s of %" PRIu64 " bytes (at most %llu embedded)",
			       b->name, b->len, (unsigned long long)LF_IMAGE_MAX);
	if (lf_hash64(b->data, b->len) != b->hash)
		return lf_fail(LF_EINVAL, "%s_hash is not lf_hash64 of the %s bytes", b->name,
			       b->name);
	return 0;
}

/* Put a blob's fields and bytes at p + *n (room for them was reserved). */
static void lf_blob_put(const struct lf_blob *b, uint32_t codec, int level, uint8_t *p,
			size_t *n, size_t room)
{
	uint32_t used = LF_CODEC_NONE;
	size_t stored = 0;

	lf_put64(p + *n, b->hash);
	lf_put64(p + *n + 8, b->len);
	*n += LF_BLOB_FIXED;
	if (b->data != NULL && b->len > 0) {
		/* Compress straight into place; codec and stored length go before it. */
		stored = lf_compress(NULL, codec, level, b->data, b->len, p + *n, room - *n,
				     &used);
	}
	p[*n - 9] = (uint8_t)used;
	lf_put64(p + *n - 8, stored);
	*n += stored;
}

int lf_header_encode(const struct lf_header *h, uint32_t codec, int level, uint8_t **out,
		     size_t *len)
{
	bool has_initrd = h->initrd_len > 0;
	const char *text[5] = {lf_or_empty(h->tool), lf_or_empty(h->config),
			       lf_or_empty(h->cmdline), lf_or_empty(h->image_path),
			       lf_or_empty(h->initrd_path)};
	static const char *const text_name[5] = {"tool", "config", "cmdline", "image_path",
						 "initrd_path"};
	int ntext = has_initrd ? 5 : 4;
	struct lf_blob blob[2] = {
	    {"image", h->image_hash, h->image_len, h->image},
	    {"initrd", h->initrd_hash, h->initrd_len, h->initrd},
	};
	int nblob = has_initrd ? 2 : 1;
	size_t max = LF_PREAMBLE_BYTES + 8 + LF_HEADER_CRC_BYTES;
	size_t n = LF_PREAMBLE_BYTES;
	uint8_t *p;
	int rc;

	for (int i = 0; i < nblob; i++) {
		rc = lf_blob_check(&blob[i]);
		if (rc < 0)
			return rc;
		max += LF_BLOB_FIXED;
		if (blob[i].data != NULL && blob[i].len > 0)
			max += lf_compress_bound(blob[i].len);
	}
	for (int i = 0; i < ntext; i++) {
		size_t l = strlen(text[i]);

		if (l > LF_TEXT_MAX)
			return lf_fail(LF_EINVAL, "header %s of %zu bytes (at most %u)",
				       text_name[i], l, LF_TEXT_MAX);
		max += LF_VARINT_MAX + l;
	}
	p = malloc(max);
	if (p == NULL)
		return lf_fail(LF_ENOMEM, "no memory for a header of %zu bytes", max);

	memcpy(p, LF_MAGIC, LF_MAGIC_BYTES);
	lf_put32(p + 8, has_initrd ? LF_VERSION : LF_VERSION_NO_INITRD);
	lf_put64(p + n, h->created_ns);
	n += 8;
	for (int i = 0; i < 4; i++) {
		size_t l = strlen(text[i]);

		n += lf_varint_put(p + n, l);
		memcpy(p + n, text[i], l);
		n += l;
	}
	lf_blob_put(&blob[0], codec, level, p, &n, max - LF_HEADER_CRC_BYTES);
	if (has_initrd) {
		size_t l = strlen(text[4]);

		n += lf_varint_put(p + n, l);
		memcpy(p + n, text[4], l);
		n += l;
		lf_blob_put(&blob[1], codec, level, p, &n, max - LF_HEADER_CRC_BYTES);
	}
	if (n - LF_PREAMBLE_BYTES > LF_HEADER_MAX) {
		free(p);
		return lf_fail(LF_EINVAL, "header of %zu bytes is too large", n);
	}
	lf_put32(p + 12, (uint32_t)(n - LF_PREAMBLE_BYTES));
	lf_put32(p + n, lf_crc32c(0, p, n));
	n += LF_HEADER_CRC_BYTES;
	*out = p;
	*len = n;
	return 0;
}

void lf_header_store_free(struct lf_header_store *hs)
{
	free(hs->text);
	free(hs->image);
	free(hs->initrd);
	memset(hs, 0, sizeof(*hs));
}

static int lf_hdr_bad(const char *what)
{
	return lf_fail(LF_ECORRUPT, "header: %s", what);
}

/* A blob's place in the body, found by the first pass. */
struct lf_blob_at {
	uint64_t hash, len, stored;
	uint32_t codec;
	size_t at; /* offset of the stored bytes */
};

/*
 * Read a blob's fixed fields at *off; last: its bytes must end the body. Messages name
 * the blob (name) the way FORMAT.md does.
 */
static int lf_blob_scan(const uint8_t *body, size_t len, size_t *off, bool last,
			struct lf_blob_at *b, const char *name)
{
	char why[96];

	if (len - *off < LF_BLOB_FIXED) {
		snprintf(why, sizeof(why), "body ends before the %s fields", name);
		return lf_hdr_bad(why);
	}
	b->hash = lf_get64(body + *off);
	b->len = lf_get64(body + *off + 8);
	b->codec = body[*off + 16];
	b->stored = lf_get64(body + *off + 17);
	*off += LF_BLOB_FIXED;
	b->at = *off;
	if (last ? b->stored != len - *off : b->stored > len - *off) {
		snprintf(why, sizeof(why), "%s stored length disagrees with the body length",
			 name);
		return lf_hdr_bad(why);
	}
	*off += b->stored;
	if (b->stored > 0 && b->len > LF_IMAGE_MAX)
		snprintf(why, sizeof(why), "embedded %s length past the limit", name);
	else if (b->stored == 0 && b->codec != LF_CODEC_NONE)
		snprintf(why, sizeof(why), "%s codec set for an %s that is not embedded", name,
			 name);
	else if (b->stored > 0 && !lf_stored_plausible(b->codec, b->stored, b->len))
		snprintf(why, sizeof(why), "%s codec and lengths do not fit together", name);
	else
		return 0;
	return lf_hdr_bad(why);
}

/* Decompress an embedded blob into a new buffer and check its hash. */
static int lf_blob_load(const uint8_t *body, const struct lf_blob_at *b, const char *name,
			uint8_t **out)
{
	const char *why;
	char msg[96];

	*out = malloc(b->len);
	if (*out == NULL)
		return lf_fail(LF_ENOMEM, "no memory for an %s of %" PRIu64 " bytes", name,
			       b->len);
	if (lf_decompress(NULL, b->codec, body + b->at, b->stored, *out, b->len, &why) < 0)
		return lf_fail(LF_ECORRUPT, "header: %s: %s", name, why);
	if (!lf_sum_ok(b->hash, lf_hash64(*out, b->len))) {
		snprintf(msg, sizeof(msg), "embedded %s does not match its hash", name);
		return lf_hdr_bad(msg);
	}
	return 0;
}

/* Read a string at *off into (at, len). */
static int lf_text_scan(const uint8_t *body, size_t len, size_t *off, size_t *at, size_t *l)
{
	uint64_t v;
	int rc = lf_varint_get(body, len, off, &v);

	if (rc == LF_VARINT_SHORT)
		return lf_hdr_bad("body ends inside a string length");
	if (rc < 0)
		return lf_hdr_bad("overlong varint in a string length");
	if (v > len - *off)
		return lf_hdr_bad("a string runs past the end of the body");
	if (memchr(body + *off, '\0', v) != NULL)
		return lf_hdr_bad("a string holds a NUL byte");
	*at = *off;
	*l = v;
	*off += v;
	return 0;
}

int lf_header_parse(const uint8_t *body, size_t len, uint32_t version,
		    struct lf_header_store *hs)
{
	const char **text[5] = {&hs->h.tool, &hs->h.config, &hs->h.cmdline, &hs->h.image_path,
				&hs->h.initrd_path};
	bool v4 = version >= 4;
	size_t text_at[5] = {0}, text_len[5] = {0};
	size_t off = 8, total = 0;
	struct lf_blob_at img, ird = {0};
	char *t;
	int rc;

	memset(hs, 0, sizeof(*hs));
	hs->h.version = version;
	if (len < 8)
		return lf_hdr_bad("body ends before the creation time");
	hs->h.created_ns = lf_get64(body);
	for (int i = 0; i < 4; i++) {
		rc = lf_text_scan(body, len, &off, &text_at[i], &text_len[i]);
		if (rc < 0)
			return rc;
	}
	rc = lf_blob_scan(body, len, &off, !v4, &img, "image");
	if (rc < 0)
		return rc;
	if (v4) {
		rc = lf_text_scan(body, len, &off, &text_at[4], &text_len[4]);
		if (rc == 0)
			rc = lf_blob_scan(body, len, &off, true, &ird, "initrd");
		if (rc < 0)
			return rc;
		/* Version 4 is written only for a log with an initrd. */
		if (ird.len == 0)
			return lf_hdr_bad("version 4 header with an initrd of 0 bytes");
	}
	hs->h.image_hash = img.hash;
	hs->h.image_len = img.len;
	hs->h.image_codec = img.codec;
	hs->h.initrd_hash = ird.hash;
	hs->h.initrd_len = ird.len;
	hs->h.initrd_codec = ird.codec;

	for (int i = 0; i < 5; i++)
		total += text_len[i] + 1;
	t = malloc(total);
	if (t == NULL)
		return lf_fail(LF_ENOMEM, "no memory for header strings");
	hs->text = t;
	for (int i = 0; i < 5; i++) {
		memcpy(t, body + text_at[i], text_len[i]);
		t[text_len[i]] = '\0';
		*text[i] = t;
		t += text_len[i] + 1;
	}
	if (img.stored > 0) {
		rc = lf_blob_load(body, &img, "image", &hs->image);
		if (rc < 0) {
			lf_header_store_free(hs);
			return rc;
		}
		hs->h.image = hs->image;
		hs->h.image_stored = img.stored;
	}
	if (ird.stored > 0) {
		rc = lf_blob_load(body, &ird, "initrd", &hs->initrd);
		if (rc < 0) {
			lf_header_store_free(hs);
			return rc;
		}
		hs->h.initrd = hs->initrd;
		hs->h.initrd_stored = ird.stored;
	}
	return 0;
}
