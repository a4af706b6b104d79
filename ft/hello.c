/*
 * hello.c: the HELLO exchange that opens a stream, and the host clock the ft core uses
 * (ft.h, docs/ft.md).
 */
#include "ft.h"

#include "wire.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t ft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* HELLO: "RWFT", version 1, generation, marker_ms, timeout_ms, then the pair id. */
#define HELLO_FIXED 24

int ft_hello_send(const struct ft_link *l, const struct ft_hello *h, int timeout_ms,
		  char *err, size_t errlen)
{
	uint8_t b[HELLO_FIXED + FT_PAIR_ID_MAX];
	size_t idlen = strnlen(h->pair_id, FT_PAIR_ID_MAX);
	memcpy(b, "RWFT", 4);
	b[4] = 1;
	b[5] = b[6] = b[7] = 0;
	ft_put64(b + 8, h->generation);
	ft_put64(b + 16, (uint64_t)h->marker_ms | (uint64_t)h->timeout_ms << 32);
	memcpy(b + HELLO_FIXED, h->pair_id, idlen);
	if (l->ops->send(l->opaque, FT_MSG_HELLO, b, HELLO_FIXED + idlen) < 0) {
		snprintf(err, errlen, "sending the stream's hello: %s", l->ops->error(l->opaque));
		return -1;
	}
	uint8_t type, r[64];
	size_t n;
	int rc = l->ops->recv(l->opaque, &type, r, sizeof(r), &n, timeout_ms);
	if (rc <= 0) {
		snprintf(err, errlen, "waiting for the backup's answer: %s",
			 rc == 0 ? "no answer in time" : l->ops->error(l->opaque));
		return -1;
	}
	if (type == FT_MSG_REFUSED) {
		snprintf(err, errlen, "the backup refused: %.*s", (int)(n < 60 ? n : 60),
			 (const char *)r);
		return -1;
	}
	if (type != FT_MSG_HELLO_OK || n != 8 || ft_get64(r) != h->generation) {
		snprintf(err, errlen, "the backup answered the hello with something else "
				      "(message type %u)", type);
		return -1;
	}
	return 0;
}

int ft_hello_take(const struct ft_link *l, struct ft_hello *h, int timeout_ms, char *err,
		  size_t errlen)
{
	uint8_t b[HELLO_FIXED + FT_PAIR_ID_MAX + 1 + 256], type; /* (room for a REFUSED text) */
	size_t n;
	int rc = l->ops->recv(l->opaque, &type, b, sizeof(b), &n, timeout_ms);
	if (rc <= 0) {
		snprintf(err, errlen, "waiting for the primary's hello: %s",
			 rc == 0 ? "nothing came in time" : l->ops->error(l->opaque));
		return -1;
	}
	if (type == FT_MSG_REFUSED) {
		snprintf(err, errlen, "refused: %.*s", (int)(n < 200 ? n : 200), (const char *)b);
		return -1;
	}
	if (type != FT_MSG_HELLO || n < HELLO_FIXED || n > HELLO_FIXED + FT_PAIR_ID_MAX ||
	    memcmp(b, "RWFT", 4) || b[4] != 1) {
		snprintf(err, errlen, "the primary's first message is not a stream hello "
				      "(type %u, %zu bytes)", type, n);
		return -1;
	}
	memset(h, 0, sizeof(*h));
	h->generation = ft_get64(b + 8);
	uint64_t t = ft_get64(b + 16);
	h->marker_ms = (uint32_t)t;
	h->timeout_ms = (uint32_t)(t >> 32);
	memcpy(h->pair_id, b + HELLO_FIXED, n - HELLO_FIXED);
	for (size_t i = 0; h->pair_id[i]; i++)
		if (h->pair_id[i] < 0x21 || h->pair_id[i] > 0x7e) {
			snprintf(err, errlen, "the primary's pair id is not printable");
			return -1;
		}
	uint8_t ok[8];
	ft_put64(ok, h->generation);
	if (l->ops->send(l->opaque, FT_MSG_HELLO_OK, ok, sizeof(ok)) < 0) {
		snprintf(err, errlen, "answering the hello: %s", l->ops->error(l->opaque));
		return -1;
	}
	return 0;
}
