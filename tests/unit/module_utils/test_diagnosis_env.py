"""diagnose's env files, credential aliases and report mask (module_utils/diagnosis_env.py)."""

from __future__ import annotations

import textwrap

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import credentials
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_env as de

KEY, SECRET = "sandbox-fake-key-3f9a", "sandbox-fake-secret-c41d"


# --------------------------------------------------------------------------- env files


def test_parse_env_text_reads_names_and_values_like_compose():
    text = textwrap.dedent("""\
        # Managed by Ansible (atp.deploy). Local edits are overwritten.
        ENVIRONMENT='aws'
        export PLAIN=value # a comment
        DOUBLE="a \\"quoted\\" value"
        EMPTY=''
        BARE
        bad-name=x
        not an assignment
        URL=http://host/#frag
        """)
    assert de.parse_env_text(text) == [
        ("ENVIRONMENT", "aws"), ("PLAIN", "value"), ("DOUBLE", 'a "quoted" value'),
        ("EMPTY", ""), ("BARE", ""), ("URL", "http://host/#frag"),
    ]
    assert de.parse_env_text("") == [] and de.parse_env_text(None) == []


def test_merged_set_names_later_file_wins():
    merged = de.merged_set_names([[("A", "1"), ("B", "x")], [("B", ""), ("C", " ")]])
    assert merged == {"A": True, "B": False, "C": False}


# --------------------------------------------------------------------------- credentials


def test_the_alias_table_is_the_credentials_one():
    """One alias table: diagnose resolves credentials.CREDENTIAL_PAIRS, in its order."""
    assert de.CREDENTIAL_PAIRS is credentials.CREDENTIAL_PAIRS
    assert de.alias_patterns() == "CRYPTO_COM_API_*/CRYPTOCOM_API_*"


@pytest.mark.parametrize(("names", "alias"), [
    ({"EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET", "CRYPTO_COM_API_KEY",
      "CRYPTO_COM_API_SECRET"}, "EXCHANGE_CUSTOM_API_KEY"),
    ({"CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"}, "CRYPTO_COM_API_KEY"),
    ({"CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET", "EXCHANGE_CUSTOM_API_KEY"},
     "CRYPTOCOM_API_KEY"),
    ({"ENVIRONMENT"}, None),
    (set(), None),
])
def test_resolve_alias_order(names, alias):
    result = de.resolve_alias(names)
    assert result["alias"] == alias
    if alias:
        assert result["pair"][0] == alias and result["pair"][1].endswith("_SECRET")
    else:
        assert result["pair"] is None


def test_resolve_alias_needs_both_halves_non_empty():
    result = de.resolve_alias({"EXCHANGE_CUSTOM_API_KEY": True,
                               "EXCHANGE_CUSTOM_API_SECRET": False})
    assert result["alias"] is None
    assert result["partial"] == ["EXCHANGE_CUSTOM_API_KEY is set but "
                                 "EXCHANGE_CUSTOM_API_SECRET is missing or empty"]
    half = de.resolve_alias({"CRYPTO_COM_API_SECRET"})
    assert half["partial"] == ["CRYPTO_COM_API_SECRET is set but CRYPTO_COM_API_KEY is "
                               "missing or empty"]


# --------------------------------------------------------------------------- the report's mask


def test_masking_hides_every_env_value_but_not_tiny_plain_ones():
    pairs = [("EXCHANGE_CUSTOM_API_KEY", KEY), ("EXCHANGE_CUSTOM_API_SECRET", SECRET),
             ("ENVIRONMENT", "aws"), ("PORTFOLIO_DEBUG", "1"), ("DB_PASSWORD", "pw"),
             ("ATP_INSTANCE_ID", "i-0abc"), ("EMPTY", "")]
    secrets = de.secrets_to_mask(pairs)
    assert KEY in secrets and SECRET in secrets and "pw" in secrets and "i-0abc" in secrets
    assert "aws" not in secrets and "1" not in secrets and "" not in secrets
    line = f"backend-aws key={KEY} secret={SECRET} pw=pw on i-0abc debug=1"
    masked = de.mask_text(line, secrets)
    assert masked == "backend-aws key=*** secret=*** ***=*** on *** debug=1"


def test_short_values_of_the_real_apps_non_secret_names_stay_readable():
    """masking.SECRET_NAME_RE would take SIGN/SESSION: every '30' in the logs would go."""
    pairs = [("SIGNAL_COOLDOWN_MINUTES", "30"), ("SESSION_TTL_MINUTES", "720")]
    assert de.secrets_to_mask(pairs) == []


def test_masking_longest_first_and_json_escaped_forms():
    secrets = de.secrets_to_mask([("API_TOKEN", "abcd"), ("OTHER_TOKEN", "abcdef\"gh")])
    assert de.mask_text('x abcdef"gh y abcd', secrets) == "x *** y ***"
    assert de.mask_text('{"t": "abcdef\\"gh"}', secrets) == '{"t": "***"}'
    assert de.mask_text(None, secrets) == ""


def test_mask_data_walks_structures():
    data = {"error": f"boom {KEY}", "list": [KEY, 1, None], KEY: True}
    assert de.mask_data(data, [KEY]) == {"error": "boom ***", "list": ["***", 1, None],
                                         "***": True}
