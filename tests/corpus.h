/*
 * corpus.h: run every file of a fuzz corpus directory through a fuzz target's body in the
 * normal build (tests/logfmt/test_corpus.c, tests/debugger/test_gdbcorpus.c).
 */
#ifndef REWIND_TESTS_CORPUS_H
#define REWIND_TESTS_CORPUS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Feed each file (dot files skipped) to one; returns how many files there were. */
static size_t corpus_replay(const char *dir, int (*one)(const uint8_t *, size_t))
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
		one(buf, (size_t)n);
		free(buf);
		files++;
	}
	closedir(d);
	return files;
}

#endif
