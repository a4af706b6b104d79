/*
 * test_backtrace.c: guest backtraces (debugger/backtrace.h) over the real crash guest.
 *
 * The crash guest runs on the emu backend under live input (virtual clock) until it
 * triple-faults inside triple_fault(), called from its page-fault handler, which the
 * fault in faulty() <- do_work() <- main() raised. Unwinding from the stopped vCPU must
 * cross the exception frame (isr.S's CFI) down to the PVH entry. Then: bad ELFs, symbol
 * lookups, an unreadable stack (the accessor failing at every read, and at the Nth), a
 * corrupt .eh_frame_hdr and every byte of .eh_frame_hdr and .eh_frame flipped. Last,
 * guests stopped at every position (or every Nth) of their run must unwind to the entry:
 * through every instruction of isr.S's entry and exit, prologues and epilogues, and
 * nested interrupts; and threads may share an image.
 * Guest ELFs come from $REWIND_BUILD/guests (default build/); tests run from the repo root.
 */
#include "debugger/backtrace.h"
#include "vmm/cpu.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <elf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 32
#define RAM  (64u << 20)

/* ---- the crash guest, run once per test ---------------------------------------------- */

struct crash {
	void *elf;
	size_t len;
	struct vmm_machine *m;
	struct vmm_live *live;
	struct vmm_regs regs;
	uint8_t *ram; /* a copy after the stop: va == pa below 4 GiB (identity map) */
	char out[4096];
	size_t outlen;
};

static void out_byte(void *o, uint8_t b)
{
	struct crash *c = o;
	if (c->outlen < sizeof(c->out) - 1)
		c->out[c->outlen++] = (char)b;
}

static void load_elf(const char *guest, void **elf, size_t *len)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/guests/%s.elf", b ? b : "build", guest);
	if (vmm_read_file(path, 64u << 20, elf, len) < 0)
		cr_skip_test("%s: %s: run 'make all' to build the guests", path, vmm_errdetail());
}

/* Run crash to its triple fault; keep the machine (for read_virt) and a RAM copy. */
static void crash_run(struct crash *c)
{
	memset(c, 0, sizeof(*c));
	load_elf("crash", &c->elf, &c->len);
	struct vmm_live_config lc = {
	    .in_fd = -1, .out = out_byte, .out_opaque = c, .virtual_clock = true};
	cr_assert_eq(vmm_live_create(&lc, &c->live), 0, "%s", vmm_errdetail());
	struct vmm_config cfg = {.mem_size = RAM,
				 .backend = &emu_cpu_ops,
				 .input = &vmm_live_input_ops,
				 .input_opaque = c->live};
	cr_assert_eq(vmm_machine_create(&cfg, &c->m), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_load(c->m, c->elf, c->len, ""), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_live_start(c->live, c->m), 0, "%s", vmm_errdetail());
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(c->m, &st), 0, "%s", vmm_errdetail());
	cr_assert_eq(st.reason, VMM_STOP_TRIPLE_FAULT, "stop reason %d; output:\n%s", st.reason,
		     c->out);
	const struct vmm_cpu_ops *ops = vmm_machine_backend(c->m);
	cr_assert_eq(ops->get_regs(vmm_machine_cpu(c->m), &c->regs), 0, "%s", vmm_errdetail());
	c->ram = malloc(RAM);
	cr_assert(c->ram);
	memcpy(c->ram, vmm_machine_ram(c->m), RAM);
}

static void crash_free(struct crash *c)
{
	if (c->live)
		vmm_live_destroy(c->live);
	if (c->m)
		vmm_machine_destroy(c->m);
	free(c->ram);
	free(c->elf);
}

/* The accessors: the stopped machine through its page tables, or the RAM copy. */
static int read_machine(void *opaque, uint64_t va, void *buf, size_t len)
{
	struct vmm_machine *m = opaque;
	return vmm_machine_backend(m)->read_virt(vmm_machine_cpu(m), va, buf, len);
}

static int read_ram(void *opaque, uint64_t va, void *buf, size_t len)
{
	const struct crash *c = opaque;
	if (va >= RAM || len > RAM - va)
		return -VMM_EINVAL;
	memcpy(buf, c->ram + va, len);
	return 0;
}

static int read_never(void *opaque, uint64_t va, void *buf, size_t len)
{
	(void)opaque, (void)va, (void)buf, (void)len;
	return -VMM_EINVAL;
}

/* The RAM copy, failing from the Nth read on. */
struct fail_nth {
	const struct crash *c;
	int n, calls;
};

static int read_fail_nth(void *opaque, uint64_t va, void *buf, size_t len)
{
	struct fail_nth *f = opaque;
	if (f->calls++ >= f->n)
		return -VMM_EIO;
	return read_ram((void *)f->c, va, buf, len);
}

/* ---- ELF helpers for the tests -------------------------------------------------------- */

static const Elf64_Shdr *section(const void *elf, const char *name)
{
	const Elf64_Ehdr *eh = elf;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)((const char *)elf + eh->e_shoff);
	const char *shstr = (const char *)elf + sh[eh->e_shstrndx].sh_offset;
	for (unsigned i = 0; i < eh->e_shnum; i++)
		if (!strcmp(shstr + sh[i].sh_name, name))
			return &sh[i];
	cr_assert_fail("no section %s", name);
	return NULL;
}

static Elf64_Sym symbol(const void *elf, const char *name)
{
	const Elf64_Ehdr *eh = elf;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)((const char *)elf + eh->e_shoff);
	const Elf64_Shdr *st = section(elf, ".symtab");
	const char *str = (const char *)elf + sh[st->sh_link].sh_offset;
	const Elf64_Sym *s = (const Elf64_Sym *)((const char *)elf + st->sh_offset);
	for (size_t i = 0; i < st->sh_size / sizeof(*s); i++)
		if (!strcmp(str + s[i].st_name, name))
			return s[i];
	cr_assert_fail("no symbol %s", name);
	return (Elf64_Sym){0};
}

static Elf64_Phdr *phdr(void *elf, uint32_t type)
{
	Elf64_Ehdr *eh = elf;
	Elf64_Phdr *ph = (Elf64_Phdr *)((char *)elf + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == type)
			return &ph[i];
	cr_assert_fail("no program header of type 0x%x", type);
	return NULL;
}

static void *dup_elf(const struct crash *c)
{
	void *e = malloc(c->len);
	cr_assert(e);
	memcpy(e, c->elf, c->len);
	return e;
}

static void log_frames(const struct bt_frame *f, int n)
{
	char line[256];
	for (int i = 0; i < n; i++) {
		bt_format(&f[i], i, line, sizeof(line));
		cr_log_info("%s (sp 0x%" PRIx64 " cfa 0x%" PRIx64 ")", line, f[i].sp, f[i].cfa);
	}
}

static const char *name_or(const struct bt_frame *f)
{
	return f->func ? f->func : "??";
}

/*
 * The frames expected from the crash guest, in order; '?' marks a frame that may be
 * missing (inlined, or a tail call that left no frame).
 */
static const char *const expected[] = {"triple_fault", "page_fault", "?g_isr_dispatch",
				       "isr_common",   "faulty",     "do_work",
				       "main",	       "g_start",    "long_entry"};
#define NEXP (int)(sizeof(expected) / sizeof(expected[0]))

/* Match frames against expected[]; returns how many frames matched in order. */
static int match_expected(const struct bt_frame *f, int n)
{
	int i = 0;
	for (int e = 0; e < NEXP && i < n; e++) {
		const char *want = expected[e];
		bool optional = want[0] == '?';
		if (optional)
			want++;
		if (f[i].func && !strcmp(f[i].func, want))
			i++;
		else if (!optional)
			break;
	}
	return i;
}

/* ---- the backtrace of the crash guest --------------------------------------------------- */

Test(backtrace, crash_guest_across_the_exception_frame, .timeout = 60)
{
	struct crash c;
	crash_run(&c);
	struct bt_image *img;
	cr_assert_eq(bt_image_open(c.elf, c.len, &img), 0, "%s", vmm_errdetail());

	struct bt_frame f[MAXF];
	int n = bt_unwind(img, &c.regs, read_machine, c.m, f, MAXF);
	cr_log_info("crash guest, rip 0x%" PRIx64 " rsp 0x%" PRIx64 ":", c.regs.rip, c.regs.rsp);
	log_frames(f, n);
	cr_assert_gt(n, 0, "%s", vmm_errdetail());
	cr_assert_eq(match_expected(f, n), n, "frame %d is %s", match_expected(f, n),
		     name_or(&f[match_expected(f, n)]));
	cr_assert_str_eq(f[n - 1].func, "long_entry", "the walk ends at the entry");
	cr_assert_str_eq(f[0].func, "triple_fault");
	cr_assert_eq(f[0].pc, c.regs.rip);
	cr_assert_eq(f[0].sp, c.regs.rsp);

	/* Exactly one exception frame, isr_common; the frame after it is the faulting
	 * instruction in faulty, at the rip the guest's handler printed. */
	int exc = -1;
	for (int i = 0; i < n; i++)
		if (f[i].signal_frame) {
			cr_assert_eq(exc, -1, "two exception frames");
			exc = i;
		}
	cr_assert_neq(exc, -1, "no exception frame");
	cr_assert_str_eq(f[exc].func, "isr_common");
	cr_assert_str_eq(f[exc + 1].func, "faulty");
	const char *p = strstr(c.out, "rip 0x");
	cr_assert(p, "guest output: %s", c.out);
	uint64_t fault_rip = strtoull(p + 6, NULL, 16);
	cr_assert_eq(f[exc + 1].pc, fault_rip, "faulty's pc 0x%" PRIx64 ", guest said 0x%" PRIx64,
		     f[exc + 1].pc, fault_rip);
	Elf64_Sym faulty = symbol(c.elf, "faulty");
	cr_assert_eq(f[exc + 1].off, fault_rip - faulty.st_value);

	/* faulty is a leaf (its CFA is rsp + 8): the interrupted rsp must come from the
	 * exception frame, not from libunwind's CFA, or do_work's return address is lost. */
	cr_assert_eq(f[exc + 1].cfa, f[exc + 1].sp + 8);
	uint64_t ret;
	cr_assert_eq(read_ram(&c, f[exc + 1].sp, &ret, 8), 0);
	cr_assert_eq(f[exc + 2].pc, ret, "do_work's pc is the return address on the stack");

	/* page_fault ends in the call to triple_fault: its return address is past
	 * page_fault's end, and only pc - 1 names it. */
	cr_assert_str_eq(f[1].func, "page_fault");
	Elf64_Sym pf = symbol(c.elf, "page_fault");
	uint64_t off;
	cr_assert_eq(f[1].pc, pf.st_value + pf.st_size, "page_fault ends in the call");
	cr_assert_eq(f[1].off, pf.st_size);
	const char *at_pc = bt_symbolize(img, f[1].pc, &off);
	cr_assert(!at_pc || strcmp(at_pc, "page_fault"), "pc itself is not in page_fault");

	/* The stack grows down: sp and CFA increase through the calls. */
	for (int i = 0; i + 1 < n; i++) {
		cr_assert_neq(f[i].cfa, 0, "frame %d has no CFA", i);
		if (!f[i].signal_frame)
			cr_assert_eq(f[i + 1].sp, f[i].cfa, "frame %d", i + 1);
		cr_assert_gt(f[i + 1].sp, f[i].sp, "frame %d", i + 1);
	}

	/* The same walk over a RAM copy, and with fewer frames allowed. */
	struct bt_frame g[MAXF];
	cr_assert_eq(bt_unwind(img, &c.regs, read_ram, &c, g, MAXF), n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(g[i].pc, f[i].pc);
		cr_assert_eq(g[i].sp, f[i].sp);
		cr_assert_eq(g[i].cfa, f[i].cfa);
	}
	cr_assert_eq(bt_unwind(img, &c.regs, read_ram, &c, g, 3), 3);
	cr_assert_eq(bt_unwind(img, &c.regs, read_ram, &c, g, 1), 1);
	cr_assert_eq(bt_unwind(img, &c.regs, read_ram, &c, g, 0), -VMM_EINVAL);
	cr_assert_eq(bt_unwind(img, NULL, read_ram, &c, g, 4), -VMM_EINVAL);

	bt_image_free(img);
	crash_free(&c);
}

Test(backtrace, format)
{
	char buf[128];
	struct bt_frame f = {.pc = 0x101234, .func = "faulty", .off = 4};
	bt_format(&f, 0, buf, sizeof(buf));
	cr_assert_str_eq(buf, "#0  0x0000000000101234 in faulty+0x4");
	f.func = NULL;
	bt_format(&f, 12, buf, sizeof(buf));
	cr_assert_str_eq(buf, "#12 0x0000000000101234 in ??");
	f = (struct bt_frame){
	    .pc = 0x103671, .func = "isr_common", .off = 0x41, .signal_frame = true};
	bt_format(&f, 3, buf, sizeof(buf));
	cr_assert_str_eq(buf, "#3  0x0000000000103671 in isr_common+0x41 <exception frame>");
	bt_format(&f, 3, buf, 8);
	cr_assert_str_eq(buf, "#3  0x0");
	buf[0] = 'x';
	bt_format(&f, 3, buf, 0);
	cr_assert_eq(buf[0], 'x');
}

/* ---- images ------------------------------------------------------------------------------ */

Test(backtrace, bad_elf_is_an_error)
{
	struct bt_image *img = (struct bt_image *)1;
	uint8_t junk[256];
	memset(junk, 0x5a, sizeof(junk));
	cr_assert_eq(bt_image_open(junk, 0, &img), -VMM_EBADELF);
	cr_assert_null(img);
	cr_assert_eq(bt_image_open(NULL, 100, &img), -VMM_EBADELF);
	cr_assert_eq(bt_image_open(junk, sizeof(junk), &img), -VMM_EBADELF);
	cr_assert_neq(vmm_errdetail()[0], 0);

	void *elf;
	size_t len;
	load_elf("crash", &elf, &len);
	uint8_t *e = malloc(len);
	cr_assert(e);
	/* ELF32, big-endian, another machine. */
	const struct {
		size_t at;
		uint8_t v;
	} bad[] = {{EI_CLASS, ELFCLASS32},
		   {EI_DATA, ELFDATA2MSB},
		   {offsetof(Elf64_Ehdr, e_machine), EM_386}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(e, elf, len);
		e[bad[i].at] = bad[i].v;
		cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF, "case %zu", i);
	}
	/* Program headers pointing past the end. */
	memcpy(e, elf, len);
	((Elf64_Ehdr *)e)->e_phoff = len - 8;
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);
	/* Truncated anywhere in its headers, symbols or tables: an error, never a crash; the
	 * section headers are last in the file, so any cut loses them. */
	for (size_t cut = 0; cut < len; cut += cut < 256 ? 1 : 61) {
		int rc = bt_image_open(elf, cut, &img);
		cr_assert_eq(rc, -VMM_EBADELF, "cut at %zu: %d", cut, rc);
	}
	free(e);
	free(elf);
}

Test(backtrace, symbolize_known_symbols)
{
	void *elf;
	size_t len;
	load_elf("crash", &elf, &len);
	struct bt_image *img;
	cr_assert_eq(bt_image_open(elf, len, &img), 0, "%s", vmm_errdetail());
	const char *names[] = {"main",	       "do_work",	 "faulty",     "page_fault",
			       "triple_fault", "g_isr_dispatch", "isr_common", "g_start",
			       "long_entry",   "g_pvh_entry"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		Elf64_Sym s = symbol(elf, names[i]);
		uint64_t off = 99;
		cr_assert_gt(s.st_size, 0, "%s", names[i]);
		cr_assert_str_eq(bt_symbolize(img, s.st_value, &off), names[i]);
		cr_assert_eq(off, 0);
		cr_assert_str_eq(bt_symbolize(img, s.st_value + s.st_size - 1, &off), names[i]);
		cr_assert_eq(off, s.st_size - 1);
		cr_assert_str_eq(bt_symbolize(img, s.st_value + 1, NULL), names[i]);
	}
	/* isr.S's stubs are one untyped label: it covers all 256 of them. */
	Elf64_Sym stubs = symbol(elf, "g_isr_stubs");
	uint64_t off;
	cr_assert_str_eq(bt_symbolize(img, stubs.st_value + 16 * 14 + 2, &off), "g_isr_stubs");
	cr_assert_eq(off, 16 * 14 + 2);
	/* Data, nothing, and far away have no name. */
	cr_assert_null(bt_symbolize(img, symbol(elf, "g_gdt").st_value, &off));
	cr_assert_null(bt_symbolize(img, 0, &off));
	cr_assert_null(bt_symbolize(img, 0x1000, &off));
	cr_assert_null(bt_symbolize(img, UINT64_MAX, &off));
	cr_assert_null(bt_symbolize(NULL, 0x100000, &off));
	bt_image_free(img);
	bt_image_free(NULL);
	free(elf);
}

Test(backtrace, no_unwind_tables_gives_frame_0, .timeout = 60)
{
	struct crash c;
	crash_run(&c);
	void *e = dup_elf(&c);
	phdr(e, PT_GNU_EH_FRAME)->p_type = PT_NULL;
	struct bt_image *img;
	cr_assert_eq(bt_image_open(e, c.len, &img), 0, "%s", vmm_errdetail());
	struct bt_frame f[MAXF];
	cr_assert_eq(bt_unwind(img, &c.regs, read_ram, &c, f, MAXF), 1);
	cr_assert_str_eq(f[0].func, "triple_fault");
	bt_image_free(img);

	/* Stripped of section headers: no names, unwinding still works. */
	memcpy(e, c.elf, c.len);
	((Elf64_Ehdr *)e)->e_shoff = 0;
	((Elf64_Ehdr *)e)->e_shnum = 0;
	cr_assert_eq(bt_image_open(e, c.len, &img), 0, "%s", vmm_errdetail());
	int n = bt_unwind(img, &c.regs, read_ram, &c, f, MAXF);
	cr_assert_geq(n, 8);
	cr_assert_null(f[0].func);
	cr_assert_eq(f[0].pc, c.regs.rip);
	bt_image_free(img);
	free(e);
	crash_free(&c);
}

Test(backtrace, pc_outside_any_fde_is_frame_0_only, .timeout = 60)
{
	struct crash c;
	crash_run(&c);
	struct bt_image *img;
	cr_assert_eq(bt_image_open(c.elf, c.len, &img), 0, "%s", vmm_errdetail());
	/* Just past isr_common (the last FDE, a signal frame's), in data, nowhere: no
	 * exception frame is made up from the nearest FDE below. */
	Elf64_Sym isr = symbol(c.elf, "isr_common");
	const uint64_t pcs[] = {isr.st_value + isr.st_size + 3, symbol(c.elf, "g_gdt").st_value, 0,
				UINT64_MAX};
	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		struct vmm_regs r = c.regs;
		r.rip = pcs[i];
		struct bt_frame f[MAXF];
		cr_assert_eq(bt_unwind(img, &r, read_ram, &c, f, MAXF), 1, "pc 0x%" PRIx64, pcs[i]);
		cr_assert_eq(f[0].pc, pcs[i]);
		cr_assert(!f[0].signal_frame, "pc 0x%" PRIx64, pcs[i]);
	}
	bt_image_free(img);
	crash_free(&c);
}

/* ---- unreadable stacks ----------------------------------------------------------------- */

Test(backtrace, unreadable_stack_gives_frame_0, .timeout = 60)
{
	struct crash c;
	crash_run(&c);
	struct bt_image *img;
	cr_assert_eq(bt_image_open(c.elf, c.len, &img), 0, "%s", vmm_errdetail());
	struct bt_frame full[MAXF], f[MAXF];
	int n = bt_unwind(img, &c.regs, read_ram, &c, full, MAXF);
	cr_assert_geq(n, 8);

	cr_assert_eq(bt_unwind(img, &c.regs, read_never, NULL, f, MAXF), 1);
	cr_assert_str_eq(f[0].func, "triple_fault");

	/* Fail the Nth read for every N: a prefix of the full backtrace, never more. */
	for (int k = 0;; k++) {
		struct fail_nth fn = {&c, k, 0};
		int m = bt_unwind(img, &c.regs, read_fail_nth, &fn, f, MAXF);
		cr_assert(m >= 1 && m <= n, "failing read %d: %d frames", k, m);
		for (int i = 0; i < m; i++) {
			cr_assert_eq(f[i].pc, full[i].pc, "failing read %d, frame %d", k, i);
			cr_assert_eq(f[i].sp, full[i].sp, "failing read %d, frame %d", k, i);
		}
		if (fn.calls <= k) { /* it never got to fail */
			cr_assert_eq(m, n);
			break;
		}
		cr_assert_lt(k, 1000);
	}

	/* A stack of garbage: whatever comes out is bounded, no crash. */
	struct vmm_regs r = c.regs;
	uint8_t *save = malloc(0x10000);
	cr_assert(save);
	uint64_t base = r.rsp & ~0xfffull;
	memcpy(save, c.ram + base, 0x10000);
	for (int seed = 1; seed <= 64; seed++) {
		uint32_t x = (uint32_t)seed * 2654435761u;
		for (size_t i = 0; i < 0x10000; i++) {
			x = x * 1103515245u + 12345u;
			c.ram[base + i] = (uint8_t)(x >> 16);
		}
		int m = bt_unwind(img, &r, read_ram, &c, f, MAXF);
		cr_assert(m >= 1 && m <= MAXF);
	}
	memcpy(c.ram + base, save, 0x10000);
	/* A stack that points at itself. */
	for (uint64_t a = r.rsp; a < r.rsp + 0x400; a += 8)
		memcpy(c.ram + a, &r.rsp, 8);
	r.rbp = r.rsp;
	int m = bt_unwind(img, &r, read_ram, &c, f, MAXF);
	cr_assert(m >= 1 && m < MAXF, "%d frames", m);
	free(save);
	bt_image_free(img);
	crash_free(&c);
}

/* ---- corrupt tables -------------------------------------------------------------------- */

Test(backtrace, corrupt_eh_frame_hdr_is_an_error, .timeout = 60)
{
	void *elf;
	size_t len;
	load_elf("crash", &elf, &len);
	uint8_t *e = malloc(len);
	cr_assert(e);
	struct bt_image *img;
	Elf64_Phdr eh = *phdr(elf, PT_GNU_EH_FRAME);

	memcpy(e, elf, len);
	e[eh.p_offset] = 2; /* version */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);
	cr_assert(strstr(vmm_errdetail(), "eh_frame_hdr"), "%s", vmm_errdetail());

	memcpy(e, elf, len);
	e[eh.p_offset + 3] = 0x03; /* table encoding: udata4, unsearchable */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	uint32_t big = 0x10000000;
	memcpy(e + eh.p_offset + 8, &big, 4); /* fde_count past the end */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	phdr(e, PT_GNU_EH_FRAME)->p_filesz = 2; /* truncated header */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	phdr(e, PT_GNU_EH_FRAME)->p_filesz = 16; /* a table cut short */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	phdr(e, PT_GNU_EH_FRAME)->p_vaddr = 0x7000000; /* not in any loaded segment */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	int32_t far = 0x40000000;
	memcpy(e + eh.p_offset + 12 + 4, &far, 4); /* first entry's FDE outside */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	memcpy(e, elf, len);
	int32_t late = 0x7fffffff;
	memcpy(e + eh.p_offset + 12, &late, 4); /* entries out of order */
	cr_assert_eq(bt_image_open(e, len, &img), -VMM_EBADELF);

	free(e);
	free(elf);
}

/*
 * Every byte of .eh_frame_hdr and .eh_frame flipped: bt_image_open fails cleanly, or the
 * walk gives at least frame 0, never more than the limit, and never crashes.
 */
Test(backtrace, every_table_byte_flipped_never_crashes, .timeout = 120)
{
	struct crash c;
	crash_run(&c);
	void *e = dup_elf(&c);
	const Elf64_Shdr *secs[] = {section(c.elf, ".eh_frame_hdr"), section(c.elf, ".eh_frame")};
	int opened = 0, failed = 0, full = 0;
	struct bt_frame f[MAXF];
	for (size_t s = 0; s < 2; s++) {
		for (uint64_t i = 0; i < secs[s]->sh_size; i++) {
			uint64_t at = secs[s]->sh_offset + i;
			for (int v = 0; v < 2; v++) {
				uint8_t *b = (uint8_t *)e + at;
				*b = v ? (uint8_t)(*b ^ 0xff) : (uint8_t)(*b + 1);
				struct bt_image *img;
				int rc = bt_image_open(e, c.len, &img);
				if (rc < 0) {
					cr_assert_eq(rc, -VMM_EBADELF, "byte %" PRIu64, at);
					failed++;
				} else {
					opened++;
					int n = bt_unwind(img, &c.regs, read_ram, &c, f, MAXF);
					cr_assert(n >= 1 && n <= MAXF, "byte %" PRIu64 ": %d", at,
						  n);
					full += n >= 8;
					bt_image_free(img);
				}
				memcpy(e, c.elf, c.len);
			}
		}
	}
	cr_log_info("flipped table bytes: %d opened (%d still unwound fully), %d refused", opened,
		    full, failed);
	cr_assert_gt(opened, 0);
	cr_assert_gt(failed, 0);
	free(e);
	crash_free(&c);
}

/* ---- every position of a run ------------------------------------------------------------ */

/*
 * Stop the guest at every stride-th position to its end and unwind there: the walk must
 * end at long_entry, unless frame 0 is where no CFI can be (the 32-bit PVH entry before
 * long mode, the ISR stubs). Returns the number of stops with nested exception frames.
 */
static long walk_guest(const char *guest, const char *cmdline, uint64_t stride)
{
	void *elf;
	size_t len;
	load_elf(guest, &elf, &len);
	struct vmm_live *live;
	struct vmm_live_config lc = {.in_fd = -1, .virtual_clock = true};
	cr_assert_eq(vmm_live_create(&lc, &live), 0, "%s", vmm_errdetail());
	struct vmm_config cfg = {.mem_size = RAM,
				 .backend = &emu_cpu_ops,
				 .input = &vmm_live_input_ops,
				 .input_opaque = live};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_load(m, elf, len, cmdline), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_live_start(live, m), 0, "%s", vmm_errdetail());
	struct bt_image *img;
	cr_assert_eq(bt_image_open(elf, len, &img), 0, "%s", vmm_errdetail());

	long stops = 0, deep = 0, nested = 0;
	for (;;) {
		struct vmm_stop st;
		cr_assert_eq(vmm_machine_run_until(m, vmm_machine_pos(m) + stride, &st), 0, "%s",
			     vmm_errdetail());
		if (st.reason != VMM_STOP_LIMIT)
			break;
		stops++;
		struct vmm_regs r;
		cr_assert_eq(vmm_machine_backend(m)->get_regs(vmm_machine_cpu(m), &r), 0);
		struct bt_frame f[MAXF];
		int n = bt_unwind(img, &r, read_machine, m, f, MAXF);
		cr_assert(n >= 1 && n < MAXF, "%s at %" PRIu64 ": %d frames", guest, st.pos, n);
		const char *f0 = name_or(&f[0]), *last = name_or(&f[n - 1]);
		if (strcmp(last, "long_entry") && strcmp(f0, "g_pvh_entry") &&
		    strcmp(f0, "g_isr_stubs")) {
			log_frames(f, n);
			cr_assert_fail("%s at position %" PRIu64 ": the walk stops at %s", guest,
				       st.pos, last);
		}
		int exc = 0;
		for (int i = 0; i < n; i++)
			exc += f[i].signal_frame;
		deep += n >= 5;
		nested += exc >= 2;
	}
	cr_log_info("%s: %ld stops, %ld with 5 frames or more, %ld in nested interrupts", guest,
		    stops, deep, nested);
	cr_assert_gt(deep, 0);
	bt_image_free(img);
	vmm_live_destroy(live);
	vmm_machine_destroy(m);
	free(elf);
	return nested;
}

Test(backtrace, every_position_of_timer_unwinds_to_the_entry, .timeout = 120)
{
	walk_guest("timer", "ticks=20", 1);
}

Test(backtrace, every_position_of_crash_unwinds_to_the_entry, .timeout = 120)
{
	walk_guest("crash", "", 1);
}

Test(backtrace, nested_interrupts_unwind_to_the_entry, .timeout = 180)
{
	/* conform_irq nests software interrupts three deep ("abcCBA"); every 31st position
	 * (its run is deterministic on the virtual clock) lands inside that a few times. */
	cr_assert_gt(walk_guest("conform_irq", "", 31), 0, "no stop inside nested interrupts");
}

/* ---- threads ------------------------------------------------------------------------------ */

struct shared {
	struct bt_image *img;
	struct crash *c;
	struct bt_frame want[MAXF];
	int n;
	int bad;
};

static void *unwind_many(void *arg)
{
	struct shared *s = arg;
	for (int k = 0; k < 2000; k++) {
		struct bt_frame f[MAXF];
		int n = bt_unwind(s->img, &s->c->regs, read_ram, s->c, f, MAXF);
		bool same = n == s->n;
		for (int i = 0; same && i < n; i++)
			same = f[i].pc == s->want[i].pc && f[i].sp == s->want[i].sp &&
			       f[i].func == s->want[i].func;
		if (!same)
			__atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(backtrace, threads_share_an_image, .timeout = 120)
{
	struct crash c;
	crash_run(&c);
	struct shared s = {.c = &c};
	cr_assert_eq(bt_image_open(c.elf, c.len, &s.img), 0, "%s", vmm_errdetail());
	s.n = bt_unwind(s.img, &c.regs, read_ram, &c, s.want, MAXF);
	cr_assert_geq(s.n, 8);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, unwind_many, &s), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(s.bad, 0, "%d walks differed", s.bad);
	bt_image_free(s.img);
	crash_free(&c);
}
