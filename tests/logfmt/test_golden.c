/* unit */
/*
 * test_golden.c: the golden logs of tests/logfmt/golden/ (written by mkgolden.c). Each
 * must give exactly its known outcome: the good ones decode to the golden events with
 * the golden header, the bad ones fail with the known error and detail after the known
 * events. The writer must still produce good.rwl byte for byte: a format change has to
 * regenerate these files on purpose.
 */
#include "golden.h"
#include "lftest.h"

#define GOLDEN_DIR "tests/logfmt/golden/"
#define CHUNK1_AT  216 /* good.rwl: header 140 bytes, chunk 0 of 76, chunk 1 at 216 */

static uint8_t *slurp(const char *name, size_t *len)
{
	FILE *f = fopen(name, "rb");
	uint8_t *p;
	long n;

	cr_assert_not_null(f, "%s: run the tests from the repository root", name);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

struct outcome {
	int open_rc;
	size_t events;
	int end_rc;
	bool finalized;
	const char *detail; /* of the error, or NULL */
};

static void check_file(const char *name, const struct outcome *want)
{
	size_t len;
	uint8_t *p = slurp(name, &len);
	struct lf_io_mem m;
	struct lf_io io;
	struct lf_reader *r;
	struct lf_event ev;
	size_t n = 0;
	int rc;

	lf_io_mem_reader(&io, &m, p, len);
	rc = lf_reader_open(&io, &r);
	cr_assert_eq(rc, want->open_rc, "%s: open gave %d (%s)", name, rc, lf_errdetail());
	if (rc < 0) {
		if (want->detail)
			cr_assert_str_eq(lf_errdetail(), want->detail, "%s", name);
		free(p);
		return;
	}
	const struct lf_header *h = lf_reader_header(r);
	struct lf_header gh = golden_header();
	cr_assert_eq(h->created_ns, gh.created_ns);
	cr_assert_str_eq(h->tool, gh.tool);
	cr_assert_str_eq(h->config, gh.config);
	cr_assert_str_eq(h->cmdline, gh.cmdline);
	cr_assert_str_eq(h->image_path, gh.image_path);
	cr_assert_eq(h->image_hash, gh.image_hash);
	cr_assert_eq(h->image_len, gh.image_len);
	cr_assert_eq(memcmp(h->image, golden_image, gh.image_len), 0);
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		char line[256];

		cr_assert_lt(n, GOLDEN_EVENTS);
		cr_assert(lft_ev_eq(&golden_events[n], &ev), "%s: event %zu differs", name, n);
		lf_event_format(&ev, line, sizeof(line));
		cr_assert_str_eq(line, golden_lines[n]);
		n++;
	}
	cr_assert_eq(n, want->events, "%s", name);
	cr_assert_eq(rc, want->end_rc, "%s: ended with %d (%s)", name, rc, lf_errdetail());
	if (want->detail)
		cr_assert_str_eq(lf_errdetail(), want->detail, "%s", name);
	struct lf_reader_info info;
	lf_reader_info(r, &info);
	cr_assert_eq(info.finalized, want->finalized, "%s", name);
	cr_assert_eq(info.file_bytes, len);
	cr_assert_eq(info.header_bytes, 140);
	if (info.finalized) {
		cr_assert_eq(info.chunks, 3);
		cr_assert_eq(info.events, GOLDEN_EVENTS);
		cr_assert_eq(info.last_pos, golden_events[GOLDEN_EVENTS - 1].pos);
	}
	lf_reader_free(r);
	free(p);
}

Test(golden, good)
{
	static const struct outcome ok = {.events = GOLDEN_EVENTS, .finalized = true};
	struct lf_verify_report rep;
	struct lf_io_mem m;
	struct lf_io io;
	size_t len;
	uint8_t *p;

	check_file(GOLDEN_DIR "good.rwl", &ok);
	check_file(GOLDEN_DIR "good-lz4.rwl", &ok);
	check_file(GOLDEN_DIR "good-zstd.rwl", &ok);
	/* Version 2 (good.rwl as version 2 wrote it): a version 3 reader reads it alike. */
	check_file(GOLDEN_DIR "v2-good.rwl", &ok);

	p = slurp(GOLDEN_DIR "good-zstd.rwl", &len);
	lf_io_mem_reader(&io, &m, p, len);
	cr_assert_eq(lf_verify(&io, &rep), 0, "%s", rep.problem);
	cr_assert_eq(rep.chunks_ok, 3);
	cr_assert_lt(rep.chunk_bytes, rep.raw_bytes + 3 * 48, "some chunk must be zstd");
	free(p);
	p = slurp(GOLDEN_DIR "good-lz4.rwl", &len);
	lf_io_mem_reader(&io, &m, p, len);
	cr_assert_eq(lf_verify(&io, &rep), 0, "%s", rep.problem);
	cr_assert_lt(rep.chunk_bytes, rep.raw_bytes + 3 * 48, "some chunk must be lz4");
	free(p);
}

Test(golden, writer_still_writes_good_rwl)
{
	struct lf_io_mem m;
	struct lf_io io;
	size_t len;
	uint8_t *p = slurp(GOLDEN_DIR "good.rwl", &len);

	lf_io_mem_writer(&io, &m);
	cr_assert_eq(golden_write(&io, LF_CODEC_NONE), 0);
	cr_assert_eq(m.len, len, "the format changed: regenerate the golden files on purpose");
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(m.data[i], p[i], "byte %zu differs: the format changed", i);
	free(m.data);
	free(p);
}

Test(golden, bad_magic)
{
	struct outcome o = {.open_rc = -LF_EFORMAT,
			    .detail = "bad magic: the bytes after \"RWL\" changed (line endings "
				      "converted by a text-mode copy?)"};
	check_file(GOLDEN_DIR "bad-magic.rwl", &o);
}

Test(golden, bad_version)
{
	struct outcome o = {.open_rc = -LF_EVERSION,
			    .detail = "the log has format version 5; this build reads versions 2 to 4"};
	check_file(GOLDEN_DIR "bad-version.rwl", &o);
}

/*
 * A version 1 log (the version 1 good.rwl, byte for byte): its memory hashes mean
 * something else (FORMAT.md, "Versions"), so it is refused rather than replayed into a
 * divergence that is not there.
 */
Test(golden, old_version)
{
	struct outcome o = {.open_rc = -LF_EVERSION,
			    .detail = "the log has format version 1; this build reads versions 2 to 4"};
	check_file(GOLDEN_DIR "old-version.rwl", &o);
}

Test(golden, flipped_header)
{
	struct outcome o = {.open_rc = -LF_ECORRUPT,
			    .detail = "header: CRC mismatch (the header was damaged or edited)"};
	check_file(GOLDEN_DIR "flipped-header.rwl", &o);
}

Test(golden, cut_chunk)
{
	struct outcome o = {.events = GOLDEN_PER_CHUNK,
			    .end_rc = -LF_ETRUNC,
			    .detail =
				"chunk 1 at offset 216: cut: 99 payload bytes wanted, 5 left"};
	check_file(GOLDEN_DIR "cut-chunk.rwl", &o);
}

Test(golden, flipped_chunk)
{
	/* The footer and index are intact (finalized); chunk 1 is not. */
	struct outcome o = {.events = GOLDEN_PER_CHUNK,
			    .end_rc = -LF_ECORRUPT,
			    .finalized = true,
			    .detail = "chunk 1 at offset 216: CRC mismatch"};
	check_file(GOLDEN_DIR "flipped-chunk.rwl", &o);
}

Test(golden, unfinished)
{
	struct outcome o = {.events = GOLDEN_EVENTS};
	struct lf_verify_report rep;
	struct lf_io_mem m;
	struct lf_io io;
	size_t len;
	uint8_t *p;

	check_file(GOLDEN_DIR "unfinished.rwl", &o);
	p = slurp(GOLDEN_DIR "unfinished.rwl", &len);
	lf_io_mem_reader(&io, &m, p, len);
	cr_assert_eq(lf_verify(&io, &rep), -LF_ETRUNC);
	cr_assert_str_eq(
	    rep.problem,
	    "3 good chunks end at offset 426, then: no footer (the writer did not finish)");
	cr_assert_eq(rep.good_bytes, len);
	free(p);
}

Test(golden, verify_reports)
{
	static const struct {
		const char *name;
		int rc;
		uint64_t chunks;
		const char *problem;
	} want[] = {
	    {"good.rwl", 0, 3, ""},
	    {"v2-good.rwl", 0, 3, ""},
	    {"bad-magic.rwl", -LF_EFORMAT, 0, NULL},
	    {"bad-version.rwl", -LF_EVERSION, 0, NULL},
	    {"old-version.rwl", -LF_EVERSION, 0, NULL},
	    {"flipped-header.rwl", -LF_ECORRUPT, 0, NULL},
	    {"cut-chunk.rwl", -LF_ETRUNC, 1,
	     "chunk 1 at offset 216: cut: 99 payload bytes wanted, 5 left"},
	    {"flipped-chunk.rwl", -LF_ETRUNC, 1, "chunk 1 at offset 216: CRC mismatch"},
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char path[128];
		struct lf_verify_report rep;
		struct lf_io_mem m;
		struct lf_io io;
		size_t len;
		uint8_t *p;

		snprintf(path, sizeof(path), GOLDEN_DIR "%s", want[i].name);
		p = slurp(path, &len);
		lf_io_mem_reader(&io, &m, p, len);
		cr_assert_eq(lf_verify(&io, &rep), want[i].rc, "%s: %s", path, rep.problem);
		cr_assert_eq(rep.chunks_ok, want[i].chunks, "%s", path);
		cr_assert_eq(rep.header_ok, want[i].rc == 0 || want[i].rc == -LF_ETRUNC);
		if (want[i].problem)
			cr_assert_str_eq(rep.problem, want[i].problem, "%s", path);
		if (want[i].chunks == 1)
			cr_assert_eq(rep.good_bytes, CHUNK1_AT);
		free(p);
	}
}
