"""Transfer bucket housekeeping: prefix scoping, encryption settings, leftovers by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import transfer_bucket as tb

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_prefix_is_the_plugins_key_prefix_for_the_host():
    assert tb.instance_prefix("i-08726dc37133b2454") == "i-08726dc37133b2454/"


@pytest.mark.parametrize("bad", ["", "i-1/x", "*", "i-1*", None, "../i-1", "/"])
def test_a_prefix_that_could_reach_other_hosts_is_refused(bad):
    with pytest.raises(tb.TransferBucketError):
        tb.instance_prefix(bad)


@pytest.mark.parametrize(("mode", "key", "require", "needle"), [
    (None, None, True, "sse_mode=aws:kms"),
    ("AES256", None, True, "saw AES256"),
    ("aws:kms", "", True, "sse_kms_key_id"),
    ("aws:kms", "alias/atp", True, None),
    (None, None, False, None),
])
def test_encryption_settings(mode, key, require, needle):
    problem = tb.encryption_problem(mode, key, require)
    if needle is None:
        assert problem is None
    else:
        assert needle in problem and "\n" not in problem


def test_leftovers_older_than_min_age_go_younger_ones_stay_other_hosts_never_seen():
    objects = [
        {"Key": "i-1//home/ssm-user/.ansible/tmp/a/AnsiballZ_env_files.py",
         "LastModified": NOW - timedelta(seconds=600)},
        {"Key": "i-1//home/ssm-user/.ansible/tmp/b/AnsiballZ_smoke_check.py",
         "LastModified": NOW - timedelta(seconds=5)},
        {"Key": "i-10//home/x", "LastModified": NOW - timedelta(days=3)},
        {"Key": "i-2//home/x", "LastModified": NOW - timedelta(days=3)},
    ]
    delete, kept = tb.leftovers(objects, NOW, 60, "i-1/")
    assert delete == ["i-1//home/ssm-user/.ansible/tmp/a/AnsiballZ_env_files.py"]
    assert kept == ["i-1//home/ssm-user/.ansible/tmp/b/AnsiballZ_smoke_check.py"]
    delete, kept = tb.leftovers(objects, NOW, 0, "i-1/")
    assert len(delete) == 2 and kept == []


def test_chunks_respect_delete_objects_limit():
    keys = [str(n) for n in range(2500)]
    assert [len(c) for c in tb.chunks(keys)] == [1000, 1000, 500]


KEY = "arn:aws:kms:ap-southeast-1:111122223333:key/0d9a1c54"


@pytest.mark.parametrize(("rules", "wanted", "needle"), [
    ([], KEY, "saw none"),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}], KEY, "saw AES256"),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}], KEY, "aws/s3"),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                              "KMSMasterKeyID": KEY + "ff"}}], KEY, "expected"),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                              "KMSMasterKeyID": KEY}}], KEY, None),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                              "KMSMasterKeyID": "0d9a1c54"}}], KEY, None),
    ([{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                              "KMSMasterKeyID": KEY}}], "alias/atp", None),
])
def test_default_encryption(rules, wanted, needle):
    problem = tb.default_encryption_problem("b", rules, wanted)
    if needle is None:
        assert problem is None
    else:
        assert needle in problem and "\n" not in problem


NONCURRENT_1D = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""},
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}


@pytest.mark.parametrize(("status", "rules", "ok"), [
    (None, [], True),                      # never enabled
    ("Suspended", [], True),
    ("Enabled", [], False),
    ("Enabled", [NONCURRENT_1D], True),
    ("Enabled", [{**NONCURRENT_1D, "Filter": {}}], True),
    ("Enabled", [{**NONCURRENT_1D, "Filter": {"Prefix": "i-"}}], True),
    ("Enabled", [{"ID": "legacy", "Status": "Enabled", "Prefix": "",
                  "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}], True),
    ("Enabled", [{**NONCURRENT_1D, "Status": "Disabled"}], False),
    ("Enabled", [{**NONCURRENT_1D, "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}],
     False),
    ("Enabled", [{**NONCURRENT_1D, "NoncurrentVersionExpiration": {
        "NoncurrentDays": 1, "NewerNoncurrentVersions": 3}}], False),
    ("Enabled", [{**NONCURRENT_1D, "Filter": {"Prefix": "backups/"}}], False),
    ("Enabled", [{**NONCURRENT_1D, "Filter": {"Tag": {"Key": "k", "Value": "v"}}}], False),
    ("Enabled", [{**NONCURRENT_1D, "Filter": {"And": {
        "Prefix": "", "Tags": [{"Key": "k", "Value": "v"}]}}}], False),
    ("Enabled", [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
                  "Expiration": {"Days": 1}}], False),  # current objects only
])
def test_versioning(status, rules, ok):
    problem = tb.versioning_problem("b", status, rules, "i-1/")
    if ok:
        assert problem is None
    else:
        assert "saw Enabled" in problem and "Status=Suspended" in problem
        assert "transfer-bucket-lifecycle.json" in problem and "\n" not in problem
