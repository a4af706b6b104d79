#!/usr/bin/env python3
"""The fault-tolerant pair's benchmark (bench/ft.sh runs it; docs/ft.md).

  bench/ft.py [--build DIR] [--runs N] [--soak N] [--write]

Measures, on loopback, with real `rewind ft` processes (--serial stdio):
  throughput   compute and spew: `rewind ft primary` (with its backup) against
               `rewind record --compress lz4` and `rewind run`: wall and the process's
               CPU (user + sys), medians, ratios (>= 0.95 is the target). On one host
               the backup's replay competes for the same cores: the CPU ratio is the
               primary's own overhead.
  log          the stream's bandwidth per workload (bytes of log per second of guest run)
  latency      the output rule's added wait per byte (the primary's own count)
  lag          the backup's lag, from `rewind ft status` on both sides during a run
  gap (kill)   kill -9 of the primary: from the kill to the backup's first output
  gap (silence) SIGSTOP of the primary (a hung host): from the stop to the backup's output
  join         the guest's pause when a new backup joins a primary that runs alone
  soak         N primary kills at random points: every transcript checked byte for byte
--write appends the table to bench/RESULTS.md.
"""
import argparse
import os
import random
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Pair:
    def __init__(self, rw, guest, cmdline, tmp, timeout="3", extra=()):
        self.port = free_port()
        self.sport = free_port()
        key = os.path.join(tmp, "k.key")
        if not os.path.exists(key):
            subprocess.run([rw, "ft", "keygen", key], check=True, stderr=subprocess.DEVNULL)
        arb = "file:" + os.path.join(tmp, "arb%d" % self.port)
        self.arb = arb
        self.b = subprocess.Popen(
            [rw, "ft", "backup", "--listen", "127.0.0.1:%d" % self.port, "--key", key,
             "--arbiter", arb, "--timeout", timeout],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            [rw, "ft", "primary", "--backup", "127.0.0.1:%d" % self.port, "--listen",
             "127.0.0.1:%d" % self.sport, "--key", key, "--arbiter", arb, "--timeout",
             timeout, "--append", cmdline] + list(extra) + [guest],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.key = key
        self.pout = b""
        self.bout = b""
        self.p_last = None
        self.b_first = None
        os.set_blocking(self.p.stdout.fileno(), False)
        os.set_blocking(self.b.stdout.fileno(), False)

    def pump(self, secs):
        """Read both stdouts for secs seconds (or until both closed), timestamping."""
        end = time.monotonic() + secs
        fds = [f for f in (self.p.stdout, self.b.stdout) if not f.closed]
        while fds and time.monotonic() < end:
            r, _, _ = select.select(fds, [], [], max(0, min(0.05, end - time.monotonic())))
            for f in r:
                d = f.read()
                now = time.monotonic()
                if not d:
                    fds.remove(f)
                    continue
                if f is self.p.stdout:
                    self.pout += d
                    self.p_last = now
                else:
                    if self.b_first is None:
                        self.b_first = now
                    self.bout += d

    def finish(self, secs=60):
        self.pump(secs)
        _, st, ru = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(st)
        self.pcpu = ru.ru_utime + ru.ru_stime
        self.b.wait(timeout=secs)
        self.perr = self.p.stderr.read().decode(errors="replace")
        self.berr = self.b.stderr.read().decode(errors="replace")


def ticker_ok(out, lines):
    text = out.decode(errors="replace").split("\n")
    body = text[1:1 + lines]
    if len(body) != lines:
        return False
    for i, l in enumerate(body):
        if not l.startswith("%06d " % i):
            return False
    return text[1 + lines] == "ticker: done, %d lines" % lines and text[2 + lines] == ""


def cpu_model():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
    return "?"


def timed(cmd):
    """Wall and CPU (user + sys) seconds of one run."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, st, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(st)
    return time.monotonic() - t, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--soak", type=int, default=20)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--only", choices=("join",), help="only this measure")
    a = ap.parse_args()
    load0 = open("/proc/loadavg").read().split()[:3]
    rw = os.path.join(a.build, "rewind")
    g = lambda n: os.path.join(a.build, "guests", n + ".elf")
    tmp = tempfile.mkdtemp(prefix="rewind-ftbench-")
    rows = []
    notes = []

    if a.only != "join":
        # Throughput.
        for name, guest, cmdline in (("compute", "compute", "n=150"), ("spew", "spew", "lines=20000")):
            ft, rec, run, logbw, lat = [], [], [], [], []
            ftc, recc, runc = [], [], []
            for _ in range(a.runs):
                w, c = timed([rw, "run", "--backend", "emu", "--append", cmdline, g(guest)])
                run.append(w)
                runc.append(c)
                w, c = timed([rw, "record", "--compress", "lz4", "-o", os.path.join(tmp, "r.rwl"),
                              "--append", cmdline, g(guest)])
                rec.append(w)
                recc.append(c)
                pr = Pair(rw, g(guest), cmdline, tmp)
                pr.finish()
                w = pr.p_last - pr.t0 if pr.p_last else float("nan")
                ft.append(w)
                ftc.append(pr.pcpu)
                m = re.search(r"log (\d+) bytes.*?([\d.]+) us per byte", pr.perr)
                if m:
                    logbw.append(int(m.group(1)) / w)
                    lat.append(float(m.group(2)))
                if pr.p.returncode != 1 or pr.b.returncode != 1:
                    notes.append("%s: primary %s backup %s: %s %s" % (name, pr.p.returncode,
                                 pr.b.returncode, pr.perr.strip()[-200:], pr.berr.strip()[-200:]))
            f, r_, u = statistics.median(ft), statistics.median(rec), statistics.median(run)
            fc, rc_, uc = statistics.median(ftc), statistics.median(recc), statistics.median(runc)
            rows.append(("throughput %s (%s), wall" % (name, cmdline),
                         "ft primary %.2f s (its backup replays on the same cores), record %.2f s, "
                         "run %.2f s; record/ft **%.2f**, run/ft %.2f" % (f, r_, u, r_ / f, u / f)))
            rows.append(("throughput %s, primary's CPU" % name,
                         "ft %.2f s, record %.2f s, run %.2f s; record/ft **%.2f**, run/ft %.2f" %
                         (fc, rc_, uc, rc_ / fc, uc / fc)))
            if logbw:
                rows.append(("log bandwidth %s" % name, "%.0f KB/s" % (statistics.median(logbw) / 1e3)))
                rows.append(("output latency %s" % name, "%.0f us per byte" % statistics.median(lat)))

        # Lag, from status during a ticker run.
        pr = Pair(rw, g("ticker"), "lines=300 hz=200", tmp)
        lags = []
        for _ in range(8):
            pr.pump(0.25)
            s = subprocess.run([rw, "ft", "status", "--key", pr.key, "127.0.0.1:%d" % pr.sport],
                               capture_output=True, text=True)
            m = re.search(r"lag: (\d+) positions, ([\d.]+) ms", s.stdout)
            if m:
                lags.append((int(m.group(1)), float(m.group(2))))
        pr.finish()
        if lags:
            rows.append(("backup lag (ticker, status x%d)" % len(lags),
                         "median %d positions, %.1f ms; max %d positions, %.1f ms" %
                         (statistics.median(l[0] for l in lags), statistics.median(l[1] for l in lags),
                          max(l[0] for l in lags), max(l[1] for l in lags))))

        # Failover gaps.
        def gap(sig, timeout):
            pr = Pair(rw, g("ticker"), "lines=200 hz=200", tmp, timeout=timeout)
            pr.pump(0.5 + random.random() * 0.5)
            t = time.monotonic()
            os.kill(pr.p.pid, sig)
            while pr.b_first is None and time.monotonic() - t < 10:
                pr.pump(0.01)
            g_ = pr.b_first - t if pr.b_first else float("nan")
            if sig != signal.SIGKILL:
                os.kill(pr.p.pid, signal.SIGKILL)
            pr.finish()
            ok = pr.bout.startswith(pr.pout) and ticker_ok(pr.bout, 200)
            return g_, ok

        for label, sig, to in (("kill -9", signal.SIGKILL, "3"), ("silence (SIGSTOP, --timeout 1)", signal.SIGSTOP, "1")):
            gs = [gap(sig, to) for _ in range(a.runs)]
            rows.append(("failover gap after %s" % label,
                         "median %.0f ms, max %.0f ms (%d runs, transcripts %s)" %
                         (statistics.median(x[0] for x in gs) * 1e3, max(x[0] for x in gs) * 1e3,
                          len(gs), "all whole" if all(x[1] for x in gs) else "NOT ALL WHOLE")))

    # Join pause: the backup dies, a new one joins the primary that runs alone. On the
    # ticker (little written), and on guests/dirty (64 MiB written at ~64 MB/s) with one
    # copy round (--precopy-rounds 1: the pause sends every page written during the copy)
    # against the default rounds, alternated in the same run.
    def join_pause(guest, cmdline, extra=()):
        pr = Pair(rw, g(guest), cmdline, tmp, extra=extra)
        while not pr.pout and pr.p.poll() is None:
            pr.pump(0.01)
        pr.pump(0.5)
        pr.b.kill()
        pr.pump(0.4)
        # (refused while the primary still decides about its lost backup: try again)
        for _ in range(20):
            b2 = subprocess.Popen([rw, "ft", "backup", "--join", "127.0.0.1:%d" % pr.sport,
                                   "--key", pr.key, "--arbiter", pr.arb],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            pr.pump(0.3)
            if b2.poll() is None or b"refused" not in (b2.stderr.read() or b""):
                break
        pr.finish()
        b2.wait(timeout=60)
        m = re.search(r"paused ([\d.]+) ms for its state \((\d+) pages written since the last "
                      r"copy round sent then; (\d+) rounds while it ran[^;]*; ([\d.]+) MB of "
                      r"RAM, ([\d.]+) MB sent in (\d+) ms\)", pr.perr)
        if not m:
            notes.append("join (%s %s): %s" % (guest, " ".join(extra), pr.perr.strip()[-300:]))
            return None
        return (float(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4)),
                float(m.group(5)), int(m.group(6)))

    def join_row(label, pauses):
        pauses = [x for x in pauses if x]
        if pauses:
            rows.append((label,
                         "median %.1f ms, max %.1f ms (%d joins; rounds while the guest ran: "
                         "median %d; %.0f MB of RAM, %.1f MB sent, median %d ms; pages sent "
                         "at the pause: median %d)" %
                         (statistics.median(x[0] for x in pauses), max(x[0] for x in pauses),
                          len(pauses), statistics.median(x[2] for x in pauses), pauses[0][3],
                          statistics.median(x[4] for x in pauses),
                          statistics.median(x[5] for x in pauses),
                          statistics.median(x[1] for x in pauses))))

    join_row("join pause (128 MiB guest, ticker)",
             [join_pause("ticker", "lines=300 hz=200") for _ in range(a.runs)])
    one, rounds = [], []
    for _ in range(a.runs):
        one.append(join_pause("dirty", "mb=64 lines=60", ("--precopy-rounds", "1")))
        rounds.append(join_pause("dirty", "mb=64 lines=60"))
    join_row("join pause, guests/dirty (64 MiB written at ~64 MB/s), one copy round", one)
    join_row("join pause, guests/dirty, copy rounds (default --precopy-rounds 10)", rounds)

    bad = 0
    if a.only != "join":
        # Kill soak.
        bad = late = 0
        t0 = time.monotonic()
        for i in range(a.soak):
            pr = Pair(rw, g("ticker"), "lines=60 hz=400", tmp)
            while not pr.pout and pr.p.poll() is None:  # the pair runs: the first line left
                pr.pump(0.01)
            pr.pump(random.random() * 0.2)
            os.kill(pr.p.pid, signal.SIGKILL)
            pr.finish()
            # A primary that ended before the kill: its output is the transcript; else the
            # backup's, which must begin with what the primary showed.
            ended = pr.p.returncode == 1
            late += ended
            if not (ticker_ok(pr.pout, 60) if ended else
                    pr.bout.startswith(pr.pout) and ticker_ok(pr.bout, 60)):
                bad += 1
                notes.append("soak %d: primary %d bytes, backup %d bytes: %s" %
                             (i, len(pr.pout), len(pr.bout), pr.berr.strip()[-300:]))
        rows.append(("kill soak", "%d kills at random points (0-200 ms after the first line of a 0.3 s ticker; "
                     "%d came after the primary's end), %d transcripts with bytes lost or repeated, %.0f s" %
                     (a.soak, late, bad, time.monotonic() - t0)))


    out = ["| measure | result |", "|---|---|"] + ["| %s | %s |" % r for r in rows]
    print("\n".join(out))
    for n in notes:
        print("note:", n)
    if a.write:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        with open("bench/RESULTS.md", "a") as f:
            f.write("\n## %s — %s — the ft pair (bench/ft.sh)\n\n" %
                    (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev))
            f.write("- Command: `bench/ft.sh %s`\n" % " ".join(sys.argv[1:]))
            f.write("- Machine: %d CPUs (%s); loopback; emu; --serial stdio; load average "
                    "before: %s\n\n" % (os.cpu_count(), cpu_model(), load0))
            f.write("\n".join(out) + "\n")
            for n in notes:
                f.write("\n- note: %s" % n)
            f.write("\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
