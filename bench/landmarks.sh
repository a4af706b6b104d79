#!/bin/sh
# bench/landmarks.sh [BUILD] [N]: record the race guest on kvm N times (10) and replay each
# recording on kvm; one row per recording: its result (final=, which differs between
# recordings), how many landmarks the log holds, how many breakpoint hits replay needed
# that were not the landmark, record and replay wall time, and whether the replay matched.
# Needs a /dev/kvm that runs (docs/kvm-backend.md, "Landmarks").
B=${1:-build}
N=${2:-10}
R="$B/rewind"
G="$B/guests/race.elf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$R" run --backend kvm "$B/guests/hello.elf" >/dev/null 2>&1
if [ $? -ne 1 ]; then
	echo "landmarks: kvm does not run here: $("$R" run --backend kvm "$B/guests/hello.elf" 2>&1 >/dev/null | head -n 1)"
	exit 1
fi
now() { date +%s.%N; }
echo "host kvm: $("$R" run --backend help "$G" | sed -n 's/^host kvm: //p')"
echo "| # | recorded result | landmarks | hits not it | hits per landmark | record s | replay s | replay/record | replay |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
ok=0
i=1
while [ "$i" -le "$N" ]; do
	t0=$(now)
	"$R" record --backend kvm -o "$T/r.rwl" "$G" >"$T/rec.out" 2>/dev/null
	t1=$(now)
	"$R" replay --verbose "$T/r.rwl" >"$T/rpl.out" 2>"$T/rpl.err"
	t2=$(now)
	lm=$("$R" log info "$T/r.rwl" | sed -n 's/.*landmark \([0-9]*\).*/\1/p')
	hits=$(sed -n 's/.*landmarks found (\([0-9]*\) breakpoint.*/\1/p' "$T/rpl.err")
	res=$(grep -o 'final=[0-9]*' "$T/rec.out")
	if grep -q ': matched' "$T/rpl.err" && cmp -s "$T/rec.out" "$T/rpl.out"; then
		v=matched
		ok=$((ok + 1))
	else
		v="DIVERGED: $(grep -m1 'diverged' "$T/rpl.err")"
	fi
	awk -v i="$i" -v res="$res" -v lm="${lm:-0}" -v hits="${hits:-0}" -v t0="$t0" -v t1="$t1" \
		-v t2="$t2" -v v="$v" 'BEGIN {
		printf "| %d | %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %s |\n", i, res, lm, hits,
			lm ? hits / lm : 0, t1 - t0, t2 - t1, (t2 - t1) / (t1 - t0), v }'
	i=$((i + 1))
done
echo
echo "$ok of $N recordings replayed to their own result"
[ "$ok" -eq "$N" ]
