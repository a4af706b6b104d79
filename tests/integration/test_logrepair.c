/* integration */
/*
 * test_logrepair.c: damaged logs as a user meets them (issue 15). `log verify` says what a
 * repair would cost before offering it; `--repair` keeps the original beside the log and
 * reports what it kept, dropped, appended and left out; values read from a log that do
 * not fit are bad input (status 4) naming the log, with invisible bytes shown; an index
 * that disagrees with its chunks is not trusted; a cut replay reports the last position it
 * checked. Each test makes its own damaged logs from a fresh recording. Last, a bounded run
 * of the damaged-log fuzzer (tools/fuzz-logs.c).
 */
#include "tests/integration/harness.h"
#include "tests/integration/rw.h"

#include "logfmt/log.h"
#include "tests/integration/logedit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

/* compute with a hash every 1000 instructions: about 30,000 hash events, and nothing but
 * hash events (and the end) in the log. A chunk holds at most 8192 events, so there are at
 * least 4 chunks; more on a loaded machine, where a chunk also closes after 500 ms. */
static void record_compute(const char *log, char **out)
{
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "-o", log, "--hash-every", "1000", "--append",
	   "n=3", guest("compute"));
	expect_status(&r, 1);
	*out = strdup(r.out);
	h_free(&r);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A finished log's chunk offsets (from its index, FORMAT.md); returns the count. */
static size_t chunk_offsets(const uint8_t *d, size_t len, uint64_t *off, size_t max,
			    uint64_t *index_off)
{
	cr_assert_gt(len, 44);
	cr_assert_eq(memcmp(d + len - 8, "RWLOGEND", 8), 0);
	uint64_t io = get64(d + len - 44), n = get64(d + len - 44 + 24);
	cr_assert_leq(n, max);
	for (uint64_t i = 0; i < n; i++)
		off[i] = get64(d + io + 16 + 32 * i);
	*index_off = io;
	return (size_t)n;
}

static bool same_file(const char *path, const void *d, size_t len)
{
	size_t l2 = 0;
	char *e = h_read_file(path, &l2);
	bool same = e && l2 == len && !memcmp(e, d, len);
	free(e);
	return same;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The number after "prefix" in s (the first occurrence), or UINT64_MAX. */
static uint64_t number_after(const char *s, const char *prefix)
{
	const char *p = strstr(s, prefix);
	return p ? strtoull(p + strlen(prefix), NULL, 10) : UINT64_MAX;
}

/*
 * One flipped bit in chunk 1 of n: verify says a repair keeps 1 chunk and leaves out the
 * n - 2 whole ones after the damaged one; --repair copies the original first (to LOG.orig, and
 * LOG.orig.1 when that exists), says so on stderr, and reports each count apart. The copy
 * still holds the later chunks for `log dump`.
 */
Test(logrepair, repair_keeps_the_original_and_says_what_it_costs, .timeout = 4 * TIMEOUT_S)
{
	const char *log = scratch("cost.rwl"), *bad = scratch("cost-bad.rwl");
	char orig[600], orig1[600], *rec_out;
	record_compute(log, &rec_out);
	size_t len = 0;
	uint8_t *d = (uint8_t *)h_read_file(log, &len);
	uint64_t off[64], io;
	size_t n = chunk_offsets(d, len, off, 64, &io);
	cr_assert_geq(n, 4, "expected at least 4 chunks, the log has %zu", n);
	d[off[1] + 48 + (off[2] - off[1] - 48) / 2] ^= 0x08; /* inside chunk 1's payload */
	char after[80];
	write_file(bad, d, len);
	snprintf(orig, sizeof(orig), "%s.orig", bad);
	snprintf(orig1, sizeof(orig1), "%s.orig.1", bad);
	unlink(orig);
	unlink(orig1);

	struct h_run r;
	RW(&r, NULL, "log", "verify", bad);
	expect_status(&r, 4);
	expect_out(&r, "CRC mismatch");
	expect_out(&r, "a repair keeps 1 chunks with ");
	snprintf(after, sizeof(after), "past the damage, %zu whole chunks with ", n - 2);
	expect_out(&r, after);
	expect_out(&r, "cannot be replayed");
	expect_out(&r, "keeping the original beside the log");
	cr_expect(same_file(bad, d, len), "verify changed the log");
	cr_expect(!exists(orig), "verify made a copy");
	h_free(&r);

	RW(&r, NULL, "log", "verify", "--repair", bad);
	expect_status(&r, 0);
	expect_err(&r, "is kept as ");
	expect_err(&r, orig);
	cr_expect(same_file(orig, d, len), "the copy is not the original");
	expect_out(&r, "repaired: kept 1 chunks with ");
	char want[200];
	snprintf(want, sizeof(want),
		 "repaired: dropped %zu bytes after offset %" PRIu64 ", appended 96 bytes",
		 len - (size_t)off[1], off[1]);
	expect_out(&r, want);
	snprintf(after, sizeof(after), "repaired: left out %zu whole chunks with ", n - 2);
	expect_out(&r, after);
	expect_out(&r, "CRC mismatch");
	/* The report is the repair's, not a later check's. */
	cr_expect(!strstr(r.out, "whole: index and footer good"), "%s", r.out);
	h_free(&r);
	RW(&r, NULL, "log", "verify", bad);
	expect_status(&r, 0);
	h_free(&r);

	/* The evidence is still readable in the copy: events of the last chunk. */
	uint64_t last = get64(d + off[n - 1] + 28);
	char from[32];
	snprintf(from, sizeof(from), "%" PRIu64, last);
	RW(&r, NULL, "log", "dump", "--from", from, orig);
	cr_expect(strstr(r.out, " end ") != NULL, "no end event in the copy:\n%s\n%s", r.out,
		  r.err);
	h_free(&r);

	/* A second repair overwrites nothing: the next free name. */
	write_file(bad, d, len);
	RW(&r, NULL, "log", "verify", "--repair", bad);
	expect_status(&r, 0);
	expect_err(&r, orig1);
	cr_expect(same_file(orig, d, len) && same_file(orig1, d, len));
	h_free(&r);

	free(d);
	free(rec_out);
	unlink(orig);
	unlink(orig1);
	unlink(bad);
	unlink(log);
}

/*
 * What a repair drops and appends, counted apart: a cut leaving 39 torn bytes after the
 * last whole chunk drops 39 and appends the index and footer; a log cut at a chunk
 * boundary (a killed recorder) drops nothing, so no copy is made.
 */
Test(logrepair, repair_counts_dropped_and_appended_bytes, .timeout = 4 * TIMEOUT_S)
{
	const char *log = scratch("counts.rwl"), *cut = scratch("counts-cut.rwl");
	char orig[600], *rec_out;
	record_compute(log, &rec_out);
	size_t len = 0;
	uint8_t *d = (uint8_t *)h_read_file(log, &len);
	uint64_t off[64], io;
	size_t n = chunk_offsets(d, len, off, 64, &io);
	cr_assert_geq(n, 4);
	snprintf(orig, sizeof(orig), "%s.orig", cut);
	unlink(orig);

	struct h_run r;
	write_file(cut, d, (size_t)off[n - 1] + 39);
	RW(&r, NULL, "log", "verify", "--repair", cut);
	expect_status(&r, 0);
	char want[200];
	snprintf(want, sizeof(want), "repaired: kept %zu chunks with ", n - 1);
	expect_out(&r, want);
	snprintf(want, sizeof(want),
		 "repaired: dropped 39 bytes after offset %" PRIu64 ", appended %zu bytes",
		 off[n - 1], 16 + (n - 1) * 32 + 4 + 44);
	expect_out(&r, want);
	expect_out(&r, "left out no whole chunk");
	cr_expect(exists(orig), "no copy of a log whose bytes were dropped");
	h_free(&r);
	unlink(orig);

	write_file(cut, d, (size_t)io); /* all chunks, no index or footer */
	RW(&r, NULL, "log", "verify", cut);
	expect_status(&r, 4);
	snprintf(want, sizeof(want), "a repair keeps %zu chunks", n);
	expect_out(&r, want);
	cr_expect(!strstr(r.out, "cuts the"), "nothing is to be cut:\n%s", r.out);
	h_free(&r);
	RW(&r, NULL, "log", "verify", "--repair", cut);
	expect_status(&r, 0);
	expect_out(&r, "repaired: dropped 0 bytes");
	snprintf(want, sizeof(want), "appended %zu bytes", len - (size_t)io);
	expect_out(&r, want);
	cr_expect(!exists(orig), "a copy made when nothing was dropped");
	cr_expect(same_file(cut, d, len), "the repaired log is not the writer's");
	h_free(&r);

	free(d);
	free(rec_out);
	unlink(cut);
	unlink(log);
}

/*
 * Anything read from a log is bad input: a backend it names that does not exist, a
 * command line over the limit, a config with CR LF line endings. Status 4, one line
 * naming the log, never the usage status and never an option the user did not give; the
 * carriage return is shown, not printed.
 */
Test(logrepair, values_from_the_log_are_bad_input, .timeout = 3 * TIMEOUT_S)
{
	const char *log = scratch("hdr.rwl"), *bad = scratch("hdr-bad.rwl");
	struct h_run r;
	RW(&r, NULL, "record", "--backend", "emu", "-o", log, guest("hello"));
	expect_status(&r, 1);
	h_free(&r);

	log_rewrite_header(log, bad,
		       "machine=rewind-pc-2\nbackend=xyz\npositions=instructions\nmem=134217728\n"
		       "clock=real\n",
		       NULL);
	RW(&r, NULL, "replay", bad);
	REFUSED(&r, 4, bad, "backend \"xyz\"");
	cr_expect(!strstr(r.err, "--backend"), "blames an option not given:\n%s", r.err);
	h_free(&r);

	char *longline = malloc(5001);
	memset(longline, 'a', 5000);
	longline[5000] = 0;
	log_rewrite_header(log, bad, NULL, longline);
	free(longline);
	RW(&r, NULL, "replay", bad);
	REFUSED(&r, 4, bad, "command line", "5000 bytes");
	h_free(&r);

	log_rewrite_header(log, bad,
		       "machine=rewind-pc-2\r\nbackend=emu\r\npositions=instructions\r\n"
		       "mem=134217728\r\nclock=real\r\n",
		       NULL);
	RW(&r, NULL, "replay", bad);
	REFUSED(&r, 4, bad, "machine model rewind-pc-2\\r;");
	cr_expect(!strchr(r.err, '\r'), "a raw carriage return on stderr:\n%s", r.err);
	h_free(&r);
	RW(&r, NULL, "log", "info", bad);
	expect_out(&r, "machine=rewind-pc-2\\r backend=emu\\r");
	cr_expect(!strchr(r.out, '\r'), "a raw carriage return on stdout");
	h_free(&r);

	/* A control byte in the model: escaped as \xNN. */
	log_rewrite_header(log, bad,
		       "machine=rewind-pc-2\x1b[2J\nbackend=emu\npositions=instructions\n"
		       "mem=134217728\nclock=real\n",
		       NULL);
	RW(&r, NULL, "replay", bad);
	REFUSED(&r, 4, bad, "rewind-pc-2\\x1b[2J");
	h_free(&r);
	unlink(bad);
	unlink(log);
}

/* Rewrite the index CRC of a finished log in memory (after forging an entry). */
static void fix_index_crc(uint8_t *d, size_t len)
{
	uint64_t io = get64(d + len - 44), n = get64(d + len - 44 + 24);
	size_t ilen = 16 + 32 * (size_t)n;
	put32(d + io + ilen, lf_crc32c(0, d + io, ilen));
}

/*
 * An index entry forged with a good CRC (it disagrees with its chunk) does not stop a
 * replay at position 0: the index is not used, replay says so and matches as the
 * original does; verify names the disagreement and --repair rebuilds the index, keeping
 * every chunk.
 */
Test(logrepair, forged_index_is_not_trusted, .timeout = 4 * TIMEOUT_S)
{
	const char *log = scratch("forge.rwl"), *bad = scratch("forge-bad.rwl");
	char orig[600], *rec_out;
	record_compute(log, &rec_out);
	size_t len = 0;
	uint8_t *d = (uint8_t *)h_read_file(log, &len), *f = malloc(len);
	uint64_t off[64], io;
	size_t n = chunk_offsets(d, len, off, 64, &io);
	cr_assert_geq(n, 4);
	char want[80];
	snprintf(orig, sizeof(orig), "%s.orig", bad);

	/* Entry 0's first position, one later; entry 1's last position, one earlier. */
	static const int fields[][2] = {{0, 1}, {1, 2}};
	for (size_t k = 0; k < 2; k++) {
		memcpy(f, d, len);
		uint8_t *p = f + io + 16 + 32 * fields[k][0] + 8 * fields[k][1];
		put64(p, get64(p) + (fields[k][1] == 1 ? 1 : (uint64_t)-1));
		fix_index_crc(f, len);
		write_file(bad, f, len);
		unlink(orig);

		struct h_run r;
		RW(&r, NULL, "replay", bad);
		expect_status(&r, 1);
		expect_err(&r, "the index disagrees with chunk");
		expect_err(&r, ": matched\n");
		cr_expect_str_eq(r.out, rec_out);
		h_free(&r);

		RW(&r, NULL, "log", "verify", bad);
		expect_status(&r, 4);
		expect_out(&r, "the index disagrees with chunk");
		snprintf(want, sizeof(want), "a repair keeps %zu chunks", n);
		expect_out(&r, want);
		h_free(&r);

		RW(&r, NULL, "log", "verify", "--repair", bad);
		expect_status(&r, 0);
		snprintf(want, sizeof(want), "repaired: kept %zu chunks", n);
		expect_out(&r, want);
		h_free(&r);
		cr_expect(same_file(bad, d, len),
			  "forgery %zu: the rebuilt index is not the writer's", k);
		cr_expect(same_file(orig, f, len), "forgery %zu: the original was not kept", k);
	}
	free(f);
	free(d);
	free(rec_out);
	unlink(orig);
	unlink(bad);
	unlink(log);
}

/*
 * A cut log of a guest that only hashes: the replay checks every hash of the chunks that
 * are left, and says it matched up to the last of them, not "up to position 0".
 */
Test(logrepair, cut_replay_reports_the_last_position_checked, .timeout = 3 * TIMEOUT_S)
{
	const char *log = scratch("hashonly.rwl"), *cut = scratch("hashonly-cut.rwl");
	char *rec_out;
	record_compute(log, &rec_out);
	size_t len = 0;
	uint8_t *d = (uint8_t *)h_read_file(log, &len);
	uint64_t off[64], io;
	cr_assert_geq(chunk_offsets(d, len, off, 64, &io), 3);
	write_file(cut, d, (size_t)off[2] + 10);
	uint64_t last = get64(d + off[1] + 28); /* chunk 1's last position */

	struct h_run r;
	RW(&r, NULL, "replay", "--quiet", cut);
	expect_status(&r, 4);
	uint64_t said = number_after(r.err, "matched up to position ");
	cr_expect_eq(said, last,
		     "says matched up to %" PRIu64 ", the last hash checked is at %" PRIu64 ":\n%s",
		     said, last, r.err);
	h_free(&r);
	free(d);
	free(rec_out);
	unlink(cut);
	unlink(log);
}

/*
 * The damaged-log fuzzer, bounded: 80 damaged copies of four small logs through
 * replay, info, verify, dump and repair. Fails on a crash, a hang, status 12, a
 * replay that matches with other output, or a repair that loses bytes (tools/fuzz-logs.c).
 */
Test(logrepair, fuzz_damaged_logs_bounded, .timeout = 120)
{
	char fz[4096], rw[4096];
	h_rewind_path(rw, sizeof(rw));
	snprintf(fz, sizeof(fz), "%s/fuzz-logs", h_build_dir());
	const char *dir = scratch("fuzz");
	struct h_run r;
	/* 80 cases: about 15 s on an idle 2-core machine, 45 s beside six busy builds. The
	 * time limit only guards a machine so loaded that they would not fit: what ran is
	 * then the same first cases, and the run says it stopped early. */
	char *argv[] = {fz,	 "--rewind",  rw,	"--guests", (char *)h_build_dir(),
			"--dir", (char *)dir, "--seed", "1",	    "--cases",
			"80",	 "--time",    "50",	NULL};
	struct h_opts o = {.timeout_s = 110};
	h_run(argv, &o, &r);
	cr_assert(!r.timed_out, "fuzz-logs ran past its deadline:\n%s%s", r.out, r.err);
	cr_expect_eq(r.status, 0, "fuzz-logs status %d (signal %d):\n%s\n%s", r.status, r.termsig,
		     r.out, r.err);
	cr_expect(strstr(r.out, "fuzz-logs: ") != NULL, "no summary:\n%s", r.out);
	cr_log_info("%s", r.out);
	h_free(&r);
}
