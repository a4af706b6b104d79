#!/bin/sh
# make demo: the main job. The race guest loses timer ticks at different instructions on
# every live run; record one run, then replay it: the same result, instruction for
# instruction, from the log alone.
B=${1:-build}
R="$B/rewind"
LOG="$B/demo-race.rwl"
echo "== the race guest, three live runs: timer interrupts land at different instructions"
for i in 1 2 3; do
	"$R" run "$B/guests/race.elf" 2>/dev/null | grep 'final='
done
echo
echo "== rewind record -o $LOG $B/guests/race.elf"
"$R" record -o "$LOG" "$B/guests/race.elf" || true
echo
echo "== rewind replay $LOG   (no host clock, no input: everything comes from the log)"
"$R" replay "$LOG"
echo "   exit status $? (the recorded guest's)"
echo
echo "== rewind replay $LOG   (again: the same run every time)"
"$R" replay --quiet "$LOG"
echo
echo "== rewind log info $LOG"
"$R" log info "$LOG"
echo
echo "Try: $R record -o echo.rwl --serial stdio $B/guests/echo.elf   (type; 'q' quits)"
echo "     $R replay echo.rwl                                         (your typing, replayed)"
echo "     $R log dump --kind input echo.rwl"
