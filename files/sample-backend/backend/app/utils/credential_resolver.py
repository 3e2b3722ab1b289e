"""Resolve exchange API credentials from the environment.

Aliases are tried in order; the first one with BOTH a non-empty key and secret wins:

1. ``EXCHANGE_CUSTOM_API_KEY`` / ``EXCHANGE_CUSTOM_API_SECRET`` (canonical)
2. ``CRYPTO_COM_API_KEY`` / ``CRYPTO_COM_API_SECRET``
3. ``CRYPTOCOM_API_KEY`` / ``CRYPTOCOM_API_SECRET``
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

CREDENTIAL_ALIASES: tuple[str, ...] = ("EXCHANGE_CUSTOM", "CRYPTO_COM", "CRYPTOCOM")
# The names an operator is told to set (``missing_env`` of the snapshot).
CANONICAL_ENV: tuple[str, ...] = ("EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET")


@dataclass(frozen=True)
class ResolvedCredentials:
    """A key/secret pair and the name of the env variable alias it came from."""

    key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str  # e.g. "EXCHANGE_CUSTOM_API_KEY"; never a secret value

    def __repr__(self) -> str:
        return f"ResolvedCredentials(source={self.source!r}, key='***', secret='***')"

    __str__ = __repr__


def _value(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def resolve_exchange_credentials(
    env: Mapping[str, str] | None = None,
) -> ResolvedCredentials | None:
    """Return the first complete credential pair, or ``None`` if no alias is complete."""
    env = os.environ if env is None else env
    for prefix in CREDENTIAL_ALIASES:
        key = _value(env, f"{prefix}_API_KEY")
        secret = _value(env, f"{prefix}_API_SECRET")
        if key and secret:
            return ResolvedCredentials(key=key, secret=secret, source=f"{prefix}_API_KEY")
    return None


def missing_canonical_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Canonical credential variables that are unset or blank (names only, never values)."""
    env = os.environ if env is None else env
    return [name for name in CANONICAL_ENV if not _value(env, name)]
