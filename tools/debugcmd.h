/*
 * debugcmd.h: gdb sessions over a replay or a live run (tools/debugcmd.c).
 */
#ifndef REWIND_TOOLS_DEBUGCMD_H
#define REWIND_TOOLS_DEBUGCMD_H

#include "tools/cli.h"
#include "record/record.h"
#include "replay/replay.h"
#include "vmm/live.h"
#include "vmm/machine.h"

struct debug_opts {
	const char *gdb_addr;   /* --gdb ADDR; NULL: 127.0.0.1 and a free port */
	bool spawn_gdb;         /* `rewind debug`: start gdb, connected */
	const void *image;      /* the guest ELF, for gdb's symbols */
	size_t image_len;
	int gdb_argc;           /* extra arguments for gdb (after `--`) */
	char **gdb_argv;
	uint64_t ck_every, ck_mem;
	/* run|record --gdb: the live input, whose clock stands still while gdb holds the
	 * guest; the recorder, whose events are written out then (NULL: run); and why gdb
	 * may not change the guest (NULL: it may). */
	struct vmm_live *live;
	struct rec *rec;
	const char *no_writes;
};

/*
 * The guest's output goes through the session: *gated passes a byte to out only the
 * first time the guest reaches its position. Call before creating the replay.
 */
void debug_output(void (*out)(void *, uint8_t), void *opaque, void (**gated)(void *, uint8_t));

/*
 * Listen for gdb on addr ([HOST:]PORT; NULL: 127.0.0.1 and a free port). A bad address
 * ends rewind with status 2, a port in use with 10. Returns the listening socket; *port
 * gets the port.
 */
int debug_listen(const char *addr, uint16_t *port);

/* Serve gdb over the replay rp of machine m. Returns the exit status. */
int debug_session(struct vmm_machine *m, struct rpl *rp, const struct debug_opts *o);

/* How a live run under gdb (debug_live) ended. */
enum debug_live_end {
	DEBUG_LIVE_ENDED = 1, /* the guest ended: *stop (reason 0: the run failed, see why) */
	DEBUG_LIVE_RUN_ON,    /* gdb detached or went away: the guest runs on without it */
	DEBUG_LIVE_STOPPED,   /* gdb killed it or the user stopped rewind: *stop is a user
				 stop where the guest stands */
};

/*
 * `rewind run|record --gdb`: wait on lfd (debug_listen) for gdb, before the guest's
 * first instruction, and serve it over the live machine m (forward only), holding the
 * live clock while the guest is stopped. SIGINT and SIGTERM (vmm_live_request_stop)
 * end the session as a kill does.
 */
enum debug_live_end debug_live(struct vmm_machine *m, int lfd, const struct debug_opts *o,
			       struct vmm_stop *stop, char *why, size_t cap);

#endif
