"""Inventory plugin `atp_sandbox_aws`: this ansible run talks to the local sandbox's AWS.

TEST INFRASTRUCTURE, used only by inventory/sandbox (ansible.cfg puts this directory on the
inventory plugin path). It adds no host: the hosts come from the production aws_ec2 source
pointed at the sandbox's moto. It exists because amazon.aws.aws_ssm (10.x) has options for the
S3 endpoint, the keys and the plugin path but none for the SSM endpoint: botocore takes that
from AWS_ENDPOINT_URL_SSM or an AWS profile. So when the sandbox inventory is parsed, this
plugin sets those variables in THIS ansible process (inherited by its forked workers and the
controller-side modules and lookups they run), never in the operator's shell.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: atp_sandbox_aws
short_description: Point this ansible process at the local SSM sandbox's AWS endpoints
description:
  - Test infrastructure for inventory/sandbox. Adds no host.
  - Sets, in the ansible process only, every AWS endpoint to the sandbox's (SSM stand-in,
    S3 proxy, moto for everything else) and the sandbox's fake keys, and removes AWS_PROFILE
    and the other variables through which the caller's shell could redirect a sandbox run.
  - Sets C(ansible_aws_ssm_plugin) on group C(all) to the session-manager-plugin stand-in.
  - Fails when nothing answers at O(ssm_endpoint_url) (the sandbox is not up).
options:
  plugin:
    description: Name of this plugin.
    required: true
    choices: [atp_sandbox_aws]
  region:
    description: The region every AWS client of this run uses.
    type: str
    default: ap-southeast-1
  ssm_endpoint_url:
    description: The SSM endpoint (StartSession and friends; the SSM stand-in).
    type: str
    required: true
  s3_endpoint_url:
    description: The S3 endpoint (the stand-ins' logging proxy in front of moto).
    type: str
    required: true
  endpoint_url:
    description: The endpoint of every other AWS service (EC2, KMS, STS...; moto).
    type: str
    required: true
  access_key_id:
    description: The sandbox's fake access key id.
    type: str
    required: true
  secret_access_key:
    description: The sandbox's fake secret key.
    type: str
    required: true
  session_manager_plugin:
    description: The session-manager-plugin stand-in, relative to the repository root.
    type: str
    default: sandbox/bin/session-manager-plugin
"""

SANDBOX_DIR = Path(__file__).resolve().parents[2]
REPO = SANDBOX_DIR.parent


class InventoryModule(BaseInventoryPlugin):
    NAME = "atp_sandbox_aws"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(
            ("atp_sandbox_aws.yml", "atp_sandbox_aws.yaml"))

    def parse(self, inventory, loader, path, cache=True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        ssm = self.get_option("ssm_endpoint_url")
        self._require_listening(ssm, path)
        plugin = REPO / self.get_option("session_manager_plugin")
        if not os.access(plugin, os.X_OK):
            raise AnsibleParserError(
                f"expected the session-manager-plugin stand-in at {plugin} (from {path}), "
                "found no executable there: check session_manager_plugin")
        if str(SANDBOX_DIR) not in sys.path:
            sys.path.insert(0, str(SANDBOX_DIR))
        from atp_sandbox.config import apply_env, aws_env

        changes = aws_env()
        region = self.get_option("region")
        changes.update({
            "AWS_ENDPOINT_URL": self.get_option("endpoint_url"),
            "AWS_ENDPOINT_URL_SSM": ssm,
            "AWS_ENDPOINT_URL_S3": self.get_option("s3_endpoint_url"),
            "AWS_ACCESS_KEY_ID": self.get_option("access_key_id"),
            "AWS_SECRET_ACCESS_KEY": self.get_option("secret_access_key"),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        })
        apply_env(os.environ, changes)
        self.inventory.set_variable("all", "ansible_aws_ssm_plugin", str(plugin))

    @staticmethod
    def _require_listening(url: str, path: str) -> None:
        parts = urlsplit(url)
        try:
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=3):
                return
        except OSError as exc:
            raise AnsibleParserError(
                f"expected the sandbox's SSM endpoint to answer at {url} (named in {path}), "
                f"saw {exc.strerror or exc}: start the sandbox with `make sandbox-up`") from None
