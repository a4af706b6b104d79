/*
 * kvm.c: the KVM vCPU backend (kvm_cpu_ops, docs/kvm-backend.md).
 *
 * Owns /dev/kvm, one VM with one vCPU, the vCPU's kvm_run area and the CPUID table the
 * guest sees. There is no in-kernel irqchip or PIT: every interrupt comes from the
 * machine's 8259 (vmm_intr_pending/vmm_intr_ack) and is injected with KVM_INTERRUPT, so
 * every interrupt source is ours to record. Guest RAM is the machine's, mapped straight
 * at guest-physical 0 in one memory slot (no PCI hole: there are no MMIO devices yet).
 *
 * Positions (docs/architecture.md) are counts of guest-initiated exits: one per port access
 * (each element of a string I/O batch counts), one per MMIO access, one per HLT and one
 * per interrupt window that opened. Every port/MMIO exit is completed at once (KVM_RUN
 * with immediate_exit) so that the vCPU state at every position is architecturally
 * consistent; interrupt injection is decided from that state alone, so stopping at a
 * position and going on gives the same future as not stopping. docs/kvm-backend.md has
 * the CPUID the guest sees and the rules for kick and injection.
 */
#include "vmm/cpu.h"
#include "vmm/cpuid.h"
#include "vmm/hostkvm.h"
#include "vmm/loader.h"
#include "vmm/machine.h"
#include "vmm/vmm.h"
#include "vmm/x86dec.h"
#include "vmm/x86deliver.h"

#if defined(__x86_64__)

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#define KVM_DEV "/dev/kvm"
#define KVM_API 12
/* Intel without unrestricted guest needs these two areas below 4 GiB (as QEMU places them). */
#define KVM_IDENT_ADDR 0xfffbc000u
#define KVM_TSS_ADDR 0xfffbd000u
#define KVM_KICK_SIGNAL SIGUSR1
#define KVM_PAGE 4096u

/* MSRs (Intel SDM vol. 4). */
#define RW_MSR_TSC 0x00000010u
#define RW_MSR_SYSENTER_CS 0x00000174u
#define RW_MSR_SYSENTER_ESP 0x00000175u
#define RW_MSR_SYSENTER_EIP 0x00000176u
#define RW_MSR_MISC_ENABLE 0x000001a0u
#define RW_MSR_PAT 0x00000277u
#define RW_MSR_STAR 0xc0000081u
#define RW_MSR_LSTAR 0xc0000082u
#define RW_MSR_CSTAR 0xc0000083u
#define RW_MSR_SFMASK 0xc0000084u
#define RW_MSR_KERNEL_GS_BASE 0xc0000102u
/* MTRRs: KVM gives 8 variable pairs (base 0x200+2n, mask 0x201+2n), 11 fixed, default. */
#define RW_MSR_MTRR_VAR0 0x00000200u
#define RW_MSR_MTRR_FIX64K 0x00000250u
#define RW_MSR_MTRR_FIX16K_80000 0x00000258u
#define RW_MSR_MTRR_FIX16K_A0000 0x00000259u
#define RW_MSR_MTRR_FIX4K_C0000 0x00000268u
#define RW_MSR_MTRR_DEF_TYPE 0x000002ffu

/* Control-register and EFER bits used by the page walker and reset. */
#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define RFLAGS_FIXED 0x2ull
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_RF (1ull << 16)
#define MSR_APICBASE_BSP (1ull << 8)
#define MSR_APICBASE_ENABLE (1ull << 11)

/*
 * The MSRs save/load carry besides what sregs holds (EFER, FS/GS base, APIC base). Not
 * every host has every one; create() keeps those KVM_GET_MSRS answers for, and the blob
 * records which, so a blob loads only where the same set exists. The MTRRs are here
 * because CPUID advertises MTRR (as qemu64 and emu do) and KVM keeps what a guest
 * writes to them: without them a restored checkpoint would read back later values.
 */
#define RW_MSR_MTRR_VAR(n) (RW_MSR_MTRR_VAR0 + (n))
static const uint32_t kvm_state_msrs[] = {
	RW_MSR_STAR,         RW_MSR_LSTAR,        RW_MSR_CSTAR,        RW_MSR_SFMASK,
	RW_MSR_KERNEL_GS_BASE, RW_MSR_SYSENTER_CS, RW_MSR_SYSENTER_ESP, RW_MSR_SYSENTER_EIP,
	RW_MSR_PAT,          RW_MSR_MISC_ENABLE,  RW_MSR_TSC,
	RW_MSR_MTRR_DEF_TYPE, RW_MSR_MTRR_FIX64K, RW_MSR_MTRR_FIX16K_80000,
	RW_MSR_MTRR_FIX16K_A0000, RW_MSR_MTRR_FIX4K_C0000, RW_MSR_MTRR_FIX4K_C0000 + 1,
	RW_MSR_MTRR_FIX4K_C0000 + 2, RW_MSR_MTRR_FIX4K_C0000 + 3, RW_MSR_MTRR_FIX4K_C0000 + 4,
	RW_MSR_MTRR_FIX4K_C0000 + 5, RW_MSR_MTRR_FIX4K_C0000 + 6, RW_MSR_MTRR_FIX4K_C0000 + 7,
	RW_MSR_MTRR_VAR(0),  RW_MSR_MTRR_VAR(1),  RW_MSR_MTRR_VAR(2),  RW_MSR_MTRR_VAR(3),
	RW_MSR_MTRR_VAR(4),  RW_MSR_MTRR_VAR(5),  RW_MSR_MTRR_VAR(6),  RW_MSR_MTRR_VAR(7),
	RW_MSR_MTRR_VAR(8),  RW_MSR_MTRR_VAR(9),  RW_MSR_MTRR_VAR(10), RW_MSR_MTRR_VAR(11),
	RW_MSR_MTRR_VAR(12), RW_MSR_MTRR_VAR(13), RW_MSR_MTRR_VAR(14), RW_MSR_MTRR_VAR(15),
};
#define KVM_NMSRS (sizeof(kvm_state_msrs) / sizeof(kvm_state_msrs[0]))

/*
 * Can an interrupt be injected before the next instruction? Known from the kvm_run
 * fields after every KVM_RUN; after we inject one it is "no" until the next KVM_RUN;
 * after registers or state were set from outside, it is read back from the vCPU.
 */
enum kvm_ready_src { KVM_READY_ASK, KVM_READY_RUN, KVM_READY_NO };

struct vmm_cpu {
	struct vmm_machine *m;
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *ram;
	uint64_t ram_size;
	bool has_xsave;
	bool has_tsc_offset; /* KVM_VCPU_TSC_OFFSET can be set (Linux 5.16 and later) */
	uint32_t msrs[KVM_NMSRS]; /* the subset of kvm_state_msrs this host has */
	uint32_t nmsrs;
	enum kvm_ready_src ready_src;

	/*
	 * Landmarks: exact is true while the position alone names the vCPU's point (right
	 * at an exit, or at a landmark already taken or found); it turns false when the
	 * guest may have run (KVM_RUN entered without an exit to count) or an interrupt was
	 * injected. dirty accumulates the pages KVM's dirty log saw written since the last
	 * landmark (one bit a page); dirty_tmp receives each KVM_GET_DIRTY_LOG.
	 */
	bool exact;
	bool arch_digest; /* landmarks' regs is vmm_arch_digest (VMM_PORT_DIGEST) */
	uint64_t *dirty, *dirty_tmp;
	size_t dirty_words;
	/*
	 * Interrupt windows. want_window: an interrupt is pending that the guest cannot take
	 * yet. Hardware KVM reports the window exactly (request_interrupt_window); software
	 * KVM (PVM) may report it a few instructions late, which moves the interrupt, so
	 * there (step_windows) the guest is single-stepped until it can take it (stepping:
	 * KVM_GUESTDBG_SINGLESTEP is on now).
	 */
	bool want_window, step_windows, stepping;

	_Atomic uint64_t pos;  /* guest-initiated exits since reset_pvh */
	atomic_bool kicked;    /* kick() asked for a stop */
	atomic_bool in_run;    /* the vCPU thread is inside run(); thread is valid */
	pthread_t thread;      /* written by run() before in_run is set */
	bool thread_known;     /* thread holds a thread that has unblocked the signal */
};

/* ---- small helpers -------------------------------------------------------------- */

static int kvm_ioerr(const char *what)
{
	return vmm_fail(VMM_EBACKEND, "%s: %s", what, strerror(errno));
}

/* The general and the segment/system registers, in one call for the many who need both. */
static int kvm_get_both(struct vmm_cpu *cpu, struct kvm_regs *r, struct kvm_sregs *s)
{
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, r) < 0)
		return kvm_ioerr("KVM_GET_REGS");
	if (ioctl(cpu->vcpu_fd, KVM_GET_SREGS, s) < 0)
		return kvm_ioerr("KVM_GET_SREGS");
	return 0;
}

/*
 * After KVM_EXIT_SHUTDOWN: did KVM reset the vCPU? On AMD it does so before it reports the
 * shutdown (the VMCB is undefined after one), so the registers at the fault are gone and
 * the vCPU sits at the reset vector, in real mode at CS base 0xffff0000, RIP 0xfff0: a
 * state a PVH guest never runs in. Intel's KVM leaves the registers as they were.
 */
static int kvm_shutdown_reset(struct vmm_cpu *cpu, bool *reset)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	int err = kvm_get_both(cpu, &r, &s);
	if (err)
		return err;
	*reset = !(s.cr0 & 1) && s.cs.base == 0xffff0000ull && r.rip == 0xfff0;
	return 0;
}

static void kvm_pos_inc(struct vmm_cpu *cpu)
{
	/* Only the vCPU thread writes pos; other threads may read it. */
	uint64_t p = atomic_load_explicit(&cpu->pos, memory_order_relaxed);
	atomic_store_explicit(&cpu->pos, p + 1, memory_order_relaxed);
}

static void kvm_set_immediate_exit(struct vmm_cpu *cpu, uint8_t v)
{
	__atomic_store_n(&cpu->run->immediate_exit, v, __ATOMIC_SEQ_CST);
}

/* Clear immediate_exit without losing a kick that raced with us. */
static void kvm_clear_immediate_exit(struct vmm_cpu *cpu)
{
	kvm_set_immediate_exit(cpu, 0);
	if (atomic_load(&cpu->kicked))
		kvm_set_immediate_exit(cpu, 1);
}

/* ---- dirty log (for landmarks) ----------------------------------------------------- */

/* OR the pages KVM saw written since its last report into cpu->dirty (and clear KVM's). */
static int kvm_dirty_collect(struct vmm_cpu *cpu)
{
	struct kvm_dirty_log dl = {.slot = 0, .dirty_bitmap = cpu->dirty_tmp};
	if (ioctl(cpu->vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0)
		return kvm_ioerr("KVM_GET_DIRTY_LOG");
	for (size_t i = 0; i < cpu->dirty_words; i++)
		cpu->dirty[i] |= cpu->dirty_tmp[i];
	return 0;
}

/* Start a new landmark interval: nothing written yet, and the point is exact. */
static int kvm_dirty_reset(struct vmm_cpu *cpu)
{
	int err = kvm_dirty_collect(cpu);
	memset(cpu->dirty, 0, cpu->dirty_words * sizeof(uint64_t));
	cpu->exact = true;
	return err;
}

/* ---- probe ------------------------------------------------------------------------ */

struct kvm_cap_need {
	int cap;
	const char *name;
};

static const struct kvm_cap_need kvm_caps_needed[] = {
	{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	{KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
	{KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
	{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

/* Open /dev/kvm and check the API version and capabilities; *fd on success. */
static int kvm_open_checked(int *out)
{
	int fd = open(KVM_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENODEV || e == ENXIO)
			return vmm_fail(VMM_ENOKVM,
					KVM_DEV ": %s: this host has no KVM (no kvm module, "
					"no hardware virtualisation, or not passed into this "
					"container); use --backend emu",
					strerror(e));
		if (e == EACCES || e == EPERM)
			return vmm_fail(VMM_ENOKVM,
					KVM_DEV ": %s: add your user to the 'kvm' group "
					"(sudo usermod -aG kvm $USER, then log in again) or "
					"use --backend emu",
					strerror(e));
		return vmm_fail(VMM_ENOKVM, KVM_DEV ": %s; use --backend emu", strerror(e));
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API) {
		int e = errno;
		close(fd);
		if (api < 0)
			return vmm_fail(VMM_ENOKVM, KVM_DEV ": KVM_GET_API_VERSION: %s; use "
					"--backend emu", strerror(e));
		return vmm_fail(VMM_ENOKVM,
				KVM_DEV ": KVM API version %d, rewind needs %d; use --backend emu",
				api, KVM_API);
	}
	char missing[256] = "";
	size_t used = 0;
	for (size_t i = 0; i < sizeof(kvm_caps_needed) / sizeof(kvm_caps_needed[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, kvm_caps_needed[i].cap) > 0)
			continue;
		int n = snprintf(missing + used, sizeof(missing) - used, "%s%s",
				 used ? ", " : "", kvm_caps_needed[i].name);
		if (n > 0 && (size_t)n < sizeof(missing) - used)
			used += (size_t)n;
	}
	if (used) {
		close(fd);
		return vmm_fail(VMM_ENOKVM,
				KVM_DEV ": this kernel's KVM lacks %s (rewind needs Linux 4.11 "
				"or later); use --backend emu",
				missing);
	}
	*out = fd;
	return 0;
}

static int kvm_probe(void)
{
	int fd;
	int err = kvm_open_checked(&fd);
	if (err)
		return err;
	close(fd);
	return 0;
}

/* ---- CPUID --------------------------------------------------------------------- */

/* The host CPU's own CPUID, as this process sees it. */
static void kvm_host_cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

/*
 * The guest sees vmm/cpuid.c's table, as on emu, whatever the host is. The host's CPU
 * runs the guest's code, so every feature flag the table advertises must be one this
 * host's KVM supports, or an instruction-set extension the host CPU itself has (see
 * vmm_cpuid_isa_mask): a host that lacks one is refused with its name, rather than a
 * guest that faults on an instruction it was told exists.
 */
static int kvm_setup_cpuid(struct vmm_cpu *cpu)
{
	struct kvm_cpuid2 *c = NULL;
	int err = 0;
	for (uint32_t n = 64;; n *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return vmm_fail(VMM_ENOMEM, "CPUID table: out of memory");
		c->nent = n;
		if (ioctl(cpu->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		if (errno != E2BIG || n >= 4096) {
			err = kvm_ioerr("KVM_GET_SUPPORTED_CPUID");
			goto out;
		}
	}
	for (size_t f = 0; f < vmm_cpuid_nflag_regs; f++) {
		uint32_t fn = vmm_cpuid_flag_regs[f].fn;
		int reg = vmm_cpuid_flag_regs[f].reg;
		uint32_t have = 0;
		for (uint32_t i = 0; i < c->nent; i++) {
			const struct kvm_cpuid_entry2 *e = &c->entries[i];
			if (e->function == fn && e->index == 0)
				have = reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
		}
		uint32_t host[4];
		kvm_host_cpuid(fn & 0x80000000u, host);
		if (host[0] >= fn) {
			kvm_host_cpuid(fn, host);
			have |= host[reg] & vmm_cpuid_isa_mask(fn, reg);
		}
		const char *lack = vmm_cpuid_missing(fn, reg, have);
		if (lack) {
			err = vmm_fail(VMM_ENOKVM,
				       "this host's KVM does not support the CPU feature %s, which "
				       "rewind's fixed CPU advertises; use --backend emu",
				       lack);
			goto out;
		}
	}
	if (vmm_cpuid_nleaves > c->nent) {
		err = vmm_fail(VMM_EINTERNAL, "CPUID table: %zu leaves, room for %u",
			       vmm_cpuid_nleaves, (unsigned)c->nent);
		goto out;
	}
	memset(c->entries, 0, c->nent * sizeof(c->entries[0]));
	for (size_t i = 0; i < vmm_cpuid_nleaves; i++) {
		const struct vmm_cpuid_leaf *l = &vmm_cpuid_leaves[i];
		c->entries[i] = (struct kvm_cpuid_entry2){.function = l->fn, .index = l->index,
							  .eax = l->eax, .ebx = l->ebx,
							  .ecx = l->ecx, .edx = l->edx};
	}
	c->nent = (uint32_t)vmm_cpuid_nleaves;
	if (ioctl(cpu->vcpu_fd, KVM_SET_CPUID2, c) < 0)
		err = kvm_ioerr("KVM_SET_CPUID2");
out:
	free(c);
	return err;
}

/* ---- MSR helpers ---------------------------------------------------------------- */

/* struct kvm_msrs with room for our entries (same layout, no flexible member). */
struct kvm_msr_buf {
	uint32_t nmsrs, pad;
	struct kvm_msr_entry e[KVM_NMSRS];
};
_Static_assert(offsetof(struct kvm_msr_buf, e) == offsetof(struct kvm_msrs, entries),
	       "kvm_msr_buf must match struct kvm_msrs");

static int kvm_get_msrs(struct vmm_cpu *cpu, struct kvm_msr_buf *b, uint32_t n)
{
	b->nmsrs = n;
	b->pad = 0;
	int r = ioctl(cpu->vcpu_fd, KVM_GET_MSRS, b);
	if (r < 0)
		return kvm_ioerr("KVM_GET_MSRS");
	if ((uint32_t)r != n)
		return vmm_fail(VMM_EBACKEND, "KVM_GET_MSRS: MSR 0x%x not readable",
				b->e[r].index);
	return 0;
}

static int kvm_set_msrs(struct vmm_cpu *cpu, struct kvm_msr_buf *b, uint32_t n)
{
	b->nmsrs = n;
	b->pad = 0;
	int r = ioctl(cpu->vcpu_fd, KVM_SET_MSRS, b);
	if (r < 0)
		return kvm_ioerr("KVM_SET_MSRS");
	if ((uint32_t)r != n)
		return vmm_fail(VMM_EBACKEND, "KVM_SET_MSRS: MSR 0x%x refused value 0x%llx",
				b->e[r].index, (unsigned long long)b->e[r].data);
	return 0;
}

/* Keep those of kvm_state_msrs this host's KVM can read. */
static void kvm_find_msrs(struct vmm_cpu *cpu)
{
	cpu->nmsrs = 0;
	for (size_t i = 0; i < KVM_NMSRS; i++) {
		struct kvm_msr_buf b;
		memset(&b, 0, sizeof(b));
		b.nmsrs = 1;
		b.e[0].index = kvm_state_msrs[i];
		if (ioctl(cpu->vcpu_fd, KVM_GET_MSRS, &b) == 1)
			cpu->msrs[cpu->nmsrs++] = kvm_state_msrs[i];
	}
}

/*
 * Set the MSRs in b (as kvm_set_msrs) where the TSC, if among them, gets exactly its
 * value. A host write of IA32_TSC goes through KVM's TSC "synchronisation": a write of 0,
 * or (before Linux 6.8, and after the first write since) of a value within a second of
 * what KVM expects, keeps the current offset instead, so a reset would not start at 0 and
 * a recent checkpoint would not rewind the TSC. Where the vCPU has the TSC offset
 * attribute, the TSC is set through it instead (guest TSC = host TSC + offset; we never
 * change the guest's TSC frequency, so there is no scaling).
 */
static int kvm_set_msrs_tsc(struct vmm_cpu *cpu, struct kvm_msr_buf *b, uint32_t n)
{
	uint64_t tsc = 0;
	bool has_tsc = false;
	if (cpu->has_tsc_offset) {
		for (uint32_t i = 0; i < n; i++) {
			if (b->e[i].index != RW_MSR_TSC)
				continue;
			tsc = b->e[i].data;
			has_tsc = true;
			b->e[i] = b->e[--n]; /* the order of the others does not matter */
			break;
		}
	}
	int err = kvm_set_msrs(cpu, b, n);
	if (err || !has_tsc)
		return err;
#ifdef KVM_VCPU_TSC_CTRL
	uint64_t offset = tsc - (uint64_t)__builtin_ia32_rdtsc();
	struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL,
				    .attr = KVM_VCPU_TSC_OFFSET,
				    .addr = (uint64_t)(uintptr_t)&offset};
	if (ioctl(cpu->vcpu_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return kvm_ioerr("KVM_SET_DEVICE_ATTR(KVM_VCPU_TSC_OFFSET)");
#endif
	return 0;
}

/* ---- signals and kick ---------------------------------------------------------- */

static void kvm_kick_handler(int sig)
{
	(void)sig; /* its only job is to make KVM_RUN return EINTR */
}

static pthread_once_t kvm_sig_once = PTHREAD_ONCE_INIT;
static int kvm_sig_errno;

static void kvm_sig_install(void)
{
	struct sigaction old;
	if (sigaction(KVM_KICK_SIGNAL, NULL, &old) < 0) {
		kvm_sig_errno = errno;
		return;
	}
	/* A handler someone else installed interrupts KVM_RUN just as well. */
	if (!(old.sa_flags & SA_SIGINFO) &&
	    (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = kvm_kick_handler;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0; /* no SA_RESTART */
		if (sigaction(KVM_KICK_SIGNAL, &sa, NULL) < 0)
			kvm_sig_errno = errno;
	}
}

static void kvm_kick(struct vmm_cpu *cpu)
{
	/* Async-signal-safe: atomics, a store into kvm_run, pthread_kill. */
	atomic_store(&cpu->kicked, true);
	kvm_set_immediate_exit(cpu, 1);
	if (atomic_load(&cpu->in_run)) {
		pthread_t t = cpu->thread;
		if (!pthread_equal(t, pthread_self()))
			pthread_kill(t, KVM_KICK_SIGNAL);
	}
}

/* ---- create / destroy ------------------------------------------------------------ */

static void kvm_destroy(struct vmm_cpu *cpu)
{
	if (!cpu)
		return;
	if (cpu->run)
		munmap(cpu->run, cpu->run_size);
	if (cpu->vcpu_fd >= 0)
		close(cpu->vcpu_fd);
	if (cpu->vm_fd >= 0)
		close(cpu->vm_fd);
	if (cpu->kvm_fd >= 0)
		close(cpu->kvm_fd);
	free(cpu->dirty);
	free(cpu->dirty_tmp);
	free(cpu);
}

static int kvm_create(struct vmm_machine *m, struct vmm_cpu **out)
{
	*out = NULL;
	pthread_once(&kvm_sig_once, kvm_sig_install);
	if (kvm_sig_errno)
		return vmm_fail(VMM_EBACKEND, "sigaction(SIGUSR1): %s", strerror(kvm_sig_errno));

	struct vmm_cpu *cpu = calloc(1, sizeof(*cpu));
	if (!cpu)
		return vmm_fail(VMM_ENOMEM, "KVM vCPU: out of memory");
	cpu->m = m;
	cpu->kvm_fd = cpu->vm_fd = cpu->vcpu_fd = -1;
	cpu->ram = vmm_machine_ram(m);
	cpu->ram_size = vmm_machine_ram_size(m);
	cpu->ready_src = KVM_READY_ASK;
	atomic_init(&cpu->pos, 0);
	atomic_init(&cpu->kicked, false);
	atomic_init(&cpu->in_run, false);

	int err;
	if ((uintptr_t)cpu->ram % KVM_PAGE || cpu->ram_size % KVM_PAGE || !cpu->ram_size) {
		err = vmm_fail(VMM_EINVAL,
			       "KVM needs page-aligned guest RAM (host 0x%llx, %llu bytes)",
			       (unsigned long long)(uintptr_t)cpu->ram,
			       (unsigned long long)cpu->ram_size);
		goto fail;
	}
	err = kvm_open_checked(&cpu->kvm_fd);
	if (err)
		goto fail;

	cpu->vm_fd = ioctl(cpu->kvm_fd, KVM_CREATE_VM, 0);
	if (cpu->vm_fd < 0) {
		err = kvm_ioerr("KVM_CREATE_VM");
		goto fail;
	}
	/* No KVM_CREATE_IRQCHIP, no KVM_CREATE_PIT2: the 8259/8254/RTC are the machine's. */

	if (ioctl(cpu->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		uint64_t ident = KVM_IDENT_ADDR;
		if (ioctl(cpu->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) {
			err = kvm_ioerr("KVM_SET_IDENTITY_MAP_ADDR");
			goto fail;
		}
	}
	/* The dirty log gives the pages each landmark hashes (see "landmarks" below). */
	cpu->dirty_words = (cpu->ram_size / KVM_PAGE + 63) / 64;
	cpu->dirty = calloc(cpu->dirty_words, sizeof(uint64_t));
	cpu->dirty_tmp = calloc(cpu->dirty_words, sizeof(uint64_t));
	if (!cpu->dirty || !cpu->dirty_tmp) {
		err = vmm_fail(VMM_ENOMEM, "KVM dirty log: out of memory");
		goto fail;
	}
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0,
		.memory_size = cpu->ram_size,
		.userspace_addr = (uint64_t)(uintptr_t)cpu->ram,
	};
	if (ioctl(cpu->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		err = kvm_ioerr("KVM_SET_USER_MEMORY_REGION");
		goto fail;
	}
	/* Only Intel hosts without unrestricted guest use it; they refuse RAM over it. */
	if (ioctl(cpu->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
		if (errno == EEXIST) /* its private memory slot collides with RAM */
			err = vmm_fail(VMM_EBACKEND,
				       "KVM_SET_TSS_ADDR: %s (this host needs 0x%x-0x%x free of "
				       "RAM: use --mem of at most 0x%x bytes)",
				       strerror(errno), KVM_IDENT_ADDR, KVM_TSS_ADDR + 3 * KVM_PAGE,
				       KVM_IDENT_ADDR);
		else
			err = kvm_ioerr("KVM_SET_TSS_ADDR");
		goto fail;
	}

	cpu->vcpu_fd = ioctl(cpu->vm_fd, KVM_CREATE_VCPU, 0);
	if (cpu->vcpu_fd < 0) {
		if (errno == EEXIST) /* the identity-map page collides with RAM */
			err = vmm_fail(VMM_EBACKEND,
				       "KVM_CREATE_VCPU: %s (this host needs 0x%x-0x%x free "
				       "of RAM: use --mem of at most 0x%x bytes)",
				       strerror(errno), KVM_IDENT_ADDR,
				       KVM_TSS_ADDR + 3 * KVM_PAGE, KVM_IDENT_ADDR);
		else
			err = kvm_ioerr("KVM_CREATE_VCPU");
		goto fail;
	}
	int sz = ioctl(cpu->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		err = sz < 0 ? kvm_ioerr("KVM_GET_VCPU_MMAP_SIZE")
			     : vmm_fail(VMM_EBACKEND, "KVM_GET_VCPU_MMAP_SIZE: %d is too small",
					sz);
		goto fail;
	}
	void *run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu->vcpu_fd, 0);
	if (run == MAP_FAILED) {
		err = kvm_ioerr("mmap(kvm_run)");
		goto fail;
	}
	cpu->run = run;
	cpu->run_size = (size_t)sz;

	err = kvm_setup_cpuid(cpu);
	if (err)
		goto fail;
	/* With the PV leaves hidden, also refuse the PV MSRs (kvmclock) to a guest that tries. */
	if (ioctl(cpu->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ENFORCE_PV_FEATURE_CPUID) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_ENFORCE_PV_FEATURE_CPUID, .args = {1}};
		if (ioctl(cpu->vcpu_fd, KVM_ENABLE_CAP, &cap) < 0) {
			err = kvm_ioerr("KVM_ENABLE_CAP(ENFORCE_PV_FEATURE_CPUID)");
			goto fail;
		}
	}
	cpu->has_xsave = ioctl(cpu->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	cpu->step_windows = vmm_hostkvm_detect().kind == VMM_HOSTKVM_SOFTWARE;
	kvm_find_msrs(cpu);
#ifdef KVM_VCPU_TSC_CTRL
	struct kvm_device_attr tsc_attr = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET};
	cpu->has_tsc_offset =
		ioctl(cpu->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VCPU_ATTRIBUTES) > 0 &&
		ioctl(cpu->vcpu_fd, KVM_HAS_DEVICE_ATTR, &tsc_attr) == 0;
#endif

	*out = cpu;
	return 0;
fail:
	kvm_destroy(cpu);
	return err;
}

/* ---- segments and registers ------------------------------------------------------ */

static uint32_t kvm_seg_attr(const struct kvm_segment *s)
{
	return (uint32_t)(s->type & 0xf) | (uint32_t)(s->s & 1) << 4 |
	       (uint32_t)(s->dpl & 3) << 5 | (uint32_t)(s->present & 1) << 7 |
	       (uint32_t)(s->avl & 1) << 12 | (uint32_t)(s->l & 1) << 13 |
	       (uint32_t)(s->db & 1) << 14 | (uint32_t)(s->g & 1) << 15 |
	       (uint32_t)(s->unusable & 1) << 16;
}

static void kvm_seg_to_vmm(const struct kvm_segment *k, struct vmm_seg *v)
{
	v->sel = k->selector;
	v->base = k->base;
	v->limit = k->limit;
	v->attr = kvm_seg_attr(k);
}

static void kvm_seg_from_vmm(const struct vmm_seg *v, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->selector = v->sel;
	k->base = v->base;
	k->limit = v->limit;
	k->type = v->attr & 0xf;
	k->s = (v->attr >> 4) & 1;
	k->dpl = (v->attr >> 5) & 3;
	k->present = (v->attr >> 7) & 1;
	k->avl = (v->attr >> 12) & 1;
	k->l = (v->attr >> 13) & 1;
	k->db = (v->attr >> 14) & 1;
	k->g = (v->attr >> 15) & 1;
	k->unusable = (v->attr >> 16) & 1;
}

static struct kvm_segment kvm_flat(uint16_t sel, uint8_t type)
{
	struct kvm_segment s = {
		.base = 0, .limit = 0xffffffffu, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	return s;
}

/* KVM reloads CR8 from kvm_run at every KVM_RUN without an in-kernel LAPIC. */
static int kvm_put_sregs(struct vmm_cpu *cpu, const struct kvm_sregs *s)
{
	if (ioctl(cpu->vcpu_fd, KVM_SET_SREGS, s) < 0)
		return kvm_ioerr("KVM_SET_SREGS");
	cpu->run->cr8 = s->cr8;
	return 0;
}

/*
 * The PVH entry state (docs/architecture.md) in sregs, over whatever KVM_GET_SREGS gave:
 * 32-bit protected mode, paging off, flat CS/DS/ES/FS/GS/SS, a busy 32-bit TSS in TR
 * and an unusable LDTR, which is what VMX's guest-state checks demand.
 *
 * apic_base becomes "BSP, disabled". KVM enables the APIC base at vCPU reset even
 * without an in-kernel LAPIC, and it recomputes CPUID.1:EDX.APIC from that enable bit
 * at run time (kvm_update_cpuid_runtime), so left alone it would put the APIC flag back
 * into the CPUID our filter cleared.
 */
static void kvm_pvh_sregs(struct kvm_sregs *s)
{
	s->cs = kvm_flat(0x8, 0xb);
	s->ds = s->es = s->fs = s->gs = s->ss = kvm_flat(0x10, 0x3);
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.selector = 0x18;
	s->tr.limit = 0x67;
	s->tr.type = 0xb; /* busy 32-bit TSS, as VM entry demands */
	s->tr.present = 1;
	memset(&s->ldt, 0, sizeof(s->ldt));
	s->ldt.type = 0x2;
	s->ldt.unusable = 1;
	memset(&s->gdt, 0, sizeof(s->gdt));
	memset(&s->idt, 0, sizeof(s->idt));
	s->gdt.base = VMM_VMM_AREA; /* kvm_reset_pvh writes the GDT there, as emu does */
	s->gdt.limit = VMM_PVH_GDT_LIMIT;
	s->cr0 = CR0_PE | CR0_ET;
	s->cr2 = s->cr3 = s->cr4 = s->cr8 = 0;
	s->efer = 0;
	s->apic_base = MSR_APICBASE_BSP;
	memset(s->interrupt_bitmap, 0, sizeof(s->interrupt_bitmap));
}

static int kvm_reset_pvh(struct vmm_cpu *cpu, uint32_t entry, uint32_t start_info)
{
	/* The entry GDT, the same as emu's (vmm/loader.h): both backends start alike. */
	static const uint64_t gdt[3] = {0, VMM_PVH_GDT_CODE32, VMM_PVH_GDT_DATA32};
	if (cpu->ram_size < VMM_VMM_AREA + sizeof(gdt))
		return vmm_fail(VMM_EINTERNAL, "VMM area outside RAM");
	memcpy(cpu->ram + VMM_VMM_AREA, gdt, sizeof(gdt));
	struct kvm_sregs s;
	cpu->ready_src = KVM_READY_ASK;
	if (ioctl(cpu->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return kvm_ioerr("KVM_GET_SREGS");
	kvm_pvh_sregs(&s);
	int err = kvm_put_sregs(cpu, &s);
	if (err)
		return err;

	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = entry;
	r.rbx = start_info;
	r.rflags = RFLAGS_FIXED;
	if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &r) < 0)
		return kvm_ioerr("KVM_SET_REGS");

	struct kvm_fpu f;
	memset(&f, 0, sizeof(f));
	f.fcw = 0x37f;
	f.mxcsr = 0x1f80;
	if (ioctl(cpu->vcpu_fd, KVM_SET_FPU, &f) < 0)
		return kvm_ioerr("KVM_SET_FPU");

	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(cpu->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return kvm_ioerr("KVM_SET_VCPU_EVENTS");

	struct kvm_debugregs d;
	memset(&d, 0, sizeof(d));
	d.dr6 = 0xffff0ff0;
	d.dr7 = 0x400;
	if (ioctl(cpu->vcpu_fd, KVM_SET_DEBUGREGS, &d) < 0)
		return kvm_ioerr("KVM_SET_DEBUGREGS");

	struct kvm_msr_buf b;
	memset(&b, 0, sizeof(b));
	uint32_t n = 0;
	for (uint32_t i = 0; i < cpu->nmsrs; i++) {
		if (cpu->msrs[i] == RW_MSR_MISC_ENABLE)
			continue; /* KVM's reset value stands */
		b.e[n].index = cpu->msrs[i];
		b.e[n].data = cpu->msrs[i] == RW_MSR_PAT ? 0x0007040600070406ull : 0;
		n++;
	}
	err = kvm_set_msrs_tsc(cpu, &b, n);
	if (err)
		return err;

	atomic_store(&cpu->pos, 0);
	return kvm_dirty_reset(cpu);
}

static int kvm_get_regs(struct vmm_cpu *cpu, struct vmm_regs *out)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	int gerr = kvm_get_both(cpu, &r, &s);
	if (gerr)
		return gerr;
	struct kvm_msr_buf b;
	memset(&b, 0, sizeof(b));
	b.e[0].index = RW_MSR_KERNEL_GS_BASE;
	int err = kvm_get_msrs(cpu, &b, 1);
	if (err)
		return err;

	memset(out, 0, sizeof(*out));
	out->rax = r.rax, out->rbx = r.rbx, out->rcx = r.rcx, out->rdx = r.rdx;
	out->rsi = r.rsi, out->rdi = r.rdi, out->rbp = r.rbp, out->rsp = r.rsp;
	out->r8 = r.r8, out->r9 = r.r9, out->r10 = r.r10, out->r11 = r.r11;
	out->r12 = r.r12, out->r13 = r.r13, out->r14 = r.r14, out->r15 = r.r15;
	out->rip = r.rip, out->rflags = r.rflags;
	kvm_seg_to_vmm(&s.cs, &out->cs);
	kvm_seg_to_vmm(&s.ds, &out->ds);
	kvm_seg_to_vmm(&s.es, &out->es);
	kvm_seg_to_vmm(&s.fs, &out->fs);
	kvm_seg_to_vmm(&s.gs, &out->gs);
	kvm_seg_to_vmm(&s.ss, &out->ss);
	kvm_seg_to_vmm(&s.tr, &out->tr);
	kvm_seg_to_vmm(&s.ldt, &out->ldt);
	out->gdt.base = s.gdt.base, out->gdt.limit = s.gdt.limit;
	out->idt.base = s.idt.base, out->idt.limit = s.idt.limit;
	out->cr0 = s.cr0, out->cr2 = s.cr2, out->cr3 = s.cr3, out->cr4 = s.cr4;
	out->cr8 = s.cr8, out->efer = s.efer;
	out->fs_base = s.fs.base;
	out->gs_base = s.gs.base;
	out->kernel_gs_base = b.e[0].data;
	return 0;
}

static int kvm_get_fpregs(struct vmm_cpu *cpu, struct vmm_fpregs *f)
{
	struct kvm_fpu fpu;
	if (ioctl(cpu->vcpu_fd, KVM_GET_FPU, &fpu) < 0)
		return kvm_ioerr("KVM_GET_FPU");
	memset(f, 0, sizeof(*f));
	/* KVM's fpr[] is already in stack order (as FXSAVE stores it). */
	for (int i = 0; i < 8; i++)
		memcpy(f->st[i], fpu.fpr[i], 10);
	f->fctrl = fpu.fcw;
	f->fstat = fpu.fsw;
	/* FXSAVE's abridged tag (1 bit per register, 1 = valid) to the full tag word
	 * gdb shows: empty (3) or valid (0); special values are not told apart here. */
	uint32_t tag = 0;
	for (int i = 0; i < 8; i++)
		if (!(fpu.ftwx & (1u << i)))
			tag |= 3u << (2 * i);
	f->ftag = tag;
	f->fop = fpu.last_opcode;
	f->fioff = (uint32_t)fpu.last_ip;
	f->fooff = (uint32_t)fpu.last_dp;
	memcpy(f->xmm, fpu.xmm, sizeof(f->xmm));
	f->mxcsr = fpu.mxcsr;
	return 0;
}

/* fs_base/gs_base win over fs.base/gs.base: they are the same register. */
static int kvm_set_regs(struct vmm_cpu *cpu, const struct vmm_regs *in)
{
	struct kvm_sregs s;
	cpu->ready_src = KVM_READY_ASK;
	if (ioctl(cpu->vcpu_fd, KVM_GET_SREGS, &s) < 0) /* apic_base, pending interrupt */
		return kvm_ioerr("KVM_GET_SREGS");
	kvm_seg_from_vmm(&in->cs, &s.cs);
	kvm_seg_from_vmm(&in->ds, &s.ds);
	kvm_seg_from_vmm(&in->es, &s.es);
	kvm_seg_from_vmm(&in->fs, &s.fs);
	kvm_seg_from_vmm(&in->gs, &s.gs);
	kvm_seg_from_vmm(&in->ss, &s.ss);
	kvm_seg_from_vmm(&in->tr, &s.tr);
	kvm_seg_from_vmm(&in->ldt, &s.ldt);
	s.fs.base = in->fs_base;
	s.gs.base = in->gs_base;
	s.gdt.base = in->gdt.base, s.gdt.limit = in->gdt.limit;
	s.idt.base = in->idt.base, s.idt.limit = in->idt.limit;
	s.cr0 = in->cr0, s.cr2 = in->cr2, s.cr3 = in->cr3, s.cr4 = in->cr4;
	s.cr8 = in->cr8, s.efer = in->efer;
	int err = kvm_put_sregs(cpu, &s);
	if (err)
		return err;

	struct kvm_regs r = {
		.rax = in->rax, .rbx = in->rbx, .rcx = in->rcx, .rdx = in->rdx,
		.rsi = in->rsi, .rdi = in->rdi, .rbp = in->rbp, .rsp = in->rsp,
		.r8 = in->r8, .r9 = in->r9, .r10 = in->r10, .r11 = in->r11,
		.r12 = in->r12, .r13 = in->r13, .r14 = in->r14, .r15 = in->r15,
		.rip = in->rip, .rflags = in->rflags,
	};
	if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &r) < 0)
		return kvm_ioerr("KVM_SET_REGS");

	struct kvm_msr_buf b;
	memset(&b, 0, sizeof(b));
	b.e[0].index = RW_MSR_KERNEL_GS_BASE;
	b.e[0].data = in->kernel_gs_base;
	return kvm_set_msrs(cpu, &b, 1);
}

/* ---- interrupts ----------------------------------------------------------------- */

/*
 * The test KVM makes for ready_for_interrupt_injection without an in-kernel LAPIC:
 * IF set, no STI/MOV-SS shadow, and no event (interrupt, NMI, exception) already on its
 * way in, since VM entry may carry only one and refuses an external interrupt otherwise.
 */
static bool kvm_ready_from(uint64_t rflags, const struct kvm_vcpu_events *ev)
{
	return (rflags & RFLAGS_IF) && !ev->interrupt.shadow && !ev->interrupt.injected &&
	       !ev->nmi.injected && !ev->exception.injected && !ev->exception.pending;
}

/* Could an external interrupt be taken before the next guest instruction? */
static int kvm_ready(struct vmm_cpu *cpu, bool *ready)
{
	switch (cpu->ready_src) {
	case KVM_READY_RUN:
		*ready = cpu->run->ready_for_interrupt_injection && cpu->run->if_flag;
		return 0;
	case KVM_READY_NO:
		*ready = false;
		return 0;
	case KVM_READY_ASK:
		break;
	}
	struct kvm_regs r;
	struct kvm_vcpu_events ev;
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, &r) < 0)
		return kvm_ioerr("KVM_GET_REGS");
	if (ioctl(cpu->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return kvm_ioerr("KVM_GET_VCPU_EVENTS");
	*ready = kvm_ready_from(r.rflags, &ev);
	return 0;
}

/*
 * Before every KVM_RUN and before run() returns with BUDGET or KICK: if the 8259 has an
 * interrupt and the guest can take it, acknowledge and inject it; otherwise ask KVM to
 * exit when the guest can. It depends only on vCPU and machine state, and is idempotent
 * at one position, so a stop at a position does not change what follows.
 */
static int kvm_prepare(struct vmm_cpu *cpu)
{
	bool pending = vmm_intr_pending(cpu->m);
	if (pending) {
		bool ready;
		int err = kvm_ready(cpu, &ready);
		if (err)
			return err;
		if (ready) {
			struct kvm_interrupt irq = {.irq = vmm_intr_ack(cpu->m)};
			if (ioctl(cpu->vcpu_fd, KVM_INTERRUPT, &irq) < 0)
				return kvm_ioerr("KVM_INTERRUPT");
			cpu->ready_src = KVM_READY_NO;
			/* Events after this INTA at this position must come after it on
			 * replay too: only a landmark (which holds the injected vector)
			 * can say so. */
			cpu->exact = false;
			pending = vmm_intr_pending(cpu->m);
		}
	}
	cpu->want_window = pending;
	cpu->run->request_interrupt_window = pending && !cpu->step_windows ? 1 : 0;
	return 0;
}

/*
 * After a debug exit we asked for: KVM sets RFLAGS.RF at a breakpoint it reports, so that
 * the instruction can resume; the guest would push it in an interrupt frame, and the
 * recording, which ran without breakpoints, had none. We step over breakpoints ourselves.
 */
static int kvm_clear_rf(struct vmm_cpu *cpu)
{
	struct kvm_regs kr;
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, &kr) < 0)
		return kvm_ioerr("KVM_GET_REGS");
	if (kr.rflags & RFLAGS_RF) {
		kr.rflags &= ~RFLAGS_RF;
		if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &kr) < 0)
			return kvm_ioerr("KVM_SET_REGS");
	}
	return 0;
}

static int kvm_copy_virt(struct vmm_cpu *cpu, const struct kvm_sregs *s, uint64_t va, void *buf,
			 size_t len);

/*
 * Is the next instruction HLT? Stepping it is not like running it: this host's KVM
 * reports the step first and the halt only at the next KVM_RUN, after an interrupt went
 * in, as if the handler had halted. Run it instead: its HLT exit comes where it should,
 * and an interrupt wakes it as on hardware (where a window is not taken before a HLT
 * in an STI shadow either). A byte that cannot be read is not HLT.
 */
static bool kvm_next_is_hlt(struct vmm_cpu *cpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t op = 0;
	if (kvm_get_both(cpu, &r, &s))
		return false;
	uint64_t rip = (s.efer & EFER_LMA) && s.cs.l ? r.rip : (uint32_t)(s.cs.base + r.rip);
	return kvm_copy_virt(cpu, &s, rip, &op, 1) == 0 && op == 0xf4;
}

/* Single-stepping on or off (software KVM's interrupt windows, see want_window). */
static int kvm_set_stepping(struct vmm_cpu *cpu, bool on)
{
	if (cpu->stepping == on)
		return 0;
	struct kvm_guest_debug d;
	memset(&d, 0, sizeof(d));
	d.control = on ? KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP : 0;
	if (ioctl(cpu->vcpu_fd, KVM_SET_GUEST_DEBUG, &d) < 0)
		return kvm_ioerr("KVM_SET_GUEST_DEBUG (single step)");
	cpu->stepping = on;
	return 0;
}

static void kvm_intr_changed(struct vmm_cpu *cpu)
{
	/* kvm_prepare() asks the 8259 before every KVM_RUN; nothing to remember. */
	(void)cpu;
}

/* ---- exits ------------------------------------------------------------------------ */

/* Dispatch the port accesses of a KVM_EXIT_IO; *stop once a device asked for a stop. */
static int kvm_do_io(struct vmm_cpu *cpu, bool *stop)
{
	struct kvm_run *run = cpu->run;
	unsigned size = run->io.size;
	uint32_t count = run->io.count;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	if ((size != 1 && size != 2 && size != 4) ||
	    run->io.data_offset > cpu->run_size ||
	    (uint64_t)count * size > cpu->run_size - run->io.data_offset)
		return vmm_fail(VMM_EBACKEND,
				"KVM_EXIT_IO: bad access (port 0x%x, size %u, count %u, "
				"offset %llu)",
				run->io.port, size, count,
				(unsigned long long)run->io.data_offset);
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	for (uint32_t i = 0; i < count; i++, p += size) {
		if (*stop) {
			/* The machine stops at the access that asked; the rest is dropped. */
			if (!write)
				memset(p, 0xff, size);
			continue;
		}
		uint32_t val = 0xffffffffu;
		if (write) {
			val = 0;
			memcpy(&val, p, size);
		}
		vmm_pio(cpu->m, run->io.port, size, write, &val); /* pos = exits before it */
		if (!write)
			memcpy(p, &val, size);
		kvm_pos_inc(cpu);
		if (vmm_machine_stop_requested(cpu->m))
			*stop = true;
	}
	return 0;
}

static void kvm_do_mmio(struct vmm_cpu *cpu)
{
	struct kvm_run *run = cpu->run;
	/* No MMIO devices yet: reads float high, writes vanish. */
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff,
		       run->mmio.len < sizeof(run->mmio.data) ? run->mmio.len
							       : sizeof(run->mmio.data));
	kvm_pos_inc(cpu);
}

/* A detail for exits that mean KVM or the hardware gave up. */
static int kvm_exit_error(struct vmm_cpu *cpu)
{
	struct kvm_run *run = cpu->run;
	unsigned long long rip = 0;
	struct kvm_regs r;
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, &r) == 0)
		rip = r.rip;
	switch (run->exit_reason) {
	case KVM_EXIT_FAIL_ENTRY:
		return vmm_fail(VMM_EBACKEND,
				"KVM_RUN: VM entry failed, hardware reason 0x%llx (cpu %u), "
				"rip 0x%llx",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				run->fail_entry.cpu, rip);
	case KVM_EXIT_INTERNAL_ERROR: {
		static const char *const sub[] = {"", "emulation failed",
						  "exception during exception delivery",
						  "event delivery failed", "unexpected exit"};
		uint32_t s = run->internal.suberror;
		uint32_t nd = run->internal.ndata < 4 ? run->internal.ndata : 4;
		unsigned long long d[4] = {0, 0, 0, 0};
		for (uint32_t i = 0; i < nd; i++)
			d[i] = run->internal.data[i];
		return vmm_fail(VMM_EBACKEND,
				"KVM_RUN: internal error, suberror %u (%s), rip 0x%llx, "
				"data [%u] 0x%llx 0x%llx 0x%llx 0x%llx",
				s, s < sizeof(sub) / sizeof(sub[0]) ? sub[s] : "?", rip,
				run->internal.ndata, d[0], d[1], d[2], d[3]);
	}
	case KVM_EXIT_UNKNOWN:
		return vmm_fail(VMM_EBACKEND,
				"KVM_RUN: unknown exit, hardware reason 0x%llx, rip 0x%llx",
				(unsigned long long)run->hw.hardware_exit_reason, rip);
	case KVM_EXIT_EXCEPTION:
		return vmm_fail(VMM_EBACKEND,
				"KVM_RUN: exception %u (error code 0x%x), rip 0x%llx",
				run->ex.exception, run->ex.error_code, rip);
	default:
		return vmm_fail(VMM_EBACKEND, "KVM_RUN: unexpected exit reason %u, rip 0x%llx",
				run->exit_reason, rip);
	}
}

/*
 * Finish the instruction behind a port/MMIO exit without running the guest further
 * (KVM_RUN with immediate_exit), so registers and memory are consistent at every
 * position. A string instruction may need more accesses; they are dispatched too.
 */
static int kvm_complete(struct vmm_cpu *cpu, bool *stop)
{
	for (;;) {
		kvm_set_immediate_exit(cpu, 1);
		int r = ioctl(cpu->vcpu_fd, KVM_RUN, 0);
		int e = errno;
		kvm_clear_immediate_exit(cpu);
		cpu->ready_src = KVM_READY_RUN;
		if (r < 0) {
			if (e == EINTR || e == EAGAIN)
				return 0;
			errno = e;
			return kvm_ioerr("KVM_RUN (completing I/O)");
		}
		int err = 0;
		switch (cpu->run->exit_reason) {
		case KVM_EXIT_IO:
			err = kvm_do_io(cpu, stop);
			break;
		case KVM_EXIT_MMIO:
			kvm_do_mmio(cpu);
			break;
		case KVM_EXIT_DEBUG:
			/*
			 * Single-stepping for an interrupt window (step_windows): software KVM
			 * reports the step that finished the instruction instead of honouring
			 * immediate_exit. The instruction is complete; no window is counted,
			 * as hardware KVM, which returns here without entering, counts none.
			 */
			if (!cpu->stepping)
				return kvm_exit_error(cpu);
			cpu->ready_src = KVM_READY_ASK;
			return kvm_clear_rf(cpu);
		default:
			return kvm_exit_error(cpu);
		}
		if (err)
			return err;
	}
}

/* The vCPU thread enters run() or a landmark search: from now on a kick signals it. */
static void kvm_enter_run(struct vmm_cpu *cpu)
{
	pthread_t self = pthread_self();
	if (!cpu->thread_known || !pthread_equal(cpu->thread, self)) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, KVM_KICK_SIGNAL);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		cpu->thread = self;
		cpu->thread_known = true;
	}
	atomic_store(&cpu->in_run, true);
}

static int kvm_internal_error(struct vmm_cpu *cpu, int *shutdown_vec);

static int kvm_run(struct vmm_cpu *cpu, uint64_t budget, struct vmm_exit *exit)
{
	int err = 0;
	exit->vector = -1;
	kvm_enter_run(cpu);

	err = kvm_prepare(cpu);
	if (err)
		goto out;
	if (atomic_exchange(&cpu->kicked, false)) {
		kvm_set_immediate_exit(cpu, 0);
		exit->reason = VMM_EXIT_KICK;
		goto out;
	}
	uint64_t pos = atomic_load(&cpu->pos);
	uint64_t limit = budget > UINT64_MAX - pos ? UINT64_MAX : pos + budget;
	if (pos >= limit) {
		exit->reason = VMM_EXIT_BUDGET;
		goto out;
	}

	for (;;) {
		err = kvm_set_stepping(cpu, cpu->want_window && cpu->step_windows &&
						 !kvm_next_is_hlt(cpu));
		if (err)
			goto out;
		bool may_enter = !__atomic_load_n(&cpu->run->immediate_exit, __ATOMIC_SEQ_CST);
		int r = ioctl(cpu->vcpu_fd, KVM_RUN, 0);
		int e = errno;
		cpu->ready_src = KVM_READY_RUN;
		if (r < 0 || cpu->run->exit_reason == KVM_EXIT_INTR) {
			if (r < 0 && e != EINTR && e != EAGAIN) {
				errno = e;
				err = kvm_ioerr("KVM_RUN");
				goto out;
			}
			/* A signal may have stopped the guest anywhere between two exits. */
			if (may_enter)
				cpu->exact = false;
			kvm_set_immediate_exit(cpu, 0);
			err = kvm_prepare(cpu);
			if (err)
				goto out;
			if (atomic_exchange(&cpu->kicked, false)) {
				exit->reason = VMM_EXIT_KICK;
				goto out;
			}
			continue; /* some other signal */
		}

		bool stop = false;
		cpu->exact = true; /* every exit below is a point the position names */
		switch (cpu->run->exit_reason) {
		case KVM_EXIT_IO:
			err = kvm_do_io(cpu, &stop);
			if (!err)
				err = kvm_complete(cpu, &stop);
			if (err)
				goto out;
			if (stop) {
				exit->reason = VMM_EXIT_KICK;
				goto out;
			}
			break;
		case KVM_EXIT_MMIO:
			kvm_do_mmio(cpu);
			err = kvm_complete(cpu, &stop);
			if (err)
				goto out;
			if (stop) {
				exit->reason = VMM_EXIT_KICK;
				goto out;
			}
			break;
		case KVM_EXIT_HLT:
			kvm_pos_inc(cpu);
			exit->reason = VMM_EXIT_HLT;
			goto out;
		case KVM_EXIT_IRQ_WINDOW_OPEN:
			kvm_pos_inc(cpu);
			break;
		case KVM_EXIT_DEBUG: {
			/* One instruction stepped while waiting for a window (step_windows):
			 * the window opens at the first boundary where the guest can take the
			 * interrupt, as KVM's exit does on hardware, and counts alike. */
			if (!cpu->stepping) {
				err = kvm_exit_error(cpu);
				goto out;
			}
			bool ready;
			cpu->ready_src = KVM_READY_ASK;
			err = kvm_clear_rf(cpu);
			if (!err)
				err = kvm_ready(cpu, &ready);
			if (err)
				goto out;
			if (ready)
				kvm_pos_inc(cpu);
			else
				cpu->exact = false;
			break;
		}
		case KVM_EXIT_SHUTDOWN:
			/* A triple fault counts as the exit it is: the run's end then has a
			 * position of its own, after the guest's last port access. */
			kvm_pos_inc(cpu);
			exit->reason = VMM_EXIT_SHUTDOWN;
			exit->vector = -1; /* KVM does not say which exception it was */
			err = kvm_shutdown_reset(cpu, &exit->regs_lost);
			goto out;
		case KVM_EXIT_INTERNAL_ERROR: {
			/* An instruction the host's KVM could not emulate, completed here: no
			 * exit the position counts (kvm_emulation_failed). */
			int sv;
			err = kvm_internal_error(cpu, &sv);
			if (err)
				goto out;
			if (sv >= 0) {
				kvm_pos_inc(cpu); /* counted as KVM's own shutdown exit is */
				exit->reason = VMM_EXIT_SHUTDOWN;
				exit->vector = sv;
				goto out;
			}
			if (cpu->stepping) {
				/* That instruction was the step: the window may open after it,
				 * as after any other (KVM_EXIT_DEBUG above). */
				bool ready;
				err = kvm_ready(cpu, &ready);
				if (err)
					goto out;
				if (ready) {
					kvm_pos_inc(cpu);
					cpu->exact = true;
				}
			}
			break;
		}
		default:
			err = kvm_exit_error(cpu);
			goto out;
		}

		err = kvm_prepare(cpu);
		if (err)
			goto out;
		if (atomic_load(&cpu->pos) >= limit) {
			exit->reason = VMM_EXIT_BUDGET;
			goto out;
		}
	}
out:
	atomic_store(&cpu->in_run, false);
	return err;
}

static vmm_pos_t kvm_pos(struct vmm_cpu *cpu)
{
	return atomic_load_explicit(&cpu->pos, memory_order_relaxed);
}

/* ---- save / load ---------------------------------------------------------------- */

#define KVM_STATE_MAGIC 0x314d564bu /* "KVM1" */
#define KVM_STATE_VERSION 2u /* 2: the MTRRs joined the MSR set */
#define KVM_STATE_XSAVE 1u

/* The blob: this header, then the structs in this order, each at its sizeof. */
struct kvm_state_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t flags; /* KVM_STATE_XSAVE */
	uint32_t nmsrs;
	uint64_t pos;
	uint32_t sz_regs, sz_sregs, sz_fpu, sz_xsave, sz_events, sz_debugregs;
	uint32_t msr_index[KVM_NMSRS];
};

static size_t kvm_state_size(uint32_t flags, uint32_t nmsrs)
{
	return sizeof(struct kvm_state_hdr) + sizeof(struct kvm_regs) +
	       sizeof(struct kvm_sregs) + sizeof(struct kvm_fpu) +
	       ((flags & KVM_STATE_XSAVE) ? sizeof(struct kvm_xsave) : 0) +
	       nmsrs * sizeof(uint64_t) + sizeof(struct kvm_vcpu_events) +
	       sizeof(struct kvm_debugregs);
}

/* The header save() writes for this host: flags, struct sizes, the MSR set, pos. */
static void kvm_state_hdr_init(struct kvm_state_hdr *h, bool has_xsave, const uint32_t *msrs,
			       uint32_t nmsrs, uint64_t pos)
{
	uint32_t flags = has_xsave ? KVM_STATE_XSAVE : 0;
	memset(h, 0, sizeof(*h));
	h->magic = KVM_STATE_MAGIC;
	h->version = KVM_STATE_VERSION;
	h->flags = flags;
	h->nmsrs = nmsrs;
	h->pos = pos;
	h->sz_regs = sizeof(struct kvm_regs);
	h->sz_sregs = sizeof(struct kvm_sregs);
	h->sz_fpu = sizeof(struct kvm_fpu);
	h->sz_xsave = (flags & KVM_STATE_XSAVE) ? sizeof(struct kvm_xsave) : 0;
	h->sz_events = sizeof(struct kvm_vcpu_events);
	h->sz_debugregs = sizeof(struct kvm_debugregs);
	memcpy(h->msr_index, msrs, nmsrs * sizeof(uint32_t));
}

static int kvm_save(struct vmm_cpu *cpu, void **blob, size_t *len)
{
	uint32_t flags = cpu->has_xsave ? KVM_STATE_XSAVE : 0;
	size_t size = kvm_state_size(flags, cpu->nmsrs);
	uint8_t *buf = calloc(1, size);
	if (!buf)
		return vmm_fail(VMM_ENOMEM, "KVM state: out of memory");
	struct kvm_state_hdr h;
	kvm_state_hdr_init(&h, cpu->has_xsave, cpu->msrs, cpu->nmsrs, atomic_load(&cpu->pos));

	int err = 0;
	uint8_t *p = buf + sizeof(h);
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_msr_buf b;
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, &regs) < 0) {
		err = kvm_ioerr("KVM_GET_REGS");
		goto fail;
	}
	if (ioctl(cpu->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		err = kvm_ioerr("KVM_GET_SREGS");
		goto fail;
	}
	if (ioctl(cpu->vcpu_fd, KVM_GET_FPU, &fpu) < 0) {
		err = kvm_ioerr("KVM_GET_FPU");
		goto fail;
	}
	memcpy(p, &regs, sizeof(regs)), p += sizeof(regs);
	memcpy(p, &sregs, sizeof(sregs)), p += sizeof(sregs);
	memcpy(p, &fpu, sizeof(fpu)), p += sizeof(fpu);
	if (flags & KVM_STATE_XSAVE) {
		struct kvm_xsave *xs = calloc(1, sizeof(*xs));
		if (!xs) {
			err = vmm_fail(VMM_ENOMEM, "KVM state: out of memory");
			goto fail;
		}
		if (ioctl(cpu->vcpu_fd, KVM_GET_XSAVE, xs) < 0) {
			err = kvm_ioerr("KVM_GET_XSAVE");
			free(xs);
			goto fail;
		}
		memcpy(p, xs, sizeof(*xs)), p += sizeof(*xs);
		free(xs);
	}
	memset(&b, 0, sizeof(b));
	for (uint32_t i = 0; i < cpu->nmsrs; i++)
		b.e[i].index = cpu->msrs[i];
	err = kvm_get_msrs(cpu, &b, cpu->nmsrs);
	if (err)
		goto fail;
	for (uint32_t i = 0; i < cpu->nmsrs; i++)
		memcpy(p, &b.e[i].data, sizeof(uint64_t)), p += sizeof(uint64_t);
	if (ioctl(cpu->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
		err = kvm_ioerr("KVM_GET_VCPU_EVENTS");
		goto fail;
	}
	if (ioctl(cpu->vcpu_fd, KVM_GET_DEBUGREGS, &dbg) < 0) {
		err = kvm_ioerr("KVM_GET_DEBUGREGS");
		goto fail;
	}
	memcpy(p, &ev, sizeof(ev)), p += sizeof(ev);
	memcpy(p, &dbg, sizeof(dbg)), p += sizeof(dbg);
	memcpy(buf, &h, sizeof(h));
	if ((size_t)(p - buf) != size) {
		err = vmm_fail(VMM_EINTERNAL, "KVM state: wrote %zu of %zu bytes",
			       (size_t)(p - buf), size);
		goto fail;
	}
	*blob = buf;
	*len = size;
	return 0;
fail:
	free(buf);
	return err;
}

/*
 * Check a state blob's header against this build and host (XSAVE or not, the MSR set);
 * *h receives the header. -VMM_ESTATE with the first difference found.
 */
static int kvm_state_check(const void *blob, size_t len, bool has_xsave, const uint32_t *msrs,
			   uint32_t nmsrs, struct kvm_state_hdr *out)
{
	struct kvm_state_hdr h;
	if (!blob || len < sizeof(h))
		return vmm_fail(VMM_ESTATE, "KVM state: %zu bytes, too short for a header", len);
	memcpy(&h, blob, sizeof(h));
	if (h.magic != KVM_STATE_MAGIC)
		return vmm_fail(VMM_ESTATE, "KVM state: bad magic 0x%08x", h.magic);
	if (h.version != KVM_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "KVM state: version %u, this build reads %u",
				h.version, KVM_STATE_VERSION);
	uint32_t want_flags = has_xsave ? KVM_STATE_XSAVE : 0;
	if (h.flags != want_flags)
		return vmm_fail(VMM_ESTATE, "KVM state: flags 0x%x, this host needs 0x%x",
				h.flags, want_flags);
	if (h.sz_regs != sizeof(struct kvm_regs) || h.sz_sregs != sizeof(struct kvm_sregs) ||
	    h.sz_fpu != sizeof(struct kvm_fpu) ||
	    h.sz_xsave != ((h.flags & KVM_STATE_XSAVE) ? sizeof(struct kvm_xsave) : 0) ||
	    h.sz_events != sizeof(struct kvm_vcpu_events) ||
	    h.sz_debugregs != sizeof(struct kvm_debugregs))
		return vmm_fail(VMM_ESTATE, "KVM state: struct sizes differ from this build");
	if (h.nmsrs != nmsrs || memcmp(h.msr_index, msrs, h.nmsrs * sizeof(uint32_t)))
		return vmm_fail(VMM_ESTATE, "KVM state: saved MSR set differs from this host's");
	size_t want = kvm_state_size(h.flags, h.nmsrs);
	if (len != want)
		return vmm_fail(VMM_ESTATE, "KVM state: %zu bytes, expected %zu", len, want);
	*out = h;
	return 0;
}

static int kvm_load(struct vmm_cpu *cpu, const void *blob, size_t len)
{
	struct kvm_state_hdr h;
	memset(&h, 0, sizeof(h)); /* gcc cannot see that a failed check returns nonzero */
	int err = kvm_state_check(blob, len, cpu->has_xsave, cpu->msrs, cpu->nmsrs, &h);
	if (err)
		return err;

	const uint8_t *p = (const uint8_t *)blob + sizeof(h);
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_msr_buf b;
	memcpy(&regs, p, sizeof(regs)), p += sizeof(regs);
	memcpy(&sregs, p, sizeof(sregs)), p += sizeof(sregs);
	memcpy(&fpu, p, sizeof(fpu)), p += sizeof(fpu);
	const uint8_t *xsave = NULL;
	if (h.flags & KVM_STATE_XSAVE)
		xsave = p, p += sizeof(struct kvm_xsave);
	memset(&b, 0, sizeof(b));
	for (uint32_t i = 0; i < h.nmsrs; i++) {
		b.e[i].index = h.msr_index[i];
		memcpy(&b.e[i].data, p, sizeof(uint64_t)), p += sizeof(uint64_t);
	}
	memcpy(&ev, p, sizeof(ev)), p += sizeof(ev);
	memcpy(&dbg, p, sizeof(dbg)), p += sizeof(dbg);

	/* Mode first, then registers; events last, as they override sregs' pending vector. */
	cpu->ready_src = KVM_READY_ASK;
	err = kvm_put_sregs(cpu, &sregs);
	if (err)
		return err;
	if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return kvm_ioerr("KVM_SET_REGS");
	if (ioctl(cpu->vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return kvm_ioerr("KVM_SET_FPU");
	if (xsave) {
		struct kvm_xsave *xs = calloc(1, sizeof(*xs));
		if (!xs)
			return vmm_fail(VMM_ENOMEM, "KVM state: out of memory");
		memcpy(xs, xsave, sizeof(*xs));
		int r = ioctl(cpu->vcpu_fd, KVM_SET_XSAVE, xs);
		free(xs);
		if (r < 0)
			return kvm_ioerr("KVM_SET_XSAVE");
	}
	err = kvm_set_msrs_tsc(cpu, &b, h.nmsrs);
	if (err)
		return err;
	if (ioctl(cpu->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return kvm_ioerr("KVM_SET_VCPU_EVENTS");
	dbg.flags = 0;
	if (ioctl(cpu->vcpu_fd, KVM_SET_DEBUGREGS, &dbg) < 0)
		return kvm_ioerr("KVM_SET_DEBUGREGS");
	atomic_store(&cpu->pos, h.pos);
	return kvm_dirty_reset(cpu);
}

/* ---- guest virtual memory ------------------------------------------------------- */

#define PTE_P 1ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

static int kvm_phys_u64(struct vmm_cpu *cpu, uint64_t pa, uint64_t va, uint64_t *out)
{
	if (pa > cpu->ram_size || cpu->ram_size - pa < 8)
		return vmm_fail(VMM_EGUEST,
				"page table entry at 0x%llx (for va 0x%llx) is outside RAM",
				(unsigned long long)pa, (unsigned long long)va);
	memcpy(out, cpu->ram + pa, 8);
	return 0;
}

static int kvm_phys_u32(struct vmm_cpu *cpu, uint64_t pa, uint64_t va, uint32_t *out)
{
	if (pa > cpu->ram_size || cpu->ram_size - pa < 4)
		return vmm_fail(VMM_EGUEST,
				"page table entry at 0x%llx (for va 0x%llx) is outside RAM",
				(unsigned long long)pa, (unsigned long long)va);
	memcpy(out, cpu->ram + pa, 4);
	return 0;
}

static int kvm_not_present(uint64_t va)
{
	return vmm_fail(VMM_EGUEST, "va 0x%llx: page not present", (unsigned long long)va);
}

/* Translate va; *left is how many bytes from va stay in the same page. */
static int kvm_translate(struct vmm_cpu *cpu, const struct kvm_sregs *s, uint64_t va,
			 uint64_t *pa, uint64_t *left)
{
	int err;
	if (!(s->cr0 & CR0_PG)) {
		*pa = va;
		*left = KVM_PAGE - (va & (KVM_PAGE - 1));
		return 0;
	}
	if (s->efer & EFER_LMA) {
		unsigned levels = (s->cr4 & CR4_LA57) ? 5 : 4;
		unsigned vbits = 12 + 9 * levels;
		/* Canonical: bits vbits-1..63 all equal. */
		uint64_t top = va >> (vbits - 1);
		if (top != 0 && top != (UINT64_MAX >> (vbits - 1)))
			return vmm_fail(VMM_EGUEST, "va 0x%llx is not canonical",
					(unsigned long long)va);
		uint64_t table = s->cr3 & PTE_ADDR;
		for (unsigned lvl = levels; lvl >= 1; lvl--) {
			unsigned shift = 12 + 9 * (lvl - 1);
			uint64_t e = 0;
			err = kvm_phys_u64(cpu, table + ((va >> shift) & 511) * 8, va, &e);
			if (err)
				return err;
			if (!(e & PTE_P))
				return kvm_not_present(va);
			if (lvl == 1 || ((lvl == 2 || lvl == 3) && (e & PTE_PS))) {
				uint64_t size = 1ull << shift;
				*pa = (e & PTE_ADDR & ~(size - 1)) | (va & (size - 1));
				*left = size - (va & (size - 1));
				return 0;
			}
			table = e & PTE_ADDR;
		}
		return vmm_fail(VMM_EINTERNAL, "page walk fell through");
	}
	va &= 0xffffffffu;
	if (s->cr4 & CR4_PAE) {
		uint64_t pdpte = 0, pde = 0, pte = 0;
		err = kvm_phys_u64(cpu, (s->cr3 & 0xffffffe0u) + ((va >> 30) & 3) * 8, va, &pdpte);
		if (err)
			return err;
		if (!(pdpte & PTE_P))
			return kvm_not_present(va);
		err = kvm_phys_u64(cpu, (pdpte & PTE_ADDR) + ((va >> 21) & 511) * 8, va, &pde);
		if (err)
			return err;
		if (!(pde & PTE_P))
			return kvm_not_present(va);
		if (pde & PTE_PS) {
			*pa = (pde & PTE_ADDR & ~0x1fffffull) | (va & 0x1fffff);
			*left = 0x200000 - (va & 0x1fffff);
			return 0;
		}
		err = kvm_phys_u64(cpu, (pde & PTE_ADDR) + ((va >> 12) & 511) * 8, va, &pte);
		if (err)
			return err;
		if (!(pte & PTE_P))
			return kvm_not_present(va);
		*pa = (pte & PTE_ADDR) | (va & 0xfff);
		*left = KVM_PAGE - (va & 0xfff);
		return 0;
	}
	uint32_t pde = 0, pte = 0;
	err = kvm_phys_u32(cpu, (s->cr3 & 0xfffff000u) + ((va >> 22) & 0x3ff) * 4, va, &pde);
	if (err)
		return err;
	if (!(pde & PTE_P))
		return kvm_not_present(va);
	if ((pde & PTE_PS) && (s->cr4 & CR4_PSE)) {
		/* 4 MiB page; PSE-36 puts physical bits 32-39 in PDE bits 13-20. */
		*pa = (uint64_t)(pde & 0xffc00000u) | ((uint64_t)((pde >> 13) & 0xff) << 32) |
		      (va & 0x3fffff);
		*left = 0x400000 - (va & 0x3fffff);
		return 0;
	}
	err = kvm_phys_u32(cpu, (pde & 0xfffff000u) + ((va >> 12) & 0x3ff) * 4, va, &pte);
	if (err)
		return err;
	if (!(pte & PTE_P))
		return kvm_not_present(va);
	*pa = (uint64_t)(pte & 0xfffff000u) | (va & 0xfff);
	*left = KVM_PAGE - (va & 0xfff);
	return 0;
}

/* Copy guest-virtual [va, va + len) out of RAM through the page tables s describes. */
static int kvm_copy_virt(struct vmm_cpu *cpu, const struct kvm_sregs *s, uint64_t va, void *buf,
			 size_t len)
{
	uint8_t *out = buf;
	while (len) {
		uint64_t pa = 0, left = 0;
		int err = kvm_translate(cpu, s, va, &pa, &left);
		if (err)
			return err;
		size_t n = left < len ? (size_t)left : len;
		if (pa > cpu->ram_size || cpu->ram_size - pa < n)
			return vmm_fail(VMM_EGUEST, "va 0x%llx maps to 0x%llx, outside RAM",
					(unsigned long long)va, (unsigned long long)pa);
		memcpy(out, cpu->ram + pa, n);
		out += n;
		va += n;
		len -= n;
	}
	return 0;
}

static int kvm_read_virt(struct vmm_cpu *cpu, uint64_t va, void *buf, size_t len)
{
	struct kvm_sregs s;
	if (len == 0)
		return 0;
	if (ioctl(cpu->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return kvm_ioerr("KVM_GET_SREGS");
	return kvm_copy_virt(cpu, &s, va, buf, len);
}

/* ---- instructions the host's KVM cannot run ---------------------------------------- */

#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull
#define CR0_WP (1ull << 16)
#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_NE (1ull << 5)
#define FSW_ES (1u << 7)

/* The landmark hash must cover RAM written behind KVM's dirty log (interrupt frames, A/D). */
static void kvm_mark_dirty(struct vmm_cpu *cpu, uint64_t pa)
{
	uint64_t pg = pa / KVM_PAGE;
	if (pg / 64 < cpu->dirty_words)
		cpu->dirty[pg / 64] |= 1ull << (pg % 64);
}

/* Set bits in the page-table entry at pa (size 4 or 8) unless they are set already. */
static void kvm_pte_set(struct vmm_cpu *cpu, uint64_t pa, unsigned size, uint64_t bits)
{
	uint64_t e = 0;
	memcpy(&e, cpu->ram + pa, size);
	if ((e & bits) != bits) {
		e |= bits;
		memcpy(cpu->ram + pa, &e, size);
		kvm_mark_dirty(cpu, pa);
	}
}

/*
 * Translate va for a write at CPL 3 (user) or below, as the processor's page walk does:
 * not-present and write-protection faults (CR0.WP, U/S) give 1 with the #PF error code in
 * *pferr; on success the accessed bits of the entries walked and the dirty bit of the
 * leaf are set, and *left is how many bytes from va stay in the page. A table outside RAM
 * counts as not present.
 */
static int kvm_walk_write(struct vmm_cpu *cpu, const struct kvm_sregs *s, uint64_t va,
			  bool user, uint64_t *pa, uint64_t *left, uint32_t *pferr)
{
	uint32_t ecode = 2u | (user ? 4u : 0u);
	if (!(s->cr0 & CR0_PG)) {
		*pa = va & 0xffffffffu;
		*left = KVM_PAGE - (va & (KVM_PAGE - 1));
		return 0;
	}
	bool lm = s->efer & EFER_LMA, pae = s->cr4 & CR4_PAE;
	unsigned levels = 2, esz = 4, idxbits = 10;
	uint64_t table = s->cr3 & 0xfffff000u;
	if (lm) {
		levels = (s->cr4 & CR4_LA57) ? 5 : 4;
		esz = 8;
		idxbits = 9;
		table = s->cr3 & PTE_ADDR;
	} else if (pae) {
		va &= 0xffffffffu;
		uint64_t pdpa = (s->cr3 & 0xffffffe0u) + ((va >> 30) & 3) * 8, pdpte = 0;
		if (pdpa > cpu->ram_size || cpu->ram_size - pdpa < 8)
			goto not_present;
		memcpy(&pdpte, cpu->ram + pdpa, 8);
		if (!(pdpte & PTE_P))
			goto not_present;
		table = pdpte & PTE_ADDR;
		esz = 8;
		idxbits = 9;
	} else {
		va &= 0xffffffffu;
	}
	uint64_t ents[5];
	unsigned n = 0;
	bool rw = true, us = true;
	for (unsigned lvl = levels; lvl >= 1; lvl--) {
		unsigned shift = 12 + idxbits * (lvl - 1);
		uint64_t epa = table + ((va >> shift) & ((1ull << idxbits) - 1)) * esz, e = 0;
		if (epa > cpu->ram_size || cpu->ram_size - epa < esz)
			goto not_present;
		memcpy(&e, cpu->ram + epa, esz);
		if (!(e & PTE_P))
			goto not_present;
		rw = rw && (e & PTE_RW);
		us = us && (e & PTE_US);
		ents[n++] = epa;
		bool large = (e & PTE_PS) && ((lm && (lvl == 2 || lvl == 3)) ||
					      (!lm && lvl == 2 && (pae || (s->cr4 & CR4_PSE))));
		if (lvl > 1 && !large) {
			table = esz == 8 ? e & PTE_ADDR : e & 0xfffff000u;
			continue;
		}
		bool ok = user ? rw && us : rw || !(s->cr0 & CR0_WP);
		if (!ok) {
			*pferr = ecode | 1u;
			return 1;
		}
		uint64_t size = 1ull << shift;
		if (esz == 4 && large) /* PSE-36: physical bits 32-39 in PDE bits 13-20 */
			*pa = (e & 0xffc00000u) | (((e >> 13) & 0xff) << 32) | (va & (size - 1));
		else
			*pa = (e & PTE_ADDR & ~(size - 1)) | (va & (size - 1));
		*left = size - (va & (size - 1));
		for (unsigned i = 0; i < n; i++)
			kvm_pte_set(cpu, ents[i], esz, i + 1 == n ? PTE_A | PTE_D : PTE_A);
		return 0;
	}
not_present:
	*pferr = ecode;
	return 1;
}

/* Guest memory for the shared delivery code (vmm/x86deliver.c): sregs as they are now. */
struct kvm_xd_ctx {
	struct vmm_cpu *cpu;
	const struct kvm_sregs *s;
};

static int kvm_xd_read(void *ctx, uint64_t va, void *buf, size_t len)
{
	struct kvm_xd_ctx *x = ctx;
	return kvm_copy_virt(x->cpu, x->s, va, buf, len);
}

/* Both pages of the frame are walked before anything is written. */
static int kvm_xd_write(void *ctx, uint64_t va, const void *buf, size_t len, int cpl,
			uint32_t *pferr, uint64_t *fault_va)
{
	struct kvm_xd_ctx *x = ctx;
	uint64_t pa[2] = {0, 0}, n[2] = {0, 0};
	unsigned parts = 0;
	for (size_t done = 0; done < len; parts++) {
		uint64_t left = 0;
		if (kvm_walk_write(x->cpu, x->s, va + done, cpl == 3, &pa[parts], &left, pferr)) {
			*fault_va = va + done;
			return VMM_XD_PF;
		}
		n[parts] = left < len - done ? left : len - done;
		done += n[parts];
	}
	const uint8_t *in = buf;
	for (unsigned i = 0; i < parts; in += n[i], i++) {
		/* Outside RAM there is nothing to write to (as a write to no device). */
		if (pa[i] > x->cpu->ram_size || x->cpu->ram_size - pa[i] < n[i])
			continue;
		memcpy(x->cpu->ram + pa[i], in, n[i]);
		kvm_mark_dirty(x->cpu, pa[i]);
		kvm_mark_dirty(x->cpu, pa[i] + n[i] - 1);
	}
	return 0;
}

static const struct vmm_xd_ops kvm_xd_ops = {.read = kvm_xd_read, .write = kvm_xd_write};

/* A segment the delivery code loaded, as KVM's descriptor cache. */
static void kvm_xd_seg_out(const struct vmm_seg *v, struct kvm_segment *k)
{
	kvm_seg_from_vmm(v, k);
	if (!k->unusable)
		k->type |= 1; /* accessed: the processor sets it on a load (and VM entry wants it) */
}

/*
 * KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION: the host's KVM could not
 * emulate the instruction at RIP. A software-nested KVM (PVM) runs guest ring-0 code
 * through its instruction emulator, which cannot deliver a protected- or long-mode
 * INT n, INT3 or INTO; those are performed here as the processor does
 * (docs/kvm-backend.md, "Instructions the host cannot run"): a software interrupt through
 * the guest IDT returning after the instruction (INTO only with OF set; in 64-bit code it
 * is #UD); so is WAIT/FWAIT, which the emulator cannot run either (#NM with CR0.MP and
 * CR0.TS, #MF with an unmasked x87 exception pending, else it only advances RIP).
 * Not a guest-initiated exit: the position stays, but the guest has moved on, so
 * the point is no longer exact. Returns 0 (*shutdown_vec >= 0: delivery triple-faulted,
 * that event), or a negative vmm_err: -VMM_ENOKVM naming the instruction for anything
 * else.
 */
static int kvm_emulation_failed(struct vmm_cpu *cpu, int *shutdown_vec)
{
	*shutdown_vec = -1;
	struct kvm_regs r;
	struct kvm_sregs s;
	int gerr = kvm_get_both(cpu, &r, &s);
	if (gerr)
		return gerr;
	bool lm = s.efer & EFER_LMA;
	int bits = lm && s.cs.l ? 64 : s.cs.db ? 32 : 16;
	uint64_t fetch = bits == 64 ? r.rip : (s.cs.base + r.rip) & 0xffffffffu;
	uint8_t code[15];
	size_t have = 0;
	while (have < sizeof(code) && kvm_copy_virt(cpu, &s, fetch + have, code + have, 1) == 0)
		have++;
	struct x86_insn in;
	bool decoded = x86_decode(code, have, bits, &in) == 0;
	size_t op = 0;
	while (decoded && op < in.len &&
	       (code[op] == 0x66 || code[op] == 0x67 || code[op] == 0xf0 || code[op] == 0xf2 ||
		code[op] == 0xf3 || code[op] == 0x2e || code[op] == 0x36 || code[op] == 0x3e ||
		code[op] == 0x26 || code[op] == 0x64 || code[op] == 0x65 ||
		(bits == 64 && (code[op] & 0xf0) == 0x40)))
		op++;
	uint8_t opc = decoded && op < in.len ? code[op] : 0;
	bool fwait = opc == 0x9b;
	uint16_t fsw = 0;
	if (fwait) {
		struct kvm_fpu fpu;
		if (ioctl(cpu->vcpu_fd, KVM_GET_FPU, &fpu) < 0)
			return kvm_ioerr("KVM_GET_FPU");
		fsw = fpu.fsw;
	}
	/* An x87 exception pending with CR0.NE clear would be reported on FERR#: not done. */
	bool legacy_ferr = fwait && (fsw & FSW_ES) && !(s.cr0 & CR0_NE) &&
			   !((s.cr0 & CR0_MP) && (s.cr0 & CR0_TS));
	if (!decoded || legacy_ferr || (opc != 0xcd && opc != 0xcc && opc != 0xce && !fwait)) {
		char hex[15 * 3 + 1] = "";
		size_t n = decoded ? in.len : have;
		for (size_t i = 0; i < n; i++)
			snprintf(hex + (i ? 3 * i - 1 : 0), 4, "%s%02x", i ? " " : "", code[i]);
		return vmm_fail(VMM_ENOKVM,
				"this host's KVM%s cannot run the instruction %s%s at rip 0x%llx: "
				"use --backend emu",
				cpu->step_windows ? " (software-nested)" : "", n ? "" : "(unreadable)",
				hex, (unsigned long long)r.rip);
	}
	uint64_t ipmask = bits == 64 ? UINT64_MAX : bits == 32 ? 0xffffffffull : 0xffffull;
	uint64_t next = (r.rip + in.len) & ipmask;
	struct vmm_xd_event ev = {.soft = true, .ret_rip = next, .fault_rip = r.rip};
	if (opc == 0xcd) {
		ev.vector = code[op + 1];
	} else if (opc == 0xcc) {
		ev.vector = 3;
	} else if (fwait) {
		/* WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set, else #MF when an
		 * unmasked x87 exception is pending (FSW.ES), else nothing. Faults. */
		ev.soft = false;
		ev.ret_rip = r.rip;
		if ((s.cr0 & CR0_MP) && (s.cr0 & CR0_TS))
			ev.vector = 7;
		else if (fsw & FSW_ES)
			ev.vector = 16;
		else
			ev.vector = -1;
	} else if (bits == 64) {
		ev.vector = 6; /* INTO is invalid in 64-bit code: #UD, a fault */
		ev.soft = false;
		ev.ret_rip = r.rip;
	} else if (r.rflags & (1ull << 11)) {
		ev.vector = 4; /* INTO with OF set */
	} else {
		ev.vector = -1; /* INTO with OF clear does nothing */
	}

	cpu->ready_src = KVM_READY_ASK;
	cpu->exact = false;
	if (ev.vector < 0) {
		r.rip = next;
		if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &r) < 0)
			return kvm_ioerr("KVM_SET_REGS");
		return 0;
	}
	struct vmm_xd_state x;
	memset(&x, 0, sizeof(x));
	x.rip = r.rip;
	x.rsp = r.rsp;
	x.rflags = r.rflags;
	x.cr2 = s.cr2;
	kvm_seg_to_vmm(&s.cs, &x.cs);
	kvm_seg_to_vmm(&s.ss, &x.ss);
	kvm_seg_to_vmm(&s.tr, &x.tr);
	x.gdt.base = s.gdt.base, x.gdt.limit = s.gdt.limit;
	x.idt.base = s.idt.base, x.idt.limit = s.idt.limit;
	x.lm = lm;
	struct kvm_xd_ctx ctx = {.cpu = cpu, .s = &s};
	if (vmm_xd_deliver(&kvm_xd_ops, &ctx, &x, &ev, shutdown_vec))
		return 0; /* the run ends: a triple fault */
	r.rip = x.rip;
	r.rsp = x.rsp;
	r.rflags = x.rflags;
	s.cr2 = x.cr2;
	kvm_xd_seg_out(&x.cs, &s.cs);
	kvm_xd_seg_out(&x.ss, &s.ss);
	int err = kvm_put_sregs(cpu, &s);
	if (err)
		return err;
	if (ioctl(cpu->vcpu_fd, KVM_SET_REGS, &r) < 0)
		return kvm_ioerr("KVM_SET_REGS");
	return 0;
}

/*
 * An internal error: the instruction KVM could not emulate is completed here when it can
 * be (kvm_emulation_failed); any other suberror ends the run with KVM's raw detail.
 */
static int kvm_internal_error(struct vmm_cpu *cpu, int *shutdown_vec)
{
	if (cpu->run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return kvm_exit_error(cpu);
	return kvm_emulation_failed(cpu, shutdown_vec);
}

/* ---- landmarks ---------------------------------------------------------------------- */

/*
 * What a landmark's regs hash covers (logfmt/FORMAT.md, "Landmarks"): the architectural
 * registers, x87/SSE, and the event on its way in. Hashed whole, padding zeroed.
 */
struct kvm_point_rec {
	struct vmm_regs r;
	struct vmm_fpregs f;
	int32_t injected; /* vector of an injected interrupt not yet taken, or -1 */
	uint8_t flags;    /* 1 shadow, 2 NMI on its way, 4 exception on its way */
};

/* FORMAT.md's gprs (vmm_gprs_digest). */
static uint64_t kvm_gprs_digest(const struct kvm_regs *r)
{
	const uint64_t v[18] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
				r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
	return vmm_gprs_digest(v);
}

/* The landmark of the vCPU's current point; with mem false, only rip, gprs and regs. */
static int kvm_point(struct vmm_cpu *cpu, struct vmm_landmark *lm, bool mem)
{
	struct kvm_point_rec p;
	memset(&p, 0, sizeof(p));
	int err = kvm_get_regs(cpu, &p.r);
	if (!err)
		err = kvm_get_fpregs(cpu, &p.f);
	if (err)
		return err;
	struct kvm_vcpu_events ev;
	if (ioctl(cpu->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return kvm_ioerr("KVM_GET_VCPU_EVENTS");
	p.injected = ev.interrupt.injected ? (int32_t)ev.interrupt.nr : -1;
	p.flags = (ev.interrupt.shadow ? 1 : 0) | (ev.nmi.injected || ev.nmi.pending ? 2 : 0) |
		  (ev.exception.injected || ev.exception.pending ? 4 : 0);
	memset(lm, 0, sizeof(*lm));
	lm->rip = p.r.rip;
	struct kvm_regs kr = {.rax = p.r.rax, .rbx = p.r.rbx, .rcx = p.r.rcx, .rdx = p.r.rdx,
			      .rsi = p.r.rsi, .rdi = p.r.rdi, .rbp = p.r.rbp, .rsp = p.r.rsp,
			      .r8 = p.r.r8,   .r9 = p.r.r9,   .r10 = p.r.r10, .r11 = p.r.r11,
			      .r12 = p.r.r12, .r13 = p.r.r13, .r14 = p.r.r14, .r15 = p.r.r15,
			      .rip = p.r.rip, .rflags = p.r.rflags};
	lm->gprs = kvm_gprs_digest(&kr);
	lm->regs = cpu->arch_digest ? vmm_arch_digest(&p.r, &p.f, p.injected, p.flags)
				    : XXH3_64bits(&p, sizeof(p));
	if (!mem)
		return 0;

	err = kvm_dirty_collect(cpu);
	if (err)
		return err;
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return vmm_fail(VMM_ENOMEM, "landmark: out of memory");
	XXH3_64bits_reset(st);
	for (size_t w = 0; w < cpu->dirty_words; w++) {
		for (uint64_t bits = cpu->dirty[w]; bits; bits &= bits - 1) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (page * KVM_PAGE >= cpu->ram_size)
				break;
			uint64_t le = htole64(page);
			XXH3_64bits_update(st, &le, sizeof(le));
			XXH3_64bits_update(st, cpu->ram + page * KVM_PAGE, KVM_PAGE);
			lm->pages++;
		}
	}
	lm->mem = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

static int kvm_landmark(struct vmm_cpu *cpu, struct vmm_landmark *lm)
{
	if (cpu->exact)
		return 0;
	int err = kvm_point(cpu, lm, true);
	if (err)
		return err;
	memset(cpu->dirty, 0, cpu->dirty_words * sizeof(uint64_t));
	cpu->exact = true;
	return 1;
}

/*
 * Is the vCPU at lm? The general registers first (one ioctl: most breakpoint hits end
 * there), then all registers, and the memory hash only when they match.
 */
static int kvm_at_landmark(struct vmm_cpu *cpu, const struct vmm_landmark *lm, bool *at)
{
	struct vmm_landmark here;
	struct kvm_regs kr;
	*at = false;
	if (ioctl(cpu->vcpu_fd, KVM_GET_REGS, &kr) < 0)
		return kvm_ioerr("KVM_GET_REGS");
	if (kr.rip != lm->rip || kvm_gprs_digest(&kr) != lm->gprs)
		return 0;
	int err = kvm_point(cpu, &here, false);
	if (err || here.rip != lm->rip || here.regs != lm->regs)
		return err;
	err = kvm_point(cpu, &here, true);
	*at = !err && here.mem == lm->mem && here.pages == lm->pages;
	return err;
}

static int kvm_set_debug_ctl(struct vmm_cpu *cpu, uint32_t control, uint64_t bp)
{
	struct kvm_guest_debug d;
	memset(&d, 0, sizeof(d));
	d.control = control;
	if (control & KVM_GUESTDBG_USE_HW_BP) {
		d.arch.debugreg[0] = bp;
		d.arch.debugreg[7] = 0x1; /* L0: break on executing the instruction at DR0 */
	}
	if (ioctl(cpu->vcpu_fd, KVM_SET_GUEST_DEBUG, &d) < 0)
		return kvm_ioerr("KVM_SET_GUEST_DEBUG");
	return 0;
}

static const char *kvm_exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO:
		return "a port access";
	case KVM_EXIT_MMIO:
		return "an MMIO access";
	case KVM_EXIT_HLT:
		return "HLT";
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		return "an interrupt window";
	case KVM_EXIT_SHUTDOWN:
		return "a triple fault";
	default:
		return "another exit";
	}
}

/*
 * One KVM_RUN for the search: 1 for a debug exit, 0 after a kick (*kicked), 2 after an
 * instruction the host could not run was performed here (no debug exit: the search runs
 * on, and a breakpoint at the next instruction still hits), or VMM_SEEK_PASSED + 10 for
 * any other exit (the guest left the position).
 */
static int kvm_seek_step(struct vmm_cpu *cpu, struct vmm_seek_stats *st, bool *kicked)
{
	*kicked = false;
	if (atomic_exchange(&cpu->kicked, false)) {
		kvm_set_immediate_exit(cpu, 0);
		*kicked = true;
		return 0;
	}
	int r = ioctl(cpu->vcpu_fd, KVM_RUN, 0);
	int e = errno;
	cpu->ready_src = KVM_READY_RUN;
	cpu->exact = false;
	if (r < 0 || cpu->run->exit_reason == KVM_EXIT_INTR) {
		if (r < 0 && e != EINTR && e != EAGAIN) {
			errno = e;
			return kvm_ioerr("KVM_RUN (finding a landmark)");
		}
		kvm_set_immediate_exit(cpu, 0);
		*kicked = atomic_exchange(&cpu->kicked, false);
		return 0;
	}
	if (cpu->run->exit_reason == KVM_EXIT_DEBUG) {
		int err = kvm_clear_rf(cpu);
		return err ? err : 1;
	}
	if (cpu->run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
		/* An INT n the host could not run, performed here as during the recording;
		 * 2: one instruction done, no breakpoint hit. A triple fault leaves. */
		int sv;
		int err = kvm_internal_error(cpu, &sv);
		if (err)
			return err;
		if (sv < 0)
			return 2;
		st->left_by = "a triple fault";
		return VMM_SEEK_PASSED + 10;
	}
	if (cpu->run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		return kvm_exit_error(cpu);
	st->left_by = kvm_exit_name(cpu->run->exit_reason);
	return VMM_SEEK_PASSED + 10;
}

/*
 * Run the search until the debug exit it asked for (1), or until it must end (0, with
 * *res VMM_SEEK_INTERRUPTED or VMM_SEEK_PASSED), or a negative vmm_err.
 */
static int kvm_seek_until_debug(struct vmm_cpu *cpu, struct vmm_seek_stats *st, int *res)
{
	for (;;) {
		bool kicked;
		int r = kvm_seek_step(cpu, st, &kicked);
		if (r < 0)
			return r;
		if (kicked) {
			*res = VMM_SEEK_INTERRUPTED;
			return 0;
		}
		if (r == VMM_SEEK_PASSED + 10) {
			*res = VMM_SEEK_PASSED;
			return 0;
		}
		if (r == 1)
			return 1;
	}
}

/*
 * Replay's side of a landmark: the guest is at the landmark's position (right after the
 * exit it counts, or at the previous landmark). Inject what is due, as run() would before
 * entering, then run with a hardware breakpoint at the landmark's RIP and compare the
 * state at each hit; equal state means this is the point (an earlier pass through the
 * same RIP differs in a register or a page written). A non-matching hit is stepped over
 * with the breakpoint off (this host's KVM does not honour RFLAGS.RF). Any exit first
 * means the recording's point is not on this path: VMM_SEEK_PASSED.
 */
static int kvm_seek_landmark(struct vmm_cpu *cpu, const struct vmm_landmark *lm,
			     struct vmm_seek_stats *st)
{
	kvm_enter_run(cpu);
	int err = kvm_prepare(cpu);
	bool at = false, debugging = false;
	int res = VMM_SEEK_FOUND;
	if (!err)
		err = kvm_at_landmark(cpu, lm, &at);
	if (err || at)
		goto out;
	err = kvm_set_debug_ctl(cpu, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, lm->rip);
	if (err)
		goto out;
	debugging = true;
	for (;;) {
		int r = kvm_seek_until_debug(cpu, st, &res);
		if (r <= 0) {
			err = r;
			goto out;
		}
		err = kvm_at_landmark(cpu, lm, &at);
		if (err || at)
			goto out;
		st->hits++;
		/* Step over the instruction at the breakpoint, then arm it again. */
		err = kvm_set_debug_ctl(cpu, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP, 0);
		if (err)
			goto out;
		r = kvm_seek_until_debug(cpu, st, &res);
		if (r <= 0) {
			err = r;
			goto out;
		}
		err = kvm_set_debug_ctl(cpu, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, lm->rip);
		if (err)
			goto out;
	}
out:
	if (debugging || cpu->stepping) {
		cpu->stepping = true; /* so that this turns all guest debugging off */
		int e2 = kvm_set_stepping(cpu, false);
		if (!err)
			err = e2;
	}
	atomic_store(&cpu->in_run, false);
	if (err)
		return err;
	if (res == VMM_SEEK_FOUND) {
		memset(cpu->dirty, 0, cpu->dirty_words * sizeof(uint64_t));
		cpu->exact = true;
	}
	return res;
}

/* Positions are exits already; the digest is the only choice (docs/kvm-backend.md). */
static int kvm_portable(struct vmm_cpu *cpu, unsigned flags)
{
	if (flags & ~VMM_PORT_DIGEST)
		return vmm_fail(VMM_EINVAL, "kvm: unknown portable-log flags %#x", flags);
	cpu->arch_digest = flags & VMM_PORT_DIGEST;
	return 0;
}

const struct vmm_cpu_ops kvm_cpu_ops = {
	.name = "kvm",
	.probe = kvm_probe,
	.create = kvm_create,
	.destroy = kvm_destroy,
	.reset_pvh = kvm_reset_pvh,
	.run = kvm_run,
	.kick = kvm_kick,
	.pos = kvm_pos,
	.get_regs = kvm_get_regs,
	.set_regs = kvm_set_regs,
	.get_fpregs = kvm_get_fpregs,
	.intr_changed = kvm_intr_changed,
	.save = kvm_save,
	.load = kvm_load,
	.read_virt = kvm_read_virt,
	.landmark = kvm_landmark,
	.seek_landmark = kvm_seek_landmark,
	.portable = kvm_portable,
};

#else /* !__x86_64__ */

/* Elsewhere the backend exists only to say why it cannot run. */
static int kvm_probe(void)
{
	return vmm_fail(VMM_ENOKVM, "KVM backend: this build is not for x86-64; use --backend emu");
}

static int kvm_create(struct vmm_machine *m, struct vmm_cpu **out)
{
	(void)m;
	*out = NULL;
	return kvm_probe();
}

const struct vmm_cpu_ops kvm_cpu_ops = {
	.name = "kvm",
	.probe = kvm_probe,
	.create = kvm_create,
};

#endif
