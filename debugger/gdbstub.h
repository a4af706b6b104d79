/*
 * gdbstub.h: the gdb remote-protocol server over a timeline (docs/time-travel.md).
 * One client at a time; a second one is refused. Packets are parsed by gdbproto.c,
 * registers laid out by gdbregs.c; this file carries each command out.
 */
#ifndef REWIND_DEBUGGER_GDBSTUB_H
#define REWIND_DEBUGGER_GDBSTUB_H

#include "timeline.h"

#include <stdint.h>

struct gdbstub_config {
	struct tl *tl;
	struct vmm_machine *m;
	/* A line for the user (stderr), without newline; may be NULL. */
	void (*note)(void *opaque, const char *line);
	void *opaque;
};

/*
 * Listen on spec: "HOST:PORT", ":PORT" or "PORT" (host 127.0.0.1 by default; port 0 picks
 * one). *port gets the port bound. Returns 0 or -VMM_EIO with a detail message (port in
 * use, bad address).
 */
int gdbstub_listen(const char *spec, int *fd, uint16_t *port) VMM_WUR;

enum gdbstub_end {
	GDBSTUB_DETACHED = 1, /* gdb detached: the caller may run on without it */
	GDBSTUB_KILLED,       /* gdb killed the target */
	GDBSTUB_GONE,         /* the connection closed without either */
};

/* Wait for one gdb on listen_fd and serve it until it leaves. */
int gdbstub_serve(const struct gdbstub_config *cfg, int listen_fd,
		  enum gdbstub_end *end) VMM_WUR;

#endif
