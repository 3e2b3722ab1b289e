# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for atp.deploy.deploy_inputs: every deploy variable checked on the controller.

Reads the variables of the rules table (module_utils/deploy_inputs.py) as Ansible resolved
them, for every host of the play (extra vars, inventory and group vars through ``hostvars``;
role defaults and play vars from this task's variables), and fails with one line per problem
before any SSM session opens. It never runs anything on a host.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.atp.deploy.plugins.module_utils import deploy_inputs as di

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str"},
}


class ActionModule(ActionBase):
    """Check the deploy variables of every host of the play, from the controller."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _host_values(self, host: str, task_vars: dict) -> tuple[dict, list[str], bool]:
        """(values of the rules' variables that are set, evaluation problems, over SSM?)."""
        here = host == task_vars.get("inventory_hostname")
        try:
            host_vars = None if here else task_vars["hostvars"][host]
        except KeyError:
            host_vars = None
        values, problems = {}, []
        for name in [*di.RULES_BY_NAME, "ansible_connection"]:
            try:
                if host_vars is not None and name in host_vars:
                    values[name] = host_vars[name]
                elif name in task_vars:
                    values[name] = self._templar.template(task_vars[name])
            except Exception as exc:  # a Jinja error of the variable itself: one line
                problems.append(di.unevaluated_line(name, str(exc)))
        return values, problems, di.is_ssm(values.pop("ansible_connection", None))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            return {**result, "failed": True, "changed": False,
                    "msg": "deploy_inputs: " + "; ".join(validation.error_messages)}
        hosts = (validation.validated_parameters["hosts"]
                 or task_vars.get("ansible_play_hosts_all")
                 or [task_vars.get("inventory_hostname")])
        seen: dict[str, list[str]] = {}
        for host in hosts:
            values, problems, ssm = self._host_values(host, task_vars)
            for line in problems + di.check_inputs(values, ssm=ssm):
                seen.setdefault(line, []).append(host)
        lines = [line if len(where) == len(hosts) or len(hosts) == 1
                 else f"{line} (host{'s' if len(where) > 1 else ''} {', '.join(where)})"
                 for line, where in seen.items()]
        result.update(changed=False, hosts=list(hosts))
        if lines:
            result.update(failed=True, msg=" | ".join(lines))
        else:
            result["msg"] = (f"deploy variables ok for {len(hosts)} host(s) "
                             f"({len(di.RULES)} rules)")
        return result
