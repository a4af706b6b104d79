/*
 * digest.c: the architectural register digest both backends compute alike
 * (logfmt/FORMAT.md, "Landmarks"; docs/kvm-backend.md, "Portable logs").
 *
 * struct vmm_regs and struct vmm_fpregs hold more than a guest can see for itself: the
 * hidden parts of the segment descriptor caches (emu reads them from the GDT, kvm from
 * the vCPU) and the x87 last-instruction pointers differ between the backends for the
 * same guest state. This digest covers only what both fill identically, field by field
 * in a fixed little-endian layout, so it does not depend on a build's struct layout.
 */
#include <endian.h>
#include <string.h>
#include <xxhash.h>

#include "vmm/cpu.h"

/* The fields, in this order, as little-endian u64s, then the x87/SSE bytes. */
#define DIGEST_U64S 34

uint64_t vmm_arch_digest(const struct vmm_regs *r, const struct vmm_fpregs *f, int32_t injected,
			 uint8_t flags)
{
	const uint64_t v[DIGEST_U64S] = {
		r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp,
		r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
		r->rip, r->rflags,
		r->cs.sel, r->ds.sel, r->es.sel, r->fs.sel, r->gs.sel, r->ss.sel,
		r->cr0, r->cr2, r->cr3, r->cr4, r->efer,
		r->fs_base, r->gs_base, r->kernel_gs_base,
		(uint64_t)(uint32_t)injected, flags};
	uint8_t buf[DIGEST_U64S * 8 + 8 * 10 + 16 * 16 + 2 * 4];
	size_t o = 0;
	for (int i = 0; i < DIGEST_U64S; i++) {
		uint64_t le = htole64(v[i]);
		memcpy(buf + o, &le, 8);
		o += 8;
	}
	memcpy(buf + o, f->st, sizeof(f->st));
	o += sizeof(f->st);
	memcpy(buf + o, f->xmm, sizeof(f->xmm));
	o += sizeof(f->xmm);
	/*
	 * Not MXCSR: on this project's software-nested KVM host, KVM_GET_FPU reads 0 after a
	 * reset that set 0x1f80 (measured), where emu reports 0x1f80. XMM0-15 are in.
	 */
	const uint32_t w[2] = {htole32(f->fctrl), htole32(f->fstat)};
	memcpy(buf + o, w, sizeof(w));
	o += sizeof(w);
	return XXH3_64bits(buf, o);
}

uint64_t vmm_status_flags(uint64_t rflags, unsigned k)
{
	static const uint64_t bit[6] = {0x1, 0x4, 0x10, 0x40, 0x80, 0x800};
	rflags &= ~VMM_RFLAGS_STATUS;
	for (int i = 0; i < 6; i++)
		if (k & (1u << i))
			rflags |= bit[i];
	return rflags;
}

uint64_t vmm_gprs_digest(const uint64_t v[18])
{
	uint64_t le[18];
	for (int i = 0; i < 18; i++)
		le[i] = htole64(v[i]);
	return XXH3_64bits(le, sizeof(le));
}
