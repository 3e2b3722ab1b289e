"""Where the tunnel leads: GET /api/health and /api/diagnostics/whoami through it, and the
verdict (the instance it should reach, or not)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass

from .common import LOOPBACK, short

HEALTH_PATH = "/api/health"
WHOAMI_PATH = "/api/diagnostics/whoami"


# =========================================================================== pure


def target_text(instance_id: str, remote_host: str, remote_port: int) -> str:
    if remote_host in (LOOPBACK, "localhost"):
        return f"{instance_id}:{remote_port}"
    return f"{instance_id} ({remote_host}:{remote_port})"


def _json_object(body: str) -> dict | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_health(status: int, body: str) -> str | None:
    """None if GET /api/health answered 200 {"status": "ok"}, else what was seen."""
    data = _json_object(body)
    if status == 200 and data is not None and data.get("status") == "ok":
        return None
    return f"{status} {short(body, 100) or '(empty body)'}"


@dataclass(frozen=True)
class Identity:
    verdict: str  # "match" | "mismatch" | "unverified"
    message: str


def check_identity(status: int, body: str, instance_id: str, expect_environment: str | None,
                   local_port: int) -> Identity:
    """Decide from GET /api/diagnostics/whoami whether the tunnel reaches ``instance_id``."""
    where = f"127.0.0.1:{local_port}"
    if status == 404:
        return Identity("unverified", (
            f"identity not verified: GET {WHOAMI_PATH} on {where} answered 404 (whoami disabled:"
            f" set PORTFOLIO_DEBUG=1 on the backend to enable it); assuming {instance_id}"))
    if status != 200:
        return Identity("unverified", (
            f"identity not verified: GET {WHOAMI_PATH} on {where} answered {status} "
            f"{short(body, 80)}; assuming {instance_id}"))
    data = _json_object(body)
    if data is None:
        return Identity("mismatch", (
            f"expected GET {WHOAMI_PATH} on {where} to describe {instance_id}, it answered 200 "
            f"with {short(body, 80) or '(empty body)'}: something else serves this port"))
    seen_id, seen_env = data.get("instance_id"), data.get("environment")
    wrong = seen_id != instance_id or (expect_environment and seen_env != expect_environment)
    seen = (f"instance_id={seen_id or '(none)'} environment={seen_env or '(none)'} "
            f"service={data.get('service') or '(none)'}")
    if not wrong:
        return Identity("match", f"{where} reaches {instance_id} ({seen})")
    expected = f"instance_id={instance_id}" + (
        f" environment={expect_environment}" if expect_environment else "")
    return Identity("mismatch", (
        f"{where} does not reach the intended backend: expected {expected}, whoami says {seen};"
        " check --instance-id/--remote-port/--expect-environment and what serves that port"))


def format_ready(local_port: int, instance_id: str, remote_host: str, remote_port: int,
                 session_id: str, pid: int) -> str:
    return (f"port-forward ready: 127.0.0.1:{local_port} -> "
            f"{target_text(instance_id, remote_host, remote_port)} "
            f"(session {session_id}, pid {pid})")


# =========================================================================== I/O


def tcp_connects(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float) -> tuple[int, str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read(65536).decode("utf-8", errors="replace")
    finally:
        conn.close()


def http_get_until(port: int, path: str, deadline: float) -> tuple[int, str]:
    """GET, retried on connection errors until ``deadline`` (at least one attempt)."""
    while True:
        remaining = deadline - time.monotonic()
        try:
            return http_get(port, path, timeout=min(10.0, max(2.0, remaining)))
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() + 0.3 >= deadline:
                raise ConnectionError(short(f"{type(exc).__name__}: {exc}", 100)) from exc
            time.sleep(0.3)
