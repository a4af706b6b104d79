/*
 * cli.h: what the command files of the CLI share: exit statuses, one-line failures.
 * Only tools/ prints to the user and decides exit statuses.
 */
#ifndef REWIND_TOOLS_CLI_H
#define REWIND_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define REWIND_VERSION "0.2"

/* rewind's own exit statuses (even; the guest's are odd: (V << 1) | 1). */
enum {
	EXIT_POWEROFF = 0,
	EXIT_USAGE = 2,
	EXIT_BADINPUT = 4,
	EXIT_RESET = 6,
	EXIT_DIVERGED = 8,
	EXIT_HOST = 10,
	EXIT_INTERNAL = 12,
	EXIT_ARBITER = 14, /* an ft side lost the arbiter and stopped its guest */
};

extern const char *prog;

/* "rewind: MESSAGE" on stderr, then exit(status). */
void die_line(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* A logfmt error: "rewind: WHAT: DETAIL", exit status for a log error. */
void die_lf(int err, const char *what) __attribute__((noreturn));

/* Open an existing log to read (flags O_RDONLY or O_RDWR): a missing file, a directory
 * or another non-regular file ends in one line, bad input. Returns the descriptor. */
int open_log_file(const char *path, int flags);

int cmd_log(int argc, char **argv);
/* tools/ftcmd.c: `rewind ft ...` and `rewind console` */
int cmd_ft(int argc, char **argv);
int cmd_console(int argc, char **argv);

/* s (text read from a log, untrusted) with what a terminal would not show escaped: \r,
 * \n, \t, \\ and other control or non-ASCII bytes as \xNN; cut to fit cap with "...".
 * Returns buf. */
const char *cli_visible(const char *s, char *buf, size_t cap);

/* ---- the machine a log is recorded or replayed on (machcfg.c) ------------------------ */

struct vmm_cpu_ops;

/* rewind's exit status for a negative vmm_err. */
int cli_status_for(int err);
/* --backend help: this host's KVM kind and auto's pick, on stdout. */
void cli_print_backend_help(void);
/* kvm cannot be used here (err from kvm_cpu_ops.probe): one line "WHAT: DETAIL", and the
 * status that error has (10 where there is no /dev/kvm). */
void cli_kvm_unusable(int err, const char *what) __attribute__((noreturn));
/* The backend a recording runs on, by its --backend name (emu, kvm, auto): kvm is probed
 * (one line and status 10 where it cannot run), auto says which it took and why. */
const struct vmm_cpu_ops *cli_pick_backend(const char *name);
/* Whether a recording on backend counts exits (kvm always; emu with --positions exits,
 * given as exits): refuses --positions instructions on kvm, and prints the line on what a
 * kvm log leaves out (RDTSC). */
bool cli_record_exits(const struct vmm_cpu_ops *backend, bool positions_given, bool exits);
/* The machine config line a recording's log carries (backend, positions, digest, mem,
 * clock) into config, and the VMM_PORT_* flags its machine gets before the image loads. */
unsigned cli_record_machine(const struct vmm_cpu_ops *backend, bool exits, uint64_t mem,
			    const char *clock, char *config, size_t cap);
/* --positions ARG (record, ft primary): true for exits, false for instructions; anything
 * else ends in one line, status 2. */
bool cli_parse_positions(const char *arg);
/* --initrd PATH read for a guest with mem bytes of RAM (record, ft primary): a file larger
 * than RAM, unreadable or empty ends in one line, status 4 (10 when out of memory). */
void cli_read_initrd(const char *path, uint64_t mem, void **buf, size_t *len);
/* The value of KEY in a config text of key=value lines, copied into buf; false if absent. */
bool cli_config_get(const char *config, const char *key, char *buf, size_t cap);

/* The machine a log replays on (rewind replay, rewind ft backup). */
struct cli_replay_machine {
	const struct vmm_cpu_ops *backend; /* the one to replay on */
	bool asked;                         /* given by --backend, not taken from the log */
	char bname[16], positions[16];      /* what the log says: recorded on, positions */
	uint64_t mem;
	bool exits;        /* positions count exits */
	bool exits_on_emu; /* ... replayed on emu, counting them as kvm does */
	unsigned portable; /* VMM_PORT_* flags for the machine, before the image loads */
};
/*
 * Decide from a log's machine config, and backend_name (--backend; NULL: the log's own,
 * or emu under gdb), what machine replays it; kvm is not probed here. Returns 0, or an
 * exit status with one line in err (what: the log, as the message names it).
 */
int cli_replay_machine(const char *config, const char *what, const char *backend_name,
		       bool gdb, struct cli_replay_machine *rm, char *err, size_t cap);

#endif
