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


def _refers_to(entry: str, key: str) -> bool:
    """Whether a compose ``environment:`` entry takes its value from ``${key}`` / ``$key``."""
    name = re.escape(key)
    pattern = r"(?<!\$)\$(?:\{" + name + r"(?:[:?+-][^}]*)?\}|" + name + r"(?![A-Za-z0-9_]))"
    return re.search(pattern, entry) is not None


def shadowed(files: dict[str, dict[str, str | None]], environment: dict[str, str | None],
             service: str, sources: dict[str, str]) -> list[str]:
    """Warnings, names only, for env values this deploy sets that the service's compose
    ``environment:`` keeps from the container (it wins over ``env_file``).

    files: {".env": {key: value or None (not known here)}, ".env.aws": {...}};
    environment: compose_file.service_environment(); sources: {file: "deploy_env", ...}.
    An entry referring to ``${KEY}`` is filled by compose from the project's ``.env`` when it
    reads the file: a value only in ``.env.aws`` never reaches the container. Any other entry
    sets the value itself: a different value in an env file is never seen.
    """
    dot_env, aws = files.get(".env", {}), files.get(".env.aws", {})
    out = []
    for key in sorted(set(dot_env) | set(aws)):
        entry = environment.get(key)
        if entry is None:
            continue
        where = " and ".join(f"{sources.get(f, f)} ({f})" for f in (".env", ".env.aws")
                             if key in files.get(f, {}))
        if _refers_to(entry, key):
            if key in aws and (key not in dot_env or aws[key] is None
                               or dot_env[key] != aws[key]):
                out.append(
                    f"{key} set in {sources.get('.env.aws', '.env.aws')} (.env.aws) does not "
                    f"reach {service}: its compose environment: takes {key} from ${{{key}}}, "
                    f"which compose fills from .env ({sources.get('.env', '.env')}) when it "
                    f"reads the file; set {key} in {sources.get('.env', '.env')} instead")
            continue
        values = [files[f][key] for f in (".env", ".env.aws") if key in files.get(f, {})]
        if "$" not in entry and all(v == entry for v in values):
            continue  # the same value either way
        out.append(
            f"{key} set in {where} does not reach {service}: its compose environment: sets "
            f"{key} itself, which wins over env_file; drop it from {where}, or write "
            f"{key}: ${{{key}}} in the compose file and set it in "
            f"{sources.get('.env', '.env')}")
    return out


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
