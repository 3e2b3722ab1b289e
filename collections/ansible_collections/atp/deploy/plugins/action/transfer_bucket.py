# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for atp.deploy.transfer_bucket: check the aws_ssm transfer bucket's encryption and
versioning, and remove what a killed run left under this host's prefix.

Runs on the controller with the S3 client of the host's amazon.aws.aws_ssm connection (same
credentials, region, endpoint and bucket as the plugin's transfers); it never starts an SSM
session. Only keys under ``<instance id>/`` are listed or deleted, and only those older than
``min_age`` seconds by S3's clock (younger ones may belong to a run in flight).
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.atp.deploy.plugins.module_utils import transfer_bucket as tb

ARGUMENT_SPEC = {
    "min_age": {"type": "int", "default": 60},
    "require_kms": {"type": "bool", "default": True},
    "clean": {"type": "bool", "default": True},
}


def _fail(msg: str) -> dict:
    return {"failed": True, "changed": False, "msg": msg}


def _server_now(response: dict) -> datetime:
    """S3's own clock (the Date header), so a skewed controller clock cannot matter."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


class ActionModule(ActionBase):
    """Transfer bucket housekeeping for one host, from the controller."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    @staticmethod
    def _default_encryption(client, bucket: str) -> list:
        """The bucket's default encryption rules ([] when it has none)."""
        try:
            answer = client.get_bucket_encryption(Bucket=bucket)
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code == "ServerSideEncryptionConfigurationNotFoundError":
                return []
            raise
        return answer.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])

    @staticmethod
    def _versioning_problem(client, bucket: str, prefix: str) -> str | None:
        """GetBucketVersioning; the lifecycle rules are read only when versioning is Enabled."""
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            return None
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        return tb.versioning_problem(bucket, status, rules, prefix)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            return {**result, **_fail("transfer_bucket: " + "; ".join(validation.error_messages))}
        args = validation.validated_parameters
        connection = self._connection
        # not amazon.aws.aws_ssm: no S3 transfers (getattr_static: the property would already
        # call S3, outside the error handling below)
        if inspect.getattr_static(connection, "s3_manager", None) is None:
            result.update(changed=False, skipped=True,
                          msg=f"connection {connection.transport} moves no files through S3")
            return result
        problem = tb.encryption_problem(connection.get_option("bucket_sse_mode"),
                                        connection.get_option("bucket_sse_kms_key_id"),
                                        args["require_kms"])
        if problem:
            return {**result, **_fail(problem)}
        bucket = connection.get_option("bucket_name")
        if not bucket:
            return {**result, **_fail(
                "no S3 transfer bucket for amazon.aws.aws_ssm: expected "
                "ansible_aws_ssm_bucket_name in the inventory, saw it empty: set it in "
                "group_vars/backend/transfer.yml")}
        try:
            prefix = tb.instance_prefix(connection.instance_id)
        except tb.TransferBucketError as exc:
            return {**result, **_fail(str(exc))}
        result.update(bucket=bucket, prefix=prefix, removed=[], kept_recent=[], changed=False)
        try:
            client = connection.s3_manager.client
            if args["require_kms"]:
                problem = tb.default_encryption_problem(
                    bucket, self._default_encryption(client, bucket),
                    connection.get_option("bucket_sse_kms_key_id"))
                if problem:
                    return {**result, **_fail(problem)}
            problem = self._versioning_problem(client, bucket, prefix)
            if problem:
                return {**result, **_fail(problem)}
            if not args["clean"]:
                return result
            objects, now = [], None
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                objects.extend(page.get("Contents", []))
                now = now or _server_now(page)
            delete, kept = tb.leftovers(objects, now or datetime.now(UTC),
                                        args["min_age"], prefix)
            if delete and not self._task.check_mode:
                for chunk in tb.chunks(delete):
                    answer = client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk],
                                               "Quiet": True})
                    errors = answer.get("Errors") or []
                    if errors:
                        first = errors[0]
                        return {**result, **_fail(
                            f"transfer bucket cleanup: could not delete {len(errors)} object(s) "
                            f"under s3://{bucket}/{prefix}, first {first.get('Key')}: "
                            f"{first.get('Code')}: the operator needs s3:DeleteObject there "
                            "(files/iam/operator-policy.json)")}
        except Exception as exc:  # botocore errors: one line, the bucket and prefix named
            if type(exc).__module__.split(".", maxsplit=1)[0] not in ("botocore", "boto3"):
                raise
            error = (getattr(exc, "response", None) or {}).get("Error", {})
            if not error:  # no answer at all: endpoint, network, credentials
                return {**result, **_fail(
                    f"transfer bucket s3://{bucket}: S3 not reachable "
                    f"({str(exc).splitlines()[0]}): check the region, the network, the "
                    "operator's AWS credentials and ansible_aws_ssm_bucket_endpoint_url")}
            detail = f"{error.get('Code')}: {error.get('Message')}"
            return {**result, **_fail(
                f"transfer bucket s3://{bucket}/{prefix}: checking or cleaning failed "
                f"({detail.splitlines()[0]}): the operator needs s3:GetEncryptionConfiguration, "
                "s3:GetBucketVersioning and s3:GetLifecycleConfiguration on the bucket, "
                "s3:ListBucket and s3:DeleteObject on that prefix "
                "(files/iam/operator-policy.json)")}
        result.update(removed=delete, kept_recent=kept,
                      changed=bool(delete) and not self._task.check_mode)
        if delete or kept:
            result["msg"] = (f"s3://{bucket}/{prefix}: {len(delete)} object(s) left by an earlier "
                             f"run {'would be ' if self._task.check_mode else ''}removed, "
                             f"{len(kept)} younger than {args['min_age']}s kept")
        return result
