"""Env values from SSM Parameter Store (the sandbox's moto, behind the SSM stand-in).

Read on the controller with the operator's credentials by atp.deploy.env_parameters, merged
over the inventory's values, written into the release's env set on the instance (read here
through current/.env*); never printed, not even with -v; a missing parameter stops the deploy
before any session, naming the parameter only.
"""

from __future__ import annotations

import json
import uuid
from functools import partial

import pytest
from atp_sandbox.config import FIRST_INSTANCE_ID, container_name

from .aws_sandbox import client, ensure_transfer_key
from .conftest import APP, instance_read, playbook

on_instance = partial(instance_read, container_name(FIRST_INSTANCE_ID))


@pytest.fixture(scope="module")
def parameters():
    """SecureString parameters under a fresh prefix, encrypted with the project's moto key."""
    ensure_transfer_key()
    tag = uuid.uuid4().hex[:8]
    prefix = f"/atp/sandbox-{tag}/backend/"
    values = {"env/ATP_FROM_PARAMETER_STORE": f"yes-{tag}",
              # the inventory has these names with other values: the parameters win
              "env.aws/CRYPTO_COM_API_KEY": f"ssm-key-{tag}",
              "env.aws/CRYPTO_COM_API_SECRET": f"ssm-secret-{tag}"}
    ssm = client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=prefix + name, Value=value, Type="SecureString",
                          KeyId="alias/atp-sandbox-transfer")
    yield prefix, values
    ssm.delete_parameters(Names=[prefix + name for name in values])
    # back to the inventory's env values only (the keys added here would otherwise stay)
    proc = playbook("deploy.yml", "-e", "deploy_env_replace=true")
    assert proc.returncode == 0, proc.stdout[-3000:]


def layout(prefix: str, aws_names: list[str]) -> str:
    return json.dumps({"deploy_env_parameter_prefix": prefix, "deploy_env_parameters": {
        ".env": ["ATP_FROM_PARAMETER_STORE"], ".env.aws": aws_names}})


def test_values_come_from_parameter_store_and_are_never_printed(parameters):
    prefix, values = parameters
    proc = playbook("deploy.yml", "-v", "-e",
                    layout(prefix, ["CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"]))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-3000:]
    for value in values.values():
        assert value not in output
    assert f"Parameter Store {prefix}: 3 value(s) read" in proc.stdout
    env = on_instance("cat", f"{APP}/current/.env")
    env_aws = on_instance("cat", f"{APP}/current/.env.aws")
    assert values["env/ATP_FROM_PARAMETER_STORE"] in env
    # written under the canonical names, the inventory's alias values replaced
    assert values["env.aws/CRYPTO_COM_API_KEY"] in env_aws
    assert values["env.aws/CRYPTO_COM_API_SECRET"] in env_aws
    assert "sandbox-fake-key-3f9a" not in env_aws


def test_a_missing_parameter_stops_the_deploy_before_any_session(parameters, events):
    prefix, values = parameters
    proc = playbook("deploy.yml", "-e", layout(prefix, ["CRYPTO_COM_API_KEY",
                                                        "EXCHANGE_CUSTOM_API_PASSPHRASE"]))
    assert proc.returncode != 0
    assert f"{prefix}env.aws/EXCHANGE_CUSTOM_API_PASSPHRASE" in proc.stdout
    assert "not found" in proc.stdout
    for value in values.values():
        assert value not in proc.stdout + proc.stderr
    assert events.sessions() == 0
