/*
 * cli.h: what the command files of the CLI share: exit statuses, one-line failures.
 * Only tools/ prints to the user and decides exit statuses.
 */
#ifndef REWIND_TOOLS_CLI_H
#define REWIND_TOOLS_CLI_H

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

#endif
