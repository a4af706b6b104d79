/*
 * link.c: the stream's link over the secure channel (ft.h, docs/ft.md).
 */
#include "ft.h"

#include "chan.h"

static int chan_send(void *o, uint8_t type, const void *buf, size_t len)
{
	return ft_chan_send(o, type, buf, len);
}

static int chan_recv(void *o, uint8_t *type, void *buf, size_t cap, size_t *len,
		     int timeout_ms)
{
	return ft_chan_recv(o, type, buf, cap, len, timeout_ms);
}

static const char *chan_error(void *o)
{
	return ft_chan_error(o);
}

/* Through the channel, so that its error (and so what either side prints about the link)
 * is the reason, not what a bare shutdown of the socket would make of it. */
static void chan_shut(void *o, const char *why)
{
	ft_chan_shutdown(o, why);
}

static const struct ft_link_ops chan_link_ops = {
	.send = chan_send,
	.recv = chan_recv,
	.error = chan_error,
	.shut = chan_shut,
};

void ft_link_chan(struct ft_link *l, struct ft_chan *c)
{
	l->ops = &chan_link_ops;
	l->opaque = c;
}

