#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the atp.deploy.env_guard action (controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: env_guard
short_description: Refuse env values Ansible would template by accident or no env file can hold
description:
  - Runs on the controller only (action plugin); it never starts a session.
  - >-
    Reads the env variables (O(variables)) RAW, before Ansible templates them. ansible-core
    2.19 templates every trusted string when the variable is used (group_vars, host_vars,
    C(-e) extra vars and a whole vault-encrypted vars file alike), so a secret holding
    C({#x#}) would lose that part silently and C({{ }}) / C({% %}) would be evaluated.
  - >-
    A value with Jinja markers in a trusted string is refused, naming the variable and the key
    (never the value), unless it only holds C({{ variable }}) expressions (a reference to a
    vault variable, also inside a URL); a whole-value reference is followed and the referenced
    variable's raw value checked the same way. C(!unsafe) values and inline C(!vault) values
    are never templated and taken as written.
  - >-
    Every rendered value must fit an env file line (C(module_utils/dotenv.py) value_problem):
    a NUL or a trailing backslash is refused; quotes, newlines, C($), C(#) are encoded.
  - >-
    With O(compose_environment), a value this deploy sets (C(deploy_env) is written to C(.env),
    C(deploy_env_aws) to C(.env.aws), Parameter Store names count too) that the service's
    compose C(environment:) keeps from the container is a warning, naming the key, never a
    value. An entry that sets the key itself wins over C(env_file); an entry C(${KEY}) is filled
    by compose from the project's C(.env) only, so a value only in C(.env.aws) never arrives.
version_added: "1.1.0"
author: atp.deploy contributors (!UNKNOWN)
options:
  variables:
    description: Names of the env variables (mappings of NAME to value) to check.
    type: list
    elements: str
    default: [deploy_env, deploy_env_aws]
  compose_environment:
    description:
      - The service's C(environment) entries as written in its compose file (C(source_preflight)
        result C(compose.environment)). Empty, nothing is compared.
    type: dict
    default: {}
  service:
    description: The compose service the warnings name.
    type: str
    default: backend-aws
"""

EXAMPLES = r"""
- name: Check the env values are taken as written (controller only)
  atp.deploy.env_guard:
    compose_environment: "{{ source_preflight_result.compose.environment }}"
    service: backend-aws
  become: false
"""

RETURN = r"""
checked:
  description: How many env values were checked.
  returned: always
  type: int
problems:
  description: One line per refused value (variable, key and why; never the value).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    """Only reached when the action plugin is bypassed: this never runs on a host."""
    module = AnsibleModule(
        argument_spec={"variables": {"type": "list", "elements": "str",
                                     "default": ["deploy_env", "deploy_env_aws"]},
                       "compose_environment": {"type": "dict", "default": {}},
                       "service": {"type": "str", "default": "backend-aws"}},
        supports_check_mode=True)
    module.fail_json(msg="atp.deploy.env_guard runs on the controller (action plugin)")


if __name__ == "__main__":
    main()
