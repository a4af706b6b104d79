/* integration */
/*
 * test_initrd.c: `--initrd FILE` as a user gives it to run, record, replay and debug, on
 * the initrd guest (guests/initrd.c), which prints the PVH module list it finds and the
 * FNV-1a hash of the module's bytes: the module is the file, byte for byte, at the top of
 * RAM below 4 GiB inside a RAM entry of the memory map, with no command line. A recording
 * embeds it (or, with --no-embed, only its path and hash), `log info` shows it, and replay
 * gives the guest the same bytes. A missing, empty or too large initrd is one line,
 * status 4.
 */
#include "tests/integration/harness.h"
#include "tests/integration/rw.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static const char content[] = "070701 an initrd for the test\nsecond line\n";

/* FNV-1a 64 of s, as the guest prints it. */
static void fnv_line(const void *d, size_t n, char *buf, size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const uint8_t *)d)[i]) * 0x100000001b3ull;
	snprintf(buf, cap, "fnv1a64 %016llx head \"070701 an initrd for the test\"",
		 (unsigned long long)h);
}

/* What the guest prints for the module of content in RAM of mem bytes. */
static void expect_module(const struct h_run *r, uint64_t mem)
{
	char want[160];
	size_t n = sizeof(content) - 1;
	snprintf(want, sizeof(want), "modules: 1\nmodule 0: paddr 0x%llx size %zu cmdline_paddr 0x0\n",
		 (unsigned long long)((mem - n) & ~0xfffull), n);
	expect_out(r, want);
	fnv_line(content, n, want, sizeof(want));
	expect_out(r, want);
	cr_expect(strstr(r->out, "  not ") == NULL && strstr(r->out, "  has ") == NULL,
		  "the guest found the module misplaced:\n%s", r->out);
}

Test(initrd, run_hands_the_file_to_the_guest, .timeout = 2 * TIMEOUT_S)
{
	const char *rd = scratch("rd");
	write_file(rd, content, sizeof(content) - 1);
	struct h_run r;
	RW(&r, NULL, "run", "--backend", "emu", "--initrd", rd, guest("initrd"));
	expect_status(&r, 1); /* the guest's 0: every check passed */
	expect_module(&r, 128ull << 20);
	h_free(&r);
	RW(&r, NULL, "run", "--backend", "emu", "--mem", "64M", "--initrd", rd, guest("initrd"));
	expect_status(&r, 1);
	expect_module(&r, 64ull << 20);
	h_free(&r);
	/* Without --initrd, no module. */
	RW(&r, NULL, "run", "--backend", "emu", guest("initrd"));
	expect_status(&r, 1);
	expect_out_is(&r, "modules: 0\n");
	h_free(&r);
	unlink(rd);
}

Test(initrd, recorded_embedded_replayed_and_shown, .timeout = 3 * TIMEOUT_S)
{
	const char *rd = scratch("rd-e"), *log = scratch("rd-e.rwl");
	write_file(rd, content, sizeof(content) - 1);
	struct h_run rec, rpl, info;
	RW(&rec, NULL, "record", "-o", log, "--initrd", rd, guest("initrd"));
	expect_status(&rec, 1);
	expect_module(&rec, 128ull << 20);
	/* The file may go: the log holds it. */
	unlink(rd);
	RW(&rpl, NULL, "replay", log);
	expect_status(&rpl, 1);
	cr_expect_str_eq(rpl.out, rec.out);
	expect_err(&rpl, ": matched\n");
	RW(&info, NULL, "log", "info", log);
	expect_status(&info, 0);
	char want[600];
	snprintf(want, sizeof(want), "initrd:     %s (%zu bytes, hash ", rd, sizeof(content) - 1);
	expect_out(&info, want);
	expect_out(&info, ", embedded: ");
	expect_out(&info, "(format 4,");
	h_free(&rec);
	h_free(&rpl);
	h_free(&info);
	unlink(log);
}

Test(initrd, no_embed_reads_the_file_and_checks_its_hash, .timeout = 4 * TIMEOUT_S)
{
	const char *rd = scratch("rd-n"), *moved = scratch("rd-m"), *log = scratch("rd-n.rwl");
	write_file(rd, content, sizeof(content) - 1);
	struct h_run r;
	RW(&r, NULL, "record", "--no-embed", "-o", log, "--initrd", rd, guest("initrd"));
	expect_status(&r, 1);
	h_free(&r);
	RW(&r, NULL, "log", "info", log);
	expect_out(&r, "bytes, hash ");
	expect_out(&r, ", not embedded)\ncmdline:");
	h_free(&r);
	RW(&r, NULL, "replay", log);
	expect_status(&r, 1);
	expect_err(&r, ": matched\n");
	h_free(&r);
	/* Moved: replay says where to give it; --initrd does. */
	cr_assert_eq(rename(rd, moved), 0);
	RW(&r, NULL, "replay", log);
	REFUSED(&r, 4, "does not embed its initrd", "--initrd PATH");
	h_free(&r);
	RW(&r, NULL, "replay", "--initrd", moved, log);
	expect_status(&r, 1);
	expect_module(&r, 128ull << 20);
	expect_err(&r, ": matched\n");
	h_free(&r);
	/* Another file of the same length: refused, the guest never sees it. */
	char other[sizeof(content)];
	memcpy(other, content, sizeof(content));
	other[3] ^= 1;
	write_file(moved, other, sizeof(other) - 1);
	RW(&r, NULL, "replay", "--initrd", moved, log);
	REFUSED(&r, 4, "is not the initrd this log was recorded with");
	h_free(&r);
	unlink(moved);
	unlink(log);
}

Test(initrd, bad_input_is_one_line_status_4, .timeout = 3 * TIMEOUT_S)
{
	struct h_run r;
	const char *missing = scratch("no-such-initrd");
	RW(&r, NULL, "run", "--backend", "emu", "--initrd", missing, guest("initrd"));
	REFUSED(&r, 4, "--initrd", missing, "No such file");
	h_free(&r);

	const char *empty = scratch("empty-rd");
	write_file(empty, "", 0);
	RW(&r, NULL, "run", "--backend", "emu", "--initrd", empty, guest("initrd"));
	REFUSED(&r, 4, "--initrd", "empty");
	h_free(&r);

	/* Larger than all of RAM, then too large for the RAM above the kernel. */
	const char *big = scratch("big-rd");
	FILE *f = fopen(big, "wb");
	cr_assert(f);
	cr_assert_eq(ftruncate(fileno(f), (3 << 20) + 1), 0);
	fclose(f);
	RW(&r, NULL, "run", "--backend", "emu", "--mem", "3M", "--initrd", big, guest("initrd"));
	REFUSED(&r, 4, "--initrd", "do not fit", "--mem");
	h_free(&r);
	cr_assert_eq(truncate(big, (3 << 20) - 4096), 0);
	RW(&r, NULL, "run", "--backend", "emu", "--mem", "3M", "--initrd", big, guest("initrd"));
	REFUSED(&r, 4, "--initrd", "does not fit in guest RAM", "--mem");
	h_free(&r);
	/* A recording refused so: no guest ran. */
	const char *log = scratch("big-rd.rwl");
	RW(&r, NULL, "record", "-o", log, "--mem", "3M", "--initrd", big, guest("initrd"));
	REFUSED(&r, 4, "--initrd", "--mem");
	h_free(&r);
	unlink(log);
	unlink(big);
	unlink(empty);

	/* replay --initrd on a log without one is a usage error. */
	const char *plain = scratch("plain.rwl");
	RW(&r, NULL, "record", "-o", plain, guest("initrd"));
	expect_status(&r, 1);
	h_free(&r);
	RW(&r, NULL, "replay", "--initrd", guest("initrd"), plain);
	REFUSED(&r, 2, "recorded without an initrd");
	h_free(&r);
	unlink(plain);
}

/* QEMU (microvm, PVH -kernel with -initrd) hands the guest the same module, at the same
 * address: the guest prints the same lines on both. */
Test(initrd, same_module_as_on_qemu, .timeout = 2 * TIMEOUT_S + 10)
{
	if (!h_have_program("qemu-system-x86_64"))
		cr_skip_test("qemu-system-x86_64 not installed: install qemu-system-x86 to "
			     "compare with QEMU");
	const char *rd = scratch("rd-q");
	write_file(rd, content, sizeof(content) - 1);
	char elf[4096];
	h_guest_path("initrd", elf, sizeof(elf));
	char *argv[] = {
	    "qemu-system-x86_64", "-M",
	    "microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on", "-cpu",
	    "qemu64,-apic", "-m", "128M", "-no-reboot", "-nographic", "-nodefaults", "-serial",
	    "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", elf,
	    "-initrd", (char *)rd, NULL};
	struct h_opts o = {.hold_stdin = true, .merge = true, .timeout_s = TIMEOUT_S};
	struct h_run q, r;
	h_run(argv, &o, &q);
	cr_assert(!q.timed_out, "QEMU killed after its deadline:\n%s", q.out);
	cr_expect_eq(q.status, 1, "QEMU's status %d:\n%s", q.status, q.out);
	RW(&r, NULL, "run", "--backend", "emu", "--initrd", rd, guest("initrd"));
	expect_status(&r, 1);
	cr_expect_str_eq(r.out, q.out, "rewind printed:\n%s\nQEMU printed:\n%s", r.out, q.out);
	expect_module(&r, 128ull << 20);
	h_free(&q);
	h_free(&r);
	unlink(rd);
}
