/*
 * conform_user: a deterministic report of user mode (CPL 3), identical on KVM, QEMU TCG
 * and rewind's emu backend: what a kernel such as Linux needs to run processes.
 *  - SYSCALL/SYSRET: RCX and R11 as SYSCALL saves them, CS, SS and RFLAGS (SFMASK) in the
 *    kernel, CS, SS and RFLAGS after SYSRET (R11's bits as SYSRET loads them, the
 *    reserved ones not), SYSRET to 32-bit code, SYSCALL with EFER.SCE clear (#UD),
 *    SYSRET at CPL 3 (#GP);
 *  - exceptions from CPL 3: the frame (vector, error code, RIP, CS, SS, RSP), the stack
 *    they arrive on (TSS.RSP0, or an IST stack), CS and SS in the handler (SS the null
 *    selector), user-mode page faults with their error codes (U, W, P, I) and CR2,
 *    INT3 through a DPL 3 gate and INT n through a DPL 0 one, privileged instructions
 *    (HLT, CLI, RDMSR, port I/O without I/O permission);
 *  - a timer interrupt taken in ring 3 and returned from;
 *  - one user address holding other code in turn (two address spaces' view);
 *  - SWAPGS and the FS/GS base MSRs, as the kernel and user code see them;
 *  - IRETQ to CPL 3 and the selector checks it makes;
 *  - x87/SSE state: FXSAVE and FXRSTOR, #NM with CR0.TS.
 * Last lines: "conform_user: hash <fnv of the report>", "conform_user: done".
 */
#include "guest.h"

#define line g_report_line

#define KCS 0x08
#define KDS 0x10
#define UCS32 0x33
#define UDS 0x3b
#define UCS64 0x43
#define STAR_VALUE ((0x30ull << 48) | ((uint64_t)KCS << 32))
#define SFMASK_VALUE 0x4700ull /* TF, IF, DF, NT */
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_SFMASK 0xc0000084u
#define MSR_EFER 0xc0000080u
#define MSR_FS_BASE 0xc0000100u
#define MSR_GS_BASE 0xc0000101u
#define MSR_KGS_BASE 0xc0000102u
#define UD_IST 3
#define UA(p) ((uint64_t)(uintptr_t)(p))

/* The user's pages (mapped with U set), and pages it must not reach. */
uint8_t u_stack[2][4096] __attribute__((aligned(4096)));
volatile uint64_t u_data[512] __attribute__((aligned(4096)));
uint8_t u_ro[4096] __attribute__((aligned(4096)));
uint8_t u_nx[4096] __attribute__((aligned(4096)));
uint8_t k_only[4096] __attribute__((aligned(4096)));
/* Two frames of user code shown in turn at ALT_VA (same_address_other_code). */
static uint8_t u_alt[2][4096] __attribute__((aligned(4096)));
#define ALT_VA 0x40000000ull
/* Kernel stacks: SYSCALL's, TSS.RSP0, IST3. */
uint8_t k_stack[8192] __attribute__((aligned(16)));
static uint8_t rsp0_stack[8192] __attribute__((aligned(16)));
static uint8_t ist_stack[8192] __attribute__((aligned(16)));

/* u_data slots the user code writes and the kernel reads. */
#define U_ARG 0
#define U_RES0 1 /* .. U_RES0 + 3 */
#define U_TICKS 8

/* What the SYSCALL entry saw (k_syscall). */
uint64_t k_rcx, k_r11, k_rflags, k_cs, k_ss, k_ursp, k_main_rsp;

static uint64_t gdt[9] __attribute__((aligned(16)));

extern char u_begin[], u_end[], u_exit[], u_sys_echo[], u_sys_echo_ret[], u_sys_flags[],
	u_sys_compat[], u_compat_back[], u_load[], u_load_insn[], u_store[], u_store_insn[],
	u_call[], u_call_insn[], u_int3[], u_int3_insn[], u_intn[], u_intn_insn[], u_ud2[],
	u_ud2_insn[], u_hlt[], u_hlt_insn[], u_cli[], u_cli_insn[], u_rdmsr[], u_rdmsr_insn[],
	u_out[], u_out_insn[], u_sysret[], u_sysret_insn[], u_syscall[], u_syscall_insn[],
	u_spin[], u_bases[], u_swapgs[], u_swapgs_insn[];
void k_syscall(void);
void k_exit(void);
uint64_t enter_user(uint64_t rip, uint64_t rsp, uint64_t rflags);

/*
 * User code: its own pages. Every test ends at u_exit (SYSCALL 0), which returns from
 * enter_user; the kernel's exception handler sends a trapped test there too. U_ARG is
 * the test's operand.
 */
__asm__(".pushsection .text.user, \"ax\"\n"
	".p2align 12\n"
	".globl u_begin\nu_begin:\n"
	".globl u_exit\nu_exit:\n"
	"	int $0x81\n"
	"	ud2\n"
	/* SYSCALL 1 (echo: RAX = RDI + 1) with RFLAGS set to U_ARG; then what came back. */
	".globl u_sys_echo\nu_sys_echo:\n"
	"	pushq u_data(%rip)\n"
	"	popfq\n"
	"	movl $1, %eax\n"
	"	movl $41, %edi\n"
	"	syscall\n"
	".globl u_sys_echo_ret\nu_sys_echo_ret:\n"
	"	pushfq\n"
	"	popq u_data+16(%rip)\n"
	"	movq %rax, u_data+8(%rip)\n"
	"	movq %cs, %rax\n"
	"	movq %rax, u_data+24(%rip)\n"
	"	movq %ss, %rax\n"
	"	movq %rax, u_data+32(%rip)\n"
	"	jmp u_exit\n"
	/* SYSCALL 2: SYSRET with R11 = U_ARG; the RFLAGS it made. */
	".globl u_sys_flags\nu_sys_flags:\n"
	"	movl $2, %eax\n"
	"	movq u_data(%rip), %rdi\n"
	"	syscall\n"
	"	pushfq\n"
	"	popq u_data+8(%rip)\n"
	"	pushq $2\n"
	"	popfq\n"
	"	jmp u_exit\n"
	/* SYSCALL 3: SYSRET (32-bit) to u_compat_back in compatibility mode, which stops at
	 * an INT3 (DPL 3 gate): the handler sees CS 0x33. */
	".globl u_sys_compat\nu_sys_compat:\n"
	"	movl $3, %eax\n"
	"	leaq u_compat_back(%rip), %rdi\n"
	"	syscall\n"
	"	ud2\n"
	".code32\n"
	".globl u_compat_back\nu_compat_back:\n"
	"	movl $0x1234, %eax\n"
	"	int3\n"
	"	ud2\n"
	".code64\n"
	".globl u_load\nu_load:\n"
	"	movq u_data(%rip), %rdi\n"
	".globl u_load_insn\nu_load_insn:\n"
	"	movb (%rdi), %al\n"
	"	jmp u_exit\n"
	".globl u_store\nu_store:\n"
	"	movq u_data(%rip), %rdi\n"
	".globl u_store_insn\nu_store_insn:\n"
	"	movl %eax, (%rdi)\n"
	"	jmp u_exit\n"
	".globl u_call\nu_call:\n"
	"	movq u_data(%rip), %rdi\n"
	".globl u_call_insn\nu_call_insn:\n"
	"	call *%rdi\n"
	"	jmp u_exit\n"
	".globl u_int3\nu_int3:\n"
	".globl u_int3_insn\nu_int3_insn:\n"
	"	int3\n"
	"	jmp u_exit\n"
	".globl u_intn\nu_intn:\n"
	".globl u_intn_insn\nu_intn_insn:\n"
	"	int $0x80\n"
	"	jmp u_exit\n"
	".globl u_ud2\nu_ud2:\n"
	".globl u_ud2_insn\nu_ud2_insn:\n"
	"	ud2\n"
	".globl u_hlt\nu_hlt:\n"
	".globl u_hlt_insn\nu_hlt_insn:\n"
	"	hlt\n"
	"	jmp u_exit\n"
	".globl u_cli\nu_cli:\n"
	".globl u_cli_insn\nu_cli_insn:\n"
	"	cli\n"
	"	jmp u_exit\n"
	".globl u_rdmsr\nu_rdmsr:\n"
	"	movl $0xc0000080, %ecx\n"
	".globl u_rdmsr_insn\nu_rdmsr_insn:\n"
	"	rdmsr\n"
	"	jmp u_exit\n"
	".globl u_out\nu_out:\n"
	"	movl $0x41, %eax\n"
	".globl u_out_insn\nu_out_insn:\n"
	"	outb %al, $0x80\n"
	"	jmp u_exit\n"
	".globl u_sysret\nu_sysret:\n"
	"	leaq u_exit(%rip), %rcx\n"
	".globl u_sysret_insn\nu_sysret_insn:\n"
	"	sysretq\n"
	"	jmp u_exit\n"
	".globl u_syscall\nu_syscall:\n"
	"	movl $1, %eax\n"
	".globl u_syscall_insn\nu_syscall_insn:\n"
	"	syscall\n"
	"	jmp u_exit\n"
	/* Wait with IF set until the timer handler counts a tick, then note CS and SS. */
	".globl u_spin\nu_spin:\n"
	"1:	cmpq $0, u_data+64(%rip)\n"
	"	je 1b\n"
	"	movq %cs, %rax\n"
	"	movq %rax, u_data+8(%rip)\n"
	"	movq %ss, %rax\n"
	"	movq %rax, u_data+16(%rip)\n"
	"	jmp u_exit\n"
	/* FS and GS bases in user mode: what %fs:0x40 and %gs:0x48 read. */
	".globl u_bases\nu_bases:\n"
	"	movq %fs:0x40, %rax\n"
	"	movq %rax, u_data+8(%rip)\n"
	"	movq %gs:0x48, %rax\n"
	"	movq %rax, u_data+16(%rip)\n"
	"	jmp u_exit\n"
	".globl u_swapgs\nu_swapgs:\n"
	".globl u_swapgs_insn\nu_swapgs_insn:\n"
	"	swapgs\n"
	"	jmp u_exit\n"
	".p2align 12\n"
	".globl u_end\nu_end:\n"
	".popsection\n");

/*
 * Kernel side. enter_user(rip, rsp, rflags) IRETQs to CPL 3 and returns (RAX: the user's
 * RAX there) when the user's code reaches u_exit, whose INT 0x81 (a DPL 3 gate to k_exit)
 * ends the test; not a SYSCALL, which a software-nested KVM (PVM) does not deliver to the
 * guest's LSTAR. k_syscall is LSTAR: it notes RCX, R11, RFLAGS, CS and SS, and serves the
 * call in RAX on k_stack.
 */
__asm__(".text\n"
	".globl enter_user\nenter_user:\n"
	"	pushq %rbx\n	pushq %rbp\n	pushq %r12\n	pushq %r13\n	pushq %r14\n	pushq %r15\n"
	"	movq %rsp, k_main_rsp(%rip)\n"
	"	pushq $0x3b\n"
	"	pushq %rsi\n"
	"	pushq %rdx\n"
	"	pushq $0x43\n"
	"	pushq %rdi\n"
	"	iretq\n"
	".globl k_exit\nk_exit:\n"
	"	movq k_main_rsp(%rip), %rsp\n"
	"	movl $0x10, %ecx\n"
	"	movl %ecx, %ss\n"
	"	popq %r15\n	popq %r14\n	popq %r13\n	popq %r12\n	popq %rbp\n	popq %rbx\n"
	"	ret\n"
	".globl k_syscall\nk_syscall:\n"
	"	movq %rsp, k_ursp(%rip)\n"
	"	leaq k_stack+8192(%rip), %rsp\n"
	"	movq %rcx, k_rcx(%rip)\n"
	"	movq %r11, k_r11(%rip)\n"
	"	pushfq\n"
	"	popq k_rflags(%rip)\n"
	"	movq %cs, %rdx\n"
	"	movq %rdx, k_cs(%rip)\n"
	"	movq %ss, %rdx\n"
	"	movq %rdx, k_ss(%rip)\n"
	"	cmpl $1, %eax\n"
	"	jne 2f\n"
	"	leaq 1(%rdi), %rax\n"
	"	movq k_ursp(%rip), %rsp\n"
	"	sysretq\n"
	"2:	cmpl $2, %eax\n"
	"	jne 3f\n"
	"	movq %rdi, %r11\n"
	"	movq k_ursp(%rip), %rsp\n"
	"	sysretq\n"
	"3:	cmpl $3, %eax\n"
	"	jne 4f\n"
	"	movq %rdi, %rcx\n"
	"	movl $0x202, %r11d\n"
	"	movq k_ursp(%rip), %rsp\n"
	"	sysretl\n"
	"4:	ud2\n");

/* An interrupt gate for vector v to handler, with DPL dpl and IST ist. */
static void set_gate(unsigned v, void (*handler)(void), unsigned dpl, unsigned ist);

static uint64_t ustack_top(void)
{
	return (uint64_t)(uintptr_t)(u_stack[1] + 4096);
}

/* ---- exceptions and interrupts from CPL 3 ---- */

struct seen {
	uint64_t count, vector, error_code, rip, cs, ss, rsp, cr2, kss, kcs, frame;
};
static volatile struct seen seen;
static uint64_t rsp0_top, ist_top;

static uint64_t read_ss(void)
{
	uint64_t v;
	__asm__ volatile("movq %%ss, %0" : "=r"(v));
	return v;
}

static uint64_t read_cs(void)
{
	uint64_t v;
	__asm__ volatile("movq %%cs, %0" : "=r"(v));
	return v;
}

/* Note the frame and end the user's test: resume at u_exit in 64-bit user code. */
static void user_trap(struct g_regs *r)
{
	seen.count++;
	seen.vector = r->vector;
	seen.error_code = r->error_code;
	seen.rip = r->rip;
	seen.cs = r->cs;
	seen.ss = r->ss;
	seen.rsp = r->rsp;
	seen.cr2 = g_read_cr2();
	seen.kss = read_ss();
	seen.kcs = read_cs();
	uint64_t at = (uint64_t)(uintptr_t)r + sizeof(*r);
	seen.frame = at == rsp0_top ? 0 : at == ist_top ? 1 : 2;
	r->rip = (uint64_t)(uintptr_t)u_exit;
	r->cs = UCS64;
	r->ss = UDS;
	r->rsp = ustack_top();
	r->rflags = 0x2;
}

static const char *const frame_names[3] = {"rsp0", "ist3", "other"};

/* Run user code at entry (RFLAGS 0x2) and report the exception it took, if any. */
static void user_exc(const char *name, const char *entry, uint64_t insn, uint64_t arg,
		     uint64_t cr2_base)
{
	memset((void *)&seen, 0, sizeof(seen));
	u_data[U_ARG] = arg;
	enter_user((uint64_t)(uintptr_t)entry, ustack_top(), 0x2);
	if (seen.count != 1) {
		line("%-26s no exception", name);
		return;
	}
	char cr2[24] = "-";
	if (cr2_base)
		g_snprintf(cr2, sizeof(cr2), "+0x%lx", seen.cr2 - cr2_base);
	line("%-26s vector %2lu %-3s error 0x%04lx cr2 %-6s rip insn+%ld cs 0x%lx ss 0x%lx "
	     "rsp top%+ld on %s, kernel cs 0x%lx ss 0x%lx",
	     name, seen.vector, g_exception_name((unsigned)seen.vector), seen.error_code, cr2,
	     (long)(seen.rip - insn), seen.cs, seen.ss,
	     (long)(seen.rsp - ustack_top()), frame_names[seen.frame], seen.kcs, seen.kss);
}

static void timer(struct g_regs *r)
{
	seen.count++;
	seen.cs = r->cs;
	seen.ss = r->ss;
	seen.kss = read_ss();
	seen.kcs = read_cs();
	seen.rip = r->rip;
	uint64_t at = (uint64_t)(uintptr_t)r + sizeof(*r);
	seen.frame = at == rsp0_top ? 0 : at == ist_top ? 1 : 2;
	u_data[U_TICKS]++;
	g_pic_mask(0);
	g_pic_eoi(0);
}

/* ---- set-up: GDT with user segments, TSS.RSP0 and IST3, gates, pages, MSRs ---- */

static uint8_t *tss_base(void)
{
	extern uint64_t g_gdt[];
	uint64_t lo = g_gdt[4], hi = g_gdt[5];
	return (uint8_t *)(uintptr_t)(((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24) |
				      (hi << 32));
}

static uint8_t *idt_gate(unsigned v)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) p;
	__asm__ volatile("sidt %0" : "=m"(p));
	return (uint8_t *)(uintptr_t)(p.base + 16 * v);
}

static void set_gate(unsigned v, void (*handler)(void), unsigned dpl, unsigned ist)
{
	uint64_t a = UA(handler);
	uint8_t *g = idt_gate(v);
	uint64_t lo = (a & 0xffff) | ((uint64_t)KCS << 16) | ((uint64_t)ist << 32) |
		      ((uint64_t)(0x8e | dpl << 5) << 40) | ((a >> 16) << 48);
	uint64_t hi = a >> 32;
	memcpy(g, &lo, 8);
	memcpy(g + 8, &hi, 8);
}

static void setup(void)
{
	extern uint64_t g_gdt[];
	gdt[0] = 0;
	gdt[1] = g_gdt[1];             /* 0x08 64-bit kernel code */
	gdt[2] = g_gdt[2];             /* 0x10 kernel data */
	gdt[3] = g_gdt[3];             /* 0x18 32-bit kernel code */
	gdt[4] = g_gdt[4];             /* 0x20 TSS */
	gdt[5] = g_gdt[5];
	gdt[6] = 0x00cffa000000ffffull; /* 0x30 32-bit user code */
	gdt[7] = 0x00cff2000000ffffull; /* 0x38 user data */
	gdt[8] = 0x00affa000000ffffull; /* 0x40 64-bit user code */
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) ptr = {sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt};
	__asm__ volatile("lgdt %0" ::"m"(ptr) : "memory");

	uint8_t *tss = tss_base();
	rsp0_top = (uint64_t)(uintptr_t)(rsp0_stack + sizeof(rsp0_stack));
	ist_top = (uint64_t)(uintptr_t)(ist_stack + sizeof(ist_stack));
	memcpy(tss + 4, &rsp0_top, 8);                       /* RSP0 */
	memcpy(tss + 0x24 + 8 * (UD_IST - 1), &ist_top, 8); /* IST3 */

	set_gate(0x81, k_exit, 3, 0);
	idt_gate(3)[5] = 0xee;     /* INT3: DPL 3 */
	idt_gate(6)[4] = UD_IST;   /* #UD on IST3 */

	for (char *p = u_begin; p < u_end; p += 4096)
		g_map_page((uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p, G_PTE_P | G_PTE_U);
	for (int i = 0; i < 2; i++)
		g_map_page((uint64_t)(uintptr_t)u_stack[i], (uint64_t)(uintptr_t)u_stack[i],
			   G_PTE_P | G_PTE_W | G_PTE_U | (g_nx_enabled() ? G_PTE_NX : 0));
	g_map_page((uint64_t)(uintptr_t)u_data, (uint64_t)(uintptr_t)u_data,
		   G_PTE_P | G_PTE_W | G_PTE_U | (g_nx_enabled() ? G_PTE_NX : 0));
	g_map_page((uint64_t)(uintptr_t)u_ro, (uint64_t)(uintptr_t)u_ro, G_PTE_P | G_PTE_U);
	g_map_page((uint64_t)(uintptr_t)u_nx, (uint64_t)(uintptr_t)u_nx,
		   G_PTE_P | G_PTE_W | G_PTE_U | (g_nx_enabled() ? G_PTE_NX : 0));
	g_map_page((uint64_t)(uintptr_t)k_only, (uint64_t)(uintptr_t)k_only, G_PTE_P | G_PTE_W);
	/* The upper levels of these mappings: U set (the boot tables' may lack it). */
	g_map_page(ALT_VA, UA(u_alt[0]), G_PTE_P | G_PTE_U);
	const uint64_t upages[] = {UA(u_begin), UA(u_end) - 1, UA(u_stack[0]), UA(u_stack[1]),
				   UA(u_data), UA(u_ro), UA(u_nx), UA(k_only), ALT_VA};
	for (unsigned i = 0; i < sizeof(upages) / sizeof(upages[0]); i++) {
		uint64_t va = upages[i];
		uint64_t *t = (uint64_t *)(uintptr_t)(g_read_cr3() & 0x000ffffffffff000ull);
		for (int shift = 39; shift > 12; shift -= 9) {
			uint64_t *e = &t[(va >> shift) & 511];
			*e |= G_PTE_U;
			t = (uint64_t *)(uintptr_t)(*e & 0x000ffffffffff000ull);
		}
	}
	g_write_cr3(g_read_cr3());

	g_wrmsr(MSR_STAR, STAR_VALUE);
	g_wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)k_syscall);
	g_wrmsr(MSR_CSTAR, (uint64_t)(uintptr_t)k_syscall);
	g_wrmsr(MSR_SFMASK, SFMASK_VALUE);
	g_wrmsr(MSR_EFER, g_rdmsr(MSR_EFER) | 1); /* SCE */

	for (unsigned v = 0; v < 32; v++)
		g_set_handler(v, user_trap);
}

/* ---- the report ---- */

static void syscalls(void)
{
	/* CF PF ZF SF IF DF set: SFMASK clears IF and DF in the kernel; SYSRET restores all. */
	u_data[U_ARG] = 0x6c7;
	enter_user((uint64_t)(uintptr_t)u_sys_echo, ustack_top(), 0x2);
	line("syscall: rcx ret%+ld r11 0x%lx kernel rflags 0x%lx cs 0x%lx ss 0x%lx user rsp top%+ld",
	     (long)(k_rcx - (uint64_t)(uintptr_t)u_sys_echo_ret), k_r11, k_rflags, k_cs, k_ss,
	     (long)(k_ursp - ustack_top()));
	line("sysret: rax %lu rflags 0x%lx cs 0x%lx ss 0x%lx", u_data[U_RES0],
	     u_data[U_RES0 + 1], u_data[U_RES0 + 2], u_data[U_RES0 + 3]);

	/* R11 with IOPL 3, AC, ID, DF, IF, the arithmetic flags and reserved bits 3, 5, 15. */
	static const uint64_t r11s[2] = {0x24bed7 | 0x8028, 0x2};
	for (int i = 0; i < 2; i++) {
		u_data[U_ARG] = r11s[i];
		enter_user((uint64_t)(uintptr_t)u_sys_flags, ustack_top(), 0x2);
		line("sysret r11 0x%06lx: rflags 0x%lx", r11s[i], u_data[U_RES0]);
	}

	user_exc("sysret to 32-bit code", u_sys_compat, UA(u_compat_back), 0, 0);

	user_exc("sysret at cpl 3", u_sysret, UA(u_sysret_insn), 0, 0);
	g_wrmsr(MSR_EFER, g_rdmsr(MSR_EFER) & ~1ull);
	user_exc("syscall with sce clear", u_syscall, UA(u_syscall_insn), 0, 0);
	g_wrmsr(MSR_EFER, g_rdmsr(MSR_EFER) | 1);
	user_exc("syscall with sce set", u_syscall, UA(u_syscall_insn), 0, 0);
}

static void faults(void)
{
	uint64_t ko = (uint64_t)(uintptr_t)k_only, ro = (uint64_t)(uintptr_t)u_ro,
		 nx = (uint64_t)(uintptr_t)u_nx;
	user_exc("user read of kernel page", u_load, UA(u_load_insn), ko + 0x10, ko);
	user_exc("user write of kernel page", u_store, UA(u_store_insn), ko + 0x20, ko);
	user_exc("user read of unmapped", u_load, UA(u_load_insn), 0xdead0000123ull, 0xdead0000000ull);
	user_exc("user write of unmapped", u_store, UA(u_store_insn), 0xdead0000ffcull, 0xdead0000000ull);
	user_exc("user read of read-only", u_load, UA(u_load_insn), ro + 0x30, ro);
	user_exc("user write of read-only", u_store, UA(u_store_insn), ro + 0x40, ro);
	user_exc("user write of writable", u_store, UA(u_store_insn), nx + 0x50, nx);
	if (g_nx_enabled())
		user_exc("user fetch from nx page", u_call, nx + 0x60, nx + 0x60, nx);
	else
		line("%-26s (no NX)", "user fetch from nx page");
	user_exc("user fetch from kernel page", u_call, ko + 0x70, ko + 0x70, ko);
	user_exc("user read non-canonical", u_load, UA(u_load_insn), 0x8000000000000000ull, 0);
}

static void traps(void)
{
	user_exc("int3 (dpl 3 gate)", u_int3, UA(u_int3_insn), 0, 0);
	user_exc("int 0x80 (dpl 0 gate)", u_intn, UA(u_intn_insn), 0, 0);
	user_exc("ud2 (ist3 gate)", u_ud2, UA(u_ud2_insn), 0, 0);
	user_exc("hlt", u_hlt, UA(u_hlt_insn), 0, 0);
	user_exc("cli", u_cli, UA(u_cli_insn), 0, 0);
	user_exc("rdmsr", u_rdmsr, UA(u_rdmsr_insn), 0, 0);
	user_exc("out without permission", u_out, UA(u_out_insn), 0, 0);
}

static void irq_in_user(void)
{
	memset((void *)&seen, 0, sizeof(seen));
	u_data[U_TICKS] = 0;
	g_set_irq_handler(0, timer);
	g_pit_oneshot(2000);
	g_pic_unmask(0);
	enter_user((uint64_t)(uintptr_t)u_spin, ustack_top(), 0x202);
	g_set_irq_handler(0, NULL);
	bool in_spin = seen.rip >= (uint64_t)(uintptr_t)u_spin &&
		       seen.rip < (uint64_t)(uintptr_t)u_spin + 16;
	line("timer irq in ring 3: %lu taken, frame cs 0x%lx ss 0x%lx rip %s on %s, kernel cs "
	     "0x%lx ss 0x%lx; back in user cs 0x%lx ss 0x%lx",
	     seen.count, seen.cs, seen.ss, in_spin ? "in the loop" : "elsewhere",
	     frame_names[seen.frame], seen.kcs, seen.kss, u_data[U_RES0], u_data[U_RES0 + 1]);
}

/* SWAPGS and the FS/GS base MSRs, in the kernel and as user code sees them. */
static void bases(void)
{
	g_wrmsr(MSR_GS_BASE, 0x1111000ull);
	g_wrmsr(MSR_KGS_BASE, 0x2222000ull);
	__asm__ volatile("swapgs" ::: "memory");
	uint64_t gs = g_rdmsr(MSR_GS_BASE), kgs = g_rdmsr(MSR_KGS_BASE);
	__asm__ volatile("swapgs" ::: "memory");
	line("swapgs: gs base 0x%lx kernel gs base 0x%lx; again: 0x%lx 0x%lx", gs, kgs,
	     g_rdmsr(MSR_GS_BASE), g_rdmsr(MSR_KGS_BASE));
	u_data[8] = 0x5eed0040;
	u_data[9] = 0x5eed0048;
	u_data[10] = 0x5eed0050;
	g_wrmsr(MSR_FS_BASE, UA(u_data));
	g_wrmsr(MSR_GS_BASE, UA(u_data) + 8);
	enter_user(UA(u_bases), ustack_top(), 0x2);
	line("user fs:0x40 0x%lx gs:0x48 0x%lx", u_data[U_RES0], u_data[U_RES0 + 1]);
	user_exc("swapgs at cpl 3", u_swapgs, UA(u_swapgs_insn), 0, 0);
	g_wrmsr(MSR_FS_BASE, 0);
	g_wrmsr(MSR_GS_BASE, 0);
	g_wrmsr(MSR_KGS_BASE, 0);
}

/*
 * x87/SSE state: FXSAVE's image after FNINIT (FCW, MXCSR, XMM0 as loaded), FXRSTOR of a
 * changed image, and #NM for an SSE instruction with CR0.TS set (the lib's catcher).
 */
static uint8_t fx[512] __attribute__((aligned(16)));
static void fpu(void)
{
	g_write_cr4(g_read_cr4() | (1ull << 9) | (1ull << 10)); /* OSFXSR, OSXMMEXCPT */
	uint64_t v = 0x0123456789abcdefull, back = 0;
	__asm__ volatile("fninit\n\tmovq %1, %%xmm0\n\tfxsave %0" : "=m"(fx) : "r"(v) : "memory");
	uint16_t fcw;
	uint32_t mxcsr;
	uint64_t x0;
	memcpy(&fcw, fx, 2);
	memcpy(&mxcsr, fx + 24, 4);
	memcpy(&x0, fx + 160, 8);
	line("fxsave: fcw 0x%x mxcsr 0x%x xmm0 0x%lx", fcw, mxcsr, x0);
	x0 = 0xfedcba9876543210ull;
	memcpy(fx + 160, &x0, 8);
	__asm__ volatile("fxrstor %1\n\tmovq %%xmm0, %0" : "=r"(back) : "m"(fx) : "memory");
	line("fxrstor: xmm0 0x%lx", back);
	g_write_cr0(g_read_cr0() | (1ull << 3)); /* TS */
	g_trap_reset();
	__asm__ volatile(G_TRY_BEGIN "movq %%xmm0, %%rax" G_TRY_END ::: "rax", "r11", "memory");
	__asm__ volatile("clts" ::: "memory");
	if (g_trap.count != 1)
		line("%-26s no exception", "sse with cr0.ts");
	else
		line("%-26s vector %2lu %-3s", "sse with cr0.ts", g_trap.vector,
		     g_exception_name((unsigned)g_trap.vector));
}

/*
 * One user address, two frames of code in turn (as two processes have): "mov $1, %eax;
 * rdtsc; int $0x81", then "mov $1, %eax; xor %edx, %edx; int $0x81", of the same lengths.
 * The second must not run the first's RDTSC: its EAX at the INT (enter_user's value).
 */
static void same_address_other_code(void)
{
	static const uint8_t code[2][9] = {
		{0xb8, 1, 0, 0, 0, 0x0f, 0x31, 0xcd, 0x81},
		{0xb8, 1, 0, 0, 0, 0x31, 0xd2, 0xcd, 0x81},
	};
	uint64_t rax = 0;
	for (int i = 0; i < 2; i++) {
		memcpy(u_alt[i], code[i], sizeof(code[i]));
		g_map_page(ALT_VA, UA(u_alt[i]), G_PTE_P | G_PTE_U);
		rax = enter_user(ALT_VA, ustack_top(), 0x2);
	}
	line("same address, other code: eax 0x%lx after the second", rax & 0xffffffffu);
}

/* IRETQ to CPL 3 with a bad selector faults in the kernel (the lib's G_TRY catcher). */
static void iret_checks(void)
{
	for (unsigned v = 0; v < 32; v++)
		g_set_handler(v, NULL);
	static const struct {
		const char *name;
		uint64_t cs, ss;
	} c[] = {
		{"iretq ss rpl 0 to cpl 3", UCS64, UDS & ~3u},
		{"iretq null ss to cpl 3", UCS64, 3},
		{"iretq cs rpl 0 dpl 3", UCS64 & ~3u, UDS},
		{"iretq kernel ss to cpl 3", UCS64, KDS | 3},
	};
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		g_trap_reset();
		uint64_t rsp = ustack_top();
		__asm__ volatile(G_TRY_BEGIN
				 "pushq %[ss]\n\tpushq %[rsp]\n\tpushq $2\n\tpushq %[cs]\n\t"
				 "pushq %[rip]\n\tiretq" G_TRY_END
				 :
				 : [ss] "r"(c[i].ss), [rsp] "r"(rsp), [cs] "r"(c[i].cs),
				   [rip] "r"((uint64_t)(uintptr_t)u_exit)
				 : "r11", "memory");
		if (g_trap.count != 1)
			line("%-26s no exception", c[i].name);
		else
			line("%-26s vector %2lu %-3s error 0x%04lx", c[i].name, g_trap.vector,
			     g_exception_name((unsigned)g_trap.vector), g_trap.error_code);
	}
}

int main(void)
{
	g_puts("conform_user: user mode (CPL 3) conformance report");
	setup();
	syscalls();
	faults();
	traps();
	irq_in_user();
	same_address_other_code();
	bases();
	iret_checks();
	fpu();
	g_printf("conform_user: hash %016lx\n", g_report_hash);
	g_puts("conform_user: done");
	return 0;
}
