"""The aws_ssm transfer bucket keeps nothing: not after a deploy, not after a killed run.

Every module (its arguments carry the env values) goes through the bucket, SSE-KMS encrypted.
The plugin deletes each object after the instance fetched it; a run killed in between leaves it,
and the next deploy removes it (atp.deploy.transfer_bucket, on the controller, no session).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import pytest
from atp_sandbox.config import FIRST_INSTANCE_ID

from .aws_sandbox import (
    bucket,
    bucket_keys,
    client,
    ensure_transfer_key,
    set_latency,
    wait_for_event,
)
from .conftest import REPO, playbook, sandbox_env

INSTANCE = FIRST_INSTANCE_ID


def env_change() -> str:
    """-e value that changes .env, so the env_files module (with the values) is transferred."""
    return json.dumps({"deploy_env": {"ENVIRONMENT": "aws",
                                      "ATP_TRANSFER_TEST": uuid.uuid4().hex[:8]}})


@pytest.fixture(scope="module", autouse=True)
def inventory_env_afterwards():
    """Back to the inventory's env values only (the test keys would otherwise stay)."""
    yield
    proc = playbook("deploy.yml", "-e", "deploy_env_replace=true")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_no_object_is_left_after_a_deploy(events):
    ensure_transfer_key()
    proc = playbook("deploy.yml", "-e", env_change())
    assert proc.returncode == 0, proc.stdout[-3000:]
    puts = [e for e in events.since() if e["kind"] == "s3" and e["method"] == "PUT"
            and e["key"].startswith(f"/{bucket()}/{INSTANCE}/")]
    assert any("AnsiballZ_env_files" in e["key"] for e in puts), "env values were not shipped"
    assert bucket_keys() == []


def test_a_run_killed_mid_transfer_leaves_an_encrypted_object_the_next_run_removes(events,
                                                                                 tmp_path):
    key_arn = ensure_transfer_key()
    change = env_change()
    # every upload takes 1.5 s after its s3_start event: the window in which the test slows the
    # instance's download of that object down, before the download can begin (no race)
    set_latency(s3_put=1500)
    with open(tmp_path / "killed-run.log", "w", encoding="utf-8") as log:
        run = subprocess.Popen(
            [str(REPO / ".venv/bin/ansible-playbook"), "deploy.yml", "-e", change],
            cwd=REPO, env=sandbox_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            put = wait_for_event(events, lambda e: e["kind"] == "s3_start"
                                 and e["method"] == "PUT" and "AnsiballZ_env_files" in e["key"],
                                 240, run)
            assert put, "the deploy never shipped the env_files module"
            # the instance's download of that object now waits 20 s in the S3 stand-in
            set_latency(s3_get=20000)
            get = wait_for_event(events, lambda e: e["kind"] == "s3_start"
                                 and e["method"] == "GET" and e["key"] == put["key"], 30, run)
            assert get, "the instance never fetched the env_files module"
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
            set_latency()
    key = put["key"].split("/", 2)[2]
    left = key in bucket_keys(f"{INSTANCE}/")
    head = client("s3").head_object(Bucket=bucket(), Key=key) if left else {}

    # the same deploy again; the killed run still holds the deploy lock: break it, as the
    # runbook says; the leftover is seconds old, younger than the default min age (it could
    # belong to a run in flight): clean it anyway
    proc = playbook("deploy.yml", "-e", change, "-e", "deploy_break_lock=true",
                    "-e", "deploy_transfer_cleanup_min_age=0")
    assert left, "the killed run left nothing behind"
    # encrypted at rest with the project key: by the bucket's default encryption, as
    # amazon.aws 10.x sends no SSE header for controller uploads (amazon.aws#3018)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert proc.returncode == 0, proc.stdout[-3000:]
    # (the yaml callback folds long messages: compare without line breaks)
    assert "1 object(s) left by an earlier run removed" in " ".join(proc.stdout.split())
    assert bucket_keys() == []


def test_a_bucket_without_kms_is_refused_before_any_session(events):
    proc = playbook("deploy.yml", "-e", "ansible_aws_ssm_bucket_sse_mode=AES256")
    assert proc.returncode != 0
    assert "expected ansible_aws_ssm_bucket_sse_mode=aws:kms" in proc.stdout
    assert events.sessions() == 0
