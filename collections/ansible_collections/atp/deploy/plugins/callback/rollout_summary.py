# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback atp.deploy.rollout_summary: the deploy's output ends with one line per host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: rollout_summary
type: aggregate
short_description: One closing line per host of a rolling deploy
description:
  - "After the play recap, prints C(<host>: <outcome>) for every host the deploy targeted, in
    inventory order, where the outcome is what the deploy recorded with
    C(ansible.builtin.set_stats) (C(deploy_outcome), per host), e.g. C(new release <id>) or
    C(rolled back to <id>)."
  - A host the rollout never reached (it stopped at an earlier failure) prints C(untouched); a
    host that failed before recording an outcome prints C(failed before any change ...).
  - Silent for playbooks that do not set C(deploy_rollout_hosts) (diagnose, rollback).
  - Enabled in ansible.cfg (C(callbacks_enabled = atp.deploy.rollout_summary)).
requirements:
  - enabled in ansible.cfg
"""

from ansible.plugins.callback import CallbackBase  # noqa: E402

HOSTS_KEY = "deploy_rollout_hosts"
OUTCOME_KEY = "deploy_outcome"


def summary_lines(custom: dict, failed: set[str]) -> list[str]:
    """The closing lines from ``stats.custom`` and the names of failed/unreachable hosts."""
    hosts = (custom.get("_run") or {}).get(HOSTS_KEY) or []
    lines = []
    for host in hosts:
        outcome = (custom.get(host) or {}).get(OUTCOME_KEY)
        if not outcome:
            outcome = ("failed before any change to its release (see the error above)"
                       if host in failed else "untouched")
        lines.append(f"{host}: {outcome}")
    return lines


class CallbackModule(CallbackBase):
    """Prints the per-host rollout lines at the very end of the run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "atp.deploy.rollout_summary"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats) -> None:
        """Runs after the stdout callback's PLAY RECAP."""
        failed = {host for host, count in {**stats.failures, **stats.dark}.items() if count}
        lines = summary_lines(getattr(stats, "custom", {}) or {}, failed)
        if lines:
            self._display.display("ROLLOUT " + "*" * 72)
            for line in lines:
                self._display.display(line)
