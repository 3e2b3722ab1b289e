"""Tests for credentials: aliases, conflicts, env-file rendering. No value may leak."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import credentials as cr
from ansible_collections.atp.deploy.plugins.module_utils.credentials import (
    CredentialError,
)

KEY = "k-1234-SUPERSECRETKEY"
SECRET = "s-5678-SUPERSECRETVALUE"
OTHER = "o-9999-ANOTHERSECRET"
VALUES = (KEY, SECRET, OTHER)


def _raises(env: dict, allow: bool = False) -> str:
    with pytest.raises(CredentialError) as info:
        cr.canonical_env(env, allow)
    message = str(info.value)
    assert "\n" not in message
    for value in VALUES:
        assert value not in message
    return message


@pytest.mark.parametrize(
    ("key_name", "secret_name"),
    [
        ("EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"),
        ("CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"),
        ("CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET"),
    ],
)
def test_aliases_become_canonical(key_name: str, secret_name: str) -> None:
    env = {key_name: KEY, secret_name: SECRET, "LOG_LEVEL": "info"}
    result = cr.canonical_env(env, False)
    assert result == {
        "EXCHANGE_CUSTOM_API_KEY": KEY,
        "EXCHANGE_CUSTOM_API_SECRET": SECRET,
        "LOG_LEVEL": "info",
    }
    assert env == {key_name: KEY, secret_name: SECRET, "LOG_LEVEL": "info"}  # not mutated
    assert result is not env


def test_same_value_under_two_aliases_is_fine() -> None:
    env = {
        "EXCHANGE_CUSTOM_API_KEY": KEY,
        "CRYPTO_COM_API_KEY": KEY,
        "CRYPTOCOM_API_SECRET": SECRET,
        "CRYPTO_COM_API_SECRET": "",
    }
    assert cr.canonical_env(env, False) == {
        "EXCHANGE_CUSTOM_API_KEY": KEY,
        "EXCHANGE_CUSTOM_API_SECRET": SECRET,
    }


def test_conflicting_aliases() -> None:
    env = {
        "EXCHANGE_CUSTOM_API_KEY": KEY,
        "EXCHANGE_CUSTOM_API_SECRET": SECRET,
        "CRYPTO_COM_API_KEY": OTHER,
    }
    assert _raises(env) == (
        "conflicting exchange credentials: EXCHANGE_CUSTOM_API_KEY and CRYPTO_COM_API_KEY "
        "differ; keep one name (EXCHANGE_CUSTOM_API_KEY) and remove the other"
    )


def test_conflicting_secrets_between_aliases() -> None:
    env = {
        "CRYPTO_COM_API_KEY": KEY,
        "CRYPTO_COM_API_SECRET": SECRET,
        "CRYPTOCOM_API_SECRET": OTHER,
    }
    message = _raises(env)
    assert "CRYPTO_COM_API_SECRET and CRYPTOCOM_API_SECRET differ" in message
    assert "(EXCHANGE_CUSTOM_API_SECRET)" in message


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"EXCHANGE_CUSTOM_API_KEY": KEY},
            ("EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"),
        ),
        ({"CRYPTO_COM_API_SECRET": SECRET}, ("CRYPTO_COM_API_SECRET", "CRYPTO_COM_API_KEY")),
        ({"CRYPTOCOM_API_KEY": KEY, "CRYPTOCOM_API_SECRET": ""},
         ("CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET")),
    ],
)
def test_incomplete_pair(env: dict, names: tuple[str, str]) -> None:
    for allow in (False, True):
        message = _raises(env, allow)
        assert message.startswith("incomplete exchange credentials: ")
        assert all(name in message for name in names)


def test_missing_not_allowed() -> None:
    env = {"LOG_LEVEL": "info", "EXCHANGE_CUSTOM_API_KEY": "", "CRYPTO_COM_API_KEY": None}
    message = _raises(env)
    assert message == (
        "no exchange credentials: expected EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET "
        "(or CRYPTO_COM_*/CRYPTOCOM_* aliases); set them in the vault or pass "
        "deploy_allow_missing_credentials=true"
    )


def test_missing_allowed_drops_empty_aliases() -> None:
    env = {"LOG_LEVEL": "info", "CRYPTO_COM_API_KEY": "", "EXCHANGE_CUSTOM_API_SECRET": "  "}
    assert cr.canonical_env(env, True) == {"LOG_LEVEL": "info"}


def test_canonical_env_requires_mapping() -> None:
    with pytest.raises(CredentialError):
        cr.canonical_env(["EXCHANGE_CUSTOM_API_KEY"], False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- env file


def test_validate_env_names_ok() -> None:
    cr.validate_env_names({"A": "x", "_B2": 3, "C": True, "D": ""})


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"1BAD": "v"}, "invalid environment variable name '1BAD'"),
        ({"BAD-NAME": "v"}, "invalid environment variable name 'BAD-NAME'"),
        ({"": "v"}, "invalid environment variable name ''"),
        ({"A": f"{KEY}\\"}, "the value of A ends with a backslash"),
        ({"A": f"{KEY}\0"}, "the value of A contains a NUL character"),
        ({"A": 1.5}, "A must be a string, integer or boolean (got float)"),
        ({"A": None}, "A must be a string, integer or boolean (got NoneType)"),
        ({"A": [KEY]}, "A must be a string, integer or boolean (got list)"),
    ],
)
def test_validate_env_names_errors(env: dict, fragment: str) -> None:
    with pytest.raises(CredentialError) as info:
        cr.validate_env_names(env)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    for value in VALUES:
        assert value not in message


def test_validate_env_names_reports_all_problems_in_one_line() -> None:
    with pytest.raises(CredentialError) as info:
        cr.validate_env_names({"B": "x\\", "A": "\0", "OK": "fine"})
    message = str(info.value)
    assert message.index("value of A") < message.index("value of B")
    assert "OK" not in message


def test_render_env_file() -> None:
    rendered = cr.render_env_file({"Z": "last", "A": 5, "FLAG": False, "ON": True, "E": ""})
    assert rendered == (
        "# Managed by Ansible (atp.deploy). Local edits are overwritten.\n"
        "A='5'\n"
        "E=''\n"
        "FLAG='false'\n"
        "ON='true'\n"
        "Z='last'\n"
    )


def test_render_env_file_empty_and_invalid() -> None:
    assert cr.render_env_file({}) == cr.ENV_HEADER + "\n"
    with pytest.raises(CredentialError):
        cr.render_env_file({"A": "a\\"})
    assert cr.render_env_file({"A": "a'b"}).endswith("A=\"a'b\"\n")


def test_render_keeps_dollar_and_spaces_literal() -> None:
    assert "P='a $b \"c\" d'\n" in cr.render_env_file({"P": 'a $b "c" d'})
