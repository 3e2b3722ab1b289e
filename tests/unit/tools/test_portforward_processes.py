"""tools/atp_ops/portforward/processes.py: alive / argv / parents, by psutil (Linux, macOS) or,
without psutil, by /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest
from atp_ops.portforward import processes, procfs


def test_psutil_answers(fake_host):
    fake_host.procs.update({
        10: fake_host.Proc(["session-manager-plugin", "", '{"SessionId": "s-1"}'], ppid=1),
        11: fake_host.Proc(["python3", "-m", "http.server"], ppid=10),
        12: fake_host.Proc(["defunct"], ppid=10, status=psutil.STATUS_ZOMBIE),
        13: fake_host.Proc(["root-owned"], ppid=11, readable=False),
    })
    assert processes.read_cmdline(10) == ["session-manager-plugin", '{"SessionId": "s-1"}']
    assert processes.read_cmdline(12) == []  # a zombie: exiting
    assert processes.read_cmdline(13) is None  # psutil.AccessDenied
    assert processes.read_cmdline(99) is None  # psutil.NoSuchProcess
    assert [processes.pid_alive(p) for p in (10, 11, 12, 13, 99, 0, None)] == [
        True, True, False, True, False, False, False]
    assert processes.ancestry(13) == [13, 11, 10]
    assert processes.ancestry(99) == [99]


def test_access_denied_and_zombie_states(monkeypatch, fake_host):
    def denied(pid):
        raise psutil.AccessDenied(pid)

    fake_host.procs[10] = fake_host.Proc(["x"])
    fake_host.procs[10].status = psutil.STATUS_DEAD
    assert processes.process_state(10) == (False, 1)
    monkeypatch.setattr(processes.psutil, "Process", denied)
    assert processes.process_state(10) == (True, 0) and processes.pid_alive(10)


def test_without_psutil_procfs_answers(monkeypatch):
    stats = {10: ("S", 1), 11: ("R", 10), 12: ("Z", 10)}
    monkeypatch.setattr(processes, "psutil", None)
    monkeypatch.setattr(procfs, "read_stat", stats.get)
    monkeypatch.setattr(procfs, "read_cmdline", {10: ["plugin"], 12: []}.get)
    assert processes.read_cmdline(10) == ["plugin"] and processes.read_cmdline(12) == []
    assert [processes.pid_alive(p) for p in (10, 11, 12, 13)] == [True, True, False, False]
    assert processes.ancestry(11) == [11, 10]


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "marker"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["psutil", "procfs"])
def test_a_real_child(monkeypatch, child, backend):
    if backend == "procfs":
        if not os.path.isdir("/proc/self"):
            pytest.skip("no procfs (macOS)")
        monkeypatch.setattr(processes, "psutil", None)
    deadline = time.monotonic() + 10
    while (processes.read_cmdline(child.pid) or [""])[-1] != "marker":
        assert time.monotonic() < deadline, processes.read_cmdline(child.pid)
        time.sleep(0.05)
    assert processes.pid_alive(child.pid)
    assert processes.ancestry(child.pid)[:2] == [child.pid, os.getpid()]
    child.kill()
    deadline = time.monotonic() + 10
    while processes.pid_alive(child.pid):  # a zombie until reaped: not alive
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert processes.read_cmdline(child.pid) in ([], None)
    child.wait()
    assert not processes.pid_alive(child.pid) and processes.read_cmdline(child.pid) is None
