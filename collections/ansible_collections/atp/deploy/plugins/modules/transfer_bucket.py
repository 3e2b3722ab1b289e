#!/usr/bin/python
# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of the atp.deploy.transfer_bucket action (controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: transfer_bucket
short_description: Check the aws_ssm transfer bucket (encryption, versioning), clear leftovers
description:
  - Runs on the controller only (action plugin) with the S3 client of the host's
    C(amazon.aws.aws_ssm) connection (its credentials, region, endpoint and bucket). It never
    starts an SSM session.
  - Fails when O(require_kms) and the connection does not encrypt uploads with SSE-KMS under a
    named key (C(ansible_aws_ssm_bucket_sse_mode=aws:kms),
    C(ansible_aws_ssm_bucket_sse_kms_key_id)).
  - Fails when the bucket has versioning Enabled and no enabled lifecycle rule covering this
    host's prefix expires noncurrent versions within 1 day (the plugin's delete would only add
    a delete marker and keep the payload, env values included, as a noncurrent version).
    Versioning never enabled or Suspended is fine.
  - With O(clean), deletes the objects under C(<instance id>/) (the plugin's prefix for this host)
    older than O(min_age) seconds by S3's clock, i.e. what a run killed mid-transfer left. Other
    hosts' prefixes are never listed. Check mode reports without deleting.
  - Skipped for connections other than C(amazon.aws.aws_ssm).
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
options:
  min_age:
    description: Objects younger than this (seconds) are kept; they may belong to a run in flight.
    type: int
    default: 60
  require_kms:
    description: Fail unless uploads are encrypted with SSE-KMS under a named key.
    type: bool
    default: true
  clean:
    description: Remove the leftovers under this host's prefix.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Clear what a killed run left in the transfer bucket
  atp.deploy.transfer_bucket:
    min_age: 60
"""

RETURN = r"""
bucket:
  description: The transfer bucket.
  returned: when the connection is amazon.aws.aws_ssm
  type: str
prefix:
  description: This host's key prefix.
  returned: when the connection is amazon.aws.aws_ssm
  type: str
removed:
  description: Keys deleted (or that would be, in check mode).
  returned: when the connection is amazon.aws.aws_ssm
  type: list
  elements: str
kept_recent:
  description: Keys kept because younger than O(min_age).
  returned: when the connection is amazon.aws.aws_ssm
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    """Only reached when the action plugin is bypassed: this never runs on a host."""
    module = AnsibleModule(
        argument_spec={
            "min_age": {"type": "int", "default": 60},
            "require_kms": {"type": "bool", "default": True},
            "clean": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    module.fail_json(msg="atp.deploy.transfer_bucket runs on the controller (action plugin)")


if __name__ == "__main__":
    main()
