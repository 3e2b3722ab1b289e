"""Build a portfolio snapshot from the (fake) exchange using resolved credentials."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.services import fake_exchange
from app.utils.credential_resolver import resolve_exchange_credentials

SUPPORTED_EXCHANGES: tuple[str, ...] = (fake_exchange.EXCHANGE_NAME,)
PORTFOLIO_VALUE_SOURCE = "derived_collateral_minus_borrowed"
CREDENTIALS_MISSING_DETAIL = (
    "exchange credentials not resolved: set EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET "
    "(aliases CRYPTO_COM_*, CRYPTOCOM_* accepted)"
)


class CredentialsNotResolvedError(RuntimeError):
    """No complete key/secret pair was found in the environment (maps to HTTP 503)."""

    def __init__(self) -> None:
        super().__init__(CREDENTIALS_MISSING_DETAIL)


class UnsupportedExchangeError(ValueError):
    """The requested exchange is not known (maps to HTTP 400)."""

    def __init__(self, exchange: str) -> None:
        supported = ", ".join(SUPPORTED_EXCHANGES)
        super().__init__(f"unsupported exchange {exchange!r}: supported exchanges are {supported}")


def _usd(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def normalize_exchange(exchange: str) -> str:
    name = (exchange or "").strip().upper()
    if name not in SUPPORTED_EXCHANGES:
        raise UnsupportedExchangeError(exchange)
    return name


def build_snapshot(
    exchange: str = fake_exchange.EXCHANGE_NAME,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the snapshot dict, or raise CredentialsNotResolvedError / UnsupportedExchangeError."""
    name = normalize_exchange(exchange)
    credentials = resolve_exchange_credentials(env)
    if credentials is None:
        raise CredentialsNotResolvedError()

    assets = []
    collateral = Decimal(0)
    for balance in fake_exchange.fetch_balances(credentials):
        value = balance.quantity * balance.price_usd
        collateral += value
        assets.append(
            {
                "currency": balance.currency,
                "quantity": float(balance.quantity),
                "price_usd": float(balance.price_usd),
                "value_usd": _usd(value),
            }
        )
    borrowed = fake_exchange.BORROWED_USD
    return {
        "exchange": name,
        "assets": assets,
        "asset_count": len(assets),
        "total_collateral_usd": _usd(collateral),
        "total_borrowed_usd": _usd(borrowed),
        "total_value_usd": _usd(collateral - borrowed),
        "portfolio_value_source": PORTFOLIO_VALUE_SOURCE,
        "credential_source": credentials.source,
        "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
    }
