/* unit */
/*
 * test_verify.c: logfmt/verify.c on real files: lf_verify on whole, cut and damaged logs
 * (what it reports and where), and lf_repair_fd turning each repairable one into a
 * finished log holding exactly the events of its good chunks.
 */
#include "lftest.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N = 50, PER = 5, CHUNKS = N / PER };

struct file_log {
	struct lf_event ev[N];
	struct lft_rec rec; /* rec.ends[0]: header, [1..CHUNKS]: chunks, then the tail */
	int fd;
	char path[64];
};

static void file_log_make(struct file_log *f)
{
	struct lf_writer_config cfg = {
	    .codec = LF_CODEC_ZSTD, .chunk_events = PER, .flush_ms = UINT32_MAX};
	struct lf_io io;
	struct lf_writer *w;

	lft_mixed_events(f->ev, N, 9);
	lft_rec_init(&io, &f->rec);
	cr_assert_eq(lf_writer_open(&io, &lft_header, &cfg, &w), 0);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(lf_writer_append(w, &f->ev[i]), 0);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	cr_assert_eq(f->rec.n_ends, CHUNKS + 2);
	strcpy(f->path, "/tmp/rewind-lfv-XXXXXX");
	f->fd = mkstemp(f->path);
	cr_assert_geq(f->fd, 0);
	unlink(f->path);
	cr_assert_eq(pwrite(f->fd, f->rec.mem.data, f->rec.mem.len, 0), (ssize_t)f->rec.mem.len);
}

static void file_log_free(struct file_log *f)
{
	close(f->fd);
	free(f->rec.mem.data);
}

static int verify_fd(int fd, struct lf_verify_report *rep)
{
	struct lf_io_fd f;
	struct lf_io io;

	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	lf_io_fd_init(&io, &f, fd);
	return lf_verify(&io, rep);
}

static off_t fd_size(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return st.st_size;
}

/* The file reads back as exactly the first n events, finalized. */
static void check_events(int fd, const struct lf_event *ev, size_t n)
{
	off_t size = fd_size(fd);
	uint8_t *buf = malloc((size_t)size + 1);

	cr_assert_eq(pread(fd, buf, (size_t)size, 0), size);
	struct lft_result r = lft_read(buf, (size_t)size, ev, n, false);
	cr_assert_eq(r.open_rc, 0);
	cr_assert_eq(r.end_rc, 0, "%s", r.detail);
	cr_assert_not(r.mismatch);
	cr_assert_eq(r.events, n);
	cr_assert(r.finalized);
	free(buf);
}

Test(verify, whole_log)
{
	struct file_log f;
	struct lf_verify_report rep;

	file_log_make(&f);
	cr_assert_eq(verify_fd(f.fd, &rep), 0, "%s", rep.problem);
	cr_assert(rep.header_ok && rep.finalized);
	cr_assert_eq(rep.chunks_ok, CHUNKS);
	cr_assert_eq(rep.events, N);
	cr_assert_eq(rep.good_bytes, f.rec.ends[CHUNKS]);
	cr_assert_eq(rep.file_bytes, f.rec.mem.len);
	cr_assert_eq(rep.header_bytes, f.rec.ends[0]);
	cr_assert_eq(rep.index_bytes, f.rec.ends[CHUNKS + 1] - f.rec.ends[CHUNKS]);
	cr_assert_str_eq(rep.problem, "");
	/* Repairing a whole log changes nothing. */
	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0);
	cr_assert_eq(fd_size(f.fd), (off_t)f.rec.mem.len);
	check_events(f.fd, f.ev, N);
	file_log_free(&f);
}

Test(verify, cut_inside_a_chunk_then_repair)
{
	struct file_log f;
	struct lf_verify_report rep;
	size_t good;
	char want[128];

	file_log_make(&f);
	good = f.rec.ends[6];
	cr_assert_eq(ftruncate(f.fd, (off_t)good + 20), 0);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert(rep.header_ok);
	cr_assert_not(rep.finalized);
	cr_assert_eq(rep.chunks_ok, 6);
	cr_assert_eq(rep.events, 6 * PER);
	cr_assert_eq(rep.good_bytes, good);
	cr_assert_eq(rep.file_bytes, good + 20);
	cr_assert_eq(rep.last_pos, f.ev[6 * PER - 1].pos);
	snprintf(want, sizeof(want), "chunk 6 at offset %zu: cut", good);
	cr_assert(strstr(rep.problem, want) != NULL, "problem \"%s\"", rep.problem);
	cr_assert_str_eq(lf_errdetail(), rep.problem);

	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0, "%s", lf_errdetail());
	/* The report is of the log as it was, and of what the repair did. */
	cr_assert_not(rep.finalized);
	cr_assert(rep.repaired);
	cr_assert_eq(rep.chunks_ok, 6);
	cr_assert_eq(rep.events, 6 * PER);
	cr_assert_eq(rep.dropped_bytes, 20, "dropped %" PRIu64, rep.dropped_bytes);
	cr_assert_eq(rep.appended_bytes, f.rec.ends[CHUNKS + 1] - f.rec.ends[CHUNKS] -
					     4 * 32 /* entries of the 4 chunks left out */);
	cr_assert_eq(rep.chunks_after, 0);
	cr_assert_eq(fd_size(f.fd), (off_t)(good + rep.appended_bytes));
	check_events(f.fd, f.ev, 6 * PER);
	cr_assert_eq(verify_fd(f.fd, &rep), 0);
	cr_assert(rep.finalized);
	file_log_free(&f);
}

Test(verify, cut_at_a_chunk_boundary_then_repair)
{
	struct file_log f;
	struct lf_verify_report rep;

	file_log_make(&f);
	cr_assert_eq(ftruncate(f.fd, (off_t)f.rec.ends[CHUNKS]), 0);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_eq(rep.chunks_ok, CHUNKS);
	cr_assert_eq(rep.good_bytes, f.rec.ends[CHUNKS]);
	cr_assert(strstr(rep.problem, "did not finish") != NULL, "%s", rep.problem);
	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0);
	/* Nothing was dropped (a killed writer's log is cut at a chunk boundary): the
	 * repair only appends. */
	cr_assert(rep.repaired);
	cr_assert_eq(rep.dropped_bytes, 0);
	cr_assert_eq(rep.appended_bytes, f.rec.ends[CHUNKS + 1] - f.rec.ends[CHUNKS]);
	/* The rebuilt tail is the one the writer would have written. */
	cr_assert_eq(fd_size(f.fd), (off_t)f.rec.mem.len);
	uint8_t *buf = malloc(f.rec.mem.len);
	cr_assert_eq(pread(f.fd, buf, f.rec.mem.len, 0), (ssize_t)f.rec.mem.len);
	cr_assert_eq(memcmp(buf, f.rec.mem.data, f.rec.mem.len), 0);
	free(buf);
	file_log_free(&f);
}

Test(verify, damaged_middle_chunk_then_repair)
{
	struct file_log f;
	struct lf_verify_report rep;
	uint8_t b;

	file_log_make(&f);
	/* A byte inside chunk 3's payload. */
	cr_assert_eq(pread(f.fd, &b, 1, (off_t)f.rec.ends[3] + 50), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(f.fd, &b, 1, (off_t)f.rec.ends[3] + 50), 1);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_eq(rep.chunks_ok, 3);
	cr_assert_eq(rep.good_bytes, f.rec.ends[3]);
	cr_assert(strstr(rep.problem, "chunk 3 at offset") != NULL, "%s", rep.problem);
	cr_assert(strstr(rep.problem, "CRC mismatch") != NULL, "%s", rep.problem);
	/* The 6 whole chunks after the damaged one are found and counted. */
	cr_assert_eq(rep.chunks_after, CHUNKS - 4, "%" PRIu64, rep.chunks_after);
	cr_assert_eq(rep.events_after, (CHUNKS - 4) * PER);
	cr_assert_eq(rep.first_pos_after, f.ev[4 * PER].pos);
	cr_assert_eq(rep.last_pos_after, f.ev[N - 1].pos);
	cr_assert_str_eq(lf_errdetail(), rep.problem); /* the scan's tries are not the news */
	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0);
	cr_assert_eq(rep.chunks_ok, 3);
	cr_assert_eq(rep.chunks_after, CHUNKS - 4, "the repair report was overwritten");
	cr_assert_eq(rep.dropped_bytes, f.rec.mem.len - f.rec.ends[3]);
	check_events(f.fd, f.ev, 3 * PER);
	file_log_free(&f);
}

/* Rewrite the index's CRC after an edit, as a forger would. */
static void fix_index_crc(struct file_log *f)
{
	size_t at = f->rec.ends[CHUNKS], len = 16 + 32 * CHUNKS;
	uint8_t *buf = malloc(len + 4);

	cr_assert_eq(pread(f->fd, buf, len, (off_t)at), (ssize_t)len);
	uint32_t crc = lf_crc32c(0, buf, len);
	for (int i = 0; i < 4; i++)
		buf[len + i] = (uint8_t)(crc >> (8 * i));
	cr_assert_eq(pwrite(f->fd, buf + len, 4, (off_t)(at + len)), 4);
	free(buf);
}

static void put64_at(int fd, off_t at, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	cr_assert_eq(pwrite(fd, b, 8, at), 8);
}

/* Every event reads back through a reader on fd, whatever the index says. */
static void read_all(int fd, const struct file_log *f, size_t n, bool want_problem)
{
	struct lf_io_fd iof;
	struct lf_io io;
	struct lf_reader *r;
	struct lf_reader_info ri;
	struct lf_event ev;
	size_t got = 0;
	int rc;

	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	lf_io_fd_init(&io, &iof, fd);
	cr_assert_eq(lf_reader_open(&io, &r), 0, "%s", lf_errdetail());
	lf_reader_info(r, &ri);
	if (want_problem) {
		cr_assert_not_null(ri.index_problem);
		cr_assert(strstr(ri.index_problem, "the index disagrees with chunk") != NULL, "%s",
			  ri.index_problem);
		cr_assert_not(ri.finalized);
	} else {
		cr_assert_null(ri.index_problem, "%s", ri.index_problem);
	}
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		cr_assert_lt(got, n);
		cr_assert_eq(ev.pos, f->ev[got].pos);
		cr_assert_eq(ev.kind, f->ev[got].kind);
		got++;
	}
	cr_assert_eq(rc, 0, "%s", lf_errdetail());
	cr_assert_eq(got, n);
	/* Seeking does not trust it either. */
	cr_assert_eq(lf_reader_seek(r, f->ev[N - 1].pos), 0);
	cr_assert_eq(lf_reader_next(r, &ev), 1);
	cr_assert_eq(ev.pos, f->ev[N - 1].pos);
	lf_reader_free(r);
}

/*
 * An index with a good CRC that disagrees with its chunks is treated as no index: the
 * chunks are read in order, verify says why, and repair rebuilds the index (the one the
 * writer wrote). Each field of an entry, forged in turn.
 */
Test(verify, forged_index_entry_falls_back_to_the_chunks)
{
	/* Each within what the index checks by itself (positions in order, the events
	 * summing to the footer's): an entry's field moved by delta, and maybe a second. */
	static const struct {
		int entry, field; /* field: 0 offset, 1 first_pos, 2 last_pos, 3 events */
		int64_t delta;
		int entry2, field2;
		int64_t delta2;
	} forge[] = {{0, 1, 1, 0, 0, 0},	 {3, 2, -1, 0, 0, 0}, {5, 3, 1, 6, 3, -1},
		     {4, 0, 8, 0, 0, 0},	 {2, 0, -8, 0, 0, 0}, {1, 2, 1, 2, 1, 1},
		     {CHUNKS - 1, 0, 1, 0, 0, 0}};

	for (size_t k = 0; k < sizeof(forge) / sizeof(forge[0]); k++) {
		struct file_log f;
		struct lf_verify_report rep;
		off_t at;
		uint8_t b[8];
		uint64_t v = 0;

		file_log_make(&f);
		for (int j = 0; j < 2; j++) {
			int entry = j ? forge[k].entry2 : forge[k].entry;
			int field = j ? forge[k].field2 : forge[k].field;
			int64_t delta = j ? forge[k].delta2 : forge[k].delta;

			at = (off_t)(f.rec.ends[CHUNKS] + 16 + 32 * (size_t)entry +
				     8 * (size_t)field);
			cr_assert_eq(pread(f.fd, b, 8, at), 8);
			v = 0;
			for (int i = 0; i < 8; i++)
				v |= (uint64_t)b[i] << (8 * i);
			put64_at(f.fd, at, v + (uint64_t)delta);
		}
		fix_index_crc(&f);
		cr_log_info("forgery %zu", k);
		/* Positions and counts must stay plausible for the index to pass its own
		 * checks (a forgery that does not is the old "bad index" case). */
		read_all(f.fd, &f, N, true);
		cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC, "forgery %zu", k);
		cr_assert_eq(rep.chunks_ok, CHUNKS, "forgery %zu: %s", k, rep.problem);
		cr_assert(strstr(rep.index_problem, "the index disagrees with chunk") != NULL,
			  "forgery %zu: \"%s\"", k, rep.index_problem);
		cr_assert(strstr(rep.problem, "the index disagrees") != NULL, "%s", rep.problem);
		cr_assert_eq(lf_repair_fd(f.fd, &rep), 0, "%s", lf_errdetail());
		cr_assert_eq(rep.chunks_ok, CHUNKS);
		cr_assert_eq(rep.dropped_bytes, rep.appended_bytes);
		/* The rebuilt index is the writer's. */
		uint8_t *buf = malloc(f.rec.mem.len);
		cr_assert_eq(fd_size(f.fd), (off_t)f.rec.mem.len);
		cr_assert_eq(pread(f.fd, buf, f.rec.mem.len, 0), (ssize_t)f.rec.mem.len);
		cr_assert_eq(memcmp(buf, f.rec.mem.data, f.rec.mem.len), 0, "forgery %zu", k);
		free(buf);
		read_all(f.fd, &f, N, false);
		file_log_free(&f);
	}
}

/* A damaged chunk is the chunk's fault, not the index's: the index stays, reading stops
 * at that chunk, and nothing blames the index. */
Test(verify, damaged_chunk_header_keeps_the_index)
{
	struct file_log f;
	struct lf_verify_report rep;
	struct lf_io_fd iof;
	struct lf_io io;
	struct lf_reader *r;
	struct lf_reader_info ri;
	uint8_t b;

	file_log_make(&f);
	/* chunk 3's first_pos: now it disagrees with its entry, and with its own CRC. */
	cr_assert_eq(pread(f.fd, &b, 1, (off_t)f.rec.ends[3] + 20), 1);
	b ^= 0x01;
	cr_assert_eq(pwrite(f.fd, &b, 1, (off_t)f.rec.ends[3] + 20), 1);
	lf_io_fd_init(&io, &iof, f.fd);
	cr_assert_eq(lseek(f.fd, 0, SEEK_SET), 0);
	cr_assert_eq(lf_reader_open(&io, &r), 0);
	lf_reader_info(r, &ri);
	cr_assert(ri.finalized);
	cr_assert_null(ri.index_problem);
	lf_reader_free(r);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_eq(rep.chunks_ok, 3);
	cr_assert_str_eq(rep.index_problem, "");
	cr_assert(strstr(rep.problem, "chunk 3 at offset") != NULL, "%s", rep.problem);
	cr_assert_eq(rep.chunks_after, CHUNKS - 4);
	file_log_free(&f);
}

Test(verify, nothing_to_repair_without_a_header)
{
	struct file_log f;
	struct lf_verify_report rep;

	file_log_make(&f);
	cr_assert_eq(ftruncate(f.fd, 30), 0);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_not(rep.header_ok);
	cr_assert_eq(lf_repair_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_eq(fd_size(f.fd), 30, "a log without its header must be left alone");
	/* Not a log at all. */
	cr_assert_eq(pwrite(f.fd, "GIF89a", 6, 0), 6);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_EFORMAT);
	cr_assert_eq(lf_repair_fd(f.fd, &rep), -LF_EFORMAT);
	cr_assert_eq(fd_size(f.fd), 30);
	file_log_free(&f);
}

Test(verify, header_only_then_repair)
{
	struct file_log f;
	struct lf_verify_report rep;

	file_log_make(&f);
	cr_assert_eq(ftruncate(f.fd, (off_t)f.rec.ends[0]), 0);
	cr_assert_eq(verify_fd(f.fd, &rep), -LF_ETRUNC);
	cr_assert_eq(rep.chunks_ok, 0);
	cr_assert_eq(rep.good_bytes, f.rec.ends[0]);
	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0);
	cr_assert(rep.repaired);
	check_events(f.fd, f.ev, 0);
	file_log_free(&f);
}
