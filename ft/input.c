/*
 * input.c: typed console input into the pair's guest, each byte exactly once across a
 * failover (ft.h, docs/ft.md "Console input").
 *
 * The console offers a client's bytes with sequence numbers (ft_input_offer). New bytes go
 * into a pipe that the live input source reads when the guest's UART has room; the tap
 * reports each delivery (ft_input_delivered), which the primary streams to the backup as
 * (client, sequence number after it, position) before the log event itself can arrive
 * there. The backup applies those records as its replay delivers the input at that
 * position (ft_input_replayed), so when it goes live it knows, per client, exactly what
 * its guest got. A byte is taken (acknowledged to the client) only once delivered and,
 * while a backup follows, once the backup holds the log up to its delivery: a client
 * whose bytes were not taken sends them again to whichever side is live, which skips
 * what its guest already has.
 */
#include "ft.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 64
#define PENDING 4096 /* deliveries waiting for an ack */

struct client {
	uint64_t id;
	uint64_t queued;    /* next sequence number not yet written to the pipe */
	uint64_t delivered; /* next not yet delivered to the guest */
	uint64_t taken;     /* next not yet taken (delivered, and held by the backup) */
	bool used;
};

struct range {
	uint64_t client, seq; /* the first byte's number */
	size_t n;
};

struct ft_input {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pipe[2];
	struct client c[CLIENTS];
	struct range *fifo; /* bytes in the pipe, in order: whose they are */
	size_t fh, fn, fcap;
	struct ft_input_delivery pend[PENDING]; /* delivered, not yet acked */
	unsigned ph, pn;
	bool alone; /* no backup: delivered is taken */
};

static struct client *client_get(struct ft_input *in, uint64_t id)
{
	struct client *free_slot = NULL;
	for (unsigned i = 0; i < CLIENTS; i++) {
		if (in->c[i].used && in->c[i].id == id)
			return &in->c[i];
		if (!in->c[i].used && !free_slot)
			free_slot = &in->c[i];
	}
	if (!free_slot)
		return NULL;
	*free_slot = (struct client){.id = id, .used = true};
	return free_slot;
}

int ft_input_create(struct ft_input **out)
{
	struct ft_input *in = calloc(1, sizeof(*in));
	if (!in)
		return -1;
	if (pipe2(in->pipe, O_CLOEXEC) < 0) {
		free(in);
		return -1;
	}
	fcntl(in->pipe[1], F_SETFL, O_NONBLOCK);
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	*out = in;
	return 0;
}

int ft_input_fd(struct ft_input *in)
{
	return in->pipe[0];
}

void ft_input_set_alone(struct ft_input *in, bool alone)
{
	pthread_mutex_lock(&in->mu);
	in->alone = alone;
	for (unsigned i = 0; i < CLIENTS; i++)
		in->c[i].taken = in->c[i].delivered;
	in->pn = 0;
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

size_t ft_input_offer(struct ft_input *in, uint64_t client, uint64_t seq, const uint8_t *buf,
		      size_t n, unsigned wait_ms)
{
	pthread_mutex_lock(&in->mu);
	struct client *c = client_get(in, client);
	if (!c) {
		pthread_mutex_unlock(&in->mu);
		return 0; /* too many clients: this one tries again later */
	}
	/* A client that lost our ack may send again what we have: skip it. */
	if (seq + n > c->queued && seq <= c->queued) {
		size_t skip = (size_t)(c->queued - seq);
		size_t want = n - skip;
		if (in->fh + in->fn == in->fcap) {
			if (in->fh) {
				memmove(in->fifo, in->fifo + in->fh, in->fn * sizeof(*in->fifo));
				in->fh = 0;
			} else {
				size_t nc = in->fcap ? in->fcap * 2 : 64;
				struct range *f = realloc(in->fifo, nc * sizeof(*f));
				if (!f)
					want = 0;
				else
					in->fifo = f, in->fcap = nc;
			}
		}
		ssize_t k = want ? write(in->pipe[1], buf + skip, want) : 0;
		if (k > 0) {
			in->fifo[in->fh + in->fn++] =
			    (struct range){.client = client, .seq = c->queued, .n = (size_t)k};
			c->queued += (uint64_t)k;
		}
	}
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)wait_ms * 1000000u;
	dl.tv_sec += (time_t)(ns / 1000000000u);
	dl.tv_nsec = (long)(ns % 1000000000u);
	while (c->taken < seq + n && c->taken < c->queued &&
	       pthread_cond_timedwait(&in->cv, &in->mu, &dl) != ETIMEDOUT)
		;
	size_t taken = c->taken <= seq ? 0 : c->taken - seq >= n ? n : (size_t)(c->taken - seq);
	pthread_mutex_unlock(&in->mu);
	return taken;
}

size_t ft_input_delivered(struct ft_input *in, uint64_t pos, size_t n,
			  struct ft_input_delivery *out, size_t cap)
{
	size_t k = 0;
	pthread_mutex_lock(&in->mu);
	while (n && in->fn) {
		struct range *r = &in->fifo[in->fh];
		size_t m = n < r->n ? n : r->n;
		struct client *c = client_get(in, r->client);
		r->seq += m;
		r->n -= m;
		n -= m;
		if (c)
			c->delivered = r->seq;
		struct ft_input_delivery d = {.client = r->client, .seq = r->seq, .pos = pos,
					      .n = m};
		if (k < cap)
			out[k++] = d;
		if (c && in->alone)
			c->taken = c->delivered;
		else if (in->pn < PENDING)
			in->pend[(in->ph + in->pn++) % PENDING] = d;
		if (!r->n) {
			in->fh++;
			in->fn--;
		}
	}
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
	return k;
}

void ft_input_acked(struct ft_input *in, uint64_t held)
{
	pthread_mutex_lock(&in->mu);
	while (in->pn && in->pend[in->ph].pos < held) {
		struct ft_input_delivery *d = &in->pend[in->ph];
		struct client *c = client_get(in, d->client);
		if (c && d->seq > c->taken)
			c->taken = d->seq;
		in->ph = (in->ph + 1) % PENDING;
		in->pn--;
	}
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

void ft_input_replayed(struct ft_input *in, uint64_t client, uint64_t seq)
{
	pthread_mutex_lock(&in->mu);
	struct client *c = client_get(in, client);
	if (c && seq > c->delivered)
		c->queued = c->delivered = c->taken = seq;
	pthread_mutex_unlock(&in->mu);
}

static void alone_serial_rx(void *opaque, struct vmm_machine *m, const uint8_t *buf, size_t n)
{
	(void)buf;
	(void)ft_input_delivered(opaque, vmm_machine_pos(m), n, NULL, 0);
}

const struct vmm_input_tap ft_input_tap = {.serial_rx = alone_serial_rx};

void ft_input_free(struct ft_input *in)
{
	if (!in)
		return;
	close(in->pipe[0]);
	close(in->pipe[1]);
	free(in->fifo);
	free(in);
}
