/* standalone */
/*
 * test_gdbregs.c: debugger/gdbregs.c: the register table (count, names, sizes, offsets),
 * 'g'/'p' encodings of known values, 'G'/'P' round trips for every register, bad lengths
 * and digits; then real gdb: it must accept target.xml for i386:x86-64 with the same
 * numbers, sizes and 'g' offsets as ours (maint print remote-registers), and a whole
 * session of real gdb against a small fake stub built on gdbproto (handshake, target.xml
 * over qXfer, registers incl. $cr3, memory, stepping, reverse-step, watchpoints,
 * monitor, detach). Skips the gdb parts, saying why, where gdb is not installed.
 *
 * With REWIND_GDB_CAPTURE=DIR set, the fake stub writes every byte gdb sent into DIR/,
 * one file per session: that is how tests/debugger/corpus/ was seeded.
 */
#include "debugger/gdbproto.c"
#include "debugger/gdbregs.c"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A register file where every byte differs, so a misplaced register shows. */
static void fill(struct vmm_regs *r, struct vmm_fpregs *f, uint8_t seed)
{
	uint8_t *p = (uint8_t *)r;

	for (size_t i = 0; i < sizeof(*r); i++)
		p[i] = (uint8_t)(seed + i * 7);
	p = (uint8_t *)f;
	for (size_t i = 0; i < sizeof(*f); i++)
		p[i] = (uint8_t)(seed + 3 + i * 5);
	r->rflags &= 0xffffffff; /* what gdb shows of it is all there is */
}

/* The value of register regno read straight from the structs, as gdb's bytes. */
static size_t expect_bytes(unsigned regno, const struct vmm_regs *r, const struct vmm_fpregs *f,
			   uint8_t *b)
{
	static const struct vmm_seg *segs[6];
	const uint64_t gpr[17] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				  r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
				  r->r12, r->r13, r->r14, r->r15, r->rip};
	const uint32_t fx[8] = {f->fctrl, f->fstat, f->ftag,  f->fiseg,
				f->fioff, f->foseg, f->fooff, f->fop};
	const uint64_t sys[9] = {r->fs_base, r->gs_base, r->kernel_gs_base,
				 r->cr0,     r->cr2,	 r->cr3,
				 r->cr4,     r->cr8,	 r->efer};
	uint64_t v;
	size_t n;

	segs[0] = &r->cs;
	segs[1] = &r->ss;
	segs[2] = &r->ds;
	segs[3] = &r->es;
	segs[4] = &r->fs;
	segs[5] = &r->gs;
	if (regno <= 16) {
		v = gpr[regno];
		n = 8;
	} else if (regno == 17) {
		v = r->rflags & 0xffffffff;
		n = 4;
	} else if (regno <= 23) {
		v = segs[regno - 18]->sel;
		n = 4;
	} else if (regno <= 31) {
		memcpy(b, f->st[regno - 24], 10);
		return 10;
	} else if (regno <= 39) {
		v = fx[regno - 32];
		n = 4;
	} else if (regno <= 55) {
		memcpy(b, f->xmm[regno - 40], 16);
		return 16;
	} else if (regno == 56) {
		v = f->mxcsr;
		n = 4;
	} else {
		v = sys[regno - 57];
		n = 8;
	}
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return n;
}

Test(gdbregs, table)
{
	unsigned total = 0;

	cr_assert_eq(gdb_reg_count(), 66);
	cr_assert_eq(gdb_reg_count(), GDB_REG_COUNT);
	for (unsigned i = 0; i < gdb_reg_count(); i++) {
		const char *n = gdb_reg_name(i);

		cr_assert_not_null(n);
		cr_assert_eq(gdb_reg_by_name(n), (int)i, "%s", n);
		cr_assert_eq(gdb_reg_offset(i), (int)total);
		cr_assert(gdb_reg_size(i) > 0 && gdb_reg_size(i) <= 16);
		total += gdb_reg_size(i);
	}
	cr_assert_eq(total, GDB_REGS_BYTES);
	cr_assert_null(gdb_reg_name(66));
	cr_assert_eq(gdb_reg_size(66), 0);
	cr_assert_eq(gdb_reg_offset(66), -1);
	cr_assert_eq(gdb_reg_by_name("nope"), -1);
	cr_assert_eq(gdb_reg_by_name(""), -1);
	cr_assert_eq(gdb_reg_by_name(NULL), -1);
	cr_assert_eq(gdb_reg_by_name("RIP"), -1);

	static const struct {
		const char *name;
		int regno;
		unsigned size;
	} want[] = {
	    {"rax", GDB_REG_RAX, 8},	     {"rsp", GDB_REG_RSP, 8},
	    {"r8", GDB_REG_R8, 8},	     {"r15", GDB_REG_R15, 8},
	    {"rip", GDB_REG_RIP, 8},	     {"eflags", GDB_REG_EFLAGS, 4},
	    {"cs", GDB_REG_CS, 4},	     {"gs", GDB_REG_GS, 4},
	    {"st0", GDB_REG_ST0, 10},	     {"st7", GDB_REG_ST0 + 7, 10},
	    {"fctrl", GDB_REG_FCTRL, 4},     {"fop", GDB_REG_FOP, 4},
	    {"xmm0", GDB_REG_XMM0, 16},	     {"xmm15", GDB_REG_XMM0 + 15, 16},
	    {"mxcsr", GDB_REG_MXCSR, 4},     {"fs_base", GDB_REG_FS_BASE, 8},
	    {"gs_base", GDB_REG_GS_BASE, 8}, {"k_gs_base", GDB_REG_K_GS_BASE, 8},
	    {"cr0", GDB_REG_CR0, 8},	     {"cr2", GDB_REG_CR2, 8},
	    {"cr3", GDB_REG_CR3, 8},	     {"cr4", GDB_REG_CR4, 8},
	    {"cr8", GDB_REG_CR8, 8},	     {"efer", GDB_REG_EFER, 8},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert_eq(gdb_reg_by_name(want[i].name), want[i].regno, "%s", want[i].name);
		cr_assert_eq(gdb_reg_size((unsigned)want[i].regno), want[i].size, "%s",
			     want[i].name);
	}
	cr_assert_eq(GDB_REG_RIP, 16);
	cr_assert_eq(GDB_REG_EFLAGS, 17);
	cr_assert_eq(GDB_REG_CS, 18);
	cr_assert_eq(GDB_REG_FS_BASE, 57);
	cr_assert_eq(GDB_REG_CR3, 62);
	cr_assert_eq(GDB_REG_EFER, 65);
}

Test(gdbregs, known_encodings)
{
	struct vmm_regs r = {0};
	struct vmm_fpregs f = {0};
	char out[64];

	r.rip = 0x1122334455667788ull;
	r.rflags = 0x246;
	r.cs.sel = 0x10;
	r.cs.base = 0xdead; /* not shown */
	r.cr3 = 0x123000;
	f.mxcsr = 0x1f80;
	f.st[0][9] = 0x3f;
	f.xmm[3][0] = 0xaa;
	f.xmm[3][15] = 0x55;
	cr_assert_eq(gdb_reg_encode(GDB_REG_RIP, &r, &f, out, sizeof(out)), 16);
	cr_assert_str_eq(out, "8877665544332211");
	cr_assert_eq(gdb_reg_encode(GDB_REG_EFLAGS, &r, &f, out, sizeof(out)), 8);
	cr_assert_str_eq(out, "46020000");
	cr_assert_eq(gdb_reg_encode(GDB_REG_CS, &r, &f, out, sizeof(out)), 8);
	cr_assert_str_eq(out, "10000000");
	cr_assert_eq(gdb_reg_encode(GDB_REG_CR3, &r, &f, out, sizeof(out)), 16);
	cr_assert_str_eq(out, "0030120000000000");
	cr_assert_eq(gdb_reg_encode(GDB_REG_MXCSR, &r, &f, out, sizeof(out)), 8);
	cr_assert_str_eq(out, "801f0000");
	cr_assert_eq(gdb_reg_encode(GDB_REG_ST0, &r, &f, out, sizeof(out)), 20);
	cr_assert_str_eq(out, "0000000000000000003f");
	cr_assert_eq(gdb_reg_encode(GDB_REG_XMM0 + 3, &r, &f, out, sizeof(out)), 32);
	cr_assert_str_eq(out, "aa000000000000000000000000000055");
	/* Bounds. */
	cr_assert_eq(gdb_reg_encode(66, &r, &f, out, sizeof(out)), -1);
	cr_assert_eq(gdb_reg_encode(UINT32_MAX, &r, &f, out, sizeof(out)), -1);
	cr_assert_eq(gdb_reg_encode(GDB_REG_RIP, &r, &f, out, 15), 0);
	cr_assert_eq(gdb_reg_encode(GDB_REG_RIP, &r, &f, out, 16), 16); /* no room for NUL */
}

Test(gdbregs, g_packet_is_every_register_in_order)
{
	struct vmm_regs r;
	struct vmm_fpregs f;
	static char g[2 * GDB_REGS_BYTES + 1];
	char one[40], want[40];
	uint8_t b[16];

	fill(&r, &f, 1);
	cr_assert_eq(gdb_regs_encode(&r, &f, g, sizeof(g)), 2 * GDB_REGS_BYTES);
	cr_assert_eq(strlen(g), 2 * GDB_REGS_BYTES);
	for (unsigned i = 0; i < GDB_REG_COUNT; i++) {
		int n = gdb_reg_encode(i, &r, &f, one, sizeof(one));
		size_t en = expect_bytes(i, &r, &f, b);

		cr_assert_eq((size_t)n, 2 * gdb_reg_size(i));
		cr_assert_eq(en, gdb_reg_size(i), "%s", gdb_reg_name(i));
		gdb_hex_encode(b, en, want);
		want[2 * en] = '\0';
		cr_assert_str_eq(one, want, "%s", gdb_reg_name(i));
		cr_assert_eq(memcmp(g + 2 * gdb_reg_offset(i), one, (size_t)n), 0, "%s",
			     gdb_reg_name(i));
	}
	cr_assert_eq(gdb_regs_encode(&r, &f, g, 2 * GDB_REGS_BYTES - 1), 0);
	cr_assert_eq(gdb_regs_encode(&r, &f, g, 2 * GDB_REGS_BYTES), 2 * GDB_REGS_BYTES);
}

/* The fields gdb cannot see must survive a G. */
static void assert_hidden_kept(const struct vmm_regs *a, const struct vmm_regs *b)
{
	const struct vmm_seg *sa[] = {&a->cs, &a->ds, &a->es, &a->fs, &a->gs, &a->ss};
	const struct vmm_seg *sb[] = {&b->cs, &b->ds, &b->es, &b->fs, &b->gs, &b->ss};

	for (int i = 0; i < 6; i++) {
		cr_assert_eq(sa[i]->base, sb[i]->base);
		cr_assert_eq(sa[i]->limit, sb[i]->limit);
		cr_assert_eq(sa[i]->attr, sb[i]->attr);
	}
	cr_assert_eq(memcmp(&a->tr, &b->tr, sizeof(a->tr)), 0);
	cr_assert_eq(memcmp(&a->ldt, &b->ldt, sizeof(a->ldt)), 0);
	cr_assert_eq(a->gdt.base, b->gdt.base);
	cr_assert_eq(a->idt.limit, b->idt.limit);
}

Test(gdbregs, G_round_trip)
{
	struct vmm_regs a, b;
	struct vmm_fpregs fa, fb;
	static char g[2 * GDB_REGS_BYTES + 1], g2[2 * GDB_REGS_BYTES + 1];

	fill(&a, &fa, 1);
	fill(&b, &fb, 99);
	cr_assert_eq(gdb_regs_encode(&a, &fa, g, sizeof(g)), 2 * GDB_REGS_BYTES);
	/* Segment selectors are 16 bits: the fill put bytes above them in the encoding
	 * only if the selector itself is wide; it is not. Decode into b. */
	struct vmm_regs keep = b;
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES, &b, &fb), 0);
	cr_assert_eq(gdb_regs_encode(&b, &fb, g2, sizeof(g2)), 2 * GDB_REGS_BYTES);
	cr_assert_str_eq(g, g2);
	assert_hidden_kept(&b, &keep);
	cr_assert_eq(b.rip, a.rip);
	cr_assert_eq(b.r13, a.r13);
	cr_assert_eq(b.cr3, a.cr3);
	cr_assert_eq(b.kernel_gs_base, a.kernel_gs_base);
	cr_assert_eq(b.ss.sel, a.ss.sel);
	cr_assert_eq(memcmp(&fb, &fa, sizeof(fa)), 0);
	/* Upper case too. */
	for (size_t i = 0; i < 2 * GDB_REGS_BYTES; i++)
		if (g[i] >= 'a' && g[i] <= 'f')
			g[i] = (char)(g[i] - 'a' + 'A');
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES, &b, &fb), 0);
	cr_assert_eq(b.rip, a.rip);
}

Test(gdbregs, P_round_trip_every_register)
{
	struct vmm_regs a, b;
	struct vmm_fpregs fa, fb;
	char hex[40], back[40];

	fill(&a, &fa, 5);
	for (unsigned i = 0; i < GDB_REG_COUNT; i++) {
		fill(&b, &fb, 77);
		struct vmm_regs rb = b;
		struct vmm_fpregs fbb = fb;
		int n = gdb_reg_encode(i, &a, &fa, hex, sizeof(hex));

		cr_assert_gt(n, 0);
		cr_assert_eq(gdb_reg_decode(i, hex, (size_t)n, &b, &fb), 0, "%s", gdb_reg_name(i));
		cr_assert_eq(gdb_reg_encode(i, &b, &fb, back, sizeof(back)), n);
		cr_assert_str_eq(back, hex, "%s", gdb_reg_name(i));
		/* Only that register changed: every other one reads as before. */
		for (unsigned j = 0; j < GDB_REG_COUNT; j++) {
			char x[40], y[40];

			if (j == i)
				continue;
			gdb_reg_encode(j, &b, &fb, x, sizeof(x));
			gdb_reg_encode(j, &rb, &fbb, y, sizeof(y));
			cr_assert_str_eq(x, y, "writing %s changed %s", gdb_reg_name(i),
					 gdb_reg_name(j));
		}
		assert_hidden_kept(&b, &rb);
	}
}

Test(gdbregs, bad_input_changes_nothing)
{
	struct vmm_regs r, r0;
	struct vmm_fpregs f, f0;
	static char g[2 * GDB_REGS_BYTES + 2];

	fill(&r, &f, 3);
	r0 = r;
	f0 = f;
	cr_assert_eq(gdb_reg_decode(GDB_REG_RIP, "00112233445566", 14, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(GDB_REG_RIP, "001122334455667788", 18, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(GDB_REG_RIP, "001122334455667g", 16, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(GDB_REG_RIP, "", 0, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(66, "00", 2, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(UINT32_MAX, "00", 2, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(GDB_REG_CS, "00000100", 8, &r, &f), -1); /* 0x10000 */
	cr_assert_eq(gdb_reg_decode(GDB_REG_EFLAGS, "4602", 4, &r, &f), -1);
	cr_assert_eq(gdb_reg_decode(GDB_REG_ST0, "000000000000000000", 18, &r, &f), -1);
	cr_assert_eq(memcmp(&r, &r0, sizeof(r)), 0);
	cr_assert_eq(memcmp(&f, &f0, sizeof(f)), 0);

	cr_assert_eq(gdb_regs_encode(&r, &f, g, sizeof(g)), 2 * GDB_REGS_BYTES);
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES - 2, &r, &f), -1);
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES - 1, &r, &f), -1);
	g[2 * GDB_REGS_BYTES] = '0';
	g[2 * GDB_REGS_BYTES + 1] = '0';
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES + 2, &r, &f), -1);
	/* A bad digit in the last register, and a wide selector: nothing applied. */
	struct vmm_regs z = {0};
	struct vmm_fpregs zf = {0};
	cr_assert_eq(gdb_regs_encode(&z, &zf, g, sizeof(g)), 2 * GDB_REGS_BYTES);
	g[2 * GDB_REGS_BYTES - 1] = 'x';
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES, &r, &f), -1);
	g[2 * GDB_REGS_BYTES - 1] = '0';
	g[2 * gdb_reg_offset(GDB_REG_GS) + 4] = '1'; /* gs = 0x10000 */
	cr_assert_eq(gdb_regs_decode(g, 2 * GDB_REGS_BYTES, &r, &f), -1);
	cr_assert_eq(memcmp(&r, &r0, sizeof(r)), 0);
	cr_assert_eq(memcmp(&f, &f0, sizeof(f)), 0);
	/* eflags writes the whole of rflags (its upper half is reserved, zero). */
	r.rflags = 0xffffffff00000002ull;
	cr_assert_eq(gdb_reg_decode(GDB_REG_EFLAGS, "02020000", 8, &r, &f), 0);
	cr_assert_eq(r.rflags, 0x202);
}

Test(gdbregs, target_xml)
{
	size_t n = 0;
	const char *x = gdb_target_xml("target.xml", &n);

	cr_assert_not_null(x);
	cr_assert_eq(n, strlen(x));
	cr_assert_not_null(gdb_target_xml("target.xml", NULL));
	cr_assert_null(gdb_target_xml("64bit-core.xml", &n));
	cr_assert_null(gdb_target_xml("", &n));
	cr_assert_null(gdb_target_xml(NULL, &n));
	cr_assert_not_null(strstr(x, "<architecture>i386:x86-64</architecture>"));
	/* Every register is there, in order, with its size. */
	const char *p = x;
	for (unsigned i = 0; i < GDB_REG_COUNT; i++) {
		char want[64];

		snprintf(want, sizeof(want), "<reg name=\"%s\" bitsize=\"%u\"", gdb_reg_name(i),
			 8 * gdb_reg_size(i));
		p = strstr(p, want);
		cr_assert_not_null(p, "%s missing or out of order", want);
	}
	/* Nothing gdb_frame would have to escape, so a qXfer reply is the text itself. */
	cr_assert_null(strpbrk(x, "$#}*"));
}

/* ---- real gdb ---- */

static bool have_gdb(char *why, size_t n)
{
	FILE *p = popen("gdb --version 2>&1", "r");
	char line[256] = "";

	if (!p) {
		snprintf(why, n, "popen: %s", strerror(errno));
		return false;
	}
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	if (pclose(p) != 0 || strncmp(line, "GNU gdb", 7) != 0) {
		snprintf(why, n, "gdb not installed (apt-get install gdb) or not runnable: %.100s",
			 line);
		return false;
	}
	return true;
}

/* Run a shell command, return its output (stdout and stderr) in a malloc'd string. */
static char *run(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	size_t cap = 1 << 16, n = 0, k;
	char *out = malloc(cap);

	cr_assert_not_null(p);
	while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
		n += k;
		if (cap - n < 4096) {
			cap *= 2;
			out = realloc(out, cap);
		}
	}
	out[n] = '\0';
	pclose(p);
	return out;
}

Test(gdbregs, gdb_accepts_target_xml, .timeout = 60)
{
	char why[200], dir[] = "/tmp/rewind-tdesc-XXXXXX", path[128], cmd[512];
	struct vmm_regs r;
	struct vmm_fpregs f;
	static char g[2 * GDB_REGS_BYTES + 1];
	size_t n;
	const char *x = gdb_target_xml("target.xml", &n);
	FILE *fp;

	if (!have_gdb(why, sizeof(why)))
		cr_skip_test("%s", why);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/target.xml", dir);
	fp = fopen(path, "w");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(x, 1, n, fp), n);
	fclose(fp);
	snprintf(cmd, sizeof(cmd),
		 "timeout 50 gdb -nx -batch -ex 'set architecture i386:x86-64' "
		 "-ex 'set tdesc filename %s' -ex 'maint print remote-registers' 2>&1",
		 path);
	char *out = run(cmd);
	unlink(path);
	rmdir(dir);

	cr_assert_null(strstr(out, "warning"), "gdb warned about target.xml:\n%s", out);
	cr_assert_null(strstr(out, "rror"), "gdb:\n%s", out);

	/* " Name Nr Rel Offset Size Type Rmt-Nr g/G-Offset": registers gdb transfers. */
	bool seen[GDB_REG_COUNT] = {false};
	unsigned remote = 0;
	fill(&r, &f, 9);
	cr_assert_eq(gdb_regs_encode(&r, &f, g, sizeof(g)), 2 * GDB_REGS_BYTES);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char name[64], type[64], one[40];
		int nr, rel, off, size, rnr, goff;

		if (sscanf(line, "%63s %d %d %d %d %63s %d %d", name, &nr, &rel, &off, &size, type,
			   &rnr, &goff) != 8)
			continue;
		remote++;
		cr_assert(rnr >= 0 && (unsigned)rnr < GDB_REG_COUNT, "%s", line);
		cr_assert_not(seen[rnr], "%s: remote number twice", line);
		seen[rnr] = true;
		cr_assert_str_eq(name, gdb_reg_name((unsigned)rnr), "%s", line);
		cr_assert_eq(gdb_reg_by_name(name), rnr, "%s", line);
		cr_assert_eq((unsigned)size, gdb_reg_size((unsigned)rnr), "%s", line);
		cr_assert_eq(goff, gdb_reg_offset((unsigned)rnr), "%s", line);
		/* What gdb will take from the 'g' packet at that offset is the register. */
		int k = gdb_reg_encode((unsigned)rnr, &r, &f, one, sizeof(one));
		cr_assert_eq(memcmp(g + 2 * goff, one, (size_t)k), 0, "%s", line);
		/* gdb's own numbers agree up to the system registers it does not know. */
		if (rnr <= GDB_REG_MXCSR)
			cr_assert_eq(nr, rnr, "%s", line);
	}
	cr_assert_eq(remote, gdb_reg_count(), "gdb transfers %u registers, we %u:\n%s", remote,
		     gdb_reg_count(), out);
	free(out);
}

/*
 * A fake stub: one connection, a fixed register file, 4 KiB of memory at 0x1000, the
 * replies a single-threaded target gives. Enough for gdb to run a session; what it does
 * with each command is checked afterwards.
 */
#define FAKE_MEM 0x1000

struct fake {
	int lfd, port;
	struct vmm_regs r;
	struct vmm_fpregs f;
	uint8_t mem[0x1000];
	unsigned seen[GDB_CMD_MUST_REPLY_EMPTY + 1];
	unsigned bad_checksums, nacks;
	bool noack;
	uint64_t watch_addr;
	int watch_type;	  /* -1: none */
	int bp_at_1010;	  /* the Z type of a breakpoint there, -1: none */
	unsigned z_types; /* bit n: a Zn was inserted */
	char features[256];
	FILE *capture;
};

static int fake_send(int fd, const char *payload, size_t n)
{
	static char framed[GDB_FRAME_MAX];
	size_t fl = gdb_frame(payload, n, framed, sizeof(framed));

	if (fl == 0)
		return -1;
	return write(fd, framed, fl) == (ssize_t)fl ? 0 : -1;
}

/* Answer one command; false when the session is over. */
static bool fake_answer(struct fake *fk, int fd, struct gdb_cmd *c)
{
	static char out[GDB_PACKET_MAX + 1];
	size_t n = 0;
	const char *doc;
	size_t doclen;

	if (c->kind <= GDB_CMD_MUST_REPLY_EMPTY)
		fk->seen[c->kind]++;
	switch (c->kind) {
	case GDB_CMD_UNKNOWN:
	case GDB_CMD_MUST_REPLY_EMPTY:
		break;
	case GDB_CMD_MALFORMED:
		n = (size_t)snprintf(out, sizeof(out), "E01");
		break;
	case GDB_CMD_SUPPORTED:
		snprintf(fk->features, sizeof(fk->features), "%s", c->text);
		n = (size_t)snprintf(out, sizeof(out), "%s", GDB_SUPPORTED_REPLY);
		break;
	case GDB_CMD_NOACK:
		n = (size_t)snprintf(out, sizeof(out), "OK");
		break;
	case GDB_CMD_XFER_FEATURES:
		doc = gdb_target_xml(c->text, &doclen);
		if (!doc)
			n = (size_t)snprintf(out, sizeof(out), "E00");
		else
			n = gdb_xfer_reply(doc, doclen, c->addr, c->len, out, sizeof(out));
		break;
	case GDB_CMD_HALT_REASON:
		n = gdb_stop_reply(GDB_STOP_SIGNAL, 5, 0, out, sizeof(out));
		break;
	case GDB_CMD_READ_REGS:
		n = gdb_regs_encode(&fk->r, &fk->f, out, sizeof(out));
		break;
	case GDB_CMD_READ_REG: {
		int k = gdb_reg_encode(c->regno, &fk->r, &fk->f, out, sizeof(out));
		n = k > 0 ? (size_t)k : (size_t)snprintf(out, sizeof(out), "E01");
		break;
	}
	case GDB_CMD_WRITE_REG:
		n = (size_t)snprintf(
		    out, sizeof(out), "%s",
		    gdb_reg_decode(c->regno, (const char *)c->data, c->datalen, &fk->r, &fk->f) == 0
			? "OK"
			: "E01");
		break;
	case GDB_CMD_WRITE_REGS:
		n = (size_t)snprintf(
		    out, sizeof(out), "%s",
		    gdb_regs_decode((const char *)c->data, c->datalen, &fk->r, &fk->f) == 0
			? "OK"
			: "E01");
		break;
	case GDB_CMD_READ_MEM:
		if (c->addr < FAKE_MEM || c->addr + c->len > FAKE_MEM + sizeof(fk->mem))
			n = (size_t)snprintf(out, sizeof(out), "E01");
		else
			n = gdb_hex_encode(fk->mem + (c->addr - FAKE_MEM), (size_t)c->len, out);
		break;
	case GDB_CMD_WRITE_MEM:
		if (c->len > 0 &&
		    (c->addr < FAKE_MEM || c->addr + c->len > FAKE_MEM + sizeof(fk->mem))) {
			n = (size_t)snprintf(out, sizeof(out), "E01");
		} else {
			if (c->len)
				memcpy(fk->mem + (c->addr - FAKE_MEM), c->data, c->datalen);
			n = (size_t)snprintf(out, sizeof(out), "OK");
		}
		break;
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
		if (c->kind == GDB_CMD_INSERT_BP)
			fk->z_types |= 1u << c->bptype;
		if (c->bptype >= GDB_BP_WRITE) {
			fk->watch_type = c->kind == GDB_CMD_INSERT_BP ? c->bptype : -1;
			fk->watch_addr = c->addr;
		} else if (c->addr == 0x1010) {
			fk->bp_at_1010 = c->kind == GDB_CMD_INSERT_BP ? c->bptype : -1;
		}
		n = (size_t)snprintf(out, sizeof(out), "OK");
		break;
	case GDB_CMD_STEP:
		fk->r.rip += 1;
		n = gdb_stop_reply(GDB_STOP_SIGNAL, 5, 0, out, sizeof(out));
		break;
	case GDB_CMD_CONTINUE:
		/* A write to the watched word, else the breakpoint, else the end. */
		if (fk->watch_type >= GDB_BP_WRITE) {
			fk->r.rip = 0x1008;
			fk->mem[fk->watch_addr - FAKE_MEM] ^= 0x5a;
			n = gdb_stop_reply(fk->watch_type == GDB_BP_WRITE  ? GDB_STOP_WATCH
					   : fk->watch_type == GDB_BP_READ ? GDB_STOP_RWATCH
									   : GDB_STOP_AWATCH,
					   5, fk->watch_addr, out, sizeof(out));
		} else if (fk->bp_at_1010 >= 0) {
			fk->r.rip = 0x1010;
			n = gdb_stop_reply(fk->bp_at_1010 == GDB_BP_HW ? GDB_STOP_HWBREAK
								       : GDB_STOP_SWBREAK,
					   5, 0, out, sizeof(out));
		} else {
			n = gdb_stop_reply(GDB_STOP_HISTORY_END, 5, 0, out, sizeof(out));
		}
		break;
	case GDB_CMD_REVERSE_STEP:
	case GDB_CMD_REVERSE_CONTINUE:
		n = gdb_stop_reply(GDB_STOP_HISTORY_BEGIN, 5, 0, out, sizeof(out));
		break;
	case GDB_CMD_VCONT_QUERY:
		n = (size_t)snprintf(out, sizeof(out), "vCont;c;C;s;S");
		break;
	case GDB_CMD_MONITOR: {
		char text[300];
		int tl = snprintf(text, sizeof(text), "fake: %s\n", c->text);

		n = gdb_console_output(text, (size_t)tl, out, sizeof(out));
		if (fake_send(fd, out, n) < 0)
			return false;
		n = (size_t)snprintf(out, sizeof(out), "OK");
		break;
	}
	case GDB_CMD_DETACH:
		fake_send(fd, "OK", 2);
		return false;
	case GDB_CMD_KILL:
		return false;
	case GDB_CMD_ATTACHED:
		n = (size_t)snprintf(out, sizeof(out), "1");
		break;
	case GDB_CMD_THREAD_FIRST:
		n = (size_t)snprintf(out, sizeof(out), "m%x", GDB_THREAD_ID);
		break;
	case GDB_CMD_THREAD_NEXT:
		n = (size_t)snprintf(out, sizeof(out), "l");
		break;
	case GDB_CMD_CURRENT_THREAD:
		n = (size_t)snprintf(out, sizeof(out), "QC%x", GDB_THREAD_ID);
		break;
	case GDB_CMD_SET_THREAD:
		n = (size_t)snprintf(out, sizeof(out), "OK");
		break;
	case GDB_CMD_THREAD_ALIVE:
		n = (size_t)snprintf(out, sizeof(out), "%s",
				     c->thread == GDB_THREAD_ID ? "OK" : "E01");
		break;
	}
	if (fake_send(fd, out, n) < 0)
		return false;
	if (c->kind == GDB_CMD_NOACK)
		fk->noack = true;
	return true;
}

static void *fake_serve(void *arg)
{
	struct fake *fk = arg;
	static struct gdb_rx frx;
	struct pollfd pfd = {.fd = fk->lfd, .events = POLLIN};
	uint8_t buf[4096];
	int fd;
	bool on = true;

	if (poll(&pfd, 1, 50000) != 1)
		return NULL;
	fd = accept(fk->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	gdb_rx_init(&frx);
	while (on) {
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k <= 0)
			break;
		if (fk->capture)
			fwrite(buf, 1, (size_t)k, fk->capture);
		for (ssize_t i = 0; i < k && on; i++) {
			struct gdb_cmd c;

			switch (gdb_rx_byte(&frx, buf[i])) {
			case GDB_RX_PACKET:
				if (!fk->noack && write(fd, "+", 1) != 1)
					on = false;
				gdb_parse(frx.data, frx.len, &c);
				if (on)
					on = fake_answer(fk, fd, &c);
				break;
			case GDB_RX_BAD_CHECKSUM:
			case GDB_RX_OVERSIZE:
				fk->bad_checksums++;
				if (!fk->noack && write(fd, "-", 1) != 1)
					on = false;
				break;
			case GDB_RX_NACK:
				fk->nacks++;
				break;
			default:
				break;
			}
		}
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *fk, pthread_t *t, const char *session)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	const char *cap = getenv("REWIND_GDB_CAPTURE");

	memset(fk, 0, sizeof(*fk));
	fk->watch_type = -1;
	fk->bp_at_1010 = -1;
	fk->r.rip = 0x1000;
	fk->r.rsp = 0x1800;
	fk->r.rflags = 0x246;
	fk->r.cs.sel = 0x10;
	fk->r.ss.sel = fk->r.ds.sel = 0x18;
	fk->r.cr0 = 0x80050033;
	fk->r.cr3 = 0x123000;
	fk->r.cr4 = 0x6b0;
	fk->r.efer = 0xd01;
	fk->r.fs_base = 0x7f0000001000;
	fk->r.kernel_gs_base = 0xffff888000000000ull;
	fk->f.mxcsr = 0x1f80;
	fk->f.fctrl = 0x37f;
	fk->f.st[0][7] = 0x80; /* 1.0: mantissa 0x8000000000000000, exponent 0x3fff */
	fk->f.st[0][8] = 0xff;
	fk->f.st[0][9] = 0x3f;
	fk->f.xmm[1][0] = 0x2a;
	for (size_t i = 0; i < sizeof(fk->mem); i++)
		fk->mem[i] = (uint8_t)i;
	fk->mem[0] = 0x90; /* nop */
	if (cap) {
		char path[512];

		mkdir(cap, 0777);
		snprintf(path, sizeof(path), "%s/%s", cap, session);
		fk->capture = fopen(path, "wb");
	}
	fk->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fk->lfd, 0);
	cr_assert_eq(bind(fk->lfd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(fk->lfd, 1), 0);
	cr_assert_eq(getsockname(fk->lfd, (struct sockaddr *)&a, &al), 0);
	fk->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(t, NULL, fake_serve, fk), 0);
}

static char *fake_session(struct fake *fk, const char *session, const char *commands)
{
	pthread_t t;
	char cmd[4096];
	char *out;

	fake_start(fk, &t, session);
	snprintf(cmd, sizeof(cmd),
		 "timeout 50 gdb -nx -batch -ex 'set confirm off' -ex 'set tcp connect-timeout 10' "
		 "-ex 'target remote 127.0.0.1:%d' %s 2>&1",
		 fk->port, commands);
	out = run(cmd);
	pthread_join(t, NULL);
	close(fk->lfd);
	if (fk->capture)
		fclose(fk->capture);
	cr_log_info("gdb session %s:\n%s", session, out);
	return out;
}

#define HAS(out, s) cr_assert_not_null(strstr(out, s), "gdb output lacks \"%s\":\n%s", s, out)

Test(gdbregs, gdb_session_registers, .timeout = 60)
{
	static struct fake fk;
	char why[200];

	if (!have_gdb(why, sizeof(why)))
		cr_skip_test("%s", why);
	char *out = fake_session(
	    &fk, "registers",
	    "-ex 'info registers rip' -ex 'info registers cr3' -ex 'p $cr3' -ex 'p/x $cr0' "
	    "-ex 'info registers cr0' -ex 'info registers efer' -ex 'p/x $k_gs_base' "
	    "-ex 'p/x $fs_base' -ex 'info registers eflags' -ex 'p $cs' -ex 'p $ds' "
	    "-ex 'p $st0' -ex 'p $xmm1.v2_int64' -ex 'p $mxcsr' -ex 'p $fctrl' "
	    "-ex 'set $rax = 0x1234abcd' -ex 'p/x $rax' -ex 'set $cr3 = 0x456000' "
	    "-ex 'set $ss = 0x2b' -ex 'p $cr3' -ex 'info registers' -ex 'detach'");

	HAS(out, "rip            0x1000");
	HAS(out, "cr3            0x123000");
	HAS(out, "= 1191936");	  /* p $cr3 */
	HAS(out, "= 0x80050033"); /* p/x $cr0 */
	HAS(out, "[ PE MP ET NE WP AM PG ]");
	HAS(out, "[ SCE LME LMA NXE ]");
	HAS(out, "= 0xffff888000000000"); /* k_gs_base */
	HAS(out, "= 0x7f0000001000");	  /* fs_base */
	HAS(out, "eflags         0x246               [ PF ZF IF ]");
	HAS(out, "= 16\n");		   /* cs */
	HAS(out, "= 24\n");		   /* ds */
	HAS(out, "= 1\n");		   /* st0 */
	HAS(out, "= {42, 0}");		   /* xmm1 */
	HAS(out, "[ IM DM ZM OM UM PM ]"); /* mxcsr 0x1f80 */
	HAS(out, "= 895\n");		   /* fctrl 0x37f */
	HAS(out, "= 0x1234abcd");
	HAS(out, "= 4546560"); /* the new cr3 read back */
	HAS(out, "r15            0x0");
	HAS(out, "gs_base        0x0");
	cr_assert_null(strstr(out, "warning: Architecture rejected"), "%s", out);
	cr_assert_null(strstr(out, "Remote 'g' packet reply is too long"), "%s", out);
	cr_assert_null(strstr(out, "Invalid register"), "%s", out);
	/* What gdb asked for, and what reached the fake. */
	cr_assert_gt(fk.seen[GDB_CMD_SUPPORTED], 0);
	cr_assert(gdb_feature_supported(fk.features, "swbreak"), "%s", fk.features);
	cr_assert_gt(fk.seen[GDB_CMD_XFER_FEATURES], 0);
	cr_assert_gt(fk.seen[GDB_CMD_READ_REGS], 0);
	cr_assert_gt(fk.seen[GDB_CMD_WRITE_REG] + fk.seen[GDB_CMD_WRITE_REGS], 0);
	cr_assert_gt(fk.seen[GDB_CMD_NOACK], 0);
	cr_assert_gt(fk.seen[GDB_CMD_DETACH], 0);
	cr_assert_eq(fk.seen[GDB_CMD_MALFORMED], 0);
	cr_assert_eq(fk.bad_checksums, 0);
	cr_assert_eq(fk.r.rax, 0x1234abcd);
	cr_assert_eq(fk.r.cr3, 0x456000);
	cr_assert_eq(fk.r.ss.sel, 0x2b);
	cr_assert_eq(fk.r.cs.sel, 0x10);
	cr_assert_eq(fk.r.rip, 0x1000);
	free(out);
}

Test(gdbregs, gdb_session_run_control, .timeout = 60)
{
	static struct fake fk;
	char why[200];

	if (!have_gdb(why, sizeof(why)))
		cr_skip_test("%s", why);
	char *out = fake_session(
	    &fk, "run-control",
	    "-ex 'x/4xb 0x1000' -ex 'set {int}0x1004 = 0x11223344' -ex 'x/xw 0x1004' "
	    "-ex 'set {char[4]}0x1008 = \"$#}\"' -ex 'x/s 0x1008' "
	    "-ex 'stepi' -ex 'p/x $pc' -ex 'reverse-stepi' -ex 'reverse-continue' "
	    "-ex 'break *0x1010' -ex 'continue' -ex 'p/x $pc' -ex 'delete' "
	    "-ex 'watch *(int *)0x1020' -ex 'continue' -ex 'delete' "
	    "-ex 'rwatch *(char *)0x1030' -ex 'continue' -ex 'delete' "
	    "-ex 'continue' -ex 'monitor hello there' -ex 'info threads' -ex 'detach'");

	HAS(out, "0x1000:\t0x90\t0x01\t0x02\t0x03");
	HAS(out, "0x1004:\t0x11223344");
	HAS(out, "0x1008:\t\"$#}\"");
	HAS(out, "= 0x1001"); /* after stepi */
	HAS(out, "No more reverse-execution history.");
	HAS(out, "Breakpoint 1, 0x0000000000001010");
	HAS(out, "= 0x1010");
	HAS(out, "Hardware watchpoint 2: *(int *)0x1020");
	HAS(out, "Old value = 589439264"); /* 0x23222120 */
	HAS(out, "New value = 589439354");
	HAS(out, "Hardware read watchpoint 3: *(char *)0x1030");
	HAS(out, "Value = ");
	HAS(out, "fake: hello there");
	HAS(out, "Thread 1");
	cr_assert_gt(fk.seen[GDB_CMD_READ_MEM], 0);
	cr_assert_gt(fk.seen[GDB_CMD_WRITE_MEM], 0);
	cr_assert_gt(fk.seen[GDB_CMD_STEP], 0);
	cr_assert_gt(fk.seen[GDB_CMD_REVERSE_STEP], 0);
	cr_assert_gt(fk.seen[GDB_CMD_REVERSE_CONTINUE], 0);
	cr_assert_gt(fk.seen[GDB_CMD_INSERT_BP], 0);
	cr_assert_gt(fk.seen[GDB_CMD_REMOVE_BP], 0);
	cr_assert_gt(fk.seen[GDB_CMD_CONTINUE], 0);
	cr_assert_gt(fk.seen[GDB_CMD_MONITOR], 0);
	cr_assert_eq(fk.z_types, 1u << GDB_BP_SW | 1u << GDB_BP_WRITE | 1u << GDB_BP_READ);
	cr_assert_eq(fk.seen[GDB_CMD_MALFORMED], 0);
	cr_assert_eq(fk.bad_checksums, 0);
	cr_assert_eq(memcmp(fk.mem + 4, "\x44\x33\x22\x11", 4), 0);
	cr_assert_eq(memcmp(fk.mem + 8, "$#}", 4), 0);
	free(out);
}

/* Raw packets through gdb's "maint packet": the replies as gdb received them. */
Test(gdbregs, gdb_session_raw_packets, .timeout = 60)
{
	static struct fake fk;
	char why[200];

	if (!have_gdb(why, sizeof(why)))
		cr_skip_test("%s", why);
	char *out = fake_session(
	    &fk, "raw-packets",
	    "-ex 'maint packet p10' -ex 'maint packet p3e' -ex 'maint packet p42' "
	    "-ex 'maint packet P3e=0040000000000000' -ex 'maint flush register-cache' -ex 'p/x "
	    "$cr3' "
	    "-ex 'maint packet P12=00000100' -ex 'maint packet m1000,4' "
	    "-ex 'maint packet m1000' -ex 'maint packet m0,4001' -ex 'maint packet Z9,0,0' "
	    "-ex 'maint packet qXfer:features:read:nope.xml:0,10' "
	    "-ex 'maint packet qXfer:features:read:target.xml:0,5' "
	    "-ex 'maint packet T1' -ex 'maint packet T2' -ex 'maint packet vCont?' "
	    "-ex 'maint packet bs' -ex 'maint packet qC' -ex 'maint packet qAttached' "
	    "-ex 'maint packet vCont;t' -ex 'kill'");

	HAS(out, "received: \"0010000000000000\"");
	HAS(out, "received: \"0030120000000000\"");
	HAS(out, "received: \"E01\""); /* p42: no register 66 */
	HAS(out, "= 0x4000");
	HAS(out, "received: \"90010203\"");
	HAS(out, "received: \"\"");
	HAS(out, "received: \"E00\"");
	HAS(out, "received: \"m<?xml\"");
	HAS(out, "received: \"OK\"");
	HAS(out, "received: \"vCont;c;C;s;S\"");
	HAS(out, "received: \"T05replaylog:begin;\"");
	HAS(out, "received: \"QC1\"");
	cr_assert_eq(fk.r.cr3, 0x4000);
	cr_assert_eq(fk.r.cs.sel, 0x10, "P12=00000100 (cs = 0x10000) was taken");
	cr_assert_eq(fk.seen[GDB_CMD_MALFORMED], 3); /* m1000, m0,4001, vCont;t */
	cr_assert_eq(fk.seen[GDB_CMD_THREAD_ALIVE], 2);
	cr_assert_eq(fk.seen[GDB_CMD_KILL], 1);
	cr_assert_eq(fk.bad_checksums, 0);
	free(out);
}

/* Hardware breakpoints, access watchpoints, and big escaped writes and reads. */
Test(gdbregs, gdb_session_hw_and_bulk, .timeout = 60)
{
	static struct fake fk;
	char why[200];

	if (!have_gdb(why, sizeof(why)))
		cr_skip_test("%s", why);
	char *out = fake_session(
	    &fk, "hw-bulk",
	    "-ex 'python gdb.selected_inferior().write_memory(0x1100, b\"$#}*\" * 700)' "
	    "-ex 'x/4xb 0x1100' -ex 'x/4xb 0x1bac' "
	    "-ex 'python m = gdb.selected_inferior().read_memory(0x1000, 0x1000); "
	    "print(\"read\", len(m), bytes(m[0x100:0x104]))' "
	    "-ex 'hbreak *0x1010' -ex 'continue' -ex 'delete' "
	    "-ex 'awatch *(long *)0x1040' -ex 'continue' -ex 'delete' -ex 'detach'");

	HAS(out, "0x1100:\t0x24\t0x23\t0x7d\t0x2a");
	HAS(out, "0x1bac:\t0x24\t0x23\t0x7d\t0x2a");
	HAS(out, "read 4096 b'$#}*'");
	HAS(out, "Hardware assisted breakpoint 1 at 0x1010");
	HAS(out, "Breakpoint 1, 0x0000000000001010");
	HAS(out, "Hardware access (read/write) watchpoint 2: *(long *)0x1040");
	for (size_t i = 0; i < 2800; i += 4)
		cr_assert_eq(memcmp(fk.mem + 0x100 + i, "$#}*", 4), 0, "at 0x%zx", 0x1100 + i);
	cr_assert_gt(fk.seen[GDB_CMD_WRITE_MEM], 0);
	cr_assert_eq(fk.z_types, 1u << GDB_BP_HW | 1u << GDB_BP_ACCESS);
	cr_assert_eq(fk.seen[GDB_CMD_MALFORMED], 0);
	cr_assert_eq(fk.bad_checksums, 0);
	free(out);
}
