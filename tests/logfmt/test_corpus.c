/* unit */
/*
 * test_corpus.c: every file of tests/logfmt/corpus/ (fuzzing seeds and the inputs that
 * once broke something) and tests/logfmt/golden/ through the fuzz target's own code
 * (fuzz_body.h), in the normal build: a broken invariant aborts and fails this test.
 */
#include "fuzz_body.h"

#include <criterion/criterion.h>
#include <dirent.h>

static size_t replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t files = 0;

	cr_assert_not_null(d, "%s: run the tests from the repository root", dir);
	while ((e = readdir(d)) != NULL) {
		char path[512];
		FILE *f;
		uint8_t *buf;
		long n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc((size_t)n + 1);
		cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "%s", path);
		fclose(f);
		cr_log_info("%s", path);
		lf_fuzz_one(buf, (size_t)n);
		free(buf);
		files++;
	}
	closedir(d);
	return files;
}

Test(corpus, replays_seeds_and_regressions)
{
	cr_assert_geq(replay_dir("tests/logfmt/corpus"), 6);
}

Test(corpus, replays_golden_files)
{
	cr_assert_geq(replay_dir("tests/logfmt/golden"), 9);
}

Test(corpus, odd_small_inputs)
{
	static const uint8_t zeros[64];

	lf_fuzz_one(NULL, 0);
	lf_fuzz_one(zeros, sizeof(zeros));
	lf_fuzz_one((const uint8_t *)"\x89RWL\r\n\x1a\n", 8);
	lf_fuzz_one((const uint8_t *)"\x89RWL\r\n\x1a\n\x01\x00\x00\x00\xff\xff\xff\xff", 16);
}
