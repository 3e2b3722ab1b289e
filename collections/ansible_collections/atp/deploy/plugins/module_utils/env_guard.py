# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Env values taken as written, or refused before any session (controller side, pure logic).

ansible-core 2.19 (data tagging) templates every string it loaded from a trusted source when
the variable is used: group_vars/host_vars, ``-e`` extra vars, and a vault-ENCRYPTED vars FILE
alike. A secret holding ``{#x#}`` silently loses that part, ``{{ }}``/``{% %}`` are evaluated.
Not templated: a ``!unsafe`` value, an inline ``!vault`` value (ansible-vault encrypt_string),
values a module returned (Parameter Store). The action atp.deploy.env_guard reads the RAW
variables (before templating) and decides per value with :func:`raw_problem`:

- not trusted (``!unsafe``, inline vault) or no Jinja marker: taken as written;
- trusted and only ``{{ variable }}`` expressions (with attributes/filters), e.g.
  ``"{{ vault_exchange_secret }}"`` or ``"postgresql://app:{{ vault_db_pw | urlencode }}@db"``:
  a template on purpose, rendered (a whole-value reference is followed to check its own raw
  value too);
- trusted with ``{#``, ``{%`` or any other ``{{ ... }}``: refused, naming the variable and the
  key, never the value, saying to write it with ``!unsafe`` or as an inline ``!vault`` value.

After rendering, every value must be one an env file line can hold (dotenv.value_problem: no
NUL, no trailing backslash).
"""

from __future__ import annotations

import re

from ansible_collections.atp.deploy.plugins.module_utils import dotenv

MARKERS = ("{{", "{%", "{#")
MAX_DEPTH = 5
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_EXPR_RE = re.compile(
    r"\{\{-?\s*" + _NAME + r"(?:\." + _NAME + r"|\[(?:'[^'{}]*'|\"[^\"{}]*\"|\d+)\])*"
    r"(?:\s*\|\s*" + _NAME + r"(?:\.\w+)*(?:\([^(){}]*\))?)*\s*-?\}\}")
_REFERENCE_RE = re.compile(r"^\s*\{\{-?\s*(" + _NAME + r")\s*-?\}\}\s*$")


def markers(text: str) -> list[str]:
    """The Jinja opening markers found in text, in MARKERS order."""
    return [m for m in MARKERS if m in text]


def reference(text: str) -> str | None:
    """The variable name when text is exactly ``{{ name }}``, else None."""
    match = _REFERENCE_RE.match(text)
    return match.group(1) if match else None


def intended_template(text: str) -> bool:
    """Only ``{{ variable... }}`` expressions: a template the operator meant."""
    rest = _EXPR_RE.sub("", text)
    return not markers(rest) and "{{" in text


def raw_problem(variable: str, key: str, raw: str, trusted: bool,
                via: list[str] | None = None) -> str | None:
    """Why the raw value of variable[key] cannot be taken as meant (one line, never the value),
    or None. trusted: Ansible would template it (TrustedAsTemplate). via: the variables a
    ``{{ name }}`` value was followed through (the last one holds raw)."""
    found = markers(raw)
    if not trusted or not found or intended_template(raw):
        return None
    where = f"{variable}.{key}" + (f" (through {' -> '.join(via)})" if via else "")
    holder = via[-1] if via else key
    return (f"{where}: the value holds Jinja markers ({' '.join(found)}) that Ansible "
            "evaluates when it reads the variable (a {# #} part vanishes silently, {{ }} and "
            "{% %} are run): write it as "
            f"{holder}: !unsafe '<value>' or as an inline !vault value (ansible-vault "
            "encrypt_string; a whole vault-encrypted vars file is templated too); only a "
            "reference such as {{ vault_name }} is templated on purpose")


def text_of(value: object) -> str:
    """How the env files write a value: bool -> true/false, None -> '', else str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def value_problem(variable: str, key: str, value: object) -> str | None:
    """Why the rendered value cannot go into an env file (one line naming variable and key)."""
    problem = dotenv.value_problem(key, text_of(value))
    return f"{variable}: {problem}" if problem else None


def template_failure(variable: str, key: str | None, exc: BaseException) -> str:
    """One line for a value whose template failed (the error text may quote it: not shown)."""
    where = f"{variable}.{key}" if key else variable
    return (f"{where}: its template could not be rendered ({type(exc).__name__}); if the "
            "braces are part of the value, write it with !unsafe or as an inline !vault value, "
            "else define the variable it uses")
