"""atp.deploy.transfer_bucket against moto's S3: only this host's prefix, only old leftovers."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from unittest import mock

import pytest
from ansible.playbook.task import Task
from ansible_collections.atp.deploy.plugins.action.transfer_bucket import ActionModule

from .moto_local import REGION, client

HOST = "i-08726dc37133b2454"
KEY_ARN = "arn:aws:kms:ap-southeast-1:123456789012:key/0d9a1c54-6a7e-4b8e-9a43-5b1f3c2e7d10"
OTHER = "i-08726dc37133b3565"


def ssm_connection(s3, bucket: str, sse_mode="aws:kms", key="alias/atp-test"):
    options = {"bucket_name": bucket, "bucket_sse_mode": sse_mode, "bucket_sse_kms_key_id": key,
               "region": REGION}
    connection = mock.MagicMock()
    connection.get_option.side_effect = options.get
    connection.instance_id = HOST
    connection.s3_manager = SimpleNamespace(client=s3)
    return connection


def make_action(args: dict, connection, check_mode: bool = False) -> ActionModule:
    task = mock.MagicMock(Task)
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    return ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(),
                        mock.MagicMock())


@pytest.fixture
def bucket(moto_endpoint, aws_env):
    s3 = client("s3", moto_endpoint)
    name = f"atp-transfer-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": KEY_ARN}}]})
    for key in (f"{HOST}//home/ssm-user/.ansible/tmp/a/AnsiballZ_env_files.py",
                f"{HOST}//home/ssm-user/.ansible/tmp/a/release.tar.gz",
                f"{OTHER}//home/ssm-user/.ansible/tmp/b/AnsiballZ_ping.py"):
        s3.put_object(Bucket=name, Key=key, Body=b"payload", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId="alias/atp-test")
    return s3, name


def keys(s3, name: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", []))


def test_leftovers_under_this_hosts_prefix_are_removed_other_hosts_kept(bucket):
    s3, name = bucket
    result = make_action({"min_age": 0}, ssm_connection(s3, name)).run(task_vars={})
    assert result["changed"] and len(result["removed"]) == 2, result
    assert keys(s3, name) == [f"{OTHER}//home/ssm-user/.ansible/tmp/b/AnsiballZ_ping.py"]
    again = make_action({"min_age": 0}, ssm_connection(s3, name)).run(task_vars={})
    assert not again["changed"] and again["removed"] == []


def test_recent_objects_may_belong_to_a_run_in_flight_and_stay(bucket):
    s3, name = bucket
    result = make_action({"min_age": 3600}, ssm_connection(s3, name)).run(task_vars={})
    assert not result["changed"] and len(result["kept_recent"]) == 2
    assert len(keys(s3, name)) == 3


def test_age_is_measured_by_s3s_clock(bucket):
    s3, name = bucket
    time.sleep(2.1)
    result = make_action({"min_age": 2}, ssm_connection(s3, name)).run(task_vars={})
    assert len(result["removed"]) == 2


def test_check_mode_reports_and_deletes_nothing(bucket):
    s3, name = bucket
    result = make_action({"min_age": 0}, ssm_connection(s3, name), check_mode=True).run(
        task_vars={})
    assert not result["changed"] and len(result["removed"]) == 2 and "would be" in result["msg"]
    assert len(keys(s3, name)) == 3


@pytest.mark.parametrize(("mode", "key", "needle"), [
    (None, None, "sse_mode=aws:kms"), ("AES256", None, "saw AES256"),
    ("aws:kms", None, "sse_kms_key_id")])
def test_unencrypted_transfers_are_refused_before_anything_is_listed(mode, key, needle):
    s3 = mock.MagicMock()
    result = make_action({}, ssm_connection(s3, "b", mode, key)).run(task_vars={})
    assert result["failed"] and needle in result["msg"]
    s3.get_paginator.assert_not_called()


def test_require_kms_false_accepts_a_bucket_without_kms(bucket):
    s3, name = bucket
    result = make_action({"min_age": 0, "require_kms": False},
                         ssm_connection(s3, name, None, None)).run(task_vars={})
    assert not result.get("failed") and len(result["removed"]) == 2


def test_no_bucket_is_one_line_error():
    result = make_action({}, ssm_connection(mock.MagicMock(), "")).run(task_vars={})
    assert result["failed"] and "ansible_aws_ssm_bucket_name" in result["msg"]


def test_s3_errors_are_one_line_naming_bucket_and_prefix(aws_env, moto_endpoint):
    s3 = client("s3", moto_endpoint)
    result = make_action({}, ssm_connection(s3, "atp-no-such-bucket-x1")).run(task_vars={})
    assert result["failed"] and f"s3://atp-no-such-bucket-x1/{HOST}/" in result["msg"]
    assert "\n" not in result["msg"]


def test_other_connections_are_skipped():
    connection = mock.MagicMock(spec=["get_option", "transport", "_shell"])
    connection.transport = "ansible.builtin.local"
    result = make_action({}, connection).run(task_vars={})
    assert result["skipped"] and not result.get("failed")


@pytest.mark.parametrize(("config", "needle"), [
    (None, "saw none"),
    ({"SSEAlgorithm": "AES256"}, "saw AES256"),
    ({"SSEAlgorithm": "aws:kms"}, "AWS managed key aws/s3"),
])
def test_a_bucket_that_does_not_encrypt_with_the_project_key_is_refused(aws_env, moto_endpoint,
                                                                        config, needle):
    s3 = client("s3", moto_endpoint)
    name = f"atp-transfer-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if config:
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": config}]})
    s3.put_object(Bucket=name, Key=f"{HOST}//tmp/x", Body=b"x")
    result = make_action({"min_age": 0}, ssm_connection(s3, name)).run(task_vars={})
    assert result["failed"] and needle in result["msg"] and "put-bucket-encryption" in result["msg"]
    assert len(keys(s3, name)) == 1  # nothing cleaned before the check passed


def test_another_key_than_the_inventorys_is_refused(bucket):
    s3, name = bucket
    other = KEY_ARN.replace("0d9a1c54", "11111111")
    result = make_action({}, ssm_connection(s3, name, key=other)).run(task_vars={})
    assert result["failed"] and "expected " + other in result["msg"]


def test_a_versioned_bucket_without_noncurrent_expiry_is_refused(bucket):
    """With versioning Enabled the plugin's delete keeps every payload (env values included) as
    a noncurrent version: refused before anything is cleaned, with what to do."""
    s3, name = bucket
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    result = make_action({"min_age": 0}, ssm_connection(s3, name, key=KEY_ARN)).run(task_vars={})
    assert result["failed"] and "saw Enabled" in result["msg"], result
    assert "Status=Suspended" in result["msg"] and "\n" not in result["msg"]
    assert len(keys(s3, name)) == 3  # nothing cleaned before the check passed


def test_a_versioned_bucket_whose_noncurrent_versions_expire_in_a_day_is_accepted(bucket):
    s3, name = bucket
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [{
        "ID": "expire-ssm-transfers", "Status": "Enabled", "Filter": {"Prefix": ""},
        "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]})
    result = make_action({"min_age": 0}, ssm_connection(s3, name, key=KEY_ARN)).run(task_vars={})
    assert not result.get("failed") and len(result["removed"]) == 2, result


def test_suspended_versioning_is_accepted(bucket):
    s3, name = bucket
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    result = make_action({"min_age": 0}, ssm_connection(s3, name, key=KEY_ARN)).run(task_vars={})
    assert not result.get("failed") and len(result["removed"]) == 2, result


def test_versioning_is_checked_even_without_kms_or_cleaning(bucket):
    s3, name = bucket
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    result = make_action({"require_kms": False, "clean": False},
                         ssm_connection(s3, name, None, None)).run(task_vars={})
    assert result["failed"] and "saw Enabled" in result["msg"]
