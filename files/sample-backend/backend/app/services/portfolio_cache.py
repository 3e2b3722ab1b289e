"""In-process cache of the latest portfolio snapshot (used by dashboard state).

A cached snapshot is only served while the same credential alias still resolves, so
removing or switching credentials is noticed on the next read.
"""

from __future__ import annotations

import threading
from typing import Any

from app.services.portfolio_snapshot import (
    CREDENTIALS_MISSING_DETAIL,
    PORTFOLIO_VALUE_SOURCE,
    CredentialsNotResolvedError,
    build_snapshot,
)
from app.utils.credential_resolver import resolve_exchange_credentials

_lock = threading.Lock()
_latest: dict[str, Any] | None = None


def reset() -> None:
    """Forget the cached snapshot (tests, credential rotation)."""
    global _latest
    with _lock:
        _latest = None


def refresh() -> dict[str, Any]:
    """Build a fresh snapshot and cache it. Raises CredentialsNotResolvedError."""
    global _latest
    snapshot = build_snapshot()
    with _lock:
        _latest = snapshot
    return snapshot


def get_latest() -> dict[str, Any]:
    """Return the cached snapshot, refreshing it if empty or built with other credentials."""
    credentials = resolve_exchange_credentials()
    if credentials is None:
        reset()
        raise CredentialsNotResolvedError()
    with _lock:
        cached = _latest
    if cached is not None and cached.get("credential_source") == credentials.source:
        return cached
    return refresh()


def get_dashboard_state() -> dict[str, Any]:
    """Portfolio part of the dashboard; degrades to an empty portfolio without credentials."""
    try:
        snapshot = get_latest()
    except CredentialsNotResolvedError:
        return {
            "total_value_usd": 0.0,
            "total_collateral_usd": 0.0,
            "total_borrowed_usd": 0.0,
            "assets": [],
            "asset_count": 0,
            "portfolio_value_source": PORTFOLIO_VALUE_SOURCE,
            "credential_source": None,
            "as_of": None,
            "errors": [CREDENTIALS_MISSING_DETAIL],
        }
    keys = (
        "total_value_usd",
        "total_collateral_usd",
        "total_borrowed_usd",
        "assets",
        "asset_count",
        "portfolio_value_source",
        "credential_source",
        "as_of",
    )
    state = {key: snapshot[key] for key in keys}
    state["errors"] = []
    return state
