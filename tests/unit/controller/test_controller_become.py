"""Controller-side tasks never escalate: a lint over every playbook and role task file.

A task runs on the controller when it is delegated to localhost (delegate_to, local_action,
connection: local; on the task or an enclosing block), when its play targets localhost, or when
it calls a controller-only action of this collection. Such a task must say `become: false`
itself or on an enclosing block (role files cannot know the play they are imported into; the
deploy play has `become: true`). Otherwise a non-root operator is asked for a sudo password on
their own machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
ACTIONS = REPO / "collections/ansible_collections/atp/deploy/plugins/action"
# What of atp.deploy only ever runs on the controller: the delegated source_preflight module and
# every action plugin that never sends a module to the host (no _execute_module).
CONTROLLER_ACTIONS = {"atp.deploy.source_preflight"} | {
    f"atp.deploy.{path.stem}" for path in ACTIONS.glob("*.py")
    if "_execute_module" not in path.read_text()}
BLOCK_KEYS = ("block", "rescue", "always")
NOT_ACTIONS = {"name", "when", "register", "become", "become_user", "delegate_to", "run_once",
               "vars", "tags", "loop", "loop_control", "with_items", "no_log", "check_mode",
               "changed_when", "failed_when", "ignore_errors", "notify", "environment",
               "connection", "args", "until", "retries", "delay", "delegate_facts",
               "any_errors_fatal",
               "throttle", "timeout", "listen", "module_defaults", "collections", "diff",
               "ignore_unreachable", "local_action", "become_method", "become_flags", "block",
               "rescue", "always", "debugger", "async", "poll", "remote_user", "port"}


def yaml_files() -> list[Path]:
    files = [REPO / "deploy.yml"]
    for base in ("playbooks", "molecule"):
        files += sorted((REPO / base).rglob("*.yml"))
    files += sorted((REPO / "roles").glob("*/tasks/*.yml"))
    files += sorted((REPO / "roles").glob("*/handlers/*.yml"))
    return [path for path in files if path.is_file()]


def action_of(task: dict) -> str | None:
    if "local_action" in task:
        value = task["local_action"]
        return value.get("module") if isinstance(value, dict) else str(value).split()[0]
    for key in task:
        if key not in NOT_ACTIONS:
            return key
    return None


def is_local(value: object) -> bool:
    return isinstance(value, str) and value.strip() in LOCAL_NAMES


def walk(tasks: object, where: str, local: bool, become_false: bool) -> list[str]:
    """Problems among ``tasks``; ``local``/``become_false`` inherited from enclosing blocks."""
    problems: list[str] = []
    if not isinstance(tasks, list):
        return problems
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        label = f"{where}: task {index + 1} {task.get('name', '(unnamed)')!r}"
        here_local = (local or is_local(task.get("delegate_to")) or "local_action" in task
                      or task.get("connection") == "local")
        here_become_false = (task["become"] is False) if "become" in task else become_false
        if any(key in task for key in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                problems += walk(task.get(key), f"{label} {key}", here_local, here_become_false)
            continue
        controller_action = action_of(task) in CONTROLLER_ACTIONS
        if (here_local or controller_action) and not here_become_false:
            why = "calls a controller-only action" if controller_action else "runs on localhost"
            problems.append(f"{label} {why} without `become: false`")
    return problems


def problems_in(path: Path) -> list[str]:
    where = str(path.relative_to(REPO)) if REPO in path.parents else path.name
    return problems_in_data(yaml.safe_load(path.read_text()), where)


def problems_in_data(data: object, where: str) -> list[str]:
    if not isinstance(data, list):
        return []
    problems: list[str] = []
    plays = [item for item in data if isinstance(item, dict) and "hosts" in item]
    if plays:
        for play in plays:
            local_play = (is_local(play.get("hosts")) or play.get("connection") == "local")
            # a localhost play that never turns become on is fine; `become: true` is not
            become_false = play.get("become", False) is False if local_play else False
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                problems += walk(play.get(section), f"{where} play {play.get('name')!r}",
                                 local_play, become_false)
        return problems
    if all(isinstance(item, dict) and "import_playbook" in item for item in data):
        return []
    return walk(data, where, False, False)


def test_the_controller_only_actions_are_known():
    assert {"atp.deploy.env_parameters", "atp.deploy.transfer_bucket",
            "atp.deploy.env_guard"} <= CONTROLLER_ACTIONS
    assert "atp.deploy.release_unpack" not in CONTROLLER_ACTIONS


def test_the_lint_sees_the_files_that_matter():
    names = {str(path.relative_to(REPO)) for path in yaml_files()}
    assert {"playbooks/deploy.yml", "roles/source_preflight/tasks/main.yml",
            "roles/diagnose/tasks/main.yml"} <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_controller_tasks_never_escalate(path: Path):
    assert problems_in(path) == []


def test_the_lint_catches_a_delegated_task_without_become_false(tmp_path: Path):
    bad = tmp_path / "tasks.yml"
    bad.write_text(yaml.safe_dump([
        {"name": "ok", "ansible.builtin.debug": {"msg": "x"}, "delegate_to": "localhost",
         "become": False},
        {"name": "bad", "ansible.builtin.file": {"path": "/tmp/x"}, "delegate_to": "localhost"},
        {"name": "bad action", "atp.deploy.transfer_bucket": {}},
        {"name": "inherited", "become": False, "delegate_to": "localhost",
         "block": [{"name": "child ok", "ansible.builtin.command": "true"}]},
        {"name": "delegated block", "delegate_to": "localhost",
         "block": [{"name": "child bad", "ansible.builtin.command": "true"}]},
        {"name": "local_action bad", "local_action": "ansible.builtin.command true"},
        {"name": "remote is fine", "ansible.builtin.command": "true", "become": True},
    ]))
    found = walk(yaml.safe_load(bad.read_text()), "t", False, False)
    assert len(found) == 4, found
    assert any("'bad'" in f for f in found) and any("'child bad'" in f for f in found)
    assert any("controller-only action" in f for f in found)
    assert any("'local_action bad'" in f for f in found)


def test_a_localhost_play_with_become_true_is_caught():
    def play(**extra: object) -> list:
        return [{"name": "p", "hosts": "localhost", **extra,
                 "tasks": [{"name": "t", "ansible.builtin.command": "id"}]}]

    assert problems_in_data(play(become=True), "p")
    assert problems_in_data(play(), "p") == []
    assert problems_in_data(play(become=False), "p") == []
