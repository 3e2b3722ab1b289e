# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Env values from SSM Parameter Store: names, batches, results (stdlib only, no AWS calls).

Layout: the value of variable NAME of env file F is the SecureString parameter
``<prefix><F without its leading dots>/<NAME>``, e.g. with prefix ``/atp/prod/backend/``:

    .env      ENVIRONMENT                  -> /atp/prod/backend/env/ENVIRONMENT
    .env.aws  EXCHANGE_CUSTOM_API_SECRET   -> /atp/prod/backend/env.aws/EXCHANGE_CUSTOM_API_SECRET

Every message names parameters or variables, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# GetParameters takes at most 10 names per call.
BATCH_SIZE = 10

_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE_RE = re.compile(r"^\.env(\.[A-Za-z0-9_-]+)*$")
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9_.-]+)+/$")


class ParameterError(ValueError):
    """One-line problem with the parameter layout or a lookup; never contains a value."""


def normalise_prefix(prefix: str) -> str:
    """``/atp/prod/backend`` -> ``/atp/prod/backend/``; ParameterError when unusable."""
    text = (prefix or "").strip()
    if text and not text.endswith("/"):
        text += "/"
    if not _PREFIX_RE.match(text):
        raise ParameterError(
            f"deploy_env_parameter_prefix must be a Parameter Store path like /atp/prod/backend/, "
            f"got {prefix!r}: use letters, digits, _ . - between slashes")
    if text.lower().startswith(("/aws/", "/ssm/")):
        raise ParameterError(
            f"deploy_env_parameter_prefix {prefix!r} is reserved by AWS (/aws, /ssm): "
            "use a project path like /atp/prod/backend/")
    return text


def file_segment(env_file: str) -> str:
    """``.env`` -> ``env``, ``.env.aws`` -> ``env.aws``."""
    return env_file.lstrip(".")


def plan(prefix: str, wanted: Mapping) -> list[tuple[str, str, str]]:
    """[(env file, variable, parameter name)] for ``wanted`` = {env file: [variable, ...]}."""
    base = normalise_prefix(prefix)
    if not isinstance(wanted, Mapping):
        raise ParameterError(
            "deploy_env_parameters must map env files to variable names, e.g. "
            "{'.env.aws': [EXCHANGE_CUSTOM_API_KEY]}, got " + type(wanted).__name__)
    entries: list[tuple[str, str, str]] = []
    for env_file, names in wanted.items():
        if not isinstance(env_file, str) or not _FILE_RE.match(env_file):
            raise ParameterError(
                f"deploy_env_parameters: expected env file names like .env or .env.aws as keys, "
                f"got {env_file!r}")
        if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
            raise ParameterError(
                f"deploy_env_parameters[{env_file!r}] must be a list of variable names, "
                f"got {type(names).__name__}")
        seen: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not _VAR_RE.match(name):
                raise ParameterError(
                    f"deploy_env_parameters[{env_file!r}]: {name!r} is not a variable name "
                    "(letters, digits, _; not starting with a digit)")
            if name in seen:
                raise ParameterError(
                    f"deploy_env_parameters[{env_file!r}] lists {name} twice: list it once")
            seen.add(name)
            entries.append((env_file, name, f"{base}{file_segment(env_file)}/{name}"))
    return entries


def batches(names: list[str], size: int = BATCH_SIZE) -> list[list[str]]:
    """``names`` in chunks of at most ``size`` (GetParameters' limit)."""
    return [names[start:start + size] for start in range(0, len(names), size)]


def missing_message(missing: list[str], prefix: str) -> str:
    """The one-line error for parameters that do not exist (or are not visible)."""
    shown = ", ".join(missing)
    return (
        f"Parameter Store: expected SecureString parameter(s) {shown}, not found "
        f"(or not readable with these credentials): create them (aws ssm put-parameter --type "
        f"SecureString --name {missing[0]} --value ...) or remove the variable from "
        f"deploy_env_parameters; prefix {prefix}")


def assemble(prefix: str, entries: list[tuple[str, str, str]], found: Mapping[str, object],
             types: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """{env file: {variable: value}} from ``found`` = {parameter name: value}.

    ParameterError names every missing parameter (one line), or the parameters that are not
    SecureString (a String or StringList parameter is stored unencrypted).
    """
    missing = [name for _file, _var, name in entries if name not in found]
    if missing:
        raise ParameterError(missing_message(missing, prefix))
    plain = [name for _f, _v, name in entries
             if (types or {}).get(name, "SecureString") != "SecureString"]
    if plain:
        raise ParameterError(
            f"Parameter Store: expected SecureString parameters, got "
            f"{(types or {})[plain[0]]} for {', '.join(plain)}: re-create them with "
            "--type SecureString (String parameters are stored unencrypted)")
    env: dict[str, dict[str, str]] = {}
    for env_file, var, name in entries:
        env.setdefault(env_file, {})[var] = str(found[name])
    return env
