"""Helpers for the sandbox tests: environment, event log, bounded subprocesses.

Imported by conftest.py and the test modules (this directory is put on sys.path by conftest).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".sandbox"
STATE_FILE = STATE_DIR / "state.json"
EVENTS_FILE = STATE_DIR / "events.jsonl"
VENV_BIN = REPO / ".venv" / "bin"

INSTANCE_ID = "i-08726dc37133b2454"
CONTAINER = f"atp-sandbox-{INSTANCE_ID}"
REGION = "ap-southeast-1"
PROFILE = "atp-sandbox"
BUCKET = "atp-sandbox-ssm-transfer"
SSM_ENDPOINT = ("127.0.0.1", 4580)

NOT_UP = "sandbox not up: run make sandbox-up"

_SESSION_ID = re.compile(r"SSM CONNECTION ID: (\S+)")


# --------------------------------------------------------------------------- environment


def pid_alive(pid: object) -> bool:
    return isinstance(pid, int) and pid > 0 and os.path.exists(f"/proc/{pid}")


def running_instances() -> list[str]:
    """Instance ids that .sandbox/state.json lists with a live container process."""
    try:
        state = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [iid for iid, info in (state.get("instances") or {}).items()
            if pid_alive(info.get("pid"))]


def port_open(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- event log


class EventLog:
    """Reads what the stand-ins appended to .sandbox/events.jsonl after a recorded offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, offset: int) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() < offset:  # log was recreated (sandbox re-upped)
                    offset = 0
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        events = []
        for line in data.split(b"\n"):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:  # a line still being written
                    continue
        return events

    def wait_for(self, offset: int, predicate: Callable[[dict], bool],
                 timeout: float = 10.0) -> list[dict]:
        """Events since ``offset`` once one matches ``predicate`` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.since(offset)
            if any(predicate(e) for e in events) or time.monotonic() > deadline:
                return events
            time.sleep(0.1)


def of_kind(events: list[dict], kind: str, **fields) -> list[dict]:
    return [e for e in events if e.get("kind") == kind
            and all(e.get(k) == v for k, v in fields.items())]


# --------------------------------------------------------------------------- subprocesses


def run_bounded(cmd: list[str], env: dict[str, str] | None, timeout: float,
                cwd: Path = REPO, stdin: bytes | None = None) -> tuple[int, str, str, float]:
    """Run ``cmd`` in its own process group; on timeout kill the whole group and fail."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s\n"
                    f"stdout tail: {out.decode(errors='replace')[-2000:]}\n"
                    f"stderr tail: {err.decode(errors='replace')[-2000:]}")
    return (proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
            time.monotonic() - start)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class AnsibleRun:
    cmd: list[str]
    rc: int
    stdout: str
    stderr: str
    elapsed: float
    data: dict | None = field(default=None)

    @property
    def session_ids(self) -> list[str]:
        """SSM sessions this run opened (printed by the plugin at -vvvv)."""
        return _SESSION_ID.findall(self.stderr)

    def describe(self) -> str:
        return (f"$ {' '.join(self.cmd)}\nrc={self.rc} elapsed={self.elapsed:.1f}s\n"
                f"stdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}")

    def results(self, host: str = INSTANCE_ID) -> list[dict]:
        """Per-task results for ``host`` from the ansible.posix.json callback."""
        assert self.data is not None, f"no JSON on stdout\n{self.describe()}"
        return [task["hosts"][host] for play in self.data.get("plays", [])
                for task in play.get("tasks", []) if host in task.get("hosts", {})]

    def result(self, host: str = INSTANCE_ID, index: int = 0) -> dict:
        found = self.results(host)
        assert len(found) > index, f"no result #{index} for {host}\n{self.describe()}"
        return found[index]


def run_ansible(binary: str, env: dict[str, str], args: list[str], timeout: float,
                 verbose: bool) -> AnsibleRun:
    cmd = [str(VENV_BIN / binary), *args] + (["-vvvv"] if verbose else [])
    rc, out, err, elapsed = run_bounded(cmd, env, timeout)
    run = AnsibleRun(cmd, rc, out, err, elapsed)
    start = out.find("{")
    if start != -1:
        try:
            run.data = json.loads(out[start:])
        except json.JSONDecodeError:
            run.data = None
    return run


def docker_exec(*args: str, options: tuple[str, ...] = (),
                timeout: float = 30) -> subprocess.CompletedProcess:
    """`docker exec [options] <instance container> args...` (bounded)."""
    return subprocess.run(["docker", "exec", *options, CONTAINER, *args], capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)



class PluginProcess:
    """A session-manager-plugin run, its merged stdout/stderr collected by a reader thread."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    @property
    def output(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> str:
        """Output so far once it contains ``text`` (bounded); fails if it never does."""
        if not wait_until(lambda: text in self.output or self.proc.poll() is not None,
                          timeout):
            pytest.fail(f"plugin did not print {text!r} within {timeout}s:\n{self.output}")
        self._reader.join(timeout=0.2)
        assert text in self.output, f"plugin exited ({self.proc.returncode}):\n{self.output}"
        return self.output

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_group(self.proc)
            self.proc.wait(timeout=10)
        self._reader.join(timeout=2)


def port_refuses(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def for_sessions(events: list[dict], sessions) -> list[dict]:
    """Only the events of these sessions (keeps failure messages readable)."""
    wanted = {sessions} if isinstance(sessions, str) else set(sessions)
    return [e for e in events if e.get("session") in wanted]
