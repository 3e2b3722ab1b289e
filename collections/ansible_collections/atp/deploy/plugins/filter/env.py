# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters: atp.deploy.canonical_env, atp.deploy.render_env_file and atp.deploy.mask_env."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.atp.deploy.plugins.module_utils import credentials, masking

# ansible-core >= 2.19 / < 2.19 vault-encrypted scalar types (neither subclasses str).
_VAULT_TYPES = ("EncryptedString", "AnsibleVaultEncryptedUnicode")


def _plain(value: object) -> object:
    """Unwrap values that are not str/int/bool/None (e.g. vault-encrypted strings) to str."""
    if value is None or isinstance(value, (str, int)):
        return value
    if type(value).__name__ in _VAULT_TYPES:
        return str(value)
    return value


def _plain_env(env: object) -> dict:
    """A plain dict copy of ``env`` (AnsibleFilterError if it is not a mapping)."""
    if not isinstance(env, Mapping):
        raise AnsibleFilterError(f"env must be a mapping, got {type(env).__name__}")
    return {name: _plain(value) for name, value in env.items()}


def canonical_env(env: Mapping, allow_missing: object = False) -> dict:
    """Filter wrapper for :func:`credentials.canonical_env`."""
    try:
        allow = boolean(allow_missing, strict=True)
    except TypeError:
        raise AnsibleFilterError(
            "allow_missing must be a boolean (deploy_allow_missing_credentials)"
        ) from None
    try:
        return credentials.canonical_env(_plain_env(env), allow)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def render_env_file(env: Mapping) -> str:
    """Filter wrapper for :func:`credentials.render_env_file`."""
    try:
        return credentials.render_env_file(_plain_env(env))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def _pairs(env: object) -> list:
    """(name, value) of {NAME: value} or of {file: {NAME: value}} (app_env_values)."""
    if not isinstance(env, Mapping):
        return []
    pairs = []
    for name, value in env.items():
        if isinstance(value, Mapping):
            pairs += _pairs(value)
        elif value is not None and not isinstance(value, (list, tuple)):
            pairs.append((str(name), str(_plain(value))))
    return pairs


def mask_env(text: object, *envs: object) -> object:
    """text with every env value of envs masked (module_utils/masking.py rules) and compose's
    env file errors cut: for failure messages the controller prints or records."""
    masker = masking.Masker()
    for env in envs:
        masker.add_pairs(_pairs(env))
    return masker.data(text)


class FilterModule:
    """atp.deploy env filters."""

    def filters(self) -> dict:
        """Filter name -> callable."""
        return {"canonical_env": canonical_env, "render_env_file": render_env_file,
                "mask_env": mask_env}
