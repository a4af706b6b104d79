/*
 * timeline.c: checkpoints, going back, and searching backwards (docs/time-travel.md).
 *
 * Memory is a version list per guest page, (checkpoint sequence, contents); a page's
 * contents at checkpoint k is its latest version at or before k, and a page without one
 * is zero. Checkpoint 0 versions every non-zero page; each later one the pages written
 * in the interval that ends at it. The current RAM derives from checkpoint `base`: it
 * differs from it only in pages the backend reports written since (vmm_machine_track).
 */
#include "timeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096u
#define SLICE (16ull << 20) /* instructions between two looks at `interrupted` */

struct ver {
	uint64_t seq;
	uint8_t *data; /* NULL: a zero page */
};

struct pvers {
	struct ver *v;
	uint32_t n, cap;
};

struct ck {
	uint64_t seq;
	vmm_pos_t pos;
	uint64_t cr3;    /* the CPU's CR3 here (reverse searches compare mappings) */
	void *snap;
	size_t snap_len;
	struct rpl_mark mark;
	uint32_t *pages; /* written in the interval that ends here, sorted */
	size_t npages;
	struct vmm_code_range *code; /* the blocks run in that interval, sorted */
	size_t ncode;
};

struct tl {
	struct tl_config cfg;
	struct vmm_machine *m;
	uint8_t *ram;
	uint32_t npg;
	struct pvers *pv;
	struct ck *ck;
	unsigned nck, capck;
	uint64_t seq_next;
	uint64_t every;  /* checkpoint spacing now: ck_every, doubled by each thinning */
	unsigned base;
	uint64_t *dirty; /* scratch bitmap over RAM pages */
	uint64_t bytes, pages, thinned, reexec, skipped;
	vmm_pos_t hwm;
	bool ended;
	vmm_pos_t end_pos;
	struct vmm_stop end_stop;
	char end_why[640];
	uint64_t *bp;
	unsigned nbp;
	struct vmm_watch *wp;
	unsigned nwp;
	uint64_t wbytes_len;
	uint8_t *wbefore; /* watched bytes before a trapped access */
};

/* A debug stop found while searching backwards. */
struct hit {
	bool found;
	enum tl_stop_kind kind;
	vmm_pos_t pos;
	uint64_t addr;
	enum vmm_access access;
};

static bool replaying(const struct tl *t)
{
	return t->cfg.rpl != NULL;
}

static bool zero_page(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (unsigned i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

static const uint8_t *version_at(const struct pvers *pv, uint64_t seq)
{
	uint32_t lo = 0, hi = pv->n; /* first version with seq > wanted */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (pv->v[mid].seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? pv->v[lo - 1].data : NULL;
}

static int add_version(struct tl *t, uint32_t pg, uint64_t seq)
{
	struct pvers *pv = &t->pv[pg];
	const uint8_t *src = t->ram + (uint64_t)pg * PAGE;
	uint8_t *data = NULL;
	if (!zero_page(src)) {
		if (!(data = malloc(PAGE)))
			return -VMM_ENOMEM;
		memcpy(data, src, PAGE);
		t->bytes += PAGE;
	}
	if (pv->n == pv->cap) {
		uint32_t cap = pv->cap ? 2 * pv->cap : 2;
		struct ver *v = realloc(pv->v, cap * sizeof(*v));
		if (!v) {
			free(data);
			return -VMM_ENOMEM;
		}
		pv->v = v;
		pv->cap = cap;
	}
	pv->v[pv->n++] = (struct ver){seq, data};
	t->pages++;
	return 0;
}

/* Last checkpoint at or before pos (there is always checkpoint 0 at the start). */
static unsigned ck_le(const struct tl *t, vmm_pos_t pos)
{
	unsigned lo = 0, hi = t->nck;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (t->ck[mid].pos <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : 0;
}

/* The pages written and the blocks run since the last call, into t->dirty (cleared
 * first) and *code. */
static int track(struct tl *t, struct vmm_code_range **code, size_t *ncode)
{
	memset(t->dirty, 0, ((size_t)t->npg + 63) / 64 * 8);
	struct vmm_track tr = {.dirty = t->dirty};
	int rc = vmm_machine_track(t->m, &tr);
	if (rc < 0)
		return rc;
	if (code) {
		*code = tr.code;
		*ncode = tr.ncode;
	} else {
		free(tr.code);
	}
	return 0;
}

static void ck_free(struct ck *c)
{
	free(c->snap);
	free(c->pages);
	free(c->code);
}

static bool u32_less(uint32_t x, uint32_t y)
{
	return x < y;
}

static bool range_less(struct vmm_code_range x, struct vmm_code_range y)
{
	return x.addr < y.addr || (x.addr == y.addr && x.end < y.end);
}

/* Union of two arrays sorted by less(), each element once, into a new array. */
#define MERGE_FN(name, type, less)                                                         \
	static type *name(const type *a, size_t na, const type *b, size_t nb, size_t *n)   \
	{                                                                                  \
		type *out = malloc((na + nb ? na + nb : 1) * sizeof(type));                \
		size_t i = 0, j = 0, k = 0;                                                \
		if (!out)                                                                  \
			return NULL;                                                       \
		while (i < na || j < nb) {                                                 \
			if (j == nb || (i < na && less(a[i], b[j])))                       \
				out[k++] = a[i++];                                         \
			else if (i == na || less(b[j], a[i]))                              \
				out[k++] = b[j++];                                         \
			else                                                               \
				out[k++] = a[i++], j++;                                    \
		}                                                                          \
		*n = k;                                                                    \
		return out;                                                                \
	}
MERGE_FN(merge_u32, uint32_t, u32_less)
MERGE_FN(merge_code, struct vmm_code_range, range_less)

/* Did a block of code[0..n) (sorted by address) hold the instruction at x? */
static bool ran_at(const struct vmm_code_range *code, size_t n, uint64_t x)
{
	size_t lo = 0, hi = n; /* the first block that starts after x */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (code[mid].addr <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && code[i].addr + VMM_BLOCK_MAX > x;)
		if (x < code[i].end)
			return true;
	return false;
}

/* Is x in the sorted array a[0..n)? */
static bool has_u32(const uint32_t *a, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == x;
}

/* Index of the checkpoint with sequence number seq (it exists). */
static unsigned ck_of_seq(const struct tl *t, uint64_t seq)
{
	unsigned lo = 0, hi = t->nck - 1;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (t->ck[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Keep the checkpoints at multiples of `every`, the first, the last and the base; drop
 * the others. A dropped checkpoint's interval joins the next kept one's (the union of
 * their written pages and blocks run). Each page version is relabelled with the kept
 * checkpoint it now belongs to, the first kept one at or after it; of the versions that
 * fall together only the latest stays, which is that page's contents there. Contents at
 * a kept checkpoint are unchanged: the latest version at or before it is the same one.
 */
static int thin_to(struct tl *t, uint64_t every)
{
	unsigned n = t->nck, *owner = malloc(n * sizeof(*owner));
	if (!owner)
		return -VMM_ENOMEM;
	for (unsigned i = n; i-- > 0;) {
		bool keep = i == 0 || i == n - 1 || i == t->base || t->ck[i].pos % every == 0;
		owner[i] = keep ? i : owner[i + 1];
	}
	for (unsigned i = 0; i < n; i++) {
		struct ck *c = &t->ck[i], *o = &t->ck[owner[i]];
		if (owner[i] == i)
			continue;
		size_t np, nc;
		uint32_t *pages = merge_u32(c->pages, c->npages, o->pages, o->npages, &np);
		struct vmm_code_range *code = merge_code(c->code, c->ncode, o->code, o->ncode, &nc);
		if (!pages || !code) {
			free(pages);
			free(code);
			free(owner);
			return -VMM_ENOMEM;
		}
		free(o->pages);
		free(o->code);
		o->pages = pages;
		o->npages = np;
		o->code = code;
		o->ncode = nc;
	}
	uint64_t data = 0;
	for (uint32_t pg = 0; pg < t->npg; pg++) {
		struct pvers *pv = &t->pv[pg];
		uint32_t k = 0;
		for (uint32_t v = 0; v < pv->n; v++) {
			uint64_t seq = t->ck[owner[ck_of_seq(t, pv->v[v].seq)]].seq;
			if (k && pv->v[k - 1].seq == seq) {
				free(pv->v[k - 1].data); /* a later version for the same checkpoint */
				k--;
				t->pages--;
			}
			pv->v[k] = pv->v[v];
			pv->v[k++].seq = seq;
		}
		pv->n = k;
		for (uint32_t v = 0; v < k; v++)
			data += pv->v[v].data ? PAGE : 0;
	}
	unsigned k = 0;
	t->bytes = data;
	for (unsigned i = 0; i < n; i++) {
		if (owner[i] != i) {
			ck_free(&t->ck[i]);
			t->thinned++;
			continue;
		}
		if (i == t->base)
			t->base = k;
		t->ck[k] = t->ck[i];
		t->bytes += t->ck[k].snap_len + t->ck[k].npages * 4 + t->ck[k].ncode * sizeof(*t->ck[k].code);
		k++;
	}
	t->nck = k;
	free(owner);
	return 0;
}

/*
 * Over the bound: double the spacing and keep only the checkpoints at its multiples, until
 * under it. Spacing stays uniform over the whole recording, so the instructions a step
 * back re-executes are bounded by the same spacing everywhere, old or recent.
 */
static int thin(struct tl *t)
{
	while (t->bytes > t->cfg.ck_mem && t->every <= UINT64_MAX / 2) {
		unsigned fixed = 1 + (t->nck > 1) + (t->base != 0 && t->base != t->nck - 1);
		if (t->nck <= fixed)
			break; /* only the first, the last and the base are left */
		t->every *= 2;
		int rc = thin_to(t, t->every);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int take_checkpoint(struct tl *t, bool first)
{
	struct vmm_code_range *code = NULL;
	size_t ncode = 0;
	int rc = track(t, &code, &ncode);
	if (rc < 0)
		return rc;
	if (t->nck == t->capck) {
		unsigned cap = t->capck ? 2 * t->capck : 64;
		struct ck *n = realloc(t->ck, cap * sizeof(*n));
		if (!n) {
			free(code);
			return -VMM_ENOMEM;
		}
		t->ck = n;
		t->capck = cap;
	}
	struct ck c = {.seq = t->seq_next++, .pos = vmm_machine_insns(t->m), .code = code,
		       .ncode = ncode};
	size_t n = 0;
	for (uint32_t pg = 0; pg < t->npg; pg++)
		if (first ? !zero_page(t->ram + (uint64_t)pg * PAGE)
			  : (t->dirty[pg / 64] >> (pg % 64)) & 1)
			n++;
	c.pages = malloc((n ? n : 1) * sizeof(*c.pages));
	if (!c.pages) {
		free(code);
		return -VMM_ENOMEM;
	}
	for (uint32_t pg = 0; pg < t->npg; pg++) {
		if (first ? !zero_page(t->ram + (uint64_t)pg * PAGE)
			  : (t->dirty[pg / 64] >> (pg % 64)) & 1) {
			c.pages[c.npages++] = pg;
			if ((rc = add_version(t, pg, c.seq)) < 0) {
				ck_free(&c);
				return rc;
			}
		}
	}
	struct vmm_regs r;
	if (vmm_machine_backend(t->m)->get_regs(vmm_machine_cpu(t->m), &r) == 0)
		c.cr3 = r.cr3;
	if ((rc = vmm_machine_snapshot(t->m, &c.snap, &c.snap_len)) < 0) {
		ck_free(&c);
		return rc;
	}
	rpl_mark(t->cfg.rpl, &c.mark);
	t->bytes += c.snap_len + c.npages * 4 + c.ncode * sizeof(*c.code);
	t->ck[t->nck++] = c;
	t->base = t->nck - 1;
	return thin(t);
}

/* Restore checkpoint k (the machine, its RAM and the replay's place in the log). */
static int restore(struct tl *t, unsigned k)
{
	int rc = track(t, NULL, NULL); /* pages written since base */
	if (rc < 0)
		return rc;
	unsigned lo = k < t->base ? k : t->base, hi = k < t->base ? t->base : k;
	for (unsigned i = lo + 1; i <= hi; i++)
		for (size_t j = 0; j < t->ck[i].npages; j++) {
			uint32_t pg = t->ck[i].pages[j];
			t->dirty[pg / 64] |= 1ull << (pg % 64);
		}
	uint64_t seq = t->ck[k].seq;
	for (uint32_t w = 0; w < (t->npg + 63) / 64; w++) {
		uint64_t bits = t->dirty[w];
		while (bits) {
			uint32_t pg = w * 64 + (uint32_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			const uint8_t *v = version_at(&t->pv[pg], seq);
			uint8_t *dst = t->ram + (uint64_t)pg * PAGE;
			if (v)
				memcpy(dst, v, PAGE);
			else
				memset(dst, 0, PAGE);
		}
	}
	if ((rc = vmm_machine_restore(t->m, t->ck[k].snap, t->ck[k].snap_len)) < 0)
		return rc;
	if ((rc = rpl_seek(t->cfg.rpl, &t->ck[k].mark)) < 0)
		return rc;
	t->base = k;
	return track(t, NULL, NULL); /* start afresh from checkpoint k */
}

/* At a multiple of the spacing beyond the last checkpoint: take one; at an existing
 * checkpoint: the RAM is that checkpoint's again, so it becomes the base. */
static int at_position(struct tl *t)
{
	if (!replaying(t))
		return 0;
	vmm_pos_t pos = vmm_machine_insns(t->m);
	const struct ck *last = &t->ck[t->nck - 1];
	if (pos > last->pos) {
		if (pos % t->every == 0)
			return take_checkpoint(t, false);
		return 0;
	}
	unsigned j = ck_le(t, pos);
	if (t->ck[j].pos == pos && j != t->base) {
		int rc = track(t, NULL, NULL);
		if (rc < 0)
			return rc;
		t->base = j;
	}
	return 0;
}

static vmm_pos_t next_boundary(const struct tl *t, vmm_pos_t pos)
{
	if (!replaying(t))
		return UINT64_MAX;
	if (pos >= t->ck[t->nck - 1].pos)
		return (pos / t->every + 1) * t->every;
	return t->ck[ck_le(t, pos) + 1].pos;
}

static int arm(struct tl *t, bool armed, bool wp_only, vmm_pos_t pass)
{
	struct vmm_debug d = {.pass_pos = pass};
	if (armed) {
		d.bp = wp_only ? NULL : t->bp;
		d.nbp = wp_only ? 0 : t->nbp;
		d.wp = t->wp;
		d.nwp = t->nwp;
	}
	if (!armed && !t->nbp && !t->nwp)
		return 0;
	return vmm_machine_set_debug(t->m, &d);
}

static int read_watched(struct tl *t, uint8_t *buf)
{
	const struct vmm_cpu_ops *ops = vmm_machine_backend(t->m);
	for (unsigned i = 0; i < t->nwp; i++) {
		if (ops->read_virt(vmm_machine_cpu(t->m), t->wp[i].addr, buf, t->wp[i].len) < 0)
			memset(buf, 0, t->wp[i].len);
		buf += t->wp[i].len;
	}
	return 0;
}

/* After the trapped instruction ran: did it hit a watchpoint? */
static bool watch_hit(struct tl *t, const struct vmm_stop *vs, struct hit *h)
{
	uint8_t *now = t->wbefore + t->wbytes_len;
	read_watched(t, now);
	uint64_t off = 0;
	for (unsigned i = 0; i < t->nwp; i++) {
		const struct vmm_watch *w = &t->wp[i];
		bool in = vs->addr < w->addr + w->len && vs->addr + 8 > w->addr;
		bool hit = false;
		if (vs->access == VMM_ACCESS_WRITE && (w->access & VMM_ACCESS_WRITE))
			hit = memcmp(t->wbefore + off, now + off, w->len) != 0 ||
			      (vs->addr >= w->addr && vs->addr < w->addr + w->len);
		else if (vs->access == VMM_ACCESS_READ && (w->access & VMM_ACCESS_READ))
			hit = in;
		off += w->len;
		if (hit) {
			h->found = true;
			h->kind = TL_STOP_WATCH;
			h->addr = w->addr;
			h->access = vs->access;
			return true;
		}
	}
	return false;
}

static int history_end(struct tl *t, const struct vmm_stop *vs, const char *why,
		       struct tl_stop *st)
{
	t->ended = true;
	t->end_pos = vmm_machine_insns(t->m);
	if (vs)
		t->end_stop = *vs;
	else
		memset(&t->end_stop, 0, sizeof(t->end_stop));
	if (why != t->end_why)
		snprintf(t->end_why, sizeof(t->end_why), "%s", why);
	st->kind = TL_STOP_HISTORY_END;
	st->pos = t->end_pos;
	st->end = t->end_stop;
	snprintf(st->why, sizeof(st->why), "%s", t->end_why);
	return 0;
}

/*
 * The one forward engine. armed: breakpoints and watchpoints stop it; exempt: not at the
 * starting position (resuming from a stop there). collect != NULL: do not stop at hits,
 * remember the last one (searching backwards).
 */
static int run_forward(struct tl *t, vmm_pos_t limit, bool armed, bool exempt,
		       struct hit *collect, struct tl_stop *st)
{
	vmm_pos_t pos = vmm_machine_insns(t->m);
	vmm_pos_t pass = exempt ? pos : UINT64_MAX;
	bool watch_step = false;
	/* Exempt passes a breakpoint here, but the instruction here is watched as any other
	 * (a watchpoint reports the access after it): it runs first alone, without breakpoints. */
	bool first = exempt && armed && t->nwp;
	struct vmm_stop wstop = {0};
	memset(st, 0, sizeof(*st));
	for (;;) {
		pos = vmm_machine_insns(t->m);
		if (pos > t->hwm)
			t->hwm = pos;
		int rc = at_position(t);
		if (rc < 0)
			return rc;
		if (!watch_step) {
			if (pos >= limit) {
				st->kind = TL_STOP_DONE;
				st->pos = pos;
				return 0;
			}
			if (t->ended && pos >= t->end_pos) {
				st->kind = TL_STOP_HISTORY_END;
				st->pos = pos;
				st->end = t->end_stop;
				snprintf(st->why, sizeof(st->why), "%s", t->end_why);
				return 0;
			}
			if (t->cfg.interrupted && t->cfg.interrupted(t->cfg.opaque)) {
				st->kind = TL_STOP_INTERRUPTED;
				st->pos = pos;
				return 0;
			}
		}
		vmm_pos_t until = watch_step || first ? pos + 1 : limit;
		vmm_pos_t nb = next_boundary(t, pos);
		if (nb < until)
			until = nb;
		if (until - pos > SLICE)
			until = pos + SLICE;
		if ((rc = arm(t, armed, first, first ? UINT64_MAX : pass)) < 0)
			return rc;
		first = false;
		struct vmm_stop vs;
		rc = vmm_machine_run_until_insn(t->m, until, &vs);
		t->reexec += vmm_machine_insns(t->m) < t->hwm ? vmm_machine_insns(t->m) - pos : 0;
		if (rc < 0) {
			struct rpl_divergence d;
			char why[640];
			if (t->cfg.rpl && rpl_diverged(t->cfg.rpl, &d))
				snprintf(why, sizeof(why),
					 "the replay diverged at position %" PRIu64 ": expected %s; "
					 "observed %s",
					 d.pos, d.expected, d.observed);
			else
				snprintf(why, sizeof(why), "%s",
					 *vmm_errdetail() ? vmm_errdetail() : vmm_strerror(-rc));
			return history_end(t, NULL, why, st);
		}
		pos = vmm_machine_insns(t->m);
		switch (vs.reason) {
		case VMM_STOP_LIMIT:
			if (watch_step) {
				watch_step = false;
				struct hit h = {0};
				if (watch_hit(t, &wstop, &h)) {
					h.pos = pos - 1;
					if (collect) {
						*collect = h;
					} else {
						if (pos > t->hwm)
							t->hwm = pos;
						st->kind = TL_STOP_WATCH;
						st->pos = pos;
						st->addr = h.addr;
						st->access = h.access;
						return 0;
					}
				}
			}
			pass = UINT64_MAX;
			continue;
		case VMM_STOP_BREAK:
			if (collect) {
				*collect = (struct hit){.found = true, .kind = TL_STOP_BREAK,
							.pos = pos};
				pass = pos;
				continue;
			}
			st->kind = TL_STOP_BREAK;
			st->pos = pos;
			return 0;
		case VMM_STOP_WATCH:
			read_watched(t, t->wbefore);
			wstop = vs;
			watch_step = true;
			pass = pos;
			continue;
		case VMM_STOP_DEBUG_EXIT:
		case VMM_STOP_RESET:
		case VMM_STOP_TRIPLE_FAULT:
		case VMM_STOP_HALTED:
		case VMM_STOP_USER:
			if (pos > t->hwm)
				t->hwm = pos;
			rc = history_end(t, &vs, "the recording ends here", st);
			if (pos >= limit)
				st->kind = TL_STOP_DONE; /* got where it was going: it ends there */
			return rc;
		}
	}
}

int tl_create(const struct tl_config *cfg, struct tl **out)
{
	struct tl *t = calloc(1, sizeof(*t));
	if (!t)
		return -VMM_ENOMEM;
	t->cfg = *cfg;
	if (!t->cfg.ck_every)
		t->cfg.ck_every = TL_CK_EVERY_DEFAULT;
	if (!t->cfg.ck_mem)
		t->cfg.ck_mem = TL_CK_MEM_DEFAULT;
	t->every = t->cfg.ck_every;
	t->m = cfg->m;
	t->ram = vmm_machine_ram(t->m);
	t->npg = (uint32_t)(vmm_machine_ram_size(t->m) / PAGE);
	t->hwm = vmm_machine_insns(t->m);
	if (replaying(t)) {
		t->pv = calloc(t->npg, sizeof(*t->pv));
		t->dirty = calloc(((size_t)t->npg + 63) / 64, 8);
		int rc;
		if (!t->pv || !t->dirty) {
			tl_free(t);
			return -VMM_ENOMEM;
		}
		if ((rc = track(t, NULL, NULL)) < 0 || (rc = take_checkpoint(t, true)) < 0) {
			tl_free(t);
			return rc;
		}
	}
	*out = t;
	return 0;
}

void tl_free(struct tl *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->nck; i++)
		ck_free(&t->ck[i]);
	free(t->ck);
	if (t->pv)
		for (uint32_t pg = 0; pg < t->npg; pg++) {
			for (uint32_t i = 0; i < t->pv[pg].n; i++)
				free(t->pv[pg].v[i].data);
			free(t->pv[pg].v);
		}
	free(t->pv);
	free(t->dirty);
	free(t->bp);
	free(t->wp);
	free(t->wbefore);
	free(t);
}

vmm_pos_t tl_pos(const struct tl *t)
{
	return vmm_machine_insns(t->m);
}

vmm_pos_t tl_high_water(const struct tl *t)
{
	return t->hwm;
}

void tl_set_interrupt(struct tl *t, bool (*fn)(void *opaque), void *opaque)
{
	t->cfg.interrupted = fn;
	t->cfg.opaque = opaque;
}

bool tl_can_reverse(const struct tl *t)
{
	return replaying(t);
}

int tl_set_debug(struct tl *t, const uint64_t *bp, unsigned nbp, const struct vmm_watch *wp,
		 unsigned nwp)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < nwp; i++) {
		if (!wp[i].len || wp[i].len > 4096)
			return vmm_fail(VMM_EINVAL, "a watchpoint covers 1 to 4096 bytes");
		total += wp[i].len;
	}
	uint64_t *b = malloc((nbp ? nbp : 1) * sizeof(*b));
	struct vmm_watch *w = malloc((nwp ? nwp : 1) * sizeof(*w));
	uint8_t *wb = malloc(2 * total + 1);
	if (!b || !w || !wb) {
		free(b);
		free(w);
		free(wb);
		return -VMM_ENOMEM;
	}
	if (nbp)
		memcpy(b, bp, nbp * sizeof(*b));
	if (nwp)
		memcpy(w, wp, nwp * sizeof(*w));
	bool had = t->nbp || t->nwp;
	free(t->bp);
	free(t->wp);
	free(t->wbefore);
	t->bp = b;
	t->nbp = nbp;
	t->wp = w;
	t->nwp = nwp;
	t->wbefore = wb;
	t->wbytes_len = total;
	if (had && !nbp && !nwp) {
		struct vmm_debug none = {.pass_pos = UINT64_MAX};
		return vmm_machine_set_debug(t->m, &none);
	}
	return 0;
}

int tl_forward(struct tl *t, vmm_pos_t limit, struct tl_stop *st)
{
	return run_forward(t, limit, true, true, NULL, st);
}

int tl_step(struct tl *t, struct tl_stop *st)
{
	return run_forward(t, vmm_machine_insns(t->m) + 1, false, true, NULL, st);
}

int tl_goto(struct tl *t, vmm_pos_t target, struct tl_stop *st)
{
	vmm_pos_t pos = vmm_machine_insns(t->m);
	if (target < pos) {
		if (!replaying(t))
			return vmm_fail(VMM_EINVAL, "a live run cannot go back");
		int rc = restore(t, ck_le(t, target));
		if (rc < 0)
			return rc;
	}
	int rc = run_forward(t, target, false, false, NULL, st);
	if (rc < 0)
		return rc;
	if (st->kind == TL_STOP_DONE && target == 0 && replaying(t))
		st->kind = TL_STOP_HISTORY_BEGIN;
	return 0;
}

int tl_reverse_step(struct tl *t, struct tl_stop *st)
{
	vmm_pos_t pos = vmm_machine_insns(t->m);
	if (pos == 0) {
		memset(st, 0, sizeof(*st));
		st->kind = TL_STOP_HISTORY_BEGIN;
		return 0;
	}
	return tl_goto(t, pos - 1, st);
}

/* A watched page as the current page tables map it, taken before a reverse search. */
struct wmap {
	bool ok;                   /* mapped, and the backend can say where */
	uint32_t pg;               /* the physical page */
	uint64_t cr3;
	unsigned nt;
	uint64_t te[VMM_WALK_MAX]; /* the page-table entries the walk read */
	uint64_t tv[VMM_WALK_MAX]; /* and their values now */
};

#define PTE_AD 0x60ull /* accessed and dirty: they change no mapping */

/* Up to 8 bytes of guest-physical memory as it was at checkpoint c. */
static uint64_t ck_read(const struct tl *t, const struct ck *c, uint64_t pa)
{
	uint64_t v = 0;
	uint32_t off = (uint32_t)(pa % PAGE), n = PAGE - off < 8 ? PAGE - off : 8;
	const uint8_t *p = pa / PAGE < t->npg ? version_at(&t->pv[pa / PAGE], c->seq) : NULL;
	if (p)
		memcpy(&v, p + off, n);
	return v;
}

/* The watched pages and how they are mapped now; *n of them. NULL: out of memory. */
static struct wmap *watch_maps(struct tl *t, unsigned *n)
{
	const struct vmm_cpu_ops *ops = vmm_machine_backend(t->m);
	struct vmm_cpu *cpu = vmm_machine_cpu(t->m);
	struct vmm_regs r;
	unsigned cap = 0;
	for (unsigned i = 0; i < t->nwp; i++)
		cap += 2; /* at most 4096 bytes: two pages */
	struct wmap *w = calloc(cap ? cap : 1, sizeof(*w));
	if (!w)
		return NULL;
	bool regs = ops->get_regs(cpu, &r) == 0;
	*n = 0;
	for (unsigned i = 0; i < t->nwp; i++)
		for (uint64_t va = t->wp[i].addr & ~(uint64_t)(PAGE - 1);
		     va < t->wp[i].addr + t->wp[i].len; va += PAGE) {
			struct wmap *m = &w[(*n)++];
			uint64_t pa;
			m->ok = regs && ops->translate &&
				ops->translate(cpu, va, &pa, m->te, &m->nt) == 0;
			if (!m->ok)
				continue;
			m->pg = (uint32_t)(pa / PAGE);
			m->cr3 = r.cr3;
			for (unsigned k = 0; k < m->nt; k++)
				if (m->te[k] / PAGE >= t->npg)
					m->ok = false;
			for (unsigned k = 0; m->ok && k < m->nt; k++)
				memcpy(&m->tv[k], t->ram + m->te[k],
				       PAGE - m->te[k] % PAGE < 8 ? PAGE - m->te[k] % PAGE : 8);
		}
	return w;
}

/*
 * Can the interval from checkpoint a to the next one, b, hold no debug stop?
 * Breakpoints: no block it ran holds their (virtual) address. Write watchpoints: it wrote
 * none of the watched physical pages, where "the watched physical page" is the one the
 * current page tables give; that is what the interval saw only if its CR3 at both ends
 * was today's, and the page-table entries on the way held today's values (but for the
 * accessed and dirty bits) and were not written in the interval. Otherwise it is run.
 * Not seen: a write to the same virtual address by another address space switched to
 * and back inside the interval (docs/time-travel.md).
 */
static bool interval_clean(struct tl *t, const struct ck *a, const struct ck *b,
			   const struct wmap *wm, unsigned nwm)
{
	for (unsigned i = 0; i < t->nbp; i++)
		if (ran_at(b->code, b->ncode, t->bp[i]))
			return false;
	for (unsigned i = 0; i < t->nwp; i++)
		if (t->wp[i].access & VMM_ACCESS_READ)
			return false; /* reads leave no trace in a page difference */
	for (unsigned i = 0; i < nwm; i++) {
		const struct wmap *m = &wm[i];
		if (!m->ok || a->cr3 != m->cr3 || b->cr3 != m->cr3 ||
		    has_u32(b->pages, b->npages, m->pg))
			return false;
		for (unsigned k = 0; k < m->nt; k++)
			if (has_u32(b->pages, b->npages, (uint32_t)(m->te[k] / PAGE)) ||
			    ((ck_read(t, b, m->te[k]) ^ m->tv[k]) & ~PTE_AD))
				return false;
	}
	return true;
}

int tl_reverse_continue(struct tl *t, struct tl_stop *st)
{
	if (!replaying(t))
		return vmm_fail(VMM_EINVAL, "a live run cannot go back");
	vmm_pos_t hi = vmm_machine_insns(t->m);
	if (hi == 0)
		return tl_reverse_step(t, st);
	unsigned nwm = 0;
	struct wmap *wm = watch_maps(t, &nwm); /* before any restore changes RAM */
	if (!wm)
		return -VMM_ENOMEM;
	unsigned j = ck_le(t, hi - 1);
	int rc = 0;
	for (;;) {
		bool ends_at_ck = j + 1 < t->nck && t->ck[j + 1].pos == hi;
		if (ends_at_ck && interval_clean(t, &t->ck[j], &t->ck[j + 1], wm, nwm)) {
			t->skipped++;
		} else {
			if ((rc = restore(t, j)) < 0)
				goto out;
			struct hit h = {0};
			if ((rc = run_forward(t, hi, true, false, &h, st)) < 0)
				goto out;
			if (st->kind == TL_STOP_INTERRUPTED || st->kind == TL_STOP_HISTORY_END)
				goto out;
			if (h.found) {
				if ((rc = tl_goto(t, h.pos, st)) < 0 || st->kind != TL_STOP_DONE)
					goto out;
				st->kind = h.kind;
				st->addr = h.addr;
				st->access = h.access;
				goto out;
			}
		}
		if (j == 0)
			break;
		hi = t->ck[j].pos;
		j--;
	}
	if ((rc = tl_goto(t, 0, st)) >= 0)
		st->kind = TL_STOP_HISTORY_BEGIN;
out:
	free(wm);
	return rc < 0 ? rc : 0;
}

void tl_stats(const struct tl *t, struct tl_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->checkpoints = t->nck;
	s->bytes = t->bytes;
	s->pages = t->pages;
	s->bound = t->cfg.ck_mem;
	s->every = t->every;
	if (t->nck) {
		s->first_pos = t->ck[0].pos;
		s->last_pos = t->ck[t->nck - 1].pos;
	}
	s->thinned = t->thinned;
	s->reexecuted = t->reexec;
	s->skipped = t->skipped;
}

bool tl_checkpoint_pos(const struct tl *t, unsigned i, vmm_pos_t *pos)
{
	if (i >= t->nck)
		return false;
	*pos = t->ck[i].pos;
	return true;
}
