/*
 * keyfile.c: the ft pair's pre-shared key on disk (chan.h; docs/ft-security.md, "Key
 * files"). A key file is exactly FT_KEY_BYTES random bytes, mode 0600. It is created
 * only where nothing exists (O_EXCL: a keygen never replaces the key a running pair
 * uses) and synced before keygen reports success. Loading refuses, as ssh does for
 * private keys, a file that group or others may read or write: a key others can read
 * protects nothing.
 */
#include "ft/chan.h"
#include "ft/errf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sync the folder that holds path, so the new name survives a crash too. */
static int sync_parent(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (dfd < 0)
		return -1;
	int rc = fsync(dfd);
	close(dfd);
	return rc;
}

int ft_key_generate(const char *path, char *err, size_t errlen)
{
	struct ft_key key;
	if (sodium_init() < 0)
		return ft_errf(err, errlen, "cannot initialise libsodium (no system randomness?)");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return ft_errf(err, errlen,
				       "%s already exists: a new key would not match the one the "
				       "pair uses; remove it first if you mean to replace it",
				       path);
		return ft_errf(err, errlen, "cannot create key file %s: %s", path, strerror(errno));
	}
	/* The umask may have taken bits away, never added any; make it exactly 0600. */
	if (fchmod(fd, 0600) < 0)
		goto io_fail;
	randombytes_buf(key.k, sizeof key.k);
	size_t done = 0;
	while (done < sizeof key.k) {
		ssize_t n = write(fd, key.k + done, sizeof key.k - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto io_fail;
		done += (size_t)n;
	}
	sodium_memzero(&key, sizeof key);
	if (fsync(fd) < 0)
		goto io_fail;
	if (close(fd) < 0) {
		fd = -1;
		goto io_fail;
	}
	if (sync_parent(path) < 0)
		return ft_errf(err, errlen, "cannot sync the folder of %s: %s", path,
			       strerror(errno));
	return 0;

io_fail:;
	int e = errno ? errno : EIO;
	sodium_memzero(&key, sizeof key);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return ft_errf(err, errlen, "cannot write key file %s: %s", path, strerror(e));
}

int ft_key_load(const char *path, struct ft_key *key, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ft_errf(
			    err, errlen,
			    "key file %s does not exist: make one with `rewind ft keygen "
			    "%s` and copy it to both hosts",
			    path, path);
		return ft_errf(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return ft_errf(err, errlen, "cannot stat key file %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ft_errf(err, errlen, "key file %s is not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return ft_errf(err, errlen,
			       "key file %s has mode %04o: group or others may %s it; "
			       "run `chmod 600 %s`",
			       path, (unsigned)(st.st_mode & 07777),
			       (st.st_mode & 044) ? "read" : "write", path);
	}
	if (st.st_size != FT_KEY_BYTES) {
		close(fd);
		return ft_errf(err, errlen,
			       "key file %s holds %lld bytes, not a %d-byte key: make one with "
			       "`rewind ft keygen FILE`",
			       path, (long long)st.st_size, FT_KEY_BYTES);
	}
	/* Read one byte more than a key, to notice a file that grew since fstat. */
	uint8_t buf[FT_KEY_BYTES + 1];
	size_t done = 0;
	for (;;) {
		ssize_t n = read(fd, buf + done, sizeof buf - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			sodium_memzero(buf, sizeof buf);
			return ft_errf(err, errlen, "cannot read key file %s: %s", path,
				       strerror(e));
		}
		if (n == 0 || (done += (size_t)n) == sizeof buf)
			break;
	}
	close(fd);
	if (done != FT_KEY_BYTES) {
		sodium_memzero(buf, sizeof buf);
		return ft_errf(err, errlen,
			       "key file %s changed while it was read (%zu bytes): make one with "
			       "`rewind ft keygen FILE`",
			       path, done);
	}
	memcpy(key->k, buf, FT_KEY_BYTES);
	sodium_memzero(buf, sizeof buf);
	return 0;
}
