/*
 * guest_abi.h: the one header shared by the host (vmm/, tests) and the guests: the PVH
 * boot structures, the ports of the machine and the exit convention. Pure C, no
 * includes beyond <stdint.h>, so freestanding guests can use it.
 */
#ifndef REWIND_GUEST_ABI_H
#define REWIND_GUEST_ABI_H

#include <stdint.h>

/* PVH: the ELF note that carries the 32-bit entry point. */
#define PVH_NOTE_NAME "Xen"
#define PVH_NOTE_TYPE_PHYS32_ENTRY 18

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic;          /* HVM_START_MAGIC */
	uint32_t version;        /* 1: memmap fields valid */
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;  /* NUL-terminated ASCII, 0 if none */
	uint64_t rsdp_paddr;     /* 0: no ACPI */
	uint64_t memmap_paddr;   /* array of struct hvm_memmap_table_entry */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 RAM, 2 reserved (E820 types) */
	uint32_t reserved;
};

/* A module (the initrd): hvm_start_info.modlist_paddr points at nr_modules of these. */
struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr; /* 0: no command line */
	uint64_t reserved;
};

#define HVM_MEMMAP_TYPE_RAM 1
#define HVM_MEMMAP_TYPE_RESERVED 2

/* Ports. */
#define PORT_COM1 0x3f8
#define PORT_PIC1 0x20
#define PORT_PIC2 0xa0
#define PORT_PIT 0x40
#define PORT_PIT_CTRL 0x43
#define PORT_SYSCTL_B 0x61
#define PORT_CMOS 0x70
#define PORT_DEBUG_EXIT 0xf4
#define PORT_POST 0x80
#define PORT_RESET_CF9 0xcf9
#define PORT_KBD_CTRL 0x64

#define IRQ_PIT 0
#define IRQ_COM1 4
#define IRQ_RTC 8

/* Writing V to PORT_DEBUG_EXIT ends the run with exit status (V << 1) | 1. */

#endif
