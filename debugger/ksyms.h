/*
 * ksyms.h: a Linux kernel's symbols, read from the kernel image itself (docs/linux.md,
 * "Kernel symbols").
 *
 * Debian's vmlinux is stripped, and the System.map its package ships is a one-line
 * placeholder (the real one is in the -dbg package, some 860 MB). But every kernel built
 * with CONFIG_KALLSYMS carries its symbol table for /proc/kallsyms: the compressed names
 * (kallsyms_names, expanded through kallsyms_token_table and kallsyms_token_index) and
 * the addresses (kallsyms_offsets from kallsyms_relative_base), in .rodata, unlabelled.
 * ksyms_from_image finds those tables in the image's bytes and decodes them: the same
 * list, in address order, that /proc/kallsyms shows to root on that kernel booted without
 * KASLR (a PVH boot of the ELF vmlinux never relocates it).
 *
 * How the tables are found (the layout scripts/kallsyms.c emits, each label 8-aligned):
 * the token table holds every character that occurs in a symbol name as the token of
 * that character's code, so "0", "1", ..., "9" appear there as ten consecutive one-byte
 * strings; each such run is tried as token 0x30..0x39, and accepted when the token index
 * that follows the 256 tokens points at it. Before the token table lie kallsyms_num_syms,
 * kallsyms_names and kallsyms_markers (and, in kernels since 6.2 and Debian's 6.1,
 * kallsyms_seqs_of_names), each checked against the others: the count of names decoded,
 * the markers' offsets every 256 names, where the next table begins. Before num_syms lie
 * the relative base and the offsets. The image is untrusted input: every read is bounded.
 */
#ifndef REWIND_DEBUGGER_KSYMS_H
#define REWIND_DEBUGGER_KSYMS_H

#include "vmm/vmm.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ksym {
	uint64_t addr;
	char type;	  /* nm's letter: T t (text), D d, B b, R r, W w, V, A (per-cpu) */
	const char *name; /* lives as long as the struct ksyms */
};

struct ksyms {
	struct ksym *v; /* in address order */
	size_t n;
	char *names;
};

/*
 * The kallsyms tables of the kernel image elf[0..len) (any bytes; an ELF is not needed).
 * Returns 1 with *out set, 0 when the image holds no kallsyms tables this code can read
 * (not a Linux kernel, or another layout), or -VMM_ENOMEM.
 */
int ksyms_from_image(const void *elf, size_t len, struct ksyms **out) VMM_WUR;
void ksyms_free(struct ksyms *ks);

/* Whether type is a code symbol (T, t, W, w). */
static inline int ksyms_is_text(char type)
{
	return type == 'T' || type == 't' || type == 'W' || type == 'w';
}

/* Write ks in System.map's format ("ffffffff81000000 T _text" lines): 0 or -VMM_EIO. */
int ksyms_write_map(const struct ksyms *ks, FILE *f) VMM_WUR;

/*
 * An ELF gdb takes as the kernel's symbol file: the image's ELF header and section
 * headers with every section made SHT_NOBITS (gdb reads the contents from the target),
 * and a .symtab of ks (per-cpu 'A' symbols left out), each symbol in the section that
 * holds its address, code symbols STT_FUNC, lower-case letters local, sized to the next
 * symbol. Returns 0 with a malloc'd *out, -VMM_EBADELF when elf is not an ELF64 x86-64
 * file with sane section headers, or -VMM_ENOMEM.
 */
int ksyms_symbol_elf(const struct ksyms *ks, const void *elf, size_t len, void **out,
		     size_t *out_len) VMM_WUR;

/*
 * What gdb should load for the guest image elf[0..len): 0 when the image serves itself (it
 * has a .symtab, or no kallsyms: a guest of guests/), 1 with a malloc'd symbol ELF in
 * *out (ksyms_symbol_elf) and its symbol count in *nsyms for a stripped kernel, or a
 * negative error.
 */
int ksyms_gdb_file(const void *elf, size_t len, void **out, size_t *out_len,
		   size_t *nsyms) VMM_WUR;

#endif
