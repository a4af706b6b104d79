#!/bin/sh
# Run every test binary given, from the repository root, and print one summary line
# "N passed, N failed, N skipped" (Criterion prints its own synthesis per binary). A test
# that skips is shown with its reason (Criterion prints those only when verbose).
B=$1
shift
export REWIND_BUILD="$B"
pass=0
fail=0
skip=0
failed=""
for t in "$@"; do
	echo "== $t"
	out=$("$t" --jobs=2 --verbose 2>&1)
	rc=$?
	# Verbose prints every test; keep the skips with their reasons, failures and notes.
	printf '%s\n' "$out" | grep -vE '^\[(RUN |PASS)\]|^\[----\] +(Criterion v|Running)|^\[====\] Running|: Test is disabled$' |
		tail -n 60
	s=$(printf '%s\n' "$out" | grep '^\[SKIP\]' | grep -vc ': Test is disabled$')
	skip=$((skip + s))
	p=$(printf '%s\n' "$out" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2/p' | tail -n 1)
	pass=$((pass + ${p:-0}))
	if [ -n "$f" ]; then
		set -- $f "$@"
		fail=$((fail + $1 + $2))
		shift 2
	fi
	if [ $rc -ne 0 ]; then
		failed="$failed $t"
		[ -z "$p" ] && fail=$((fail + 1))
	fi
done
echo
echo "tests: $pass passed, $fail failed, $skip skipped (each with its reason above)"
if [ -n "$failed" ]; then
	echo "failing binaries:$failed"
	exit 1
fi
