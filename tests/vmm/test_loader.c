/* unit */
/*
 * test_loader.c: the PVH ELF loader (vmm/loader.c). Images are built in memory: a
 * minimal valid PVH ELF64 (a PT_NOTE with the "Xen" type 18 note, an executable text
 * segment and a data segment with bss), then broken one field at a time; every broken
 * image must fail with the right code, a detail message, and guest RAM untouched.
 */
#include "vmm/guest_abi.h"
#include "vmm/loader.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (2ull << 20)
#define RAM_FILL 0xAA
#define TEXT_PADDR 0x100000u
#define DATA_PADDR 0x102000u
#define DATA_MEMSZ 0x1000u
#define ENTRY (TEXT_PADDR + 0x10u)

struct pvh_note {
	Elf64_Nhdr nh;
	char name[4];
	uint32_t desc[2]; /* 4-byte desc by default; the second word for 8-byte tests */
};

struct test_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[3]; /* 0 PT_NOTE, 1 text (R X), 2 data (RW, with bss) */
	Elf64_Shdr sh[2]; /* only used when a test turns on sections */
	struct pvh_note note;
	_Alignas(8) uint8_t notes[96]; /* for tests with several notes */
	uint8_t text[64];
	uint8_t data[32];
};

/* The valid image ends with the last data byte; what follows is struct padding. */
#define IMG_LEN (offsetof(struct test_elf, data) + sizeof(((struct test_elf *)0)->data))
#define NOTE_LEN4 (sizeof(Elf64_Nhdr) + 4 + 4)

static struct test_elf img;
static uint8_t *ram;
static struct vmm_load_result res;

static void make_image(struct test_elf *e)
{
	unsigned i;

	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = 0xffffffff81000000ull; /* the 64-bit entry: ignored by PVH */
	e->eh.e_phoff = offsetof(struct test_elf, ph);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 3;

	e->ph[0].p_type = PT_NOTE;
	e->ph[0].p_flags = PF_R;
	e->ph[0].p_offset = offsetof(struct test_elf, note);
	e->ph[0].p_filesz = NOTE_LEN4;
	e->ph[0].p_memsz = NOTE_LEN4;
	e->ph[0].p_align = 4;

	e->ph[1].p_type = PT_LOAD;
	e->ph[1].p_flags = PF_R | PF_X;
	e->ph[1].p_offset = offsetof(struct test_elf, text);
	e->ph[1].p_vaddr = e->ph[1].p_paddr = TEXT_PADDR;
	e->ph[1].p_filesz = e->ph[1].p_memsz = sizeof(e->text);
	e->ph[1].p_align = 1;

	e->ph[2].p_type = PT_LOAD;
	e->ph[2].p_flags = PF_R | PF_W;
	e->ph[2].p_offset = offsetof(struct test_elf, data);
	e->ph[2].p_vaddr = e->ph[2].p_paddr = DATA_PADDR;
	e->ph[2].p_filesz = sizeof(e->data);
	e->ph[2].p_memsz = DATA_MEMSZ;
	e->ph[2].p_align = 1;

	e->note.nh.n_namesz = 4;
	e->note.nh.n_descsz = 4;
	e->note.nh.n_type = PVH_NOTE_TYPE_PHYS32_ENTRY;
	memcpy(e->note.name, "Xen", 4);
	e->note.desc[0] = ENTRY;

	for (i = 0; i < sizeof(e->text); i++)
		e->text[i] = (uint8_t)(0x90 + i);
	for (i = 0; i < sizeof(e->data); i++)
		e->data[i] = (uint8_t)(0x40 + i);
}

/* Move the note into a SHT_NOTE section (for images without a PT_NOTE). */
static void add_note_section(struct test_elf *e)
{
	e->eh.e_shoff = offsetof(struct test_elf, sh);
	e->eh.e_shentsize = sizeof(Elf64_Shdr);
	e->eh.e_shnum = 2;
	e->sh[1].sh_type = SHT_NOTE;
	e->sh[1].sh_offset = offsetof(struct test_elf, note);
	e->sh[1].sh_size = NOTE_LEN4;
	e->sh[1].sh_addralign = 4;
}

/* Append a note at *pos in img.notes with the given container alignment. */
static void put_note(size_t *pos, size_t align, const char *name, uint32_t type,
		     const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz,
			  .n_type = type };
	size_t p = *pos;

	memcpy(img.notes + p, &nh, sizeof(nh));
	p += sizeof(nh);
	memcpy(img.notes + p, name, nh.n_namesz);
	p = (p + nh.n_namesz + align - 1) & ~(align - 1);
	memcpy(img.notes + p, desc, descsz);
	p = (p + descsz + align - 1) & ~(align - 1);
	cr_assert_leq(p, sizeof(img.notes));
	*pos = p;
	img.ph[0].p_offset = offsetof(struct test_elf, notes);
	img.ph[0].p_filesz = p;
	img.ph[0].p_align = align;
}

static void setup(void)
{
	make_image(&img);
	ram = malloc(RAM_SIZE);
	cr_assert_not_null(ram);
	memset(ram, RAM_FILL, RAM_SIZE);
	memset(&res, 0, sizeof(res));
}

static void teardown(void)
{
	free(ram);
}

static bool ram_untouched(void)
{
	for (uint64_t i = 0; i < RAM_SIZE; i++)
		if (ram[i] != RAM_FILL)
			return false;
	return true;
}

static int load(const char *cmdline)
{
	return vmm_load_pvh(ram, RAM_SIZE, &img, IMG_LEN, cmdline, &res);
}

/* Load must fail with err, leave a detail containing what, and not touch RAM. */
static void expect_fail(int err, const char *what)
{
	int ret = load("console=ttyS0");

	cr_assert_eq(ret, -err, "expected %d (%s), got %d (%s): %s", -err, vmm_strerror(err),
		     ret, vmm_strerror(ret), vmm_errdetail());
	cr_assert_neq(vmm_errdetail()[0], '\0', "no detail message");
	if (what)
		cr_assert_not_null(strstr(vmm_errdetail(), what), "detail \"%s\" lacks \"%s\"",
				   vmm_errdetail(), what);
	cr_assert(ram_untouched(), "a refused image changed guest RAM");
}

TestSuite(loader, .init = setup, .fini = teardown);

Test(loader, valid_image_loads)
{
	struct hvm_start_info si;
	struct hvm_memmap_table_entry mm[3];
	int ret = load("console=ttyS0 quiet");

	cr_assert_eq(ret, 0, "load failed: %s", vmm_errdetail());
	cr_assert_eq(res.entry, ENTRY);
	cr_assert_eq(res.start_info, VMM_START_INFO);
	cr_assert_eq(res.lowest, TEXT_PADDR);
	cr_assert_eq(res.highest, DATA_PADDR + DATA_MEMSZ);

	cr_assert_arr_eq(ram + TEXT_PADDR, img.text, sizeof(img.text));
	cr_assert_arr_eq(ram + DATA_PADDR, img.data, sizeof(img.data));
	for (uint64_t a = DATA_PADDR + sizeof(img.data); a < DATA_PADDR + DATA_MEMSZ; a++)
		cr_assert_eq(ram[a], 0, "bss byte at 0x%llx not zeroed", (unsigned long long)a);
	/* Outside the segments and the boot area RAM is left alone. */
	cr_assert_eq(ram[TEXT_PADDR - 1], RAM_FILL);
	cr_assert_eq(ram[TEXT_PADDR + sizeof(img.text)], RAM_FILL);
	cr_assert_eq(ram[DATA_PADDR + DATA_MEMSZ], RAM_FILL);
	cr_assert_eq(ram[VMM_VMM_AREA], RAM_FILL);

	memcpy(&si, ram + VMM_START_INFO, sizeof(si));
	cr_assert_eq(si.magic, HVM_START_MAGIC);
	cr_assert_eq(si.version, 1);
	cr_assert_eq(si.flags, 0);
	cr_assert_eq(si.nr_modules, 0);
	cr_assert_eq(si.modlist_paddr, 0);
	cr_assert_eq(si.rsdp_paddr, 0);
	cr_assert_eq(si.cmdline_paddr, VMM_CMDLINE);
	cr_assert_str_eq((const char *)ram + VMM_CMDLINE, "console=ttyS0 quiet");
	cr_assert_eq(si.memmap_paddr, (VMM_START_INFO + sizeof(si) + 7) & ~7ull);
	cr_assert_eq(si.memmap_paddr % 8, 0);
	cr_assert_eq(si.memmap_entries, 3);
	cr_assert_leq(si.memmap_paddr + sizeof(mm), VMM_CMDLINE);

	memcpy(mm, ram + si.memmap_paddr, sizeof(mm));
	cr_assert_eq(mm[0].addr, 0);
	cr_assert_eq(mm[0].size, 0x9FC00);
	cr_assert_eq(mm[0].type, HVM_MEMMAP_TYPE_RAM);
	cr_assert_eq(mm[1].addr, 0x9FC00);
	cr_assert_eq(mm[1].size, 0x100000 - 0x9FC00);
	cr_assert_eq(mm[1].type, HVM_MEMMAP_TYPE_RESERVED);
	cr_assert_eq(mm[2].addr, 0x100000);
	cr_assert_eq(mm[2].size, RAM_SIZE - 0x100000);
	cr_assert_eq(mm[2].type, HVM_MEMMAP_TYPE_RAM);
}

Test(loader, null_cmdline_is_empty_string)
{
	struct hvm_start_info si;

	cr_assert_eq(vmm_load_pvh(ram, RAM_SIZE, &img, IMG_LEN, NULL, &res), 0, "%s",
		     vmm_errdetail());
	memcpy(&si, ram + VMM_START_INFO, sizeof(si));
	cr_assert_eq(si.cmdline_paddr, VMM_CMDLINE);
	cr_assert_eq(ram[VMM_CMDLINE], 0);
}

Test(loader, cmdline_of_max_length_loads)
{
	char *cl = malloc(VMM_CMDLINE_MAX + 1);

	cr_assert_not_null(cl);
	memset(cl, 'x', VMM_CMDLINE_MAX);
	cl[VMM_CMDLINE_MAX] = 0;
	cr_assert_eq(load(cl), 0, "%s", vmm_errdetail());
	cr_assert_str_eq((const char *)ram + VMM_CMDLINE, cl);
	cr_assert_eq(ram[VMM_CMDLINE + VMM_CMDLINE_MAX], 0);
	free(cl);
}

Test(loader, cmdline_too_long)
{
	char *cl = malloc(VMM_CMDLINE_MAX + 2);

	cr_assert_not_null(cl);
	memset(cl, 'x', VMM_CMDLINE_MAX + 1);
	cl[VMM_CMDLINE_MAX + 1] = 0;
	cr_assert_eq(load(cl), -VMM_EINVAL);
	cr_assert_not_null(strstr(vmm_errdetail(), "command line"));
	cr_assert(ram_untouched());
	free(cl);
}

Test(loader, ram_too_small)
{
	cr_assert_eq(vmm_load_pvh(ram, VMM_HOLE_END, &img, IMG_LEN, NULL, &res), -VMM_EINVAL);
	cr_assert(ram_untouched());
}

Test(loader, null_arguments)
{
	cr_assert_eq(vmm_load_pvh(NULL, RAM_SIZE, &img, IMG_LEN, NULL, &res), -VMM_EINVAL);
	cr_assert_eq(vmm_load_pvh(ram, RAM_SIZE, NULL, 10, NULL, &res), -VMM_EINVAL);
	cr_assert_eq(vmm_load_pvh(ram, RAM_SIZE, &img, IMG_LEN, NULL, NULL), -VMM_EINVAL);
}

Test(loader, empty_file)
{
	cr_assert_eq(vmm_load_pvh(ram, RAM_SIZE, &img, 0, NULL, &res), -VMM_EBADELF);
	cr_assert_not_null(strstr(vmm_errdetail(), "empty"));
	cr_assert_eq(vmm_load_pvh(ram, RAM_SIZE, NULL, 0, NULL, &res), -VMM_EBADELF);
	cr_assert(ram_untouched());
}

Test(loader, not_elf)
{
	memcpy(img.eh.e_ident, "#!/bin/sh\n", 10);
	expect_fail(VMM_EBADELF, "not an ELF");
}

Test(loader, elf32_class)
{
	img.eh.e_ident[EI_CLASS] = ELFCLASS32;
	expect_fail(VMM_EBADELF, "ELFCLASS64");
}

Test(loader, big_endian)
{
	img.eh.e_ident[EI_DATA] = ELFDATA2MSB;
	expect_fail(VMM_EBADELF, "little-endian");
}

Test(loader, bad_ident_version)
{
	img.eh.e_ident[EI_VERSION] = 2;
	expect_fail(VMM_EBADELF, "version");
}

Test(loader, bad_e_version)
{
	img.eh.e_version = 0;
	expect_fail(VMM_EBADELF, "version");
}

Test(loader, wrong_machine)
{
	img.eh.e_machine = EM_AARCH64;
	expect_fail(VMM_EBADELF, "x86-64");
}

Test(loader, et_dyn_refused)
{
	img.eh.e_type = ET_DYN;
	expect_fail(VMM_EBADELF, "ET_DYN");
}

Test(loader, et_rel_refused)
{
	img.eh.e_type = ET_REL;
	expect_fail(VMM_EBADELF, "ET_EXEC");
}

Test(loader, bad_phentsize)
{
	img.eh.e_phentsize = sizeof(Elf32_Phdr);
	expect_fail(VMM_EBADELF, "e_phentsize");
}

Test(loader, no_phdrs)
{
	img.eh.e_phnum = 0;
	expect_fail(VMM_EBADELF, "program headers");
}

Test(loader, phdrs_out_of_file)
{
	img.eh.e_phoff = IMG_LEN - sizeof(Elf64_Phdr);
	expect_fail(VMM_EBADELF, "program header table");
}

Test(loader, phoff_overflows)
{
	img.eh.e_phoff = UINT64_MAX - 8;
	expect_fail(VMM_EBADELF, "program header table");
}

Test(loader, phnum_huge)
{
	img.eh.e_phnum = 0xfffe;
	expect_fail(VMM_EBADELF, "program header table");
}

Test(loader, phnum_extended_numbering)
{
	img.eh.e_phnum = PN_XNUM;
	expect_fail(VMM_EBADELF, "PN_XNUM");
}

Test(loader, truncated_at_every_byte)
{
	for (size_t n = 0; n < IMG_LEN; n++) {
		/* A heap copy of exactly n bytes, so ASan sees any read past the end. */
		uint8_t *copy = malloc(n ? n : 1);
		int ret;

		cr_assert_not_null(copy);
		memcpy(copy, &img, n);
		ret = vmm_load_pvh(ram, RAM_SIZE, copy, n, NULL, &res);
		free(copy);
		cr_assert_lt(ret, 0, "prefix of %zu bytes loaded", n);
		cr_assert_neq(vmm_errdetail()[0], '\0');
	}
	cr_assert(ram_untouched());
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
}

Test(loader, every_byte_flipped_never_crashes)
{
	/* Not a check of results (many flips are harmless), only of robustness. */
	for (size_t n = 0; n < IMG_LEN; n++) {
		for (unsigned x = 1; x < 256; x <<= 1) {
			struct test_elf copy = img;
			uint8_t *bytes = (uint8_t *)&copy;
			int ret;

			bytes[n] ^= (uint8_t)x;
			ret = vmm_load_pvh(ram, RAM_SIZE, &copy, IMG_LEN, NULL, &res);
			cr_assert(ret == 0 || vmm_errdetail()[0] != '\0');
		}
	}
}

Test(loader, filesz_larger_than_memsz)
{
	img.ph[2].p_memsz = img.ph[2].p_filesz - 1;
	expect_fail(VMM_EBADELF, "segment 2");
}

Test(loader, segment_data_outside_file)
{
	img.ph[1].p_offset = IMG_LEN;
	expect_fail(VMM_EBADELF, "outside the file");
}

Test(loader, segment_offset_overflows)
{
	img.ph[1].p_offset = UINT64_MAX - 16;
	expect_fail(VMM_EBADELF, "segment 1");
}

Test(loader, segment_outside_ram)
{
	img.ph[2].p_paddr = RAM_SIZE - 0x800;
	expect_fail(VMM_ELAYOUT, "past guest RAM");
}

Test(loader, segment_ending_at_ram_end_loads)
{
	img.ph[2].p_paddr = RAM_SIZE - DATA_MEMSZ;
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.highest, RAM_SIZE);
	cr_assert_eq(ram[RAM_SIZE - 1], 0);
}

Test(loader, segment_overflows_64_bits)
{
	img.ph[2].p_paddr = UINT64_MAX - 0xfff;
	img.ph[2].p_memsz = 0x2000;
	expect_fail(VMM_ELAYOUT, "wraps");
}

Test(loader, segment_huge_memsz)
{
	img.ph[2].p_memsz = 1ull << 62;
	expect_fail(VMM_ELAYOUT, "segment 2");
}

Test(loader, overlaps_low_reserved_area)
{
	img.ph[2].p_paddr = 0x1000;
	img.ph[2].p_memsz = 0x2000;
	expect_fail(VMM_ELAYOUT,
		    "segment 2 (paddr 0x1000, memsz 0x2000) overlaps the reserved low area "
		    "0x0-0x8000");
}

Test(loader, ends_in_low_reserved_area)
{
	img.ph[2].p_paddr = 0x0;
	img.ph[2].p_memsz = 0x40;
	expect_fail(VMM_ELAYOUT, "reserved low area");
}

Test(loader, overlaps_hole_from_below)
{
	img.ph[2].p_paddr = 0x9F000;
	expect_fail(VMM_ELAYOUT, "hole");
}

Test(loader, inside_hole)
{
	img.ph[2].p_paddr = 0xB8000;
	expect_fail(VMM_ELAYOUT, "hole");
}

Test(loader, spans_whole_hole)
{
	img.ph[2].p_paddr = 0x8000;
	img.ph[2].p_memsz = 0x100000;
	img.ph[1].p_paddr = 0x180000;
	img.note.desc[0] = 0x180000;
	expect_fail(VMM_ELAYOUT, "hole");
}

Test(loader, segments_touching_reserved_edges_load)
{
	/* Data from 0x8000 up to exactly the hole start: both edges are allowed. */
	img.ph[2].p_paddr = VMM_LOW_RESERVED_END;
	img.ph[2].p_memsz = VMM_HOLE_START - VMM_LOW_RESERVED_END;
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.lowest, VMM_LOW_RESERVED_END);
	cr_assert_eq(res.highest, TEXT_PADDR + sizeof(img.text));
	cr_assert_arr_eq(ram + VMM_LOW_RESERVED_END, img.data, sizeof(img.data));
	cr_assert_eq(ram[VMM_HOLE_START - 1], 0);
	cr_assert_eq(ram[VMM_HOLE_START], RAM_FILL);
}

Test(loader, segments_overlap_each_other)
{
	img.ph[2].p_paddr = TEXT_PADDR + 0x20;
	expect_fail(VMM_ELAYOUT, "overlaps segment");
}

Test(loader, no_load_segments)
{
	img.ph[1].p_type = PT_NULL;
	img.ph[2].p_type = PT_NULL;
	expect_fail(VMM_EBADELF, "PT_LOAD");
}

Test(loader, no_pvh_note_segment)
{
	img.ph[0].p_type = PT_NULL;
	expect_fail(VMM_ENOPVH, "no PVH entry note (ELF note \"Xen\" type 18)");
}

Test(loader, note_of_wrong_type)
{
	img.note.nh.n_type = 17;
	expect_fail(VMM_ENOPVH, "cannot boot with PVH");
}

Test(loader, note_of_wrong_name)
{
	memcpy(img.note.name, "Xem", 4);
	expect_fail(VMM_ENOPVH, "\"Xen\"");
}

Test(loader, note_namesz_overflows)
{
	img.note.nh.n_namesz = UINT32_MAX;
	expect_fail(VMM_EBADELF, "note");
}

Test(loader, note_descsz_overflows)
{
	img.note.nh.n_descsz = UINT32_MAX;
	expect_fail(VMM_EBADELF, "note");
}

Test(loader, note_descsz_past_segment)
{
	img.note.nh.n_descsz = 8; /* 8 bytes of desc do not fit a 20-byte note segment */
	expect_fail(VMM_EBADELF, "past the end");
}

Test(loader, note_segment_outside_file)
{
	img.ph[0].p_offset = UINT64_MAX - 4;
	expect_fail(VMM_EBADELF, "note segment 0");
}

Test(loader, note_desc_of_bad_size)
{
	img.note.nh.n_descsz = 2;
	expect_fail(VMM_EBADELF, "2-byte");
}

Test(loader, note_desc_of_8_bytes)
{
	img.note.nh.n_descsz = 8;
	img.note.desc[1] = 0;
	img.ph[0].p_filesz = sizeof(img.note);
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.entry, ENTRY);
}

Test(loader, note_desc_of_8_bytes_above_4g)
{
	img.note.nh.n_descsz = 8;
	img.note.desc[1] = 1;
	img.ph[0].p_filesz = sizeof(img.note);
	expect_fail(VMM_EBADELF, "above 4 GiB");
}

Test(loader, note_in_section_only)
{
	img.ph[0].p_type = PT_NULL;
	add_note_section(&img);
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.entry, ENTRY);
}

Test(loader, bad_section_table_is_ignored)
{
	add_note_section(&img);
	img.eh.e_shoff = UINT64_MAX - 8; /* the PT_NOTE still gives the entry */
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
}

Test(loader, malformed_note_section)
{
	img.ph[0].p_type = PT_NULL;
	add_note_section(&img);
	img.sh[1].sh_size = UINT64_MAX;
	expect_fail(VMM_EBADELF, "note section 1");
}

Test(loader, entry_outside_segments)
{
	img.note.desc[0] = 0x200000;
	expect_fail(VMM_EBADELF, "outside every loaded segment");
}

Test(loader, entry_just_past_text)
{
	img.note.desc[0] = TEXT_PADDR + sizeof(img.text);
	expect_fail(VMM_EBADELF, "outside every loaded segment");
}

Test(loader, entry_in_data_segment)
{
	img.note.desc[0] = DATA_PADDR + 0x100; /* in bss */
	expect_fail(VMM_EBADELF, "not executable");
}

Test(loader, xen_note_after_other_notes)
{
	uint64_t entry = ENTRY;
	size_t pos = 0;

	put_note(&pos, 4, "GNU", NT_GNU_BUILD_ID, "\x01\x02\x03\x04\x05", 5);
	put_note(&pos, 4, "Xen", 5, "xen-3.0", 8); /* XEN_ELFNOTE_XEN_VERSION: skipped */
	put_note(&pos, 4, "Xen", PVH_NOTE_TYPE_PHYS32_ENTRY, &entry, 8); /* as Linux does */
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.entry, ENTRY);
}

Test(loader, notes_in_8_aligned_segment)
{
	uint64_t entry = ENTRY;
	size_t pos = 0;

	/* With 8-byte alignment a 4-byte name needs no padding: desc sits at offset 16. */
	put_note(&pos, 8, "GNU", NT_GNU_PROPERTY_TYPE_0, "\x01\x02\x03\x04", 4);
	cr_assert_eq(pos, 24);
	put_note(&pos, 8, "Xen", PVH_NOTE_TYPE_PHYS32_ENTRY, &entry, 8);
	cr_assert_eq(load(NULL), 0, "%s", vmm_errdetail());
	cr_assert_eq(res.entry, ENTRY);
}

Test(loader, second_note_truncated)
{
	uint32_t entry = ENTRY;
	size_t pos = 0;

	put_note(&pos, 4, "GNU", NT_GNU_BUILD_ID, "\x01\x02\x03\x04", 4);
	put_note(&pos, 4, "Xen", PVH_NOTE_TYPE_PHYS32_ENTRY, &entry, 4);
	img.ph[0].p_filesz = pos - 2; /* the entry's desc is cut short */
	expect_fail(VMM_EBADELF, "past the end");
}

/* ---- the initrd (PVH module list) ---- */

Test(loader, initrd_at_top_of_ram_in_module_list)
{
	enum { RD_LEN = 5000 };
	static uint8_t rd[RD_LEN];
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct hvm_memmap_table_entry mm[3];
	uint64_t want = (RAM_SIZE - RD_LEN) & ~0xfffull;

	for (unsigned i = 0; i < RD_LEN; i++)
		rd[i] = (uint8_t)(i * 7 + 1);
	cr_assert_eq(vmm_load_pvh_initrd(ram, RAM_SIZE, &img, IMG_LEN, "", rd, RD_LEN, &res), 0,
		     "%s", vmm_errdetail());
	cr_assert_eq(res.initrd, want);
	cr_assert_eq(res.initrd_len, RD_LEN);
	cr_assert_arr_eq(ram + want, rd, RD_LEN);
	/* Only the initrd's bytes are written: the rest of its last page stays as it was. */
	cr_assert_eq(ram[want + RD_LEN], RAM_FILL);
	cr_assert_eq(ram[want - 1], RAM_FILL);

	memcpy(&si, ram + VMM_START_INFO, sizeof(si));
	cr_assert_eq(si.nr_modules, 1);
	cr_assert_neq(si.modlist_paddr, 0);
	cr_assert_eq(si.modlist_paddr % 8, 0);
	cr_assert_geq(si.modlist_paddr, si.memmap_paddr + sizeof(mm), "overlaps the memory map");
	cr_assert_leq(si.modlist_paddr + sizeof(mod), VMM_CMDLINE);
	memcpy(&mod, ram + si.modlist_paddr, sizeof(mod));
	cr_assert_eq(mod.paddr, want);
	cr_assert_eq(mod.size, RD_LEN);
	cr_assert_eq(mod.cmdline_paddr, 0, "the module has no command line");
	cr_assert_eq(mod.reserved, 0);
	/* It lies inside the last RAM entry, which the memory map reports unchanged. */
	memcpy(mm, ram + si.memmap_paddr, sizeof(mm));
	cr_assert_eq(mm[2].type, HVM_MEMMAP_TYPE_RAM);
	cr_assert_geq(mod.paddr, mm[2].addr);
	cr_assert_leq(mod.paddr + mod.size, mm[2].addr + mm[2].size);
}

Test(loader, initrd_filling_ram_above_the_kernel_loads)
{
	/* The kernel ends at DATA_PADDR + DATA_MEMSZ; everything above is the initrd's. */
	size_t len = RAM_SIZE - (DATA_PADDR + DATA_MEMSZ);
	uint8_t *rd = calloc(1, len);

	cr_assert_not_null(rd);
	cr_assert_eq(vmm_load_pvh_initrd(ram, RAM_SIZE, &img, IMG_LEN, "", rd, len, &res), 0,
		     "%s", vmm_errdetail());
	cr_assert_eq(res.initrd, DATA_PADDR + DATA_MEMSZ);
	free(rd);
}

Test(loader, initrd_too_big_refused_ram_untouched)
{
	size_t len = RAM_SIZE - (DATA_PADDR + DATA_MEMSZ) + 1;
	uint8_t *rd = calloc(1, len);

	cr_assert_not_null(rd);
	cr_assert_eq(vmm_load_pvh_initrd(ram, RAM_SIZE, &img, IMG_LEN, "", rd, len, &res),
		     -VMM_ELAYOUT);
	cr_assert_not_null(strstr(vmm_errdetail(), "initrd of"), "%s", vmm_errdetail());
	cr_assert_not_null(strstr(vmm_errdetail(), "--mem"), "%s", vmm_errdetail());
	cr_assert(ram_untouched(), "a refused initrd changed guest RAM");
	/* Larger than all of RAM, and larger than 4 GiB of address: refused alike. */
	cr_assert_eq(vmm_load_pvh_initrd(ram, RAM_SIZE, &img, IMG_LEN, "", rd, RAM_SIZE + 1,
					 &res),
		     -VMM_ELAYOUT);
	cr_assert(ram_untouched());
	free(rd);
}

Test(loader, initrd_missing_bytes_refused)
{
	cr_assert_eq(vmm_load_pvh_initrd(ram, RAM_SIZE, &img, IMG_LEN, "", NULL, 10, &res),
		     -VMM_EINVAL);
	cr_assert(ram_untouched());
}
