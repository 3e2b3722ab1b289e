"""deploy_record: a lost lock is logged but prunes and unlocks nothing; env values in the
error text never reach deploy.log or the output."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ansible_collections.atp.deploy.plugins.module_utils import deploy_lock
from ansible_collections.atp.deploy.plugins.modules import deploy_record

from .module_runner import install_release, run_module

REPO = "automated-trading-platform-backend-aws"
SECRET = "sk-live-0a1b2c3d4e"
RECORD = {"release": "20261124T101500Z-0123456789ab", "result": "failed", "operator": "alice"}


def lock(app_root, token: str, holder: str = "alice@laptop") -> dict:
    record = deploy_lock.new_record(token, holder, "r", datetime.now(timezone.utc))  # noqa: UP017
    (app_root / deploy_lock.LOCK_NAME).write_text(json.dumps(record))
    return record


def record_in(app_root, **extra) -> dict:
    return run_module(deploy_record, {"log_file": str(app_root / "deploy.log"),
                                      "app_root": str(app_root), "image_repo": REPO, **extra})


def log_lines(app_root) -> list[dict]:
    return [json.loads(x) for x in (app_root / "deploy.log").read_text().splitlines()]


def test_lost_lock_logs_the_line_prunes_nothing_and_fails(app_root, docker):
    rids = [install_release(app_root, {"a": f"{n}\n"}, f"2026-11-0{n + 1}T00:00:00")
            for n in range(4)]
    for rid in rids:
        docker.state["images"][f"{REPO}:{rid}"] = f"sha256:{rid[-6:]}"
    docker.save()
    (app_root / "current").symlink_to(f"releases/{rids[-1]}")
    theirs = lock(app_root, "tok-new", "bob@ci")
    result = record_in(app_root, record=RECORD, lock_token="tok-mine", keep_releases=2)
    assert result["failed"] is True and result["lock_lost"] is True
    assert result["msg"] == deploy_lock.lost_message(theirs)
    assert result["pruned"] == [] and result["unlocked"] is False
    assert sorted(p.name for p in (app_root / "releases").iterdir()) == sorted(rids)
    assert not any(argv[:2] == ["image", "rm"] for argv in docker.argvs)
    assert json.loads((app_root / deploy_lock.LOCK_NAME).read_text()) == theirs
    assert log_lines(app_root)[-1]["lock"].startswith("deploy lock lost: now held by bob@ci")


def test_held_lock_is_renewed_then_released(app_root):
    lock(app_root, "tok-mine")
    result = record_in(app_root, record=RECORD, lock_token="tok-mine")
    assert result["unlocked"] is True and "lock" not in log_lines(app_root)[-1]


def test_error_text_is_masked_in_the_log_and_the_output(app_root):
    (app_root / "shared" / ".env.aws").write_text(
        f"EXCHANGE_CUSTOM_API_SECRET='{SECRET}'\nENVIRONMENT='aws'\n")
    error = (f"docker compose up failed: failed to read .env.aws: line 2: unexpected character "
             f"\"\\\\\" in variable name \"x{SECRET}'\"\nalso {SECRET}")
    result = record_in(app_root, record={**RECORD, "error": error})
    assert "failed" not in result, result.get("msg")
    text = (app_root / "deploy.log").read_text()
    assert SECRET not in text and SECRET not in json.dumps(result)
    assert "********" in log_lines(app_root)[-1]["error"]
    assert "failed to read .env.aws: line 2" in log_lines(app_root)[-1]["error"]
