/*
 * loader.c: the PVH ELF loader (docs/architecture.md, layout in loader.h).
 *
 * Owns everything between the bytes of a guest image and guest RAM at the first
 * instruction: ELF header and program header validation, the XEN_ELFNOTE_PHYS32_ENTRY
 * note, copying PT_LOAD segments, and the hvm_start_info / command line / memory map
 * the guest finds through EBX, and the initrd with its one-entry module list.
 *
 * The image is untrusted input: every field is checked against the file length with
 * overflow-checked arithmetic before it is used, every header is read with memcpy (no
 * unaligned access), and guest RAM is not touched until the whole image has been
 * validated, so a refused image leaves RAM as it was.
 */
#include "loader.h"
#include "guest_abi.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

/* Offset of the memory map: just after hvm_start_info, 8-byte aligned. */
#define VMM_MEMMAP_PADDR \
	((VMM_START_INFO + sizeof(struct hvm_start_info) + 7u) & ~(uint64_t)7u)
#define VMM_MEMMAP_ENTRIES 3u
/* The module list (one entry, the initrd): after the memory map, 8-byte aligned. */
#define VMM_MODLIST_PADDR \
	(VMM_MEMMAP_PADDR + VMM_MEMMAP_ENTRIES * sizeof(struct hvm_memmap_table_entry))
/* Linux reads a PVH module's address into a 32-bit field: the initrd stays below 4 GiB. */
#define VMM_INITRD_LIMIT (4ull << 30)

/* A PT_LOAD segment that passed validation. */
struct load_seg {
	uint64_t paddr, memsz, offset, filesz;
	uint32_t flags;
	unsigned index; /* program header index, for messages */
};

/* Checked a + b <= limit, without overflow. */
static bool range_ok(uint64_t off, uint64_t size, uint64_t limit)
{
	return off <= limit && size <= limit - off;
}

static bool overlaps(uint64_t a, uint64_t a_end, uint64_t b, uint64_t b_end)
{
	return a < b_end && b < a_end;
}

static int check_ehdr(const uint8_t *p, size_t len, Elf64_Ehdr *eh)
{
	if (len == 0)
		return vmm_fail(VMM_EBADELF, "empty file: not an ELF image");
	if (len < SELFMAG || memcmp(p, ELFMAG, SELFMAG) != 0)
		return vmm_fail(VMM_EBADELF, "not an ELF file (no \\177ELF magic at offset 0)");
	if (len < EI_NIDENT)
		return vmm_fail(VMM_EBADELF, "truncated ELF identification (%zu of %d bytes)", len,
				EI_NIDENT);
	if (p[EI_CLASS] != ELFCLASS64)
		return vmm_fail(VMM_EBADELF,
				"ELF class %u is not ELFCLASS64: a 32-bit ELF cannot be loaded "
				"(build the guest as x86-64)",
				p[EI_CLASS]);
	if (p[EI_DATA] != ELFDATA2LSB)
		return vmm_fail(VMM_EBADELF, "ELF data encoding %u is not little-endian (ELFDATA2LSB)",
				p[EI_DATA]);
	if (p[EI_VERSION] != EV_CURRENT)
		return vmm_fail(VMM_EBADELF, "ELF identification version %u is not EV_CURRENT",
				p[EI_VERSION]);
	if (len < sizeof(*eh))
		return vmm_fail(VMM_EBADELF, "truncated ELF header (%zu of %zu bytes)", len,
				sizeof(*eh));
	memcpy(eh, p, sizeof(*eh));
	if (eh->e_machine != EM_X86_64)
		return vmm_fail(VMM_EBADELF, "ELF machine %u is not x86-64 (EM_X86_64 = %u)",
				eh->e_machine, EM_X86_64);
	if (eh->e_version != EV_CURRENT)
		return vmm_fail(VMM_EBADELF, "ELF version %u is not EV_CURRENT", eh->e_version);
	if (eh->e_type == ET_DYN)
		return vmm_fail(VMM_EBADELF, "ELF type ET_DYN (position-independent or shared "
					     "object) is not loadable: PVH needs an ET_EXEC linked "
					     "at physical addresses (link with -no-pie)");
	if (eh->e_type != ET_EXEC)
		return vmm_fail(VMM_EBADELF, "ELF type %u is not ET_EXEC", eh->e_type);
	if (eh->e_phnum == 0)
		return vmm_fail(VMM_EBADELF, "ELF has no program headers");
	if (eh->e_phnum == PN_XNUM)
		return vmm_fail(VMM_EBADELF, "ELF uses extended program header numbering "
					     "(e_phnum = PN_XNUM), which is not supported");
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return vmm_fail(VMM_EBADELF, "ELF e_phentsize %u is not %zu", eh->e_phentsize,
				sizeof(Elf64_Phdr));
	if (!range_ok(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), len))
		return vmm_fail(VMM_EBADELF,
				"program header table (offset 0x%llx, %u entries) lies outside "
				"the file (%zu bytes)",
				(unsigned long long)eh->e_phoff, eh->e_phnum, len);
	return 0;
}

/*
 * Search notes in file bytes [off, off + size) for the PVH entry. Returns 1 with *entry
 * set if found, 0 if not, or a negative error for a malformed note. what/index name
 * the container for messages.
 */
static int scan_notes(const uint8_t *p, size_t len, uint64_t off, uint64_t size,
		      uint64_t align, const char *what, unsigned index, uint32_t *entry)
{
	uint64_t pos = 0;

	if (!range_ok(off, size, len))
		return vmm_fail(VMM_EBADELF,
				"%s %u (offset 0x%llx, size 0x%llx) lies outside the file (%zu "
				"bytes)",
				what, index, (unsigned long long)off, (unsigned long long)size, len);
	/* Notes are 4-byte aligned; GNU property notes in 8-aligned containers use 8. */
	align = align == 8 ? 8 : 4;
	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name_off, desc_off, next;

		/* pos < size <= len and the sizes are 32-bit: these sums cannot overflow. */
		memcpy(&nh, p + off + pos, sizeof(nh));
		name_off = pos + sizeof(nh);
		desc_off = (name_off + nh.n_namesz + align - 1) & ~(align - 1);
		if (!range_ok(name_off, nh.n_namesz, size) || !range_ok(desc_off, nh.n_descsz, size))
			return vmm_fail(VMM_EBADELF,
					"%s %u: note at offset 0x%llx (namesz %u, descsz %u) runs "
					"past the end of its container (size 0x%llx)",
					what, index, (unsigned long long)(off + pos), nh.n_namesz,
					nh.n_descsz, (unsigned long long)size);
		next = (desc_off + nh.n_descsz + align - 1) & ~(align - 1);
		if (nh.n_type == PVH_NOTE_TYPE_PHYS32_ENTRY &&
		    ((nh.n_namesz == sizeof(PVH_NOTE_NAME) &&
		      memcmp(p + off + name_off, PVH_NOTE_NAME, sizeof(PVH_NOTE_NAME)) == 0) ||
		     (nh.n_namesz == sizeof(PVH_NOTE_NAME) - 1 &&
		      memcmp(p + off + name_off, PVH_NOTE_NAME, sizeof(PVH_NOTE_NAME) - 1) == 0))) {
			const uint8_t *d = p + off + desc_off;
			uint64_t v;

			if (nh.n_descsz == 4) {
				uint32_t v32;

				memcpy(&v32, d, 4);
				v = v32;
			} else if (nh.n_descsz == 8) {
				memcpy(&v, d, 8);
			} else {
				return vmm_fail(VMM_EBADELF,
						"%s %u: PVH entry note (\"Xen\" type 18) has a %u-byte "
						"value; expected 4 or 8 bytes",
						what, index, nh.n_descsz);
			}
			if (v > UINT32_MAX)
				return vmm_fail(VMM_EBADELF,
						"%s %u: PVH entry point 0x%llx is above 4 GiB", what,
						index, (unsigned long long)v);
			*entry = (uint32_t)v;
			return 1;
		}
		if (next >= size)
			break;
		pos = next;
	}
	return 0;
}

/* The PVH entry from PT_NOTE segments, or failing that from SHT_NOTE sections. */
static int find_pvh_entry(const uint8_t *p, size_t len, const Elf64_Ehdr *eh, uint32_t *entry)
{
	unsigned i;
	int ret;

	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, p + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE)
			continue;
		ret = scan_notes(p, len, ph.p_offset, ph.p_filesz, ph.p_align, "note segment", i,
				 entry);
		if (ret != 0)
			return ret;
	}
	/*
	 * Sections are optional in an executable; a missing or unusable section table just
	 * means there is nothing more to search.
	 */
	if (eh->e_shoff == 0 || eh->e_shnum == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !range_ok(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), len))
		return 0;
	for (i = 0; i < eh->e_shnum; i++) {
		Elf64_Shdr sh;

		memcpy(&sh, p + eh->e_shoff + (uint64_t)i * sizeof(sh), sizeof(sh));
		if (sh.sh_type != SHT_NOTE)
			continue;
		ret = scan_notes(p, len, sh.sh_offset, sh.sh_size, sh.sh_addralign,
				 "note section", i, entry);
		if (ret != 0)
			return ret;
	}
	return 0;
}

static int check_load(const Elf64_Phdr *ph, unsigned i, size_t len, uint64_t ram_size)
{
	uint64_t end;

	if (ph->p_filesz > ph->p_memsz)
		return vmm_fail(VMM_EBADELF,
				"segment %u: file size 0x%llx is larger than memory size 0x%llx",
				i, (unsigned long long)ph->p_filesz,
				(unsigned long long)ph->p_memsz);
	if (!range_ok(ph->p_offset, ph->p_filesz, len))
		return vmm_fail(VMM_EBADELF,
				"segment %u (offset 0x%llx, filesz 0x%llx) lies outside the file "
				"(%zu bytes)",
				i, (unsigned long long)ph->p_offset,
				(unsigned long long)ph->p_filesz, len);
	if (ph->p_memsz == 0)
		return 0;
	if (!range_ok(ph->p_paddr, ph->p_memsz, UINT64_MAX))
		return vmm_fail(VMM_ELAYOUT,
				"segment %u (paddr 0x%llx, memsz 0x%llx) wraps around the end of "
				"the 64-bit address space",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)ph->p_memsz);
	end = ph->p_paddr + ph->p_memsz;
	if (end > ram_size)
		return vmm_fail(VMM_ELAYOUT,
				"segment %u (paddr 0x%llx, memsz 0x%llx) ends past guest RAM "
				"(0x%llx bytes): give the guest more memory or link it lower",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)ph->p_memsz, (unsigned long long)ram_size);
	if (overlaps(ph->p_paddr, end, 0, VMM_LOW_RESERVED_END))
		return vmm_fail(VMM_ELAYOUT,
				"segment %u (paddr 0x%llx, memsz 0x%llx) overlaps the reserved "
				"low area 0x0-0x%x",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)ph->p_memsz, VMM_LOW_RESERVED_END);
	if (overlaps(ph->p_paddr, end, VMM_HOLE_START, VMM_HOLE_END))
		return vmm_fail(VMM_ELAYOUT,
				"segment %u (paddr 0x%llx, memsz 0x%llx) overlaps the reserved "
				"PC hole 0x%x-0x%x (EBDA, VGA, BIOS)",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)ph->p_memsz, VMM_HOLE_START, VMM_HOLE_END);
	return 0;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct load_seg *x = a, *y = b;

	return x->paddr < y->paddr ? -1 : x->paddr > y->paddr;
}

static void write_boot_info(uint8_t *ram, uint64_t ram_size, const char *cmdline,
			    size_t cmdline_len, uint64_t initrd_addr, uint64_t initrd_len)
{
	struct hvm_start_info si;
	struct hvm_memmap_table_entry mm[VMM_MEMMAP_ENTRIES];
	struct hvm_modlist_entry mod;

	memset(ram + VMM_START_INFO, 0, VMM_CMDLINE - VMM_START_INFO);
	memset(ram + VMM_CMDLINE, 0, VMM_CMDLINE_MAX + 1);
	if (cmdline_len)
		memcpy(ram + VMM_CMDLINE, cmdline, cmdline_len);

	memset(mm, 0, sizeof(mm));
	mm[0].addr = 0;
	mm[0].size = VMM_HOLE_START;
	mm[0].type = HVM_MEMMAP_TYPE_RAM;
	mm[1].addr = VMM_HOLE_START;
	mm[1].size = VMM_HOLE_END - VMM_HOLE_START;
	mm[1].type = HVM_MEMMAP_TYPE_RESERVED;
	mm[2].addr = VMM_HOLE_END;
	mm[2].size = ram_size - VMM_HOLE_END;
	mm[2].type = HVM_MEMMAP_TYPE_RAM;
	memcpy(ram + VMM_MEMMAP_PADDR, mm, sizeof(mm));

	/*
	 * The initrd lies in the last RAM entry, as on a PC: Linux reserves it itself and
	 * frees it once unpacked. Its module has no command line (cmdline_paddr 0).
	 */
	memset(&mod, 0, sizeof(mod));
	mod.paddr = initrd_addr;
	mod.size = initrd_len;
	if (initrd_len)
		memcpy(ram + VMM_MODLIST_PADDR, &mod, sizeof(mod));

	memset(&si, 0, sizeof(si));
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.flags = 0;
	si.nr_modules = initrd_len ? 1 : 0;
	si.modlist_paddr = initrd_len ? VMM_MODLIST_PADDR : 0;
	si.cmdline_paddr = VMM_CMDLINE;
	si.rsdp_paddr = 0;
	si.memmap_paddr = VMM_MEMMAP_PADDR;
	si.memmap_entries = VMM_MEMMAP_ENTRIES;
	memcpy(ram + VMM_START_INFO, &si, sizeof(si));
}

/*
 * Where the initrd goes: page-aligned at the top of RAM below 4 GiB (where QEMU puts it),
 * above the kernel's segments and the PC hole. *addr is set, or an error says why not.
 */
static int place_initrd(uint64_t ram_size, uint64_t kernel_end, size_t len, uint64_t *addr)
{
	uint64_t top = ram_size < VMM_INITRD_LIMIT ? ram_size : VMM_INITRD_LIMIT;
	uint64_t floor = kernel_end > VMM_HOLE_END ? kernel_end : VMM_HOLE_END;

	floor = (floor + 0xfffu) & ~(uint64_t)0xfffu;
	if (len > top || ((top - len) & ~(uint64_t)0xfffu) < floor)
		return vmm_fail(VMM_ELAYOUT,
				"initrd of %zu bytes does not fit in guest RAM between the kernel "
				"(ends at 0x%llx) and 0x%llx: give the guest more memory (--mem)",
				len, (unsigned long long)kernel_end, (unsigned long long)top);
	*addr = (top - len) & ~(uint64_t)0xfffu;
	return 0;
}

int vmm_load_pvh(uint8_t *ram, uint64_t ram_size, const void *elf, size_t len,
		 const char *cmdline, struct vmm_load_result *res)
{
	return vmm_load_pvh_initrd(ram, ram_size, elf, len, cmdline, NULL, 0, res);
}

int vmm_load_pvh_initrd(uint8_t *ram, uint64_t ram_size, const void *elf, size_t len,
			const char *cmdline, const void *initrd, size_t initrd_len,
			struct vmm_load_result *res)
{
	_Static_assert(VMM_MODLIST_PADDR + sizeof(struct hvm_modlist_entry) <= VMM_CMDLINE,
		       "memory map and module list must fit below the command line");
	const uint8_t *p = elf;
	struct load_seg *segs = NULL;
	size_t cmdline_len = 0;
	unsigned nseg = 0, i;
	uint64_t kernel_end = 0, initrd_addr = 0;
	uint32_t entry = 0;
	Elf64_Ehdr eh;
	int ret;

	if (ram == NULL || res == NULL || (elf == NULL && len != 0) ||
	    (initrd == NULL && initrd_len != 0))
		return vmm_fail(VMM_EINVAL, "vmm_load_pvh: missing argument");
	if (ram_size <= VMM_HOLE_END)
		return vmm_fail(VMM_EINVAL, "guest RAM of 0x%llx bytes is too small for PVH boot "
					    "(more than 1 MiB needed)",
				(unsigned long long)ram_size);
	if (cmdline != NULL) {
		cmdline_len = strnlen(cmdline, VMM_CMDLINE_MAX + 1);
		if (cmdline_len > VMM_CMDLINE_MAX)
			return vmm_fail(VMM_EINVAL, "command line is longer than %u bytes",
					VMM_CMDLINE_MAX);
	}

	ret = check_ehdr(p, len, &eh);
	if (ret < 0)
		return ret;

	segs = calloc(eh.e_phnum, sizeof(*segs));
	if (segs == NULL)
		return vmm_fail(VMM_ENOMEM, "cannot allocate %u segment descriptors", eh.e_phnum);
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, p + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		ret = check_load(&ph, i, len, ram_size);
		if (ret < 0)
			goto out;
		if (ph.p_memsz == 0)
			continue;
		segs[nseg++] = (struct load_seg){ .paddr = ph.p_paddr,
						  .memsz = ph.p_memsz,
						  .offset = ph.p_offset,
						  .filesz = ph.p_filesz,
						  .flags = ph.p_flags,
						  .index = i };
	}
	if (nseg == 0) {
		ret = vmm_fail(VMM_EBADELF, "ELF has no PT_LOAD segment with contents");
		goto out;
	}
	/* Sorted, overlapping segments are neighbours: one pass finds any overlap. */
	qsort(segs, nseg, sizeof(*segs), cmp_seg);
	for (i = 1; i < nseg; i++) {
		const struct load_seg *a = &segs[i - 1], *b = &segs[i];

		if (b->paddr < a->paddr + a->memsz) {
			ret = vmm_fail(VMM_ELAYOUT,
				       "segment %u (paddr 0x%llx, memsz 0x%llx) overlaps segment "
				       "%u (paddr 0x%llx, memsz 0x%llx)",
				       b->index, (unsigned long long)b->paddr,
				       (unsigned long long)b->memsz, a->index,
				       (unsigned long long)a->paddr, (unsigned long long)a->memsz);
			goto out;
		}
	}

	ret = find_pvh_entry(p, len, &eh, &entry);
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = vmm_fail(VMM_ENOPVH, "no PVH entry note (ELF note \"Xen\" type 18): this "
					   "kernel cannot boot with PVH");
		goto out;
	}
	for (i = 0; i < nseg; i++)
		if (entry >= segs[i].paddr && entry - segs[i].paddr < segs[i].memsz)
			break;
	if (i == nseg) {
		ret = vmm_fail(VMM_EBADELF,
			       "PVH entry point 0x%x lies outside every loaded segment", entry);
		goto out;
	}
	if (!(segs[i].flags & PF_X)) {
		ret = vmm_fail(VMM_EBADELF,
			       "PVH entry point 0x%x lies in segment %u, which is not executable",
			       entry, segs[i].index);
		goto out;
	}
	for (i = 0; i < nseg; i++)
		if (segs[i].paddr + segs[i].memsz > kernel_end)
			kernel_end = segs[i].paddr + segs[i].memsz;
	if (initrd_len) {
		ret = place_initrd(ram_size, kernel_end, initrd_len, &initrd_addr);
		if (ret < 0)
			goto out;
	}

	/* Validated: from here on nothing fails. */
	for (i = 0; i < nseg; i++) {
		memset(ram + segs[i].paddr, 0, segs[i].memsz);
		memcpy(ram + segs[i].paddr, p + segs[i].offset, segs[i].filesz);
	}
	if (initrd_len)
		memcpy(ram + initrd_addr, initrd, initrd_len);
	write_boot_info(ram, ram_size, cmdline, cmdline_len, initrd_addr, initrd_len);

	res->entry = entry;
	res->start_info = VMM_START_INFO;
	res->lowest = segs[0].paddr;
	res->highest = kernel_end;
	res->initrd = initrd_addr;
	res->initrd_len = initrd_len;
	ret = 0;
out:
	free(segs);
	return ret;
}
