/*
 * outhash.h: the running hash of a byte stream (guest output) that LF_EV_HASH events
 * carry in their `out` field: FNV-1a 64, byte by byte, so the writer and the checker
 * can update it one byte at a time.
 */
#ifndef REWIND_LOGFMT_OUTHASH_H
#define REWIND_LOGFMT_OUTHASH_H

#include <stdint.h>

#define LF_OUT_HASH_INIT 0xcbf29ce484222325ull

static inline uint64_t lf_out_hash(uint64_t h, uint8_t byte)
{
	return (h ^ byte) * 0x100000001b3ull;
}

#endif
