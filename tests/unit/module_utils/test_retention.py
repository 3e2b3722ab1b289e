"""Tests of module_utils/retention.py (which releases and partial dirs to prune)."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import docker_cmd
from ansible_collections.atp.deploy.plugins.module_utils import retention as rt

IDS = [f"202611{d:02d}T000000Z-{d:012x}" for d in range(1, 8)]  # oldest first


def rel(rid: str, complete: bool = True, partial: bool = False) -> dict:
    return {"id": rid, "content_hash": rid[-12:], "complete": complete, "partial": partial}


@pytest.mark.parametrize(("keep", "problem"), [
    (None, None), (2, None), (5, None),
    (1, "deploy_keep_releases must be at least 2 (the active and the previous release), got 1; "
        "pass -e deploy_keep_releases=5"),
    (0, "got 0"), (-3, "got -3"),
])
def test_keep_problem(keep, problem):
    found = rt.keep_problem(keep)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_keeps_newest_and_prunes_oldest_first():
    releases = [rel(r) for r in reversed(IDS)]
    assert rt.select_prune(releases, 3) == IDS[:4]
    assert rt.select_prune(releases, 7) == []
    assert rt.select_prune(releases, 10) == []


def test_current_and_protected_are_never_pruned():
    releases = [rel(r) for r in IDS]
    assert rt.select_prune(releases, 2, current=IDS[0], protect=[IDS[2], ""]) == [
        IDS[1], IDS[3], IDS[4]]


def test_incomplete_and_partial_dirs_are_not_counted_nor_pruned():
    releases = [rel(r) for r in IDS[:4]] + [rel(IDS[4], complete=False),
                                            rel(IDS[5], complete=False, partial=True)]
    # The newest two *complete* ones are kept; the broken and partial dirs are left alone.
    assert rt.select_prune(releases, 2) == IDS[:2]


def test_select_prune_refuses_keep_below_two():
    with pytest.raises(ValueError, match="at least 2"):
        rt.select_prune([rel(r) for r in IDS], 1)


def test_stale_partials():
    now = 1_000_000.0
    entries = [(IDS[0] + ".partial", now - 3601), (IDS[1] + ".partial", now - 60),
               ("notes.partial", now - 99999), (IDS[2], now - 99999)]
    assert rt.stale_partials(entries, now) == [IDS[0] + ".partial"]
    assert rt.stale_partials(entries, now, max_age=30) == [IDS[0] + ".partial",
                                                           IDS[1] + ".partial"]


def test_image_rm_is_never_forced():
    assert docker_cmd.image_rm("repo:tag", "/usr/bin/docker") == [
        "/usr/bin/docker", "image", "rm", "repo:tag"]


@pytest.mark.parametrize(("rc", "err", "outcome"), [
    (0, "", "removed"),
    (1, "Error response from daemon: No such image: repo:tag", "missing"),
    (1, 'Error response from daemon: conflict: unable to remove repository reference "repo:tag"'
        " (must force) - container 0123 is using its referenced image 4567", "in_use"),
    (1, "Error response from daemon: conflict: unable to delete 4567 (cannot be forced) - "
        "image is being used by running container 0123", "in_use"),
    (1, "Cannot connect to the Docker daemon", "error"),
])
def test_classify_image_rm(rc, err, outcome):
    assert rt.classify_image_rm(rc, "", err) == outcome


def test_select_env_prune_keeps_every_set_a_release_links():
    names = ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "bbbbbbbbbbbb-2", "cccccccccccc",
             ".dddddddddddd.partial-42", "notes"]
    linked = {"aaaaaaaaaaaa", "bbbbbbbbbbbb-2", "shared", None}
    assert rt.select_env_prune(names, linked) == ["bbbbbbbbbbbb", "cccccccccccc"]
    assert rt.select_env_prune(names, set()) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb",
                                                 "bbbbbbbbbbbb-2", "cccccccccccc"]
