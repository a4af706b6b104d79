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
 * The reference is QEMU booting that same vmlinux in the same test, on the machine model
 * rewind's is (docs/architecture.md, "The machine"; the flags test_qemu_boot.c uses) and
 * with the same command line: Debian's archive keeps only its newest kernel, so whatever
 * `make linux` fetched today is what both boot. Both logs are normalised alike
 * (timestamps, measured speeds, the known machine differences in `known[]` and `masks[]`
 * below, each with its reason); every other line must be equal, in order.
 *
 * Where QEMU is not installed the test says so and compares with linux-boot.golden
 * instead: QEMU's log of the boot of 6.1.0-56-amd64 (Debian 6.1.192-2), made with
 *   qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,\
 *     isa-serial=on -cpu qemu64,-apic -m 128M -no-reboot -nographic -nodefaults \
 *     -serial stdio -kernel build/linux/vmlinux -append "$CMDLINE" |
 *   sed -E 's/\r$//; s/^\[ *[0-9]+\.[0-9]+\] //' | grep -v -E 'BogoMIPS|MHz|[Cc]alibrat'
 * with CMDLINE below. The kernel fetched is most likely another build, so that comparison
 * also masks what changes from one Debian build to the next (`build_masks[]`): a weaker
 * check, kept so a machine without QEMU still sees the boot's structure checked.
 *
 * The linux_norm tests hold the normalisation itself to both promises without a kernel:
 * a log of another build matches the golden, and a boot that really diverges does not.
 *
 * The recorded boot is also debugged: `rewind debug` must give gdb the kernel's symbols
 * (from its kallsyms tables), so that a breakpoint on a kernel function resolves and
 * reverse-continue goes back to its previous hit; and the replay's report of the reset
 * names the kernel function it happened in.
 *
 * The initramfs of `make linux` (tools/mkinitrd.sh, build/linux/initrd.cpio.gz): QEMU
 * boots it to its shell, which answers typed commands and halts on `poweroff -f`; rewind
 * hands it to the kernel, which unpacks it.
 */
#include "harness.h"

#include <ctype.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>

#define CMDLINE "console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
#define GOLDEN "tests/integration/linux-boot.golden"
#define QEMU "qemu-system-x86_64"
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
	/* printed by kauditd, a thread of its own: where it lands among the boot's lines
	 * depends on timing, on QEMU as on rewind */
	"audit: type=2000 audit(",
	/* the 8042 stub */
	"i8042: No controller found",
	"i8042: Can't read CTR while initializing i8042",
	"i8042: probe of i8042 failed with error ",
};

/* How a mask rewrites what follows its `after` text. */
enum mask_how {
	MASK_RUN,     /* the run of digits (and '.', ':', '-', 'T') right after it: one '#' */
	MASK_NUMBERS, /* every number after it (decimal, or 0x and hex digits): '#' each */
	MASK_REST,    /* the rest of the line: one '#' */
};

struct mask {
	const char *prefix; /* the line starts with this */
	const char *after;  /* mask what follows the first occurrence of this */
	enum mask_how how;
};

/*
 * Numbers that follow from the firmware difference above or from the wall clock, masked
 * on both sides (the text before and after must still match):
 *  - "Memory: NK/..." and "NK reserved": qboot's MP table takes one more page;
 *  - "nr_irqs: N": Linux sizes its IRQ space for the MP table's IOAPIC;
 *  - the time the RTC sets: the wall clock at boot.
 */
static const struct mask masks[] = {
	{"Memory: ", "Memory: ", MASK_RUN},
	{"Memory: ", "bss, ", MASK_RUN},
	{"NR_IRQS: ", "nr_irqs: ", MASK_RUN},
	{"rtc_cmos rtc_cmos: setting system clock to ", "clock to ", MASK_RUN},
	{"rtc_cmos rtc_cmos: setting system clock to ", "UTC (", MASK_RUN},
};

/*
 * What changes from one Debian build of 6.1 to the next, masked only when the reference
 * is the stored golden (another build): QEMU's boot of the same vmlinux prints the same.
 * From 6.1.0-56 to 6.1.0-57 the banner, the panic's "Not tainted" release and the signing
 * key changed; a build with other code also moves the rest:
 *  - the banner: release, compiler and binutils versions, build number, Debian version,
 *    build date;
 *  - the release and Debian version again in the panic's CPU line;
 *  - the module signing key, generated afresh by each build;
 *  - the kernel's section sizes ("Memory: ... (NK kernel code, ...)"), its number of
 *    traceable functions (ftrace), its static per-CPU data (percpu) and its SMP
 *    alternatives;
 *  - the offsets and sizes of the functions in the panic's call trace.
 */
static const struct mask build_masks[] = {
	{"Linux version ", "Linux version ", MASK_REST},
	{"CPU: ", " tainted ", MASK_REST},
	{"CPU: ", " Tainted: ", MASK_REST},
	{"Loaded X.509 cert 'Build time autogenerated kernel key: ", "key: ", MASK_REST},
	{"Memory: ", " available (", MASK_NUMBERS},
	{"ftrace: ", "ftrace: ", MASK_NUMBERS},
	{"percpu: ", "percpu: ", MASK_NUMBERS},
	{"Freeing SMP alternatives memory: ", "memory: ", MASK_NUMBERS},
	{" ", "+", MASK_NUMBERS}, /* " panic+0x118/0x2f4" */
};

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static bool speed_line(const char *s)
{
	return strstr(s, "BogoMIPS") || strstr(s, "MHz") || strstr(s, "alibrat");
}

/* Replace p up to q with one '#'. */
static void mask_span(char *p, const char *q)
{
	*p = '#';
	memmove(p + 1, q, strlen(q) + 1);
}

static void apply_mask(char *s, const struct mask *m)
{
	if (!starts(s, m->prefix))
		return;
	char *p = strstr(s, m->after);
	if (!p)
		return;
	p += strlen(m->after);
	char *q = p;
	switch (m->how) {
	case MASK_RUN:
		while (isdigit((unsigned char)*q) || *q == '.' || *q == ':' || *q == '-' ||
		       *q == 'T')
			q++;
		if (q > p)
			mask_span(p, q);
		break;
	case MASK_NUMBERS:
		for (; *p; p++) {
			if (!isdigit((unsigned char)*p))
				continue;
			q = p;
			if (q[0] == '0' && q[1] == 'x' && isxdigit((unsigned char)q[2]))
				for (q += 2; isxdigit((unsigned char)*q); q++)
					;
			else
				while (isdigit((unsigned char)*q))
					q++;
			mask_span(p, q);
		}
		break;
	case MASK_REST:
		if (*p)
			mask_span(p, p + strlen(p));
		break;
	}
}

/*
 * Normalise one line in place; false if it is dropped. other_build: the other side is
 * the stored golden of another kernel build, so build_masks[] apply too.
 */
static bool norm_line(char *s, bool other_build)
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
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++)
		apply_mask(s, &masks[i]);
	for (size_t i = 0; other_build && i < sizeof(build_masks) / sizeof(build_masks[0]); i++)
		apply_mask(s, &build_masks[i]);
	return true;
}

struct lines {
	char **v;
	size_t n;
};

/* Split text into normalised lines (text is modified and kept by the result). */
static void split(char *text, bool other_build, struct lines *l)
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
		if (!norm_line(s, other_build))
			continue;
		if (l->n == cap)
			l->v = realloc(l->v, (cap *= 2) * sizeof(*l->v));
		l->v[l->n++] = s;
	}
}

/* The index of the first normalised line where want and got differ; SIZE_MAX if none. */
static size_t first_difference(const struct lines *want, const struct lines *got)
{
	size_t i = 0;
	while (i < want->n && i < got->n && strcmp(want->v[i], got->v[i]) == 0)
		i++;
	return i < want->n || i < got->n ? i : SIZE_MAX;
}

/* A comparison of two console logs: both normalised, and where they first differ. */
struct cmp {
	char *want_text, *got_text; /* normalised copies, which the lines point into */
	struct lines want, got;
	size_t at; /* first differing normalised line, SIZE_MAX if none */
};

static void compare(const char *want, const char *got, bool other_build, struct cmp *c)
{
	c->want_text = strdup(want);
	c->got_text = strdup(got);
	cr_assert(c->want_text && c->got_text);
	split(c->want_text, other_build, &c->want);
	split(c->got_text, other_build, &c->got);
	c->at = first_difference(&c->want, &c->got);
}

static const char *cmp_line(const struct lines *l, size_t i)
{
	return i < l->n ? l->v[i] : "(end)";
}

static void cmp_free(struct cmp *c)
{
	free(c->want.v);
	free(c->got.v);
	free(c->want_text);
	free(c->got_text);
}

static int occurrences_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
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

/* Write text to a file named after the test process, for a look; its path, or NULL. */
static const char *keep_text(const char *what, const char *text, size_t len, char *path,
			     size_t size)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, size, "%s/rewind-linux-%s-%d.txt", tmp && *tmp ? tmp : "/tmp", what,
		 (int)getpid());
	FILE *f = fopen(path, "w");
	if (!f)
		return NULL;
	fwrite(text, 1, len, f);
	return fclose(f) == 0 ? path : NULL;
}

/*
 * QEMU's console log of the boot of kernel, on the machine rewind models
 * (test_qemu_boot.c's flags; -no-reboot turns the panic's reboot into QEMU's exit).
 */
static char *qemu_boot(const char *kernel, size_t *len)
{
	char *argv[] = {
		QEMU, "-M",
		"microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on",
		"-cpu", "qemu64,-apic", "-m", "128M", "-no-reboot", "-nographic",
		"-nodefaults", "-serial", "stdio", "-kernel", (char *)kernel, "-append",
		CMDLINE, NULL,
	};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S};
	struct h_run q;
	h_run(argv, &o, &q);
	cr_log_info("linux: QEMU booted the same vmlinux to the panic in %.2f s wall", q.secs);
	cr_assert(!q.timed_out, "QEMU killed after %d s; last output:\n%s\nstderr:\n%s",
		  BOOT_TIMEOUT_S, q.len > 4000 ? q.out + q.len - 4000 : q.out, q.err);
	cr_assert(strstr(q.out, "Kernel panic - not syncing: VFS: Unable to mount root fs"),
		  "QEMU's boot did not reach the root fs panic (status %d); last output:\n%s\n"
		  "stderr:\n%s",
		  q.status, q.len > 4000 ? q.out + q.len - 4000 : q.out, q.err);
	free(q.err);
	*len = q.len;
	return q.out;
}

Test(linux, boots_to_the_root_fs_panic_as_on_qemu, .timeout = 3 * BOOT_TIMEOUT_S + 20)
{
	char kernel[4096], rewind[4096];
	if (!have_kernel(kernel, sizeof(kernel)))
		cr_skip_test("no Linux kernel: run 'make linux' to fetch Debian's kernel");
	h_rewind_path(rewind, sizeof(rewind));
	cr_assert(access(rewind, X_OK) == 0, "%s missing: run make first", rewind);
	take_turn();

	/* The reference first, then rewind: one boot at a time (see take_turn). */
	bool other_build = !h_have_program(QEMU);
	const char *ref_name = other_build ? GOLDEN : "QEMU's boot of the same vmlinux";
	size_t ref_len;
	char *ref;
	if (other_build) {
		ref = h_read_file(GOLDEN, &ref_len);
		cr_assert(ref, "cannot read %s", GOLDEN);
		int banner = (int)strcspn(ref, "(\n"); /* "Linux version 6.1.0-56-amd64" */
		while (banner && ref[banner - 1] == ' ')
			banner--;
		cr_log_info("linux: %s is not installed (apt-get install qemu-system-x86): "
			    "comparing with %s, QEMU's boot of %.*s, with version and build "
			    "strings masked",
			    QEMU, GOLDEN, banner, ref);
	} else {
		ref = qemu_boot(kernel, &ref_len);
	}

	char *argv[] = {rewind, "run", "--backend", "emu", "--append", CMDLINE, kernel, NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S};
	struct h_run r;
	h_run(argv, &o, &r);
	/*
	 * A known limitation, not this test's subject: with the host's clock, emu's TSC (from
	 * the instruction count) and the PIT (host time) drift apart when the host runs the
	 * guest faster than when the kernel calibrated its TSC, and the UART start-up's delay
	 * loops can outlast RCU's stall limit in jiffies (about 1 boot in 5 on this host:
	 * "rcu_preempt self-detected stall" in serial8250_do_startup). Such a boot is run
	 * once more, saying so; a second stall fails as any other difference.
	 */
	if (!r.timed_out && strstr(r.out, "rcu: INFO: rcu_preempt")) {
		cr_log_info("linux: RCU stall report in the boot (emu's TSC against the PIT on the "
			    "host clock, docs/linux.md): booting once more");
		h_free(&r);
		h_run(argv, &o, &r);
	}
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

	struct cmp c;
	compare(ref, r.out, other_build, &c);
	if (c.at != SIZE_MAX) {
		/* Both whole logs, kept for a look (the lines around may explain). */
		char kr[256], ko[256];
		const char *ref_kept =
			other_build ? GOLDEN : keep_text("qemu", ref, ref_len, kr, sizeof(kr));
		const char *out_kept = keep_text("rewind", r.out, r.len, ko, sizeof(ko));
		cr_expect_fail("kernel messages differ from %s at normalised line %zu (of %zu "
			       "expected, %zu printed):\n  QEMU:   %s\n  rewind: %s\n"
			       "(whole logs: QEMU's %s, rewind's %s)%s",
			       ref_name, c.at + 1, c.want.n, c.got.n, cmp_line(&c.want, c.at),
			       cmp_line(&c.got, c.at), ref_kept ? ref_kept : "(not kept)",
			       out_kept ? out_kept : "(not kept)",
			       other_build ? "\nThe golden is another kernel build's log: with "
					     "QEMU installed the test boots this vmlinux on it "
					     "and compares with that instead."
					   : "");
	}
	cmp_free(&c);
	free(ref);
	h_free(&r);
}

/* --- the normalisation, without a kernel ------------------------------------------ */

/* Replace every occurrence of from in *text with to (*text is reallocated). */
static void subst(char **text, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	for (const char *p = strstr(*text, from); p; p = strstr(p + fl, from))
		n++;
	cr_assert(n, "the golden lacks \"%s\"", from);
	char *out = malloc(strlen(*text) + n * tl + 1), *o = out;
	cr_assert(out);
	const char *s = *text;
	for (const char *p; (p = strstr(s, from)); s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, s);
	free(*text);
	*text = out;
}

/*
 * The golden as the console log of another Debian build would print it: a later ABI,
 * Debian version, compiler revision and build date; a fresh signing key; other section
 * sizes and function offsets (code changed); and the console's own timestamps and CRLF,
 * which the golden has stripped. Nothing else.
 */
static char *another_build(const char *golden)
{
	char *t = strdup(golden);
	cr_assert(t);
	static const char *const change[][2] = {
		{"6.1.0-56-amd64", "6.1.0-61-amd64"},
		{"Debian 6.1.192-2", "Debian 6.1.199-1"},
		{"12.2.0-14+deb12u1", "12.2.0-14+deb12u2"},
		{"(2026-11-16)", "(2027-03-02)"},
		{"8963f707e289edc09df337a240938134371a5bb8",
		 "35ec5eb42ea9fd1caf03b977c56ef26a3720f629"},
		{"(14343K kernel code, 2338K rwdata, 9132K rodata, 2824K init, 17344K bss",
		 "(14351K kernel code, 2342K rwdata, 9140K rodata, 2828K init, 17352K bss"},
		{"allocating 40521 entries in 159 pages", "allocating 40533 entries in 159 pages"},
		{"percpu: Embedded 62 pages/cpu s217088", "percpu: Embedded 62 pages/cpu s217152"},
		{"panic+0x118/0x2f4", "panic+0x11c/0x2f8"},
		{"mount_block_root+0x1d3/0x1e6", "mount_block_root+0x1d7/0x1ea"},
		{"ret_from_fork+0x22/0x30", "ret_from_fork+0x1f/0x30"},
	};
	for (size_t i = 0; i < sizeof(change) / sizeof(change[0]); i++)
		subst(&t, change[i][0], change[i][1]);
	/* "[    0.123456] " before each line, and "\r\n" after it, as the UART shows them. */
	size_t lines = h_lines(t);
	char *out = malloc(strlen(t) + lines * 32 + 1), *o = out;
	cr_assert(out);
	size_t i = 0;
	for (char *s = t, *e; *s; s = e, i++) {
		e = strchrnul(s, '\n');
		o += sprintf(o, "[%5zu.%06zu] %.*s\r\n", i / 100, (i * 7919) % 1000000,
			     (int)(e - s), s);
		if (*e)
			e++;
	}
	*o = '\0';
	free(t);
	return out;
}

static char *golden_text(void)
{
	char *g = h_read_file(GOLDEN, NULL);
	cr_assert(g, "cannot read %s", GOLDEN);
	return g;
}

Test(linux_norm, a_golden_of_one_build_matches_the_log_of_another)
{
	char *golden = golden_text(), *other = another_build(golden);
	struct cmp c;
	compare(golden, other, true, &c);
	cr_expect_eq(c.at, SIZE_MAX, "line %zu differs:\n  golden: %s\n  other:  %s", c.at + 1,
		     cmp_line(&c.want, c.at), cmp_line(&c.got, c.at));
	cr_expect_gt(c.want.n, 200, "only %zu lines compared", c.want.n);
	cmp_free(&c);

	/* Against QEMU's boot of the same vmlinux nothing build-related is masked: the
	 * banner is the first line that differs. */
	compare(golden, other, false, &c);
	cr_expect_eq(c.at, 0, "first difference at line %zu, expected the banner", c.at + 1);
	cr_expect(starts(cmp_line(&c.got, 0), "Linux version 6.1.0-61-amd64 "), "%s",
		  cmp_line(&c.got, 0));
	cmp_free(&c);
	free(other);
	free(golden);
}

/*
 * Edit the log of another build as a boot that really diverged would print it (from
 * replaced with to, or the log cut at from when to is NULL) and check that the comparison
 * fails, with the golden and with QEMU's log of the same build, at the expected line: the
 * first that contains want.
 */
static void expect_divergence(const char *what, const char *from, const char *to,
			      const char *want)
{
	char *golden = golden_text(), *other = another_build(golden);
	char *at = strstr(other, from);
	cr_assert(at, "%s: no \"%s\"", what, from);
	char *edited = malloc(strlen(other) + (to ? strlen(to) : 0) + 1);
	cr_assert(edited);
	memcpy(edited, other, (size_t)(at - other));
	strcpy(edited + (at - other), to ? to : "");
	if (to)
		strcat(edited, at + strlen(from));
	for (int other_build = 1; other_build >= 0; other_build--) {
		const char *mode = other_build ? "with the golden" : "with QEMU's log";
		struct cmp c;
		compare(other_build ? golden : other, edited, other_build, &c);
		cr_expect_neq(c.at, SIZE_MAX, "%s: the comparison %s passed", what, mode);
		if (c.at != SIZE_MAX)
			cr_expect(strstr(cmp_line(&c.want, c.at), want) != NULL,
				  "%s: the first difference %s is at line %zu, not at \"%s\":\n"
				  "  want: %s\n  got:  %s",
				  what, mode, c.at + 1, want, cmp_line(&c.want, c.at),
				  cmp_line(&c.got, c.at));
		cmp_free(&c);
	}
	free(edited);
	free(other);
	free(golden);
}

Test(linux_norm, a_boot_that_diverges_still_fails)
{
	/* A line missing in the middle: the serial driver did not register. */
	expect_divergence("a line removed",
			  "Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled\r\n", "",
			  "Serial: 8250/16550 driver");
	/* A line changed in the middle: the UART on another IRQ. */
	expect_divergence("a line changed", "(irq = 4, base_baud", "(irq = 3, base_baud",
			  "(irq = 4, ");
	/* A number changed on a line where build strings are masked, outside them. */
	expect_divergence("the memory size changed", "K/130680K available", "K/65144K available",
			  "K/130680K available");
	/* A warning where QEMU printed none. */
	expect_divergence("a line added", "smpboot: SMP disabled\r\n",
			  "smpboot: SMP disabled\r\n[    0.300000] rcu: INFO: rcu_preempt "
			  "self-detected stall on CPU\r\n",
			  "cblist_init_generic: ");
	/* The boot stopped early: everything from the panic on missing. */
	expect_divergence("the log cut before the panic", "Kernel panic - not syncing: ", NULL,
			  "Kernel panic - not syncing: ");
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

/*
 * `rewind debug` on the recording: gdb gets the kernel's symbols (from its kallsyms
 * tables: Debian's vmlinux is stripped), so `break vprintk_emit` resolves, stops there
 * three times going forward, and reverse-continue goes back to the second stop.
 */
static void debug_kernel_symbols(const char *rewind, const char *log)
{
	if (!h_have_program("gdb")) {
		cr_log_warn("linux: gdb is not installed (apt-get install gdb): the kernel "
			    "symbols under `rewind debug` were not checked");
		return;
	}
	char script[512];
	const char *tmp = getenv("TMPDIR");
	snprintf(script, sizeof(script), "%s/rewind-test-%d-linux.gdb", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());
	static const char text[] = "break vprintk_emit\n"
				   "continue\nprintf \"P1 \"\nwhen\n"
				   "continue\nprintf \"P2 \"\nwhen\n"
				   "continue\nprintf \"P3 \"\nwhen\n"
				   "reverse-continue\nprintf \"R \"\nwhen\n"
				   "info symbol $pc\n";
	FILE *f = fopen(script, "w");
	cr_assert(f && fputs(text, f) >= 0 && fclose(f) == 0, "%s", script);
	char *argv[] = {(char *)rewind, "debug", (char *)log, "--", "-batch", "-nx", "-x",
			script, NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S, .merge = true};
	struct h_run r;
	h_run(argv, &o, &r);
	unlink(script);
	cr_assert(!r.timed_out, "rewind debug killed after %d s:\n%s", BOOT_TIMEOUT_S, r.out);
	cr_expect_eq(r.status, 0, "rewind debug ended with %d:\n%s", r.status, r.out);
	cr_expect(strstr(r.out, "kernel symbols: ") && strstr(r.out, " from the image's kallsyms"),
		  "no kernel symbols line:\n%s", r.out);
	unsigned long long p[4] = {0};
	static const char *const tag[4] = {"P1 position ", "P2 position ", "P3 position ",
					   "R position "};
	for (int i = 0; i < 4; i++) {
		const char *at = strstr(r.out, tag[i]);
		cr_assert(at, "no \"%s\" in:\n%s", tag[i], r.out);
		p[i] = strtoull(at + strlen(tag[i]), NULL, 10);
	}
	cr_expect(p[0] < p[1] && p[1] < p[2], "forward stops out of order:\n%s", r.out);
	cr_expect_eq(p[3], p[1], "reverse-continue from %llu went to %llu, not the previous "
				 "stop at %llu:\n%s",
		     p[2], p[3], p[1], r.out);
	cr_expect_eq(occurrences_of(r.out, "Breakpoint 1, 0xffffffff"), 4,
		     "expected 4 stops at the breakpoint:\n%s", r.out);
	cr_expect(strstr(r.out, "vprintk_emit in section .text"), "$pc not in vprintk_emit:\n%s",
		  r.out);
	h_free(&r);
}

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

	/* `log info` names the kernel by the banner it printed while it booted. */
	const char *banner = strstr(rec.out, "Linux version ");
	cr_assert(banner, "no \"Linux version\" line in the recording's output");
	char want[1024];
	snprintf(want, sizeof(want), "\nimage:      %.*s\n", (int)strcspn(banner, "\r\n"),
		 banner);
	char *info_argv[] = {rewind, "log", "info", log, NULL};
	struct h_run info;
	h_run(info_argv, NULL, &info);
	cr_expect(info.status == 0 && strstr(info.out, want), "log info lacks \"%s\":\n%s%s",
		  want + 1, info.out, info.err);
	h_free(&info);

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
	/* The reset's report names the kernel function from the image's kallsyms tables. */
	if (rec.status == STATUS_RESET)
		cr_expect(strstr(rpl.err, "guest backtrace:\n    #0  0xffffffff") &&
			      strstr(rpl.err, " in native_machine_emergency_restart+0x"),
			  "the reset's backtrace does not name the kernel function:\n%s",
			  rpl.err);
	if (matched)
		debug_kernel_symbols(rewind, log);
	if (matched)
		unlink(log);
	h_free(&rec);
	h_free(&rpl);
}

/*
 * The boot with Unicorn's translation buffer made small (REWIND_TCG_BUFFER=4M, a test
 * knob: docs/emu-backend.md, "The translation buffer"), so that it fills and is flushed
 * some 35 times on the way to the panic, between blocks Linux runs chained: recorded on
 * the host clock, it ends at the panic (it crashed at the first fill before emu made
 * Unicorn's first region allocation), and replays exactly with the default buffer, which
 * the boot never fills.
 */
Test(linux, boot_with_a_small_translation_buffer_replays, .timeout = 3 * BOOT_TIMEOUT_S + 20)
{
	char kernel[4096], rewind[4096], log[512];
	if (!have_kernel(kernel, sizeof(kernel)))
		cr_skip_test("no Linux kernel: run 'make linux' to fetch Debian's kernel");
	h_rewind_path(rewind, sizeof(rewind));
	cr_assert(access(rewind, X_OK) == 0, "%s missing: run make first", rewind);
	take_turn();
	const char *tmp = getenv("TMPDIR");
	snprintf(log, sizeof(log), "%s/rewind-test-%d-linux-tcg.rwl", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());
	cr_assert(setenv("REWIND_TCG_BUFFER", "4M", 1) == 0);
	char *rec_argv[] = {rewind,	"record",	  "--backend", "emu",  "--hash-every",
			    "1048576", "-o",		  log,	       "--append", CMDLINE,
			    kernel,	NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S};
	struct h_run rec;
	h_run(rec_argv, &o, &rec);
	cr_log_info("linux: recorded the boot with a 4 MiB translation buffer in %.2f s wall",
		    rec.secs);
	cr_assert(!rec.timed_out, "recorder killed after %d s; stderr:\n%s", BOOT_TIMEOUT_S,
		  rec.err);
	cr_assert_eq(rec.status, STATUS_RESET, "record exit status %d (signal %d); stderr:\n%s",
		     rec.status, rec.termsig, rec.err);
	cr_expect(strstr(rec.out, "Kernel panic - not syncing: VFS: Unable to mount root fs"),
		  "the boot did not reach the root fs panic");
	cr_assert(unsetenv("REWIND_TCG_BUFFER") == 0);
	char *rpl_argv[] = {rewind, "replay", log, NULL};
	struct h_run rpl;
	h_run(rpl_argv, &o, &rpl);
	cr_log_info("linux: replayed it with the default buffer in %.2f s wall", rpl.secs);
	cr_assert(!rpl.timed_out, "replay killed after %d s; stderr:\n%s", BOOT_TIMEOUT_S,
		  rpl.err);
	bool matched = strstr(rpl.err, ": matched\n") != NULL;
	cr_expect(matched, "the replay did not match (log kept in %s):\n%s", log, rpl.err);
	cr_expect_eq(rpl.status, rec.status, "replay status %d, recorded %d", rpl.status,
		     rec.status);
	cr_expect(rpl.len == rec.len && memcmp(rpl.out, rec.out, rec.len) == 0,
		  "the replay printed %zu bytes, the recording %zu (or other bytes)", rpl.len,
		  rec.len);
	if (matched)
		unlink(log);
	h_free(&rec);
	h_free(&rpl);
}

/* ---- the initramfs (make linux: tools/mkinitrd.sh) ---------------------------------- */

#define MARKER "rewind-initramfs: ready"

static bool have_initrd(char *path, size_t size)
{
	snprintf(path, size, "%s/linux/initrd.cpio.gz", h_build_dir());
	return access(path, R_OK) == 0;
}

/*
 * The initramfs on QEMU, the reference: /init mounts proc, sys and devtmpfs, prints the
 * marker and starts the shell, which runs what is typed and halts on `poweroff -f`
 * (acpi=off: the kernel halts with interrupts off, and QEMU, which then runs on, is
 * ended once it says so).
 */
Test(linux, initramfs_runs_its_shell_on_qemu, .timeout = 3600)
{
	char kernel[4096], initrd[4096];
	if (!have_kernel(kernel, sizeof(kernel)) || !have_initrd(initrd, sizeof(initrd)))
		cr_skip_test("no Linux kernel or initramfs: run 'make linux' to fetch Debian's "
			     "kernel and busybox");
	if (!h_have_program(QEMU))
		cr_skip_test("%s is not installed (apt-get install qemu-system-x86): the "
			     "initramfs is checked on QEMU",
			     QEMU);
	take_turn();
	char *argv[] = {
		QEMU, "-M",
		"microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on",
		"-cpu", "qemu64,-apic", "-m", "128M", "-no-reboot", "-nographic",
		"-nodefaults", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
		"-append", CMDLINE, NULL,
	};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S,
			   .input = "echo sum=$((6*7)); grep -c ' /proc \\| /sys \\| /dev ' "
				    "/proc/mounts; ls -1 /bin/sh /dev/ttyS0; poweroff -f\n",
			   .input_after = MARKER,
			   .hold_stdin = true,
			   .sig = SIGTERM,
			   .sig_after = "reboot: System halted",
			   .sig_delay_ms = 200};
	struct h_run q;
	h_run(argv, &o, &q);
	cr_assert(!q.timed_out, "QEMU killed after %d s; last output:\n%s", BOOT_TIMEOUT_S,
		  q.len > 4000 ? q.out + q.len - 4000 : q.out);
	const char *m = strstr(q.out, MARKER);
	cr_assert(m, "no marker line; last output:\n%s", q.len > 4000 ? q.out + q.len - 4000 : q.out);
	cr_expect(strstr(m, "\nsum=42\r\n3\r\n/bin/sh\r\n/dev/ttyS0\r\n"),
		  "the shell's answers are missing:\n%s", m);
	cr_expect(strstr(m, "reboot: System halted"), "no halt after poweroff -f:\n%s", m);
	h_free(&q);
}

/*
 * rewind hands the initramfs to the kernel: it finds and unpacks it (its pages are freed
 * after, exactly the archive's size rounded up to pages, from the page-aligned place the
 * loader put it). The run is stopped there (SIGINT): whether user space then runs is the
 * acceptance test's business.
 */
Test(linux, initramfs_is_unpacked_on_emu, .timeout = 3600)
{
	char kernel[4096], initrd[4096], rewind[4096];
	if (!have_kernel(kernel, sizeof(kernel)) || !have_initrd(initrd, sizeof(initrd)))
		cr_skip_test("no Linux kernel or initramfs: run 'make linux' to fetch Debian's "
			     "kernel and busybox");
	h_rewind_path(rewind, sizeof(rewind));
	take_turn();
	struct stat st;
	cr_assert_eq(stat(initrd, &st), 0);
	char *argv[] = {rewind, "run", "--backend", "emu", "--initrd", initrd, "--append",
			CMDLINE, kernel, NULL};
	struct h_opts o = {.timeout_s = BOOT_TIMEOUT_S, .sig = SIGINT,
			   .sig_after = "Freeing initrd memory", .sig_delay_ms = 0};
	struct h_run r;
	h_run(argv, &o, &r);
	cr_assert(!r.timed_out, "killed after %d s; last output:\n%s", BOOT_TIMEOUT_S,
		  r.len > 4000 ? r.out + r.len - 4000 : r.out);
	char freed[64];
	snprintf(freed, sizeof(freed), "Freeing initrd memory: %lldK",
		 (long long)((st.st_size + 4095) / 4096 * 4));
	cr_expect(strstr(r.out, "Trying to unpack rootfs image as initramfs..."),
		  "the kernel did not find the initrd:\n%s", r.out);
	cr_expect(!strstr(r.out, "Initramfs unpacking failed"), "unpacking failed:\n%s", r.out);
	cr_expect(strstr(r.out, freed), "no \"%s\":\n%s", freed, r.out);
	cr_expect(!strstr(r.out, "VFS: Unable to mount root fs"), "root fs panic:\n%s", r.out);
	h_free(&r);
}

/*
 * Acceptance (issue 14): a whole Linux system under record and replay on emu. The kernel
 * boots with the initramfs to its shell; once /init's marker is out, a session is typed
 * through the serial input: uname -a, ls /, a loop printing 3000 lines, cat
 * /proc/interrupts, then poweroff -f, which with acpi=off halts with interrupts off: the
 * recording ends with status 0. Its replay, with no input, must print the same bytes,
 * match every state hash (one every 2^20 instructions) and end alike. `make test` records
 * REWIND_LINUX_SESSIONS sessions (2 by default), `make test-linux` 10; each session has
 * its own timing (the host clock), so each recording is another. The first session is
 * also debugged backwards (debug_session_end: break __x64_sys_write, reverse-continue).
 */
#define SESSION_INPUT                                                                         \
	"uname -a\n"                                                                          \
	"ls /\n"                                                                              \
	"i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done\n"                     \
	"cat /proc/interrupts\n"                                                              \
	"poweroff -f\n"

static void expect_session(const char *out, const char *who)
{
	const char *m = strstr(out, MARKER);
	cr_assert(m, "%s: no marker line", who);
	cr_expect(strstr(m, "Linux (none) ") && strstr(m, " x86_64 GNU/Linux"),
		  "%s: no uname -a answer", who);
	cr_expect(strstr(m, "linuxrc") && strstr(m, "proc"), "%s: no ls / answer", who);
	int lines = 0;
	for (const char *p = strstr(m, "\nline "); p; p = strstr(p + 1, "\nline "))
		lines++;
	cr_expect_eq(lines, 3000, "%s: %d lines from the loop, expected 3000", who, lines);
	cr_expect(strstr(m, "\nline 2999\r\n"), "%s: the loop's last line is missing", who);
	cr_expect(strstr(m, "CPU0") && strstr(m, "timer") && strstr(m, "ttyS0"),
		  "%s: no /proc/interrupts", who);
	cr_expect(strstr(m, "reboot: System halted"), "%s: no halt after poweroff -f", who);
}

/*
 * Time travel on the session (the first one): from 1000 instructions before its end,
 * `break __x64_sys_write` (a kernel symbol, from the kallsyms tables) and reverse-continue
 * stop at the shell's last write system call, in __x64_sys_write, before that position;
 * reverse-stepi goes one instruction further back (into the system call's way in) and
 * stepi returns to the breakpoint's position.
 */
static void debug_session_end(const char *rewind, const char *log, const char *rec_err)
{
	if (!h_have_program("gdb")) {
		cr_log_warn("linux: gdb is not installed (apt-get install gdb): reverse "
			    "execution on the session was not checked");
		return;
	}
	const char *at = strstr(rec_err, "rewind: recorded ");
	cr_assert(at, "no record summary:\n%s", rec_err);
	unsigned long long total = strtoull(at + strlen("rewind: recorded "), NULL, 10);
	cr_assert_gt(total, 100000);
	char script[512], text[1024];
	const char *tmp = getenv("TMPDIR");
	snprintf(script, sizeof(script), "%s/rewind-test-%d-shell.gdb", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());
	snprintf(text, sizeof(text),
		 "goto %llu\n"
		 "break __x64_sys_write\n"
		 "reverse-continue\nprintf \"RC \"\nwhen\ninfo symbol $pc\n"
		 "reverse-stepi\nprintf \"RS \"\nwhen\n"
		 "stepi\nprintf \"FS \"\nwhen\n",
		 total - 1000);
	FILE *f = fopen(script, "w");
	cr_assert(f && fputs(text, f) >= 0 && fclose(f) == 0, "%s", script);
	char *argv[] = {(char *)rewind, "debug", (char *)log, "--", "-batch", "-nx", "-x",
			script, NULL};
	struct h_opts o = {.timeout_s = 3 * BOOT_TIMEOUT_S, .merge = true};
	struct h_run r;
	h_run(argv, &o, &r);
	unlink(script);
	cr_assert(!r.timed_out, "rewind debug killed after %d s:\n%s", 3 * BOOT_TIMEOUT_S,
		  r.out);
	cr_expect_eq(r.status, 0, "rewind debug ended with %d:\n%s", r.status, r.out);
	unsigned long long p[3] = {0};
	static const char *const tag[3] = {"RC position ", "RS position ", "FS position "};
	for (int i = 0; i < 3; i++) {
		const char *t = strstr(r.out, tag[i]);
		cr_assert(t, "no \"%s\" in:\n%s", tag[i], r.out);
		p[i] = strtoull(t + strlen(tag[i]), NULL, 10);
	}
	cr_expect(strstr(r.out, "Breakpoint 1, 0xffffffff") &&
		      strstr(r.out, " in __x64_sys_write ()") &&
		      strstr(r.out, "__x64_sys_write in section .text"),
		  "reverse-continue did not stop in __x64_sys_write:\n%s", r.out);
	cr_expect(p[0] < total - 1000 && p[0] > 0, "stopped at %llu, not before %llu:\n%s", p[0],
		  total - 1000, r.out);
	cr_expect_eq(p[1] + 1, p[0], "reverse-stepi from %llu went to %llu:\n%s", p[0], p[1],
		     r.out);
	cr_expect_eq(p[2], p[0], "stepi from %llu went to %llu:\n%s", p[1], p[2], r.out);
	cr_log_info("linux: rewind debug: from %llu, reverse-continue to __x64_sys_write at "
		    "%llu, reverse-stepi, stepi (%.2f s wall, replay to the end included)",
		    total - 1000, p[0], r.secs);
	h_free(&r);
}

Test(linux_shell, sessions_record_and_replay_exactly, .timeout = 3600)
{
	char kernel[4096], initrd[4096], rewind[4096], log[512];
	if (!have_kernel(kernel, sizeof(kernel)) || !have_initrd(initrd, sizeof(initrd)))
		cr_skip_test("no Linux kernel or initramfs: run 'make linux' to fetch Debian's "
			     "kernel and busybox");
	h_rewind_path(rewind, sizeof(rewind));
	const char *ns = getenv("REWIND_LINUX_SESSIONS");
	int sessions = ns && atoi(ns) > 0 ? atoi(ns) : 2, good = 0;
	take_turn();
	const char *tmp = getenv("TMPDIR");
	snprintf(log, sizeof(log), "%s/rewind-test-%d-shell.rwl", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());
	for (int s = 1; s <= sessions; s++) {
		char *rec_argv[] = {rewind,	  "record",	   "--hash-every", "1048576",
				    "-o",	  log,		   "--initrd",	   initrd,
				    "--append",	  CMDLINE,	   kernel,	   NULL};
		struct h_opts o = {.timeout_s = 3 * BOOT_TIMEOUT_S,
				   .input = SESSION_INPUT,
				   .input_after = MARKER,
				   .hold_stdin = true};
		struct h_run rec, rpl;
		h_run(rec_argv, &o, &rec);
		cr_log_info("linux: session %d recorded in %.2f s wall", s, rec.secs);
		cr_assert(!rec.timed_out, "session %d: recorder killed after %d s; last output:\n%s",
			  s, 3 * BOOT_TIMEOUT_S, rec.len > 4000 ? rec.out + rec.len - 4000 : rec.out);
		cr_expect_eq(rec.status, 0, "session %d: record status %d; stderr:\n%s", s,
			     rec.status, rec.err);
		cr_expect(strstr(rec.err, "the guest halted with interrupts disabled"),
			  "session %d: not halted; stderr:\n%s", s, rec.err);
		expect_session(rec.out, "recording");

		char *rpl_argv[] = {rewind, "replay", "--verbose", log, NULL};
		struct h_opts p = {.timeout_s = 3 * BOOT_TIMEOUT_S};
		h_run(rpl_argv, &p, &rpl);
		cr_log_info("linux: session %d replayed in %.2f s wall", s, rpl.secs);
		cr_assert(!rpl.timed_out, "session %d: replay killed after %d s", s,
			  3 * BOOT_TIMEOUT_S);
		bool matched = strstr(rpl.err, ": matched\n") != NULL;
		const char *h = strstr(rpl.err, " state hashes checked");
		while (h && h > rpl.err && h[-1] >= '0' && h[-1] <= '9')
			h--;
		long hashes = h ? atol(h) : 0;
		bool same = rpl.len == rec.len && memcmp(rpl.out, rec.out, rec.len) == 0;
		cr_expect(matched, "session %d: the replay did not match:\n%s", s, rpl.err);
		cr_expect_gt(hashes, 100, "session %d: %ld state hashes checked:\n%s", s, hashes,
			     rpl.err);
		cr_expect(same, "session %d: the replay printed %zu bytes, the recording %zu (or "
				"other bytes)",
			  s, rpl.len, rec.len);
		cr_expect_eq(rpl.status, rec.status, "session %d: replay status %d, recorded %d",
			     s, rpl.status, rec.status);
		if (s == 1 && matched)
			debug_session_end(rewind, log, rec.err);
		if (matched && same && rec.status == 0 && rpl.status == 0) {
			good++;
			unlink(log);
		} else {
			char keep[600];
			snprintf(keep, sizeof(keep), "%s.%d.failed", log, s);
			rename(log, keep);
			cr_log_error("session %d: log kept in %s", s, keep);
		}
		h_free(&rec);
		h_free(&rpl);
	}
	cr_log_info("linux: %d/%d sessions recorded and replayed exactly", good, sessions);
	printf("linux: %d/%d sessions recorded and replayed exactly\n", good, sessions);
	cr_expect_eq(good, sessions, "%d of %d sessions recorded and replayed exactly", good,
		     sessions);
}
