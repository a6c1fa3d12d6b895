#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""make bench: porttrace's overhead and throughput, measured side by side.

Every overhead figure is a ratio of runs taken in this one invocation,
alternating without and with porttrace (A B A B ...), so that a noisy,
shared machine moves both sides of each pair alike. Loopback only, in a
network namespace made here and deleted at the end. The same pairs with
tools/ptfloor (every hook attached, every program returning at once) give
the floor: what the hook points cost before porttrace does any work. Both
storms run: connections closed with RST and with FIN (time-wait), which go
through different transitions and softirq paths. A bpftrace one-liner runs
against the same storms as a peer (full bench only; installed from Debian
here if missing). The host tax times syscalls that touch no socket with
and without porttrace attached.

  bench.py --build DIR [--quick]
  bench.py --build DIR --soak [--soak-seconds S]   (make bench-soak)

The soak is a run of its own (ten minutes by default): 100,000 short-lived
processes, each connecting to two of 200,000 distinct destinations
(127.0.0.0/8, all of it on loopback) and closing first, so that every
connection holds its port in TIME_WAIT for 60 s, under porttrace
--exhaustion --timeline writing a JSON log. It says porttrace's peak RSS,
its RSS at the end against after the first quarter (once 60 s of
time-wait and the retirement minute have filled up), and its user CPU per
event in the last quarter against the first. Beside it, offline
'porttrace exhaustion' over two synthetic logs of the same length, one
with 1,000 destinations and one with 200,000, with a bind() and its
release every 100 connections (a move of the shared count): time per event.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

NS = f"ptbench-{os.getpid()}"
ADDR, PORT = "127.0.0.1", 9100


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def nsexec(*cmd):
    return ["ip", "netns", "exec", NS, *cmd]


class Porttrace:
    """porttrace writing a JSON log, started and stopped around one run."""

    def __init__(self, binary, log, extra=()):
        self.p = subprocess.Popen([binary, "--format", "json", "-o", log, *extra],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = log
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(log) and os.path.getsize(log) > 0:
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"porttrace exited: {self.p.stderr.read()}")
            time.sleep(0.01)
        raise RuntimeError("porttrace did not start within 10 s")

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        err = self.p.communicate(timeout=120)[1]
        tally = [line for line in err.splitlines() if "events written" in line]
        if self.p.returncode != 0 or not tally:
            raise RuntimeError(f"porttrace failed: {err}")
        words = tally[-1].split()
        res = {"events": int(words[1]), "lost": int(words[4])}
        # With -v: "lost in the kernel: N not taken (...), N hook runs skipped ..."
        why = [line for line in err.splitlines() if "lost in the kernel:" in line]
        if why:
            w = why[-1].split(":", 2)[2].split()
            res.update(not_taken=int(w[0]), skipped=int(w[8]))
        return res


class Floor:
    """tools/ptfloor: porttrace's hooks attached, every program returning at once."""

    def __init__(self, binary):
        self.p = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        if not self.p.stdout.readline().startswith("attached:"):
            raise RuntimeError(f"ptfloor failed: {self.p.communicate()[1]}")

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        err = self.p.communicate(timeout=60)[1]
        if self.p.returncode != 0:
            raise RuntimeError(f"ptfloor failed: {err}")


class Bpftrace:
    """The peer: Debian's bpftrace with a one-liner that prints every
    transition to a file, as a person would write it."""

    SCRIPT = ('tracepoint:sock:inet_sock_set_state { printf("%llu %d %s %d %d %d %d\\n", '
              'nsecs, pid, comm, args->sport, args->dport, args->oldstate, args->newstate); }')

    def __init__(self, log):
        self.log = log
        self.p = subprocess.Popen(["bpftrace", "-o", log, "-e", self.SCRIPT],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(log) and os.path.getsize(log) > 0:
                # "Attaching 1 probe..." comes just before the attach.
                time.sleep(0.5)
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"bpftrace exited: {self.p.stderr.read()}")
            time.sleep(0.01)
        raise RuntimeError("bpftrace did not start within 30 s")

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.communicate(timeout=120)
        with open(self.log, "rb") as f:
            lines = sum(1 for _ in f)
        os.unlink(self.log)
        return {"events": max(lines - 1, 0)}


def ensure_bpftrace():
    """bpftrace for the peer rows of the full bench, installed from Debian
    here rather than by make test, which does not need it. Returns why
    not, or None."""
    if subprocess.run(["sh", "-c", "command -v bpftrace"], capture_output=True).returncode == 0:
        return None
    for _ in range(12):  # other engineers' apt-get may hold dpkg's lock
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "bpftrace"], capture_output=True,
                           text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if r.returncode == 0:
            return None
        if "lock" not in r.stderr:
            break
        time.sleep(10)
    return "bpftrace could not be installed: " + (r.stderr.strip().splitlines() or ["?"])[-1]


def storm(portload, seconds, extra=(), close="rst"):
    out = subprocess.run(nsexec(portload, "-c", "2", "-d", str(seconds), "--close", close,
                                "--json", "-q", *extra, ADDR, str(PORT)),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def paired(args, label, pairs, seconds, run):
    """A storm alone, then one beside run(i, storm), pairs times."""
    ratios, base, traced = [], [], []
    for i in range(pairs):
        a = storm(args.portload, seconds)["rate"]
        b = run(i, lambda: storm(args.portload, seconds))
        base.append(a)
        traced.append(b["rate"])
        ratios.append(b["rate"] / a)
    return {"label": label, "base": statistics.median(base),
            "traced": statistics.median(traced), "ratio": statistics.median(ratios),
            "ratios": ratios}


def overhead(args, label, extra, pairs, seconds, tmp):
    per_conn, cpu = [], []
    lost = 0

    def traced(i, run_storm):
        nonlocal lost
        log = os.path.join(tmp, f"{label}-{i}.jsonl")
        pt = Porttrace(args.porttrace, log, list(extra))
        b = run_storm()
        cpu_s = pt.cpu_seconds()
        tally = pt.stop()
        os.unlink(log)
        per_conn.append(tally["events"] / max(b["attempted"], 1))
        lost += tally["lost"]
        cpu.append(1000 * cpu_s / max(tally["events"], 1))
        return b

    r = paired(args, label, pairs, seconds, traced)
    r.update(events_per_conn=statistics.median(per_conn), lost=lost,
             cpu_per_1000=statistics.median(cpu))
    return r


def storm_compare(args, close, pairs, seconds, tmp, raw=None, peer=True):
    """One storm (close: rst or fin) alone, beside porttrace, beside its
    floor and beside the peer, in turn within each pair (the tracers' order
    rotating from pair to pair), so that porttrace / floor is a ratio of
    runs minutes apart at most. Records porttrace lost (ring full, and hook
    runs the kernel skipped: recursion_misses) are summed over its runs."""
    names = ["porttrace", "floor"] + (["peer"] if peer else [])
    rates = {n: [] for n in ["base"] + names}
    lost = {"lost": 0, "not_taken": 0, "skipped": 0, "events": 0}
    per_conn, cpu, peer_events = [], [], []

    def run_porttrace(i):
        log = os.path.join(tmp, f"{close}-{i}.jsonl")
        opts = ["-v"] + (["--record-raw", raw] if raw and i == 0 else [])
        pt = Porttrace(args.porttrace, log, opts)
        b = storm(args.portload, seconds, close=close)
        cpu_s = pt.cpu_seconds()
        tally = pt.stop()
        os.unlink(log)
        for k in lost:
            lost[k] += tally.get(k, 0)
        per_conn.append(tally["events"] / max(b["attempted"], 1))
        cpu.append(1000 * cpu_s / max(tally["events"], 1))
        return b

    def run_floor(i):
        f = Floor(args.ptfloor)
        b = storm(args.portload, seconds, close=close)
        f.stop()
        return b

    def run_peer(i):
        bt = Bpftrace(os.path.join(tmp, f"bpftrace-{close}-{i}.txt"))
        b = storm(args.portload, seconds, close=close)
        peer_events.append(bt.stop()["events"] / max(b["attempted"], 1))
        return b

    runners = {"porttrace": run_porttrace, "floor": run_floor, "peer": run_peer}
    for i in range(pairs):
        rates["base"].append(storm(args.portload, seconds, close=close)["rate"])
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            rates[name].append(runners[name](i)["rate"])
    r = {"close": close, "base": statistics.median(rates["base"]), "lost": lost,
         "events_per_conn": statistics.median(per_conn), "cpu_per_1000": statistics.median(cpu)}
    for name in names:
        ratios = [t / b for t, b in zip(rates[name], rates["base"])]
        r[name] = {"rate": statistics.median(rates[name]), "ratio": statistics.median(ratios),
                   "ratios": ratios}
    over = [p / f for p, f in zip(rates["porttrace"], rates["floor"])]
    r["over_floor"] = {"ratio": statistics.median(over), "ratios": over}
    if peer:
        r["peer"]["events_per_conn"] = statistics.median(peer_events)
    return r


def host_tax(args, pairs, calls):
    """What porttrace attached costs a process that makes no socket call:
    getppid() and a 1-byte pipe read(), in ns per call, alone and beside
    porttrace (idle, writing to a file) and its floor, in turn."""
    def measure():
        out = subprocess.run([args.ptsyscall, "-n", str(calls)], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out)

    res = {n: {"getppid_ns": [], "pipe_read_ns": []} for n in ("base", "porttrace", "floor")}
    with tempfile.TemporaryDirectory(prefix="ptbench-tax-") as tmp:
        for i in range(pairs):
            for name in ("base", "porttrace", "floor") if i % 2 else ("base", "floor", "porttrace"):
                if name == "porttrace":
                    t = Porttrace(args.porttrace, os.path.join(tmp, "tax.jsonl"))
                elif name == "floor":
                    t = Floor(args.ptfloor)
                m = measure()
                if name != "base":
                    t.stop()
                for k in m:
                    if k in res[name]:
                        res[name][k].append(m[k])
    out = {}
    for k in ("getppid_ns", "pipe_read_ns"):
        out[k] = {"base": statistics.median(res["base"][k])}
        for name in ("porttrace", "floor"):
            ratios = [t / b for t, b in zip(res[name][k], res["base"][k])]
            out[k][name] = statistics.median(res[name][k])
            out[k][name + "_ratio"] = statistics.median(ratios)
            out[k][name + "_ratios"] = ratios
    return out


def decoder_throughput(args, raw):
    out = subprocess.run([args.ptreplay, "-s", "1" if args.quick else "3", raw],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["records_per_s"]


def time_wait_left():
    out = subprocess.run(["ip", "netns", "exec", NS, "ss", "-tanH", "state", "time-wait"],
                         capture_output=True, text=True).stdout
    return out.count("\n")


def memory(args, tmp, conns):
    # The rows before leave sockets in TIME_WAIT (the fleet rows' 12,000
    # destinations): porttrace would start by reading them all, and this
    # row is about the connections it makes. They are gone within 60 s.
    deadline = time.monotonic() + 75
    while time_wait_left() and time.monotonic() < deadline:
        time.sleep(1)
    log = os.path.join(tmp, "mem.jsonl")
    pt = Porttrace(args.porttrace, log, ["--timeline"])
    # One process churning through the connections: timelines fold them.
    subprocess.run(nsexec(args.portload, "-c", "1", "-n", str(conns), "-d", "600",
                          "--close", "rst", "-q", ADDR, str(PORT)),
                   check=True, capture_output=True)
    rss = pt.peak_rss_kib()
    pt.stop()
    os.unlink(log)
    return rss / 1024


def startup(args, tmp, tries):
    """Launch to the first event delivered, with connections already flowing."""
    times = []
    for i in range(tries):
        load = subprocess.Popen(nsexec(args.portload, "-c", "1", "-r", "2000", "-d", "30",
                                       "--close", "rst", "-q", ADDR, str(PORT)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        t0 = time.monotonic()
        p = subprocess.Popen([args.porttrace, "--format", "json"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()  # the header, written once attached
        p.stdout.readline()  # the first event
        times.append(time.monotonic() - t0)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
        load.terminate()
        load.wait()
    return statistics.median(times)


def dest_addr(i):
    """The i-th distinct destination address in 127.0.0.0/8, past 127.0.0.x."""
    i += 256
    return f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


SOAK_PORT = 9300


def soak_load(procs, per_proc, seconds):
    """procs short-lived processes, each connecting to per_proc destinations
    of its own and closing first, evenly over seconds. Runs in the
    namespace (the caller is inside it)."""
    import socket
    start = time.monotonic()
    live = 0
    for i in range(procs):
        due = start + seconds * i / procs
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 1:
            # Behind (a busy machine): the run stretches at the same
            # rate rather than catching up in a burst the state follows.
            start += now - due
        pid = os.fork()
        if pid == 0:
            try:
                for k in range(per_proc):
                    c = socket.socket()
                    c.connect((dest_addr(i * per_proc + k), SOAK_PORT))
                    c.close()
            finally:
                os._exit(0)
        live += 1
        # Reap those done; wait when 64 are still running.
        while live:
            done, _ = os.waitpid(-1, 0 if live > 64 else os.WNOHANG)
            if not done:
                break
            live -= 1
    while live:
        os.waitpid(-1, 0)
        live -= 1


class Sampler:
    """porttrace's RSS, peak RSS, user CPU and events written, as time goes."""

    def __init__(self, pt):
        self.pt, self.f, self.lines = pt, open(pt.log, "rb"), 0

    def sample(self):
        while True:
            chunk = self.f.read(1 << 20)
            if not chunk:
                break
            self.lines += chunk.count(b"\n")
        with open(f"/proc/{self.pt.p.pid}/status") as f:
            st = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("VmRSS", "VmHWM"))}
        with open(f"/proc/{self.pt.p.pid}/stat") as f:
            utime = int(f.read().rsplit(")", 1)[1].split()[11]) / os.sysconf("SC_CLK_TCK")
        return {"t": time.monotonic(), "rss": st["VmRSS"] / 1024, "hwm": st["VmHWM"] / 1024,
                "utime": utime, "events": self.lines}


# Time-wait lasts 60 s, then a destination that holds nothing is retired
# 60 s later (so is a process's timeline): until then state only grows.
SOAK_WARMUP = 130


def soak(args, tmp, seconds):
    procs = 100000 if seconds >= 600 else max(1000, int(100000 * seconds / 600))
    log = os.path.join(tmp, "soak.jsonl")
    # Only the soak's namespace: other work on the host is not its load.
    pt = Porttrace(args.porttrace, log, ["--exhaustion", "--timeline", "--netns", NS])
    sampler = Sampler(pt)
    s0 = sampler.sample()
    load = subprocess.Popen(nsexec(sys.executable, os.path.abspath(__file__), "--soak-load",
                                   str(procs), str(seconds)))
    samples = [s0]
    try:
        while load.poll() is None:
            time.sleep(1)
            samples.append(sampler.sample())
    except BaseException:
        pt.p.kill()
        raise
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    end = sampler.sample()
    samples.append(end)
    pt.stop()
    with open(os.path.join(args.build, "bench-soak-samples.jsonl"), "w") as f:
        for x in samples:
            f.write(json.dumps({k: round(v - s0["t"], 3) if k == "t" else v
                                for k, v in x.items()}) + "\n")
    if load.returncode:
        raise RuntimeError("the soak's load failed")
    # Quarters of the run as it went: a busy machine stretches the load.
    took = end["t"] - s0["t"]

    def at(t):
        return min(samples, key=lambda x: abs(x["t"] - s0["t"] - t))

    def per_event(a, b):
        return (b["utime"] - a["utime"]) / max(b["events"] - a["events"], 1)

    q1, q2, q3 = at(took / 4), at(took / 2), at(3 * took / 4)
    ref = at(max(took / 4, SOAK_WARMUP))
    return {"procs": procs, "dests": procs * 2, "seconds": round(took), "events": end["events"],
            "peak": end["hwm"], "rss_ref": ref["rss"], "ref_t": round(ref["t"] - s0["t"]),
            "rss_end": end["rss"], "cpu_q1": per_event(s0, q1), "cpu_q2": per_event(q1, q2),
            "cpu_q4": per_event(q3, end)}


def synthetic_log(path, dests, conns):
    """A log of conns connections (4 events each) to dests destinations,
    round robin, with a bind() and its release every 100 connections."""
    ev = ('{{"type":"{t}","t_ns":{ts},"cpu":0,"pid":{pid},"tid":{pid},"pstart_ns":1,"comm":"load",'
          '"cgroup":1,"netns":4026531840,"cookie":{c},"proto":"tcp","family":4,"laddr":"127.0.0.1",'
          '"lport":{lp},"raddr":"{ra}","rport":{rp},{rest}}}\n')
    with open(path, "w") as f:
        f.write('{"type":"header","schema":1,"porttrace":"0.1.0","host":"bench","kernel":"x",'
                '"clock":"CLOCK_MONOTONIC","start_mono_ns":1000000000,"start_realtime_ns":0,'
                '"ephemeral_range":[32768,60999]}\n')
        rng = '"range":[32768,60999],"ephemeral":true,"class":"registered"'
        for i in range(conns):
            ts, c, ra, lp = 1000000000 + i * 100000, i + 1, dest_addr(i % dests), 32768 + i % 28000
            pid = 100 + i % 50
            f.write(ev.format(t="state", ts=ts, pid=pid, c=c, lp="null", ra=ra, rp=80,
                              rest='"old":"CLOSE","new":"SYN_SENT","flags":3'))
            f.write(ev.format(t="state", ts=ts + 10, pid=pid, c=c, lp=lp, ra=ra, rp=80,
                              rest='"old":"SYN_SENT","new":"ESTABLISHED","flags":1'))
            f.write(ev.format(t="port", ts=ts + 20, pid=pid, c=c, lp=lp, ra=ra, rp=80,
                              rest=f'"event":"alloc","req_port":0,"err":null,"latency_ns":20000,{rng},"flags":65'))
            f.write(ev.format(t="port", ts=ts + 90, pid=pid, c=c, lp=lp, ra=ra, rp=80,
                              rest=f'"event":"release","req_port":0,"err":null,"latency_ns":0,{rng},"reason":"rst-sent","flags":1'))
            if i % 100 == 99:
                b = 10 ** 9 + i
                f.write(ev.format(t="port", ts=ts + 95, pid=pid, c=b, lp=60000, ra="0.0.0.0", rp=0,
                                  rest=f'"event":"bind","req_port":0,"err":null,"latency_ns":0,{rng},"flags":65'))
                f.write(ev.format(t="port", ts=ts + 99, pid=pid, c=b, lp=60000, ra="0.0.0.0", rp=0,
                                  rest=f'"event":"release","req_port":0,"err":null,"latency_ns":0,{rng},"reason":"socket-closed","flags":1'))


def offline_scaling(args, tmp, conns):
    """Seconds per event of 'porttrace exhaustion' for 1,000 and 200,000 destinations."""
    out = {}
    for dests in (1000, 200000):
        path = os.path.join(tmp, f"offline-{dests}.jsonl")
        synthetic_log(path, dests, conns)
        with open(path) as f:
            events = sum(1 for _ in f) - 1
        best = None
        for _ in range(2):
            t0 = time.monotonic()
            subprocess.run([args.porttrace, "exhaustion", path], check=True,
                           stdout=subprocess.DEVNULL)
            t = time.monotonic() - t0
            best = t if best is None else min(best, t)
        out[dests] = best / events
        os.unlink(path)
    return out


def soak_main(args):
    sh("ip", "netns", "add", NS)
    server = None
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=1000000")
        server = subprocess.Popen(nsexec(args.portload, "--server", "-c", "2", "-d",
                                         str(4 * args.soak_seconds + 120), "-q", "0.0.0.0",
                                         str(SOAK_PORT)),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        server.stdout.readline()
        with tempfile.TemporaryDirectory(prefix="ptsoak-") as tmp:
            off = offline_scaling(args, tmp, 25000 if args.soak_seconds < 600 else 100000)
            r = soak(args, tmp, args.soak_seconds)
    finally:
        if server:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "netns", "del", NS])
    ratio_off = off[200000] / off[1000]
    rows = [
        (f"soak: {r['procs']} processes, {r['dests']} destinations, {r['seconds']} s, "
         f"{r['events']} events: peak RSS", f"{r['peak']:.1f} MiB", "<= 64 MiB", r["peak"] <= 64),
        (f"soak: RSS at the end / at {r['ref_t']} s (the first quarter, at least the warm-up)",
         f"{r['rss_end']:.1f}/{r['rss_ref']:.1f} MiB = {r['rss_end'] / r['rss_ref']:.2f}x",
         "within 10%", abs(r["rss_end"] / r["rss_ref"] - 1) <= 0.10),
        ("soak: user CPU per event, last quarter / second (the first is the warm-up)",
         f"{r['cpu_q4'] * 1e6:.2f}/{r['cpu_q2'] * 1e6:.2f} us = {r['cpu_q4'] / r['cpu_q2']:.2f}x",
         "<= 1.2x", r["cpu_q4"] / r["cpu_q2"] <= 1.2),
        ("soak: user CPU per event, last quarter / first (warm-up: nothing retired yet)",
         f"{r['cpu_q4'] * 1e6:.2f}/{r['cpu_q1'] * 1e6:.2f} us = {r['cpu_q4'] / r['cpu_q1']:.2f}x",
         "-", None),
        ("offline exhaustion per event, 200,000 / 1,000 destinations",
         f"{off[200000] * 1e6:.2f}/{off[1000] * 1e6:.2f} us = {ratio_off:.2f}x", "<= 1.5x",
         ratio_off <= 1.5),
    ]
    width = max(len(x[0]) for x in rows)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"porttrace soak: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, load average {load}",
             f"| {'metric'.ljust(width)} | value | target | met |", f"|{'-' * (width + 2)}|---|---|---|"]
    for name, value, target, ok in rows:
        met = "-" if ok is None else "yes" if ok else "NO"
        lines.append(f"| {name.ljust(width)} | {value} | {target} | {met} |")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.build, "bench-soak.txt"), "w") as f:
        f.write(text + "\n")


# ---- fleet: --metrics (issue 18) ------------------------------------------

METRICS_PORT = 19655

SCRAPER = r"""
import json, sys, time, urllib.request
url, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
times, size, series = [], 0, 0
for i in range(n):
    time.sleep(gap)
    t0 = time.monotonic()
    body = urllib.request.urlopen(url, timeout=10).read()
    times.append(time.monotonic() - t0)
    size = len(body)
    series = sum(1 for l in body.splitlines() if l and not l.startswith(b"#"))
    build = [float(l.split()[1]) for l in body.splitlines() if l.startswith(b"porttrace_metrics_build_seconds ")]
times.sort()
print(json.dumps({"median_s": times[len(times) // 2], "max_s": times[-1], "bytes": size, "series": series,
                  "build_s": build[0] if build else 0}))
"""

HOLDER = r"""
import resource, socket, sys, time
first, n = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
keep = []
for i in range(first, first + n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 20000 + i)); s.listen(4)
    c = socket.create_connection(("127.0.0.1", 20000 + i))
    keep += [s, c, s.accept()[0]]
print("held", flush=True)
sys.stdin.readline()
"""


def fleet(args, pairs, seconds, quick):
    """--metrics: the storm's rate beside porttrace serving metrics and
    writing no log (scraped every second, as a busy Prometheus would), and
    one scrape's time and size at the destination cap, with twice or more
    as many destinations held."""
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"

    def start(extra):
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{NS}", args.porttrace, "--no-events",
                              "--metrics", f"127.0.0.1:{METRICS_PORT}", *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while subprocess.run(nsexec(sys.executable, "-c", f"import urllib.request; urllib.request.urlopen({url!r})"),
                             capture_output=True).returncode:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"porttrace --metrics did not serve: {p.communicate()[1]}")
            time.sleep(0.1)
        return p

    def stop(p):
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1]
        if p.returncode != 0:
            raise RuntimeError(f"porttrace --metrics failed: {err}")

    def traced(i, run_storm):
        p = start([])
        scraper = subprocess.Popen(nsexec(sys.executable, "-c", SCRAPER, url, str(seconds), "1"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        b = run_storm()
        scraper.wait()
        stop(p)
        return b

    r = paired(args, "--metrics, no log, scraped every 1 s", pairs, seconds, traced)
    scrapes = []
    caps = [(50, 100), (1000, 1000)] if quick else [(50, 200), (1000, 2000), (10000, 12000)]
    for cap, dests in caps:
        # Three descriptors a destination; a few thousand per holder.
        holders = [subprocess.Popen(nsexec(sys.executable, "-c", HOLDER, str(first), str(min(4000, dests - first))),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for first in range(0, dests, 4000)]
        p = None
        try:
            if any(h.stdout.readline().strip() != "held" for h in holders):
                raise RuntimeError("the destination holder failed")
            # Started after: its snapshot of the socket table finds them all.
            p = start(["--metrics-max-destinations", str(cap)])
            out = subprocess.run(nsexec(sys.executable, "-c", SCRAPER, url, "3" if quick else "10", "1.1"),
                                 check=True, capture_output=True, text=True).stdout
            scrapes.append(dict(json.loads(out), cap=cap, dests=dests))
        finally:
            if p:
                stop(p)
            for h in holders:
                h.stdin.close()
                h.wait()
    return r, scrapes


def fleet_rows(r, scrapes):
    rows = [(f"overhead, {r['label']}", f"{r['traced']:.0f}/{r['base']:.0f} conn/s = {r['ratio']:.3f}x",
             ">= 0.97x", r["ratio"] >= 0.97)]
    for s in scrapes:
        rows.append((f"scrape at --metrics-max-destinations {s['cap']} ({s['dests']} held)",
                     f"{s['median_s'] * 1000:.1f} ms median, {s['max_s'] * 1000:.1f} ms max, "
                     f"build {s['build_s'] * 1000:.1f} ms, "
                     f"{s['bytes'] / 1024:.0f} KiB, {s['series']} series", "", None))
    return rows


def report_bench(args, tmp, events):
    """porttrace report on a synthetic log of `events` events (8 processes,
    20 destinations, 10 minutes, a failure every 50 connections): seconds
    to write the page, its size, and how long chromium (when installed)
    takes to load it, beside a blank page."""
    import heapq
    log, page = os.path.join(tmp, "big.jsonl"), os.path.join(tmp, "big.html")
    base, span = 10 ** 12, 600 * 10 ** 9
    conns = events * 50 // 248  # 49 connections of 5 events, a failure of 3
    common = ('"cpu":0,"pid":{pid},"tid":{pid},"pstart_ns":1000,"comm":"client{p}","cgroup":1,'
              '"netns":4026531840,"cookie":{ck},"proto":"tcp","family":4,"laddr":"10.0.0.1",'
              '"lport":{lport},"raddr":"10.0.1.{d}","rport":{rport}')
    state = '{{"type":"state","t_ns":{t},' + common + ',"old":"{old}","new":"{new}"{extra},"flags":{fl}}}\n'
    port = ('{{"type":"port","t_ns":{t},"event":"{ev}",' + common + ',"req_port":0,"err":{err},'
            '"latency_ns":{lat},"range":[32768,60999],"ephemeral":true{extra},"flags":{fl}}}\n')
    n, later = 0, []
    with open(log, "w") as f:
        f.write('{"type":"header","schema":1,"porttrace":"bench","host":"bench","kernel":"-",'
                f'"clock":"CLOCK_MONOTONIC","start_mono_ns":{base},"start_realtime_ns":1700000000000000000,'
                '"ephemeral_range":[32768,60999]}\n')
        for c in range(conns):
            t = base + c * span // conns
            while later and later[0][0] <= t:
                n += 1
                f.write(heapq.heappop(later)[1])
            k = dict(pid=1000 + c % 8, p=c % 8, ck=c + 1, d=c % 20, rport=8000 + c % 20)
            if c % 50 == 49:
                f.write(state.format(t=t, lport="null", old="CLOSE", new="SYN_SENT", extra="", fl=3, **k))
                f.write(state.format(t=t + 5000, lport="null", old="SYN_SENT", new="CLOSE",
                                     extra=',"reason":"no-free-port"', fl=3, **k))
                f.write(port.format(t=t + 9000, ev="alloc-fail", lport="null", err='"EADDRNOTAVAIL"',
                                    lat=9000, extra="", fl=3, **k))
                n += 3
                continue
            lport = 32768 + (c * 7919) % 28232
            f.write(state.format(t=t, lport="null", old="CLOSE", new="SYN_SENT", extra="", fl=3, **k))
            f.write(state.format(t=t + 60000, lport=lport, old="SYN_SENT", new="ESTABLISHED", extra="",
                                 fl=1, **k))
            f.write(port.format(t=t + 70000, ev="alloc", lport=lport, err="null", lat=70000, extra="",
                                fl=65, **k))
            n += 3
            end = t + (c % 97 + 1) * 50 * 10 ** 6
            heapq.heappush(later, (end, state.format(t=end, lport=lport, old="ESTABLISHED", new="CLOSE",
                                                     extra=',"reason":"rst-sent"', fl=5, **k)))
            heapq.heappush(later, (end + 1, port.format(t=end + 1, ev="release", lport=lport, err="null",
                                                        lat=0, extra=',"reason":"rst-sent"', fl=1, **k)))
        while later:
            n += 1
            f.write(heapq.heappop(later)[1])
    t0 = time.monotonic()
    subprocess.run([args.porttrace, "report", log, "-o", page], check=True, capture_output=True)
    secs = time.monotonic() - t0
    size = os.path.getsize(page)
    load = blank = None
    chromium = "/usr/bin/chromium"
    if os.access(chromium, os.X_OK):
        empty = os.path.join(tmp, "blank.html")
        with open(empty, "w") as f:
            f.write("<!DOCTYPE html><p>blank</p>\n")

        def load_time(path):
            prof = tempfile.mkdtemp(prefix="ptbench-chromium-", dir=tmp)
            t0 = time.monotonic()
            subprocess.run(nsexec(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                  "--disable-background-networking", "--disable-component-update",
                                  "--disable-sync", f"--user-data-dir={prof}", "--dump-dom",
                                  "file://" + path),
                           check=True, capture_output=True, timeout=300)
            return time.monotonic() - t0
        blank = min(load_time(empty) for _ in range(2))
        load = min(load_time(page) for _ in range(2))
    os.unlink(log)
    return {"events": n, "seconds": secs, "bytes": size, "load": load, "blank": blank}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build")
    ap.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    ap.add_argument("--soak", action="store_true", help="the soak and offline scaling")
    ap.add_argument("--soak-seconds", type=int, default=600)
    ap.add_argument("--soak-load", nargs=2, type=int, metavar=("PROCS", "SECONDS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.soak_load:
        return soak_load(args.soak_load[0], 2, args.soak_load[1])
    if not args.build:
        ap.error("--build is required")
    args.porttrace = os.path.join(args.build, "porttrace")
    args.portload = os.path.join(args.build, "portload")
    args.ptreplay = os.path.join(args.build, "ptreplay")
    args.ptfloor = os.path.join(args.build, "ptfloor")
    args.ptsyscall = os.path.join(args.build, "ptsyscall")
    if args.soak:
        return soak_main(args)
    pairs, seconds = (1, 1) if args.quick else (5, 5)
    conns = 20000 if args.quick else 1000000
    # CI's bench-quick skips the peer; the full bench installs it if missing.
    no_peer = "skipped (quick)" if args.quick else ensure_bpftrace()

    sh("ip", "netns", "add", NS)
    server = None
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(nsexec(args.portload, "--server", "-c", "2", "-d", "3000",
                                         "-q", ADDR, str(PORT)),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        server.stdout.readline()
        with tempfile.TemporaryDirectory(prefix="ptbench-") as tmp:
            raw = os.path.join(tmp, "raw.bin")
            storms = [storm_compare(args, close, pairs, seconds, tmp,
                                    raw if close == "rst" else None, peer=not no_peer)
                      for close in ("rst", "fin")]
            runs = [overhead(args, "json log + --timeline", ["--timeline"], pairs,
                             seconds, tmp)]
            if b"--exhaustion" in subprocess.run([args.porttrace, "--help"],
                                                 capture_output=True).stdout:
                runs.append(overhead(args, "json log + --exhaustion", ["--exhaustion"], pairs,
                                     seconds, tmp))
            metrics, scrapes = fleet(args, pairs, seconds, args.quick)
            dec = decoder_throughput(args, raw)
            rss = memory(args, tmp, conns)
            start = startup(args, tmp, 1 if args.quick else 3)
            rep = report_bench(args, tmp, 100000 if args.quick else 1000000)
    finally:
        if server:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "netns", "del", NS])
    tax = host_tax(args, 3 if args.quick else 15, 50000 if args.quick else 200000)

    rows = []
    for st in storms:
        name = st["close"].upper()
        pt, fl = st["porttrace"], st["floor"]
        rows.append((f"{name} storm: porttrace, JSON log", f"{pt['rate']:.0f}/{st['base']:.0f} "
                     f"conn/s = {pt['ratio']:.3f}x", "", None))
        rows.append((f"{name} storm: floor, every hook, programs empty (ptfloor)",
                     f"{fl['rate']:.0f}/{st['base']:.0f} conn/s = {fl['ratio']:.3f}x", "", None))
        rows.append((f"{name} storm: porttrace / floor", f"**{st['over_floor']['ratio']:.3f}x**",
                     ">= 0.97x", st["over_floor"]["ratio"] >= 0.97))
        if no_peer:
            rows.append((f"{name} storm: bpftrace one-liner (peer)", no_peer, "", None))
        else:
            pe = st["peer"]
            rows.append((f"{name} storm: bpftrace one-liner (peer)",
                         f"{pe['rate']:.0f}/{st['base']:.0f} conn/s = {pe['ratio']:.3f}x "
                         f"({pe['events_per_conn']:.2f} lines/conn)", "", None))
        lo = st["lost"]
        rows.append((f"{name} storm: records lost", f"{lo['lost']} of {lo['events'] + lo['lost']} "
                     f"({lo['skipped']} hook runs skipped, {lo['not_taken']} not taken)", "0",
                     lo["lost"] == 0))
    for r in runs:
        rows.append((f"RST storm: porttrace, {r['label']}", f"{r['traced']:.0f}/{r['base']:.0f} "
                     f"conn/s = {r['ratio']:.3f}x", "", None))
    rows.append(("RST storm: events lost, those runs", str(sum(r["lost"] for r in runs)), "0",
                 all(r["lost"] == 0 for r in runs)))
    for k, what in (("getppid_ns", "getppid()"), ("pipe_read_ns", "1-byte pipe read()")):
        t = tax[k]
        rows.append((f"host tax: {what}, porttrace attached",
                     f"{t['porttrace']:.0f}/{t['base']:.0f} ns = {t['porttrace_ratio']:.3f}x "
                     f"(floor {t['floor_ratio']:.3f}x)", "", None))
    rows.append(("events written per connection (RST)", f"{storms[0]['events_per_conn']:.2f}",
                 "", None))
    rows.append(("decoder: decode+JSON+write, 1 core", f"{dec / 1e6:.2f} M records/s",
                 ">= 2.00 M/s", dec >= 2e6))
    rows.append((f"peak RSS after {conns} connections, --timeline", f"{rss:.1f} MiB",
                 "<= 32 MiB", rss <= 32))
    rows.append(("start-up: launch to first event", f"{start * 1000:.0f} ms", "<= 300 ms",
                 start <= 0.3))
    rows.append((f"report of a {rep['events']}-event log: time, page size",
                 f"{rep['seconds']:.1f} s, {rep['bytes'] / 2 ** 20:.1f} MiB", "<= 8 MiB",
                 rep["bytes"] <= 8 * 2 ** 20))
    if rep["load"] is not None:
        rows.append(("report page loaded by headless chromium (blank page)",
                     f"{rep['load']:.1f} s ({rep['blank']:.1f} s)", "", None))
    rows += fleet_rows(metrics, scrapes)
    rows.append(("porttrace CPU per 1000 events (RST)",
                 f"{storms[0]['cpu_per_1000'] * 1000:.1f} ms", "", None))

    width = max(len(r[0]) for r in rows)
    lines = [f"porttrace bench ({'quick' if args.quick else 'full'}): {os.cpu_count()} cores, "
             f"{os.uname().release}, {time.strftime('%Y-%m-%d %H:%M')}, {pairs} pairs of "
             f"{seconds}s, portload -c 2 --close rst|fin, paired-ratio medians"]
    lines.append(f"| {'metric'.ljust(width)} | value | target | met |")
    lines.append(f"|{'-' * (width + 2)}|---|---|---|")
    for name, value, target, ok in rows:
        met = "" if ok is None else ("yes" if ok else "NO")
        lines.append(f"| {name.ljust(width)} | {value} | {target} | {met} |")
    fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)
    for st in storms:
        for name in ("porttrace", "floor", "peer", "over_floor"):
            if name in st:
                lines.append(f"ratios {st['close']} {name}: {fmt(st[name]['ratios'])}")
    for r in runs + [metrics]:
        lines.append(f"ratios rst {r['label']}: {fmt(r['ratios'])}")
    for k in ("getppid_ns", "pipe_read_ns"):
        for name in ("porttrace", "floor"):
            lines.append(f"ratios host tax {k} {name}: {fmt(tax[k][name + '_ratios'])}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.build, "bench.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
