/* standalone */
/*
 * test_devexit.c: vmm/debugexit.c (isa-debug-exit at 0xF4) and vmm/sysctl.c (POST port,
 * reset control 0xCF9, keyboard controller 0x60/0x64): stop requests, reads, save/load.
 */
#include "../../vmm/debugexit.c"
#include "../../vmm/sysctl.c"
#include "devtest.h"

static struct vmm_machine *m;

static void setup(void)
{
	m = dt_machine();
}

static void teardown(void)
{
	free(m);
}

TestSuite(debugexit, .init = setup, .fini = teardown);
TestSuite(sysctl, .init = setup, .fini = teardown);

Test(debugexit, write_of_any_size_requests_a_stop_with_the_value)
{
	void *d = dt_create(&debugexit_dev_ops, m);
	dt_out(&debugexit_dev_ops, d, 0xf4, 0x00);
	cr_assert_eq(m->stops, 1u);
	cr_assert_eq(m->stop_why, VMM_STOP_DEBUG_EXIT);
	cr_assert_eq(m->stop_value, 0u);
	dt_out_sz(&debugexit_dev_ops, d, 0xf4, 2, 0xabcd);
	cr_assert_eq(m->stop_value, 0xabcdu);
	dt_out_sz(&debugexit_dev_ops, d, 0xf4, 4, 0x12345678);
	cr_assert_eq(m->stop_value, 0x12345678u);
	/* Only the bytes of the access count. */
	dt_out_sz(&debugexit_dev_ops, d, 0xf4, 1, 0x1ff);
	cr_assert_eq(m->stop_value, 0xffu);
	/* Any port of the 4-byte range, as QEMU's iosize=4. */
	dt_out(&debugexit_dev_ops, d, 0xf7, 3);
	cr_assert_eq(m->stop_value, 3u);
	cr_assert_eq(m->stops, 5u);
	debugexit_dev_ops.destroy(d);
}

Test(debugexit, reads_are_all_ones_and_stop_nothing)
{
	void *d = dt_create(&debugexit_dev_ops, m);
	cr_assert_eq(dt_in_sz(&debugexit_dev_ops, d, 0xf4, 1), 0xffu);
	cr_assert_eq(dt_in_sz(&debugexit_dev_ops, d, 0xf4, 2), 0xffffu);
	cr_assert_eq(dt_in_sz(&debugexit_dev_ops, d, 0xf4, 4), 0xffffffffu);
	cr_assert_eq(m->stops, 0u);
	debugexit_dev_ops.destroy(d);
}

Test(debugexit, save_load)
{
	void *d = dt_create(&debugexit_dev_ops, m);
	struct vmm_machine *m2 = dt_machine();
	void *d2 = dt_clone(&debugexit_dev_ops, d, m, m2);
	dt_out(&debugexit_dev_ops, d2, 0xf4, 9);
	cr_assert_eq(m2->stop_value, 9u);
	cr_assert_eq(m->stops, 0u);
	uint32_t bad = 0;
	cr_assert_eq(debugexit_dev_ops.load(d2, &bad), -VMM_ESTATE);
	debugexit_dev_ops.destroy(d);
	debugexit_dev_ops.destroy(d2);
	free(m2);
}

#define S (&sysctl_dev_ops)

Test(sysctl, post_port_ignores_writes_and_reads_ff)
{
	void *s = dt_create(S, m);
	dt_out(S, s, 0x80, 0x55);
	cr_assert_eq(dt_in(S, s, 0x80), 0xff);
	cr_assert_eq(m->stops, 0u);
	S->destroy(s);
}

Test(sysctl, cf9_resets_only_with_rst_cpu)
{
	void *s = dt_create(S, m);
	dt_out(S, s, 0xcf9, 0x02); /* SYS_RST alone: prepares a hard reset */
	cr_assert_eq(m->stops, 0u);
	cr_assert_eq(dt_in(S, s, 0xcf9), 0x02);
	dt_out(S, s, 0xcf9, 0x06);
	cr_assert_eq(m->stops, 1u);
	cr_assert_eq(m->stop_why, VMM_STOP_RESET);
	dt_out(S, s, 0xcf9, 0x0e);
	cr_assert_eq(dt_in(S, s, 0xcf9), 0x0a, "RST_CPU does not read back");
	S->destroy(s);
}

Test(sysctl, keyboard_controller_idle_and_pulse_reset)
{
	void *s = dt_create(S, m);
	uint8_t st = dt_in(S, s, 0x64);
	cr_assert_eq(st & 0x03, 0, "input and output buffers empty");
	cr_assert_eq(st, 0x1c);
	cr_assert_eq(dt_in(S, s, 0x60), 0x00);
	dt_out(S, s, 0x64, 0xd1); /* other commands are ignored */
	dt_out(S, s, 0x60, 0xdf);
	cr_assert_eq(m->stops, 0u);
	dt_out(S, s, 0x64, 0xfe);
	cr_assert_eq(m->stops, 1u);
	cr_assert_eq(m->stop_why, VMM_STOP_RESET);
	S->destroy(s);
}

Test(sysctl, save_load)
{
	void *s = dt_create(S, m);
	dt_out(S, s, 0xcf9, 0x08);
	struct vmm_machine *m2 = dt_machine();
	void *s2 = dt_clone(S, s, m, m2);
	cr_assert_eq(dt_in(S, s2, 0xcf9), 0x08);
	uint8_t blob[sizeof(struct sysctl_state)];
	S->save(s2, blob);
	((struct sysctl_state *)blob)->cf9 = 0x04;
	cr_assert_eq(S->load(s2, blob), -VMM_ESTATE);
	S->destroy(s);
	S->destroy(s2);
	free(m2);
}
