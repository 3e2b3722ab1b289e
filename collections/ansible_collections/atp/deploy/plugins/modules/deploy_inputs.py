#!/usr/bin/python
# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the atp.deploy.deploy_inputs action (controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_inputs
short_description: Check every deploy variable on the controller, before any SSM session
description:
  - Runs on the controller only (action plugin); it never starts a session or runs anything on
    a host.
  - "Reads the variables of the rules table in C(module_utils/deploy_inputs.py) as Ansible
    resolved them for every host of the play (or O(hosts)) and fails with one line per
    problem, C(<variable>: expected <what>, saw <value>: <what to do>)."
  - Checks types, ranges and shapes, e.g. C(deploy_service) a compose service name that cannot
    read as a flag, C(deploy_compose_project) compose's project name rules,
    C(deploy_image_repo) a lowercase repository without tag, C(deploy_app_root) absolute and
    normalised, C(deploy_port) 1-65535, C(deploy_build_timeout) at least 30 and below
    C(ansible_aws_ssm_timeout) over SSM, C(smoke_timeout) at least 1, C(deploy_keep_releases)
    at least 2, C(deploy_expected_routes) a list of C(METHOD /path), booleans given as strings
    (C(-e x=maybe) is refused), C(deploy_env) and C(deploy_env_aws) mappings of valid names to
    strings or numbers, and for hosts reached over C(amazon.aws.aws_ssm) a transfer bucket
    (C(ansible_aws_ssm_bucket_name)).
  - Values of C(deploy_env) and C(deploy_env_aws) are never shown; their lines name the key.
  - Variables that are not set are not checked (the roles' defaults are).
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
options:
  hosts:
    description: Hosts whose variables are checked; default every host of the play.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check every deploy variable before anything reaches the instance
  atp.deploy.deploy_inputs:
  delegate_to: localhost
  become: false
  run_once: true
"""

RETURN = r"""
hosts:
  description: The hosts whose variables were checked.
  returned: always
  type: list
  elements: str
problems:
  description: One line per problem (empty when all is well).
  returned: always
  type: list
  elements: str
checked:
  description: Names of the variables the rules cover.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    """Only reached when the action plugin is bypassed: this never runs on a host."""
    module = AnsibleModule(argument_spec={"hosts": {"type": "list", "elements": "str"}},
                           supports_check_mode=True)
    module.fail_json(msg="atp.deploy.deploy_inputs runs on the controller (action plugin)")


if __name__ == "__main__":
    main()
