"""Tests for the atp.deploy env filters."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.atp.deploy.plugins.filter import env as env_filter

KEY = "key-VALUE-never-shown"
SECRET = "secret-VALUE-never-shown"


@pytest.fixture
def filters() -> dict:
    return env_filter.FilterModule().filters()


def test_filter_names(filters: dict) -> None:
    assert set(filters) == {"canonical_env", "render_env_file", "mask_env"}


def test_canonical_env_filter(filters: dict) -> None:
    result = filters["canonical_env"]({"CRYPTOCOM_API_KEY": KEY, "CRYPTOCOM_API_SECRET": SECRET})
    assert result == {"EXCHANGE_CUSTOM_API_KEY": KEY, "EXCHANGE_CUSTOM_API_SECRET": SECRET}


@pytest.mark.parametrize("allow", [True, "true", "yes", 1])
def test_allow_missing_accepts_ansible_booleans(filters: dict, allow: object) -> None:
    assert filters["canonical_env"]({"A": "1"}, allow) == {"A": "1"}


@pytest.mark.parametrize("allow", [False, "false", "no", 0])
def test_missing_credentials_error(filters: dict, allow: object) -> None:
    with pytest.raises(AnsibleFilterError) as info:
        filters["canonical_env"]({"A": "1"}, allow)
    assert str(info.value).startswith("no exchange credentials:")
    assert info.value.__cause__ is None


def test_allow_missing_rejects_garbage(filters: dict) -> None:
    with pytest.raises(AnsibleFilterError, match="allow_missing must be a boolean"):
        filters["canonical_env"]({"A": "1"}, "maybe")


def test_conflict_error_has_no_values(filters: dict) -> None:
    env = {
        "EXCHANGE_CUSTOM_API_KEY": KEY,
        "CRYPTO_COM_API_KEY": KEY + "x",
        "EXCHANGE_CUSTOM_API_SECRET": SECRET,
    }
    with pytest.raises(AnsibleFilterError) as info:
        filters["canonical_env"](env)
    message = str(info.value)
    assert "conflicting exchange credentials" in message
    assert KEY not in message
    assert SECRET not in message


def test_render_env_file_filter(filters: dict) -> None:
    text = filters["render_env_file"]({"B": "2", "A": True})
    assert text.splitlines()[1:] == ["A='true'", "B='2'"]


def test_render_env_file_filter_error(filters: dict) -> None:
    with pytest.raises(AnsibleFilterError) as info:
        filters["render_env_file"]({"A": f"{SECRET}\\"})
    assert "value of A ends with a backslash" in str(info.value)
    assert SECRET not in str(info.value)


def test_non_mapping_rejected(filters: dict) -> None:
    with pytest.raises(AnsibleFilterError, match="env must be a mapping"):
        filters["render_env_file"](["A=1"])


class EncryptedString:
    """Stand-in for ansible's vault string type (not a str subclass)."""

    def __init__(self, plaintext: str) -> None:
        self._plaintext = plaintext

    def __str__(self) -> str:
        return self._plaintext


def test_vault_values_are_unwrapped(filters: dict) -> None:
    env = {"CRYPTO_COM_API_KEY": EncryptedString(KEY), "CRYPTO_COM_API_SECRET": SECRET}
    result = filters["canonical_env"](env)
    assert result["EXCHANGE_CUSTOM_API_KEY"] == KEY
    assert filters["render_env_file"]({"K": EncryptedString(KEY)}).endswith(f"K='{KEY}'\n")
