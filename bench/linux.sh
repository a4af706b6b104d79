#!/usr/bin/env bash
# Linux with user space under rewind and under QEMU: the acceptance session of docs/linux.md.
#
#   bench/linux.sh [BUILD_DIR] [--no-qemu]
#
# Boots BUILD_DIR/linux/vmlinux with BUILD_DIR/linux/initrd.cpio.gz (make linux) and, once
# /init's marker is out, types the session of tests/integration/test_linux.c (uname -a,
# ls /, a loop printing 3000 lines, cat /proc/interrupts, poweroff -f) into the serial
# line; the run ends at the halt. One run each of: `rewind run`, `rewind record`, `rewind
# replay` (emu), QEMU plain TCG, QEMU -icount shift=auto,rr=record and rr=replay (microvm,
# the machine rewind models; QEMU runs on after the halt, so it is ended when it prints
# "reboot: System halted"). Wall and CPU times and their ratios, the log sizes (rewind's event bytes apart
# from its embedded kernel and initrd), and on the recording's end (1000 instructions before
# it) the latency of reverse-stepi (median of 5) and of reverse-continue to a breakpoint on
# __x64_sys_write (the shell's last write), through gdb (`rewind debug`). Prints a markdown
# table for bench/RESULTS.md. Needs gdb for the reverse columns.
set -u
build=build
qemu=qemu-system-x86_64
while [ $# -gt 0 ]; do
	case "$1" in
	--no-qemu) qemu="" ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) build=$1 ;;
	esac
	shift
done
rw="$build/rewind"
kernel="$build/linux/vmlinux"
initrd="$build/linux/initrd.cpio.gz"
for f in "$rw" "$kernel" "$initrd"; do
	if [ ! -f "$f" ]; then
		echo "linux.sh: $f is missing: run make and make linux first" >&2
		exit 2
	fi
done
[ -n "$qemu" ] && ! command -v "$qemu" >/dev/null && qemu=""
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
app="console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"
marker="rewind-initramfs: ready"
session='uname -a
ls /
i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done
cat /proc/interrupts
poweroff -f
'
QM=(-M microvm,x-option-roms=off,rtc=on,acpi=off,pic=on,pit=on,isa-serial=on -cpu qemu64,-apic
	-m 128M -no-reboot -nographic -nodefaults -serial stdio)

now() { date +%s.%N; }

# prompts NAME: how many shell prompts ("# ") the output holds so far
prompts() { grep -o '# ' "$tmp/$1.out" 2>/dev/null | wc -l; }

# drive NAME TYPE CMD...: run CMD with its output in $tmp/NAME.out, type the session after
# the marker (TYPE=1), a line at each new prompt, 4 bytes at a time, each once the ones
# before are echoed (QEMU's -icount record does not deliver input typed ahead of the shell
# or past its UART's FIFO), end it at the halt (it may run on: QEMU); print wall seconds.
drive() {
	local name=$1 type=$2 t0 pid i n=0 seen=0 line typed
	local -a todo
	mapfile -t todo <<<"${session%$'\n'}"
	shift 2
	rm -f "$tmp/in"
	mkfifo "$tmp/in"
	t0=$(now)
	(
		TIMEFORMAT='%U %S'
		{ time "$@" <"$tmp/in" >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>"$tmp/$name.cpu"
	) &
	pid=$!
	exec 9>"$tmp/in"
	for i in $(seq 1 72000); do
		if [ "$type" = 1 ] && [ "$n" -lt "${#todo[@]}" ] &&
			grep -q "$marker" "$tmp/$name.out" 2>/dev/null &&
			[ "$(prompts "$name")" -gt "$seen" ]; then
			seen=$(prompts "$name")
			line="${todo[$n]}"$'\n'
			# 8 bytes at a time: QEMU's 16550 FIFO holds 16, and under -icount record
			# what comes past a full FIFO is not delivered.
			typed=
			while [ -n "$line" ]; do
				printf '%s' "${line:0:4}" >&9
				typed+=${line:0:4}
				line=${line:4}
				# the next bytes once these are echoed (5 s at most)
				for _ in $(seq 1 100); do
					grep -qF -- "${typed%$'\n'}" "$tmp/$name.out" 2>/dev/null && break
					sleep 0.05
				done
			done
			n=$((n + 1))
		fi
		grep -q "reboot: System halted" "$tmp/$name.out" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	# rewind has ended by itself at the halt; QEMU runs on and is ended here.
	for i in $(seq 1 40); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	pkill -TERM -P "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	exec 9>&-
	echo "$(now) - $t0" | bc -l
}

# cpu NAME: user + sys seconds of the run NAME
cpu() { awk '{ printf "%.2f", $1 + $2 }' "$tmp/$1.cpu" 2>/dev/null || echo -; }

lines() { grep -c '^line [0-9]' "$tmp/$1.out"; }

r_run=$(drive run 1 "$rw" run --backend emu --serial stdio --initrd "$initrd" --append "$app" "$kernel")
r_rec=$(drive rec 1 "$rw" record -o "$tmp/s.rwl" --initrd "$initrd" --append "$app" "$kernel")
r_rpl=$(drive rpl 0 "$rw" replay "$tmp/s.rwl")
verdict=$(grep -oE 'matched|diverged' "$tmp/rpl.err" | head -1)
info=$("$rw" log info "$tmp/s.rwl")
evb=$(printf '%s\n' "$info" | sed -n 's/.*events \([0-9.]* [KMG]*i*B\) (.*/\1/p')
hdr=$(printf '%s\n' "$info" | sed -n 's/.*header \([0-9.]* [KMG]*i*B\).*/\1/p')
rdst=$(printf '%s\n' "$info" | sed -n 's/^initrd: .*embedded: \([0-9.]* [KMG]*i*B\) stored.*/\1/p')
total=$(printf '%s\n' "$info" | sed -n 's/^length: *positions [0-9]* to \([0-9]*\).*/\1/p')

q_run=- q_rec=- q_rpl=- q_log=-
if [ -n "$qemu" ]; then
	q_run=$(drive qrun 1 "$qemu" "${QM[@]}" -kernel "$kernel" -initrd "$initrd" -append "$app")
	q_rec=$(drive qrec 1 "$qemu" "${QM[@]}" -icount shift=auto,rr=record,rrfile="$tmp/s.qrr" \
		-kernel "$kernel" -initrd "$initrd" -append "$app")
	q_rpl=$(drive qrpl 0 "$qemu" "${QM[@]}" -icount shift=auto,rr=replay,rrfile="$tmp/s.qrr" \
		-kernel "$kernel" -initrd "$initrd" -append "$app")
	q_log=$(stat -c %s "$tmp/s.qrr" 2>/dev/null || echo 0)
fi

# Reverse execution at the end of the recording, through gdb with python for the clock.
rs=- rc=-
if command -v gdb >/dev/null && [ -n "$total" ]; then
	cat >"$tmp/rev.gdb" <<EOF
goto $((total - 1000))
python import time
python ts = []
python
for i in range(5):
    t = time.time(); gdb.execute("reverse-stepi", to_string=True); ts.append(time.time() - t)
ts.sort(); print("RS %.4f" % ts[2])
end
break __x64_sys_write
python t = time.time(); gdb.execute("reverse-continue", to_string=True); print("RC %.4f" % (time.time() - t))
EOF
	"$rw" debug "$tmp/s.rwl" -- -batch -nx -x "$tmp/rev.gdb" >"$tmp/rev.out" 2>&1
	rs=$(sed -n 's/^RS //p' "$tmp/rev.out")
	rc=$(sed -n 's/^RC //p' "$tmp/rev.out")
fi

ratio() { [ "$1" = - ] || [ "$2" = - ] && echo - || printf '%.2fx' "$(echo "$1 / $2" | bc -l)"; }
c_run=$(cpu run) c_rec=$(cpu rec) c_rpl=$(cpu rpl) qc_run=- qc_rec=- qc_rpl=-
if [ -n "$qemu" ]; then
	qc_run=$(cpu qrun) qc_rec=$(cpu qrec) qc_rpl=$(cpu qrpl)
	q_run=$(printf '%.2f' "$q_run") q_rec=$(printf '%.2f' "$q_rec") q_rpl=$(printf '%.2f' "$q_rpl")
fi
r_run=$(printf '%.2f' "$r_run") r_rec=$(printf '%.2f' "$r_rec") r_rpl=$(printf '%.2f' "$r_rpl")
echo "Session: $(lines rec) loop lines recorded, $(lines rpl) replayed; positions 0 to $total."
echo "Wall includes the typing (4 bytes at a time, each after the echo of the ones before)"
echo "and QEMU's run on after the halt until it is seen; CPU is user + sys."
echo
echo "| | rewind (emu) wall | rewind CPU | QEMU TCG wall | QEMU CPU |"
echo "|---|---|---|---|---|"
echo "| run s | $r_run | $c_run | $q_run | $qc_run |"
echo "| record s (/run) | $r_rec ($(ratio "$r_rec" "$r_run")) | $c_rec ($(ratio "$c_rec" "$c_run")) | $q_rec ($(ratio "$q_rec" "$q_run")) | $qc_rec ($(ratio "$qc_rec" "$qc_run")) |"
echo "| replay s (/record) | $r_rpl ($(ratio "$r_rpl" "$r_rec")) $verdict | $c_rpl ($(ratio "$c_rpl" "$c_rec")) | $q_rpl ($(ratio "$q_rpl" "$q_rec")) | $qc_rpl ($(ratio "$qc_rpl" "$qc_rec")) |"
echo "| log | $evb of events (+ $hdr header: kernel and initrd, of which initrd ${rdst:--}) | | $q_log B | |"
echo "| reverse-stepi at the end (median of 5) | ${rs:--} s | | | |"
echo "| reverse-continue to __x64_sys_write | ${rc:--} s | | | |"
