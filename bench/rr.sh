#!/usr/bin/env bash
# Record and replay, side by side with QEMU's own record/replay, on the same guests.
#
#   bench/rr.sh [BUILD_DIR] [--runs N]
#
# For each guest: wall time of `rewind run`, `rewind record`, `rewind replay` (emu), the
# log's event bytes (image and header counted apart), and the same guest under QEMU
# (plain TCG, -icount rr=record, rr=replay) with the size of QEMU's replay log. Runs are
# interleaved and the median of N (default 3) is reported. Prints a markdown table for
# bench/RESULTS.md. The Linux row runs when build/linux/vmlinux exists (make linux).
set -u
build=build
runs=3
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift ;;
	-h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) build=$1 ;;
	esac
	shift
done
rw="$build/rewind"
g="$build/guests"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
qemu=qemu-system-x86_64
command -v $qemu >/dev/null || qemu=""
QM="-M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on -cpu qemu64,-apic
    -m 128M -no-reboot -nographic -nodefaults -serial stdio
    -device isa-debug-exit,iobase=0xf4,iosize=4"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_of CMD...: wall seconds of one run (output discarded)
time_of() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 </dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }

row() { # name image append
	local name=$1 img=$2 app=$3
	local r=() c=() p=() qr=() qc=() qp=()
	for i in $(seq 1 "$runs"); do
		r+=("$(time_of "$rw" run --backend emu --append "$app" "$img")")
		c+=("$(time_of "$rw" record --backend emu -o "$tmp/$name.rwl" --append "$app" "$img")")
		p+=("$(time_of "$rw" replay --quiet "$tmp/$name.rwl")")
		if [ -n "$qemu" ]; then
			qr+=("$(time_of $qemu $QM -kernel "$img" -append "$app")")
			qc+=("$(time_of $qemu $QM -icount shift=auto,rr=record,rrfile="$tmp/$name.qrr" -kernel "$img" -append "$app")")
			qp+=("$(time_of $qemu $QM -icount shift=auto,rr=replay,rrfile="$tmp/$name.qrr" -kernel "$img" -append "$app")")
		fi
	done
	local mr mc mp
	mr=$(printf '%s\n' "${r[@]}" | median)
	mc=$(printf '%s\n' "${c[@]}" | median)
	mp=$(printf '%s\n' "${p[@]}" | median)
	local verdict
	verdict=$("$rw" replay --quiet "$tmp/$name.rwl" 2>&1 >/dev/null | grep -oE 'matched|diverged' | head -1)
	local info ev hdr
	info=$("$rw" log info "$tmp/$name.rwl")
	ev=$(stat -c %s "$tmp/$name.rwl")
	hdr=$(printf '%s\n' "$info" | sed -n 's/.*header \([0-9.]* [KMG]*i*B\).*/\1/p')
	local evb
	evb=$(printf '%s\n' "$info" | sed -n 's/.*events \([0-9.]* [KMG]*i*B\) (.*/\1/p')
	if [ -n "$qemu" ]; then
		local mqr mqc mqp qb
		mqr=$(printf '%s\n' "${qr[@]}" | median)
		mqc=$(printf '%s\n' "${qc[@]}" | median)
		mqp=$(printf '%s\n' "${qp[@]}" | median)
		qb=$(stat -c %s "$tmp/$name.qrr" 2>/dev/null || echo 0)
		printf '| %s | %.2f | %.2f (%.2fx) | %.2f (%.2fx rec) %s | %s (+%s image/header) | %.2f | %.2f (%.2fx) | %.2f (%.2fx rec) | %s B |\n' \
			"$name" "$mr" "$mc" "$(echo "$mc/$mr" | bc -l)" "$mp" "$(echo "$mp/$mc" | bc -l)" "$verdict" \
			"$evb" "$hdr" "$mqr" "$mqc" "$(echo "$mqc/$mqr" | bc -l)" "$mqp" "$(echo "$mqp/$mqc" | bc -l)" "$qb"
	else
		printf '| %s | %.2f | %.2f (%.2fx) | %.2f (%.2fx rec) %s | %s (+%s image/header) | - | - | - | - |\n' \
			"$name" "$mr" "$mc" "$(echo "$mc/$mr" | bc -l)" "$mp" "$(echo "$mp/$mc" | bc -l)" "$verdict" "$evb" "$hdr"
	fi
}

echo "| guest | run s | record s | replay s | log events | QEMU run s | QEMU record s | QEMU replay s | QEMU log |"
echo "|---|---|---|---|---|---|---|---|---|"
row compute "$g/compute.elf" "n=300"
row spew "$g/spew.elf" "lines=20000"
row timer "$g/timer.elf" "hz=1000 ticks=2000"
row race "$g/race.elf" "ticks=100"
if [ -f "$build/linux/vmlinux" ]; then
	row linux "$build/linux/vmlinux" "console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
fi
# An idle guest: 10 s of a 100 Hz timer, HLT in between.
"$rw" record --backend emu -o "$tmp/idle.rwl" --append "hz=100 ticks=1000" "$g/timer.elf" >/dev/null 2>&1
idle=$("$rw" log info "$tmp/idle.rwl" | sed -n 's/.*events \([0-9.]* [KMG]*i*B\) (.*/\1/p')
echo
echo "Idle guest (timer hz=100 ticks=1000, 10 s, HLT between ticks): $idle of events, i.e. per second one tenth of that."
