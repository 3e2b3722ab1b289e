"""Tests of module_utils/release_model.py: the one place that knows what a release is."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_model as rm
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import (
    MANIFEST_NAME,
    build_manifest,
    content_hash,
)

CODE = "0123456789ab" + "c" * 52
OTHER = "fedcba987654" + "d" * 52
WHEN = datetime(2026, 11, 24, 10, 15, 0, tzinfo=timezone.utc)  # noqa: UP017
RID = "20261124T101500Z-0123456789ab"
A, B, C, D = (f"202611{d:02d}T000000Z-{d:012x}" for d in (1, 2, 3, 4))


# --------------------------------------------------------------------------- ids


def test_make_id_legacy_hash_part_is_the_code_hash():
    assert rm.make_id(CODE, None, WHEN) == RID
    assert rm.make_id(CODE, rm.LEGACY_ENV, WHEN) == RID
    assert rm.make_id(CODE.upper(), None, WHEN) == RID


def test_hash_part_covers_code_and_env():
    with_env = rm.make_id(CODE, "aaaaaaaaaaaa", WHEN)
    assert with_env.startswith("20261124T101500Z-") and with_env != RID
    assert rm.release_hash(CODE, "aaaaaaaaaaaa") == rm.hash_part(with_env)
    # Same code + same env -> same hash part; another env or another code -> another one.
    assert rm.release_hash(CODE, "aaaaaaaaaaaa") == rm.release_hash(CODE, "aaaaaaaaaaaa")
    assert rm.release_hash(CODE, "bbbbbbbbbbbb") != rm.release_hash(CODE, "aaaaaaaaaaaa")
    assert rm.release_hash(OTHER, "aaaaaaaaaaaa") != rm.release_hash(CODE, "aaaaaaaaaaaa")


def test_make_id_time_is_utc_and_naive_means_utc():
    plus8 = timezone(timedelta(hours=8))
    assert rm.make_id(CODE, None, WHEN.astimezone(plus8)) == RID
    assert rm.make_id(CODE, None, WHEN.replace(tzinfo=None)) == RID
    assert rm.is_release_id(rm.make_id(CODE))


@pytest.mark.parametrize("bad", ["", "0123", "xyz" * 8, None])
def test_make_id_rejects_a_bad_code_hash(bad):
    with pytest.raises(ValueError, match="code hash"):
        rm.make_id(bad, None, WHEN)


@pytest.mark.parametrize(("name", "ok"), [
    (RID, True),
    ("20261124T101500Z-0123456789AB", False),
    ("20261124T101500Z-0123456789a", False),
    ("20261399T101500Z-0123456789ab", False),
    ("current", False),
    (RID + ".partial", False),
    (None, False),
])
def test_parse_and_is_release_id(name, ok):
    assert rm.is_release_id(name) is ok
    assert (rm.parse_id(name) is not None) is ok
    assert (rm.id_problem(name) is None) is ok


def test_parts_of_an_id():
    assert rm.parse_id(RID) == ("20261124T101500Z", "0123456789ab")
    assert rm.hash_part(RID) == "0123456789ab"
    assert rm.build_time(RID) == "20261124T101500Z"
    assert rm.built_at(RID) == WHEN
    for func in (rm.hash_part, rm.build_time, rm.built_at):
        with pytest.raises(ValueError, match="not a release id"):
            func("nope")
    problem = rm.id_problem("x y")
    assert "release_id must look like" in problem and "\n" not in problem


def test_image_ref():
    assert rm.image_ref("repo", RID) == f"repo:{RID}"


# --------------------------------------------------------------------------- env sets


def test_env_set_hash_depends_on_paths_and_content_only():
    one = rm.env_set_hash({".env": b"A=1\n", ".env.aws": b""})
    assert len(one) == 12 and rm.is_env_set(one)
    assert rm.env_set_hash({".env.aws": "", ".env": "A=1\n"}) == one
    assert rm.env_set_hash({".env": b"A=2\n", ".env.aws": b""}) != one
    assert rm.env_set_hash({".env": b"A=1\n"}) != one
    assert rm.env_set_hash({".env": b"A=1\n", ".env.db": b""}) != one


@pytest.mark.parametrize(("name", "ok", "content"), [
    ("0123456789ab", True, "0123456789ab"), ("0123456789ab-2", True, "0123456789ab"),
    ("0123456789AB", False, None), (".0123456789ab.partial-1", False, None),
    ("shared", False, None),
])
def test_env_set_names(name, ok, content):
    assert rm.is_env_set(name) is ok
    assert rm.env_set_content_hash(name) == content


@pytest.mark.parametrize(("rel", "env", "target"), [
    (".env", "0123456789ab", "../../shared/env/0123456789ab/.env"),
    ("config/db.env", "0123456789ab", "../../../shared/env/0123456789ab/config/db.env"),
    (".env", rm.LEGACY_ENV, "../../shared/.env"),
    ("a/b/c.env", rm.LEGACY_ENV, "../../../../shared/a/b/c.env"),
])
def test_env_link_targets_round_trip(rel, env, target):
    assert rm.env_link_target(rel, env) == target
    assert rm.env_of_link(rel, target) == env


@pytest.mark.parametrize(("rel", "target"), [
    (".env", None), (".env", "/etc/passwd"), (".env", "../../shared/.env.aws"),
    (".env", "../../shared/env/0123456789ab/.env.aws"), (".env", "../../shared/env/x/.env"),
    ("config/db.env", "../../shared/config/db.env"),
])
def test_env_of_link_rejects_foreign_targets(rel, target):
    assert rm.env_of_link(rel, target) is None


# --------------------------------------------------------------------------- on disk


def make_release(root, rid, files=None, env=None, rels=(".env", ".env.aws")):
    release = root / "releases" / rid
    release.mkdir(parents=True)
    files = files or {"app.py": "x = 1\n"}
    for rel, text in files.items():
        (release / rel).parent.mkdir(parents=True, exist_ok=True)
        (release / rel).write_text(text)
    manifest = build_manifest(str(release), list(files))
    (release / MANIFEST_NAME).write_text(json.dumps(manifest))
    if env:
        for rel in rels:
            (release / rel).parent.mkdir(parents=True, exist_ok=True)
            (release / rel).symlink_to(rm.env_link_target(rel, env))
    return content_hash(manifest)


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
    assert rm.release_from_link(target) == want


def test_current_and_its_problems(tmp_path):
    assert rm.current(str(tmp_path)) is None and rm.current_problem(str(tmp_path)) is None
    (tmp_path / "current").symlink_to(rm.current_link_target(RID))
    assert rm.current(str(tmp_path)) == RID and rm.current_problem(str(tmp_path)) is None
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("/opt/elsewhere")
    assert rm.current(str(tmp_path)) is None
    assert "does not point at releases/" in rm.current_problem(str(tmp_path))
    (tmp_path / "current").unlink()
    (tmp_path / "current").mkdir()
    assert "not a symlink" in rm.current_problem(str(tmp_path))


def test_read_releases_sorted_with_details(tmp_path):
    code_b = make_release(tmp_path, B, env="0123456789ab")
    code_a = make_release(tmp_path, A, {"app.py": "old\n"}, env=rm.LEGACY_ENV)
    (tmp_path / "releases" / (C + ".partial")).mkdir()
    (tmp_path / "releases" / D).mkdir()  # no manifest: incomplete
    (tmp_path / "releases" / "notes").mkdir()
    (tmp_path / "releases" / "20261126T101500Z-cccccccccccc").write_text("a file")
    plain = rm.read_releases(str(tmp_path))
    assert [(r["id"], r["complete"], r["partial"]) for r in plain] == [
        (A, True, False), (B, True, False), (C, False, True), (D, False, False)]
    assert plain[0] == {"id": A, "hash": A[-12:], "complete": True, "partial": False}
    detailed = {r["id"]: r for r in rm.read_releases(str(tmp_path), details=True)}
    assert detailed[A]["code_hash"] == code_a and detailed[A]["env"] == rm.LEGACY_ENV
    assert detailed[B]["code_hash"] == code_b and detailed[B]["env"] == "0123456789ab"
    assert detailed[D]["code_hash"] is None and detailed[D]["env"] is None
    assert rm.complete_ids(plain) == {A, B}
    assert rm.read_releases(str(tmp_path / "nowhere")) == []


def test_release_env_is_none_without_links_or_when_mixed(tmp_path):
    make_release(tmp_path, A)
    assert rm.release_env(str(tmp_path / "releases" / A)) is None
    make_release(tmp_path, B, env="0123456789ab")
    (tmp_path / "releases" / B / ".env.db").symlink_to("../../shared/.env.db")
    assert rm.env_links(str(tmp_path / "releases" / B)) == {
        ".env": "0123456789ab", ".env.aws": "0123456789ab", ".env.db": rm.LEGACY_ENV}
    assert rm.release_env(str(tmp_path / "releases" / B)) is None


def test_find_release_by_code_and_env_prefers_current_then_newest():
    def rel(rid, code, env, complete=True):
        return {"id": rid, "complete": complete, "partial": False, "code_hash": code,
                "env": env}

    releases = [rel(A, CODE, "e1"), rel(B, CODE, "e1"), rel(C, CODE, "e2"),
                rel(D, OTHER, "e1")]
    assert rm.find_release(releases, CODE, "e1") == B
    assert rm.find_release(releases, CODE, "e1", current_id=A) == A
    assert rm.find_release(releases, CODE, "e2") == C
    assert rm.find_release(releases, CODE, "e3") is None
    assert rm.find_release(releases, "", "e1") is None
    assert rm.find_release([rel(A, CODE, "e1", complete=False)], CODE, "e1") is None
    assert rm.same_code(releases, CODE) == [C, B, A]
    assert rm.same_code(releases, CODE, current_id=A) == [A, C, B]
    assert rm.same_code(releases, "0" * 64) == []


def test_clone_code_hard_links_the_code_and_nothing_else(tmp_path):
    make_release(tmp_path, A, {"app.py": "x\n", "pkg/mod.py": "y\n"}, env="0123456789ab")
    source = tmp_path / "releases" / A
    (source / "docker-compose.deploy.yml").write_text("{}")
    os.chmod(source / "pkg", 0o750)
    made = rm.clone_code(str(tmp_path), A, B)
    clone = tmp_path / "releases" / B
    assert made == str(clone)
    assert sorted(str(p.relative_to(clone)) for p in clone.rglob("*")) == [
        MANIFEST_NAME, "app.py", "pkg", "pkg/mod.py"]
    assert os.stat(clone / "app.py").st_ino == os.stat(source / "app.py").st_ino
    assert os.stat(clone / "pkg").st_mode & 0o777 == 0o750
    assert rm.code_hash(str(clone)) == rm.code_hash(str(source))
    assert not (tmp_path / "releases" / (B + rm.PARTIAL_SUFFIX)).exists()


def test_clone_code_without_manifest_fails_and_leaves_nothing(tmp_path):
    (tmp_path / "releases" / A).mkdir(parents=True)
    with pytest.raises(OSError, match="no readable manifest"):
        rm.clone_code(str(tmp_path), A, B)
    assert sorted(os.listdir(tmp_path / "releases")) == [A]


# --------------------------------------------------------------------------- deploy.log


def log(*pairs, **extra) -> list[dict]:
    return [{"release": r, "result": res, **extra} for r, res in pairs]


def test_parse_deploy_log_skips_bad_lines(tmp_path):
    text = "\n".join([json.dumps({"release": RID}), "not json", "[1, 2]", "", '{"a": 1}'])
    assert rm.parse_deploy_log(text) == [{"release": RID}, {"a": 1}]
    assert rm.parse_deploy_log("") == []
    (tmp_path / "deploy.log").write_text(text)
    assert rm.read_deploy_log(str(tmp_path)) == [{"release": RID}, {"a": 1}]
    assert rm.read_deploy_log(str(tmp_path / "nowhere")) == []


@pytest.mark.parametrize(("record", "good"), [
    ({"result": "ok"}, True),
    ({"result": "OK"}, True),
    ({"result": "deployed"}, True),
    ({"result": "rolled_back"}, True),
    ({"result": "rolled_back", "error": ""}, True),
    ({"result": "rolled_back", "error": "smoke check failed"}, False),
    ({"result": "failed"}, False),
    ({}, False),
    (None, False),
])
def test_is_good(record, good):
    assert rm.is_good(record) is good


def test_last_records_and_good_release():
    records = [*log((A, "failed"), (A, "ok"), (B, "ok"), (B, "failed")),
               {"release": "latest", "result": "ok"}, {}]
    assert rm.last_records(records) == {A: records[1], B: records[3]}
    assert rm.is_good_release(A, records) is True
    assert rm.is_good_release(B, records) is False
    assert rm.is_good_release(C, records) is False


def test_timeline_is_the_order_releases_became_live():
    records = log((A, "ok"), (B, "ok"), (B, "ok"), (C, "failed"), (A, "rolled_back"), (D, "ok"))
    assert rm.timeline(records) == [A, B, A, D]


def test_previous_is_the_release_live_before_not_the_newest_id():
    # A, B, C deployed; B's content redeployed (its older id re-activated), then A's.
    records = log((A, "ok"), (B, "ok"), (C, "ok"), (B, "ok"), (A, "ok"))
    assert rm.previous(records, A) == B  # newest id would say C
    assert rm.previous(records, B) == C  # B's last activation came after C's
    assert rm.previous(records, C) == B


def test_previous_ignores_the_clock_of_the_ids():
    # Ids made with a controller clock that was a year off: log order decides.
    late, early = "20271124T101500Z-aaaaaaaaaaaa", "20251124T101500Z-bbbbbbbbbbbb"
    assert rm.previous(log((late, "ok"), (early, "ok")), early) == late
    assert rm.previous(log((early, "ok"), (late, "ok")), late) == early


def test_previous_skips_failed_and_unusable_releases():
    records = log((A, "ok"), (B, "ok"), (C, "ok"), (D, "failed"))
    assert rm.previous(records, C) == B
    assert rm.previous(records, C, usable=lambda rid: rid != B) == A
    assert rm.previous(records, C, usable=lambda rid: False) is None
    # B failed a later deploy (its last record): not a target any more.
    assert rm.previous([*records, *log((B, "failed"))], C) == A
    # A deploy rolled back away from its release (result failed / rolled_back with error).
    assert rm.previous([*log((A, "ok"), (B, "ok")), *log((C, "rolled_back"), error="x")],
                       B) == A


def test_previous_when_current_never_became_live_or_nothing_before():
    records = log((A, "ok"), (B, "ok"))
    assert rm.previous(records, C) == B  # current switched by a run that never recorded ok
    assert rm.previous(records, None) == B
    assert rm.previous(log((A, "ok")), A) is None
    assert rm.previous([], A) is None


def test_the_secrets_link_is_no_env(tmp_path):
    make_release(tmp_path, A, env="0123456789ab")
    (tmp_path / "releases" / A / "secrets").symlink_to("../../shared/secrets")
    assert rm.release_env(str(tmp_path / "releases" / A)) == "0123456789ab"
