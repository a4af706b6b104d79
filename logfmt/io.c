/*
 * io.c: the two byte-I/O tables logfmt ships: a file descriptor the caller opened, and a
 * memory buffer (reading a given buffer, or writing into one that grows).
 *
 * The memory writer can fail on purpose (fail_at) the way a full disk does: it keeps the
 * bytes that still fit, then fails with ENOSPC. Tests use it to fail every write offset.
 */
#include "lf_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static ssize_t lf_fd_read(void *opaque, void *buf, size_t n)
{
	struct lf_io_fd *f = opaque;
	ssize_t got;

	do
		got = read(f->fd, buf, n);
	while (got < 0 && errno == EINTR);
	return got;
}

static int lf_fd_write(void *opaque, const void *buf, size_t n)
{
	struct lf_io_fd *f = opaque;
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t put = write(f->fd, p, n);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -1;
		if (put == 0) {
			errno = EIO;
			return -1;
		}
		p += put;
		n -= (size_t)put;
	}
	return 0;
}

static int64_t lf_fd_seek(void *opaque, int64_t off, int whence)
{
	struct lf_io_fd *f = opaque;

	return lseek(f->fd, off, whence);
}

static int lf_fd_sync(void *opaque)
{
	struct lf_io_fd *f = opaque;

	if (fdatasync(f->fd) == 0)
		return 0;
	/* Pipes and sockets cannot be synced and need not be: the reader holds the bytes. */
	return errno == EINVAL || errno == EROFS ? 0 : -1;
}

static const struct lf_io_ops lf_fd_io_ops = {
    .read = lf_fd_read,
    .write = lf_fd_write,
    .seek = lf_fd_seek,
    .sync = lf_fd_sync,
};

void lf_io_fd_init(struct lf_io *io, struct lf_io_fd *f, int fd)
{
	f->fd = fd;
	io->ops = &lf_fd_io_ops;
	io->opaque = f;
}

static ssize_t lf_mem_read(void *opaque, void *buf, size_t n)
{
	struct lf_io_mem *m = opaque;

	if (m->off >= m->len)
		return 0;
	if (n > m->len - m->off)
		n = m->len - m->off;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static int lf_mem_write(void *opaque, const void *buf, size_t n)
{
	struct lf_io_mem *m = opaque;
	size_t fit = n;
	bool fail = false;

	if (m->fail_at != 0 && (m->off > m->fail_at || n > m->fail_at - m->off)) {
		fit = m->off < m->fail_at ? m->fail_at - m->off : 0;
		fail = true;
	}
	if (m->off + fit > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *p;

		while (cap < m->off + fit)
			cap *= 2;
		p = realloc(m->data, cap);
		if (p == NULL) {
			errno = ENOMEM;
			return -1;
		}
		m->data = p;
		m->cap = cap;
		m->owned = true;
	}
	if (m->off > m->len) /* a seek past the end leaves a hole of zeros, as in a file */
		memset(m->data + m->len, 0, m->off - m->len);
	if (fit > 0)
		memcpy(m->data + m->off, buf, fit);
	m->off += fit;
	if (m->off > m->len)
		m->len = m->off;
	if (fail) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

static int64_t lf_mem_seek(void *opaque, int64_t off, int whence)
{
	struct lf_io_mem *m = opaque;
	int64_t at;

	switch (whence) {
	case SEEK_SET:
		at = 0;
		break;
	case SEEK_CUR:
		at = (int64_t)m->off;
		break;
	case SEEK_END:
		at = (int64_t)m->len;
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if ((off < 0 && -off > at) || (off > 0 && off > INT64_MAX - at)) {
		errno = EINVAL;
		return -1;
	}
	m->off = (size_t)(at + off);
	return (int64_t)m->off;
}

static const struct lf_io_ops lf_mem_reader_ops = {
    .read = lf_mem_read,
    .seek = lf_mem_seek,
};

static const struct lf_io_ops lf_mem_writer_ops = {
    .read = lf_mem_read,
    .write = lf_mem_write,
    .seek = lf_mem_seek,
};

void lf_io_mem_reader(struct lf_io *io, struct lf_io_mem *m, const void *data, size_t len)
{
	memset(m, 0, sizeof(*m));
	/* Never written through: the reader table has no write member. */
	m->data = (uint8_t *)(uintptr_t)data;
	m->len = len;
	m->cap = len;
	io->ops = &lf_mem_reader_ops;
	io->opaque = m;
}

void lf_io_mem_writer(struct lf_io *io, struct lf_io_mem *m)
{
	memset(m, 0, sizeof(*m));
	io->ops = &lf_mem_writer_ops;
	io->opaque = m;
}
