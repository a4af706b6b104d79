/*
 * gdbstub.c: carries out gdb's commands on a timeline (gdbstub.h, docs/time-travel.md).
 *
 * All-stop, one client. While the guest runs (continue, reverse-continue, goto), a
 * second thread owns the connection's input: on Ctrl-C it tells the machine not to wait
 * for a halted guest, and the timeline, which asks between slices, stops. A replay's
 * memory and registers are read-only: writing them would make the replay diverge from
 * its log; a recording's too (cfg->no_writes); a plain live run's are not.
 */
#include "gdbstub.h"

#include "gdbproto.h"
#include "gdbregs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BP 64
#define MAX_WP 16
#define SIG_TRAP 5
#define SIG_INT 2
#define QUIT_POLL_MS 200 /* how often cfg->quit is asked while waiting for gdb */

struct bp {
	uint64_t addr;
	int type; /* GDB_BP_SW or GDB_BP_HW */
};

struct wp {
	uint64_t addr, len;
	int type; /* GDB_BP_WRITE, _READ, _ACCESS */
};

struct stub {
	const struct gdbstub_config *cfg;
	int fd, lfd;
	bool noack, swbreak, hwbreak;
	struct gdb_rx rx;
	uint8_t pend[4096]; /* bytes read while the guest ran, not parsed yet */
	size_t npend;
	char last[GDB_FRAME_MAX]; /* the last framed reply, for '-' */
	size_t last_len;
	char stop[96]; /* the last stop reply, for '?' */
	struct bp bp[MAX_BP];
	unsigned nbp;
	struct wp wp[MAX_WP];
	unsigned nwp;
	bool closed;
	struct gdbstub_result *res;
	/* While the guest runs: the input watcher (watch_input) and what it saw. */
	pthread_t watcher;
	bool watching;
	int stop_fd; /* eventfd: the watcher returns */
	atomic_bool irq, gone;
};

static void note(struct stub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct stub *s, const char *fmt, ...)
{
	if (!s->cfg->note)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->cfg->note(s->cfg->opaque, line);
}

static void send_raw(struct stub *s, const char *buf, size_t n)
{
	while (n && !s->closed) {
		ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->closed = true;
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

static void reply_n(struct stub *s, const char *payload, size_t n)
{
	size_t f = gdb_frame(payload, n, s->last, sizeof(s->last));
	if (!f) {
		f = gdb_frame("E01", 3, s->last, sizeof(s->last));
	}
	s->last_len = f;
	send_raw(s, s->last, f);
}

static void reply(struct stub *s, const char *payload)
{
	reply_n(s, payload, strlen(payload));
}

/* Text for gdb's console (while a command runs, before its reply). */
static void console(struct stub *s, const char *text)
{
	static char out[2 * 1024 + 2];
	size_t n = strlen(text);
	while (n) {
		size_t k = n > 1024 ? 1024 : n;
		size_t p = gdb_console_output(text, k, out, sizeof(out));
		size_t f = gdb_frame(out, p, s->last, sizeof(s->last));
		send_raw(s, s->last, f);
		text += k;
		n -= k;
	}
}

/*
 * A second gdb while one is attached: its first packet is acknowledged and answered with
 * an error that says why (gdb waits for the acknowledgement before it reads a reply, and
 * then shows "Remote failure reply: E.rewind: ..."), then the connection ends. What it
 * sends is read before the close, so that the close is not a reset that could destroy the
 * answer before gdb reads it. A client that says nothing is answered after half a second.
 */
static void refuse_other(struct stub *s)
{
	static const char why[] = "E.rewind: a debugger is attached already";
	static struct gdb_rx rx;
	char frame[sizeof(why) + 5] = "+";
	uint8_t b[512];
	int other = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (other < 0)
		return;
	gdb_rx_init(&rx);
	struct pollfd p = {.fd = other, .events = POLLIN};
	bool got = false;
	for (int tries = 0; !got && tries < 10; tries++) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = recv(other, b, sizeof(b), MSG_DONTWAIT);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			got |= gdb_rx_byte(&rx, b[i]) == GDB_RX_PACKET;
	}
	size_t n = gdb_frame(why, sizeof(why) - 1, frame + 1, sizeof(frame) - 1);
	(void)!send(other, frame, n + 1, MSG_NOSIGNAL);
	shutdown(other, SHUT_WR);
	while (poll(&p, 1, 100) > 0 && recv(other, b, sizeof(b), MSG_DONTWAIT) > 0)
		;
	close(other);
	note(s, "refused a second gdb connection (one is attached)");
}

/* Bytes read while the guest ran: Ctrl-C is noted, the rest is kept for later. */
static bool take_input(struct stub *s, const uint8_t *buf, size_t n)
{
	bool irq = false;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == 0x03)
			irq = true;
		else if (s->npend < sizeof(s->pend))
			s->pend[s->npend++] = buf[i];
	}
	return irq;
}

/*
 * The input watcher: owns the connection's input until told to return, so that Ctrl-C
 * is seen at once, also while the guest waits halted for an interrupt (a live guest idle
 * in HLT never reaches the timeline's next look between slices by itself).
 */
static void *watch_input(void *opaque)
{
	struct stub *s = opaque;
	for (;;) {
		struct pollfd p[3] = {{.fd = s->fd, .events = POLLIN},
				      {.fd = s->stop_fd, .events = POLLIN},
				      {.fd = s->lfd, .events = POLLIN}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLIN)
			break;
		if (p[2].revents & POLLIN)
			refuse_other(s); /* a second gdb, while the guest runs */
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		uint8_t buf[512];
		ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			atomic_store(&s->gone, true);
			vmm_machine_interrupt(s->cfg->m, true);
			break;
		}
		if (take_input(s, buf, (size_t)n)) {
			atomic_store(&s->irq, true);
			vmm_machine_interrupt(s->cfg->m, true);
		}
	}
	return NULL;
}

/* The guest is about to run for gdb: watch for Ctrl-C meanwhile. */
static void run_begin(struct stub *s)
{
	atomic_store(&s->irq, false);
	atomic_store(&s->gone, false);
	s->watching = s->stop_fd >= 0 && pthread_create(&s->watcher, NULL, watch_input, s) == 0;
	if (s->cfg->running)
		s->cfg->running(s->cfg->opaque, true);
}

static void run_end(struct stub *s)
{
	if (s->cfg->running)
		s->cfg->running(s->cfg->opaque, false);
	if (s->watching) {
		uint64_t v = 1;
		(void)!write(s->stop_fd, &v, sizeof(v));
		pthread_join(s->watcher, NULL);
		(void)!read(s->stop_fd, &v, sizeof(v));
		s->watching = false;
	}
	vmm_machine_interrupt(s->cfg->m, false);
	if (atomic_load(&s->gone))
		s->closed = true;
}

/* Did gdb send Ctrl-C (or go away)? Asked by the timeline between slices. */
static bool interrupted(void *opaque)
{
	struct stub *s = opaque;
	if (s->watching)
		return atomic_load(&s->irq) || atomic_load(&s->gone);
	/* No watcher thread: look at the connections now. */
	struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->lfd, .events = POLLIN}};
	if (poll(p, 2, 0) <= 0)
		return false;
	if (p[1].revents & POLLIN)
		refuse_other(s);
	if (!p[0].revents)
		return false;
	uint8_t buf[512];
	ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		s->closed = true;
		return true;
	}
	return take_input(s, buf, (size_t)n);
}

static int find_wp(const struct stub *s, uint64_t addr)
{
	for (unsigned i = 0; i < s->nwp; i++)
		if (s->wp[i].addr == addr)
			return (int)i;
	return -1;
}

static void stop_reply(struct stub *s, const struct tl_stop *st)
{
	enum gdb_stop_why why = GDB_STOP_SIGNAL;
	int sig = SIG_TRAP;
	uint64_t addr = 0;
	switch (st->kind) {
	case TL_STOP_DONE:
		break;
	case TL_STOP_BREAK: {
		int type = GDB_BP_SW;
		uint64_t rip = 0;
		struct vmm_regs r;
		if (vmm_machine_backend(s->cfg->m)->get_regs(vmm_machine_cpu(s->cfg->m), &r) == 0)
			rip = r.rip;
		for (unsigned i = 0; i < s->nbp; i++)
			if (s->bp[i].addr == rip)
				type = s->bp[i].type;
		if (type == GDB_BP_SW && s->swbreak)
			why = GDB_STOP_SWBREAK;
		else if (type == GDB_BP_HW && s->hwbreak)
			why = GDB_STOP_HWBREAK;
		break;
	}
	case TL_STOP_WATCH: {
		int i = find_wp(s, st->addr);
		int type = i >= 0 ? s->wp[i].type : GDB_BP_WRITE;
		why = type == GDB_BP_READ ? GDB_STOP_RWATCH
		      : type == GDB_BP_ACCESS ? GDB_STOP_AWATCH
					      : GDB_STOP_WATCH;
		addr = st->addr;
		break;
	}
	case TL_STOP_HISTORY_BEGIN:
		why = GDB_STOP_HISTORY_BEGIN;
		break;
	case TL_STOP_HISTORY_END:
		if (tl_can_reverse(s->cfg->tl)) {
			why = GDB_STOP_HISTORY_END;
			if (st->end.reason == 0 && st->why[0]) {
				char line[700];
				snprintf(line, sizeof(line), "rewind: %s\n", st->why);
				console(s, line);
				note(s, "%s", st->why);
			}
		} else {
			/* A live guest ended: gdb sees the exit status rewind exits with. */
			why = GDB_STOP_EXITED;
			sig = st->end.reason == VMM_STOP_DEBUG_EXIT
				      ? (int)(((st->end.exit_value << 1) | 1) & 0xff)
				      : 0;
			if (st->end.reason == 0 && st->why[0]) {
				char line[700];
				snprintf(line, sizeof(line), "rewind: %s\n", st->why);
				console(s, line);
			}
		}
		break;
	case TL_STOP_INTERRUPTED:
		sig = SIG_INT;
		break;
	}
	size_t n = gdb_stop_reply(why, sig, addr, s->stop, sizeof(s->stop));
	if (!n)
		n = gdb_stop_reply(GDB_STOP_SIGNAL, SIG_TRAP, 0, s->stop, sizeof(s->stop));
	reply_n(s, s->stop, n);
}

static int apply_debug(struct stub *s)
{
	uint64_t bp[MAX_BP];
	struct vmm_watch wp[MAX_WP];
	for (unsigned i = 0; i < s->nbp; i++)
		bp[i] = s->bp[i].addr;
	for (unsigned i = 0; i < s->nwp; i++) {
		wp[i].addr = s->wp[i].addr;
		wp[i].len = s->wp[i].len;
		wp[i].access = s->wp[i].type == GDB_BP_WRITE  ? VMM_ACCESS_WRITE
			       : s->wp[i].type == GDB_BP_READ ? VMM_ACCESS_READ
							      : VMM_ACCESS_RW;
	}
	return tl_set_debug(s->cfg->tl, bp, s->nbp, wp, s->nwp);
}

static void do_breakpoint(struct stub *s, const struct gdb_cmd *c, bool insert)
{
	if (c->bptype <= GDB_BP_HW) {
		unsigned i = 0;
		while (i < s->nbp && s->bp[i].addr != c->addr)
			i++;
		if (insert && i == s->nbp) {
			if (s->nbp == MAX_BP) {
				reply(s, "E28"); /* ENOSPC */
				return;
			}
			s->bp[s->nbp++] = (struct bp){c->addr, c->bptype};
		} else if (!insert && i < s->nbp) {
			s->bp[i] = s->bp[--s->nbp];
		}
	} else {
		if (!c->len || c->len > 4096) {
			reply(s, "E22");
			return;
		}
		unsigned i = 0;
		while (i < s->nwp && !(s->wp[i].addr == c->addr && s->wp[i].len == c->len &&
				       s->wp[i].type == c->bptype))
			i++;
		if (insert && i == s->nwp) {
			if (s->nwp == MAX_WP) {
				reply(s, "E28");
				return;
			}
			s->wp[s->nwp++] = (struct wp){c->addr, c->len, c->bptype};
		} else if (!insert && i < s->nwp) {
			s->wp[i] = s->wp[--s->nwp];
		}
	}
	if (apply_debug(s) < 0) {
		reply(s, "E01");
		return;
	}
	reply(s, "OK");
}

static void do_read_mem(struct stub *s, const struct gdb_cmd *c)
{
	static uint8_t buf[GDB_PACKET_MAX / 2];
	static char hex[GDB_PACKET_MAX + 1];
	const struct vmm_cpu_ops *ops = vmm_machine_backend(s->cfg->m);
	struct vmm_cpu *cpu = vmm_machine_cpu(s->cfg->m);
	size_t len = c->len, got = 0;
	if (len > sizeof(buf))
		len = sizeof(buf);
	if (ops->read_virt(cpu, c->addr, buf, len) == 0) {
		got = len;
	} else {
		/* As much as is mapped, page by page. */
		while (got < len) {
			size_t k = 4096 - ((c->addr + got) & 0xfff);
			if (k > len - got)
				k = len - got;
			if (ops->read_virt(cpu, c->addr + got, buf + got, k) < 0)
				break;
			got += k;
		}
	}
	if (!got && len) {
		reply(s, "E14");
		return;
	}
	reply_n(s, hex, gdb_hex_encode(buf, got, hex));
}

static void read_regs(struct stub *s, struct vmm_regs *r, struct vmm_fpregs *f)
{
	const struct vmm_cpu_ops *ops = vmm_machine_backend(s->cfg->m);
	struct vmm_cpu *cpu = vmm_machine_cpu(s->cfg->m);
	memset(r, 0, sizeof(*r));
	memset(f, 0, sizeof(*f));
	(void)ops->get_regs(cpu, r);
	if (ops->get_fpregs)
		(void)ops->get_fpregs(cpu, f);
}

/*
 * An error reply gdb shows as it is ("E.text": gdb 13 prints it for register writes and
 * takes any 'E' reply as an error), with the same line for the user.
 */
static void refuse(struct stub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct stub *s, const char *fmt, ...)
{
	char text[400] = "E.";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text + 2, sizeof(text) - 2, fmt, ap);
	va_end(ap);
	note(s, "%s", text + 2);
	reply(s, text);
}

/* May gdb change the guest? Refuses (and says why) when not. */
static bool writable(struct stub *s, const char *what)
{
	const char *why =
	    tl_can_reverse(s->cfg->tl) ? "a replay must follow its log" : s->cfg->no_writes;
	if (!why)
		return true;
	refuse(s, "gdb may not change the guest's %s: %s", what, why);
	return false;
}

static void do_write_mem(struct stub *s, const struct gdb_cmd *c)
{
	if (!c->len) {
		reply(s, "OK"); /* gdb's probe for X: nothing changes */
		return;
	}
	if (!writable(s, "memory"))
		return;
	if (vmm_machine_write_virt(s->cfg->m, c->addr, c->data, c->len) < 0) {
		/* Unmapped (gdb says "Cannot access memory"), or a backend that cannot. */
		reply(s, "E14");
		return;
	}
	reply(s, "OK");
}

static void do_write_regs(struct stub *s, const struct gdb_cmd *c)
{
	if (!writable(s, "registers"))
		return;
	struct vmm_regs r;
	struct vmm_fpregs f, f0;
	read_regs(s, &r, &f);
	f0 = f;
	const char *hex = (const char *)c->data;
	int rc = c->kind == GDB_CMD_WRITE_REGS ? gdb_regs_decode(hex, c->datalen, &r, &f)
					       : gdb_reg_decode(c->regno, hex, c->datalen, &r, &f);
	if (rc < 0) {
		reply(s, "E01");
		return;
	}
	if (memcmp(&f, &f0, sizeof(f))) {
		refuse(s, "the x87 and SSE registers cannot be changed yet");
		return;
	}
	const struct vmm_cpu_ops *ops = vmm_machine_backend(s->cfg->m);
	if (ops->set_regs(vmm_machine_cpu(s->cfg->m), &r) < 0) {
		refuse(s, "%s", vmm_errdetail());
		return;
	}
	reply(s, "OK");
}

static void monitor(struct stub *s, const char *cmd)
{
	char out[1024];
	struct tl *t = s->cfg->tl;
	while (*cmd == ' ')
		cmd++;
	if (!strcmp(cmd, "when") || !strcmp(cmd, "pos")) {
		struct tl_stats st;
		tl_stats(t, &st);
		vmm_pos_t lp = vmm_machine_pos(s->cfg->m);
		if (lp != tl_pos(t)) /* a log whose positions count exits */
			snprintf(out, sizeof(out),
				 "position %" PRIu64 " (instructions retired); log position %" PRIu64
				 " (exits)\n",
				 tl_pos(t), lp);
		else
			snprintf(out, sizeof(out), "position %" PRIu64 " (instructions retired)\n",
				 tl_pos(t));
		console(s, out);
		reply(s, "OK");
	} else if (!strncmp(cmd, "goto ", 5)) {
		char *end;
		errno = 0;
		unsigned long long pos = strtoull(cmd + 5, &end, 0);
		if (errno || end == cmd + 5 || *end) {
			console(s, "usage: monitor goto POSITION\n");
			reply(s, "OK");
			return;
		}
		if (!tl_can_reverse(t) && pos < tl_pos(t)) {
			snprintf(out, sizeof(out),
				 "goto: position %llu is behind this one (%" PRIu64 "), and a live "
				 "run only goes forward (record it, then 'rewind debug' the log to "
				 "go back)\n",
				 pos, tl_pos(t));
			console(s, out);
			reply(s, "OK");
			return;
		}
		struct tl_stop st;
		run_begin(s);
		int rc = tl_goto(t, pos, &st);
		run_end(s);
		if (rc < 0) {
			snprintf(out, sizeof(out), "goto: %s\n", vmm_errdetail());
		} else if (st.kind == TL_STOP_HISTORY_END && tl_can_reverse(t)) {
			snprintf(out, sizeof(out),
				 "the recording ends at position %" PRIu64 "; now there\n", st.pos);
		} else if (st.kind == TL_STOP_HISTORY_END) {
			snprintf(out, sizeof(out),
				 "the guest ended at position %" PRIu64 " (continue to end the "
				 "session)\n",
				 st.pos);
		} else if (st.kind == TL_STOP_INTERRUPTED) {
			snprintf(out, sizeof(out), "interrupted at position %" PRIu64 "\n", st.pos);
		} else {
			snprintf(out, sizeof(out), "now at position %" PRIu64 "\n", st.pos);
		}
		if (s->closed)
			return;
		console(s, out);
		reply(s, "OK");
	} else if (!strcmp(cmd, "checkpoints")) {
		struct tl_stats st;
		tl_stats(t, &st);
		if (!tl_can_reverse(t)) {
			console(s, "no checkpoints: this is a live run (forward only)\n");
		} else {
			snprintf(out, sizeof(out),
				 "%u checkpoints from position %" PRIu64 " to %" PRIu64
				 ", one every %" PRIu64 " instructions\n"
				 "memory: %.1f MiB of %.1f MiB (%" PRIu64
				 " page versions); %" PRIu64 " thinned\n"
				 "re-executed %" PRIu64 " instructions; %" PRIu64
				 " intervals skipped by page differences\n",
				 st.checkpoints, st.first_pos, st.last_pos, st.every,
				 st.bytes / 1048576.0, st.bound / 1048576.0, st.pages, st.thinned,
				 st.reexecuted, st.skipped);
			console(s, out);
		}
		reply(s, "OK");
	} else if ((!strcmp(cmd, "help") || !*cmd) && tl_can_reverse(t)) {
		console(s, "rewind monitor commands:\n"
			   "  when           the current position (instructions retired)\n"
			   "  goto POS       go to a position (then: maintenance flush "
			   "register-cache)\n"
			   "  checkpoints    what checkpoints are kept, and their memory\n");
		reply(s, "OK");
	} else if (!strcmp(cmd, "help") || !*cmd) {
		console(s, "rewind monitor commands (a live run: forward only):\n"
			   "  when           the current position (instructions retired)\n"
			   "  goto POS       run forward to a position (then: maintenance flush "
			   "register-cache)\n");
		reply(s, "OK");
	} else {
		snprintf(out, sizeof(out), "unknown monitor command '%.200s' (try: monitor help)\n",
			 cmd);
		console(s, out);
		reply(s, "OK");
	}
}

/* Carry out one command; false when the session ends. */
static bool handle(struct stub *s, char *pkt, size_t len, enum gdbstub_end *end)
{
	struct gdb_cmd c;
	static char buf[GDB_FRAME_MAX];
	gdb_parse(pkt, len, &c);
	struct tl *t = s->cfg->tl;
	struct tl_stop st;
	bool rev = tl_can_reverse(t);
	int rc;
	switch (c.kind) {
	case GDB_CMD_UNKNOWN:
	case GDB_CMD_MUST_REPLY_EMPTY:
		reply(s, "");
		break;
	case GDB_CMD_MALFORMED:
		reply(s, "E01");
		break;
	case GDB_CMD_SUPPORTED:
		s->swbreak = gdb_feature_supported(c.text, "swbreak");
		s->hwbreak = gdb_feature_supported(c.text, "hwbreak");
		reply(s, rev ? GDB_SUPPORTED_REPLY
			     : "PacketSize=" GDB_PACKET_MAX_HEX ";qXfer:features:read+;swbreak+;"
			       "hwbreak+;QStartNoAckMode+;vContSupported+");
		break;
	case GDB_CMD_NOACK:
		reply(s, "OK");
		s->noack = true;
		break;
	case GDB_CMD_HALT_REASON:
		reply(s, s->stop);
		break;
	case GDB_CMD_READ_REGS: {
		struct vmm_regs r;
		struct vmm_fpregs f;
		read_regs(s, &r, &f);
		size_t n = gdb_regs_encode(&r, &f, buf, sizeof(buf));
		reply_n(s, buf, n);
		break;
	}
	case GDB_CMD_READ_REG: {
		struct vmm_regs r;
		struct vmm_fpregs f;
		read_regs(s, &r, &f);
		int n = gdb_reg_encode(c.regno, &r, &f, buf, sizeof(buf));
		if (n < 0)
			reply(s, "E01");
		else
			reply_n(s, buf, (size_t)n);
		break;
	}
	case GDB_CMD_WRITE_REGS:
	case GDB_CMD_WRITE_REG:
		do_write_regs(s, &c);
		break;
	case GDB_CMD_WRITE_MEM:
		do_write_mem(s, &c);
		break;
	case GDB_CMD_READ_MEM:
		do_read_mem(s, &c);
		break;
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
		do_breakpoint(s, &c, c.kind == GDB_CMD_INSERT_BP);
		break;
	case GDB_CMD_STEP:
	case GDB_CMD_CONTINUE:
	case GDB_CMD_REVERSE_STEP:
	case GDB_CMD_REVERSE_CONTINUE:
		if (c.has_addr) {
			reply(s, "E01"); /* resuming elsewhere would leave the log */
			break;
		}
		if (!rev && (c.kind == GDB_CMD_REVERSE_STEP || c.kind == GDB_CMD_REVERSE_CONTINUE)) {
			/* Not advertised, so gdb refuses by itself; a client that asks anyway
			 * is told why. */
			refuse(s, "a live run cannot go back: record it, then 'rewind debug' the "
				  "log");
			break;
		}
		run_begin(s);
		rc = c.kind == GDB_CMD_STEP           ? tl_step(t, &st)
		     : c.kind == GDB_CMD_CONTINUE     ? tl_forward(t, UINT64_MAX, &st)
		     : c.kind == GDB_CMD_REVERSE_STEP ? tl_reverse_step(t, &st)
						      : tl_reverse_continue(t, &st);
		run_end(s);
		if (s->closed)
			return false;
		if (rc < 0) {
			char line[600];
			snprintf(line, sizeof(line), "rewind: %s\n",
				 *vmm_errdetail() ? vmm_errdetail() : vmm_strerror(-rc));
			console(s, line);
			note(s, "%s", line);
			reply(s, "E01");
			break;
		}
		stop_reply(s, &st);
		if (!rev && st.kind == TL_STOP_HISTORY_END) {
			/* A live guest ended and gdb knows (W): nothing is left to debug. */
			s->res->stop = st.end;
			snprintf(s->res->why, sizeof(s->res->why), "%s", st.why);
			*end = GDBSTUB_EXITED;
			return false;
		}
		break;
	case GDB_CMD_VCONT_QUERY:
		reply(s, "vCont;c;C;s;S");
		break;
	case GDB_CMD_XFER_FEATURES: {
		size_t dl;
		const char *doc = gdb_target_xml(c.text, &dl);
		if (!doc) {
			reply(s, "E00");
			break;
		}
		size_t n = gdb_xfer_reply(doc, dl, c.addr, c.len, buf, sizeof(buf));
		reply_n(s, buf, n);
		break;
	}
	case GDB_CMD_MONITOR:
		monitor(s, c.text);
		break;
	case GDB_CMD_DETACH:
		reply(s, "OK");
		*end = GDBSTUB_DETACHED;
		return false;
	case GDB_CMD_KILL:
		if (len && pkt[0] == 'v')
			reply(s, "OK");
		*end = GDBSTUB_KILLED;
		return false;
	case GDB_CMD_ATTACHED:
		reply(s, "1");
		break;
	case GDB_CMD_THREAD_FIRST:
		reply(s, "m1");
		break;
	case GDB_CMD_THREAD_NEXT:
		reply(s, "l");
		break;
	case GDB_CMD_CURRENT_THREAD:
		reply(s, "QC1");
		break;
	case GDB_CMD_SET_THREAD:
		reply(s, "OK");
		break;
	case GDB_CMD_THREAD_ALIVE:
		reply(s, c.thread == GDB_THREAD_ID || c.thread <= 0 ? "OK" : "E01");
		break;
	}
	return !s->closed;
}

/* Feed bytes to the packet reader; false when the session ends. */
static bool feed(struct stub *s, const uint8_t *b, size_t n, enum gdbstub_end *end)
{
	for (size_t i = 0; i < n; i++) {
		switch (gdb_rx_byte(&s->rx, b[i])) {
		case GDB_RX_NONE:
		case GDB_RX_ACK:
		case GDB_RX_INTERRUPT: /* the guest is stopped already */
			break;
		case GDB_RX_NACK:
			if (s->last_len)
				send_raw(s, s->last, s->last_len);
			break;
		case GDB_RX_BAD_CHECKSUM:
		case GDB_RX_OVERSIZE:
			if (!s->noack)
				send_raw(s, "-", 1);
			break;
		case GDB_RX_PACKET:
			if (!s->noack)
				send_raw(s, "+", 1);
			if (!handle(s, s->rx.data, s->rx.len, end))
				return false;
			break;
		}
	}
	return !s->closed;
}

int gdbstub_listen(const char *spec, int *fd, uint16_t *port)
{
	char host[64] = "127.0.0.1";
	const char *colon = strrchr(spec, ':');
	const char *ps = spec;
	if (colon) {
		size_t hl = (size_t)(colon - spec);
		if (hl >= sizeof(host))
			return vmm_fail(VMM_EINVAL, "%s: bad address", spec);
		if (hl) {
			memcpy(host, spec, hl);
			host[hl] = 0;
		}
		ps = colon + 1;
	}
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	uint16_t p;
	if (!vmm_parse_port(ps, &p))
		return vmm_fail(VMM_EINVAL, "%s: expected [HOST:]PORT", spec);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return vmm_fail(VMM_EINVAL, "%s: %s is not an IPv4 address", spec, host);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return vmm_fail(VMM_EIO, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 2) < 0) {
		int e = errno;
		close(s);
		return vmm_fail(VMM_EIO, "cannot listen on %s:%u: %s", host, (unsigned)p, strerror(e));
	}
	socklen_t sl = sizeof(sa);
	getsockname(s, (struct sockaddr *)&sa, &sl);
	*fd = s;
	*port = ntohs(sa.sin_port);
	return 0;
}

void gdbstub_addr(int lfd, char *buf, size_t cap)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char host[INET_ADDRSTRLEN] = "?";
	if (getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0 ||
	    !inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host)))
		sa.sin_port = 0;
	snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(sa.sin_port));
}

int gdbstub_serve(const struct gdbstub_config *cfg, int lfd, struct gdbstub_result *res)
{
	struct stub *s = calloc(1, sizeof(*s));
	if (!s)
		return -VMM_ENOMEM;
	s->cfg = cfg;
	s->lfd = lfd;
	s->res = res;
	memset(res, 0, sizeof(*res));
	res->end = GDBSTUB_GONE;
	enum gdbstub_end *end = &res->end;
	for (;;) {
		if (cfg->quit && cfg->quit(cfg->opaque)) {
			res->end = GDBSTUB_STOPPED;
			free(s);
			return 0;
		}
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		if (poll(&p, 1, QUIT_POLL_MS) <= 0)
			continue;
		s->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (s->fd >= 0 || (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED))
			break;
	}
	if (s->fd < 0) {
		int e = errno;
		free(s);
		return vmm_fail(VMM_EIO, "accepting gdb: %s", strerror(e));
	}
	/* Without it, Ctrl-C is seen only between slices (interrupted()). */
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	gdb_rx_init(&s->rx);
	gdb_stop_reply(GDB_STOP_SIGNAL, SIG_TRAP, 0, s->stop, sizeof(s->stop));
	tl_set_interrupt(cfg->tl, interrupted, s);
	note(s, "gdb attached");
	for (;;) {
		if (s->npend) {
			uint8_t b[sizeof(s->pend)];
			size_t n = s->npend;
			memcpy(b, s->pend, n);
			s->npend = 0;
			if (!feed(s, b, n, end))
				break;
			continue;
		}
		if (cfg->quit && cfg->quit(cfg->opaque)) {
			*end = GDBSTUB_STOPPED;
			break;
		}
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
				      {.fd = lfd, .events = POLLIN}};
		int np = poll(p, 2, cfg->quit ? QUIT_POLL_MS : -1);
		if (np < 0 && errno == EINTR)
			continue;
		if (np < 0)
			break;
		if (p[1].revents & POLLIN)
			refuse_other(s);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t b[4096];
			ssize_t n = recv(s->fd, b, sizeof(b), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (!feed(s, b, (size_t)n, end))
				break;
		}
	}
	tl_set_interrupt(cfg->tl, NULL, NULL);
	close(s->fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (*end != GDBSTUB_EXITED && *end != GDBSTUB_STOPPED)
		note(s, *end == GDBSTUB_DETACHED ? "gdb detached"
			: *end == GDBSTUB_KILLED ? "gdb killed the session"
						 : "gdb went away");
	free(s);
	return 0;
}
