#!/usr/bin/env bash
# rewind's emu backend against QEMU TCG (no icount) on the same guests, side by side.
#
#   bench/run.sh [BUILD_DIR] [--write] [--runs N]
#
# BUILD_DIR (default build) holds rewind and guests/*.elf (`make bench` passes it).
# --write appends a dated section to bench/RESULTS.md. --runs N: runs of each command
# (default 5), interleaved rewind, qemu, rewind, qemu, ... Environment: COMPUTE_N
# (compute's n=, default 500), SPEW_LINES (spew's lines=, default 20000), QEMU (the
# binary, default qemu-system-x86_64). See bench/README.md.
set -u

build=build
write=0
runs=5
while [ $# -gt 0 ]; do
	case "$1" in
	--write) write=1 ;;
	--runs)
		runs=${2:-}
		shift
		;;
	--runs=*) runs=${1#--runs=} ;;
	-h | --help)
		sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "bench: unknown option $1" >&2
		exit 2
		;;
	*) build=$1 ;;
	esac
	shift
done
case "$runs" in
'' | *[!0-9]* | 0)
	echo "bench: --runs wants a positive number" >&2
	exit 2
	;;
esac

compute_n=${COMPUTE_N:-500}
spew_lines=${SPEW_LINES:-20000}
qemu_bin=${QEMU:-qemu-system-x86_64}
here=$(cd "$(dirname "$0")" && pwd)
rewind="$build/rewind"
gdir="$build/guests"
for f in "$rewind" "$gdir/hello.elf" "$gdir/compute.elf" "$gdir/spew.elf"; do
	if [ ! -x "$f" ] && [ ! -f "$f" ]; then
		echo "bench: $f is missing; run make first" >&2
		exit 2
	fi
done

have_qemu=1
if ! command -v "$qemu_bin" >/dev/null 2>&1; then
	have_qemu=0
	echo "bench: $qemu_bin not found: QEMU rows skipped (Debian package qemu-system-x86)" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rewind-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# The exact commands (GUEST and ARGS filled in per benchmark).
rewind_cmd() { # guest args
	echo "$rewind run --backend emu${2:+ --append $2} $1"
}
qemu_cmd() { # guest args
	echo "$qemu_bin -M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on" \
		"-cpu qemu64,-apic -m 128M -no-reboot -nographic -nodefaults -serial stdio" \
		"-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel $1${2:+ -append $2}"
}
# QEMU counting every instruction exactly, as rewind does (its record/replay's mode).
qemui_cmd() { # guest args
	echo "$(qemu_cmd "$1" "$2") -icount shift=auto"
}

# run_once WHO GUEST ARGS CHECK: one run, output to a file; appends "wall cpu" to
# $tmp/WHO.times. Fails unless the exit status is 1 (the guest's success) and the
# output has the line CHECK matches (grep -E).
run_once() {
	local who=$1 guest=$2 args=$3 check=$4 cmd rc t
	case $who in
	rewind) cmd=$(rewind_cmd "$guest" "$args") ;;
	qemu) cmd=$(qemu_cmd "$guest" "$args") ;;
	qemui) cmd=$(qemui_cmd "$guest" "$args") ;;
	esac
	local TIMEFORMAT='%R %U %S'
	# shellcheck disable=SC2086  # the command is word-split on purpose
	t=$({ time $cmd </dev/null >"$tmp/out" 2>"$tmp/err"; echo "rc=$?" >"$tmp/rc"; } 2>&1)
	rc=$(sed 's/rc=//' "$tmp/rc")
	if [ "$rc" != 1 ]; then
		echo "bench: $who exited with status $rc (want 1) on: $cmd" >&2
		tail -n 5 "$tmp/out" "$tmp/err" >&2
		return 1
	fi
	if ! grep -Eq "$check" "$tmp/out"; then
		echo "bench: $who's output lacks /$check/ on: $cmd" >&2
		tail -n 5 "$tmp/out" >&2
		return 1
	fi
	grep -E "$check" "$tmp/out" | head -n 1 >"$tmp/$who.check"
	echo "$t" | awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' >>"$tmp/$who.times"
}

median() { # column (1 wall, 2 cpu) of a times file
	sort -g -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c }
		END { if (NR == 0) { print "-"; exit }
		      if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
		      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a <= 0 || b <= 0) print "-"; else printf "%.2f\n", a / b }'; }
sub3() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f\n", a - b }'; }

# bench NAME GUEST ARGS CHECK [RUNS [ICOUNT]]: interleaved runs; sets med_{r,q}_{wall,cpu}
# and runs_{r,q}; with ICOUNT=1 also QEMU with -icount (med_i_*, runs_i).
bench() {
	local name=$1 guest=$2 args=$3 check=$4 n=${5:-$runs} icount=${6:-0} i
	rm -f "$tmp"/{rewind,qemu,qemui}.{times,check}
	printf 'bench: %-8s' "$name" >&2
	for ((i = 0; i < n; i++)); do
		run_once rewind "$guest" "$args" "$check" || exit 1
		printf ' r%s' "$(tail -n 1 "$tmp/rewind.times" | cut -d' ' -f1)" >&2
		if [ $have_qemu = 1 ]; then
			run_once qemu "$guest" "$args" "$check" || exit 1
			printf ' q%s' "$(tail -n 1 "$tmp/qemu.times" | cut -d' ' -f1)" >&2
			if [ "$icount" = 1 ]; then
				run_once qemui "$guest" "$args" "$check" || exit 1
				printf ' i%s' "$(tail -n 1 "$tmp/qemui.times" | cut -d' ' -f1)" >&2
			fi
		fi
	done
	echo >&2
	if [ $have_qemu = 1 ] && ! cmp -s "$tmp/rewind.check" "$tmp/qemu.check"; then
		echo "bench: $name: rewind and QEMU disagree: '$(cat "$tmp/rewind.check")' vs '$(cat "$tmp/qemu.check")'" >&2
		exit 1
	fi
	med_r_wall=$(median 1 "$tmp/rewind.times")
	med_r_cpu=$(median 2 "$tmp/rewind.times")
	runs_r=$(cut -d' ' -f1 "$tmp/rewind.times" | paste -sd' ')
	if [ $have_qemu = 1 ]; then
		med_q_wall=$(median 1 "$tmp/qemu.times")
		med_q_cpu=$(median 2 "$tmp/qemu.times")
		runs_q=$(cut -d' ' -f1 "$tmp/qemu.times" | paste -sd' ')
	else
		med_q_wall=- med_q_cpu=- runs_q="(QEMU missing)"
	fi
	if [ $have_qemu = 1 ] && [ "$icount" = 1 ]; then
		med_i_wall=$(median 1 "$tmp/qemui.times")
		med_i_cpu=$(median 2 "$tmp/qemui.times")
		runs_i=$(cut -d' ' -f1 "$tmp/qemui.times" | paste -sd' ')
	else
		med_i_wall=- med_i_cpu=- runs_i="(QEMU missing)"
	fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "bench: $runs interleaved runs each; compute n=$compute_n, spew lines=$spew_lines" >&2

# Startup is short and noisy (see README): twice the runs, plus one.
bench startup "$gdir/hello.elf" "" '^Hello from rewind guest' $((2 * runs + 1))
s_rw=$med_r_wall s_qw=$med_q_wall s_rc=$med_r_cpu s_qc=$med_q_cpu s_rr=$runs_r s_qr=$runs_q
bench compute "$gdir/compute.elf" "n=$compute_n" '^compute: checksum [0-9a-f]{16}$' "$runs" 1
c_rw=$med_r_wall c_qw=$med_q_wall c_rc=$med_r_cpu c_qc=$med_q_cpu c_rr=$runs_r c_qr=$runs_q
c_iw=$med_i_wall c_ic=$med_i_cpu c_ir=$runs_i
bench spew "$gdir/spew.elf" "lines=$spew_lines" "^spew: done, $spew_lines lines\$"
p_rw=$med_r_wall p_qw=$med_q_wall p_rc=$med_r_cpu p_qc=$med_q_cpu p_rr=$runs_r p_qr=$runs_q
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

c_ratio=$(ratio "$c_rw" "$c_qw")
p_ratio=$(ratio "$p_rw" "$p_qw")
verdict() { # ratio limit strict
	awk -v r="$1" -v l="$2" -v s="$3" 'BEGIN { if (r == "-") print "not measured";
		else if ((s && r < l) || (!s && r <= l)) print "met"; else print "NOT met" }'
}
c_met=$(verdict "$c_ratio" 1.25 0)
p_met=$(verdict "$p_ratio" 1.00 1)

table() {
	echo "| benchmark | guest | rewind wall (s) | QEMU wall (s) | rewind/QEMU wall | rewind CPU (s) | QEMU CPU (s) | rewind/QEMU CPU | target |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
	echo "| startup | hello | $s_rw | $s_qw | $(ratio "$s_rw" "$s_qw") | $s_rc | $s_qc | $(ratio "$s_rc" "$s_qc") | (none) |"
	echo "| compute | compute n=$compute_n | $c_rw | $c_qw | $c_ratio | $c_rc | $c_qc | $(ratio "$c_rc" "$c_qc") | <= 1.25: **$c_met** |"
	echo "| compute minus startup | | $(sub3 "$c_rw" "$s_rw") | $(sub3 "$c_qw" "$s_qw") | $(ratio "$(sub3 "$c_rw" "$s_rw")" "$(sub3 "$c_qw" "$s_qw")") | $(sub3 "$c_rc" "$s_rc") | $(sub3 "$c_qc" "$s_qc") | $(ratio "$(sub3 "$c_rc" "$s_rc")" "$(sub3 "$c_qc" "$s_qc")") | |"
	echo "| spew | spew lines=$spew_lines | $p_rw | $p_qw | $p_ratio | $p_rc | $p_qc | $(ratio "$p_rc" "$p_qc") | < 1.00: **$p_met** |"
	echo "| compute, QEMU with -icount (exact count) | compute n=$compute_n | $c_rw | $c_iw | $(ratio "$c_rw" "$c_iw") | $c_rc | $c_ic | $(ratio "$c_rc" "$c_ic") | (none) |"
}

echo
table
echo
echo "Medians of $runs runs ($((2 * runs + 1)) for startup). Targets: compute <= 1.25x QEMU: $c_met; spew faster than QEMU: $p_met."
echo "Load average before/after: $load_before / $load_after (other work on the machine skews wall times)."

[ $write = 1 ] || exit 0

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
if [ $have_qemu = 1 ]; then qemu_ver=$("$qemu_bin" --version | head -n 1); else qemu_ver="(not installed)"; fi
uc_ver="2.1.1"
for d in "$build"/deps/apt/debs/libunicorn2*.deb; do
	[ -f "$d" ] && uc_ver="2.1.1 ($(basename "$d"))"
done
[ -f "$build/deps/.unicorn-2.1.1" ] || uc_ver="$uc_ver (stamp $build/deps/.unicorn-2.1.1 missing)"
results="$here/RESULTS.md"
if [ ! -f "$results" ]; then
	# shellcheck disable=SC2016  # the backquotes are Markdown
	printf '# Benchmark results\n\nAppended by `bench/run.sh --write`; newest last. See bench/README.md.\n' >"$results"
fi
{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo
	echo "- Machine: $(nproc) CPUs, $cpu_model, kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
	echo "- QEMU: $qemu_ver; Unicorn: $uc_ver"
	echo "- Load average before/after: $load_before / $load_after"
	echo "- $runs runs of each command ($((2 * runs + 1)) for startup), interleaved rewind, QEMU, rewind, QEMU, ...; medians;"
	echo "  wall = elapsed, CPU = user + sys of the process; every run exited with status 1 and"
	echo "  printed the same checksum / final line on both."
	echo
	echo "Commands (output to a file, stdin /dev/null):"
	echo
	echo '```'
	for g in "hello.elf|" "compute.elf|n=$compute_n" "spew.elf|lines=$spew_lines"; do
		rewind_cmd "$gdir/${g%%|*}" "${g#*|}"
		[ $have_qemu = 1 ] && qemu_cmd "$gdir/${g%%|*}" "${g#*|}"
	done
	[ $have_qemu = 1 ] && qemui_cmd "$gdir/compute.elf" "n=$compute_n"
	echo '```'
	echo
	table
	echo
	echo "Targets: compute within 1.25x of QEMU: **$c_met** ($c_ratio); spew faster than QEMU: **$p_met** ($p_ratio)."
	echo
	echo "Wall times of each run (s): startup rewind $s_rr, QEMU $s_qr; compute rewind $c_rr, QEMU $c_qr;"
	echo "spew rewind $p_rr, QEMU $p_qr; compute QEMU -icount $c_ir."
} >>"$results"
echo "bench: appended to $results" >&2
