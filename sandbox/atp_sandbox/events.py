"""JSON-lines log of every session, remote command and S3 transfer (for tests and benchmarks)."""

from __future__ import annotations

import fcntl
import json
import os
import time

from .config import Paths


def log_event(kind: str, paths: Paths | None = None, **fields) -> None:
    paths = paths or Paths()
    record = {"ts": round(time.time(), 3), "kind": kind, **fields}
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    paths.root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(paths.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except PermissionError:  # a non-root controller user's plugin stand-in: not logged
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


def read_events(paths: Paths | None = None) -> list[dict]:
    paths = paths or Paths()
    try:
        with open(paths.events, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def modeled_latency(operation: str, paths: Paths | None = None) -> None:
    """Sleep to model AWS round trips: ATP_SANDBOX_LATENCY_<OPERATION>_MS in the stand-ins'
    environment, or {"<OPERATION>": ms} in .sandbox/latency.json (read on every call, so a
    test can slow one operation down while a run is in flight)."""
    name = operation.upper()
    value = os.environ.get(f"ATP_SANDBOX_LATENCY_{name}_MS")
    try:
        with open((paths or Paths()).root / "latency.json", encoding="utf-8") as handle:
            value = json.load(handle).get(name, value)
    except (FileNotFoundError, ValueError):
        pass
    if value:
        time.sleep(int(value) / 1000.0)
