"""atp.deploy.env_parameters against moto's Parameter Store: values in, names in errors only."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from ansible.playbook.task import Task
from ansible_collections.atp.deploy.plugins.action.env_parameters import (
    ActionModule,
    client_error_message,
)

from .moto_local import REGION, client

KEY = "key-VALUE-never-shown-51c"
SECRET = "secret-VALUE-never-shown-7be"


def make_action(args: dict, connection=None) -> ActionModule:
    task = mock.MagicMock(Task)
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = False
    task.diff = False
    connection = connection or mock.MagicMock(spec=["get_option", "_shell"])
    return ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(),
                        mock.MagicMock())


@pytest.fixture
def prefix(moto_endpoint, aws_env):
    base = f"/atp/test-{uuid.uuid4().hex[:8]}/backend/"
    ssm = client("ssm", moto_endpoint)
    kms = client("kms", moto_endpoint)
    key_id = kms.create_key(Description="atp parameters")["KeyMetadata"]["KeyId"]
    ssm.put_parameter(Name=f"{base}env/ENVIRONMENT", Value="aws", Type="SecureString")
    ssm.put_parameter(Name=f"{base}env.aws/EXCHANGE_CUSTOM_API_KEY", Value=KEY,
                      Type="SecureString", KeyId=key_id)
    ssm.put_parameter(Name=f"{base}env.aws/EXCHANGE_CUSTOM_API_SECRET", Value=SECRET,
                      Type="SecureString", KeyId=key_id)
    ssm.put_parameter(Name=f"{base}env.aws/PLAIN", Value="x", Type="String")
    return base


def test_values_are_read_decrypted_and_the_result_is_censored(prefix, moto_endpoint):
    action = make_action({"prefix": prefix, "region": REGION, "endpoint_url": moto_endpoint,
                          "parameters": {".env": ["ENVIRONMENT"], ".env.aws": [
                              "EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]}})
    result = action.run(task_vars={})
    assert not result.get("failed"), result.get("msg")
    assert result["env"] == {".env": {"ENVIRONMENT": "aws"}, ".env.aws": {
        "EXCHANGE_CUSTOM_API_KEY": KEY, "EXCHANGE_CUSTOM_API_SECRET": SECRET}}
    assert result["_ansible_no_log"] is True and result["changed"] is False


def test_the_connections_client_is_used_when_no_endpoint_is_given(prefix, moto_endpoint):
    connection = mock.MagicMock()
    connection.get_option.side_effect = {"region": REGION}.get
    connection._get_boto_client.side_effect = lambda service, region_name: client(
        service, moto_endpoint)
    action = make_action({"prefix": prefix, "parameters": {".env": ["ENVIRONMENT"]}}, connection)
    assert action.run(task_vars={})["env"] == {".env": {"ENVIRONMENT": "aws"}}
    connection._get_boto_client.assert_called_once_with("ssm", region_name=REGION)


def test_more_than_ten_names_take_several_calls(prefix, moto_endpoint):
    ssm = client("ssm", moto_endpoint)
    names = [f"V{n}" for n in range(12)]
    for name in names:
        ssm.put_parameter(Name=f"{prefix}env/{name}", Value=name.lower(), Type="SecureString")
    result = make_action({"prefix": prefix, "region": REGION, "endpoint_url": moto_endpoint,
                          "parameters": {".env": names}}).run(task_vars={})
    assert result["env"][".env"] == {name: name.lower() for name in names}


def test_a_missing_parameter_is_named_visibly_and_no_value_leaks(prefix, moto_endpoint):
    result = make_action({"prefix": prefix, "region": REGION, "endpoint_url": moto_endpoint,
                          "parameters": {".env.aws": ["EXCHANGE_CUSTOM_API_KEY",
                                                      "EXCHANGE_CUSTOM_API_PASSPHRASE"]}}
                         ).run(task_vars={})
    assert result["failed"] and "_ansible_no_log" not in result
    assert f"{prefix}env.aws/EXCHANGE_CUSTOM_API_PASSPHRASE" in result["msg"]
    assert "env" not in result and KEY not in str(result) and "\n" not in result["msg"]


def test_a_plain_string_parameter_is_refused(prefix, moto_endpoint):
    result = make_action({"prefix": prefix, "region": REGION, "endpoint_url": moto_endpoint,
                          "parameters": {".env.aws": ["PLAIN"]}}).run(task_vars={})
    assert result["failed"] and "SecureString" in result["msg"] and "env" not in result


def test_a_bad_layout_fails_before_any_aws_call():
    connection = mock.MagicMock()
    result = make_action({"prefix": "/aws/x/", "parameters": {".env": ["A"]}},
                         connection).run(task_vars={})
    assert result["failed"] and "reserved" in result["msg"]
    connection._get_boto_client.assert_not_called()


def test_unreachable_endpoint_is_one_line(aws_env):
    result = make_action({"prefix": "/atp/", "region": REGION,
                          "endpoint_url": "http://127.0.0.1:9",
                          "parameters": {".env": ["A"]}}).run(task_vars={})
    assert result["failed"] and "\n" not in result["msg"]
    assert "Parameter Store" in result["msg"]


def test_access_denied_names_the_parameters_and_the_policy():
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": "AccessDeniedException",
                                 "Message": "User: arn:aws:iam::1:user/op is not authorized"}},
                      "GetParameters")
    message = client_error_message(exc, ["/p/env/A"])
    assert "/p/env/A" in message and "operator-policy.json" in message
