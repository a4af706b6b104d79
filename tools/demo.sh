#!/bin/sh
# make demo: show the machine. (When record/replay lands, this records a run of the
# racy guest and replays it exactly; today it shows the racy guest giving different
# results on every live run, which is the problem record/replay solves.)
B=${1:-build}
R="$B/rewind"
echo "== rewind run $B/guests/hello.elf --append 'hello from the command line'"
"$R" run --append "hello from the command line" "$B/guests/hello.elf"
echo "   exit status $? (the guest wrote 0 to isa-debug-exit: (0 << 1) | 1)"
echo
echo "== the race guest, three live runs: timer interrupts land at different instructions"
for i in 1 2 3; do
	"$R" run "$B/guests/race.elf" | grep 'final='
done
echo
echo "== rewind run $B/guests/selftest.elf   (exceptions, paging, interrupts, CPUID, TSC)"
"$R" run "$B/guests/selftest.elf" | tail -n 1
echo
echo "Try: $R run --serial stdio $B/guests/echo.elf   (type; 'q' quits; Ctrl-A x stops)"
