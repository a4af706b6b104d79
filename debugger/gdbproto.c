/*
 * gdbproto.c: gdb's remote serial protocol on the wire: the packet receiver (a byte-at-a-
 * time state machine: acks, interrupts, escapes, checksums, size limit), reply framing,
 * hex, the command parser and stop replies. See gdbproto.h for the conventions.
 *
 * Left out: run-length encoding (only replies may use it, and ours do not), non-stop
 * mode, multiprocess extensions beyond accepting "pP.T" thread ids, tracepoints, File-I/O.
 * The parser trusts nothing: every number is bounded, every length checked against the
 * bytes actually present, and the payload may contain NUL bytes (X packets).
 */
#include "debugger/gdbproto.h"

#include <stdio.h>
#include <string.h>

enum rx_state { RX_IDLE, RX_DATA, RX_ESC, RX_SUM1, RX_SUM2 };

void gdb_rx_init(struct gdb_rx *rx)
{
	rx->len = 0;
	rx->data[0] = '\0';
	rx->state = RX_IDLE;
	rx->sum = 0;
	rx->got_sum = 0;
	rx->overflow = false;
}

static int hex_val(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void rx_start(struct gdb_rx *rx)
{
	rx->len = 0;
	rx->data[0] = '\0';
	rx->sum = 0;
	rx->overflow = false;
	rx->state = RX_DATA;
}

static void rx_store(struct gdb_rx *rx, uint8_t c)
{
	if (rx->len < GDB_PACKET_MAX)
		rx->data[rx->len++] = (char)c;
	else
		rx->overflow = true;
}

/* A checksum digit that is not hex: the packet is bad. A '$' there starts the next one,
 * since a cut-off packet should not also cost the one after it. */
static enum gdb_rx_result rx_bad_digit(struct gdb_rx *rx, uint8_t b)
{
	rx->len = 0;
	rx->data[0] = '\0';
	if (b == '$')
		rx_start(rx);
	else
		rx->state = RX_IDLE;
	return GDB_RX_BAD_CHECKSUM;
}

enum gdb_rx_result gdb_rx_byte(struct gdb_rx *rx, uint8_t b)
{
	int v;

	switch (rx->state) {
	case RX_IDLE:
		switch (b) {
		case '$':
			rx_start(rx);
			return GDB_RX_NONE;
		case '+':
			return GDB_RX_ACK;
		case '-':
			return GDB_RX_NACK;
		case 0x03:
			return GDB_RX_INTERRUPT;
		default:
			return GDB_RX_NONE;
		}
	case RX_DATA:
		if (b == '$') { /* the previous packet was cut off */
			rx_start(rx);
			return GDB_RX_NONE;
		}
		if (b == '#') {
			rx->state = RX_SUM1;
			return GDB_RX_NONE;
		}
		rx->sum = (uint8_t)(rx->sum + b);
		if (b == '}')
			rx->state = RX_ESC;
		else
			rx_store(rx, b);
		return GDB_RX_NONE;
	case RX_ESC:
		if (b == '$') {
			rx_start(rx);
			return GDB_RX_NONE;
		}
		rx->sum = (uint8_t)(rx->sum + b);
		rx_store(rx, b ^ 0x20);
		rx->state = RX_DATA;
		return GDB_RX_NONE;
	case RX_SUM1:
		v = hex_val(b);
		if (v < 0)
			return rx_bad_digit(rx, b);
		rx->got_sum = (uint8_t)(v << 4);
		rx->state = RX_SUM2;
		return GDB_RX_NONE;
	case RX_SUM2:
		v = hex_val(b);
		if (v < 0)
			return rx_bad_digit(rx, b);
		rx->state = RX_IDLE;
		if (rx->overflow) {
			rx->len = 0;
			rx->data[0] = '\0';
			return GDB_RX_OVERSIZE;
		}
		rx->data[rx->len] = '\0';
		if ((uint8_t)(rx->got_sum | v) != rx->sum) {
			rx->len = 0;
			rx->data[0] = '\0';
			return GDB_RX_BAD_CHECKSUM;
		}
		return GDB_RX_PACKET;
	}
	gdb_rx_init(rx); /* a state we never set: start over */
	return GDB_RX_NONE;
}

static bool needs_escape(uint8_t c)
{
	return c == '$' || c == '#' || c == '}' || c == '*';
}

size_t gdb_frame(const char *payload, size_t len, char *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";
	size_t need = 4, o = 0;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		need += needs_escape((uint8_t)payload[i]) ? 2 : 1;
	if (need > cap)
		return 0;
	out[o++] = '$';
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)payload[i];

		if (needs_escape(c)) {
			out[o++] = '}';
			sum = (uint8_t)(sum + '}');
			c ^= 0x20;
		}
		out[o++] = (char)c;
		sum = (uint8_t)(sum + c);
	}
	out[o++] = '#';
	out[o++] = digits[sum >> 4];
	out[o++] = digits[sum & 15];
	return o;
}

size_t gdb_hex_encode(const void *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = bytes;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	return 2 * n;
}

int gdb_hex_decode(const char *hex, size_t nchars, void *out)
{
	uint8_t *o = out;

	if (nchars % 2)
		return -1;
	/* Reads stay ahead of writes, so hex and out may be the same buffer. */
	for (size_t i = 0; i < nchars; i += 2) {
		int hi = hex_val((uint8_t)hex[i]), lo = hex_val((uint8_t)hex[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		o[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- the parser ---- */

/* A cursor over the bytes of a packet not yet parsed. */
struct cur {
	char *p, *end;
};

static bool at_end(const struct cur *c)
{
	return c->p == c->end;
}

static size_t left(const struct cur *c)
{
	return (size_t)(c->end - c->p);
}

static bool eat(struct cur *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* Consume s if the packet continues with it. */
static bool eat_str(struct cur *c, const char *s)
{
	size_t n = strlen(s);

	if (left(c) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* Is what is left exactly s? */
static bool rest_is(const struct cur *c, const char *s)
{
	size_t n = strlen(s);

	return left(c) == n && memcmp(c->p, s, n) == 0;
}

/* One or more hex digits into 64 bits; false on none or on overflow. */
static bool hexnum(struct cur *c, uint64_t *v)
{
	uint64_t x = 0;
	size_t n = 0;
	int d;

	while (c->p < c->end && (d = hex_val((uint8_t)*c->p)) >= 0) {
		if (x >> 60)
			return false;
		x = x << 4 | (uint64_t)d;
		c->p++;
		n++;
	}
	*v = x;
	return n > 0;
}

/* Are all the rest hex digits, an even number of them, at least one? */
static bool rest_is_hex(const struct cur *c)
{
	if (at_end(c) || left(c) % 2)
		return false;
	for (const char *q = c->p; q < c->end; q++)
		if (hex_val((uint8_t)*q) < 0)
			return false;
	return true;
}

/* A thread id: "-1", hex, or the multiprocess "pPID[.TID]" (the TID, or all threads). */
static bool thread_id(struct cur *c, int64_t *out)
{
	uint64_t v;

	if (eat(c, 'p')) {
		if (!eat_str(c, "-1") && !hexnum(c, &v))
			return false;
		if (!eat(c, '.')) {
			*out = GDB_THREAD_ALL;
			return true;
		}
	}
	if (eat_str(c, "-1")) {
		*out = GDB_THREAD_ALL;
		return true;
	}
	if (!hexnum(c, &v) || v > INT64_MAX)
		return false;
	*out = (int64_t)v;
	return true;
}

static bool thread_is_ours(int64_t t)
{
	return t == GDB_THREAD_ID || t == GDB_THREAD_ALL || t == GDB_THREAD_ANY;
}

/* A signal number: hex, at most 0xff. */
static bool signal_num(struct cur *c, int *sig)
{
	uint64_t v;

	if (!hexnum(c, &v) || v > 0xff)
		return false;
	*sig = (int)v;
	return true;
}

static enum gdb_cmd_kind malformed(struct gdb_cmd *cmd)
{
	cmd->kind = GDB_CMD_MALFORMED;
	return cmd->kind;
}

/* "addr,len" */
static bool addr_len(struct cur *c, struct gdb_cmd *cmd)
{
	return hexnum(c, &cmd->addr) && eat(c, ',') && hexnum(c, &cmd->len);
}

static void parse_read_mem(struct cur *c, struct gdb_cmd *cmd)
{
	if (!addr_len(c, cmd) || !at_end(c) || cmd->len > GDB_PACKET_MAX / 2) {
		malformed(cmd);
		return;
	}
	cmd->kind = GDB_CMD_READ_MEM;
}

/* M addr,len:hex  and  X addr,len:binary (already unescaped by the receiver). */
static void parse_write_mem(struct cur *c, struct gdb_cmd *cmd, bool binary)
{
	if (!addr_len(c, cmd) || !eat(c, ':') || cmd->len > GDB_PACKET_MAX) {
		malformed(cmd);
		return;
	}
	if (binary) {
		if (left(c) != cmd->len) {
			malformed(cmd);
			return;
		}
	} else {
		if (left(c) != 2 * cmd->len || gdb_hex_decode(c->p, left(c), c->p) < 0) {
			malformed(cmd);
			return;
		}
	}
	cmd->data = (const uint8_t *)c->p;
	cmd->datalen = (size_t)cmd->len;
	cmd->kind = GDB_CMD_WRITE_MEM;
}

/* Z/z type,addr,kind. Types beyond 4 do not exist: "unsupported". Conditions and
 * commands (";X...") are only sent to stubs that advertise them; we do not. */
static void parse_bp(struct cur *c, struct gdb_cmd *cmd, bool insert)
{
	uint64_t type;

	if (!hexnum(c, &type) || !eat(c, ',') || !addr_len(c, cmd) || !at_end(c)) {
		malformed(cmd);
		return;
	}
	if (type > GDB_BP_ACCESS) {
		cmd->kind = GDB_CMD_UNKNOWN;
		return;
	}
	cmd->bptype = (int)type;
	cmd->kind = insert ? GDB_CMD_INSERT_BP : GDB_CMD_REMOVE_BP;
}

/* s [addr], c [addr], S sig[;addr], C sig[;addr] */
static void parse_resume(struct cur *c, struct gdb_cmd *cmd, char op)
{
	cmd->op = op;
	if (op == 'S' || op == 'C') {
		if (!signal_num(c, &cmd->signal)) {
			malformed(cmd);
			return;
		}
		if (!at_end(c) && !eat(c, ';')) {
			malformed(cmd);
			return;
		}
		if (c->p[-1] == ';' && at_end(c)) { /* "C05;" without the address */
			malformed(cmd);
			return;
		}
	}
	if (!at_end(c)) {
		if (!hexnum(c, &cmd->addr) || !at_end(c)) {
			malformed(cmd);
			return;
		}
		cmd->has_addr = true;
	}
	cmd->kind = (op == 's' || op == 'S') ? GDB_CMD_STEP : GDB_CMD_CONTINUE;
}

/* vCont;action[:thread];action[:thread]... (c is past "vCont;"). */
static void parse_vcont(struct cur *c, struct gdb_cmd *cmd)
{
	bool chosen = false;
	char first_op = 0, op = 0;
	int first_sig = -1, sig = -1;
	int64_t first_thread = 0, thread = 0;

	for (;;) {
		char a;
		int s = -1;
		int64_t t = GDB_THREAD_ALL;
		uint64_t lo, hi;

		if (at_end(c)) {
			malformed(cmd);
			return;
		}
		a = *c->p++;
		switch (a) {
		case 'c':
		case 's':
			break;
		case 'C':
		case 'S':
			if (!signal_num(c, &s)) {
				malformed(cmd);
				return;
			}
			break;
		case 'r': /* range stepping: stepping once is a valid answer to it */
			if (!hexnum(c, &lo) || !eat(c, ',') || !hexnum(c, &hi)) {
				malformed(cmd);
				return;
			}
			break;
		case 't': /* stop: non-stop mode only */
			break;
		default:
			malformed(cmd);
			return;
		}
		if (eat(c, ':') && !thread_id(c, &t)) {
			malformed(cmd);
			return;
		}
		if (!first_op) {
			first_op = a;
			first_sig = s;
			first_thread = t;
		}
		if (!chosen && thread_is_ours(t)) {
			chosen = true;
			op = a;
			sig = s;
			thread = t;
		}
		if (at_end(c))
			break;
		if (!eat(c, ';')) {
			malformed(cmd);
			return;
		}
	}
	if (!chosen) {
		op = first_op;
		sig = first_sig;
		thread = first_thread;
	}
	cmd->op = op;
	cmd->signal = sig;
	cmd->thread = thread;
	switch (op) {
	case 'c':
	case 'C':
		cmd->kind = GDB_CMD_CONTINUE;
		break;
	case 's':
	case 'S':
	case 'r':
		cmd->kind = GDB_CMD_STEP;
		break;
	default:
		malformed(cmd);
		break;
	}
}

/* Copy s[0..n) into text, cutting a too-long feature list at a ';' boundary. */
static void set_text_features(struct gdb_cmd *cmd, const char *s, size_t n)
{
	if (n >= sizeof(cmd->text)) {
		n = sizeof(cmd->text) - 1;
		while (n > 0 && s[n] != ';')
			n--;
	}
	memcpy(cmd->text, s, n);
	cmd->text[n] = '\0';
	/* A NUL inside would hide the rest; nothing after it is a feature we know. */
}

/* qXfer:features:read:ANNEX:off,len (c is past "qXfer:features:read:"). */
static void parse_xfer_features(struct cur *c, struct gdb_cmd *cmd)
{
	char *colon = NULL;
	size_t n;

	for (char *q = c->p; q < c->end; q++)
		if (*q == ':')
			colon = q;
	if (!colon) {
		malformed(cmd);
		return;
	}
	n = (size_t)(colon - c->p);
	if (n >= sizeof(cmd->text) || memchr(c->p, '\0', n)) {
		malformed(cmd);
		return;
	}
	memcpy(cmd->text, c->p, n);
	cmd->text[n] = '\0';
	c->p = colon + 1;
	if (!addr_len(c, cmd) || !at_end(c)) {
		malformed(cmd);
		return;
	}
	if (cmd->len > GDB_XFER_MAX)
		cmd->len = GDB_XFER_MAX;
	cmd->kind = GDB_CMD_XFER_FEATURES;
}

/* qRcmd,hex */
static void parse_monitor(struct cur *c, struct gdb_cmd *cmd)
{
	size_t n = left(c);

	if (n % 2 || n / 2 >= sizeof(cmd->text) || gdb_hex_decode(c->p, n, cmd->text) < 0 ||
	    memchr(cmd->text, '\0', n / 2)) {
		memset(cmd->text, 0, sizeof(cmd->text));
		malformed(cmd);
		return;
	}
	cmd->text[n / 2] = '\0';
	cmd->datalen = n / 2;
	cmd->kind = GDB_CMD_MONITOR;
}

static void parse_q(struct cur *c, struct gdb_cmd *cmd)
{
	if (rest_is(c, "qSupported")) {
		cmd->kind = GDB_CMD_SUPPORTED;
	} else if (eat_str(c, "qSupported:")) {
		set_text_features(cmd, c->p, left(c));
		cmd->kind = GDB_CMD_SUPPORTED;
	} else if (eat_str(c, "qXfer:features:read:")) {
		parse_xfer_features(c, cmd);
	} else if (eat_str(c, "qRcmd,")) {
		parse_monitor(c, cmd);
	} else if (rest_is(c, "qAttached")) {
		cmd->kind = GDB_CMD_ATTACHED;
	} else if (eat_str(c, "qAttached:")) {
		uint64_t pid;

		if (!hexnum(c, &pid) || !at_end(c))
			malformed(cmd);
		else
			cmd->kind = GDB_CMD_ATTACHED;
	} else if (rest_is(c, "qfThreadInfo")) {
		cmd->kind = GDB_CMD_THREAD_FIRST;
	} else if (rest_is(c, "qsThreadInfo")) {
		cmd->kind = GDB_CMD_THREAD_NEXT;
	} else if (rest_is(c, "qC")) { /* not qCRC: */
		cmd->kind = GDB_CMD_CURRENT_THREAD;
	}
}

static void parse_v(struct cur *c, struct gdb_cmd *cmd)
{
	if (rest_is(c, "vCont?")) {
		cmd->kind = GDB_CMD_VCONT_QUERY;
	} else if (eat_str(c, "vCont;")) {
		parse_vcont(c, cmd);
	} else if (rest_is(c, "vCont")) {
		malformed(cmd);
	} else if (rest_is(c, "vKill")) {
		cmd->kind = GDB_CMD_KILL;
	} else if (eat_str(c, "vKill;")) {
		uint64_t pid;

		if (!hexnum(c, &pid) || !at_end(c))
			malformed(cmd);
		else
			cmd->kind = GDB_CMD_KILL;
	} else if (rest_is(c, "vMustReplyEmpty")) {
		cmd->kind = GDB_CMD_MUST_REPLY_EMPTY;
	}
}

void gdb_parse(char *pkt, size_t len, struct gdb_cmd *cmd)
{
	struct cur c = {pkt, pkt + len};
	uint64_t v;

	memset(cmd, 0, sizeof(*cmd));
	cmd->kind = GDB_CMD_UNKNOWN;
	cmd->signal = -1;
	if (len == 0)
		return;
	switch (pkt[0]) {
	case '?':
		if (len == 1)
			cmd->kind = GDB_CMD_HALT_REASON;
		return;
	case 'g':
		if (len == 1)
			cmd->kind = GDB_CMD_READ_REGS;
		return;
	case 'G':
		c.p++;
		if (!rest_is_hex(&c)) {
			malformed(cmd);
			return;
		}
		cmd->data = (const uint8_t *)c.p;
		cmd->datalen = left(&c);
		cmd->kind = GDB_CMD_WRITE_REGS;
		return;
	case 'p':
		c.p++;
		if (!hexnum(&c, &v) || !at_end(&c) || v > UINT32_MAX) {
			malformed(cmd);
			return;
		}
		cmd->regno = (unsigned)v;
		cmd->kind = GDB_CMD_READ_REG;
		return;
	case 'P':
		c.p++;
		if (!hexnum(&c, &v) || v > UINT32_MAX || !eat(&c, '=') || !rest_is_hex(&c)) {
			malformed(cmd);
			return;
		}
		cmd->regno = (unsigned)v;
		cmd->data = (const uint8_t *)c.p;
		cmd->datalen = left(&c);
		cmd->kind = GDB_CMD_WRITE_REG;
		return;
	case 'm':
		c.p++;
		parse_read_mem(&c, cmd);
		return;
	case 'M':
	case 'X':
		c.p++;
		parse_write_mem(&c, cmd, pkt[0] == 'X');
		return;
	case 'Z':
	case 'z':
		c.p++;
		parse_bp(&c, cmd, pkt[0] == 'Z');
		return;
	case 's':
	case 'c':
	case 'S':
	case 'C':
		c.p++;
		parse_resume(&c, cmd, pkt[0]);
		return;
	case 'b':
		if (rest_is(&c, "bs"))
			cmd->kind = GDB_CMD_REVERSE_STEP;
		else if (rest_is(&c, "bc"))
			cmd->kind = GDB_CMD_REVERSE_CONTINUE;
		return;
	case 'v':
		parse_v(&c, cmd);
		return;
	case 'q':
		parse_q(&c, cmd);
		return;
	case 'Q':
		if (rest_is(&c, "QStartNoAckMode"))
			cmd->kind = GDB_CMD_NOACK;
		return;
	case 'D':
		c.p++;
		if (at_end(&c) || (eat(&c, ';') && hexnum(&c, &v) && at_end(&c)))
			cmd->kind = GDB_CMD_DETACH;
		else
			malformed(cmd);
		return;
	case 'k':
		if (len == 1)
			cmd->kind = GDB_CMD_KILL;
		return;
	case 'H':
		c.p++;
		if (at_end(&c) || (*c.p != 'g' && *c.p != 'c'))
			return; /* other H operations: unsupported */
		cmd->op = *c.p++;
		if (!thread_id(&c, &cmd->thread) || !at_end(&c)) {
			malformed(cmd);
			return;
		}
		cmd->kind = GDB_CMD_SET_THREAD;
		return;
	case 'T':
		c.p++;
		if (!thread_id(&c, &cmd->thread) || !at_end(&c)) {
			malformed(cmd);
			return;
		}
		cmd->kind = GDB_CMD_THREAD_ALIVE;
		return;
	default:
		return;
	}
}

const char *gdb_cmd_name(enum gdb_cmd_kind kind)
{
	static const char *const names[] = {
	    [GDB_CMD_UNKNOWN] = "unknown",
	    [GDB_CMD_MALFORMED] = "malformed",
	    [GDB_CMD_HALT_REASON] = "halt_reason",
	    [GDB_CMD_READ_REGS] = "read_regs",
	    [GDB_CMD_WRITE_REGS] = "write_regs",
	    [GDB_CMD_READ_REG] = "read_reg",
	    [GDB_CMD_WRITE_REG] = "write_reg",
	    [GDB_CMD_READ_MEM] = "read_mem",
	    [GDB_CMD_WRITE_MEM] = "write_mem",
	    [GDB_CMD_INSERT_BP] = "insert_bp",
	    [GDB_CMD_REMOVE_BP] = "remove_bp",
	    [GDB_CMD_STEP] = "step",
	    [GDB_CMD_CONTINUE] = "continue",
	    [GDB_CMD_REVERSE_STEP] = "reverse_step",
	    [GDB_CMD_REVERSE_CONTINUE] = "reverse_continue",
	    [GDB_CMD_VCONT_QUERY] = "vcont_query",
	    [GDB_CMD_SUPPORTED] = "supported",
	    [GDB_CMD_XFER_FEATURES] = "xfer_features",
	    [GDB_CMD_MONITOR] = "monitor",
	    [GDB_CMD_DETACH] = "detach",
	    [GDB_CMD_KILL] = "kill",
	    [GDB_CMD_ATTACHED] = "attached",
	    [GDB_CMD_THREAD_FIRST] = "thread_first",
	    [GDB_CMD_THREAD_NEXT] = "thread_next",
	    [GDB_CMD_CURRENT_THREAD] = "current_thread",
	    [GDB_CMD_SET_THREAD] = "set_thread",
	    [GDB_CMD_THREAD_ALIVE] = "thread_alive",
	    [GDB_CMD_NOACK] = "noack",
	    [GDB_CMD_MUST_REPLY_EMPTY] = "must_reply_empty",
	};

	if ((unsigned)kind >= sizeof(names) / sizeof(names[0]) || !names[kind])
		return "?";
	return names[kind];
}

bool gdb_feature_supported(const char *features, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = features; p && *p;) {
		const char *e = strchr(p, ';');
		size_t flen = e ? (size_t)(e - p) : strlen(p);

		if (flen == n + 1 && memcmp(p, name, n) == 0 && p[n] == '+')
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

size_t gdb_xfer_reply(const char *doc, size_t doclen, uint64_t off, uint64_t len, char *out,
		      size_t cap)
{
	size_t n;

	if (cap < 1)
		return 0;
	if (off >= doclen) {
		out[0] = 'l';
		return 1;
	}
	n = doclen - (size_t)off;
	if (len < n)
		n = (size_t)len;
	if (n + 1 > cap)
		return 0;
	out[0] = off + n < doclen ? 'm' : 'l';
	memcpy(out + 1, doc + off, n);
	return n + 1;
}

size_t gdb_console_output(const char *text, size_t n, char *out, size_t cap)
{
	if (cap < 1 || n > (cap - 1) / 2)
		return 0;
	out[0] = 'O';
	return 1 + gdb_hex_encode(text, n, out + 1);
}

size_t gdb_stop_reply(enum gdb_stop_why why, int sig, uint64_t addr, char *out, size_t cap)
{
	char buf[64];
	unsigned s = (unsigned)sig & 0xff;
	int n;

	switch (why) {
	case GDB_STOP_SIGNAL:
		n = snprintf(buf, sizeof(buf), "T%02xthread:%x;", s, GDB_THREAD_ID);
		break;
	case GDB_STOP_SWBREAK:
		n = snprintf(buf, sizeof(buf), "T%02xswbreak:;thread:%x;", s, GDB_THREAD_ID);
		break;
	case GDB_STOP_HWBREAK:
		n = snprintf(buf, sizeof(buf), "T%02xhwbreak:;thread:%x;", s, GDB_THREAD_ID);
		break;
	case GDB_STOP_WATCH:
		n = snprintf(buf, sizeof(buf), "T%02xwatch:%llx;thread:%x;", s,
			     (unsigned long long)addr, GDB_THREAD_ID);
		break;
	case GDB_STOP_RWATCH:
		n = snprintf(buf, sizeof(buf), "T%02xrwatch:%llx;thread:%x;", s,
			     (unsigned long long)addr, GDB_THREAD_ID);
		break;
	case GDB_STOP_AWATCH:
		n = snprintf(buf, sizeof(buf), "T%02xawatch:%llx;thread:%x;", s,
			     (unsigned long long)addr, GDB_THREAD_ID);
		break;
	case GDB_STOP_HISTORY_BEGIN:
		n = snprintf(buf, sizeof(buf), "T%02xreplaylog:begin;", s);
		break;
	case GDB_STOP_HISTORY_END:
		n = snprintf(buf, sizeof(buf), "T%02xreplaylog:end;", s);
		break;
	case GDB_STOP_EXITED:
		n = snprintf(buf, sizeof(buf), "W%02x", s);
		break;
	default:
		return 0;
	}
	if (n <= 0 || (size_t)n > cap)
		return 0;
	memcpy(out, buf, (size_t)n);
	if ((size_t)n < cap)
		out[n] = '\0';
	return (size_t)n;
}
