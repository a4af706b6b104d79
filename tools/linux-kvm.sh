#!/bin/sh
# linux-kvm.sh [BUILD_DIR] [--record]: boot Debian's kernel (build/linux/vmlinux, fetched
# by tools/fetch-linux.sh when missing) on `rewind run --backend kvm` to the "VFS: Unable
# to mount root fs" panic, and check that it prints the same kernel messages as the same
# boot on emu, run first as the reference. `make linux-kvm` runs it. It is not part of
# `make test`: on a software-nested KVM (PVM) the boot takes the best part of an hour
# (docs/kvm-backend.md, "Linux on kvm").
#
# While the kvm boot runs, the kernel's console lines appear as they come and rewind
# adds a progress line (elapsed time, lines printed, position in exits) every PROGRESS
# seconds. At the end: PASS or FAIL, both times, and the first differing line. The exit
# status is 0 on PASS only.
#
# --record: also `rewind record --backend kvm` the boot and `rewind replay` the log, and
# check that the replay matches and prints what the recording printed.
#
# Environment: PROGRESS (seconds, default 60), TIMEOUT (seconds per kvm command, default
# 5400), OUT (where the outputs are kept, default BUILD_DIR/linux-kvm), EXTRA_APPEND (added
# to both command lines; default on software KVM: a clearcpuid= list, see below), CLOCK
# (the kvm boot's --clock; default on software KVM: real/8, see below).
set -u
b=build
record=
for a in "$@"; do
	case $a in
	--record) record=1 ;;
	-*)
		echo "usage: $0 [BUILD_DIR] [--record]" >&2
		exit 2
		;;
	*) b=$a ;;
esac
done
progress=${PROGRESS:-60}
limit=${TIMEOUT:-5400}
out=${OUT:-$b/linux-kvm}
# The command line of tests/integration/test_linux.c, so the emu side is the tested boot.
cmdline="console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
panic="Kernel panic - not syncing: VFS: Unable to mount root fs"
rewind=$b/rewind
kernel=$b/linux/vmlinux

[ -x "$rewind" ] || { echo "linux-kvm: $rewind missing: run make first" >&2; exit 2; }
tools/fetch-linux.sh "$b/linux" || exit 1
mkdir -p "$out"
rm -f "$out"/*.out "$out"/*.err "$out"/*.norm "$out"/*.status "$out"/kvm.rwl

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Kernel messages as the comparison sees them: timestamps stripped; dropped, as in
# test_linux.c, the lines whose content is a measured speed or a clock calibration
# outcome (emu's TSC is virtual, kvm's the host's, so Linux may pick another clocksource);
# the wall-clock time of the audit line and the RTC masked; rewind's own lines dropped.
# Also dropped: "random: crng init done", printed when the entropy pool is first seeded,
# which depends on the CPU's RDRAND (PVM shows the guest the host's) and on how many
# interrupts came: emu's three-second boot never gets there, a slow kvm boot may.
norm() {
	sed -e 's/\r$//' -e 's/^\[ *[0-9]*\.[0-9]*\] //' "$1" |
		grep -v -E 'BogoMIPS|MHz|[Cc]alibrat|^random: crng init done$' |
		grep -v -E '^(tsc: |clocksource: tsc|clocksource: Switched to clocksource |clocksource: timekeeping watchdog |clocksource:     |sched_clock: |rewind: )' |
		grep -v -E '^(Unstable clock detected, switching default tracing clock|If you want to keep using the local clock, then add:|  "trace_clock=local"|on the kernel command line)' |
		sed -E -e 's/(audit\()[0-9.:]+/\1#/' \
			-e 's/^(rtc_cmos rtc_cmos: setting system clock to )[0-9T:-]+ UTC \([0-9]+\)/\1# UTC (#)/'
}

# run NAME CMD...: CMD's stdout and stderr shown as they come and kept in NAME.out
# (rewind's own lines start with "rewind: "); its status in NAME.status, its wall time
# in t_NAME.
run() {
	name=$1
	shift
	t0=$(now)
	{
		timeout -s INT "$limit" "$@" </dev/null 2>&1
		echo $? >"$out/$name.status"
	} | tee "$out/$name.out"
	t1=$(now)
	eval "t_$name=\$(secs $t0 $t1)"
}

kind=$("$rewind" run --backend help | sed -n 's/^host kvm: \([^ ]*\).*/\1/p')
# A software-nested KVM (PVM) shows the guest the host's CPUID leaf 1 and 0xd, not
# rewind's table (docs/kvm-backend.md), and its instruction emulator, which runs the
# guest's kernel code, lacks what those bits announce. Linux then dies at its first XRSTOR
# (XSAVE), or where its alternatives put POPCNT (hweight) or CMPXCHG16B (CX16, SLUB).
# clearcpuid= takes back every leaf 1 feature the table lacks that a host may show; it
# goes on both command lines, so the comparison stays like for like (on emu the features
# are absent already, and both print the same "Clearing CPUID bits" line and taint).
leaked=pclmulqdq,ssse3,fma,cx16,pcid,sse4_1,sse4_2,x2apic,movbe,popcnt,aes,xsave,avx,f16c,rdrand
# On a software KVM one 250 Hz tick of the kernel (its handler, the scheduler, the 8259's
# port exits) costs more host time than the 4 ms between ticks, and the boot stops moving
# (docs/kvm-backend.md, "Linux on kvm"): there the kvm boot's clock is slowed 8 times.
case $kind in
software-*)
	extra=${EXTRA_APPEND-clearcpuid=$leaked}
	clock=${CLOCK:-real/8}
	;;
*)
	extra=${EXTRA_APPEND-}
	clock=${CLOCK:-real}
	;;
esac
[ -n "$extra" ] && cmdline="$cmdline $extra"
echo "linux-kvm: $(cat "$b/linux/version" 2>/dev/null || echo "$kernel") on emu (reference), then on kvm"
echo "linux-kvm: host KVM: $("$rewind" run --backend help | sed -n 's/^host kvm: //p')"
echo "linux-kvm: command line (both): $cmdline"
t0=$(now)
"$rewind" run --backend emu --append "$cmdline" "$kernel" </dev/null >"$out/emu.out" 2>"$out/emu.err"
echo $? >"$out/emu.status"
t_emu=$(secs "$t0" "$(now)")
echo "linux-kvm: emu booted in $t_emu s (status $(cat "$out/emu.status"))"
if ! grep -q "$panic" "$out/emu.out"; then
	echo "linux-kvm: FAIL: the emu reference boot did not reach the root fs panic; see $out/emu.out" >&2
	exit 1
fi

echo "linux-kvm: kvm boot, a progress line every $progress s (limit $limit s):"
echo "linux-kvm: kvm clock: --clock $clock"
run kvm "$rewind" run --backend kvm --clock "$clock" --progress "$progress" --append "$cmdline" "$kernel"

# line N FILE: line N of FILE, or "(end)" past its last
line() { awk -v n="$1" 'FNR == n { print; found = 1 } END { if (!found) print "(end)" }' "$2"; }

fail=
check() { # NAME: NAME.out against emu.out
	st=$(cat "$out/$1.status")
	# timeout's own status when it had to stop the command
	[ "$st" = 124 ] && fail="$fail; $1 stopped after $limit s (TIMEOUT)"
	grep -q "$panic" "$out/$1.out" || fail="$fail; $1 did not reach the root fs panic"
	[ "$st" = "$(cat "$out/emu.status")" ] ||
		fail="$fail; $1 exit status $st, emu's $(cat "$out/emu.status")"
	norm "$out/emu.out" >"$out/emu.norm"
	norm "$out/$1.out" >"$out/$1.norm"
	if ! cmp -s "$out/emu.norm" "$out/$1.norm"; then
		# one is a prefix of the other: the line after the shorter one's last
		n=$(awk 'NR == FNR { a[FNR] = $0; n = FNR; next }
			 { m = FNR }
			 FNR > n || a[FNR] != $0 { print FNR; found = 1; exit }
			 END { if (!found) print (m < n ? m : n) + 1 }' "$out/emu.norm" "$out/$1.norm")
		fail="$fail; $1's kernel messages differ from emu's at normalised line $n"
		echo "linux-kvm: first difference, normalised line $n ($out/emu.norm, $out/$1.norm):"
		echo "  emu: $(line "$n" "$out/emu.norm")"
		echo "  $1: $(line "$n" "$out/$1.norm")"
	fi
}
check kvm

if [ -n "$record" ]; then
	echo "linux-kvm: recording the boot on kvm:"
	run rec "$rewind" record --backend kvm --clock "$clock" --progress "$progress" -o "$out/kvm.rwl" \
		--append "$cmdline" "$kernel"
	check rec
	echo "linux-kvm: replaying it:"
	run rpl "$rewind" replay "$out/kvm.rwl"
	grep -q ': matched$' "$out/rpl.out" || fail="$fail; the replay did not match"
	[ "$(cat "$out/rpl.status")" = "$(cat "$out/rec.status")" ] ||
		fail="$fail; replay status $(cat "$out/rpl.status"), recorded $(cat "$out/rec.status")"
	grep -v '^rewind: ' "$out/rec.out" >"$out/rec.guest"
	grep -v '^rewind: ' "$out/rpl.out" >"$out/rpl.guest"
	cmp -s "$out/rec.guest" "$out/rpl.guest" || fail="$fail; the replay printed other output"
fi

times="emu $t_emu s, kvm $t_kvm s"
[ -n "$record" ] && times="$times, kvm record $t_rec s, replay $t_rpl s"
case $kind in
software-*) times="$times (kvm times on software KVM, PVM: not KVM speed)" ;;
esac
if [ -n "$fail" ]; then
	echo "linux-kvm: FAIL: ${fail#; }"
	echo "linux-kvm: $times; outputs in $out"
	exit 1
fi
echo "linux-kvm: PASS: kvm printed emu's kernel messages up to the root fs panic"
echo "linux-kvm: $times; outputs in $out"
