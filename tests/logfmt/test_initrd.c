/*
 * test_initrd.c: the initrd in the header (FORMAT.md "Header", version 4): embedded with
 * every codec or only its hash, read back exactly; a log without one stays version 3; an
 * embedded initrd that does not match its hash, or a header that lies about it, is
 * refused with a message naming it.
 */
#include "lftest.h"

#include "logfmt/lf_priv.h"

#define GOLDEN_DIR "tests/logfmt/golden/"

static const uint32_t codecs[] = {LF_CODEC_NONE, LF_CODEC_LZ4, LF_CODEC_ZSTD};

enum { IMG_LEN = 5000, RD_LEN = 300000 };

static uint8_t *pattern(size_t len, unsigned salt)
{
	uint8_t *p = malloc(len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i % 97 < 60 ? (i / 4096 + salt) : (i * 2654435761u) >> 11);
	return p;
}

/* A log of h (no events) in m; fails the test if writing fails. */
static void write_log(struct lf_io_mem *m, const struct lf_header *h, uint32_t codec)
{
	struct lf_writer_config cfg = {.codec = codec};
	struct lf_writer *w;
	struct lf_io io;

	lf_io_mem_writer(&io, m);
	cr_assert_eq(lf_writer_open(&io, h, &cfg, &w), 0, "%s", lf_errdetail());
	cr_assert_eq(lf_writer_finish(w), 0, "%s", lf_errdetail());
	lf_writer_free(w);
}

static int open_log(const struct lf_io_mem *m, struct lf_reader **r)
{
	static struct lf_io_mem rm;
	struct lf_io io;

	lf_io_mem_reader(&io, &rm, m->data, m->len);
	return lf_reader_open(&io, r);
}

/* Recompute the header CRC after an edit of the header at m. */
static void reseal(struct lf_io_mem *m)
{
	uint32_t blen = lf_get32(m->data + 12);

	lf_put32(m->data + 16 + blen, lf_crc32c(0, m->data, 16 + blen));
}

Test(initrd, embedded_every_codec)
{
	uint8_t *img = pattern(IMG_LEN, 1), *rd = pattern(RD_LEN, 2);
	struct lf_header h = lft_header;

	h.image = img;
	h.image_len = IMG_LEN;
	h.image_hash = lf_hash64(img, IMG_LEN);
	h.initrd_path = "build/linux/initrd.cpio.gz";
	h.initrd = rd;
	h.initrd_len = RD_LEN;
	h.initrd_hash = lf_hash64(rd, RD_LEN);
	for (size_t c = 0; c < 3; c++) {
		struct lf_io_mem m;
		struct lf_reader *r;
		const struct lf_header *g;

		write_log(&m, &h, codecs[c]);
		cr_assert_eq(lf_get32(m.data + 8), 4, "a log with an initrd is version 4");
		cr_assert_eq(open_log(&m, &r), 0, "%s", lf_errdetail());
		g = lf_reader_header(r);
		cr_assert_eq(g->version, 4);
		cr_assert_str_eq(g->cmdline, h.cmdline);
		cr_assert_str_eq(g->image_path, h.image_path);
		cr_assert_eq(g->image_len, IMG_LEN);
		cr_assert_eq(memcmp(g->image, img, IMG_LEN), 0);
		cr_assert_str_eq(g->initrd_path, "build/linux/initrd.cpio.gz");
		cr_assert_eq(g->initrd_len, RD_LEN);
		cr_assert_eq(g->initrd_hash, h.initrd_hash);
		cr_assert_eq(g->initrd_codec, codecs[c]);
		cr_assert_not_null(g->initrd);
		cr_assert_eq(memcmp(g->initrd, rd, RD_LEN), 0);
		if (codecs[c] == LF_CODEC_NONE)
			cr_assert_eq(g->initrd_stored, RD_LEN);
		else
			cr_assert_lt(g->initrd_stored, RD_LEN, "the initrd should compress");
		lf_reader_free(r);
		free(m.data);
	}
	free(img);
	free(rd);
}

Test(initrd, hash_only)
{
	struct lf_header h = lft_header;
	struct lf_io_mem m;
	struct lf_reader *r;
	const struct lf_header *g;

	h.initrd_path = "/tmp/rd.gz";
	h.initrd_len = 123456;
	h.initrd_hash = 0x0102030405060708ull;
	write_log(&m, &h, LF_CODEC_ZSTD);
	cr_assert_eq(open_log(&m, &r), 0, "%s", lf_errdetail());
	g = lf_reader_header(r);
	cr_assert_eq(g->version, 4);
	cr_assert_null(g->initrd);
	cr_assert_eq(g->initrd_stored, 0);
	cr_assert_eq(g->initrd_codec, LF_CODEC_NONE);
	cr_assert_eq(g->initrd_len, 123456);
	cr_assert_eq(g->initrd_hash, 0x0102030405060708ull);
	cr_assert_str_eq(g->initrd_path, "/tmp/rd.gz");
	lf_reader_free(r);
	free(m.data);
}

Test(initrd, none_is_version_3)
{
	struct lf_header h = lft_header;
	struct lf_io_mem m;
	struct lf_reader *r;
	const struct lf_header *g;

	h.initrd_path = "ignored without an initrd";
	write_log(&m, &h, LF_CODEC_ZSTD);
	cr_assert_eq(lf_get32(m.data + 8), 3, "older readers must read a log without initrd");
	cr_assert_eq(open_log(&m, &r), 0, "%s", lf_errdetail());
	g = lf_reader_header(r);
	cr_assert_eq(g->version, 3);
	cr_assert_eq(g->initrd_len, 0);
	cr_assert_null(g->initrd);
	cr_assert_str_eq(g->initrd_path, "");
	lf_reader_free(r);
	free(m.data);
}

Test(initrd, wrong_hash_refused_by_writer)
{
	uint8_t rd[100] = {1, 2, 3};
	struct lf_header h = lft_header;
	struct lf_writer_config cfg = {.codec = LF_CODEC_ZSTD};
	struct lf_writer *w;
	struct lf_io_mem m;
	struct lf_io io;

	h.initrd = rd;
	h.initrd_len = sizeof(rd);
	h.initrd_hash = lf_hash64(rd, sizeof(rd)) ^ 1;
	lf_io_mem_writer(&io, &m);
	cr_assert_eq(lf_writer_open(&io, &h, &cfg, &w), -LF_EINVAL);
	cr_assert_str_eq(lf_errdetail(), "initrd_hash is not lf_hash64 of the initrd bytes");
	free(m.data);
}

/* A stored initrd byte changed (and the CRC made to fit): its hash catches it. */
Test(initrd, damaged_initrd_refused)
{
	uint8_t rd[4096];
	struct lf_header h = lft_header;
	struct lf_io_mem m;
	struct lf_reader *r = NULL;
	uint32_t blen;

	memset(rd, 0x5a, sizeof(rd));
	rd[7] = 1;
	h.initrd = rd;
	h.initrd_len = sizeof(rd);
	h.initrd_hash = lf_hash64(rd, sizeof(rd));
	write_log(&m, &h, LF_CODEC_NONE);
	blen = lf_get32(m.data + 12);
	/* Stored uncompressed, the initrd is the last 4096 bytes of the body. */
	m.data[16 + blen - 4096 + 7] ^= 0x40;
	reseal(&m);
	cr_assert_eq(open_log(&m, &r), -LF_ECORRUPT);
	cr_assert_null(r);
	cr_assert_str_eq(lf_errdetail(), "header: embedded initrd does not match its hash");
	free(m.data);
}

/* Version 4 says an initrd follows the image: a version 3 body relabelled lacks it. */
Test(initrd, version_4_needs_the_initrd_fields)
{
	struct lf_header h = lft_header;
	struct lf_io_mem m;
	struct lf_reader *r = NULL;

	write_log(&m, &h, LF_CODEC_ZSTD);
	lf_put32(m.data + 8, 4);
	reseal(&m);
	cr_assert_eq(open_log(&m, &r), -LF_ECORRUPT);
	cr_assert_null(r);
	cr_assert_str_eq(lf_errdetail(), "header: body ends inside a string length");
	free(m.data);
}

/* A version 3 log (good.rwl) still reads, with no initrd. */
Test(initrd, version_3_golden_reads)
{
	FILE *f = fopen(GOLDEN_DIR "good.rwl", "rb");
	struct lf_io_mem m = {0};
	struct lf_reader *r;
	static uint8_t buf[1 << 16];

	cr_assert_not_null(f);
	m.len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	m.data = buf;
	cr_assert_eq(lf_get32(buf + 8), 3);
	cr_assert_eq(open_log(&m, &r), 0, "%s", lf_errdetail());
	cr_assert_eq(lf_reader_header(r)->version, 3);
	cr_assert_eq(lf_reader_header(r)->initrd_len, 0);
	lf_reader_free(r);
}
