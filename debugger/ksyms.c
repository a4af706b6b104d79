/*
 * ksyms.c: a Linux kernel's kallsyms tables, found in its image and decoded; System.map
 * text and a symbol ELF for gdb made from them (ksyms.h says how the tables are found).
 */
#include "debugger/ksyms.h"

#include <elf.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS 256
#define MAX_SYMS (8u << 20)	     /* a sanity bound on kallsyms_num_syms */
#define NAMES_WINDOW (64u << 20)     /* how far before the token table names may start */
#define NAME_MAX_EXPANDED 1024	     /* longest symbol, type letter included */

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t align8(uint64_t v)
{
	return (v + 7) & ~(uint64_t)7;
}

/* The tables found, as file offsets. */
struct found {
	const uint8_t *f;
	size_t len;
	size_t tok;			/* kallsyms_token_table */
	uint16_t tok_index[TOKENS];	/* kallsyms_token_index */
	size_t num;			/* kallsyms_num_syms (names follow 8 bytes on) */
	uint32_t n;
};

/* The token at index t: its bytes and length (bounded by the file). */
static const uint8_t *token(const struct found *fd, unsigned t, size_t *tl)
{
	size_t at = fd->tok + fd->tok_index[t];
	const uint8_t *p = fd->f + at, *z = memchr(p, 0, fd->len - at);
	*tl = z ? (size_t)(z - p) : 0;
	return p;
}

/*
 * A run of "0".."9" at digits: is it tokens 0x30..0x39 of a token table? Sets fd->tok
 * and fd->tok_index if so.
 */
static bool try_token_table(struct found *fd, size_t digits)
{
	const uint8_t *f = fd->f;
	size_t q = digits;

	/* Back over the 0x30 tokens before "0": each a non-empty NUL-terminated string. */
	for (int k = 0; k < 0x30; k++) {
		if (q < 2 || f[q - 1] != 0 || f[q - 2] == 0)
			return false;
		size_t r = q - 2;
		while (r > 0 && f[r - 1] != 0)
			r--;
		if (r == 0)
			return false;
		q = r;
	}
	size_t start = q, e = start;
	for (int k = 0; k < TOKENS; k++) {
		const uint8_t *z = memchr(f + e, 0, fd->len - e);
		if (!z)
			return false;
		e = (size_t)(z - f) + 1;
	}
	size_t idx = align8(e);
	if (idx > fd->len || fd->len - idx < 2 * TOKENS)
		return false;
	for (int k = 0; k < TOKENS; k++) {
		uint16_t v;
		memcpy(&v, f + idx + 2 * k, 2);
		if (v >= e - start)
			return false;
		fd->tok_index[k] = v;
	}
	if (fd->tok_index[0] != 0 || fd->tok_index[0x30] != digits - start)
		return false;
	fd->tok = start;
	return true;
}

/*
 * Walk the n names that start at names (not past limit): 0 and the offset just past
 * them, or -1. Every 256th name's offset must equal the marker there when markers is
 * not 0 (a file offset), and each name must expand to at most NAME_MAX_EXPANDED bytes.
 */
static int walk_names(const struct found *fd, size_t names, uint32_t n, size_t limit,
		      size_t markers, size_t *end)
{
	const uint8_t *f = fd->f;
	size_t o = names;

	for (uint32_t i = 0; i < n; i++) {
		if (markers && (i & 255) == 0) {
			if (markers + 4 * (size_t)(i >> 8) + 4 > fd->len ||
			    get32(f + markers + 4 * (size_t)(i >> 8)) != o - names)
				return -1;
		}
		if (o >= limit)
			return -1;
		size_t l = f[o++];
		if (l & 0x80) { /* a "big" symbol: two bytes of length */
			if (o >= limit)
				return -1;
			l = (l & 0x7f) | ((size_t)f[o++] << 7);
		}
		if (l == 0 || l > limit - o)
			return -1;
		o += l;
	}
	*end = o;
	return 0;
}

/* Find num_syms and names before the token table, checked against markers (ksyms.h). */
static bool find_names(struct found *fd)
{
	const uint8_t *f = fd->f;
	size_t lo = fd->tok > NAMES_WINDOW ? fd->tok - NAMES_WINDOW : 0;

	for (size_t a = (fd->tok - 8) & ~(size_t)7; a >= lo + 8 && a + 8 <= fd->tok; a -= 8) {
		uint32_t n = get32(f + a);
		size_t end;

		/* num_syms is a .long, then 4 bytes of padding to the 8-aligned names. */
		if (n < 16 || n > MAX_SYMS || get32(f + a + 4) != 0)
			continue;
		if (walk_names(fd, a + 8, n, fd->tok, 0, &end) < 0)
			continue;
		size_t markers = align8(end), k = ((size_t)n + 255) / 256;
		size_t after = align8(markers + 4 * k);
		/* The token table comes next, or after kallsyms_seqs_of_names (3 bytes a name). */
		if (after != fd->tok && align8(after + 3 * (size_t)n) != fd->tok)
			continue;
		if (walk_names(fd, a + 8, n, fd->tok, markers, &end) < 0)
			continue;
		fd->num = a;
		fd->n = n;
		return true;
	}
	return false;
}

static int cmp_addr(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Decode the names and addresses of fd into a new struct ksyms (1), or 0 if they are not
 * plausible, or -VMM_ENOMEM. */
static int decode(const struct found *fd, struct ksyms **out)
{
	const uint8_t *f = fd->f;
	uint32_t n = fd->n;
	size_t rel = fd->num - 8, offs;
	uint64_t base;

	if (rel < align8(4 * (size_t)n))
		return 0;
	offs = rel - align8(4 * (size_t)n);
	memcpy(&base, f + rel, 8);

	struct ksyms *ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -VMM_ENOMEM;
	ks->v = calloc(n, sizeof(*ks->v));
	/* Names expand to at most NAME_MAX_EXPANDED bytes; grow as needed. */
	size_t cap = (size_t)n * 32, used = 0;
	ks->names = malloc(cap);
	if (!ks->v || !ks->names) {
		ksyms_free(ks);
		return -VMM_ENOMEM;
	}

	/* Absolute per-cpu (x86-64 SMP): offsets >= 0 are addresses, others count down from
	 * base - 1. Otherwise every offset is an unsigned distance from base. */
	bool abs_percpu = false;
	for (uint32_t i = 0; i < n && !abs_percpu; i++)
		abs_percpu = (int32_t)get32(f + offs + 4 * (size_t)i) < 0;

	size_t o = fd->num + 8;
	char buf[NAME_MAX_EXPANDED + 1];
	for (uint32_t i = 0; i < n; i++) {
		size_t l = f[o++], bl = 0;
		if (l & 0x80)
			l = (l & 0x7f) | ((size_t)f[o++] << 7);
		for (size_t j = 0; j < l; j++) {
			size_t tl;
			const uint8_t *t = token(fd, f[o + j], &tl);
			if (tl > NAME_MAX_EXPANDED - bl) {
				ksyms_free(ks);
				return 0;
			}
			memcpy(buf + bl, t, tl);
			bl += tl;
		}
		o += l;
		if (bl < 2) { /* a type letter and at least one character of name */
			ksyms_free(ks);
			return 0;
		}
		buf[bl] = 0;
		if (used + bl > cap) {
			cap = 2 * cap + bl;
			char *nn = realloc(ks->names, cap);
			if (!nn) {
				ksyms_free(ks);
				return -VMM_ENOMEM;
			}
			ks->names = nn;
		}
		memcpy(ks->names + used, buf + 1, bl); /* the name and its NUL */
		int32_t off = (int32_t)get32(f + offs + 4 * (size_t)i);
		uint64_t addr = !abs_percpu ? base + (uint32_t)off
				: off >= 0  ? (uint64_t)off
					    : base - 1 - (uint64_t)(int64_t)off;
		ks->v[i] = (struct ksym){.addr = addr, .type = (char)buf[0], .name = NULL};
		/* The name's offset for now: names may still move. */
		ks->v[i].name = (const char *)(uintptr_t)used;
		used += bl;
	}
	for (uint32_t i = 0; i < n; i++)
		ks->v[i].name = ks->names + (uintptr_t)ks->v[i].name;
	ks->n = n;
	/* kallsyms lists symbols by address already; keep that order exact. */
	for (uint32_t i = 1; i < n; i++)
		if (ks->v[i].addr < ks->v[i - 1].addr) {
			qsort(ks->v, n, sizeof(*ks->v), cmp_addr);
			break;
		}
	*out = ks;
	return 1;
}

int ksyms_from_image(const void *elf, size_t len, struct ksyms **out)
{
	static const uint8_t digits[] = "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9";
	struct found *fd = calloc(1, sizeof(*fd));
	const uint8_t *f = elf;
	size_t at = 0;

	*out = NULL;
	if (!fd)
		return -VMM_ENOMEM;
	fd->f = f;
	fd->len = len;
	while (f && at < len) {
		const uint8_t *p = memmem(f + at, len - at, digits, sizeof(digits));
		if (!p)
			break;
		at = (size_t)(p - f) + 1;
		if (!try_token_table(fd, (size_t)(p - f)) || !find_names(fd))
			continue;
		int rc = decode(fd, out);
		if (rc != 0) {
			free(fd);
			return rc;
		}
	}
	free(fd);
	return 0;
}

void ksyms_free(struct ksyms *ks)
{
	if (!ks)
		return;
	free(ks->v);
	free(ks->names);
	free(ks);
}

int ksyms_write_map(const struct ksyms *ks, FILE *f)
{
	for (size_t i = 0; i < ks->n; i++)
		if (fprintf(f, "%016" PRIx64 " %c %s\n", ks->v[i].addr, ks->v[i].type,
			    ks->v[i].name) < 0)
			return vmm_fail(VMM_EIO, "writing System.map failed");
	return 0;
}

/* ---- the symbol ELF for gdb -------------------------------------------------------- */

/* A growing byte buffer. */
struct buf {
	uint8_t *p;
	size_t len, cap;
	bool failed;
};

static size_t put(struct buf *b, const void *d, size_t n)
{
	size_t at = b->len;
	if (b->failed)
		return at;
	if (b->len + n > b->cap) {
		size_t nc = 2 * b->cap + n + 4096;
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->failed = true;
			return at;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return at;
}

static void pad8(struct buf *b)
{
	static const uint8_t z[8];
	put(b, z, align8(b->len) - b->len);
}

/* The section of sh[0..shnum) whose [addr, addr+size) holds a (SHF_ALLOC only). */
static unsigned section_of(const Elf64_Shdr *sh, unsigned shnum, uint64_t a)
{
	for (unsigned i = 1; i < shnum; i++)
		if ((sh[i].sh_flags & SHF_ALLOC) && sh[i].sh_size && a >= sh[i].sh_addr &&
		    a - sh[i].sh_addr < sh[i].sh_size)
			return i;
	return SHN_UNDEF;
}

int ksyms_symbol_elf(const struct ksyms *ks, const void *elf, size_t len, void **out,
		     size_t *out_len)
{
	const uint8_t *f = elf;
	Elf64_Ehdr eh;

	*out = NULL;
	*out_len = 0;
	if (len < sizeof(eh))
		return vmm_fail(VMM_EBADELF, "too short for an ELF header");
	memcpy(&eh, f, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_machine != EM_X86_64)
		return vmm_fail(VMM_EBADELF, "not an ELF64 x86-64 file");
	if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum >= SHN_LORESERVE ||
	    eh.e_shoff > len || (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > len - eh.e_shoff ||
	    eh.e_shstrndx >= eh.e_shnum)
		return vmm_fail(VMM_EBADELF, "no usable section headers");
	unsigned shnum = eh.e_shnum;
	Elf64_Shdr *sh = malloc(shnum * sizeof(*sh));
	if (!sh)
		return vmm_fail(VMM_ENOMEM, "section headers");
	memcpy(sh, f + eh.e_shoff, shnum * sizeof(*sh));
	const Elf64_Shdr *ss = &sh[eh.e_shstrndx];
	if (ss->sh_offset > len || ss->sh_size > len - ss->sh_offset) {
		free(sh);
		return vmm_fail(VMM_EBADELF, "section names outside the file");
	}

	/* New sections: 0..shnum-1 the image's (NOBITS), then .symtab, .strtab, .shstrtab. */
	unsigned i_sym = shnum, i_str = shnum + 1, i_shstr = shnum + 2, total = shnum + 3;
	struct buf shstr = {0}, str = {0}, syms = {0}, out_b = {0};
	Elf64_Shdr *nsh = calloc(total, sizeof(*nsh));
	int rc = 0;
	if (!nsh) {
		rc = vmm_fail(VMM_ENOMEM, "section headers");
		goto done;
	}
	put(&shstr, "", 1);
	put(&str, "", 1);
	for (unsigned i = 1; i < shnum; i++) {
		const char *nm = "";
		if (sh[i].sh_name < ss->sh_size &&
		    memchr(f + ss->sh_offset + sh[i].sh_name, 0, ss->sh_size - sh[i].sh_name))
			nm = (const char *)f + ss->sh_offset + sh[i].sh_name;
		nsh[i] = sh[i];
		nsh[i].sh_name = (uint32_t)put(&shstr, nm, strlen(nm) + 1);
		if (!(sh[i].sh_flags & SHF_ALLOC)) {
			/* Not in memory (.shstrtab, notes of the file): keep an empty slot. */
			nsh[i].sh_type = SHT_NULL;
			nsh[i].sh_flags = 0;
			nsh[i].sh_addr = 0;
			nsh[i].sh_size = 0;
		} else {
			nsh[i].sh_type = SHT_NOBITS;
		}
		nsh[i].sh_offset = 0;
		nsh[i].sh_link = 0;
		nsh[i].sh_info = 0;
	}

	/* Symbols: locals first (ELF's rule), then globals; sizes run to the next symbol. */
	Elf64_Sym null = {0};
	put(&syms, &null, sizeof(null));
	size_t nlocal = 1;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < ks->n; k++) {
			const struct ksym *s = &ks->v[k];
			bool local = s->type >= 'a' && s->type <= 'z';
			if (s->type == 'A' || s->type == 'a' || local != (pass == 0))
				continue;
			unsigned sec = section_of(nsh, shnum, s->addr);
			if (sec == SHN_UNDEF)
				continue; /* outside the image's sections: no home for it */
			uint64_t size = 0, sec_end = nsh[sec].sh_addr + nsh[sec].sh_size;
			for (size_t j = k + 1; j < ks->n; j++)
				if (ks->v[j].addr > s->addr) {
					size = ks->v[j].addr - s->addr;
					break;
				}
			if (!size || size > sec_end - s->addr)
				size = sec_end - s->addr;
			bool text = ksyms_is_text(s->type) && (nsh[sec].sh_flags & SHF_EXECINSTR);
			bool weak = s->type == 'W' || s->type == 'w' || s->type == 'V' || s->type == 'v';
			Elf64_Sym e = {
			    .st_name = (uint32_t)put(&str, s->name, strlen(s->name) + 1),
			    .st_info = ELF64_ST_INFO(local	? STB_LOCAL
						     : weak ? STB_WEAK
							    : STB_GLOBAL,
						     text ? STT_FUNC : STT_OBJECT),
			    .st_shndx = (uint16_t)sec,
			    .st_value = s->addr,
			    .st_size = size};
			put(&syms, &e, sizeof(e));
			if (pass == 0)
				nlocal++;
		}
	}

	Elf64_Ehdr ne = eh;
	ne.e_phoff = 0;
	ne.e_phnum = 0;
	ne.e_phentsize = 0;
	ne.e_shnum = (uint16_t)total;
	ne.e_shstrndx = (uint16_t)i_shstr;
	put(&out_b, &ne, sizeof(ne));
	pad8(&out_b);
	nsh[i_sym] = (Elf64_Shdr){.sh_name = (uint32_t)put(&shstr, ".symtab", 8),
				  .sh_type = SHT_SYMTAB,
				  .sh_offset = put(&out_b, syms.p, syms.len),
				  .sh_size = syms.len,
				  .sh_link = i_str,
				  .sh_info = (uint32_t)nlocal,
				  .sh_addralign = 8,
				  .sh_entsize = sizeof(Elf64_Sym)};
	nsh[i_str] = (Elf64_Shdr){.sh_name = (uint32_t)put(&shstr, ".strtab", 8),
				  .sh_type = SHT_STRTAB,
				  .sh_offset = put(&out_b, str.p, str.len),
				  .sh_size = str.len,
				  .sh_addralign = 1};
	nsh[i_shstr] = (Elf64_Shdr){.sh_name = (uint32_t)put(&shstr, ".shstrtab", 10),
				    .sh_type = SHT_STRTAB,
				    .sh_addralign = 1};
	nsh[i_shstr].sh_offset = put(&out_b, shstr.p, shstr.len);
	nsh[i_shstr].sh_size = shstr.len;
	pad8(&out_b);
	for (unsigned i = 1; i < shnum; i++)
		if (nsh[i].sh_type == SHT_NOBITS)
			nsh[i].sh_offset = out_b.len; /* NOBITS: where it would be, no bytes */
	size_t shoff = put(&out_b, nsh, total * sizeof(*nsh));
	if (shstr.failed || str.failed || syms.failed || out_b.failed) {
		rc = vmm_fail(VMM_ENOMEM, "symbol file");
		goto done;
	}
	memcpy(out_b.p + offsetof(Elf64_Ehdr, e_shoff), &(uint64_t){shoff}, 8);
	*out = out_b.p;
	*out_len = out_b.len;
	out_b.p = NULL;
done:
	free(out_b.p);
	free(shstr.p);
	free(str.p);
	free(syms.p);
	free(nsh);
	free(sh);
	return rc;
}

/* Whether elf has a SHT_SYMTAB section (bounded; a malformed table counts as none). */
static bool has_symtab(const uint8_t *f, size_t len)
{
	Elf64_Ehdr eh;

	if (len < sizeof(eh))
		return false;
	memcpy(&eh, f, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
	    (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > len - eh.e_shoff)
		return false;
	for (unsigned i = 0; i < eh.e_shnum; i++) {
		Elf64_Shdr sh;
		memcpy(&sh, f + eh.e_shoff + (size_t)i * sizeof(sh), sizeof(sh));
		if (sh.sh_type == SHT_SYMTAB && sh.sh_size >= 2 * sizeof(Elf64_Sym))
			return true;
	}
	return false;
}

int ksyms_gdb_file(const void *elf, size_t len, void **out, size_t *out_len, size_t *nsyms)
{
	struct ksyms *ks;
	int rc;

	*out = NULL;
	*out_len = 0;
	*nsyms = 0;
	if (has_symtab(elf, len))
		return 0;
	rc = ksyms_from_image(elf, len, &ks);
	if (rc <= 0)
		return rc;
	rc = ksyms_symbol_elf(ks, elf, len, out, out_len);
	*nsyms = ks->n;
	ksyms_free(ks);
	return rc < 0 ? rc : 1;
}
