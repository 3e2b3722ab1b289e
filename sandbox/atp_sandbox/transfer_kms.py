"""The sandbox transfer bucket encrypted like production's (TEST INFRASTRUCTURE).

files/iam/transfer-bucket-encryption.json: default SSE-KMS under the project key. In the
sandbox the key is a moto KMS key named by the alias the sandbox inventory uses
(inventory/sandbox/group_vars/backend/transfer.yml). moto records the encryption on every
object (no real cryptography happens). Idempotent.
"""

from __future__ import annotations

from .config import ACCESS_KEY_ID, BUCKET, REGION, SECRET_ACCESS_KEY, endpoints

KEY_ALIAS = "alias/atp-sandbox-transfer"


def _client(service: str):
    import boto3

    return boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID,
                                 aws_secret_access_key=SECRET_ACCESS_KEY,
                                 region_name=REGION).client(service,
                                                            endpoint_url=endpoints()["default"])


def ensure_transfer_encryption() -> str:
    """The key (created when missing) and the bucket's default SSE-KMS; returns the key ARN."""
    kms = _client("kms")
    try:
        arn = kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["Arn"]
    except kms.exceptions.NotFoundException:
        meta = kms.create_key(Description="atp sandbox: SSM transfer bucket")["KeyMetadata"]
        kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=meta["KeyId"])
        arn = meta["Arn"]
    _client("s3").put_bucket_encryption(
        Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": arn},
            "BucketKeyEnabled": True}]})
    return arn
