/* unit */
/*
 * test_machine.c: the machine and the emu backend under a deterministic input boundary
 * (time derived from the instruction count, idle time skipped): exact stops at any
 * instruction count, determinism of timer interrupts, and save/load of the whole machine
 * into a fresh one that then runs on identically, and the memory hash. Then what a
 * debugger needs of it: memory writes that code picks up, register writes, ending the
 * wait for a halted guest, and a live clock held while the guest is stopped.
 */
#include "vmm/cpu.h"
#include "vmm/live.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include <criterion/criterion.h>
#include <endian.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

/* Virtual time: 1 ns per instruction, plus the time skipped while idle. */
struct vin {
	uint64_t skew;
	char out[1 << 16];
	size_t len;
	uint64_t clock_reads;
	vmm_pos_t last_poll; /* where poll was last called */
	uint64_t polls_at_mark; /* polls at position `mark` */
	vmm_pos_t mark;
};

static uint64_t v_now(struct vin *v, struct vmm_machine *m)
{
	return 1600000000ull * 1000000000ull + vmm_machine_pos(m) + v->skew;
}

static uint64_t v_clock(void *o, struct vmm_machine *m)
{
	struct vin *v = o;
	v->clock_reads++;
	return v_now(v, m);
}

static int v_poll(void *o, struct vmm_machine *m)
{
	struct vin *v = o;
	uint64_t now = v_now(o, m);
	v->last_poll = vmm_machine_pos(m);
	if (v->last_poll == v->mark)
		v->polls_at_mark++;

	for (unsigned i = 0; i < vmm_timer_count(m); i++) {
		struct vmm_timer *t = vmm_timer_get(m, i);
		if (t->armed && t->deadline <= now)
			vmm_timer_fire(m, i);
	}
	return 0;
}

static int v_idle(void *o, struct vmm_machine *m)
{
	struct vin *v = o;
	uint64_t d = vmm_timer_next_deadline(m), now = v_now(v, m);
	if (d == UINT64_MAX)
		return VMM_INPUT_STOP; /* nothing will ever wake it */
	if (d > now)
		v->skew += d - now;
	return v_poll(o, m);
}

static uint64_t v_budget(void *o, struct vmm_machine *m)
{
	uint64_t d = vmm_timer_next_deadline(m), now = v_now(o, m);
	if (d == UINT64_MAX)
		return UINT64_MAX;
	return d > now ? d - now : 0;
}

/* A deadline moved: stop the vCPU so the run loop recomputes the budget. */
static void v_timers_changed(void *o, struct vmm_machine *m)
{
	(void)o;
	vmm_machine_kick(m);
}

static void v_tx(void *o, struct vmm_machine *m, uint8_t b)
{
	struct vin *v = o;
	(void)m;
	if (v->len < sizeof(v->out) - 1)
		v->out[v->len++] = (char)b;
}

static const struct vmm_input_ops vin_ops = {
	.clock_read = v_clock,
	.poll = v_poll,
	.idle = v_idle,
	.run_budget = v_budget,
	.timers_changed = v_timers_changed,
	.serial_tx = v_tx,
};

static struct vmm_machine *boot(struct vin *v, const char *guest, const char *cmdline)
{
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/guests/%s.elf", b ? b : "build", guest);
	void *elf;
	size_t len;
	cr_assert_eq(vmm_read_file(path, 64u << 20, &elf, &len), 0, "%s: %s (run make)", path,
		     vmm_errdetail());
	struct vmm_config cfg = {.mem_size = 64u << 20,
				 .backend = &emu_cpu_ops,
				 .input = &vin_ops,
				 .input_opaque = v};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0, "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_load(m, elf, len, cmdline), 0, "%s", vmm_errdetail());
	free(elf);
	return m;
}

/* Run to the end; returns the debug-exit value. */
static uint32_t finish(struct vmm_machine *m)
{
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(m, &st), 0, "%s", vmm_errdetail());
	cr_assert_eq(st.reason, VMM_STOP_DEBUG_EXIT, "stop reason %d", st.reason);
	return st.exit_value;
}

/* Run the vCPU exactly n more instructions (no timers involved). */
static void step(struct vmm_machine *m, uint64_t n)
{
	const struct vmm_cpu_ops *ops = vmm_machine_backend(m);
	uint64_t want = vmm_machine_pos(m) + n;
	while (vmm_machine_pos(m) < want) {
		struct vmm_exit ex;
		cr_assert_eq(ops->run(vmm_machine_cpu(m), want - vmm_machine_pos(m), &ex), 0);
		cr_assert(ex.reason == VMM_EXIT_BUDGET || ex.reason == VMM_EXIT_KICK,
			  "unexpected exit %d", ex.reason);
	}
	cr_assert_eq(vmm_machine_pos(m), want);
}

Test(machine, exact_stops_at_any_count, .timeout = 60)
{
	static struct vin a, b;
	struct vmm_machine *straight = boot(&a, "compute", "n=2");
	struct vmm_machine *stepped = boot(&b, "compute", "n=2");
	/* Step in uneven strides through the start of the guest; after each, the
	 * registers equal those of a machine that ran the same count in one go. */
	uint64_t strides[] = {1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 1000, 4321};
	const struct vmm_cpu_ops *ops = &emu_cpu_ops;
	for (size_t i = 0; i < sizeof(strides) / sizeof(strides[0]); i++) {
		step(stepped, strides[i]);
		step(straight, strides[i]);
		struct vmm_regs r1, r2;
		ops->get_regs(vmm_machine_cpu(straight), &r1);
		ops->get_regs(vmm_machine_cpu(stepped), &r2);
		cr_assert_eq(r1.rip, r2.rip, "stride %zu: rip %#lx vs %#lx", i, r1.rip, r2.rip);
		cr_assert_eq(memcmp(&r1, &r2, sizeof(r1)), 0, "stride %zu: registers differ", i);
	}
	uint32_t v1 = finish(straight), v2 = finish(stepped);
	cr_assert_eq(v1, 0);
	cr_assert_eq(v2, 0);
	cr_assert_eq(a.len, b.len);
	cr_assert_eq(memcmp(a.out, b.out, a.len), 0, "output differs");
	cr_assert_eq(vmm_machine_pos(straight), vmm_machine_pos(stepped));
	vmm_machine_destroy(straight);
	vmm_machine_destroy(stepped);
}

Test(machine, timer_interrupts_land_deterministically, .timeout = 60)
{
	/* race's result depends on exactly where each timer interrupt lands. */
	static struct vin a, b;
	struct vmm_machine *m1 = boot(&a, "race", "hz=1000 ticks=20");
	struct vmm_machine *m2 = boot(&b, "race", "hz=1000 ticks=20");
	cr_assert_eq(finish(m1), 0);
	cr_assert_eq(finish(m2), 0);
	a.out[a.len] = b.out[b.len] = 0;
	cr_assert(strstr(a.out, "race: ticks=20 "), "%s", a.out);
	cr_assert_str_eq(a.out, b.out);
	cr_assert_eq(vmm_machine_pos(m1), vmm_machine_pos(m2));
	cr_assert_gt(a.clock_reads, 0);
	vmm_machine_destroy(m1);
	vmm_machine_destroy(m2);
}

Test(machine, idle_guest_skips_time, .timeout = 60)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "timer", "hz=100 ticks=20");
	cr_assert_eq(finish(m), 0);
	a.out[a.len] = 0;
	cr_assert(strstr(a.out, "timer: done, 20 ticks"), "%s", a.out);
	/* 20 ticks at 100 Hz is 0.2 s of guest time, nearly all of it skipped while idle. */
	cr_assert_gt(a.skew, 150000000ull);
	vmm_machine_destroy(m);
}

Test(machine, save_load_into_fresh_machine, .timeout = 60)
{
	static struct vin a, b;
	struct vmm_machine *m1 = boot(&a, "race", "hz=2000 ticks=30");
	/* Run into the middle of the run: timers armed, interrupts flowing. */
	struct vmm_stop st;
	const struct vmm_cpu_ops *ops = &emu_cpu_ops;
	for (int i = 0; i < 40; i++) {
		struct vmm_exit ex;
		cr_assert_eq(vin_ops.poll(&a, m1), 0);
		cr_assert_eq(ops->run(vmm_machine_cpu(m1), 50000, &ex), 0);
	}
	void *blob;
	size_t len;
	cr_assert_eq(vmm_machine_save(m1, &blob, &len), 0, "%s", vmm_errdetail());
	struct vmm_machine *m2 = boot(&b, "race", "hz=2000 ticks=30");
	cr_assert_eq(vmm_machine_load_state(m2, blob, len), 0, "%s", vmm_errdetail());
	b.skew = a.skew;
	size_t at = a.len;
	/* Loading again from the saved state and saving gives the same bytes. */
	void *blob2;
	size_t len2;
	cr_assert_eq(vmm_machine_save(m2, &blob2, &len2), 0);
	cr_assert_eq(len, len2);
	size_t first = 0;
	while (first < len && ((uint8_t *)blob)[first] == ((uint8_t *)blob2)[first])
		first++;
	cr_assert_eq(first, len, "state differs after load, first at byte %zu of %zu", first, len);
	cr_assert_eq(vmm_machine_run(m1, &st), 0);
	cr_assert_eq(st.reason, VMM_STOP_DEBUG_EXIT);
	cr_assert_eq(vmm_machine_run(m2, &st), 0);
	cr_assert_eq(st.reason, VMM_STOP_DEBUG_EXIT);
	a.out[a.len] = b.out[b.len] = 0;
	cr_assert_eq(a.len - at, b.len, "output after the save point differs:\n%s\n--- vs ---\n%s", a.out + at, b.out);
	cr_assert_eq(memcmp(a.out + at, b.out, b.len), 0, "output after the save point differs");
	cr_assert_eq(vmm_machine_pos(m1), vmm_machine_pos(m2));
	cr_assert_eq(memcmp(vmm_machine_ram(m1), vmm_machine_ram(m2), vmm_machine_ram_size(m1)), 0,
		     "final memory differs");
	free(blob);
	free(blob2);
	vmm_machine_destroy(m1);
	vmm_machine_destroy(m2);
}

Test(machine, bad_state_is_refused)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "hello", NULL);
	void *blob;
	size_t len;
	cr_assert_eq(vmm_machine_save(m, &blob, &len), 0);
	cr_assert_eq(vmm_machine_load_state(m, blob, len - 1), -VMM_ESTATE);
	((uint8_t *)blob)[0] ^= 1;
	cr_assert_eq(vmm_machine_load_state(m, blob, len), -VMM_ESTATE);
	free(blob);
	vmm_machine_destroy(m);
}

Test(machine, bad_memory_size)
{
	struct vmm_config cfg = {.mem_size = 1u << 20, .backend = &emu_cpu_ops, .input = &vin_ops};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), -VMM_EINVAL);
	cfg.mem_size = (64u << 20) + 1;
	cr_assert_eq(vmm_machine_create(&cfg, &m), -VMM_EINVAL);
}

/* Run to the next time the guest is about to execute the instruction at rip. */
static void run_to(struct vmm_machine *m, uint64_t rip)
{
	struct vmm_debug d = {.bp = &rip, .nbp = 1, .pass_pos = vmm_machine_pos(m)};
	cr_assert_eq(vmm_machine_set_debug(m, &d), 0, "%s", vmm_errdetail());
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(m, &st), 0, "%s", vmm_errdetail());
	cr_assert_eq(st.reason, VMM_STOP_BREAK, "stop reason %d", st.reason);
	struct vmm_debug none = {.pass_pos = UINT64_MAX};
	cr_assert_eq(vmm_machine_set_debug(m, &none), 0);
}

Test(machine, written_code_runs_even_where_it_was_translated, .timeout = 60)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "compute", "n=3");
	const struct vmm_cpu_ops *ops = vmm_machine_backend(m);
	step(m, 300000); /* inside the sieve: a loop run many times */
	struct vmm_regs r;
	cr_assert_eq(ops->get_regs(vmm_machine_cpu(m), &r), 0);
	/* Come back to this instruction twice, so that a block starting there is translated
	 * and has run: the write below must not leave it in use. */
	run_to(m, r.rip);
	run_to(m, r.rip);
	/* mov eax, 42; out 0xf4, eax: isa-debug-exit with 42. */
	static const uint8_t code[] = {0xb8, 42, 0, 0, 0, 0xe7, 0xf4};
	cr_assert_eq(vmm_machine_write_virt(m, r.rip, code, sizeof(code)), 0, "%s",
		     vmm_errdetail());
	uint8_t back[sizeof(code)];
	cr_assert_eq(ops->read_virt(vmm_machine_cpu(m), r.rip, back, sizeof(back)), 0);
	cr_assert_eq(memcmp(back, code, sizeof(code)), 0);
	vmm_pos_t at = vmm_machine_pos(m);
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(m, &st), 0, "%s", vmm_errdetail());
	cr_assert_eq(st.reason, VMM_STOP_DEBUG_EXIT, "the old code ran on (stop %d)", st.reason);
	cr_assert_eq(st.exit_value, 42);
	cr_assert_eq(st.pos, at + 2, "stopped at %llu, after the out is %llu",
		     (unsigned long long)st.pos, (unsigned long long)at + 2);
	vmm_machine_destroy(m);
}

Test(machine, a_write_to_unmapped_memory_writes_nothing, .timeout = 60)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "compute", "n=1");
	step(m, 1000000); /* long mode, the first 4 GiB identity-mapped */
	struct vmm_regs r;
	cr_assert_eq(vmm_machine_backend(m)->get_regs(vmm_machine_cpu(m), &r), 0);
	cr_assert(r.efer & (1 << 10), "not in long mode yet");
	uint64_t end = vmm_machine_ram_size(m);
	uint8_t *ram = vmm_machine_ram(m);
	uint8_t before[4];
	memcpy(before, ram + end - 4, 4);
	static const uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	/* Half in RAM, half past its end. */
	cr_assert_eq(vmm_machine_write_virt(m, end - 4, junk, 8), -VMM_EGUEST);
	cr_assert_eq(memcmp(ram + end - 4, before, 4), 0, "a failed write changed memory");
	cr_assert_eq(vmm_machine_write_virt(m, 1ull << 44, junk, 8), -VMM_EGUEST);
	cr_assert(strstr(vmm_errdetail(), "not mapped"), "%s", vmm_errdetail());
	cr_assert_eq(vmm_machine_write_virt(m, 0x8000000000000000ull, junk, 8), -VMM_EGUEST);
	vmm_machine_destroy(m);
}

Test(machine, set_regs_changes_what_it_can_and_names_what_it_cannot, .timeout = 60)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "compute", "n=1");
	const struct vmm_cpu_ops *ops = vmm_machine_backend(m);
	struct vmm_cpu *cpu = vmm_machine_cpu(m);
	step(m, 1000000); /* paging on */
	struct vmm_regs r, back;
	cr_assert_eq(ops->get_regs(cpu, &r), 0);
	r.rax = 0x1122334455667788ull;
	r.r15 = 7;
	r.fs_base = 0x123000;
	r.gs_base = 0x456000;
	r.kernel_gs_base = 0x789000;
	r.cr2 = 0xabc;
	r.rflags |= 1; /* CF */
	cr_assert_eq(ops->set_regs(cpu, &r), 0, "%s", vmm_errdetail());
	cr_assert_eq(ops->get_regs(cpu, &back), 0);
	cr_assert_eq(back.rax, r.rax);
	cr_assert_eq(back.r15, 7);
	cr_assert_eq(back.fs_base, 0x123000);
	cr_assert_eq(back.gs_base, 0x456000);
	cr_assert_eq(back.kernel_gs_base, 0x789000);
	cr_assert_eq(back.cr2, 0xabc);
	cr_assert_eq(back.rflags & 1, 1);
	/* Nothing else moved (Unicorn's CR2 write also loads CR3, for one). */
	cr_assert_eq(back.cr3, r.cr3, "cr3 %#llx, was %#llx", (unsigned long long)back.cr3,
		     (unsigned long long)r.cr3);
	cr_assert_eq(memcmp(&back, &r, sizeof(r)), 0, "set_regs changed more than it was given");
	struct vmm_regs bad = back;
	bad.cs.sel = 0x33;
	cr_assert_eq(ops->set_regs(cpu, &bad), -VMM_EBACKEND);
	cr_assert(strstr(vmm_errdetail(), "cs"), "%s", vmm_errdetail());
	bad = back;
	bad.cr3 ^= 0x1000;
	bad.rax = 1;
	cr_assert_eq(ops->set_regs(cpu, &bad), -VMM_EBACKEND);
	cr_assert(strstr(vmm_errdetail(), "cr3"), "%s", vmm_errdetail());
	cr_assert_eq(ops->get_regs(cpu, &r), 0);
	cr_assert_eq(r.rax, back.rax, "a refused set_regs changed rax");
	vmm_machine_destroy(m);
}

static void *interrupt_soon(void *m)
{
	usleep(100000);
	vmm_machine_interrupt(m, true);
	return NULL;
}

Test(machine, interrupt_ends_the_wait_for_a_halted_guest, .timeout = 60)
{
	/* echo halts until input comes; there is none, and no timer. */
	struct vmm_live_config lc = {.in_fd = -1};
	struct vmm_live *l;
	cr_assert_eq(vmm_live_create(&lc, &l), 0);
	struct vmm_config cfg = {.mem_size = 64u << 20,
				 .backend = &emu_cpu_ops,
				 .input = &vmm_live_input_ops,
				 .input_opaque = l};
	struct vmm_machine *m;
	cr_assert_eq(vmm_machine_create(&cfg, &m), 0, "%s", vmm_errdetail());
	char path[512];
	const char *b = getenv("REWIND_BUILD");
	snprintf(path, sizeof(path), "%s/guests/echo.elf", b ? b : "build");
	void *elf;
	size_t len;
	cr_assert_eq(vmm_read_file(path, 64u << 20, &elf, &len), 0, "%s: %s", path,
		     vmm_errdetail());
	cr_assert_eq(vmm_machine_load(m, elf, len, NULL), 0, "%s", vmm_errdetail());
	free(elf);
	cr_assert_eq(vmm_live_start(l, m), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, interrupt_soon, m), 0);
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(m, &st), 0, "%s", vmm_errdetail());
	pthread_join(th, NULL);
	cr_assert_eq(st.reason, VMM_STOP_LIMIT, "stop reason %d", st.reason);
	cr_assert_gt(st.pos, 0);
	/* While on, the run returns at once, where it was. */
	vmm_pos_t at = st.pos;
	cr_assert_eq(vmm_machine_run(m, &st), 0);
	cr_assert_eq(st.reason, VMM_STOP_LIMIT);
	cr_assert_eq(st.pos, at);
	vmm_machine_interrupt(m, false);
	vmm_live_destroy(l);
	vmm_machine_destroy(m);
}

Test(machine, a_held_live_clock_does_not_count_the_time_held, .timeout = 30)
{
	struct vmm_live_config lc = {.in_fd = -1};
	struct vmm_live *l;
	cr_assert_eq(vmm_live_create(&lc, &l), 0);
	uint64_t t0 = vmm_live_host_ns(l);
	vmm_live_hold(l, true);
	usleep(500000);
	vmm_live_hold(l, false);
	uint64_t t1 = vmm_live_host_ns(l);
	cr_assert_lt(t1 - t0, 400000000ull, "the clock moved %llu ns while held 500 ms",
		     (unsigned long long)(t1 - t0));
	usleep(50000);
	uint64_t t2 = vmm_live_host_ns(l);
	cr_assert_geq(t2 - t1, 50000000ull, "the clock does not run again after the hold");
	vmm_live_destroy(l);
}

Test(machine, no_events_after_an_interrupt_acknowledge_at_a_debug_stop, .timeout = 60)
{
	/*
	 * A breakpoint on an interrupt's first instruction stops at the position of the
	 * INTA. Events polled there on resuming would land after the INTA; replay delivers
	 * every event of a position before it: none may come.
	 */
	static struct vin a;
	a.mark = UINT64_MAX;
	struct vmm_machine *m = boot(&a, "race", "hz=1000 ticks=5");
	const struct vmm_cpu_ops *ops = vmm_machine_backend(m);
	step(m, 2000000); /* the IDT is set up */
	struct vmm_regs r;
	cr_assert_eq(ops->get_regs(vmm_machine_cpu(m), &r), 0);
	uint64_t gate[2];
	cr_assert_eq(ops->read_virt(vmm_machine_cpu(m), r.idt.base + 0x20 * 16, gate, 16), 0);
	uint64_t isr = (gate[0] & 0xffff) | ((gate[0] >> 32) & 0xffff0000ull) | (gate[1] << 32);
	struct vmm_debug d = {.bp = &isr, .nbp = 1, .pass_pos = UINT64_MAX};
	cr_assert_eq(vmm_machine_set_debug(m, &d), 0);
	struct vmm_stop st;
	cr_assert_eq(vmm_machine_run(m, &st), 0);
	cr_assert_eq(st.reason, VMM_STOP_BREAK, "stop %d", st.reason);
	a.mark = st.pos;
	a.polls_at_mark = 0;
	d.pass_pos = st.pos;
	cr_assert_eq(vmm_machine_set_debug(m, &d), 0);
	cr_assert_eq(vmm_machine_run_until(m, st.pos + 1, &st), 0);
	cr_assert_eq(vmm_machine_pos(m), a.mark + 1);
	cr_assert_eq(a.polls_at_mark, 0, "polled at %llu, after its interrupt acknowledge",
		     (unsigned long long)a.mark);
	vmm_machine_destroy(m);
}

/* The memory hash as logfmt/FORMAT.md defines it, the slow way: every page is read. */
static uint64_t mem_hash_by_the_book(struct vmm_machine *m)
{
	static const uint8_t zero[4096];
	const uint8_t *ram = vmm_machine_ram(m);
	uint64_t npages = vmm_machine_ram_size(m) / 4096;
	XXH3_state_t *st = XXH3_createState();
	XXH3_64bits_reset(st);
	uint64_t le = htole64(npages);
	XXH3_64bits_update(st, &le, 8);
	for (uint64_t i = 0; i < npages; i++) {
		if (!memcmp(ram + i * 4096, zero, 4096))
			continue;
		le = htole64(i);
		XXH3_64bits_update(st, &le, 8);
		XXH3_64bits_update(st, ram + i * 4096, 4096);
	}
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

static uint64_t mem_hash(struct vmm_machine *m)
{
	uint64_t h;
	cr_assert_eq(vmm_machine_hash(m, NULL, &h), 0, "%s", vmm_errdetail());
	return h;
}

static bool resident(struct vmm_machine *m, uint64_t page)
{
	unsigned char v;
	cr_assert_eq(mincore(vmm_machine_ram(m) + page * 4096, 4096, &v), 0);
	return v & 1;
}

Test(machine, memory_hash_is_a_function_of_contents, .timeout = 60)
{
	static struct vin a;
	struct vmm_machine *m = boot(&a, "hello", NULL);
	uint8_t *ram = vmm_machine_ram(m);
	uint64_t npages = vmm_machine_ram_size(m) / 4096, far = npages - 7;
	uint64_t h0 = mem_hash(m);
	/* Pages the guest never touched are not read (each read would fault one in). */
	cr_assert_not(resident(m, far), "the hash read an untouched page");
	cr_assert_eq(h0, mem_hash_by_the_book(m));

	/* A byte in a page nobody touched changes it; so does the page it is in. */
	ram[far * 4096 + 100] = 0x5a;
	uint64_t h1 = mem_hash(m);
	cr_assert_neq(h1, h0);
	cr_assert_eq(h1, mem_hash_by_the_book(m));
	ram[far * 4096 + 100] = 0;
	ram[(far + 1) * 4096 + 100] = 0x5a;
	uint64_t h2 = mem_hash(m);
	cr_assert_neq(h2, h1, "the same bytes in another page hash the same");
	cr_assert_neq(h2, h0);
	/* A page written back to zero counts as one never written: contents decide. */
	ram[(far + 1) * 4096 + 100] = 0;
	cr_assert_eq(mem_hash(m), h0);

	/* And after the guest ran. */
	cr_assert_eq(finish(m), 0);
	uint64_t h3 = mem_hash(m);
	cr_assert_neq(h3, h0);
	cr_assert_eq(h3, mem_hash_by_the_book(m));
	vmm_machine_destroy(m);
}
