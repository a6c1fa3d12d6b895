# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""
Fleet: porttrace's metrics read by the real Prometheus server and
node_exporter (Debian's packages), its service files checked by the tools
that will run them, and owners named by the cgroups the test makes.

The workload runs in a namespace with the 4-port range; Prometheus and
porttrace's metrics port sit on the loopback of a second namespace with the
default range, so that scrapes and queries take no port of the tiny range.
The workload is a python3 under a name of its own (a symlink) inside a
cgroup the test creates, so that owner series name it and nothing else.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import uuid

import pytest

from conftest import PORTTRACE, PYTHON, RANGE, TIMEOUT, Netns, check_call, run

DEPLOY = os.path.join(os.path.dirname(__file__), "../../deploy")
PROM_PORT = 9090
METRICS_PORT = 9655

# Four connections take every port of the range; two more find none; the
# client closes first, so all four sit in TIME-WAIT.
EXHAUST = r'''
srv = listener("127.0.0.1", 8080)
step()
held, fails = [], []
for i in range(6):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", 8080))
        held.append(c)
    except OSError as e:
        fails.append(errname(e.errno))
accepted = [srv.accept()[0] for _ in held]
for c in held:
    c.close()
for a in accepted:
    wait_eof(a)
    a.close()
report(held=len(held), fails=fails)
step()
'''


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    pytest.fail("no cgroup v2 mount")


class Cgroup:
    """A cgroup made under the v2 mount: rel like "/pt-x.slice/foo.service"."""

    def __init__(self, rel):
        self.root = cgroup2_mount()
        self.rel = rel
        self.path = self.root + rel
        self.made = []
        parts = [p for p in rel.split("/") if p]
        for i in range(len(parts)):
            d = os.path.join(self.root, *parts[: i + 1])
            if not os.path.isdir(d):
                os.mkdir(d)
                self.made.append(d)

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        # Anything left is moved back to the root first: rmdir needs it empty.
        for d in reversed(self.made):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = f.read().split()
                for p in pids:
                    with open(os.path.join(self.root, "cgroup.procs"), "w") as r:
                        r.write(p)
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture
def cgroups():
    made = []

    def make(rel):
        cg = Cgroup(rel)
        made.append(cg)
        return cg

    yield make
    for cg in reversed(made):
        cg.remove()


@pytest.fixture
def mon():
    """A namespace with the default range for Prometheus and the metrics port."""
    ns = Netns()
    check_call(["ip", "netns", "add", ns.name])
    try:
        check_call(ns.cmd("ip", "link", "set", "lo", "up"))
        ns.inode = os.stat(f"/run/netns/{ns.name}").st_ino
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="porttrace-fleet-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def named_python(tmp, name):
    """python3 under another name: its comm, in every event, is name."""
    path = os.path.join(tmp, name)
    os.symlink(os.path.realpath(PYTHON), path)
    return path


class Daemon:
    """A server in a namespace, stopped (its pid only) at teardown."""

    def __init__(self, ns, argv, log):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(ns.cmd(*argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)

    def output(self):
        with open(self.log) as f:
            return f.read()


def http_get(ns, url, timeout=TIMEOUT):
    """GET url from inside ns; the body, or None when it cannot connect."""
    code = textwrap.dedent(
        f"""
        import sys, urllib.request
        try:
            sys.stdout.write(urllib.request.urlopen({url!r}, timeout=5).read().decode())
        except OSError as e:
            sys.stderr.write(str(e)); sys.exit(3)
        """
    )
    r = run(ns.cmd(PYTHON, "-c", code), timeout=timeout)
    return r.stdout if r.returncode == 0 else None


def wait_http(ns, url, daemon):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = http_get(ns, url)
        if body is not None:
            return body
        if daemon is not None and daemon.proc.poll() is not None:
            pytest.fail(f"{url}: the server exited: {daemon.output()}")
        time.sleep(0.3)
    pytest.fail(f"{url}: nothing after 30 s: {daemon.output() if daemon else ''}")


def promql(ns, query):
    """The instant vector of query as {frozenset(labels): value}."""
    from urllib.parse import quote

    body = http_get(ns, f"http://127.0.0.1:{PROM_PORT}/api/v1/query?query={quote(query)}")
    assert body is not None, f"Prometheus did not answer {query}"
    data = json.loads(body)
    assert data["status"] == "success", data
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["data"]["result"]}


def one_value(ns, query, want, deadline):
    """Waits until query gives exactly one series of value want (Prometheus
    scrapes every second); returns it."""
    got = None
    while time.monotonic() < deadline:
        got = promql(ns, query)
        if len(got) == 1 and list(got.values())[0] == want:
            return got
        time.sleep(0.5)
    pytest.fail(f"{query}: want one series of {want}, got {got}")


def series_key(name, labels):
    """name{labels} with the labels sorted, as node_exporter writes them."""
    return name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")


def parse_exposition(text):
    """{series_key: value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            m = re.match(r"^(\w+)(?:\{(.*)\})?$", series)
            out[series_key(m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))] = float(value)
    return out


def test_prometheus_scrapes_the_workloads_own_counts(netns, mon, porttrace, workload, cgroups, tmp):
    name = f"ptfleet{os.getpid() % 100000}"
    unit = f"{name}.service"
    cg = cgroups(f"/pt-{uuid.uuid4().hex[:8]}.slice/{unit}")
    pt = porttrace("--metrics", f"127.0.0.1:{METRICS_PORT}", "--interval", "1",
                   prefix=("nsenter", f"--net=/run/netns/{mon.name}"))
    text = wait_http(mon, f"http://127.0.0.1:{METRICS_PORT}/metrics", None)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, f"promtool check metrics: {check.stdout}{check.stderr}"
    # Its own health: the ring's size (8 MiB by default) and how full the
    # reader found it, a fraction.
    health = parse_exposition(text)
    assert health[series_key("porttrace_ring_buffer_size_bytes", {})] == 8 << 20, text
    assert 0 <= health[series_key("porttrace_ring_buffer_fill_ratio", {})] <= 1, text

    data = os.path.join(tmp, "data")
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(textwrap.dedent(f"""\
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: porttrace
                static_configs:
                  - targets: ["127.0.0.1:{METRICS_PORT}"]
            """))
    prom = Daemon(mon, ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                        f"--web.listen-address=127.0.0.1:{PROM_PORT}"], os.path.join(tmp, "prometheus.log"))
    try:
        wait_http(mon, f"http://127.0.0.1:{PROM_PORT}/-/ready", prom)
        w = workload(netns, EXHAUST, python=named_python(tmp, name))
        cg.add(w.pid)
        w.go()
        r = w.expect()
        assert r["held"] == RANGE[1] - RANGE[0] + 1 and r["fails"] == ["EADDRNOTAVAIL"] * 2, r
        deadline = time.monotonic() + 30
        ns = f'netns="{netns.inode}"'
        dest = f'{ns},proto="tcp",raddr="127.0.0.1",rport="8080"'
        one_value(mon, f'porttrace_ephemeral_ports_capacity{{{ns},proto="tcp"}}', 4, deadline)
        one_value(mon, f'porttrace_port_allocation_failures_total{{{dest},errno="EADDRNOTAVAIL"}}', 2, deadline)
        one_value(mon, f'porttrace_destination_ports_peak{{{dest}}}', 4, deadline)
        one_value(mon, f'porttrace_destination_ports{{{dest},state="time_wait"}}', 4, deadline)
        one_value(mon, f'porttrace_port_allocations_total{{{dest}}}', 4, deadline)
        # The owner by name and unit, never by pid.
        got = one_value(mon, f'porttrace_owner_allocation_failures_total{{comm="{name}",errno="EADDRNOTAVAIL"}}', 2, deadline)
        labels = dict(next(iter(got)))
        assert labels.get("unit") == unit and "pid" not in labels, labels
        # Which destination fills first: the README's query.
        top = promql(mon, "topk(1, porttrace_destination_ports_occupied{raddr!=\"\"} / on (instance, netns, proto) "
                          "group_left porttrace_ephemeral_ports_capacity)")
        assert any(dict(k).get("netns") == str(netns.inode) and v == 1.0 for k, v in top.items()), top
        final = http_get(mon, f"http://127.0.0.1:{METRICS_PORT}/metrics")
        w.go("done")
        w.finish()
    finally:
        prom.stop()
    pt.stop()
    assert final is not None
    rules_against(tmp, final, netns)


def render(template, labels):
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)


def rules_against(tmp, text, netns):
    """promtool test rules: the shipped alerts over the series porttrace
    produced for netns (and its own health), five minutes of them."""
    import yaml

    rules_path = os.path.abspath(os.path.join(DEPLOY, "porttrace-alerts.yml"))
    with open(rules_path) as f:
        rules = {r["alert"]: r for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
    base = {"instance": "host:9655", "job": "porttrace"}
    inputs = []
    for series, value in parse_exposition(text).items():
        m = re.match(r"^(\w+)\{?(.*?)\}?$", series)
        name, labels = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if labels.get("netns") not in (None, str(netns.inode)) or name.startswith("porttrace_connect_latency"):
            continue
        labels.update(base)
        sel = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        # Counters rise from 0 after five minutes; gauges hold their value
        # ("Inf" cannot be repeated with "x").
        if name.endswith("_total"):
            values = f"0x4 {value!r}x10"
        else:
            values = " ".join(["Inf" if value == float("inf") else repr(value)] * 16)
        inputs.append({"series": sel, "values": values})
    dest = {**base, "netns": str(netns.inode), "proto": "tcp", "laddr": "127.0.0.1", "raddr": "127.0.0.1", "rport": "8080"}
    full = {**dest, "severity": "warning"}
    fail = {**base, "netns": str(netns.inode), "proto": "tcp", "raddr": "127.0.0.1", "rport": "8080",
            "errno": "EADDRNOTAVAIL", "severity": "critical"}
    del fail["job"]

    def expect(name, labels):
        ann = {k: render(v, labels) for k, v in rules[name]["annotations"].items()}
        return {"exp_labels": labels, "exp_annotations": ann}

    # Whether this run lost anything is the run's own business (a busy
    # host may make the kernel drop records): the alert must say what the
    # counters say.
    health = parse_exposition(text)
    lost = any(health.get(k, 0) > 0 for k in ("porttrace_kernel_records_lost_total",
                                               "porttrace_events_write_lost_total", "porttrace_bad_records_total"))
    losing = [expect("PorttraceLosingEvents", {**base, "severity": "warning"})] if lost else []

    test = {
        "rule_files": [rules_path],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "PorttraceDestinationNearlyFull", "exp_alerts": [expect("PorttraceDestinationNearlyFull", full)]},
                {"eval_time": "6m", "alertname": "PorttraceAllocationFailures", "exp_alerts": [expect("PorttraceAllocationFailures", fail)]},
                {"eval_time": "6m", "alertname": "PorttraceLosingEvents", "exp_alerts": losing},
            ],
        }],
    }
    path = os.path.join(tmp, "alerts.test.yml")
    with open(path, "w") as f:
        yaml.safe_dump(test, f)
    r = run(["promtool", "test", "rules", path])
    assert r.returncode == 0, f"promtool test rules:\n{r.stdout}{r.stderr}\ninputs: {json.dumps(inputs, indent=1)}"


def test_node_exporter_serves_the_textfile_and_agrees_on_time_wait(netns, porttrace, workload, tmp):
    """--metrics-textfile read by Debian's node_exporter (textfile
    collector), run in the workload's namespace so that its sockstat
    collector counts that namespace's sockets: node_sockstat_TCP_tw and
    porttrace's time-wait ports of the namespace are the same number."""
    tf = os.path.join(tmp, "textfile")
    os.mkdir(tf)
    prom = os.path.join(tf, "porttrace.prom")
    pt = porttrace("--metrics-textfile", prom, "--interval", "1")
    w = workload(netns, EXHAUST)
    w.go()
    r = w.expect()
    assert r["held"] == 4, r
    # Two rewrites later the file has the time-wait sockets.
    ns = f'netns="{netns.inode}"'
    tw = series_key("porttrace_destination_ports", {"netns": str(netns.inode), "proto": "tcp", "laddr": "127.0.0.1",
                                                     "raddr": "127.0.0.1", "rport": "8080", "state": "time_wait"})
    deadline = time.monotonic() + TIMEOUT
    series = {}
    while time.monotonic() < deadline and series.get(tw) != 4:
        time.sleep(0.5)
        with open(prom) as f:
            series = parse_exposition(f.read())
    assert series.get(tw) == 4, f"{tw} in the textfile: {series.get(tw)}"
    assert not [n for n in os.listdir(tf) if n != "porttrace.prom"], "a temporary file was left behind"
    ne = Daemon(netns, ["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
                        f"--collector.textfile.directory={tf}", "--collector.sockstat",
                        "--web.listen-address=127.0.0.1:9100"], os.path.join(tmp, "node_exporter.log"))
    try:
        # One scrape only: its own connection, once closed, is one more
        # time-wait socket that the answer does not count yet.
        body = wait_http(netns, "http://127.0.0.1:9100/metrics", ne)
    finally:
        ne.stop()
    got = parse_exposition(body)
    assert got.get("node_textfile_scrape_error") == 0, body[-2000:]
    assert got.get(tw) == 4, f"node_exporter does not serve {tw}"
    porttrace_tw = sum(v for k, v in got.items() if k.startswith("porttrace_destination_ports{") and ns in k
                       and 'state="time_wait"' in k)
    assert got.get("node_sockstat_TCP_tw") == porttrace_tw == 4, (got.get("node_sockstat_TCP_tw"), porttrace_tw)
    w.go("done")
    w.finish()
    pt.stop()


IDENT = r'''
step()
s = listener("127.0.0.1", PORT)
c = socket.create_connection(("127.0.0.1", PORT))
a, _ = s.accept()
c.close()
a.close()
report(done=True)
step()
'''


def test_owners_named_by_unit_container_and_pod(netns, porttrace, workload, cgroups, tmp):
    """A process in a systemd-style service cgroup and one in a
    Kubernetes-style container cgroup, both made by the test: events name
    the unit, or the container, its runtime and pod, and the namespace by
    its ip netns name."""
    tag = uuid.uuid4().hex[:8]
    unit = f"ptident-{tag}.service"
    pod = str(uuid.uuid4())
    ctr = uuid.uuid4().hex + uuid.uuid4().hex
    svc = cgroups(f"/pt-{tag}.slice/{unit}")
    kube = cgroups(f"/pt-{tag}-kubepods/besteffort/pod{pod}/{ctr}")
    pt = porttrace()
    pids = {}
    for name, cg, port in (("svc", svc, 8080), ("ctr", kube, 8081)):
        w = workload(netns, f"PORT = {port}\n" + IDENT)
        cg.add(w.pid)
        w.go()
        assert w.expect()["done"]
        pids[name] = w.pid
        w.go("done")
        w.finish()
    pt.stop()
    events = pt.events(netns)
    by = {name: [e for e in events if e.get("pid") == pid] for name, pid in pids.items()}
    assert by["svc"] and by["ctr"], fmt(events)
    for e in by["svc"]:
        assert e.get("unit") == unit and "container" not in e, e
    for e in by["ctr"]:
        assert (e.get("container"), e.get("runtime"), e.get("pod")) == (ctr, "cri", pod), e
        assert "unit" not in e, e
    assert all(e.get("netns_name") == netns.name for e in events if e.get("netns") == netns.inode)


def fmt(events):
    from conftest import fmt_events

    return fmt_events(events)


def test_names_in_text_timelines_and_report_and_netns_filter(netns, workload, cgroups, tmp):
    """Text events, the live timelines and the exhaustion report name the
    unit and the container; --netns NAME keeps only that namespace, though
    another one is busy at the same time."""
    tag = uuid.uuid4().hex[:8]
    unit = f"ptname-{tag}.service"
    ctr = uuid.uuid4().hex + uuid.uuid4().hex
    svc = cgroups(f"/pt-{tag}.slice/{unit}")
    kube = cgroups(f"/pt-{tag}-kubepods/burstable/pod{uuid.uuid4()}/{ctr}")
    other = Netns().create()
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    try:
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen([PORTTRACE, "--timeline", "--exhaustion", "--netns", netns.name, "-v"],
                                    stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        try:
            deadline = time.monotonic() + TIMEOUT
            while "attached:" not in open(err).read():
                assert time.monotonic() < deadline and proc.poll() is None, open(err).read()
                time.sleep(0.05)
            noise = workload(other, "PORT = 8082\n" + IDENT)
            noise.go()
            assert noise.expect()["done"]
            w1 = workload(netns, EXHAUST)
            svc.add(w1.pid)
            w1.go()
            assert w1.expect()["fails"] == ["EADDRNOTAVAIL"] * 2
            w2 = workload(netns, "PORT = 8081\n" + IDENT)
            kube.add(w2.pid)
            w2.go()
            assert w2.expect()["done"]
            for w in (w1, w2, noise):
                w.go("done")
                w.finish()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=TIMEOUT)
    finally:
        other.delete()
    text, report = open(out).read(), open(err).read()
    assert proc.returncode == 0, report
    short = f"cri:{ctr[:12]}"
    lines1 = [l for l in text.splitlines() if re.match(rf"^\s*[\d.]+\s+{w1.pid}\s", l)]
    lines2 = [l for l in text.splitlines() if re.match(rf"^\s*[\d.]+\s+{w2.pid}\s", l)]
    assert lines1 and all(l.endswith(f"[{unit}]") for l in lines1), "\n".join(lines1)
    assert lines2 and all(l.endswith(f"[{short}]") for l in lines2), "\n".join(lines2)
    assert f"PID {w1.pid} (python3)" in text and re.search(rf"PID {w1.pid} \(python3\)  cgroup \d+ \[{re.escape(unit)}\]", text), text[-3000:]
    assert re.search(rf"PID {w2.pid} \(python3\)  cgroup \d+ \[{short}\]", text), text[-3000:]
    assert re.search(rf"pid {w1.pid} python3 \[{re.escape(unit)}\]", report), report
    # --netns: nothing of the other namespace (its workload and port 8082).
    assert not re.search(rf"^\s*[\d.]+\s+{noise.pid}\s", text, re.M) and ":8082" not in text
    assert f"netns {other.inode}" not in report and f"netns {netns.inode} tcp" in report, report


@pytest.mark.parametrize("args,says", [
    (["--metrics", "1.2.3:80"], "invalid --metrics '1.2.3:80'"),
    (["--metrics", ":0"], "invalid --metrics ':0'"),
    (["--metrics", "[::1:9655"], "invalid --metrics '[::1:9655'"),
    (["--metrics-textfile", "/tmp/porttrace.txt"], "the name must end in .prom"),
    (["--metrics-max-destinations", "0"], "expected 1..10000"),
    (["--metrics-max-destinations", "10001"], "expected 1..10000"),
    (["--netns", "/etc/passwd"], "not a network namespace"),
    (["--netns", "pt-no-such-namespace"], "no such namespace"),
    (["--cgroup", "/pt-no-such-cgroup"], "no such cgroup"),
    (["--no-events", "-o", "/tmp/porttrace-never.jsonl"], "--no-events writes no log"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_fleet_options_are_one_line_and_exit_2(args, says):
    r = run([PORTTRACE, *args, "-d", "1"])
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and says in lines[0], (r.returncode, r.stderr)


def test_metrics_port_in_use_or_textfile_unwritable_stop_before_tracing(mon):
    """Said in one line, exit 1, before anything is attached (no header
    on standard output)."""
    holder = subprocess.Popen(mon.cmd(PYTHON, "-c", "import socket,sys; s=socket.socket(); "
                                      f"s.bind(('127.0.0.1',{METRICS_PORT})); s.listen(); print('up', flush=True); sys.stdin.read()"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "up"
        r = run(["nsenter", f"--net=/run/netns/{mon.name}", PORTTRACE, "--format", "json", "--metrics",
                 f"127.0.0.1:{METRICS_PORT}", "-d", "1"])
    finally:
        holder.stdin.close()
        holder.wait(timeout=TIMEOUT)
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout[:200])
    assert r.stderr.strip() == f"porttrace: serving metrics on 127.0.0.1:{METRICS_PORT}: Address already in use", r.stderr
    r = run([PORTTRACE, "--format", "json", "--metrics-textfile", "/nonexistent-dir/porttrace.prom", "-d", "1"])
    assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout[:200])
    assert r.stderr.strip() == "porttrace: cannot write metrics to /nonexistent-dir/porttrace.prom: No such file or directory", r.stderr


def test_idle_scrapers_do_not_hold_up_tracing(netns, mon, porttrace, workload):
    """Sixteen connections to the metrics port that never send a request
    (every slot libmicrohttpd has): tracing goes on, events reach the log
    as fast as ever, and once they go a scrape is served."""
    pt = porttrace("--metrics", f"127.0.0.1:{METRICS_PORT}", prefix=("nsenter", f"--net=/run/netns/{mon.name}"))
    wait_http(mon, f"http://127.0.0.1:{METRICS_PORT}/metrics", None)
    idle = subprocess.Popen(mon.cmd(PYTHON, "-c", "import socket,sys\n"
                                    f"s=[socket.create_connection(('127.0.0.1',{METRICS_PORT})) for _ in range(16)]\n"
                                    "print('idle', flush=True); sys.stdin.read()"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout.readline().strip() == "idle"
        w = workload(netns, "PORT = 8080\n" + IDENT)
        w.go()
        assert w.expect()["done"]
        # The log is flushed every second by the reader: within two, the
        # connection's events are there, scrapers or not.
        deadline = time.monotonic() + 2.5
        seen = False
        while time.monotonic() < deadline and not seen:
            time.sleep(0.1)
            with open(pt.path) as f:
                seen = any(f'"netns":{netns.inode},' in l and '"event":"alloc"' in l for l in f)
        assert seen, "the reader stalled while scrapers sat idle"
        w.go("done")
        w.finish()
    finally:
        idle.stdin.close()
        idle.wait(timeout=TIMEOUT)
    # A scrape takes text up to a second old: the next ones have it.
    deadline = time.monotonic() + TIMEOUT
    body = ""
    while time.monotonic() < deadline and f'netns="{netns.inode}"' not in body:
        body = wait_http(mon, f"http://127.0.0.1:{METRICS_PORT}/metrics", None)
        time.sleep(0.3)
    assert f'netns="{netns.inode}"' in body
    pt.stop()


def test_a_hostile_unit_name_is_shown_escaped(netns, workload, cgroups, tmp):
    """Whoever has a delegated cgroup subtree names its directories: a unit
    name with a terminal escape is shown through the one escaper in text
    events, never raw."""
    tag = uuid.uuid4().hex[:8]
    unit = f"evil\x1b[2J{tag}.service"
    cg = cgroups(f"/pt-{tag}.slice/{unit}")
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    with open(out, "wb") as o, open(err, "w") as e:
        proc = subprocess.Popen([PORTTRACE, "--netns", netns.name, "-v"], stdin=subprocess.DEVNULL, stdout=o, stderr=e)
    try:
        deadline = time.monotonic() + TIMEOUT
        while "attached:" not in open(err).read():
            assert time.monotonic() < deadline and proc.poll() is None, open(err).read()
            time.sleep(0.05)
        w = workload(netns, "PORT = 8080\n" + IDENT)
        cg.add(w.pid)
        w.go()
        assert w.expect()["done"]
        w.go("done")
        w.finish()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)
    text = open(out, "rb").read()
    assert b"\x1b" not in text, "a raw escape reached the terminal"
    assert f"[evil\\x1b[2J{tag}.service]".encode() in text, text[-1500:]


def test_cgroup_filter_keeps_one_subtree_in_the_kernel(netns, porttrace, workload, cgroups):
    """--cgroup SLICE: a process in a service below it is traced, softirq
    transitions of its sockets included; a process of the same namespace
    outside it is not, nor is one in a sibling whose name starts alike."""
    tag = uuid.uuid4().hex[:8]
    inside = cgroups(f"/pt-{tag}.slice/in.service")
    sibling = cgroups(f"/pt-{tag}.slice-other/out.service")
    # Listeners older than the trace: the start-up snapshot filters them
    # as the kernel would.
    old = {}
    for name, cg, port in (("in", inside, 9080), ("out", sibling, 9081)):
        w = workload(netns, f"s = listener('127.0.0.1', {port})\nreport(up=1)\nstep()\n")
        cg.add(w.pid)
        assert w.expect()["up"]
        old[name] = w
    pt = porttrace("--cgroup", f"/pt-{tag}.slice")
    pids = {}
    for name, cg, port in (("in", inside, 8080), ("out", sibling, 8081), ("root", None, 8082)):
        w = workload(netns, f"PORT = {port}\n" + IDENT)
        if cg:
            cg.add(w.pid)
        w.go()
        assert w.expect()["done"]
        pids[name] = w.pid
        w.go("done")
        w.finish()
    pt.stop()
    for w in old.values():
        w.go("done")
        w.finish()
    events = pt.events(netns)
    existing = [(e["lport"], e.get("pid")) for e in events if e.get("event") == "existing"]
    assert existing == [(9080, old["in"].pid)], fmt(events)
    events = [e for e in events if e.get("event") != "existing"]
    mine = [e for e in events if e.get("pid") == pids["in"]]
    kinds = {(e["type"], e.get("event"), e.get("old"), e.get("new")) for e in mine}
    # Its listener's handshake runs in softirq: the stored owner decides.
    assert ("state", None, "LISTEN", "SYN_RECV") in kinds and ("port", "alloc", None, None) in kinds, fmt(mine)
    others = [e for e in events if e.get("pid") != pids["in"]
              or 8080 not in (e.get("lport"), e.get("rport"))]
    assert not others, fmt(others)
