/*
 * mkgolden.c: writes the golden logs of tests/logfmt/golden/ and the seed logs of
 * tests/logfmt/corpus/. The golden files pin the format: regenerate them only on purpose
 * (a format change, which also bumps LF_VERSION), then update test_golden.c's offsets.
 *
 *   make build/liblogfmt.a
 *   cc -std=c17 -D_GNU_SOURCE -I. -O2 -o build/mkgolden tests/logfmt/mkgolden.c \
 *      build/liblogfmt.a -llz4 -lzstd -lxxhash -lpthread
 *   build/mkgolden tests/logfmt/golden tests/logfmt/corpus
 *
 * A tool, not library code: it prints and exits.
 */
#include "golden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "mkgolden: %s: %s: %s\n", what, lf_strerror(rc), lf_errdetail());
	exit(1);
}

static void put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	printf("%s: %zu bytes\n", path, n);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Offset of chunk k (k = number of chunks: the end of the last one). */
static size_t chunk_at(const uint8_t *p, size_t k)
{
	size_t off = 16 + get32(p + 12) + 4;

	while (k-- > 0)
		off += 48 + get32(p + off + 12);
	return off;
}

static void golden(const char *dir)
{
	static const uint32_t codecs[] = {LF_CODEC_NONE, LF_CODEC_LZ4, LF_CODEC_ZSTD};
	static const char *const names[] = {"good.rwl", "good-lz4.rwl", "good-zstd.rwl"};
	struct lf_io_mem m[3];
	struct lf_io io;
	uint8_t *b;
	size_t n, hlen, c1, last;
	int rc;

	for (int i = 0; i < 3; i++) {
		lf_io_mem_writer(&io, &m[i]);
		rc = golden_write(&io, codecs[i]);
		if (rc < 0)
			die(names[i], rc);
		put(dir, names[i], m[i].data, m[i].len);
	}
	n = m[0].len;
	b = malloc(n);
	hlen = chunk_at(m[0].data, 0);
	c1 = chunk_at(m[0].data, 1);
	last = chunk_at(m[0].data, (GOLDEN_EVENTS + GOLDEN_PER_CHUNK - 1) / GOLDEN_PER_CHUNK);

	/* A text-mode copy turned the magic's CR LF into LF. */
	memcpy(b, m[0].data, 4);
	memcpy(b + 4, m[0].data + 5, n - 5);
	put(dir, "bad-magic.rwl", b, n - 1);

	/* A later version with a header CRC that matches: only the version is wrong. */
	memcpy(b, m[0].data, n);
	set32(b + 8, LF_VERSION + 1);
	set32(b + hlen - 4, lf_crc32c(0, b, hlen - 4));
	put(dir, "bad-version.rwl", b, n);

	/*
	 * The same log as version 1 wrote it: version 2 kept every byte of the layout and
	 * changed what the memory hash means (FORMAT.md, "Versions"), so this is the
	 * version 1 good.rwl byte for byte, and a reader must refuse it.
	 */
	memcpy(b, m[0].data, n);
	set32(b + 8, 1);
	set32(b + hlen - 4, lf_crc32c(0, b, hlen - 4));
	put(dir, "old-version.rwl", b, n);

	put(dir, "cut-chunk.rwl", m[0].data, c1 + 48 + 5);
	put(dir, "unfinished.rwl", m[0].data, last);

	memcpy(b, m[0].data, n);
	uint8_t *cmd = memmem(b, hlen, "console", 7);
	if (cmd == NULL)
		die("no cmdline in the header", -LF_EINVAL);
	cmd[0] ^= 0x01; /* "console" becomes "bonsole" */
	put(dir, "flipped-header.rwl", b, n);

	memcpy(b, m[0].data, n);
	b[c1 + 48 + 2] ^= 0x01;
	put(dir, "flipped-chunk.rwl", b, n);

	printf("header %zu bytes, chunk 1 at %zu, chunks end at %zu\n", hlen, c1, last);
	free(b);
	for (int i = 0; i < 3; i++)
		free(m[i].data);
}

static void mixed(struct lf_event *ev, size_t n, uint8_t *bytes)
{
	uint64_t x = 0x2545f4914f6cdd1dull, pos = 0, clock = 5;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pos += (x >> 3) % 4 == 0 ? 0 : (x >> 10) % 5000;
		memset(&ev[i], 0, sizeof(ev[i]));
		ev[i].pos = pos;
		/* The kinds of version 2 only: good.rwl stays a version 2 log, which readers of
		 * later versions must still read. */
		ev[i].kind = (uint8_t)(1 + (x >> 20) % LF_EV_END);
		switch (ev[i].kind) {
		case LF_EV_CLOCK:
			clock += (x >> 30) % 100000 - 20000;
			ev[i].clock = clock;
			break;
		case LF_EV_TIMER:
			ev[i].timer = (uint32_t)(x >> 40) % 3;
			break;
		case LF_EV_INPUT:
			ev[i].input.channel = (uint32_t)(x >> 40) % 2;
			ev[i].input.len = 1 + (uint32_t)(x >> 44) % 16;
			ev[i].input.data = bytes + (x >> 50) % 200;
			break;
		case LF_EV_HASH:
			ev[i].hash.flags = (uint32_t)(x >> 40) % 8;
			ev[i].hash.regs = ev[i].hash.flags & LF_HASH_REGS ? x : 0;
			ev[i].hash.mem = ev[i].hash.flags & LF_HASH_MEM ? x >> 1 : 0;
			ev[i].hash.out = ev[i].hash.flags & LF_HASH_OUT ? x >> 2 : 0;
			ev[i].hash.out_bytes = ev[i].hash.flags & LF_HASH_OUT ? i : 0;
			break;
		case LF_EV_END:
			ev[i].end.reason = (uint32_t)(x >> 40) % 4;
			ev[i].end.value = x >> 33;
			break;
		}
	}
}

static void seed(const char *dir, const char *name, const struct lf_event *ev, size_t n,
		 uint32_t codec, uint32_t per, size_t cut)
{
	struct lf_writer_config cfg = {.codec = codec, .chunk_events = per, .flush_ms = UINT32_MAX};
	struct lf_header h = {.created_ns = 1,
			      .tool = "mkgolden",
			      .config = "mem=1M\n",
			      .cmdline = "",
			      .image_path = "x.elf",
			      .image_len = 99};
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_writer *w;
	int rc;

	lf_io_mem_writer(&io, &m);
	rc = lf_writer_open(&io, &h, &cfg, &w);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = lf_writer_append(w, &ev[i]);
	if (rc == 0)
		rc = lf_writer_finish(w);
	if (rc < 0)
		die(name, rc);
	lf_writer_free(w);
	put(dir, name, m.data, cut && cut < m.len ? cut : m.len);
	free(m.data);
}

static void corpus(const char *dir)
{
	static struct lf_event ev[80];
	static uint8_t bytes[256];

	for (int i = 0; i < 256; i++)
		bytes[i] = (uint8_t)(i * 37);
	mixed(ev, 80, bytes);
	seed(dir, "mixed-none.rwl", ev, 40, LF_CODEC_NONE, 6, 0);
	seed(dir, "mixed-lz4.rwl", ev, 80, LF_CODEC_LZ4, 16, 0);
	seed(dir, "mixed-zstd.rwl", ev, 80, LF_CODEC_ZSTD, 20, 0);
	seed(dir, "mixed-cut.rwl", ev, 40, LF_CODEC_NONE, 10, 500);
	seed(dir, "empty.rwl", ev, 0, LF_CODEC_ZSTD, 0, 0);
	seed(dir, "one-per-chunk.rwl", ev, 12, LF_CODEC_NONE, 1, 0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkgolden GOLDEN-DIR CORPUS-DIR\n");
		return 2;
	}
	golden(argv[1]);
	corpus(argv[2]);
	return 0;
}
