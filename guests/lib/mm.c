/*
 * mm.c: changes to the boot page tables (entry.S: PML4 -> PDPT -> 4 PDs of 2 MiB pages
 * identity-mapping 0-4 GiB) and the boot information. New tables come from a static
 * pool; tables live below 4 GiB, so their physical address is their pointer.
 */
#include "guest.h"

#define POOL_PAGES 16
#define ADDR_MASK 0x000ffffffffff000ull

extern uint64_t g_boot_pml4[];
extern uint64_t g_start_info_pa;
extern uint32_t g_efer_nxe;

static uint64_t pool[POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned pool_used;

static uint64_t *table_of(uint64_t entry)
{
	return (uint64_t *)(uintptr_t)(entry & ADDR_MASK);
}

static uint64_t *alloc_table(void)
{
	if (pool_used == POOL_PAGES)
		return NULL;
	return pool[pool_used++]; /* zero: .bss */
}

/* The PTE slot for va, creating tables and splitting a 2 MiB page if create. */
static uint64_t *walk(uint64_t va, bool create)
{
	uint64_t *t = g_boot_pml4;
	for (int shift = 39; shift > 12; shift -= 9) {
		uint64_t *e = &t[(va >> shift) & 511];
		if (shift == 21 && (*e & G_PTE_PS) && (*e & G_PTE_P)) {
			if (!create)
				return e;
			uint64_t *pt = alloc_table();
			if (!pt)
				return NULL;
			uint64_t base = *e & 0x000fffffffe00000ull;
			uint64_t flags = *e & (0xfffull & ~G_PTE_PS) & ~0x1000ull;
			for (int i = 0; i < 512; i++)
				pt[i] = (base + ((uint64_t)i << 12)) | flags | (*e & G_PTE_NX);
			*e = (uint64_t)(uintptr_t)pt | G_PTE_P | G_PTE_W | (*e & G_PTE_U);
			g_write_cr3(g_read_cr3());
		} else if (!(*e & G_PTE_P)) {
			if (!create)
				return NULL;
			uint64_t *nt = alloc_table();
			if (!nt)
				return NULL;
			*e = (uint64_t)(uintptr_t)nt | G_PTE_P | G_PTE_W | G_PTE_U;
		}
		t = table_of(*e);
	}
	return &t[(va >> 12) & 511];
}

int g_map_page(uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t *pte = walk(va, true);
	if (!pte)
		return -1;
	*pte = (pa & ADDR_MASK) | flags;
	g_invlpg(va);
	return 0;
}

int g_unmap_page(uint64_t va)
{
	uint64_t *pte = walk(va, true);
	if (!pte)
		return -1;
	*pte = 0;
	g_invlpg(va);
	return 0;
}

uint64_t *g_pte_lookup(uint64_t va)
{
	return walk(va, false);
}

bool g_nx_enabled(void)
{
	return g_efer_nxe != 0;
}

const struct hvm_start_info *g_start_info(void)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)g_start_info_pa;
	if (!si || si->magic != HVM_START_MAGIC)
		return NULL;
	return si;
}

uint64_t g_ram_bytes(void)
{
	const struct hvm_start_info *si = g_start_info();
	if (!si || si->version < 1 || !si->memmap_paddr)
		return 0;
	const struct hvm_memmap_table_entry *m = (const void *)(uintptr_t)si->memmap_paddr;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < si->memmap_entries; i++)
		if (m[i].type == HVM_MEMMAP_TYPE_RAM)
			sum += m[i].size;
	return sum;
}
