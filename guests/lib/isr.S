/*
 * isr.S: one 16-byte stub per vector (256) and the common entry that builds
 * struct g_regs (guest.h) and calls g_isr_dispatch().
 *
 * Stub n is at g_isr_stubs + 16 * n. Vectors where the CPU pushes an error code (8, 10-14,
 * 17, 21, 29, 30) push only the vector; the others push 0 first, so the frame is uniform.
 * A software INT to one of those error-code vectors would leave the frame one slot off:
 * guests do not do that. The common entry carries CFI that describes the interrupted
 * frame (a signal frame), so unwinders walk from a handler into the interrupted code.
 */

	.text
	.p2align 4
	.globl g_isr_stubs
g_isr_stubs:
	.set vec, 0
	.rept 256
	.p2align 4
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

	.macro SAVE reg
	pushq %\reg
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %\reg, 0
	.endm
	.macro RESTORE reg
	popq %\reg
	.cfi_adjust_cfa_offset -8
	.cfi_restore %\reg
	.endm

	.p2align 4
	.type isr_common, @function
isr_common:
	/* rsp -> vector, error code, rip, cs, rflags, rsp, ss */
	.cfi_startproc simple
	.cfi_signal_frame
	.cfi_def_cfa %rsp, 56
	.cfi_offset %rip, -40
	.cfi_offset %rsp, -16
	SAVE rax
	SAVE rbx
	SAVE rcx
	SAVE rdx
	SAVE rsi
	SAVE rdi
	SAVE rbp
	SAVE r8
	SAVE r9
	SAVE r10
	SAVE r11
	SAVE r12
	SAVE r13
	SAVE r14
	SAVE r15
	mov %rsp, %rdi
	cld
	call g_isr_dispatch
	RESTORE r15
	RESTORE r14
	RESTORE r13
	RESTORE r12
	RESTORE r11
	RESTORE r10
	RESTORE r9
	RESTORE r8
	RESTORE rbp
	RESTORE rdi
	RESTORE rsi
	RESTORE rdx
	RESTORE rcx
	RESTORE rbx
	RESTORE rax
	add $16, %rsp
	.cfi_adjust_cfa_offset -16
	iretq
	.cfi_endproc
	.size isr_common, . - isr_common

	.section .note.GNU-stack, "", @progbits
