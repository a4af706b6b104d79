/*
 * test_ksyms.c: a Linux kernel's symbols from its kallsyms tables (debugger/ksyms.h).
 *
 * Synthetic images first, laid out as scripts/kallsyms.c lays the tables out (with and
 * without kallsyms_seqs_of_names, with absolute per-cpu symbols, a "big" symbol whose
 * length takes two bytes, tokens of several characters, and decoys: a run of "0".."9"
 * that is not a token table, a table whose markers disagree), decoded exactly; every
 * truncation of an image found nothing or the same list, never a crash. Then the
 * symbol ELF gdb loads, read back with its section headers; and the backtrace image
 * (bt_symbolize) naming a stripped kernel's functions. Last, Debian's kernel from
 * `make linux` where present (else skipped, saying so): the symbols /proc/kallsyms would
 * show, checked against the image's own section headers.
 */
#include "debugger/backtrace.h"
#include "debugger/ksyms.h"
#include "vmm/loader.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#define BASE 0xffffffff81000000ull

/* A growing image. */
struct img {
	uint8_t *p;
	size_t len, cap;
};

static size_t put(struct img *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = 2 * (b->len + n) + 4096;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return b->len - n;
}

static void align8(struct img *b)
{
	static const uint8_t z[8];
	put(b, z, (8 - b->len % 8) % 8);
}

struct sym {
	uint64_t addr;
	char type;
	char name[300];
};

#define NSYM 700
static struct sym syms[NSYM];

/* Symbols: 3 per-cpu ones, then code and data above BASE, one with a 200-byte name. */
static void make_syms(void)
{
	for (int i = 0; i < NSYM; i++) {
		struct sym *s = &syms[i];
		if (i < 3) {
			s->addr = (uint64_t)i * 0x1000;
			s->type = 'A';
			snprintf(s->name, sizeof(s->name), "percpu_%d", i);
		} else {
			s->addr = BASE + (uint64_t)i * 0x40;
			s->type = i % 5 == 0 ? 't' : i % 7 == 0 ? 'D' : 'T';
			snprintf(s->name, sizeof(s->name), "%s_func_%d", i % 3 ? "sys" : "do", i);
		}
	}
	memset(syms[100].name, 'x', 200);
	syms[100].name[200] = 0;
	strcpy(syms[101].name, "__x64_sys_write");
}

/*
 * The tables for syms, after prefix bytes of junk (a decoy "0".."9" run among them);
 * seqs: with kallsyms_seqs_of_names; bad_marker: the second marker off by one.
 */
static struct img build(bool seqs, bool bad_marker)
{
	struct img b = {0};
	char tok[256][8];
	static const char digits[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";

	for (int i = 0; i < 1000; i++)
		put(&b, &(uint8_t){(uint8_t)(i * 37 + 11)}, 1);
	put(&b, digits, sizeof(digits)); /* not a token table: no index follows */
	for (int i = 0; i < 64; i++)
		put(&b, &(uint8_t){(uint8_t)(i | 1)}, 1);
	align8(&b);
	/* Tokens: every character as itself; unused codes become two-letter tokens, and
	 * token 1 is "sys_", token 2 "func_". */
	for (int c = 0; c < 256; c++)
		snprintf(tok[c], sizeof(tok[c]), "%c", c);
	for (int c = 0; c < 32; c++)
		snprintf(tok[c], sizeof(tok[c]), "q%c", 'a' + c % 26);
	for (int c = 127; c < 256; c++)
		snprintf(tok[c], sizeof(tok[c]), "z%c", 'a' + c % 26);
	strcpy(tok[1], "sys_");
	strcpy(tok[2], "func_");

	/* offsets, relative base */
	for (int i = 0; i < NSYM; i++) {
		int32_t off = syms[i].type == 'A' ? (int32_t)syms[i].addr
						  : (int32_t)(-1 - (int64_t)(syms[i].addr - BASE));
		put(&b, &off, 4);
	}
	align8(&b);
	put(&b, &(uint64_t){BASE}, 8);
	put(&b, &(uint32_t){NSYM}, 4);
	align8(&b);
	size_t names = b.len;
	uint32_t markers[(NSYM + 255) / 256];
	for (int i = 0; i < NSYM; i++) {
		if (i % 256 == 0)
			markers[i / 256] = (uint32_t)(b.len - names);
		uint8_t enc[400];
		size_t n = 0;
		enc[n++] = (uint8_t)syms[i].type;
		for (const char *p = syms[i].name; *p;) {
			if (!strncmp(p, "sys_", 4)) {
				enc[n++] = 1;
				p += 4;
			} else if (!strncmp(p, "func_", 5)) {
				enc[n++] = 2;
				p += 5;
			} else {
				enc[n++] = (uint8_t)*p++;
			}
		}
		if (n > 127) {
			uint8_t l[2] = {(uint8_t)((n & 0x7f) | 0x80), (uint8_t)(n >> 7)};
			put(&b, l, 2);
		} else {
			put(&b, &(uint8_t){(uint8_t)n}, 1);
		}
		put(&b, enc, n);
	}
	align8(&b);
	if (bad_marker)
		markers[1]++;
	put(&b, markers, sizeof(markers));
	align8(&b);
	if (seqs) {
		for (int i = 0; i < NSYM; i++) {
			uint8_t s3[3] = {0, (uint8_t)(i >> 8), (uint8_t)i};
			put(&b, s3, 3);
		}
		align8(&b);
	}
	size_t table = b.len;
	uint16_t index[256];
	for (int c = 0; c < 256; c++)
		index[c] = (uint16_t)(put(&b, tok[c], strlen(tok[c]) + 1) - table);
	align8(&b);
	put(&b, index, sizeof(index));
	put(&b, "trailing rodata", 16);
	return b;
}

static void expect_syms(const struct ksyms *ks)
{
	cr_assert_eq(ks->n, NSYM);
	for (int i = 0; i < NSYM; i++) {
		cr_assert_eq(ks->v[i].addr, syms[i].addr, "symbol %d", i);
		cr_assert_eq(ks->v[i].type, syms[i].type, "symbol %d", i);
		cr_assert_str_eq(ks->v[i].name, syms[i].name, "symbol %d", i);
	}
}

Test(ksyms, decodes_both_layouts)
{
	make_syms();
	for (int seqs = 0; seqs < 2; seqs++) {
		struct img b = build(seqs, false);
		struct ksyms *ks;
		cr_assert_eq(ksyms_from_image(b.p, b.len, &ks), 1, "seqs %d", seqs);
		expect_syms(ks);
		ksyms_free(ks);
		free(b.p);
	}
}

Test(ksyms, markers_that_disagree_find_nothing)
{
	make_syms();
	struct img b = build(true, true);
	struct ksyms *ks = (void *)1;
	cr_assert_eq(ksyms_from_image(b.p, b.len, &ks), 0);
	cr_assert_null(ks);
	free(b.p);
}

Test(ksyms, not_a_kernel_finds_nothing)
{
	static const char text[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9\0";
	struct ksyms *ks;
	cr_assert_eq(ksyms_from_image(text, sizeof(text), &ks), 0);
	cr_assert_eq(ksyms_from_image("", 0, &ks), 0);
	cr_assert_eq(ksyms_from_image(NULL, 0, &ks), 0);
}

/* Every cut of the image: nothing found, or (once the tables are whole) the same list. */
Test(ksyms, every_truncation_is_safe)
{
	make_syms();
	struct img b = build(true, false);
	size_t found_from = 0;
	for (size_t len = 0; len <= b.len; len += len < b.len - 600 ? 97 : 1) {
		uint8_t *cut = malloc(len ? len : 1);
		memcpy(cut, b.p, len);
		struct ksyms *ks;
		int rc = ksyms_from_image(cut, len, &ks);
		cr_assert(rc == 0 || rc == 1);
		if (rc == 1) {
			expect_syms(ks);
			ksyms_free(ks);
			if (!found_from)
				found_from = len;
		}
		free(cut);
	}
	/* The token index is the last table: found once the cut leaves it whole. */
	cr_assert_eq(found_from, b.len - 16);
	free(b.p);
}

/* An ELF around the tables: .text and .data for the symbols, and the tables' bytes. */
static struct img kernel_elf(void)
{
	struct img t = build(true, false), e = {0};
	Elf64_Ehdr eh = {.e_type = ET_EXEC,
			 .e_machine = EM_X86_64,
			 .e_version = EV_CURRENT,
			 .e_ehsize = sizeof(Elf64_Ehdr),
			 .e_shentsize = sizeof(Elf64_Shdr),
			 .e_shnum = 5,
			 .e_shstrndx = 4};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	put(&e, &eh, sizeof(eh));
	size_t rodata = put(&e, t.p, t.len);
	static const char shstr[] = "\0.text\0.data\0.rodata\0.shstrtab";
	size_t shs = put(&e, shstr, sizeof(shstr));
	align8(&e);
	Elf64_Shdr sh[5] = {
	    {0},
	    {.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
	     .sh_addr = BASE, .sh_size = 0x40 * 400},
	    {.sh_name = 7, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_WRITE,
	     .sh_addr = BASE + 0x40 * 400, .sh_size = 0x40 * 400},
	    {.sh_name = 13, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
	     .sh_addr = BASE + 0x100000, .sh_offset = rodata, .sh_size = t.len},
	    {.sh_name = 21, .sh_type = SHT_STRTAB, .sh_offset = shs, .sh_size = sizeof(shstr)},
	};
	size_t shoff = put(&e, sh, sizeof(sh));
	memcpy(e.p + offsetof(Elf64_Ehdr, e_shoff), &(uint64_t){shoff}, 8);
	free(t.p);
	return e;
}

Test(ksyms, symbol_elf_for_gdb)
{
	make_syms();
	struct img k = kernel_elf();
	void *out;
	size_t len, nsyms;
	cr_assert_eq(ksyms_gdb_file(k.p, k.len, &out, &len, &nsyms), 1, "%s", vmm_errdetail());
	cr_assert_eq(nsyms, NSYM);
	const uint8_t *f = out;
	Elf64_Ehdr eh;
	memcpy(&eh, f, sizeof(eh));
	cr_assert_eq(eh.e_machine, EM_X86_64);
	cr_assert_eq(eh.e_phnum, 0);
	cr_assert_eq(eh.e_shnum, 8);
	const Elf64_Shdr *sh = (const void *)(f + eh.e_shoff);
	cr_assert_eq(sh[1].sh_type, SHT_NOBITS);
	cr_assert_eq(sh[1].sh_addr, BASE);
	cr_assert_eq(sh[4].sh_type, SHT_NULL, "the file's .shstrtab is not in memory");
	const Elf64_Shdr *st = &sh[5], *strs = &sh[st->sh_link];
	cr_assert_eq(st->sh_type, SHT_SYMTAB);
	cr_assert_eq(strs->sh_type, SHT_STRTAB);
	const char *names = (const char *)f + strs->sh_offset;
	size_t n = st->sh_size / sizeof(Elf64_Sym);
	/* Every symbol in .text or .data (the per-cpu three left out), locals first. */
	cr_assert_eq(n, 1 + NSYM - 3);
	bool seen_global = false, found = false;
	for (size_t i = 1; i < n; i++) {
		Elf64_Sym s;
		memcpy(&s, f + st->sh_offset + i * sizeof(s), sizeof(s));
		bool local = ELF64_ST_BIND(s.st_info) == STB_LOCAL;
		cr_assert(!(local && seen_global), "a local after a global");
		seen_global |= !local;
		cr_assert_eq(i < st->sh_info, local);
		cr_assert(s.st_shndx == 1 || s.st_shndx == 2);
		if (!strcmp(names + s.st_name, "__x64_sys_write")) {
			found = true;
			cr_assert_eq(s.st_value, BASE + 101 * 0x40);
			cr_assert_eq(s.st_size, 0x40);
			cr_assert_eq(s.st_shndx, 1);
			cr_assert_eq(ELF64_ST_TYPE(s.st_info), STT_FUNC);
			cr_assert_eq(ELF64_ST_BIND(s.st_info), STB_GLOBAL);
		}
	}
	cr_assert(found);
	free(out);

	/* The same image through the backtrace code: functions named, data not. */
	struct bt_image *img;
	uint64_t off;
	cr_assert_eq(bt_image_open(k.p, k.len, &img), 0, "%s", vmm_errdetail());
	cr_assert_str_eq(bt_symbolize(img, BASE + 101 * 0x40 + 5, &off), "__x64_sys_write");
	cr_assert_eq(off, 5);
	cr_assert_str_eq(bt_symbolize(img, BASE + 5 * 0x40, &off), "sys_func_5");
	cr_assert_null(bt_symbolize(img, 0x1000, &off), "a per-cpu symbol is not code");
	bt_image_free(img);
	free(k.p);
}

/* A guest with its own .symtab serves itself. */
Test(ksyms, guest_elf_serves_itself)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/guests/hello.elf", b && *b ? b : "build");
	void *elf;
	size_t len;
	cr_assert_eq(vmm_read_file(path, 64u << 20, &elf, &len), 0, "%s", vmm_errdetail());
	void *out = (void *)1;
	size_t ol, n;
	cr_assert_eq(ksyms_gdb_file(elf, len, &out, &ol, &n), 0);
	cr_assert_null(out);
	free(elf);
}

/* Debian's kernel (make linux): its symbols, checked against its section headers. */
Test(ksyms, debian_kernel, .timeout = 60)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/linux/vmlinux", b && *b ? b : "build");
	void *elf;
	size_t len;
	if (vmm_read_file(path, 512u << 20, &elf, &len) < 0)
		cr_skip_test("no Linux kernel: run 'make linux' to fetch Debian's kernel");
	struct ksyms *ks;
	cr_assert_eq(ksyms_from_image(elf, len, &ks), 1, "no kallsyms tables in %s", path);
	cr_assert_gt(ks->n, 50000);
	/* The section headers say where .text and .init.text are. */
	Elf64_Ehdr eh;
	memcpy(&eh, elf, sizeof(eh));
	const Elf64_Shdr *sh = (const void *)((const uint8_t *)elf + eh.e_shoff);
	const char *shstr = (const char *)elf + sh[eh.e_shstrndx].sh_offset;
	uint64_t text = 0, text_end = 0, init = 0, init_end = 0;
	for (unsigned i = 0; i < eh.e_shnum; i++) {
		if (!strcmp(shstr + sh[i].sh_name, ".text")) {
			text = sh[i].sh_addr;
			text_end = text + sh[i].sh_size;
		}
		if (!strcmp(shstr + sh[i].sh_name, ".init.text")) {
			init = sh[i].sh_addr;
			init_end = init + sh[i].sh_size;
		}
	}
	cr_assert(text && init);
	int seen = 0;
	for (size_t i = 0; i < ks->n; i++) {
		const struct ksym *s = &ks->v[i];
		if (i)
			cr_assert_geq(s->addr, ks->v[i - 1].addr, "not in address order at %zu", i);
		if (!strcmp(s->name, "_text") || !strcmp(s->name, "_stext")) {
			cr_assert_eq(s->addr, text, "%s", s->name);
			seen++;
		} else if (!strcmp(s->name, "_etext")) {
			cr_assert_eq(s->addr, text_end);
			seen++;
		} else if (!strcmp(s->name, "__x64_sys_write") || !strcmp(s->name, "vprintk_emit")) {
			cr_assert_eq(s->type, 'T', "%s", s->name);
			cr_assert(s->addr >= text && s->addr < text_end, "%s", s->name);
			seen++;
		} else if (!strcmp(s->name, "start_kernel")) {
			cr_assert_eq(s->type, 'T');
			cr_assert(s->addr >= init && s->addr < init_end);
			seen++;
		}
	}
	cr_assert_eq(seen, 6, "some of _text _stext _etext __x64_sys_write vprintk_emit "
			      "start_kernel missing");
	ksyms_free(ks);
	free(elf);
}
