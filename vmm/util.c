/*
 * util.c: the small helpers every part of vmm/ shares: error code descriptions, the
 * per-thread error detail message, memory size parsing and reading a whole file.
 *
 * The detail buffer is thread-local so that two machines (an FT primary and its backup
 * in one process, or parallel tests) never see each other's messages. Nothing here
 * prints or exits; the CLI decides what the user sees.
 */
#include "vmm.h"
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VMM_DETAIL_MAX 512

static _Thread_local char vmm_detail[VMM_DETAIL_MAX];

const char *vmm_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case VMM_OK:
		return "success";
	case VMM_ENOMEM:
		return "out of host memory";
	case VMM_EINVAL:
		return "invalid argument";
	case VMM_EIO:
		return "host I/O error";
	case VMM_ENOENT:
		return "file not found or not readable";
	case VMM_EBADELF:
		return "not a usable ELF64 x86-64 executable";
	case VMM_ENOPVH:
		return "ELF has no PVH entry note";
	case VMM_ELAYOUT:
		return "ELF segments do not fit the guest memory layout";
	case VMM_ENOKVM:
		return "KVM is not available";
	case VMM_EBACKEND:
		return "vCPU backend failure";
	case VMM_EINPUT:
		return "the input source stopped the run";
	case VMM_EGUEST:
		return "guest did something the machine cannot do";
	case VMM_ESTATE:
		return "malformed or incompatible saved state";
	case VMM_EINTERNAL:
		return "internal error";
	default:
		return "unknown error";
	}
}

const char *vmm_errdetail(void)
{
	return vmm_detail;
}

int vmm_fail(int err, const char *fmt, ...)
{
	/* Callers often pass strerror(errno) and then look at errno: keep it intact. */
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vmm_detail, sizeof(vmm_detail), fmt, ap);
	va_end(ap);
	errno = saved_errno;
	if (err < 0)
		err = -err;
	return -err;
}

bool vmm_parse_port(const char *s, uint16_t *out)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 5 || s[n] != '\0')
		return false;
	unsigned long v = strtoul(s, NULL, 10);
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

int vmm_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (s == NULL || out == NULL)
		return vmm_fail(VMM_EINVAL, "no size given");
	if (*p < '0' || *p > '9')
		return vmm_fail(VMM_EINVAL, "bad size \"%s\": expected digits with an optional "
					    "K, M, G or T suffix",
				s);
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return vmm_fail(VMM_EINVAL, "size \"%s\" is too large", s);
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		p++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		p++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		p++;
		break;
	case 't':
	case 'T':
		shift = 40;
		p++;
		break;
	default:
		return vmm_fail(VMM_EINVAL, "bad size \"%s\": unknown suffix \"%s\" (use K, M, G or T)",
				s, p);
	}
	if (*p != '\0')
		return vmm_fail(VMM_EINVAL, "bad size \"%s\": junk \"%s\" after the suffix", s, p);
	if (v == 0)
		return vmm_fail(VMM_EINVAL, "size \"%s\" is zero", s);
	if (shift && v > (UINT64_MAX >> shift))
		return vmm_fail(VMM_EINVAL, "size \"%s\" is too large", s);
	*out = v << shift;
	return 0;
}

int vmm_read_file(const char *path, size_t max, void **buf, size_t *len)
{
	struct stat st;
	uint8_t *data = NULL;
	size_t size, got = 0;
	int fd, ret;

	if (path == NULL || buf == NULL || len == NULL)
		return vmm_fail(VMM_EINVAL, "vmm_read_file: missing argument");
	/* O_NONBLOCK: opening a FIFO must not hang before we can refuse it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOMEM)
			return vmm_fail(VMM_ENOMEM, "%s: %s", path, strerror(errno));
		return vmm_fail(VMM_ENOENT, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		ret = vmm_fail(VMM_EIO, "%s: stat: %s", path, strerror(errno));
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = vmm_fail(VMM_EINVAL, "%s: is a directory, not a file", path);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = vmm_fail(VMM_EINVAL, "%s: not a regular file", path);
		goto out_close;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max || (uint64_t)st.st_size >= SIZE_MAX) {
		ret = vmm_fail(VMM_EINVAL, "%s: file is too large (%lld bytes, at most %zu)", path,
			       (long long)st.st_size, max);
		goto out_close;
	}
	size = (size_t)st.st_size;
	/* One spare byte: malloc(0) may return NULL, and a NUL end helps text callers. */
	data = malloc(size + 1);
	if (data == NULL) {
		ret = vmm_fail(VMM_ENOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
		goto out_close;
	}
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = vmm_fail(VMM_EIO, "%s: read at offset %zu: %s", path, got,
				       strerror(errno));
			goto out_free;
		}
		if (n == 0)
			break; /* the file shrank while we read it: take what is there */
		got += (size_t)n;
	}
	data[got] = 0;
	close(fd);
	*buf = data;
	*len = got;
	return 0;

out_free:
	free(data);
out_close:
	close(fd);
	return ret;
}
