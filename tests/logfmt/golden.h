/*
 * golden.h: the inputs behind tests/logfmt/golden/: one header, one event list and one
 * writer configuration, shared by the generator (mkgolden.c) and test_golden.c, which
 * checks that the files decode to exactly these and that the writer still produces
 * good.rwl byte for byte.
 */
#ifndef REWIND_TESTS_GOLDEN_H
#define REWIND_TESTS_GOLDEN_H

#include "logfmt/log.h"

#include <stdint.h>
#include <string.h>

static const uint8_t golden_image[] = "rewind golden image\n";

__attribute__((unused)) static struct lf_header golden_header(void)
{
	return (struct lf_header){
	    .created_ns = 1732350000123456789ull,
	    .tool = "rewind golden",
	    .config = "mem=16M\nbackend=emu\n",
	    .cmdline = "console=ttyS0",
	    .image_path = "guests/golden.elf",
	    .image_hash = lf_hash64(golden_image, sizeof(golden_image) - 1),
	    .image_len = sizeof(golden_image) - 1,
	    .image = golden_image,
	};
}

#define GOLDEN_EVENTS 10
static const struct lf_event golden_events[GOLDEN_EVENTS] = {
    {.kind = LF_EV_CLOCK, .pos = 0, .clock = 1732350000123456789ull},
    {.kind = LF_EV_TIMER, .pos = 5, .timer = 0},
    {.kind = LF_EV_INPUT,
     .pos = 5,
     .input = {.channel = 0, .len = 3, .data = (const uint8_t *)"ab\n"}},
    {.kind = LF_EV_CLOCK, .pos = 300, .clock = 1732350000000000000ull},
    {.kind = LF_EV_HASH,
     .pos = 1000,
     .hash = {.flags = 7,
	      .regs = 0x0123456789abcdefull,
	      .mem = 0xfedcba9876543210ull,
	      .out = 0x1111111111111111ull,
	      .out_bytes = 123}},
    {.kind = LF_EV_INPUT,
     .pos = 1001,
     .input = {.channel = 1, .len = 2, .data = (const uint8_t *)"\x00\xff"}},
    {.kind = LF_EV_INPUT,
     .pos = 70000,
     .input = {.channel = 0,
	       .len = 48,
	       .data = (const uint8_t *)"hello hello hello hello hello hello hello hello\n"}},
    {.kind = LF_EV_HASH, .pos = 70000, .hash = {.flags = LF_HASH_REGS, .regs = 42}},
    {.kind = LF_EV_CLOCK, .pos = 1ull << 40, .clock = UINT64_MAX},
    {.kind = LF_EV_END, .pos = (1ull << 40) + 1, .end = {.reason = 1, .value = 7}},
};

/* The text of each golden event, as lf_event_format writes it. */
static const char *const golden_lines[GOLDEN_EVENTS] = {
    "clock 1732350000123456789",
    "timer 0",
    "input serial 3 bytes \"ab\\n\"",
    "clock 1732350000000000000",
    "hash regs=0123456789abcdef mem=fedcba9876543210 out=1111111111111111/123",
    "input channel 1 2 bytes \"\\x00\\xff\"",
    "input serial 48 bytes \"hello hello hello hello hello hello hello hello\\n\"",
    "hash regs=000000000000002a",
    "clock 18446744073709551615",
    "end reason=1 value=7",
};

#define GOLDEN_PER_CHUNK 4

/* Write the golden log with codec into m (an lf_io_mem writer); returns 0 or an lf_err. */
__attribute__((unused)) static int golden_write(struct lf_io *io, uint32_t codec)
{
	const struct lf_writer_config cfg = {
	    .codec = codec, .chunk_events = GOLDEN_PER_CHUNK, .flush_ms = UINT32_MAX};
	struct lf_header h = golden_header();
	struct lf_writer *w;
	int rc = lf_writer_open(io, &h, &cfg, &w);

	for (size_t i = 0; rc == 0 && i < GOLDEN_EVENTS; i++)
		rc = lf_writer_append(w, &golden_events[i]);
	if (rc == 0)
		rc = lf_writer_finish(w);
	lf_writer_free(w);
	return rc;
}

#endif
