/*
 * debugcmd.c: a replay (or a live run) under gdb: `rewind debug`, `rewind replay --gdb`,
 * `rewind run|record --gdb` (docs/time-travel.md). The machine is built by the caller;
 * this file adds the timeline and the gdb server, and for `debug` starts gdb itself.
 * A live run ends here only when the guest does (or is killed); after a detach the
 * caller runs it on as a plain run.
 */
#include "tools/debugcmd.h"

#include "debugger/gdbstub.h"
#include "debugger/ksyms.h"

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
	if (!g_tl || vmm_machine_insns(g_m) >= tl_high_water(g_tl))
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
	/* A stripped Linux kernel: its own kallsyms tables, as a symbol file gdb loads. */
	void *symf = NULL;
	size_t symf_len = 0, nsyms = 0;
	int krc = ksyms_gdb_file(o->image, o->image_len, &symf, &symf_len, &nsyms);
	if (krc < 0)
		die_line(EXIT_HOST, "reading the kernel's symbols: %s", vmm_errdetail());
	if (krc > 0)
		fprintf(stderr, "%s: kernel symbols: %zu from the image's kallsyms tables\n", prog,
			nsyms);
	int wrc = krc > 0 ? temp_file(elf, 4, symf, symf_len)
			  : temp_file(elf, 4, o->image, o->image_len);
	free(symf);
	if (wrc < 0)
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

int debug_listen(const char *addr, uint16_t *port)
{
	int lfd;
	int rc = gdbstub_listen(addr ? addr : "127.0.0.1:0", &lfd, port);
	if (rc == -VMM_EINVAL)
		die_line(EXIT_USAGE, "--gdb %s: %s", addr, vmm_errdetail());
	if (rc < 0)
		die_line(EXIT_HOST, "--gdb: %s (choose another port)", vmm_errdetail());
	return lfd;
}

/* The one line that says where gdb is awaited. */
static void say_waiting(int lfd)
{
	char at[64];
	gdbstub_addr(lfd, at, sizeof(at));
	const char *port = strrchr(at, ':');
	fprintf(stderr, "%s: waiting for gdb on %s (in gdb: target remote %s)\n", prog, at,
		strncmp(at, "0.0.0.0:", 8) ? at : port);
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
	uint16_t port;
	int lfd = debug_listen(o->gdb_addr, &port);

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
		say_waiting(lfd);
	}

	struct gdbstub_config gc = {.tl = t, .m = m, .note = note};
	struct gdbstub_result res;
	rc = gdbstub_serve(&gc, lfd, &res);
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
	g_tl = NULL;
	tl_free(t);
	return status;
}

/*
 * The guest runs for gdb (on) or stands at gdb (off): its clock stands with it, and a
 * recording's events are written out, not left in memory while gdb takes its time.
 */
static void live_running(void *opaque, bool on)
{
	const struct debug_opts *o = opaque;
	vmm_live_hold(o->live, !on);
	if (!on && o->rec)
		rec_flush(o->rec);
}

static bool live_quit(void *opaque)
{
	const struct debug_opts *o = opaque;
	return vmm_live_stopping(o->live);
}

enum debug_live_end debug_live(struct vmm_machine *m, int lfd, const struct debug_opts *o,
			       struct vmm_stop *stop, char *why, size_t cap)
{
	struct tl_config tc = {.m = m};
	struct tl *t;
	int rc = tl_create(&tc, &t);
	if (rc < 0)
		die_line(EXIT_INTERNAL, "starting the debugger: %s",
			 *vmm_errdetail() ? vmm_errdetail() : vmm_strerror(-rc));
	say_waiting(lfd);
	/* The guest does not see the time it waits for gdb, nor any later stop. */
	vmm_live_hold(o->live, true);
	struct gdbstub_config gc = {.tl = t,
				    .m = m,
				    .note = note,
				    .running = live_running,
				    .quit = live_quit,
				    .opaque = (void *)o,
				    .no_writes = o->no_writes};
	struct gdbstub_result res;
	rc = gdbstub_serve(&gc, lfd, &res);
	close(lfd);
	vmm_live_hold(o->live, false);
	if (rc < 0)
		die_line(EXIT_HOST, "%s", vmm_errdetail());
	memset(stop, 0, sizeof(*stop));
	why[0] = 0;
	enum debug_live_end end;
	switch (res.end) {
	case GDBSTUB_EXITED:
		*stop = res.stop;
		snprintf(why, cap, "%s", res.why);
		end = DEBUG_LIVE_ENDED;
		break;
	case GDBSTUB_KILLED:
	case GDBSTUB_STOPPED:
		stop->reason = VMM_STOP_USER;
		stop->pos = vmm_machine_pos(m);
		end = DEBUG_LIVE_STOPPED;
		break;
	default:
		/* Breakpoints gdb left behind (it went away without removing them) go. */
		if (tl_set_debug(t, NULL, 0, NULL, 0) < 0)
			die_line(EXIT_INTERNAL, "clearing breakpoints: %s", vmm_errdetail());
		if (res.end == GDBSTUB_GONE)
			fprintf(stderr, "%s: the guest runs on without gdb\n", prog);
		end = DEBUG_LIVE_RUN_ON;
		break;
	}
	tl_free(t);
	return end;
}
