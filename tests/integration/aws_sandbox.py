"""The sandbox's AWS as the tests see it: moto behind the stand-ins (S3 proxy, SSM endpoint).

Clients use the sandbox's endpoints and fake keys (atp_sandbox.config), never the caller's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from atp_sandbox.transfer_kms import KEY_ALIAS

from .conftest import SANDBOX

TRANSFER_KEY_ALIAS = KEY_ALIAS  # the alias inventory/sandbox/group_vars/backend/transfer.yml names
LATENCY = SANDBOX / "latency.json"


def client(service: str):
    import boto3
    from atp_sandbox.config import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, endpoints

    urls = endpoints()
    return boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID,
                                 aws_secret_access_key=SECRET_ACCESS_KEY,
                                 region_name=REGION).client(
        service, endpoint_url=urls.get(service, urls["default"]))


def bucket() -> str:
    from atp_sandbox.config import BUCKET

    return BUCKET


def bucket_keys(prefix: str = "") -> list[str]:
    """Every object key in the transfer bucket (under ``prefix``)."""
    keys: list[str] = []
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket(),
                                                                       Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def ensure_transfer_key() -> str:
    """The KMS key the sandbox inventory names and the bucket's default SSE-KMS (the stand-ins
    set both up when they start; idempotent); the key ARN."""
    from atp_sandbox.transfer_kms import ensure_transfer_encryption

    return ensure_transfer_encryption()


def set_latency(**operations_ms: int) -> None:
    """Slow S3/SSM operations of the stand-ins while a run is in flight (read on every call)."""
    if operations_ms:
        LATENCY.write_text(json.dumps({k.upper(): v for k, v in operations_ms.items()}))
    else:
        LATENCY.unlink(missing_ok=True)


def wait_for_event(events, predicate, timeout_s: float, proc=None) -> dict | None:
    """The first event since the mark matching ``predicate`` (polled every 20 ms), or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in events.since():
            if predicate(event):
                return event
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""
