/* standalone */
/*
 * test_gdbcorpus.c: every file of tests/debugger/corpus/ (packet streams real gdb sent,
 * hand-made edge cases, and inputs the fuzzer found) through the fuzz target's own code
 * (fuzz_gdb_body.h), in the normal build: a broken invariant aborts and fails this test.
 */
#include "fuzz_gdb_body.h"

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
		gdb_fuzz_one(buf, (size_t)n);
		free(buf);
		files++;
	}
	closedir(d);
	return files;
}

Test(gdbcorpus, replays_seeds_and_regressions)
{
	cr_assert_geq(replay_dir("tests/debugger/corpus"), 15);
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
