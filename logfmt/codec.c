/*
 * codec.c: compressing chunk payloads and the embedded image with lz4 or zstd, and the
 * bounds a reader checks before it trusts a stored length.
 *
 * A payload that a codec does not shrink is stored as is (codec none), so a reader
 * accepts lz4 and zstd only for stored lengths below the raw length. The stated maximum
 * ratios (lz4 about 255:1, zstd 32768:1 through RLE blocks) bound the raw length a stored
 * length can claim, so a forged header cannot make us allocate far more than it holds.
 */
#include "lf_priv.h"

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

size_t lf_compress_bound(size_t n)
{
	size_t b = ZSTD_compressBound(n);

	if (n <= LZ4_MAX_INPUT_SIZE && (size_t)LZ4_compressBound((int)n) > b)
		b = (size_t)LZ4_compressBound((int)n);
	return b > n ? b : n;
}

size_t lf_compress(void *zctx, uint32_t codec, int level, const void *src, size_t n, void *dst,
		   size_t cap, uint32_t *used)
{
	size_t got = 0;

	if (codec == LF_CODEC_LZ4 && n <= LZ4_MAX_INPUT_SIZE && cap <= INT32_MAX) {
		int r = LZ4_compress_default(src, dst, (int)n, (int)cap);

		got = r > 0 ? (size_t)r : 0;
	} else if (codec == LF_CODEC_ZSTD) {
		size_t r = zctx ? ZSTD_compressCCtx(zctx, dst, cap, src, n, level)
				: ZSTD_compress(dst, cap, src, n, level);

		got = ZSTD_isError(r) ? 0 : r;
	}
	if (got > 0 && got < n) {
		*used = codec;
		return got;
	}
	*used = LF_CODEC_NONE;
	if (n > 0)
		memcpy(dst, src, n);
	return n;
}

int lf_decompress(void *zctx, uint32_t codec, const void *src, size_t stored, void *dst,
		  size_t raw_len, const char **why)
{
	switch (codec) {
	case LF_CODEC_NONE:
		if (stored != raw_len) {
			*why = "stored length differs from raw length";
			return -1;
		}
		if (raw_len > 0)
			memcpy(dst, src, raw_len);
		return 0;
	case LF_CODEC_LZ4: {
		int r;

		if (stored > INT32_MAX || raw_len > INT32_MAX) {
			*why = "lz4 data too large";
			return -1;
		}
		r = LZ4_decompress_safe(src, dst, (int)stored, (int)raw_len);
		if (r < 0) {
			*why = "lz4 data does not decode";
			return -1;
		}
		if ((size_t)r != raw_len) {
			*why = "lz4 data decodes to a length other than the raw length";
			return -1;
		}
		return 0;
	}
	case LF_CODEC_ZSTD: {
		size_t r = zctx ? ZSTD_decompressDCtx(zctx, dst, raw_len, src, stored)
				: ZSTD_decompress(dst, raw_len, src, stored);

		if (ZSTD_isError(r)) {
			*why = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall
				   ? "zstd data decodes to more than the raw length"
				   : "zstd data does not decode";
			return -1;
		}
		if (r != raw_len) {
			*why = "zstd data decodes to a length other than the raw length";
			return -1;
		}
		return 0;
	}
	default:
		*why = "unknown codec";
		return -1;
	}
}

bool lf_stored_plausible(uint32_t codec, uint64_t stored, uint64_t raw)
{
	switch (codec) {
	case LF_CODEC_NONE:
		return stored == raw;
	case LF_CODEC_LZ4:
		return stored > 0 && stored < raw && raw <= stored * 256 + 64;
	case LF_CODEC_ZSTD:
		return stored > 0 && stored < raw && raw <= stored * 32768;
	default:
		return false;
	}
}
