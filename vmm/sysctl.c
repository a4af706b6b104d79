/*
 * sysctl.c: the odd system ports a PC guest touches on its way up and down: the POST
 * code port 0x80, the PIIX reset control register 0xCF9, and just enough of the 8042
 * keyboard controller (0x60 data, 0x64 status/command) for guests to find it idle and to
 * reset the machine through it. Port 0x61 belongs to the PIT (pit.c).
 *
 * Implements: 0x80 writes ignored, reads 0xFF. 0xCF9: a write with bit 2 (RST_CPU) set
 * requests VMM_STOP_RESET; bits 1 (SYS_RST) and 3 (FULL_RST) are kept and read back, as
 * on PIIX. 0x64 reads 0x1C (input and output buffers empty, system flag, last write was
 * a command, not inhibited), so guests polling for "input buffer empty" go on; command
 * 0xFE (pulse the reset line) requests VMM_STOP_RESET. 0x60 reads 0.
 *
 * Leaves out: every other 8042 command (no keyboard, no mouse, no A20 gate: A20 is always
 * enabled), and the distinction between soft and hard reset.
 */
#include "devices.h"
#include "machine.h"

#include <stdlib.h>
#include <string.h>

#define SYSCTL_STATE_VERSION 1

enum { RANGE_KBD_DATA, RANGE_KBD_CTRL, RANGE_POST, RANGE_CF9 };

#define CF9_SYS_RST 0x02
#define CF9_RST_CPU 0x04
#define CF9_FULL_RST 0x08
#define KBD_STATUS_IDLE 0x1c
#define KBD_CMD_PULSE_RESET 0xfe

struct sysctl_state {
	uint32_t version;
	uint8_t cf9; /* SYS_RST and FULL_RST as last written */
	uint8_t pad[3];
};

struct sysctl {
	struct sysctl_state st;
	struct vmm_machine *m;
};

static uint32_t sysctl_pio_read(void *dev, unsigned range, uint16_t off, unsigned size)
{
	struct sysctl *s = dev;
	uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
	uint32_t v;
	(void)off;
	switch (range) {
	case RANGE_KBD_DATA:
		v = 0;
		break;
	case RANGE_KBD_CTRL:
		v = KBD_STATUS_IDLE;
		break;
	case RANGE_CF9:
		v = s->st.cf9;
		break;
	default:
		return ones;
	}
	/* Bytes past the 1-port range float high. */
	return v | (ones & ~0xffu);
}

static void sysctl_pio_write(void *dev, unsigned range, uint16_t off, unsigned size,
			     uint32_t val)
{
	struct sysctl *s = dev;
	uint8_t b = (uint8_t)val;
	(void)off;
	(void)size;
	if (range == RANGE_CF9) {
		s->st.cf9 = b & (CF9_SYS_RST | CF9_FULL_RST);
		if (b & CF9_RST_CPU)
			vmm_machine_request_stop(s->m, VMM_STOP_RESET, 0);
	} else if (range == RANGE_KBD_CTRL && b == KBD_CMD_PULSE_RESET) {
		vmm_machine_request_stop(s->m, VMM_STOP_RESET, 0);
	}
}

static int sysctl_create(struct vmm_machine *m, void **dev)
{
	struct sysctl *s = calloc(1, sizeof(*s));
	if (!s)
		return vmm_fail(VMM_ENOMEM, "sysctl: out of memory");
	s->m = m;
	s->st.version = SYSCTL_STATE_VERSION;
	*dev = s;
	return 0;
}

static void sysctl_destroy(void *dev)
{
	free(dev);
}

static void sysctl_save(void *dev, void *buf)
{
	struct sysctl *s = dev;
	memcpy(buf, &s->st, sizeof(s->st));
}

static int sysctl_load(void *dev, const void *buf)
{
	struct sysctl *s = dev;
	struct sysctl_state st;
	memcpy(&st, buf, sizeof(st));
	if (st.version != SYSCTL_STATE_VERSION || (st.cf9 & ~(CF9_SYS_RST | CF9_FULL_RST)))
		return vmm_fail(VMM_ESTATE, "sysctl: bad state");
	s->st = st;
	return 0;
}

const struct vmm_dev_ops sysctl_dev_ops = {
	.name = "sysctl",
	.ranges = { { 0x60, 1 }, { 0x64, 1 }, { 0x80, 1 }, { 0xcf9, 1 } },
	.state_size = sizeof(struct sysctl_state),
	.create = sysctl_create,
	.destroy = sysctl_destroy,
	.pio_read = sysctl_pio_read,
	.pio_write = sysctl_pio_write,
	.save = sysctl_save,
	.load = sysctl_load,
};
