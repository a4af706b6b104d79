/*
 * debugcmd.c: a replay (or a live run) under gdb: `rewind debug`, `rewind replay --gdb`,
 * `rewind run|record --gdb` (docs/time-travel.md). The machine is built by the caller;
 * this file adds the timeline and the gdb server, and for `debug` starts gdb itself.
 */
#include "tools/debugcmd.h"

#include "debugger/gdbstub.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct tl *g_tl;
static struct vmm_machine *g_m;
static void (*g_out)(void *, uint8_t);
static void *g_out_opaque;

/* Guest output reaches the user once: not again while going back and re-executing. */
static void gated_out(void *opaque, uint8_t byte)
{
	(void)opaque;
	if (!g_tl || vmm_machine_pos(g_m) >= tl_high_water(g_tl))
		g_out(g_out_opaque, byte);
}

void debug_output(void (*out)(void *, uint8_t), void *opaque, void (**gated)(void *, uint8_t))
{
	g_out = out;
	g_out_opaque = opaque;
	*gated = gated_out;
}

static void note(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "%s: %s\n", prog, line);
}

/* Write buf to a new temporary file named by pattern (…XXXXXX…, suffix len sfx). */
static int temp_file(char *pattern, int sfx, const void *buf, size_t len)
{
	int fd = mkstemps(pattern, sfx);
	if (fd < 0)
		return -1;
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(pattern);
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	close(fd);
	return 0;
}

static pid_t start_gdb(const struct debug_opts *o, uint16_t port, char *elf, char *script)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(elf, 4096, "%s/rewind-guest-XXXXXX.elf", tmp);
	snprintf(script, 4096, "%s/rewind-gdb-XXXXXX.gdb", tmp);
	if (temp_file(elf, 4, o->image, o->image_len) < 0)
		die_line(EXIT_HOST, "%s: cannot write the guest's symbols: %s", elf,
			 strerror(errno));
	char text[1024];
	snprintf(text, sizeof(text),
		 "define when\n  monitor when\nend\n"
		 "document when\nShow the current position on the recording's timeline.\nend\n"
		 "define goto\n  monitor goto $arg0\n  maintenance flush register-cache\nend\n"
		 "document goto\ngoto POS: go to a position (instructions retired) in the "
		 "recording.\nend\n"
		 "target remote 127.0.0.1:%u\n",
		 (unsigned)port);
	if (temp_file(script, 4, text, strlen(text)) < 0)
		die_line(EXIT_HOST, "%s: cannot write the gdb script: %s", script, strerror(errno));
	const char *gdb = getenv("REWIND_GDB") ? getenv("REWIND_GDB") : "gdb";
	char **argv = calloc((size_t)o->gdb_argc + 8, sizeof(*argv));
	if (!argv)
		die_line(EXIT_HOST, "out of memory");
	int n = 0;
	argv[n++] = (char *)gdb;
	argv[n++] = "-q";
	argv[n++] = elf;
	argv[n++] = "-x";
	argv[n++] = script;
	for (int i = 0; i < o->gdb_argc; i++)
		argv[n++] = o->gdb_argv[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		die_line(EXIT_HOST, "fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		execvp(gdb, argv);
		fprintf(stderr, "%s: cannot run %s: %s (install gdb, or set REWIND_GDB)\n", prog,
			gdb, strerror(errno));
		_exit(127);
	}
	free(argv);
	return pid;
}

int debug_session(struct vmm_machine *m, struct rpl *rp, const struct debug_opts *o)
{
	struct tl_config tc = {.m = m, .rpl = rp, .ck_every = o->ck_every, .ck_mem = o->ck_mem};
	struct tl *t;
	int rc = tl_create(&tc, &t);
	if (rc < 0)
		die_line(EXIT_INTERNAL, "starting the debugger: %s",
			 *vmm_errdetail() ? vmm_errdetail() : vmm_strerror(-rc));
	g_tl = t;
	g_m = m;

	int lfd;
	uint16_t port;
	rc = gdbstub_listen(o->gdb_addr ? o->gdb_addr : "127.0.0.1:0", &lfd, &port);
	if (rc == -VMM_EINVAL)
		die_line(EXIT_USAGE, "--gdb %s: %s", o->gdb_addr, vmm_errdetail());
	if (rc < 0)
		die_line(EXIT_HOST, "--gdb: %s (choose another port)", vmm_errdetail());

	pid_t gdb = -1;
	char elf[4096] = "", script[4096] = "";
	/* gdb handles Ctrl-C; ours would end the session under it. */
	signal(SIGINT, SIG_IGN);
	if (o->spawn_gdb) {
		gdb = start_gdb(o, port, elf, script);
		/* Wait for it to connect, or to give up. */
		for (;;) {
			struct pollfd p = {.fd = lfd, .events = POLLIN};
			if (poll(&p, 1, 200) > 0)
				break;
			int st;
			if (waitpid(gdb, &st, WNOHANG) == gdb) {
				unlink(elf);
				unlink(script);
				die_line(EXIT_HOST, "gdb exited before it connected (status %d)",
					 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			}
		}
	} else {
		fprintf(stderr,
			"%s: waiting for gdb on 127.0.0.1:%u (in gdb: target remote :%u)\n", prog,
			(unsigned)port, (unsigned)port);
	}

	struct gdbstub_config gc = {.tl = t, .m = m, .note = note};
	enum gdbstub_end end;
	rc = gdbstub_serve(&gc, lfd, &end);
	close(lfd);
	int status = 0;
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", prog, vmm_errdetail());
	if (gdb > 0) {
		int st;
		while (waitpid(gdb, &st, 0) < 0 && errno == EINTR)
			;
		status = WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_HOST;
		unlink(elf);
		unlink(script);
	}
	if (!rp && end == GDBSTUB_DETACHED) {
		/* A live run goes on without gdb, to its end. */
		struct tl_stop st;
		rc = tl_set_debug(t, NULL, 0, NULL, 0);
		if (rc == 0)
			rc = tl_forward(t, UINT64_MAX, &st);
		if (rc == 0 && st.kind == TL_STOP_HISTORY_END &&
		    st.end.reason == VMM_STOP_DEBUG_EXIT)
			status = (int)(((st.end.exit_value << 1) | 1) & 0xff);
	}
	g_tl = NULL;
	tl_free(t);
	return status;
}
