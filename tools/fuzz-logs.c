/*
 * fuzz-logs: damaged copies of real logs through every command that reads a log.
 *
 * It records a few small guests on the virtual clock (each log a different codec and kind
 * of event; the same bytes every run, see rechunk), then, case
 * after case, damages one copy of one of them: a flipped bit, a cut, a run of bytes
 * overwritten, or a change whose CRC is recomputed so that only the format's other checks
 * can catch it (a byte, or a field moved by a little), in the header, a chunk, the index or
 * the footer. Each copy goes through `replay`, `log info`, `log verify`, `log dump` and
 * `log verify --repair` (then `verify` and `replay` of the repaired log). A case fails on:
 *   - a crash (any signal), a hang (past --timeout), or status 12 (internal error);
 *   - a replay that reports a match with output or status other than the original's;
 *   - a repair that loses bytes: the original must be kept beside the log (LOG.orig)
 *     unless the repair only appended, and a repaired log must verify whole;
 *   - a failed repair that changed the log.
 * Everything is derived from --seed and the case number, so a case replays exactly
 * (--only N). Failing copies are kept in --dir as fail-N.rwl. Built by `make` as
 * build/fuzz-logs; `make test` runs a bounded run (tests/integration/test_logrepair.c),
 * `make fuzz-logs N=...` a long one (docs/log-repair.md).
 */
#include "logfmt/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *rw_path, *guest_dir, *work;
static unsigned timeout_s = 20;
static bool verbose;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz-logs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	uint8_t *d = malloc((size_t)st.st_size + 1);
	size_t have = 0;
	while (d && have < (size_t)st.st_size) {
		ssize_t k = read(fd, d + have, (size_t)st.st_size - have);
		if (k <= 0)
			break;
		have += (size_t)k;
	}
	close(fd);
	if (d)
		d[have] = 0;
	*len = have;
	return d;
}

static void write_file(const char *path, const void *d, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, d, len) != (ssize_t)len || close(fd) < 0)
		die("%s: %s", path, strerror(errno));
}

/* ---- running rewind ------------------------------------------------------------------ */

struct run {
	int status; /* exit status, or -1 */
	int sig;    /* the signal that ended it, or 0 */
	bool hung;  /* killed after timeout_s */
	char *out, *err;
	size_t out_len, err_len;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Run rewind with args (NULL-terminated), stdin from in_path (or /dev/null). */
static void run_rw(struct run *r, const char *in_path, const char *const *args)
{
	char outp[4200], errp[4200];
	snprintf(outp, sizeof(outp), "%s/run.out", work);
	snprintf(errp, sizeof(errp), "%s/run.err", work);
	char *argv[32];
	size_t n = 0;
	argv[n++] = (char *)rw_path;
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	memset(r, 0, sizeof(*r));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	double deadline = now_s() + timeout_s;
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			die("waitpid: %s", strerror(errno));
		if (now_s() > deadline && !r->hung) {
			r->hung = true;
			kill(pid, SIGKILL); /* our own child, by its id */
		}
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	r->sig = WIFSIGNALED(st) && !r->hung ? WTERMSIG(st) : 0;
	r->out = (char *)read_file(outp, &r->out_len);
	r->err = (char *)read_file(errp, &r->err_len);
	if (!r->out || !r->err)
		die("cannot read back the output of %s", rw_path);
}

#define RUN(r, in, ...) run_rw(r, in, (const char *const[]){__VA_ARGS__, NULL})

/* ---- the logs damaged ------------------------------------------------------------------ */

struct base {
	const char *name, *guest, *compress, *append, *hash_every, *input;
	uint32_t chunk_events; /* the base is rewritten with this many events a chunk */
	uint8_t *d;
	size_t len;
	char *out; /* what the guest printed, recorded and replayed */
	size_t out_len;
	int status;
	/* layout */
	uint64_t header_end, index_off, chunks;
	uint64_t *chunk_off; /* chunks + 1 entries: the last is the index's offset */
};

static struct base bases[] = {
    {.name = "hello", .guest = "hello", .compress = "zstd", .chunk_events = 1},
    {.name = "compute",
     .guest = "compute",
     .compress = "lz4",
     .append = "n=1",
     .hash_every = "1000",
     .chunk_events = 2048},
    {.name = "timer",
     .guest = "timer",
     .compress = "none",
     .append = "hz=1000 ticks=40",
     .chunk_events = 8},
    {.name = "echo", .guest = "echo", .compress = "zstd", .input = "abc\nq", .chunk_events = 2},
};
#define NBASES (sizeof(bases) / sizeof(bases[0]))

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get64((const uint8_t[8]){p[0], p[1], p[2], p[3], 0, 0, 0, 0});
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

/*
 * The recording, rewritten with fixed chunks and creation time: the guests run on the
 * virtual clock (with their input from a file), so their events are the same every run,
 * and the writer closes chunks by count only. So the bases, and with them every case,
 * are the same bytes on every run of this build, however loaded the machine.
 */
static void rechunk(const struct base *b, const char *in_path, const char *out_path)
{
	int in = open(in_path, O_RDONLY | O_CLOEXEC);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0)
		die("rewriting %s: %s", in_path, strerror(errno));
	struct lf_io_fd fi, fo;
	struct lf_io ii, oo;
	lf_io_fd_init(&ii, &fi, in);
	lf_io_fd_init(&oo, &fo, out);
	struct lf_reader *r;
	struct lf_writer *w;
	if (lf_reader_open(&ii, &r) < 0)
		die("%s: %s", in_path, lf_errdetail());
	struct lf_header h = *lf_reader_header(r);
	h.created_ns = 1;
	struct lf_writer_config cfg = {.codec = (uint32_t)lf_codec_parse(b->compress),
				       .chunk_events = b->chunk_events,
				       .flush_ms = UINT32_MAX};
	if (lf_writer_open(&oo, &h, &cfg, &w) < 0)
		die("%s: %s", out_path, lf_errdetail());
	struct lf_event ev;
	int rc;
	while ((rc = lf_reader_next(r, &ev)) == 1)
		if (lf_writer_append(w, &ev) < 0)
			die("%s: %s", out_path, lf_errdetail());
	if (rc < 0 || lf_writer_finish(w) < 0)
		die("rewriting %s: %s", in_path, lf_errdetail());
	lf_writer_free(w);
	lf_reader_free(r);
	close(in);
	if (close(out) < 0)
		die("%s: %s", out_path, strerror(errno));
}

static void make_base(struct base *b)
{
	char log[4200], rec[4200], elf[4200], inp[4200];
	snprintf(log, sizeof(log), "%s/base-%s.rwl", work, b->name);
	snprintf(rec, sizeof(rec), "%s/base-%s.rec.rwl", work, b->name);
	snprintf(elf, sizeof(elf), "%s/guests/%s.elf", guest_dir, b->guest);
	const char *in = NULL;
	if (b->input) {
		snprintf(inp, sizeof(inp), "%s/base-%s.in", work, b->name);
		write_file(inp, b->input, strlen(b->input));
		in = inp;
	}
	const char *args[16];
	size_t n = 0;
	args[n++] = "record";
	args[n++] = "--backend";
	args[n++] = "emu";
	args[n++] = "--clock";
	args[n++] = "virtual";
	args[n++] = "--compress";
	args[n++] = b->compress;
	args[n++] = "-o";
	args[n++] = rec;
	if (b->append) {
		args[n++] = "--append";
		args[n++] = b->append;
	}
	if (b->hash_every) {
		args[n++] = "--hash-every";
		args[n++] = b->hash_every;
	}
	args[n++] = elf;
	args[n] = NULL;
	struct run r;
	run_rw(&r, in, args);
	if (r.sig || r.hung || (r.status & 1) == 0)
		die("recording %s failed (status %d):\n%s", b->name, r.status, r.err);
	run_free(&r);
	rechunk(b, rec, log);
	unlink(rec);
	/* The original's replay: what every matching replay must print. */
	RUN(&r, NULL, "replay", log);
	if (!strstr(r.err, ": matched\n"))
		die("the original %s does not replay:\n%s", b->name, r.err);
	b->out = r.out;
	b->out_len = r.out_len;
	b->status = r.status;
	r.out = NULL;
	run_free(&r);
	b->d = read_file(log, &b->len);
	if (!b->d || b->len < 64 + 44)
		die("%s: cannot read the log back", log);
	/* Layout: header length from the preamble, chunks from the index. */
	b->header_end = 16 + (uint64_t)get32(b->d + 12) + 4;
	const uint8_t *f = b->d + b->len - 44;
	b->index_off = get64(f);
	b->chunks = get64(f + 24);
	if (memcmp(f + 36, "RWLOGEND", 8) || b->index_off >= b->len || b->chunks > 1u << 20)
		die("%s: no footer", log);
	b->chunk_off = calloc(b->chunks + 1, sizeof(uint64_t));
	for (uint64_t i = 0; i < b->chunks; i++)
		b->chunk_off[i] = get64(b->d + b->index_off + 16 + 32 * i);
	b->chunk_off[b->chunks] = b->index_off;
}

/* xorshift64*, one stream per case */
struct rng {
	uint64_t s;
};
static uint64_t rnd(struct rng *g)
{
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return g->s * 0x2545f4914f6cdd1dull;
}
static uint64_t below(struct rng *g, uint64_t n)
{
	return n ? rnd(g) % n : 0;
}

enum region { R_HEADER, R_HEADER_TEXT, R_CHUNK, R_CHUNK_HDR, R_INDEX, R_FOOTER, R_COUNT };
enum how { H_FLIP, H_CUT, H_OVERWRITE, H_CRC_BYTE, H_CRC_FIELD, H_COUNT };
static const char *const region_names[] = {"header",	   "header text", "chunk payload",
					   "chunk header", "index",	  "footer"};
static const char *const how_names[] = {"bit flip", "cut", "overwrite", "CRC-valid byte",
					"CRC-valid field"};

/* Recompute the CRC of the structure holding offset at (after damage there). */
static void fix_crc(const struct base *b, uint8_t *d, size_t len, uint64_t at)
{
	if (at < b->header_end) {
		uint64_t crc_at = b->header_end - 4;
		if (crc_at + 4 <= len)
			put32(d + crc_at, lf_crc32c(0, d, crc_at));
		return;
	}
	for (uint64_t i = 0; i < b->chunks; i++) {
		uint64_t o = b->chunk_off[i], end = b->chunk_off[i + 1];
		if (at < o || at >= end)
			continue;
		if (end > len)
			return;
		uint32_t crc = lf_crc32c(0, d + o, 44);
		crc = lf_crc32c(crc, d + o + 48, (size_t)(end - o - 48));
		put32(d + o + 44, crc);
		return;
	}
	uint64_t foot = b->len - 44, icrc = foot - 4;
	if (at < foot) {
		put32(d + icrc, lf_crc32c(0, d + b->index_off, (size_t)(icrc - b->index_off)));
		return;
	}
	put32(d + foot + 32, lf_crc32c(0, d + foot, 32));
}

/* Damage a copy of b; returns its length and describes what was done. */
static size_t damage(const struct base *b, struct rng *g, uint8_t *d, char *what, size_t cap)
{
	memcpy(d, b->d, b->len);
	size_t len = b->len;
	enum region rg = (enum region)below(g, R_COUNT);
	enum how how = (enum how)below(g, H_COUNT);
	uint64_t lo, hi; /* the region: [lo, hi) */
	uint64_t k = below(g, b->chunks);
	switch (rg) {
	case R_HEADER:
		lo = 0, hi = b->header_end;
		break;
	case R_HEADER_TEXT: /* the preamble and the strings before the image */
		lo = 0, hi = b->header_end < 300 ? b->header_end : 300;
		break;
	case R_CHUNK:
		lo = b->chunk_off[k] + 48, hi = b->chunk_off[k + 1];
		break;
	case R_CHUNK_HDR:
		lo = b->chunk_off[k], hi = b->chunk_off[k] + 48;
		break;
	case R_INDEX:
		lo = b->index_off, hi = b->len - 44;
		break;
	default:
		lo = b->len - 44, hi = b->len;
		break;
	}
	if (hi <= lo)
		hi = lo + 1;
	uint64_t at = lo + below(g, hi - lo);
	snprintf(what, cap, "%s of the %s at offset %" PRIu64, how_names[how], region_names[rg],
		 at);
	switch (how) {
	case H_FLIP:
		d[at] ^= (uint8_t)(1u << below(g, 8));
		break;
	case H_CUT:
		len = (size_t)at;
		break;
	case H_OVERWRITE: {
		uint64_t n = 1 + below(g, 64);
		bool zeros = below(g, 3) == 0;
		for (uint64_t i = 0; i < n && at + i < len; i++)
			d[at + i] = zeros ? 0 : (uint8_t)rnd(g);
		break;
	}
	case H_CRC_BYTE:
		d[at] = (uint8_t)(d[at] + 1 + below(g, 255));
		fix_crc(b, d, len, at);
		break;
	default: {
		/* A little-endian u64 (or u32) at an aligned offset of the region, moved by a
		 * small amount: positions, counts, lengths, offsets. */
		uint64_t f = lo + ((at - lo) & ~(uint64_t)3);
		int64_t delta = (int64_t)below(g, 7) - 3;
		if (delta == 0)
			delta = 1;
		if (f + 8 <= hi && below(g, 2)) {
			put64(d + f, get64(d + f) + (uint64_t)delta);
		} else if (f + 4 <= len) {
			put32(d + f, get32(d + f) + (uint32_t)delta);
		}
		snprintf(what, cap, "%s (%+" PRId64 ") of the %s at offset %" PRIu64,
			 how_names[how], delta, region_names[rg], f);
		fix_crc(b, d, len, f);
		break;
	}
	}
	return len;
}

/* ---- checks ------------------------------------------------------------------------------ */

static unsigned failures;
static uint64_t runs;
static unsigned replay_status[256], repair_status[256];
static unsigned repaired, kept_copies, matched_after_damage;

static void failed(uint64_t c, const uint8_t *d, size_t len, const char *what, const char *cmd,
		   const struct run *r, const char *why)
{
	char keep[4200];
	snprintf(keep, sizeof(keep), "%s/fail-%" PRIu64 ".rwl", work, c);
	write_file(keep, d, len);
	failures++;
	printf("FAIL case %" PRIu64 " (%s): %s: %s (status %d, signal %d%s); kept as %s\n", c, what,
	       cmd, why, r ? r->status : 0, r ? r->sig : 0, r && r->hung ? ", hung" : "", keep);
	if (r)
		printf("  stderr: %.*s\n", (int)(r->err_len < 600 ? r->err_len : 600), r->err);
}

/* No crash, no hang, no internal error. */
static bool sane(uint64_t c, const uint8_t *d, size_t len, const char *what, const char *cmd,
		 const struct run *r)
{
	runs++;
	if (r->sig)
		failed(c, d, len, what, cmd, r, "crashed");
	else if (r->hung)
		failed(c, d, len, what, cmd, r, "hung");
	else if (r->status == 12)
		failed(c, d, len, what, cmd, r, "internal error (status 12)");
	else if (r->status < 0 || r->status == 127)
		failed(c, d, len, what, cmd, r, "did not run");
	else
		return true;
	return false;
}

/* A replay that says it matched must have done what the original did. */
static void check_replay(uint64_t c, const struct base *b, const uint8_t *d, size_t len,
			 const char *what, const char *cmd, const struct run *r)
{
	if (!sane(c, d, len, what, cmd, r))
		return;
	if (!strstr(r->err, ": matched\n"))
		return;
	if (r->status != b->status || r->out_len != b->out_len ||
	    memcmp(r->out, b->out, b->out_len))
		failed(c, d, len, what, cmd, r, "matched, with other output or status");
}

static void one_case(uint64_t seed, uint64_t c, uint8_t *d)
{
	struct rng g = {seed * 0x9e3779b97f4a7c15ull + c * 0xbf58476d1ce4e5b9ull + 1};
	for (int i = 0; i < 4; i++)
		rnd(&g);
	const struct base *b = &bases[below(&g, NBASES)];
	char what[256], path[4200], rep[4200], orig[4300], orig1[4300];
	char wb[200];
	size_t len = damage(b, &g, d, wb, sizeof(wb));
	snprintf(what, sizeof(what), "%s log, %s", b->name, wb);
	if (verbose)
		printf("case %" PRIu64 ": %s\n", c, what);
	snprintf(path, sizeof(path), "%s/case.rwl", work);
	snprintf(rep, sizeof(rep), "%s/repair.rwl", work);
	snprintf(orig, sizeof(orig), "%s.orig", rep);
	snprintf(orig1, sizeof(orig1), "%s.orig.1", rep);
	write_file(path, d, len);

	struct run r;
	RUN(&r, NULL, "replay", path);
	check_replay(c, b, d, len, what, "replay", &r);
	replay_status[r.status & 0xff]++;
	if (strstr(r.err, ": matched\n"))
		matched_after_damage++;
	run_free(&r);
	static const char *const cmds[][2] = {{"info", NULL}, {"verify", NULL}, {"dump", NULL}};
	for (size_t i = 0; i < 3; i++) {
		RUN(&r, NULL, "log", cmds[i][0], path);
		sane(c, d, len, what, cmds[i][0], &r);
		run_free(&r);
	}

	/* Repair a copy: it keeps every byte (in LOG.orig or in place) and verifies. */
	unlink(orig);
	unlink(orig1);
	write_file(rep, d, len);
	RUN(&r, NULL, "log", "verify", "--repair", rep);
	repair_status[r.status & 0xff]++;
	if (!sane(c, d, len, what, "verify --repair", &r)) {
		run_free(&r);
		return;
	}
	size_t rlen = 0, olen = 0;
	uint8_t *after = read_file(rep, &rlen), *kept = read_file(orig, &olen);
	if (r.status != 0) {
		if (!after || rlen != len || memcmp(after, d, len))
			failed(c, d, len, what, "verify --repair", &r,
			       "failed, and changed the log");
	} else {
		bool changed = !after || rlen != len || memcmp(after, d, len);
		if (changed)
			repaired++;
		if (kept) {
			kept_copies++;
			if (olen != len || memcmp(kept, d, len))
				failed(c, d, len, what, "verify --repair", &r,
				       "the kept original differs from the log before the repair");
		} else if (changed && (!after || rlen < len || memcmp(after, d, len))) {
			failed(c, d, len, what, "verify --repair", &r,
			       "dropped bytes without keeping the original");
		}
		if (access(orig1, F_OK) == 0)
			failed(c, d, len, what, "verify --repair", &r, "made two copies");
		struct run v;
		RUN(&v, NULL, "log", "verify", rep);
		if (sane(c, d, len, what, "verify after --repair", &v) && v.status != 0)
			failed(c, d, len, what, "verify after --repair", &v,
			       "the repaired log is not whole");
		run_free(&v);
		if (changed) {
			RUN(&v, NULL, "replay", rep);
			check_replay(c, b, d, len, what, "replay after --repair", &v);
			run_free(&v);
		}
	}
	free(after);
	free(kept);
	run_free(&r);
}

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: fuzz-logs --rewind PATH --guests BUILD --dir DIR [--seed N] [--cases N]\n"
	       "                 [--time SECONDS] [--timeout SECONDS] [--only CASE] [--verbose]\n"
	       "\n"
	       "Records small guests (BUILD/guests/*.elf) with PATH, then damages copies of their\n"
	       "logs (bit flips, cuts, overwrites, CRC-valid changes of header, chunks, index,\n"
	       "footer) and runs replay, log info/verify/dump and verify --repair on each. Stops\n"
	       "after --cases cases (default 200) or --time seconds (default: none). Exit status\n"
	       "0 when no case failed, 1 when one did (kept in DIR as fail-N.rwl), 2 on a usage\n"
	       "or setup error.\n");
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, cases = 200, only = UINT64_MAX;
	double time_limit = 0;
	static const struct option lopts[] = {{"rewind", required_argument, NULL, 'r'},
					      {"guests", required_argument, NULL, 'g'},
					      {"dir", required_argument, NULL, 'd'},
					      {"seed", required_argument, NULL, 's'},
					      {"cases", required_argument, NULL, 'n'},
					      {"time", required_argument, NULL, 't'},
					      {"timeout", required_argument, NULL, 'T'},
					      {"only", required_argument, NULL, 'o'},
					      {"verbose", no_argument, NULL, 'v'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "hv", lopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			rw_path = optarg;
			break;
		case 'g':
			guest_dir = optarg;
			break;
		case 'd':
			work = optarg;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			cases = strtoull(optarg, NULL, 0);
			break;
		case 't':
			time_limit = strtod(optarg, NULL);
			break;
		case 'T':
			timeout_s = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'o':
			only = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!rw_path || !guest_dir || !work || optind != argc || !timeout_s) {
		usage(stderr);
		return 2;
	}
	if (mkdir(work, 0755) < 0 && errno != EEXIST)
		die("%s: %s", work, strerror(errno));
	setvbuf(stdout, NULL, _IOLBF, 0);
	double t0 = now_s();
	for (size_t i = 0; i < NBASES; i++)
		make_base(&bases[i]);
	size_t maxlen = 0;
	for (size_t i = 0; i < NBASES; i++)
		if (bases[i].len > maxlen)
			maxlen = bases[i].len;
	uint8_t *d = malloc(maxlen);
	if (d == NULL)
		die("no memory");
	uint64_t done = 0;
	bool out_of_time = false;
	for (uint64_t c = only == UINT64_MAX ? 0 : only; c < cases || c == only; c++) {
		if (time_limit > 0 && now_s() - t0 > time_limit) {
			out_of_time = true;
			break;
		}
		one_case(seed, c, d);
		done++;
		if (c == only)
			break;
	}
	uint64_t fp = 0;
	for (size_t i = 0; i < NBASES; i++)
		fp = fp * 31 + lf_hash64(bases[i].d, bases[i].len);
	printf("fuzz-logs: seed %" PRIu64 ", %" PRIu64 " cases, %" PRIu64
	       " runs of rewind in %.1f s: %u failed (logs %016" PRIx64 ")\n",
	       seed, done, runs, now_s() - t0, failures, fp);
	if (out_of_time)
		printf("fuzz-logs: --time %.0f s ran out after case %" PRIu64 " of %" PRIu64
		       " (the cases run are the first of seed %" PRIu64 ", as always)\n",
		       time_limit, done, cases, seed);
	printf("fuzz-logs: replay statuses:");
	for (int s = 0; s < 256; s++)
		if (replay_status[s])
			printf(" %d: %u", s, replay_status[s]);
	printf(" (%u matched the original); repair statuses:", matched_after_damage);
	for (int s = 0; s < 256; s++)
		if (repair_status[s])
			printf(" %d: %u", s, repair_status[s]);
	printf(" (%u logs changed, %u originals kept)\n", repaired, kept_copies);
	free(d);
	/* What it made, apart from the failing copies (and DIR itself if that leaves it empty). */
	static const char *const made[] = {
	    "base-hello.rwl",	 "base-compute.rwl", "base-timer.rwl", "base-echo.rwl",
	    "base-echo.in",	 "case.rwl",	     "repair.rwl",     "repair.rwl.orig",
	    "repair.rwl.orig.1", "run.out",	     "run.err"};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", work, made[i]);
		unlink(p);
	}
	rmdir(work);
	return failures ? 1 : 0;
}
