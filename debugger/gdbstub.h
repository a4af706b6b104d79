/*
 * gdbstub.h: the gdb remote-protocol server over a timeline (docs/time-travel.md): a
 * replay (forwards and back) or a live run (forward only; `run|record --gdb`).
 * One client at a time; a second one is refused. Packets are parsed by gdbproto.c,
 * registers laid out by gdbregs.c; this file carries each command out.
 */
#ifndef REWIND_DEBUGGER_GDBSTUB_H
#define REWIND_DEBUGGER_GDBSTUB_H

#include "timeline.h"

#include <stddef.h>
#include <stdint.h>

struct gdbstub_config {
	struct tl *tl;
	struct vmm_machine *m;
	/* A line for the user (stderr), without newline; may be NULL. */
	void (*note)(void *opaque, const char *line);
	/*
	 * The guest is about to run (on) or has stopped for gdb (off); may be NULL. A live
	 * run holds its clock while the guest is stopped (docs/time-travel.md).
	 */
	void (*running)(void *opaque, bool on);
	/*
	 * Asked every fraction of a second while waiting for gdb (to connect, or for its next
	 * command): true ends the session (GDBSTUB_STOPPED). May be NULL.
	 */
	bool (*quit)(void *opaque);
	void *opaque;
	/*
	 * Why gdb may not change memory or registers (a recording: the log would not
	 * contain the change), for gdb's error reply and the note; NULL: it may. A replay
	 * never may, whatever this says.
	 */
	const char *no_writes;
};

/*
 * Listen on spec: "HOST:PORT", ":PORT" or "PORT" (host 127.0.0.1 by default; port 0 picks
 * one). *port gets the port bound. Returns 0 or -VMM_EIO with a detail message (port in
 * use, bad address).
 */
int gdbstub_listen(const char *spec, int *fd, uint16_t *port) VMM_WUR;

/* "HOST:PORT" of a listening socket, for the user. */
void gdbstub_addr(int listen_fd, char *buf, size_t cap);

enum gdbstub_end {
	GDBSTUB_DETACHED = 1, /* gdb detached: the caller may run on without it */
	GDBSTUB_KILLED,       /* gdb killed the target */
	GDBSTUB_GONE,         /* the connection closed without either */
	GDBSTUB_EXITED,       /* a live guest ended, and gdb was told (W): the session is over */
	GDBSTUB_STOPPED,      /* cfg->quit said so */
};

struct gdbstub_result {
	enum gdbstub_end end;
	/* GDBSTUB_EXITED: how the guest ended (reason 0: the run failed, see why). */
	struct vmm_stop stop;
	char why[640];
};

/*
 * Wait for one gdb on listen_fd and serve it until it leaves (or, in a live run, until
 * the guest ends). While the guest runs, a thread watches the connection for Ctrl-C.
 */
int gdbstub_serve(const struct gdbstub_config *cfg, int listen_fd,
		  struct gdbstub_result *res) VMM_WUR;

#endif
