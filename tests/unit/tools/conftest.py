"""Shared by the tests of bin/atp-portforward's package (tools/atp_ops/portforward/): the import
path, and a fake host (processes and sockets) seen through a fake psutil, through
`lsof` text (macOS, where psutil.net_connections is AccessDenied) or through nothing at all."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))

from atp_ops.portforward import ports, processes, procfs

INSTANCE = "i-08726dc37133b2454"
CONTAINER = "automated-trading-platform-backend-1"
LSOF_HEADER = "COMMAND     PID  USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME"


@dataclass
class FakeProc:
    argv: list[str]
    ppid: int = 1
    status: str = psutil.STATUS_SLEEPING
    readable: bool = True  # False: psutil.AccessDenied for cmdline (another user's process)


@dataclass
class FakeHost:
    """Processes (pid -> FakeProc) and TCP sockets (ip, port, status, pid or None)."""

    Proc: ClassVar[type] = FakeProc  # for tests: fake_host.Proc(argv, ...)

    procs: dict[int, FakeProc] = field(default_factory=dict)
    sockets: list[tuple[str, int, str, int | None]] = field(default_factory=list)
    macos: bool = False  # psutil.net_connections raises AccessDenied; lsof answers
    lsof_calls: list[list[str]] = field(default_factory=list)

    # ---------------------------------------------------------------- changes

    def kill(self, pid: int) -> None:
        """``pid`` and its descendants end; their sockets close."""
        gone = {pid}
        while True:
            more = {p for p, proc in self.procs.items() if proc.ppid in gone} - gone
            if not more:
                break
            gone |= more
        for p in gone:
            self.procs.pop(p, None)
        self.sockets = [s for s in self.sockets if s[3] not in gone]

    # ---------------------------------------------------------------- views

    def process(self, pid: int):
        host = self

        class Process:
            def __init__(self) -> None:
                if pid not in host.procs:
                    raise psutil.NoSuchProcess(pid)
                self.proc = host.procs[pid]

            def cmdline(self) -> list[str]:
                if self.proc.status == psutil.STATUS_ZOMBIE:
                    raise psutil.ZombieProcess(pid)
                if not self.proc.readable:
                    raise psutil.AccessDenied(pid)
                return list(self.proc.argv)

            def status(self) -> str:
                return self.proc.status

            def ppid(self) -> int:
                return self.proc.ppid

            def oneshot(self):
                return contextlib.nullcontext()

        return Process()

    def net_connections(self, kind: str = "inet") -> list:
        assert kind == "tcp"
        if self.macos:
            raise psutil.AccessDenied()
        return [types.SimpleNamespace(laddr=types.SimpleNamespace(ip=ip, port=port),
                                      status=status, pid=pid)
                for ip, port, status, pid in self.sockets]

    def lsof(self, port: int) -> str:
        rows = []
        for ip, sport, status, pid in self.sockets:
            if sport != port or status != "LISTEN" or pid is None:
                continue
            name = self.procs[pid].argv[0].rsplit("/", 1)[-1][:9] if pid in self.procs else "?"
            host = f"[{ip}]" if ":" in ip else ("*" if ip in ("0.0.0.0", "::") else ip)
            family = "IPv6" if ":" in ip else "IPv4"
            rows.append(f"{name:<9} {pid:>5} alice   7u  {family} 0x9b1e0f3c8a7d2e11      0t0"
                        f"  TCP {host}:{port} (LISTEN)")
        return "\n".join([LSOF_HEADER, *rows]) + "\n" if rows else ""

    def psutil_module(self):
        return types.SimpleNamespace(
            Process=self.process, net_connections=self.net_connections,
            Error=psutil.Error, NoSuchProcess=psutil.NoSuchProcess,
            ZombieProcess=psutil.ZombieProcess, AccessDenied=psutil.AccessDenied,
            STATUS_ZOMBIE=psutil.STATUS_ZOMBIE, STATUS_DEAD=psutil.STATUS_DEAD)

    def run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
        assert cmd[0] == "lsof", cmd
        self.lsof_calls.append(cmd)
        assert cmd[1:] == ["-nP", cmd[2], "-sTCP:LISTEN"] and cmd[2].startswith("-iTCP:")
        text = self.lsof(int(cmd[2].removeprefix("-iTCP:")))
        return subprocess.CompletedProcess(cmd, 0 if text else 1, text, "")

    def bind_free(self, port: int, reuse: bool = True) -> bool:
        return not any(s[1] == port and (s[2] == "LISTEN" or not reuse) for s in self.sockets)


def _no_procfs(*_args, **_kwargs):
    raise AssertionError("/proc was read although psutil (or lsof) answers")


@pytest.fixture
def fake_host(monkeypatch):
    """A FakeHost wired into the package: psutil is the fake, lsof and bind are answered by it,
    docker is not reachable and /proc must not be read."""
    host = FakeHost()
    fake = host.psutil_module()
    monkeypatch.setattr(processes, "psutil", fake)
    monkeypatch.setattr(ports, "psutil", fake)
    monkeypatch.setattr(ports, "run", host.run)
    monkeypatch.setattr(ports, "shutil", types.SimpleNamespace(
        which=lambda name: "/usr/sbin/lsof" if name == "lsof" else None))
    monkeypatch.setattr(ports, "bind_free", host.bind_free)
    monkeypatch.setattr(ports, "docker_containers", lambda port: None)
    for name in ("read_proc_sockets", "fd_links", "read_cmdline", "read_stat"):
        monkeypatch.setattr(procfs, name, _no_procfs)
    return host
