/*
 * gdbscript.h: driving `rewind debug LOG` with a gdb batch script, as the debugger tests
 * do: run the script, find the lines it tagged ("TAG K text"), and the printf format that
 * prints every general register on one line (to compare states as text).
 */
#ifndef REWIND_TESTS_GDBSCRIPT_H
#define REWIND_TESTS_GDBSCRIPT_H

#include "tests/integration/rw.h"

/* Run `rewind debug LOG -- -batch -nx -x SCRIPT` (stdout and stderr merged in r->out),
 * under timeout_s; the script goes to the scratch file `name`. */
static inline void gdb_batch(const char *log, const char *script, const char *name,
			     int timeout_s, struct h_run *r)
{
	char path[512];
	snprintf(path, sizeof(path), "%s", scratch(name));
	write_file(path, script, strlen(script));
	struct h_opts o = {.timeout_s = timeout_s, .merge = true};
	RW(r, &o, "debug", log, "--", "-batch", "-nx", "-x", path);
	cr_assert_eq(r->status, 0, "rewind debug ended with %d\nstdout:\n%s\nstderr:\n%s",
		     r->status, r->out, r->err);
}

/* The text after "TAG K " on the line that starts with it; NULL if none. */
static inline const char *tagged(const char *out, char tag, int k, char *buf, size_t cap)
{
	char want[32];
	snprintf(want, sizeof(want), "%c %d ", tag, k);
	for (const char *p = out; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, want, strlen(want))) {
			const char *e = strchr(p, '\n');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			n -= strlen(want);
			if (n >= cap)
				n = cap - 1;
			memcpy(buf, p + strlen(want), n);
			buf[n] = 0;
			return buf;
		}
	}
	return NULL;
}

/* A gdb printf of pc, rsp, the 15 other general registers and eflags, in hex. */
#define REGS_FMT                                                                          \
	"\"%%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx %%lx " \
	"%%lx %%x\\n\", $pc, $rsp, $rax, $rbx, $rcx, $rdx, $rsi, $rdi, $rbp, $r8, $r9, $r10, " \
	"$r11, $r12, $r13, $r14, $r15, $eflags"

#endif
