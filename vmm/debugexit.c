/*
 * debugexit.c: QEMU's isa-debug-exit device at 0xF4-0xF7.
 *
 * A write of V of any size at any offset asks the machine to power off with
 * VMM_STOP_DEBUG_EXIT and V (the tool turns it into exit status (V << 1) | 1, as QEMU
 * does). Reads return all ones. The device has no state beyond a version word.
 */
#include "devices.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define DEBUGEXIT_STATE_VERSION 1

struct debugexit_state {
	uint32_t version;
};

struct debugexit {
	struct debugexit_state st;
	struct vmm_machine *m;
};

static uint32_t debugexit_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	(void)dev;
	(void)range;
	(void)off;
	return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void debugexit_pio_write(void *dev, unsigned range, uint16_t off, unsigned size,
				uint32_t val)
{
	struct debugexit *d = dev;
	(void)range;
	(void)off;
	if (size < 4)
		val &= (1u << (8 * size)) - 1;
	vmm_machine_request_stop(d->m, VMM_STOP_DEBUG_EXIT, val);
}

static int debugexit_create(struct vmm_machine *m, void **dev)
{
	struct debugexit *d = calloc(1, sizeof(*d));
	if (!d)
		return vmm_fail(VMM_ENOMEM, "debugexit: out of memory");
	d->m = m;
	d->st.version = DEBUGEXIT_STATE_VERSION;
	*dev = d;
	return 0;
}

static void debugexit_destroy(void *dev)
{
	free(dev);
}

static void debugexit_save(void *dev, void *buf)
{
	struct debugexit *d = dev;
	memcpy(buf, &d->st, sizeof(d->st));
}

static int debugexit_load(void *dev, const void *buf)
{
	struct debugexit *d = dev;
	struct debugexit_state s;
	memcpy(&s, buf, sizeof(s));
	if (s.version != DEBUGEXIT_STATE_VERSION)
		return vmm_fail(VMM_ESTATE, "debugexit: state version %u, expected %u", s.version,
				DEBUGEXIT_STATE_VERSION);
	d->st = s;
	return 0;
}

const struct vmm_dev_ops debugexit_dev_ops = {
	.name = "debugexit",
	.ranges = { { 0xf4, 4 } },
	.state_size = sizeof(struct debugexit_state),
	.create = debugexit_create,
	.destroy = debugexit_destroy,
	.pio_read = debugexit_pio_read,
	.pio_write = debugexit_pio_write,
	.save = debugexit_save,
	.load = debugexit_load,
};
