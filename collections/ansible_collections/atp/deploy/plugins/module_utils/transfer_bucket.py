# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The aws_ssm transfer bucket: encryption settings and leftovers of killed runs (stdlib only).

amazon.aws.aws_ssm moves every module (with its arguments: the env file contents too) and every
file through ``s3://<bucket>/<instance id>/<remote path>`` and deletes each object right after
the instance fetched it. A run killed in between leaves the object behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class TransferBucketError(ValueError):
    """One-line problem with the transfer bucket settings."""


def instance_prefix(instance_id: str) -> str:
    """``i-0abc`` -> ``i-0abc/`` (the plugin's key prefix for that host); refuses anything that
    could widen the prefix to other hosts (empty, slashes, wildcards)."""
    if not isinstance(instance_id, str) or not _INSTANCE_RE.match(instance_id):
        raise TransferBucketError(
            f"transfer bucket cleanup: expected an instance id like i-0123456789abcdef0, got "
            f"{instance_id!r}: set ansible_aws_ssm_instance_id or name the host by its id")
    return instance_id + "/"


def encryption_problem(sse_mode: str | None, kms_key_id: str | None,
                       require_kms: bool) -> str | None:
    """None when the settings are acceptable, else the one-line error."""
    if not require_kms:
        return None
    where = "inventory/<env>/group_vars/backend/transfer.yml"
    if sse_mode != "aws:kms":
        return (f"transfer bucket encryption: expected ansible_aws_ssm_bucket_sse_mode=aws:kms "
                f"(module arguments, env values included, travel through the bucket), saw "
                f"{sse_mode or 'it unset'}: set it and ansible_aws_ssm_bucket_sse_kms_key_id in "
                f"{where} (or pass deploy_transfer_require_kms=false for a bucket without KMS)")
    if not kms_key_id:
        return (f"transfer bucket encryption: expected ansible_aws_ssm_bucket_sse_kms_key_id "
                f"(the project's KMS key: id, ARN or alias/...), saw it unset: set it in {where}")
    return None


def default_encryption_problem(bucket: str, rules: list | None, wanted_key: str | None,
                               ) -> str | None:
    """None when the bucket encrypts new objects with SSE-KMS by default (under ``wanted_key``
    when both name the key by id or ARN), else the one-line error.

    amazon.aws 10.x uploads modules (and their arguments) WITHOUT the SSE headers of
    ansible_aws_ssm_bucket_sse_mode (amazon.aws issue #3018), so the bucket's default
    encryption is what protects them at rest.
    """
    fix = ("apply files/iam/transfer-bucket-encryption.json (aws s3api put-bucket-encryption "
           f"--bucket {bucket} --server-side-encryption-configuration file://...)")
    defaults = [(rule or {}).get("ApplyServerSideEncryptionByDefault") or {}
                for rule in (rules or [])]
    algorithms = [d.get("SSEAlgorithm") for d in defaults if d.get("SSEAlgorithm")]
    if "aws:kms" not in algorithms:
        return (f"transfer bucket s3://{bucket}: expected default encryption SSE-KMS with the "
                f"project key (amazon.aws 10.x uploads modules without SSE headers), saw "
                f"{', '.join(algorithms) or 'none'}: {fix}")
    have = next(d.get("KMSMasterKeyID") or "" for d in defaults
                if d.get("SSEAlgorithm") == "aws:kms")
    if not have:
        return (f"transfer bucket s3://{bucket}: expected default SSE-KMS under the project key, "
                f"saw the AWS managed key aws/s3 (readable by every principal of the account "
                f"with s3:GetObject): {fix}")
    comparable = (wanted_key and not wanted_key.startswith("alias/")
                  and not have.startswith("alias/"))
    if comparable and have.rsplit("/", 1)[-1] != wanted_key.rsplit("/", 1)[-1]:
        return (f"transfer bucket s3://{bucket}: default encryption uses KMS key {have}, "
                f"expected {wanted_key} (ansible_aws_ssm_bucket_sse_kms_key_id): use one "
                "key for both")
    return None


def _rule_covers(rule: Mapping, prefix: str) -> bool:
    """Whether an enabled lifecycle rule applies to every object under ``prefix`` (a prefix
    filter only: a tag or size filter would skip the plugin's untagged, small objects)."""
    if rule.get("Status") != "Enabled":
        return False
    if "Filter" not in rule:  # the legacy top-level Prefix
        return prefix.startswith(rule.get("Prefix") or "")
    scope = rule.get("Filter") or {}
    if set(scope) == {"And"}:
        scope = scope["And"] or {}
    if set(scope) - {"Prefix"}:
        return False
    return prefix.startswith(scope.get("Prefix") or "")


def versioning_problem(bucket: str, status: str | None, lifecycle_rules: list | None,
                       prefix: str) -> str | None:
    """None when deleted transfer objects are really gone within a day, else the one-line error.

    The plugin deletes each object right after its transfer; with versioning Enabled that delete
    only adds a delete marker and the payload (env values included) stays as a noncurrent
    version. Accepted: versioning never enabled or Suspended, or Enabled with an enabled
    lifecycle rule covering ``prefix`` that expires noncurrent versions after at most 1 day
    (without NewerNoncurrentVersions, which would keep them: every key is written once).
    """
    if status != "Enabled":
        return None
    for rule in lifecycle_rules or []:
        expiry = (rule or {}).get("NoncurrentVersionExpiration") or {}
        days = expiry.get("NoncurrentDays")
        if (_rule_covers(rule, prefix) and isinstance(days, int) and days <= 1
                and not expiry.get("NewerNoncurrentVersions")):
            return None
    return (f"transfer bucket s3://{bucket}: expected versioning off or suspended (every module "
            f"payload, env values included, would stay as a noncurrent version after the "
            f"plugin's delete), saw Enabled without a lifecycle rule expiring noncurrent versions "
            f"under {prefix} within 1 day: suspend versioning (aws s3api put-bucket-versioning "
            f"--bucket {bucket} --versioning-configuration Status=Suspended) or apply "
            f"files/iam/transfer-bucket-lifecycle.json")


def leftovers(objects: Iterable[Mapping], now: datetime, min_age_s: int,
              prefix: str) -> tuple[list[str], list[str]]:
    """(keys to delete, keys kept because younger than ``min_age_s``) among ``objects``
    (list_objects_v2 ``Contents`` entries); keys outside ``prefix`` are never selected."""
    delete: list[str] = []
    kept: list[str] = []
    for item in objects:
        key = item.get("Key", "")
        if not key.startswith(prefix):
            continue
        modified = item.get("LastModified")
        age = (now - modified).total_seconds() if isinstance(modified, datetime) else None
        if age is not None and age < min_age_s:
            kept.append(key)
        else:
            delete.append(key)
    return delete, kept


def chunks(keys: list[str], size: int = 1000) -> list[list[str]]:
    """DeleteObjects takes at most 1000 keys."""
    return [keys[start:start + size] for start in range(0, len(keys), size)]
