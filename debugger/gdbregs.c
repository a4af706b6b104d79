/*
 * gdbregs.c: the x86-64 register file for gdb: one table (name, size, where the value
 * lives in struct vmm_regs / vmm_fpregs) from which the 'g'/'G'/'p'/'P' encodings follow,
 * and the target description that gdb 13 accepts for i386:x86-64 (checked against the
 * table by running gdb in tests/debugger/test_gdbregs.c).
 *
 * The XML follows the feature names gdb's amd64 code looks for (core, sse, segments), so
 * gdb knows rip, eflags, the x87 and SSE registers and $fs_base as its own; the system
 * registers sit in a feature of ours, which gdb adds as extra registers after its own.
 * Left out: AVX and later state, the debug registers, the descriptor tables.
 */
#include "debugger/gdbregs.h"

#include "debugger/gdbproto.h"

#include <stddef.h>
#include <string.h>

enum reg_kind {
	K_U64,	  /* a uint64_t in struct vmm_regs at off */
	K_EFLAGS, /* rflags, low 32 bits */
	K_SEG,	  /* struct vmm_seg in vmm_regs at off: the selector */
	K_ST,	  /* fpregs st[off] */
	K_F32,	  /* a uint32_t in struct vmm_fpregs at off */
	K_XMM,	  /* fpregs xmm[off] */
};

struct reg_desc {
	const char *name;
	uint8_t size;
	uint8_t kind;
	uint16_t off;
};

/* clang-format off */
#define R64(n, field) {n, 8, K_U64, offsetof(struct vmm_regs, field)}
#define SEG(n, field) {n, 4, K_SEG, offsetof(struct vmm_regs, field)}
#define F32(n, field) {n, 4, K_F32, offsetof(struct vmm_fpregs, field)}
#define ST(i)         {"st" #i, 10, K_ST, i}
#define XMM(i)        {"xmm" #i, 16, K_XMM, i}
/* clang-format on */

static const struct reg_desc regs[GDB_REG_COUNT] = {
    R64("rax", rax),
    R64("rbx", rbx),
    R64("rcx", rcx),
    R64("rdx", rdx),
    R64("rsi", rsi),
    R64("rdi", rdi),
    R64("rbp", rbp),
    R64("rsp", rsp),
    R64("r8", r8),
    R64("r9", r9),
    R64("r10", r10),
    R64("r11", r11),
    R64("r12", r12),
    R64("r13", r13),
    R64("r14", r14),
    R64("r15", r15),
    R64("rip", rip),
    {"eflags", 4, K_EFLAGS, 0},
    SEG("cs", cs),
    SEG("ss", ss),
    SEG("ds", ds),
    SEG("es", es),
    SEG("fs", fs),
    SEG("gs", gs),
    ST(0),
    ST(1),
    ST(2),
    ST(3),
    ST(4),
    ST(5),
    ST(6),
    ST(7),
    F32("fctrl", fctrl),
    F32("fstat", fstat),
    F32("ftag", ftag),
    F32("fiseg", fiseg),
    F32("fioff", fioff),
    F32("foseg", foseg),
    F32("fooff", fooff),
    F32("fop", fop),
    XMM(0),
    XMM(1),
    XMM(2),
    XMM(3),
    XMM(4),
    XMM(5),
    XMM(6),
    XMM(7),
    XMM(8),
    XMM(9),
    XMM(10),
    XMM(11),
    XMM(12),
    XMM(13),
    XMM(14),
    XMM(15),
    F32("mxcsr", mxcsr),
    R64("fs_base", fs_base),
    R64("gs_base", gs_base),
    R64("k_gs_base", kernel_gs_base),
    R64("cr0", cr0),
    R64("cr2", cr2),
    R64("cr3", cr3),
    R64("cr4", cr4),
    R64("cr8", cr8),
    R64("efer", efer),
};

/*
 * The description. Types: gdb predefines int32, int64, uint64, code_ptr, data_ptr,
 * i387_ext, ieee_single/double and the intN/uint128 types; the flags and the vec128 union
 * are defined here (the same field names gdb's own 64bit-core/64bit-sse use, so
 * `p $eflags` and `p $xmm0.v4_float` look as they do for a native process).
 */
static const char target_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target version=\"1.0\">\n"
    "  <architecture>i386:x86-64</architecture>\n"
    "  <feature name=\"org.gnu.gdb.i386.core\">\n"
    "    <flags id=\"i386_eflags\" size=\"4\">\n"
    "      <field name=\"CF\" start=\"0\" end=\"0\"/>\n"
    "      <field name=\"\" start=\"1\" end=\"1\"/>\n"
    "      <field name=\"PF\" start=\"2\" end=\"2\"/>\n"
    "      <field name=\"AF\" start=\"4\" end=\"4\"/>\n"
    "      <field name=\"ZF\" start=\"6\" end=\"6\"/>\n"
    "      <field name=\"SF\" start=\"7\" end=\"7\"/>\n"
    "      <field name=\"TF\" start=\"8\" end=\"8\"/>\n"
    "      <field name=\"IF\" start=\"9\" end=\"9\"/>\n"
    "      <field name=\"DF\" start=\"10\" end=\"10\"/>\n"
    "      <field name=\"OF\" start=\"11\" end=\"11\"/>\n"
    "      <field name=\"NT\" start=\"14\" end=\"14\"/>\n"
    "      <field name=\"RF\" start=\"16\" end=\"16\"/>\n"
    "      <field name=\"VM\" start=\"17\" end=\"17\"/>\n"
    "      <field name=\"AC\" start=\"18\" end=\"18\"/>\n"
    "      <field name=\"VIF\" start=\"19\" end=\"19\"/>\n"
    "      <field name=\"VIP\" start=\"20\" end=\"20\"/>\n"
    "      <field name=\"ID\" start=\"21\" end=\"21\"/>\n"
    "    </flags>\n"
    "    <reg name=\"rax\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rbx\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rcx\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rdx\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rsi\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rdi\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rbp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "    <reg name=\"rsp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "    <reg name=\"r8\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r9\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r10\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r11\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r12\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r13\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r14\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"r15\" bitsize=\"64\" type=\"int64\"/>\n"
    "    <reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>\n"
    "    <reg name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"/>\n"
    "    <reg name=\"cs\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"ss\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"ds\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"es\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"fs\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"gs\" bitsize=\"32\" type=\"int32\"/>\n"
    "    <reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st1\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st3\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st5\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"st7\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "    <reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "    <reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "  </feature>\n"
    "  <feature name=\"org.gnu.gdb.i386.sse\">\n"
    "    <vector id=\"v8bf16\" type=\"bfloat16\" count=\"8\"/>\n"
    "    <vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n"
    "    <vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n"
    "    <vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n"
    "    <vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n"
    "    <vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n"
    "    <vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
    "    <union id=\"vec128\">\n"
    "      <field name=\"v8_bfloat16\" type=\"v8bf16\"/>\n"
    "      <field name=\"v4_float\" type=\"v4f\"/>\n"
    "      <field name=\"v2_double\" type=\"v2d\"/>\n"
    "      <field name=\"v16_int8\" type=\"v16i8\"/>\n"
    "      <field name=\"v8_int16\" type=\"v8i16\"/>\n"
    "      <field name=\"v4_int32\" type=\"v4i32\"/>\n"
    "      <field name=\"v2_int64\" type=\"v2i64\"/>\n"
    "      <field name=\"uint128\" type=\"uint128\"/>\n"
    "    </union>\n"
    "    <flags id=\"i386_mxcsr\" size=\"4\">\n"
    "      <field name=\"IE\" start=\"0\" end=\"0\"/>\n"
    "      <field name=\"DE\" start=\"1\" end=\"1\"/>\n"
    "      <field name=\"ZE\" start=\"2\" end=\"2\"/>\n"
    "      <field name=\"OE\" start=\"3\" end=\"3\"/>\n"
    "      <field name=\"UE\" start=\"4\" end=\"4\"/>\n"
    "      <field name=\"PE\" start=\"5\" end=\"5\"/>\n"
    "      <field name=\"DAZ\" start=\"6\" end=\"6\"/>\n"
    "      <field name=\"IM\" start=\"7\" end=\"7\"/>\n"
    "      <field name=\"DM\" start=\"8\" end=\"8\"/>\n"
    "      <field name=\"ZM\" start=\"9\" end=\"9\"/>\n"
    "      <field name=\"OM\" start=\"10\" end=\"10\"/>\n"
    "      <field name=\"UM\" start=\"11\" end=\"11\"/>\n"
    "      <field name=\"PM\" start=\"12\" end=\"12\"/>\n"
    "      <field name=\"FZ\" start=\"15\" end=\"15\"/>\n"
    "    </flags>\n"
    "    <reg name=\"xmm0\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm1\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm2\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm3\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm4\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm5\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm6\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm7\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm8\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm9\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm10\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm11\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm12\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm13\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm14\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"xmm15\" bitsize=\"128\" type=\"vec128\"/>\n"
    "    <reg name=\"mxcsr\" bitsize=\"32\" type=\"i386_mxcsr\" group=\"vector\"/>\n"
    "  </feature>\n"
    "  <feature name=\"org.gnu.gdb.i386.segments\">\n"
    "    <reg name=\"fs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "    <reg name=\"gs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "  </feature>\n"
    "  <feature name=\"org.rewind.x86.sys\">\n"
    "    <flags id=\"x86_cr0\" size=\"8\">\n"
    "      <field name=\"PE\" start=\"0\" end=\"0\"/>\n"
    "      <field name=\"MP\" start=\"1\" end=\"1\"/>\n"
    "      <field name=\"EM\" start=\"2\" end=\"2\"/>\n"
    "      <field name=\"TS\" start=\"3\" end=\"3\"/>\n"
    "      <field name=\"ET\" start=\"4\" end=\"4\"/>\n"
    "      <field name=\"NE\" start=\"5\" end=\"5\"/>\n"
    "      <field name=\"WP\" start=\"16\" end=\"16\"/>\n"
    "      <field name=\"AM\" start=\"18\" end=\"18\"/>\n"
    "      <field name=\"NW\" start=\"29\" end=\"29\"/>\n"
    "      <field name=\"CD\" start=\"30\" end=\"30\"/>\n"
    "      <field name=\"PG\" start=\"31\" end=\"31\"/>\n"
    "    </flags>\n"
    "    <flags id=\"x86_cr4\" size=\"8\">\n"
    "      <field name=\"VME\" start=\"0\" end=\"0\"/>\n"
    "      <field name=\"PVI\" start=\"1\" end=\"1\"/>\n"
    "      <field name=\"TSD\" start=\"2\" end=\"2\"/>\n"
    "      <field name=\"DE\" start=\"3\" end=\"3\"/>\n"
    "      <field name=\"PSE\" start=\"4\" end=\"4\"/>\n"
    "      <field name=\"PAE\" start=\"5\" end=\"5\"/>\n"
    "      <field name=\"MCE\" start=\"6\" end=\"6\"/>\n"
    "      <field name=\"PGE\" start=\"7\" end=\"7\"/>\n"
    "      <field name=\"PCE\" start=\"8\" end=\"8\"/>\n"
    "      <field name=\"OSFXSR\" start=\"9\" end=\"9\"/>\n"
    "      <field name=\"OSXMMEXCPT\" start=\"10\" end=\"10\"/>\n"
    "      <field name=\"UMIP\" start=\"11\" end=\"11\"/>\n"
    "      <field name=\"LA57\" start=\"12\" end=\"12\"/>\n"
    "      <field name=\"VMXE\" start=\"13\" end=\"13\"/>\n"
    "      <field name=\"SMXE\" start=\"14\" end=\"14\"/>\n"
    "      <field name=\"FSGSBASE\" start=\"16\" end=\"16\"/>\n"
    "      <field name=\"PCIDE\" start=\"17\" end=\"17\"/>\n"
    "      <field name=\"OSXSAVE\" start=\"18\" end=\"18\"/>\n"
    "      <field name=\"SMEP\" start=\"20\" end=\"20\"/>\n"
    "      <field name=\"SMAP\" start=\"21\" end=\"21\"/>\n"
    "      <field name=\"PKE\" start=\"22\" end=\"22\"/>\n"
    "    </flags>\n"
    "    <flags id=\"x86_efer\" size=\"8\">\n"
    "      <field name=\"SCE\" start=\"0\" end=\"0\"/>\n"
    "      <field name=\"LME\" start=\"8\" end=\"8\"/>\n"
    "      <field name=\"LMA\" start=\"10\" end=\"10\"/>\n"
    "      <field name=\"NXE\" start=\"11\" end=\"11\"/>\n"
    "      <field name=\"SVME\" start=\"12\" end=\"12\"/>\n"
    "      <field name=\"LMSLE\" start=\"13\" end=\"13\"/>\n"
    "      <field name=\"FFXSR\" start=\"14\" end=\"14\"/>\n"
    "      <field name=\"TCE\" start=\"15\" end=\"15\"/>\n"
    "    </flags>\n"
    "    <reg name=\"k_gs_base\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "    <reg name=\"cr0\" bitsize=\"64\" type=\"x86_cr0\" group=\"system\"/>\n"
    "    <reg name=\"cr2\" bitsize=\"64\" type=\"uint64\" group=\"system\"/>\n"
    "    <reg name=\"cr3\" bitsize=\"64\" type=\"uint64\" group=\"system\"/>\n"
    "    <reg name=\"cr4\" bitsize=\"64\" type=\"x86_cr4\" group=\"system\"/>\n"
    "    <reg name=\"cr8\" bitsize=\"64\" type=\"uint64\" group=\"system\"/>\n"
    "    <reg name=\"efer\" bitsize=\"64\" type=\"x86_efer\" group=\"system\"/>\n"
    "  </feature>\n"
    "</target>\n";

const char *gdb_target_xml(const char *annex, size_t *len)
{
	if (!annex || strcmp(annex, "target.xml") != 0)
		return NULL;
	if (len)
		*len = sizeof(target_xml) - 1;
	return target_xml;
}

unsigned gdb_reg_count(void)
{
	return GDB_REG_COUNT;
}

const char *gdb_reg_name(unsigned regno)
{
	return regno < GDB_REG_COUNT ? regs[regno].name : NULL;
}

unsigned gdb_reg_size(unsigned regno)
{
	return regno < GDB_REG_COUNT ? regs[regno].size : 0;
}

int gdb_reg_offset(unsigned regno)
{
	int off = 0;

	if (regno >= GDB_REG_COUNT)
		return -1;
	for (unsigned i = 0; i < regno; i++)
		off += regs[i].size;
	return off;
}

int gdb_reg_by_name(const char *name)
{
	if (!name)
		return -1;
	for (unsigned i = 0; i < GDB_REG_COUNT; i++)
		if (strcmp(regs[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void put_le(uint8_t *b, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *b, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* Register regno's bytes as gdb wants them (regs[regno].size of them). */
static void reg_get(unsigned regno, const struct vmm_regs *r, const struct vmm_fpregs *f,
		    uint8_t *b)
{
	const struct reg_desc *d = &regs[regno];
	uint64_t v;
	uint32_t w;

	switch (d->kind) {
	case K_U64:
		memcpy(&v, (const char *)r + d->off, 8);
		put_le(b, v, 8);
		break;
	case K_EFLAGS:
		put_le(b, r->rflags, 4);
		break;
	case K_SEG:
		put_le(b, ((const struct vmm_seg *)((const char *)r + d->off))->sel, 4);
		break;
	case K_ST:
		memcpy(b, f->st[d->off], 10);
		break;
	case K_F32:
		memcpy(&w, (const char *)f + d->off, 4);
		put_le(b, w, 4);
		break;
	case K_XMM:
		memcpy(b, f->xmm[d->off], 16);
		break;
	}
}

static int reg_set(unsigned regno, const uint8_t *b, struct vmm_regs *r, struct vmm_fpregs *f)
{
	const struct reg_desc *d = &regs[regno];
	uint64_t v = d->size <= 8 ? get_le(b, d->size) : 0;
	uint32_t w;

	switch (d->kind) {
	case K_U64:
		memcpy((char *)r + d->off, &v, 8);
		break;
	case K_EFLAGS:
		r->rflags = v;
		break;
	case K_SEG:
		if (v > 0xffff)
			return -1;
		((struct vmm_seg *)((char *)r + d->off))->sel = (uint16_t)v;
		break;
	case K_ST:
		memcpy(f->st[d->off], b, 10);
		break;
	case K_F32:
		w = (uint32_t)v;
		memcpy((char *)f + d->off, &w, 4);
		break;
	case K_XMM:
		memcpy(f->xmm[d->off], b, 16);
		break;
	}
	return 0;
}

size_t gdb_regs_encode(const struct vmm_regs *r, const struct vmm_fpregs *f, char *out, size_t cap)
{
	uint8_t b[16];
	size_t o = 0;

	if (cap < 2 * GDB_REGS_BYTES)
		return 0;
	for (unsigned i = 0; i < GDB_REG_COUNT; i++) {
		reg_get(i, r, f, b);
		o += gdb_hex_encode(b, regs[i].size, out + o);
	}
	if (o < cap)
		out[o] = '\0';
	return o;
}

int gdb_reg_encode(unsigned regno, const struct vmm_regs *r, const struct vmm_fpregs *f, char *out,
		   size_t cap)
{
	uint8_t b[16];
	size_t n;

	if (regno >= GDB_REG_COUNT)
		return -1;
	n = 2 * (size_t)regs[regno].size;
	if (cap < n)
		return 0;
	reg_get(regno, r, f, b);
	gdb_hex_encode(b, regs[regno].size, out);
	if (n < cap)
		out[n] = '\0';
	return (int)n;
}

int gdb_regs_decode(const char *hex, size_t len, struct vmm_regs *r, struct vmm_fpregs *f)
{
	struct vmm_regs nr = *r;
	struct vmm_fpregs nf = *f;
	uint8_t b[16];
	size_t o = 0;

	if (len != 2 * GDB_REGS_BYTES)
		return -1;
	for (unsigned i = 0; i < GDB_REG_COUNT; i++) {
		if (gdb_hex_decode(hex + o, 2 * (size_t)regs[i].size, b) < 0 ||
		    reg_set(i, b, &nr, &nf) < 0)
			return -1;
		o += 2 * (size_t)regs[i].size;
	}
	*r = nr;
	*f = nf;
	return 0;
}

int gdb_reg_decode(unsigned regno, const char *hex, size_t len, struct vmm_regs *r,
		   struct vmm_fpregs *f)
{
	struct vmm_regs nr = *r;
	struct vmm_fpregs nf = *f;
	uint8_t b[16];

	if (regno >= GDB_REG_COUNT || len != 2 * (size_t)regs[regno].size ||
	    gdb_hex_decode(hex, len, b) < 0 || reg_set(regno, b, &nr, &nf) < 0)
		return -1;
	*r = nr;
	*f = nf;
	return 0;
}
