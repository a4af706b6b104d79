/* unit */
/*
 * test_timeline.c: debugger/timeline.c on its own, without gdb, over real recordings.
 *
 * Each test records a guest here with the record library (live input on the host clock,
 * so the race guest's interrupts land differently in every recording; the echo guest gets
 * its input byte by byte from a thread) into a log in memory, cut into many small chunks
 * so that going back seeks across them. The timeline then runs a replay of that log, and
 * every state it reaches is compared with a straight replay (a fresh machine run forward
 * with vmm_machine_run_until, no timeline, no checkpoints) at the same position: every
 * register (general, segment, control, x87/SSE), the machine's saved state without RAM
 * (every device, the vCPU, the run loop), a hash of each page of RAM, and the replay's
 * place in its log. Covered: goto in random, backward and repeated orders around
 * checkpoint boundaries and input events; the same with a memory bound small enough that
 * checkpoints are thinned; going back across code the guest rewrote; forward steps
 * retraced by reverse steps; both ends of the recording; an interrupted run;
 * reverse-continue (and continue) to breakpoints and to write and read watchpoints,
 * against a forward scan that records every hit without the timeline (for reads and for
 * writes beside the watched bytes, with breakpoints on the instructions that access them).
 *
 * TL_SEED=N repeats the random choices of a run (it is logged); TL_SAVE=DIR keeps each
 * recording in DIR, and TL_LOAD=FILE runs a test (choose one with --filter) on one of them
 * instead of a new recording.
 */
#include "debugger/timeline.h"
#include "logfmt/log.h"
#include "record/record.h"
#include "replay/replay.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define RAM	(16u << 20)
#define NPAGES	(RAM / 4096)
#define TIMEOUT 60

/* ---- recordings ------------------------------------------------------------------------ */

struct log {
	void *elf;
	size_t elf_len;
	struct lf_io_mem mem; /* the log: mem.data[0..mem.len) */
	struct vmm_stop stop; /* how the recorded run ended (stop.pos: its last position) */
	char out[8192];
	size_t outlen;
};

static void rec_out(void *opaque, uint8_t b)
{
	struct log *lg = opaque;
	if (lg->outlen < sizeof(lg->out) - 1)
		lg->out[lg->outlen++] = (char)b;
}

struct feeder {
	int fd;
	const char *input;
	int gap_ms;
};

/* Write the input a byte at a time with a pause between (so each is its own event). */
static void *feed_input(void *opaque)
{
	struct feeder *f = opaque;
	for (const char *p = f->input; *p; p++) {
		struct timespec ts = {0, f->gap_ms * 1000000L};
		nanosleep(&ts, NULL);
		if (write(f->fd, p, 1) != 1)
			break;
	}
	close(f->fd);
	return NULL;
}

/*
 * Record guest with cmdline into lg (host clock; input, if any, fed byte by byte). State
 * hashes every hash_every instructions, with memory every 20 ms: every replay below checks
 * them, so a restore that went wrong shows as a divergence too.
 */
static void record_live(const char *guest, const char *cmdline, const char *input, struct log *lg)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	memset(lg, 0, sizeof(*lg));
	snprintf(path, sizeof(path), "%s/guests/%s.elf", b && *b ? b : "build", guest);
	if (vmm_read_file(path, 64u << 20, &lg->elf, &lg->elf_len) < 0)
		cr_skip_test("%s: %s: run 'make all' to build the guests", path, vmm_errdetail());

	int pfd[2] = {-1, -1};
	pthread_t th;
	struct feeder fd = {.input = input, .gap_ms = 2};
	if (input) {
		cr_assert_eq(pipe(pfd), 0);
		fd.fd = pfd[1];
	}
	struct vmm_live_config lc = {.in_fd = pfd[0], .out = rec_out, .out_opaque = lg};
	struct vmm_live *live;
	cr_assert_eq(vmm_live_create(&lc, &live), 0, "%s", vmm_errdetail());

	struct lf_io io;
	lf_io_mem_writer(&io, &lg->mem);
	char config[160];
	snprintf(config, sizeof(config),
		 "machine=rewind-pc-2\nbackend=emu\npositions=instructions\nmem=%u\nclock=real\n",
		 RAM);
	struct lf_header h = {.tool = "test_timeline",
			      .config = config,
			      .cmdline = cmdline,
			      .image_path = path,
			      .image_hash = lf_hash64(lg->elf, lg->elf_len),
			      .image_len = lg->elf_len,
			      .image = lg->elf};
	struct lf_writer_config wc = {.codec = LF_CODEC_LZ4, .chunk_events = 8};
	struct lf_writer *w;
	cr_assert_eq(lf_writer_open(&io, &h, &wc, &w), 0, "%s", lf_errdetail());
	struct rec_config rcfg = {.inner = &vmm_live_input_ops,
				  .inner_opaque = live,
				  .writer = w,
				  .hash_every = 20000,
				  .mem_hash_ms = 20};
	struct rec *rec;
	cr_assert_eq(rec_create(&rcfg, &rec), 0);

	struct vmm_config cfg = {.mem_size = RAM,
				 .backend = &emu_cpu_ops,
				 .input = &rec_input_ops,
				 .input_opaque = rec,
				 .tap = &rec_input_tap,
				 .tap_opaque = rec};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_load(m, lg->elf, lg->elf_len, cmdline), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_live_start(live, m), 0, "%s", vmm_errdetail());
	if (input)
		cr_assert_eq(pthread_create(&th, NULL, feed_input, &fd), 0);
	cr_assert_eq(vmm_machine_run(m, &lg->stop), 0, "%s", vmm_errdetail());
	cr_assert_eq(lg->stop.reason, VMM_STOP_DEBUG_EXIT, "%s stopped with %d:\n%s", guest,
		     lg->stop.reason, lg->out);
	cr_assert_eq(rec_finish(rec, m, &lg->stop), 0, "%s", vmm_errdetail());
	if (input) {
		pthread_join(th, NULL);
		close(pfd[0]);
	}
	lf_writer_free(w);
	rec_free(rec);
	vmm_live_destroy(live);
	vmm_machine_destroy(m);
	cr_log_info("%s %s: %" PRIu64 " instructions, %zu bytes of log", guest, cmdline,
		    (uint64_t)lg->stop.pos, lg->mem.len);
	/* TL_SAVE=DIR keeps the recordings (rewind replay and rewind debug open them). */
	const char *dir = getenv("TL_SAVE");
	if (dir && *dir) {
		static int nsaved;
		snprintf(path, sizeof(path), "%s/%s-%d-%d.rwl", dir, guest, (int)getpid(),
			 nsaved++);
		FILE *f = fopen(path, "wb");
		cr_assert(f && fwrite(lg->mem.data, 1, lg->mem.len, f) == lg->mem.len &&
			      fclose(f) == 0,
			  "%s: cannot write", path);
		cr_log_info("saved as %s", path);
	}
}

static void log_free(struct log *lg)
{
	free(lg->elf);
	free(lg->mem.data);
}

/* Positions of the timer and input events of the log (up to max). */
static size_t event_positions(const struct log *lg, vmm_pos_t *pos, size_t max)
{
	struct lf_io io;
	struct lf_io_mem mem;
	struct lf_reader *rd;
	struct lf_event ev;
	size_t n = 0;
	lf_io_mem_reader(&io, &mem, lg->mem.data, lg->mem.len);
	cr_assert_eq(lf_reader_open(&io, &rd), 0, "%s", lf_errdetail());
	while (n < max && lf_reader_next(rd, &ev) == 1)
		if (ev.kind == LF_EV_TIMER || ev.kind == LF_EV_INPUT)
			pos[n++] = ev.pos;
	lf_reader_free(rd);
	return n;
}

/* The address of a symbol of the guest ELF (a tiny .symtab lookup). */
static uint64_t symbol(const struct log *lg, const char *name)
{
	const uint8_t *e = lg->elf;
	const Elf64_Ehdr *eh = (const void *)e;
	const Elf64_Shdr *sh = (const void *)(e + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB)
			continue;
		const Elf64_Sym *sym = (const void *)(e + sh[i].sh_offset);
		const char *str = (const char *)e + sh[sh[i].sh_link].sh_offset;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++)
			if (!strcmp(str + sym[k].st_name, name))
				return sym[k].st_value;
	}
	cr_assert_fail("no symbol %s in the guest", name);
	return 0;
}

/* ---- replays ---------------------------------------------------------------------------- */

struct rp {
	struct lf_io io;
	struct lf_io_mem mem;
	struct lf_reader *rd;
	struct rpl *rpl;
	struct vmm_machine *m;
	uint64_t out_bytes;
};

static void rp_out(void *opaque, uint8_t b)
{
	(void)b;
	((struct rp *)opaque)->out_bytes++;
}

static void rp_open(const struct log *lg, struct rp *r)
{
	memset(r, 0, sizeof(*r));
	lf_io_mem_reader(&r->io, &r->mem, lg->mem.data, lg->mem.len);
	cr_assert_eq(lf_reader_open(&r->io, &r->rd), 0, "%s", lf_errdetail());
	struct rpl_config pc = {.reader = r->rd, .out = rp_out, .out_opaque = r};
	cr_assert_eq(rpl_create(&pc, &r->rpl), 0);
	struct vmm_config cfg = {.mem_size = RAM,
				 .backend = &emu_cpu_ops,
				 .input = &rpl_input_ops,
				 .input_opaque = r->rpl};
	cr_assert_eq(vmm_machine_create(&cfg, &r->m), 0, "%s", vmm_errdetail());
	const struct lf_header *h = lf_reader_header(r->rd);
	cr_assert_eq(vmm_machine_load(r->m, h->image, h->image_len, h->cmdline), 0, "%s",
		     vmm_errdetail());
}

static void rp_close(struct rp *r)
{
	vmm_machine_destroy(r->m);
	rpl_free(r->rpl);
	lf_reader_free(r->rd);
}

/*
 * Record guest (or, with TL_LOAD=FILE, take that recording of it, as TL_SAVE keeps them:
 * to run one test again on the recording it failed on, with --filter).
 */
static void record(const char *guest, const char *cmdline, const char *input, struct log *lg)
{
	const char *file = getenv("TL_LOAD");
	void *data;
	size_t len;
	struct rp r;
	if (!file || !*file) {
		record_live(guest, cmdline, input, lg);
		return;
	}
	memset(lg, 0, sizeof(*lg));
	cr_assert_eq(vmm_read_file(file, 1u << 30, &data, &len), 0, "%s", vmm_errdetail());
	lg->mem.data = data;
	lg->mem.len = len;
	rp_open(lg, &r);
	const struct lf_header *h = lf_reader_header(r.rd);
	cr_assert(h->image && strstr(h->image_path, guest), "%s is not a recording of %s", file,
		  guest);
	lg->elf = malloc(h->image_len);
	cr_assert(lg->elf);
	memcpy(lg->elf, h->image, h->image_len);
	lg->elf_len = h->image_len;
	cr_assert_eq(vmm_machine_run(r.m, &lg->stop), 0, "%s", vmm_errdetail());
	rp_close(&r);
	cr_log_info("%s: %" PRIu64 " instructions", file, (uint64_t)lg->stop.pos);
}

/* ---- states ------------------------------------------------------------------------------ */

struct state {
	vmm_pos_t pos;
	struct vmm_regs r;
	struct vmm_fpregs f;
	uint8_t *snap; /* vmm_machine_snapshot: devices, vCPU, run loop; no RAM */
	size_t snap_len;
	uint64_t *pages; /* a hash of each page of RAM */
	uint64_t ram;	 /* and of all of them */
	struct rpl_mark mk;
};

/*
 * The vCPU part ends a snapshot (the machine's header ends with its size): emu.c's header
 * (72 bytes: magic, version, icount, TSC offset and aux, mode bits, EFER.LME shadow,
 * prev_kind, context size, then the exit-counting state, unused here), then Unicorn's CPUX86State from RAX on: regs[16], eip, eflags,
 * and the lazily computed arithmetic flags cc_dst, cc_src, cc_src2, cc_op. Between runs
 * those four are dead: entering the CPU loop rebuilds them from eflags (QEMU's
 * x86_cpu_exec_enter), and eflags itself holds every flag once the loop has left. Two runs
 * that reach the same state through different stops leave different values in them
 * (single steps leave cc_op = CC_OP_EFLAGS; a longer run the lazy op of the last flag-
 * setting instruction), so they are zeroed before comparing, after checking that the
 * layout is the one described (RAX, RIP and RFLAGS where expected).
 */
#define EMU_HDR 72
#define CC_FROM 144
#define CC_TO	172

static void canonical_cpu(struct state *s)
{
	uint64_t cpu_len, ctx_len = 0, rax, rip, rflags;
	cr_assert_geq(s->snap_len, 32);
	memcpy(&cpu_len, s->snap + 24, 8);
	cr_assert(cpu_len > EMU_HDR + CC_TO && cpu_len <= s->snap_len,
		  "vCPU part of %" PRIu64 " bytes", cpu_len);
	uint8_t *cpu = s->snap + s->snap_len - cpu_len, *ctx = cpu + EMU_HDR;
	memcpy(&ctx_len, cpu + 44, 4);
	memcpy(&rax, ctx, 8);
	memcpy(&rip, ctx + 128, 8);
	memcpy(&rflags, ctx + 136, 8);
	cr_assert(ctx_len == cpu_len - EMU_HDR && rax == s->r.rax && rip == s->r.rip &&
		      rflags == s->r.rflags,
		  "the emu backend's saved state is not laid out as this test expects "
		  "(Unicorn changed?): update canonical_cpu()");
	memset(ctx + CC_FROM, 0, CC_TO - CC_FROM);
}

static void capture(struct rp *r, struct state *s)
{
	const struct vmm_cpu_ops *ops = vmm_machine_backend(r->m);
	struct vmm_cpu *cpu = vmm_machine_cpu(r->m);
	memset(s, 0, sizeof(*s));
	s->pos = vmm_machine_pos(r->m);
	cr_assert_eq(ops->get_regs(cpu, &s->r), 0);
	cr_assert_eq(ops->get_fpregs(cpu, &s->f), 0);
	void *snap;
	cr_assert_eq(vmm_machine_snapshot(r->m, &snap, &s->snap_len), 0, "%s", vmm_errdetail());
	s->snap = snap;
	canonical_cpu(s);
	const uint8_t *ram = vmm_machine_ram(r->m);
	s->pages = malloc(NPAGES * sizeof(*s->pages));
	cr_assert(s->pages);
	for (size_t i = 0; i < NPAGES; i++)
		s->pages[i] = XXH3_64bits(ram + i * 4096, 4096);
	s->ram = XXH3_64bits(s->pages, NPAGES * sizeof(*s->pages));
	rpl_mark(r->rpl, &s->mk);
}

static void state_free(struct state *s)
{
	free(s->snap);
	free(s->pages);
	s->snap = NULL;
	s->pages = NULL;
}

/* clang-format off */
#define GREGS(X)                                                                           \
	X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rbp) X(rsp) X(r8) X(r9) X(r10) X(r11)  \
	X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags) X(cr0) X(cr2) X(cr3) X(cr4) X(cr8)    \
	X(efer) X(fs_base) X(gs_base) X(kernel_gs_base)
/* clang-format on */
#define SREGS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)

/* Append to a report of differences. */
static void diff(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void diff(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;
	va_start(ap, fmt);
	if (n < cap)
		vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

/* got (reached through the timeline) must be want (the straight run) in every part. */
static void expect_same(const struct state *want, const struct state *got, const char *how)
{
	static char d[4096];
	d[0] = 0;
	if (got->pos != want->pos)
		diff(d, sizeof(d), " position %" PRIu64 " (want %" PRIu64 ")", got->pos, want->pos);
#define G(x)                                                                                       \
	if (got->r.x != want->r.x)                                                                 \
		diff(d, sizeof(d), " %s=%#" PRIx64 " (want %#" PRIx64 ")", #x, (uint64_t)got->r.x, \
		     (uint64_t)want->r.x);
	GREGS(G)
#undef G
#define S(x)                                                                                       \
	if (got->r.x.sel != want->r.x.sel || got->r.x.base != want->r.x.base ||                    \
	    got->r.x.limit != want->r.x.limit || got->r.x.attr != want->r.x.attr)                  \
		diff(d, sizeof(d), " %s differs", #x);
	SREGS(S)
#undef S
	if (got->r.gdt.base != want->r.gdt.base || got->r.gdt.limit != want->r.gdt.limit ||
	    got->r.idt.base != want->r.idt.base || got->r.idt.limit != want->r.idt.limit)
		diff(d, sizeof(d), " gdt/idt differ");
	if (memcmp(&got->f, &want->f, sizeof(got->f)))
		diff(d, sizeof(d), " x87/SSE registers differ");
	if (got->snap_len != want->snap_len) {
		diff(d, sizeof(d), " saved state %zu bytes (want %zu)", got->snap_len,
		     want->snap_len);
	} else if (memcmp(got->snap, want->snap, got->snap_len)) {
		size_t i = 0, n = 0;
		while (got->snap[i] == want->snap[i])
			i++;
		for (size_t k = i; k < got->snap_len; k++)
			n += got->snap[k] != want->snap[k];
		/* The machine's header ends with the vCPU's part's size; that part is last. */
		uint64_t cpu_len = 0;
		if (got->snap_len >= 32)
			memcpy(&cpu_len, got->snap + 24, 8);
		size_t cpu_at = cpu_len <= got->snap_len ? got->snap_len - cpu_len : 0;
		diff(d, sizeof(d), " saved state differs in %zu bytes from offset %zu (%s%zu):", n,
		     i, i >= cpu_at ? "vCPU part +" : "devices part +",
		     i >= cpu_at ? i - cpu_at : i);
		for (size_t k = i, shown = 0; k < got->snap_len && shown < 8; k++)
			if (got->snap[k] != want->snap[k]) {
				diff(d, sizeof(d), " [%zu] %02x (want %02x)", k, got->snap[k],
				     want->snap[k]);
				shown++;
			}
	}
	if (got->ram != want->ram) {
		unsigned shown = 0;
		diff(d, sizeof(d), " RAM differs, pages:");
		for (size_t i = 0; i < NPAGES && shown < 8; i++)
			if (got->pages[i] != want->pages[i]) {
				diff(d, sizeof(d), " %#zx", i * 4096);
				shown++;
			}
	}
	const struct rpl_mark *a = &got->mk, *b = &want->mk;
	if (a->next_pos != b->next_pos || a->skip != b->skip || a->out_hash != b->out_hash ||
	    a->out_bytes != b->out_bytes || a->last_clock != b->last_clock ||
	    a->last_event != b->last_event || a->last_match != b->last_match ||
	    a->ended != b->ended || a->stats.events != b->stats.events ||
	    a->stats.hashes != b->stats.hashes)
		diff(d, sizeof(d),
		     " replay mark: next %" PRIu64 "+%" PRIu64 " events %" PRIu64 " hashes %" PRIu64
		     " out %" PRIu64 " (want next %" PRIu64 "+%" PRIu64 " events %" PRIu64
		     " hashes %" PRIu64 " out %" PRIu64 ")",
		     a->next_pos, a->skip, a->stats.events, a->stats.hashes, a->out_bytes,
		     b->next_pos, b->skip, b->stats.events, b->stats.hashes, b->out_bytes);
	cr_assert(!d[0], "%s: at position %" PRIu64 ":%s", how, want->pos, d);
}

/* ---- the straight run ---------------------------------------------------------------------- */

static int cmp_pos(const void *a, const void *b)
{
	vmm_pos_t x = *(const vmm_pos_t *)a, y = *(const vmm_pos_t *)b;
	return x < y ? -1 : x > y;
}

/* Sort and drop duplicates and positions past the end; returns the new count. */
static size_t uniq(vmm_pos_t *p, size_t n, vmm_pos_t end)
{
	size_t k = 0;
	qsort(p, n, sizeof(*p), cmp_pos);
	for (size_t i = 0; i < n; i++)
		if (p[i] <= end && (!k || p[i] != p[k - 1]))
			p[k++] = p[i];
	return k;
}

/* A fresh replay run straight forward, its state captured at each of pos[0..n) (sorted). */
static struct state *straight(const struct log *lg, const vmm_pos_t *pos, size_t n)
{
	struct rp r;
	struct state *s = calloc(n, sizeof(*s));
	cr_assert(s);
	rp_open(lg, &r);
	for (size_t i = 0; i < n; i++) {
		if (vmm_machine_pos(r.m) < pos[i]) {
			struct vmm_stop st;
			cr_assert_eq(vmm_machine_run_until(r.m, pos[i], &st), 0, "%s",
				     vmm_errdetail());
			cr_assert(st.reason == VMM_STOP_LIMIT || st.reason == VMM_STOP_DEBUG_EXIT,
				  "straight run to %" PRIu64 ": stop %d", pos[i], st.reason);
		}
		cr_assert_eq(vmm_machine_pos(r.m), pos[i],
			     "the straight run did not get to %" PRIu64, pos[i]);
		capture(&r, &s[i]);
	}
	rp_close(&r);
	return s;
}

static void states_free(struct state *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		state_free(&s[i]);
	free(s);
}

/* The reference state at position p (it must be among pos[0..n)). */
static const struct state *ref_at(const struct state *s, size_t n, vmm_pos_t p)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].pos == p)
			return &s[i];
	cr_assert_fail("no reference state at %" PRIu64, p);
	return NULL;
}

/* ---- the timeline under test ------------------------------------------------------------- */

struct tlr {
	struct rp rp;
	struct tl *t;
};

static void tlr_open(const struct log *lg, uint64_t every, uint64_t mem, struct tlr *x)
{
	rp_open(lg, &x->rp);
	struct tl_config c = {.m = x->rp.m, .rpl = x->rp.rpl, .ck_every = every, .ck_mem = mem};
	cr_assert_eq(tl_create(&c, &x->t), 0, "%s", vmm_errdetail());
}

static void tlr_close(struct tlr *x)
{
	tl_free(x->t);
	rp_close(&x->rp);
}

/* tl_goto(p) must get there and show the straight run's state. */
static void goto_and_compare(struct tlr *x, const struct state *ref, size_t nref, vmm_pos_t p,
			     const char *how)
{
	struct tl_stop st;
	char what[128];
	vmm_pos_t from = tl_pos(x->t);
	cr_assert_eq(tl_goto(x->t, p, &st), 0, "goto %" PRIu64 ": %s", p, vmm_errdetail());
	enum tl_stop_kind want = p == 0 ? TL_STOP_HISTORY_BEGIN : TL_STOP_DONE;
	cr_assert_eq(st.kind, want, "goto %" PRIu64 " from %" PRIu64 ": stop kind %d (%s)", p, from,
		     st.kind, st.why);
	cr_assert_eq(st.pos, p);
	cr_assert_eq(tl_pos(x->t), p);
	struct state s;
	capture(&x->rp, &s);
	snprintf(what, sizeof(what), "%s (goto from %" PRIu64 ")", how, from);
	expect_same(ref_at(ref, nref, p), &s, what);
	state_free(&s);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

static void seed(void)
{
	const char *s = getenv("TL_SEED");
	rnd_state = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
	if (!rnd_state)
		rnd_state = 1;
	cr_log_info("TL_SEED=%" PRIu64, rnd_state);
}

/*
 * Positions worth visiting: 0 and 1, around each checkpoint boundary (multiples of every),
 * around input events, some at random, and the end. Returns how many (sorted, unique).
 */
static size_t interesting(const struct log *lg, uint64_t every, vmm_pos_t *p, size_t max,
			  size_t nrandom)
{
	vmm_pos_t end = lg->stop.pos;
	size_t n = 0;
	p[n++] = 0;
	p[n++] = 1;
	for (vmm_pos_t b = every; b < end && n + 3 < max / 2; b += every) {
		p[n++] = b - 1;
		p[n++] = b;
		p[n++] = b + 1;
	}
	vmm_pos_t ev[64];
	size_t ne = event_positions(lg, ev, 64);
	for (size_t i = 0; i < ne && n + 3 < max - nrandom - 2; i += 1 + ne / 12) {
		p[n++] = ev[i] ? ev[i] - 1 : 0;
		p[n++] = ev[i];
		p[n++] = ev[i] + 1;
	}
	for (size_t i = 0; i < nrandom && n < max - 2; i++)
		p[n++] = rnd() % end;
	p[n++] = end - 1;
	p[n++] = end;
	return uniq(p, n, end);
}

/*
 * Visit every interesting position through the timeline, in a random order, then from the
 * last one down to 0, then each twice in a row and back and forth; each state must be the
 * straight run's.
 */
static void check_gotos(const struct log *lg, uint64_t every, uint64_t mem, bool bounded)
{
	enum { MAXP = 160 };
	vmm_pos_t p[MAXP];
	size_t n = interesting(lg, every, p, MAXP, 24);
	vmm_pos_t end = lg->stop.pos;
	struct state *ref = straight(lg, p, n);
	struct tlr x;
	tlr_open(lg, every, mem, &x);
	struct tl_stats ts;

	size_t order[MAXP];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd() % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		goto_and_compare(&x, ref, n, p[order[i]], "random order");
		tl_stats(x.t, &ts);
		if (bounded)
			cr_assert_leq(ts.bytes, ts.bound,
				      "checkpoints take %" PRIu64 " bytes, bound %" PRIu64,
				      ts.bytes, ts.bound);
	}
	for (size_t i = n; i-- > 0;)
		goto_and_compare(&x, ref, n, p[i], "backwards");
	for (size_t i = 0; i < n; i++) {
		size_t j = rnd() % n;
		goto_and_compare(&x, ref, n, p[j], "repeated");
		goto_and_compare(&x, ref, n, p[j], "repeated (again)");
		goto_and_compare(&x, ref, n, p[i], "back and forth");
		goto_and_compare(&x, ref, n, p[j], "back and forth (again)");
	}
	tl_stats(x.t, &ts);
	cr_log_info("%u checkpoints (%" PRIu64 " thinned), %" PRIu64 " bytes of %" PRIu64
		    ", %" PRIu64 " re-executed",
		    ts.checkpoints, ts.thinned, ts.bytes, ts.bound, ts.reexecuted);
	if (bounded) {
		cr_expect_gt(ts.thinned, 0, "nothing was thinned under a bound of %" PRIu64,
			     ts.bound);
		cr_expect_leq(ts.bytes, ts.bound);
	} else {
		cr_expect_eq(ts.thinned, 0);
		cr_expect_geq(ts.checkpoints, end / every,
			      "%u checkpoints over %" PRIu64 " instructions, one every %" PRIu64,
			      ts.checkpoints, end, every);
	}
	tlr_close(&x);
	states_free(ref, n);
}

Test(timeline, goto_gives_the_straight_runs_state_race, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("race", "hz=1000 ticks=8", NULL, &lg);
	check_gotos(&lg, lg.stop.pos / 12 + 1, 0, false);
	log_free(&lg);
}

Test(timeline, goto_gives_the_straight_runs_state_timer, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("timer", "hz=1000 ticks=20", NULL, &lg);
	check_gotos(&lg, 3000, 0, false);
	log_free(&lg);
}

Test(timeline, goto_gives_the_straight_runs_state_echo, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("echo", "", "the lazy dog jumps over the brown fox\nq", &lg);
	cr_assert(strstr(lg.out, "the lazy dog jumps over the brown fox"), "%s", lg.out);
	check_gotos(&lg, 2000, 0, false);
	log_free(&lg);
}

/* The memory one timeline needs for checkpoint 0 and for all of them over the recording. */
static void ck_bytes(const struct log *lg, uint64_t every, uint64_t *first, uint64_t *all)
{
	struct tlr x;
	struct tl_stop st;
	struct tl_stats ts;
	tlr_open(lg, every, 0, &x);
	tl_stats(x.t, &ts);
	*first = ts.bytes;
	cr_assert_eq(tl_goto(x.t, lg->stop.pos, &st), 0);
	tl_stats(x.t, &ts);
	*all = ts.bytes;
	tlr_close(&x);
}

Test(timeline, thinned_checkpoints_keep_states_exact_within_the_bound, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("race", "hz=1000 ticks=8", NULL, &lg);
	uint64_t every = lg.stop.pos / 48 + 1, first, all;
	ck_bytes(&lg, every, &first, &all);
	/* Room for checkpoint 0 and about a quarter of the others. */
	uint64_t bound = first + (all - first) / 4;
	cr_log_info("checkpoint 0: %" PRIu64 " bytes; all: %" PRIu64 "; bound %" PRIu64, first, all,
		    bound);
	check_gotos(&lg, every, bound, true);
	log_free(&lg);
}

Test(timeline, thinned_checkpoints_keep_states_exact_within_the_bound_echo, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("echo", "", "abcdefghijklmnopqrstuvwxyz0123456789\nq", &lg);
	uint64_t first, all;
	ck_bytes(&lg, 1000, &first, &all);
	uint64_t bound = first + (all - first) / 4;
	cr_log_info("checkpoint 0: %" PRIu64 " bytes; all: %" PRIu64 "; bound %" PRIu64, first, all,
		    bound);
	check_gotos(&lg, 1000, bound, true);
	log_free(&lg);
}

/* ---- steps ----------------------------------------------------------------------------------- */

/* From each anchor: N steps forward, then N back; both must be the straight run's states. */
static void check_steps(const struct log *lg, uint64_t every, const vmm_pos_t *anchors, size_t na)
{
	enum { N = 24 };
	vmm_pos_t end = lg->stop.pos;
	vmm_pos_t *p = malloc(na * (N + 1) * sizeof(*p));
	size_t n = 0;
	for (size_t a = 0; a < na; a++)
		for (vmm_pos_t k = 0; k <= N; k++)
			p[n++] = anchors[a] + k;
	n = uniq(p, n, end);
	struct state *ref = straight(lg, p, n);
	struct tlr x;
	tlr_open(lg, every, 0, &x);
	for (size_t a = 0; a < na; a++) {
		vmm_pos_t at = anchors[a];
		struct tl_stop st;
		struct state s;
		goto_and_compare(&x, ref, n, at, "anchor");
		vmm_pos_t k = 0;
		for (; k < N && at + k < end; k++) {
			cr_assert_eq(tl_step(x.t, &st), 0, "%s", vmm_errdetail());
			cr_assert_eq(st.kind, TL_STOP_DONE, "step from %" PRIu64 ": kind %d",
				     at + k, st.kind);
			cr_assert_eq(st.pos, at + k + 1);
			capture(&x.rp, &s);
			expect_same(ref_at(ref, n, at + k + 1), &s, "stepping forward");
			state_free(&s);
		}
		for (; k > 0; k--) {
			cr_assert_eq(tl_reverse_step(x.t, &st), 0, "%s", vmm_errdetail());
			vmm_pos_t want = at + k - 1;
			cr_assert_eq(st.kind, want ? TL_STOP_DONE : TL_STOP_HISTORY_BEGIN,
				     "reverse step to %" PRIu64 ": kind %d", want, st.kind);
			cr_assert_eq(st.pos, want);
			capture(&x.rp, &s);
			expect_same(ref_at(ref, n, want), &s, "stepping back");
			state_free(&s);
		}
	}
	tlr_close(&x);
	states_free(ref, n);
	free(p);
}

Test(timeline, reverse_steps_retrace_forward_steps, .timeout = TIMEOUT)
{
	struct log lg;
	record("race", "hz=1000 ticks=8", NULL, &lg);
	uint64_t every = lg.stop.pos / 10 + 1;
	vmm_pos_t ev[16], a[24];
	size_t ne = event_positions(&lg, ev, 16), na = 0;
	a[na++] = 0;
	a[na++] = every - 10; /* across the first checkpoint */
	a[na++] = 3 * every - 1;
	for (size_t i = 0; i < ne && na < 20; i += 2)
		a[na++] = ev[i] > 5 ? ev[i] - 5 : 0; /* across an interrupt */
	a[na++] = lg.stop.pos - 12;		     /* up to the end */
	check_steps(&lg, every, a, na);
	log_free(&lg);
}

Test(timeline, reverse_steps_retrace_forward_steps_echo, .timeout = TIMEOUT)
{
	struct log lg;
	record("echo", "", "hello, world\nq", &lg);
	vmm_pos_t ev[16], a[24];
	size_t ne = event_positions(&lg, ev, 16), na = 0;
	for (size_t i = 0; i < ne && na < 12; i++)
		a[na++] = ev[i] > 5 ? ev[i] - 5 : 0; /* across input and its interrupt */
	a[na++] = 999 - 4;
	a[na++] = lg.stop.pos - 12;
	check_steps(&lg, 1000, a, na);
	log_free(&lg);
}

/* ---- the ends ----------------------------------------------------------------------------------
 */

Test(timeline, both_ends_of_the_recording, .timeout = TIMEOUT)
{
	struct log lg;
	record("timer", "hz=1000 ticks=10", NULL, &lg);
	vmm_pos_t end = lg.stop.pos, p[2] = {0, end};
	struct state *ref = straight(&lg, p, 2);
	struct tlr x;
	struct tl_stop st;
	struct state s;
	tlr_open(&lg, 5000, 0, &x);

	/* Before 0: no more history, and nothing moves. */
	cr_assert_eq(tl_reverse_step(x.t, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_BEGIN);
	cr_expect_eq(st.pos, 0);
	cr_assert_eq(tl_reverse_continue(x.t, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_BEGIN);
	cr_expect_eq(st.pos, 0);
	cr_assert_eq(tl_goto(x.t, 0, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_BEGIN);
	capture(&x.rp, &s);
	expect_same(&ref[0], &s, "at 0 after trying to go before it");
	state_free(&s);

	/* Past the end, from before it and from the end itself: the end, and how it ended. */
	for (int i = 0; i < 3; i++) {
		vmm_pos_t to = i == 0 ? end + 1000 : i == 1 ? UINT64_MAX : end + 1;
		cr_assert_eq(tl_goto(x.t, to, &st), 0, "%s", vmm_errdetail());
		cr_expect_eq(st.kind, TL_STOP_HISTORY_END, "goto %" PRIu64 ": kind %d", to,
			     st.kind);
		cr_expect_eq(st.pos, end,
			     "goto %" PRIu64 " stopped at %" PRIu64 ", the end is %" PRIu64, to,
			     st.pos, end);
		cr_expect_eq(st.end.reason, VMM_STOP_DEBUG_EXIT);
		cr_expect_eq(st.end.exit_value, lg.stop.exit_value);
		capture(&x.rp, &s);
		expect_same(&ref[1], &s, "at the end after going past it");
		state_free(&s);
	}
	/* Forward from the end: a step, a continue. */
	cr_assert_eq(tl_step(x.t, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_END);
	cr_expect_eq(st.pos, end);
	cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_END);
	cr_expect_eq(st.pos, end);
	cr_expect_eq(tl_high_water(x.t), end);
	/* The end exactly: there. Then back to the start and again past the end. */
	cr_assert_eq(tl_goto(x.t, end, &st), 0);
	cr_expect(st.kind == TL_STOP_DONE || st.kind == TL_STOP_HISTORY_END, "kind %d", st.kind);
	cr_expect_eq(st.pos, end);
	cr_assert_eq(tl_reverse_continue(x.t, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_BEGIN, "no debug stops: back to 0, kind %d", st.kind);
	cr_expect_eq(st.pos, 0);
	capture(&x.rp, &s);
	expect_same(&ref[0], &s, "at 0 after reverse-continue from the end");
	state_free(&s);
	cr_assert_eq(tl_goto(x.t, end + 5, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_END);
	capture(&x.rp, &s);
	expect_same(&ref[1], &s, "at the end again, from 0");
	state_free(&s);
	tlr_close(&x);
	states_free(ref, 2);
	log_free(&lg);
}

static int g_polls, g_stop_after;

static bool stop_after(void *opaque)
{
	(void)opaque;
	return ++g_polls >= g_stop_after;
}

Test(timeline, an_interrupted_run_stops_in_a_state_of_the_straight_run, .timeout = TIMEOUT)
{
	struct log lg;
	record("race", "hz=1000 ticks=8", NULL, &lg);
	struct tlr x;
	struct tl_stop st;
	tlr_open(&lg, lg.stop.pos / 8 + 1, 0, &x);
	g_polls = 0;
	g_stop_after = 5;
	tl_set_interrupt(x.t, stop_after, NULL);
	cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0);
	cr_assert_eq(st.kind, TL_STOP_INTERRUPTED, "kind %d at %" PRIu64, st.kind, st.pos);
	cr_assert(st.pos > 0 && st.pos < lg.stop.pos, "stopped at %" PRIu64, st.pos);
	tl_set_interrupt(x.t, NULL, NULL);
	vmm_pos_t p = st.pos;
	struct state *ref = straight(&lg, &p, 1), s;
	capture(&x.rp, &s);
	expect_same(ref, &s, "interrupted");
	state_free(&s);
	/* And it goes on from there to the end. */
	cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0);
	cr_expect_eq(st.kind, TL_STOP_HISTORY_END);
	cr_expect_eq(st.pos, lg.stop.pos);
	tlr_close(&x);
	states_free(ref, 1);
	log_free(&lg);
}

/* ---- reverse-continue ------------------------------------------------------------------------ */

/*
 * Every debug stop of a straight replay run forward (no timeline): breakpoint hits at
 * the position before the instruction; for the write watchpoint w, each instruction
 * that wrote inside it or changed its bytes, at the position before it. The machine's
 * protocol for a watch stop: resume at that position with the pages open (pass_pos) for
 * one instruction.
 */
static size_t forward_hits(const struct log *lg, const uint64_t *bp, unsigned nbp,
			   const struct vmm_watch *w, vmm_pos_t *hits, size_t max)
{
	struct rp r;
	struct vmm_debug d = {
	    .bp = bp, .nbp = nbp, .wp = w, .nwp = w ? 1 : 0, .pass_pos = UINT64_MAX};
	const struct vmm_cpu_ops *ops = &emu_cpu_ops;
	size_t n = 0;
	uint8_t before[64], after[64];
	rp_open(lg, &r);
	struct vmm_cpu *cpu = vmm_machine_cpu(r.m);
	for (;;) {
		struct vmm_stop st;
		cr_assert_eq(vmm_machine_set_debug(r.m, &d), 0, "%s", vmm_errdetail());
		cr_assert_eq(vmm_machine_run(r.m, &st), 0, "%s", vmm_errdetail());
		if (st.reason == VMM_STOP_BREAK) {
			cr_assert_lt(n, max);
			hits[n++] = st.pos;
			d.pass_pos = st.pos;
			continue;
		}
		if (st.reason != VMM_STOP_WATCH)
			break;
		cr_assert_eq(ops->read_virt(cpu, w->addr, before, w->len), 0);
		d.pass_pos = st.pos;
		cr_assert_eq(vmm_machine_set_debug(r.m, &d), 0);
		struct vmm_stop st1;
		cr_assert_eq(vmm_machine_run_until(r.m, st.pos + 1, &st1), 0);
		cr_assert_eq(ops->read_virt(cpu, w->addr, after, w->len), 0);
		bool in = st.addr >= w->addr && st.addr < w->addr + w->len;
		if (st.access == VMM_ACCESS_WRITE && (in || memcmp(before, after, w->len))) {
			cr_assert_lt(n, max);
			hits[n++] = st.pos;
		}
		d.pass_pos = UINT64_MAX;
		if (st1.reason != VMM_STOP_LIMIT)
			break;
	}
	rp_close(&r);
	return n;
}

/*
 * Where the guest's code loads (opcode 0x8b) or stores (0x89) the 64-bit global var with
 * `mov disp32(%rip), %r64` (REX.W, ModRM mod 00 r/m 101): what -O2 makes of a volatile
 * global's reads and writes. A breakpoint on each gives the positions of those accesses
 * without the watchpoint machinery, to check watchpoints against.
 */
static size_t rip_movs(const struct log *lg, uint8_t opcode, uint64_t var, uint64_t *out,
		       size_t max)
{
	const uint8_t *e = lg->elf;
	const Elf64_Ehdr *eh = (const void *)e;
	const Elf64_Shdr *sh = (const void *)(e + eh->e_shoff);
	size_t n = 0;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_PROGBITS || !(sh[i].sh_flags & SHF_EXECINSTR))
			continue;
		const uint8_t *b = e + sh[i].sh_offset;
		for (size_t k = 0; k + 7 <= sh[i].sh_size; k++) {
			int32_t disp;
			memcpy(&disp, b + k + 3, 4);
			uint64_t at = sh[i].sh_addr + k;
			if ((b[k] & 0xf8) == 0x48 && b[k + 1] == opcode &&
			    (b[k + 2] & 0xc7) == 0x05 && at + 7 + (uint64_t)(int64_t)disp == var) {
				cr_assert_lt(n, max);
				out[n++] = at;
			}
		}
	}
	cr_assert_gt(n, 0, "no mov of %#" PRIx64 " found in the guest's code", var);
	return n;
}

/* The last hit before p, or -1. */
static long last_before(const vmm_pos_t *hits, size_t n, vmm_pos_t p)
{
	long k = -1;
	for (size_t i = 0; i < n && hits[i] < p; i++)
		k = (long)i;
	return k;
}

/* What one reverse-continue test looks for, and what the forward scan found. */
struct rc {
	const uint64_t *bp;	   /* one breakpoint, or */
	const struct vmm_watch *w; /* one watchpoint */
	const vmm_pos_t *hits;	   /* every hit from `from` on, in order (before the instruction) */
	size_t nh;
	vmm_pos_t from;		 /* the hits are all those at or after this position */
	size_t walk;		 /* reverse-continues from the end (past the first hit: to 0) */
	const vmm_pos_t *starts; /* and one from each of these (after `from`) */
	size_t ns;
};

#define NFWD 8 /* forward stops checked */

/*
 * Forward from `from`: the first hits in order. Reverse-continue from the end back through
 * the last `walk` hits (and then to 0 when the hits go back to 0 and walk covers them all),
 * and from each start: each time the previous hit, in the straight run's state there, or no
 * more history at 0.
 */
static void check_reverse_continue(const struct log *lg, uint64_t every, const struct rc *c)
{
	vmm_pos_t end = lg->stop.pos;
	const vmm_pos_t *hits = c->hits;
	size_t nh = c->nh;
	enum tl_stop_kind kind = c->bp ? TL_STOP_BREAK : TL_STOP_WATCH;
	cr_assert_gt(nh, 0, "the forward scan found no hit");
	cr_log_info("%zu hits, first %" PRIu64 ", last %" PRIu64 " of %" PRIu64, nh, hits[0],
		    hits[nh - 1], end);

	/* The states to compare: at each hit that can be reached, where the first forward
	 * stops are, at `from` and at 0. */
	vmm_pos_t *p = malloc((c->walk + c->ns + 2 * NFWD + 2) * sizeof(*p));
	size_t np = 0;
	p[np++] = 0;
	p[np++] = c->from;
	for (size_t i = 0; i < nh && i < NFWD; i++) {
		p[np++] = hits[i];
		p[np++] = hits[i] + 1;
	}
	for (size_t i = nh > c->walk ? nh - c->walk : 0; i < nh; i++)
		p[np++] = hits[i];
	for (size_t i = 0; i < c->ns; i++) {
		long k = last_before(hits, nh, c->starts[i]);
		if (k >= 0)
			p[np++] = hits[k];
	}
	np = uniq(p, np, end);
	struct state *ref = straight(lg, p, np);

	struct tlr x;
	struct tl_stop st;
	struct state s;
	tlr_open(lg, every, 0, &x);
	cr_assert_eq(tl_set_debug(x.t, c->bp, c->bp ? 1 : 0, c->w, c->w ? 1 : 0), 0);
	/* Forward first: the hits in order on the way. */
	cr_assert_eq(tl_goto(x.t, c->from, &st), 0);
	for (size_t i = 0; i < nh && i < NFWD; i++) {
		cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0, "%s", vmm_errdetail());
		cr_assert_eq(st.kind, kind, "forward stop %zu: kind %d at %" PRIu64 " (%s)", i,
			     st.kind, st.pos, st.why);
		/* Forward, a watchpoint stops after the access; a breakpoint before. */
		cr_assert_eq(st.pos, hits[i] + (c->bp ? 0 : 1),
			     "forward stop %zu at %" PRIu64 ", the scan's hit at %" PRIu64, i,
			     st.pos, hits[i]);
		capture(&x.rp, &s);
		expect_same(ref_at(ref, np, st.pos), &s, "a forward stop");
		state_free(&s);
	}
	cr_assert_eq(tl_goto(x.t, end, &st), 0);
	for (size_t i = 0; i < c->walk && i <= nh; i++) {
		if (i == nh && c->from)
			break; /* the scan did not look before `from` */
		vmm_pos_t at = tl_pos(x.t);
		cr_assert_eq(tl_reverse_continue(x.t, &st), 0, "%s", vmm_errdetail());
		if (i == nh) {
			cr_assert_eq(st.kind, TL_STOP_HISTORY_BEGIN,
				     "reverse-continue from the first hit: kind %d at %" PRIu64,
				     st.kind, st.pos);
			cr_assert_eq(st.pos, 0);
			break;
		}
		vmm_pos_t want = hits[nh - 1 - i];
		cr_assert_eq(st.kind, kind,
			     "reverse-continue from %" PRIu64 ": kind %d at %" PRIu64
			     " (want the hit at %" PRIu64 ")",
			     at, st.kind, st.pos, want);
		cr_assert_eq(st.pos, want,
			     "reverse-continue from %" PRIu64 " went to %" PRIu64
			     "; the previous hit is at %" PRIu64,
			     at, st.pos, want);
		if (c->bp)
			cr_assert_eq(ref_at(ref, np, want)->r.rip, c->bp[0]);
		else
			cr_assert(st.addr == c->w->addr && st.access == c->w->access,
				  "watch stop at %#" PRIx64 " access %d", st.addr, st.access);
		capture(&x.rp, &s);
		expect_same(ref_at(ref, np, want), &s, "reverse-continue");
		state_free(&s);
		if (i >= 2)
			continue;
		/* Continue forward from there: a watchpoint reports the access just found
		 * (after it), a breakpoint the next hit; then back to go on backwards. */
		cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0, "%s", vmm_errdetail());
		vmm_pos_t next = c->bp ? (i ? hits[nh - i] : end) : want + 1;
		cr_assert_eq(st.pos, next,
			     "continue from the hit at %" PRIu64 " stopped at %" PRIu64
			     " (kind %d), not at %" PRIu64,
			     want, st.pos, st.kind, next);
		cr_assert_eq(st.kind, c->bp && !i ? TL_STOP_HISTORY_END : kind);
		cr_assert_eq(tl_goto(x.t, want, &st), 0);
	}
	for (size_t i = 0; i < c->ns; i++) {
		cr_assert_eq(tl_goto(x.t, c->starts[i], &st), 0);
		cr_assert_eq(tl_reverse_continue(x.t, &st), 0, "%s", vmm_errdetail());
		long k = last_before(hits, nh, c->starts[i]);
		vmm_pos_t want = k < 0 ? 0 : hits[k];
		cr_assert_eq(st.pos, want,
			     "reverse-continue from %" PRIu64 " went to %" PRIu64
			     "; the previous hit is at %" PRIu64,
			     c->starts[i], st.pos, want);
		cr_assert_eq(st.kind, k < 0 ? TL_STOP_HISTORY_BEGIN : kind);
		capture(&x.rp, &s);
		expect_same(ref_at(ref, np, want), &s, "reverse-continue from a chosen position");
		state_free(&s);
	}
	struct tl_stats ts;
	tl_stats(x.t, &ts);
	cr_log_info("%" PRIu64 " intervals skipped, %" PRIu64 " instructions re-executed",
		    ts.skipped, ts.reexecuted);
	tlr_close(&x);
	states_free(ref, np);
	free(p);
}

enum { MAXH = 1 << 16, NSTART = 24 };
static vmm_pos_t g_hits[MAXH], g_more[MAXH];

/* Random starts after `from`, plus just after the last hit and on the middle one. */
static size_t random_starts(const struct log *lg, const struct rc *c, vmm_pos_t *s, size_t n)
{
	size_t k = 0;
	for (; k < n; k++)
		s[k] = c->from + 1 + rnd() % (lg->stop.pos - c->from);
	s[k++] = c->hits[c->nh - 1] + 1;
	s[k++] = c->hits[c->nh / 2];
	return k;
}

/* A breakpoint or a write watchpoint, checked against the forward scan from 0. */
static void check_one(const struct log *lg, uint64_t every, const uint64_t *bp,
		      const struct vmm_watch *w, size_t nrandom)
{
	vmm_pos_t starts[NSTART + 2];
	struct rc c = {.bp = bp, .w = w, .hits = g_hits, .walk = 100, .starts = starts};
	c.nh = forward_hits(lg, bp, bp ? 1 : 0, w, g_hits, MAXH);
	cr_assert_gt(c.nh, 0, "the forward scan found no hit");
	c.ns = random_starts(lg, &c, starts, nrandom);
	check_reverse_continue(lg, every, &c);
}

Test(timeline, reverse_continue_finds_the_previous_breakpoint_hit, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("race", "hz=1000 ticks=8", NULL, &lg);
	uint64_t bp = symbol(&lg, "pit_irq");
	check_one(&lg, lg.stop.pos / 16 + 1, &bp, NULL, 10);
	log_free(&lg);
}

Test(timeline, reverse_continue_finds_the_previous_breakpoint_hit_echo, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("echo", "", "0123456789abcdef\nq", &lg);
	uint64_t bp = symbol(&lg, "com1_irq");
	check_one(&lg, 1000, &bp, NULL, 10);
	log_free(&lg);
}

Test(timeline, reverse_continue_finds_the_last_write_to_a_watchpoint, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	/* Short: main writes the watched page every few instructions, and each write traps. */
	record("race", "hz=4000 ticks=6", NULL, &lg);
	struct vmm_watch w = {.addr = symbol(&lg, "ticks"), .len = 8, .access = VMM_ACCESS_WRITE};
	check_one(&lg, lg.stop.pos / 16 + 1, NULL, &w, 6);
	log_free(&lg);
}

Test(timeline, reverse_continue_finds_the_last_write_to_a_watchpoint_echo, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("echo", "", "0123456789abcdef\nq", &lg);
	struct vmm_watch w = {.addr = symbol(&lg, "rx_head"), .len = 4, .access = VMM_ACCESS_WRITE};
	check_one(&lg, 1000, NULL, &w, 10);
	log_free(&lg);
}

/*
 * race's shared_counter is the first variable of its page, ticks the second. A read
 * watchpoint on ticks stops at each load of ticks (the main loop's test, the handler's
 * increment, the final print), found here with breakpoints on those loads.
 */
Test(timeline, reverse_continue_finds_the_last_read_of_a_watchpoint, .timeout = TIMEOUT)
{
	struct log lg;
	uint64_t loads[16];
	vmm_pos_t starts[NSTART + 2];
	seed();
	record("race", "hz=100000 ticks=4", NULL, &lg);
	uint64_t ticks = symbol(&lg, "ticks");
	cr_assert_eq(ticks & 0xfff, 8, "ticks is not 8 bytes into its page: update this test");
	size_t nl = rip_movs(&lg, 0x8b, ticks, loads, 16);
	struct vmm_watch w = {.addr = ticks, .len = 8, .access = VMM_ACCESS_READ};
	struct rc c = {.w = &w, .hits = g_hits, .walk = 20, .starts = starts};
	c.nh = forward_hits(&lg, loads, (unsigned)nl, NULL, g_hits, MAXH);
	c.ns = random_starts(&lg, &c, starts, 6);
	check_reverse_continue(&lg, lg.stop.pos / 16 + 1, &c);
	log_free(&lg);
}

/*
 * A straight replay with the watchpoint w, each watch stop passed as the timeline does
 * (resume there with the pages open for one instruction), up to the stop at p: the state
 * after the instruction at p.
 */
static void watch_step_at(const struct log *lg, const struct vmm_watch *w, vmm_pos_t p,
			  struct state *s)
{
	struct rp r;
	struct vmm_debug d = {.wp = w, .nwp = 1, .pass_pos = UINT64_MAX};
	struct vmm_stop st, st1;
	rp_open(lg, &r);
	do {
		cr_assert_eq(vmm_machine_set_debug(r.m, &d), 0, "%s", vmm_errdetail());
		cr_assert_eq(vmm_machine_run_until(r.m, p + 1, &st), 0, "%s", vmm_errdetail());
		cr_assert_eq(st.reason, VMM_STOP_WATCH,
			     "no watch stop at %" PRIu64 " (stop %d at %" PRIu64 ")", p, st.reason,
			     st.pos);
		d.pass_pos = st.pos;
		cr_assert_eq(vmm_machine_set_debug(r.m, &d), 0, "%s", vmm_errdetail());
		cr_assert_eq(vmm_machine_run_until(r.m, st.pos + 1, &st1), 0, "%s",
			     vmm_errdetail());
		cr_assert_eq(st1.reason, VMM_STOP_LIMIT);
		d.pass_pos = UINT64_MAX;
	} while (st.pos < p);
	cr_assert_eq(st.pos, p, "the watch stop was at %" PRIu64 ", not %" PRIu64, st.pos, p);
	capture(&r, s);
	rp_close(&r);
}

/*
 * race starts its loop with `sti; mov ticks(%rip), %rax`: with IRQ 0 already pending (a
 * tick while interrupts were still off), the load runs in the STI shadow and the
 * interrupt is taken after it. A read watchpoint on ticks stops before that load; going
 * on from the stop must keep the shadow (load, then interrupt), as the straight run does:
 * the machine's own watch stop, and the timeline's forward, reverse and step over it.
 */
Test(timeline, a_watch_stop_in_an_sti_shadow_keeps_the_shadow, .timeout = TIMEOUT)
{
	struct log lg;
	uint64_t loads[16];
	vmm_pos_t ev[4], p[2];
	size_t tries = 0, nl = 0;
	for (;;) {
		record("race", "hz=100000 ticks=3", NULL, &lg);
		nl = rip_movs(&lg, 0x8b, symbol(&lg, "ticks"), loads, 16);
		size_t nh = forward_hits(&lg, loads, (unsigned)nl, NULL, g_hits, MAXH);
		cr_assert_gt(nh, 1);
		/* The first load of ticks is the one after the STI; a tick before it? */
		if (event_positions(&lg, ev, 1) == 1 && ev[0] < g_hits[0])
			break;
		log_free(&lg);
		if (++tries == 20)
			cr_skip_test("no tick came before the STI in 20 recordings: the shadow "
				     "case did not occur");
	}
	struct vmm_watch w = {.addr = symbol(&lg, "ticks"), .len = 8, .access = VMM_ACCESS_READ};
	p[0] = g_hits[0];
	p[1] = g_hits[0] + 1;
	struct state *ref = straight(&lg, p, 2), s;
	watch_step_at(&lg, &w, p[0], &s);
	expect_same(&ref[1], &s, "the machine, after the load in the STI shadow");
	state_free(&s);

	struct tlr x;
	struct tl_stop st;
	tlr_open(&lg, lg.stop.pos / 4 + 1, 0, &x);
	cr_assert_eq(tl_set_debug(x.t, NULL, 0, &w, 1), 0);
	cr_assert_eq(tl_forward(x.t, UINT64_MAX, &st), 0);
	cr_assert_eq(st.kind, TL_STOP_WATCH, "kind %d at %" PRIu64, st.kind, st.pos);
	cr_assert_eq(st.pos, p[1]);
	capture(&x.rp, &s);
	expect_same(&ref[1], &s, "after the load in the STI shadow");
	state_free(&s);
	/* The same from a reverse-continue to it, from the next load (in the handler). */
	cr_assert_eq(tl_goto(x.t, g_hits[1], &st), 0);
	cr_assert_eq(tl_reverse_continue(x.t, &st), 0);
	cr_assert_eq(st.pos, p[0]);
	capture(&x.rp, &s);
	expect_same(&ref[0], &s, "before the load in the STI shadow");
	state_free(&s);
	cr_assert_eq(tl_step(x.t, &st), 0);
	capture(&x.rp, &s);
	expect_same(&ref[1], &s, "a step over the load in the STI shadow");
	state_free(&s);
	tlr_close(&x);
	states_free(ref, 2);
	log_free(&lg);
}

/*
 * A write watchpoint on shared_counter stops at each store to it (main's increment and the
 * handler's add), and not at the handler's store to ticks on the same page right after its
 * own: reverse-continue from just after that store must go back to the store before it.
 * The entry code's zeroing of .bss writes shared_counter too; the check starts after it.
 */
Test(timeline, a_write_next_to_a_watchpoint_is_not_a_hit, .timeout = TIMEOUT)
{
	struct log lg;
	uint64_t stores[16], tstores[16];
	vmm_pos_t starts[NSTART + 2 + 32];
	seed();
	record("race", "hz=10000 ticks=4", NULL, &lg);
	uint64_t sc = symbol(&lg, "shared_counter"), ticks = symbol(&lg, "ticks");
	cr_assert_eq(sc & 0xfff, 0, "shared_counter does not start its page: update this test");
	size_t ns = rip_movs(&lg, 0x89, sc, stores, 16),
	       nt = rip_movs(&lg, 0x89, ticks, tstores, 16);
	struct vmm_watch w = {.addr = sc, .len = 8, .access = VMM_ACCESS_WRITE};
	struct rc c = {.w = &w, .hits = g_hits, .walk = 20, .starts = starts};
	c.nh = forward_hits(&lg, stores, (unsigned)ns, NULL, g_hits, MAXH);
	c.from = g_hits[0];
	size_t nts = forward_hits(&lg, tstores, (unsigned)nt, NULL, g_more, MAXH);
	c.ns = random_starts(&lg, &c, starts, 6);
	for (size_t i = 0; i < nts && c.ns < NSTART + 2 + 32; i++)
		if (g_more[i] > c.from)
			starts[c.ns++] = g_more[i] + 1; /* just after a store to ticks */
	check_reverse_continue(&lg, lg.stop.pos / 16 + 1, &c);
	log_free(&lg);
}

/* ---- code the guest rewrites ---------------------------------------------------------------- */

Test(timeline, going_back_runs_the_code_as_it_was_then, .timeout = TIMEOUT)
{
	struct log lg;
	seed();
	record("patch", "n=2000", NULL, &lg);
	cr_assert(strstr(lg.out, "bad=0"), "%s", lg.out);
	check_gotos(&lg, lg.stop.pos / 12 + 1, 0, false);
	log_free(&lg);
}
