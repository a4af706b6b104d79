#!/usr/bin/env bash
# Two rewind builds side by side on the emu backend: what a change to emu's engine set-up
# (Unicorn's translation buffer: docs/emu-backend.md) costs or saves.
#
#   bench/tcgbuf.sh BEFORE_BUILD AFTER_BUILD [--runs N]
#
# Each build directory holds rewind, guests/*.elf and (for the Linux row) linux/vmlinux.
# Rows: startup (hello), compute n=100, spew lines=20000, jit rounds=16 (new code all the
# time: the after build's 32 MiB buffer fills there), and the Linux boot to its root-fs
# panic, as a replay of one recording made here by the after build (so that every run
# does the same work; a live boot's work depends on the host's timing). N rounds
# (default 5; startup 2N+1), interleaved before, after, before, ...; every run must end
# with the same status and checked line on both. Prints medians of CPU time (user + sys,
# steadier than wall time on a shared machine), wall time and peak RSS, and after/before.
set -u
[ $# -ge 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
before=$1 after=$2
shift 2
runs=5
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift ;;
	*) echo "tcgbuf.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
app="console=ttyS0 nolapic noapic acpi=off pci=off panic=-1"

# one WHO DIR NAME STATUS CHECK ARGS...: one run of DIR/rewind ARGS (@B@ in them: DIR);
# appends "cpu wall rss_kb" to $tmp/NAME.WHO.
one() {
	local who=$1 dir=$2 name=$3 want=$4 check=$5
	shift 5
	local args=("$@")
	args=("${args[@]//@B@/$dir}")
	/usr/bin/time -f "%U %S %e %M" -o "$tmp/t" "$dir/rewind" "${args[@]}" \
		>"$tmp/out" 2>"$tmp/err" </dev/null
	local st=$?
	if [ "$st" != "$want" ] || ! grep -qE "$check" "$tmp/out" "$tmp/err"; then
		echo "tcgbuf.sh: $who $name: status $st (want $want) or no /$check/ in its output:" >&2
		tail -3 "$tmp/out" "$tmp/err" >&2
		exit 1
	fi
	tail -1 "$tmp/t" | awk '{printf "%.2f %s %s\n", $1 + $2, $3, $4}' >>"$tmp/$name.$who"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

row() {
	local name=$1 n=$2 want=$3 check=$4
	shift 4
	for _ in $(seq "$n"); do
		one before "$before" "$name" "$want" "$check" "$@"
		one after "$after" "$name" "$want" "$check" "$@"
	done
	local f b a
	for f in 1 2 3; do
		b[f]=$(cut -d' ' -f$f "$tmp/$name.before" | median)
		a[f]=$(cut -d' ' -f$f "$tmp/$name.after" | median)
	done
	printf '| %s | %s | %s | %.2f | %s | %s | %.2f | %d | %d |\n' "$name" "${b[1]}" "${a[1]}" \
		"$(echo "${a[1]} / ${b[1]}" | bc -l)" "${b[2]}" "${a[2]}" \
		"$(echo "${a[2]} / ${b[2]}" | bc -l)" $((b[3] / 1024)) $((a[3] / 1024))
	echo "  $name CPU: before $(cut -d' ' -f1 "$tmp/$name.before" | tr '\n' ' ')after $(cut -d' ' -f1 "$tmp/$name.after" | tr '\n' ' ')" >>"$tmp/runs"
}

echo "| row | before CPU (s) | after CPU (s) | after/before CPU | before wall (s) | after wall (s) | after/before wall | before RSS (MiB) | after RSS (MiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
e=(run --backend emu)
row startup $((2 * runs + 1)) 1 "Hello" "${e[@]}" @B@/guests/hello.elf
row compute "$runs" 1 "checksum" "${e[@]}" --append n=100 @B@/guests/compute.elf
row spew "$runs" 1 "spew: done" "${e[@]}" --append lines=20000 @B@/guests/spew.elf
row jit "$runs" 1 "bad=0" "${e[@]}" --append rounds=16 @B@/guests/jit.elf
if [ -f "$after/linux/vmlinux" ]; then
	"$after/rewind" record --backend emu --hash-every 1048576 -o "$tmp/linux.rwl" \
		--append "$app" "$after/linux/vmlinux" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	if [ "$st" != 6 ]; then
		echo "tcgbuf.sh: recording the Linux boot ended with status $st, not 6:" >&2
		tail -3 "$tmp/err" >&2
		exit 1
	fi
	row linux-replay "$runs" 6 "matched" replay "$tmp/linux.rwl"
else
	echo "(linux-replay left out: no $after/linux/vmlinux; make linux)"
fi
echo
cat "$tmp/runs"
