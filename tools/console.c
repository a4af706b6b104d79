/*
 * console.c: COM1's host side for the CLI (see console.h). Sockets are opened only here
 * and in debugger/ and ft/ (docs/architecture.md, 'Layering'); the machine sees file
 * descriptors and callbacks.
 */
#include "tools/console.h"
#include "vmm/vmm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_tcp(struct console *c, const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= sizeof(host)) {
		snprintf(c->error, sizeof(c->error), "expected tcp:HOST:PORT");
		return -EINVAL;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]: an IPv6 address */
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	const char *ps = colon + 1;
	uint16_t port;
	if (!vmm_parse_port(ps, &port)) {
		snprintf(c->error, sizeof(c->error), "port %s: expected 0 to 65535", ps);
		return -EINVAL;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	int e = getaddrinfo(host, colon + 1, &hints, &ai);
	if (e) {
		snprintf(c->error, sizeof(c->error), "%s", gai_strerror(e));
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		freeaddrinfo(ai);
		snprintf(c->error, sizeof(c->error), "socket: %s", strerror(e));
		return -e;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		e = errno;
		freeaddrinfo(ai);
		close(fd);
		snprintf(c->error, sizeof(c->error), "cannot listen: %s%s", strerror(e),
			 e == EADDRINUSE ? " (choose another port)" : "");
		return -e;
	}
	freeaddrinfo(ai);
	/* The port listened on: the one asked for, or the kernel's choice for port 0. */
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char shost[NI_MAXHOST] = "?", sport[NI_MAXSERV] = "?";
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		getnameinfo((struct sockaddr *)&sa, sl, shost, sizeof(shost), sport, sizeof(sport),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	fprintf(stderr, "rewind: waiting for a serial client on %s%s%s:%s\n",
		strchr(shost, ':') ? "[" : "", shost, strchr(shost, ':') ? "]" : "", sport);
	int cfd;
	do
		cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	while (cfd < 0 && errno == EINTR);
	if (cfd < 0) {
		e = errno;
		close(fd);
		snprintf(c->error, sizeof(c->error), "accept: %s", strerror(e));
		return -e;
	}
	c->listen_fd = fd;
	c->in_fd = cfd;
	c->out_fd = cfd;
	return 0;
}

int console_open(struct console *c, const char *spec)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = c->out_fd = c->listen_fd = -1;
	if (!strcmp(spec, "stdio")) {
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		c->tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &c->saved) == 0;
		c->escape = c->tty;
		return 0;
	}
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5]) {
			snprintf(c->error, sizeof(c->error), "expected file:PATH");
			return -EINVAL;
		}
		c->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (c->out_fd < 0) {
			int e = errno;
			snprintf(c->error, sizeof(c->error), "%s: %s", spec + 5, strerror(e));
			return -e;
		}
		return 0;
	}
	if (!strncmp(spec, "tcp:", 4))
		return open_tcp(c, spec + 4);
	snprintf(c->error, sizeof(c->error), "expected stdio, file:PATH or tcp:HOST:PORT");
	return -EINVAL;
}

void console_start(struct console *c)
{
	if (!c->tty)
		return;
	struct termios raw = c->saved;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR; /* keep newline handling for readable output */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
		c->raw_on = true;
	fprintf(stderr, "rewind: serial on this terminal; Ctrl-A x quits\r\n");
}

void console_flush(void *opaque)
{
	struct console *c = opaque;
	size_t off = 0;
	while (off < c->len && !c->out_dead) {
		ssize_t n = write(c->out_fd, c->buf + off, c->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* stdout may be non-blocking when it shares a tty with stdin */
			fd_set w;
			FD_ZERO(&w);
			FD_SET(c->out_fd, &w);
			select(c->out_fd + 1, NULL, &w, NULL, NULL);
			continue;
		}
		if (n <= 0) {
			c->out_dead = true; /* reader gone: the guest keeps running */
			break;
		}
		off += (size_t)n;
	}
	c->len = 0;
}

void console_out(void *opaque, uint8_t byte)
{
	struct console *c = opaque;
	if (c->out_fd < 0 || c->out_dead)
		return;
	c->buf[c->len++] = byte;
	c->last = byte;
	/* Whole lines go out at once, so a reader of a pipe sees a computing guest's output;
	 * partial lines wait for the next stop or idle (console_flush from the live input). */
	if (c->len == sizeof(c->buf) || byte == '\n')
		console_flush(c);
}

void console_finish(struct console *c)
{
	/* On a terminal, rewind's own last words start on a line of their own. */
	if (c->tty && c->out_fd == STDOUT_FILENO && c->last && c->last != '\n')
		console_out(c, '\n');
	console_flush(c);
	if (c->raw_on) {
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
		c->raw_on = false;
	}
}

void console_close(struct console *c)
{
	if (c->listen_fd >= 0) {
		close(c->in_fd);
		close(c->listen_fd);
	} else if (c->out_fd > STDERR_FILENO) {
		close(c->out_fd);
	}
	c->in_fd = c->out_fd = c->listen_fd = -1;
}
