"""The deploy_lock module (playbooks/lock.yml): status and release by hand."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock as dl
from ansible_collections.atp.deploy.plugins.modules import deploy_lock

from .module_runner import doc_spec_problems, run_module


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(deploy_lock) == []


def take(app_root) -> dict:
    record = dl.new_record("tok-secret", "bob@ci", "0123456789ab",
                           datetime.now(timezone.utc), 1800, "compose_release")  # noqa: UP017
    (app_root / dl.LOCK_NAME).write_text(json.dumps(record))
    return record


def test_status_of_no_lock_and_of_a_held_one(app_root):
    result = run_module(deploy_lock, {"app_root": str(app_root)})
    assert result["held"] is False and result["lock"] is None and result["changed"] is False
    assert result["message"] == f"deploy lock on {app_root}: not held"
    record = take(app_root)
    result = run_module(deploy_lock, {"app_root": str(app_root), "action": "status"})
    assert result["held"] is True and result["lock"]["holder"] == "bob@ci"
    assert result["lock"]["step"] == "compose_release" and result["lock"]["expired"] is False
    assert result["message"].startswith(f"deploy lock on {app_root}: held by bob@ci since "
                                        f"{record['started']} for release 0123456789ab")
    assert "tok-secret" not in json.dumps(result)
    assert (app_root / dl.LOCK_NAME).exists()


def test_release_by_hand_removes_it_and_logs_who(app_root):
    take(app_root)
    result = run_module(deploy_lock, {"app_root": str(app_root), "action": "release",
                                      "operator": "alice@laptop"}, check_mode=True)
    assert result["changed"] is True and (app_root / dl.LOCK_NAME).exists()
    result = run_module(deploy_lock, {"app_root": str(app_root), "action": "release",
                                      "operator": "alice@laptop"})
    assert result["changed"] is True and result["released"] is True
    assert "released the lock of bob@ci" in result["message"]
    assert not (app_root / dl.LOCK_NAME).exists()
    line = json.loads((app_root / "deploy.log").read_text())
    assert line["event"] == "lock_released" and line["operator"] == "alice@laptop"
    assert line["lock"]["holder"] == "bob@ci" and "release" not in line
    assert "tok-secret" not in json.dumps(line)
    again = run_module(deploy_lock, {"app_root": str(app_root), "action": "release"})
    assert again["changed"] is False and again["message"].endswith("not held")
