# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""
The service files of deploy/, as "make install" puts them, checked by the
tools that will read them: systemd-analyze, logrotate (with the SIGHUP that
follows a rotation), promtool, and porttrace itself for the DaemonSet's
arguments.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import PORTTRACE, TIMEOUT, Porttrace, run, run_once

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
DEPLOY = os.path.join(ROOT, "deploy")


@pytest.fixture
def installed():
    """make install into a temporary DESTDIR; its root."""
    d = tempfile.mkdtemp(prefix="porttrace-install-")
    build = os.path.dirname(os.path.abspath(PORTTRACE))
    r = run(["make", "-s", "-C", ROOT, f"OUTPUT={build}", f"DESTDIR={d}", "PREFIX=/usr/local", "install"], timeout=120)
    assert r.returncode == 0, f"make install: {r.stdout}{r.stderr}"
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_make_install_puts_every_service_file(installed):
    for rel in ("usr/local/sbin/porttrace", "usr/local/share/man/man8/porttrace.8",
                "usr/local/lib/systemd/system/porttrace.service", "etc/logrotate.d/porttrace",
                "usr/local/share/porttrace/porttrace-daemonset.yaml",
                "usr/local/share/porttrace/porttrace-alerts.yml"):
        assert os.path.isfile(os.path.join(installed, rel)), f"make install left out {rel}"


def test_systemd_unit_verifies_and_is_hardened(installed):
    unit = os.path.join(installed, "usr/local/lib/systemd/system/porttrace.service")
    with open(unit) as f:
        text = f.read()
    assert "ExecStart=/usr/local/sbin/porttrace " in text
    # Verified where it was installed to: its binary and man page.
    path = os.path.join(installed, "porttrace.service")
    with open(path, "w") as f:
        f.write(text.replace("/usr/local/sbin/porttrace", os.path.join(installed, "usr/local/sbin/porttrace")))
    env = dict(os.environ, MANPATH=os.path.join(installed, "usr/local/share/man"))
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, env=env, timeout=60)
    # systemd-analyze exits 0 on unknown keys; any word about the unit is a defect.
    assert r.returncode == 0 and "porttrace.service" not in r.stderr, f"systemd-analyze verify:\n{r.stderr}"
    for key in ("CapabilityBoundingSet=", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes"):
        assert key in text, f"the unit lacks {key}"
    caps = next(l for l in text.splitlines() if l.startswith("CapabilityBoundingSet=")).split("=", 1)[1].split()
    assert set(caps) <= {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}, caps
    # Its command line is one porttrace accepts.
    exec_args = next(l for l in text.splitlines() if l.startswith("ExecStart=")).split()[1:]
    r = run([PORTTRACE, *exec_args, "--help"])
    assert r.returncode == 0, r.stderr


def test_alert_rules_check():
    r = run(["promtool", "check", "rules", os.path.join(DEPLOY, "porttrace-alerts.yml")])
    assert r.returncode == 0 and "SUCCESS: 3 rules found" in r.stdout, r.stdout + r.stderr


def test_daemonset_runs_what_it_says(netns):
    """The manifest's essentials, and its arguments started for real (in a
    test namespace: the metrics port binds its loopback only)."""
    import yaml

    with open(os.path.join(DEPLOY, "porttrace-daemonset.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]
    spec = pod["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    c = spec["containers"][0]
    assert set(c["securityContext"]["capabilities"]["add"]) >= {"BPF", "PERFMON", "NET_ADMIN"}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/sys/kernel/btf", "/sys/fs/cgroup"} <= mounts, mounts
    port = pod["metadata"]["annotations"]["prometheus.io/port"]
    assert any(a.endswith(f":{port}") for a in c["args"]), c["args"]
    r = run(["nsenter", f"--net=/run/netns/{netns.name}", PORTTRACE, *c["args"], "--duration", "1"], timeout=60)
    assert r.returncode == 0, f"porttrace {c['args']}: {r.stderr}"


CONNECT = r"""
s = listener("127.0.0.1", PORT)
c = socket.create_connection(("127.0.0.1", PORT))
a, _ = s.accept()
c.close()
a.close()
report(done=True)
"""


def test_logrotate_then_sighup_loses_nothing(netns, workload, tmp_path):
    """The shipped logrotate config, run by the real logrotate on a live
    log; its postrotate signal goes to this porttrace only."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    log = logdir / "porttrace.jsonl"
    with open(os.path.join(DEPLOY, "porttrace.logrotate")) as f:
        conf = f.read()
    live = Porttrace(str(tmp_path), [], path=str(log))
    try:
        run_once(workload, netns, CONNECT, PORT=8080)
        conf = conf.replace("/var/log/porttrace/porttrace.jsonl", str(log))
        # The signal goes to this porttrace, by its pid, not to any other.
        start = conf.index("postrotate") + len("postrotate")
        conf = conf[:start] + f"\n\t\tkill -HUP {live.proc.pid}\n\t" + conf[conf.index("endscript"):]
        cpath = tmp_path / "logrotate.conf"
        cpath.write_text(conf)
        r = run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(cpath)], timeout=60)
        assert r.returncode == 0, f"logrotate: {r.stdout}{r.stderr}"
        rotated = logdir / "porttrace.jsonl.1"
        assert rotated.exists(), os.listdir(logdir)
        # porttrace's new file starts with its header; events follow it.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not (log.exists() and '"type":"header"' in log.read_text()):
            time.sleep(0.05)
        run_once(workload, netns, CONNECT, PORT=8081)
        live.stop()
    finally:
        live.kill()
    first = [json.loads(l) for l in rotated.read_text().splitlines()]
    second = [json.loads(l) for l in log.read_text().splitlines()]
    assert first[0]["type"] == "header" and second[0]["type"] == "header", (first[:1], second[:1])

    def mine(evs, port):
        return [e for e in evs if e.get("netns") == netns.inode and port in (e.get("lport"), e.get("rport"))]

    assert mine(first, 8080), "the first connection is not in the rotated log"
    assert mine(second, 8081), "the connection after SIGHUP is not in the new log"
    assert not mine(second, 8080) and not mine(first, 8081)
    # Nothing lost: every event written is in one of the two files.
    events = sum(1 for e in first + second if e["type"] in ("state", "port", "lost"))
    assert events == live.tally()[0], (events, live.tally())
