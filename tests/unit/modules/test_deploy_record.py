"""Tests of the deploy_record module, for real on tmp_path."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

from ansible_collections.atp.deploy.plugins.modules import deploy_record

from .module_runner import (
    doc_spec_problems,
    install_release,
    run_module,
    warnings_of,
)

RECORD = {
    "release": "20261124T101500Z-0123456789ab",
    "git_sha": "abc123",
    "image_id": "sha256:1",
    "operator": "alice",
    "started": "2026-11-24T10:15:00Z",
    "finished": "2026-11-24T10:17:00Z",
    "result": "ok",
}


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(deploy_record) == []


def test_build_record_adds_recorded_at_once():
    now = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert deploy_record.build_record({}, now) == {"recorded_at": "2026-11-24T10:15:00Z"}
    assert deploy_record.build_record({"recorded_at": "x"}, now) == {"recorded_at": "x"}


def test_appends_sorted_json_lines(tmp_path):
    log = tmp_path / "deploy.log"
    first = run_module(deploy_record, {"log_file": str(log), "record": RECORD})
    assert first["changed"] is True and first["created"] is True
    assert os.stat(log).st_mode & 0o777 == 0o640
    second = run_module(deploy_record, {"log_file": str(log),
                                        "record": {**RECORD, "result": "failed"}})
    assert second["created"] is False
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first["line"]
    parsed = json.loads(lines[0])
    assert list(parsed) == sorted(parsed)
    assert {k: parsed[k] for k in RECORD} == RECORD and "recorded_at" in parsed
    assert json.loads(lines[1])["result"] == "failed"


def test_existing_lines_and_mode_kept(tmp_path):
    log = tmp_path / "deploy.log"
    log.write_text('{"old": 1}\n')
    log.chmod(0o600)
    run_module(deploy_record, {"log_file": str(log), "record": RECORD})
    assert log.read_text().splitlines()[0] == '{"old": 1}'
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_warns_without_release(tmp_path):
    result = run_module(deploy_record, {"log_file": str(tmp_path / "l"), "record": {"a": 1}})
    assert any("no 'release'" in w for w in warnings_of(result))


def test_check_mode_writes_nothing(tmp_path):
    log = tmp_path / "deploy.log"
    result = run_module(deploy_record, {"log_file": str(log), "record": RECORD}, check_mode=True)
    assert result["changed"] is True and json.loads(result["line"])["release"] == RECORD["release"]
    assert not log.exists()


def test_missing_directory_and_directory_log(tmp_path):
    result = run_module(deploy_record, {"log_file": str(tmp_path / "nope" / "deploy.log"),
                                        "record": RECORD})
    assert result["failed"] is True and "does not exist" in result["msg"]
    (tmp_path / "d").mkdir()
    result = run_module(deploy_record, {"log_file": str(tmp_path / "d"), "record": RECORD})
    assert result["failed"] is True and "is a directory" in result["msg"]


# --------------------------------------------------------------------------- unlock + retention

REPO = "automated-trading-platform-backend-aws"
TOKEN = "tok-mine"


def take_lock(app_root, token=TOKEN, holder="alice@laptop") -> dict:
    record = {"token": token, "holder": holder, "release": "x", "started": "2026-11-24T10:00:00Z"}
    (app_root / ".deploy.lock").write_text(json.dumps(record))
    return record


def record_in(root, **extra) -> dict:
    return run_module(deploy_record, {"log_file": str(root / "deploy.log"), "record": RECORD,
                                      **extra})


def five_releases(app_root, docker, current_index=4) -> list[str]:
    rids = [install_release(app_root, {"a": f"{n}\n"}, f"2026-11-0{n + 1}T00:00:00")
            for n in range(5)]
    for rid in rids:
        docker.state["images"][f"{REPO}:{rid}"] = f"sha256:{rid[-6:]}"
    docker.save()
    (app_root / "current").symlink_to(f"releases/{rids[current_index]}")
    return rids


def test_unlock_removes_only_our_lock(app_root):
    take_lock(app_root)
    result = record_in(app_root, unlock_token=TOKEN)
    assert result["unlocked"] is True and not (app_root / ".deploy.lock").exists()
    assert json.loads((app_root / "deploy.log").read_text())["release"] == RECORD["release"]


def test_someone_elses_lock_is_left_in_place(app_root):
    other = take_lock(app_root, token="tok-other", holder="bob@ci")
    result = record_in(app_root, unlock_token=TOKEN)
    assert result["unlocked"] is False and result["lock_lost"] is True
    assert result["msg"].startswith("deploy lock lost: now held by bob@ci")
    assert json.loads((app_root / ".deploy.lock").read_text()) == other
    logged = json.loads((app_root / "deploy.log").read_text())
    assert logged["release"] == RECORD["release"] and "lock lost" in logged["lock"]


def test_no_token_no_unlock(app_root):
    take_lock(app_root)
    result = record_in(app_root)
    assert result["unlocked"] is False and (app_root / ".deploy.lock").exists()
    assert result["pruned"] == [] and result["pruned_images"] == []


def test_keep_releases_below_two_fails_but_releases_our_lock(app_root):
    take_lock(app_root)
    result = record_in(app_root, keep_releases=1, unlock_token=TOKEN)
    assert result["failed"] is True
    assert result["msg"] == ("deploy_keep_releases must be at least 2 (the active and the "
                             "previous release), got 1; pass -e deploy_keep_releases=5")
    assert not (app_root / "deploy.log").exists()
    assert result["unlocked"] is True and not (app_root / ".deploy.lock").exists()


def test_failure_releases_our_lock(app_root, tmp_path):
    take_lock(app_root)
    (app_root / "deploy.log").mkdir()
    result = record_in(app_root, unlock_token=TOKEN)
    assert result["failed"] is True and "is a directory" in result["msg"]
    assert not (app_root / ".deploy.lock").exists()


def test_prune_keeps_newest_current_and_protected(app_root, docker):
    rids = five_releases(app_root, docker, current_index=0)
    take_lock(app_root)
    result = record_in(app_root, keep_releases=2, unlock_token=TOKEN, protect=[rids[1], ""],
                       image_repo=REPO)
    assert "failed" not in result, result.get("msg")
    assert result["pruned"] == [rids[2]]
    assert result["pruned_images"] == [f"{REPO}:{rids[2]}"]
    assert sorted(os.listdir(app_root / "releases")) == [rids[0], rids[1], rids[3], rids[4]]
    assert f"{REPO}:{rids[2]}" not in docker.load()["images"]
    assert ["image", "rm", f"{REPO}:{rids[2]}"] in docker.argvs
    assert not any("--force" in argv or "-f" in argv for argv in docker.argvs)
    assert result["unlocked"] is True
    # app_root defaults to the dir of log_file
    assert (app_root / "deploy.log").is_file()


def test_missing_image_is_fine_in_use_image_keeps_its_release(app_root, docker):
    rids = five_releases(app_root, docker)
    del docker.state["images"][f"{REPO}:{rids[0]}"]
    docker.save()
    docker.add_container(id="stopped1", image_id=f"sha256:{rids[1][-6:]}", running=False)
    result = record_in(app_root, keep_releases=3, app_root=str(app_root))
    assert result["pruned"] == [rids[0]]
    assert result["pruned_images"] == []
    assert (app_root / "releases" / rids[1]).is_dir()
    assert f"{REPO}:{rids[1]}" in docker.load()["images"]
    assert any(f"kept release image {REPO}:{rids[1]} and its release: a container uses it" in w
               for w in warnings_of(result))


def test_docker_failure_keeps_the_release(app_root, docker):
    rids = five_releases(app_root, docker)
    docker.state["rm_errors"] = {f"{REPO}:{rids[0]}": [1, "Cannot connect to the Docker daemon"]}
    docker.save()
    result = record_in(app_root, keep_releases=4)
    assert result["pruned"] == [] and (app_root / "releases" / rids[0]).is_dir()
    assert any("`docker image rm` failed (exit 1): Cannot connect" in w
               for w in warnings_of(result))


def test_stale_partials_are_removed_fresh_ones_kept(app_root, docker):
    rids = five_releases(app_root, docker)
    stale = app_root / "releases" / ("20261001T000000Z-aaaaaaaaaaaa" + ".partial")
    fresh = app_root / "releases" / ("20261002T000000Z-bbbbbbbbbbbb" + ".partial")
    for path in (stale, fresh):
        (path / "sub").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    result = record_in(app_root, keep_releases=5)
    assert result["pruned"] == []
    assert not stale.exists() and fresh.is_dir()
    assert all((app_root / "releases" / r).is_dir() for r in rids)


def test_check_mode_prunes_and_unlocks_nothing(app_root, docker):
    rids = five_releases(app_root, docker)
    take_lock(app_root)
    result = run_module(deploy_record, {"log_file": str(app_root / "deploy.log"),
                                        "record": RECORD, "keep_releases": 3,
                                        "unlock_token": TOKEN}, check_mode=True)
    assert result["changed"] is True
    assert result["pruned"] == rids[:2]
    assert result["pruned_images"] == [f"{REPO}:{r}" for r in rids[:2]]
    assert result["unlocked"] is True  # would be
    assert sorted(os.listdir(app_root / "releases")) == sorted(rids)
    assert (app_root / ".deploy.lock").exists() and not (app_root / "deploy.log").exists()
    assert not any(argv[:2] == ["image", "rm"] for argv in docker.argvs)


# --------------------------------------------------------------------------- env sets + previous


def test_release_live_before_current_is_kept_even_when_oldest(app_root, docker):
    rids = five_releases(app_root, docker, current_index=4)
    # rids[0]'s content was live right before rids[4] (redeployed in between): a rollback target
    lines = [{"release": r, "result": "ok"} for r in (rids[1], rids[2], rids[3], rids[0],
                                                      rids[4])]
    (app_root / "deploy.log").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = run_module(deploy_record, {"log_file": str(app_root / "deploy.log"),
                                        "record": {**RECORD, "release": rids[4]},
                                        "keep_releases": 2, "image_repo": REPO})
    assert "failed" not in result, result.get("msg")
    assert result["pruned"] == [rids[1], rids[2]]
    assert sorted(os.listdir(app_root / "releases")) == [rids[0], rids[3], rids[4]]


def test_env_sets_go_with_their_releases(app_root, docker):
    from ansible_collections.atp.deploy.plugins.module_utils import release_model

    from .module_runner import install_env_set

    sets = [install_env_set(app_root, {".env": f"A={n}\n", ".env.aws": ""}) for n in range(4)]
    rids = []
    for n, name in enumerate(sets):
        rids.append(install_release(app_root, {"a": f"{n}\n"}, f"2026-11-0{n + 1}T00:00:00",
                                    env=name))
        docker.state["images"][f"{REPO}:{rids[-1]}"] = f"sha256:{n}"
    docker.save()
    (app_root / "current").symlink_to(f"releases/{rids[3]}")
    lines = [{"release": r, "result": "ok"} for r in rids]
    (app_root / "deploy.log").write_text("".join(json.dumps(x) + "\n" for x in lines))
    orphan = install_env_set(app_root, {".env": "ORPHAN=1\n"})
    partial = app_root / "shared" / "env" / ".aaaaaaaaaaaa.partial-99"
    partial.mkdir()
    os.utime(partial, (time.time() - 7200, time.time() - 7200))
    fresh = app_root / "shared" / "env" / ".bbbbbbbbbbbb.partial-98"
    fresh.mkdir()
    check = run_module(deploy_record, {"log_file": str(app_root / "deploy.log"),
                                       "record": {**RECORD, "release": rids[3]},
                                       "keep_releases": 2, "image_repo": REPO},
                       check_mode=True)
    assert check["pruned_env_sets"] == [] and len(os.listdir(app_root / "shared" / "env")) == 7
    result = run_module(deploy_record, {"log_file": str(app_root / "deploy.log"),
                                        "record": {**RECORD, "release": rids[3]},
                                        "keep_releases": 2, "image_repo": REPO})
    assert "failed" not in result, result.get("msg")
    assert result["pruned"] == [rids[0], rids[1]]
    # the active release's set and the previous one's stay; the others go, with the orphan
    assert result["pruned_env_sets"] == sorted([sets[0], sets[1], orphan])
    assert sorted(os.listdir(app_root / "shared" / "env")) == sorted(
        [sets[2], sets[3], fresh.name])
    for rid in rids[2:]:
        assert release_model.release_env(str(app_root / "releases" / rid)) in sets[2:]
        assert (app_root / "releases" / rid / ".env").is_file()
