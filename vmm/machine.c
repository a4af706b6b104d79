/*
 * machine.c: the PC subset (docs/architecture.md) put together: guest RAM, the device table,
 * port dispatch, the machine clock and timers, interrupt routing into the 8259 pair, and
 * the run loop that drives a vCPU backend and the input boundary (input.h).
 *
 * The run loop is the only place that decides when asynchronous events land: it calls
 * input->poll at every stop of the vCPU, input->idle when the guest halts with
 * interrupts enabled, and bounds each run by input->run_budget.
 */
#include "machine.h"

#include "devices.h"
#include "loader.h"

#include <endian.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <xxhash.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The devices, in the order they are created, saved and loaded. */
static const struct vmm_dev_ops *const machine_devices[] = {
	&pic_dev_ops,   /* first: the others raise lines into it */
	&pit_dev_ops, &rtc_dev_ops, &uart_dev_ops, &debugexit_dev_ops, &sysctl_dev_ops,
};
#define NDEV (sizeof(machine_devices) / sizeof(machine_devices[0]))

#define MAX_TIMERS 16
#define NO_DEV 0xff

struct vmm_machine {
	struct vmm_config cfg;
	uint8_t *ram;
	uint64_t ram_size;
	struct vmm_cpu *cpu;
	void *dev[NDEV];
	uint8_t port_dev[65536];   /* device index per port, NO_DEV if none */
	uint8_t port_range[65536]; /* range index inside that device */
	struct vmm_timer *timers[MAX_TIMERS];
	unsigned ntimers;
	atomic_int stop_reason; /* enum vmm_stop_reason requested by a device, 0 if none */
	uint32_t stop_value;
	bool halted;
	atomic_bool interrupt; /* vmm_machine_interrupt: do not wait for a halted guest */
	/*
	 * Where the last interrupt was acknowledged, and a position whose events must not
	 * be polled for again: a debug stop there came after the acknowledge, and events
	 * that land at a position must all come before it, as replay delivers them (an
	 * event polled now would be logged at this position, before the INTA on replay).
	 */
	vmm_pos_t inta_pos, no_poll_pos;
	uint64_t (*unhandled)[2]; /* per port: reads, writes (allocated on first use) */
	int pagemap_fd;           /* /proc/self/pagemap, or -1: every page is read */
	unsigned portable;        /* VMM_PORT_* (vmm_machine_set_portable) */
};

static void *find_dev(struct vmm_machine *m, const struct vmm_dev_ops *ops)
{
	for (size_t i = 0; i < NDEV; i++)
		if (machine_devices[i] == ops)
			return m->dev[i];
	return NULL;
}

int vmm_machine_create(const struct vmm_config *cfg, struct vmm_machine **out)
{
	int rc;
	if (cfg->mem_size < VMM_MEM_MIN || cfg->mem_size > VMM_MEM_MAX ||
	    (cfg->mem_size & 0xfff))
		return vmm_fail(VMM_EINVAL,
				"memory size %llu bytes: must be a multiple of 4 KiB between %u MiB "
				"and %llu GiB",
				(unsigned long long)cfg->mem_size, VMM_MEM_MIN >> 20,
				(unsigned long long)(VMM_MEM_MAX >> 30));
	struct vmm_machine *m = calloc(1, sizeof(*m));
	if (!m)
		return -VMM_ENOMEM;
	m->cfg = *cfg;
	m->ram_size = cfg->mem_size;
	m->inta_pos = m->no_poll_pos = UINT64_MAX;
	/* Only the memory hash's shortcut needs it: without it, hashes cost more, not less. */
	m->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	m->ram = mmap(NULL, m->ram_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->ram == MAP_FAILED) {
		m->ram = NULL;
		rc = vmm_fail(VMM_ENOMEM, "cannot reserve %llu MiB of guest memory",
			      (unsigned long long)(m->ram_size >> 20));
		goto fail;
	}
	memset(m->port_dev, NO_DEV, sizeof(m->port_dev));
	for (size_t i = 0; i < NDEV; i++) {
		const struct vmm_dev_ops *ops = machine_devices[i];
		rc = ops->create(m, &m->dev[i]);
		if (rc < 0)
			goto fail;
		for (unsigned r = 0; r < VMM_DEV_MAX_RANGES && ops->ranges[r].count; r++)
			for (unsigned p = 0; p < ops->ranges[r].count; p++) {
				unsigned port = ops->ranges[r].base + p;
				m->port_dev[port] = (uint8_t)i;
				m->port_range[port] = (uint8_t)r;
			}
	}
	rc = cfg->backend->create(m, &m->cpu);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	vmm_machine_destroy(m);
	return rc;
}

void vmm_machine_destroy(struct vmm_machine *m)
{
	if (!m)
		return;
	if (m->cpu)
		m->cfg.backend->destroy(m->cpu);
	for (size_t i = 0; i < NDEV; i++)
		if (m->dev[i])
			machine_devices[i]->destroy(m->dev[i]);
	if (m->ram)
		munmap(m->ram, m->ram_size);
	if (m->pagemap_fd >= 0)
		close(m->pagemap_fd);
	free(m->unhandled);
	free(m);
}

uint8_t *vmm_machine_ram(struct vmm_machine *m)
{
	return m->ram;
}

uint64_t vmm_machine_ram_size(struct vmm_machine *m)
{
	return m->ram_size;
}

struct vmm_cpu *vmm_machine_cpu(struct vmm_machine *m)
{
	return m->cpu;
}

const struct vmm_cpu_ops *vmm_machine_backend(struct vmm_machine *m)
{
	return m->cfg.backend;
}

int vmm_machine_load(struct vmm_machine *m, const void *elf, size_t len, const char *cmdline)
{
	return vmm_machine_load_initrd(m, elf, len, cmdline, NULL, 0);
}

int vmm_machine_load_initrd(struct vmm_machine *m, const void *elf, size_t len,
			    const char *cmdline, const void *initrd, size_t initrd_len)
{
	struct vmm_load_result res;
	int rc = vmm_load_pvh_initrd(m->ram, m->ram_size, elf, len, cmdline, initrd, initrd_len,
				     &res);
	if (rc < 0)
		return rc;
	m->halted = false;
	m->inta_pos = m->no_poll_pos = UINT64_MAX;
	atomic_store(&m->stop_reason, 0);
	return m->cfg.backend->reset_pvh(m->cpu, res.entry, res.start_info);
}

vmm_pos_t vmm_machine_pos(struct vmm_machine *m)
{
	return m->cfg.backend->pos(m->cpu);
}

int vmm_machine_landmark(struct vmm_machine *m, struct vmm_landmark *lm)
{
	if (!m->cfg.backend->landmark)
		return 0;
	return m->cfg.backend->landmark(m->cpu, lm);
}

int vmm_machine_seek_landmark(struct vmm_machine *m, const struct vmm_landmark *lm,
			      struct vmm_seek_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!m->cfg.backend->seek_landmark)
		return vmm_fail(VMM_EBACKEND, "the %s backend cannot place landmarks",
				m->cfg.backend->name);
	int rc = m->cfg.backend->seek_landmark(m->cpu, lm, st);
	/* A landmark is taken only where the vCPU ran or took an interrupt, never while
	 * the run loop held it halted: found, the guest is not halted either. */
	if (rc == VMM_SEEK_FOUND)
		m->halted = false;
	return rc;
}

int vmm_machine_set_portable(struct vmm_machine *m, unsigned flags)
{
	if (!flags)
		return 0;
	if (!m->cfg.backend->portable)
		return vmm_fail(VMM_EINVAL, "the %s backend cannot replay portable logs",
				m->cfg.backend->name);
	int rc = m->cfg.backend->portable(m->cpu, flags);
	if (rc == 0)
		m->portable = flags;
	return rc;
}

bool vmm_machine_adopt_flags(struct vmm_machine *m, uint64_t regs_hash)
{
	if (!(m->portable & VMM_PORT_EXITS) || (m->portable & VMM_PORT_OWN_FLAGS))
		return false;
	struct vmm_regs r;
	struct vmm_fpregs f;
	memset(&r, 0, sizeof(r));
	memset(&f, 0, sizeof(f));
	if (m->cfg.backend->get_regs(m->cpu, &r) < 0 ||
	    m->cfg.backend->get_fpregs(m->cpu, &f) < 0)
		return false;
	uint64_t own = r.rflags;
	for (unsigned k = 0; k < 64; k++) {
		r.rflags = vmm_status_flags(own, k);
		if (r.rflags != own && vmm_arch_digest(&r, &f, -1, 0) == regs_hash)
			return m->cfg.backend->set_regs(m->cpu, &r) == 0;
	}
	return false;
}

void vmm_machine_kick(struct vmm_machine *m)
{
	m->cfg.backend->kick(m->cpu);
}

static bool guest_if(struct vmm_machine *m)
{
	struct vmm_regs r;
	if (m->cfg.backend->get_regs(m->cpu, &r) < 0)
		return false;
	return (r.rflags >> 9) & 1;
}

void vmm_machine_set_input(struct vmm_machine *m, const struct vmm_input_ops *input,
			   void *input_opaque, const struct vmm_input_tap *tap, void *tap_opaque)
{
	m->cfg.input = input;
	m->cfg.input_opaque = input_opaque;
	m->cfg.tap = tap;
	m->cfg.tap_opaque = tap_opaque;
}

int vmm_machine_run(struct vmm_machine *m, struct vmm_stop *stop)
{
	return vmm_machine_run_until(m, UINT64_MAX, stop);
}

/* Positions count exits, and the backend counts instructions alongside. */
static bool insns_apart(const struct vmm_machine *m)
{
	return (m->portable & VMM_PORT_EXITS) && m->cfg.backend->insns &&
	       m->cfg.backend->limit_insns;
}

vmm_pos_t vmm_machine_insns(struct vmm_machine *m)
{
	if (m->cfg.backend->insns)
		return m->cfg.backend->insns(m->cpu);
	return vmm_machine_pos(m);
}

static int run_loop(struct vmm_machine *m, vmm_pos_t until, bool by_insn,
		    struct vmm_stop *stop);

int vmm_machine_run_until(struct vmm_machine *m, vmm_pos_t until, struct vmm_stop *stop)
{
	return run_loop(m, until, false, stop);
}

int vmm_machine_run_until_insn(struct vmm_machine *m, vmm_pos_t until, struct vmm_stop *stop)
{
	if (!insns_apart(m))
		return run_loop(m, until, false, stop);
	m->cfg.backend->limit_insns(m->cpu, until);
	int rc = run_loop(m, until, true, stop);
	m->cfg.backend->limit_insns(m->cpu, UINT64_MAX);
	return rc;
}

/*
 * The run loop. until is a position, or with by_insn an instruction count: then the
 * backend stops there itself (limit_insns), and so does a landmark search that a poll
 * starts (it ends as interrupted, and the next poll there goes on with it).
 */
static int run_loop(struct vmm_machine *m, vmm_pos_t until, bool by_insn,
		    struct vmm_stop *stop)
{
	const struct vmm_input_ops *in = m->cfg.input;
	void *op = m->cfg.input_opaque;
	const struct vmm_cpu_ops *cpu = m->cfg.backend;
	memset(stop, 0, sizeof(*stop));
	for (;;) {
		int why = atomic_load(&m->stop_reason);
		if (why) {
			stop->reason = why;
			stop->exit_value = m->stop_value;
			stop->pos = vmm_machine_pos(m);
			return 0;
		}
		vmm_pos_t pos = vmm_machine_pos(m);
		if ((by_insn ? vmm_machine_insns(m) : pos) >= until) {
			/* A stop at P is after P's input, as a breakpoint or watchpoint stop
			 * reached there is: one position, one state (docs/time-travel.md). */
			if (!(m->halted && !guest_if(m)) && pos != m->no_poll_pos) {
				int rc = in->poll(op, m);
				if (rc < 0)
					return rc;
			}
			stop->reason = VMM_STOP_LIMIT;
			stop->pos = pos;
			return 0;
		}
		/* A halt with interrupts disabled ends the machine before any input is taken:
		 * nothing can wake it, and a replay must find the recording's end at this
		 * position, not an event the recorder might have polled here. */
		if (m->halted && !guest_if(m)) {
			stop->reason = VMM_STOP_HALTED;
			stop->pos = pos;
			return 0;
		}
		int rc = pos == m->no_poll_pos ? 0 : in->poll(op, m);
		if (rc < 0)
			return rc;
		if (rc == VMM_INPUT_STOP) {
			stop->reason = VMM_STOP_USER;
			stop->pos = vmm_machine_pos(m);
			return 0;
		}
		if (m->halted) {
			if (vmm_intr_pending(m)) {
				m->halted = false; /* IF is set: see above */
			} else if (atomic_load(&m->interrupt)) {
				stop->reason = VMM_STOP_LIMIT;
				stop->pos = pos;
				return 0;
			} else {
				rc = in->idle(op, m);
				if (rc < 0)
					return rc;
				if (rc == VMM_INPUT_STOP) {
					stop->reason = VMM_STOP_USER;
					stop->pos = vmm_machine_pos(m);
					return 0;
				}
				continue;
			}
		}
		struct vmm_exit ex = {0};
		uint64_t budget = in->run_budget(op, m);
		pos = vmm_machine_pos(m);
		if (!by_insn && until != UINT64_MAX && until > pos && until - pos < budget)
			budget = until - pos;
		rc = cpu->run(m->cpu, budget, &ex);
		if (rc < 0)
			return rc;
		switch (ex.reason) {
		case VMM_EXIT_HLT:
			m->halted = true;
			break;
		case VMM_EXIT_SHUTDOWN:
			stop->reason = VMM_STOP_TRIPLE_FAULT;
			stop->vector = ex.vector;
			stop->regs_lost = ex.regs_lost;
			stop->pos = vmm_machine_pos(m);
			return 0;
		case VMM_EXIT_BREAK:
		case VMM_EXIT_WATCH:
			stop->reason = ex.reason == VMM_EXIT_BREAK ? VMM_STOP_BREAK : VMM_STOP_WATCH;
			stop->pos = vmm_machine_pos(m);
			/* Exit counting needs no such rule: an event after the acknowledge at a
			 * position is named by a landmark, which a poll here searches for. */
			if (stop->pos == m->inta_pos && !(m->portable & VMM_PORT_EXITS))
				m->no_poll_pos = stop->pos;
			stop->addr = ex.addr;
			stop->access = ex.access;
			return 0;
		case VMM_EXIT_BUDGET:
		case VMM_EXIT_KICK:
		case VMM_EXIT_POWEROFF:
			break;
		}
	}
}

#define RAM_PAGE      4096u
#define PAGEMAP_BATCH 4096 /* pagemap entries read at once: 16 MiB of RAM */
#define PM_PRESENT    (1ull << 63)
#define PM_SWAPPED    (1ull << 62)

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (size_t i = 0; i < RAM_PAGE / 8; i += 8) {
		/* a cache line at a time: a non-zero page is usually told by its first */
		uint64_t acc = 0;
		for (size_t k = 0; k < 8; k++)
			acc |= q[i + k];
		if (acc)
			return false;
	}
	return true;
}

/*
 * The memory hash (logfmt/FORMAT.md, "State hashes"): XXH3-64 over the number of RAM
 * pages, then each page that is not all zero, in address order, as its page number
 * and its 4096 bytes. It is a function of RAM's contents alone, so record and replay
 * agree whatever their hosts did, yet it need not read pages the guest never touched:
 * reading one costs a page fault, and a hash of all of a 128 MiB guest's RAM used to
 * cost about 0.35 s in this VM, most of a short recording. A page the host's page
 * tables hold neither present nor swapped out (/proc/self/pagemap) has not been
 * written since RAM was mapped, and reads as zero; every other page is read and
 * checked. Without pagemap every page is read: slower, the same value.
 */
static int hash_ram(struct vmm_machine *m, uint64_t *out)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return -VMM_ENOMEM;
	XXH3_64bits_reset(st);
	uint64_t npages = m->ram_size / RAM_PAGE;
	uint64_t le = htole64(npages);
	XXH3_64bits_update(st, &le, sizeof(le));
	uint64_t pm[PAGEMAP_BATCH];
	for (uint64_t base = 0; base < npages; base += PAGEMAP_BATCH) {
		uint64_t n = npages - base < PAGEMAP_BATCH ? npages - base : PAGEMAP_BATCH;
		const uint8_t *ram = m->ram + base * RAM_PAGE;
		bool known = false;
		if (m->pagemap_fd >= 0) {
			off_t at = (off_t)(((uintptr_t)ram / RAM_PAGE) * sizeof(uint64_t));
			size_t want = n * sizeof(uint64_t);
			known = pread(m->pagemap_fd, pm, want, at) == (ssize_t)want;
		}
		for (uint64_t i = 0; i < n; i++) {
			if (known && !(pm[i] & (PM_PRESENT | PM_SWAPPED)))
				continue;
			const uint8_t *pg = ram + i * RAM_PAGE;
			if (page_is_zero(pg))
				continue;
			le = htole64(base + i);
			XXH3_64bits_update(st, &le, sizeof(le));
			XXH3_64bits_update(st, pg, RAM_PAGE);
		}
	}
	*out = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

int vmm_machine_hash(struct vmm_machine *m, uint64_t *regs, uint64_t *mem)
{
	if (regs) {
		struct vmm_regs r;
		memset(&r, 0, sizeof(r)); /* padding too: the hash covers the whole struct */
		int rc = m->cfg.backend->get_regs(m->cpu, &r);
		if (rc < 0)
			return rc;
		if (m->portable & VMM_PORT_DIGEST) {
			struct vmm_fpregs f;
			memset(&f, 0, sizeof(f));
			rc = m->cfg.backend->get_fpregs(m->cpu, &f);
			if (rc < 0)
				return rc;
			*regs = vmm_arch_digest(&r, &f, -1, 0);
		} else {
			*regs = XXH3_64bits(&r, sizeof(r));
		}
	}
	if (mem)
		return hash_ram(m, mem);
	return 0;
}

size_t vmm_machine_unhandled(struct vmm_machine *m, struct vmm_unhandled *out, size_t cap)
{
	size_t n = 0;
	if (!m->unhandled)
		return 0;
	for (unsigned p = 0; p < 65536; p++) {
		if (!m->unhandled[p][0] && !m->unhandled[p][1])
			continue;
		if (n < cap) {
			out[n].port = (uint16_t)p;
			out[n].reads = m->unhandled[p][0];
			out[n].writes = m->unhandled[p][1];
		}
		n++;
	}
	return n;
}

/* ---- devices ---------------------------------------------------------------------- */

void vmm_irq_set(struct vmm_machine *m, unsigned line, int level)
{
	void *pic = m->dev[0];
	if (line >= 16 || !pic)
		return;
	pic_set_irq(pic, line, level);
	if (m->cfg.backend->intr_changed && m->cpu)
		m->cfg.backend->intr_changed(m->cpu);
}

uint64_t vmm_clock_ns(struct vmm_machine *m)
{
	return m->cfg.input->clock_read(m->cfg.input_opaque, m);
}

int vmm_timer_register(struct vmm_machine *m, struct vmm_timer *t, const char *name,
		       void (*fire)(void *), void *opaque)
{
	if (m->ntimers >= MAX_TIMERS)
		return vmm_fail(VMM_EINTERNAL, "too many device timers");
	memset(t, 0, sizeof(*t));
	t->fire = fire;
	t->opaque = opaque;
	t->name = name;
	t->id = (int)m->ntimers;
	m->timers[m->ntimers++] = t;
	return t->id;
}

void vmm_timer_arm(struct vmm_machine *m, struct vmm_timer *t, uint64_t deadline_ns)
{
	t->deadline = deadline_ns;
	t->armed = true;
	m->cfg.input->timers_changed(m->cfg.input_opaque, m);
}

void vmm_timer_cancel(struct vmm_machine *m, struct vmm_timer *t)
{
	t->armed = false;
	m->cfg.input->timers_changed(m->cfg.input_opaque, m);
}

void vmm_machine_request_stop(struct vmm_machine *m, enum vmm_stop_reason why, uint32_t value)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&m->stop_reason, &expected, (int)why))
		m->stop_value = value;
}

bool vmm_machine_stop_requested(struct vmm_machine *m)
{
	return atomic_load(&m->stop_reason) != 0;
}

unsigned vmm_timer_count(struct vmm_machine *m)
{
	return m->ntimers;
}

struct vmm_timer *vmm_timer_get(struct vmm_machine *m, unsigned id)
{
	return id < m->ntimers ? m->timers[id] : NULL;
}

uint64_t vmm_timer_next_deadline(struct vmm_machine *m)
{
	uint64_t d = UINT64_MAX;
	for (unsigned i = 0; i < m->ntimers; i++)
		if (m->timers[i]->armed && m->timers[i]->deadline < d)
			d = m->timers[i]->deadline;
	return d;
}

void vmm_timer_fire(struct vmm_machine *m, unsigned id)
{
	struct vmm_timer *t = vmm_timer_get(m, id);
	if (!t)
		return;
	if (m->cfg.tap && m->cfg.tap->timer)
		m->cfg.tap->timer(m->cfg.tap_opaque, m, id);
	t->armed = false;
	t->fire(t->opaque);
}

size_t vmm_serial_rx_room(struct vmm_machine *m)
{
	void *u = find_dev(m, &uart_dev_ops);
	return u ? uart_rx_room(u) : 0;
}

void vmm_serial_rx(struct vmm_machine *m, const uint8_t *buf, size_t n)
{
	void *u = find_dev(m, &uart_dev_ops);
	if (!u || !n)
		return;
	if (m->cfg.tap && m->cfg.tap->serial_rx)
		m->cfg.tap->serial_rx(m->cfg.tap_opaque, m, buf, n);
	uart_rx(u, buf, n);
}

void vmm_serial_tx(struct vmm_machine *m, uint8_t byte)
{
	m->cfg.input->serial_tx(m->cfg.input_opaque, m, byte);
}

/* ---- backends ------------------------------------------------------------------------ */

void vmm_pio(struct vmm_machine *m, uint16_t port, unsigned size, bool write, uint32_t *val)
{
	uint8_t d = m->port_dev[port];
	if (d == NO_DEV) {
		if (!m->unhandled)
			m->unhandled = calloc(65536, sizeof(*m->unhandled));
		if (m->unhandled)
			m->unhandled[port][write ? 1 : 0]++;
		if (!write)
			*val = size == 4 ? 0xffffffffu : (size == 2 ? 0xffffu : 0xffu);
		return;
	}
	const struct vmm_dev_ops *ops = machine_devices[d];
	unsigned r = m->port_range[port];
	uint16_t off = (uint16_t)(port - ops->ranges[r].base);
	if (write) {
		if (ops->pio_write)
			ops->pio_write(m->dev[d], r, off, size, *val);
	} else {
		*val = ops->pio_read ? ops->pio_read(m->dev[d], r, off, size)
				     : (size == 4 ? 0xffffffffu : (size == 2 ? 0xffffu : 0xffu));
	}
}

bool vmm_intr_pending(struct vmm_machine *m)
{
	return pic_intr(m->dev[0]);
}

uint8_t vmm_intr_ack(struct vmm_machine *m)
{
	m->inta_pos = vmm_machine_pos(m);
	return pic_ack(m->dev[0]);
}

/* ---- state ----------------------------------------------------------------------------- */

#define MACHINE_STATE_MAGIC 0x524d5354u /* "RMST" */

struct machine_state_hdr {
	uint32_t magic, version;
	uint64_t ram_size;
	uint32_t ndev, halted;
	uint64_t cpu_len;
};

/* The machine state with RAM (save) or without (snapshot: ram_size 0 in the header). */
static int save_common(struct vmm_machine *m, bool with_ram, void **blob, size_t *len)
{
	void *cpu_blob = NULL;
	size_t cpu_len = 0;
	int rc = m->cfg.backend->save(m->cpu, &cpu_blob, &cpu_len);
	if (rc < 0)
		return rc;
	uint64_t ram = with_ram ? m->ram_size : 0;
	size_t total = sizeof(struct machine_state_hdr) + cpu_len + ram;
	for (size_t i = 0; i < NDEV; i++)
		total += machine_devices[i]->state_size;
	uint8_t *b = malloc(total);
	if (!b) {
		free(cpu_blob);
		return -VMM_ENOMEM;
	}
	struct machine_state_hdr h = {.magic = MACHINE_STATE_MAGIC,
				      .version = 1,
				      .ram_size = ram,
				      .ndev = NDEV,
				      .halted = m->halted,
				      .cpu_len = cpu_len};
	uint8_t *p = b;
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	for (size_t i = 0; i < NDEV; i++) {
		machine_devices[i]->save(m->dev[i], p);
		p += machine_devices[i]->state_size;
	}
	memcpy(p, cpu_blob, cpu_len);
	p += cpu_len;
	if (with_ram)
		memcpy(p, m->ram, m->ram_size);
	free(cpu_blob);
	*blob = b;
	*len = total;
	return 0;
}

static int load_common(struct vmm_machine *m, bool with_ram, const void *blob, size_t len)
{
	struct machine_state_hdr h;
	const uint8_t *p = blob;
	uint64_t ram = with_ram ? m->ram_size : 0;
	if (len < sizeof(h))
		return vmm_fail(VMM_ESTATE, "machine state: too short");
	memcpy(&h, p, sizeof(h));
	size_t need = sizeof(h) + h.cpu_len + ram;
	for (size_t i = 0; i < NDEV; i++)
		need += machine_devices[i]->state_size;
	if (h.magic != MACHINE_STATE_MAGIC || h.version != 1 || h.ndev != NDEV ||
	    h.ram_size != ram || h.cpu_len > len || len != need)
		return vmm_fail(VMM_ESTATE, "machine state: bad header, size or machine config");
	p += sizeof(h);
	for (size_t i = 0; i < NDEV; i++) {
		int rc = machine_devices[i]->load(m->dev[i], p);
		if (rc < 0)
			return rc;
		p += machine_devices[i]->state_size;
	}
	if (with_ram)
		memcpy(m->ram, p + h.cpu_len, m->ram_size);
	/* The CPU last: it drops what it translated from RAM as it was. */
	int rc = m->cfg.backend->load(m->cpu, p, h.cpu_len);
	if (rc < 0)
		return rc;
	m->halted = h.halted;
	m->inta_pos = m->no_poll_pos = UINT64_MAX;
	atomic_store(&m->stop_reason, 0);
	return 0;
}

int vmm_machine_save(struct vmm_machine *m, void **blob, size_t *len)
{
	return save_common(m, true, blob, len);
}

int vmm_machine_load_state(struct vmm_machine *m, const void *blob, size_t len)
{
	return load_common(m, true, blob, len);
}

int vmm_machine_snapshot(struct vmm_machine *m, void **blob, size_t *len)
{
	return save_common(m, false, blob, len);
}

int vmm_machine_restore(struct vmm_machine *m, const void *blob, size_t len)
{
	return load_common(m, false, blob, len);
}

int vmm_machine_set_debug(struct vmm_machine *m, const struct vmm_debug *d)
{
	if (!m->cfg.backend->set_debug)
		return vmm_fail(VMM_EBACKEND, "the %s backend has no breakpoints or watchpoints "
				"yet: use --backend emu", m->cfg.backend->name);
	return m->cfg.backend->set_debug(m->cpu, d);
}

int vmm_machine_write_virt(struct vmm_machine *m, uint64_t va, const void *buf, size_t len)
{
	if (!m->cfg.backend->write_virt)
		return vmm_fail(VMM_EBACKEND, "the %s backend cannot write guest memory for a "
				"debugger yet: use --backend emu", m->cfg.backend->name);
	return m->cfg.backend->write_virt(m->cpu, va, buf, len);
}

void vmm_machine_interrupt(struct vmm_machine *m, bool on)
{
	atomic_store(&m->interrupt, on);
	if (on && m->cfg.input->wake)
		m->cfg.input->wake(m->cfg.input_opaque);
}

int vmm_machine_track(struct vmm_machine *m, struct vmm_track *t)
{
	if (!m->cfg.backend->track)
		return vmm_fail(VMM_EBACKEND, "the %s backend cannot track memory writes for "
				"checkpoints yet: use --backend emu", m->cfg.backend->name);
	return m->cfg.backend->track(m->cpu, t);
}
