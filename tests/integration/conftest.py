"""Helpers for playbook runs against the sandbox (the real aws_ssm plugin, local stand-ins)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / ".sandbox"
SAMPLE = REPO / "files" / "sample-backend"
APP = "/home/ubuntu/automated-trading-platform"

if str(REPO / "sandbox") not in sys.path:  # atp_sandbox for the tests, no PYTHONPATH needed
    sys.path.insert(0, str(REPO / "sandbox"))

from atp_sandbox import netns  # noqa: E402
from atp_sandbox.config import (  # noqa: E402
    FIRST_INSTANCE_ID,
    PLUGIN_STANDIN,
    apply_env,
    aws_env,
    load_state,
)


def sandbox_env() -> dict:
    """The environment of ONE test subprocess that works on the sandbox.

    ansible-playbook with the default inventory needs none of it (inventory/sandbox names its
    endpoints itself); the inventories tests write (hosts.yml + the sandbox's group_vars) and
    tools such as bin/atp-portforward do: the sandbox's AWS endpoints and fake keys
    (atp_sandbox.config.aws_env), the session-manager-plugin stand-in first on PATH. Nothing
    of the caller's AWS settings survives.
    """
    if not any(info.get("pid") for info in load_state()["instances"].values()):
        pytest.fail("sandbox not up: run make sandbox-up")
    env = apply_env(dict(os.environ), aws_env())
    env.pop("ANSIBLE_INVENTORY", None)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{PLUGIN_STANDIN.parent}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


def sandbox_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python -m atp_sandbox <args>` (status, fleet, stop-instance...), output captured."""
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "atp_sandbox", *args],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO / "sandbox")),
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def backend_fleet(size: int) -> Iterator[list[str]]:
    """The first ``size`` sandbox instances carry the backend tags (so the default inventory,
    the aws_ec2 source, lists them) for the duration; then the fleet size is restored."""
    before = int(load_state().get("fleet", 1))
    ids = sorted(load_state()["instances"])
    if len(ids) < size:
        pytest.fail(f"expected {size} sandbox instances, found {len(ids)}: "
                    f"make sandbox-up SANDBOX_INSTANCES={size}")
    proc = sandbox_cli("fleet", str(size))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield ids[:size]
    finally:
        proc = sandbox_cli("fleet", str(before))
        assert proc.returncode == 0, proc.stdout + proc.stderr


class Events:
    """The sandbox's JSON-lines log, read from a mark."""

    def __init__(self) -> None:
        self.path = SANDBOX / "events.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            return [json.loads(line) for line in handle if line.strip()]

    def sessions(self) -> int:
        return sum(1 for e in self.since() if e["kind"] == "start_session")


def playbook(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), *args],
                          cwd=REPO, env=sandbox_env(), capture_output=True, text=True,
                          timeout=timeout)


def instance_read(container: str, *cmd: str) -> str:
    """Read-only look at an instance for assertions (docker exec, not SSM)."""
    proc = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.stdout.strip()


def active_release(container: str) -> str:
    """The release `current` points at on that instance."""
    return instance_read(container, "readlink", f"{APP}/current").removeprefix("releases/")


def ssm_shell(command: str, inventory: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    """Change an instance the operator's way: an ad-hoc shell command over SSM."""
    target = ["-i", str(inventory)] if inventory else []
    proc = subprocess.run([str(REPO / ".venv/bin/ansible"), *target, "backend", "-b", "-m",
                           "ansible.builtin.shell", "-a", command], cwd=REPO, env=sandbox_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return proc


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A scratch copy of the sample backend (not a git checkout) to break on purpose."""
    dest = tmp_path / "backend-src"
    shutil.copytree(SAMPLE, dest)
    return dest


class HealthProbe:
    """Polls GET /api/health on the instance's 127.0.0.1:8002 every `interval` s (a client on
    the instance: a socket opened in its network namespace), in a thread; counts failures and
    the longest time without a successful probe."""

    def __init__(self, instance: str = FIRST_INSTANCE_ID, interval: float = 0.25) -> None:
        self.ok = 0
        self.failed = 0
        self.longest_gap = 0.0
        self.interval = interval
        self._stop = threading.Event()
        self._pid = load_state()["instances"][instance]["pid"]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> bool:
        try:
            sock = netns.connect_in(self._pid, "127.0.0.1", 8002, timeout=2)
        except OSError:
            return False
        try:
            sock.settimeout(2)
            sock.sendall(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
        except OSError:
            return False
        finally:
            sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + 900
        last_ok = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._once():
                self.ok += 1
                last_ok = time.monotonic()
            else:
                self.failed += 1
                self.longest_gap = max(self.longest_gap, time.monotonic() - last_ok)
            self._stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        print(f"health probes: {self.ok} ok, {self.failed} failed, longest gap "
              f"{self.longest_gap:.1f}s")
