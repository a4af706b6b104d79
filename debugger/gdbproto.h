/*
 * gdbproto.h: gdb's remote serial protocol, the wire half: receiving and checking packets
 * byte by byte, framing replies, hex, parsing a packet into a command, and stop replies.
 * Pure code with no VM knowledge and no I/O: the stub (gdbstub.c) owns the socket and does
 * what each command asks.
 *
 * Conventions (from the "Remote Protocol" appendix of the gdb manual):
 * - A packet is "$payload#cc", cc the two-digit hex sum modulo 256 of the payload bytes as
 *   sent. In the payload, '}' escapes the next byte (the byte XOR 0x20); '$', '#', '}' and,
 *   in replies, '*' must be escaped. gdb only escapes binary data (X packets, qXfer
 *   replies), but the receiver here unescapes every packet, as no other packet carries '}'.
 * - Outside a packet, '+' and '-' acknowledge a packet and 0x03 is an interrupt (Ctrl-C).
 * - An empty reply means "unsupported"; "E NN" an error; "OK" success.
 * - We are one process with one thread, id 1.
 */
#ifndef REWIND_DEBUGGER_GDBPROTO_H
#define REWIND_DEBUGGER_GDBPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GDB_WUR __attribute__((warn_unused_result))

/* The PacketSize we advertise (payload bytes after unescaping); hex in qSupported. */
#define GDB_PACKET_MAX	   16384
#define GDB_PACKET_MAX_HEX "4000"

/* The largest framed packet gdb_frame can produce from GDB_PACKET_MAX payload bytes:
 * "$" + every byte escaped + "#cc". */
#define GDB_FRAME_MAX (2 * GDB_PACKET_MAX + 4)

/* The qXfer length gdb_parse clamps to: so that even a reply of escaped bytes fits. */
#define GDB_XFER_MAX (GDB_PACKET_MAX / 2 - 1)

/* The one thread id we report (qC, qfThreadInfo, stop replies). */
#define GDB_THREAD_ID 1

/*
 * What a stub like ours advertises in reply to qSupported: packet size, the target
 * description, breakpoint kinds reported in stop replies, no-ack mode, vCont, and reverse
 * execution (without ReverseStep+/ReverseContinue+ gdb refuses reverse-step itself).
 * A stub should only report swbreak/hwbreak stops if gdb's qSupported listed them
 * (gdb_feature_supported); every gdb since 7.10 does.
 */
#define GDB_SUPPORTED_REPLY                                                                        \
	"PacketSize=" GDB_PACKET_MAX_HEX ";qXfer:features:read+;swbreak+;hwbreak+;"                \
	"QStartNoAckMode+;vContSupported+;ReverseStep+;ReverseContinue+"

enum gdb_rx_result {
	GDB_RX_NONE,	     /* need more bytes */
	GDB_RX_PACKET,	     /* rx->data[0..len) holds the payload, escapes ('}' x^0x20) removed,
				NUL-terminated; checksum was good: send '+' (unless no-ack mode) */
	GDB_RX_BAD_CHECKSUM, /* send '-' (unless no-ack mode) */
	GDB_RX_OVERSIZE,     /* packet longer than GDB_PACKET_MAX: dropped; send '-' */
	GDB_RX_INTERRUPT,    /* a 0x03 byte outside a packet (Ctrl-C) */
	GDB_RX_ACK,	     /* '+' */
	GDB_RX_NACK,	     /* '-': resend the last reply */
};

/* The receiver. Only data and len are public; the rest is its state between bytes. */
struct gdb_rx {
	char data[GDB_PACKET_MAX + 1];
	size_t len;
	int state;	 /* private */
	uint8_t sum;	 /* private: sum of the bytes after '$' so far */
	uint8_t got_sum; /* private: the first checksum digit */
	bool overflow;	 /* private: more than GDB_PACKET_MAX payload bytes */
};

/* Start between packets. */
void gdb_rx_init(struct gdb_rx *rx);

/*
 * Feed one byte. Junk outside packets is ignored; a '$' inside a packet starts a new one
 * (the old one was cut off). A bad checksum digit counts as a bad checksum. Between
 * GDB_RX_PACKET and the next call, rx->data holds the payload.
 */
enum gdb_rx_result gdb_rx_byte(struct gdb_rx *rx, uint8_t b);

/*
 * Frame a reply: "$" + payload with '$' '#' '}' '*' escaped + "#" + two hex checksum
 * digits. payload may hold any bytes (NUL too). Returns the framed length (no NUL is
 * written), or 0 if cap is too small. GDB_FRAME_MAX is always enough for a payload of at
 * most GDB_PACKET_MAX bytes.
 */
size_t gdb_frame(const char *payload, size_t len, char *out, size_t cap);

/* Hex helpers (lower case out, either case in). */
size_t gdb_hex_encode(const void *bytes, size_t n, char *out); /* 2n chars, no NUL */
/* nchars even; -1 on a bad digit or odd nchars. hex and out may be the same buffer. */
int gdb_hex_decode(const char *hex, size_t nchars, void *out) GDB_WUR;

enum gdb_cmd_kind {
	GDB_CMD_UNKNOWN,	  /* reply "" (empty packet) */
	GDB_CMD_MALFORMED,	  /* a known command with bad arguments: reply "E01" */
	GDB_CMD_HALT_REASON,	  /* ? */
	GDB_CMD_READ_REGS,	  /* g */
	GDB_CMD_WRITE_REGS,	  /* G hex: data/datalen = the hex text (even, hex digits) */
	GDB_CMD_READ_REG,	  /* p n: regno */
	GDB_CMD_WRITE_REG,	  /* P n=hex: regno, data/datalen = the hex text */
	GDB_CMD_READ_MEM,	  /* m addr,len (len <= GDB_PACKET_MAX/2) */
	GDB_CMD_WRITE_MEM,	  /* M addr,len:hex (decoded) and X addr,len:binary (unescaped):
				     addr, len, data = the raw bytes (datalen == len; may be 0) */
	GDB_CMD_INSERT_BP,	  /* Z type,addr,kind: bptype 0..4, addr, len = kind */
	GDB_CMD_REMOVE_BP,	  /* z type,addr,kind */
	GDB_CMD_STEP,		  /* s [addr], S sig[;addr], vCont;s/S/r...: has_addr/addr */
	GDB_CMD_CONTINUE,	  /* c [addr], C sig[;addr], vCont;c/C... */
	GDB_CMD_REVERSE_STEP,	  /* bs */
	GDB_CMD_REVERSE_CONTINUE, /* bc */
	GDB_CMD_VCONT_QUERY,	  /* vCont? -> reply "vCont;c;C;s;S" */
	GDB_CMD_SUPPORTED,	  /* qSupported[:features]; feature text in text[] */
	GDB_CMD_XFER_FEATURES,	  /* qXfer:features:read:ANNEX:off,len: text = annex, addr = off,
				     len = len clamped to GDB_XFER_MAX (gdb_xfer_reply) */
	GDB_CMD_MONITOR,	  /* qRcmd,hex: text = the decoded command (NUL-terminated) */
	GDB_CMD_DETACH,		  /* D, D;pid */
	GDB_CMD_KILL,		  /* k, vKill;pid */
	GDB_CMD_ATTACHED,	  /* qAttached, qAttached:pid: reply "1" */
	GDB_CMD_THREAD_FIRST,	  /* qfThreadInfo: reply "m1" */
	GDB_CMD_THREAD_NEXT,	  /* qsThreadInfo: reply "l" */
	GDB_CMD_CURRENT_THREAD,	  /* qC: reply "QC1" */
	GDB_CMD_SET_THREAD,	  /* Hg.., Hc..: op = 'g' or 'c', thread */
	GDB_CMD_THREAD_ALIVE,	  /* T thread: thread; reply "OK" if it is ours, else "E01" */
	GDB_CMD_NOACK,		  /* QStartNoAckMode: reply "OK", then stop sending '+'/'-' */
	GDB_CMD_MUST_REPLY_EMPTY, /* vMustReplyEmpty (reply "") */
};

/* Z/z types. */
enum gdb_bp_type {
	GDB_BP_SW = 0,	   /* software breakpoint; len = kind (1 on x86: int3) */
	GDB_BP_HW = 1,	   /* hardware breakpoint */
	GDB_BP_WRITE = 2,  /* write watchpoint over [addr, addr+len) */
	GDB_BP_READ = 3,   /* read watchpoint */
	GDB_BP_ACCESS = 4, /* access (read or write) watchpoint */
};

/* Thread ids in H, T and vCont: */
#define GDB_THREAD_ALL -1 /* "-1": every thread */
#define GDB_THREAD_ANY 0  /* "0": any thread */

struct gdb_cmd {
	enum gdb_cmd_kind kind;
	uint64_t addr, len;
	bool has_addr;
	int bptype; /* Z/z: enum gdb_bp_type: 0 sw break, 1 hw break, 2 write watch,
		       3 read watch, 4 access watch */
	unsigned regno;
	const uint8_t *data; /* points into the packet buffer (valid until the next packet) */
	size_t datalen;
	char text[256];
	/*
	 * H, T and vCont: the thread id (GDB_THREAD_ALL, GDB_THREAD_ANY or a positive id; a
	 * multiprocess "pP.T" gives T). For vCont, the thread of the action chosen. For
	 * qXfer, qSupported and vKill this is unused.
	 */
	int64_t thread;
	char op;    /* H: 'g' or 'c'. vCont, s/S/c/C: the action letter chosen. */
	int signal; /* C, S and vCont;C/S: the signal gdb asked to deliver (ignored by us);
		       -1 for none */
	/* vCont with a signal (C/S) is treated as c/s, signal ignored; the leftmost action
	 * that applies to our thread (no thread, 1, -1 or 0) is the one taken; a vCont whose
	 * actions name other threads only is still handled as for our single thread, with
	 * its first action. vCont;t (non-stop only) is MALFORMED. */
};

/*
 * Parse one packet payload (as gdb_rx produced it; may be modified in place; pkt[len]
 * need not be NUL). Never crashes on any input; bounds every length (a read of more than
 * GDB_PACKET_MAX/2 bytes is MALFORMED, a write whose data is shorter or longer than len is
 * MALFORMED). Unknown packets, and known ones we do not support (other qXfer objects,
 * Z types above 4), are GDB_CMD_UNKNOWN so that gdb sees "unsupported".
 */
void gdb_parse(char *pkt, size_t len, struct gdb_cmd *cmd);

/* A short name for a command kind ("read_mem"), for logs and tests. */
const char *gdb_cmd_name(enum gdb_cmd_kind kind);

/* Did gdb's qSupported feature list (cmd->text) announce name+ (e.g. "swbreak")? */
bool gdb_feature_supported(const char *features, const char *name);

/*
 * The reply to a qXfer read of doc[0..doclen) at off, len bytes: "m" + data if more
 * follows, "l" + data for the last part (or "l" alone past the end). The payload is raw
 * bytes for gdb_frame to escape. Returns the payload length, or 0 if cap is too small
 * (cap >= len + 1 is always enough).
 */
size_t gdb_xfer_reply(const char *doc, size_t doclen, uint64_t off, uint64_t len, char *out,
		      size_t cap);

/*
 * Console output for gdb (for a monitor command's answer): "O" + hex of text[0..n).
 * Returns the payload length, or 0 if cap is too small (2n + 1 needed).
 */
size_t gdb_console_output(const char *text, size_t n, char *out, size_t cap);

/* Stop replies. */
enum gdb_stop_why {
	GDB_STOP_SIGNAL,	/* "T<sig>thread:1;" */
	GDB_STOP_SWBREAK,	/* "T<sig>swbreak:;thread:1;" */
	GDB_STOP_HWBREAK,	/* "T<sig>hwbreak:;thread:1;" */
	GDB_STOP_WATCH,		/* "T<sig>watch:ADDR;thread:1;" */
	GDB_STOP_RWATCH,	/* "T<sig>rwatch:ADDR;thread:1;" */
	GDB_STOP_AWATCH,	/* "T<sig>awatch:ADDR;thread:1;" */
	GDB_STOP_HISTORY_BEGIN, /* "T<sig>replaylog:begin;": reverse execution hit the start */
	GDB_STOP_HISTORY_END,	/* "T<sig>replaylog:end;": replay reached the end of the log */
	GDB_STOP_EXITED,	/* "W<status>" */
};

/*
 * "T05swbreak:;thread:1;" etc. (sig is the signal, 5 = SIGTRAP, as two hex digits); watch
 * kinds carry the data address ("T05watch:ADDR;thread:1;", ADDR in hex); history ends are
 * "T05replaylog:begin;" / "T05replaylog:end;"; EXITED is "W" + two hex digits of the
 * status (sig = status). Writes a NUL too if there is room. Returns the length, or 0 if
 * cap is too small (64 is always enough) or why is out of range.
 */
size_t gdb_stop_reply(enum gdb_stop_why why, int sig, uint64_t addr, char *out, size_t cap);

#endif
