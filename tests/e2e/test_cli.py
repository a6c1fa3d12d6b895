# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""The command line: how a run starts and ends, what it writes, how it
refuses bad input, and the kernel-side filters."""
import collections
import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import PORTTRACE, TALLY_RE, UNPRIVILEGED, fmt_events, in_range, run, run_once, select

# ---- starting and stopping -------------------------------------------------


def nonempty_lines(text):
    return [l for l in text.splitlines() if l.strip()]


def check_log(lines, written):
    """A JSON log: header first, trailer last, events in between, and the
    counts of the tally and the trailer agree with what is in the file."""
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert (header["type"], header["schema"]) == ("header", 2), lines[0]
    assert trailer["type"] == "trailer", lines[-1]
    body = [json.loads(l) for l in lines[1:-1]]
    assert all(e["type"] in ("state", "port", "lost") for e in body)
    assert written == len(body)
    counted = collections.Counter(e["event"] if e["type"] == "port" else e["type"] for e in body)
    assert {k: v for k, v in trailer["events"].items() if v} == dict(counted)
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert header["ephemeral_range"] == [int(x) for x in f.read().split()]
    return header, trailer


def test_duration_stops_by_itself():
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.monotonic()
        r = run([PORTTRACE, "--format", "json", "-d", "1"], stdout=out)
        elapsed = time.monotonic() - t0
        out.seek(0)
        lines = out.read().splitlines()
    assert r.returncode == 0, r.stderr
    assert 1.0 <= elapsed < 1.0 + 5, elapsed
    (tally,) = nonempty_lines(r.stderr)
    m = TALLY_RE.match(tally)
    assert m, tally
    check_log(lines, int(m.group(1)))


UDP_SEND = r'''
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9))
report(port=port(u), done=True)
u.close()
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly(porttrace, netns, workload, sig):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, UDP_SEND)
    pt.stop(sig)
    written, kernel_lost, write_lost = pt.tally()
    assert write_lost == 0
    _, trailer = check_log(pt.lines(), written)
    assert trailer["kernel_lost"] == kernel_lost
    # What happened before the signal is in the log.
    assert [(e["event"], e["lport"], e["pid"]) for e in select(pt.events(netns), type="port")] == [
        ("alloc", res["port"], pid), ("release", res["port"], pid)]


BIND_CLOSE = r'''
s = socket.socket()
s.bind(("127.0.0.1", 5000))
s.close()
report(done=True)
'''


def test_output_file_has_header_first_and_trailer_last(porttrace, netns, workload):
    pt = porttrace()
    assert pt.header["porttrace"] and pt.header["clock"] == "CLOCK_MONOTONIC"
    run_once(workload, netns, BIND_CLOSE)
    pt.stop()
    header, trailer = check_log(pt.lines(), pt.tally()[0])
    assert header["start_mono_ns"] <= min(e["t_ns"] for e in pt.events(netns)) <= trailer["t_ns"]
    assert [e["event"] for e in pt.events(netns)] == ["bind", "release"]


def heap_madvised(pid):
    """Whether a [heap] mapping of pid is marked for huge pages (hg)."""
    with open(f"/proc/{pid}/smaps") as f:
        text = f.read()
    heaps = [m for m in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text) if "[heap]" in m.splitlines()[0]]
    assert heaps
    return any(re.search(r"^VmFlags:.* hg\b", m, re.M) for m in heaps)


@pytest.mark.parametrize("given,huge", [
    (None, True), ("glibc.malloc.hugetlb=0", False), ("glibc.malloc.arena_max=2", True),
    ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0", False),
], ids=["unset", "chosen-off", "other-tunable", "chosen-off-among-others"])
def test_heap_on_huge_pages_unless_told_otherwise(given, huge):
    """porttrace starts itself once more with glibc's huge-page tunable
    (same pid), unless the caller chose a value of its own."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if given:
        env["GLIBC_TUNABLES"] = given
    p = subprocess.Popen([PORTTRACE, "--format", "json", "-d", "30"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline())["type"] == "header"
        assert heap_madvised(p.pid) == huge
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err


# ---- refusing to start -----------------------------------------------------


def assert_one_line_error(r, *needles):
    """Non-zero exit and exactly one message line (argp may add its
    'Try `porttrace --help'...' hint); the message names what is wrong."""
    assert r.returncode != 0
    lines = nonempty_lines(r.stderr)
    if len(lines) == 2 and lines[1].startswith("Try `"):
        lines = lines[:1]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    # getopt's own messages start with argv[0], the others with the name.
    assert lines[0].split(": ", 1)[0].endswith("porttrace"), lines[0]
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert r.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--bogus"], "--bogus"),
        (["-p", "abc"], "abc"),
        (["-p", "0"], "'0'"),
        (["-P", "70000"], "70000"),
        (["-d", "-1"], "-1"),
        (["-o", "/tmp/x.jsonl", "--rotate-size", "1 "], "invalid --rotate-size '1 '"),
        # 17179869185 * 2^30 wraps around to 2^30 in 64 bits; 2^24+1 MiB is
        # one MiB above 16 TiB, where 2^40 bytes would still be accepted.
        (["-o", "/tmp/x.jsonl", "--rotate-size", "17179869185G"], "invalid --rotate-size '17179869185G'"),
        (["-o", "/tmp/x.jsonl", "--rotate-size", "1048577M"], "invalid --rotate-size '1048577M'"),
    ],
    ids=["unknown-option", "pid-not-a-number", "pid-zero", "port-too-big", "negative-duration",
         "rotate-size-trailing-space", "rotate-size-wraps-around", "rotate-size-above-1T"],
)
def test_bad_arguments_exit_2(args, needle):
    r = run([PORTTRACE, *args])
    assert_one_line_error(r, needle)
    assert r.returncode == 2


def test_unwritable_output_file():
    path = "/nonexistent-dir/x.log"
    r = run([PORTTRACE, "-o", path, "-d", "1"])
    assert_one_line_error(r, path)


def test_record_raw_refuses_a_file_that_is_no_recording(tmp_path):
    """--record-raw appends only to a raw recording (its PTRAWREC magic and
    version first): a JSON log given by mistake is named, left as it was,
    and nothing is attached. An empty file becomes a recording."""
    log = tmp_path / "events.jsonl"
    log.write_text('{"type":"header","schema":1}\n')
    r = run([PORTTRACE, "--record-raw", str(log), "-d", "1"])
    assert_one_line_error(r, str(log), "not a porttrace raw recording")
    assert r.returncode == 1
    assert log.read_text() == '{"type":"header","schema":1}\n'
    raw = tmp_path / "raw.bin"
    r = run([PORTTRACE, "--record-raw", str(raw), "-d", "0.2", "-o", str(tmp_path / "o.jsonl")])
    assert r.returncode == 0, r.stderr
    assert raw.read_bytes()[:12] == b"PTRAWREC\x02\x00\x00\x00"


def test_without_privileges():
    r = run([*UNPRIVILEGED, PORTTRACE, "-d", "1"])
    assert_one_line_error(r, "CAP_BPF")


def test_kernel_without_btf():
    r = run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none /sys/kernel/btf && exec {PORTTRACE} -d 1"])
    assert_one_line_error(r, "BTF")


# ---- filters ---------------------------------------------------------------

MIX_SERVER = r'''
step()
ls = [listener("127.0.0.1", 8080), listener("::1", 8081)]
report(ports=[port(s) for s in ls])
step()
'''

# Something of everything, from one process: TCP and UDP, IPv4 and IPv6,
# ports in and out of the range, successes and failures.
MIX_CLIENT = r'''
step()
def tcp(addr, p):
    c = socket.socket(family_of(addr), socket.SOCK_STREAM)
    return c, errname(c.connect_ex((addr, p)))
held, r = [], {}
for i in range(4):                       # the 4 ports of the range
    c, err = tcp("127.0.0.1", 8080)
    assert err is None, err
    held.append(c)
c, r["exhausted"] = tcp("127.0.0.1", 8080)   # alloc-fail
c.close()
c, err = tcp("::1", 8081)
assert err is None, err
held.append(c)
for addr in ("127.0.0.1", "::1"):
    u = socket.socket(family_of(addr), socket.SOCK_DGRAM)     # UDP autobind
    u.sendto(b"x", (addr, 9999))
    held.append(u)
b = socket.socket()                      # fixed port, out of the range
b.bind(("127.0.0.1", 5000))
held.append(b)
f = socket.socket()
try:
    f.bind(("127.0.0.1", 8080))          # bind-fail
except OSError as e:
    r["in_use"] = errname(e.errno)
f.close()
report(**r)
step()
for s in held:
    s.close()
report(done=True)
'''


# name: (arguments, the events it must let through, one event that must be
# among them so that the test means something). Arguments and predicates
# get the client's pid. A filter must show exactly the events of an
# unfiltered trace of the same run that satisfy its predicate.
FILTERS = {
    "pid": (lambda c: ["-p", str(c)],
            lambda e, c: e.get("pid") == c,
            lambda e: e.get("event") == "alloc-fail"),
    "port": (lambda c: ["-P", "8080"],
             lambda e, c: 8080 in (e["lport"], e["rport"]),
             lambda e: e.get("event") == "bind-fail"),
    "ipv4": (lambda c: ["-4"],
             lambda e, c: e["family"] == 4,
             lambda e: e.get("event") == "alloc" and e["proto"] == "udp"),
    "ipv6": (lambda c: ["-6"],
             lambda e, c: e["family"] == 6,
             lambda e: e.get("event") == "alloc" and e["proto"] == "udp"),
    "tcp": (lambda c: ["--tcp"],
            lambda e, c: e["proto"] == "tcp",
            lambda e: e.get("event") == "listen"),
    "udp": (lambda c: ["--udp"],
            lambda e, c: e["proto"] == "udp",
            lambda e: e.get("event") == "release"),
    "failures": (lambda c: ["--failures"],
                 lambda e, c: e.get("event") in ("bind-fail", "alloc-fail"),
                 lambda e: e.get("event") == "bind-fail"),
    # Events of sockets whose local port is in the range, or is still to be
    # picked from it (an active open, an autobind that found none free).
    "ephemeral": (lambda c: ["--ephemeral"],
                  lambda e, c: e["lport"] is None or in_range(e["lport"]),
                  lambda e: e.get("event") == "alloc" and e["proto"] == "tcp"),
}


def signature(e):
    """What identifies one event across two porttrace instances watching
    the same sockets (each reads its own clock)."""
    keys = ("type", "event", "cookie", "netns", "pid", "proto", "family", "laddr", "lport", "raddr", "rport",
            "old", "new", "req_port", "err", "reason")
    return tuple(e.get(k) for k in keys)


@pytest.mark.parametrize("name", list(FILTERS))
def test_filter(porttrace, netns, workload, name):
    args, wanted, must_show = FILTERS[name]
    server = workload(netns, MIX_SERVER)
    client = workload(netns, MIX_CLIENT)
    c = client.pid
    ref = porttrace()
    filtered = porttrace(*args(c))
    server.go()
    assert server.expect()["ports"] == [8080, 8081]
    client.go()
    assert client.expect() == {"exhausted": "EADDRNOTAVAIL", "in_use": "EADDRINUSE", "pid": c}
    client.go()
    assert client.expect()["done"]
    server.go()
    assert client.finish() == 0 and server.finish() == 0
    ref.stop()
    filtered.stop()

    everything = ref.events(netns)
    expected = [e for e in everything if wanted(e, c)]
    assert [e for e in expected if must_show(e)], fmt_events(everything)
    # Events of these sockets, whatever netns they claim.
    shown = filtered.events(netns, cookies={e["cookie"] for e in everything})
    sig = signature
    if name == "failures":
        # The decoder gives a no-port connect()'s alloc-fail the source
        # address its SYN_SENT -> CLOSE transition had; --failures passes
        # no transition, so there it says what was asked.
        sig = lambda e: signature({**e, "laddr": None} if e.get("event") == "alloc-fail" else e)
    extra = collections.Counter(map(sig, shown)) - collections.Counter(map(sig, expected))
    missing = collections.Counter(map(sig, expected)) - collections.Counter(map(sig, shown))
    by_sig = {sig(e): e for e in everything + shown}
    assert not extra and not missing, (
        f"{args(c)} let through {sum(extra.values())} events it should not have:\n"
        f"{fmt_events([by_sig[k] for k in extra.elements()])}\n"
        f"and dropped {sum(missing.values())} it should have shown:\n"
        f"{fmt_events([by_sig[k] for k in missing.elements()])}"
    )
