# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Port exhaustion (--exhaustion, porttrace exhaustion FILE, porttrace top):
occupancy per destination against a small ephemeral range, failures,
TIME_WAIT, bind(0), agreement with the kernel's socket table under load,
range changes, and a log read back giving the live figures.

Every figure is asserted exactly: the namespaces are private, and each test
reads only its own namespace's pool from porttrace's records."""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import PORTLOAD, PORTTRACE, TALLY_RE, TIMEOUT, check_call, run

SMALL = (40000, 40049)
WARN_RE = "porttrace: warning: netns {ns} tcp 127.0.0.1 > 127.0.0.1:{port} is 80% full (40/50 ports)"


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def set_range(ns, lo, hi):
    check_call(ns.cmd("sysctl", "-qw", f"net.ipv4.ip_local_port_range={lo} {hi}"))


class Tracer:
    """porttrace --exhaustion --interval 1 --format json -o LOG; the report
    it prints at exit (on stdout, as -o is a file) is kept."""

    def __init__(self, path, *args):
        self.path = str(path / "porttrace.jsonl")
        self.out_path = self.path + ".stdout"
        self.err_path = self.path + ".stderr"
        self.returncode = None
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [PORTTRACE, "--exhaustion", "--interval", "1", "--format", "json", "-o", self.path, *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + TIMEOUT
        while not self._lines():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"porttrace wrote no header: {self.stderr()}")
            time.sleep(0.05)

    def _lines(self):
        try:
            with open(self.path) as f:
                return [l for l in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def report(self):
        with open(self.out_path) as f:
            return f.read()

    def records(self):
        """Every exhaustion record written so far (a line being written is
        left for later)."""
        recs = []
        for l in self._lines():
            if l.startswith('{"type":"exhaustion"'):
                try:
                    recs.append(json.loads(l))
                except json.JSONDecodeError:
                    pass
        return recs

    def snapshot(self, after_ns, what="a snapshot", pred=lambda r: True):
        """The first periodic record with figures as of a time after
        after_ns (CLOCK_MONOTONIC) for which pred holds."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for r in self.records():
                if r["t_ns"] > after_ns and not r["final"] and pred(r):
                    return r
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"{what}: none after {after_ns}; records: {json.dumps(self.records()[-2:])[:3000]}")

    def stop(self):
        if self.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            self.returncode = self.proc.wait(timeout=TIMEOUT)
        assert self.returncode == 0, self.stderr()
        return self

    def tally(self):
        m = TALLY_RE.match(self.stderr().splitlines()[-1])
        assert m, self.stderr()
        return tuple(int(x) for x in m.groups())

    def final(self):
        finals = [r for r in self.records() if r["final"]]
        assert len(finals) == 1, f"{len(finals)} final records"
        return finals[0]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def tracer(tmp_path):
    started = []

    def start(*args):
        t = Tracer(tmp_path, *args)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def pool(rec, ns, proto="tcp"):
    found = [p for p in rec["pools"] if p["netns"] == ns.inode and p["proto"] == proto]
    assert len(found) == 1, f"pool {ns.inode}/{proto} in {json.dumps(rec)[:3000]}"
    return found[0]


def dest(p, rport, raddr="127.0.0.1"):
    found = [d for d in p["dests"] if d["rport"] == rport and d["raddr"] == raddr]
    assert len(found) == 1, f"destination {raddr}:{rport} in {json.dumps(p)}"
    return found[0]


def ss_count(ns, state, dst):
    """Sockets in state towards dst, as ss(8) lists them."""
    r = run(ns.cmd("ss", "-Htan", "state", state, "dst", dst))
    assert r.returncode == 0, r.stderr
    return len([l for l in r.stdout.splitlines() if l.strip()])


# Connections to 127.0.0.1:PORT, accepted by the same process; a backlog
# big enough that 50 of them never wait for an accept().
PRELUDE = r'''
def serve(p):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p))
    s.listen(256)
    return s

def connect(p):
    c = socket.socket()
    c.connect(("127.0.0.1", p))
    return c

def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
'''


FULL = PRELUDE + r'''
a, b = serve(8080), serve(8081)
# 8081 is known to porttrace but holds nothing: one connection, aborted.
c = connect(8081)
b.accept()[0].close()
linger_rst(c)
c.close()
held = [connect(8080) for _ in range(50)]
accepted = [a.accept()[0] for _ in range(50)]
extra = socket.socket()
report(err=errname(extra.connect_ex(("127.0.0.1", 8080))), t=now(), ports=sorted(port(h) for h in held))
step()
'''


def test_full_destination(tracer, netns, workload):
    set_range(netns, *SMALL)
    pt = tracer()
    w = workload(netns, FULL)
    res = w.expect()
    assert res["err"] == "EADDRNOTAVAIL"
    assert res["ports"] == list(range(SMALL[0], SMALL[1] + 1))
    p = pool(pt.snapshot(res["t"]), netns)
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    assert (p["range"], p["capacity"], p["reserved"], p["shared"]) == ([40000, 40049], 50, 0, 0)
    full = dest(p, 8080)
    assert (full["occupancy"], full["own"], full["pct"], full["established"]) == (50, 50, 100.0, 50), full
    assert (full["connecting"], full["closing"], full["time_wait"], full["peak"]) == (0, 0, 0, 50), full
    # The 51st connect(): one failure, of that process, to that destination.
    assert (full["failures"], full["err"]) == (1, "EADDRNOTAVAIL"), full
    assert full["procs"] == [{"pid": w.pid, "comm": "python3", "held": 50, "failures": 1}]
    other = dest(p, 8081)
    assert (other["occupancy"], other["own"], other["failures"]) == (0, 0, 0), other
    assert (p["all"]["occupancy"], p["all"]["failures"]) == (0, 0), p["all"]
    assert p["procs"] == [{"pid": w.pid, "comm": "python3", "held": 50, "failures": 1}]
    assert full["first_fail_t_ns"] == full["last_fail_t_ns"] <= res["t"]
    # Crossing 80% on the way up is said once, on stderr, as it happens.
    warns = [l for l in pt.stderr().splitlines() if f"netns {netns.inode} " in l]
    assert warns == [WARN_RE.format(ns=netns.inode, port=8080)], pt.stderr()
    assert pt.tally()[1:] == (0, 0)


CLOSE = PRELUDE + r'''
a = serve(8080)
clients = [connect(8080) for _ in range(10)]
servers = [a.accept()[0] for _ in range(10)]
report(t=now())
step()
# Active close: the client's FIN first; its end then waits in TIME_WAIT.
for c, s in zip(clients[:5], servers[:5]):
    c.close()
    wait_eof(s)
    s.close()
# SO_LINGER 0: an RST, and the port is free at once.
for c in clients[5:]:
    linger_rst(c)
    c.close()
time.sleep(0.2)
report(t=now())
step()
'''


def test_time_wait_held_linger_free(tracer, netns, workload):
    set_range(netns, *SMALL)
    pt = tracer()
    w = workload(netns, CLOSE)
    t = w.expect()["t"]
    before = dest(pool(pt.snapshot(t), netns), 8080)
    w.go()
    t = w.expect()["t"]
    after = dest(pool(pt.snapshot(t), netns), 8080)
    tw, est = ss_count(netns, "time-wait", "127.0.0.1:8080"), ss_count(netns, "established", "127.0.0.1:8080")
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    assert (before["occupancy"], before["established"], before["time_wait"]) == (10, 10, 0), before
    # Five held by TIME_WAIT, not free; the five reset ones free.
    assert (after["occupancy"], after["time_wait"], after["established"], after["closing"]) == (5, 5, 0, 0), after
    assert (tw, est) == (5, 0)
    assert after["peak"] == 10


BIND0 = PRELUDE + r'''
a, b = serve(8080), serve(8081)
bound = []
for _ in range(10):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    bound.append(s)
to_a = [connect(8080) for _ in range(5)]
to_b = [connect(8081) for _ in range(3)]
report(t=now(), bound=[port(s) for s in bound])
step()
'''


def test_bind0_counts_against_every_destination(tracer, netns, workload):
    set_range(netns, *SMALL)
    pt = tracer()
    w = workload(netns, BIND0)
    res = w.expect()
    p = pool(pt.snapshot(res["t"]), netns)
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    assert all(SMALL[0] <= x <= SMALL[1] for x in res["bound"]), res
    assert p["shared"] == 10
    assert (p["all"]["occupancy"], p["all"]["pct"]) == (10, 20.0), p["all"]
    a, b = dest(p, 8080), dest(p, 8081)
    assert (a["own"], a["shared"], a["occupancy"], a["pct"]) == (5, 10, 15, 30.0), a
    assert (b["own"], b["shared"], b["occupancy"], b["pct"]) == (3, 10, 13, 26.0), b
    assert p["procs"] == [{"pid": w.pid, "comm": "python3", "held": 18, "failures": 0}]


UDP = r'''
socks = []
for _ in range(5):
    u, err = udp_autobind()
    socks.append(u)
report(err=err, t=time.clock_gettime_ns(time.CLOCK_MONOTONIC))
step()
'''


def test_udp_autobind_exhaustion(tracer, netns, workload):
    # The fixture's four-port range: the fifth sendto() finds none.
    pt = tracer()
    w = workload(netns, UDP)
    res = w.expect()
    assert res["err"] == "EAGAIN"
    p = pool(pt.snapshot(res["t"]), netns, "udp")
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    assert (p["capacity"], p["shared"]) == (4, 4)
    assert (p["all"]["occupancy"], p["all"]["pct"], p["all"]["full_in_s"]) == (4, 100.0, 0.0), p["all"]
    d = dest(p, 9999)
    assert (d["failures"], d["err"]) == (1, "EAGAIN"), d
    assert d["procs"] == [{"pid": w.pid, "comm": "python3", "held": 0, "failures": 1}]


RANGE = PRELUDE + r'''
a = serve(8080)
held = [connect(8080) for _ in range(5)]
report(t=now())
step()
held.append(connect(8080))
report(t=now())
step()
'''


def test_range_change_changes_capacity(tracer, netns, workload):
    set_range(netns, *SMALL)
    pt = tracer()
    w = workload(netns, RANGE)
    p1 = pool(pt.snapshot(w.expect()["t"]), netns)
    set_range(netns, 40000, 40099)
    w.go()
    # The next snapshot after an event under the new range.
    p2 = pool(pt.snapshot(w.expect()["t"]), netns)
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    assert (p1["range"], p1["capacity"], dest(p1, 8080)["pct"]) == ([40000, 40049], 50, 10.0)
    assert (p2["range"], p2["capacity"]) == ([40000, 40099], 100)
    assert (dest(p2, 8080)["occupancy"], dest(p2, 8080)["pct"]) == (6, 6.0)


def portload(ns, *args):
    return subprocess.Popen(ns.cmd(PORTLOAD, "-q", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_occupancy_equals_ss_under_load(tracer, netns):
    """3000 connections/s to one destination (closed with FIN: TIME_WAIT,
    which loopback reuses), 30 held to another: porttrace's counts equal
    ss's, during the load and after it."""
    set_range(netns, 40000, 59999)
    pt = tracer()
    servers = [portload(netns, "--server", "-c", "2", "-d", "12", "127.0.0.1", str(p)) for p in (8080, 8081)]
    time.sleep(0.5)
    hold = portload(netns, "-c", "30", "-n", "30", "--hold", "9000", "-d", "10", "127.0.0.1", "8081")
    time.sleep(1)
    churn = portload(netns, "-c", "4", "-r", "3000", "-d", "3", "--json", "127.0.0.1", "8080")
    during = []
    while churn.poll() is None:
        # The held destination does not move: it equals ss at any moment.
        during.append((ss_count(netns, "established", "127.0.0.1:8081"), mono_ns()))
        time.sleep(0.5)
    summary = json.loads(churn.stdout.read().splitlines()[-1])
    # The last closes may still be on their way: until the count of
    # TIME_WAIT holds still. The snapshot is then one made after the first
    # ss, and the second ss, after it, says nothing moved in between.
    tw, before, deadline = ss_count(netns, "time-wait", "127.0.0.1:8080"), -1, time.monotonic() + 10
    while tw != before and time.monotonic() < deadline:
        time.sleep(0.3)
        before, tw = tw, ss_count(netns, "time-wait", "127.0.0.1:8080")
    p = pool(pt.snapshot(mono_ns()), netns)
    tw_after = ss_count(netns, "time-wait", "127.0.0.1:8080")
    snaps = [pool(r, netns) for r in pt.records() if any(q["netns"] == netns.inode for q in r["pools"])]
    # The check reads the whole host; this namespace's part is its own.
    checks = [pool(r, netns)["check"] for r in pt.records()
              if "check" in r and any(q["netns"] == netns.inode for q in r["pools"])]
    for proc in [hold, *servers]:
        proc.wait(timeout=TIMEOUT)
    pt.stop()

    assert summary["ok"] >= 6000 and summary["failed"] == 0, summary
    assert during and all(n == 30 for n, _ in during), during
    held = [dest(s, 8081) for s in snaps if s["dests"] and any(d["rport"] == 8081 for d in s["dests"])]
    assert len(held) >= 2 and all(d["own"] == d["established"] == 30 for d in held[1:]), held
    # TIME_WAIT does not expire for 60 s: ss before and after the snapshot agree.
    assert tw == tw_after > 0
    churned = dest(p, 8080)
    assert (churned["time_wait"], churned["own"]) == (tw, tw), churned
    assert churned["peak"] >= tw
    assert checks and all(c["reachable"] and c["persistent"] == 0 for c in checks), checks
    assert (checks[-1]["kernel"], checks[-1]["events"]) == (tw + 30, tw + 30), checks[-1]
    assert pt.tally()[1:] == (0, 0)


KILL_TW = PRELUDE + r'''
a = serve(8080)
c = connect(8080)
s = a.accept()[0]
port = c.getsockname()[1]
c.close()
wait_eof(s)
s.close()
a.close()
time.sleep(0.2)
report(port=port)
step()
report(t=now())
# A SYN to the time-wait socket from the port it talked to: it answers with
# an ACK this socket does not expect, and the RST that ACK earns kills it
# (net.ipv4.tcp_rfc1337 is 0). Nothing traced says so.
k = socket.socket()
k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
k.bind(("127.0.0.1", 8080))
k.setblocking(False)
k.connect_ex(("127.0.0.1", port))
time.sleep(0.3)
k.close()
report(done=True)
step()
'''


def test_time_wait_killed_by_rst_is_given_back(tracer, netns, workload):
    """A RST received in TIME-WAIT kills the socket and no hook sees it: the
    next check finds it gone, gives its port back with a release event
    (time-wait-gone) that the log keeps, and a read-back agrees."""
    pt = tracer()
    w = workload(netns, KILL_TW)
    port = w.expect()["port"]
    assert ss_count(netns, "time-wait", "127.0.0.1:8080") == 1
    before = pt.snapshot(mono_ns(), "a snapshot with the time-wait socket",
                         lambda r: any(q["netns"] == netns.inode for q in r["pools"]))
    assert dest(pool(before, netns), 8080)["time_wait"] == 1
    w.go()
    t0 = w.expect()["t"]
    w.expect()
    assert ss_count(netns, "time-wait", "127.0.0.1:8080") == 0
    after = pt.snapshot(t0, "a check that found the time-wait socket gone",
                        lambda r: r.get("check", {}).get("t_ns", 0) > t0 and r["check"]["tw_gone"])
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    p = pool(after, netns)
    assert (dest(p, 8080)["time_wait"], dest(p, 8080)["own"]) == (0, 0), p
    assert p["check"]["tw_gone"] == 1 and p["check"]["agrees"], p["check"]
    ports = [json.loads(l) for l in pt._lines() if l.startswith('{"type":"port"')]
    tw = [e for e in ports if e["event"] == "time-wait" and e["lport"] == port and e["rport"] == 8080]
    assert len(tw) == 1, tw
    ends = [e for e in ports if e["cookie"] == tw[0]["cookie"] and e["event"] == "release"]
    assert [(e["reason"], bool(e["flags"] & 128), e["lport"], e["raddr"], e["rport"]) for e in ends] == \
        [("time-wait-gone", True, port, "127.0.0.1", 8080)], ends
    assert t0 < ends[0]["t_ns"] == after["check"]["t_ns"]
    assert "found by the checks and given back: 1" in pt.report(), pt.report()
    # The release is in the log: reading it back gives the port back too.
    r = run([PORTTRACE, "exhaustion", "--interval", "1", "--format", "json", pt.path])
    assert r.returncode == 0, r.stderr
    assert dest(pool(json.loads(r.stdout), netns), 8080)["time_wait"] == 0


OFFLINE = PRELUDE + r'''
a = serve(8080)
held = [connect(8080) for _ in range(10)]
servers = [a.accept()[0] for _ in range(10)]
fails = [errname(socket.socket().connect_ex(("127.0.0.1", 8080))) for _ in range(2)]
for c, s in zip(held[:4], servers[:4]):
    c.close()
    wait_eof(s)
    s.close()
for c in held[4:7]:
    linger_rst(c)
    c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9999))
report(fails=fails)
step()
'''


def test_log_read_back_gives_live_figures(tracer, netns, workload, tmp_path):
    set_range(netns, 40000, 40009)
    pt = tracer()
    w = workload(netns, OFFLINE)
    assert w.expect()["fails"] == ["EADDRNOTAVAIL"] * 2
    time.sleep(1.2)
    w.go()
    assert w.finish() == 0, w.stderr()
    pt.stop()

    # The checks against the kernel's table are the live run's own.
    live = pt.final()
    live.pop("check")
    for p in live["pools"]:
        p.pop("check", None)
    r = run([PORTTRACE, "exhaustion", "--interval", "1", "--format", "json", pt.path])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == live
    mine = dest(pool(live, netns), 8080)
    assert (mine["failures"], mine["peak"]) == (2, 10), mine
    r = run([PORTTRACE, "exhaustion", "--interval", "1", pt.path])
    assert r.returncode == 0, r.stderr
    text = pt.report().split("\n\nCheck against the kernel's socket table")[0].rstrip("\n")
    assert text.startswith("Port exhaustion:"), pt.report()
    assert r.stdout.rstrip("\n") == text
    assert f"netns {netns.inode} tcp: ephemeral range 40000-40009, capacity 10 (0 reserved)" in text


@pytest.mark.parametrize("args,what", [
    (["--warn", "0"], "invalid --warn '0'"),
    (["--warn", "101"], "invalid --warn '101'"),
    (["--warn", "80%%"], "invalid --warn '80%%'"),
    (["--interval", "-1"], "invalid interval '-1'"),
    (["--interval", "0"], "invalid interval '0'"),
    (["exhaustion", "/missing"], "cannot read /missing"),
    (["exhaustion", "/tmp"], "cannot read /tmp: Is a directory"),
    (["timeline", "/tmp"], "cannot read /tmp: Is a directory"),
    (["exhaustion", "--warn", "0", "/missing"], "invalid --warn '0'"),
    (["top", "--warn", "101"], "invalid --warn '101'"),
    (["top", "--sort", "size"], "invalid sort 'size'"),
])
def test_bad_input(args, what):
    r = run([PORTTRACE, *args, "-d", "0.1"] if args[0].startswith("-") else [PORTTRACE, *args])
    assert r.returncode != 0
    # One line says what is wrong; argp may add its "Try --help" hint.
    said = r.stderr.split("\nTry ")[0].splitlines()
    assert len(said) == 1 and said[0].startswith("porttrace") and what in said[0], r.stderr
    assert r.returncode == (1 if args[0] in ("exhaustion", "timeline") and args[1].startswith("/") else 2)


def test_warn_accepts_percent_sign(tracer):
    pt = tracer("--warn", "95%", "-d", "0.3")
    pt.proc.wait(timeout=TIMEOUT)
    pt.returncode = pt.proc.returncode
    pt.stop()
    assert pt.final()["warn_pct"] == 95


HOLD = PRELUDE + r'''
a = serve(8080)
held = [connect(8080) for _ in range(20)]
report(t=now())
step()
'''


def frame_rows(text, ns):
    """(figures line, detail line) of every destination of ns in a frame."""
    lines = text.splitlines()
    return [(lines[i - 1], l) for i, l in enumerate(lines) if l.startswith(f"      ns {ns.inode}")]


def test_top_batch(netns, workload):
    set_range(netns, *SMALL)
    w = workload(netns, HOLD)
    w.expect()
    r = run([PORTTRACE, "top", "--batch", "-d", "2.5"])
    w.go()
    assert w.finish() == 0, w.stderr()
    assert r.returncode == 0, r.stderr
    frames = [f for f in r.stdout.split("porttrace top ")[1:]]
    assert len(frames) >= 3, r.stdout
    assert all(len(l) <= 80 for l in r.stdout.splitlines()), r.stdout
    rows = frame_rows(frames[-1], netns)
    assert len(rows) == 1, frames[-1]
    figures, detail = rows[0]
    assert figures.split()[:2] == ["40%", "20/50"], figures
    assert figures.endswith("tcp 127.0.0.1 > 127.0.0.1:8080"), figures
    assert "est 20" in detail and f"by {w.pid} python3 20" in detail, detail


def test_top_terminal(netns, workload):
    """In an 80x24 terminal: one screen, keys switch the sort, q quits and
    gives the terminal back as it was."""
    set_range(netns, *SMALL)
    w = workload(netns, HOLD)
    w.expect()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([PORTTRACE, "top"], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            start_new_session=True)
    out = b""

    def read_until(needle):
        nonlocal out
        deadline = time.monotonic() + TIMEOUT
        while needle not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
        return needle in out

    try:
        assert read_until(b"20/50"), out
        os.write(master, b"f")
        assert read_until(b"sort: failures"), out
        os.write(master, b"q")
        assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        w.go()
        w.finish()
    after = termios.tcgetattr(slave)
    os.close(master)
    os.close(slave)
    assert after == before
    # Plain ANSI, no line past column 80.
    text = out.decode(errors="replace").replace("\x1b[H", "\n")
    for esc in ("\x1b[K", "\x1b[J", "\x1b[2J", "\x1b[?25l", "\x1b[?25h"):
        text = text.replace(esc, "")
    assert "\x1b" not in text
    assert all(len(l.rstrip("\r")) <= 80 for l in text.split("\n")), text


UDP_OLD = r'''
socks = []
for _ in range(20):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    socks.append(u)
report(ports=sorted(port(u) for u in socks))
step()
for u in socks:
    u.close()
report(closed=True)
step()
'''


def test_top_gives_back_udp_ports_held_before_it(netns, workload):
    """UDP sockets open before top starts are known from the socket table
    alone; the release the kernel sends when they close carries no port,
    and top completes it from that table: the ports come back, and the
    check against the kernel agrees."""
    set_range(netns, *SMALL)
    w = workload(netns, UDP_OLD)
    assert all(SMALL[0] <= p <= SMALL[1] for p in w.expect()["ports"])
    proc = subprocess.Popen([PORTTRACE, "top", "--batch", "-d", "5", "-i", "1"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first frame is drawn after the start-up snapshot: it holds them.
        first = ""
        while first.count("porttrace top ") < 2 and proc.poll() is None:
            first += proc.stdout.readline()
        rows = frame_rows(first.split("porttrace top ")[1], netns)
        assert len(rows) == 1 and rows[0][0].split()[1] == "20/50", first
        w.go()
        assert w.expect()["closed"]
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    w.go()
    assert w.finish() == 0, w.stderr()
    assert proc.returncode == 0, err

    last = (first + out).split("porttrace top ")[-1]
    assert not [r for r in frame_rows(last, netns) if r[0].split()[1] != "0/50"], last
    assert " agrees (" in last.splitlines()[1], last
