# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stdout callback atp.deploy.deploy_output: the default output, timed and without the noise.

Over SSM every task costs seconds; an operator reading a deploy wants to see which step took
them. Each host's result line carries the time the task took for that host
(``changed: [i-0abc] 41.2s``), and a role's argument validation, which passes on every run
and made up 7 of 24 task banners, prints nothing unless it fails. A task that runs long (a
build can take 14 minutes) prints a "still running" line every ``heartbeat`` seconds, from the
controller: no SSM session is spent on it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: deploy_output
type: stdout
author: atp.deploy contributors (!UNKNOWN)
short_description: The default output with a time on every result and quiet argument checks
description:
  - Everything C(ansible.builtin.default) prints, with two changes.
  - "Every result line of a host carries the seconds the task took for that host, right
    after the host: C(ok: [i-0abc] 3.9s), C(changed: [i-0abc] 41.2s => ...),
    C(fatal: [i-0abc] 12.0s: FAILED! => ...). Over the C(aws_ssm) connection each remote
    task is one session, so these times show where a deploy spends them."
  - "Argument validation (C(validate_argument_spec), the task Ansible adds in front of every
    role with C(meta/argument_specs.yml)) prints neither banner nor result when it passes;
    a failed validation prints its banner and the full error as before."
  - "While a task runs longer than O(heartbeat) seconds on a host, a line says so every
    O(heartbeat) seconds: C(... [i-0abc] still running after 1m00s: compose_release : Build,
    gate and activate the release). It is printed by the controller; no SSM session is used."
  - Selected in ansible.cfg (C(stdout_callback = atp.deploy.deploy_output)); its options are
    those of C(ansible.builtin.default) (e.g. C(result_format = yaml)).
extends_documentation_fragment:
  - ansible.builtin.default_callback
  - ansible.builtin.result_format_callback
requirements:
  - set as the stdout callback in ansible.cfg
options:
  heartbeat:
    description: Seconds between the "still running" lines of a long task; 0 prints none.
    type: float
    default: 30
    env:
      - name: ATP_DEPLOY_HEARTBEAT
    ini:
      - section: callback_deploy_output
        key: heartbeat
"""

import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from ansible.plugins.callback.default import CallbackModule as DefaultCallback  # noqa: E402

QUIET_ACTIONS = frozenset({"validate_argument_spec", "ansible.builtin.validate_argument_spec",
                           "ansible.legacy.validate_argument_spec"})
_RESULT_LINE = re.compile(r"^(?:ok|changed|fatal|failed|skipping|unreachable): \[[^\]\n]*\]")


def took(seconds: float) -> str:
    """3.94 -> '3.9s'; 75.2 -> '1m15s' (what the result line shows)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def with_time(message: object, elapsed: str) -> object:
    """'ok: [h] => ...' -> 'ok: [h] 3.9s => ...'; any other message unchanged."""
    if not isinstance(message, str) or not elapsed:
        return message
    match = _RESULT_LINE.match(message)
    if not match:
        return message
    return f"{match.group(0)} {elapsed}{message[match.end():]}"


def is_quiet(task) -> bool:
    """A role's argument validation (the task Ansible inserts for meta/argument_specs.yml)."""
    action = getattr(task, "resolved_action", None) or getattr(task, "action", "") or ""
    return action in QUIET_ACTIONS


class _TimedDisplay:
    """The callback's Display, putting ``elapsed`` into the result lines it shows."""

    def __init__(self, display, elapsed: str) -> None:
        self._inner = display
        self._elapsed = elapsed

    def display(self, msg, *args, **kwargs):
        return self._inner.display(with_time(msg, self._elapsed), *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def still_running(running: dict, printed: dict, now: float, every: float) -> list[str]:
    """The heartbeat lines due at ``now``: one per (host, task) running for a multiple of
    ``every`` seconds since its last line. running: {(host, uuid): (start, task name)};
    printed: {(host, uuid): seconds of the last line} (updated)."""
    lines = []
    if every <= 0:
        return lines
    for key, (start, name) in sorted(running.items(), key=lambda item: item[1][0]):
        elapsed = now - start
        due = int(elapsed // every) * every
        if due >= every and due > printed.get(key, 0):
            printed[key] = due
            lines.append(f"... [{key[0]}] still running after {took(due)}: {name}")
    return lines


class CallbackModule(DefaultCallback):
    """ansible.builtin.default, with a time on each result and quiet argument validation."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "atp.deploy.deploy_output"

    def __init__(self) -> None:
        super().__init__()
        # what runs now, {(host, task uuid): (start, task name)}: the result lines' times and
        # the heartbeat both read it; the heartbeat thread too, hence the lock
        self._started: dict[tuple[str, str], tuple[float, str]] = {}
        self._task_started: dict[str, float] = {}
        self._heartbeat_said: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ heartbeat

    def _heartbeat_every(self) -> float:
        try:
            return float(self.get_option("heartbeat") or 0)
        except (KeyError, TypeError, ValueError):
            return 30.0

    def _heartbeat(self, every: float) -> None:
        tick = min(1.0, every / 4)
        while not self._heartbeat_stop.wait(tick):
            with self._lock:  # held while printing: on_stats waits for a line to end
                if self._heartbeat_stop.is_set():
                    return
                for line in still_running(self._started, self._heartbeat_said,
                                          time.monotonic(), every):
                    self._display.display(line)

    def _start_heartbeat(self) -> None:
        """The heartbeat thread, from the first task on (none when the option is 0)."""
        if self._heartbeat_thread is not None:
            return
        every = self._heartbeat_every()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, args=(every,),
                                                  name="deploy_output-heartbeat", daemon=True)
        if every > 0:
            self._heartbeat_thread.start()

    def v2_playbook_on_stats(self, stats) -> None:
        self._heartbeat_stop.set()
        with self._lock:  # no "still running" line after this point
            self._started.clear()
        super().v2_playbook_on_stats(stats)

    # ------------------------------------------------------------------ timing

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._task_started[task._uuid] = time.monotonic()
        if is_quiet(task):
            # the banner waits: _print_task_banner runs only if a result is shown (a failure)
            self._task_type_cache[task._uuid] = "TASK"
            self._last_task_name = task.get_name().strip()
            return
        super().v2_playbook_on_task_start(task, is_conditional)

    def v2_runner_on_start(self, host, task) -> None:
        with self._lock:
            self._started[(host.get_name(), task._uuid)] = (time.monotonic(),
                                                            task.get_name().strip())
        self._start_heartbeat()
        super().v2_runner_on_start(host, task)

    def _elapsed(self, result, done: bool = True) -> str:
        """The time the result's task took on its host; done: it no longer runs there."""
        try:
            key = (result._host.get_name(), result._task._uuid)
        except AttributeError:
            return ""
        with self._lock:
            entry = self._started.pop(key, None) if done else self._started.get(key)
            if done:
                self._heartbeat_said.pop(key, None)
        start = entry[0] if entry else self._task_started.get(key[1])
        if start is None:
            return ""
        return took(time.monotonic() - start)

    def _timed(self, handler, result, *args, done: bool = True, **kwargs) -> None:
        display = self._display
        self._display = _TimedDisplay(display, self._elapsed(result, done))
        try:
            handler(result, *args, **kwargs)
        finally:
            self._display = display

    # ------------------------------------------------------------------ results

    def v2_runner_on_ok(self, result) -> None:
        if is_quiet(result._task) and not result._result.get("changed"):
            self._elapsed(result)  # no longer runs; nothing shown
            return
        self._timed(super().v2_runner_on_ok, result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._timed(super().v2_runner_on_failed, result, ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result) -> None:
        self._timed(super().v2_runner_on_skipped, result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._timed(super().v2_runner_on_unreachable, result)

    def v2_runner_item_on_ok(self, result) -> None:
        self._timed(super().v2_runner_item_on_ok, result, done=False)

    def v2_runner_item_on_failed(self, result) -> None:
        self._timed(super().v2_runner_item_on_failed, result, done=False)

    def v2_runner_item_on_skipped(self, result) -> None:
        self._timed(super().v2_runner_item_on_skipped, result, done=False)
