/* integration */
/*
 * test_linux.c: Debian 12's stock Linux kernel, a PVH guest nobody here wrote, boots on
 * `rewind run --backend emu` to the "VFS: Unable to mount root fs" panic, printing the
 * kernel messages it prints on QEMU's microvm, and its reboot request (panic=-1) ends the
 * run with the reset status (6). The same boot, recorded on the real clock (asynchronous
 * timer kicks, and Linux patching its own code while it boots), replays exactly. The
 * kernel comes from `make linux` (tools/fetch-linux.sh) into $REWIND_BUILD/linux/vmlinux;
 * without it the tests skip.
 *
 * linux-boot.golden is QEMU's log of the same boot, normalised as the issue fixes it:
 * timestamps stripped and the lines that report measured speeds removed (any line with
 * "BogoMIPS", "MHz" or "calibrat"). Made with
 *   qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,\
 *     isa-serial=on -cpu qemu64,-apic -m 128M -no-reboot -nographic -nodefaults \
 *     -serial stdio -kernel build/linux/vmlinux -append "$CMDLINE" |
 *   sed -E 's/\r$//; s/^\[ *[0-9]+\.[0-9]+\] //' | grep -v -E 'BogoMIPS|MHz|[Cc]alibrat'
 * with CMDLINE below. The comparison then applies the same normalisation to rewind's
 * output, and to both sides the known differences listed in `known[]` below, each with
 * its reason; every other line must be equal, in order.
 */
#include "harness.h"

#include <ctype.h>
#include <signal.h>
#include <sys/file.h>

#define CMDLINE "console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
#define GOLDEN "tests/integration/linux-boot.golden"
#define BOOT_TIMEOUT_S 100
#define STATUS_RESET 6

/*
 * Lines that legitimately differ between QEMU's microvm and rewind, dropped from both
 * sides before comparing (a line is dropped if it starts with one of these):
 *  - firmware: QEMU boots through qboot, which builds an e820 map with an ACPI NVS range
 *    at 0xd0000 and an MP table (with a local APIC and an IOAPIC); rewind gives the PVH
 *    start info's memory map only (one reserved range 0x9fc00-0xfffff) and no MP table.
 *    Linux then reports the MP table (QEMU) or the missing APIC (rewind).
 *  - the clock source: QEMU's TCG TSC fails Linux's PIT calibration, so Linux marks the
 *    TSC unstable and runs on jiffies; rewind's TSC is the virtual one (icount) and
 *    calibrates, after which Linux may use it or its watchdog may reject it (it does not
 *    tick while the guest halts), depending on host speed. Every "tsc:", TSC
 *    "clocksource:" and "sched_clock:" line, and the trace-clock advice QEMU's unstable
 *    TSC brings, are calibration outcomes.
 *  - i8042: rewind's sysctl device (vmm/sysctl.c) answers 0x64 as an idle 8042 so a
 *    guest can reset through it; microvm has no 8042, so port 0x64 reads 0xFF there.
 */
static const char *const known[] = {
	/* firmware (qboot's e820 map and MP table against PVH start info) */
	"BIOS-e820: [mem 0x000000000009fc00-",
	"BIOS-e820: [mem 0x00000000000d0000-",
	"BIOS-e820: [mem 0x00000000000f0000-",
	"found SMP MP-table at ",
	"Intel MultiProcessor Specification ",
	"MPTABLE: ",
	"Processor #0 (Bootup-CPU)",
	"BIOS bug: APIC version mismatch",
	"IOAPIC[0]: ",
	"Processors: 1",
	"ACPI: PM: Registering ACPI NVS region ",
	"No local APIC present",
	"APIC: disable apic facility",
	"APIC: switched to apic NOOP",
	"smpboot: weird, boot CPU (#0) not listed by the BIOS",
	/* the clock source (calibration outcome) */
	"tsc: ",
	"clocksource: tsc",
	"clocksource: Switched to clocksource ",
	"clocksource: timekeeping watchdog ",
	"clocksource:     ", /* continuation lines of the watchdog's report */
	"sched_clock: ",
	"Unstable clock detected, switching default tracing clock",
	"If you want to keep using the local clock, then add:",
	"  \"trace_clock=local\"",
	"on the kernel command line",
	/* the 8042 stub */
	"i8042: No controller found",
	"i8042: Can't read CTR while initializing i8042",
	"i8042: probe of i8042 failed with error ",
};

/*
 * Numbers that follow from the firmware difference above or from the wall clock, masked
 * with '#' on both sides (the text before and after must still match):
 *  - "Memory: NK/..." and "NK reserved": qboot's MP table takes one more page;
 *  - "nr_irqs: N": Linux sizes its IRQ space for the MP table's IOAPIC;
 *  - the audit timestamp and the time the RTC sets: the wall clock at boot.
 */
static const struct {
	const char *prefix; /* the line starts with this */
	const char *after;  /* mask the run of digits (and '.', ':', '-', 'T') after this */
} masks[] = {
	{"Memory: ", "Memory: "},
	{"Memory: ", "bss, "},
	{"NR_IRQS: ", "nr_irqs: "},
	{"audit: type=2000 audit(", "audit("},
	{"rtc_cmos rtc_cmos: setting system clock to ", "clock to "},
	{"rtc_cmos rtc_cmos: setting system clock to ", "UTC ("},
};

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static bool speed_line(const char *s)
{
	return strstr(s, "BogoMIPS") || strstr(s, "MHz") || strstr(s, "alibrat");
}

/* Normalise one line in place; false if it is dropped. */
static bool norm_line(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	/* "[    1.104033] " */
	if (s[0] == '[') {
		char *e = strchr(s, ']');
		if (e && e[1] == ' ') {
			bool ts = true;
			for (char *p = s + 1; p < e; p++)
				ts = ts && (*p == ' ' || *p == '.' || isdigit((unsigned char)*p));
			if (ts)
				memmove(s, e + 2, strlen(e + 2) + 1);
		}
	}
	if (speed_line(s))
		return false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (starts(s, known[i]))
			return false;
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		if (!starts(s, masks[i].prefix))
			continue;
		char *p = strstr(s, masks[i].after);
		if (!p)
			continue;
		p += strlen(masks[i].after);
		char *q = p;
		while (isdigit((unsigned char)*q) || *q == '.' || *q == ':' || *q == '-' ||
		       *q == 'T')
			q++;
		if (q > p) {
			*p = '#';
			memmove(p + 1, q, strlen(q) + 1);
		}
	}
	return true;
}

struct lines {
	char **v;
	size_t n;
};

/* Split text into normalised lines (text is modified and kept by the result). */
static void split(char *text, struct lines *l)
{
	size_t cap = 64;
	l->v = malloc(cap * sizeof(*l->v));
	l->n = 0;
	for (char *s = text, *e; *s; s = e) {
		/* Line by line, empty ones included (the panic prints one). */
		e = strchr(s, '\n');
		if (e)
			*e++ = '\0';
		else
			e = s + strlen(s);
		if (!norm_line(s))
			continue;
		if (l->n == cap)
			l->v = realloc(l->v, (cap *= 2) * sizeof(*l->v));
		l->v[l->n++] = s;
	}
}

static bool have_kernel(char *path, size_t size)
{
	snprintf(path, size, "%s/linux/vmlinux", h_build_dir());
	return access(path, R_OK) == 0;
}

/*
 * The Linux tests take turns (Criterion runs them in parallel): two boots on the host
 * clock on a two-core machine starve each other, and a starved guest may print RCU stall
 * warnings that the comparison with QEMU's log does not expect. The lock is held until
 * the test process exits.
 */
static void take_turn(void)
{
	char path[512];
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/rewind-test-linux-%d.lock", tmp && *tmp ? tmp : "/tmp",
		 (int)getuid());
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
			;
}

Test(linux, boots_to_the_root_fs_panic_as_on_qemu, .timeout = 2 * BOOT_TIMEOUT_S + 20)
{
	char kernel[4096], rewind[4096];
	if (!have_kernel(kernel, sizeof(kernel)))
		cr_skip_test("no Linux kernel: run 'make linux' to fetch Debian's kernel");
	h_rewind_path(rewind, sizeof(rewind));
	cr_assert(access(rewind, X_OK) == 0, "%s missing: run make first", rewind);
	take_turn();
	size_t glen;
	char *golden = h_read_file(GOLDEN, &glen);
	cr_assert(golden, "cannot read %s", GOLDEN);

	char *argv[] = {rewind, "run", "--backend", "emu", "--append", CMDLINE, kernel, NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S};
	struct h_run r;
	h_run(argv, &o, &r);
	cr_log_info("linux: booted to the panic in %.2f s wall", r.secs);
	cr_assert(!r.timed_out, "killed after %d s; last output:\n%s\nstderr:\n%s",
		  BOOT_TIMEOUT_S, r.len > 4000 ? r.out + r.len - 4000 : r.out, r.err);
	cr_expect(strstr(r.out, "Linux version ") != NULL, "no \"Linux version\" line");
	cr_expect(strstr(r.out, "Kernel panic - not syncing: VFS: Unable to mount root fs") !=
			  NULL,
		  "no root fs panic; last output:\n%s",
		  r.len > 4000 ? r.out + r.len - 4000 : r.out);
	cr_expect(strstr(r.err, "the guest requested a reset") != NULL,
		  "no reset message on stderr:\n%s", r.err);
	cr_expect_eq(r.status, STATUS_RESET, "exit status %d, expected %d (reset); stderr:\n%s",
		     r.status, STATUS_RESET, r.err);

	struct lines want, got;
	split(golden, &want);
	split(r.out, &got);
	size_t i = 0;
	while (i < want.n && i < got.n && strcmp(want.v[i], got.v[i]) == 0)
		i++;
	if (i < want.n || i < got.n) {
		/* The whole console output, kept for a look (the lines around may explain). */
		char keep[256];
		const char *tmp = getenv("TMPDIR");
		snprintf(keep, sizeof(keep), "%s/rewind-linux-boot-%d.txt", tmp && *tmp ? tmp : "/tmp",
			 (int)getpid());
		FILE *f = fopen(keep, "w");
		if (f) {
			fwrite(r.out, 1, r.len, f);
			fclose(f);
		}
		cr_expect_fail("kernel messages differ from QEMU's (%s) at normalised line %zu "
			       "(of %zu expected, %zu printed):\n  QEMU:   %s\n  rewind: %s\n"
			       "(the whole output is in %s)",
			       GOLDEN, i + 1, want.n, got.n, i < want.n ? want.v[i] : "(end)",
			       i < got.n ? got.v[i] : "(end)", f ? keep : "(not kept)");
	}
	free(want.v);
	free(got.v);
	free(golden);
	h_free(&r);
}

/*
 * Record the boot on the host clock and replay it: the replay must match (every event at
 * its position, every state hash, the output and the end). This is the case that used to
 * diverge: Unicorn kept running translations of code Linux had patched, and whether a
 * stale one was still cached depended on where the recording's kick stops fell. Hashes
 * every 2^20 instructions put a divergence close to its cause. The boot takes about ten
 * seconds to record; a SIGINT at RR_STOP_S ends a slow recording in a complete log, which
 * must replay as well.
 */
#define RR_STOP_S 75
#define STATUS_USER 0

Test(linux, boot_records_and_replays, .timeout = 3 * BOOT_TIMEOUT_S + 20)
{
	char kernel[4096], rewind[4096], log[512];
	if (!have_kernel(kernel, sizeof(kernel)))
		cr_skip_test("no Linux kernel: run 'make linux' to fetch Debian's kernel");
	h_rewind_path(rewind, sizeof(rewind));
	cr_assert(access(rewind, X_OK) == 0, "%s missing: run make first", rewind);
	take_turn();
	const char *tmp = getenv("TMPDIR");
	snprintf(log, sizeof(log), "%s/rewind-test-%d-linux.rwl", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());

	char *rec_argv[] = {rewind,	"record",	  "--backend", "emu",  "--hash-every",
			    "1048576", "-o",		  log,	       "--append", CMDLINE,
			    kernel,	NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S, .sig = SIGINT,
			   .sig_delay_ms = RR_STOP_S * 1000};
	struct h_run rec;
	h_run(rec_argv, &o, &rec);
	cr_log_info("linux: recorded the boot in %.2f s wall", rec.secs);
	cr_assert(!rec.timed_out, "recorder killed after %d s; stderr:\n%s", BOOT_TIMEOUT_S,
		  rec.err);
	cr_assert(strstr(rec.err, "rewind: recorded ") != NULL, "no record summary:\n%s",
		  rec.err);
	cr_expect(rec.status == STATUS_RESET || rec.status == STATUS_USER,
		  "record exit status %d; stderr:\n%s", rec.status, rec.err);
	if (rec.status == STATUS_USER)
		cr_log_warn("linux: the recording was stopped after %d s, before the panic",
			    RR_STOP_S);

	char *rpl_argv[] = {rewind, "replay", log, NULL};
	struct h_opts p = {.timeout_s = BOOT_TIMEOUT_S};
	struct h_run rpl;
	h_run(rpl_argv, &p, &rpl);
	cr_log_info("linux: replayed the boot in %.2f s wall", rpl.secs);
	cr_assert(!rpl.timed_out, "replay killed after %d s; stderr:\n%s", BOOT_TIMEOUT_S,
		  rpl.err);
	bool matched = strstr(rpl.err, ": matched\n") != NULL;
	if (!matched) {
		/* Keep the log for a look: it is the only witness. */
		char keep[600];
		snprintf(keep, sizeof(keep), "%s.failed", log);
		rename(log, keep);
		cr_expect_fail("the replay did not match (log kept in %s):\n%s", keep, rpl.err);
	}
	cr_expect_eq(rpl.status, rec.status, "replay status %d, recorded %d; stderr:\n%s",
		     rpl.status, rec.status, rpl.err);
	cr_expect(rpl.len == rec.len && memcmp(rpl.out, rec.out, rec.len) == 0,
		  "the replay printed %zu bytes, the recording %zu (or other bytes)", rpl.len,
		  rec.len);
	if (matched)
		unlink(log);
	h_free(&rec);
	h_free(&rpl);
}
