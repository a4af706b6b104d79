/*
 * backtrace.h: guest backtraces with function names (docs/time-travel.md), for divergence
 * reports, crashes and the debugger at any position.
 *
 * A struct bt_image holds what one guest ELF contributes: its function symbols and its
 * unwind tables (.eh_frame_hdr and .eh_frame, copied out of the file, so the image bytes
 * may be freed after bt_image_open and a guest that scribbles over its own tables cannot
 * mislead the unwinder). bt_unwind walks the guest stack with libunwind's remote
 * unwinder over those tables and a memory accessor the caller supplies (read_virt of a
 * live machine or a replay). Frames that an exception or interrupt interrupted are
 * reached through guests/lib/isr.S's CFI (a signal frame, as DWARF calls it).
 *
 * Thread safety: one image may be used by several threads at once (libunwind's cache
 * locks); the accessor is only called on the calling thread.
 */
#ifndef REWIND_DEBUGGER_BACKTRACE_H
#define REWIND_DEBUGGER_BACKTRACE_H

#include "vmm/cpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_image;

/*
 * Parse a guest ELF (x86-64, ELF64 little-endian) held in elf[0..len): keep its function
 * symbols (STT_FUNC, and untyped labels in code sections such as isr.S's stubs) and its
 * unwind tables. An ELF without a .symtab that is a Linux kernel takes its code symbols
 * from its kallsyms tables (ksyms.h). An ELF without symbols or without PT_GNU_EH_FRAME
 * is accepted (names show as "??", unwinding gives frame 0 only). Returns 0, -VMM_EBADELF (not such an ELF,
 * truncated, or a malformed .eh_frame_hdr; vmm_errdetail() says what) or -VMM_ENOMEM.
 */
int bt_image_open(const void *elf, size_t len, struct bt_image **out) VMM_WUR;
void bt_image_free(struct bt_image *img);

/*
 * The function containing pc and pc's offset into it (*off, may be NULL); NULL if no
 * symbol covers pc. The name lives as long as img. Looks pc up as given: for a return
 * address, pass pc - 1 (bt_unwind does this for its caller frames).
 */
const char *bt_symbolize(const struct bt_image *img, uint64_t pc, uint64_t *off);

struct bt_frame {
	uint64_t pc;	   /* frame 0: the rip given; callers: the return (resume) address */
	uint64_t sp;	   /* rsp in this frame */
	uint64_t cfa;	   /* this frame's canonical frame address; 0 if not computed */
	const char *func;  /* NULL if unknown; valid while img lives */
	uint64_t off;	   /* pc - start of func */
	bool signal_frame; /* an exception/interrupt entry frame (isr.S): the next frame was
			      interrupted at its pc, not called */
};

/* Read len bytes of guest memory at virtual address va: 0, or negative if unreadable. */
typedef int (*bt_read_fn)(void *opaque, uint64_t va, void *buf, size_t len);

/*
 * Unwind from the registers r (rip, rsp and the other 14 general registers matter; the
 * rest are ignored) into out[0..max). Returns the number of frames (>= 1: frame 0 is
 * r->rip) or -VMM_EINVAL for bad arguments (NULL pointers, max < 1).
 *
 * Stops, keeping the frames found so far, at max frames, at a frame with no unwind info
 * (no FDE covers its pc; the outermost frame, guests/lib/entry.S's long_entry, marks its
 * return address undefined), at a zero or non-increasing CFA (a looping or corrupt
 * stack; across an exception frame the stack may switch, so only a repeat stops there),
 * or where read fails (an unreadable stack). Caller frames are symbolized at pc - 1 (the
 * call instruction), except right after an exception frame, where pc is the interrupted
 * instruction itself.
 *
 * Cost: per frame, a binary search of the FDE table and a few 8-byte reads through read
 * (the return address and the saved registers the CFI names; all 16 registers and rsp
 * of an exception frame); libunwind caches decoded CFI per pc within an image, behind a
 * lock that blocks signals (two system calls per frame). About 25 us for the 8 frames of
 * the crash guest over read_virt on emu; bt_image_open about 3 us for a small guest.
 */
int bt_unwind(struct bt_image *img, const struct vmm_regs *r, bt_read_fn read, void *opaque,
	      struct bt_frame *out, int max) VMM_WUR;

/*
 * One line, no newline, into buf (always NUL-terminated when cap > 0):
 * "#0  0x0000000000101234 in faulty+0x4", "in ??" when unknown, and
 * " <exception frame>" after an exception entry frame.
 */
void bt_format(const struct bt_frame *f, int index, char *buf, size_t cap);

#endif
