/*
 * wire.h: little-endian fields of the ft stream's messages (docs/ft.md, "The stream").
 * Internal to ft/.
 */
#ifndef REWIND_FT_WIRE_H
#define REWIND_FT_WIRE_H

#include <stdint.h>

static inline void ft_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ft_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
