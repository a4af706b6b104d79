/*
 * crash: faults on purpose. main -> do_work -> faulty reads an unmapped address (addr=,
 * default 0xdead0000000, above the 4 GiB identity map); the #PF handler prints
 * "crash: page fault at 0x<cr2>" and then triple-faults (an empty IDT and int3), so the
 * VM resets: QEMU -no-reboot exits with status 0, rewind with 6.
 *
 * The backtrace test (tests/debugger/test_backtrace.c) unwinds the stopped guest:
 * triple_fault stays a frame of its own (noinline), and page_fault calls it as its last
 * instruction, so its return address lies past page_fault's end (debuggers look up pc-1).
 */
#include "guest.h"

__attribute__((noinline)) static G_NORETURN void triple_fault(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) none = {0, 0};
	__asm__ volatile("lidt %0\n\tint3" ::"m"(none) : "memory");
	for (;;)
		g_hlt();
}

static void page_fault(struct g_regs *r)
{
	g_printf("crash: page fault at 0x%lx (error 0x%lx, rip 0x%lx)\n", g_read_cr2(),
		 r->error_code, r->rip);
	g_puts("crash: triple fault next");
	triple_fault();
}

__attribute__((noinline)) static uint64_t faulty(volatile uint64_t *p)
{
	uint64_t v = *p;
	__asm__ volatile("" ::: "memory");
	return v + 1;
}

__attribute__((noinline)) static uint64_t do_work(uint64_t addr)
{
	g_printf("crash: reading 0x%lx\n", addr);
	uint64_t v = faulty((volatile uint64_t *)(uintptr_t)addr);
	__asm__ volatile("" ::: "memory");
	return v * 2;
}

int main(void)
{
	uint64_t addr = (uint64_t)g_opt_int("addr", 0xdead0000000ll);
	g_puts("crash: this guest faults on purpose");
	g_set_handler(14, page_fault);
	uint64_t v = do_work(addr);
	g_printf("crash: read 0x%lx without a fault\n", v);
	return 1;
}
