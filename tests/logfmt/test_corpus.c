/* unit */
/*
 * test_corpus.c: every file of tests/logfmt/corpus/ (fuzzing seeds and the inputs that
 * once broke something) and tests/logfmt/golden/ through the fuzz target's own code
 * (fuzz_body.h), in the normal build: a broken invariant aborts and fails this test.
 */
#include "fuzz_body.h"

#include "tests/corpus.h"

#include <criterion/criterion.h>


Test(corpus, replays_seeds_and_regressions)
{
	cr_assert_geq(corpus_replay("tests/logfmt/corpus", lf_fuzz_one), 6);
}

Test(corpus, replays_golden_files)
{
	cr_assert_geq(corpus_replay("tests/logfmt/golden", lf_fuzz_one), 10);
}

Test(corpus, odd_small_inputs)
{
	static const uint8_t zeros[64];

	lf_fuzz_one(NULL, 0);
	lf_fuzz_one(zeros, sizeof(zeros));
	lf_fuzz_one((const uint8_t *)"\x89RWL\r\n\x1a\n", 8);
	lf_fuzz_one((const uint8_t *)"\x89RWL\r\n\x1a\n\x02\x00\x00\x00\xff\xff\xff\xff", 16);
}
