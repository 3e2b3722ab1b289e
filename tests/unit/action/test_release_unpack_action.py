"""The release_unpack action: upload and unpack in ONE task (one SSM session)."""

from __future__ import annotations

from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task
from ansible_collections.atp.deploy.plugins.action.release_unpack import MODULE, ActionModule

ARGS = {"app_root": "/home/ubuntu/app", "archive_sha256": "ab" * 32,
        "release_id": "20261124T101500Z-0123456789ab", "owner": "ubuntu", "group": "ubuntu"}


def make_action(args: dict, check_mode: bool = False) -> ActionModule:
    task = mock.MagicMock(Task)
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    connection._shell.join_path.side_effect = lambda *parts: "/".join(parts)
    action = ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(),
                          mock.MagicMock())

    def make_tmp():
        connection._shell.tmpdir = "/home/ssm-user/.ansible/tmp/t1"
        return connection._shell.tmpdir

    action._make_tmp_path = mock.MagicMock(side_effect=make_tmp)
    action._remove_tmp_path = mock.MagicMock()
    action._transfer_file = mock.MagicMock()
    action._fixup_perms2 = mock.MagicMock()
    action._find_needle = mock.MagicMock(side_effect=lambda _kind, src: f"/abs/{src}")
    action._execute_module = mock.MagicMock(return_value={"changed": True, "unpacked": True})
    return action


def test_upload_and_unpack_happen_in_the_same_task():
    action = make_action({**ARGS, "src": "rel.tar.gz"})
    result = action.run(task_vars={})
    remote = "/home/ssm-user/.ansible/tmp/t1/release.tar.gz"
    action._transfer_file.assert_called_once_with("/abs/rel.tar.gz", remote)
    module_args = action._execute_module.call_args.kwargs["module_args"]
    assert action._execute_module.call_args.args[0] == MODULE
    assert module_args["archive"] == remote and "src" not in module_args
    assert result["unpacked"] and result["uploaded"]
    action._remove_tmp_path.assert_called_once_with("/home/ssm-user/.ansible/tmp/t1")


def test_check_mode_uploads_nothing_but_still_asks_the_module():
    action = make_action({**ARGS, "src": "rel.tar.gz"}, check_mode=True)
    result = action.run(task_vars={})
    action._transfer_file.assert_not_called()
    assert action._execute_module.called and result["uploaded"] is False


def test_without_src_the_module_runs_on_the_given_archive():
    action = make_action({**ARGS, "archive": "/var/tmp/a.tar.gz"})
    action.run(task_vars={})
    action._transfer_file.assert_not_called()
    assert action._execute_module.call_args.kwargs["module_args"]["archive"] == "/var/tmp/a.tar.gz"


def test_src_and_archive_together_is_an_error_before_any_transfer():
    action = make_action({**ARGS, "src": "rel.tar.gz", "archive": "/var/tmp/a.tar.gz"})
    with pytest.raises(AnsibleActionFail, match="not both"):
        action.run(task_vars={})
    action._transfer_file.assert_not_called()


def test_tmp_dir_is_removed_even_when_the_module_fails():
    action = make_action({**ARGS, "src": "rel.tar.gz"})
    action._execute_module.side_effect = RuntimeError("session cut")
    with pytest.raises(RuntimeError):
        action.run(task_vars={})
    action._remove_tmp_path.assert_called_once()
