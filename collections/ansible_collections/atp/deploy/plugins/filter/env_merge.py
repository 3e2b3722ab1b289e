# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters: atp.deploy.env_values, atp.deploy.env_key_digests (controller side of the env merge).

The deploy no longer writes whole env files: it sends the values it sets, and the instance
merges them onto what is there (module_utils/dotenv.py). To plan without sending values,
release_state gets one salted digest per key (env_key_digests) and compares on the instance.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.atp.deploy.plugins.module_utils import credentials, dotenv

# ansible-core >= 2.19 / < 2.19 vault-encrypted scalar types (neither subclasses str).
_VAULT_TYPES = ("EncryptedString", "AnsibleVaultEncryptedUnicode")


def _plain(value: object) -> object:
    if value is None or isinstance(value, (str, int)):
        return value
    if type(value).__name__ in _VAULT_TYPES:
        return str(value)
    return value


def _text(value: object) -> str:
    """How a value is written: bool -> true/false, None -> '', int -> decimal, str as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def env_values(env: Mapping) -> dict:
    """Validate an env mapping (names, values; no value in any message) -> {NAME: text}."""
    if not isinstance(env, Mapping):
        raise AnsibleFilterError(f"env must be a mapping, got {type(env).__name__}")
    plain = {name: _plain(value) for name, value in env.items()}
    checked = {name: ("" if value is None else value) for name, value in plain.items()}
    try:
        credentials.validate_env_names(checked)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {name: _text(value) for name, value in sorted(plain.items())}


def env_key_digests(files: Mapping, salt: str) -> dict:
    """{file: {NAME: text}} -> {file: {NAME: HMAC-SHA256(salt, NAME\\0text)}}."""
    if not isinstance(files, Mapping):
        raise AnsibleFilterError(f"env files must be a mapping, got {type(files).__name__}")
    if not salt:
        raise AnsibleFilterError("env_key_digests needs the per-run salt, got an empty one")
    result = {}
    for name, env in files.items():
        if not isinstance(env, Mapping):
            raise AnsibleFilterError(f"the values of {name} must be a mapping, got "
                                     f"{type(env).__name__}")
        result[name] = dotenv.digests({k: _text(_plain(v)) for k, v in env.items()}, str(salt))
    return result


def credential_supersedes(_unused: object = None) -> dict:
    """{canonical credential name: [its aliases]}: aliases an instance file drops once the
    deploy passes the canonical name (credentials are always written under it)."""
    result = {}
    canonical_key, canonical_secret = credentials.CREDENTIAL_PAIRS[0]
    for index, canonical in ((0, canonical_key), (1, canonical_secret)):
        result[canonical] = [pair[index] for pair in credentials.CREDENTIAL_PAIRS[1:]]
    return result


class FilterModule:
    """atp.deploy env merge filters."""

    def filters(self) -> dict:
        """Filter name -> callable."""
        return {"env_values": env_values, "env_key_digests": env_key_digests,
                "credential_supersedes": credential_supersedes}
