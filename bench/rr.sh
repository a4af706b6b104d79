#!/usr/bin/env bash
# Record and replay, side by side with QEMU's own record/replay, on the same guests.
#
#   bench/rr.sh [BUILD_DIR] [--runs N] [--base BASE_DIR] [--no-qemu]
#
# For each guest: wall and CPU time (user + sys) of `rewind run`, `rewind record` and
# `rewind replay` (emu), the log's event bytes (image and header counted apart), and the
# same guest under QEMU (plain TCG, -icount rr=record, rr=replay) with the size of QEMU's
# replay log. Runs are interleaved and the median of N (default 3) is reported. Prints
# markdown tables for bench/RESULTS.md. --base BASE_DIR: also the rewind of another build
# (the commit before a change), on this build's guests, each of its commands right next
# to the same command of this build, and a table of the ratios before and after.
# --no-qemu: leave QEMU out. The Linux row runs when BUILD_DIR/linux/vmlinux exists.
set -u
build=build
runs=3
base=""
qemu="qemu-system-x86_64"
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift ;;
	--base) base=$2; shift ;;
	--no-qemu) qemu="" ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) build=$1 ;;
	esac
	shift
done
rw="$build/rewind"
g="$build/guests"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -n "$qemu" ] && ! command -v $qemu >/dev/null && qemu=""
QM="-M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on -cpu qemu64,-apic
    -m 128M -no-reboot -nographic -nodefaults -serial stdio
    -device isa-debug-exit,iobase=0xf4,iosize=4"
# The builds compared: this one ("new") and, with --base, the one before it.
vs=(new)
declare -A bin=([new]="$rw")
if [ -n "$base" ]; then
	vs=(base new)
	bin[base]="$base/rewind"
fi

# time_of CMD...: "wall cpu" of one run in seconds (output discarded); cpu = user + sys.
time_of() {
	local t TIMEFORMAT='%R %U %S'
	t=$({ time "$@" >/dev/null 2>&1 </dev/null; } 2>&1)
	echo "$t" | awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }'
}
# med COL "wall cpu"...: the median of column COL (1 wall, 2 cpu)
med() {
	local c=$1
	shift
	printf '%s\n' "$@" | awk -v c="$c" '{ print $c }' | sort -g |
		awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
div() { echo "$1 / $2" | bc -l; }

cmp_rows=""
row() { # name image append
	local name=$1 img=$2 app=$3 v
	declare -A r c p
	local qr=() qc=() qp=()
	for _ in $(seq 1 "$runs"); do
		for v in "${vs[@]}"; do
			r[$v]+="$(time_of "${bin[$v]}" run --backend emu --append "$app" "$img");"
		done
		for v in "${vs[@]}"; do
			c[$v]+="$(time_of "${bin[$v]}" record --backend emu -o "$tmp/$name.$v.rwl" --append "$app" "$img");"
		done
		for v in "${vs[@]}"; do
			p[$v]+="$(time_of "${bin[$v]}" replay --quiet "$tmp/$name.$v.rwl");"
		done
		if [ -n "$qemu" ]; then
			# shellcheck disable=SC2086  # QM is word-split on purpose
			qr+=("$(time_of $qemu $QM -kernel "$img" -append "$app")")
			# shellcheck disable=SC2086
			qc+=("$(time_of $qemu $QM -icount shift=auto,rr=record,rrfile="$tmp/$name.qrr" -kernel "$img" -append "$app")")
			# shellcheck disable=SC2086
			qp+=("$(time_of $qemu $QM -icount shift=auto,rr=replay,rrfile="$tmp/$name.qrr" -kernel "$img" -append "$app")")
		fi
	done
	# Medians per build: m_<what>_<v> for run (r), record (c), replay (p); wall and cpu.
	declare -A mw mc verdict
	for v in "${vs[@]}"; do
		local k a
		for k in r c p; do
			case $k in r) a=${r[$v]} ;; c) a=${c[$v]} ;; p) a=${p[$v]} ;; esac
			IFS=';' read -r -a arr <<<"$a"
			mw[$k$v]=$(med 1 "${arr[@]}")
			mc[$k$v]=$(med 2 "${arr[@]}")
		done
		verdict[$v]=$("${bin[$v]}" replay --quiet "$tmp/$name.$v.rwl" 2>&1 >/dev/null |
			grep -oE 'matched|diverged' | head -1)
	done
	local info hdr evb
	info=$("$rw" log info "$tmp/$name.new.rwl")
	hdr=$(printf '%s\n' "$info" | sed -n 's/.*header \([0-9.]* [KMG]*i*B\).*/\1/p')
	evb=$(printf '%s\n' "$info" | sed -n 's/.*events \([0-9.]* [KMG]*i*B\) (.*/\1/p')
	local n=new
	local cells
	cells=$(printf '| %s | %.2f | %.2f (%.2fx, CPU %.2fx) | %.2f (%.2fx rec, CPU %.2fx) %s | %s (+%s image/header)' \
		"$name" "${mw[r$n]}" "${mw[c$n]}" "$(div "${mw[c$n]}" "${mw[r$n]}")" \
		"$(div "${mc[c$n]}" "${mc[r$n]}")" "${mw[p$n]}" "$(div "${mw[p$n]}" "${mw[c$n]}")" \
		"$(div "${mc[p$n]}" "${mc[c$n]}")" "${verdict[$n]}" "$evb" "$hdr")
	if [ -n "$qemu" ]; then
		local mqr mqc mqp qb
		mqr=$(med 1 "${qr[@]}")
		mqc=$(med 1 "${qc[@]}")
		mqp=$(med 1 "${qp[@]}")
		qb=$(stat -c %s "$tmp/$name.qrr" 2>/dev/null || echo 0)
		printf '%s | %.2f | %.2f (%.2fx) | %.2f (%.2fx rec) | %s B |\n' "$cells" \
			"$mqr" "$mqc" "$(div "$mqc" "$mqr")" "$mqp" "$(div "$mqp" "$mqc")" "$qb"
	else
		printf '%s | - | - | - | - |\n' "$cells"
	fi
	if [ -n "$base" ]; then
		local b=base
		cmp_rows+=$(printf '| %s | %.2f / %.2f | %.2f / %.2f | %.2fx / %.2fx | %.2fx / %.2fx | %.2fx / %.2fx | %.2fx / %.2fx | %s / %s |' \
			"$name" "${mw[r$b]}" "${mw[r$n]}" "${mw[c$b]}" "${mw[c$n]}" \
			"$(div "${mw[c$b]}" "${mw[r$b]}")" "$(div "${mw[c$n]}" "${mw[r$n]}")" \
			"$(div "${mc[c$b]}" "${mc[r$b]}")" "$(div "${mc[c$n]}" "${mc[r$n]}")" \
			"$(div "${mw[p$b]}" "${mw[c$b]}")" "$(div "${mw[p$n]}" "${mw[c$n]}")" \
			"$(div "${mc[p$b]}" "${mc[c$b]}")" "$(div "${mc[p$n]}" "${mc[c$n]}")" \
			"${verdict[$b]}" "${verdict[$n]}")
		cmp_rows+=$'\n'
	fi
}

echo "| guest | run s | record s (/run: wall, CPU) | replay s (/record: wall, CPU) | log events | QEMU run s | QEMU record s | QEMU replay s | QEMU log |"
echo "|---|---|---|---|---|---|---|---|---|"
row compute "$g/compute.elf" "n=300"
row spew "$g/spew.elf" "lines=20000"
row timer "$g/timer.elf" "hz=1000 ticks=2000"
row race "$g/race.elf" "ticks=100"
if [ -f "$build/linux/vmlinux" ]; then
	row linux "$build/linux/vmlinux" "console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
fi
if [ -n "$base" ]; then
	echo
	echo "Before ($base) / after ($build), wall medians in seconds, ratios of medians:"
	echo
	echo "| guest | run s | record s | record/run wall | record/run CPU | replay/record wall | replay/record CPU | replay |"
	echo "|---|---|---|---|---|---|---|---|"
	printf '%s' "$cmp_rows"
fi
# An idle guest: 10 s of a 100 Hz timer, HLT in between.
"$rw" record --backend emu -o "$tmp/idle.rwl" --append "hz=100 ticks=1000" "$g/timer.elf" >/dev/null 2>&1
idle=$("$rw" log info "$tmp/idle.rwl" | sed -n 's/.*events \([0-9.]* [KMG]*i*B\) (.*/\1/p')
echo
echo "Idle guest (timer hz=100 ticks=1000, 10 s, HLT between ticks): $idle of events, i.e. per second one tenth of that."
