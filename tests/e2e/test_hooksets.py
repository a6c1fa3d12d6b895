# SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
"""Which hooks serve the socket calls: fentry/fexit where the kernel allows
them, the syscall tracepoints otherwise or when PORTTRACE_SYSCALL_HOOKS=1
asks; never both. (Both sets are run side by side on a kernel that has
fentry by make test-kernels.)"""
import os
import subprocess

import pytest

from conftest import PORTTRACE, TIMEOUT

ENV = "PORTTRACE_SYSCALL_HOOKS"
FN_HOOKS = 11
SYSCALL_TRACEPOINTS = 9


def verbose_run(value, tmp_path):
    env = dict(os.environ)
    env.pop(ENV, None)
    if value is not None:
        env[ENV] = value
    return subprocess.run([PORTTRACE, "-v", "-d", "0.2", "-o", str(tmp_path / "log.jsonl")], env=env,
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                          timeout=TIMEOUT)


def said(stderr, prefix):
    lines = [l[len(prefix):] for l in stderr.splitlines() if l.startswith(prefix)]
    assert len(lines) == 1, stderr
    return lines[0]


def attached(stderr):
    hooks = said(stderr, "porttrace: attached: ").split()
    fn = [h for h in hooks if h.startswith(("fentry/", "fexit/"))]
    tp = [h for h in hooks if h.startswith("tracepoint/syscalls/")]
    return fn, tp


@pytest.mark.parametrize("value", [None, "0"], ids=["unset", "zero"])
def test_the_set_attached_is_the_set_named(value, tmp_path):
    """Whatever this kernel allows, -v names one set, says why, and exactly
    that set is attached."""
    r = verbose_run(value, tmp_path)
    assert r.returncode == 0, r.stderr
    why = said(r.stderr, "porttrace: socket-call hooks: ")
    fn, tp = attached(r.stderr)
    if why.startswith("fentry/fexit"):
        assert (len(fn), tp) == (FN_HOOKS, []), r.stderr
    else:
        assert why.startswith("syscall tracepoints (no fentry/fexit: ") and ENV not in why, why
        assert (fn, len(tp)) == ([], SYSCALL_TRACEPOINTS), r.stderr


def test_forced_syscall_tracepoints(tmp_path):
    r = verbose_run("1", tmp_path)
    assert r.returncode == 0, r.stderr
    assert said(r.stderr, "porttrace: socket-call hooks: ") == \
        f"syscall tracepoints (no fentry/fexit: {ENV}=1)"
    fn, tp = attached(r.stderr)
    assert (fn, len(tp)) == ([], SYSCALL_TRACEPOINTS), r.stderr


@pytest.mark.parametrize("value", ["yes", "2", " 1"])
def test_bad_value_is_refused(value, tmp_path):
    r = verbose_run(value, tmp_path)
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("libbpf:")]
    assert lines == [f"porttrace: {ENV} must be 0 or 1, not '{value}'"], r.stderr
