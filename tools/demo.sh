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
# Where /dev/kvm opens: the same on kvm, where positions count exits and each tick that
# stopped the computing guest is placed by a landmark (docs/kvm-backend.md).
# hello ends with status 1 (its exit value 0, as isa-debug-exit encodes it) where kvm runs.
"$R" run --backend kvm "$B/guests/hello.elf" >/dev/null 2>&1
if [ $? -eq 1 ]; then
	KLOG="$B/demo-race-kvm.rwl"
	echo "== rewind record --backend kvm -o $KLOG $B/guests/race.elf   (/dev/kvm opens here)"
	"$R" record --backend kvm -o "$KLOG" "$B/guests/race.elf" || true
	echo
	echo "== rewind replay --verbose $KLOG   (on kvm: each landmark found by a breakpoint)"
	"$R" replay --verbose "$KLOG"
	echo "   exit status $? (the recorded guest's)"
	echo "   (replay --backend emu takes a kvm log of a guest without interrupts, such as"
	echo "    hello or spew; race's interrupts do not match there yet: docs/kvm-backend.md,"
	echo "    'Portable logs')"
	echo
else
	echo "(no kvm here: $("$R" run --backend kvm "$B/guests/hello.elf" 2>&1 >/dev/null | head -n 1))"
	echo
fi
echo "Try: $R record -o echo.rwl --serial stdio $B/guests/echo.elf   (type; 'q' quits)"
echo "     $R replay echo.rwl                                         (your typing, replayed)"
echo "     $R log dump --kind input echo.rwl"
