/* unit */
/*
 * test_x86dec.c: the instruction length decoder the emu backend counts instructions
 * with. Hand-made encodings for the tricky corners, the classification of the
 * instructions emu emulates itself, effective addresses, and a cross-check of every
 * instruction objdump finds in the guest binaries.
 */
#include "vmm/x86dec.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int len_of(const char *hex, int bits)
{
	uint8_t b[32];
	size_t n = 0;
	memset(b, 0x90, sizeof(b));
	for (const char *p = hex; p[0] && p[1]; p += 2) {
		if (*p == ' ') {
			p--;
			continue;
		}
		unsigned v;
		sscanf(p, "%2x", &v);
		b[n++] = (uint8_t)v;
	}
	struct x86_insn in;
	if (x86_decode(b, sizeof(b), bits, &in) < 0)
		return -1;
	return in.len;
}

Test(x86dec, lengths_64)
{
	cr_assert_eq(len_of("90", 64), 1);
	cr_assert_eq(len_of("4889e5", 64), 3);                 /* mov rbp, rsp */
	cr_assert_eq(len_of("48b88877665544332211", 64), 10);  /* mov rax, imm64 */
	cr_assert_eq(len_of("b878563412", 64), 5);             /* mov eax, imm32 */
	cr_assert_eq(len_of("66b83412", 64), 4);               /* mov ax, imm16 */
	cr_assert_eq(len_of("8b0425785634120000", 64), 7);     /* mov eax, [disp32] via SIB */
	cr_assert_eq(len_of("488b05f95e0000", 64), 7);         /* rip-relative */
	cr_assert_eq(len_of("c744240800000000", 64), 8);       /* mov dword [rsp+8], imm32 */
	cr_assert_eq(len_of("e800000000", 64), 5);             /* call rel32 */
	cr_assert_eq(len_of("0f8500000000", 64), 6);           /* jnz rel32 */
	cr_assert_eq(len_of("f6c101", 64), 3);                 /* test cl, imm8 */
	cr_assert_eq(len_of("f7c101000000", 64), 6);           /* test ecx, imm32 */
	cr_assert_eq(len_of("f7d1", 64), 2);                   /* not ecx: no immediate */
	cr_assert_eq(len_of("0f1f440000", 64), 5);             /* nop dword [rax+rax] */
	cr_assert_eq(len_of("660f3a0fc108", 64), 6);           /* palignr xmm0, xmm1, 8 */
	cr_assert_eq(len_of("c5f877", 64), 3);                 /* vzeroupper */
	cr_assert_eq(len_of("c4e27d18c0", 64), 5);             /* vbroadcastss */
	cr_assert_eq(len_of("f3a4", 64), 2);                   /* rep movsb */
	cr_assert_eq(len_of("a1" "0000000000000000", 64), 9);  /* mov eax, moffs64 */
	cr_assert_eq(len_of("c8100000", 64), 4);               /* enter 16, 0 */
}

Test(x86dec, lengths_32_and_16)
{
	cr_assert_eq(len_of("a100000000", 32), 5);     /* mov eax, moffs32 */
	cr_assert_eq(len_of("67a10000", 32), 4);       /* moffs16 with 67 */
	cr_assert_eq(len_of("8b4500", 32), 3);         /* mov eax, [ebp+0] */
	cr_assert_eq(len_of("678b4600", 32), 4);       /* 16-bit addressing [bp+0] */
	cr_assert_eq(len_of("ea000010000800", 32), 7); /* ljmp 0x8:0x100000 */
	cr_assert_eq(len_of("40", 32), 1);             /* inc eax, not REX */
	cr_assert_eq(len_of("c500", 32), 2);           /* lds eax, [eax]: not VEX */
	cr_assert_eq(len_of("b80000", 16), 3);         /* mov ax, imm16 */
}

Test(x86dec, classification)
{
	struct x86_insn in;
	uint8_t out_imm[] = {0xe6, 0x80}, out_dx[] = {0xee}, in_d[] = {0xed}, rdtsc[] = {0x0f, 0x31},
		rdtscp[] = {0x0f, 0x01, 0xf9}, hlt[] = {0xf4}, sti[] = {0xfb},
		movss[] = {0x8e, 0xd0}, movds[] = {0x8e, 0xd8}, outsw[] = {0x66, 0xf3, 0x6f};
	cr_assert_eq(x86_decode(out_imm, 2, 64, &in), 0);
	cr_assert(in.kind == X86_OUT && in.port_imm && in.imm8 == 0x80 && in.width == 1);
	x86_decode(out_dx, 1, 64, &in);
	cr_assert(in.kind == X86_OUT && !in.port_imm);
	x86_decode(in_d, 1, 64, &in);
	cr_assert(in.kind == X86_IN && in.width == 4);
	x86_decode(rdtsc, 2, 64, &in);
	cr_assert_eq(in.kind, X86_RDTSC);
	x86_decode(rdtscp, 3, 64, &in);
	cr_assert_eq(in.kind, X86_RDTSCP);
	x86_decode(hlt, 1, 64, &in);
	cr_assert_eq(in.kind, X86_HLT);
	x86_decode(sti, 1, 64, &in);
	cr_assert_eq(in.kind, X86_STI);
	x86_decode(movss, 2, 64, &in);
	cr_assert_eq(in.kind, X86_MOVSS);
	x86_decode(movds, 2, 64, &in);
	cr_assert_eq(in.kind, X86_OTHER);
	x86_decode(outsw, 3, 64, &in);
	cr_assert(in.kind == X86_OUTS && in.width == 2 && in.rep);
	/* cmpxchg16b %gs:(%rdi), cmpxchg8b (%eax), and 0F C7 /6 with a register (RDRAND) */
	uint8_t cx16[] = {0x65, 0x48, 0x0f, 0xc7, 0x0f}, cx8[] = {0x0f, 0xc7, 0x08},
		rdrand[] = {0x0f, 0xc7, 0xf0}, cx_reg[] = {0x0f, 0xc7, 0xc8};
	cr_assert_eq(x86_decode(cx16, 5, 64, &in), 0);
	cr_assert(in.kind == X86_CMPXCHGB && in.len == 5);
	x86_decode(cx8, 3, 32, &in);
	cr_assert(in.kind == X86_CMPXCHGB && in.len == 3);
	x86_decode(rdrand, 3, 64, &in);
	cr_assert_eq(in.kind, X86_OTHER);
	x86_decode(cx_reg, 3, 64, &in);
	cr_assert_eq(in.kind, X86_OTHER);
	/* syscall; sysret (no kind: the CPU model runs it) */
	uint8_t sysc[] = {0x0f, 0x05}, sysr[] = {0x48, 0x0f, 0x07};
	cr_assert_eq(x86_decode(sysc, 2, 64, &in), 0);
	cr_assert(in.kind == X86_SYSCALL && in.len == 2);
	cr_assert_eq(x86_decode(sysr, 3, 64, &in), 0);
	cr_assert(in.kind == X86_OTHER && in.len == 3);
}

Test(x86dec, truncated_and_overlong)
{
	struct x86_insn in;
	uint8_t movabs[] = {0x48, 0xb8, 1, 2, 3};
	cr_assert_eq(x86_decode(movabs, sizeof(movabs), 64, &in), -1);
	uint8_t prefixes[16];
	memset(prefixes, 0x66, sizeof(prefixes));
	cr_assert_eq(x86_decode(prefixes, sizeof(prefixes), 64, &in), -1);
}

Test(x86dec, effective_addresses)
{
	uint64_t g[16] = {0};
	g[0] = 0x1000; /* rax */
	g[3] = 0x20;   /* rbx */
	g[9] = 0x300;  /* r9 */
	struct x86_insn in;
	uint64_t ea;
	uint8_t a[] = {0x48, 0x8b, 0x44, 0x58, 0x10}; /* mov rax, [rax+rbx*2+0x10] */
	x86_decode(a, sizeof(a), 64, &in);
	cr_assert_eq(x86_modrm_ea(a, &in, g, 0x5000, &ea), 0);
	cr_assert_eq(ea, 0x1000 + 0x40 + 0x10);
	uint8_t b[] = {0x49, 0x89, 0x01}; /* mov [r9], rax */
	x86_decode(b, sizeof(b), 64, &in);
	cr_assert_eq(x86_modrm_ea(b, &in, g, 0, &ea), 0);
	cr_assert_eq(ea, 0x300);
	uint8_t c[] = {0x48, 0x8b, 0x05, 0x10, 0, 0, 0}; /* mov rax, [rip+0x10] */
	x86_decode(c, sizeof(c), 64, &in);
	cr_assert_eq(x86_modrm_ea(c, &in, g, 0x7000, &ea), 0);
	cr_assert_eq(ea, 0x7010);
	uint8_t d[] = {0x89, 0xc8}; /* mov eax, ecx: no memory operand */
	x86_decode(d, sizeof(d), 64, &in);
	cr_assert_eq(x86_modrm_ea(d, &in, g, 0, &ea), -1);
}

/* Every instruction objdump decodes in the guests must have the same length here. */
Test(x86dec, agrees_with_objdump_on_the_guests, .timeout = 120)
{
	const char *b = getenv("REWIND_BUILD");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "objdump -d -w %s/guests/*.elf 2>/dev/null | awk -F'\\t' "
		 "'NF>=3 && $2 ~ /^[0-9a-f ]+$/ && $3 !~ /\\(bad\\)/ { gsub(/ /,\"\",$2); print $2 }'",
		 b ? b : "build");
	FILE *f = popen(cmd, "r");
	if (!f)
		cr_skip_test("cannot run objdump");
	char line[256];
	long n = 0, bad = 0;
	while (fgets(line, sizeof(line), f)) {
		uint8_t buf[32];
		size_t k = 0;
		memset(buf, 0x90, sizeof(buf));
		for (char *p = line; p[0] && p[1] && p[0] != '\n' && k < 16; p += 2) {
			unsigned v;
			sscanf(p, "%2x", &v);
			buf[k++] = (uint8_t)v;
		}
		struct x86_insn in;
		/* The guests' 32-bit entry code is decoded as 64-bit by objdump -d too. */
		if (x86_decode(buf, sizeof(buf), 64, &in) < 0 || in.len != k) {
			if (bad++ < 5)
				cr_log_error("length %zu by objdump, %d here: %s", k, in.len, line);
		}
		n++;
	}
	pclose(f);
	if (n == 0)
		cr_skip_test("objdump found no instructions (run make; is binutils installed?)");
	cr_assert_eq(bad, 0, "%ld of %ld instructions disagree", bad, n);
	cr_assert_gt(n, 1000);
}
