/*
 * entry.S: the PVH entry of every guest (docs/architecture.md, 'The machine').
 *
 * The loader (rewind, QEMU, Firecracker) finds the 32-bit entry in the "Xen" note of
 * type 18 (XEN_ELFNOTE_PHYS32_ENTRY) and starts it in 32-bit protected mode with flat
 * segments, paging off, interrupts off and EBX = physical address of hvm_start_info.
 * This code zeroes .bss, identity-maps the first 4 GiB with 2 MiB pages, enables PAE,
 * EFER.LME (and EFER.NXE where CPUID has NX), CR0.PG and CR0.WP, loads a 64-bit GDT,
 * jumps to 64-bit code and calls g_start() on a 64 KiB stack.
 */

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)
#define CR0_PE 0x00000001
#define CR0_NE 0x00000020
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define STACK_SIZE 65536

	/* The PVH note: its own PT_NOTE segment (see guest.ld). */
	.section .note.Xen, "a", @note
	.p2align 2
	.long 4                 /* namesz: "Xen\0" */
	.long 4                 /* descsz: a 32-bit physical address */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long g_pvh_entry

	.section .text.entry, "ax", @progbits
	.code32
	.globl g_pvh_entry
	.type g_pvh_entry, @function
g_pvh_entry:
	/* The loader's descriptor tables, before anything changes them (conform_regs
	 * prints them: rewind's backends must start alike, docs/kvm-backend.md). */
	sgdt g_entry_gdtr
	sidt g_entry_idtr
	cli
	cld
	mov %ebx, %esi

	/* Zero .bss (stack and page tables live there). */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	shr $2, %ecx
	xor %eax, %eax
	rep stosl

	mov %esi, g_start_info_pa
	movl $0, g_start_info_pa + 4
	mov $g_stack_top, %esp

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3; PDn[i] = 2 MiB page (n << 30 | i << 21). */
	movl $(g_boot_pdpt + 3), g_boot_pml4
	mov $g_boot_pdpt, %edi
	mov $(g_boot_pd + 3), %eax
	mov $4, %ecx
1:	mov %eax, (%edi)
	add $4096, %eax
	add $8, %edi
	loop 1b
	mov $g_boot_pd, %edi
	xor %ecx, %ecx
2:	mov %ecx, %eax
	shl $21, %eax
	or $0x83, %eax          /* present, writable, 2 MiB */
	mov %eax, (%edi,%ecx,8)
	inc %ecx
	cmp $2048, %ecx
	jb 2b

	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov %eax, %cr4
	mov $g_boot_pml4, %eax
	mov %eax, %cr3

	/* EFER.NXE only where CPUID says NX exists (setting it otherwise is a #GP). */
	xor %edi, %edi
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000001, %eax
	jb 3f
	mov $0x80000001, %eax
	cpuid
	test $(1 << 20), %edx
	jz 3f
	mov $EFER_NXE, %edi
3:	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	or %edi, %eax
	wrmsr
	mov %edi, g_efer_nxe

	mov %cr0, %eax
	or $(CR0_PE | CR0_NE | CR0_WP | CR0_PG), %eax
	mov %eax, %cr0

	lgdt g_gdt_ptr
	ljmp $KERNEL_CS, $long_entry
	.size g_pvh_entry, . - g_pvh_entry

	.code64
	.type long_entry, @function
long_entry:
	.cfi_startproc
	.cfi_undefined %rip     /* the outermost frame: unwinders stop here */
	mov $KERNEL_DS, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xor %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	lgdt g_gdt_ptr(%rip)    /* again, now with the 64-bit base form */
	mov $g_stack_top, %rsp
	xor %ebp, %ebp
	call g_start
4:	cli
	hlt
	jmp 4b
	.cfi_endproc
	.size long_entry, . - long_entry

	.section .data
	.p2align 4
	.globl g_gdt
	/* Every descriptor is marked accessed already, so that loading it writes nothing:
	 * CPUs differ in whether a far jump sets the bit (QEMU TCG, and so KVM nested in
	 * it, does not; hardware and emu do), and a recording must not depend on that. */
g_gdt:
	.quad 0                     /* 0x00 null */
	.quad 0x00af9b000000ffff    /* 0x08 64-bit code */
	.quad 0x00cf93000000ffff    /* 0x10 data */
	.quad 0x00cf9b000000ffff    /* 0x18 32-bit code */
	.quad 0, 0                  /* 0x20 TSS (16 bytes), filled in by g_idt_init */
g_gdt_end:
	.p2align 3
	.globl g_gdt_ptr
g_gdt_ptr:
	.word g_gdt_end - g_gdt - 1
	.quad g_gdt

	/* In .data, not .bss: they are written before .bss is cleared. 32-bit SGDT/SIDT
	 * store a 2-byte limit and a 4-byte base. */
	.p2align 3
	.globl g_entry_gdtr, g_entry_idtr
g_entry_gdtr:
	.quad 0
g_entry_idtr:
	.quad 0

	.section .bss
	.p2align 3
	.globl g_start_info_pa, g_efer_nxe
g_start_info_pa:
	.skip 8
g_efer_nxe:
	.skip 4

	.section .bss.pagetables, "aw", @nobits
	.p2align 12
	.globl g_boot_pml4, g_boot_pdpt, g_boot_pd
g_boot_pml4:
	.skip 4096
g_boot_pdpt:
	.skip 4096
g_boot_pd:
	.skip 4 * 4096
	.p2align 12
g_stack:
	.skip STACK_SIZE
	.globl g_stack_top
g_stack_top:

	.section .note.GNU-stack, "", @progbits
