/*
 * header.c: the file header both ways (FORMAT.md "Header"): the preamble (magic,
 * version, body length), the body (creation time, four strings, the image's hash, length
 * and stored bytes) and the CRC-32C over all of it.
 *
 * The parser trusts nothing in the body even after the CRC matched: every length is
 * checked against what is left, strings may not hold NUL bytes (they become C strings),
 * and an embedded image must decompress to its stated length and match its hash.
 */
#include "lf_priv.h"

#include <inttypes.h>
#include <stdlib.h>

static const char *lf_or_empty(const char *s)
{
	return s ? s : "";
}

int lf_header_encode(const struct lf_header *h, uint32_t codec, int level, uint8_t **out,
		     size_t *len)
{
	const char *text[4] = {lf_or_empty(h->tool), lf_or_empty(h->config),
			       lf_or_empty(h->cmdline), lf_or_empty(h->image_path)};
	static const char *const text_name[4] = {"tool", "config", "cmdline", "image_path"};
	bool embed = h->image != NULL && h->image_len > 0;
	size_t max = LF_PREAMBLE_BYTES + 8 + 8 + 8 + 1 + 8 + LF_HEADER_CRC_BYTES;
	size_t n = LF_PREAMBLE_BYTES, stored = 0;
	uint32_t used = LF_CODEC_NONE;
	uint8_t *p;

	if (embed && h->image_len > LF_IMAGE_MAX)
		return lf_fail(LF_EINVAL, "image of %" PRIu64 " bytes (at most %llu embedded)",
			       h->image_len, (unsigned long long)LF_IMAGE_MAX);
	if (embed && lf_hash64(h->image, h->image_len) != h->image_hash)
		return lf_fail(LF_EINVAL, "image_hash is not lf_hash64 of the image bytes");
	for (int i = 0; i < 4; i++) {
		size_t l = strlen(text[i]);

		if (l > LF_TEXT_MAX)
			return lf_fail(LF_EINVAL, "header %s of %zu bytes (at most %u)",
				       text_name[i], l, LF_TEXT_MAX);
		max += LF_VARINT_MAX + l;
	}
	if (embed)
		max += lf_compress_bound(h->image_len);
	p = malloc(max);
	if (p == NULL)
		return lf_fail(LF_ENOMEM, "no memory for a header of %zu bytes", max);

	memcpy(p, LF_MAGIC, LF_MAGIC_BYTES);
	lf_put32(p + 8, LF_VERSION);
	lf_put64(p + n, h->created_ns);
	n += 8;
	for (int i = 0; i < 4; i++) {
		size_t l = strlen(text[i]);

		n += lf_varint_put(p + n, l);
		memcpy(p + n, text[i], l);
		n += l;
	}
	lf_put64(p + n, h->image_hash);
	lf_put64(p + n + 8, h->image_len);
	n += 16 + 1 + 8;
	if (embed) {
		/* Compress straight into place; codec and stored length go before it. */
		stored = lf_compress(NULL, codec, level, h->image, h->image_len, p + n,
				     max - n - LF_HEADER_CRC_BYTES, &used);
	}
	p[n - 9] = (uint8_t)used;
	lf_put64(p + n - 8, stored);
	n += stored;
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
	memset(hs, 0, sizeof(*hs));
}

static int lf_hdr_bad(const char *what)
{
	return lf_fail(LF_ECORRUPT, "header: %s", what);
}

int lf_header_parse(const uint8_t *body, size_t len, struct lf_header_store *hs)
{
	const char **text[4] = {&hs->h.tool, &hs->h.config, &hs->h.cmdline, &hs->h.image_path};
	size_t text_at[4], text_len[4];
	size_t off = 8, total = 0;
	uint64_t stored;
	const char *why;
	char *t;

	memset(hs, 0, sizeof(*hs));
	hs->h.version = LF_VERSION;
	if (len < 8)
		return lf_hdr_bad("body ends before the creation time");
	hs->h.created_ns = lf_get64(body);
	for (int i = 0; i < 4; i++) {
		uint64_t l;
		int rc = lf_varint_get(body, len, &off, &l);

		if (rc == LF_VARINT_SHORT)
			return lf_hdr_bad("body ends inside a string length");
		if (rc < 0)
			return lf_hdr_bad("overlong varint in a string length");
		if (l > len - off)
			return lf_hdr_bad("a string runs past the end of the body");
		if (memchr(body + off, '\0', l) != NULL)
			return lf_hdr_bad("a string holds a NUL byte");
		text_at[i] = off;
		text_len[i] = l;
		total += l + 1;
		off += l;
	}
	if (len - off < 8 + 8 + 1 + 8)
		return lf_hdr_bad("body ends before the image fields");
	hs->h.image_hash = lf_get64(body + off);
	hs->h.image_len = lf_get64(body + off + 8);
	hs->h.image_codec = body[off + 16];
	stored = lf_get64(body + off + 17);
	off += 25;
	if (stored != len - off)
		return lf_hdr_bad("image stored length disagrees with the body length");
	if (stored > 0 && hs->h.image_len > LF_IMAGE_MAX)
		return lf_hdr_bad("embedded image length past the limit");
	if (stored == 0 && hs->h.image_codec != LF_CODEC_NONE)
		return lf_hdr_bad("image codec set for an image that is not embedded");
	if (stored > 0 && !lf_stored_plausible(hs->h.image_codec, stored, hs->h.image_len))
		return lf_hdr_bad("image codec and lengths do not fit together");

	t = malloc(total);
	if (t == NULL)
		return lf_fail(LF_ENOMEM, "no memory for header strings");
	hs->text = t;
	for (int i = 0; i < 4; i++) {
		memcpy(t, body + text_at[i], text_len[i]);
		t[text_len[i]] = '\0';
		*text[i] = t;
		t += text_len[i] + 1;
	}
	if (stored > 0) {
		hs->image = malloc(hs->h.image_len);
		if (hs->image == NULL) {
			lf_header_store_free(hs);
			return lf_fail(LF_ENOMEM, "no memory for an image of %" PRIu64 " bytes",
				       hs->h.image_len);
		}
		if (lf_decompress(NULL, hs->h.image_codec, body + off, stored, hs->image,
				  hs->h.image_len, &why) < 0) {
			lf_header_store_free(hs);
			return lf_fail(LF_ECORRUPT, "header: image: %s", why);
		}
		if (!lf_sum_ok(hs->h.image_hash, lf_hash64(hs->image, hs->h.image_len))) {
			lf_header_store_free(hs);
			return lf_hdr_bad("embedded image does not match its hash");
		}
		hs->h.image = hs->image;
		hs->h.image_stored = stored;
	}
	return 0;
}
