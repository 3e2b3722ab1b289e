"""Tests of module_utils/history.py (release list and rollback target selection)."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd
from ansible_collections.atp.deploy.plugins.module_utils import history as hs

REPO = "repo"
A, B, C, D = (f"202611{d:02d}T000000Z-{d:012x}" for d in (1, 2, 3, 4))


def rel(rid: str, complete: bool = True, partial: bool = False) -> dict:
    return {"id": rid, "hash": rid[-12:], "complete": complete, "partial": partial,
            "code_hash": ("c" * 64) if complete else None, "env": "5e75e75e75e7"}


def images(*rids: str) -> dict:
    return {f"{REPO}:{r}": f"sha256:{r[-4:]}" for r in rids}


def log(*pairs, **extra) -> list[dict]:
    return [{"release": r, "result": res, "git_sha": f"g-{r[-2:]}", "operator": "alice",
             "finished": "t", **extra} for r, res in pairs]


def test_build_history_joins_dirs_log_and_images_newest_first():
    releases = [rel(A), rel(B), rel(C), rel(C, complete=False, partial=True),
                rel(D, complete=False)]
    entries = hs.build_history(releases, log((A, "ok"), (B, "ok"), (C, "ok")), C, images(A, C),
                               REPO)
    assert [e["id"] for e in entries] == [D, C, B, A]
    by_id = {e["id"]: e for e in entries}
    assert by_id[C] == {"id": C, "complete": True, "active": True, "image": f"{REPO}:{C}",
                        "image_exists": True, "image_id": f"sha256:{C[-4:]}", "git_sha": "g-03",
                        "code_hash": "c" * 64, "env": "5e75e75e75e7",
                        "result": "ok", "finished": "t", "operator": "alice",
                        "rollback_target": False}
    assert by_id[B]["image_exists"] is False and by_id[B]["rollback_target"] is False
    assert by_id[A]["rollback_target"] is True
    assert by_id[D]["complete"] is False and by_id[D]["result"] is None


def test_previous_is_the_release_live_before_from_the_log_order():
    releases = [rel(r) for r in (A, B, C, D)]
    records = log((A, "ok"), (B, "ok"), (C, "failed"), (D, "ok"))
    entries = hs.build_history(releases, records, D, images(A, B, C, D), REPO)
    assert hs.previous_release(entries, records, D) == B
    # B's image pruned -> the one live before it, A
    entries = hs.build_history(releases, records, D, images(A, C, D), REPO)
    assert hs.previous_release(entries, records, D) == A


def test_previous_after_redeploying_older_content_is_not_the_newest_id():
    releases = [rel(r) for r in (A, B, C)]
    records = log((A, "ok"), (B, "ok"), (C, "ok"), (B, "ok"), (A, "ok"))
    entries = hs.build_history(releases, records, A, images(A, B, C), REPO)
    assert hs.previous_release(entries, records, A) == B


def test_release_rolled_back_away_from_is_not_a_target():
    releases = [rel(r) for r in (A, B, C)]
    records = log((A, "ok"), (B, "ok"))
    records += log((C, "rolled_back"), error="smoke check failed")
    entries = hs.build_history(releases, records, B, images(A, B, C), REPO)
    assert hs.previous_release(entries, records, B) == A
    # A rollback *to* C (no error) made C live; B became live again after it.
    records += log((C, "rolled_back"), (B, "ok"))
    entries = hs.build_history(releases, records, B, images(A, B, C), REPO)
    assert hs.previous_release(entries, records, B) == C


def test_release_without_log_record_is_not_a_target():
    entries = hs.build_history([rel(A), rel(B)], [], B, images(A, B), REPO)
    assert hs.previous_release(entries, [], B) is None


def test_select_previous_and_none():
    releases = [rel(A), rel(B)]
    records = log((A, "ok"), (B, "ok"))
    entries = hs.build_history(releases, records, B, images(A, B), REPO)
    entry, problem = hs.select_release(entries, records, B, "previous")
    assert problem is None and entry["id"] == A
    entries = hs.build_history([rel(B)], log((B, "ok")), B, images(B), REPO)
    entry, problem = hs.select_release(entries, log((B, "ok")), B, "previous")
    assert entry is None
    assert problem.startswith(f"no previous release to roll back to: expected a release that "
                              f"was live before {B}")
    assert "rollback_list=true" in problem and "\n" not in problem
    _, problem = hs.select_release([], [], None, "previous")
    assert "live before the current one" in problem


def test_select_by_id():
    releases = [rel(A), rel(B), rel(C, complete=False)]
    records = log((A, "failed"), (B, "ok"))
    entries = hs.build_history(releases, records, B, images(B), REPO)
    entry, problem = hs.select_release(entries, records, B, B)
    assert problem is None and entry["id"] == B
    _, problem = hs.select_release(entries, records, B, A)
    assert problem == (f"release {A} has no image {REPO}:{A} any more (pruned?): pick another "
                       "release (list them with ansible-playbook playbooks/rollback.yml -e "
                       "rollback_list=true) or deploy its source again")
    for unknown in (C, "20990101T000000Z-ffffffffffff", "latest"):
        _, problem = hs.select_release(entries, records, B, unknown)
        assert problem == (f"unknown release {unknown}: expected one of {B}; list them with "
                           "ansible-playbook playbooks/rollback.yml -e rollback_list=true")


def test_unknown_lists_at_most_ten_newest_first():
    rids = [f"2026110{d // 10}T0000{d % 10}0Z-{d:012x}" for d in range(12)]
    entries = hs.build_history([rel(r) for r in rids], [], None, images(*rids), REPO)
    _, problem = hs.select_release(entries, [], None, "nope")
    listed = problem.split("expected one of ")[1].split(";")[0]
    assert listed == ", ".join(sorted(rids, reverse=True)[:10]) + " (+2 more)"


def test_inspect_argv_and_batches():
    assert docker_cmd.image_tags(["r:a", "r:b"], "docker") == [
        "docker", "image", "inspect", "--format", "{{json .RepoTags}} {{.Id}}", "r:a", "r:b"]
    with pytest.raises(ValueError):
        docker_cmd.image_tags([])
    assert hs.batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def test_parse_inspect_tags_maps_each_ref():
    out = '["r:a","other:x"] sha256:1\n["r:c"] sha256:3\n\nnot json sha256:9\n'
    assert hs.parse_inspect_tags(out, ["r:a", "r:b", "r:c"]) == {
        "r:a": "sha256:1", "r:b": None, "r:c": "sha256:3"}
    assert hs.parse_inspect_tags("", ["r:a"]) == {"r:a": None}


def test_inspect_problem_ignores_missing_images():
    assert hs.inspect_problem("Error: No such image: r:a\nError: No such image: r:b") is None
    assert hs.inspect_problem("Cannot connect to the Docker daemon\n") == (
        "Cannot connect to the Docker daemon")


def test_previous_says_which_good_releases_it_passed_over_and_why():
    """B served after A but its image was pruned: "previous" goes to A, and says it passed B
    over (a failed C is never a target, so it is not named)."""
    releases = [rel(r) for r in (A, B, C, D)]
    records = log((A, "ok"), (B, "ok"), (C, "failed"), (D, "ok"))
    entries = hs.build_history(releases, records, D, images(A, C, D), REPO)
    assert hs.previous_release(entries, records, D) == A
    assert hs.passed_over(entries, records, D, A) == [
        f"{B} (its image {REPO}:{B} is gone, pruned?)"]
    # B's release dir gone too
    entries = hs.build_history([rel(r) for r in (A, C, D)], records, D, images(A, C, D), REPO)
    assert hs.passed_over(entries, records, D, A) == [f"{B} (no longer on the instance)"]
    # nothing passed over when previous is the release live just before
    entries = hs.build_history(releases, records, D, images(A, B, C, D), REPO)
    assert hs.passed_over(entries, records, D, B) == []
