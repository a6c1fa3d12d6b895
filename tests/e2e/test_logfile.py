# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""The -o log file (issue 6): what real hosts do to files and processes
(a full disk, an overflowing ring, signals, kill -9, a second porttrace,
symlinks, rotation, logrotate's SIGHUP), and reading bad logs back."""
import gzip
import json
import os
import re
import signal
import subprocess
import time
import zlib

import pytest

from conftest import PORTLOAD, PORTTRACE, TIMEOUT, Porttrace, check_call, run

# The port of the tests' servers: with -P SERVER_PORT, a log holds only the
# test's own traffic (what else runs on the host cannot fill a tiny disk).
SERVER_PORT = 18080


# ---- helpers ---------------------------------------------------------------


class LogRun(Porttrace):
    """The conftest runner, writing to a path of the test's choosing (on a
    tiny tmpfs, or where rotated pieces land) instead of its own."""

    def __init__(self, path, errpath, args, wait_header=True):
        super().__init__(None, args, path=path, errpath=errpath, wait_header=wait_header)

    def cleanup(self):
        self.kill()


@pytest.fixture
def logrun(tmp_path):
    """logrun(path, *args, wait_header=True) -> a running LogRun, once its
    header is on disk unless told not to wait; killed at teardown."""
    started = []

    def start(path, *args, wait_header=True):
        pt = LogRun(str(path), str(tmp_path / f"stderr-{len(started)}"), args, wait_header)
        started.append(pt)
        return pt

    yield start
    for pt in started:
        pt.cleanup()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs, unmounted at teardown whatever happens."""
    d = tmp_path / "tiny"
    d.mkdir()
    check_call(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(d)])
    try:
        yield d
    finally:
        if run(["umount", str(d)]).returncode:
            run(["umount", "-l", str(d)])


class Server:
    """portload --server in a namespace, until teardown."""

    def __init__(self, ns, port=SERVER_PORT):
        self.proc = subprocess.Popen(
            ns.cmd(PORTLOAD, "--server", "-c", "2", "-q", "-d", "60", "127.0.0.1", str(port)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("listening"), f"portload --server: {line!r} {self.proc.stderr.read() if not line else ''}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def server(netns):
    s = Server(netns)
    yield s
    s.stop()


def portload(ns, *args, port=SERVER_PORT):
    """portload ARGS 127.0.0.1 port inside ns, to its end: (pid, summary)."""
    p = subprocess.Popen(ns.cmd(PORTLOAD, "--json", "-q", *args, "127.0.0.1", str(port)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=TIMEOUT * 2)
    assert p.returncode == 0, f"portload {args}: {err}"
    return p.pid, json.loads(out.strip().splitlines()[-1])


def read_lines(path, opener=open):
    """(complete lines, unterminated rest) of a log."""
    with opener(path, "rt") as f:
        data = f.read()
    *lines, rest = data.split("\n")
    return lines, rest


def parse_all(lines, where):
    """Every line must be one JSON object."""
    out = []
    for i, l in enumerate(lines, 1):
        try:
            rec = json.loads(l)
        except ValueError as e:
            pytest.fail(f"{where}:{i} is not JSON ({e}): {l[:200]!r}")
        assert isinstance(rec, dict), f"{where}:{i}: {l[:200]!r}"
        out.append(rec)
    return out


def complete_log(path):
    """The records of a log that was closed cleanly: header first, trailer
    last, nothing unterminated, and no other header or trailer between."""
    lines, rest = read_lines(path)
    assert rest == "", f"{path} ends in an unterminated line: {rest[:200]!r}"
    recs = parse_all(lines, path)
    assert recs and recs[0]["type"] == "header" and recs[0]["schema"] == 2, recs[:1]
    assert recs[-1]["type"] == "trailer", f"{path} does not end with a trailer: {lines[-1][:200]!r}"
    assert [r["type"] for r in recs[1:-1]].count("trailer") == 0
    return recs


def counts_by_type(recs):
    """What the trailer's "events" should say for these records."""
    n = {}
    for r in recs:
        key = {"state": "state", "lost": "lost"}.get(r["type"], r.get("event"))
        if r["type"] in ("state", "lost", "port"):
            n[key] = n.get(key, 0) + 1
    return n


def check_trailer_counts(recs):
    trailer = recs[-1]
    counted = counts_by_type(recs[1:-1])
    assert {k: v for k, v in trailer["events"].items() if v} == counted, trailer
    assert trailer["write_lost"] == 0 and trailer["bad_records"] == 0, trailer


def of_ns(recs, ns, **match):
    return [r for r in recs if r.get("netns") == ns.inode and all(r.get(k) == v for k, v in match.items())]


def wait_for(pred, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def read_text(path):
    with open(path) as f:
        return f.read()


def stderr_now(pt):
    return read_text(pt.errpath)


def timeline(*args):
    return run([PORTTRACE, "timeline", *args])


def fill(d):
    """Fill the file system of d to the last block; returns the filler."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28, e  # ENOSPC
    finally:
        os.close(fd)
    return filler


def full_msg(path):
    return f"porttrace: writing {path}: No space left on device; counting the events lost until it can write again"


def again_re(path):
    return re.compile(rf"^porttrace: writing {re.escape(str(path))} again after (\d+) events were lost$", re.M)


# ---- 1. the disk fills -------------------------------------------------------


def test_disk_full_is_said_once_counted_and_survived(tiny_fs, logrun, netns, server):
    path = str(tiny_fs / "log.jsonl")
    pt = logrun(path, "-P", str(SERVER_PORT))
    marks = {}

    # Written within a second or so, as long as there is room.
    marks["ok"] = time.monotonic_ns()
    portload(netns, "-n", "3", "--close", "rst")
    # All three autobinds on disk before it fills: they may span two flushes.
    wait_for(lambda: sum('"event":"alloc"' in line and f'"netns":{netns.inode},' in line
                         for line in read_text(path).splitlines()) == 3,
             "the three autobinds flushed to the log", timeout=5)

    filler = fill(tiny_fs)

    full = full_msg(path)
    marks["full"] = time.monotonic_ns()
    portload(netns, "-n", "3", "--close", "rst")
    wait_for(lambda: full in stderr_now(pt), "disk-full message on stderr")
    # Still full, more events, more failed flushes: nothing more said.
    portload(netns, "-n", "3", "--close", "rst")
    time.sleep(1.5)
    assert pt.proc.poll() is None, "porttrace stopped when the disk filled: " + stderr_now(pt)

    filler.unlink()
    marks["again"] = time.monotonic_ns()
    portload(netns, "-n", "3", "--close", "rst")
    again = wait_for(lambda: again_re(path).search(stderr_now(pt)), "writing-again message on stderr")
    lost_said = int(again.group(1))

    pt.stop()
    msgs = pt.stderr.splitlines()
    assert msgs.count(full) == 1, pt.stderr
    assert len(msgs) == 3, f"expected the disk-full line, the writing-again line and the tally:\n{pt.stderr}"
    written, kernel_lost, write_lost = pt.tally()

    recs = complete_log(path)
    trailer = recs[-1]
    events = recs[1:-1]
    assert lost_said > 0
    assert trailer["write_lost"] == write_lost == lost_said, (trailer, pt.tally(), lost_said)
    assert written == len(events), (written, len(events))
    # The trailer counts every event porttrace saw; those lost on write are
    # the difference with what is in the file.
    assert sum(trailer["events"].values()) - len(events) == write_lost == trailer["write_lost"], trailer
    assert kernel_lost == trailer["kernel_lost"] == 0

    # Before the disk filled and after space came back: every connection
    # (one autobind each) is in the file; of the ones made while the disk
    # was full, none (their whole flushes failed and were cut back).
    allocs = [r["t_ns"] for r in of_ns(events, netns, type="port", event="alloc")]
    assert sum(marks["ok"] <= t < marks["full"] for t in allocs) == 3, allocs
    assert sum(t >= marks["again"] for t in allocs) == 3, allocs
    assert sum(marks["full"] <= t < marks["again"] for t in allocs) == 0, allocs

    # Read back offline, the log says what it misses, and is still read.
    for cmd in ("timeline", "exhaustion"):
        r = run([PORTTRACE, cmd, path])
        assert r.returncode == 0, r.stderr
        assert f"could not write {write_lost} of its events (trailer's write_lost)" in r.stderr, r.stderr


def test_disk_full_at_start_the_file_still_starts_with_a_header(tiny_fs, logrun, netns, server):
    """A service restarted on a full /var/log: the header cannot be written
    at first; once there is room, the file must still start with it."""
    filler = fill(tiny_fs)
    path = tiny_fs / "log.jsonl"
    pt = logrun(path, "-P", str(SERVER_PORT), wait_header=False)
    wait_for(lambda: full_msg(path) in stderr_now(pt), "disk-full message on stderr")
    assert pt.proc.poll() is None, stderr_now(pt)
    filler.unlink()
    portload(netns, "-n", "2", "--close", "rst")
    wait_for(lambda: again_re(path).search(stderr_now(pt)), "writing-again message on stderr")
    pt.stop()
    recs = complete_log(str(path))
    assert len(of_ns(recs, netns, type="port", event="alloc")) == 2


# ---- 2. the ring overflows ---------------------------------------------------


@pytest.mark.filterwarnings("ignore:porttrace.*lost")
def test_ring_overflow_is_a_lost_record_in_order(porttrace, netns, server):
    pt = porttrace("--ring-size", "1")
    pt.proc.send_signal(signal.SIGSTOP)
    try:
        # Each connection is several records on two sockets: far more than
        # 1 MiB while nobody reads.
        _, summary = portload(netns, "-c", "2", "-n", "30000", "--close", "rst")
    finally:
        pt.proc.send_signal(signal.SIGCONT)
    assert summary["ok"] > 20000, summary
    time.sleep(0.5)
    pt.stop()
    written, kernel_lost, write_lost = pt.tally()

    recs = complete_log(pt.path)
    trailer = recs[-1]
    losts = [(i, r) for i, r in enumerate(recs) if r["type"] == "lost"]
    assert losts, "no lost record in the stream"
    for i, r in losts:
        assert r["lost"] > 0, r
        prev = recs[i - 1]
        assert "t_ns" not in prev or prev["t_ns"] <= r["t_ns"], f"lost record out of order:\n{prev}\n{r}"
    assert sum(r["lost"] for _, r in losts) == trailer["kernel_lost"] == kernel_lost > 0, (trailer, pt.tally())
    assert losts[-1][1]["lost_total"] == kernel_lost
    assert trailer["events"]["lost"] == len(losts)
    assert written == len(recs) - 2 and write_lost == trailer["write_lost"] == 0


def broken_chains(events):
    """Sockets whose transitions do not chain: each socket's first
    transition leaves CLOSE (LISTEN for an accepted child), and each next
    one leaves the state the one before entered. A transition lost, written
    twice, or written under another socket's cookie breaks a chain."""
    chains = {}
    for e in events:
        if e["type"] == "state" and e["cookie"]:
            chains.setdefault(e["cookie"], []).append((e["old"], e["new"]))
    broken = {}
    for cookie, chain in chains.items():
        if chain[0][0] not in ("CLOSE", "LISTEN") or any(
                b[0] != a[1] for a, b in zip(chain, chain[1:])):
            broken[cookie] = chain
    return len(chains), broken


def test_fin_storm_loses_nothing_and_every_socket_chains(porttrace, netns, server):
    """Connections closed with FIN as fast as two clients go: the receive
    softirq that an interrupt's exit runs completes other sockets' FIN
    handshakes on a CPU where the state program is running in process
    context (connect(), close()), and the kernel skips a tracing program
    that fires on a CPU where it is already running. A second state program
    takes what the first skipped, exactly once."""
    # The time-wait sockets of a FIN storm need more than RANGE's 4 ports.
    check_call(netns.cmd("sysctl", "-qw", "net.ipv4.ip_local_port_range=32768 60999"))
    # A ring large enough that a reader starved by a busy machine loses
    # nothing for want of space: the kernel's skips are what is tested.
    pt = porttrace("--ring-size", "64")
    _, summary = portload(netns, "-c", "4", "-d", "6", "--close", "fin")
    pt.stop()
    assert summary["ok"] > 1000, summary
    kernel_lost = pt.tally()[1]
    assert kernel_lost == 0, f"{kernel_lost} records lost in the kernel"
    sockets, broken = broken_chains(json.loads(l) for l in pt.events(netns, raw=True)
                                    if '"type":"state"' in l)
    assert sockets >= 2 * summary["ok"], (sockets, summary)
    assert not broken, f"{len(broken)} of {sockets} sockets do not chain, e.g. " + \
        "; ".join(f"{c}: {ch}" for c, ch in list(broken.items())[:3])


# ---- 3. every way of stopping ------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGHUP", "duration"])
def test_stopping_leaves_a_trailer(porttrace, netns, server, how):
    pt = porttrace(*(["-d", "1"] if how == "duration" else []))
    if how == "SIGHUP":
        # logrotate without moving the file: porttrace reopens the same file
        # and goes on; SIGINT ends it.
        pt.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert pt.proc.poll() is None, "SIGHUP stopped porttrace"
    portload(netns, "-n", "2", "--close", "rst")
    if how == "duration":
        try:
            pt.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("porttrace -d 1 did not stop by itself")
    pt.stop(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    # Nothing on stderr but the tally: no error, no warning.
    assert len(pt.stderr.splitlines()) == 1, pt.stderr

    recs = complete_log(pt.path)
    check_trailer_counts(recs)
    assert len(of_ns(recs, netns, type="port", event="alloc")) == 2
    assert pt.tally()[0] == sum(1 for r in recs if r["type"] in ("state", "port", "lost"))


def test_kill_9_leaves_a_readable_log(porttrace, netns, server):
    pt = porttrace()
    pid, _ = portload(netns, "-n", "2", "--close", "rst")
    # Flushed at least every second: what is older than that is on disk.
    time.sleep(1.5)
    pt.kill()
    assert pt.proc.returncode == -signal.SIGKILL

    lines, rest = read_lines(pt.path)
    recs = parse_all(lines, pt.path)  # an unterminated rest is acceptable
    assert recs[0]["type"] == "header"
    assert "trailer" not in [r["type"] for r in recs]
    assert len(of_ns(recs, netns, type="port", event="alloc", pid=pid)) == 2

    r = timeline("--format", "json", "--pid", str(pid), pt.path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" or rest, r.stderr
    (tl,) = [json.loads(l) for l in r.stdout.splitlines()]
    assert (tl["pid"], tl["comm"], tl["taken"]) == (pid, "portload", 2), tl


def test_appending_after_an_unterminated_line_keeps_the_header_whole(tmp_path, logrun):
    """kill -9 (or a crash) can leave a last line without its newline; the
    next porttrace appending to the file must not glue its header to it."""
    path = tmp_path / "crashed.jsonl"
    partial = '{"type":"port","t_ns":12'
    path.write_text(partial)
    pt = logrun(path, "-d", "0.3", "-P", str(SERVER_PORT), wait_header=False)
    pt.proc.wait(timeout=TIMEOUT)
    pt.stop()  # ended by itself: checks its exit status and tally
    lines, rest = read_lines(path)
    assert rest == ""
    # The unterminated fragment may stay as a bad line of its own (or go);
    # everything else is porttrace's own, whole.
    own = lines[1:] if lines[0] == partial else lines
    recs = parse_all(own, path)
    # Whatever else ran on the host may have put events in between.
    assert (recs[0]["type"], recs[-1]["type"]) == ("header", "trailer"), lines
    r = timeline("--format", "json", str(path))
    assert r.returncode == 0
    assert r.stderr in ("", f"porttrace: warning: {path}:1: malformed line, skipped\n"), r.stderr


# ---- 4. one file, one porttrace ----------------------------------------------


def test_second_porttrace_on_the_same_file_is_refused(porttrace, netns, server):
    first = porttrace()
    second = run([PORTTRACE, "--format", "json", "-o", first.path], timeout=TIMEOUT)
    assert second.returncode != 0
    msg = second.stderr.strip()
    assert "\n" not in msg and first.path in msg and "is being written by another porttrace" in msg, second.stderr
    assert second.stdout == ""

    # The first one is unharmed: it still traces, and closes its file.
    assert first.proc.poll() is None
    portload(netns, "-n", "2", "--close", "rst")
    first.stop()
    recs = complete_log(first.path)
    assert [r["type"] for r in recs].count("header") == 1, "the second porttrace wrote into the file"
    check_trailer_counts(recs)
    assert len(of_ns(recs, netns, type="port", event="alloc")) == 2


# ---- 5. how the file is created ----------------------------------------------


def test_new_file_mode_0640(tmp_path, logrun):
    path = tmp_path / "new.jsonl"
    old = os.umask(0)  # what porttrace asks for, not what a umask leaves
    try:
        pt = logrun(path, "-d", "0.2")
    finally:
        os.umask(old)
    assert pt.proc.wait(timeout=TIMEOUT) == 0
    assert os.stat(path).st_mode & 0o7777 == 0o640, oct(os.stat(path).st_mode)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_symlink_at_the_path_is_refused(tmp_path, dangling):
    target = tmp_path / "precious"
    if not dangling:
        target.write_text("precious data\n")
        os.chmod(target, 0o600)
        before = os.stat(target)
    link = tmp_path / "log.jsonl"
    os.symlink(target, link)

    r = run([PORTTRACE, "--format", "json", "-o", str(link), "-d", "1"])
    assert r.returncode != 0
    msg = r.stderr.strip()
    assert "\n" not in msg and str(link) in msg and "symbolic link" in msg, r.stderr
    assert os.path.islink(link)
    if dangling:
        assert not os.path.lexists(target), "porttrace created the symlink's target"
    else:
        after = os.stat(target)
        assert target.read_text() == "precious data\n"
        assert (after.st_mode, after.st_size, after.st_mtime_ns) == (before.st_mode, before.st_size, before.st_mtime_ns)


# ---- 6. rotation and logrotate -----------------------------------------------


def test_rotation_keeps_n_gzipped_pieces_each_with_a_header(tmp_path, logrun, netns, server):
    path = tmp_path / "rot.jsonl"
    old = os.umask(0)
    try:
        pt = logrun(path, "-P", str(SERVER_PORT), "--rotate-size", "4K", "--rotate-keep", "2")
    finally:
        os.umask(old)
    # Rotation is checked at each flush (every second): four seconds of
    # steady traffic, tens of KiB a second, rotate at least three times.
    pid, summary = portload(netns, "-r", "40", "-d", "4.5", "--close", "rst")
    pt.stop()
    assert summary["failed"] == 0, summary

    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rot.jsonl"))
    assert names == ["rot.jsonl", "rot.jsonl.1.gz", "rot.jsonl.2.gz"], names
    for name in names[1:]:
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640, name
        lines, rest = read_lines(tmp_path / name, gzip.open)
        assert rest == "", f"{name} ends in an unterminated line"
        recs = parse_all(lines, name)
        assert recs[0]["type"] == "header", f"{name} does not start with a header: {lines[0][:200]}"
        assert "trailer" not in [r["type"] for r in recs[1:]], name
        assert os.path.getsize(tmp_path / name) > 0
    last = complete_log(str(path))

    # The timeline reads every piece, oldest first, without a warning: it
    # counts exactly the autobinds of the pieces still kept.
    allocs = 0
    for name in reversed(names):
        lines, _ = read_lines(tmp_path / name, gzip.open if name.endswith(".gz") else open)
        allocs += sum(1 for r in parse_all(lines, name) if r.get("event") == "alloc" and r.get("pid") == pid)
    r = timeline("--format", "json", "--pid", str(pid), str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (tl,) = [json.loads(l) for l in r.stdout.splitlines()]
    assert tl["taken"] == allocs and allocs > len(of_ns(last, netns, type="port", event="alloc")), (tl["taken"], allocs)


def test_sighup_after_move_starts_a_new_file(porttrace, netns, server):
    pt = porttrace()
    moved = pt.path + ".old"
    try:
        portload(netns, "-n", "2", "--close", "rst")
        time.sleep(0.3)
        os.rename(pt.path, moved)
        pt.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(pt.path) and "\n" in read_text(pt.path), "new file with a header")
        portload(netns, "-n", "3", "--close", "rst")
        pt.stop()
        assert len(pt.stderr.splitlines()) == 1, pt.stderr

        old_lines, rest = read_lines(moved)
        assert rest == ""
        old = parse_all(old_lines, moved)
        assert old[0]["type"] == "header" and "trailer" not in [r["type"] for r in old], old_lines[-1]
        new = complete_log(pt.path)
        assert new[0]["start_mono_ns"] == old[0]["start_mono_ns"]  # the same run
        # Each event once, in the file it was written to.
        assert len(of_ns(old, netns, type="port", event="alloc")) == 2
        assert len(of_ns(new, netns, type="port", event="alloc")) == 3
        assert new[-1]["events"]["alloc"] >= 5
    finally:
        if os.path.exists(moved):
            os.unlink(moved)


def test_rotation_after_the_live_file_is_removed_keeps_every_piece(tmp_path, logrun, netns, server):
    """rm of the live file (to free a full disk) or a logrotate without
    SIGHUP: porttrace must start the file anew, not shift (and so drop) a
    rotated piece each second while writing to a file nobody can see."""
    path = tmp_path / "rm.jsonl"
    pt = logrun(path, "-P", str(SERVER_PORT), "--rotate-size", "8K", "--rotate-keep", "5")
    gz = [f"rm.jsonl.{i}.gz" for i in range(1, 6)]

    def pieces():
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rm.jsonl."))

    # Tens of KiB a second: one rotation a second until the five are kept.
    load = subprocess.Popen(netns.cmd(PORTLOAD, "-q", "-r", "40", "-d", "10", "--close", "rst",
                                      "127.0.0.1", str(SERVER_PORT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: pieces() == gz, "five rotated pieces")
    finally:
        load.kill()
        load.wait(timeout=TIMEOUT)
    # Once quiet, the last flush and rotation check are over: the live file
    # is under the limit, and the pieces are final.
    time.sleep(2.5)
    assert pieces() == gz, pieces()
    before = {name: (tmp_path / name).read_bytes() for name in gz}

    os.unlink(path)
    # Push the unlinked file over the limit, a connection (about 2.5 KiB)
    # at a time, so that the next file stays well under it.
    deadline = time.monotonic() + 6
    while not path.exists() and time.monotonic() < deadline:
        portload(netns, "-n", "1", "--close", "rst")
        time.sleep(0.3)

    def check_pieces():
        left = pieces()
        assert left == gz, f"rotated pieces after the live file was removed: {left}\n{stderr_now(pt)}"
        changed = [name for name in gz if (tmp_path / name).read_bytes() != before[name]]
        assert not changed, f"rotated pieces rewritten after the live file was removed: {changed}"

    check_pieces()
    assert path.exists(), "no new live file after the old one was removed: " + stderr_now(pt)
    wait_for(lambda: "\n" in read_text(path), "a header in the new live file")

    mark = time.monotonic_ns()
    portload(netns, "-n", "1", "--close", "rst")
    pt.stop()
    msgs = pt.stderr.splitlines()
    assert len(msgs) == 2 and msgs[0].startswith("porttrace: warning: ") and str(path) in msgs[0], pt.stderr

    new = complete_log(str(path))
    assert new[0]["start_mono_ns"] == pt.header["start_mono_ns"]  # the same run
    allocs = [r["t_ns"] for r in of_ns(new, netns, type="port", event="alloc")]
    assert sum(t >= mark for t in allocs) == 1, allocs
    check_pieces()


# ---- 7. reading bad logs -----------------------------------------------------


def test_timeline_reads_past_bad_lines(porttrace, netns, server, tmp_path):
    pt = porttrace()
    pid, _ = portload(netns, "-n", "2", "--close", "rst")
    pt.stop()
    lines = pt.lines()
    mine = [l for l in lines if f'"pid":{pid},' in l]
    assert len(mine) > 4

    newer = json.loads(lines[0])
    newer["schema"] = 99
    newer["something_new"] = {"nested": [1, 2]}
    # The log as written, less its trailer, with bad lines put in: garbage
    # right after the header, an unknown record type and a newer schema's
    # header in the middle of the workload's events, and the trailer cut in
    # half (no newline) at the end.
    cut = lines.index(mine[3])
    body = lines[:1] + ["this is not json {"] + lines[1:cut]
    body += ['{"type":"frobnicate","t_ns":1}', json.dumps(newer, separators=(",", ":"))]
    body += lines[cut:-1]
    garbage, unknown, schema, truncated = 2, cut + 2, cut + 3, len(body) + 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(body) + "\n" + lines[-1][: len(lines[-1]) // 2])

    r = timeline("--format", "json", "--pid", str(pid), str(bad))
    assert r.returncode == 0, r.stderr
    warned = r.stderr.splitlines()
    assert len(warned) == 4, r.stderr
    for line, no in zip(warned, [garbage, unknown, schema, truncated]):
        assert line.startswith(f"porttrace: warning: {bad}:{no}: "), f"expected a warning for line {no}:\n{r.stderr}"
    assert "newer" in warned[2] and "truncated" in warned[3], r.stderr

    (tl,) = [json.loads(l) for l in r.stdout.splitlines()]
    good = run([PORTTRACE, "timeline", "--format", "json", "--pid", str(pid), pt.path])
    assert good.returncode == 0 and good.stderr == ""
    assert tl == json.loads(good.stdout), "the good events read differently around bad lines"
    assert (tl["pid"], tl["taken"], [p["how"] for p in tl["ports"]]) == (pid, 2, ["connect-autobind"] * 2), tl


# ---- 7. promises kept (issue 21) -----------------------------------------------


class Tmpfs:
    """A tmpfs of size bytes at tmp_path/name, unmounted at the end."""

    def __init__(self, tmp_path, name, size):
        self.dir = tmp_path / name
        self.dir.mkdir()
        check_call(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(self.dir)])

    def umount(self):
        if run(["umount", str(self.dir)]).returncode:
            run(["umount", "-l", str(self.dir)])


def load(ns, *args):
    """portload in the background against the test's server."""
    return subprocess.Popen(ns.cmd(PORTLOAD, "-q", *args, "127.0.0.1", str(SERVER_PORT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_disk_full_at_start_under_load_header_comes_first(tmp_path, logrun, netns, server):
    """Hundreds of connections a second, a disk full from the start: when
    room returns, the buffer is full of events, and the header must still be
    the first line."""
    check_call(netns.cmd("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40999"))
    fs = Tmpfs(tmp_path, "full", "32m")
    try:
        filler = fill(fs.dir)
        path = fs.dir / "log.jsonl"
        pt = logrun(path, "-P", str(SERVER_PORT), wait_header=False)
        wait_for(lambda: full_msg(path) in stderr_now(pt), "disk-full message on stderr")
        lg = load(netns, "--close", "rst", "-c", "4", "-r", "1000", "-d", "3")
        time.sleep(1.5)
        filler.unlink()
        assert lg.wait(timeout=TIMEOUT) == 0, lg.stderr.read()
        pt.stop()
        recs = complete_log(str(path))
        assert [r["type"] for r in recs].count("header") == 1
        assert len(of_ns(recs, netns, type="port", event="alloc")) > 100, len(recs)
        assert pt.stderr.splitlines().count(full_msg(path)) == 1, pt.stderr
    finally:
        fs.umount()


def test_disk_full_is_said_once_per_full_disk_period(tmp_path, logrun, netns, server):
    """A disk with a little room: a large flush fails and is cut back, and a
    smaller one would fit in the room the cut freed, then the next large one
    fails again. That is one full-disk period: one message, no 'again'."""
    check_call(netns.cmd("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40999"))
    fs = Tmpfs(tmp_path, "full", "2m")
    try:
        filler = fill(fs.dir)
        os.truncate(filler, os.stat(filler).st_size - 64 * 1024)
        path = fs.dir / "log.jsonl"
        pt = logrun(path, "-P", str(SERVER_PORT))
        for rate, secs in (("400", "1.5"), ("4", "2.5"), ("400", "1.5"), ("4", "2.5")):
            assert load(netns, "--close", "rst", "-c", "2", "-r", rate, "-d", secs).wait(timeout=TIMEOUT) == 0
        pt.stop()
        msgs = pt.stderr.splitlines()
        assert msgs.count(full_msg(path)) == 1, pt.stderr
        assert not again_re(path).search(pt.stderr), pt.stderr
        written, _, write_lost = pt.tally()
        assert write_lost > 0 and written > 0, pt.stderr
        lines, rest = read_lines(path)
        assert rest == "" and parse_all(lines, path)[0]["type"] == "header"
    finally:
        fs.umount()


def test_stray_sighup_writes_no_second_header(porttrace, netns, server):
    """SIGHUP with the file where it was (a stray one, or logrotate's
    copytruncate): nothing new in the file, one header, one trailer."""
    pt = porttrace("-P", str(SERVER_PORT))
    portload(netns, "-n", "2", "--close", "rst")
    for _ in range(3):
        pt.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
    portload(netns, "-n", "2", "--close", "rst")
    pt.stop()
    recs = complete_log(pt.path)
    assert [r["type"] for r in recs].count("header") == 1, [r["type"] for r in recs]
    assert len(of_ns(recs, netns, type="port", event="alloc")) == 4
    assert len(pt.stderr.splitlines()) == 1, pt.stderr


@pytest.mark.parametrize("spelling", ["same", "dotdot", "hardlink"])
def test_same_file_for_output_and_record_raw_is_refused(tmp_path, spelling):
    path = tmp_path / "log.jsonl"
    other = {"same": path, "dotdot": tmp_path / "sub" / ".." / "log.jsonl",
             "hardlink": tmp_path / "link"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "hardlink":
        path.write_text("")
        os.chmod(path, 0o640)
        os.link(path, other)
    r = run([PORTTRACE, "--format", "json", "-o", str(path), "--record-raw", str(other), "-d", "1"])
    msgs = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(msgs) == 1, r.stderr
    assert "same file" in msgs[0] and "another porttrace" not in msgs[0], msgs
    assert os.stat(path).st_size == 0


@pytest.mark.parametrize("mode,owner,why", [
    (0o666, 65534, "owned by another user"),
    (0o640, 65534, "owned by another user"),
    (0o662, 0, "writable by group or others"),
    (0o660, 0, "writable by group or others"),
])
def test_unsafe_existing_log_is_refused(tmp_path, mode, owner, why):
    """A log someone else owns or may write is refused in one line, and left
    as it was."""
    path = tmp_path / "log.jsonl"
    path.write_text('{"type":"header","schema":1}\n')
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    before = os.stat(path)
    r = run([PORTTRACE, "--format", "json", "-o", str(path), "-d", "1"])
    msgs = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(msgs) == 1, r.stderr
    assert msgs[0].startswith(f"porttrace: refusing to write {path}: it is {why} (mode {mode:04o}, owner uid {owner})"), msgs
    after = os.stat(path)
    assert (after.st_mode, after.st_uid, after.st_size, after.st_mtime_ns) == \
        (before.st_mode, before.st_uid, before.st_size, before.st_mtime_ns)


LOST_LOG = [
    {"type": "header", "schema": 1, "porttrace": "0.1.0", "host": "h", "kernel": "k",
     "clock": "CLOCK_MONOTONIC", "start_mono_ns": 1000000000, "start_realtime_ns": 1700000000000000000,
     "ephemeral_range": [40000, 40003]},
    {"type": "port", "t_ns": 1100000000, "event": "alloc", "cpu": 0, "pid": 42, "tid": 42, "pstart_ns": 5,
     "comm": "curl", "cgroup": 1, "netns": 4026531840, "cookie": 7, "proto": "tcp", "family": 4,
     "laddr": "127.0.0.1", "lport": 40001, "raddr": "127.0.0.1", "rport": 80, "req_port": 0, "err": None,
     "latency_ns": 1000, "range": [40000, 40003], "ephemeral": True, "class": "registered", "flags": 65},
    {"type": "lost", "t_ns": 1200000000, "lost": 4, "lost_total": 4},
    {"type": "lost", "t_ns": 1250000000, "lost": 3, "lost_total": 7},
    {"type": "trailer", "t_ns": 1300000000, "events": {"state": 0, "alloc": 1, "lost": 2}, "kernel_lost": 7,
     "bad_records": 0, "write_lost": 0},
]


def test_loss_is_in_every_offline_output_format(tmp_path):
    """A log that lost 7 records: timeline and exhaustion, text and JSON,
    each say so."""
    path = tmp_path / "lost.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in LOST_LOG))
    out = {}
    for cmd in ("timeline", "exhaustion"):
        for fmt in ("text", "json"):
            r = run([PORTTRACE, cmd, "-f", fmt, str(path)])
            assert r.returncode == 0, r.stderr
            out[cmd, fmt] = r.stdout
    assert out["timeline", "text"].startswith("note: 7 records were lost in the kernel"), out
    recs = [json.loads(l) for l in out["timeline", "json"].splitlines()]
    assert recs[0] == {"type": "lost", "lost_total": 7}, recs
    assert [r["type"] for r in recs[1:]] == ["timeline"], recs
    assert ", 7 lost;" in out["exhaustion", "text"].splitlines()[0], out
    assert json.loads(out["exhaustion", "json"])["lost"] == 7, out


@pytest.mark.parametrize("cmd", ["timeline", "exhaustion"])
def test_gzip_piece_of_newlines_is_refused(tmp_path, cmd):
    """A rotated piece that is 64 MiB of newlines in 64 KiB of gzip (a
    porttrace log compresses 18-28 times): refused in one line, not read
    line by line for seconds. The newer pieces were not reached: exit 1."""
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in LOST_LOG))
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\n" * (1 << 20)
    with open(tmp_path / "log.jsonl.1.gz", "wb") as f:
        for _ in range(64):
            f.write(z.compress(chunk))
        f.write(z.flush())
    r = run([PORTTRACE, cmd, str(path)])
    assert r.returncode == 1, r
    assert r.stderr.splitlines() == [
        f"porttrace: {path}.1.gz inflates more than 100-fold, as no porttrace log does; refusing it"], r.stderr


def test_blank_lines_are_no_records_and_no_warnings(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("\n\n".join(json.dumps(r) for r in LOST_LOG) + "\n \n\t\n")
    r = run([PORTTRACE, "timeline", str(path)])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "PID 42 (curl)" in r.stdout
