"""Parameter Store layout for env values: names, batches, the one-line errors."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import env_parameters as ep

SECRET = "value-NEVER-shown-9d1"


@pytest.mark.parametrize(("given", "expected"), [
    ("/atp/prod/backend/", "/atp/prod/backend/"),
    ("/atp/prod/backend", "/atp/prod/backend/"),
    (" /atp/x ", "/atp/x/"),
])
def test_prefix_is_normalised(given, expected):
    assert ep.normalise_prefix(given) == expected


@pytest.mark.parametrize("bad", ["", "atp/prod", "/atp//prod/", "/atp/pr od/", "/aws/x/",
                                 "/ssm/x", "/"])
def test_unusable_prefix_is_one_line_error(bad):
    with pytest.raises(ep.ParameterError) as err:
        ep.normalise_prefix(bad)
    assert "deploy_env_parameter_prefix" in str(err.value) and "\n" not in str(err.value)


def test_plan_names_one_parameter_per_file_and_variable():
    entries = ep.plan("/atp/prod/backend", {
        ".env": ["ENVIRONMENT"],
        ".env.aws": ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]})
    assert entries == [
        (".env", "ENVIRONMENT", "/atp/prod/backend/env/ENVIRONMENT"),
        (".env.aws", "EXCHANGE_CUSTOM_API_KEY",
         "/atp/prod/backend/env.aws/EXCHANGE_CUSTOM_API_KEY"),
        (".env.aws", "EXCHANGE_CUSTOM_API_SECRET",
         "/atp/prod/backend/env.aws/EXCHANGE_CUSTOM_API_SECRET"),
    ]


@pytest.mark.parametrize(("wanted", "needle"), [
    ({"env": ["A"]}, "env file names"),
    ({".env": "A"}, "must be a list"),
    ({".env": ["1A"]}, "not a variable name"),
    ({".env": ["A-B"]}, "not a variable name"),
    ({".env": ["A", "A"]}, "twice"),
    (["A"], "must map env files"),
])
def test_bad_layout_is_one_line_error(wanted, needle):
    with pytest.raises(ep.ParameterError, match=needle):
        ep.plan("/atp/", wanted)


def test_batches_respect_the_get_parameters_limit():
    names = [f"/p/{n}" for n in range(23)]
    chunks = ep.batches(names)
    assert [len(c) for c in chunks] == [10, 10, 3] and [n for c in chunks for n in c] == names


def test_assemble_maps_values_to_files():
    entries = ep.plan("/p/", {".env": ["A"], ".env.aws": ["B"]})
    env = ep.assemble("/p/", entries, {"/p/env/A": "1", "/p/env.aws/B": SECRET},
                      {"/p/env/A": "SecureString", "/p/env.aws/B": "SecureString"})
    assert env == {".env": {"A": "1"}, ".env.aws": {"B": SECRET}}


def test_missing_parameters_are_all_named_and_no_value_is_shown():
    entries = ep.plan("/p/", {".env.aws": ["KEY", "SECRET", "OTHER"]})
    with pytest.raises(ep.ParameterError) as err:
        ep.assemble("/p/", entries, {"/p/env.aws/OTHER": SECRET})
    message = str(err.value)
    assert "/p/env.aws/KEY" in message and "/p/env.aws/SECRET" in message
    assert "/p/env.aws/OTHER" not in message and SECRET not in message and "\n" not in message


def test_a_plain_string_parameter_is_refused():
    entries = ep.plan("/p/", {".env.aws": ["KEY"]})
    with pytest.raises(ep.ParameterError) as err:
        ep.assemble("/p/", entries, {"/p/env.aws/KEY": SECRET}, {"/p/env.aws/KEY": "String"})
    assert "SecureString" in str(err.value) and SECRET not in str(err.value)
