"""Action for atp.deploy.release_unpack: ship the archive AND unpack it in one task.

Over SSM every task is a session (seconds) and every file moves through S3. With ``src`` set,
this action uploads the release archive into the task's remote tmp dir and runs the
release_unpack module on it within the same task: one session instead of two (a copy task
followed by an unpack task). Without ``src`` it runs the module as it is, on ``archive``.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = "atp.deploy.release_unpack"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        module_args = dict(self._task.args)
        src = module_args.pop("src", None)
        if src is None:
            result.update(self._execute_module(MODULE, module_args=module_args,
                                               task_vars=task_vars))
            return result
        if "archive" in module_args:
            raise AnsibleActionFail("release_unpack takes src (upload) or archive (already on "
                                    "the instance), not both: drop one of them")
        try:
            local = self._find_needle("files", src)
        except Exception as exc:  # AnsibleError subclasses; one message for the operator
            raise AnsibleActionFail(f"release archive {src} not found on the controller: {exc}; "
                                    "re-run the deploy so source_preflight builds it") from exc
        try:
            if self._connection._shell.tmpdir is None:
                self._make_tmp_path()
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir,
                                                       "release.tar.gz")
            module_args["archive"] = remote
            if not self._task.check_mode:
                self._transfer_file(local, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
            result.update(self._execute_module(MODULE, module_args=module_args,
                                               task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result["uploaded"] = not self._task.check_mode
        return result
