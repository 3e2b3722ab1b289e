#!/usr/bin/python
# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of the atp.deploy.env_parameters action (controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: env_parameters
short_description: Read env file values from SSM Parameter Store SecureString parameters
description:
  - Runs on the controller only (action plugin); opens no session to the host and changes
    nothing anywhere.
  - The value of variable C(NAME) of env file C(F) is the SecureString parameter
    C(<prefix><F without leading dots>/<NAME>), e.g.
    C(/atp/prod/backend/env.aws/EXCHANGE_CUSTOM_API_KEY).
  - One C(ssm:GetParameters) call (with decryption) per 10 names, with the credentials the
    host's C(amazon.aws.aws_ssm) connection uses (its profile, region and keys), unless
    O(region), O(profile) or O(endpoint_url) are given.
  - A successful result carries the values and is censored like C(no_log). A failure is shown
    and names every missing parameter (or the non-SecureString ones), never a value.
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
options:
  prefix:
    description: Parameter Store path all parameters live under, e.g. C(/atp/prod/backend/).
    type: str
    required: true
  parameters:
    description:
      - Env file name (C(.env), C(.env.aws)) to the list of variable names read for it.
    type: dict
    required: true
  region:
    description: Region of the parameters (default the connection's region).
    type: str
  profile:
    description: AWS profile to read with (default the connection's profile).
    type: str
  endpoint_url:
    description: SSM endpoint URL (tests and local stand-ins).
    type: str
"""

EXAMPLES = r"""
- name: Read the exchange credentials for .env.aws
  atp.deploy.env_parameters:
    prefix: /atp/prod/backend/
    parameters:
      .env.aws: [EXCHANGE_CUSTOM_API_KEY, EXCHANGE_CUSTOM_API_SECRET]
  register: app_env_parameters
"""

RETURN = r"""
env:
  description: Env file name to {variable - value}.
  returned: success
  type: dict
parameters:
  description: The parameter names read.
  returned: success
  type: list
  elements: str
prefix:
  description: The normalised prefix (ends with a slash).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    """Only reached when the action plugin is bypassed: this never runs on a host."""
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "str", "required": True},
            "parameters": {"type": "dict", "required": True},
            "region": {"type": "str"},
            "profile": {"type": "str"},
            "endpoint_url": {"type": "str"},
        },
        supports_check_mode=True,
    )
    module.fail_json(msg="atp.deploy.env_parameters runs on the controller (action plugin); "
                         "call it by its FQCN so Ansible uses the action")


if __name__ == "__main__":
    main()
