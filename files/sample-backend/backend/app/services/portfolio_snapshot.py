"""Build the portfolio snapshot, in the real app's shape, from the (fake) exchange.

The snapshot is ALWAYS a complete answer (the route answers 200): ``ok`` says whether the
exchange answered; without credentials ``ok`` is false, ``message`` is "Missing API
credentials" and ``missing_env`` names the canonical variables that are not set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.services import fake_exchange
from app.utils.credential_resolver import (
    CANONICAL_ENV,
    missing_canonical_env,
    resolve_exchange_credentials,
)

SUPPORTED_EXCHANGES: tuple[str, ...] = (fake_exchange.EXCHANGE_NAME,)
MISSING_CREDENTIALS = "Missing API credentials"
POSITION_SOURCE = "exchange_balance"
SNAPSHOT_KEYS = ("ok", "as_of", "exchange", "message", "missing_env", "positions", "totals",
                 "errors")


def _usd(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def empty_totals() -> dict[str, float]:
    return {"total_value_usd": 0.0, "total_assets_usd": 0.0, "total_borrowed_usd": 0.0,
            "total_collateral_usd": 0.0}


def failed_snapshot(exchange: str, message: str, missing_env=(), errors=()) -> dict[str, Any]:
    return {"ok": False, "as_of": _now(), "exchange": exchange, "message": message,
            "missing_env": list(missing_env), "positions": [], "totals": empty_totals(),
            "errors": list(errors)}


def build_snapshot(
    exchange: str = fake_exchange.EXCHANGE_NAME,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The snapshot dict; never raises for a missing credential or an unreachable exchange."""
    name = (exchange or "").strip().upper()
    if name not in SUPPORTED_EXCHANGES:
        supported = ", ".join(SUPPORTED_EXCHANGES)
        message = f"Unsupported exchange {exchange!r}: supported exchanges are {supported}"
        return failed_snapshot(name, message, errors=[message])
    credentials = resolve_exchange_credentials(env)
    if credentials is None:
        return failed_snapshot(name, MISSING_CREDENTIALS,
                               missing_env=missing_canonical_env(env) or list(CANONICAL_ENV))
    try:
        balances = fake_exchange.fetch_balances(credentials, env)
    except fake_exchange.ExchangeUnreachableError as exc:
        return failed_snapshot(name, f"Exchange unreachable: {exc}", errors=[str(exc)])

    positions = []
    assets = Decimal(0)
    for balance in balances:
        total = balance.free + balance.locked
        value = total * balance.price_usd
        assets += value
        positions.append({
            "asset": balance.currency,
            "free": float(balance.free),
            "locked": float(balance.locked),
            "total": float(total),
            "price_usd": float(balance.price_usd),
            "value_usd": _usd(value),
            "source": POSITION_SOURCE,
        })
    borrowed = fake_exchange.BORROWED_USD
    return {
        "ok": True,
        "as_of": _now(),
        "exchange": name,
        "message": "",
        "missing_env": [],
        "positions": positions,
        "totals": {
            "total_value_usd": _usd(assets - borrowed),
            "total_assets_usd": _usd(assets),
            "total_borrowed_usd": _usd(borrowed),
            "total_collateral_usd": _usd(assets),
        },
        "errors": [],
    }
