/* integration */
/*
 * test_tty.c: `rewind run --serial stdio` on a terminal (a pseudo-terminal here): the
 * terminal is raw, bytes reach the guest as typed, Ctrl-C is a byte for the guest,
 * Ctrl-A x stops the run (status 0), and the terminal is restored afterwards.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

struct tty_run {
	pid_t pid;
	int master;
	char out[8192];
	size_t len;
};

static void start(struct tty_run *t, const char *guest)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/guests/%s.elf", b ? b : "build", guest);
	char rewind[512];
	snprintf(rewind, sizeof(rewind), "%s/rewind", b ? b : "build");
	memset(t, 0, sizeof(*t));
	t->pid = forkpty(&t->master, NULL, NULL, NULL);
	cr_assert_geq(t->pid, 0, "forkpty: %s", strerror(errno));
	if (t->pid == 0) {
		execl(rewind, rewind, "run", "--backend", "emu", path, (char *)NULL);
		_exit(127);
	}
}

/* Read until `want` appears in the output (or the deadline passes). */
static bool wait_for(struct tty_run *t, const char *want, int ms)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		t->out[t->len] = 0;
		if (strstr(t->out, want))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= ms)
			return false;
		struct pollfd p = {.fd = t->master, .events = POLLIN};
		if (poll(&p, 1, (int)(ms - el)) <= 0)
			continue;
		ssize_t n = read(t->master, t->out + t->len, sizeof(t->out) - 1 - t->len);
		if (n <= 0)
			return false; /* the child closed the terminal */
		t->len += (size_t)n;
	}
}

static int finish(struct tty_run *t)
{
	int st = 0;
	for (int i = 0; i < 100; i++) {
		if (waitpid(t->pid, &st, WNOHANG) == t->pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (!wait_for(t, "\x7f\x7f never", 50)) /* drain; EIO once the child closed it */
			usleep(50000);
	}
	kill(t->pid, SIGKILL);
	waitpid(t->pid, &st, 0);
	return -1;
}

Test(tty, ctrl_a_x_stops_and_ctrl_c_is_a_guest_byte, .timeout = 60)
{
	struct tty_run t;
	start(&t, "echo");
	cr_assert(wait_for(&t, "Ctrl-A x quits", 10000), "no terminal banner: %s", t.out);
	cr_assert(wait_for(&t, "echo: type", 10000), "guest did not start: %s", t.out);
	/* Ctrl-C must reach the guest (as a byte), not stop rewind. */
	cr_assert_eq(write(t.master, "ab\x03" "cd", 5), 5);
	cr_assert(wait_for(&t, "cd", 10000), "typed bytes not echoed: %s", t.out);
	cr_assert_eq(waitpid(t.pid, NULL, WNOHANG), 0, "rewind exited on Ctrl-C");
	cr_assert_eq(write(t.master, "\x01x", 2), 2);
	cr_assert(wait_for(&t, "stopped at position", 10000), "Ctrl-A x did not stop: %s", t.out);
	cr_assert_eq(finish(&t), 0);
	close(t.master);
}

Test(tty, guest_exit_restores_the_terminal, .timeout = 60)
{
	struct tty_run t;
	start(&t, "echo");
	cr_assert(wait_for(&t, "echo: type", 10000), "guest did not start: %s", t.out);
	/* A doubled Ctrl-A sends one Ctrl-A; then q quits the guest: status (0<<1)|1. */
	cr_assert_eq(write(t.master, "\x01\x01q", 3), 3);
	cr_assert(wait_for(&t, "bye", 10000), "%s", t.out);
	cr_assert_eq(finish(&t), 1);
	/* The pty's settings (read through the master) are cooked again. */
	struct termios tio;
	cr_assert_eq(tcgetattr(t.master, &tio), 0);
	cr_assert(tio.c_lflag & ICANON, "terminal left raw");
	cr_assert(tio.c_lflag & ECHO, "terminal left without echo");
	close(t.master);
}
