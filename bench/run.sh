#!/usr/bin/env bash
# rewind's two backends against QEMU's two accelerators, on the same guests, side by side.
#
#   bench/run.sh [BUILD_DIR] [--write] [--runs N]
#
# Runs hello, compute and spew on rewind emu, rewind kvm, QEMU TCG and QEMU KVM (and compute
# on QEMU TCG with -icount), interleaved, and prints medians and ratios. The host's KVM kind
# (`rewind run --backend help`: hardware-vmx/svm, software-pvm, none) sizes the workloads
# and heads the results; a column that cannot run here says why. BUILD_DIR (default build)
# holds rewind and guests/*.elf. --write appends a dated section to bench/RESULTS.md.
# --runs N: runs of each command. Environment: COMPUTE_N, SPEW_LINES (override the sizes),
# QEMU (the binary, default qemu-system-x86_64). See bench/README.md.
set -u

build=build
write=0
runs=
while [ $# -gt 0 ]; do
	case "$1" in
	--write) write=1 ;;
	--runs)
		runs=${2:-}
		[ -n "$runs" ] || runs=none
		shift
		;;
	--runs=*) runs=${1#--runs=} ;;
	-h | --help)
		sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
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
runs_given=$runs
case "$runs" in
'') ;;
*[!0-9]* | 0)
	echo "bench: --runs wants a positive number" >&2
	exit 2
	;;
esac

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

# The host's KVM kind, by the rule `--backend auto` uses (docs/kvm-backend.md).
host_line=$("$rewind" run --backend help 2>/dev/null | head -n 1)
kind=$(printf '%s\n' "$host_line" | sed -n 's/^host kvm: \([a-z-]*\) (\(.*\))$/\1/p')
kind_why=$(printf '%s\n' "$host_line" | sed -n 's/^host kvm: \([a-z-]*\) (\(.*\))$/\2/p')
if [ -z "$kind" ]; then
	echo "bench: '$rewind run --backend help' did not name the host's KVM kind: rebuild rewind" >&2
	exit 2
fi
# Sizes: on software KVM (PVM) guest kernel code is emulated, about 600x slower than emu
# (a compute round takes seconds), so the workloads shrink to keep a run to minutes.
case $kind in
software-*) def_n=2 def_lines=500 def_runs=3 ;;
*) def_n=500 def_lines=20000 def_runs=5 ;;
esac
compute_n=${COMPUTE_N:-$def_n}
spew_lines=${SPEW_LINES:-$def_lines}
for x in "$compute_n" "$spew_lines"; do
	case $x in '' | *[!0-9]* | 0)
		echo "bench: COMPUTE_N and SPEW_LINES want positive numbers" >&2
		exit 2
		;;
	esac
done
runs=${runs:-$def_runs}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rewind-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# The exact commands (GUEST and ARGS filled in per benchmark), one per column:
# emu, kvm (rewind's backends), tcg, qkvm (QEMU's accelerators), tcgi (TCG counting every
# instruction exactly, as rewind's emu does and QEMU's record/replay needs).
qemu_cmd() { # accel guest args
	echo "$qemu_bin -M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on" \
		"-cpu qemu64,-apic -m 128M -no-reboot -nographic -nodefaults -serial stdio" \
		"-device isa-debug-exit,iobase=0xf4,iosize=4 -accel $1 -kernel $2${3:+ -append $3}"
}
cmd_of() { # who guest args
	case $1 in
	emu | kvm) echo "$rewind run --backend $1${3:+ --append $3} $2" ;;
	tcg) qemu_cmd tcg "$2" "$3" ;;
	qkvm) qemu_cmd kvm "$2" "$3" ;;
	tcgi) echo "$(qemu_cmd tcg "$2" "$3") -icount shift=auto" ;;
	esac
}
label() {
	case $1 in
	emu) echo "rewind emu" ;; kvm) echo "rewind kvm" ;; tcg) echo "QEMU TCG" ;;
	qkvm) echo "QEMU KVM" ;; tcgi) echo "QEMU TCG -icount" ;;
	esac
}

# Which columns run here: each is tried once on hello; a column that fails is left out
# with the first line of its error as the reason.
declare -A why_not
probe() { # who
	local out rc
	# shellcheck disable=SC2046  # the command is word-split on purpose
	out=$(timeout 120 $(cmd_of "$1" "$gdir/hello.elf" "") </dev/null 2>&1)
	rc=$?
	if [ $rc = 1 ] && printf '%s\n' "$out" | grep -q '^Hello from rewind guest'; then
		return 0
	fi
	why_not[$1]="$(printf '%s\n' "$out" | grep -v '^Hello\|^cmdline\|^memory\|warning:' |
		head -n 1 | sed 's/^rewind: //; s/^qemu-system-x86_64: //') (exit status $rc)"
	return 1
}
cols=""
for who in emu kvm tcg qkvm tcgi; do
	case $who in
	tcg | qkvm | tcgi)
		if ! command -v "$qemu_bin" >/dev/null 2>&1; then
			why_not[$who]="$qemu_bin not found (Debian package qemu-system-x86)"
			continue
		fi
		;;
	esac
	if probe $who; then
		cols="$cols $who"
	else
		echo "bench: $(label $who) left out: ${why_not[$who]}" >&2
	fi
done
has() { case " $cols " in *" $1 "*) return 0 ;; esac; return 1; }
has emu || { echo "bench: rewind emu cannot run hello: ${why_not[emu]}" >&2; exit 1; }

# run_once WHO GUEST ARGS CHECK: one run, output to a file; appends "wall cpu" to
# $tmp/WHO.times. Fails unless the exit status is 1 (the guest's success) and the
# output has the line CHECK matches (grep -E).
run_once() {
	local who=$1 guest=$2 args=$3 check=$4 cmd rc t
	cmd=$(cmd_of "$who" "$guest" "$args")
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
	[ -f "$2" ] || { echo -; return; }
	sort -g -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c }
		END { if (NR == 0) { print "-"; exit }
		      if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
		      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a <= 0 || b <= 0) print "-"; else printf "%.2f\n", a / b }'; }
sub3() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f\n", a - b }'; }

# bench NAME GUEST ARGS CHECK N WHO...: N interleaved rounds of the columns given that run
# here; every column's checked line must agree. Sets W_<who>, C_<who> (median wall and CPU)
# and R_<who> (every run's wall time) with prefix NAME_.
bench() {
	local name=$1 guest=$2 args=$3 check=$4 n=$5 i who first=
	shift 5
	local whos=""
	for who in "$@"; do has "$who" && whos="$whos $who"; done
	rm -f "$tmp"/*.times "$tmp"/*.check
	printf 'bench: %-8s' "$name" >&2
	for ((i = 0; i < n; i++)); do
		for who in $whos; do
			run_once "$who" "$guest" "$args" "$check" || exit 1
			printf ' %s:%s' "$who" "$(tail -n 1 "$tmp/$who.times" | cut -d' ' -f1)" >&2
		done
	done
	echo >&2
	for who in $whos; do
		[ -z "$first" ] && first=$who
		if ! cmp -s "$tmp/$first.check" "$tmp/$who.check"; then
			echo "bench: $name: $(label "$first") and $(label "$who") disagree:" \
				"'$(cat "$tmp/$first.check")' vs '$(cat "$tmp/$who.check")'" >&2
			exit 1
		fi
	done
	for who in emu kvm tcg qkvm tcgi; do
		printf -v "${name}_W_$who" '%s' "$(median 1 "$tmp/$who.times")"
		printf -v "${name}_C_$who" '%s' "$(median 2 "$tmp/$who.times")"
		if [ -f "$tmp/$who.times" ]; then
			printf -v "${name}_R_$who" '%s' "$(cut -d' ' -f1 "$tmp/$who.times" | paste -sd' ')"
		else
			printf -v "${name}_R_$who" '%s' "-"
		fi
	done
}
v() { local n="$1_$2_$3"; echo "${!n}"; } # v NAME W|C|R WHO

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "bench: host KVM $kind ($kind_why); $runs interleaved runs each; compute n=$compute_n," \
	"spew lines=$spew_lines; columns:$cols" >&2

# Startup is short and noisy (see README): twice the runs, plus one.
bench startup "$gdir/hello.elf" "" '^Hello from rewind guest' $((2 * runs + 1)) emu kvm tcg qkvm
bench compute "$gdir/compute.elf" "n=$compute_n" '^compute: checksum [0-9a-f]{16}$' "$runs" \
	emu kvm tcg qkvm tcgi
bench spew "$gdir/spew.elf" "lines=$spew_lines" "^spew: done, $spew_lines lines\$" "$runs" \
	emu kvm tcg qkvm
for x in W C; do
	for who in emu kvm tcg qkvm; do
		printf -v "net_${x}_$who" '%s' "$(sub3 "$(v compute $x $who)" "$(v startup $x $who)")"
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

verdict() { # ratio limit strict
	awk -v r="$1" -v l="$2" -v s="$3" 'BEGIN { if (r == "-") print "not measured";
		else if ((s && r < l) || (!s && r <= l)) print "met"; else print "NOT met" }'
}
c_ratio=$(ratio "$(v compute W emu)" "$(v compute W tcg)")
p_ratio=$(ratio "$(v spew W emu)" "$(v spew W tcg)")
# The targets are about steady-state speed: a run sized for software KVM is too short to
# judge them (startup dominates), and says so.
c_met="not judged (n=$compute_n is too short)"
[ "$compute_n" -ge 100 ] && c_met=$(verdict "$c_ratio" 1.25 0)
p_met="not judged (lines=$spew_lines is too short)"
[ "$spew_lines" -ge 5000 ] && p_met=$(verdict "$p_ratio" 1.00 1)

row() { # title guest NAME W|C target: one row of medians and ratios
	local e k t q
	e=$(v "$3" "$4" emu) k=$(v "$3" "$4" kvm) t=$(v "$3" "$4" tcg) q=$(v "$3" "$4" qkvm)
	echo "| $1 | $2 | $e | $k | $t | $q | $(ratio "$e" "$t") | $(ratio "$k" "$q") | $(ratio "$k" "$e") | $5 |"
}
table() { # W or C
	local x=$1 what tc="" tp="" e i
	[ "$x" = W ] && what="wall (s)" || what="CPU (s)"
	if [ "$x" = W ]; then tc="emu/TCG <= 1.25: **$c_met**" tp="emu/TCG < 1.00: **$p_met**"; fi
	echo "| benchmark | guest | emu $what | kvm $what | QEMU TCG $what | QEMU KVM $what | emu/QEMU TCG | kvm/QEMU KVM | kvm/emu | target |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	row startup hello startup "$x" "(none)"
	row compute "compute n=$compute_n" compute "$x" "$tc"
	row "compute minus startup" "" net "$x" ""
	row spew "spew lines=$spew_lines" spew "$x" "$tp"
	e=$(v compute "$x" emu) i=$(v compute "$x" tcgi)
	echo "| compute, emu against QEMU TCG with -icount (exact count, TCG column) | compute n=$compute_n | $e | | $i | | $(ratio "$e" "$i") | | | (none) |"
}
notes() {
	echo "Host KVM: **$kind** ($kind_why)."
	case $kind in
	software-*)
		echo "On this host /dev/kvm is software-nested KVM (PVM): guest kernel code goes through"
		echo "KVM's instruction emulator, so the kvm and QEMU KVM columns are **not KVM speed**;"
		echo "on hardware KVM they would be far faster than emu. The workloads are sized down for it."
		;;
	esac
	for who in emu kvm tcg qkvm tcgi; do
		[ -n "${why_not[$who]:-}" ] && echo "$(label $who): not measured: ${why_not[$who]}."
	done
	return 0
}

echo
table W
echo
table C
echo
notes
echo "Medians of $runs runs ($((2 * runs + 1)) for startup). Targets (emu against QEMU TCG): compute <= 1.25x: $c_met; spew faster: $p_met."
echo "Load average before/after: $load_before / $load_after (other work on the machine skews wall times)."

[ $write = 1 ] || exit 0

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
if command -v "$qemu_bin" >/dev/null 2>&1; then qemu_ver=$("$qemu_bin" --version | head -n 1); else qemu_ver="(not installed)"; fi
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
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?'), host KVM: $kind"
	echo
	echo "- Command: \`${COMPUTE_N:+COMPUTE_N=$COMPUTE_N }${SPEW_LINES:+SPEW_LINES=$SPEW_LINES }bench/run.sh $build --write${runs_given:+ --runs $runs}\`" \
		"(compute n=$compute_n, spew lines=$spew_lines, $runs runs: sized for $kind unless set)"
	echo "- Machine: $(nproc) CPUs, $cpu_model, kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
	echo "- Host KVM: $kind ($kind_why)"
	echo "- QEMU: $qemu_ver; Unicorn: $uc_ver"
	echo "- Load average before/after: $load_before / $load_after"
	echo "- $runs runs of each command ($((2 * runs + 1)) for startup), interleaved emu, kvm, QEMU TCG,"
	echo "  QEMU KVM, ...; medians; wall = elapsed, CPU = user + sys of the process; every run"
	echo "  exited with status 1 and printed the same checksum / final line in every column."
	echo
	echo "Commands (output to a file, stdin /dev/null):"
	echo
	echo '```'
	for g in "hello.elf|" "compute.elf|n=$compute_n" "spew.elf|lines=$spew_lines"; do
		for who in emu kvm tcg qkvm; do
			has $who && cmd_of $who "$gdir/${g%%|*}" "${g#*|}"
		done
	done
	has tcgi && cmd_of tcgi "$gdir/compute.elf" "n=$compute_n"
	echo '```'
	echo
	table W
	echo
	table C
	echo
	notes
	echo
	echo "Targets (emu against QEMU TCG): compute within 1.25x: **$c_met** ($c_ratio); spew faster: **$p_met** ($p_ratio)."
	echo
	printf 'Wall times of each run (s):'
	for b in startup compute spew; do
		for who in emu kvm tcg qkvm tcgi; do
			r=$(v $b R $who)
			[ "$r" != - ] && printf ' %s %s %s;' "$b" "$(label $who)" "$r"
		done
	done
	echo
} >>"$results"
echo "bench: appended to $results" >&2
