"""Filters of the env merge: env_values, env_key_digests, credential_supersedes, rescue_plan."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.atp.deploy.plugins.filter import env_merge, rescue
from ansible_collections.atp.deploy.plugins.module_utils import dotenv


def test_env_values_renders_every_value_as_text():
    assert env_merge.env_values({"B": True, "A": 3, "C": "x", "D": None, "E": False}) == {
        "A": "3", "B": "true", "C": "x", "D": "", "E": "false"}


@pytest.mark.parametrize(("env", "fragment"), [
    ({"BAD NAME": "x"}, "invalid environment variable name"),
    ({"A": "secret-xyz\\"}, "ends with a backslash"),
    ({"A": "nul\0 secret-xyz"}, "NUL character"),
    ({"A": ["list"]}, "must be a string"),
])
def test_env_values_rejects_without_showing_the_value(env, fragment):
    with pytest.raises(AnsibleFilterError) as info:
        env_merge.env_values(env)
    assert fragment in str(info.value) and "secret-xyz" not in str(info.value)


def test_env_values_needs_a_mapping():
    with pytest.raises(AnsibleFilterError, match="must be a mapping"):
        env_merge.env_values(["A=1"])


def test_env_key_digests_match_what_the_instance_computes():
    files = {".env": {"A": "1", "B": True}, ".env.aws": {}}
    digests = env_merge.env_key_digests(files, "salt")
    assert digests == {".env": {"A": dotenv.key_digest("salt", "A", "1"),
                                "B": dotenv.key_digest("salt", "B", "true")},
                       ".env.aws": {}}
    plan = dotenv.plan_file("A=1\nB=true\nKEEP=x\n", digests[".env"], "salt")
    assert plan["set"] == [] and plan["kept"] == ["KEEP"] and plan["in_sync"] is True
    assert all(len(d) == 64 and set(d) <= set("0123456789abcdef")
               for d in digests[".env"].values())


def test_env_key_digests_needs_a_salt_and_mappings():
    with pytest.raises(AnsibleFilterError, match="per-run salt"):
        env_merge.env_key_digests({".env": {}}, "")
    with pytest.raises(AnsibleFilterError, match="must be a mapping"):
        env_merge.env_key_digests({".env": "A=1"}, "s")


def test_credential_supersedes_names_the_aliases_of_the_canonical_pair():
    assert env_merge.credential_supersedes() == {
        "EXCHANGE_CUSTOM_API_KEY": ["CRYPTO_COM_API_KEY", "CRYPTOCOM_API_KEY"],
        "EXCHANGE_CUSTOM_API_SECRET": ["CRYPTO_COM_API_SECRET", "CRYPTOCOM_API_SECRET"]}


def test_filters_are_registered():
    assert set(env_merge.FilterModule().filters()) == {"env_values", "env_key_digests",
                                                       "credential_supersedes"}
    assert set(rescue.FilterModule().filters()) == {"rescue_plan"}


def test_rescue_plan_filter_takes_any_registered_result():
    zero = "20261124T101459Z-aaaaaaaaaaaa"
    rid = "20261124T101500Z-0123456789ab"
    assert rescue.rescue_plan({"switched": True, "previous_release": zero}, rid) == {
        "rollback_to": zero, "note": f"-- rolled back to {zero}"}
    assert rescue.rescue_plan("undefined", rid)["rollback_to"] == ""
    assert rescue.rescue_plan({}, "")["note"] == "-- the running backend was not touched"
