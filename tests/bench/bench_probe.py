"""What the benchmark watches on the instance while a playbook runs (test infrastructure).

- HealthProbe: GET /api/health on the instance's 127.0.0.1:8002 at 10 Hz, from inside the
  instance's network namespace (as a client on the instance would; the same way as
  tests/integration/test_deploy_faults.py), counting failed probes and the longest gap.
- BuildWatch: the `docker compose ... build` / `docker build` processes the instance runs
  (read from the host's /proc, filtered by the instance's pid namespace): how many builds and
  for how long.
- Pure helpers (gaps, intervals, event figures) are unit-tested in test_bench_logic.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "sandbox") not in sys.path:
    sys.path.insert(0, str(REPO / "sandbox"))

from atp_sandbox import netns  # noqa: E402

PROBE_INTERVAL_S = 0.1  # 10 Hz
PROBE_TIMEOUT_S = 2.0
MAX_WATCH_S = 3600


# ----------------------------------------------------------------------------- pure logic


class GapTracker:
    """Folds probe results (time, ok) into: ok, failed, failed before the backend first
    answered (only when it was not expected to serve yet), and the longest gap: seconds from
    the last successful probe before a failure to the next successful one (or to the end)."""

    def __init__(self, expect_serving: bool, started: float) -> None:
        self.expect_serving = expect_serving
        self.started = started
        self.ok = 0
        self.failed = 0
        self.not_yet_serving = 0
        self.longest_gap = 0.0
        self._last_ok: float | None = None
        self._failing_since_ok = False

    def add(self, when: float, ok: bool) -> None:
        if ok:
            if self._failing_since_ok:
                since = self._last_ok if self._last_ok is not None else self.started
                self.longest_gap = max(self.longest_gap, when - since)
            self._failing_since_ok = False
            self._last_ok = when
            self.ok += 1
            return
        if self._last_ok is None and not self.expect_serving:
            self.not_yet_serving += 1
            return
        self.failed += 1
        self._failing_since_ok = True

    def finish(self, when: float) -> None:
        if self._failing_since_ok:
            since = self._last_ok if self._last_ok is not None else self.started
            self.longest_gap = max(self.longest_gap, when - since)
            self._failing_since_ok = False


def merged_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of (start, end) intervals."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def is_build_argv(argv: list[str]) -> bool:
    """`docker compose ... build ...`, `docker compose ... up --build`, `docker build`,
    `docker buildx build` (the docker CLI process, not the compose plugin it starts)."""
    if not argv or os.path.basename(argv[0]) != "docker":
        return False
    words = argv[1:]
    if words[:1] == ["build"] or words[:2] == ["buildx", "build"]:
        return True
    return "compose" in words and ("build" in words or "--build" in words)


def event_figures(events: list[dict], instance: str) -> dict:
    """Sessions, remote commands and S3 traffic of one run, from the stand-ins' event log.

    transfer_s: the time S3 spent on data objects (everything but the modules Ansible ships,
    AnsiballZ_*), from each request's start to its end, modeled latency included."""
    sessions = {e.get("session") for e in events
                if e.get("kind") == "start_session" and e.get("target") == instance}
    s3 = [e for e in events if e.get("kind") == "s3"]
    starts: dict[tuple[str, str], list[float]] = {}
    for e in events:
        if e.get("kind") == "s3_start":
            starts.setdefault((e.get("method", ""), e.get("key", "")), []).append(e["ts"])
    transfer_s = 0.0
    data_requests = 0
    for e in s3:
        pending = starts.get((e.get("method", ""), e.get("key", "")))
        began = pending.pop(0) if pending else e["ts"]
        if "AnsiballZ_" not in str(e.get("key", "")):
            transfer_s += e["ts"] - began
            data_requests += 1
    spans: dict[str, list[float]] = {}
    for e in events:
        if e.get("session") in sessions:
            span = spans.setdefault(e["session"], [e["ts"], e["ts"]])
            span[0], span[1] = min(span[0], e["ts"]), max(span[1], e["ts"])
    return {
        "sessions": len(sessions),
        # seconds each session lasted (first to last event), in order: where the time went
        "session_s": [round(end - begin, 1) for begin, end in sorted(spans.values())],
        "commands": sum(1 for e in events
                        if e.get("kind") == "command" and e.get("session") in sessions),
        "s3_requests": len(s3),
        "s3_data_requests": data_requests,
        "s3_bytes_up": sum(int(e.get("bytes_in") or 0) for e in s3),
        "s3_bytes_down": sum(int(e.get("bytes_out") or 0) for e in s3),
        "transfer_s": round(transfer_s, 2),
    }


# ----------------------------------------------------------------------------- threads


def probe_once(pid: int, port: int = 8002) -> bool:
    try:
        sock = netns.connect_in(pid, "127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    except OSError:
        return False
    try:
        sock.settimeout(PROBE_TIMEOUT_S)
        sock.sendall(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data.split(b" ", 2)[1:2] == [b"200"]
    except OSError:
        return False
    finally:
        sock.close()


class HealthProbe:
    """Probes /api/health at 10 Hz in a thread for the duration of a `with` block."""

    def __init__(self, pid: int, expect_serving: bool) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self.tracker = GapTracker(expect_serving, time.monotonic())
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_WATCH_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            began = time.monotonic()
            self.tracker.add(time.monotonic(), probe_once(self._pid))
            self._stop.wait(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - began)))

    def __enter__(self) -> HealthProbe:
        self.tracker.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.tracker.finish(time.monotonic())


def _pid_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _argv(pid: int | str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class BuildWatch:
    """Counts image builds the instance runs (and how long they run) during a `with` block."""

    def __init__(self, instance_pid: int, interval: float = 0.2) -> None:
        self._ns = _pid_ns(instance_pid)
        self._interval = interval
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._recheck: set[str] = set()
        self._open: dict[str, float] = {}
        self.intervals: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan(self) -> None:
        now = time.monotonic()
        pids = {name for name in os.listdir("/proc") if name.isdigit()}
        # a process seen in the last scan is read once more: it may have been caught between
        # fork and exec (still its parent's command line)
        fresh = pids - self._seen
        for pid in (fresh | self._recheck) & pids:
            if pid not in self._open and _pid_ns(pid) == self._ns and is_build_argv(_argv(pid)):
                self._open[pid] = now
        self._recheck = fresh
        for pid in [p for p in self._open if p not in pids]:
            self.intervals.append((self._open.pop(pid), now))
        self._seen = pids

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_WATCH_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._scan()
            self._stop.wait(self._interval)

    def __enter__(self) -> BuildWatch:
        self._seen = {name for name in os.listdir("/proc") if name.isdigit()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        now = time.monotonic()
        self.intervals += [(began, now) for began in self._open.values()]
        self._open.clear()

    @property
    def builds(self) -> int:
        return len(self.intervals)

    @property
    def seconds(self) -> float:
        return merged_seconds(self.intervals)
