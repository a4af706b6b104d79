/* unit */
/*
 * test_machine.c: the machine and the emu backend under a deterministic input boundary
 * (time derived from the instruction count, idle time skipped): exact stops at any
 * instruction count, determinism of timer interrupts, save/load of the whole machine
 * into a fresh one that then runs on identically, and the memory hash.
 */
#include "vmm/cpu.h"
#include "vmm/loader.h"
#include "vmm/machine.h"

#include <criterion/criterion.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

/* Virtual time: 1 ns per instruction, plus the time skipped while idle. */
struct vin {
	uint64_t skew;
	char out[1 << 16];
	size_t len;
	uint64_t clock_reads;
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
	uint64_t now = v_now(o, m);

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
