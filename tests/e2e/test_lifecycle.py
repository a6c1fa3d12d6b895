# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""TCP state transitions of both ends of a connection, with the right
ports and the right owner on every event."""
from conftest import (FAMILIES, SERVER, connection, fmt_events, one, run_once, scenario, select, start_server,
                      state_cookie, transitions)

ACTIVE_OPEN_CLOSE = [
    ("CLOSE", "SYN_SENT"),
    ("SYN_SENT", "ESTABLISHED"),
    ("ESTABLISHED", "FIN_WAIT1"),
    ("FIN_WAIT1", "FIN_WAIT2"),
    ("FIN_WAIT2", "CLOSE"),
]
PASSIVE_OPEN_CLOSE = [
    ("LISTEN", "SYN_RECV"),
    ("SYN_RECV", "ESTABLISHED"),
    ("ESTABLISHED", "CLOSE_WAIT"),
    ("CLOSE_WAIT", "LAST_ACK"),
    ("LAST_ACK", "CLOSE"),
]


@FAMILIES
def test_both_ends_of_a_connection(porttrace, netns, workload, addr, family):
    pt = porttrace()
    server, client, ports = connection(workload, netns, addr=addr, port=8080)
    evs = pt.stop().events(netns)
    sport, cport = ports["sport"], ports["cport"]
    assert sport == 8080

    # The client: active open, active close, every event its own.
    ccookie = state_cookie(evs, old="CLOSE", new="SYN_SENT", rport=sport)
    cevs = select(evs, type="state", cookie=ccookie)
    assert transitions(evs, ccookie) == ACTIVE_OPEN_CLOSE, fmt_events(evs)
    for e in cevs:
        assert (e["pid"], e["family"], e["laddr"], e["raddr"], e["rport"]) == (client.pid, family, addr, addr, sport), fmt_events([e])
    assert [e["lport"] for e in cevs] == [None] + [cport] * 4, fmt_events(cevs)
    assert cevs[-1]["reason"] == "close"
    assert all("reason" not in e for e in cevs[:-1]), fmt_events(cevs)

    # The server's accepted socket: owned by the server although its
    # transitions run in softirq, on whatever process the CPU was running.
    acookie = state_cookie(evs, old="LISTEN", new="SYN_RECV")
    aevs = select(evs, type="state", cookie=acookie)
    assert transitions(evs, acookie) == PASSIVE_OPEN_CLOSE, fmt_events(evs)
    for e in aevs:
        assert (e["pid"], e["family"], e["laddr"], e["lport"], e["raddr"], e["rport"]) == (
            server.pid, family, addr, sport, addr, cport), fmt_events([e])
    assert aevs[-1]["reason"] == "close"

    # The listener itself.
    lcookie = state_cookie(evs, old="CLOSE", new="LISTEN")
    assert transitions(evs, lcookie) == [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")], fmt_events(evs)
    listen = one(evs, type="port", event="listen")
    assert (listen["pid"], listen["cookie"], listen["lport"], listen["laddr"]) == (server.pid, lcookie, sport, addr)
    assert one(evs, type="state", cookie=lcookie, new="CLOSE")["reason"] == "socket-closed"

    assert {ccookie, acookie, lcookie} == {e["cookie"] for e in select(evs, type="state")}


REFUSED = r'''
c = socket.socket(family_of(ADDR), socket.SOCK_STREAM)
report(err=errname(c.connect_ex((ADDR, 8080))), port=port(c), done=True)
c.close()
'''


def test_refused_connection(porttrace, netns, workload):
    pt = porttrace()
    pid, (res,) = run_once(workload, netns, REFUSED, ADDR="127.0.0.1")
    evs = pt.stop().events(netns)
    assert res["err"] == "ECONNREFUSED"

    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    assert transitions(evs, cookie) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")], fmt_events(evs)
    end = one(evs, type="state", cookie=cookie, new="CLOSE")
    assert end["reason"] == "refused", fmt_events(evs)
    assert (end["pid"], end["rport"], end["raddr"], end["lport"]) == (pid, 8080, "127.0.0.1", res["port"])
    # The kernel had picked a port before the RST came back: given back now.
    release = one(evs, type="port", event="release")
    assert (release["cookie"], release["lport"], release["reason"], release["pid"]) == (cookie, res["port"], "refused", pid)
    assert not select(evs, event="time-wait"), fmt_events(evs)


def test_active_open_reports_no_port_until_allocated(porttrace, netns, workload):
    pt = porttrace()
    _, client, ports = connection(workload, netns)
    pt.stop()
    evs = pt.events(netns)
    raw = pt.events(netns, raw=True)

    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    mine = [e for e in evs if e["cookie"] == cookie]
    first = mine[0]
    assert (first["type"], first["old"], first["new"]) == ("state", "CLOSE", "SYN_SENT"), fmt_events(mine)
    assert first["lport"] is None
    # null in the text itself, not 0 nor a missing key.
    line = next(l for l in raw if f'"cookie":{cookie},' in l and '"new":"SYN_SENT"' in l)
    assert '"lport":null,' in line, line
    assert mine[1]["lport"] == ports["cport"], fmt_events(mine)
    assert all(e["lport"] == ports["cport"] for e in mine[1:]), fmt_events(mine)


def test_owner_of_sockets_older_than_the_trace_is_the_one_proc_named(porttrace, netns, workload):
    """A listener that predates porttrace has no owner in the kernel: the
    socket table read at start-up names the server (from /proc), and its
    later transitions, those of the connections it accepts, and its close,
    which runs in the server's context, name the server too; never a
    made-up pid 0."""
    server = start_server(workload, netns)
    pt = porttrace()
    _, client, _ = connection(workload, netns, server=server)
    evs = pt.stop().events(netns)

    ccookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    acookie = state_cookie(evs, old="LISTEN", new="SYN_RECV")
    assert transitions(evs, acookie) == PASSIVE_OPEN_CLOSE, fmt_events(evs)
    assert select(evs, old="LISTEN", new="CLOSE"), fmt_events(evs)
    for e in evs:
        if e["cookie"] == ccookie:
            assert e["pid"] == client.pid, fmt_events([e])
        else:
            assert e["pid"] == server.pid and e["comm"] == "python3", fmt_events([e])


def test_child_of_an_older_autobound_listener_gives_no_port_back(porttrace, netns, workload):
    """A listener that predates porttrace, on a port listen() picked
    itself: the kernel keeps nothing for its children, whose sockets carry
    no bind() lock, so only the child's own LISTEN -> SYN_RECV tells that
    its close gives nothing back. The port goes back once, when the
    listener closes."""
    code = scenario(SERVER, ADDR=None, PORT=None, CLOSE_FIRST=False).replace(
        "s = listener(ADDR, PORT)", "s = socket.socket()\ns.listen()")
    server = workload(netns, code)
    sport = server.expect()["port"]
    pt = porttrace()
    connection(workload, netns, port=sport, server=server)
    evs = pt.stop().events(netns)

    child = state_cookie(evs, old="LISTEN", new="SYN_RECV")
    assert transitions(evs, child) == PASSIVE_OPEN_CLOSE, fmt_events(evs)
    lcookie = state_cookie(evs, old="LISTEN", new="CLOSE")
    released = select(evs, type="port", event="release", lport=sport)
    assert [e["cookie"] for e in released] == [lcookie], fmt_events(evs)
    assert not select(evs, type="port", event="time-wait", lport=sport), fmt_events(evs)


FORKED_CONNECT = r'''
c = socket.socket()                  # made by the parent...
child = os.fork()
if child == 0:
    c.connect(("127.0.0.1", 8080))   # ...connected by the child
    report(port=port(c))
    c.close()
    os._exit(0)
c.close()
os.waitpid(child, 0)
report(child=child, done=True)
'''


def test_owner_is_the_process_that_connects(porttrace, netns, workload):
    pt = porttrace()
    server = start_server(workload, netns, close_first=True)
    server.go()
    pid, (child_report, parent_report) = run_once(workload, netns, FORKED_CONNECT)
    child = parent_report["child"]
    assert child_report["pid"] == child != pid
    server.go("stop")
    assert server.finish() == 0
    evs = pt.stop().events(netns)
    cookie = state_cookie(evs, old="CLOSE", new="SYN_SENT")
    mine = [e for e in evs if e["cookie"] == cookie]
    assert {e["pid"] for e in mine} == {child}, fmt_events(mine)
    alloc = one(mine, type="port", event="alloc")
    assert alloc["lport"] == child_report["port"]
