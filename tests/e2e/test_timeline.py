# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Per-process port timelines (issue 4): known patterns give exactly their
timelines, a live run and the log read back agree, and --pid, --comm,
--all and --keep select and summarise as they say."""
import itertools
import json
import os
import subprocess
import time

import pytest

from conftest import PORTLOAD, PORTTRACE, TIMEOUT, Porttrace, run

# ---- helpers ---------------------------------------------------------------


class Live(Porttrace):
    """porttrace --format json [-o FILE] ARGS with its standard output kept
    (where a live --timeline is printed). Without -o the stream is on
    standard output too, and that is what .path / .lines() read."""

    _n = itertools.count()

    def __init__(self, workdir, args, to_file=True):
        n = next(self._n)
        self.path = os.path.join(workdir, f"live-{n}.jsonl")
        self.outpath = os.path.join(workdir, f"live-{n}.stdout")
        self.errpath = os.path.join(workdir, f"live-{n}.stderr")
        self.args = list(args)
        self.returncode = None
        self.stderr = ""
        argv = [PORTTRACE, "--format", "json", *(["-o", self.path] if to_file else []), *self.args]
        with open(self.errpath, "w") as err, open(self.outpath, "w") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        if not to_file:
            self.path = self.outpath
        self.header = self._wait_header()

    def stdout(self):
        with open(self.outpath) as f:
            return f.read()

    def cleanup(self):
        self.kill()


@pytest.fixture
def live(tmp_path):
    started = []

    def start(*args, to_file=True):
        pt = Live(str(tmp_path), args, to_file)
        started.append(pt)
        return pt

    yield start
    for pt in started:
        pt.cleanup()


def timeline(*args):
    """porttrace timeline ARGS: it must succeed without a warning."""
    r = run([PORTTRACE, "timeline", *args])
    assert r.returncode == 0 and r.stderr == "", f"porttrace timeline {args}: {r.returncode} {r.stderr}"
    return r.stdout


def timelines(*args):
    """The JSON timelines of porttrace timeline --format json ARGS, by pid."""
    out = {}
    for line in timeline("--format", "json", *args).splitlines():
        tl = json.loads(line)
        assert tl["type"] == "timeline"
        assert tl["pid"] not in out, f"two timelines for pid {tl['pid']} (no pid reuse here)"
        out[tl["pid"]] = tl
    return out


def fmt_ports(tl):
    return "\n".join(f"  {p}" for p in tl["ports"]) or "  (no ports)"


def check_time_order(tl):
    """Ports in the order they were taken; each port's states in time order,
    none before it was taken, and its end not before its last state."""
    taken = [p["taken_ns"] for p in tl["ports"]]
    assert taken == sorted(taken), f"ports not in take order:\n{fmt_ports(tl)}"
    for p in tl["ports"]:
        times = [p["taken_ns"]] + [t for _, t in p.get("states", [])]
        for key in ("time_wait_ns", "released_ns"):
            if key in p:
                times.append(p[key])
        assert times == sorted(times), f"port out of time order: {p}"
        assert tl["first_ns"] <= p["taken_ns"] <= tl["last_ns"], p


def named(comm):
    """Workload code that renames its process (its comm) first."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {comm.encode()!r}, 0, 0, 0)\n"


# A server for many clients at once: a thread per connection, which closes
# after the client's FIN and reports it.
MANY_SERVER = r'''
import threading
lock = threading.Lock()
s = listener("0.0.0.0", 8080)
report(port=port(s))
def serve(c):
    try:
        wait_eof(c)
    except OSError:
        pass
    c.close()
    with lock:  # one report line at a time
        report(closed=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

# 20 short connections, each to its own address (with 4 ephemeral ports, one
# destination would run out of ports to TIME_WAIT), each closed first.
SHORT = r'''
ports = []
for i in range(20):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(("127.0.0.%d" % (i + 1), 8080))
    ports.append(port(c))
    c.close()
report(ports=ports, done=True)
'''

# 3 long connections and a UDP socket bound to port 5353, all held at once,
# then closed in the order they were opened.
HOLD = r'''
conns = []
for i in range(3):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(("127.0.1.%d" % (i + 1), 8080))
    conns.append(c)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 5353))
report(ports=[port(c) for c in conns] + [port(u)])
step()
for s in conns + [u]:
    s.close()
report(done=True)
'''

ACTIVE_CLOSE = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE"]


def two_processes(workload, ns):
    """The short-lived and the holding process of issue 4, in turn, each to
    its end and its connections closed on the server side too; returns
    (short pid, its ports, hold pid, its ports)."""
    server = workload(ns, MANY_SERVER)
    assert server.expect()["port"] == 8080

    short = workload(ns, named("pt-short") + SHORT)
    short_ports = short.expect()["ports"]
    assert short.finish() == 0, short.stderr()
    for _ in range(20):
        assert server.expect()["closed"]

    hold = workload(ns, named("pt-hold") + HOLD)
    hold_ports = hold.expect()["ports"]
    time.sleep(0.3)  # held
    hold.go()
    assert hold.expect()["done"]
    assert hold.finish() == 0, hold.stderr()
    for _ in range(3):
        assert server.expect()["closed"]
    return short.pid, short_ports, hold.pid, hold_ports


# ---- 8. two processes, known patterns -----------------------------------------


def test_two_processes_give_exactly_their_timelines(porttrace, netns, workload):
    pt = porttrace("--timeline")
    a_pid, a_ports, b_pid, b_ports = two_processes(workload, netns)
    pt.stop()
    tls = timelines(pt.path)

    # A: 20 connect autobinds, one after the other, each closed first: all
    # 20 in TIME_WAIT when tracing stopped, so still held (the port comes
    # back at expiry, 60 s later).
    a = tls[a_pid]
    assert (a["comm"], a["taken"], a["held"], a["peak"], a["time_wait"], a["failures"], a["folded"]) == (
        "pt-short", 20, 20, 20, 20, {}, 0), {k: v for k, v in a.items() if k != "ports"}
    assert [p["how"] for p in a["ports"]] == ["connect-autobind"] * 20, fmt_ports(a)
    assert [p["lport"] for p in a["ports"]] == a_ports, fmt_ports(a)
    assert [(p["proto"], p["raddr"], p["rport"]) for p in a["ports"]] == [
        ("tcp", f"127.0.0.{i + 1}", 8080) for i in range(20)], fmt_ports(a)
    for p in a["ports"]:
        assert [s for s, _ in p["states"]] == ACTIVE_CLOSE, p
        assert p["time_wait_ns"] == p["states"][-1][1], p
        assert "released_ns" not in p, p
    assert (a["longest_ns"], a["median_ns"]) == (0, 0)  # nothing released yet
    check_time_order(a)

    # B: 3 connections and a UDP bind, all held at once, then closed.
    b = tls[b_pid]
    assert (b["comm"], b["taken"], b["peak"], b["held"], b["time_wait"], b["failures"], b["folded"]) == (
        "pt-hold", 4, 4, 3, 3, {}, 0), {k: v for k, v in b.items() if k != "ports"}
    assert [(p["how"], p["proto"], p["lport"]) for p in b["ports"]] == [
        ("connect-autobind", "tcp", b_ports[0]), ("connect-autobind", "tcp", b_ports[1]),
        ("connect-autobind", "tcp", b_ports[2]), ("bind", "udp", 5353)], fmt_ports(b)
    assert [(p["raddr"], p["rport"]) for p in b["ports"][:3]] == [(f"127.0.1.{i + 1}", 8080) for i in range(3)]
    for p in b["ports"][:3]:
        assert [s for s, _ in p["states"]] == ACTIVE_CLOSE, p
        assert p["time_wait_ns"] == p["states"][-1][1] and "released_ns" not in p, p
    udp = b["ports"][3]
    assert udp["states"] == [] and udp["reason"] == "socket-closed" and udp["computed"] is False, udp
    hold = udp["released_ns"] - udp["taken_ns"]
    assert hold >= 300_000_000, udp
    # The only port given back: it is the longest hold and the median (a
    # histogram's median stays between the least and the most it saw).
    assert (b["longest_ns"], b["median_ns"]) == (hold, hold), b
    # Every TCP port was taken before the UDP one and closed after it was.
    assert max(p["taken_ns"] for p in b["ports"][:3]) < udp["taken_ns"]
    assert min(p["states"][2][1] for p in b["ports"][:3]) >= udp["taken_ns"]
    check_time_order(b)


# ---- 9. live and offline agree ------------------------------------------------

MIXED = r'''
# A bit of everything: a connection to a listener of its own, a refused
# one, a UDP autobind, and a bind that fails.
l = listener("127.0.0.1", 8081)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.connect(("127.0.0.1", 8081))
a, _ = l.accept()
c.close()
a.close()
r = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
refused = errname(r.connect_ex(("127.0.0.1", 9)))
r.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9))
u.close()
b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    b.bind(("127.0.0.1", 8081))
    inuse = None
except OSError as e:
    inuse = errname(e.errno)
b.close()
l.close()
report(refused=refused, inuse=inuse, done=True)
'''


def run_mixed(workload, ns):
    w = workload(ns, named("pt-mixed") + MIXED)
    res = w.expect()
    assert w.finish() == 0, w.stderr()
    assert (res["refused"], res["inuse"]) == ("ECONNREFUSED", "EADDRINUSE"), res
    return w.pid


def test_live_text_timeline_equals_offline(live, netns, workload):
    pt = live("--timeline")
    pid = run_mixed(workload, netns)
    pt.stop()
    live_text = pt.stdout()
    assert f"PID {pid} (pt-mixed)" in live_text, live_text
    offline = timeline(pt.path)
    assert offline == live_text, f"live:\n{live_text}\noffline:\n{offline}"


def test_live_json_timeline_equals_offline(live, netns, workload, tmp_path):
    pt = live("--timeline", to_file=False)
    pid = run_mixed(workload, netns)
    pt.stop()
    lines = pt.lines()
    end = [i for i, l in enumerate(lines) if l.startswith('{"type":"trailer"')]
    assert len(end) == 1, "no trailer (or more than one) in the stream"
    stream, live_tl = lines[: end[0] + 1], lines[end[0] + 1:]
    assert all(json.loads(l)["type"] == "timeline" for l in live_tl), live_tl[:3]
    assert any(json.loads(l)["pid"] == pid for l in live_tl)

    log = tmp_path / "stream.jsonl"
    log.write_text("\n".join(stream) + "\n")
    offline = timeline("--format", "json", str(log)).splitlines()
    assert offline == live_tl


def test_text_timeline_fits_100_columns(porttrace, netns, workload):
    """Issue 4: the text form fits a 100-column terminal, here with two
    connections closed first (their ports in TIME_WAIT at the end)."""
    pt = porttrace()
    server = workload(netns, MANY_SERVER)
    assert server.expect()["port"] == 8080
    w = workload(netns, named("pt-width") + SHORT.replace("range(20)", "range(2)"))
    assert len(w.expect()["ports"]) == 2 and w.finish() == 0, w.stderr()
    for _ in range(2):
        assert server.expect()["closed"]
    pt.stop()
    text = timeline("--pid", str(w.pid), pt.path)
    assert "[TIME_WAIT at end]" in text, text
    wide = [l for l in text.splitlines() if len(l) > 100]
    assert not wide, "lines wider than 100 columns:\n" + "\n".join(f"{len(l):4} {l}" for l in wide)


# ---- refused connections --------------------------------------------------------

REFUSED = r'''
# Connections to a closed port: refused by the RST that loopback delivers
# at once, blocking and not.
import select
results = []
for blocking in (True, True, False, False, False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(blocking)
    err = s.connect_ex(("127.0.0.1", 9))
    if err == errno.EINPROGRESS:
        select.select([], [s], [], 5)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    results.append(errname(err))
    s.close()
report(results=results, done=True)
'''


def test_refused_connections_are_taken_once_and_released(porttrace, netns, workload):
    pt = porttrace()
    w = workload(netns, named("pt-refused") + REFUSED)
    assert w.expect()["results"] == ["ECONNREFUSED"] * 5
    assert w.finish() == 0, w.stderr()
    pt.stop()
    tl = timelines("--pid", str(w.pid), pt.path)[w.pid]
    summary = {k: v for k, v in tl.items() if k != "ports"}
    assert (tl["taken"], tl["held"], tl["peak"], tl["time_wait"], tl["failures"]) == (5, 0, 1, 0, {}), \
        f"{summary}\n{fmt_ports(tl)}"
    assert [(p["how"], p.get("reason")) for p in tl["ports"]] == [("connect-autobind", "refused")] * 5, fmt_ports(tl)
    for p in tl["ports"]:
        assert [s for s, _ in p["states"]] == ["SYN_SENT", "CLOSE"], p
    check_time_order(tl)


# ---- 10. selecting and summarising ---------------------------------------------

OTHER = r'''
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 5353))
u.close()
report(done=True)
'''


def test_select_and_summarise(porttrace, netns, workload):
    pt = porttrace()
    server = subprocess.Popen(netns.cmd(PORTLOAD, "--server", "-q", "-d", "30", "127.0.0.1", "8080"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith("listening")
        client = subprocess.Popen(netns.cmd(PORTLOAD, "-q", "-n", "25", "--close", "rst", "127.0.0.1", "8080"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert client.wait(timeout=TIMEOUT) == 0, client.stderr.read()
        other = workload(netns, named("pt-other") + OTHER)
        assert other.expect()["done"] and other.finish() == 0
    finally:
        server.kill()
        server.wait(timeout=TIMEOUT)
    pt.stop()
    c = client.pid

    # --pid and --comm select; each alone, and several of one.
    assert list(timelines("--pid", str(c), pt.path)) == [c]
    assert list(timelines("--comm", "pt-other", pt.path)) == [other.pid]
    assert sorted(timelines("--pid", str(c), "--pid", str(other.pid), pt.path)) == sorted([c, other.pid])
    assert timeline("--comm", "no-such-comm", pt.path) == ""

    # 25 connections, each reset at once: one port at a time.
    full = timelines("--pid", str(c), pt.path)[c]
    assert (full["comm"], full["taken"], full["held"], full["peak"], full["time_wait"], full["folded"]) == (
        "portload", 25, 0, 1, 0, 0), {k: v for k, v in full.items() if k != "ports"}
    assert len(full["ports"]) == 25 and all("released_ns" in p for p in full["ports"]), fmt_ports(full)
    check_time_order(full)

    # More than 20 ports: the first and last 10 in text, the rest counted.
    text = timeline("--pid", str(c), pt.path)
    assert text.count(" connect-autobind") == 20, text
    assert "  ... 5 ports not shown (--all shows them), 0 folded into the counts ...\n" in text, text
    every = timeline("--all", "--pid", str(c), pt.path)
    assert every.count(" connect-autobind") == 25 and "not shown" not in every, every
    # A process with fewer ports is shown whole.
    assert "not shown" not in timeline("--pid", str(other.pid), pt.path)

    # --keep 4: the first 2 and the last 2 in detail, 21 folded into counts
    # that stay exact.
    kept = timelines("--keep", "4", "--pid", str(c), pt.path)[c]
    assert kept["folded"] == 21, {k: v for k, v in kept.items() if k != "ports"}
    assert kept["ports"] == full["ports"][:2] + full["ports"][-2:], fmt_ports(kept)
    for k in ("taken", "held", "peak", "peak_ns", "longest_ns", "median_ns", "time_wait", "failures",
              "first_ns", "last_ns"):
        assert kept[k] == full[k], (k, kept[k], full[k])
    text = timeline("--keep", "4", "--pid", str(c), pt.path)
    assert text.count(" connect-autobind") == 4, text
    assert "  ... 21 earlier released ports folded into the counts\n" in text, text


# ---- ports held before tracing began ----------------------------------------

HOLDER = r'''
import socket
s = socket.socket()
s.bind(("127.0.0.1", 7400))
s.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 7401))
report(ready=True)
step()
u.close()
report(done=True)
step()
'''


def test_ports_held_before_tracing_are_in_the_timeline(porttrace, netns, workload):
    """Started before porttrace: its ports come from the kernel's socket
    table, marked as held before tracing, with their owner; a release
    seen afterwards closes them."""
    w = workload(netns, HOLDER)
    assert w.expect()["ready"]
    pt = porttrace()
    # The header comes before the socket table is read: a close before the
    # table was read would be of a port porttrace never saw held.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(pt.path) as f:
            if any(f'"netns":{netns.inode},' in l and '"lport":7401,' in l for l in f):
                break
        time.sleep(0.05)
    w.go()
    assert w.expect()["done"]
    w.go()
    assert w.finish() == 0
    pt.stop()
    tl = timelines(pt.path)[w.pid]
    held = {(p["proto"], p["lport"]): p for p in tl["ports"]}
    assert set(held) == {("tcp", 7400), ("udp", 7401)}, fmt_ports(tl)
    assert all(p["how"] == "held-before-tracing" for p in held.values()), fmt_ports(tl)
    assert held[("tcp", 7400)]["states"][0][0] == "LISTEN", fmt_ports(tl)
    assert held[("udp", 7401)]["reason"] == "socket-closed", fmt_ports(tl)
