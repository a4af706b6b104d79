/*
 * rw.h: helpers for integration tests that run the rewind binary: guest and scratch
 * paths, running rewind with a deadline, and expectations on what a user sees.
 */
#ifndef REWIND_TESTS_RW_H
#define REWIND_TESTS_RW_H

#include "tests/integration/harness.h"

#include <errno.h>

#define TIMEOUT_S 30

/* Path of a guest ELF; the few buffers rotate so one call may use several. */
static inline const char *guest(const char *name)
{
	static char bufs[4][4096];
	static int next;
	char *b = bufs[next++ % 4];
	h_guest_path(name, b, sizeof(bufs[0]));
	return b;
}

/* A scratch file path unique to this test process. */
static inline const char *scratch(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];
	const char *tmp = getenv("TMPDIR");
	snprintf(b, sizeof(bufs[0]), "%s/rewind-test-%d-%s", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid(), name);
	return b;
}

static inline void argv_of(const char **args, char **argv, size_t max)
{
	static char rw[4096];
	h_rewind_path(rw, sizeof(rw));
	size_t n = 0;
	argv[n++] = rw;
	for (; *args && n + 1 < max; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
}

/* Run rewind with the given arguments (no program name). */
static inline void run_rw(struct h_run *r, const struct h_opts *o, const char **args)
{
	char *argv[64];
	struct h_opts def = {.timeout_s = TIMEOUT_S};
	argv_of(args, argv, 64);
	h_run(argv, o ? o : &def, r);
	cr_assert(!r->timed_out, "rewind killed after its deadline; stdout:\n%s\nstderr:\n%s",
		  r->out, r->err);
}

#define RW(r, o, ...) run_rw(r, o, (const char *[]){__VA_ARGS__, NULL})

static inline void expect_status(const struct h_run *r, int status)
{
	cr_expect_eq(r->status, status,
		     "exit status %d (signal %d), expected %d\nstdout:\n%s\nstderr:\n%s", r->status,
		     r->termsig, status, r->out, r->err);
}

static inline void expect_out(const struct h_run *r, const char *s)
{
	cr_expect(strstr(r->out, s) != NULL, "missing \"%s\" in stdout:\n%s\nstderr:\n%s", s,
		  r->out, r->err);
}

static inline void expect_out_is(const struct h_run *r, const char *s)
{
	cr_expect_str_eq(r->out, s, "stdout:\n%s\nexpected:\n%s\nstderr:\n%s", r->out, s, r->err);
}

static inline void expect_err(const struct h_run *r, const char *s)
{
	cr_expect(strstr(r->err, s) != NULL, "missing \"%s\" in stderr:\n%s", s, r->err);
}

static inline void expect_no_err(const struct h_run *r)
{
	cr_expect_eq(r->err_len, 0, "unexpected stderr:\n%s", r->err);
}

/*
 * rewind refused: the given even status, nothing on stdout, and exactly one line on
 * stderr, starting "rewind: " and containing each of the words (NULL-terminated).
 */
static inline void expect_refusal(const struct h_run *r, int status, const char **words)
{
	expect_status(r, status);
	cr_expect_eq(r->len, 0, "stdout not empty:\n%s", r->out);
	cr_expect(h_lines(r->err) == 1 && r->err[r->err_len - 1] == '\n',
		  "expected one line on stderr, got:\n%s", r->err);
	cr_expect(!strncmp(r->err, "rewind: ", 8), "stderr does not start with \"rewind: \":\n%s",
		  r->err);
	for (; *words; words++)
		cr_expect(strstr(r->err, *words) != NULL, "stderr lacks \"%s\":\n%s", *words,
			  r->err);
}

#define REFUSED(r, status, ...) expect_refusal(r, status, (const char *[]){__VA_ARGS__, NULL})

/* The number of times needle occurs in s. */
static inline int occurrences(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static inline void race_final(const struct h_run *r, char *buf, size_t size)
{
	const char *p = strstr(r->out, "final=");
	cr_assert(p, "no final= in:\n%s%s", r->out, r->err);
	snprintf(buf, size, "%.*s", (int)strcspn(p, " \n"), p);
}

static inline void write_file(const char *path, const void *d, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f, "%s: %s", path, strerror(errno));
	cr_assert(fwrite(d, 1, len, f) == len);
	cr_assert(fclose(f) == 0);
}


/* For tests that drive Debian's gdb: without it they skip and say why. */
#define NEED_GDB()                                                                        \
	do {                                                                               \
		if (!h_have_program("gdb"))                                                \
			cr_skip_test("gdb is not installed (apt-get install gdb): the "   \
				     "debugger tests drive it");                           \
	} while (0)

/* The positions `monitor when` (gdb's `when`) printed, in order; how many, up to max. */
static inline int positions(const char *out, unsigned long long *pos, int max)
{
	int n = 0;
	for (const char *p = out; (p = strstr(p, "position ")) && n < max; p++) {
		char c = 0;
		if (sscanf(p, "position %llu (instructions retire%c", &pos[n], &c) == 2 && c == 'd')
			n++;
	}
	return n;
}

#endif
