/* unit */
/*
 * test_crc.c: logfmt/crc.c: CRC-32C check values, the table and SSE4.2 paths agreeing on
 * every length and alignment, continuing a CRC, and the image hash (XXH3-64).
 */
#include "logfmt/lf_priv.h"
#include "logfmt/log.h"

#include <criterion/criterion.h>
#include <string.h>

Test(crc, check_value)
{
	cr_assert_eq(lf_crc32c(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(lf_crc32c_sw(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(lf_crc32c_hw(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(lf_crc32c(0, "", 0), 0);
	cr_assert_eq(lf_crc32c(0, NULL, 0), 0);
}

Test(crc, known_vectors)
{
	uint8_t zeros[32] = {0}, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	/* RFC 3720 (iSCSI) appendix B.4. */
	cr_assert_eq(lf_crc32c(0, zeros, 32), 0x8a9136aau);
	cr_assert_eq(lf_crc32c(0, ones, 32), 0x62a8ab43u);
	cr_assert_eq(lf_crc32c(0, inc, 32), 0x46dd794eu);
}

Test(crc, table_and_instruction_agree)
{
	static uint8_t buf[4096 + 16];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (size_t align = 0; align < 8; align++)
		for (size_t len = 0; len <= 300; len++)
			cr_assert_eq(lf_crc32c_sw(0x1234, buf + align, len),
				     lf_crc32c_hw(0x1234, buf + align, len), "align %zu len %zu",
				     align, len);
	cr_assert_eq(lf_crc32c_sw(0, buf, sizeof(buf)), lf_crc32c_hw(0, buf, sizeof(buf)));
	if (!lf_crc32c_hw_available())
		cr_log_warn("no SSE4.2 here: only the table path was compared with itself");
}

Test(crc, continues_across_calls)
{
	const char *s = "the quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	uint32_t whole = lf_crc32c(0, s, n);

	for (size_t cut = 0; cut <= n; cut++) {
		cr_assert_eq(lf_crc32c(lf_crc32c(0, s, cut), s + cut, n - cut), whole);
		cr_assert_eq(lf_crc32c_sw(lf_crc32c_sw(0, s, cut), s + cut, n - cut), whole);
	}
}

Test(crc, hash64_is_xxh3)
{
	/* XXH3-64 with seed 0 of the empty input, from the xxHash test vectors. */
	cr_assert_eq(lf_hash64("", 0), 0x2d06800538d394c2ull);
	cr_assert_neq(lf_hash64("a", 1), lf_hash64("b", 1));
}
