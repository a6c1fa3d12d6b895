# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Real servers (issue 16): server-side time-wait, the owner of an accepted
socket, what a failed bind() ran into, process names. The kernel (ss, /proc)
and the servers' own logs are the oracles."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (PORTTRACE, RANGE, TIMEOUT, check_call, fmt_events, one, run, run_once, select,
                      state_cookie)

F_ACCEPTED = 1 << 9


def ss_lines(ns, *filt):
    r = run(ns.cmd("ss", "-Htanp", *filt))
    assert r.returncode == 0, r.stderr
    return [l.split() for l in r.stdout.splitlines() if l.strip()]


def peer_port(col):
    return int(col.rsplit(":", 1)[1])


def server_time_wait(ns, port):
    """Peer ports of the time-wait sockets on local port `port`, as ss sees them."""
    return sorted(peer_port(l[3]) for l in ss_lines(ns, "state", "time-wait", "sport", f"= :{port}"))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


# ---- nginx, daemonised, two workers ----------------------------------------

NGINX_CONF = """
daemon on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format withpid '$pid $remote_port $status';
    access_log {d}/access.log withpid;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:8080;
        keepalive_timeout 0;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:8081;
        keepalive_timeout 60s;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

# Ten requests that nginx answers and closes first (keepalive_timeout 0: the
# client waits for nginx's FIN before it closes), then four that stay open.
NGINX_CLIENT = r'''
# Each from a port of its own: a new connection from the port of one in
# time-wait would end that time-wait early (the kernel lets a new SYN in).
closed = []
for i in range(10):
    c = socket.create_connection(("127.0.0.1", 8080), source_address=("127.0.0.1", 41000 + i))
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    wait_eof(c)
    closed.append(port(c))
    c.close()
kept = []
for _ in range(4):
    c = socket.create_connection(("127.0.0.1", 8081))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"ok\n"):
        got += c.recv(4096)
    kept.append(c)
report(closed=closed, kept=[port(c) for c in kept])
step()
for c in kept:
    c.close()
report(done=True)
'''


class Nginx:
    def __init__(self, ns, tmp_path):
        self.dir = str(tmp_path / "nginx")
        os.mkdir(self.dir)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(d=self.dir))
        self.ns = ns
        self.master = None

    def start(self):
        # Daemonised as a service manager starts it: the process that binds
        # and listens forks the master and exits.
        check_call(self.ns.cmd("nginx", "-c", self.conf))
        with open(os.path.join(self.dir, "nginx.pid")) as f:
            self.master = int(f.read())
        deadline = time.monotonic() + TIMEOUT
        while len(self.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.workers()) == 2, "nginx started no two workers"
        return self

    def workers(self):
        r = run(["pgrep", "-P", str(self.master)])
        return sorted(int(x) for x in r.stdout.split())

    def access(self):
        """Client port -> pid of the worker that served it, from nginx's log."""
        with open(os.path.join(self.dir, "access.log")) as f:
            return {int(l.split()[1]): int(l.split()[0]) for l in f if l.strip()}

    def stop(self):
        if self.master and pid_alive(self.master):
            os.kill(self.master, signal.SIGQUIT)
            deadline = time.monotonic() + TIMEOUT
            while pid_alive(self.master) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(self.master):
                os.kill(self.master, signal.SIGKILL)


@pytest.fixture
def nginx(netns, tmp_path):
    n = Nginx(netns, tmp_path)
    yield n
    n.stop()


def test_nginx_workers_own_what_they_accept(porttrace, netns, workload, nginx):
    pt = porttrace()
    nginx.start()
    client = workload(netns, NGINX_CLIENT)
    ports = client.expect()
    # nginx logs a request once it has sent the answer the client reads.
    deadline = time.monotonic() + TIMEOUT
    while len(nginx.access()) < 14 and time.monotonic() < deadline:
        time.sleep(0.05)
    served = nginx.access()
    workers = nginx.workers()
    # The kernel's word: the sockets nginx closed first wait in time-wait
    # on 8080 toward each client port; the kept ones belong to a worker.
    assert server_time_wait(netns, 8080) == sorted(ports["closed"])
    kept_owner = {}
    for l in ss_lines(netns, "state", "established", "sport", "= :8081"):
        kept_owner[peer_port(l[3])] = int(l[-1].split("pid=")[1].split(",")[0])
    assert sorted(kept_owner) == sorted(ports["kept"])

    # A second porttrace, started now, finds the kept connections in the
    # socket table and names their owners from /proc.
    snap = porttrace()
    snap_evs = snap.stop().events(netns)
    client.go()
    assert client.expect()["done"]
    nginx.stop()
    evs = pt.stop().events(netns)

    for cport in ports["closed"] + ports["kept"]:
        worker = served[cport]
        assert worker in workers
        acc = one(evs, type="port", event="accept", rport=cport)
        assert (acc["pid"], acc["comm"], acc["lport"]) == (worker, "nginx", 8080 if cport in ports["closed"] else 8081)
        assert acc["flags"] & F_ACCEPTED
        # From accept() on, every event of the socket names the worker.
        later = [e for e in evs if e["cookie"] == acc["cookie"] and e["t_ns"] >= acc["t_ns"] and e is not acc]
        assert later, fmt_events(evs)
        for e in later:
            assert (e.get("pid"), e.get("comm")) == (worker, "nginx"), fmt_events(later)

    # Server-side time-wait: one event for each socket ss shows, flagged
    # as accepted, on the listener's port, named after the worker.
    tws = select(evs, type="port", event="time-wait", lport=8080)
    assert sorted(e["rport"] for e in tws) == sorted(ports["closed"]), fmt_events(tws)
    for e in tws:
        assert e["flags"] & F_ACCEPTED and e["pid"] == served[e["rport"]], fmt_events([e])

    # The snapshot and the live events follow one rule.
    for cport in ports["kept"]:
        ex = one(snap_evs, type="port", event="existing", lport=8081, rport=cport)
        live = one(evs, type="port", event="accept", rport=cport)
        assert ex["cookie"] == live["cookie"]
        assert ex["pid"] == live["pid"] == kept_owner[cport] == served[cport]

    # The process that bound and listened forked the master and exited:
    # once a worker accepted from a listener, no event names it any more.
    prefork = one(evs, type="port", event="listen", lport=8080)["pid"]
    assert prefork not in [nginx.master] + workers and not pid_alive(prefork)
    first_accept = {lp: min(e["t_ns"] for e in select(evs, type="port", event="accept", lport=lp))
                    for lp in (8080, 8081)}
    for e in evs:
        if e.get("pid") == prefork and e["lport"] in first_accept:
            assert e["t_ns"] < first_accept[e["lport"]], fmt_events([e])
    # The listeners were closed at nginx's quit by a process that was
    # there to do it (the master), not by the one that listened and exited.
    for lport in (8080, 8081):
        lcookie = state_cookie(evs, old="CLOSE", new="LISTEN", lport=lport)
        closed = one(evs, type="state", cookie=lcookie, old="LISTEN", new="CLOSE")
        assert closed["pid"] in [nginx.master] + workers, fmt_events([closed])


# ---- a Python server that closes first, then cannot bind again -------------

CLOSE_FIRST_THEN_REBIND = r'''
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8080))
s.listen(16)
peers = []
for i in range(5):
    c = socket.create_connection(("127.0.0.1", 8080), source_address=("127.0.0.1", 41000 + i))
    a, _ = s.accept()
    a.close()            # the server hangs up first
    wait_eof(c)
    peers.append(port(c))
    c.close()
def rebind():
    b = socket.socket()  # no SO_REUSEADDR, as a careless restart
    try:
        b.bind(("127.0.0.1", 8080))
        return None
    except OSError as e:
        return errname(e.errno)
    finally:
        b.close()
while_listening = rebind()
s.close()
time.sleep(0.1)
after_close = rebind()
report(peers=peers, while_listening=while_listening, after_close=after_close, done=True)
'''


def test_server_closes_first_then_bind_fails(porttrace, netns, workload, tmp_path):
    pt = porttrace("--exhaustion", "--interval", "1")
    pid, reports = run_once(workload, netns, CLOSE_FIRST_THEN_REBIND)
    r = reports[-1]
    assert r["while_listening"] == r["after_close"] == "EADDRINUSE"
    assert server_time_wait(netns, 8080) == sorted(r["peers"])
    time.sleep(2.5)  # at least one check against the socket table
    evs = pt.stop().events(netns)

    tws = select(evs, type="port", event="time-wait", lport=8080)
    assert sorted(e["rport"] for e in tws) == sorted(r["peers"]), fmt_events(evs)
    assert all(e["flags"] & F_ACCEPTED and e["pid"] == pid for e in tws), fmt_events(tws)
    last_tw = max(e["t_ns"] for e in tws)

    fails = select(evs, type="port", event="bind-fail", req_port=8080)
    assert len(fails) == 2, fmt_events(evs)
    first, second = fails
    assert first["err"] == second["err"] == "EADDRINUSE"
    assert first["held_by"] == {"listeners": 1, "pid": pid, "comm": "python3", "time_wait": 5,
                                "time_wait_end_ns": last_tw + 60 * 10**9, "connections": 0,
                                "bound": 0}, fmt_events([first])
    assert second["held_by"] == {"listeners": 0, "time_wait": 5, "time_wait_end_ns": last_tw + 60 * 10**9,
                                 "connections": 0, "bound": 0}, fmt_events([second])

    # The check compares the server-side time-wait sockets with the kernel's.
    checks = []
    for l in pt.lines():
        if l.startswith('{"type":"exhaustion"'):
            # A busy host's record (every namespace of every test running
            # beside this one) may not fit in a line: that one is skipped.
            try:
                rec = json.loads(l)
            except json.JSONDecodeError:
                continue
            for p in rec["pools"]:
                if p["netns"] == netns.inode and p["proto"] == "tcp" and "check" in p:
                    checks.append((rec, p))
    assert checks, "no exhaustion check of the namespace"
    rec, p = checks[-1]
    assert p["check"]["server_time_wait"] == {"kernel": 5, "events": 5, "missing": 0, "extra": 0}, json.dumps(p)
    assert p["all"]["server_time_wait"] == 5, json.dumps(p)
    # They take no ephemeral port: nothing is held in the range.
    assert p["all"]["occupancy"] == 0, json.dumps(p)

    # A timeline says it too, in place, and in the text output.
    tl = run([PORTTRACE, "timeline", "--pid", str(pid), pt.path])
    assert tl.returncode == 0, tl.stderr
    assert "FAILED EADDRINUSE held by: 1 listener (pid %d python3), 5 time-wait (the last ends in" % pid in tl.stdout, tl.stdout
    assert "FAILED EADDRINUSE held by: 5 time-wait (the last ends in" in tl.stdout, tl.stdout


def test_bind_fail_text_names_the_listener(netns, workload, tmp_path):
    """Text output: what held the port is on the bind-fail line."""
    log = tmp_path / "pt.txt"
    with open(tmp_path / "pt.err", "w") as err:
        proc = subprocess.Popen([PORTTRACE, "--format", "text", "-o", str(log)], stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (log.exists() and log.read_text().startswith("TIME(s)")):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "pt.err").read_text()
            time.sleep(0.05)
        pid, _ = run_once(workload, netns, r'''
s = socket.socket()
s.bind(("127.0.0.1", 8080))
s.listen()
b = socket.socket()
try:
    b.bind(("127.0.0.1", 8080))
except OSError as e:
    report(err=errname(e.errno), done=True)
''')
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)
    lines = [l for l in log.read_text().splitlines() if "bind-fail" in l and f" {pid} " in l]
    assert len(lines) == 1, log.read_text()[-3000:]
    assert "EADDRINUSE asked=8080 held by: 1 listener (pid %d python3)" % pid in lines[0], lines[0]


# ---- names: the process, not the thread ------------------------------------

# dig's way: a thread with a name of its own binds a UDP socket to port 0,
# connects it and asks; then a TCP connect() from the same thread.
THREADED_CLIENT = r'''
import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def worker():
    libc.prctl(15, b"isc-net-0000", 0, 0, 0)      # PR_SET_NAME
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 0))
    u.connect(("127.0.0.1", 53))
    u.send(b"q")
    out["udp"] = port(u)
    u.close()
t = threading.Thread(target=worker)
t.start()
t.join()
report(udp=out["udp"], done=True)
'''


def test_comm_is_the_process_name(porttrace, netns, workload):
    pt = porttrace()
    pid, reports = run_once(workload, netns, THREADED_CLIENT)
    uport = reports[-1]["udp"]
    evs = pt.stop().events(netns)
    mine = [e for e in evs if e.get("pid") == pid]
    assert mine, fmt_events(evs)
    for e in mine:
        assert e["comm"] == "python3", fmt_events([e])
    bind = one(evs, type="port", event="bind", proto="udp", lport=uport)
    assert bind["thread"] == "isc-net-0000" and bind["tid"] != pid, fmt_events([bind])

    # A client's UDP socket (bound to port 0, then connected) is no service:
    # no listen event, wildcard or not.
    assert not select(evs, type="port", event="listen", proto="udp"), fmt_events(evs)
    # Its release says where it was connected.
    rel = one(evs, type="port", event="release", proto="udp", lport=uport)
    assert (rel["laddr"], rel["raddr"], rel["rport"]) == ("127.0.0.1", "127.0.0.1", 53), fmt_events([rel])

    # --comm matches the process's name, not the thread's.
    tl = run([PORTTRACE, "timeline", "--comm", "python3", "--pid", str(pid), "--format", "json", pt.path])
    assert tl.returncode == 0 and tl.stdout.strip(), tl.stderr
    procs = [json.loads(l) for l in tl.stdout.splitlines() if l.startswith('{"type":"timeline"')]
    assert procs and procs[0]["comm"] == "python3", tl.stdout
    tl = run([PORTTRACE, "timeline", "--comm", "isc-net-0000", "--pid", str(pid), "--format", "json", pt.path])
    assert tl.returncode == 0 and not tl.stdout.strip(), tl.stdout


def test_schema_1_log_still_reads(tmp_path):
    """A log of schema 1 (comm was the thread's name; no "thread") reads
    without a warning, its comm as written."""
    log = tmp_path / "old.jsonl"
    log.write_text(
        '{"type":"header","schema":1,"porttrace":"0.9","host":"h","kernel":"k","clock":"CLOCK_MONOTONIC",'
        '"start_mono_ns":1000,"start_realtime_ns":2000}\n'
        '{"type":"port","t_ns":5000,"event":"alloc","cpu":0,"pid":42,"tid":43,"pstart_ns":7,'
        '"comm":"isc-net-0000","cgroup":1,"netns":99,"cookie":11,"proto":"udp","family":4,'
        '"laddr":"127.0.0.1","lport":40000,"raddr":"127.0.0.1","rport":53,"req_port":0,"err":null,'
        '"latency_ns":0,"range":[40000,40003],"ephemeral":true,"class":"registered","flags":65}\n')
    r = run([PORTTRACE, "timeline", "--format", "json", str(log)])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (t,) = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{"type":"timeline"')]
    assert (t["pid"], t["comm"]) == (42, "isc-net-0000")


# ---- sockets older than the trace ------------------------------------------

OLD_SOCKETS = r'''
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8080))
s.listen()
c = socket.create_connection(("127.0.0.1", 8080))
a, _ = s.accept()
bound = socket.socket()
bound.bind(("127.0.0.1", 8090))          # bound, never listens or connects
report(cport=port(c))
step()                                   # porttrace starts meanwhile
a.close()                                # the server's end closes first
wait_eof(c)
c.close()
bound.close()
s.close()
report(done=True)
'''


def test_sockets_older_than_the_trace(porttrace, netns, workload):
    w = workload(netns, OLD_SOCKETS)
    cport = w.expect()["cport"]
    pt = porttrace()
    # The header is on disk once the hooks are attached; the snapshot of
    # a busy host may still be on its way. Go once it has these sockets.
    want = [f'"lport":8080,"raddr":"127.0.0.1","rport":{cport},', '"lport":8090,', '"lport":8080,"raddr":"0.0.0.0"']
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(pt.path) as f:
            got = [l for l in f if '"event":"existing"' in l and f'"netns":{netns.inode},' in l]
        if all(any(k in l for l in got) for k in want):
            break
        time.sleep(0.05)
    w.go()
    assert w.expect()["done"]
    assert w.finish() == 0, w.stderr()
    evs = pt.stop().events(netns)

    # The owner /proc named at start-up goes on to the later events.
    exs = select(evs, type="port", event="existing", lport=8080, rport=cport)
    assert len(exs) == 1, (fmt_events(evs), pt.stderr)
    ex = exs[0]
    assert ex["pid"] == w.pid, (fmt_events(select(evs, event="existing")), pt.stderr)
    tw = one(evs, type="port", event="time-wait", lport=8080, rport=cport)
    assert tw["pid"] == w.pid and tw["cookie"] == ex["cookie"], fmt_events(evs)
    for e in select(evs, type="state", cookie=ex["cookie"]):
        assert e["pid"] == w.pid, fmt_events([e])
    # A TCP socket only bound before the trace gives its port back.
    rel = one(evs, type="port", event="release", lport=8090)
    assert (rel["pid"], rel["proto"], rel["laddr"], rel["reason"]) == (w.pid, "tcp", "127.0.0.1", "socket-closed")


# ---- small defects ---------------------------------------------------------


def test_reserved_listener_not_flagged_in_text(netns, workload, tmp_path):
    port = RANGE[0] + 1
    check_call(netns.cmd("sysctl", "-qw", f"net.ipv4.ip_local_reserved_ports={port}"))
    log = tmp_path / "pt.txt"
    with open(tmp_path / "pt.err", "w") as err:
        proc = subprocess.Popen([PORTTRACE, "--format", "text", "-o", str(log)], stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (log.exists() and log.read_text().startswith("TIME(s)")):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "pt.err").read_text()
            time.sleep(0.05)
        pid, _ = run_once(workload, netns, r'''
s = socket.socket()
s.bind(("0.0.0.0", PORT))
s.listen()
t = socket.socket()
t.bind(("0.0.0.0", PORT + 1))
t.listen()
report(done=True)
''', PORT=port)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)
    listens = [l for l in log.read_text().splitlines() if " listen " in l and f" {pid} " in l]
    reserved = [l for l in listens if f":{port} " in l]
    other = [l for l in listens if f":{port + 1} " in l]
    assert len(reserved) == 1 and len(other) == 1, "\n".join(listens)
    assert "reserved" in reserved[0] and "IN-EPHEMERAL-RANGE" not in reserved[0], reserved[0]
    assert "IN-EPHEMERAL-RANGE" in other[0], other[0]


# A bind() whose addrlen is too short for the address it points at, and a
# bind() on a file descriptor that is not a socket (a pipe): the kernel
# refuses both without looking at the port.
ODD_BINDS = r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
addr = struct.pack("!HH4s8x", socket.AF_INET, 4242, socket.inet_aton("127.0.0.1"))
# sockaddr_in is in host order for the family: pack it by hand.
addr = struct.pack("=H", socket.AF_INET) + addr[2:]
s = socket.socket()
short = libc.bind(s.fileno(), addr, 4)
short_err = errname(ctypes.get_errno())
r, w = os.pipe()
notsock = libc.bind(r, addr, len(addr))
notsock_err = errname(ctypes.get_errno())
report(short=(short, short_err), notsock=(notsock, notsock_err), done=True)
'''


def test_odd_binds_are_not_read_past_what_was_passed(porttrace, netns, workload):
    pt = porttrace()
    pid, reports = run_once(workload, netns, ODD_BINDS)
    assert reports[-1]["short"] == [-1, "EINVAL"]
    assert reports[-1]["notsock"] == [-1, "ENOTSOCK"]
    evs = pt.stop().events(netns)
    # Nothing in the kernel ever saw port 4242.
    assert not [e for e in evs if 4242 in (e.get("lport"), e.get("req_port"))], fmt_events(evs)
    # And the pipe was never read as a socket, whatever namespace its
    # garbage would have named.
    mine = [l for l in pt.lines() if f'"pid":{pid},' in l]
    assert not mine, "\n".join(mine)


# A forking server: the parent binds and listens, a child accepts.
FORKED_ACCEPTOR = r'''
s = socket.socket()
s.bind(("127.0.0.1", 8080))
s.listen(8)
child = os.fork()
if child == 0:
    a, _ = s.accept()
    a.close()                 # closes first
    os._exit(0)
report(child=child)
step()                        # porttrace -p CHILD starts meanwhile
c = socket.create_connection(("127.0.0.1", 8080))
wait_eof(c)
cport = port(c)
c.close()
os.waitpid(child, 0)
report(cport=cport, done=True)
'''


def test_pid_filter_follows_the_acceptor(porttrace, netns, workload):
    w = workload(netns, FORKED_ACCEPTOR)
    child = w.expect()["child"]
    pt = porttrace("-p", str(child))
    w.go()
    cport = w.expect()["cport"]
    assert w.finish() == 0, w.stderr()
    evs = pt.stop().events(netns)
    acc = one(evs, type="port", event="accept", rport=cport)
    assert acc["pid"] == child
    mine = [(e.get("old"), e.get("new"), e.get("event")) for e in evs if e["cookie"] == acc["cookie"]]
    assert mine == [(None, None, "accept"), ("ESTABLISHED", "FIN_WAIT1", None), ("FIN_WAIT1", "FIN_WAIT2", None),
                    ("FIN_WAIT2", "CLOSE", None), (None, None, "time-wait")], fmt_events(evs)
    assert all(e["pid"] == child for e in evs), fmt_events(evs)
