"""Tests of module_utils/release_plan.py (pure deciding logic of a deploy)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_plan as rp

HASH = "0123456789ab" + "c" * 52
OTHER = "fedcba987654" + "d" * 52
RID = "20261124T101500Z-0123456789ab"
OLD = "20261120T080000Z-fedcba987654"


def rel(rid: str, complete: bool = True) -> dict:
    return {"id": rid, "content_hash": rid[-12:], "complete": complete, "partial": False}


@pytest.mark.parametrize(("name", "ok"), [
    (RID, True),
    ("20261124T101500Z-0123456789AB", False),
    ("20261124T101500Z-0123456789a", False),
    ("current", False),
    (RID + ".partial", False),
])
def test_is_release_id(name, ok):
    assert rp.is_release_id(name) is ok


def test_describe_release_dir_complete_partial_and_foreign():
    assert rp.describe_release_dir(RID, True) == {
        "id": RID, "content_hash": "0123456789ab", "complete": True, "partial": False}
    assert rp.describe_release_dir(RID, False)["complete"] is False
    partial = rp.describe_release_dir(RID + ".partial", True)
    assert partial == {"id": RID, "content_hash": "0123456789ab", "complete": False,
                       "partial": True}
    assert rp.describe_release_dir("lost+found", True) is None


def test_hash_prefix_uses_release_manifest_and_tolerates_garbage():
    assert rp.hash_prefix(RID) == "0123456789ab"
    assert rp.hash_prefix("nope") is None


@pytest.mark.parametrize(("target", "want"), [
    (f"releases/{RID}", RID),
    (f"/home/ubuntu/automated-trading-platform/releases/{RID}", RID),
    (f"releases/{RID}/", RID),
    ("/opt/elsewhere", None),
    (f"other/{RID}", None),
    (None, None),
    ("", None),
])
def test_release_from_link(target, want):
    assert rp.release_from_link(target) == want


def test_find_existing_release_prefers_current_then_newest():
    twin = "20261125T000000Z-0123456789ab"
    releases = [rel(RID), rel(twin), rel(OLD)]
    assert rp.find_existing_release(releases, HASH, current=RID) == RID
    assert rp.find_existing_release(releases, HASH, current=OLD) == twin
    assert rp.find_existing_release(releases, HASH.upper(), current=None) == twin
    assert rp.find_existing_release(releases, "ffffffffffff", current=RID) is None


def test_find_existing_release_ignores_incomplete_and_short_hash():
    assert rp.find_existing_release([rel(RID, complete=False)], HASH) is None
    assert rp.find_existing_release([rel(RID)], "0123") is None


def test_parse_deploy_log_skips_bad_lines():
    text = "\n".join([json.dumps({"release": RID}), "not json", "[1, 2]", "", "{\"a\": 1}"])
    assert rp.parse_deploy_log(text) == [{"release": RID}, {"a": 1}]
    assert rp.parse_deploy_log("") == []


def test_previous_release_from_log_newest_success_on_disk():
    mid = "20261122T000000Z-aaaaaaaaaaaa"
    gone = "20261123T000000Z-bbbbbbbbbbbb"
    releases = [rel(OLD), rel(mid), rel(RID)]
    log = [
        {"release": OLD, "result": "ok"},
        {"release": mid, "result": "ok"},
        {"release": gone, "result": "ok"},
        {"release": OLD, "result": "failed"},
        {"release": RID, "result": "ok"},
    ]
    assert rp.previous_release(log, releases, RID) == mid


def test_previous_release_after_rollback_is_the_rolled_back_from():
    releases = [rel(OLD), rel(RID)]
    log = [{"release": OLD, "result": "ok"}, {"release": RID, "result": "ok"},
           {"release": OLD, "result": "rolled_back"}]
    assert rp.previous_release(log, releases, OLD) == RID


def test_previous_release_by_name_order_without_log():
    mid = "20261122T000000Z-aaaaaaaaaaaa"
    releases = [rel(OLD), rel(mid), rel(RID), rel("20261130T000000Z-cccccccccccc", False)]
    assert rp.previous_release([], releases, RID) == mid
    assert rp.previous_release([], releases, OLD) is None
    assert rp.previous_release([], releases, None) == RID
    assert rp.previous_release([], [], None) is None


def running(image_id: str = "sha256:new") -> dict:
    return {"id": "c1", "name": "b", "image_id": image_id, "running": True, "state": "running"}


def test_plan_nothing_to_do():
    plan, reasons = rp.compute_plan(RID, RID, "sha256:new", [running()], True)
    assert plan == {"upload": False, "release_id": RID, "env": False, "build": False,
                    "activate": False}
    assert reasons == []


def test_plan_fresh_instance_does_everything_but_env():
    plan, reasons = rp.compute_plan(None, None, None, [], True)
    assert plan == {"upload": True, "release_id": None, "env": False, "build": True,
                    "activate": True}
    assert any("upload" in r for r in reasons)


def test_plan_release_present_but_not_current():
    plan, _ = rp.compute_plan(RID, OLD, "sha256:new", [running("sha256:old")], True)
    assert plan["upload"] is False and plan["build"] is False and plan["activate"] is True


def test_plan_image_missing_means_build_and_activate():
    plan, _ = rp.compute_plan(RID, RID, None, [running()], True)
    assert plan["build"] is True and plan["activate"] is True


def test_plan_container_stale_image_or_stopped():
    plan, reasons = rp.compute_plan(RID, RID, "sha256:new", [running("sha256:old")], True)
    assert plan["activate"] is True
    assert any("does not run the release image" in r for r in reasons)
    stopped = dict(running(), running=False, state="exited")
    plan, reasons = rp.compute_plan(RID, RID, "sha256:new", [stopped], True)
    assert plan["activate"] is True and any("no running" in r for r in reasons)


def test_plan_env_change_activates():
    plan, _ = rp.compute_plan(RID, RID, "sha256:new", [running()], False)
    assert plan["env"] is True and plan["activate"] is True


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
