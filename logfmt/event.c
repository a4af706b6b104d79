/*
 * event.c: one event's bytes inside a chunk (FORMAT.md "Events"), checking what callers
 * append, and the one-line text form tools print.
 *
 * An event is a kind byte, its position as a varint delta from the previous event in the
 * chunk, then a payload per kind. Clock values are zigzag deltas from the previous clock
 * in the chunk, so a clock that goes backwards costs no more than one that goes forwards.
 */
#include "lf_priv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

int lf_ev_check(const struct lf_event *ev)
{
	if (ev == NULL)
		return lf_fail(LF_EINVAL, "no event given");
	switch (ev->kind) {
	case LF_EV_CLOCK:
	case LF_EV_TIMER:
	case LF_EV_END:
	case LF_EV_LANDMARK:
		return 0;
	case LF_EV_INPUT:
		if (ev->input.len < 1 || ev->input.len > LF_INPUT_MAX)
			return lf_fail(LF_EINVAL,
				       "input event of %" PRIu32 " bytes (1 to %d allowed)",
				       ev->input.len, LF_INPUT_MAX);
		if (ev->input.data == NULL)
			return lf_fail(LF_EINVAL, "input event without data");
		return 0;
	case LF_EV_HASH:
		if (ev->hash.flags & ~(LF_HASH_REGS | LF_HASH_MEM | LF_HASH_OUT))
			return lf_fail(LF_EINVAL, "hash event with unknown flags 0x%" PRIx32,
				       ev->hash.flags);
		return 0;
	default:
		return lf_fail(LF_EINVAL, "unknown event kind %u", (unsigned)ev->kind);
	}
}

size_t lf_ev_encode(uint8_t *out, const struct lf_event *ev, struct lf_ev_state *st)
{
	size_t n = 0;

	out[n++] = ev->kind;
	n += lf_varint_put(out + n, ev->pos - st->pos);
	st->pos = ev->pos;
	switch (ev->kind) {
	case LF_EV_CLOCK:
		n += lf_varint_put(out + n, lf_zigzag(ev->clock - st->clock));
		st->clock = ev->clock;
		break;
	case LF_EV_TIMER:
		n += lf_varint_put(out + n, ev->timer);
		break;
	case LF_EV_INPUT:
		n += lf_varint_put(out + n, ev->input.channel);
		n += lf_varint_put(out + n, ev->input.len);
		memcpy(out + n, ev->input.data, ev->input.len);
		n += ev->input.len;
		break;
	case LF_EV_HASH:
		n += lf_varint_put(out + n, ev->hash.flags);
		if (ev->hash.flags & LF_HASH_REGS) {
			lf_put64(out + n, ev->hash.regs);
			n += 8;
		}
		if (ev->hash.flags & LF_HASH_MEM) {
			lf_put64(out + n, ev->hash.mem);
			n += 8;
		}
		if (ev->hash.flags & LF_HASH_OUT) {
			lf_put64(out + n, ev->hash.out);
			n += 8;
			n += lf_varint_put(out + n, ev->hash.out_bytes);
		}
		break;
	case LF_EV_END:
		n += lf_varint_put(out + n, ev->end.reason);
		n += lf_varint_put(out + n, ev->end.value);
		break;
	case LF_EV_LANDMARK:
		n += lf_varint_put(out + n, ev->landmark.rip);
		lf_put64(out + n, ev->landmark.gprs);
		n += 8;
		lf_put64(out + n, ev->landmark.regs);
		n += 8;
		lf_put64(out + n, ev->landmark.mem);
		n += 8;
		n += lf_varint_put(out + n, ev->landmark.pages);
		break;
	}
	return n;
}

/* Read a varint that must fit in 32 bits. */
static int lf_get_u32(const uint8_t *p, size_t len, size_t *off, uint32_t *v, const char **why,
		      const char *what)
{
	uint64_t x;
	int rc = lf_varint_get(p, len, off, &x);

	if (rc == LF_VARINT_SHORT) {
		*why = "event runs past the end of the payload";
		return -1;
	}
	if (rc < 0) {
		*why = "overlong varint";
		return -1;
	}
	if (x > UINT32_MAX) {
		*why = what;
		return -1;
	}
	*v = (uint32_t)x;
	return 0;
}

static int lf_get_u64(const uint8_t *p, size_t len, size_t *off, uint64_t *v, const char **why)
{
	int rc = lf_varint_get(p, len, off, v);

	if (rc == LF_VARINT_SHORT)
		*why = "event runs past the end of the payload";
	else if (rc < 0)
		*why = "overlong varint";
	return rc < 0 ? -1 : 0;
}

static int lf_get_fixed64(const uint8_t *p, size_t len, size_t *off, uint64_t *v, const char **why)
{
	if (len - *off < 8) {
		*why = "event runs past the end of the payload";
		return -1;
	}
	*v = lf_get64(p + *off);
	*off += 8;
	return 0;
}

int lf_ev_decode(const uint8_t *p, size_t len, size_t *off, struct lf_ev_state *st,
		 struct lf_event *ev, const char **why)
{
	uint64_t delta, z;

	memset(ev, 0, sizeof(*ev));
	if (*off >= len) {
		*why = "event runs past the end of the payload";
		return -1;
	}
	ev->kind = p[(*off)++];
	if (ev->kind < 1 || ev->kind > LF_KIND_MAX) {
		*why = "unknown event kind";
		return -1;
	}
	if (lf_get_u64(p, len, off, &delta, why) < 0)
		return -1;
	if (delta > UINT64_MAX - st->pos) {
		*why = "position overflows";
		return -1;
	}
	ev->pos = st->pos + delta;
	switch (ev->kind) {
	case LF_EV_CLOCK:
		if (lf_get_u64(p, len, off, &z, why) < 0)
			return -1;
		ev->clock = st->clock + lf_unzigzag(z);
		break;
	case LF_EV_TIMER:
		if (lf_get_u32(p, len, off, &ev->timer, why, "timer id past 32 bits") < 0)
			return -1;
		break;
	case LF_EV_INPUT:
		if (lf_get_u32(p, len, off, &ev->input.channel, why, "input channel past 32 bits") <
		    0)
			return -1;
		if (lf_get_u32(p, len, off, &ev->input.len, why, "input length out of range") < 0)
			return -1;
		if (ev->input.len < 1 || ev->input.len > LF_INPUT_MAX) {
			*why = "input length out of range";
			return -1;
		}
		if (len - *off < ev->input.len) {
			*why = "input bytes run past the end of the payload";
			return -1;
		}
		ev->input.data = p + *off;
		*off += ev->input.len;
		break;
	case LF_EV_HASH:
		if (lf_get_u32(p, len, off, &ev->hash.flags, why, "unknown hash flags") < 0)
			return -1;
		if (ev->hash.flags & ~(LF_HASH_REGS | LF_HASH_MEM | LF_HASH_OUT)) {
			*why = "unknown hash flags";
			return -1;
		}
		if ((ev->hash.flags & LF_HASH_REGS) &&
		    lf_get_fixed64(p, len, off, &ev->hash.regs, why) < 0)
			return -1;
		if ((ev->hash.flags & LF_HASH_MEM) &&
		    lf_get_fixed64(p, len, off, &ev->hash.mem, why) < 0)
			return -1;
		if (ev->hash.flags & LF_HASH_OUT) {
			if (lf_get_fixed64(p, len, off, &ev->hash.out, why) < 0 ||
			    lf_get_u64(p, len, off, &ev->hash.out_bytes, why) < 0)
				return -1;
		}
		break;
	case LF_EV_END:
		if (lf_get_u32(p, len, off, &ev->end.reason, why, "end reason past 32 bits") < 0 ||
		    lf_get_u64(p, len, off, &ev->end.value, why) < 0)
			return -1;
		break;
	case LF_EV_LANDMARK:
		if (lf_get_u64(p, len, off, &ev->landmark.rip, why) < 0 ||
		    lf_get_fixed64(p, len, off, &ev->landmark.gprs, why) < 0 ||
		    lf_get_fixed64(p, len, off, &ev->landmark.regs, why) < 0 ||
		    lf_get_fixed64(p, len, off, &ev->landmark.mem, why) < 0 ||
		    lf_get_u32(p, len, off, &ev->landmark.pages, why, "landmark page count past 32 bits") < 0)
			return -1;
		break;
	}
	st->pos = ev->pos;
	if (ev->kind == LF_EV_CLOCK)
		st->clock = ev->clock;
	return 0;
}

/* An appender that always leaves buf NUL-terminated and never overruns it. */
struct lf_line {
	char *buf;
	size_t cap, len;
	bool cut;
};

static void lf_line_add(struct lf_line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lf_line_add(struct lf_line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->cut || l->cap == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= l->cap - l->len) {
		l->len = l->cap - 1;
		l->cut = true;
		return;
	}
	l->len += (size_t)n;
}

void lf_event_format(const struct lf_event *ev, char *buf, size_t cap)
{
	struct lf_line l = {.buf = buf, .cap = cap};

	if (buf == NULL || cap == 0)
		return;
	buf[0] = '\0';
	if (ev == NULL)
		return;
	switch (ev->kind) {
	case LF_EV_CLOCK:
		lf_line_add(&l, "clock %" PRIu64, ev->clock);
		break;
	case LF_EV_TIMER:
		lf_line_add(&l, "timer %" PRIu32, ev->timer);
		break;
	case LF_EV_INPUT:
		if (ev->input.channel == 0)
			lf_line_add(&l, "input serial");
		else
			lf_line_add(&l, "input channel %" PRIu32, ev->input.channel);
		lf_line_add(&l, " %" PRIu32 " byte%s \"", ev->input.len,
			    ev->input.len == 1 ? "" : "s");
		for (uint32_t i = 0; ev->input.data != NULL && i < ev->input.len && !l.cut; i++) {
			uint8_t c = ev->input.data[i];

			if (c == '\n')
				lf_line_add(&l, "\\n");
			else if (c == '\r')
				lf_line_add(&l, "\\r");
			else if (c == '\t')
				lf_line_add(&l, "\\t");
			else if (c == '"' || c == '\\')
				lf_line_add(&l, "\\%c", c);
			else if (c >= 0x20 && c < 0x7f)
				lf_line_add(&l, "%c", c);
			else
				lf_line_add(&l, "\\x%02x", c);
		}
		lf_line_add(&l, "\"");
		break;
	case LF_EV_HASH:
		lf_line_add(&l, "hash");
		if (ev->hash.flags & LF_HASH_REGS)
			lf_line_add(&l, " regs=%016" PRIx64, ev->hash.regs);
		if (ev->hash.flags & LF_HASH_MEM)
			lf_line_add(&l, " mem=%016" PRIx64, ev->hash.mem);
		if (ev->hash.flags & LF_HASH_OUT)
			lf_line_add(&l, " out=%016" PRIx64 "/%" PRIu64, ev->hash.out,
				    ev->hash.out_bytes);
		break;
	case LF_EV_END:
		lf_line_add(&l, "end reason=%" PRIu32 " value=%" PRIu64, ev->end.reason,
			    ev->end.value);
		break;
	case LF_EV_LANDMARK:
		lf_line_add(&l,
			    "landmark rip=%#" PRIx64 " gprs=%016" PRIx64 " regs=%016" PRIx64
			    " mem=%016" PRIx64 " pages=%" PRIu32,
			    ev->landmark.rip, ev->landmark.gprs, ev->landmark.regs, ev->landmark.mem,
			    ev->landmark.pages);
		break;
	default:
		lf_line_add(&l, "unknown kind %u", (unsigned)ev->kind);
		break;
	}
	/* A line that did not fit says so, so nobody mistakes it for the whole event. */
	if (l.cut && cap >= 4)
		memcpy(buf + cap - 4, "...", 4);
}
