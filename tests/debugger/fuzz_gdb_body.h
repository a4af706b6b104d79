/*
 * fuzz_gdb_body.h: one input through everything in the gdb protocol layer that reads
 * bytes from gdb: the receiver (byte by byte, as a stream of packets), the parser (on
 * every packet the receiver accepted, on every "$...#" span whatever its checksum, and on
 * the whole input as one payload), and register decoding on the data of G and P packets.
 * Shared by the libFuzzer target (fuzz_gdbproto.c) and by test_gdbcorpus.c, which replays
 * tests/debugger/corpus/ in the normal build, so `make test` runs what the fuzzer ran.
 *
 * Besides "no crash, no bad read" (each payload is parsed from a buffer of exactly its
 * length, so ASan sees any read past it), it checks that the answers agree: a packet
 * framed again is received as the same bytes; a command's data lies inside its packet and
 * is as long as the command says; lengths are within the documented bounds; register
 * data that decodes encodes back to the same hex, and data that does not changes nothing.
 * A broken invariant aborts.
 *
 * It includes the code under test itself, so it needs no library.
 */
#ifndef REWIND_TESTS_FUZZ_GDB_BODY_H
#define REWIND_TESTS_FUZZ_GDB_BODY_H

#include "debugger/gdbproto.c"
#include "debugger/gdbregs.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GDB_FUZZ_CHECK(cond)                                                                       \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool gdb_fuzz_same_hex(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];

		if (x >= 'A' && x <= 'F')
			x = (char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'F')
			y = (char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

static bool gdb_fuzz_is_hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hex_val(p[i]) < 0)
			return false;
	return true;
}

/* A register file with something in every byte. */
static void gdb_fuzz_regs(struct vmm_regs *r, struct vmm_fpregs *f)
{
	memset(r, 0xa5, sizeof(*r));
	memset(f, 0x5a, sizeof(*f));
}

/* G and P data: decode, and if that worked, encode back to the same hex. */
static void gdb_fuzz_regs_data(const struct gdb_cmd *c)
{
	static char back[2 * GDB_REGS_BYTES + 1];
	struct vmm_regs r, r0;
	struct vmm_fpregs f, f0;
	const char *hex = (const char *)c->data;
	int rc;

	gdb_fuzz_regs(&r, &f);
	r0 = r;
	f0 = f;
	if (c->kind == GDB_CMD_WRITE_REGS) {
		rc = gdb_regs_decode(hex, c->datalen, &r, &f);
		if (c->datalen != 2 * GDB_REGS_BYTES)
			GDB_FUZZ_CHECK(rc == -1);
		if (rc == 0) {
			GDB_FUZZ_CHECK(gdb_regs_encode(&r, &f, back, sizeof(back)) == c->datalen);
			GDB_FUZZ_CHECK(gdb_fuzz_same_hex(back, hex, c->datalen));
		}
	} else {
		rc = gdb_reg_decode(c->regno, hex, c->datalen, &r, &f);
		if (c->regno >= gdb_reg_count() || c->datalen != 2 * (size_t)gdb_reg_size(c->regno))
			GDB_FUZZ_CHECK(rc == -1);
		if (rc == 0) {
			GDB_FUZZ_CHECK(gdb_reg_encode(c->regno, &r, &f, back, sizeof(back)) ==
				       (int)c->datalen);
			GDB_FUZZ_CHECK(gdb_fuzz_same_hex(back, hex, c->datalen));
		}
	}
	GDB_FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		GDB_FUZZ_CHECK(memcmp(&r, &r0, sizeof(r)) == 0);
		GDB_FUZZ_CHECK(memcmp(&f, &f0, sizeof(f)) == 0);
	}
}

/* What a stub would do with the command's own numbers, short of touching a machine. */
static void gdb_fuzz_replies(const struct gdb_cmd *c)
{
	static char out[GDB_PACKET_MAX + 1];
	static char framed[GDB_FRAME_MAX];
	struct vmm_regs r;
	struct vmm_fpregs f;
	size_t n = 0, doclen;
	const char *doc;
	int k;

	switch (c->kind) {
	case GDB_CMD_READ_REG:
		gdb_fuzz_regs(&r, &f);
		k = gdb_reg_encode(c->regno, &r, &f, out, sizeof(out));
		GDB_FUZZ_CHECK((k == -1) == (c->regno >= gdb_reg_count()));
		if (k > 0) {
			GDB_FUZZ_CHECK(gdb_reg_by_name(gdb_reg_name(c->regno)) == (int)c->regno);
			GDB_FUZZ_CHECK((unsigned)k == 2 * gdb_reg_size(c->regno));
			GDB_FUZZ_CHECK(gdb_reg_offset(c->regno) + gdb_reg_size(c->regno) <=
				       GDB_REGS_BYTES);
		} else {
			GDB_FUZZ_CHECK(!gdb_reg_name(c->regno) && gdb_reg_offset(c->regno) == -1);
		}
		break;
	case GDB_CMD_READ_MEM:
		/* The hex reply always fits in a packet. */
		GDB_FUZZ_CHECK(2 * c->len <= GDB_PACKET_MAX);
		break;
	case GDB_CMD_XFER_FEATURES:
		doc = gdb_target_xml(c->text, &doclen);
		if (!doc)
			break;
		n = gdb_xfer_reply(doc, doclen, c->addr, c->len, out, c->len + 1);
		GDB_FUZZ_CHECK(n >= 1 && n <= c->len + 1);
		GDB_FUZZ_CHECK(out[0] == 'm' || out[0] == 'l');
		/* Even with every byte escaped, the reply is no bigger than our PacketSize. */
		GDB_FUZZ_CHECK(gdb_frame(out, n, framed, GDB_PACKET_MAX + 4) > 0);
		break;
	case GDB_CMD_MONITOR:
		n = gdb_console_output(c->text, c->datalen, out, sizeof(out));
		GDB_FUZZ_CHECK(n == 1 + 2 * c->datalen);
		break;
	case GDB_CMD_SUPPORTED:
		(void)gdb_feature_supported(c->text, "swbreak");
		(void)gdb_feature_supported(c->text, "");
		break;
	case GDB_CMD_STEP:
	case GDB_CMD_CONTINUE:
	case GDB_CMD_REVERSE_STEP:
	case GDB_CMD_REVERSE_CONTINUE:
		/* Every stop it could end in, with the numbers gdb sent. */
		for (int why = GDB_STOP_SIGNAL; why <= GDB_STOP_EXITED; why++) {
			n = gdb_stop_reply((enum gdb_stop_why)why, c->signal, c->addr, out, 64);
			GDB_FUZZ_CHECK(n > 0 && n < 64 && strlen(out) == n);
		}
		break;
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
		/* The stop that breakpoint or watchpoint would report. */
		n = gdb_stop_reply((enum gdb_stop_why)(c->bptype + 1), 5, c->addr, out, 64);
		GDB_FUZZ_CHECK(n > 0);
		break;
	default:
		break;
	}
}

/* Parse pkt[0..len) (a buffer of exactly that size) and check the command. */
static void gdb_fuzz_parse(const uint8_t *pkt, size_t len)
{
	char *copy = malloc(len ? len : 1);
	struct gdb_cmd c;

	GDB_FUZZ_CHECK(copy != NULL);
	if (len) /* memcpy from a NULL pointer is undefined even for 0 bytes */
		memcpy(copy, pkt, len);
	gdb_parse(copy, len, &c);
	GDB_FUZZ_CHECK(c.kind >= GDB_CMD_UNKNOWN && c.kind <= GDB_CMD_MUST_REPLY_EMPTY);
	GDB_FUZZ_CHECK(strcmp(gdb_cmd_name(c.kind), "?") != 0);
	GDB_FUZZ_CHECK(memchr(c.text, '\0', sizeof(c.text)) != NULL);
	if (c.data) {
		GDB_FUZZ_CHECK(c.data >= (const uint8_t *)copy);
		GDB_FUZZ_CHECK(c.data + c.datalen <= (const uint8_t *)copy + len);
	}
	switch (c.kind) {
	case GDB_CMD_WRITE_REGS:
	case GDB_CMD_WRITE_REG:
		GDB_FUZZ_CHECK(c.data && c.datalen > 0 && c.datalen % 2 == 0);
		GDB_FUZZ_CHECK(gdb_fuzz_is_hex(c.data, c.datalen));
		gdb_fuzz_regs_data(&c);
		break;
	case GDB_CMD_READ_MEM:
		GDB_FUZZ_CHECK(c.len <= GDB_PACKET_MAX / 2);
		break;
	case GDB_CMD_WRITE_MEM:
		GDB_FUZZ_CHECK(c.datalen == c.len && c.len <= GDB_PACKET_MAX);
		GDB_FUZZ_CHECK(c.data != NULL);
		break;
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
		GDB_FUZZ_CHECK(c.bptype >= GDB_BP_SW && c.bptype <= GDB_BP_ACCESS);
		break;
	case GDB_CMD_STEP:
		GDB_FUZZ_CHECK(c.op == 's' || c.op == 'S' || c.op == 'r');
		break;
	case GDB_CMD_CONTINUE:
		GDB_FUZZ_CHECK(c.op == 'c' || c.op == 'C');
		break;
	case GDB_CMD_XFER_FEATURES:
		GDB_FUZZ_CHECK(c.len <= GDB_XFER_MAX);
		break;
	case GDB_CMD_MONITOR:
		GDB_FUZZ_CHECK(strlen(c.text) == c.datalen);
		break;
	case GDB_CMD_SET_THREAD:
		GDB_FUZZ_CHECK(c.op == 'g' || c.op == 'c');
		GDB_FUZZ_CHECK(c.thread >= GDB_THREAD_ALL);
		break;
	case GDB_CMD_THREAD_ALIVE:
		GDB_FUZZ_CHECK(c.thread >= GDB_THREAD_ALL);
		break;
	default:
		break;
	}
	GDB_FUZZ_CHECK(c.signal >= -1 && c.signal <= 0xff);
	gdb_fuzz_replies(&c);
	free(copy);
}

/* Frame a payload the receiver gave us, receive it again: the same bytes, at the end. */
static void gdb_fuzz_reframe(const char *p, size_t n)
{
	static char framed[GDB_FRAME_MAX];
	static struct gdb_rx again;
	size_t fl = gdb_frame(p, n, framed, sizeof(framed));

	GDB_FUZZ_CHECK(fl >= n + 4 && fl <= 2 * n + 4);
	gdb_rx_init(&again);
	for (size_t i = 0; i < fl; i++) {
		enum gdb_rx_result r = gdb_rx_byte(&again, (uint8_t)framed[i]);

		GDB_FUZZ_CHECK(r == (i + 1 == fl ? GDB_RX_PACKET : GDB_RX_NONE));
	}
	GDB_FUZZ_CHECK(again.len == n && memcmp(again.data, p, n) == 0);
	GDB_FUZZ_CHECK(gdb_frame(p, n, framed, fl - 1) == 0);
}

/* Every "$...#" span, unescaped as the receiver would, checksum or not. */
static void gdb_fuzz_spans(const uint8_t *data, size_t size)
{
	static uint8_t buf[GDB_PACKET_MAX];

	for (size_t i = 0; i < size; i++) {
		size_t n = 0;

		if (data[i] != '$')
			continue;
		for (i++; i < size && data[i] != '#' && data[i] != '$' && n < sizeof(buf); i++) {
			if (data[i] == '}' && i + 1 < size)
				buf[n++] = data[++i] ^ 0x20;
			else
				buf[n++] = data[i];
		}
		gdb_fuzz_parse(buf, n);
		if (i < size && data[i] == '$')
			i--; /* it starts the next span */
	}
}

static int gdb_fuzz_one(const uint8_t *data, size_t size)
{
	static struct gdb_rx rx;
	size_t packets = 0;

	/* The stream. */
	gdb_rx_init(&rx);
	for (size_t i = 0; i < size; i++) {
		enum gdb_rx_result r = gdb_rx_byte(&rx, data[i]);

		GDB_FUZZ_CHECK(r >= GDB_RX_NONE && r <= GDB_RX_NACK);
		GDB_FUZZ_CHECK(rx.len <= GDB_PACKET_MAX);
		switch (r) {
		case GDB_RX_PACKET:
			GDB_FUZZ_CHECK(rx.data[rx.len] == '\0');
			packets++;
			gdb_fuzz_parse((const uint8_t *)rx.data, rx.len);
			gdb_fuzz_reframe(rx.data, rx.len);
			break;
		case GDB_RX_ACK:
			GDB_FUZZ_CHECK(data[i] == '+');
			break;
		case GDB_RX_NACK:
			GDB_FUZZ_CHECK(data[i] == '-');
			break;
		case GDB_RX_INTERRUPT:
			GDB_FUZZ_CHECK(data[i] == 0x03);
			break;
		case GDB_RX_BAD_CHECKSUM:
		case GDB_RX_OVERSIZE:
			GDB_FUZZ_CHECK(rx.len == 0);
			break;
		case GDB_RX_NONE:
			break;
		}
	}
	GDB_FUZZ_CHECK(packets <= size / 4);

	/* The same bytes as payloads: each span, and the whole input. */
	gdb_fuzz_spans(data, size);
	if (size <= GDB_PACKET_MAX)
		gdb_fuzz_parse(data, size);

	/* Hex both ways on the input itself. */
	if (size <= 4096) {
		static char hex[8192];
		static uint8_t back[4096];

		GDB_FUZZ_CHECK(gdb_hex_encode(data, size, hex) == 2 * size);
		GDB_FUZZ_CHECK(gdb_hex_decode(hex, 2 * size, back) == 0);
		GDB_FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
		/* The input as hex: where it decodes, it encodes back (in lower case). */
		size_t hn = size & ~(size_t)1;
		if (gdb_hex_decode((const char *)data, hn, back) == 0) {
			GDB_FUZZ_CHECK(gdb_hex_encode(back, hn / 2, hex) == hn);
			GDB_FUZZ_CHECK(gdb_fuzz_same_hex(hex, (const char *)data, hn));
		}
	}
	return 0;
}

#endif
