/* unit */
/*
 * test_util.c: vmm/util.c: error codes and detail messages, memory size parsing,
 * reading whole files.
 */
#include "vmm/loader.h"
#include "vmm/vmm.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Test(util, strerror_covers_every_code)
{
	for (int e = VMM_OK; e <= VMM_EINTERNAL; e++) {
		const char *s = vmm_strerror(-e);

		cr_assert_not_null(s);
		cr_assert_neq(s[0], '\0');
		cr_assert_neq(strcmp(s, "unknown error"), 0, "code %d has no text", e);
		cr_assert_str_eq(s, vmm_strerror(e));
	}
	cr_assert_str_eq(vmm_strerror(-1000), "unknown error");
}

Test(util, fail_records_detail_and_returns_negative)
{
	errno = EPERM;
	cr_assert_eq(vmm_fail(VMM_EBADELF, "segment %d at 0x%x", 2, 0x1000), -VMM_EBADELF);
	cr_assert_str_eq(vmm_errdetail(), "segment 2 at 0x1000");
	cr_assert_eq(errno, EPERM, "vmm_fail changed errno");
	/* Long messages are cut, not overflowed. */
	char big[2000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	cr_assert_eq(vmm_fail(VMM_EIO, "%s", big), -VMM_EIO);
	cr_assert_gt(strlen(vmm_errdetail()), 100);
	cr_assert_lt(strlen(vmm_errdetail()), sizeof(big) - 1);
}

static void *other_thread(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)(vmm_errdetail()[0] == '\0');
}

Test(util, detail_is_per_thread)
{
	pthread_t t;
	void *empty;

	(void)vmm_fail(VMM_EIO, "main thread detail");
	cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	cr_assert_eq(pthread_join(t, &empty), 0);
	cr_assert(empty != NULL, "another thread saw this thread's detail");
	cr_assert_str_eq(vmm_errdetail(), "main thread detail");
}

static void good_size(const char *s, uint64_t want)
{
	uint64_t v = 0;

	cr_assert_eq(vmm_parse_size(s, &v), 0, "\"%s\" refused: %s", s, vmm_errdetail());
	cr_assert_eq(v, want, "\"%s\" gave %llu, want %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void bad_size(const char *s)
{
	uint64_t v = 12345;

	cr_assert_eq(vmm_parse_size(s, &v), -VMM_EINVAL, "\"%s\" accepted", s ? s : "(null)");
	cr_assert_eq(v, 12345, "output written on failure");
	cr_assert_neq(vmm_errdetail()[0], '\0');
}

Test(util, parse_size_good)
{
	good_size("65536", 65536);
	good_size("1", 1);
	good_size("2048K", 2048ull << 10);
	good_size("2048k", 2048ull << 10);
	good_size("128M", 128ull << 20);
	good_size("128m", 128ull << 20);
	good_size("1G", 1ull << 30);
	good_size("64g", 64ull << 30);
	good_size("1T", 1ull << 40);
	good_size("007M", 7ull << 20);
	good_size("18446744073709551615", UINT64_MAX);
	good_size("16777215T", 16777215ull << 40);
}

Test(util, parse_size_bad)
{
	bad_size(NULL);
	bad_size("");
	bad_size("-1");
	bad_size("+1");
	bad_size(" 1M");
	bad_size("1M ");
	bad_size("1 M");
	bad_size("M");
	bad_size("12X");
	bad_size("12MB");
	bad_size("12MM");
	bad_size("1.5G");
	bad_size("0x100");
	bad_size("0");
	bad_size("0M");
	bad_size("18446744073709551616");
	bad_size("99999999999999999999999");
	bad_size("16777216T");
	bad_size("17179869184G");
}

Test(util, parse_size_null_out)
{
	cr_assert_eq(vmm_parse_size("1M", NULL), -VMM_EINVAL);
}

static char dir[64];

static void mkdir_tmp(void)
{
	strcpy(dir, "/tmp/rewind-test-util-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

TestSuite(read_file, .init = mkdir_tmp, .fini = rm_tmp);

Test(read_file, reads_whole_file)
{
	char path[128];
	uint8_t data[10000];
	void *buf = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	snprintf(path, sizeof(path), "%s/f", dir);
	write_file(path, data, sizeof(data));
	cr_assert_eq(vmm_read_file(path, sizeof(data), &buf, &len), 0, "%s", vmm_errdetail());
	cr_assert_eq(len, sizeof(data));
	cr_assert_arr_eq(buf, data, sizeof(data));
	cr_assert_eq(((uint8_t *)buf)[len], 0, "no NUL after the data");
	free(buf);
}

Test(read_file, empty_file)
{
	char path[128];
	void *buf = NULL;
	size_t len = 99;

	snprintf(path, sizeof(path), "%s/empty", dir);
	write_file(path, "", 0);
	cr_assert_eq(vmm_read_file(path, 100, &buf, &len), 0, "%s", vmm_errdetail());
	cr_assert_eq(len, 0);
	cr_assert_not_null(buf);
	free(buf);
}

Test(read_file, missing_file)
{
	char path[128];
	void *buf = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/nope.elf", dir);
	cr_assert_eq(vmm_read_file(path, 100, &buf, &len), -VMM_ENOENT);
	cr_assert_not_null(strstr(vmm_errdetail(), "nope.elf"));
	cr_assert_not_null(strstr(vmm_errdetail(), strerror(ENOENT)));
	cr_assert_null(buf);
}

Test(read_file, directory)
{
	void *buf = NULL;
	size_t len = 0;

	cr_assert_eq(vmm_read_file(dir, 100, &buf, &len), -VMM_EINVAL);
	cr_assert_not_null(strstr(vmm_errdetail(), "directory"));
	cr_assert_null(buf);
}

Test(read_file, fifo_refused_without_blocking, .timeout = 10)
{
	char path[128];
	void *buf = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(vmm_read_file(path, 100, &buf, &len), -VMM_EINVAL);
	cr_assert_not_null(strstr(vmm_errdetail(), "not a regular file"));
}

Test(read_file, too_large)
{
	char path[128];
	void *buf = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/big", dir);
	write_file(path, "0123456789", 10);
	cr_assert_eq(vmm_read_file(path, 9, &buf, &len), -VMM_EINVAL);
	cr_assert_not_null(strstr(vmm_errdetail(), "too large"));
	cr_assert_null(buf);
	cr_assert_eq(vmm_read_file(path, 10, &buf, &len), 0, "%s", vmm_errdetail());
	cr_assert_eq(len, 10);
	free(buf);
}

Test(read_file, unreadable)
{
	char path[128];
	void *buf = NULL;
	size_t len = 0;

	if (geteuid() == 0)
		cr_skip_test("running as root: permissions are not enforced");
	snprintf(path, sizeof(path), "%s/secret", dir);
	write_file(path, "x", 1);
	cr_assert_eq(chmod(path, 0), 0);
	cr_assert_eq(vmm_read_file(path, 100, &buf, &len), -VMM_ENOENT);
	cr_assert_not_null(strstr(vmm_errdetail(), strerror(EACCES)));
}
