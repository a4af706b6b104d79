#!/usr/bin/env python3
# reverse.py: the client half of bench/reverse.sh. Speaks the gdb remote protocol to one
# target (rewind's stub, or QEMU's) and times the packets gdb sends for each operation:
#
#   reverse-stepi                 bs
#   reverse-continue, watchpoint  Z2 on `started` (written once, before the first round), bc
#   reverse-continue, breakpoint  Z0 on milestone() (every mark= rounds), bc
#
# at fractions of the recording (default 90%, 50%, 10%), going to each position first.
# A raw client rather than gdb: QEMU 7.2's stub sends an unasked stop reply after a seek
# and never answers `monitor replay_seek`, either of which leaves gdb waiting forever.
#
#   reverse.py rewind|qemu --port P [--qmp PATH] --elf GUEST.elf --total N
#              [--fracs "0.9 0.5 0.1"] [--steps 5] [--forward] [--far] --out FILE
#
# --far: also reverse-continue to a breakpoint whose last hit is a whole mark= period
# back (the next milestone() call after the 90% one, less one instruction).
#
# Positions are retired guest instructions on both (QEMU's replay icount counts the same
# instructions as rewind, checked by --forward on both: the same total). rewind: monitor
# goto/when over qRcmd; QEMU: QMP replay-seek (asynchronous: wait for its STOP) and
# query-replay. Results: one "key value" line each in --out.
import argparse
import json
import socket
import statistics
import subprocess
import sys
import time


class Gdb:
    """A gdb remote-protocol client, acknowledged mode."""

    def __init__(self, port):
        for _ in range(100):  # the target may still be starting
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=3600)
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        else:
            raise RuntimeError("nothing listens on port %d" % port)
        # As gdb does: else our "+" acks hold back the next packet for a delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _byte(self):
        if not self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the target closed the connection")
            self.buf = data
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def _packet(self):
        while True:
            b = self._byte()
            if b == b"$":
                break
        body = b""
        while True:
            b = self._byte()
            if b == b"#":
                break
            body += b
        self._byte()
        self._byte()
        self.sock.sendall(b"+")
        return body.decode(errors="replace")

    def send(self, data):
        cs = sum(data.encode()) & 0xFF
        self.sock.sendall(b"$" + data.encode() + b"#%02x" % cs)
        while True:
            b = self._byte()
            if b == b"+":
                return
            if b == b"-":
                self.sock.sendall(b"$" + data.encode() + b"#%02x" % cs)

    def cmd(self, data):
        """Send a packet; the reply, with console output (O packets) gathered apart."""
        self.send(data)
        out = ""
        while True:
            r = self._packet()
            if r.startswith("O") and r != "OK" and not r.startswith("OK"):
                out += bytes.fromhex(r[1:]).decode(errors="replace")
                continue
            return r, out

    def monitor(self, text):
        r, out = self.cmd("qRcmd," + text.encode().hex())
        if r != "OK":
            raise RuntimeError("monitor %s: %s" % (text, r))
        return out

    def drain(self, wait):
        """Unasked packets within `wait` seconds (QEMU's stop reply after a seek)."""
        self.sock.settimeout(wait)
        try:
            while True:
                self._packet()
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.sock.settimeout(3600)


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        for _ in range(100):
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.1)
        else:
            raise RuntimeError("no QMP socket at %s" % path)
        self.file = self.sock.makefile("rwb")
        self.file.readline()  # the greeting
        self.call("qmp_capabilities")

    def event(self):
        return json.loads(self.file.readline())

    def call(self, cmd, **args):
        self.file.write(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        self.file.flush()
        while True:
            msg = self.event()
            if "event" in msg:
                self.events.append(msg["event"])
                continue
            if "error" in msg:
                raise RuntimeError("QMP %s: %s" % (cmd, msg["error"]))
            return msg["return"]

    events = []

    def wait_event(self, name):
        while name not in self.events:
            msg = self.event()
            if "event" in msg:
                self.events.append(msg["event"])
        self.events.clear()


def symbols(elf):
    out = subprocess.run(["nm", elf], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", choices=["rewind", "qemu"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--qmp")
    ap.add_argument("--elf", required=True)
    ap.add_argument("--total", type=int, required=True)
    ap.add_argument("--fracs", default="0.9 0.5 0.1")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--forward", action="store_true")
    ap.add_argument("--far", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    syms = symbols(a.elf)
    out = open(a.out, "w")

    def put(key, value):
        out.write("%s %s\n" % (key, value))
        out.flush()
        print("reverse.py %s: %s %s" % (a.target, key, value), file=sys.stderr, flush=True)

    g = Gdb(a.port)
    qmp = Qmp(a.qmp) if a.target == "qemu" else None
    g.cmd("qSupported:multiprocess+;swbreak+;hwbreak+")
    g.cmd("?")

    def position():
        if qmp:
            return int(qmp.call("query-replay")["icount"])
        text = g.monitor("when")
        return int(text.split("position ")[1].split()[0])

    def goto(pos):
        if qmp:
            if position() == pos:
                return
            qmp.events.clear()
            qmp.call("replay-seek", icount=pos)
            qmp.wait_event("STOP")
            g.drain(0.2)
        else:
            g.monitor("goto %d" % pos)

    def timed(packet):
        t0 = time.perf_counter()
        r, _ = g.cmd(packet)
        return time.perf_counter() - t0, r

    if a.forward:
        # To the guest's exit call: rewind takes its checkpoints on the way.
        g.cmd("Z0,%x,1" % syms["g_exit"])
        dt, r = timed("c")
        g.cmd("z0,%x,1" % syms["g_exit"])
        put("forward_s", "%.3f" % dt)
        put("forward_end", position())
    put("total", a.total)

    for frac in [float(f) for f in a.fracs.split()]:
        tag = "%d" % round(frac * 100)
        pos = int(a.total * frac)
        t0 = time.perf_counter()
        goto(pos)
        put("goto_%s_s" % tag, "%.3f" % (time.perf_counter() - t0))
        put("at_%s" % tag, position())

        times = []
        for _ in range(a.steps):
            dt, r = timed("bs")
            times.append(dt)
        put("rsi_%s_s" % tag, "%.4f" % statistics.median(times))
        put("rsi_%s_all" % tag, ",".join("%.4f" % t for t in times))
        put("rsi_%s_pos" % tag, position())

        goto(pos)
        g.cmd("Z2,%x,8" % syms["started"])
        dt, r = timed("bc")
        g.cmd("z2,%x,8" % syms["started"])
        put("rcw_%s_s" % tag, "%.3f" % dt)
        put("rcw_%s_stop" % tag, r.split(";")[0] + (";watch" if "watch" in r else ""))
        put("rcw_%s_pos" % tag, position())

        goto(pos)
        g.cmd("Z0,%x,1" % syms["milestone"])
        dt, r = timed("bc")
        g.cmd("z0,%x,1" % syms["milestone"])
        put("rcb_%s_s" % tag, "%.3f" % dt)
        put("rcb_%s_stop" % tag, r.split(";")[0])
        put("rcb_%s_pos" % tag, position())

    if a.far:
        # The worst case of the breakpoint target: the last hit a whole mark= period
        # back. From the 90% breakpoint stop (a milestone() call), on to the next call,
        # one instruction before it, and back.
        goto(int(a.total * 0.9))
        g.cmd("Z0,%x,1" % syms["milestone"])
        g.cmd("bc")
        p1 = position()
        g.cmd("c")
        p2 = position()
        goto(p2 - 1)
        dt, r = timed("bc")
        g.cmd("z0,%x,1" % syms["milestone"])
        put("rcbfar_s", "%.3f" % dt)
        put("rcbfar_from", p2 - 1)
        put("rcbfar_pos", position())
        put("rcbfar_want", p1)

    if not qmp:
        text = g.monitor("checkpoints")
        put("checkpoints", " ".join(text.split()))
    try:
        g.send("k")
    except OSError:
        pass
    out.close()


main()
