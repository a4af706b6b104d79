/* unit */
/*
 * test_verify.c: logfmt/verify.c on real files: lf_verify on whole, cut and damaged logs
 * (what it reports and where), and lf_repair_fd turning each repairable one into a
 * finished log holding exactly the events of its good chunks.
 */
#include "lftest.h"

#include <fcntl.h>
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
	cr_assert(rep.finalized);
	cr_assert_eq(rep.chunks_ok, 6);
	cr_assert_eq(rep.events, 6 * PER);
	cr_assert_eq(fd_size(f.fd), (off_t)(good + rep.index_bytes));
	check_events(f.fd, f.ev, 6 * PER);
	cr_assert_eq(verify_fd(f.fd, &rep), 0);
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
	cr_assert_eq(lf_repair_fd(f.fd, &rep), 0);
	cr_assert_eq(rep.chunks_ok, 3);
	check_events(f.fd, f.ev, 3 * PER);
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
	cr_assert(rep.finalized);
	check_events(f.fd, f.ev, 0);
	file_log_free(&f);
}
