#!/bin/sh
# make kvm-soak [N=20]: run the kvm record/replay tests (record::*_on_kvm) N times in a
# row and print how many runs passed; a failed run keeps its output. Where /dev/kvm does
# not open the tests skip, and this says so instead of counting them.
B=${1:-build}
N=${2:-20}
T="$B/tests/integration/test_record"
# hello ends with status 1 (its exit value 0, as isa-debug-exit encodes it) where kvm runs.
"$B/rewind" run --backend kvm "$B/guests/hello.elf" >/dev/null 2>&1
if [ $? -ne 1 ]; then
	echo "kvm-soak: kvm does not run here: $("$B/rewind" run --backend kvm "$B/guests/hello.elf" 2>&1 >/dev/null | head -n 1)"
	exit 1
fi
pass=0
i=1
while [ "$i" -le "$N" ]; do
	out="$B/kvm-soak-$i.txt"
	if "$T" --filter 'record/*_on_kvm' >"$out" 2>&1; then
		pass=$((pass + 1))
		rm -f "$out"
		echo "kvm-soak: run $i of $N: passed"
	else
		echo "kvm-soak: run $i of $N: FAILED (output in $out)"
		grep -E '^\[FAIL\]' "$out" | sed 's/^/  /'
	fi
	i=$((i + 1))
done
echo "kvm-soak: $pass of $N runs passed every kvm record/replay test"
[ "$pass" -eq "$N" ]
