# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose: the instance's env files, which credential alias resolves, and the report's mask.

Pure functions, stdlib only (credentials and masking are module_utils too: AnsiballZ ships them
to the instance with this file). Nothing returned here holds an env value: names only, and free
text goes through :func:`mask_text` before it leaves the module.

The report's mask is deliberately not :mod:`masking`'s (which the module applies on top, to
everything it returns): log lines and deploy.log records show ``***`` in place of EVERY env
value of 4+ characters whatever it looks like (``production`` included), and in place of any
non-empty value under a secret-looking name. :data:`SECRET_NAME_RE` is narrower than
``masking.SECRET_NAME_RE`` on purpose: it also picks which of the container's own variables are
masked in its logs, and the real app sets e.g. ``SIGNAL_COOLDOWN_MINUTES=30`` and
``SESSION_TTL_MINUTES=720`` -- masking's SIGN/SESSION would hide every ``30`` in the logs.
"""

from __future__ import annotations

import json
import re

from ansible_collections.atp.deploy.plugins.module_utils.credentials import CREDENTIAL_PAIRS

MASK = "***"
# Values this long or longer are always masked; shorter ones only under a secret-looking name
# (masking "1" or "aws" everywhere would make the logs unreadable and hide nothing).
MIN_MASK_LEN = 4
SECRET_NAME_RE = re.compile(r"KEY|SECRET|TOKEN|PASSW|PWD|CREDENTIAL|AUTH|PRIVATE", re.I)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- env files


def _unquote(raw: str) -> str:
    """The value of one env line's right-hand side, as docker compose reads it."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in ("'", '"'):
        inner = raw[1:-1]
        if raw[0] == '"':
            inner = (inner.replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
                     .replace("\0", "\\"))
        return inner
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end > 0:
            return raw[1:end]
        return raw[1:]
    cut = re.search(r"\s#", raw)
    return (raw[: cut.start()] if cut else raw).strip()


def parse_env_text(text: str | None) -> list[tuple[str, str]]:
    """``KEY=value`` lines (optionally ``export``, quoted, commented) -> [(name, value)].

    A bare ``KEY`` line (compose: take it from the shell) counts as set with an empty value.
    Lines that are not assignments are skipped (a broken file still gives its names).
    """
    pairs = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        name, sep, raw = line.partition("=")
        name = name.strip()
        if not _NAME_RE.match(name):
            continue
        pairs.append((name, _unquote(raw) if sep else ""))
    return pairs


def merged_set_names(files: list[list[tuple[str, str]]]) -> dict:
    """Env files in compose order (later wins) -> {name: value is non-empty}."""
    merged: dict = {}
    for pairs in files:
        for name, value in pairs:
            merged[name] = bool(str(value).strip())
    return merged


# --------------------------------------------------------------------------- credentials


def resolve_alias(set_names) -> dict:
    """Which pair of credentials.CREDENTIAL_PAIRS resolves, from NAMES only.

    ``set_names``: names whose value is non-empty (an iterable, or a {name: non-empty} dict).
    Returns {alias, pair, partial}: alias is the key name of the first pair (canonical first)
    with both halves set, else None; partial lists "<set> is set but <other> is missing or
    empty" for half pairs.
    """
    if isinstance(set_names, dict):
        names = {name for name, nonempty in set_names.items() if nonempty}
    else:
        names = set(set_names or ())
    alias, pair, partial = None, None, []
    for key, secret in CREDENTIAL_PAIRS:
        if key in names and secret in names:
            if alias is None:
                alias, pair = key, [key, secret]
        elif key in names or secret in names:
            have, other = (key, secret) if key in names else (secret, key)
            partial.append(f"{have} is set but {other} is missing or empty")
    return {"alias": alias, "pair": pair, "partial": partial}


def alias_patterns() -> str:
    """The non-canonical pairs as words: ``CRYPTO_COM_API_*/CRYPTOCOM_API_*``."""
    return "/".join(key.rpartition("_")[0] + "_*" for key, _secret in CREDENTIAL_PAIRS[1:])


# --------------------------------------------------------------------------- the report's mask


def secrets_to_mask(pairs: list[tuple[str, str]]) -> list[str]:
    """The env values that must never appear in the report, longest first (and the JSON-escaped
    form of each, as log lines and deploy.log records quote them)."""
    values = set()
    for name, value in pairs:
        value = str(value)
        if not value.strip():
            continue
        if len(value) >= MIN_MASK_LEN or SECRET_NAME_RE.search(name):
            values.add(value)
            escaped = json.dumps(value)[1:-1]
            if escaped != value:
                values.add(escaped)
    return sorted(values, key=lambda v: (-len(v), v))


def mask_text(text: str | None, secrets: list[str]) -> str:
    """Replace every occurrence of each secret (longest first) by ``***``."""
    text = "" if text is None else str(text)
    for value in sorted(secrets or (), key=len, reverse=True):
        if value:
            text = text.replace(value, MASK)
    return text


def mask_data(value, secrets: list[str]):
    """mask_text applied to every string in a JSON-like structure (keys included)."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {mask_text(str(k), secrets): mask_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v, secrets) for v in value]
    return value
