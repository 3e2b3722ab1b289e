"""Tests of module_utils/release_plan.py (pure deciding logic of a deploy)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_model
from ansible_collections.atp.deploy.plugins.module_utils import release_plan as rp

CODE = "0123456789ab" + "c" * 52
OTHER = "fedcba987654" + "d" * 52
RID = "20261124T101500Z-0123456789ab"
OLD = "20261120T080000Z-fedcba987654"
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=timezone.utc)  # noqa: UP017
SET = "5e75e75e75e7"
REPO = "repo"


def rel(rid: str, code: str = CODE, env: str | None = SET, complete: bool = True) -> dict:
    return {"id": rid, "hash": rid[-12:], "complete": complete, "partial": False,
            "code_hash": code, "env": env}


def running(image_id: str = "sha256:new") -> dict:
    return {"id": "c1", "name": "b", "image_id": image_id, "running": True, "state": "running"}


def images(**by_id):
    return lambda rid: by_id.get(rid)


def env_known(target: str = SET) -> dict:
    return {"target": target, "token": target, "write": False}


def plan(releases, current, env, image_of, backend, **kwargs):
    return rp.plan_release(kwargs.pop("code", CODE), releases, current, env, image_of, backend,
                           REPO, now=NOW, **kwargs)


def test_plan_nothing_to_do():
    result, reasons = plan([rel(RID)], RID, env_known(), images(**{RID: "sha256:new"}),
                           [running()])
    assert result == {"release_id": RID, "new": False, "upload": False, "clone_from": None,
                      "env": False, "env_set": SET, "build": False, "image_from": None,
                      "activate": False}
    assert reasons == []


def test_plan_fresh_instance_new_release_uploads_builds_and_writes_the_env():
    token = rp.env_change_token(None, {"files": {}})
    result, reasons = plan([], None, {"target": None, "token": token, "write": True},
                           images(), [])
    assert result["release_id"] == release_model.make_id(CODE, token, NOW)
    assert result["new"] and result["upload"] and result["env"] and result["build"]
    assert result["activate"] and result["clone_from"] is None and result["env_set"] is None
    assert any("upload" in r for r in reasons) and rp.ENV_REASON in reasons


def test_plan_code_change_with_the_same_env_links_the_existing_set():
    result, _ = plan([rel(OLD, OTHER)], OLD, env_known(), images(**{OLD: "sha256:old"}),
                     [running("sha256:old")])
    assert result["new"] and result["upload"] and result["build"]
    assert result["env"] is False and result["env_set"] == SET
    assert result["release_id"] == release_model.make_id(CODE, SET, NOW)


def test_plan_env_only_change_is_a_new_release_reusing_code_and_image():
    token = rp.env_change_token(SET, {"files": {".env": {"A": "digest"}}})
    result, reasons = plan([rel(RID)], RID, {"target": None, "token": token, "write": True},
                           images(**{RID: "sha256:img"}), [running("sha256:img")])
    assert result["new"] is True and result["release_id"] != RID
    assert release_model.hash_part(result["release_id"]) == release_model.release_hash(CODE,
                                                                                       token)
    assert result["upload"] is False and result["clone_from"] == RID
    assert result["env"] is True and result["env_set"] is None
    assert result["build"] is False and result["image_from"] == f"{REPO}:{RID}"
    assert result["activate"] is True
    assert any("no build" in r for r in reasons)


def test_plan_redeploying_older_code_with_the_same_env_reactivates_that_release():
    releases = [rel(OLD), rel(RID, OTHER)]
    result, _ = plan(releases, RID, env_known(), images(**{OLD: "sha256:old"}),
                     [running("sha256:new")])
    assert result["release_id"] == OLD and result["new"] is False
    assert result["upload"] is False and result["build"] is False and result["activate"]


def test_plan_older_code_with_another_env_is_a_new_release_made_from_it():
    releases = [rel(OLD, env="0ldse70ldse7"), rel(RID, OTHER)]
    result, _ = plan(releases, RID, env_known(), images(**{OLD: "sha256:old"}),
                     [running("sha256:new")])
    assert result["new"] and result["clone_from"] == OLD and result["env"] is True
    assert result["env_set"] == SET and result["image_from"] == f"{REPO}:{OLD}"


def test_plan_existing_release_image_missing_builds_when_no_sibling_has_one():
    result, reasons = plan([rel(RID)], RID, env_known(), images(), [running()])
    assert result["build"] is True and result["activate"] is True
    assert "the release image is missing: build it" in reasons


def test_plan_container_stale_image_or_stopped():
    result, reasons = plan([rel(RID)], RID, env_known(), images(**{RID: "sha256:new"}),
                           [running("sha256:old")])
    assert result["activate"] is True
    assert any("does not run the release image" in r for r in reasons)
    stopped = dict(running(), running=False, state="exited")
    result, reasons = plan([rel(RID)], RID, env_known(), images(**{RID: "sha256:new"}),
                           [stopped])
    assert result["activate"] is True and any("no running" in r for r in reasons)


def test_plan_existing_release_with_missing_links_runs_env_files():
    result, reasons = plan([rel(RID)], RID, env_known(), images(**{RID: "sha256:new"}),
                           [running()], links_missing=lambda rid, env: [".env.db"])
    assert result["env"] is True and result["new"] is False and result["activate"] is True
    assert any(".env.db" in r for r in reasons)


def test_plan_named_release_is_a_rollback_with_its_own_env():
    releases = [rel(OLD, OTHER, env="0ldse70ldse7"), rel(RID)]
    result, _ = plan(releases, RID, env_known(), images(**{OLD: "sha256:old"}),
                     [running("sha256:new")], code=None, named=OLD)
    assert result == {"release_id": OLD, "new": False, "upload": False, "clone_from": None,
                      "env": False, "env_set": "0ldse70ldse7", "build": False,
                      "image_from": None, "activate": True}


def test_env_change_token_is_unique_per_change_and_base():
    one = rp.env_change_token(SET, {"files": {".env": {"A": "d1"}}})
    assert one == rp.env_change_token(SET, {"files": {".env": {"A": "d1"}}})
    assert one != rp.env_change_token(SET, {"files": {".env": {"A": "d2"}}})
    assert one != rp.env_change_token("shared", {"files": {".env": {"A": "d1"}}})
    assert one.startswith("change:")


def test_release_zero_stamp_is_before_the_next_release():
    assert rp.release_zero_stamp(NOW) == "20261125T090000Z"
    assert rp.release_zero_stamp(NOW, "20261125T085959Z-0123456789ab") == "20261125T085958Z"
    assert rp.release_zero_stamp(NOW, "20261126T000000Z-0123456789ab") == "20261125T090000Z"
    assert rp.release_zero_stamp(NOW.replace(tzinfo=None)) == "20261125T090000Z"


@pytest.mark.parametrize(("entries", "adopt"), [
    (None, False),
    ([], False),
    (["docker-compose.yml", "backend", ".env"], True),
    ([".git", "README.md"], True),
    (["releases", "shared", "docker-compose.yml", ".git"], False),
    (["shared", "deploy.log", ".deploy.lock"], False),
])
def test_needs_adoption(entries, adopt):
    assert rp.needs_adoption(entries) is adopt


def test_aside_path_is_next_to_app_root_and_unique():
    root = "/home/ubuntu/automated-trading-platform"
    want = root + ".pre-ansible-20261124T101500Z"
    assert rp.aside_path(root + "/", "20261124T101500Z") == want
    assert rp.aside_path(root, "20261124T101500Z", {want}) == want + "-2"
    assert rp.aside_path(root, "20261124T101500Z", {want, want + "-2"}) == want + "-3"


# --------------------------------------------------------------------------- rescue

ZERO = "20261124T101459Z-aaaaaaaaaaaa"


@pytest.mark.parametrize(("compose", "rollback_to", "note"), [
    # smoke failed after compose_release switched from release zero: back to it
    ({"switched": True, "previous_release": ZERO, "changed": True}, ZERO,
     f"-- rolled back to {ZERO}"),
    # `up` failed after the switch (failed result still carries previous_release)
    ({"failed": True, "switched": True, "previous_release": OLD, "changed": True}, OLD,
     f"-- rolled back to {OLD}"),
    # switched on a fresh instance: nothing to go back to
    ({"switched": True, "previous_release": None}, "",
     f"-- no previous release to roll back to; left {RID} for diagnosis "
     "(ansible-playbook playbooks/diagnose.yml)"),
    # route gate or build failed: nothing switched
    ({"failed": True, "switched": False, "previous_release": ZERO, "built": True,
      "changed": True}, "", rp.NOT_TOUCHED),
    ({"failed": True, "switched": False, "previous_release": ZERO}, "", rp.NOT_TOUCHED),
    # compose_release skipped or never reached
    ({"skipped": True, "changed": False}, "", rp.NOT_TOUCHED),
    ({}, "", rp.NOT_TOUCHED),
    (None, "", rp.NOT_TOUCHED),
])
def test_rescue_rolls_back_only_what_compose_release_switched(compose, rollback_to, note):
    assert rp.rescue_plan(compose, RID) == {"rollback_to": rollback_to, "note": note}


def test_rescue_of_a_reactivated_release_says_there_is_nothing_to_switch_back():
    plan = rp.rescue_plan({"switched": False, "previous_release": RID, "recreated": True,
                           "changed": True}, RID)
    assert plan["rollback_to"] == ""
    assert plan["note"].startswith(f"-- current already pointed at {RID} before this deploy")


def test_rescue_never_rolls_back_to_the_failed_release_itself():
    assert rp.rescue_plan({"switched": True, "previous_release": RID}, RID)["rollback_to"] == ""


def test_staging_path():
    assert rp.staging_path("/home/ubuntu/app/", "20261124T101500Z") == \
        "/home/ubuntu/app.adopting-20261124T101500Z"
