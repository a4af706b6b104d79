/*
 * initrd: shows what a kernel finds of an initrd (rewind run --initrd FILE): the module
 * list of hvm_start_info, where the module lies against the memory map, and the FNV-1a
 * 64 hash and first bytes of its contents. Exits 0 when every module is page-aligned,
 * has no command line and lies inside one RAM entry of the memory map, 1 otherwise.
 * With rounds=N (for the ft pair's tests: a failover while the guest still reads its
 * module) it then hashes the first module again N times, one round every 2 ticks of the
 * PIT at 200 Hz, printing the round and the hash, and exits 1 if a hash ever differs.
 */
#include "guest.h"

static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

static uint64_t fnv(const uint8_t *p, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (uint64_t k = 0; k < n; k++)
		h = (h ^ p[k]) * 0x100000001b3ull;
	return h;
}

/* rounds= of the first module's hash, a tick apart: 0 when each matches the first. */
static int reread(const struct hvm_modlist_entry *mod, long long rounds)
{
	const uint8_t *p = (const void *)(uintptr_t)mod->paddr;
	uint64_t first = fnv(p, mod->size);
	int bad = 0;

	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start(200, 2);
	g_pic_unmask(IRQ_PIT);
	for (long long i = 0; i < rounds; i++) {
		unsigned long until = ticks + 2;
		for (;;) {
			g_cli();
			if (ticks >= until)
				break;
			g_sti_hlt();
		}
		g_sti();
		uint64_t h = fnv(p, mod->size);
		g_printf("round %06lld fnv1a64 %016lx%s\n", i, (unsigned long)h,
			 h == first ? "" : " CHANGED");
		bad |= h != first;
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	return bad;
}

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
		uint64_t h;
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
		h = fnv(p, mod[i].size);
		for (; n < 32 && n < mod[i].size && p[n] >= 0x20 && p[n] < 0x7f; n++)
			head[n] = (char)p[n];
		head[n] = 0;
		g_printf("  fnv1a64 %016lx head \"%s\"\n", (unsigned long)h, head);
	}
	long long rounds = g_opt_int("rounds", 0);
	if (rounds > 0 && si->nr_modules)
		bad |= reread(mod, rounds);
	return bad;
}
