"""The closing summary per host and the deploy history (reports/deploys.jsonl, history.yml)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from ansible_collections.atp.deploy.plugins.callback import rollout_summary as rs
from ansible_collections.atp.deploy.plugins.callback.rollout_summary import (
    CallbackModule,
    append_history,
    deploy_records,
    detail_lines,
    history_path,
    rollback_command,
)

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / ".venv/bin/ansible-playbook"
NEW = "20261130T120000Z-0123456789ab"
OLD = "20261129T100000Z-ba9876543210"
SHA = "0123456789abcdef0123456789abcdef01234567"
SMOKE = ["health: 200 ok", "snapshot: ok, 17 positions, total 9386.94",
         "routes: 112 registered, 5/5 expected"]
SECRET = "sk-live-5f1e2d3c4b5a69788796a5b4c3d2e1f0"


def summary(**extra: object) -> dict:
    """deploy_summary as deploy.yml's set_stats task records it for a new release."""
    data = {"playbook": "deploy", "result": "new release", "release": NEW, "git_sha": SHA,
            "operator": "alice", "started": "2020-11-30T12:00:00.123456",
            "previous_release": OLD, "rollback_to": "", "code_uploaded": True,
            "code_files": 37, "code_from": "", "env_written": True, "env_set": "3f9a0c1d2e4b",
            "env_files_changed": [".env.aws"], "activated": True, "image_built": True,
            "image_from": "", "recreated": True, "smoke": SMOKE, "error": ""}
    data.update(extra)
    return data


def stats(custom: dict, failures: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(failures=failures or {}, dark={}, custom=custom)


def callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "deploy.yml"):
    monkeypatch.setenv("ATP_DEPLOY_HISTORY", str(tmp_path / "reports" / "deploys.jsonl"))
    monkeypatch.setattr(rs.context, "CLIARGS", {})  # as if run without -i or vault options
    plugin = CallbackModule()
    plugin._display = mock.MagicMock()
    plugin.v2_playbook_on_start(SimpleNamespace(_basedir=str(tmp_path), _file_name=name))
    return plugin


def printed(plugin) -> list[str]:
    return [call.args[0] for call in plugin._display.display.call_args_list]


def history(tmp_path: Path) -> list[dict]:
    path = tmp_path / "reports" / "deploys.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def result(host: str, action: str, data: dict | None = None, name: str = "a task",
           delegate_to: str | None = None):
    """A callback task result as ansible-core hands it over."""
    task = SimpleNamespace(resolved_action=action, action=action, delegate_to=delegate_to,
                           get_name=lambda: name)
    return SimpleNamespace(_host=SimpleNamespace(get_name=lambda: host, name=host), _task=task,
                           _result=dict(data or {}))


class FakeManager:
    """The play's variable manager, for the host's connection and the extra vars."""

    def __init__(self, connection: str = "amazon.aws.aws_ssm", extra: dict | None = None):
        self.connection, self.extra_vars = connection, extra or {}

    def get_vars(self, **_: object) -> dict:
        return {"ansible_connection": self.connection}


# --------------------------------------------------------------------------- the printed block


def test_the_summary_comes_before_the_closing_lines(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    plugin.v2_playbook_on_stats(stats({
        "_run": {"deploy_rollout_hosts": ["i-a", "i-b"]},
        "i-a": {"deploy_outcome": f"new release {NEW}", "deploy_summary": summary()}}))
    out = printed(plugin)
    assert out[-3:] == ["ROLLOUT " + "*" * 72, f"i-a: new release {NEW}", "i-b: untouched"]
    block = out[:out.index("ROLLOUT " + "*" * 72)]
    assert block[0].startswith("DEPLOY SUMMARY ")
    assert block[1] == "i-a (new release)"
    assert f"  release  {NEW} (was {OLD})" in block
    assert f"  commit   {SHA}" in block
    assert any(line.startswith("  by       alice, started 2020-11-30T12:00:00Z, took ")
               for line in block)
    assert ("  changed  code uploaded (37 files), env set 3f9a0c1d2e4b written (.env.aws "
            "changed), image built, container recreated") in block
    assert block[block.index("  smoke    health: 200 ok") + 1] == " " * 11 + SMOKE[1]
    assert block[-1] == "  undo     ansible-playbook playbooks/rollback.yml -l i-a"
    # an untouched host has no block: the closing line says it all
    assert not any(line.startswith("i-b") for line in block)


def test_an_unchanged_deploy_says_what_was_kept():
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"unchanged, release {NEW}",
        "deploy_summary": summary(result="unchanged", code_uploaded=False, code_files=0,
                                  env_written=False, env_set="", env_files_changed=[],
                                  activated=False, image_built=False, recreated=False,
                                  previous_release=NEW)}}, set(), {})
    assert records[0]["changes"] == ["code already on the instance", "env unchanged",
                                     "image kept", "container kept"]
    lines = detail_lines(records)
    assert not any("undo" in line for line in lines)  # nothing new went live
    assert records[0]["previous_release"] == ""


def test_an_env_only_release_reuses_the_image():
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}",
        "deploy_summary": summary(code_uploaded=False, code_from=OLD, image_built=False,
                                  image_from=f"repo:{OLD}")}}, set(), {})
    assert records[0]["changes"][0] == f"code from release {OLD}"
    assert records[0]["changes"][2] == f"image reused (repo:{OLD})"


def test_a_zero_downtime_switch_says_where_traffic_went_and_any_conversion_gap():
    switch = {"upstream": "atp-backend-aws-3:8002", "gap_seconds": 0.0,
              "stopped": ["atp-backend-aws-2"], "drained": {"seconds": 0.4, "open": 0}}
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}",
        "deploy_summary": summary(switch=switch)}}, set(), {})
    assert records[0]["changes"][-1] == (
        "traffic moved to atp-backend-aws-3:8002 without a gap, old container "
        "atp-backend-aws-2 drained in 0.4 s and stopped")
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}",
        "deploy_summary": summary(switch={**switch, "gap_seconds": 0.6})}}, set(), {})
    assert "CONVERTED to the proxy with one gap of 0.6 s" in records[0]["changes"][-1]


def test_the_summary_says_what_the_deploy_waited_for_in_deploy_order():
    """compose_release's timings: steps of a second or more, in the order they ran; junk and
    sub-second steps are left out, so an unchanged deploy prints no waited line."""
    timings = {"candidate": 12.44, "build": 41.2, "dependencies": 0.2, "route_gate": "3.1",
               "up": None, "odd": "x"}
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}",
        "deploy_summary": summary(waits=timings)}}, set(), {})
    assert records[0]["waits"] == {"build": 41.2, "route_gate": 3.1, "candidate": 12.4}
    assert "  waited   build 41.2 s, route gate 3.1 s, new container up 12.4 s" in detail_lines(
        records)
    # a new container that never answered: how long the deploy waited for it
    records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": "failed, the new container never received traffic",
        "deploy_summary": summary(result="failed",
                                  waits={"build": 2.0, "candidate_failed": 180.3})}}, set(), {})
    assert "  waited   build 2.0 s, new container, never answered 180.3 s" in detail_lines(
        records)
    for nothing in ({}, {"build": 0.4}, "not a dict", None):
        records = deploy_records({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
            "deploy_outcome": f"new release {NEW}",
            "deploy_summary": summary(waits=nothing)}}, set(), {})
        assert records[0]["waits"] == {}
        assert not any(line.startswith("  waited") for line in detail_lines(records))


def test_a_rolled_back_deploy_shows_its_own_smoke_and_the_health_after(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    failing = ["health: 200 ok", "snapshot: FAILED ok=false \"Missing API credentials\""]
    for action, data in (("atp.deploy.compose_release", {"recreated": True}),
                         ("atp.deploy.smoke_check", {"summary": failing}),
                         ("atp.deploy.compose_release", {"recreated": True}),
                         ("atp.deploy.smoke_check", {"summary": ["health: 200 ok"]})):
        plugin.v2_runner_on_ok(result("i-a", action, data))
    error = f"smoke checks failed -- rolled back to {OLD}, health after rollback: ok"
    plugin.v2_playbook_on_stats(stats({
        "_run": {"deploy_rollout_hosts": ["i-a"]},
        "i-a": {"deploy_outcome": f"rolled back to {OLD}",
                "deploy_summary": summary(result="rolled back", rollback_to=OLD,
                                          smoke=["health: 200 ok"], error=error)}},
        failures={"i-a": 1}))
    out = printed(plugin)
    assert f"  release  {NEW}, rolled back to {OLD}" in out
    assert "  smoke    health: 200 ok" in out and " " * 11 + failing[1] in out
    assert "  rollback health: 200 ok" in out
    assert not any("undo" in line or "changed  " in line for line in out)
    entry = history(tmp_path)[0]
    assert entry["result"] == "rolled back" and entry["smoke"] == failing
    assert entry["smoke_after_rollback"] == ["health: 200 ok"] and entry["error"] == error
    assert out[-1] == f"i-a: rolled back to {OLD}"


def test_a_host_that_failed_before_its_summary_names_the_task_not_its_message(tmp_path,
                                                                            monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    plugin.v2_runner_on_failed(result("i-a", "atp.deploy.deploy_inputs",
                                      {"msg": f"deploy_env_aws: bad value {SECRET}"},
                                      name="Check every deploy variable"))
    plugin.v2_playbook_on_stats(stats({"_run": {"deploy_rollout_hosts": ["i-a"]}},
                                      failures={"i-a": 1}))
    entry = history(tmp_path)[0]
    assert (entry["result"], entry["error"]) == ("failed", "failed at: Check every deploy variable")
    assert SECRET not in json.dumps(entry) and SECRET not in "\n".join(printed(plugin))


def test_the_rollback_command_names_a_non_default_inventory_and_the_vault(tmp_path):
    cli = {"inventory": [str(tmp_path / "inventory/production")],
           "default_inventory": [str(tmp_path / "inventory/sandbox")],
           "ask_vault_pass": True, "vault_ids": [], "vault_password_files": []}
    command = rollback_command("i-a", cli, cwd=str(tmp_path),
                               playbook=str(tmp_path / "playbooks/rollback.yml"))
    assert command == ("ansible-playbook -i inventory/production playbooks/rollback.yml -l i-a "
                       "--ask-vault-pass")
    cli["inventory"] = cli["default_inventory"]
    assert rollback_command("i-a", cli, cwd=str(tmp_path)) == (
        "ansible-playbook playbooks/rollback.yml -l i-a --ask-vault-pass")


# --------------------------------------------------------------------------- SSM sessions


def test_sessions_count_the_remote_tasks_only(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    plugin.v2_playbook_on_play_start(SimpleNamespace(_variable_manager=FakeManager()))
    for action in ("ansible.builtin.set_stats", "atp.deploy.deploy_inputs",
                   "atp.deploy.transfer_bucket", "atp.deploy.env_guard",
                   "ansible.builtin.set_fact", "ansible.builtin.validate_argument_spec",
                   "ansible.builtin.assert", "atp.deploy.release_state",
                   "ansible.builtin.debug", "atp.deploy.release_unpack",
                   "atp.deploy.compose_release", "atp.deploy.smoke_check",
                   "atp.deploy.deploy_record", "ansible.builtin.include_role"):
        plugin.v2_runner_on_ok(result("i-a", action))
    plugin.v2_runner_on_ok(result("i-a", "atp.deploy.source_preflight", delegate_to="localhost"))
    plugin.v2_runner_on_ok(result("i-a", "ansible.builtin.command",
                                  {"_ansible_delegated_vars": {"ansible_host": "localhost"}}))
    plugin.v2_playbook_on_stats(stats({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}", "deploy_summary": summary()}}))
    # the README's figure for a changed deploy: plan+lock, upload, build+activate, smoke, record
    assert history(tmp_path)[0]["sessions"] == 5
    assert any(line.endswith(", 5 SSM sessions") for line in printed(plugin))


def test_no_session_count_without_an_ssm_connection(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    plugin.v2_playbook_on_play_start(SimpleNamespace(_variable_manager=FakeManager("local")))
    plugin.v2_runner_on_ok(result("i-a", "atp.deploy.release_state"))
    plugin.v2_playbook_on_stats(stats({"_run": {"deploy_rollout_hosts": ["i-a"]}, "i-a": {
        "deploy_outcome": f"new release {NEW}", "deploy_summary": summary()}}))
    assert history(tmp_path)[0]["sessions"] is None
    assert not any("SSM session" in line for line in printed(plugin))


# --------------------------------------------------------------------------- rollback.yml


def test_a_rollback_is_recorded_from_its_deploy_record(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch, name="rollback.yml")
    plugin.v2_playbook_on_play_start(SimpleNamespace(_variable_manager=FakeManager()))
    record = {"release": OLD, "git_sha": SHA, "operator": "bob", "result": "rolled_back",
              "started": "2026-11-30T12:00:00", "error": ""}
    for action, data in (
            ("ansible.builtin.set_fact", {"ansible_facts": {
                "deploy_release_id": OLD, "source_preflight_result": {"git_sha": SHA}}}),
            ("atp.deploy.release_state", {}),
            ("atp.deploy.compose_release", {"recreated": True, "previous_release": NEW}),
            ("atp.deploy.smoke_check", {"summary": ["health: 200 ok"]}),
            ("atp.deploy.deploy_record", {"line": json.dumps(record)})):
        plugin.v2_runner_on_ok(result("i-a", action, data))
    plugin.v2_playbook_on_stats(stats({}))
    out = printed(plugin)
    assert out[0].startswith("ROLLBACK SUMMARY ") and out[1] == "i-a (rolled back)"
    assert f"  release  {OLD} (was {NEW})" in out
    entry = history(tmp_path)[0]
    assert {k: entry[k] for k in ("playbook", "result", "release", "git_sha", "operator",
                                  "sessions", "smoke", "changes")} == {
        "playbook": "rollback", "result": "rolled back", "release": OLD, "git_sha": SHA,
        "operator": "bob", "sessions": 4, "smoke": ["health: 200 ok"],
        "changes": ["container recreated"]}


def test_a_rollback_listing_writes_nothing(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch, name="rollback.yml")
    plugin.v2_playbook_on_play_start(SimpleNamespace(
        _variable_manager=FakeManager(extra={"rollback_list": "true"})))
    plugin.v2_runner_on_ok(result("i-a", "atp.deploy.release_history", {}))
    plugin.v2_playbook_on_stats(stats({}))
    assert printed(plugin) == []
    assert not (tmp_path / "reports").exists()


def test_a_rollback_to_an_unknown_id_is_a_failed_entry(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch, name="rollback.yml")
    plugin.v2_playbook_on_play_start(SimpleNamespace(
        _variable_manager=FakeManager(extra={"rollback_to": "20200101T000000Z-000000000000"})))
    plugin.v2_runner_on_failed(result("i-a", "atp.deploy.release_history",
                                      {"msg": "unknown release"}, name="Find the release"))
    plugin.v2_playbook_on_stats(stats({}, failures={"i-a": 1}))
    entry = history(tmp_path)[0]
    assert (entry["result"], entry["release"], entry["error"]) == (
        "failed", "20200101T000000Z-000000000000", "failed at: Find the release")


def test_other_playbooks_write_nothing(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch, name="diagnose.yml")
    plugin.v2_runner_on_failed(result("i-a", "atp.deploy.diagnose", {}))
    plugin.v2_playbook_on_stats(stats({}, failures={"i-a": 1}))
    assert printed(plugin) == [] and not (tmp_path / "reports").exists()


# --------------------------------------------------------------------------- the history file


def test_one_json_line_per_host_mode_0600_in_a_0700_dir(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    custom = {"_run": {"deploy_rollout_hosts": ["i-a", "i-b"]},
              "i-a": {"deploy_outcome": f"new release {NEW}", "deploy_summary": summary()}}
    plugin.v2_playbook_on_stats(stats(custom))
    plugin.v2_playbook_on_stats(stats(custom))  # a second run appends
    path = tmp_path / "reports" / "deploys.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    entries = history(tmp_path)
    assert [(e["host"], e["result"]) for e in entries] == [
        ("i-a", "new release"), ("i-b", "untouched")] * 2
    first = entries[0]
    assert list(first)[:4] == ["time", "operator", "host", "playbook"]
    assert (first["release"], first["git_sha"], first["operator"]) == (NEW, SHA, "alice")
    assert first["smoke"] == SMOKE and first["error"] == ""
    assert isinstance(first["duration_s"], int) and first["duration_s"] >= 0


def test_an_existing_reports_dir_keeps_its_mode_and_a_loose_file_is_tightened(tmp_path):
    (tmp_path / "reports").mkdir(mode=0o750)
    os.chmod(tmp_path / "reports", 0o750)
    path = tmp_path / "reports" / "deploys.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    append_history(path, [{"host": "i-a"}])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750


def test_only_what_the_playbook_gave_is_written(tmp_path, monkeypatch):
    """Env values are nowhere in the stats the deploy records; the callback invents none:
    unknown keys are dropped, the environment is not read, the error is cut."""
    monkeypatch.setenv("EXCHANGE_CUSTOM_API_SECRET", SECRET)
    plugin = callback(tmp_path, monkeypatch)
    long_error = "masked: EXCHANGE_CUSTOM_API_SECRET=******** " + "x" * 600
    plugin.v2_playbook_on_stats(stats({
        "_run": {"deploy_rollout_hosts": ["i-a"]},
        "i-a": {"deploy_outcome": "failed, nothing changed",
                "deploy_summary": summary(result="failed", error=long_error,
                                          env={".env.aws": {"EXCHANGE_CUSTOM_API_SECRET": SECRET}},
                                          app_env_values=SECRET)}}, failures={"i-a": 1}))
    text = (tmp_path / "reports" / "deploys.jsonl").read_text()
    assert SECRET not in text and SECRET not in "\n".join(printed(plugin))
    entry = json.loads(text)
    assert "env" not in entry and "app_env_values" not in entry
    assert len(entry["error"]) == 300 and entry["error"].startswith("masked: ")
    assert entry["changes"] == []  # a failed deploy claims no changes


def test_the_history_path(tmp_path):
    repo = tmp_path / "repo"
    (repo / "playbooks").mkdir(parents=True)
    (repo / "ansible.cfg").write_text("[defaults]\n")
    assert history_path(str(repo / "playbooks"), {}) == repo / "reports/deploys.jsonl"
    assert history_path(str(repo), {}) == repo / "reports/deploys.jsonl"
    bare = tmp_path / "bare" / "playbooks"
    bare.mkdir(parents=True)
    assert history_path(str(bare), {}) == tmp_path / "bare/reports/deploys.jsonl"
    assert history_path(str(repo), {"ATP_DEPLOY_HISTORY": str(tmp_path / "h.jsonl")}) == (
        tmp_path / "h.jsonl")


# --------------------------------------------------------------------------- never raises


def test_an_unwritable_history_is_one_warning_and_the_last_lines_stay(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("ATP_DEPLOY_HISTORY", str(blocker / "deploys.jsonl"))
    plugin.v2_playbook_on_stats(stats({
        "_run": {"deploy_rollout_hosts": ["i-a"]},
        "i-a": {"deploy_outcome": f"new release {NEW}", "deploy_summary": summary()}}))
    assert plugin._display.warning.call_count == 1
    assert "deploy history not written" in plugin._display.warning.call_args.args[0]
    assert printed(plugin)[-1] == f"i-a: new release {NEW}"


def test_odd_stats_and_results_never_raise(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    plugin.v2_runner_on_ok(SimpleNamespace())  # no host, no task
    plugin.v2_runner_on_ok(result("i-a", "atp.deploy.deploy_record", {"line": "{not json"}))
    plugin.v2_runner_on_ok(result("i-a", "atp.deploy.smoke_check", {"summary": 17}))
    plugin.v2_runner_on_ok(result("i-a", "ansible.builtin.set_fact", {"ansible_facts": "x"}))
    plugin.v2_playbook_on_stats(stats({
        "_run": {"deploy_rollout_hosts": ["i-a", "i-b", "i-c"]},
        "i-a": {"deploy_outcome": "new release r1",
                "deploy_summary": {"started": "yesterday", "smoke": 3, "code_files": None}},
        "i-b": {"deploy_summary": "not a mapping"},
        "i-c": {"deploy_outcome": "unchanged, release r0",
                "deploy_summary": {"result": "unchanged", "code_uploaded": "False",
                                   "recreated": "False", "activated": "False"}}}))
    assert printed(plugin)[-3:] == ["i-a: new release r1", "i-b: untouched",
                                    "i-c: unchanged, release r0"]
    entries = {e["host"]: e for e in history(tmp_path)}
    assert entries["i-a"]["result"] == "new release" and entries["i-a"]["smoke"] == []
    assert entries["i-c"]["changes"][-1] == "container kept"


def test_a_broken_summary_builder_still_prints_the_closing_lines(tmp_path, monkeypatch):
    plugin = callback(tmp_path, monkeypatch)
    monkeypatch.setattr(rs, "deploy_records", mock.Mock(side_effect=RuntimeError("bug")))
    plugin.v2_playbook_on_stats(stats({"_run": {"deploy_rollout_hosts": ["i-a"]}}))
    assert printed(plugin)[-1] == "i-a: untouched"
    assert plugin._display.warning.call_count == 1


# --------------------------------------------------------------------------- through ansible


def _ansible_env(tmp_path: Path, history_file: Path) -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ATP_DEPLOY_HISTORY=str(history_file), HOME=str(tmp_path),
                ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"),
                PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}")


def _deploy_task(name: str) -> dict:
    """A task of playbooks/deploy.yml, found by the start of its name in any block."""
    def find(tasks: list) -> dict | None:
        for task in tasks:
            if task.get("name", "").startswith(name):
                return task
            for key in ("block", "rescue", "always"):
                found = find(task.get(key) or [])
                if found:
                    return found
        return None

    task = find(yaml.safe_load((REPO / "playbooks/deploy.yml").read_text())[0]["tasks"])
    assert task, name
    return task


SCENARIOS = {
    # failed before the block: nothing of the deploy is defined but what always: sets
    "nothing defined": ({"deploy_succeeded": False, "deploy_error": "the deploy failed"},
                        "failed", []),
    "new release": ({
        "deploy_succeeded": True, "deploy_error": "", "deploy_operator": "alice",
        "deploy_started": "2026-11-30T12:00:00.123456", "deploy_release_id": NEW,
        "source_preflight_result": {"git_sha": SHA}, "deploy_plan": {"clone_from": None},
        "release_state_result": {"current_release": OLD},
        "release_unpack_result": {"changed": True, "unpacked": True, "files": 37},
        "app_env_result": {"changed": True, "env_set": "3f9a0c1d2e4b", "set_written": True,
                           "files": {".env": False, ".env.aws": True}},
        "compose_release_result": {"changed": True, "switched": True, "built": True,
                                   "tagged_from": None, "recreated": True, "release_id": NEW,
                                   "previous_release": OLD},
        "smoke_check_result": {"summary": SMOKE}}, "new release",
        ["code uploaded (37 files)", "env set 3f9a0c1d2e4b written (.env.aws changed)",
         "image built", "container recreated"]),
    "unchanged": ({
        "deploy_succeeded": True, "deploy_error": "", "deploy_release_id": NEW,
        "source_preflight_result": {"git_sha": SHA}, "deploy_plan": {"upload": False, "env": False},
        "release_unpack_result": {"changed": False, "skipped": True},
        "app_env_result": {"changed": False, "skipped": True},
        "compose_release_result": {"changed": False, "skipped": True},
        "smoke_check_result": {"summary": SMOKE}}, "unchanged",
        ["code already on the instance", "env unchanged", "image kept", "container kept"]),
    "rolled back": ({
        "deploy_succeeded": False, "deploy_release_id": NEW, "deploy_rollback_to": OLD,
        "rollback_health": {"failed": False}, "deploy_note": "--",
        "deploy_error": "smoke failed " + "y" * 400}, "rolled back", []),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_set_stats_task_of_deploy_yml_never_fails(tmp_path, scenario):
    """The real task, run on a local host with only some of the deploy's facts defined."""
    facts, expected, changes = SCENARIOS[scenario]
    play = [{"name": "Deploy", "hosts": "backend", "gather_facts": False, "vars": facts,
             "tasks": [_deploy_task("Name the hosts of this rollout"),
                       _deploy_task("Note this host's outcome")]}]
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks/deploy.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(
        {"backend": {"hosts": {"i-test": {"ansible_connection": "local"}}}}))
    history_file = tmp_path / "deploys.jsonl"
    proc = subprocess.run([str(PLAYBOOK), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "playbooks/deploy.yml")], cwd=tmp_path,
                          env=_ansible_env(tmp_path, history_file), capture_output=True,
                          text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    entry = json.loads(history_file.read_text())
    assert entry["result"] == expected and entry["changes"] == changes
    assert len(entry["error"]) <= 300
    assert proc.stdout.rstrip().splitlines()[-1].startswith("i-test: ")
    if scenario == "new release":
        assert (entry["release"], entry["git_sha"], entry["operator"]) == (NEW, SHA, "alice")
        assert entry["smoke"] == SMOKE and entry["previous_release"] == OLD
        assert "  undo     ansible-playbook" in proc.stdout


def test_sessions_are_counted_through_ansible_over_aws_ssm(tmp_path):
    """A host reached with amazon.aws.aws_ssm (its group_vars, as in the inventories): set_fact,
    debug, a delegated and a skipped task open no session; the one remote task is counted (it
    fails at once here: the session-manager-plugin it names does not exist)."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "inventory.yml").write_text("backend:\n  hosts:\n    i-0a1b2c3d4e5f60718:\n")
    (tmp_path / "group_vars/backend.yml").write_text(yaml.safe_dump({
        "ansible_connection": "amazon.aws.aws_ssm", "ansible_aws_ssm_region": "ap-southeast-1",
        "ansible_aws_ssm_bucket_name": "no-bucket",
        "ansible_aws_ssm_plugin": str(tmp_path / "no-session-manager-plugin")}))
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump([{
        "name": "Count", "hosts": "backend", "gather_facts": False, "tasks": [
            _deploy_task("Name the hosts of this rollout"),
            {"name": "Local", "ansible.builtin.set_fact": {"x": 1}},
            {"name": "Say", "ansible.builtin.debug": {"msg": "x"}},
            {"name": "Delegated", "ansible.builtin.command": "true",
             "delegate_to": "localhost", "become": False, "changed_when": False},
            {"name": "Skipped", "ansible.builtin.ping": None, "when": False},
            {"name": "Remote", "ansible.builtin.ping": None}]}], sort_keys=False))
    history_file = tmp_path / "deploys.jsonl"
    env = _ansible_env(tmp_path, history_file)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_ENDPOINT_URL="http://127.0.0.1:9")
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run([str(PLAYBOOK), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "deploy.yml")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode != 0 and "no-session-manager-plugin" in proc.stdout, proc.stdout[-2000:]
    entry = json.loads(history_file.read_text())
    assert (entry["sessions"], entry["result"], entry["error"]) == (1, "failed",
                                                                    "failed at: Remote")


# --------------------------------------------------------------------------- history.yml


def _history(tmp_path: Path, history_file: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLAYBOOK), "-i", "localhost,", "playbooks/history.yml", *extra],
                          cwd=REPO, env=_ansible_env(tmp_path, history_file),
                          capture_output=True, text=True, timeout=180, check=False)


def test_history_yml_prints_the_last_entries_one_line_each(tmp_path):
    history_file = tmp_path / "deploys.jsonl"
    entries = [{"time": f"2026-11-30T12:0{i}:00Z", "operator": "alice", "host": f"i-{i}",
                "playbook": "deploy", "result": "new release", "release": f"r{i}",
                "git_sha": SHA} for i in range(4)]
    entries.append({"time": "2026-11-30T12:09:00Z", "operator": "", "host": "i-9",
                    "playbook": "rollback", "result": "failed", "release": "", "git_sha": ""})
    text = "".join(json.dumps(e) + "\n" for e in entries) + '{"time": "2026-11-30T12:1'
    history_file.write_text(text)  # the last line half written (a full disk)
    proc = _history(tmp_path, history_file, "-e", "history_lines=3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    shown = [line.strip()[2:] for line in proc.stdout.splitlines()
             if line.strip().startswith("- 2026-")]
    assert shown == [f"2026-11-30T12:02:00Z  alice  i-2  new_release  r2  {SHA[:12]}",
                     f"2026-11-30T12:03:00Z  alice  i-3  new_release  r3  {SHA[:12]}",
                     "2026-11-30T12:09:00Z  -  i-9  failed  -  -"]


def test_history_yml_without_a_file_says_so_and_succeeds(tmp_path):
    proc = _history(tmp_path, tmp_path / "missing.jsonl")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "no deploy history at" in proc.stdout and "missing.jsonl" in proc.stdout
