# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""porttrace report FILE -o report.html and --report FILE: a workload with
known numbers (a 50-port range filled, N connect()s failing with
EADDRNOTAVAIL) traced to a JSON log, its report rendered by a real headless
browser (Debian's chromium, run inside the test's namespace so that nothing
it might fetch could leave it): the DOM holds the lanes, failure marks that
add up to the failures the workload saw, the capacity line at the range's
size; a screenshot is not blank; the page makes no request and logs nothing
to the console. Then the same page from a live run's --report, and bad
input."""
import gzip
import html.parser
import json
import os
import re
import subprocess

import pytest

from conftest import PORTTRACE, check_call, run

CHROMIUM = "/usr/bin/chromium"
SMALL = (40000, 40049)
PORT = 18919  # porttrace -P PORT: only this test's sockets, whatever else runs
FAILS = 7
NAME = "<i>x</i>\u202e".encode()  # 11 bytes: fits a comm

# The workload: a listener, 50 connections that fill the range, FAILS more
# that fail, then the first 25 closed (time-wait) and the rest aborted.
WORKLOAD = r'''
# A name that is markup and a right-to-left override: the page must show it.
with open("/proc/self/comm", "wb") as f:
    f.write(NAME)
s = listener("127.0.0.1", PORT)
s.listen(256)  # every connection queued without an accept()
held = []
for i in range(50):
    c = socket.socket()
    c.connect(("127.0.0.1", PORT))
    held.append(c)
    time.sleep(0.005)
accepted = [s.accept()[0] for _ in held]
ports = sorted(port(c) for c in held)
errs = []
for i in range(FAILS):
    c = socket.socket()
    errs.append(errname(c.connect_ex(("127.0.0.1", PORT))))
    c.close()
    time.sleep(0.02)
time.sleep(0.2)
for c in held[:25]:
    c.close()
time.sleep(0.2)
for c in held[25:]:
    linger_rst(c)
    c.close()
report(errs=errs, ports=ports, done=True)
'''

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000"]


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []
        self.text = ""

    def classes(self):
        return self.attrs.get("class", "").split()

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, tag=None, cls=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes())
                and all(n.attrs.get(k.replace("_", "-")) == str(v) for k, v in attrs.items())]

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)


class Dom(html.parser.HTMLParser):
    """The DOM chromium dumped, as a tree (enough of one for these checks)."""
    VOID = {"meta", "link", "br", "img", "input", "hr", "source", "wbr", "area", "base", "col"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data


def browser(netns, tmp_path, url, *args):
    """chromium inside netns with a fresh profile; its stdout, stderr and
    the URLs the page asked the network for (from its net log)."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    netlog = str(profile) + ".netlog.json"
    r = subprocess.run(netns.cmd(CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}",
                                 *args, url),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(netlog) as f:
        log = json.load(f)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls, by_page = {}, set()
    for e in log["events"]:
        params, src = e.get("params", {}), e["source"]["id"]
        if "url" in params:
            urls.setdefault(src, params["url"])
        # The page's requests carry its origin; the browser's own (updates,
        # clock) none, and they cannot leave the namespace either.
        if e["type"] == start_job and params.get("initiator", "not an origin") != "not an origin":
            by_page.add(src)
    asked = sorted(urls.get(s, "?") for s in by_page if not urls.get(s, "?").startswith(("file:", "data:")))
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
    return r.stdout, console, asked


@pytest.fixture
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium is missing: make test installs it (DEB_PKGS)")


def set_range(ns, lo, hi):
    check_call(ns.cmd("sysctl", "-qw", f"net.ipv4.ip_local_port_range={lo} {hi}"))


def traced_workload(porttrace, netns, workload, *args):
    """porttrace -P PORT (and args) around the workload: its log, and what
    the workload saw."""
    set_range(netns, *SMALL)
    pt = porttrace("-P", str(PORT), *args)
    w = workload(netns, f"PORT = {PORT}\nFAILS = {FAILS}\nNAME = {NAME!r}\n" + WORKLOAD)
    res = w.expect(timeout=30)
    assert w.finish() == 0, w.stderr()
    pt.stop()
    assert res["errs"] == ["EADDRNOTAVAIL"] * FAILS
    assert res["ports"] == list(range(SMALL[0], SMALL[1] + 1))
    return pt, w.pid


def make_report(log, out, *args):
    r = run([PORTTRACE, "report", log, "-o", str(out), *args], timeout=60)
    assert r.returncode == 0, r.stderr
    return out


def check_dom(dom, pid):
    """The figures the workload's numbers fix, as drawn."""
    dests = dom.root.find("figure", "dest")
    assert dests, "no destination drawn"
    full = dests[0]
    assert f"127.0.0.1:{PORT}" in full.find("h3")[0].all_text()
    assert (full.attrs["data-capacity"], full.attrs["data-peak"], full.attrs["data-failures"]) == \
        ("50", "50", str(FAILS))
    occ = full.find("svg", "occ")[0]
    # The capacity line at the range's size: where the peak of 50 is drawn.
    cap = occ.find("line", "capacity")
    assert len(cap) == 1 and cap[0].attrs["data-capacity"] == "50"
    peak = occ.find("circle", "peak")[0]
    assert float(cap[0].attrs["y1"]) == pytest.approx(float(peak.attrs["cy"]), abs=0.2)
    assert "capacity: 50 ports" in cap[0].all_text()
    # Failure marks, each with its count: as many as the workload saw.
    marks = occ.find(cls="fail")
    assert marks and sum(int(m.attrs["data-count"]) for m in marks) == FAILS
    assert all("EADDRNOTAVAIL" in m.all_text() for m in marks)
    for layer in ("established", "timewait"):
        assert occ.find("path", layer), f"no {layer} layer"
    assert full.find("svg", "lat"), "no latency chart"
    assert full.find("table", "fig"), "no table of the figures"
    # The workload's swimlanes: a lane per port of the range, its failures.
    proc = dom.root.find("figure", "proc", data_pid=pid)
    assert len(proc) == 1, f"no swimlanes of pid {pid}"
    # Its name is text: no element made of it, the override shown, not obeyed.
    title = proc[0].find("h3")[0]
    assert "<i>x</i>\\xe2\\x80\\xae" in title.all_text() and not title.find("i")
    assert "\u202e" not in dom.root.all_text()
    lanes = [int(l.attrs["data-port"]) for l in proc[0].find("g", "lane") if "data-port" in l.attrs]
    assert sorted(p for p in lanes if SMALL[0] <= p <= SMALL[1]) == list(range(SMALL[0], SMALL[1] + 1))
    assert sum(int(m.attrs["data-count"]) for m in proc[0].find(cls="fail")) == FAILS
    lives = proc[0].find("g", "life")
    assert lives and all(l.find("title") for l in lives), "a life without its <title>"
    assert any(l.find("rect", "timewait") for l in lives), "no time-wait drawn"
    # The answer first.
    failcount = dom.root.find("span", "failcount", data_err="EADDRNOTAVAIL")
    assert len(failcount) == 1 and failcount[0].attrs["data-count"] == str(FAILS)
    assert dom.root.find(id="sum-fullest")
    listen = dom.root.find("table", id="listen-table")[0].all_text()
    assert f"127.0.0.1:{PORT}" in listen and "loopback" in listen


def test_report_renders_in_a_browser(porttrace, netns, workload, chromium, tmp_path):
    pt, pid = traced_workload(porttrace, netns, workload)
    page = make_report(pt.path, tmp_path / "report.html")
    text = page.read_text()
    assert "://" not in text, "the page names a URL"
    assert os.path.getsize(page) < 2 * 1024 * 1024
    # The same log rotated, its older half gzipped: the same page.
    with open(pt.path) as f:
        lines = f.readlines()
    rotated = tmp_path / "rotated.jsonl"
    with gzip.open(f"{rotated}.1.gz", "wt") as f:
        f.writelines(lines[:len(lines) // 2])
    rotated.write_text("".join(lines[len(lines) // 2:]))
    assert make_report(str(rotated), tmp_path / "rotated.html").read_text() == text

    dom_text, console, asked = browser(netns, tmp_path, f"file://{page}", "--dump-dom")
    check_dom(Dom(dom_text), pid)
    assert console == [], f"console messages: {console}"
    assert asked == [], f"the page asked the network for {asked}"

    shot = tmp_path / "shot.png"
    browser(netns, tmp_path, f"file://{page}", "--window-size=1100,1600", f"--screenshot={shot}")
    from PIL import Image
    img = Image.open(shot).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    counts = {c: n for n, c in colours}
    assert len(colours) >= 8, f"a blank screenshot? {len(colours)} colours"
    # Okabe-Ito blue (established) fills the chart; vermillion marks failures.
    assert counts.get((0, 114, 178), 0) > 5000, "no established ports drawn"
    assert counts.get((213, 94, 0), 0) > 20, "no failure marks drawn"


def test_detector_sees_console_and_requests(netns, chromium, tmp_path):
    """The checks above can fail: a page that logs an error and fetches is
    caught by them."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><script>console.error("boom");'
                   'fetch("http://127.0.0.1:9/x").catch(function(){});</script>')
    _, console, asked = browser(netns, tmp_path, f"file://{bad}", "--dump-dom")
    assert any("boom" in l for l in console), console
    assert asked == ["http://127.0.0.1:9/x"], asked


def test_live_report_at_exit(porttrace, netns, workload, chromium, tmp_path):
    """--report FILE on a live run: written at exit, the page the log
    gives offline, figure for figure."""
    live = tmp_path / "live.html"
    pt, pid = traced_workload(porttrace, netns, workload, "--report", str(live))
    assert live.exists(), pt.stderr
    offline = make_report(pt.path, tmp_path / "offline.html")
    assert live.read_text() == offline.read_text()
    dom_text, console, asked = browser(netns, tmp_path, f"file://{live}", "--dump-dom")
    check_dom(Dom(dom_text), pid)
    assert console == [] and asked == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".live")] == []


def one_line_error(r, *words):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {r.stderr!r}"
    assert lines[0].startswith("porttrace: ")
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_report_bad_input(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"type":"header","schema":1,"porttrace":"0.1.0","host":"h","kernel":"k",'
                   '"clock":"CLOCK_MONOTONIC","start_mono_ns":1000,"start_realtime_ns":2000,'
                   '"ephemeral_range":[40000,40049]}\n')
    old = tmp_path / "old.html"
    old.write_text("the report of yesterday\n")

    # An unreadable log: one line, non-zero, and the report already there
    # is left as it was, with nothing beside it.
    r = run([PORTTRACE, "report", str(tmp_path / "missing.jsonl"), "-o", str(old)])
    assert r.returncode != 0
    one_line_error(r, "missing.jsonl", "No such file or directory")
    assert old.read_text() == "the report of yesterday\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "old.html"]

    # A log that is a directory.
    r = run([PORTTRACE, "report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.returncode != 0
    one_line_error(r, "Is a directory")

    # An unwritable -o: a missing folder, a folder, a read-only folder.
    for out, why in ((tmp_path / "no" / "such" / "r.html", "No such file or directory"),
                     (tmp_path, "Is a directory")):
        r = run([PORTTRACE, "report", str(log), "-o", str(out)])
        assert r.returncode != 0
        one_line_error(r, str(out), why)
    ro = tmp_path / "ro"
    ro.mkdir()
    check_call(["chattr", "+i", str(ro)])
    try:
        r = run([PORTTRACE, "report", str(log), "-o", str(ro / "r.html")])
    finally:
        check_call(["chattr", "-i", str(ro)])
    assert r.returncode != 0
    one_line_error(r, "r.html", "Operation not permitted")

    # Usage: no -o, no log, a bad number.
    for argv in (["report", str(log)], ["report", "-o", str(tmp_path / "a.html")],
                 ["report", str(log), "-o", str(tmp_path / "a.html"), "--dests", "0"]):
        r = run([PORTTRACE, *argv])
        assert r.returncode == 2, (argv, r.stderr)

    # A good log with no events still makes a page.
    r = run([PORTTRACE, "report", str(log), "-o", str(tmp_path / "empty.html")])
    assert r.returncode == 0, r.stderr
    assert "No port" in (tmp_path / "empty.html").read_text()


def test_live_report_unwritable_is_said_first(tmp_path):
    """A live run with an unusable --report stops before attaching."""
    r = run([PORTTRACE, "--report", str(tmp_path / "no" / "r.html"), "-d", "5"])
    assert r.returncode == 1
    line = one_line_error(r, "r.html", "No such file or directory")
    assert "events written" not in line
