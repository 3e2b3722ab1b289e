"""atp.deploy.transfer_bucket run by ansible-playbook with the real amazon.aws.aws_ssm connection.

The host's connection variables name a bucket on a local moto; the SSM endpoint points at a
closed port: the task must clean the host's prefix and report it without ever starting a
session (any StartSession would fail the run).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .moto_local import REGION, client

REPO = Path(__file__).resolve().parents[3]
HOST = "i-0a1b2c3d4e5f60718"
PLAYBOOK = """
- name: Transfer bucket housekeeping, as the deploy's first step
  hosts: backend
  gather_facts: false
  become: true
  tasks:
    - name: Check the transfer bucket, clear what a killed run left (controller only)
      atp.deploy.transfer_bucket:
        min_age: 0
      become: false
      register: deploy_transfer
"""


def run(tmp_path: Path, endpoint: str, bucket: str, key_arn: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"backend": {"hosts": {HOST: {
        "ansible_connection": "amazon.aws.aws_ssm", "ansible_aws_ssm_region": REGION,
        "ansible_aws_ssm_bucket_name": bucket, "ansible_aws_ssm_bucket_endpoint_url": endpoint,
        "ansible_aws_ssm_bucket_sse_mode": "aws:kms",
        "ansible_aws_ssm_bucket_sse_kms_key_id": key_arn}}}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), AWS_ENDPOINT_URL_S3=endpoint,
               AWS_ENDPOINT_URL_SSM="http://127.0.0.1:9", ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory),
                           str(tmp_path / "play.yml")], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def test_leftovers_are_removed_through_ansible_without_a_session(tmp_path, moto_endpoint,
                                                                 aws_env):
    s3, kms = client("s3", moto_endpoint), client("kms", moto_endpoint)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = "atp-transfer-playbook"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key_arn}}]})
    s3.put_object(Bucket=bucket, Key=f"{HOST}//home/ssm-user/.ansible/tmp/a/AnsiballZ_x.py",
                  Body=b"left by a killed run")
    proc = run(tmp_path, moto_endpoint, bucket, key_arn)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"changed: [{HOST}]" in proc.stdout
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_unreachable_s3_is_one_line(tmp_path, aws_env):
    proc = run(tmp_path, "http://127.0.0.1:9", "atp-transfer-nowhere", "arn:aws:kms:x")
    assert proc.returncode != 0
    assert "S3 not reachable" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
