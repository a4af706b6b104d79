/*
 * initrd: shows what a kernel finds of an initrd (rewind run --initrd FILE): the module
 * list of hvm_start_info, where the module lies against the memory map, and the FNV-1a
 * 64 hash and first bytes of its contents. Exits 0 when every module is page-aligned,
 * has no command line and lies inside one RAM entry of the memory map, 1 otherwise.
 */
#include "guest.h"

static bool in_ram(const struct hvm_start_info *si, uint64_t addr, uint64_t size)
{
	const struct hvm_memmap_table_entry *m = (const void *)(uintptr_t)si->memmap_paddr;

	for (uint32_t i = 0; i < si->memmap_entries; i++)
		if (m[i].type == HVM_MEMMAP_TYPE_RAM && addr >= m[i].addr &&
		    size <= m[i].size - (addr - m[i].addr) && addr - m[i].addr <= m[i].size)
			return true;
	return false;
}

int main(void)
{
	const struct hvm_start_info *si = g_start_info();
	int bad = 0;

	g_printf("modules: %u\n", si->nr_modules);
	if (si->nr_modules && !si->modlist_paddr) {
		g_puts("module list at address 0");
		return 1;
	}
	const struct hvm_modlist_entry *mod = (const void *)(uintptr_t)si->modlist_paddr;
	for (uint32_t i = 0; i < si->nr_modules; i++) {
		const uint8_t *p = (const void *)(uintptr_t)mod[i].paddr;
		uint64_t h = 0xcbf29ce484222325ull;
		char head[33];
		unsigned n = 0;

		g_printf("module %u: paddr 0x%lx size %lu cmdline_paddr 0x%lx\n", i,
			 (unsigned long)mod[i].paddr, (unsigned long)mod[i].size,
			 (unsigned long)mod[i].cmdline_paddr);
		if (mod[i].paddr & 0xfff) {
			g_puts("  not page-aligned");
			bad = 1;
		}
		if (mod[i].cmdline_paddr) {
			g_puts("  has a command line");
			bad = 1;
		}
		if (!in_ram(si, mod[i].paddr, mod[i].size)) {
			g_puts("  not inside one RAM entry of the memory map");
			bad = 1;
			continue;
		}
		for (uint64_t k = 0; k < mod[i].size; k++)
			h = (h ^ p[k]) * 0x100000001b3ull;
		for (; n < 32 && n < mod[i].size && p[n] >= 0x20 && p[n] < 0x7f; n++)
			head[n] = (char)p[n];
		head[n] = 0;
		g_printf("  fnv1a64 %016lx head \"%s\"\n", (unsigned long)h, head);
	}
	return bad;
}
