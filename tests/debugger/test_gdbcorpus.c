/* standalone */
/*
 * test_gdbcorpus.c: every file of tests/debugger/corpus/ (packet streams real gdb sent,
 * hand-made edge cases, and inputs the fuzzer found) through the fuzz target's own code
 * (fuzz_gdb_body.h), in the normal build: a broken invariant aborts and fails this test.
 */
#include "fuzz_gdb_body.h"

#include "tests/corpus.h"

#include <criterion/criterion.h>


Test(gdbcorpus, replays_seeds_and_regressions)
{
	cr_assert_geq(corpus_replay("tests/debugger/corpus", gdb_fuzz_one), 15);
}

Test(gdbcorpus, odd_small_inputs)
{
	static const uint8_t zeros[64];
	static uint8_t big[GDB_PACKET_MAX + 64];

	gdb_fuzz_one(NULL, 0);
	gdb_fuzz_one(zeros, sizeof(zeros));
	gdb_fuzz_one((const uint8_t *)"$", 1);
	gdb_fuzz_one((const uint8_t *)"$#", 2);
	gdb_fuzz_one((const uint8_t *)"$}", 2);
	gdb_fuzz_one((const uint8_t *)"$#00", 4);
	gdb_fuzz_one((const uint8_t *)"}", 1);
	/* An oversize packet, and one whole input too big to be a payload. */
	big[0] = '$';
	memset(big + 1, 'G', sizeof(big) - 5);
	memcpy(big + sizeof(big) - 4, "#00", 3);
	gdb_fuzz_one(big, sizeof(big) - 1);
	gdb_fuzz_one(big, sizeof(big));
}
