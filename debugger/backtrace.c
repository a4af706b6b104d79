/*
 * backtrace.c: guest backtraces (backtrace.h) with libunwind's remote unwinder.
 *
 * Debian 12's libunwind (1.6.2) lacks unw_get_proc_info_in_range, so we supply
 * find_proc_info ourselves, as libunwind-ptrace does for a process: describe the guest
 * ELF's .eh_frame_hdr search table as a UNW_INFO_FORMAT_REMOTE_TABLE and let libunwind's
 * own dwarf_search_unwind_table find and decode the FDE. The table and .eh_frame are
 * read from this module's copy of the ELF segments that hold them; every other read (the
 * stack) goes to the caller's accessor. No files are written (the coredump route would
 * need a core file and the ELF on disk for every backtrace).
 *
 * One libunwind limitation shapes the walk: on x86-64 it takes a frame's rsp to be the
 * CFA of the frame below. That holds for calls but not across an exception frame, where
 * the CPU aligned rsp down before pushing and may have switched stacks (IST); there the
 * interrupted rsp is the value isr.S's CFI says was saved. So after stepping out of a
 * signal frame we read every register of the interrupted frame, take rsp from its saved
 * slot, and start a fresh cursor there (which also looks its pc up as is: the
 * interrupted instruction, not a return address).
 *
 * The FDE lookup is repeated here (a small parser over our copy) to stop cleanly where no
 * FDE covers a pc, instead of letting libunwind guess from frame pointers, and to read the
 * CIE's 'S' augmentation (signal frame), which libunwind does not expose.
 */
#include "debugger/backtrace.h"
#include "debugger/ksyms.h"

#include <elf.h>
#include <inttypes.h>
#include <libunwind.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * libunwind's eh_frame_hdr search, exported by libunwind-x86_64.so for its ptrace and
 * coredump helpers (which call it exactly like this) but not declared in its headers.
 */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
					      unw_dyn_info_t *di, unw_proc_info_t *pi,
					      int need_unwind_info, void *arg);

/* DW_EH_PE_* pointer encodings (LSB, "Exception Frames"). */
#define PE_ABSPTR  0x00
#define PE_ULEB128 0x01
#define PE_UDATA2  0x02
#define PE_UDATA4  0x03
#define PE_UDATA8  0x04
#define PE_SLEB128 0x09
#define PE_SDATA2  0x0a
#define PE_SDATA4  0x0b
#define PE_SDATA8  0x0c
#define PE_PCREL   0x10
#define PE_DATAREL 0x30
#define PE_OMIT	   0xff

#define NREGS	 17	    /* libunwind's x86-64 numbering = DWARF's: rax..r15, rip */
#define MAX_FDES (1u << 24) /* a sanity bound on the search table */

struct bt_sym {
	uint64_t addr, size;
	uint32_t name; /* offset into names */
};

/* A read-only ELF segment that holds unwind tables, as the file has it. */
struct bt_seg {
	uint64_t va;
	size_t len;
	uint8_t *data;
};

struct bt_image {
	struct bt_sym *syms;
	size_t nsyms;
	char *names;

	bool has_eh;
	struct bt_seg segs[2]; /* .eh_frame_hdr's segment, and .eh_frame's if another */
	int nsegs;
	uint64_t hdr_va;   /* .eh_frame_hdr: table entries are relative to it */
	uint64_t table_va; /* the search table: fde_count pairs of int32 */
	uint32_t fde_count;
	unw_dyn_info_t di; /* the same table, as libunwind takes it */
	unw_addr_space_t as;
};

/* ---- reading the copied segments ------------------------------------------------- */

static const uint8_t *seg_ptr(const struct bt_image *img, uint64_t va, size_t len)
{
	for (int i = 0; i < img->nsegs; i++) {
		const struct bt_seg *s = &img->segs[i];
		if (va >= s->va && va - s->va <= s->len && len <= s->len - (va - s->va))
			return s->data + (va - s->va);
	}
	return NULL;
}

/* A bounded reader over the copied segments; ok turns false at the first bad read. */
struct rd {
	const struct bt_image *img;
	uint64_t va;
	bool ok;
};

static uint64_t rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->ok ? seg_ptr(r->img, r->va, n) : NULL;
	if (!p) {
		r->ok = false;
		return 0;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	r->va += n;
	return v;
}

static uint64_t rd_uleb(struct rd *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; r->ok; shift += 7) {
		uint64_t b = rd_bytes(r, 1);
		if (shift < 64)
			v |= (b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
		if (shift > 63)
			r->ok = false;
	}
	return 0;
}

static int64_t rd_sleb(struct rd *r)
{
	uint64_t v = 0, b = 0;
	unsigned shift = 0;
	do {
		b = rd_bytes(r, 1);
		if (shift < 64)
			v |= (b & 0x7f) << shift;
		shift += 7;
		if (shift > 70)
			r->ok = false;
	} while (r->ok && (b & 0x80));
	if (shift < 64 && (b & 0x40))
		v |= ~0ull << shift;
	return (int64_t)v;
}

/* A DW_EH_PE-encoded value; base is what datarel is relative to. */
static uint64_t rd_encoded(struct rd *r, uint8_t enc, uint64_t base)
{
	uint64_t at = r->va, v;
	switch (enc & 0x0f) {
	case PE_ABSPTR:
	case PE_UDATA8:
	case PE_SDATA8:
		v = rd_bytes(r, 8);
		break;
	case PE_ULEB128:
		v = rd_uleb(r);
		break;
	case PE_UDATA2:
		v = rd_bytes(r, 2);
		break;
	case PE_UDATA4:
		v = rd_bytes(r, 4);
		break;
	case PE_SLEB128:
		v = (uint64_t)rd_sleb(r);
		break;
	case PE_SDATA2:
		v = (uint64_t)(int64_t)(int16_t)rd_bytes(r, 2);
		break;
	case PE_SDATA4:
		v = (uint64_t)(int64_t)(int32_t)rd_bytes(r, 4);
		break;
	default:
		r->ok = false;
		return 0;
	}
	switch (enc & 0x70) {
	case 0:
		break;
	case PE_PCREL:
		v += at;
		break;
	case PE_DATAREL:
		v += base;
		break;
	default:
		r->ok = false;
		return 0; /* textrel, funcrel, aligned: not in our ELFs */
	}
	if (enc & 0x80) /* indirect */
		r->ok = false;
	return v;
}

/* ---- the FDE covering a pc ------------------------------------------------------- */

/*
 * Find the FDE for pc through the search table and check that it covers pc. Returns
 * true, with *signal from its CIE's augmentation, or false if no FDE covers pc (or the
 * tables are corrupt there).
 */
static bool fde_find(const struct bt_image *img, uint64_t pc, bool *signal)
{
	*signal = false;
	if (!img->has_eh || !img->fde_count)
		return false;
	const uint8_t *t = seg_ptr(img, img->table_va, (size_t)img->fde_count * 8);
	if (!t)
		return false;
	int64_t want = (int64_t)(pc - img->hdr_va); /* the entries' base */
	size_t lo = 0, hi = img->fde_count;	    /* find the last entry with loc <= pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int32_t loc;
		memcpy(&loc, t + mid * 8, 4);
		if (loc <= want)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return false;
	int32_t fde_off;
	memcpy(&fde_off, t + (lo - 1) * 8 + 4, 4);
	uint64_t fde = img->hdr_va + (uint64_t)(int64_t)fde_off;

	struct rd r = {img, fde, true};
	uint64_t flen = rd_bytes(&r, 4);
	if (!r.ok || !flen || flen == 0xffffffff) /* 64-bit DWARF: not in .eh_frame */
		return false;
	uint64_t cie_field = r.va, cie_ptr = rd_bytes(&r, 4);
	if (!r.ok || !cie_ptr)
		return false;

	struct rd c = {img, cie_field - cie_ptr, true};
	uint64_t clen = rd_bytes(&c, 4);
	uint64_t cie_end = c.va + clen;
	if (!c.ok || !clen || clen == 0xffffffff || rd_bytes(&c, 4) != 0)
		return false;
	uint8_t version = (uint8_t)rd_bytes(&c, 1);
	if (version != 1 && version != 3)
		return false;
	char aug[16];
	size_t n = 0;
	for (;;) {
		uint8_t ch = (uint8_t)rd_bytes(&c, 1);
		if (!c.ok || n == sizeof(aug))
			return false;
		aug[n++] = (char)ch;
		if (!ch)
			break;
	}
	if (aug[0] && aug[0] != 'z')
		return false; /* no length to skip unknown augmentation data by */
	rd_uleb(&c);	      /* code alignment */
	rd_sleb(&c);	      /* data alignment */
	if (version == 1)     /* return address column */
		rd_bytes(&c, 1);
	else
		rd_uleb(&c);
	uint8_t fde_enc = PE_ABSPTR;
	if (aug[0] == 'z') {
		uint64_t alen = rd_uleb(&c), aend = c.va + alen;
		for (const char *a = aug + 1; *a && c.ok && c.va <= aend; a++) {
			if (*a == 'R') {
				fde_enc = (uint8_t)rd_bytes(&c, 1);
			} else if (*a == 'P') {
				uint8_t penc = (uint8_t)rd_bytes(&c, 1);
				rd_encoded(&c, penc & 0x7f, 0); /* skip the personality */
			} else if (*a == 'L') {
				rd_bytes(&c, 1);
			} else if (*a == 'S') {
				*signal = true;
			} else {
				break; /* unknown: the rest does not matter here */
			}
		}
	}
	if (!c.ok || c.va > cie_end)
		return false;

	uint64_t begin = rd_encoded(&r, fde_enc, 0);
	uint64_t range = rd_encoded(&r, fde_enc & 0x0f, 0);
	if (!r.ok || pc < begin || pc - begin >= range) {
		*signal = false;
		return false;
	}
	return true;
}

/* ---- opening an image ------------------------------------------------------------ */

static bool in_file(size_t len, uint64_t off, uint64_t size)
{
	return off <= len && size <= len - off;
}

static int sym_cmp(const void *a, const void *b)
{
	const struct bt_sym *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* Among aliases, the first one kept wins: a sized symbol before a label. */
	if ((x->size != 0) != (y->size != 0))
		return x->size ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

/* Function symbols from every SHT_SYMTAB (there is one), sorted, sizes filled in. */
static int load_symbols(struct bt_image *img, const uint8_t *f, size_t len, const Elf64_Ehdr *eh)
{
	if (!eh->e_shoff || !eh->e_shnum)
		return 0; /* stripped of section headers: no names */
	if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(len, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)))
		return vmm_fail(VMM_EBADELF, "section headers outside the file");
	Elf64_Shdr *sh = malloc((size_t)eh->e_shnum * sizeof(*sh));
	if (!sh)
		return vmm_fail(VMM_ENOMEM, "section headers");
	memcpy(sh, f + eh->e_shoff, (size_t)eh->e_shnum * sizeof(*sh));

	int rc = 0;
	size_t cap = 0, names_len = 0, names_cap = 0;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB)
			continue;
		const Elf64_Shdr *ss = &sh[i];
		if (ss->sh_entsize != sizeof(Elf64_Sym) || ss->sh_link >= eh->e_shnum ||
		    sh[ss->sh_link].sh_type != SHT_STRTAB ||
		    !in_file(len, ss->sh_offset, ss->sh_size) ||
		    !in_file(len, sh[ss->sh_link].sh_offset, sh[ss->sh_link].sh_size)) {
			rc = vmm_fail(VMM_EBADELF, "symbol table %u: bad header", i);
			goto out;
		}
		const char *strtab = (const char *)f + sh[ss->sh_link].sh_offset;
		uint64_t strsz = sh[ss->sh_link].sh_size;
		for (uint64_t k = 0; k < ss->sh_size / sizeof(Elf64_Sym); k++) {
			Elf64_Sym s;
			memcpy(&s, f + ss->sh_offset + k * sizeof(s), sizeof(s));
			unsigned type = ELF64_ST_TYPE(s.st_info);
			if (type != STT_FUNC && type != STT_NOTYPE)
				continue;
			/* Labels count only in code (isr.S's stubs), never data or absolutes. */
			if (s.st_shndx == SHN_UNDEF || s.st_shndx >= eh->e_shnum ||
			    !(sh[s.st_shndx].sh_flags & SHF_EXECINSTR) || !s.st_name ||
			    s.st_name >= strsz)
				continue;
			const char *name = strtab + s.st_name;
			size_t nl = strnlen(name, strsz - s.st_name);
			if (nl == strsz - s.st_name || !nl || !strncmp(name, ".L", 2))
				continue; /* unterminated, empty, or an assembler-local label */
			if (img->nsyms == cap) {
				cap = cap ? 2 * cap : 256;
				struct bt_sym *ns = realloc(img->syms, cap * sizeof(*ns));
				if (!ns) {
					rc = vmm_fail(VMM_ENOMEM, "symbols");
					goto out;
				}
				img->syms = ns;
			}
			if (names_len + nl + 1 > names_cap) {
				names_cap = 2 * (names_len + nl + 1) + 4096;
				char *nn = realloc(img->names, names_cap);
				if (!nn) {
					rc = vmm_fail(VMM_ENOMEM, "symbol names");
					goto out;
				}
				img->names = nn;
			}
			memcpy(img->names + names_len, name, nl + 1);
			/* A label runs to the next symbol or its section's end (below). */
			const Elf64_Shdr *sec = &sh[s.st_shndx];
			uint64_t sec_end = sec->sh_addr + sec->sh_size;
			uint64_t size = s.st_size;
			if (!size && s.st_value >= sec->sh_addr && s.st_value < sec_end)
				size = sec_end - s.st_value;
			img->syms[img->nsyms++] =
			    (struct bt_sym){s.st_value, size, (uint32_t)names_len};
			names_len += nl + 1;
			if (names_len > UINT32_MAX) {
				rc = vmm_fail(VMM_EBADELF, "symbol names too large");
				goto out;
			}
		}
	}
	if (!img->nsyms)
		goto out;
	qsort(img->syms, img->nsyms, sizeof(*img->syms), sym_cmp);
	/* Drop aliases; cut each unsized label at the next symbol. */
	size_t o = 0;
	for (size_t k = 0; k < img->nsyms; k++) {
		if (o && img->syms[o - 1].addr == img->syms[k].addr)
			continue;
		img->syms[o++] = img->syms[k];
	}
	img->nsyms = o;
	for (size_t k = 0; k + 1 < img->nsyms; k++) {
		struct bt_sym *s = &img->syms[k];
		uint64_t gap = img->syms[k + 1].addr - s->addr;
		if (s->size > gap)
			s->size = gap;
	}
out:
	free(sh);
	return rc;
}

/*
 * No .symtab (a stripped Linux kernel): its kallsyms tables (ksyms.h), code symbols only,
 * each running to the next symbol of any kind. Nothing found is not an error.
 */
static int load_ksyms(struct bt_image *img, const uint8_t *f, size_t len)
{
	struct ksyms *ks;
	int rc = ksyms_from_image(f, len, &ks);
	if (rc <= 0)
		return rc == 0 ? 0 : vmm_fail(VMM_ENOMEM, "kernel symbols");
	size_t names_len = 0, n = 0;
	for (size_t k = 0; k < ks->n; k++)
		if (ksyms_is_text(ks->v[k].type))
			names_len += strlen(ks->v[k].name) + 1;
	img->syms = malloc((ks->n ? ks->n : 1) * sizeof(*img->syms));
	img->names = malloc(names_len ? names_len : 1);
	if (!img->syms || !img->names || names_len > UINT32_MAX) {
		ksyms_free(ks);
		return vmm_fail(VMM_ENOMEM, "kernel symbols");
	}
	names_len = 0;
	for (size_t k = 0; k < ks->n; k++) {
		const struct ksym *s = &ks->v[k];
		if (!ksyms_is_text(s->type) || (n && img->syms[n - 1].addr == s->addr))
			continue;
		uint64_t size = 0;
		for (size_t j = k + 1; j < ks->n && !size; j++)
			size = ks->v[j].addr - s->addr;
		size_t nl = strlen(s->name) + 1;
		memcpy(img->names + names_len, s->name, nl);
		img->syms[n++] = (struct bt_sym){s->addr, size, (uint32_t)names_len};
		names_len += nl;
	}
	img->nsyms = n;
	ksyms_free(ks);
	return 0;
}

/* Copy the file bytes of the PT_LOAD segment holding [va, va + n) (once). */
static int copy_segment(struct bt_image *img, const uint8_t *f, size_t len, const Elf64_Phdr *ph,
			unsigned phnum, uint64_t va, uint64_t n, const char *what)
{
	if (seg_ptr(img, va, n))
		return 0;
	for (unsigned i = 0; i < phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD || va < p->p_vaddr || va - p->p_vaddr > p->p_filesz ||
		    n > p->p_filesz - (va - p->p_vaddr))
			continue;
		if (!in_file(len, p->p_offset, p->p_filesz))
			return vmm_fail(VMM_EBADELF, "%s: segment outside the file", what);
		if (img->nsegs == (int)(sizeof(img->segs) / sizeof(img->segs[0])))
			return vmm_fail(VMM_EBADELF, "%s: unwind tables spread over segments",
					what);
		struct bt_seg *s = &img->segs[img->nsegs];
		s->data = malloc(p->p_filesz ? p->p_filesz : 1);
		if (!s->data)
			return vmm_fail(VMM_ENOMEM, "%s", what);
		memcpy(s->data, f + p->p_offset, p->p_filesz);
		s->va = p->p_vaddr;
		s->len = p->p_filesz;
		img->nsegs++;
		return 0;
	}
	return vmm_fail(VMM_EBADELF, "%s at 0x%" PRIx64 ": not in a loaded segment of the file",
			what, va);
}

/* PT_GNU_EH_FRAME: copy and check .eh_frame_hdr, its search table, and .eh_frame. */
static int load_unwind(struct bt_image *img, const uint8_t *f, size_t len, const Elf64_Phdr *ph,
		       unsigned phnum)
{
	const Elf64_Phdr *eh = NULL;
	uint64_t text_lo = UINT64_MAX, text_hi = 0;
	for (unsigned i = 0; i < phnum; i++) {
		if (ph[i].p_type == PT_GNU_EH_FRAME)
			eh = &ph[i];
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) && ph[i].p_memsz) {
			if (ph[i].p_vaddr < text_lo)
				text_lo = ph[i].p_vaddr;
			if (ph[i].p_vaddr + ph[i].p_memsz > text_hi)
				text_hi = ph[i].p_vaddr + ph[i].p_memsz;
		}
	}
	if (!eh || text_lo >= text_hi)
		return 0; /* nothing to unwind with: frame 0 only */
	if (eh->p_filesz < 4)
		return vmm_fail(VMM_EBADELF, "eh_frame_hdr: %" PRIu64 " bytes", eh->p_filesz);
	int rc = copy_segment(img, f, len, ph, phnum, eh->p_vaddr, eh->p_filesz, "eh_frame_hdr");
	if (rc < 0)
		return rc;

	uint64_t hdr = eh->p_vaddr, hdr_end = hdr + eh->p_filesz;
	struct rd r = {img, hdr, true};
	uint8_t version = (uint8_t)rd_bytes(&r, 1), ptr_enc = (uint8_t)rd_bytes(&r, 1);
	uint8_t count_enc = (uint8_t)rd_bytes(&r, 1), table_enc = (uint8_t)rd_bytes(&r, 1);
	if (version != 1)
		return vmm_fail(VMM_EBADELF, "eh_frame_hdr: version %u, expected 1", version);
	/* The only table encoding libunwind (and libgcc) can search. */
	if (table_enc != (PE_DATAREL | PE_SDATA4) || ptr_enc == PE_OMIT || count_enc == PE_OMIT)
		return vmm_fail(VMM_EBADELF,
				"eh_frame_hdr: encodings 0x%02x 0x%02x 0x%02x, expected a "
				"datarel sdata4 search table",
				ptr_enc, count_enc, table_enc);
	uint64_t eh_frame = rd_encoded(&r, ptr_enc, hdr);
	uint64_t count = rd_encoded(&r, count_enc, hdr);
	if (!r.ok || r.va > hdr_end)
		return vmm_fail(VMM_EBADELF, "eh_frame_hdr: truncated header");
	if (count > MAX_FDES || count * 8 > hdr_end - r.va)
		return vmm_fail(VMM_EBADELF,
				"eh_frame_hdr: %" PRIu64 " table entries do not fit in its %" PRIu64
				" bytes",
				count, eh->p_filesz);
	rc = copy_segment(img, f, len, ph, phnum, eh_frame, 4, "eh_frame");
	if (rc < 0)
		return rc;

	const uint8_t *t = seg_ptr(img, r.va, count * 8);
	int32_t prev = INT32_MIN;
	for (uint64_t i = 0; i < count; i++) {
		int32_t loc, fde;
		memcpy(&loc, t + i * 8, 4);
		memcpy(&fde, t + i * 8 + 4, 4);
		if (loc < prev)
			return vmm_fail(VMM_EBADELF,
					"eh_frame_hdr: table entry %" PRIu64 " out of order", i);
		prev = loc;
		if (!seg_ptr(img, hdr + (uint64_t)(int64_t)fde, 8))
			return vmm_fail(
			    VMM_EBADELF,
			    "eh_frame_hdr: table entry %" PRIu64 " points outside .eh_frame", i);
	}

	img->has_eh = true;
	img->hdr_va = hdr;
	img->table_va = r.va;
	img->fde_count = (uint32_t)count;
	img->di.start_ip = text_lo;
	img->di.end_ip = text_hi;
	img->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	img->di.gp = 0; /* a static executable: data-relative means absolute */
	img->di.u.rti.name_ptr = 0;
	img->di.u.rti.segbase = hdr;
	img->di.u.rti.table_len = count * 8 / sizeof(unw_word_t);
	img->di.u.rti.table_data = r.va;
	return 0;
}

static const unw_accessors_t bt_accessors;

int bt_image_open(const void *elf, size_t len, struct bt_image **out)
{
	const uint8_t *f = elf;
	*out = NULL;
	if (!elf || len < sizeof(Elf64_Ehdr))
		return vmm_fail(VMM_EBADELF, "%zu bytes: too short for an ELF header", len);
	Elf64_Ehdr eh;
	memcpy(&eh, f, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return vmm_fail(VMM_EBADELF, "not an ELF file");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return vmm_fail(VMM_EBADELF, "not a 64-bit little-endian x86-64 ELF");
	if (eh.e_phnum && (eh.e_phentsize != sizeof(Elf64_Phdr) ||
			   !in_file(len, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr))))
		return vmm_fail(VMM_EBADELF, "program headers outside the file");

	struct bt_image *img = calloc(1, sizeof(*img));
	Elf64_Phdr *ph = malloc((eh.e_phnum ? eh.e_phnum : 1) * sizeof(*ph));
	int rc;
	if (!img || !ph) {
		rc = vmm_fail(VMM_ENOMEM, "backtrace image");
		goto fail;
	}
	if (eh.e_phnum)
		memcpy(ph, f + eh.e_phoff, (size_t)eh.e_phnum * sizeof(*ph));
	rc = load_symbols(img, f, len, &eh);
	if (rc == 0 && !img->nsyms)
		rc = load_ksyms(img, f, len);
	if (rc < 0)
		goto fail;
	rc = load_unwind(img, f, len, ph, eh.e_phnum);
	if (rc < 0)
		goto fail;
	img->as = unw_create_addr_space((unw_accessors_t *)&bt_accessors, 0);
	if (!img->as) {
		rc = vmm_fail(VMM_ENOMEM, "libunwind address space");
		goto fail;
	}
	/* The address space's own cache of decoded CFI (keyed by pc, safe: our tables never
	 * change). Not the per-thread one: that is one cache for all address spaces, keyed by
	 * pc alone, so two images would mix. */
	if (unw_set_caching_policy(img->as, UNW_CACHE_GLOBAL) < 0) {
		rc = vmm_fail(VMM_EINTERNAL, "libunwind refused its global cache");
		goto fail;
	}
	free(ph);
	*out = img;
	return 0;
fail:
	free(ph);
	bt_image_free(img);
	return rc;
}

void bt_image_free(struct bt_image *img)
{
	if (!img)
		return;
	if (img->as)
		unw_destroy_addr_space(img->as);
	for (int i = 0; i < img->nsegs; i++)
		free(img->segs[i].data);
	free(img->syms);
	free(img->names);
	free(img);
}

const char *bt_symbolize(const struct bt_image *img, uint64_t pc, uint64_t *off)
{
	if (!img || !img->nsyms)
		return NULL;
	size_t lo = 0, hi = img->nsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (img->syms[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	const struct bt_sym *s = &img->syms[lo - 1];
	if (pc - s->addr >= s->size)
		return NULL;
	if (off)
		*off = pc - s->addr;
	return img->names + s->name;
}

/* ---- libunwind's accessors --------------------------------------------------------- */

/* One bt_unwind call: what the accessors see through libunwind's arg. */
struct bt_ctx {
	struct bt_image *img;
	bt_read_fn read;
	void *opaque;
	uint64_t regs[NREGS]; /* the registers the current cursor started from */
};

/* Guest memory, with the unwind tables' segments served from our copy. */
static int mem_read(struct bt_ctx *c, uint64_t va, void *buf, size_t len)
{
	if (va + len < va)
		return -1;
	const uint8_t *p = seg_ptr(c->img, va, len);
	if (p) {
		memcpy(buf, p, len);
		return 0;
	}
	bool overlaps = false;
	for (int i = 0; i < c->img->nsegs; i++) {
		const struct bt_seg *s = &c->img->segs[i];
		overlaps |= va < s->va + s->len && s->va < va + len;
	}
	if (!overlaps)
		return c->read(c->opaque, va, buf, len) < 0 ? -1 : 0;
	/* Straddles a table segment's edge (an aligned word at its end): bytes in it from
	 * the copy, the rest from the guest, or zero where that is unreadable. */
	uint8_t *b = buf;
	if (c->read(c->opaque, va, buf, len) < 0)
		memset(buf, 0, len);
	for (size_t i = 0; i < len; i++) {
		const uint8_t *q = seg_ptr(c->img, va + i, 1);
		if (q)
			b[i] = *q;
	}
	return 0;
}

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
			      int need_unwind_info, void *arg)
{
	struct bt_ctx *c = arg;
	struct bt_image *img = c->img;
	if (!img->has_eh || ip < img->di.start_ip || ip >= img->di.end_ip)
		return -UNW_ENOINFO;
	unw_dyn_info_t di = img->di; /* libunwind's, not to share between threads */
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* libunwind frees what dwarf_search_unwind_table allocated itself. */
	(void)as, (void)pi, (void)arg;
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	(void)as, (void)addr, (void)arg;
	return -UNW_ENOINFO; /* no dynamically registered code in a guest */
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
			  void *arg)
{
	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	uint64_t v;
	if (mem_read(arg, addr, &v, sizeof(v)) < 0)
		return -UNW_EINVAL;
	*val = v;
	return 0;
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
			  void *arg)
{
	struct bt_ctx *c = arg;
	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	if (reg < 0 || reg >= NREGS)
		return -UNW_EBADREG;
	*val = c->regs[reg];
	return 0;
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			    void *arg)
{
	(void)as, (void)reg, (void)val, (void)write, (void)arg;
	return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *cur, void *arg)
{
	(void)as, (void)cur, (void)arg;
	return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t ip, char *buf, size_t len,
			     unw_word_t *off, void *arg)
{
	struct bt_ctx *c = arg;
	uint64_t o = 0;
	(void)as;
	const char *name = bt_symbolize(c->img, ip, &o);
	if (!name)
		return -UNW_ENOINFO;
	if (len)
		snprintf(buf, len, "%s", name);
	*off = o;
	return strlen(name) < len ? 0 : -UNW_ENOMEM;
}

static const unw_accessors_t bt_accessors = {
    .find_proc_info = acc_find_proc_info,
    .put_unwind_info = acc_put_unwind_info,
    .get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
    .access_mem = acc_access_mem,
    .access_reg = acc_access_reg,
    .access_fpreg = acc_access_fpreg,
    .resume = acc_resume,
    .get_proc_name = acc_get_proc_name,
};

/* ---- the walk ---------------------------------------------------------------------- */

/* Fill a frame at pc; exact: pc is the instruction itself, not a return address. */
static bool fill_frame(struct bt_image *img, struct bt_frame *f, uint64_t pc, uint64_t sp,
		       bool exact)
{
	uint64_t look = exact ? pc : pc - 1, off = 0;
	*f = (struct bt_frame){.pc = pc, .sp = sp};
	f->func = bt_symbolize(img, look, &off);
	if (f->func)
		f->off = off + (look != pc);
	return fde_find(img, look, &f->signal_frame);
}

/* The registers of the frame the cursor is at, rsp from its saved slot. */
static int frame_regs(struct bt_ctx *c, unw_cursor_t *cur, uint64_t regs[NREGS])
{
	for (int i = 0; i < NREGS; i++) {
		unw_word_t v;
		if (unw_get_reg(cur, i, &v) < 0)
			return -1;
		regs[i] = v;
	}
	unw_save_loc_t sl;
	if (unw_get_save_loc(cur, UNW_X86_64_RSP, &sl) == 0 && sl.type == UNW_SLT_MEMORY) {
		uint64_t rsp;
		if (mem_read(c, sl.u.addr, &rsp, sizeof(rsp)) < 0)
			return -1;
		regs[UNW_X86_64_RSP] = rsp;
	}
	return 0;
}

int bt_unwind(struct bt_image *img, const struct vmm_regs *r, bt_read_fn read, void *opaque,
	      struct bt_frame *out, int max)
{
	if (!img || !r || !read || !out || max < 1)
		return vmm_fail(VMM_EINVAL, "bt_unwind: bad arguments");
	struct bt_ctx c = {.img = img, .read = read, .opaque = opaque};
	const uint64_t from_vmm[NREGS] = {r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi,
					  r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
					  r->r12, r->r13, r->r14, r->r15, r->rip};
	memcpy(c.regs, from_vmm, sizeof(c.regs));

	bool info = fill_frame(img, &out[0], r->rip, r->rsp, true);
	int n = 1;
	if (!info || !img->has_eh)
		return n;
	unw_cursor_t cur;
	if (unw_init_remote(&cur, img->as, &c) < 0)
		return n;
	while (n < max && info) {
		struct bt_frame *f = &out[n - 1];
		if (unw_step(&cur) < 0)
			break; /* unreadable stack or CFI libunwind cannot follow */
		unw_word_t cfa, pc, sp;
		if (unw_get_reg(&cur, UNW_X86_64_CFA, &cfa) < 0 || !cfa)
			break;
		f->cfa = cfa;
		if (unw_get_reg(&cur, UNW_REG_IP, &pc) < 0 || !pc)
			break; /* the outermost frame (return address undefined) */
		if (f->signal_frame) {
			uint64_t regs[NREGS];
			if (frame_regs(&c, &cur, regs) < 0)
				break;
			sp = regs[UNW_X86_64_RSP];
			if (!sp || (pc == f->pc && sp == f->sp))
				break;
			memcpy(c.regs, regs, sizeof(regs));
			if (unw_init_remote(&cur, img->as, &c) < 0)
				break;
		} else {
			sp = cfa;
			if (sp <= f->sp)
				break; /* a looping or corrupt stack: callers live above */
		}
		info = fill_frame(img, &out[n], pc, sp, f->signal_frame);
		n++;
	}
	return n;
}

void bt_format(const struct bt_frame *f, int index, char *buf, size_t cap)
{
	if (!cap)
		return;
	char where[160];
	if (f->func)
		snprintf(where, sizeof(where), "%s+0x%" PRIx64, f->func, f->off);
	else
		snprintf(where, sizeof(where), "??");
	snprintf(buf, cap, "#%-3d0x%016" PRIx64 " in %s%s", index, f->pc, where,
		 f->signal_frame ? " <exception frame>" : "");
}
