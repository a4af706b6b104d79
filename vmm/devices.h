/*
 * devices.h: the devices of the PC subset (docs/architecture.md), one file each, and the few
 * calls the machine makes into particular devices beyond the generic dev.h interface.
 */
#ifndef REWIND_VMM_DEVICES_H
#define REWIND_VMM_DEVICES_H

#include "dev.h"

/* 8259A master/slave pair at 0x20-0x21 and 0xA0-0xA1 (and ELCR 0x4D0-0x4D1). */
extern const struct vmm_dev_ops pic_dev_ops;
/* Set ISA line 0..15 to level (edge-triggered: a 0->1 transition sets IRR). */
void pic_set_irq(void *pic, unsigned line, int level);
/* Is INTR asserted (an unmasked request of higher priority than any in service)? */
bool pic_intr(void *pic);
/* The INTA cycle: returns the vector, 7/15 (+base) when spurious. */
uint8_t pic_ack(void *pic);

/* 8254 PIT at 0x40-0x43, IRQ 0, and port 0x61 (channel 2 gate, speaker, output). */
extern const struct vmm_dev_ops pit_dev_ops;

/* CMOS RTC at 0x70-0x71, IRQ 8. */
extern const struct vmm_dev_ops rtc_dev_ops;

/* 16550A UART, COM1 at 0x3F8, IRQ 4. */
extern const struct vmm_dev_ops uart_dev_ops;
size_t uart_rx_room(void *uart);
void uart_rx(void *uart, const uint8_t *buf, size_t n);

/* isa-debug-exit at 0xF4 (size 4, QEMU's default iosize for microvm setups). */
extern const struct vmm_dev_ops debugexit_dev_ops;

/* Port 0x80 (POST code, ignored) and reset ports 0xCF9 and 0x64 (keyboard controller). */
extern const struct vmm_dev_ops sysctl_dev_ops;

#endif
