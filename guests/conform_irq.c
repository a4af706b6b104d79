/*
 * conform_irq: a deterministic report of interrupt delivery, identical on KVM, QEMU TCG
 * and rewind's emu backend. Only software-observable order is reported, never timing:
 *  - software INT nesting order;
 *  - IRQ 0 (PIT one-shot, mode 0) and IRQ 4 (COM1 THR-empty) made pending while masked,
 *    then taken in PIC priority order, with the ISR/IRR seen inside each handler; again
 *    after rotating priorities with OCW2 "set priority" (and back), with specific EOIs;
 *  - where a pending IRQ lands: after the one instruction in the STI shadow, after HLT
 *    in "sti; hlt", and (only as "between the OUT and the CLI", since QEMU TCG takes it
 *    at the next translated block) once the OUT that unmasks it has run;
 *  - an IRQ that ends a HLT waited in with IF already set, in 64-bit code after a WRMSR
 *    of EFER made while the GDT's entry for the CS selector described other code (CS
 *    keeps the descriptor it was loaded from).
 * Last lines: "conform_irq: hash <fnv of the report>", "conform_irq: done".
 */
#include "guest.h"

#define MAX_EVENTS 16


#define line g_report_line

/* ---- software INT nesting ---- */
static char soft_log[32];
static int soft_n;

static void soft(struct g_regs *r)
{
	unsigned v = (unsigned)r->vector;
	soft_log[soft_n++] = (char)('a' + (v - 0x40));
	if (v == 0x40)
		__asm__ volatile("int $0x41" ::: "memory");
	else if (v == 0x41)
		__asm__ volatile("int $0x42" ::: "memory");
	soft_log[soft_n++] = (char)('A' + (v - 0x40));
}

/* ---- hardware IRQs ---- */
struct event {
	unsigned irq;
	uint16_t isr, irr;
	uint64_t rip;
};
static struct event events[MAX_EVENTS];
static volatile int nevents;
static bool specific_eoi;

static void record(unsigned irq, struct g_regs *r)
{
	if (nevents < MAX_EVENTS)
		events[nevents] = (struct event){irq, g_pic_isr(), g_pic_irr(), r->rip};
	nevents++;
	if (specific_eoi)
		outb(PORT_PIC1, (uint8_t)(0x60 | irq));
	else
		g_pic_eoi(irq);
}

static void irq0(struct g_regs *r)
{
	record(0, r);
}

static void irq4(struct g_regs *r)
{
	(void)inb(PORT_COM1 + 2); /* IIR: reading it clears the THR-empty interrupt */
	outb(PORT_COM1 + 1, 0);   /* IER off */
	record(4, r);
}

static void wait_tx_empty(void)
{
	while (!(inb(PORT_COM1 + 5) & 0x40))
		g_pause();
}

/* Make IRQ 0 and IRQ 4 pending with both masked and IF clear; false on a timeout. */
static bool make_pending(void)
{
	g_cli();
	wait_tx_empty();
	g_pic_set_masks(0xffff & ~(1u << 2));
	g_pit_oneshot(100);
	outb(PORT_COM1 + 1, 0x02); /* IER: THR empty -> IRQ 4 at once */
	for (long i = 0; i < 50000000; i++)
		if ((g_pic_irr() & 0x11) == 0x11)
			return true;
	return false;
}

static void show_events(const char *name)
{
	char buf[120];
	int n = g_snprintf(buf, sizeof(buf), "%-22s order", name);
	for (int i = 0; i < nevents && i < MAX_EVENTS; i++)
		n += g_snprintf(buf + n, sizeof(buf) - (size_t)n, " %u", events[i].irq);
	line("%s", buf);
	for (int i = 0; i < nevents && i < MAX_EVENTS; i++)
		line("  irq %u: isr 0x%04x irr 0x%04x", events[i].irq, events[i].isr,
		     (unsigned)(events[i].irr & 0xfffb)); /* IRR 2 follows the slave's line */
}

static void round_of(const char *name, uint8_t ocw2)
{
	nevents = 0;
	if (!make_pending()) {
		line("%-22s IRQs never became pending (irr 0x%04x)", name, g_pic_irr());
		return;
	}
	if (ocw2)
		outb(PORT_PIC1, ocw2);
	g_pic_set_masks(0xffff & ~(1u << 2) & ~1u & ~(1u << 4));
	g_sti();
	for (int i = 0; i < 1000 && nevents < 2; i++)
		__asm__ volatile("nop" ::: "memory");
	g_cli();
	show_events(name);
}

/* Where does an IRQ pending behind a mask land once unmasked with IF set? */
static void landing_after_unmask(void)
{
	nevents = 0;
	g_cli();
	g_pic_set_masks(0xffff & ~(1u << 2));
	g_pit_oneshot(100);
	long i = 0;
	while (!(g_pic_irr() & 1) && i++ < 50000000)
		;
	uint64_t after_out, before_cli;
	uint16_t mask = 0xffff & ~(1u << 2) & ~1u;
	/* QEMU TCG takes it at the next translated block, KVM right after the OUT: report
	 * only that it lands between the OUT and the CLI (the jmp ends the block). */
	__asm__ volatile("sti\n\t"
			 "leaq 1f(%%rip), %0\n\t"
			 "leaq 2f(%%rip), %1\n\t"
			 "outb %%al, $0x21\n"
			 "1:\n\t"
			 "jmp 3f\n"
			 "3:\n\t"
			 "nop\n"
			 "2:\n\t"
			 "cli"
			 : "=&r"(after_out), "=&r"(before_cli)
			 : "a"((uint8_t)mask)
			 : "memory");
	g_pic_set_masks(mask | 1);
	bool between = nevents && events[0].rip >= after_out && events[0].rip <= before_cli;
	line("%-22s count %d between the OUT and the CLI: %s", "unmask with IF=1", nevents,
	     between ? "yes" : "no");
}

/* The STI shadow and sti;hlt, with IRQ 0 pending and unmasked before STI. */
static void landing_after_sti(bool hlt)
{
	nevents = 0;
	g_cli();
	g_pic_set_masks(0xffff & ~(1u << 2) & ~1u);
	g_pit_oneshot(100);
	long i = 0;
	while (!(g_pic_irr() & 1) && i++ < 50000000)
		;
	uint64_t label;
	if (hlt)
		__asm__ volatile("leaq 1f(%%rip), %0\n\t"
				 "sti\n\t"
				 "hlt\n"
				 "1:\n\t"
				 "nop\n\t"
				 "cli"
				 : "=&r"(label)::"memory");
	else
		__asm__ volatile("leaq 1f(%%rip), %0\n\t"
				 "sti\n\t"
				 "movl $1, %%ecx\n"
				 "1:\n\t"
				 "nop\n\t"
				 "cli"
				 : "=&r"(label)::"rcx", "memory");
	g_pic_set_masks(0xffff & ~(1u << 2));
	line("%-22s count %d rip label%+ld", hlt ? "sti; hlt" : "sti; mov", nevents,
	     nevents ? (long)(events[0].rip - label) : 0);
}

/*
 * A kernel that loads its 64-bit GDT before it sets EFER.LME runs its 32-bit code, until
 * the far jump, under a GDT whose entry for CS is a 64-bit descriptor: CS keeps the
 * descriptor it was loaded with until a far transfer reloads it, and so does the code
 * size. The same here in 64-bit code: a GDT whose entry for our CS selector is a 32-bit
 * code segment is loaded around a WRMSR of EFER (its own value), then a HLT waits for an
 * IRQ 0 with IF already set, so that no STI starts a block at it. The HLT shares its
 * block with a MOVABS whose immediate ends in B0: decoded as 32-bit code, that block
 * holds no HLT (B0 F4 is MOV AL, 0xF4). rewind's emu backend once took its code size
 * from the GDT at that WRMSR, missed the HLT, and Unicorn ran it itself: a #PF at CR2
 * 0xfffffffffffff000 right after the HLT (docs/emu-backend.md, "Code size").
 */
static void hlt_after_gdt_change(void)
{
	static const uint64_t gdt32[] = {0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull};
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} cur, alt = {sizeof(gdt32) - 1, (uint64_t)gdt32};
	nevents = 0;
	g_cli();
	g_pic_set_masks(0xffff & ~(1u << 2) & ~1u);
	g_pit_oneshot(0); /* 65536 PIT clocks, 55 ms: the HLT is reached long before */
	uint64_t label;
	__asm__ volatile("sgdt %[cur]\n\t"
			 "lgdt %[alt]\n\t"
			 "movl $0xc0000080, %%ecx\n\t"
			 "rdmsr\n\t"
			 "wrmsr\n\t"
			 "lgdt %[cur]\n\t"
			 "leaq 2f(%%rip), %[label]\n\t"
			 "sti\n"
			 "1:\n\t"
			 "cmpl $0, %[n]\n\t"
			 "jne 3f\n\t"
			 "movabsq $0xb090909090909090, %%rax\n\t"
			 "hlt\n"
			 "2:\n\t"
			 "jmp 1b\n"
			 "3:\n\t"
			 "cli"
			 : [label] "=&r"(label), [cur] "=m"(cur)
			 : [alt] "m"(alt), [n] "m"(nevents)
			 : "rax", "rcx", "rdx", "memory");
	g_pic_set_masks(0xffff & ~(1u << 2));
	line("%-22s count %d rip label%+ld", "hlt after lgdt, wrmsr", nevents,
	     nevents ? (long)(events[0].rip - label) : 0);
}

int main(void)
{
	g_puts("conform_irq: interrupt delivery conformance report");

	for (unsigned v = 0x40; v <= 0x42; v++)
		g_set_handler(v, soft);
	__asm__ volatile("int $0x40" ::: "memory");
	soft_log[soft_n] = 0;
	line("%-22s %s", "software INT nesting", soft_log);

	g_set_irq_handler(0, irq0);
	g_set_irq_handler(4, irq4);
	round_of("default priority", 0);
	round_of("lowest priority 0", 0xc0);  /* OCW2 set priority: IRQ 0 lowest */
	round_of("lowest priority 3", 0xc3);  /* IRQ 4 highest */
	specific_eoi = true;
	round_of("lowest 7, specific EOI", 0xc7); /* back to the default order */
	specific_eoi = false;
	landing_after_unmask();
	landing_after_sti(false);
	landing_after_sti(true);
	hlt_after_gdt_change();

	g_pit_stop();
	g_pic_set_masks(0xffff & ~(1u << 2));
	g_printf("conform_irq: hash %016lx\n", g_report_hash);
	g_puts("conform_irq: done");
	return 0;
}
