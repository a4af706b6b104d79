/*
 * harness.h: running a real program from an integration test the way a user would: fork
 * and exec with its stdin, stdout and stderr on pipes, feed input (at once or once the
 * output shows a given string), optionally send a signal, and collect everything under a
 * deadline, after which the process is killed. Header-only (static inline) so each test
 * binary stays one file linked with libvmm.a. Paths follow $REWIND_BUILD (default build/);
 * tests run from the repository root.
 */
#ifndef REWIND_TESTS_HARNESS_H
#define REWIND_TESTS_HARNESS_H

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Default deadline for one process, in seconds. */
#define H_TIMEOUT_S 30

struct h_opts {
	const char *input;	 /* bytes written to stdin (NULL: none) */
	const char *input_after; /* write input once the output contains this (NULL: at once) */
	bool hold_stdin;	 /* keep stdin open until the process ends (else EOF after input) */
	bool merge;		 /* stderr goes into out, as on a terminal */
	int sig;		 /* a signal to send (0: none) ... */
	const char *sig_after;	 /* ... once the output contains this (NULL: from the start) ... */
	int sig_delay_ms;	 /* ... and this many milliseconds later */
	double timeout_s;	 /* deadline (0: H_TIMEOUT_S); then SIGKILL */
	const char *cwd;	 /* working directory of the child (NULL: ours) */
};

struct h_run {
	char *out; /* stdout (and stderr if merged), NUL-terminated */
	size_t len;
	char *err; /* stderr, NUL-terminated ("" if merged) */
	size_t err_len;
	int status;	/* exit status, -1 if it did not exit normally */
	int termsig;	/* the signal that ended it, 0 if none */
	bool timed_out; /* killed at the deadline */
	double secs;	/* wall time */
};

/* A process started by h_start and not yet collected by h_wait. */
struct h_proc {
	pid_t pid;
	int in, out, err;
	struct h_opts o;
	double start;
};

static inline double h_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline const char *h_build_dir(void)
{
	const char *b = getenv("REWIND_BUILD");
	return b && *b ? b : "build";
}

static inline void h_guest_path(const char *guest, char *buf, size_t size)
{
	snprintf(buf, size, "%s/guests/%s.elf", h_build_dir(), guest);
}

static inline void h_rewind_path(char *buf, size_t size)
{
	snprintf(buf, size, "%s/rewind", h_build_dir());
}

/* Whether name is an executable in $PATH. */
static inline bool h_have_program(const char *name)
{
	const char *path = getenv("PATH");
	if (!path)
		return false;
	char *copy = strdup(path), *save = NULL;
	bool found = false;
	for (char *dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char buf[4096];
		snprintf(buf, sizeof(buf), "%s/%s", dir, name);
		found = access(buf, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* Whether /dev/kvm opens, i.e. the kvm backend can run here. */
/* A /dev/kvm that opens and answers as KVM does (API version 12). */
static inline bool h_have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = ioctl(fd, KVM_GET_API_VERSION, 0) == 12;
	close(fd);
	return ok;
}

static inline void h_write_input(struct h_proc *p)
{
	if (p->o.input) {
		size_t n = strlen(p->o.input);
		ssize_t w;
		do
			w = write(p->in, p->o.input, n);
		while (w < 0 && errno == EINTR);
		cr_assert(w == (ssize_t)n, "writing %zu bytes of input: %s", n,
			  w < 0 ? strerror(errno) : "short write");
	}
	if (!p->o.hold_stdin) {
		close(p->in);
		p->in = -1;
	}
	p->o.input = NULL;
	p->o.input_after = NULL;
}

/* Start argv[0] (looked up in $PATH) with argv; o may be NULL. */
static inline void h_start(char *const argv[], const struct h_opts *o, struct h_proc *p)
{
	static const struct h_opts none;
	int in[2], out[2], err[2];
	memset(p, 0, sizeof(*p));
	p->o = o ? *o : none;
	if (p->o.timeout_s <= 0)
		p->o.timeout_s = H_TIMEOUT_S;
	cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
		  pipe2(err, O_CLOEXEC) == 0);
	signal(SIGPIPE, SIG_IGN); /* a child that exits before reading its input */
	fflush(NULL);
	p->start = h_now();
	p->pid = fork();
	cr_assert(p->pid >= 0);
	if (p->pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(p->o.merge ? out[1] : err[1], 2);
		if (p->o.cwd && chdir(p->o.cwd) < 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	if (p->o.merge) {
		close(p->err);
		p->err = -1;
	}
	if (!p->o.input_after)
		h_write_input(p);
}

static inline bool h_read_into(int *fd, char **buf, size_t *len, size_t *cap)
{
	if (*cap - *len < 4096) {
		*cap *= 2;
		*buf = realloc(*buf, *cap);
		cr_assert(*buf);
	}
	ssize_t got = read(*fd, *buf + *len, *cap - *len - 1);
	if (got < 0 && errno == EINTR)
		return true;
	if (got <= 0) {
		close(*fd);
		*fd = -1;
		return false;
	}
	*len += (size_t)got;
	(*buf)[*len] = '\0';
	return true;
}

static inline void h_drain(int *fd, char **buf, size_t *len, size_t *cap)
{
	if (*fd < 0)
		return;
	fcntl(*fd, F_SETFL, O_NONBLOCK);
	while (*fd >= 0 && h_read_into(fd, buf, len, cap))
		;
}

static inline bool h_output_has(const struct h_run *r, const char *s)
{
	return strstr(r->out, s) || strstr(r->err, s);
}

/*
 * Feed p as its options say, collect its output until it exits or the deadline passes
 * (then SIGKILL), and reap it. Free r with h_free.
 */
static inline void h_wait(struct h_proc *p, struct h_run *r)
{
	size_t cap_out = 1 << 16, cap_err = 1 << 12;
	memset(r, 0, sizeof(*r));
	r->out = malloc(cap_out);
	r->err = malloc(cap_err);
	cr_assert(r->out && r->err);
	r->out[0] = r->err[0] = '\0';
	r->status = -1;

	double deadline = p->start + p->o.timeout_s;
	double sig_at = p->o.sig && !p->o.sig_after ? p->start + p->o.sig_delay_ms / 1e3 : -1;
	bool sig_sent = false, reaped = false;
	int ws = 0;
	for (;;) {
		if (!reaped) {
			pid_t w = waitpid(p->pid, &ws, WNOHANG);
			reaped = w == p->pid;
		}
		if (reaped && p->out < 0 && p->err < 0)
			break;
		double now = h_now();
		if (now >= deadline) {
			if (!reaped) {
				r->timed_out = true;
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &ws, 0);
				reaped = true;
			}
			break;
		}
		if (p->o.sig && !sig_sent && sig_at >= 0 && now >= sig_at && !reaped) {
			kill(p->pid, p->o.sig);
			sig_sent = true;
		}
		double until = deadline;
		if (p->o.sig && !sig_sent && sig_at >= 0 && sig_at < until)
			until = sig_at;
		int ms = (int)((until - now) * 1000) + 1;
		struct pollfd pf[2];
		int n = 0;
		if (p->out >= 0)
			pf[n++] = (struct pollfd){.fd = p->out, .events = POLLIN};
		if (p->err >= 0)
			pf[n++] = (struct pollfd){.fd = p->err, .events = POLLIN};
		if (n == 0 || reaped) {
			/* Waiting for the exit (or the last bytes after it): poll briefly. */
			if (ms > 10)
				ms = 10;
		}
		int got = n ? poll(pf, (nfds_t)n, ms) : (usleep((useconds_t)ms * 1000), 0);
		if (got < 0 && errno != EINTR)
			cr_assert_fail("poll: %s", strerror(errno));
		for (int i = 0; got > 0 && i < n; i++) {
			if (!pf[i].revents)
				continue;
			if (pf[i].fd == p->out)
				h_read_into(&p->out, &r->out, &r->len, &cap_out);
			else
				h_read_into(&p->err, &r->err, &r->err_len, &cap_err);
		}
		if (p->o.input_after && h_output_has(r, p->o.input_after))
			h_write_input(p);
		if (p->o.sig && p->o.sig_after && sig_at < 0 && h_output_has(r, p->o.sig_after))
			sig_at = h_now() + p->o.sig_delay_ms / 1e3;
	}
	/* Whatever is left after a kill, without blocking. */
	h_drain(&p->out, &r->out, &r->len, &cap_out);
	h_drain(&p->err, &r->err, &r->err_len, &cap_err);
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	r->secs = h_now() - p->start;
	if (WIFEXITED(ws))
		r->status = WEXITSTATUS(ws);
	else if (WIFSIGNALED(ws))
		r->termsig = WTERMSIG(ws);
	if (r->timed_out)
		r->status = -1;
}

/* h_start + h_wait. */
static inline void h_run(char *const argv[], const struct h_opts *o, struct h_run *r)
{
	struct h_proc p;
	h_start(argv, o, &p);
	h_wait(&p, r);
}

static inline void h_free(struct h_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

static inline size_t h_count_lines(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

/* The number of lines of s (a final line without \n counts). */
static inline size_t h_lines(const char *s)
{
	size_t len = strlen(s);
	return h_count_lines(s, len) + (len && s[len - 1] != '\n');
}

/* A whole file, NUL-terminated, or NULL if it cannot be read. */
static inline char *h_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 12, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (cap - n < 1024)
			buf = realloc(buf, cap *= 2);
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

#endif
