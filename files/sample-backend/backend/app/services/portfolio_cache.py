"""The latest portfolio snapshot (the real app keeps it in its db; here, in process).

A cached snapshot is served only while the same credential alias still resolves, so removing
or switching credentials is noticed on the next read.
"""

from __future__ import annotations

import threading
from typing import Any

from app.services.portfolio_snapshot import build_snapshot
from app.utils.credential_resolver import resolve_exchange_credentials

_lock = threading.Lock()
_latest: tuple[str, dict[str, Any]] | None = None  # (credential alias, snapshot)


def reset() -> None:
    """Forget the cached snapshot (tests, credential rotation)."""
    global _latest
    with _lock:
        _latest = None


def refresh() -> dict[str, Any]:
    """Build a fresh snapshot; keep it when the exchange answered."""
    global _latest
    credentials = resolve_exchange_credentials()
    snapshot = build_snapshot()
    if snapshot["ok"] and credentials is not None:
        with _lock:
            _latest = (credentials.source, snapshot)
    return snapshot


def get_latest() -> dict[str, Any]:
    """The kept snapshot, refreshed when there is none or the credentials changed."""
    credentials = resolve_exchange_credentials()
    with _lock:
        cached = _latest
    if credentials is None:
        reset()
    elif cached is not None and cached[0] == credentials.source:
        return cached[1]
    return refresh()


def get_dashboard_state() -> dict[str, Any]:
    """Portfolio part of the dashboard: the latest snapshot's positions and totals."""
    snapshot = get_latest()
    errors = list(snapshot["errors"])
    if not snapshot["ok"] and snapshot["message"] not in errors:
        errors.insert(0, snapshot["message"])
    return {
        "ok": snapshot["ok"],
        "as_of": snapshot["as_of"],
        "portfolio": {
            "exchange": snapshot["exchange"],
            "positions": snapshot["positions"],
            "totals": snapshot["totals"],
        },
        "errors": errors,
    }
