/*
 * loader.h: the PVH ELF loader (docs/architecture.md, 'The machine').
 *
 * Accepts an ELF64 x86-64 executable with a XEN_ELFNOTE_PHYS32_ENTRY note (name "Xen",
 * type 18) in a PT_NOTE segment, copies its PT_LOAD segments into guest RAM at their
 * physical addresses, and writes struct hvm_start_info (version 1), the command line
 * and an E820-style memory map into a reserved low area. An initrd, if given, goes
 * page-aligned at the top of RAM below 4 GiB (inside the last RAM entry of the memory
 * map, where Linux expects it), named by a one-entry module list with no command line. Every malformed input is an
 * error with a detail message (vmm_errdetail()), never a crash.
 *
 * Guest-physical layout:
 *   0x0000_0000 - 0x0000_0FFF  real-mode IVT/BDA area: left zero
 *   0x0000_1000 - 0x0000_1FFF  VMM area: the entry GDT (both backends), emu's trampoline
 *   0x0000_6000 - 0x0000_6FFF  hvm_start_info, memory map, module list
 *   0x0000_7000 - 0x0000_7FFF  command line (at most 4095 bytes + NUL)
 *   0x0009_FC00 - 0x000F_FFFF  reserved (EBDA, VGA, BIOS: as on a PC)
 *   0x0010_0000 - mem_size     usable RAM; kernels load here, the initrd at its top
 * Segments may not overlap 0x0000-0x7FFF or 0x9FC00-0xFFFFF, nor extend past RAM.
 */
#ifndef REWIND_VMM_LOADER_H
#define REWIND_VMM_LOADER_H

#include "vmm.h"

#define VMM_LOW_RESERVED_END 0x8000u
#define VMM_VMM_AREA 0x1000u
/*
 * The GDT at VMM_VMM_AREA that the guest finds in GDTR at its entry, on emu and kvm alike
 * (docs/kvm-backend.md, "PVH entry state"): null, 0x08 flat 32-bit code, 0x10 flat data,
 * the descriptors of the selectors CS and DS/ES/FS/GS/SS hold. IDTR is {0, 0}.
 */
#define VMM_PVH_GDT_CODE32 0x00cf9b000000ffffull
#define VMM_PVH_GDT_DATA32 0x00cf93000000ffffull
#define VMM_PVH_GDT_LIMIT 0x17u
#define VMM_START_INFO 0x6000u
#define VMM_CMDLINE 0x7000u
#define VMM_CMDLINE_MAX 4095u
#define VMM_HOLE_START 0x9FC00u
#define VMM_HOLE_END 0x100000u
#define VMM_MEM_MIN (2u << 20) /* smallest --mem accepted */
#define VMM_MEM_MAX (64ull << 30)

struct vmm_load_result {
	uint32_t entry;      /* PVH 32-bit entry point */
	uint32_t start_info; /* guest-physical address of hvm_start_info (EBX) */
	uint64_t lowest, highest; /* guest-physical extent of the loaded segments */
	uint64_t initrd, initrd_len; /* where the initrd went (0, 0: none) */
};

/*
 * Load elf (len bytes) into ram (ram_size bytes); cmdline may be NULL.
 * Returns 0 or -VMM_EBADELF / -VMM_ENOPVH / -VMM_ELAYOUT / -VMM_EINVAL.
 */
int vmm_load_pvh(uint8_t *ram, uint64_t ram_size, const void *elf, size_t len,
		 const char *cmdline, struct vmm_load_result *res) VMM_WUR;
/*
 * The same with an initrd (initrd_len bytes; NULL and 0 for none). One that does not fit
 * above the kernel is -VMM_ELAYOUT, and RAM is left as it was.
 */
int vmm_load_pvh_initrd(uint8_t *ram, uint64_t ram_size, const void *elf, size_t len,
			const char *cmdline, const void *initrd, size_t initrd_len,
			struct vmm_load_result *res) VMM_WUR;

/* Read a whole file into a malloc'd buffer (at most max bytes). */
int vmm_read_file(const char *path, size_t max, void **buf, size_t *len) VMM_WUR;

#endif
