"""Deterministic local fake of the Crypto.com balance API (no network).

The real app calls ``private/user-balance``; this fake returns the same kind of data
(per-asset quantities and USD prices plus a fixed borrowed amount) from constants.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from app.utils.credential_resolver import ResolvedCredentials

EXCHANGE_NAME = "CRYPTO_COM"

# (currency, quantity, price in USD): exactly 17 assets, fixed values.
_BALANCES: tuple[tuple[str, str, str], ...] = (
    ("BTC", "0.8500", "64250.00"),
    ("ETH", "12.4000", "3120.50"),
    ("CRO", "25000", "0.0950"),
    ("USDT", "4200.00", "1.00"),
    ("USDC", "3100.00", "1.00"),
    ("SOL", "85.00", "148.20"),
    ("XRP", "9000", "0.5200"),
    ("ADA", "12000", "0.4500"),
    ("DOGE", "40000", "0.1250"),
    ("DOT", "600", "6.8000"),
    ("LINK", "350", "14.3000"),
    ("AVAX", "140", "27.9000"),
    ("MATIC", "5000", "0.7100"),
    ("LTC", "30", "82.4000"),
    ("ATOM", "420", "8.1500"),
    ("NEAR", "900", "5.6000"),
    ("ALGO", "15000", "0.1800"),
)

# USD borrowed on margin; the portfolio value is collateral minus this.
BORROWED_USD = Decimal("2500.00")


class Balance(NamedTuple):
    currency: str
    quantity: Decimal
    price_usd: Decimal


class ExchangeAuthError(RuntimeError):
    """Raised when the fake exchange is called without credentials."""


def fetch_balances(credentials: ResolvedCredentials | None) -> list[Balance]:
    """Return the fixed balances, as the authenticated balance endpoint would."""
    if credentials is None or not credentials.key or not credentials.secret:
        raise ExchangeAuthError("missing API key/secret")
    return [Balance(cur, Decimal(qty), Decimal(price)) for cur, qty, price in _BALANCES]
