/*
 * crc.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and the 64-bit image hash.
 *
 * Two paths give identical results: a slice-by-8 table that runs anywhere, and the SSE4.2
 * crc32 instruction, chosen once at run time when the CPU has it. Every header, chunk,
 * index and footer checksum in FORMAT.md is this CRC; the hash is XXH3-64 from libxxhash.
 */
#include "lf_priv.h"

#include <pthread.h>
#include <xxhash.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define LF_CRC32C_POLY 0x82f63b78u

static uint32_t lf_crc_table[8][256];
static bool lf_crc_have_hw;
static pthread_once_t lf_crc_once = PTHREAD_ONCE_INIT;

static void lf_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (LF_CRC32C_POLY & (0u - (c & 1)));
		lf_crc_table[0][i] = c;
	}
	/* Table k advances a byte through k more zero bytes, so 8 lookups eat 8 bytes. */
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < 8; k++)
			lf_crc_table[k][i] = (lf_crc_table[k - 1][i] >> 8) ^
					     lf_crc_table[0][lf_crc_table[k - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	lf_crc_have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t lf_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&lf_crc_once, lf_crc_init);
	crc = ~crc;
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo = lf_get32(p) ^ crc, hi = lf_get32(p + 4);

		crc = lf_crc_table[7][lo & 0xff] ^ lf_crc_table[6][(lo >> 8) & 0xff] ^
		      lf_crc_table[5][(lo >> 16) & 0xff] ^ lf_crc_table[4][lo >> 24] ^
		      lf_crc_table[3][hi & 0xff] ^ lf_crc_table[2][(hi >> 8) & 0xff] ^
		      lf_crc_table[1][(hi >> 16) & 0xff] ^ lf_crc_table[0][hi >> 24];
	}
	while (len--)
		crc = (crc >> 8) ^ lf_crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t lf_crc32c_sse42(uint32_t crc, const uint8_t *p,
								  size_t len)
{
	uint64_t c = ~crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8); /* x86 is little-endian, as the CRC's byte order wants */
		c = _mm_crc32_u64(c, v);
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

bool lf_crc32c_hw_available(void)
{
	pthread_once(&lf_crc_once, lf_crc_init);
	return lf_crc_have_hw;
}

uint32_t lf_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
	if (lf_crc32c_hw_available())
		return lf_crc32c_sse42(crc, data, len);
#endif
	return lf_crc32c_sw(crc, data, len);
}

uint32_t lf_crc32c(uint32_t crc, const void *data, size_t len)
{
	return lf_crc32c_hw(crc, data, len);
}

uint64_t lf_hash64(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}
