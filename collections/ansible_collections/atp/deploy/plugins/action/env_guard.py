# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for atp.deploy.env_guard: env values taken as written, checked on the controller.

Reads the env variables RAW (task_vars, before Ansible templates them), refuses a value Ansible
would template by accident (Jinja markers in a trusted string, see module_utils/env_guard.py),
renders the rest and refuses a value no env file line can hold (NUL, trailing backslash). Every
problem names the variable and the key, never the value. No session: nothing runs on a host.

With compose_environment (source_preflight's reading of the service's `environment:`), it also
warns, names only, about values this deploy sets that the container will not get (compose's
`environment:` wins over `env_file`; see module_utils/env_guard.shadowed).
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.template import is_trusted_as_template
from ansible_collections.atp.deploy.plugins.module_utils import env_guard as eg

ARGUMENT_SPEC = {
    "variables": {"type": "list", "elements": "str",
                  "default": ["deploy_env", "deploy_env_aws"]},
    "compose_environment": {"type": "dict", "default": {}},
    "service": {"type": "str", "default": "backend-aws"},
}
# The env file each variable is written to (app_env render).
ENV_FILES = {"deploy_env": ".env", "deploy_env_aws": ".env.aws"}
# ansible-core >= 2.19 / < 2.19 vault-encrypted scalar types (never templated).
_VAULT_TYPES = ("EncryptedString", "AnsibleVaultEncryptedUnicode")


class ActionModule(ActionBase):
    """Check the raw env variables of this host, from the controller."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _render(self, value: object) -> object:
        return self._templar.template(value)

    def _follow(self, raw: object, task_vars: dict) -> tuple[object, list[str]]:
        """A trusted ``{{ name }}`` alone -> (the raw value of name, [names followed])
        (bounded), else (raw, [])."""
        names: list[str] = []
        while len(names) < eg.MAX_DEPTH and isinstance(raw, str) and is_trusted_as_template(raw):
            name = eg.reference(raw)
            if name is None or name not in task_vars:
                break
            raw = task_vars[name]
            names.append(name)
        return raw, names

    def _leaf(self, variable: str, key: str, raw: object,
              task_vars: dict) -> tuple[object, str | None]:
        """(rendered value, problem) of one env value."""
        raw, names = self._follow(raw, task_vars)
        if type(raw).__name__ in _VAULT_TYPES:
            return str(raw), None
        if not isinstance(raw, str) or not is_trusted_as_template(raw):
            return raw, None  # taken as written (a wrong shape is deploy_inputs' to name)
        problem = eg.raw_problem(variable, key, str(raw), True, names)
        if problem:
            return None, problem
        if not eg.markers(str(raw)):
            return str(raw), None
        try:
            return self._render(raw), None
        except Exception as exc:
            return None, eg.template_failure(variable, key, exc)

    def check_variable(self, variable: str, task_vars: dict,
                       values: dict | None = None) -> tuple[int, list[str]]:
        """(values checked, problems) of one env variable; not set or not a mapping: (0, []).
        values (when given) receives {key: rendered value} of the values without a problem."""
        if variable not in task_vars:
            return 0, []
        raw, _names = self._follow(task_vars[variable], task_vars)
        if isinstance(raw, str) and is_trusted_as_template(raw):
            try:
                raw = self._render(raw)
            except Exception as exc:
                return 0, [eg.template_failure(variable, None, exc)]
        if not isinstance(raw, Mapping):
            return 0, []
        problems = []
        for key in sorted(raw, key=str):
            value, problem = self._leaf(variable, str(key), raw[key], task_vars)
            problem = problem or (None if isinstance(value, (Mapping, list, tuple))
                                  else eg.value_problem(variable, str(key), value))
            if problem:
                problems.append(problem)
            elif values is not None:
                values[str(key)] = eg.text_of(value)  # as the env file will hold it
        return len(raw), problems

    def _parameter_names(self, task_vars: dict) -> dict[str, list[str]]:
        """{env file: [names]} read from Parameter Store later (app_env), when configured."""
        try:
            prefix = self._templar.template(task_vars.get("deploy_env_parameter_prefix") or "")
            names = self._templar.template(task_vars.get("deploy_env_parameters") or {})
        except Exception:
            return {}  # deploy_inputs and app_env name what is wrong with them
        if not prefix or not isinstance(names, Mapping):
            return {}
        return {str(f): [str(n) for n in v] for f, v in names.items()
                if isinstance(v, (list, tuple))}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            return {**result, "failed": True, "changed": False,
                    "msg": "env_guard: " + "; ".join(validation.error_messages)}
        params = validation.validated_parameters
        variables = params["variables"]
        checked, problems, files = 0, [], {}
        for variable in variables:
            values = files.setdefault(ENV_FILES[variable], {}) if variable in ENV_FILES else None
            count, found = self.check_variable(variable, task_vars, values)
            checked += count
            problems += found
        result.update(changed=False, checked=checked, problems=problems)
        if params["compose_environment"] and not problems:
            sources = {f: v for v, f in ENV_FILES.items()}
            for fname, names in self._parameter_names(task_vars).items():
                sources[fname] = f"{sources.get(fname, fname)} or Parameter Store"
                for name in names:
                    files.setdefault(fname, {})[name] = None  # read later: value not known here
            warnings = eg.shadowed(files, params["compose_environment"], params["service"],
                                   sources)
            if warnings:
                result["warnings"] = warnings
        if problems:
            result.update(failed=True, msg=" | ".join(problems))
        else:
            result["msg"] = (f"{checked} env value(s) of {', '.join(variables)} taken as written "
                             "(no accidental templating, every value fits an env file)")
        return result
