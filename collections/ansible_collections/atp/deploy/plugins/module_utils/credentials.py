# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exchange credential aliases and env-file rendering (stdlib only).

Error messages name variables only; they never contain a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.atp.deploy.plugins.module_utils import dotenv

CANONICAL_KEY = "EXCHANGE_CUSTOM_API_KEY"
CANONICAL_SECRET = "EXCHANGE_CUSTOM_API_SECRET"
CREDENTIAL_PAIRS: tuple[tuple[str, str], ...] = (
    (CANONICAL_KEY, CANONICAL_SECRET),
    ("CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"),
    ("CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET"),
)
CREDENTIAL_NAMES = frozenset(name for pair in CREDENTIAL_PAIRS for name in pair)
ENV_HEADER = "# Managed by Ansible (atp.deploy). Local edits are overwritten."

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING = (
    f"no exchange credentials: expected {CANONICAL_KEY}/{CANONICAL_SECRET} "
    "(or CRYPTO_COM_*/CRYPTOCOM_* aliases); set them in the vault or pass "
    "deploy_allow_missing_credentials=true"
)


class CredentialError(ValueError):
    """One-line credential/env problem; never contains a value."""


def _is_set(value: object) -> bool:
    """None and empty (or whitespace-only) strings count as unset."""
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


def _resolve_field(env: Mapping, index: int) -> tuple[str, object] | None:
    """(name, value) for the key (0) or secret (1) field; CredentialError on conflicts."""
    names = [pair[index] for pair in CREDENTIAL_PAIRS]
    given = [(name, env[name]) for name in names if _is_set(env.get(name))]
    if not given:
        return None
    first_name, first_value = given[0]
    for name, value in given[1:]:
        if str(value) != str(first_value):
            canonical = CREDENTIAL_PAIRS[0][index]
            raise CredentialError(
                f"conflicting exchange credentials: {first_name} and {name} differ; "
                f"keep one name ({canonical}) and remove the other"
            )
    return given[0]


def _partner(name: str) -> str:
    """The other half of the alias pair ``name`` belongs to."""
    for key, secret in CREDENTIAL_PAIRS:
        if name in (key, secret):
            return secret if name == key else key
    raise KeyError(name)


def canonical_env(env: Mapping, allow_missing_credentials: bool) -> dict:
    """Return a new env where the credential pair exists only under the canonical names."""
    if not isinstance(env, Mapping):
        raise CredentialError("env must be a mapping of variable names to values")
    key = _resolve_field(env, 0)
    secret = _resolve_field(env, 1)
    result = {name: value for name, value in env.items() if name not in CREDENTIAL_NAMES}
    if key and secret:
        result[CANONICAL_KEY] = key[1]
        result[CANONICAL_SECRET] = secret[1]
        return result
    given = key or secret
    if given:
        name = given[0]
        raise CredentialError(
            f"incomplete exchange credentials: {name} is set but {_partner(name)} is missing "
            "or empty; set both the API key and the API secret (or neither)"
        )
    if not allow_missing_credentials:
        raise CredentialError(_MISSING)
    return result


def _value_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be written for ``name`` (None if it can)."""
    if isinstance(value, int):  # includes bool
        return None
    if not isinstance(value, str):
        return f"{name} must be a string, integer or boolean (got {type(value).__name__})"
    # The env file writer's rule (quotes, newlines, $ are encoded; NUL and a trailing
    # backslash are refused).
    return dotenv.value_problem(name, value)


def _name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid environment variable name (None if valid)."""
    if isinstance(name, str) and _NAME_RE.match(name):
        return None
    return f"invalid environment variable name {str(name)!r}: use letters, digits and _"


def validate_env_names(env: Mapping) -> None:
    """Raise CredentialError (one line, no values) if any name or value is unusable."""
    if not isinstance(env, Mapping):
        raise CredentialError("env must be a mapping of variable names to values")
    problems = []
    for name in sorted(env, key=str):
        problem = _name_problem(name) or _value_problem(name, env[name])
        if problem:
            problems.append(problem)
    if problems:
        raise CredentialError("invalid env: " + "; ".join(problems))


def _render_value(value: object) -> str:
    """bool -> true/false, int -> decimal, str as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_env_file(env: Mapping) -> str:
    """Render ``KEY='value'`` lines (sorted) under the managed-file header."""
    validate_env_names(env)
    lines = [ENV_HEADER]
    lines.extend(f"{name}={dotenv.quote_value(_render_value(env[name]))}" for name in sorted(env))
    return "\n".join(lines) + "\n"
