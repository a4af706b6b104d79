#!/usr/bin/env bash
# Reverse debugging, side by side with QEMU's reverse debugging, on one long recording.
#
#   bench/reverse.sh [BUILD_DIR] [--rounds N] [--steps N] [--mem BYTES] [--no-qemu] [--keep DIR]
#   bench/reverse.sh --table DIR      the table again, from the results --keep kept
#
# Records `compute n=N mark=100` (default N=1020: about 10.2 G instructions) with rewind
# and with QEMU (-icount shift=auto,rr=record,rrsnapshot=init, a qcow2 image holding the
# snapshot). Then, on rewind's replay (`rewind replay --gdb`, checkpoint memory --mem,
# default 512M) and on QEMU's (rr=replay, -gdb, QMP), bench/reverse.py goes to 90%, 50%
# and 10% of the run and times, as gdb's packets: reverse-stepi (bs, median of --steps),
# reverse-continue to a write watchpoint on `started` (written once, before the first
# round: as far back as the position) and reverse-continue to a breakpoint on
# milestone() (every 100 rounds, ~1 G instructions). rewind first continues to the end,
# taking its checkpoints; its checkpoint memory is reported after. Prints a markdown
# table for bench/RESULTS.md. Needs python3; QEMU columns need qemu-system-x86_64.
# Results go to DIR/rw.txt, DIR/q.txt and DIR/meta.txt (--keep; else a temporary folder).
set -eu
build=build
rounds=1020
steps=5
mem=512M
use_qemu=1
keep=""
table=""
while [ $# -gt 0 ]; do
	case "$1" in
	--keep) keep=$2; shift ;;
	--table) table=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--steps) steps=$2; shift ;;
	--mem) mem=$2; shift ;;
	--no-qemu) use_qemu=0 ;;
	-h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) build=$1 ;;
	esac
	shift
done
here=$(cd "$(dirname "$0")" && pwd)
run_bench() {
rw="$build/rewind"
elf="$build/guests/compute.elf"
app="n=$rounds mark=100"
tmp=$(mktemp -d)
res=${keep:-$tmp}
mkdir -p "$res"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
qemu=qemu-system-x86_64
if [ $use_qemu = 1 ] && ! command -v $qemu >/dev/null; then
	echo "reverse.sh: $qemu not found (apt-get install qemu-system-x86): rewind only" >&2
	use_qemu=0
fi
QM="-M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on -cpu qemu64,-apic
    -m 128M -no-reboot -nographic -nodefaults -serial file:$tmp/qemu-serial.out
    -device isa-debug-exit,iobase=0xf4,iosize=4"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "reverse.sh: recording compute $app with rewind" >&2
t0=$(date +%s.%N)
"$rw" record --backend emu -o "$tmp/c.rwl" --append "$app" "$elf" >/dev/null 2>"$tmp/rec.err" || true
t1=$(date +%s.%N)
total=$(sed -n 's/.*recorded \([0-9]*\) instructions.*/\1/p' "$tmp/rec.err")
[ -n "$total" ] || { cat "$tmp/rec.err" >&2; exit 1; }
rec_s=$(echo "$t1 - $t0" | bc -l)
rm -f "$res/q.txt"
{ echo "app $app"; echo "steps $steps"; echo "rec_s $rec_s"; } >"$res/meta.txt"

port=$(free_port)
"$rw" replay --gdb "127.0.0.1:$port" --checkpoint-mem "$mem" "$tmp/c.rwl" >/dev/null 2>"$tmp/rw.err" &
pids+=($!)
echo "reverse.sh: rewind, $total instructions" >&2
python3 "$here/reverse.py" rewind --port "$port" --elf "$elf" --total "$total" --steps "$steps" \
	--forward --far --out "$res/rw.txt"
wait "${pids[-1]}" || true

if [ $use_qemu = 1 ]; then
	echo "reverse.sh: recording compute $app with QEMU" >&2
	qemu-img create -q -f qcow2 "$tmp/q.qcow2" 64M
	QR="-drive file=$tmp/q.qcow2,if=none,id=rr -kernel $elf"
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	$qemu $QM -icount "shift=auto,rr=record,rrfile=$tmp/q.rr,rrsnapshot=init" $QR -append "$app" \
		>/dev/null 2>&1 </dev/null || true
	t1=$(date +%s.%N)
	qrec_s=$(echo "$t1 - $t0" | bc -l)
rm -f "$res/q.txt"
{ echo "app $app"; echo "steps $steps"; echo "rec_s $rec_s"; } >"$res/meta.txt"
	qsnap=$(qemu-img snapshot -l "$tmp/q.qcow2" | awk '$2 == "init" {print $3, $4}')
	{ echo "qrec_s $qrec_s"; echo "qsnap $qsnap"; } >>"$res/meta.txt"
	port=$(free_port)
	# shellcheck disable=SC2086
	$qemu $QM -icount "shift=auto,rr=replay,rrfile=$tmp/q.rr,rrsnapshot=init" $QR -append "$app" \
		-S -gdb "tcp:127.0.0.1:$port" -qmp "unix:$tmp/qmp,server,nowait" >/dev/null 2>&1 </dev/null &
	pids+=($!)
		echo "reverse.sh: QEMU" >&2
	python3 "$here/reverse.py" qemu --port "$port" --qmp "$tmp/qmp" --elf "$elf" --total "$total" \
		--steps "$steps" --out "$res/q.txt"
	kill "${pids[-1]}" 2>/dev/null || true
fi

}

val() { awk -v k="$2" '$1 == k {$1 = ""; sub(/^ /, ""); print}' "$1"; }
ms() { [ -n "$1" ] && echo "$1 * 1000" | bc -l | xargs printf '%.1f' || echo -; }
back() { [ -n "$2" ] && [ -n "$1" ] && echo "$1 - $2" | bc | awk '{printf "%.3f", $1 / 1e9}' || echo -; }

report() {
local d=$1
local app steps total rec_s qrec_s qsnap use_q=0
[ -s "$d/q.txt" ] && use_q=1
app=$(val "$d/meta.txt" app)
steps=$(val "$d/meta.txt" steps)
rec_s=$(val "$d/meta.txt" rec_s)
qrec_s=$(val "$d/meta.txt" qrec_s)
qsnap=$(val "$d/meta.txt" qsnap)
total=$(val "$d/rw.txt" total)
echo
printf 'compute %s: %s instructions' "$app" "$total"
[ -n "$rec_s" ] && printf '; rewind record %.2f s' "$rec_s"
[ -n "$qrec_s" ] && printf '; QEMU record %.2f s' "$qrec_s"
echo
echo "rewind: forward replay to the end under gdb $(val "$d/rw.txt" forward_s) s; $(val "$d/rw.txt" checkpoints)"
[ -n "$qsnap" ] && echo "QEMU: one snapshot (init), VM size $qsnap in the qcow2 image"
echo
echo "Positions are instructions since the start. QEMU's include its firmware's, so the"
echo "same guest instruction is a few thousand further on QEMU (the stops in parentheses)."
echo
echo "| at | operation | G instr. back | rewind ms | QEMU ms | QEMU / rewind |"
echo "|---|---|---:|---:|---:|---:|"
for tag in 90 50 10; do
	at=$(val "$d/rw.txt" "at_$tag")
	for op in rsi rcw rcb; do
		case $op in
		rsi) name="reverse-stepi (median of $steps)" ;;
		rcw) name="reverse-continue, watchpoint" ;;
		rcb) name="reverse-continue, breakpoint" ;;
		esac
		r=$(val "$d/rw.txt" "${op}_${tag}_s")
		q=$([ $use_q = 1 ] && val "$d/q.txt" "${op}_${tag}_s" || true)
		rp=$(val "$d/rw.txt" "${op}_${tag}_pos")
		qp=$([ $use_q = 1 ] && val "$d/q.txt" "${op}_${tag}_pos" || true)
		ratio=-
		[ -n "$q" ] && ratio=$(echo "$q / $r" | bc -l | xargs printf '%.0f')
		note=""
		[ -n "$qp" ] && [ "$qp" != "$rp" ] && [ "$op" != rsi ] &&
			note=" (QEMU: $qp, rewind: $rp)"
		echo "| $tag% | $name$note | $(back "$at" "$rp") | $(ms "$r") | $(ms "$q") | $ratio |"
	done
done
far=$(val "$d/rw.txt" rcbfar_s)
if [ -n "$far" ]; then
	echo
	echo "rewind, reverse-continue to a breakpoint hit one whole milestone period back (from" \
		"$(val "$d/rw.txt" rcbfar_from) to $(val "$d/rw.txt" rcbfar_pos)," \
		"$(back "$(val "$d/rw.txt" rcbfar_from)" "$(val "$d/rw.txt" rcbfar_pos)") G back):" \
		"$(ms "$far") ms$([ "$(val "$d/rw.txt" rcbfar_pos)" = "$(val "$d/rw.txt" rcbfar_want)" ] || echo ' (WRONG STOP)')"
fi
echo
echo "rewind reverse-stepi times at 90/50/10%: $(val "$d/rw.txt" rsi_90_all) / $(val "$d/rw.txt" rsi_50_all) / $(val "$d/rw.txt" rsi_10_all) s"
[ $use_q = 1 ] && echo "QEMU reverse-stepi times at 90/50/10%: $(val "$d/q.txt" rsi_90_all) / $(val "$d/q.txt" rsi_50_all) / $(val "$d/q.txt" rsi_10_all) s"
}

if [ -z "$table" ]; then
	run_bench
	table=$res
fi
report "$table"
