"""Deterministic local fake of the Crypto.com balance API (no network).

The real app calls ``private/user-balance``; this fake returns the same kind of data
(per-asset quantities and USD prices plus a fixed borrowed amount) from constants.
``FAKE_EXCHANGE_UNREACHABLE=1`` makes it fail as an unreachable exchange would.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import NamedTuple

from app.utils.credential_resolver import ResolvedCredentials

EXCHANGE_NAME = "CRYPTO_COM"
UNREACHABLE_ENV = "FAKE_EXCHANGE_UNREACHABLE"

# (currency, free, locked, price in USD): exactly 17 assets, fixed values.
_BALANCES: tuple[tuple[str, str, str, str], ...] = (
    ("BTC", "0.8000", "0.0500", "64250.00"),
    ("ETH", "12.4000", "0", "3120.50"),
    ("CRO", "25000", "0", "0.0950"),
    ("USDT", "4000.00", "200.00", "1.00"),
    ("USDC", "3100.00", "0", "1.00"),
    ("SOL", "85.00", "0", "148.20"),
    ("XRP", "9000", "0", "0.5200"),
    ("ADA", "12000", "0", "0.4500"),
    ("DOGE", "40000", "0", "0.1250"),
    ("DOT", "600", "0", "6.8000"),
    ("LINK", "350", "0", "14.3000"),
    ("AVAX", "140", "0", "27.9000"),
    ("MATIC", "5000", "0", "0.7100"),
    ("LTC", "30", "0", "82.4000"),
    ("ATOM", "420", "0", "8.1500"),
    ("NEAR", "900", "0", "5.6000"),
    ("ALGO", "15000", "0", "0.1800"),
)

# USD borrowed on margin; the portfolio value is collateral minus this.
BORROWED_USD = Decimal("2500.00")


class Balance(NamedTuple):
    currency: str
    free: Decimal
    locked: Decimal
    price_usd: Decimal


class ExchangeAuthError(RuntimeError):
    """Raised when the fake exchange is called without credentials."""


class ExchangeUnreachableError(RuntimeError):
    """Raised when the fake exchange is switched off (FAKE_EXCHANGE_UNREACHABLE=1)."""


def unreachable(env=None) -> bool:
    env = os.environ if env is None else env
    return (env.get(UNREACHABLE_ENV) or "").strip().lower() in ("1", "true", "yes")


def fetch_balances(credentials: ResolvedCredentials | None, env=None) -> list[Balance]:
    """Return the fixed balances, as the authenticated balance endpoint would."""
    if credentials is None or not credentials.key or not credentials.secret:
        raise ExchangeAuthError("missing API key/secret")
    if unreachable(env):
        raise ExchangeUnreachableError(
            f"ConnectTimeout: api.crypto.com did not answer ({UNREACHABLE_ENV}=1)")
    return [Balance(cur, Decimal(free), Decimal(locked), Decimal(price))
            for cur, free, locked, price in _BALANCES]
