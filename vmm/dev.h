/*
 * dev.h: the interface every device implements. Devices are listed in one explicit
 * array in machine.c; order is visible and deterministic.
 *
 * A device sees only an offset inside one of its own port ranges, raises interrupt
 * lines with vmm_irq_set(), and reads time only from vmm_clock_ns(). Its state is a
 * plain struct (no pointers) that save/load copy whole: loading restores exactly what
 * was saved and triggers nothing (no interrupt, no clock read).
 */
#ifndef REWIND_VMM_DEV_H
#define REWIND_VMM_DEV_H

#include "vmm.h"

struct vmm_machine;

struct vmm_port_range {
	uint16_t base;
	uint16_t count;
};

#define VMM_DEV_MAX_RANGES 4

struct vmm_dev_ops {
	const char *name;
	/* Port ranges this device answers; count 0 ends the list early. */
	struct vmm_port_range ranges[VMM_DEV_MAX_RANGES];
	/* Size of the buffer save() fills. */
	size_t state_size;

	/* Allocate and reset the device. Must not be NULL. */
	int (*create)(struct vmm_machine *m, void **dev);
	/* Free it. Must not be NULL. */
	void (*destroy)(void *dev);
	/*
	 * A port read: range is the index into ranges[], off the offset inside it, size
	 * 1, 2 or 4 bytes. May be NULL (reads return all ones).
	 */
	uint32_t (*pio_read)(void *dev, unsigned range, uint16_t off, unsigned size);
	/* A port write. May be NULL (writes are ignored). */
	void (*pio_write)(void *dev, unsigned range, uint16_t off, unsigned size, uint32_t val);
	/* Copy the whole state into buf (state_size bytes). Must not be NULL. */
	void (*save)(void *dev, void *buf);
	/*
	 * Restore a state saved by save(); re-arms timers but fires nothing and raises no
	 * line it did not hold. Returns 0 or -VMM_ESTATE if the blob is invalid.
	 */
	int (*load)(void *dev, const void *buf);
};

#endif
