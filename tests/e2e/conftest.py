# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""
Shared machinery of the porttrace end-to-end tests.

Every test gets its own network namespace (loopback only, ephemeral range
RANGE) and drives small Python workloads inside it. porttrace traces the
whole host, so a test only looks at the events whose "netns" is the inode of
its own namespace (and at any other event of the same sockets): whatever
else runs on the machine cannot disturb it.

Fixtures:
  netns         a fresh namespace, deleted at teardown whatever happens
  porttrace     factory: porttrace(*args) starts porttrace --format json -o
                FILE and returns once the header (written after every hook
                is attached) is on disk; .stop() sends SIGINT and checks the
                exit status and the tally; .events(netns) parses the log
  workload      factory: workload(netns, code) runs /usr/bin/python3 inside
                the namespace with PRELUDE + code; the script reports JSON
                lines (report(...)) and waits for the test between steps
                (step()); it is killed at teardown if still running

Scenarios: SERVER and CLIENT, driven by start_server() and connection();
run_once() for scripts that need no step. Event helpers: select(), one(),
state_cookie(), transitions(), fmt_events() for assertion messages.
"""
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import textwrap
import threading
import time
import warnings

import pytest

PORTTRACE = os.environ.get("PORTTRACE", os.path.join(os.path.dirname(__file__), "../../build/porttrace"))
PORTLOAD = os.environ.get("PORTLOAD", os.path.join(os.path.dirname(__file__), "../../build/portload"))
PYTHON = "/usr/bin/python3"

# The ephemeral range of every test namespace: small enough to exhaust, and
# different from any host's default.
RANGE = (40000, 40003)

FAMILIES = pytest.mark.parametrize("addr,family", [("127.0.0.1", 4), ("::1", 6)], ids=["ipv4", "ipv6"])

# Drop every privilege, as an ordinary user would run things.
UNPRIVILEGED = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]

TIMEOUT = 15  # seconds; the longest any single wait of the suite may take

COOKIE_RE = re.compile(r'"cookie":(\d+),')
TALLY_RE = re.compile(r"^porttrace: (\d+) events written, (\d+) lost in the kernel, (\d+) lost on write$")

_counter = itertools.count()


# ---- privileges ------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a test that skips, whatever skipped it (a marker, a
    fixture, importorskip) or an expected failure, is reported failed."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") == "true" and (rep.skipped or hasattr(rep, "wasxfail")):
        rep.outcome = "failed"
        rep.longrepr = f"skipped or xfailed under CI=true: {rep.longrepr}"


@pytest.fixture(autouse=True)
def _require_root():
    """Everything here needs root. In CI a missing privilege is a failure,
    never a silent skip."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the end-to-end tests must run as root in CI")
        pytest.skip("the end-to-end tests need root")


def run(argv, timeout=TIMEOUT, stdout=subprocess.PIPE):
    """Run a short command to completion; output as text."""
    return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout)


def check_call(argv):
    r = run(argv)
    assert r.returncode == 0, f"{argv} failed ({r.returncode}): {r.stderr.strip()}"


# ---- network namespaces ----------------------------------------------------


class Netns:
    """A network namespace with only lo up and ephemeral range RANGE."""

    def __init__(self):
        self.name = f"pt-{os.getpid()}-{next(_counter)}"
        self.inode = None

    def create(self):
        check_call(["ip", "netns", "add", self.name])
        check_call(self.cmd("ip", "link", "set", "lo", "up"))
        check_call(self.cmd("sysctl", "-qw", f"net.ipv4.ip_local_port_range={RANGE[0]} {RANGE[1]}"))
        self.inode = os.stat(f"/run/netns/{self.name}").st_ino
        return self

    def cmd(self, *argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self):
        run(["ip", "netns", "del", self.name])


@pytest.fixture
def netns():
    ns = Netns()
    try:
        yield ns.create()
    finally:
        ns.delete()


# ---- porttrace -------------------------------------------------------------


def fmt_events(events):
    """Events as short lines, for assertion messages."""
    out = []
    for e in events:
        if e.get("type") == "state":
            what = f"{e['old']}->{e['new']}" + (f" ({e['reason']})" if "reason" in e else "")
        else:
            what = f"{e.get('event')} err={e.get('err')} req={e.get('req_port')} reason={e.get('reason')}"
        out.append(
            f"  {e.get('t_ns')} pid={e.get('pid')} netns={e.get('netns')} cookie={e.get('cookie')} {e.get('proto')}{e.get('family')} "
            f"{e.get('laddr')}:{e.get('lport')} > {e.get('raddr')}:{e.get('rport')} {what} flags={e.get('flags')}"
        )
    return "\n".join(out) or "  (no events)"


class Porttrace:
    """porttrace --format json -o FILE, started and stopped by the test."""

    def __init__(self, workdir, args, path=None, errpath=None, wait_header=True, prefix=()):
        """Writes to workdir/porttrace-N.jsonl, or to path (and its stderr to
        errpath) when the test chooses where the log goes. prefix runs it
        through another command (nsenter --net=...: its metrics port in a
        test namespace)."""
        self.path = path or os.path.join(workdir, f"porttrace-{next(_counter)}.jsonl")
        self.errpath = errpath or self.path + ".stderr"
        self.args = list(args)
        self.returncode = None
        self.stderr = ""
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen(
                [*prefix, PORTTRACE, "--format", "json", "-o", self.path, *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.header = self._wait_header() if wait_header else None

    def _wait_header(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                with open(self.path) as f:
                    line = f.readline()
            except FileNotFoundError:
                line = ""
            if line.endswith("\n"):
                header = json.loads(line)
                assert header["type"] == "header", f"first line is not the header: {line}"
                return header
            if self.proc.poll() is not None:
                pytest.fail(f"porttrace {self.args} exited ({self.proc.returncode}) before its header: {self._read_stderr()}")
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"porttrace {self.args}: no header after {TIMEOUT} s: {self._read_stderr()}")

    def _read_stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def stop(self, sig=signal.SIGINT):
        """Stop it as a user would: it must exit 0 with its tally line."""
        if self.returncode is None:
            self.proc.send_signal(sig)
            try:
                self.returncode = self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"porttrace did not stop within {TIMEOUT} s of {sig!r}")
            self.stderr = self._read_stderr()
            assert self.returncode == 0, f"porttrace exited {self.returncode}: {self.stderr}"
            lost = self.tally()[1]
            if lost:
                # Not a test failure by itself, but the likely cause of one.
                warnings.warn(f"porttrace {self.args} lost {lost} records in the kernel")
        return self

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)

    def tally(self):
        """(written, lost in the kernel, lost on write) from the last stderr line."""
        lines = [l for l in self.stderr.splitlines() if l.strip()]
        assert lines, "porttrace printed no tally line"
        m = TALLY_RE.match(lines[-1])
        assert m, f"last stderr line is not the tally: {lines[-1]!r}"
        return tuple(int(x) for x in m.groups())

    def _each_line(self):
        assert self.returncode is not None, "stop() porttrace before reading its log"
        with open(self.path) as f:
            for line in f:
                yield line.rstrip("\n")

    def lines(self):
        """Every line of the log."""
        return list(self._each_line())

    def events(self, ns, raw=False, cookies=()):
        """The events of namespace ns, in log order: those that say they are
        of ns, and any other event of the same sockets (same cookie, or one
        of cookies), so that an event with a wrong netns is seen, not
        silently dropped. The host may be busy: the log is streamed, and
        lines are picked by text before they are parsed."""
        needle = f'"netns":{ns.inode},'
        wanted = {str(c) for c in cookies}
        for l in self._each_line():
            if needle in l:
                m = COOKIE_RE.search(l)
                if m and m.group(1) != "0":
                    wanted.add(m.group(1))
        picked = []
        for l in self._each_line():
            if needle in l:
                picked.append(l)
            elif '"cookie":' in l:
                m = COOKIE_RE.search(l)
                if m and m.group(1) in wanted:
                    picked.append(l)
        return picked if raw else [json.loads(l) for l in picked]

    def cleanup(self):
        self.kill()
        for p in (self.path, self.errpath):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


@pytest.fixture
def porttrace():
    """porttrace(*args) -> a running Porttrace; stopped and removed at teardown."""
    started = []
    workdir = tempfile.mkdtemp(prefix="porttrace-e2e-")

    def start(*args, prefix=()):
        pt = Porttrace(workdir, args, prefix=prefix)
        started.append(pt)
        return pt

    yield start
    for pt in started:
        pt.cleanup()
    os.rmdir(workdir)


# ---- workloads -------------------------------------------------------------

PRELUDE = r'''
import errno, json, os, socket, struct, sys, time

def report(**kw):
    """One JSON line for the test; every report carries the pid."""
    kw.setdefault("pid", os.getpid())
    print(json.dumps(kw), flush=True)

def step():
    """Wait for the test to say go."""
    line = sys.stdin.readline()
    if not line:
        os._exit(3)
    return line.strip()

def port(s):
    return s.getsockname()[1]

def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET

def errname(e):
    return errno.errorcode.get(e) if e else None

def linger_rst(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

def listener(addr, p):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, p))
    s.listen(16)
    return s

def wait_eof(s):
    s.settimeout(10)
    while s.recv(4096):
        pass

def udp_autobind():
    """A UDP socket whose first sendto() asks the kernel for a port; the
    socket and the errno name that sendto() got (None: a port)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", ("127.0.0.1", 9999))
        return u, None
    except OSError as e:
        return u, errname(e.errno)
'''


class Workload:
    """PRELUDE + code run by /usr/bin/python3 inside a namespace (as an
    unprivileged user with user=True). Its pid is the pid porttrace sees:
    ip netns exec and setpriv exec, they do not fork."""

    def __init__(self, ns, code, unprivileged=False, python=PYTHON):
        script = PRELUDE + textwrap.dedent(code)
        argv = ns.cmd(*(UNPRIVILEGED if unprivileged else []), python, "-c", script)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.pid = self.proc.pid
        self._out = queue.Queue()
        self._err = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._out.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)
        put(None)

    def stderr(self):
        return "".join(l for l in self._err if l)

    def expect(self, timeout=TIMEOUT):
        """The next report, as a dict."""
        try:
            line = self._out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"workload {self.pid}: no report within {timeout} s; stderr: {self.stderr()}")
        if line is None:
            self.proc.wait(timeout=TIMEOUT)
            pytest.fail(f"workload {self.pid} exited ({self.proc.returncode}) without reporting: {self.stderr()}")
        return json.loads(line)

    def go(self, msg="go"):
        self.proc.stdin.write(msg + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=TIMEOUT):
        """Wait for a clean exit; returns the exit status."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"workload {self.pid} still running after {timeout} s; stderr: {self.stderr()}")
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def workload():
    """workload(netns, code, unprivileged=False) -> a running Workload;
    whatever is still running at teardown is killed."""
    started = []

    def start(ns, code, unprivileged=False, python=PYTHON):
        """python: another name for the interpreter (a symlink), so that
        the workload's comm is its own."""
        w = Workload(ns, code, unprivileged, python)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


# ---- common scenarios ------------------------------------------------------

SERVER = r'''
# Accepts one connection per "go" and reports the peer's port; with
# CLOSE_FIRST it closes its end at once, else after the client's FIN (or
# RST: err says which).
s = listener(ADDR, PORT)
report(port=port(s))
while step() == "go":
    c, peer = s.accept()
    report(peer=peer[1])
    err = None
    if not CLOSE_FIRST:
        try:
            wait_eof(c)
        except OSError as e:
            err = errname(e.errno)
    c.close()
    report(closed=True, err=err)
'''

CLIENT = r'''
# One connection, bound first to port BIND unless it is None: connect on
# "go", report the local port; on the next "go" close first, or (without
# CLOSE_FIRST) wait for the server's FIN and close; with RST close with
# SO_LINGER {1, 0}. With REBIND, then try to bind the same port again: the
# kernel's own word on whether the port is still held.
c = socket.socket(family_of(ADDR), socket.SOCK_STREAM)
if BIND is not None:
    c.bind((ADDR, BIND))
step()
c.connect((ADDR, PORT))
p = port(c)
report(port=p)
step()
if not CLOSE_FIRST:
    wait_eof(c)
if RST:
    linger_rst(c)
c.close()
rebind = None
if REBIND:
    time.sleep(0.2)
    again = socket.socket(family_of(ADDR), socket.SOCK_STREAM)
    try:
        again.bind((ADDR, p))
    except OSError as e:
        rebind = errname(e.errno)
report(closed=True, rebind=rebind)
'''


def scenario(code, **params):
    """code with its parameters set as globals (repr() of each value)."""
    return "".join(f"{k} = {v!r}\n" for k, v in params.items()) + code


def run_once(workload, ns, code, unprivileged=False, **params):
    """Run a workload that needs no step() to its end (its last report
    says done=True); returns its pid and its reports."""
    w = workload(ns, scenario(code, **params), unprivileged)
    reports = []
    while not (reports and reports[-1].get("done")):
        reports.append(w.expect())
    assert w.finish() == 0, w.stderr()
    return w.pid, reports


def start_server(workload, ns, addr="127.0.0.1", port=8080, close_first=False):
    """A SERVER listening on addr:port; returns it once it listens."""
    server = workload(ns, scenario(SERVER, ADDR=addr, PORT=port, CLOSE_FIRST=close_first))
    assert server.expect()["port"] == port
    return server


def connection(workload, ns, addr="127.0.0.1", port=8080, client_closes=True, server=None,
               bind=None, rst=False, rebind=False):
    """One TCP connection between two processes of ns, driven to its end
    (see CLIENT for bind, rst and rebind), with server (a start_server()
    one) or a new one. Returns (server, client, info): info["cport"] is the
    client's port as getsockname() saw it, info["sport"] the server's,
    info["rebind"] what binding the client's port again gave, info["server_err"]
    how the server's read of the client's close ended."""
    if server is None:
        server = start_server(workload, ns, addr, port, close_first=not client_closes)
    client = workload(ns, scenario(CLIENT, ADDR=addr, PORT=port, CLOSE_FIRST=client_closes, BIND=bind, RST=rst,
                                   REBIND=rebind))
    server.go()
    client.go()
    cport = client.expect()["port"]
    assert server.expect()["peer"] == cport
    if client_closes:
        client.go()
        done = client.expect()
        end = server.expect()
    else:
        end = server.expect()
        client.go()
        done = client.expect()
    assert done["closed"] and end["closed"]
    server.go("stop")
    assert server.finish() == 0, server.stderr()
    assert client.finish() == 0, client.stderr()
    return server, client, {"sport": port, "cport": cport, "rebind": done["rebind"], "server_err": end["err"]}


# ---- selecting events ------------------------------------------------------


def select(events, **match):
    """Events whose fields equal every value of match (type= / event= /
    lport= ...); a callable value is a predicate."""
    def ok(e):
        for k, v in match.items():
            if callable(v):
                if not v(e.get(k)):
                    return False
            elif e.get(k, KeyError) != v:
                return False
        return True

    return [e for e in events if ok(e)]


def transitions(events, cookie):
    """The state transitions of one socket, as (old, new) in log order."""
    return [(e["old"], e["new"]) for e in events if e["type"] == "state" and e["cookie"] == cookie]


def in_range(port):
    """Is port one of the test namespaces' ephemeral range?"""
    return port is not None and RANGE[0] <= port <= RANGE[1]


def one(events, **match):
    """The single event matching; fails with the whole list otherwise."""
    found = select(events, **match)
    assert len(found) == 1, f"expected exactly one event {match}, found {len(found)} in:\n{fmt_events(events)}"
    return found[0]


def state_cookie(events, **match):
    """The cookie of the socket with a state event matching."""
    cookies = {e["cookie"] for e in select(events, type="state", **match)}
    assert len(cookies) == 1, f"expected one socket with {match}, found {cookies} in:\n{fmt_events(events)}"
    return cookies.pop()
