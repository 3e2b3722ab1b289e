"""atp.deploy.deploy_inputs: every host's variables checked on the controller, one line each."""

from __future__ import annotations

from unittest import mock

from ansible.playbook.task import Task
from ansible_collections.atp.deploy.plugins.action.deploy_inputs import ActionModule

SSM = {"ansible_connection": "amazon.aws.aws_ssm", "ansible_aws_ssm_timeout": 900,
       "ansible_aws_ssm_bucket_name": "atp-transfer"}
BROKEN = object()  # a variable whose template fails


class Templar:
    """Templates nothing, fails on BROKEN (as Jinja would on an undefined variable)."""

    def template(self, value):
        if value is BROKEN:
            raise RuntimeError("'vault_exchange_secret' is undefined")
        return value


class HostVars(dict):
    """hostvars[host]: the error is raised when a broken variable is read."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        return Templar().template(value)


def make_action(args: dict | None = None) -> ActionModule:
    task = mock.MagicMock(Task)
    task.args = dict(args or {})
    task.async_val = 0
    task.check_mode = False
    task.diff = False
    connection = mock.MagicMock()
    connection._shell = mock.MagicMock()
    return ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), Templar(),
                        mock.MagicMock())


def task_vars(hosts: dict[str, dict], here: str | None = None, **role_defaults) -> dict:
    """What Ansible passes: this host's merged vars, plus hostvars of every host."""
    here = here or next(iter(hosts))
    return {**role_defaults, **hosts[here], "inventory_hostname": here,
            "ansible_play_hosts_all": list(hosts),
            "hostvars": {h: HostVars(v) for h, v in hosts.items()}}


def test_good_variables_pass_and_name_the_hosts():
    result = make_action().run(task_vars=task_vars({"i-1": SSM, "i-2": SSM}, deploy_port=8002,
                                                   smoke_timeout=90))
    assert not result.get("failed"), result
    assert result["hosts"] == ["i-1", "i-2"] and result["changed"] is False
    assert result["msg"].startswith("deploy variables ok for 2 host(s)")


def test_extra_var_refused_in_one_line():
    hosts = {"i-1": {**SSM, "smoke_timeout": "abc"}}
    result = make_action().run(task_vars=task_vars(hosts, smoke_timeout=90))
    assert result["failed"] is True
    assert result["msg"] == ("smoke_timeout: expected a whole number of seconds >= 1, saw 'abc': "
                             "pass e.g. -e smoke_timeout=90 (or leave it unset for the default)")


def test_role_defaults_are_checked_for_other_hosts_too():
    """Role defaults are not in hostvars: the task's own variables stand in for them."""
    hosts = {"i-1": SSM, "i-2": {**SSM, "ansible_aws_ssm_timeout": 300}}
    result = make_action().run(task_vars=task_vars(hosts, deploy_build_timeout=840))
    assert result["failed"] is True
    assert result["msg"].startswith("deploy_build_timeout: expected fewer seconds than "
                                    "ansible_aws_ssm_timeout (300,")
    assert result["msg"].endswith("(host i-2)")


def test_a_problem_of_every_host_is_said_once_without_hosts():
    hosts = {"i-1": {**SSM, "deploy_service": "-d"}, "i-2": {**SSM, "deploy_service": "-d"}}
    result = make_action().run(task_vars=task_vars(hosts))
    assert result["msg"].count("deploy_service:") == 1 and "(host" not in result["msg"]


def test_several_problems_joined_on_one_line():
    hosts = {"i-1": {**SSM, "deploy_port": "0", "deploy_break_lock": "maybe"}}
    result = make_action().run(task_vars=task_vars(hosts))
    assert "\n" not in result["msg"]
    assert [p.split(":")[0] for p in result["msg"].split(" | ")] == ["deploy_port",
                                                                      "deploy_break_lock"]


def test_a_broken_secret_template_is_named_without_its_error():
    hosts = {"i-1": {**SSM, "deploy_env_aws": BROKEN}}
    result = make_action().run(task_vars=task_vars(hosts))
    assert result["failed"] is True
    assert result["msg"].startswith("deploy_env_aws: expected a value Ansible can evaluate")
    assert "vault_exchange_secret" not in result["msg"]


def test_a_broken_role_default_is_named_with_its_error():
    hosts = {"i-1": SSM, "i-2": SSM}
    result = make_action().run(task_vars=task_vars(hosts, deploy_port=BROKEN))
    assert "deploy_port: expected a value Ansible can evaluate, saw 'vault_exchange_secret' " \
           "is undefined" in result["msg"]


def test_without_ssm_the_build_timeout_is_not_capped():
    hosts = {"h": {"ansible_connection": "local", "ansible_aws_ssm_timeout": 10}}
    result = make_action().run(task_vars=task_vars(hosts, deploy_build_timeout=840))
    assert not result.get("failed"), result


def test_an_ssm_host_without_transfer_bucket_is_refused():
    hosts = {"i-1": {**SSM, "ansible_aws_ssm_bucket_name": ""}}
    result = make_action().run(task_vars=task_vars(hosts))
    assert result["msg"].startswith("ansible_aws_ssm_bucket_name: expected the S3 bucket")
    del hosts["i-1"]["ansible_aws_ssm_bucket_name"]
    result = make_action().run(task_vars=task_vars(hosts))
    assert "saw nothing (null)" in result["msg"]


def test_hosts_argument_limits_the_check():
    hosts = {"i-1": SSM, "i-2": {**SSM, "deploy_port": 0}}
    result = make_action({"hosts": ["i-1"]}).run(task_vars=task_vars(hosts))
    assert not result.get("failed") and result["hosts"] == ["i-1"]
    result = make_action({"hosts": "i-2"}).run(task_vars=task_vars(hosts))
    assert result["failed"] and "deploy_port" in result["msg"]
