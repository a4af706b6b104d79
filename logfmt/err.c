/*
 * err.c: logfmt's error codes and their texts, the per-thread detail line, and the names
 * of event kinds and codecs (the words tools print and parse).
 *
 * The detail buffer is thread-local so that a recorder and an FT stream reader in one
 * process never see each other's messages. Nothing here prints.
 */
#include "lf_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LF_DETAIL_MAX 512

static _Thread_local char lf_detail[LF_DETAIL_MAX];

const char *lf_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case LF_OK:
		return "success";
	case LF_EINVAL:
		return "invalid argument";
	case LF_EIO:
		return "log I/O error";
	case LF_ENOMEM:
		return "out of memory";
	case LF_EFORMAT:
		return "not a rewind log";
	case LF_EVERSION:
		return "unsupported log format version";
	case LF_ECORRUPT:
		return "log is corrupt";
	case LF_ETRUNC:
		return "log is truncated";
	case LF_ESTATE:
		return "call out of order";
	default:
		return "unknown error";
	}
}

const char *lf_errdetail(void)
{
	return lf_detail;
}

int lf_fail(int err, const char *fmt, ...)
{
	/* Callers pass strerror(errno) and may look at errno afterwards: keep it. */
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lf_detail, sizeof(lf_detail), fmt, ap);
	va_end(ap);
	errno = saved_errno;
	if (err < 0)
		err = -err;
	return -err;
}

static const char *const lf_kind_names[LF_KIND_MAX + 1] = {
    [LF_EV_CLOCK] = "clock", [LF_EV_TIMER] = "timer", [LF_EV_INPUT] = "input",
    [LF_EV_HASH] = "hash",   [LF_EV_END] = "end",     [LF_EV_LANDMARK] = "landmark",
};

const char *lf_kind_name(unsigned kind)
{
	if (kind > LF_KIND_MAX)
		return NULL;
	return lf_kind_names[kind];
}

int lf_kind_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int k = 1; k <= LF_KIND_MAX; k++)
		if (strcmp(name, lf_kind_names[k]) == 0)
			return k;
	return -1;
}

static const char *const lf_codec_names[] = {
    [LF_CODEC_NONE] = "none",
    [LF_CODEC_LZ4] = "lz4",
    [LF_CODEC_ZSTD] = "zstd",
};

const char *lf_codec_name(unsigned codec)
{
	if (codec > LF_CODEC_ZSTD)
		return NULL;
	return lf_codec_names[codec];
}

int lf_codec_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int c = LF_CODEC_NONE; c <= LF_CODEC_ZSTD; c++)
		if (strcmp(name, lf_codec_names[c]) == 0)
			return c;
	return -1;
}
