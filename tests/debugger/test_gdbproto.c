/* standalone */
/*
 * test_gdbproto.c: debugger/gdbproto.c: framing and receiving round trips, checksum
 * errors, escapes, oversize packets, interrupts and junk between packets; every command
 * kind parsed from the packets gdb 13 sends, and malformed variants of each; stop replies
 * and the small reply helpers.
 */
#include "debugger/gdbproto.c"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct gdb_rx rx;

/* Feed s[0..n); return the results that were not GDB_RX_NONE, in order (at most max). */
static size_t feed(const void *s, size_t n, enum gdb_rx_result *res, size_t max)
{
	const uint8_t *b = s;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		enum gdb_rx_result r = gdb_rx_byte(&rx, b[i]);

		if (r != GDB_RX_NONE) {
			cr_assert_lt(k, max, "more results than expected at byte %zu", i);
			res[k++] = r;
		}
	}
	return k;
}

/* Feed one framed packet; it must come out whole, as exactly one result, at its end. */
static enum gdb_rx_result feed_one(const char *s, size_t n)
{
	enum gdb_rx_result r[2];

	cr_assert_eq(feed(s, n, r, 2), 1, "%.*s: not exactly one result", (int)n, s);
	return r[0];
}

static enum gdb_rx_result feed_str(const char *s)
{
	return feed_one(s, strlen(s));
}

/* Frame payload p, receive it, and check the payload comes back. */
static void round_trip(const char *p, size_t n)
{
	static char framed[GDB_FRAME_MAX];
	size_t fl = gdb_frame(p, n, framed, sizeof(framed));

	cr_assert_gt(fl, 0);
	cr_assert_eq(framed[0], '$');
	cr_assert_eq(framed[fl - 3], '#');
	cr_assert_eq(feed_one(framed, fl), GDB_RX_PACKET);
	cr_assert_eq(rx.len, n);
	cr_assert_eq(memcmp(rx.data, p, n), 0);
	cr_assert_eq(rx.data[n], '\0');
}

/* The parser works on a copy, as the stub passes rx.data. */
static struct gdb_cmd cmd;
static char pbuf[GDB_PACKET_MAX + 1];

static enum gdb_cmd_kind parse_n(const char *s, size_t n)
{
	cr_assert_leq(n, GDB_PACKET_MAX);
	memcpy(pbuf, s, n);
	pbuf[n] = '\0';
	gdb_parse(pbuf, n, &cmd);
	return cmd.kind;
}

static enum gdb_cmd_kind parse(const char *s)
{
	return parse_n(s, strlen(s));
}

#define PARSES_AS(s, k)                                                                            \
	cr_assert_eq(parse(s), k, "\"%s\": got %s, want %s", s, gdb_cmd_name(cmd.kind),            \
		     gdb_cmd_name(k))

static void init(void)
{
	gdb_rx_init(&rx);
}

TestSuite(gdbproto, .init = init);

/* ---- framing and receiving ---- */

Test(gdbproto, frame_known_packets)
{
	char out[64];

	cr_assert_eq(gdb_frame("OK", 2, out, sizeof(out)), 6);
	cr_assert_eq(memcmp(out, "$OK#9a", 6), 0);
	cr_assert_eq(gdb_frame("", 0, out, sizeof(out)), 4);
	cr_assert_eq(memcmp(out, "$#00", 4), 0);
	cr_assert_eq(gdb_frame("g", 1, out, sizeof(out)), 5);
	cr_assert_eq(memcmp(out, "$g#67", 5), 0);
	/* '$' '#' '}' '*' each become '}' and the byte ^ 0x20; the sum is over the escapes. */
	cr_assert_eq(gdb_frame("a$#}*b", 6, out, sizeof(out)), 1 + 10 + 3);
	cr_assert_eq(memcmp(out,
			    "$a}\x04}\x03}]}\x0a"
			    "b#",
			    12),
		     0);
	uint8_t sum = 0;
	for (int i = 1; i < 11; i++)
		sum = (uint8_t)(sum + (uint8_t)out[i]);
	char want[3];
	snprintf(want, sizeof(want), "%02x", sum);
	cr_assert_eq(memcmp(out + 12, want, 2), 0);
}

Test(gdbproto, frame_cap)
{
	char out[16];

	cr_assert_eq(gdb_frame("OK", 2, out, 5), 0);
	cr_assert_eq(gdb_frame("OK", 2, out, 6), 6);
	cr_assert_eq(gdb_frame("}", 1, out, 5), 0);
	cr_assert_eq(gdb_frame("}", 1, out, 6), 6);
	cr_assert_eq(gdb_frame("", 0, out, 3), 0);
	cr_assert_eq(gdb_frame("", 0, out, 0), 0);
}

Test(gdbproto, round_trip_every_byte)
{
	char p[3];

	for (int b = 0; b < 256; b++) {
		p[0] = (char)b;
		round_trip(p, 1);
		p[0] = 'x';
		p[1] = (char)b;
		p[2] = (char)b;
		round_trip(p, 3);
	}
	round_trip("", 0);
}

Test(gdbproto, round_trip_random_payloads)
{
	static char p[GDB_PACKET_MAX];
	unsigned x = 7;

	for (int t = 0; t < 200; t++) {
		size_t n = (size_t)(t * 97 % 1500);

		if (t == 199)
			n = GDB_PACKET_MAX;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			p[i] = (char)(x >> 16);
		}
		round_trip(p, n);
	}
}

Test(gdbproto, checksum_errors)
{
	cr_assert_eq(feed_str("$g#68"), GDB_RX_BAD_CHECKSUM);
	cr_assert_eq(rx.len, 0);
	cr_assert_eq(feed_str("$g#77"), GDB_RX_BAD_CHECKSUM);
	cr_assert_eq(feed_str("$g#6g"), GDB_RX_BAD_CHECKSUM);
	cr_assert_eq(feed_str("$g#x"), GDB_RX_BAD_CHECKSUM);
	/* Upper-case digits are fine; afterwards the receiver is in step again. */
	cr_assert_eq(feed_str("$OK#9A"), GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "OK");
	cr_assert_eq(feed_str("$g#67"), GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "g");
	/* A '$' where a checksum digit should be: this packet is bad, the next one good. */
	enum gdb_rx_result r[3];
	cr_assert_eq(feed("$g#6$?#3f", 9, r, 3), 2);
	cr_assert_eq(r[0], GDB_RX_BAD_CHECKSUM);
	cr_assert_eq(r[1], GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "?");
}

Test(gdbproto, escapes_in_x_packets)
{
	/* gdb 13 writing the bytes 24 23 7d 2a 00 41 to 0x1000 (set {char[6]}...): it
	 * escapes '$' '#' '}' '*'. */
	static const char body[] = "X1000,6:}\x04}\x03}]}\x0a\x00"
				   "A";
	char framed[64];

	/* Framed by hand, as gdb does (the escapes are already in body). */
	uint8_t sum = 0;
	size_t bl = sizeof(body) - 1;
	framed[0] = '$';
	memcpy(framed + 1, body, bl);
	for (size_t i = 0; i < bl; i++)
		sum = (uint8_t)(sum + (uint8_t)body[i]);
	snprintf(framed + 1 + bl, 4, "#%02x", sum);
	cr_assert_eq(feed_one(framed, bl + 4), GDB_RX_PACKET);
	cr_assert_eq(rx.len, 8 + 6);
	cr_assert_eq(memcmp(rx.data, "X1000,6:$#}*\0A", 14), 0);
	cr_assert_eq(parse_n(rx.data, rx.len), GDB_CMD_WRITE_MEM);
	cr_assert_eq(cmd.addr, 0x1000);
	cr_assert_eq(cmd.len, 6);
	cr_assert_eq(cmd.datalen, 6);
	cr_assert_eq(memcmp(cmd.data, "$#}*\0A", 6), 0);
}

Test(gdbproto, oversize)
{
	static char p[GDB_PACKET_MAX + 2];
	static char framed[GDB_FRAME_MAX + 8];
	uint8_t sum = 0;

	/* Exactly GDB_PACKET_MAX, every byte escaped on the wire: fine. */
	memset(p, '}', GDB_PACKET_MAX);
	round_trip(p, GDB_PACKET_MAX);
	/* One more: dropped, even with a good checksum. */
	memset(p, 'a', GDB_PACKET_MAX + 1);
	framed[0] = '$';
	memcpy(framed + 1, p, GDB_PACKET_MAX + 1);
	for (size_t i = 0; i < GDB_PACKET_MAX + 1; i++)
		sum = (uint8_t)(sum + 'a');
	snprintf(framed + GDB_PACKET_MAX + 2, 4, "#%02x", sum);
	cr_assert_eq(feed_one(framed, GDB_PACKET_MAX + 5), GDB_RX_OVERSIZE);
	cr_assert_eq(rx.len, 0);
	/* And the next packet is received normally. */
	cr_assert_eq(feed_str("$?#3f"), GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "?");
	/* Framing a payload that big still works (the stub's own replies are bounded). */
	cr_assert_gt(gdb_frame(p, GDB_PACKET_MAX + 1, framed, sizeof(framed)), 0);
}

Test(gdbproto, interrupt_ack_nack)
{
	enum gdb_rx_result r[8];

	cr_assert_eq(feed("\x03", 1, r, 8), 1);
	cr_assert_eq(r[0], GDB_RX_INTERRUPT);
	cr_assert_eq(feed("+-+", 3, r, 8), 3);
	cr_assert_eq(r[0], GDB_RX_ACK);
	cr_assert_eq(r[1], GDB_RX_NACK);
	cr_assert_eq(r[2], GDB_RX_ACK);
	/* Inside a packet, 0x03 '+' '-' are just data. */
	round_trip("a\x03+-b", 5);
	/* gdb sends '+' then the next packet, or 0x03 while we run. */
	cr_assert_eq(feed("+$c#63\x03", 7, r, 8), 3);
	cr_assert_eq(r[0], GDB_RX_ACK);
	cr_assert_eq(r[1], GDB_RX_PACKET);
	cr_assert_eq(r[2], GDB_RX_INTERRUPT);
}

Test(gdbproto, junk_between_packets)
{
	static const char s[] = "garbage\r\n+$g#67xyz#12-$?#3f\xff\x00";
	enum gdb_rx_result r[8];
	size_t n = 0;
	const char *pk[2];
	size_t np = 0;

	for (size_t i = 0; i < sizeof(s) - 1; i++) {
		enum gdb_rx_result x = gdb_rx_byte(&rx, (uint8_t)s[i]);

		if (x == GDB_RX_NONE)
			continue;
		r[n++] = x;
		if (x == GDB_RX_PACKET)
			pk[np++] = strcmp(rx.data, "g") == 0   ? "g"
				   : strcmp(rx.data, "?") == 0 ? "?"
							       : "";
	}
	cr_assert_eq(n, 4);
	cr_assert_eq(r[0], GDB_RX_ACK);
	cr_assert_eq(r[1], GDB_RX_PACKET);
	cr_assert_eq(r[2], GDB_RX_NACK);
	cr_assert_eq(r[3], GDB_RX_PACKET);
	cr_assert_str_eq(pk[0], "g");
	cr_assert_str_eq(pk[1], "?");
}

Test(gdbproto, dollar_restarts_a_cut_packet)
{
	/* A packet cut off mid-way (gdb was killed and restarted, say) and a new one. */
	cr_assert_eq(feed_str("$m1000,$qSupported#37"), GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "qSupported");
	cr_assert_eq(feed_str("$abc}$?#3f"), GDB_RX_PACKET);
	cr_assert_str_eq(rx.data, "?");
}

Test(gdbproto, hex_helpers)
{
	uint8_t b[4] = {0x00, 0x7f, 0xab, 0xff}, back[4];
	char hex[9] = {0};

	cr_assert_eq(gdb_hex_encode(b, 4, hex), 8);
	cr_assert_str_eq(hex, "007fabff");
	cr_assert_eq(gdb_hex_decode("007FABff", 8, back), 0);
	cr_assert_eq(memcmp(b, back, 4), 0);
	cr_assert_eq(gdb_hex_decode("007", 3, back), -1);
	cr_assert_eq(gdb_hex_decode("0g", 2, back), -1);
	cr_assert_eq(gdb_hex_decode(" 1", 2, back), -1);
	cr_assert_eq(gdb_hex_decode("", 0, back), 0);
	/* In place. */
	char ip[] = "48656c6c6f";
	cr_assert_eq(gdb_hex_decode(ip, 10, ip), 0);
	cr_assert_eq(memcmp(ip, "Hello", 5), 0);
}

/* ---- parsing: what gdb 13 sends ---- */

Test(gdbproto, parse_connect_sequence)
{
	PARSES_AS("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
		  "vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;"
		  "memory-tagging+",
		  GDB_CMD_SUPPORTED);
	cr_assert_str_eq(cmd.text, "multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
				   "vfork-events+;exec-events+;vContSupported+;QThreadEvents+;"
				   "no-resumed+;memory-tagging+");
	cr_assert(gdb_feature_supported(cmd.text, "swbreak"));
	cr_assert(gdb_feature_supported(cmd.text, "hwbreak"));
	cr_assert(gdb_feature_supported(cmd.text, "memory-tagging"));
	cr_assert_not(gdb_feature_supported(cmd.text, "swbreak+"));
	cr_assert_not(gdb_feature_supported(cmd.text, "break"));
	cr_assert_not(gdb_feature_supported(cmd.text, "xmlRegisters"));
	/* What gdb 13 really sends once it knows the architecture is x86. */
	PARSES_AS("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
		  "vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;"
		  "memory-tagging+;xmlRegisters=i386",
		  GDB_CMD_SUPPORTED);
	cr_assert(gdb_feature_supported(cmd.text, "swbreak"));
	cr_assert_not(gdb_feature_supported(cmd.text, "xmlRegisters"));
	cr_assert_not_null(strstr(cmd.text, ";xmlRegisters=i386"));
	PARSES_AS("qSupported", GDB_CMD_SUPPORTED);
	cr_assert_str_eq(cmd.text, "");
	PARSES_AS("vMustReplyEmpty", GDB_CMD_MUST_REPLY_EMPTY);
	PARSES_AS("QStartNoAckMode", GDB_CMD_NOACK);
	PARSES_AS("Hgp0.0", GDB_CMD_SET_THREAD);
	cr_assert_eq(cmd.op, 'g');
	cr_assert_eq(cmd.thread, GDB_THREAD_ANY);
	PARSES_AS("Hg0", GDB_CMD_SET_THREAD);
	cr_assert_eq(cmd.thread, 0);
	PARSES_AS("Hc-1", GDB_CMD_SET_THREAD);
	cr_assert_eq(cmd.op, 'c');
	cr_assert_eq(cmd.thread, GDB_THREAD_ALL);
	PARSES_AS("Hg1", GDB_CMD_SET_THREAD);
	cr_assert_eq(cmd.thread, 1);
	PARSES_AS("qXfer:features:read:target.xml:0,ffb", GDB_CMD_XFER_FEATURES);
	cr_assert_str_eq(cmd.text, "target.xml");
	cr_assert_eq(cmd.addr, 0);
	cr_assert_eq(cmd.len, 0xffb);
	PARSES_AS("qXfer:features:read:64bit-sse.xml:1ff6,3ffb", GDB_CMD_XFER_FEATURES);
	cr_assert_str_eq(cmd.text, "64bit-sse.xml");
	cr_assert_eq(cmd.addr, 0x1ff6);
	cr_assert_eq(cmd.len, GDB_XFER_MAX); /* clamped */
	PARSES_AS("qTStatus", GDB_CMD_UNKNOWN);
	PARSES_AS("?", GDB_CMD_HALT_REASON);
	PARSES_AS("qfThreadInfo", GDB_CMD_THREAD_FIRST);
	PARSES_AS("qsThreadInfo", GDB_CMD_THREAD_NEXT);
	PARSES_AS("qAttached", GDB_CMD_ATTACHED);
	PARSES_AS("qAttached:1", GDB_CMD_ATTACHED);
	PARSES_AS("qC", GDB_CMD_CURRENT_THREAD);
	PARSES_AS("qOffsets", GDB_CMD_UNKNOWN);
	PARSES_AS("g", GDB_CMD_READ_REGS);
	PARSES_AS("qSymbol::", GDB_CMD_UNKNOWN);
	PARSES_AS("vCont?", GDB_CMD_VCONT_QUERY);
	PARSES_AS("qXfer:exec-file:read:1:0,ffb", GDB_CMD_UNKNOWN);
	PARSES_AS("qXfer:threads:read::0,ffb", GDB_CMD_UNKNOWN);
	PARSES_AS("qXfer:auxv:read::0,ffb", GDB_CMD_UNKNOWN);
	PARSES_AS("vFile:setfs:0", GDB_CMD_UNKNOWN);
	PARSES_AS("qL1200000000000000000", GDB_CMD_UNKNOWN);
	PARSES_AS("qCRC:1000,10", GDB_CMD_UNKNOWN);
	PARSES_AS("QNonStop:0", GDB_CMD_UNKNOWN);
	PARSES_AS("QPassSignals:e;10;14;17;1a;1b;1c;21;24;25;2c;4c;97;", GDB_CMD_UNKNOWN);
	PARSES_AS("QThreadEvents:1", GDB_CMD_UNKNOWN);
	PARSES_AS("qTfV", GDB_CMD_UNKNOWN);
	PARSES_AS("", GDB_CMD_UNKNOWN);
}

Test(gdbproto, parse_registers)
{
	PARSES_AS("p10", GDB_CMD_READ_REG);
	cr_assert_eq(cmd.regno, 16);
	PARSES_AS("p3e", GDB_CMD_READ_REG);
	cr_assert_eq(cmd.regno, 62);
	PARSES_AS("P10=efbeadde00000000", GDB_CMD_WRITE_REG);
	cr_assert_eq(cmd.regno, 16);
	cr_assert_eq(cmd.datalen, 16);
	cr_assert_eq(memcmp(cmd.data, "efbeadde00000000", 16), 0);
	PARSES_AS("G0011AAbb", GDB_CMD_WRITE_REGS);
	cr_assert_eq(cmd.datalen, 8);
	cr_assert_eq(memcmp(cmd.data, "0011AAbb", 8), 0);
	/* Malformed. */
	PARSES_AS("p", GDB_CMD_MALFORMED);
	PARSES_AS("px", GDB_CMD_MALFORMED);
	PARSES_AS("p10;", GDB_CMD_MALFORMED);
	PARSES_AS("p100000000", GDB_CMD_MALFORMED);
	PARSES_AS("p-1", GDB_CMD_MALFORMED);
	PARSES_AS("P10", GDB_CMD_MALFORMED);
	PARSES_AS("P10=", GDB_CMD_MALFORMED);
	PARSES_AS("P10=abc", GDB_CMD_MALFORMED);
	PARSES_AS("P10=zz", GDB_CMD_MALFORMED);
	PARSES_AS("P=00", GDB_CMD_MALFORMED);
	PARSES_AS("G", GDB_CMD_MALFORMED);
	PARSES_AS("G0", GDB_CMD_MALFORMED);
	PARSES_AS("G0x", GDB_CMD_MALFORMED);
	PARSES_AS("gg", GDB_CMD_UNKNOWN);
}

Test(gdbproto, parse_memory)
{
	PARSES_AS("m401000,40", GDB_CMD_READ_MEM);
	cr_assert_eq(cmd.addr, 0x401000);
	cr_assert_eq(cmd.len, 0x40);
	PARSES_AS("mffffffff81000000,1", GDB_CMD_READ_MEM);
	cr_assert_eq(cmd.addr, 0xffffffff81000000ull);
	PARSES_AS("m0,2000", GDB_CMD_READ_MEM); /* GDB_PACKET_MAX / 2 */
	PARSES_AS("m0,2001", GDB_CMD_MALFORMED);
	PARSES_AS("m0,ffffffffffffffff", GDB_CMD_MALFORMED);
	PARSES_AS("m1ffffffffffffffff,1", GDB_CMD_MALFORMED);	   /* 65 bits */
	PARSES_AS("m00000000000000000001000,1", GDB_CMD_READ_MEM); /* leading zeros */
	cr_assert_eq(cmd.addr, 0x1000);
	PARSES_AS("m1000", GDB_CMD_MALFORMED);
	PARSES_AS("m1000,", GDB_CMD_MALFORMED);
	PARSES_AS("m,4", GDB_CMD_MALFORMED);
	PARSES_AS("m1000,4x", GDB_CMD_MALFORMED);
	PARSES_AS("m", GDB_CMD_MALFORMED);

	PARSES_AS("M1000,4:deadBEEF", GDB_CMD_WRITE_MEM);
	cr_assert_eq(cmd.addr, 0x1000);
	cr_assert_eq(cmd.len, 4);
	cr_assert_eq(cmd.datalen, 4);
	cr_assert_eq(memcmp(cmd.data, "\xde\xad\xbe\xef", 4), 0);
	cr_assert(cmd.data >= (const uint8_t *)pbuf && cmd.data + 4 <= (const uint8_t *)pbuf + 16);
	PARSES_AS("M1000,0:", GDB_CMD_WRITE_MEM);
	cr_assert_eq(cmd.datalen, 0);
	PARSES_AS("M1000,4:deadbe", GDB_CMD_MALFORMED); /* shorter than len */
	PARSES_AS("M1000,4:deadbeef00", GDB_CMD_MALFORMED);
	PARSES_AS("M1000,4:deadbeeg", GDB_CMD_MALFORMED);
	PARSES_AS("M1000,4", GDB_CMD_MALFORMED);
	PARSES_AS("M1000,ffffffffffffffff:00", GDB_CMD_MALFORMED);

	/* gdb probes X with an empty write. */
	PARSES_AS("X401000,0:", GDB_CMD_WRITE_MEM);
	cr_assert_eq(cmd.len, 0);
	cr_assert_eq(cmd.datalen, 0);
	PARSES_AS("X401000,3:abc", GDB_CMD_WRITE_MEM);
	cr_assert_eq(memcmp(cmd.data, "abc", 3), 0);
	cr_assert_eq(parse_n("X10,3:\0:,", 9), GDB_CMD_WRITE_MEM);
	cr_assert_eq(memcmp(cmd.data, "\0:,", 3), 0);
	PARSES_AS("X401000,3:ab", GDB_CMD_MALFORMED);
	PARSES_AS("X401000,3:abcd", GDB_CMD_MALFORMED);
	PARSES_AS("X401000,3", GDB_CMD_MALFORMED);
	PARSES_AS("X401000:abc", GDB_CMD_MALFORMED);
	PARSES_AS("X,3:abc", GDB_CMD_MALFORMED);
}

Test(gdbproto, parse_breakpoints)
{
	PARSES_AS("Z0,401136,1", GDB_CMD_INSERT_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_SW);
	cr_assert_eq(cmd.addr, 0x401136);
	cr_assert_eq(cmd.len, 1);
	PARSES_AS("z0,401136,1", GDB_CMD_REMOVE_BP);
	PARSES_AS("Z1,401136,1", GDB_CMD_INSERT_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_HW);
	PARSES_AS("Z2,1008,8", GDB_CMD_INSERT_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_WRITE);
	cr_assert_eq(cmd.addr, 0x1008);
	cr_assert_eq(cmd.len, 8);
	PARSES_AS("z2,1008,8", GDB_CMD_REMOVE_BP);
	PARSES_AS("Z3,7ffe0000,4", GDB_CMD_INSERT_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_READ);
	PARSES_AS("Z4,7ffe0000,2", GDB_CMD_INSERT_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_ACCESS);
	PARSES_AS("z4,7ffe0000,2", GDB_CMD_REMOVE_BP);
	cr_assert_eq(cmd.bptype, GDB_BP_ACCESS);
	/* Types that do not exist are unsupported, not errors. */
	PARSES_AS("Z5,1000,1", GDB_CMD_UNKNOWN);
	PARSES_AS("Z0,1000", GDB_CMD_MALFORMED);
	PARSES_AS("Z0,1000,", GDB_CMD_MALFORMED);
	PARSES_AS("Z0", GDB_CMD_MALFORMED);
	PARSES_AS("Z", GDB_CMD_MALFORMED);
	PARSES_AS("Zx,1000,1", GDB_CMD_MALFORMED);
	PARSES_AS("Z0,1000,1;X3,220c03", GDB_CMD_MALFORMED); /* conditions: not advertised */
	PARSES_AS("z0,,1", GDB_CMD_MALFORMED);
}

Test(gdbproto, parse_resume)
{
	PARSES_AS("s", GDB_CMD_STEP);
	cr_assert_not(cmd.has_addr);
	PARSES_AS("c", GDB_CMD_CONTINUE);
	cr_assert_not(cmd.has_addr);
	PARSES_AS("s401000", GDB_CMD_STEP);
	cr_assert(cmd.has_addr);
	cr_assert_eq(cmd.addr, 0x401000);
	PARSES_AS("c401000", GDB_CMD_CONTINUE);
	cr_assert_eq(cmd.addr, 0x401000);
	PARSES_AS("C0e", GDB_CMD_CONTINUE);
	cr_assert_eq(cmd.signal, 0xe);
	cr_assert_not(cmd.has_addr);
	PARSES_AS("S05;401000", GDB_CMD_STEP);
	cr_assert_eq(cmd.signal, 5);
	cr_assert(cmd.has_addr);
	cr_assert_eq(cmd.addr, 0x401000);
	PARSES_AS("bs", GDB_CMD_REVERSE_STEP);
	PARSES_AS("bc", GDB_CMD_REVERSE_CONTINUE);
	PARSES_AS("b", GDB_CMD_UNKNOWN);
	PARSES_AS("bss", GDB_CMD_UNKNOWN);
	PARSES_AS("sx", GDB_CMD_MALFORMED);
	PARSES_AS("c1000;", GDB_CMD_MALFORMED);
	PARSES_AS("C", GDB_CMD_MALFORMED);
	PARSES_AS("C100", GDB_CMD_MALFORMED);
	PARSES_AS("S05;", GDB_CMD_MALFORMED);
	PARSES_AS("S05:1000", GDB_CMD_MALFORMED);
}

Test(gdbproto, parse_vcont)
{
	/* stepi: step thread 1, the others (none) continue. */
	PARSES_AS("vCont;s:1;c", GDB_CMD_STEP);
	cr_assert_eq(cmd.thread, 1);
	cr_assert_not(cmd.has_addr);
	PARSES_AS("vCont;c", GDB_CMD_CONTINUE);
	cr_assert_eq(cmd.thread, GDB_THREAD_ALL);
	PARSES_AS("vCont;s", GDB_CMD_STEP);
	PARSES_AS("vCont;c:1", GDB_CMD_CONTINUE);
	PARSES_AS("vCont;c:-1", GDB_CMD_CONTINUE);
	PARSES_AS("vCont;s:p1.1;c:p1.-1", GDB_CMD_STEP); /* multiprocess ids */
	cr_assert_eq(cmd.thread, 1);
	PARSES_AS("vCont;c:p1.-1", GDB_CMD_CONTINUE);
	PARSES_AS("vCont;C05:1;c", GDB_CMD_CONTINUE); /* a signal: ignored */
	cr_assert_eq(cmd.signal, 5);
	PARSES_AS("vCont;S0b:1", GDB_CMD_STEP);
	cr_assert_eq(cmd.signal, 0xb);
	/* The leftmost action that applies to us wins. */
	PARSES_AS("vCont;s:2;c:1", GDB_CMD_CONTINUE);
	cr_assert_eq(cmd.thread, 1);
	PARSES_AS("vCont;c:3;s", GDB_CMD_STEP);
	/* Actions for other threads only: taken as ours. */
	PARSES_AS("vCont;s:2", GDB_CMD_STEP);
	PARSES_AS("vCont;c:2;s:3", GDB_CMD_CONTINUE);
	/* Range stepping, if gdb ever sends it: stepping once is a valid answer. */
	PARSES_AS("vCont;r401000,401010:1;c", GDB_CMD_STEP);
	cr_assert_eq(cmd.op, 'r');
	/* Malformed. */
	PARSES_AS("vCont", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;x", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;s;", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;s:", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;s:zz", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;C", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;C123", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;r1000:1", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;t", GDB_CMD_MALFORMED); /* non-stop only */
	PARSES_AS("vCont;cs", GDB_CMD_MALFORMED);
	PARSES_AS("vCont;c:1:2", GDB_CMD_MALFORMED);
	PARSES_AS("vContx", GDB_CMD_UNKNOWN);
}

Test(gdbproto, parse_monitor)
{
	PARSES_AS("qRcmd,7768656e", GDB_CMD_MONITOR);
	cr_assert_str_eq(cmd.text, "when");
	cr_assert_eq(cmd.datalen, 4);
	PARSES_AS("qRcmd,", GDB_CMD_MONITOR);
	cr_assert_str_eq(cmd.text, "");
	PARSES_AS("qRcmd,7365656b20313030", GDB_CMD_MONITOR);
	cr_assert_str_eq(cmd.text, "seek 100");
	PARSES_AS("qRcmd,776", GDB_CMD_MALFORMED);
	PARSES_AS("qRcmd,77zz", GDB_CMD_MALFORMED);
	PARSES_AS("qRcmd,770065", GDB_CMD_MALFORMED); /* a NUL inside */
	PARSES_AS("qRcmd", GDB_CMD_UNKNOWN);
	/* 255 characters fit, 256 do not. */
	char p[6 + 2 * 256 + 1];
	memcpy(p, "qRcmd,", 6);
	for (int i = 0; i < 256; i++)
		memcpy(p + 6 + 2 * i, "61", 2);
	p[6 + 2 * 255] = '\0';
	PARSES_AS(p, GDB_CMD_MONITOR);
	cr_assert_eq(strlen(cmd.text), 255);
	p[6 + 2 * 255] = '6';
	p[6 + 2 * 256] = '\0';
	PARSES_AS(p, GDB_CMD_MALFORMED);
}

Test(gdbproto, parse_threads_and_session)
{
	PARSES_AS("T1", GDB_CMD_THREAD_ALIVE);
	cr_assert_eq(cmd.thread, 1);
	PARSES_AS("Tp1.1", GDB_CMD_THREAD_ALIVE);
	cr_assert_eq(cmd.thread, 1);
	PARSES_AS("T2", GDB_CMD_THREAD_ALIVE);
	cr_assert_eq(cmd.thread, 2);
	PARSES_AS("T", GDB_CMD_MALFORMED);
	PARSES_AS("Tx", GDB_CMD_MALFORMED);
	PARSES_AS("T1,", GDB_CMD_MALFORMED);
	PARSES_AS("T8000000000000000", GDB_CMD_MALFORMED);
	PARSES_AS("Hg", GDB_CMD_MALFORMED);
	PARSES_AS("Hgx", GDB_CMD_MALFORMED);
	PARSES_AS("Hg1;", GDB_CMD_MALFORMED);
	PARSES_AS("Hs1", GDB_CMD_UNKNOWN);
	PARSES_AS("H", GDB_CMD_UNKNOWN);
	PARSES_AS("D", GDB_CMD_DETACH);
	PARSES_AS("D;1", GDB_CMD_DETACH);
	PARSES_AS("D;", GDB_CMD_MALFORMED);
	PARSES_AS("D1", GDB_CMD_MALFORMED);
	PARSES_AS("k", GDB_CMD_KILL);
	PARSES_AS("vKill;1", GDB_CMD_KILL);
	PARSES_AS("vKill", GDB_CMD_KILL);
	PARSES_AS("vKill;", GDB_CMD_MALFORMED);
	PARSES_AS("vKill;x", GDB_CMD_MALFORMED);
	PARSES_AS("kk", GDB_CMD_UNKNOWN);
	PARSES_AS("qAttached:", GDB_CMD_MALFORMED);
	PARSES_AS("qAttachedx", GDB_CMD_UNKNOWN);
	PARSES_AS("qCx", GDB_CMD_UNKNOWN);
	PARSES_AS("QStartNoAckModex", GDB_CMD_UNKNOWN);
	PARSES_AS("vMustReplyEmptyx", GDB_CMD_UNKNOWN);
	PARSES_AS("??", GDB_CMD_UNKNOWN);
}

Test(gdbproto, parse_xfer_malformed)
{
	PARSES_AS("qXfer:features:read:target.xml:0", GDB_CMD_MALFORMED);
	PARSES_AS("qXfer:features:read:target.xml", GDB_CMD_MALFORMED);
	PARSES_AS("qXfer:features:read:target.xml:,10", GDB_CMD_MALFORMED);
	PARSES_AS("qXfer:features:read:target.xml:0,10,", GDB_CMD_MALFORMED);
	PARSES_AS("qXfer:features:read:", GDB_CMD_MALFORMED);
	PARSES_AS("qXfer:features:read::0,10", GDB_CMD_XFER_FEATURES); /* no annex: no doc */
	cr_assert_str_eq(cmd.text, "");
	PARSES_AS("qXfer:features:write:target.xml:0:abc", GDB_CMD_UNKNOWN);
	char p[40 + 300];
	int n = snprintf(p, sizeof(p), "qXfer:features:read:%0300d:0,10", 0);
	cr_assert_lt((size_t)n, sizeof(p));
	PARSES_AS(p, GDB_CMD_MALFORMED); /* annex too long for text[] */
	cr_assert_eq(parse_n("qXfer:features:read:a\0b:0,10", 28), GDB_CMD_MALFORMED);
}

Test(gdbproto, supported_text_is_cut_at_a_feature)
{
	char p[600];
	size_t n = (size_t)snprintf(p, sizeof(p), "qSupported:");

	while (n < 500)
		n += (size_t)snprintf(p + n, sizeof(p) - n, "feature%zu+;", n);
	PARSES_AS(p, GDB_CMD_SUPPORTED);
	size_t tl = strlen(cmd.text);
	cr_assert_lt(tl, sizeof(cmd.text));
	cr_assert_eq(memcmp(cmd.text, p + 11, tl), 0);
	cr_assert_eq(p[11 + tl], ';');
}

Test(gdbproto, parse_never_reads_past_len)
{
	/* Every prefix of some packets, in a buffer that ends right after it. */
	static const char *const pk[] = {"qXfer:features:read:target.xml:0,ffb",
					 "vCont;s:p1.1;c",
					 "M1000,4:deadbeef",
					 "qRcmd,7768656e",
					 "Z2,1008,8",
					 "S05;401000",
					 "qSupported:swbreak+",
					 "P10=0011"};

	for (size_t i = 0; i < sizeof(pk) / sizeof(pk[0]); i++) {
		size_t n = strlen(pk[i]);

		for (size_t k = 0; k <= n; k++) {
			char *b = malloc(k ? k : 1);

			memcpy(b, pk[i], k);
			gdb_parse(b, k, &cmd);
			cr_assert_leq(cmd.datalen, k);
			free(b);
		}
	}
}

Test(gdbproto, cmd_names)
{
	for (int k = GDB_CMD_UNKNOWN; k <= GDB_CMD_MUST_REPLY_EMPTY; k++)
		cr_assert_neq(strcmp(gdb_cmd_name((enum gdb_cmd_kind)k), "?"), 0, "kind %d", k);
	cr_assert_str_eq(gdb_cmd_name((enum gdb_cmd_kind)999), "?");
}

/* ---- replies ---- */

Test(gdbproto, stop_replies)
{
	char out[64];

#define STOP(why, sig, addr, want)                                                                 \
	do {                                                                                       \
		size_t n_ = gdb_stop_reply(why, sig, addr, out, sizeof(out));                      \
		cr_assert_eq(n_, strlen(want), "%s", want);                                        \
		cr_assert_str_eq(out, want);                                                       \
	} while (0)
	STOP(GDB_STOP_SIGNAL, 5, 0, "T05thread:1;");
	STOP(GDB_STOP_SIGNAL, 2, 0, "T02thread:1;");
	STOP(GDB_STOP_SWBREAK, 5, 0, "T05swbreak:;thread:1;");
	STOP(GDB_STOP_HWBREAK, 5, 0, "T05hwbreak:;thread:1;");
	STOP(GDB_STOP_WATCH, 5, 0x1008, "T05watch:1008;thread:1;");
	STOP(GDB_STOP_RWATCH, 5, 0xffffffff81000000ull, "T05rwatch:ffffffff81000000;thread:1;");
	STOP(GDB_STOP_AWATCH, 5, 0, "T05awatch:0;thread:1;");
	STOP(GDB_STOP_HISTORY_BEGIN, 5, 0, "T05replaylog:begin;");
	STOP(GDB_STOP_HISTORY_END, 5, 0, "T05replaylog:end;");
	STOP(GDB_STOP_EXITED, 0, 0, "W00");
	STOP(GDB_STOP_EXITED, 0x2a, 0, "W2a");
#undef STOP
	cr_assert_eq(gdb_stop_reply(GDB_STOP_SWBREAK, 5, 0, out, 20), 0);
	cr_assert_eq(gdb_stop_reply(GDB_STOP_SWBREAK, 5, 0, out, 21), 21); /* no room for NUL */
	cr_assert_eq(memcmp(out, "T05swbreak:;thread:1;", 21), 0);
	cr_assert_eq(gdb_stop_reply((enum gdb_stop_why)99, 5, 0, out, sizeof(out)), 0);
	/* The longest one fits in 64. */
	cr_assert_gt(gdb_stop_reply(GDB_STOP_RWATCH, 255, UINT64_MAX, out, 64), 0);
}

Test(gdbproto, xfer_reply)
{
	static const char doc[] = "0123456789";
	char out[32];

	cr_assert_eq(gdb_xfer_reply(doc, 10, 0, 4, out, sizeof(out)), 5);
	cr_assert_eq(memcmp(out, "m0123", 5), 0);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 4, 6, out, sizeof(out)), 7);
	cr_assert_eq(memcmp(out, "l456789", 7), 0);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 8, 100, out, sizeof(out)), 3);
	cr_assert_eq(memcmp(out, "l89", 3), 0);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 10, 100, out, sizeof(out)), 1);
	cr_assert_eq(out[0], 'l');
	cr_assert_eq(gdb_xfer_reply(doc, 10, UINT64_MAX, 100, out, sizeof(out)), 1);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 0, 4, out, 4), 0);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 0, 4, out, 5), 5);
	cr_assert_eq(gdb_xfer_reply(doc, 10, 0, 4, out, 0), 0);
}

Test(gdbproto, console_output)
{
	char out[16];

	cr_assert_eq(gdb_console_output("hi\n", 3, out, sizeof(out)), 7);
	cr_assert_eq(memcmp(out, "O68690a", 7), 0);
	cr_assert_eq(gdb_console_output("hi\n", 3, out, 6), 0);
	cr_assert_eq(gdb_console_output("hi\n", 3, out, 7), 7);
	cr_assert_eq(gdb_console_output("", 0, out, 0), 0);
	cr_assert_eq(gdb_console_output("", 0, out, 1), 1);
}

Test(gdbproto, supported_reply_advertises_what_the_parser_takes)
{
	const char *r = GDB_SUPPORTED_REPLY;

	cr_assert_not_null(strstr(r, "PacketSize=4000;"));
	cr_assert_eq(strtoul(GDB_PACKET_MAX_HEX, NULL, 16), GDB_PACKET_MAX);
	cr_assert(gdb_feature_supported(r, "qXfer:features:read"));
	cr_assert(gdb_feature_supported(r, "ReverseStep"));
	cr_assert(gdb_feature_supported(r, "ReverseContinue"));
	cr_assert(gdb_feature_supported(r, "swbreak"));
	cr_assert(gdb_feature_supported(r, "QStartNoAckMode"));
	cr_assert_lt(strlen(r), GDB_PACKET_MAX);
}
