/*
 * debugcmd.h: gdb sessions over a replay or a live run (tools/debugcmd.c).
 */
#ifndef REWIND_TOOLS_DEBUGCMD_H
#define REWIND_TOOLS_DEBUGCMD_H

#include "tools/cli.h"
#include "replay/replay.h"
#include "vmm/machine.h"

struct debug_opts {
	const char *gdb_addr;   /* --gdb ADDR; NULL: 127.0.0.1 and a free port */
	bool spawn_gdb;         /* `rewind debug`: start gdb, connected */
	const void *image;      /* the guest ELF, for gdb's symbols */
	size_t image_len;
	int gdb_argc;           /* extra arguments for gdb (after `--`) */
	char **gdb_argv;
	uint64_t ck_every, ck_mem;
};

/*
 * The guest's output goes through the session: *gated passes a byte to out only the
 * first time the guest reaches its position. Call before creating the replay.
 */
void debug_output(void (*out)(void *, uint8_t), void *opaque, void (**gated)(void *, uint8_t));

/* Serve gdb over m (rp NULL: a live run, forward only). Returns the exit status. */
int debug_session(struct vmm_machine *m, struct rpl *rp, const struct debug_opts *o);

#endif
