/*
 * guest.h: the freestanding guest library (in the manner of kvm-unit-tests' lib/).
 *
 * A guest is one C file with `int main(void)`. The library's PVH entry (entry.S) switches
 * to long mode with the first 4 GiB identity mapped (2 MiB pages), zeroes .bss, then
 * g_start() sets up COM1, the IDT and TSS, the PIC (remapped to 0x20/0x28, all masked)
 * and the command line, calls main() and passes its result to g_exit().
 *
 * Contract (docs/architecture.md): no SSE, no RDRAND/RDSEED/RDTSCP, no APIC, no TSC-deadline.
 * g_rdtsc() exists for the selftest; on KVM it is outside the contract.
 */
#ifndef REWIND_GUEST_H
#define REWIND_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_abi.h"

#define G_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define G_NORETURN __attribute__((noreturn))

/* ---- port I/O, MSRs, control registers, CPU instructions ---- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t g_rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}
static inline void g_wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

struct g_cpuid {
	uint32_t a, b, c, d;
};
static inline struct g_cpuid g_cpuid(uint32_t leaf, uint32_t subleaf)
{
	struct g_cpuid r;
	__asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(subleaf));
	return r;
}

/* RDTSC: virtual TSC on emu; on KVM the host TSC (outside the replay contract). */
static inline uint64_t g_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void g_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void g_sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void g_hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* Enable interrupts and halt atomically (the STI shadow covers the HLT): no lost wakeup. */
static inline void g_sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void g_pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline uint64_t g_rflags(void)
{
	uint64_t f;
	__asm__ volatile("pushfq; popq %0" : "=r"(f)::"memory");
	return f;
}
/* Disable interrupts, return whether they were enabled (for g_irq_restore). */
static inline bool g_irq_save(void)
{
	bool on = (g_rflags() & 0x200) != 0;
	g_cli();
	return on;
}
static inline void g_irq_restore(bool on)
{
	if (on)
		g_sti();
}

#define G_DEFINE_CR(n)                                                                      \
	static inline uint64_t g_read_cr##n(void)                                           \
	{                                                                                   \
		uint64_t v;                                                                 \
		__asm__ volatile("mov %%cr" #n ", %0" : "=r"(v)::"memory");                 \
		return v;                                                                   \
	}                                                                                   \
	static inline void g_write_cr##n(uint64_t v) { __asm__ volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); }
G_DEFINE_CR(0)
G_DEFINE_CR(2)
G_DEFINE_CR(3)
G_DEFINE_CR(4)
#undef G_DEFINE_CR

static inline void g_invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }

/* ---- freestanding string functions (the compiler may also emit calls to these) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* FNV-1a 64-bit over n bytes, continuing from h (start with G_FNV_INIT). */
#define G_FNV_INIT 0xcbf29ce484222325ull
uint64_t g_fnv1a(uint64_t h, const void *p, size_t n);
/*
 * Conformance reports: print one line (a newline is added) and fold it into
 * g_report_hash, which a report prints last so two machines compare in one value.
 */
extern uint64_t g_report_hash;
void g_report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- serial (COM1, 16550A) ---- */
void g_serial_init(void);          /* 115200 8N1, FIFO on; keeps bytes that arrived before */
void g_putc(char c);               /* polls LSR.THRE; '\n' is sent as is (no CR added) */
void g_puts(const char *s);        /* s and a newline */
void g_write(const char *s, size_t n);
int g_printf(const char *fmt, ...) G_PRINTF(1, 2);
int g_vprintf(const char *fmt, va_list ap);
int g_snprintf(char *buf, size_t size, const char *fmt, ...) G_PRINTF(3, 4);
int g_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
/* Receive via IRQ 4 into a ring buffer from now on (IER.RDA, MCR.OUT2, PIC unmasked). */
void g_serial_rx_irq_enable(void);
/* Next received byte; blocks (sti;hlt when the IRQ path is on, else polls LSR.DR). */
int g_getc(void);
/* Next received byte or -1 if none is waiting; never blocks. */
int g_getc_nonblock(void);

/* ---- interrupts: IDT (all 256 vectors), TSS with IST stacks ---- */

/* The frame every vector's stub builds: GPRs, then vector and error code (0 where the
 * CPU pushes none), then the CPU's own frame. Writable: a handler may change rip etc. */
struct g_regs {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*g_handler_t)(struct g_regs *r);

#define G_IRQ_BASE 0x20 /* PIC master at 0x20-0x27, slave at 0x28-0x2f */
#define G_EXIT_UNEXPECTED 3 /* exit code of the default handler */

void g_idt_init(void);
/* Set (or with NULL, clear) the handler of a vector. Returns the previous one. */
g_handler_t g_set_handler(unsigned vector, g_handler_t h);
/* Handler of IRQ line irq (vector G_IRQ_BASE + irq); the handler must call g_pic_eoi. */
g_handler_t g_set_irq_handler(unsigned irq, g_handler_t h);
/* The default handler: prints vector, name, error code, RIP, CR2, RSP and exits with
 * G_EXIT_UNEXPECTED. Vector 8 (#DF) runs on IST1 so it prints even on a broken stack. */
G_NORETURN void g_unexpected(struct g_regs *r);
const char *g_exception_name(unsigned vector);

/*
 * Catching an expected exception without a handler: G_TRY_BEGIN arms a fixup (the
 * address of G_TRY_END's label); a CPU exception (vector < 32) with no handler set then
 * records itself in g_trap and resumes at the fixup. g_trap_insn holds the address of
 * the first instruction after G_TRY_BEGIN. Use inside one extended asm statement that
 * clobbers "r11", with no local labels 8: or 9: of its own:
 *   __asm__ volatile(G_TRY_BEGIN "ud2" G_TRY_END ::: "r11", "memory");
 */
struct g_trap_info {
	uint64_t vector, error_code, cr2, rip, count;
};
extern volatile struct g_trap_info g_trap;
extern volatile uint64_t g_trap_fixup, g_trap_insn;
#define G_TRY_BEGIN                                                                         \
	"leaq 9f(%%rip), %%r11\n\tmovq %%r11, g_trap_fixup(%%rip)\n\t"                      \
	"leaq 8f(%%rip), %%r11\n\tmovq %%r11, g_trap_insn(%%rip)\n8:\n\t"
#define G_TRY_END "\n9:\n\tmovq $0, g_trap_fixup(%%rip)\n\t"
/* Reset g_trap (vector = ~0: nothing caught). */
void g_trap_reset(void);

/* ---- 8259A PIC pair ---- */
void g_pic_init(void);          /* ICW1-4: master 0x20, slave 0x28, 8086 mode; all masked */
void g_pic_mask(unsigned irq);
void g_pic_unmask(unsigned irq); /* unmasking 8-15 also unmasks the cascade (IRQ 2) */
void g_pic_set_masks(uint16_t mask); /* bit n = IRQ n masked */
uint16_t g_pic_get_masks(void);
void g_pic_eoi(unsigned irq);   /* non-specific EOI to the slave (irq >= 8) and the master */
uint16_t g_pic_irr(void);       /* OCW3 read IRR: slave << 8 | master */
uint16_t g_pic_isr(void);       /* OCW3 read ISR */

/* ---- 8254 PIT ---- */
#define G_PIT_HZ 1193182u
/* Channel 0 periodic at hz (mode 2 rate generator or 3 square wave); returns the divisor. */
uint32_t g_pit_start(unsigned hz, int mode);
void g_pit_oneshot(uint16_t count); /* mode 0: one IRQ 0 edge after count ticks */
void g_pit_stop(void);              /* mode 0 with no count written: the counter waits */
uint16_t g_pit_read(void);          /* latch and read channel 0's counter */

/* ---- CMOS RTC ---- */
struct g_rtc_time {
	unsigned year, month, day, hour, minute, second;
};
uint8_t g_cmos_read(uint8_t reg);
void g_cmos_write(uint8_t reg, uint8_t v);
void g_rtc_read(struct g_rtc_time *t); /* waits for UIP clear; BCD and 12h decoded */

/* ---- memory: page tables, boot information ---- */
#define G_PTE_P 0x1ull
#define G_PTE_W 0x2ull
#define G_PTE_U 0x4ull
#define G_PTE_PS 0x80ull
#define G_PTE_NX (1ull << 63)
/* Map the 4 KiB page at va to physical pa with flags (G_PTE_P|...), splitting a 2 MiB
 * page where needed; tables come from a static pool. 0 or -1 (pool exhausted). */
int g_map_page(uint64_t va, uint64_t pa, uint64_t flags);
/* Mark the 4 KiB page at va not present (splitting a 2 MiB page). 0 or -1. */
int g_unmap_page(uint64_t va);
/* The PTE (or 2 MiB PDE) that maps va, or NULL if a level is not present. */
uint64_t *g_pte_lookup(uint64_t va);
bool g_nx_enabled(void); /* EFER.NXE was set at entry (CPUID 0x80000001 EDX.NX) */

const struct hvm_start_info *g_start_info(void);
uint64_t g_ram_bytes(void); /* sum of the RAM entries of the memory map, 0 if none */

/* ---- command line: "key=value key2 key3=..." ---- */
const char *g_cmdline(void); /* the whole line, "" if none */
const char *g_opt_str(const char *key, const char *def);
long long g_opt_int(const char *key, long long def); /* decimal, 0x hex, optional '-' */
bool g_opt_bool(const char *key, bool def);          /* bare key, 1/yes/true/on, 0/no/false/off */
bool g_opt_present(const char *key);

/* ---- results and exit ---- */
/* Print "PASS: name" or "FAIL: name", count it, return ok. */
bool g_report(const char *name, bool ok);
bool g_reportf(bool ok, const char *fmt, ...) G_PRINTF(2, 3);
unsigned g_passed(void);
unsigned g_failed(void);
/* Print "<prefix>: N passed, M failed"; returns 0 if none failed, else 1. */
int g_report_summary(const char *prefix);
/* Write code to isa-debug-exit (outl 0xF4): the VM ends with status (code << 1) | 1.
 * 0 = success. If the port does nothing, halts forever with interrupts off. */
G_NORETURN void g_exit(int code);

/* Entered from entry.S. */
G_NORETURN void g_start(void);
int main(void);

#endif
