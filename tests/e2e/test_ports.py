# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Port facts: explicit binds and their failures, kernel-picked ports
(autobind) and their failures, releases, and what a port means."""
import pytest

from conftest import (FAMILIES, RANGE, connection, fmt_events, in_range, one, run, run_once, select,
                      start_server, state_cookie, transitions)

AUTOBIND = 64  # PT_F_AUTOBIND
COMPUTED = 128  # PT_F_COMPUTED




# ---- explicit bind ---------------------------------------------------------

BIND = r'''
s = socket.socket(family_of(ADDR), socket.SOCK_DGRAM if PROTO == "udp" else socket.SOCK_STREAM)
s.bind((ADDR, PORT))
report(port=port(s), done=True)
s.close()
'''


@FAMILIES
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_bind_fixed_port(porttrace, netns, workload, addr, family, proto):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, BIND, ADDR=addr, PORT=5000, PROTO=proto)
    evs = pt.stop().events(netns)
    assert res["port"] == 5000
    bind = one(evs, type="port", event="bind")
    assert (bind["pid"], bind["proto"], bind["family"], bind["laddr"], bind["lport"], bind["req_port"], bind["err"]) == (
        pid, proto, family, addr, 5000, 5000, None), fmt_events(evs)
    assert bind["flags"] & AUTOBIND == 0
    release = one(evs, type="port", event="release")
    assert (release["cookie"], release["pid"], release["lport"], release["proto"], release["reason"]) == (
        bind["cookie"], pid, 5000, proto, "socket-closed"), fmt_events(evs)


@FAMILIES
def test_bind_port_zero_gets_the_port_getsockname_says(porttrace, netns, workload, addr, family):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, BIND, ADDR=addr, PORT=0, PROTO="tcp")
    evs = pt.stop().events(netns)
    assert in_range(res["port"])
    bind = one(evs, type="port", event="bind")
    assert (bind["pid"], bind["family"], bind["laddr"], bind["lport"], bind["req_port"], bind["err"]) == (
        pid, family, addr, res["port"], 0, None), fmt_events(evs)
    assert bind["ephemeral"] is True
    assert bind["flags"] & AUTOBIND


BIND_TRY = r'''
s = socket.socket(family_of(ADDR), socket.SOCK_STREAM)
try:
    s.bind((ADDR, PORT))
    report(err=None, uid=os.getuid(), done=True)
except OSError as e:
    report(err=errname(e.errno), uid=os.getuid(), done=True)
'''


@FAMILIES
def test_bind_to_a_port_in_use_fails(porttrace, netns, workload, addr, family):
    holder = start_server(workload, netns, addr, 7000)
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, BIND_TRY, ADDR=addr, PORT=7000)
    holder.go("stop")
    assert holder.finish() == 0
    evs = pt.stop().events(netns)
    assert res["err"] == "EADDRINUSE"
    fail = one(evs, type="port", event="bind-fail")
    assert (fail["pid"], fail["proto"], fail["family"], fail["laddr"], fail["lport"], fail["req_port"], fail["err"]) == (
        pid, "tcp", family, addr, 7000, 7000, "EADDRINUSE"), fmt_events(evs)
    assert pid != holder.pid
    assert not select(evs, event="bind"), fmt_events(evs)


def test_bind_to_privileged_port_without_privileges_fails(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, BIND_TRY, unprivileged=True, ADDR="127.0.0.1", PORT=80)
    evs = pt.stop().events(netns)
    assert (res["err"], res["uid"]) == ("EACCES", 65534)
    fail = one(evs, type="port", event="bind-fail")
    assert (fail["pid"], fail["laddr"], fail["lport"], fail["req_port"], fail["err"]) == (
        pid, "127.0.0.1", 80, 80, "EACCES"), fmt_events(evs)


# ---- autobind --------------------------------------------------------------

CONNECT = r'''
c = socket.socket(family_of(ADDR), socket.SOCK_STREAM)
c.setblocking(BLOCKING)
t0 = time.monotonic_ns()
err = errname(c.connect_ex((ADDR, PORT)))
took = time.monotonic_ns() - t0
report(err=err, port=port(c), took=took, done=True)
c.close()
'''


@FAMILIES
@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "nonblocking"])
def test_tcp_connect_autobind(porttrace, netns, workload, addr, family, blocking):
    server = start_server(workload, netns, addr, 8080)
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, CONNECT, ADDR=addr, PORT=8080, BLOCKING=blocking)
    server.go("stop")
    assert server.finish() == 0
    evs = pt.stop().events(netns)
    assert res["err"] == (None if blocking else "EINPROGRESS")
    assert in_range(res["port"])
    alloc = one(evs, type="port", event="alloc")
    assert (alloc["pid"], alloc["proto"], alloc["family"], alloc["laddr"], alloc["lport"], alloc["raddr"], alloc["rport"]) == (
        pid, "tcp", family, addr, res["port"], addr, 8080), fmt_events(evs)
    # The port was allocated, whether connect() had finished or not.
    assert alloc["err"] is None
    assert (alloc["ephemeral"], alloc["range"]) == (True, list(RANGE))
    assert alloc["flags"] & AUTOBIND
    assert alloc["cookie"] == state_cookie(evs, old="CLOSE", new="SYN_SENT")
    # Measured inside the call: more than nothing, less than the caller saw.
    assert 0 < alloc["latency_ns"] < res["took"], fmt_events(evs)


UDP_AUTOBIND = r'''
u = socket.socket(family_of(ADDR), socket.SOCK_DGRAM)
dst = (ADDR, 9999)
if HOW == "sendto":
    u.sendto(b"x", dst)
elif HOW == "sendmsg":
    u.sendmsg([b"x"], [], 0, dst)
else:
    t0 = time.monotonic_ns()
    u.connect(dst)
    took = time.monotonic_ns() - t0
report(port=port(u), took=took if HOW == "connect" else None, done=True)
u.close()
'''


@FAMILIES
@pytest.mark.parametrize("how", ["sendto", "sendmsg", "connect"])
def test_udp_autobind(porttrace, netns, workload, addr, family, how):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, UDP_AUTOBIND, ADDR=addr, HOW=how)
    evs = pt.stop().events(netns)
    assert in_range(res["port"])
    alloc = one(evs, type="port", event="alloc")
    assert (alloc["pid"], alloc["proto"], alloc["family"], alloc["lport"], alloc["raddr"], alloc["rport"], alloc["err"]) == (
        pid, "udp", family, res["port"], addr, 9999, None), fmt_events(evs)
    assert alloc["flags"] & AUTOBIND
    if how == "connect":
        assert 0 < alloc["latency_ns"] < res["took"], fmt_events(evs)
    release = one(evs, type="port", event="release")
    assert (release["cookie"], release["pid"], release["lport"], release["reason"]) == (
        alloc["cookie"], pid, res["port"], "socket-closed"), fmt_events(evs)


UDP_DISCONNECT = r'''
import ctypes
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("127.0.0.1", 9999))
first = port(u)
unspec = ctypes.create_string_buffer(16)  # sa_family 0: AF_UNSPEC
rc = ctypes.CDLL(None, use_errno=True).connect(u.fileno(), unspec, 16)
u.connect(("127.0.0.1", 9998))
report(rc=rc, first=first, port=port(u), done=True)
u.close()
'''


def test_udp_disconnect_gives_the_port_back(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, UDP_DISCONNECT)
    evs = pt.stop().events(netns)
    assert res["rc"] == 0
    # The disconnect gave the autobound port back, so the second connect()
    # autobinds again. No hook sees the disconnect itself: its release is
    # told when the next port shows it, before that port, marked computed.
    # Nothing calls it a connect of a socket that had a port.
    ports = [(e["event"], e["pid"], e["lport"], e["rport"], e.get("reason"))
             for e in select(evs, type="port") if e["event"] in ("alloc", "release")]
    assert ports == [
        ("alloc", pid, res["first"], 9999, None),
        ("release", pid, res["first"], 9999, "disconnect"),
        ("alloc", pid, res["port"], 9998, None),
        ("release", pid, res["port"], 9998, "socket-closed")], fmt_events(evs)
    allocs = select(evs, type="port", event="alloc")
    gone = one(evs, type="port", event="release", reason="disconnect")
    assert allocs[0]["cookie"] == gone["cookie"] == allocs[1]["cookie"]
    assert gone["flags"] & COMPUTED and allocs[0]["t_ns"] < gone["t_ns"] <= allocs[1]["t_ns"]
    assert not select(evs, event="connect"), fmt_events(evs)


# ---- exhaustion ------------------------------------------------------------

SERVERS = r'''
ls = [listener("127.0.0.1", p) for p in (8080, 8081)]
report(ports=[port(s) for s in ls])
step()
'''

EXHAUST = r'''
def tcp_to(p):
    c = socket.socket()
    return c, errname(c.connect_ex(("127.0.0.1", p)))

held, r = [], {}
for p, key in ((8080, "first"), (8080, "more"), (8081, "other")):
    for i in range(4 if key != "more" else 2):
        c, err = tcp_to(p)
        if err:
            r.setdefault(key, []).append(err)
            c.close()
        else:
            held.append(c)
            r.setdefault(key, []).append(port(c))
b = socket.socket()
try:
    b.bind(("127.0.0.1", 0))
    r["bind"] = port(b)
except OSError as e:
    r["bind"] = errname(e.errno)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9999))
r["udp"] = port(u)
report(done=True, **r)
'''


def exhaust(porttrace, netns, workload):
    """Run EXHAUST against SERVERS under porttrace: (client pid, its
    report, the namespace's events)."""
    servers = workload(netns, SERVERS)
    assert servers.expect()["ports"] == [8080, 8081]
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, EXHAUST)
    servers.go()
    assert servers.finish() == 0
    return pid, res, pt.stop().events(netns)


def test_exhaustion_of_a_four_port_range(porttrace, netns, workload):
    pid, res, evs = exhaust(porttrace, netns, workload)
    ports = set(range(RANGE[0], RANGE[1] + 1))
    assert sorted(res["first"]) == sorted(ports)
    assert res["more"] == ["EADDRNOTAVAIL", "EADDRNOTAVAIL"]
    assert sorted(res["other"]) == sorted(ports)
    assert res["bind"] == "EADDRINUSE"
    assert in_range(res["udp"])

    mine = select(evs, pid=pid)
    allocs = select(mine, type="port", event="alloc", proto="tcp")
    assert [(e["lport"], e["rport"]) for e in allocs] == [(p, 8080) for p in res["first"]] + [
        (p, 8081) for p in res["other"]], fmt_events(evs)
    fails = select(evs, type="port", event="alloc-fail")
    assert len(fails) == 2, fmt_events(evs)
    for f in fails:
        assert (f["pid"], f["proto"], f["err"], f["lport"], f["raddr"], f["rport"]) == (
            pid, "tcp", "EADDRNOTAVAIL", None, "127.0.0.1", 8080), fmt_events([f])
    bfail = one(evs, type="port", event="bind-fail")
    assert (bfail["pid"], bfail["err"], bfail["req_port"], bfail["lport"], bfail["laddr"]) == (
        pid, "EADDRINUSE", 0, None, "127.0.0.1"), fmt_events(evs)
    udp = one(evs, type="port", event="alloc", proto="udp")
    assert (udp["pid"], udp["lport"], udp["rport"], udp["err"]) == (pid, res["udp"], 9999, None)


def test_failed_autobind_is_not_reported_as_a_reset(porttrace, netns, workload):
    """connect() found no free port: the socket goes SYN_SENT -> CLOSE
    without a packet, so no reset was sent nor received."""
    pid, res, evs = exhaust(porttrace, netns, workload)
    fails = select(evs, type="port", event="alloc-fail")
    assert len(fails) == 2, fmt_events(evs)
    for fail in fails:
        assert transitions(evs, fail["cookie"]) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")], fmt_events(evs)
        end = one(evs, type="state", cookie=fail["cookie"], new="CLOSE")
        assert end["lport"] is None
        assert end.get("reason") == "no-free-port", fmt_events([end])


UDP_EXHAUST = r'''
held, ports = [], []
for i in range(RANGE[1] - RANGE[0] + 1):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", 9999))
    held.append(u)
    ports.append(port(u))
u, err = udp_autobind()
report(ports=ports, err=err, done=True)
'''


def test_udp_autobind_failure(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, UDP_EXHAUST, RANGE=RANGE)
    evs = pt.stop().events(netns)
    assert sorted(res["ports"]) == list(range(RANGE[0], RANGE[1] + 1))
    assert res["err"] == "EAGAIN"
    assert [e["lport"] for e in select(evs, type="port", event="alloc")] == res["ports"]
    fail = one(evs, type="port", event="alloc-fail")
    assert (fail["pid"], fail["proto"], fail["err"], fail["lport"], fail["raddr"], fail["rport"]) == (
        pid, "udp", "EAGAIN", None, "127.0.0.1", 9999), fmt_events(evs)


# ---- release ---------------------------------------------------------------


def test_autobound_port_released_at_close(porttrace, netns, workload):
    pt = porttrace()
    _, client, ports = connection(workload, netns, client_closes=False)
    evs = pt.stop().events(netns)
    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    assert transitions(evs, cookie)[-3:] == [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
    mine = [e for e in evs if e["cookie"] == cookie]
    release = one(mine, type="port", event="release")
    assert (release["pid"], release["lport"], release["rport"], release["reason"]) == (
        client.pid, ports["cport"], 8080, "close"), fmt_events(mine)
    assert mine.index(release) > mine.index(one(mine, type="state", new="CLOSE")), fmt_events(mine)
    assert not select(mine, event="time-wait"), fmt_events(mine)


BOUND_IDLE = r'''
s = socket.socket()
s.bind(("127.0.0.1", 6001))
report(port=port(s), bound_ns=time.monotonic_ns())
time.sleep(0.3)
report(close_ns=time.monotonic_ns())
s.close()
report(closed_ns=time.monotonic_ns(), done=True)
'''


def test_bound_socket_keeps_its_port_until_close(porttrace, netns, workload):
    pt = porttrace()
    pid, (bound, closing, closed) = run_once(workload, netns, BOUND_IDLE)
    evs = pt.stop().events(netns)
    bind = one(evs, type="port", event="bind")
    mine = [e for e in evs if e["cookie"] == bind["cookie"]]
    release = one(mine, type="port", event="release")
    assert (release["pid"], release["lport"], release["reason"]) == (pid, 6001, "socket-closed"), fmt_events(mine)
    assert closing["close_ns"] <= release["t_ns"] <= closed["closed_ns"], fmt_events(mine)
    assert bind["t_ns"] <= bound["bound_ns"]
    # A socket that never left CLOSE has no transition to report.
    assert not select(mine, type="state"), fmt_events(mine)


def test_active_close_leaves_the_port_in_time_wait(porttrace, netns, workload):
    pt = porttrace()
    _, client, ports = connection(workload, netns, client_closes=True)
    evs = pt.stop().events(netns)
    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    mine = [e for e in evs if e["cookie"] == cookie]
    tw = one(mine, type="port", event="time-wait")
    assert (tw["pid"], tw["lport"], tw["rport"]) == (client.pid, ports["cport"], 8080)
    assert mine.index(tw) == mine.index(one(mine, type="state", old="FIN_WAIT2", new="CLOSE")) + 1, fmt_events(mine)
    # Held for 60 s: no release during the test.
    assert not select(mine, event="release"), fmt_events(mine)


NO_FIN_WAIT2 = r'''
a = listener("127.0.0.1", 8080)
c = socket.socket()
# TCP_LINGER2 < 0: once its FIN is acknowledged, the orphan closes at once
# from FIN_WAIT2, with no error and no time-wait socket.
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
c.connect(("127.0.0.1", 8080))
s = a.accept()[0]
cport = port(c)
c.close()
time.sleep(0.2)
report(cport=cport, done=True)
'''


def closed_without_time_wait(porttrace, netns, workload, script):
    """Run a script whose client closes from FIN_WAIT*, and check with ss
    that the kernel made no time-wait socket: (its report, the client
    socket's events)."""
    pt = porttrace()
    _, (info,) = run_once(workload, netns, script)
    tw = run(netns.cmd("ss", "-Htan", "state", "time-wait"))
    evs = pt.stop().events(netns)
    assert tw.returncode == 0 and tw.stdout.strip() == "", tw.stdout
    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    return info, [e for e in evs if e["cookie"] == cookie]


def test_close_from_fin_wait2_without_time_wait_releases(porttrace, netns, workload):
    """FIN_WAIT2 -> CLOSE is a time-wait hand-over only when the kernel made
    a time-wait socket; here it made none, and ss shows none."""
    info, mine = closed_without_time_wait(porttrace, netns, workload, NO_FIN_WAIT2)
    assert transitions(mine, mine[0]["cookie"])[-2:] == [("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
    release = one(mine, type="port", event="release")
    assert (release["lport"], release["reason"]) == (info["cport"], "close"), fmt_events(mine)
    assert not select(mine, event="time-wait"), fmt_events(mine)


def test_linger_zero_close_releases_at_once_with_rst(porttrace, netns, workload):
    pt = porttrace()
    server, client, info = connection(workload, netns, rst=True)
    evs = pt.stop().events(netns)
    cport = info["cport"]
    assert info["server_err"] == "ECONNRESET"

    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    mine = [e for e in evs if e["cookie"] == cookie]
    assert transitions(evs, cookie) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"), ("ESTABLISHED", "CLOSE")]
    close = one(mine, type="state", new="CLOSE")
    assert close["reason"] == "rst-sent", fmt_events(mine)
    release = one(mine, type="port", event="release")
    assert (release["pid"], release["lport"], release["reason"], release["t_ns"]) == (
        client.pid, cport, "rst-sent", close["t_ns"]), fmt_events(mine)
    assert mine.index(release) == mine.index(close) + 1
    assert not select(mine, event="time-wait"), fmt_events(mine)
    # The server's end saw the reset.
    acookie = state_cookie(evs, old="LISTEN", new="SYN_RECV")
    end = one(evs, type="state", cookie=acookie, new="CLOSE")
    assert (end["old"], end["reason"], end["pid"]) == ("ESTABLISHED", "rst-received", server.pid), fmt_events(evs)


LISTEN_CLOSE = r'''
s = listener("127.0.0.1", 8080)
report(port=port(s))
s.close()
report(done=True)
'''


def test_listening_port_released_after_the_listener_closes(porttrace, netns, workload):
    pt = porttrace()
    pid, _ = run_once(workload, netns, LISTEN_CLOSE)
    evs = pt.stop().events(netns)
    cookie = one(evs, type="port", event="bind")["cookie"]
    mine = [e for e in evs if e["cookie"] == cookie]
    assert [e.get("event") or f"{e['old']}->{e['new']}" for e in mine] == [
        "bind", "CLOSE->LISTEN", "listen", "LISTEN->CLOSE", "release"], fmt_events(mine)
    release = mine[-1]
    assert (release["pid"], release["laddr"], release["lport"], release["reason"]) == (
        pid, "127.0.0.1", 8080, "socket-closed"), fmt_events(mine)


# bind() before connect(): to port 0 (the kernel picks it at bind time) or
# to a fixed port. The port is the connection's until the connection is
# gone: through TIME_WAIT after an orderly active close, at once with RST.
# The script proves it by binding the same address and port again.
@pytest.mark.parametrize("bind_port", [0, 6002], ids=["port0", "fixed"])
@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_bind_then_connect_holds_the_port_until_the_connection_is_gone(porttrace, netns, workload, bind_port, rst):
    pt = porttrace()
    _, client, info = connection(workload, netns, bind=bind_port, rst=rst, rebind=True)
    evs = pt.stop().events(netns)
    cport = info["cport"]
    # The kernel's view: in TIME_WAIT after FIN, free at once after RST.
    assert info["rebind"] == (None if rst else "EADDRINUSE")

    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    mine = [e for e in evs if e["cookie"] == cookie]
    bind = one(mine, type="port", event="bind")
    assert (bind["pid"], bind["req_port"], bind["lport"]) == (client.pid, bind_port, cport), fmt_events(mine)
    end = one(mine, type="state", new="CLOSE")
    if rst:
        release = one(mine, type="port", event="release")
        assert mine.index(release) > mine.index(end), fmt_events(mine)
        assert (release["lport"], release["pid"], release["reason"]) == (cport, client.pid, "rst-sent"), fmt_events(mine)
    else:
        assert not select(mine, event="release"), fmt_events(mine)
        tw = one(mine, type="port", event="time-wait")
        assert mine.index(tw) == mine.index(end) + 1, fmt_events(mine)
        assert (tw["lport"], tw["pid"]) == (cport, client.pid)


EXIT_UNCLOSED = r'''
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.bind(("127.0.0.1", 7101))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 7102))
report(tcp=port(t), udp=port(u))
os._exit(0)   # no close(), no interpreter clean-up: the kernel closes them
'''


def test_exit_without_close_releases_with_process_exit(porttrace, netns, workload):
    pt = porttrace()
    w = workload(netns, EXIT_UNCLOSED)
    assert w.expect() == {"tcp": 7101, "udp": 7102, "pid": w.pid}
    assert w.finish() == 0
    evs = pt.stop().events(netns)
    for proto, p in (("tcp", 7101), ("udp", 7102)):
        bind = one(evs, type="port", event="bind", proto=proto)
        release = one(evs, type="port", event="release", proto=proto)
        assert (release["cookie"], release["pid"], release["lport"], release["reason"]) == (
            bind["cookie"], w.pid, p, "process-exit"), fmt_events(evs)


# ---- what a port means -----------------------------------------------------

MEANING = r'''
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    rng = [int(x) for x in f.read().split()]
held = []
for p, kind in PORTS:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", p))
    held.append(s)
report(range=rng, ports=[port(s) for s in held], done=True)
'''

#            port, proto,  class,        service,     ephemeral
MEANINGS = [(22, "tcp", "well-known", "ssh", False),
            (443, "tcp", "well-known", "https", False),
            (53, "udp", "well-known", "domain", False),
            (8080, "tcp", "registered", "http-alt", False),
            (50000, "tcp", "dynamic", None, False)]


def test_port_meaning(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, MEANING, PORTS=[(m[0], m[1]) for m in MEANINGS] + [(0, "tcp")])
    evs = pt.stop().events(netns)
    # The namespace's range, not the host's one of the header.
    assert res["range"] == list(RANGE)
    assert pt.header["ephemeral_range"] != list(RANGE)
    eph = res["ports"][-1]
    assert in_range(eph)
    for p, proto, klass, service, ephemeral in MEANINGS + [(eph, "tcp", "registered", None, True)]:
        b = one(evs, type="port", event="bind", proto=proto, lport=p)
        assert (b["pid"], b["class"], b.get("service"), b["ephemeral"], b["range"]) == (
            pid, klass, service, ephemeral, list(RANGE)), fmt_events([b])


# ---- who can reach a listening port ----------------------------------------

LISTENERS = r'''
held = []
for addr, p, kind in SOCKS:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.bind((addr, p))
    if kind == "tcp":
        s.listen()
    held.append(s)
report(ports=[port(s) for s in held], done=True)
'''


def test_listen_scope_and_listeners_in_the_ephemeral_range(porttrace, netns, workload):
    socks = [("0.0.0.0", 5353, "udp"), ("127.0.0.1", 8080, "tcp"), ("::1", 8443, "tcp"),
             ("0.0.0.0", RANGE[0] + 1, "tcp")]
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, LISTENERS, SOCKS=socks)
    assert res["ports"] == [p for _, p, _ in socks]
    evs = pt.stop().events(netns)
    for (addr, p, proto), scope, eph in zip(
            socks, ("wildcard", "loopback", "loopback", "wildcard"), (False, False, False, True)):
        ev = one(evs, type="port", event="listen", proto=proto, lport=p)
        assert (ev["pid"], ev["scope"], ev["ephemeral"]) == (pid, scope, eph), fmt_events([ev])


BOUND_TIME_WAIT = r'''
a = listener("127.0.0.1", 8080)
c = socket.socket()
c.bind(("127.0.0.1", 6003))
c.connect(("127.0.0.1", 8080))
s = a.accept()[0]
c.shutdown(socket.SHUT_WR)   # FIN_WAIT1, then FIN_WAIT2 once acknowledged
wait_eof(s)
s.close()                    # the peer's FIN: time-wait, while c is still open
time.sleep(0.2)
c.close()
report(done=True)
'''


def test_bound_port_goes_to_time_wait_while_its_socket_is_open(porttrace, netns, workload):
    """A bound socket that closes actively hands its port to a time-wait
    socket even while the application still holds it; its close() later
    gives nothing back, and ss shows the time-wait socket."""
    pt = porttrace()
    run_once(workload, netns, BOUND_TIME_WAIT)
    tw = run(netns.cmd("ss", "-Htan", "state", "time-wait", "sport", "= :6003"))
    evs = pt.stop().events(netns)
    assert tw.returncode == 0 and tw.stdout.strip(), "no time-wait socket in ss"
    cookie = one(evs, type="port", event="bind", lport=6003)["cookie"]
    mine = [e for e in evs if e["cookie"] == cookie]
    one(mine, type="port", event="time-wait")
    assert not select(mine, event="release"), fmt_events(mine)


ABORT_FROM_FIN_WAIT = r'''
a = listener("127.0.0.1", 8080)
c = socket.socket()
c.connect(("127.0.0.1", 8080))
s = a.accept()[0]
s.sendall(b"unread")
c.shutdown(socket.SHUT_WR)   # FIN_WAIT1, FIN_WAIT2
time.sleep(0.2)
cport = port(c)
c.close()                    # data unread: RST, no time-wait
time.sleep(0.2)
report(cport=cport, done=True)
'''


def test_close_with_unread_data_after_shutdown_releases(porttrace, netns, workload):
    info, mine = closed_without_time_wait(porttrace, netns, workload, ABORT_FROM_FIN_WAIT)
    end = one(mine, type="state", new="CLOSE")
    assert end["old"] in ("FIN_WAIT1", "FIN_WAIT2"), fmt_events(mine)
    release = one(mine, type="port", event="release")
    assert (release["lport"], release["reason"]) == (info["cport"], "rst-sent"), fmt_events(mine)
    assert not select(mine, event="time-wait"), fmt_events(mine)


OLD_LISTENER = r'''
s = listener("127.0.0.1", 8080)
report(port=port(s))
step()
s.close()
report(done=True)
'''


def test_listener_older_than_the_trace_releases_its_port_at_close(porttrace, netns, workload):
    """A service restart: the listener was bound before porttrace started,
    so no bind() was seen, and its close still gives the port back."""
    w = workload(netns, OLD_LISTENER)
    assert w.expect()["port"] == 8080
    pt = porttrace()
    w.go()
    w.expect()
    assert w.finish() == 0
    evs = pt.stop().events(netns)
    end = one(evs, type="state", old="LISTEN", new="CLOSE")
    release = one(evs, type="port", event="release", lport=8080)
    assert (release["cookie"], release["reason"]) == (end["cookie"], "socket-closed"), fmt_events(evs)


RST_IN_CLOSE_WAIT = r'''
a = listener("127.0.0.1", 8080)
c = socket.socket()
c.connect(("127.0.0.1", 8080))
s = a.accept()[0]
linger_rst(s)
s.shutdown(socket.SHUT_WR)   # c: CLOSE_WAIT
time.sleep(0.1)
s.close()                    # SO_LINGER 0: RST to c in CLOSE_WAIT
time.sleep(0.2)
report(done=True)
'''


def test_reset_in_close_wait_is_a_reset_received(porttrace, netns, workload):
    """tcp_reset() says EPIPE, not ECONNRESET, to a socket in CLOSE_WAIT."""
    pt = porttrace()
    run_once(workload, netns, RST_IN_CLOSE_WAIT)
    evs = pt.stop().events(netns)
    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    end = one(evs, type="state", cookie=cookie, new="CLOSE")
    assert (end["old"], end["reason"]) == ("CLOSE_WAIT", "rst-received"), fmt_events(evs)


INTERRUPTED_CONNECT = r'''
import signal
a = socket.socket()
a.bind(("127.0.0.1", 8080))
a.listen(0)
queued = socket.create_connection(("127.0.0.1", 8080))   # the queue is full now
def interrupt(*_):
    raise InterruptedError
signal.signal(signal.SIGALRM, interrupt)
c = socket.socket()
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    c.connect(("127.0.0.1", 8080))   # its SYN is dropped: it waits
    err = None
except InterruptedError:
    err = "EINTR"
report(err=err, port=port(c), done=True)
'''


def test_connect_cut_short_by_a_signal_keeps_and_reports_its_port(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, INTERRUPTED_CONNECT)
    evs = pt.stop().events(netns)
    assert res["err"] == "EINTR" and res["port"]
    alloc = one(evs, type="port", event="alloc", pid=pid, lport=res["port"])
    assert (alloc["err"], alloc["rport"]) == ("EINTR", 8080), fmt_events([alloc])


OLD_UDP = r'''
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
report(made=True)
step()
u.connect(("127.0.0.1", 9999))
p = port(u)
u.close()
report(port=p, done=True)
'''


def test_socket_older_than_the_trace_keeps_one_cookie(porttrace, netns, workload):
    """A socket made before porttrace has no cookie until a hook asks: its
    alloc (read at syscall exit) and its release must still name the same
    socket, or the port would stay held for ever."""
    w = workload(netns, OLD_UDP)
    w.expect()
    pt = porttrace()
    w.go()
    res = w.expect()
    assert w.finish() == 0
    evs = pt.stop().events(netns)
    alloc = one(evs, type="port", event="alloc", lport=res["port"])
    release = one(evs, type="port", event="release", lport=res["port"])
    assert alloc["cookie"] != 0 and release["cookie"] == alloc["cookie"], fmt_events(evs)


# sendmmsg() with MSG_FASTOPEN connects through the cgroup connect hook, but
# no hook sees it return: the call it opened must not become the next bind().
FASTOPEN_THEN_UNIX_BIND = r'''
import ctypes, tempfile
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
a = listener("127.0.0.1", 8080)
c = socket.socket()
sin = ctypes.create_string_buffer(struct.pack("!HH4s8x", socket.AF_INET, 8080,
                                              socket.inet_aton("127.0.0.1")), 16)
sin[0:2] = struct.pack("=H", socket.AF_INET)
data = ctypes.create_string_buffer(b"x")
iov = iovec(ctypes.cast(data, ctypes.c_void_p), 1)
m = mmsghdr(msghdr(ctypes.cast(sin, ctypes.c_void_p), 16, ctypes.pointer(iov), 1, None, 0, 0), 0)
libc = ctypes.CDLL(None, use_errno=True)
n = libc.sendmmsg(c.fileno(), ctypes.byref(m), 1, socket.MSG_FASTOPEN)
p = port(c)
path = tempfile.mktemp()
x = socket.socket(socket.AF_UNIX)
x.bind(path)
x.close()
os.unlink(path)
report(n=n, errno=ctypes.get_errno(), port=p, done=True)
'''


def test_a_connect_no_exit_hook_sees_is_not_taken_for_a_bind(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, FASTOPEN_THEN_UNIX_BIND)
    evs = pt.stop().events(netns)
    assert res["n"] == 1 and res["port"], res
    assert not select(evs, type="port", event="bind", lport=res["port"]), fmt_events(evs)
