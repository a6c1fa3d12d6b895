# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Names chosen by an attacker (issue 21): any local user names a process.
No control byte, terminal escape or byte that is not UTF-8 reaches a person's
screen through any human-readable output, and JSON keeps every byte."""
import json
import re
import subprocess
import time

from conftest import PORTTRACE, PRELUDE, TIMEOUT, Porttrace, run

PORT = 18321
# Clear the screen, end the line and forge a report line, a C1 CSI (which
# terminals obey in UTF-8), a byte that is no UTF-8, a bell: 15 bytes, what
# the kernel keeps of a name.
HOSTILE = b"\x1b[2J\r\nPID 9\xc2\x9b\xff\x07"
SHOWN = r"\x1b[2J\x0d\x0aPID 9\xc2\x9b\xff\x07"
# Python's surrogateescape reading of the same bytes, as JSON carries them.
AS_JSON = HOSTILE.decode("utf-8", "surrogateescape")

HOLDER = PRELUDE + f'''
import ctypes
ctypes.CDLL(None).prctl(15, {HOSTILE!r}, 0, 0, 0)
report()
step()
s = listener("127.0.0.1", {PORT})
held = [socket.create_connection(("127.0.0.1", {PORT})) for _ in range(3)]
accepted = [s.accept()[0] for _ in held]
report()
step()
'''

# What must never reach a terminal: C0 controls but newline, DEL, C1.
UNSAFE = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def check_safe(what, data, shown=SHOWN, whole=True):
    """data (bytes) is valid UTF-8 without a control byte; the name is in it,
    escaped (whole, or as far as a cut line shows it)."""
    m = UNSAFE.search(data)
    assert not m, f"{what}: {m.group()!r} at {m.start()}: {data[max(0, m.start() - 80):m.start() + 40]!r}"
    text = data.decode("utf-8")  # raises on a byte that is not UTF-8
    assert (shown if whole else shown[:10]) in text, f"{what}: escaped name not found:\n{text}"
    # A real process's line may start "PID 9906": the forged one has no
    # digit after its 9.
    assert not re.search(r"^PID 9(?![0-9])", text, re.M), f"{what}: a forged line:\n{text}"


def popen(*args):
    return subprocess.Popen([PORTTRACE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_hostile_name_through_every_human_readable_output(netns, workload, porttrace):
    w = workload(netns, HOLDER)
    w.expect()
    pid = str(w.pid)
    log = porttrace("-p", pid)
    live = popen("-p", pid, "--timeline", "--exhaustion", "-d", "4")
    csv = popen("-p", pid, "--format", "csv", "-d", "4")
    # Both write their column header once every hook is attached.
    for p in (live, csv):
        assert p.stdout.readline(), p.stderr.read()
    top = popen("top", "--batch", "-d", "3")
    time.sleep(0.5)
    w.go()
    w.expect()
    outs = {}
    for name, p in (("live", live), ("csv", csv), ("top", top)):
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, (name, err)
        outs[name] = (out, err)
    log.stop()
    w.go()
    assert w.finish() == 0, w.stderr()

    out, err = outs["live"]
    check_safe("text events", out.split(b"\nPID ")[0])
    check_safe("live --timeline", out[out.index(b"\nPID "):])
    check_safe("live --exhaustion (stderr)", err)
    out, err = outs["csv"]
    # CSV doubles the quotes a name has; this one has none.
    check_safe("csv", out)
    out, err = outs["top"]
    check_safe("top --batch", out + err, whole=False)

    for cmd in (["timeline"], ["exhaustion"]):
        r = subprocess.run([PORTTRACE, *cmd, log.path], capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        check_safe(f"porttrace {cmd[0]} FILE", r.stdout + r.stderr)

    # JSON keeps the bytes: read back through surrogateescape they are the
    # name the kernel had.
    comms = {e["comm"] for e in log.events(netns) if e.get("pid") == w.pid}
    assert comms == {AS_JSON}, comms
    assert {c.encode("utf-8", "surrogateescape") for c in comms} == {HOSTILE}
    r = run([PORTTRACE, "timeline", "-f", "json", log.path])
    tl = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{"type":"timeline"')]
    assert [t["comm"] for t in tl if t["pid"] == w.pid] == [AS_JSON], r.stdout


UTF8_NAMES = ["café", "日本語", "ø\u202eevil"]


def test_utf8_names_pass_through_json_and_read_back(netns, workload, porttrace):
    """JSON writes UTF-8 names as UTF-8 (not \\u00c3\\u00a9, read as "cafÃ©"),
    and the offline reader gives the same names back."""
    code = PRELUDE + f'''
import ctypes
names = {[n.encode() for n in UTF8_NAMES]!r}
report()
step()
for i, n in enumerate(names):
    ctypes.CDLL(None).prctl(15, n, 0, 0, 0)
    s = listener("127.0.0.1", {PORT} + i)
    s.close()
report()
'''
    w = workload(netns, code)
    w.expect()
    pt = porttrace("-p", str(w.pid))
    w.go()
    w.expect()
    assert w.finish() == 0, w.stderr()
    pt.stop()
    raw = open(pt.path, "rb").read()
    for n in UTF8_NAMES:
        assert f'"comm":"{n}"'.encode() in raw, raw[-2000:]
    binds = [e["comm"] for e in pt.events(netns) if e.get("event") == "bind"]
    assert binds == UTF8_NAMES, binds
    # Read back: the timeline (by pid; one process) shows its first name as
    # it is, and the bidi override escaped.
    r = run([PORTTRACE, "timeline", "-f", "json", pt.path])
    tl = [json.loads(l) for l in r.stdout.splitlines() if f'"pid":{w.pid},' in l]
    assert [t["comm"] for t in tl] == ["café"], r.stdout
    r = subprocess.run([PORTTRACE, "timeline", pt.path], capture_output=True, timeout=TIMEOUT)
    assert f"PID {w.pid} (café)".encode() in r.stdout, r.stdout
