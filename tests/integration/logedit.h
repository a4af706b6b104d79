/*
 * logedit.h: making logs a test needs from real recordings, such as an older rewind's
 * header, through logfmt's own reader and writer (so every CRC is good).
 */
#ifndef REWIND_TESTS_LOGEDIT_H
#define REWIND_TESTS_LOGEDIT_H

#include "logfmt/log.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>

/* A change to one event as a log is copied (log_copy_edit): ev may be changed in place. */
typedef void log_edit_fn(struct lf_event *ev, void *opaque);

/*
 * Copy a log through logfmt's reader and writer (so every CRC is good), with another
 * config and/or command line (NULL: as it was), every event passed through edit first
 * (NULL: as it was).
 */
static inline void log_copy_edit(const char *in_path, const char *out_path, const char *config,
				 const char *cmdline, log_edit_fn *edit, void *opaque)
{
	int in = open(in_path, O_RDONLY);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(in >= 0 && out >= 0);
	struct lf_io_fd fi, fo;
	struct lf_io ii, oo;
	lf_io_fd_init(&ii, &fi, in);
	lf_io_fd_init(&oo, &fo, out);
	struct lf_reader *r;
	cr_assert_eq(lf_reader_open(&ii, &r), 0, "%s", lf_errdetail());
	struct lf_header h = *lf_reader_header(r);
	if (config)
		h.config = config;
	if (cmdline)
		h.cmdline = cmdline;
	struct lf_writer *w;
	cr_assert_eq(lf_writer_open(&oo, &h, NULL, &w), 0, "%s", lf_errdetail());
	struct lf_event ev;
	int rc;
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		if (edit)
			edit(&ev, opaque);
		cr_assert_eq(lf_writer_append(w, &ev), 0, "%s", lf_errdetail());
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(lf_writer_finish(w), 0);
	lf_writer_free(w);
	lf_reader_free(r);
	close(in);
	close(out);
}

/* Copy a log with another config and/or command line (NULL: as it was). */
static inline void log_rewrite_header(const char *in_path, const char *out_path,
				      const char *config, const char *cmdline)
{
	log_copy_edit(in_path, out_path, config, cmdline, NULL, NULL);
}

#endif
