/*
 * idt.c: the IDT (all 256 vectors through isr.S), the TSS with IST stacks, the C
 * dispatcher, the default handler and the expected-exception catcher (G_TRY_*).
 * All gates are 64-bit interrupt gates (IF cleared on entry), DPL 0, selector 0x08.
 * #DF uses IST1 and NMI IST2, so a fault on a broken stack still prints.
 */
#include "guest.h"

#define KERNEL_CS 0x08
#define TSS_SEL 0x20
#define IST_SIZE 8192

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iomap_base;
} __attribute__((packed));

extern char g_isr_stubs[];
extern uint64_t g_gdt[];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static g_handler_t handlers[256];
static struct tss64 tss __attribute__((aligned(16)));
static uint8_t ist1_stack[IST_SIZE] __attribute__((aligned(16)));
static uint8_t ist2_stack[IST_SIZE] __attribute__((aligned(16)));

volatile struct g_trap_info g_trap = {.vector = ~0ull};
volatile uint64_t g_trap_fixup, g_trap_insn;

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	"#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

const char *g_exception_name(unsigned vector)
{
	if (vector < 32)
		return exc_names[vector];
	if (vector >= G_IRQ_BASE && vector < G_IRQ_BASE + 16)
		return "IRQ";
	return "INT";
}

static void set_gate(unsigned v, uint64_t addr, unsigned ist)
{
	idt[v] = (struct idt_gate){
		.off_lo = (uint16_t)addr,
		.sel = KERNEL_CS,
		.ist = (uint8_t)ist,
		.attr = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
		.off_mid = (uint16_t)(addr >> 16),
		.off_hi = (uint32_t)(addr >> 32),
	};
}

void g_idt_init(void)
{
	for (unsigned v = 0; v < 256; v++)
		set_gate(v, (uint64_t)(uintptr_t)g_isr_stubs + 16 * v, 0);
	set_gate(8, (uint64_t)(uintptr_t)g_isr_stubs + 16 * 8, 1);
	set_gate(2, (uint64_t)(uintptr_t)g_isr_stubs + 16 * 2, 2);

	tss.ist[0] = (uint64_t)(uintptr_t)(ist1_stack + IST_SIZE);
	tss.ist[1] = (uint64_t)(uintptr_t)(ist2_stack + IST_SIZE);
	tss.iomap_base = sizeof(tss); /* no I/O bitmap */
	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
	g_gdt[TSS_SEL / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
			     (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	g_gdt[TSS_SEL / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %w0" ::"r"(TSS_SEL));

	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) ptr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	__asm__ volatile("lidt %0" ::"m"(ptr) : "memory");
}

g_handler_t g_set_handler(unsigned vector, g_handler_t h)
{
	g_handler_t old = handlers[vector & 0xff];
	handlers[vector & 0xff] = h;
	return old;
}

g_handler_t g_set_irq_handler(unsigned irq, g_handler_t h)
{
	return g_set_handler(G_IRQ_BASE + irq, h);
}

void g_trap_reset(void)
{
	g_trap.vector = ~0ull;
	g_trap.error_code = g_trap.cr2 = g_trap.rip = g_trap.count = 0;
	g_trap_fixup = 0;
}

void g_unexpected(struct g_regs *r)
{
	unsigned v = (unsigned)(r->vector & 0xff);
	g_printf("unexpected %s: vector %u error 0x%lx rip 0x%lx cr2 0x%lx rsp 0x%lx "
		 "rflags 0x%lx\n",
		 g_exception_name(v), v, r->error_code, r->rip, g_read_cr2(), r->rsp,
		 r->rflags);
	g_exit(G_EXIT_UNEXPECTED);
}

void g_isr_dispatch(struct g_regs *r);
void g_isr_dispatch(struct g_regs *r)
{
	unsigned v = (unsigned)(r->vector & 0xff);
	if (handlers[v]) {
		handlers[v](r);
		return;
	}
	if (v < 32 && g_trap_fixup) {
		g_trap.vector = v;
		g_trap.error_code = r->error_code;
		g_trap.cr2 = g_read_cr2();
		g_trap.rip = r->rip;
		g_trap.count++;
		r->rip = g_trap_fixup;
		g_trap_fixup = 0;
		return;
	}
	/* Spurious IRQ 7 / 15: the PIC shows nothing in service; ignore (EOI the master
	 * for 15, whose cascade input was acknowledged). */
	if (v == G_IRQ_BASE + 7 && !(g_pic_isr() & 0x80))
		return;
	if (v == G_IRQ_BASE + 15 && !(g_pic_isr() & 0x8000)) {
		g_pic_eoi(0);
		return;
	}
	g_unexpected(r);
}
