"""Tests of the release_history module, on tmp_path with a fake `docker` first on PATH."""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.modules import release_history

from .module_runner import (
    CODE_HASHES,
    doc_spec_problems,
    install_release,
    run_module,
    warnings_of,
)

REPO = "automated-trading-platform-backend-aws"
HINT = "list them with ansible-playbook playbooks/rollback.yml -e rollback_list=true"


def history(app_root, **extra) -> dict:
    return run_module(release_history, {"app_root": str(app_root), **extra})


def deployed(app_root, docker, results: list[str], current: int = -1,
             images: tuple[int, ...] | None = None) -> list[str]:
    """One release per result (oldest first), logged in deploy.log; images for `images`."""
    rids = [install_release(app_root, {"a": f"{n}\n"}, f"2026-11-0{n + 1}T00:00:00")
            for n in range(len(results))]
    lines = []
    for n, (rid, res) in enumerate(zip(rids, results, strict=True)):
        if res is None:
            continue
        lines.append({"release": rid, "result": res, "git_sha": f"sha{n}", "operator": "alice",
                      "finished": f"2026-11-0{n + 1}T00:05:00Z"})
    (app_root / "deploy.log").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for n in range(len(rids)) if images is None else images:
        docker.state["images"][f"{REPO}:{rids[n]}"] = f"sha256:{n}"
    docker.save()
    (app_root / "current").symlink_to(f"releases/{rids[current]}")
    return rids


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(release_history) == []


def test_lists_releases_newest_first_with_one_inspect_call(app_root, docker):
    rids = deployed(app_root, docker, ["ok", "failed", "ok"], images=(0, 2))
    (app_root / "releases" / (rids[2] + ".partial")).mkdir()
    result = history(app_root)
    assert result["changed"] is False and "selected" not in result
    assert [r["id"] for r in result["releases"]] == rids[::-1]
    assert result["current_release"] == rids[2] and result["previous_release"] == rids[0]
    newest = result["releases"][0]
    assert newest == {"id": rids[2], "complete": True, "active": True,
                      "image": f"{REPO}:{rids[2]}", "image_exists": True, "image_id": "sha256:2",
                      "code_hash": CODE_HASHES[rids[2]], "env": None,
                      "git_sha": "sha2", "result": "ok", "finished": "2026-11-03T00:05:00Z",
                      "operator": "alice", "rollback_target": False}
    assert result["releases"][1]["image_exists"] is False
    inspects = [a for a in docker.argvs if a[:2] == ["image", "inspect"]]
    assert len(inspects) == 1 and sorted(inspects[0][4:]) == sorted(f"{REPO}:{r}" for r in rids)


def test_select_previous(app_root, docker):
    rids = deployed(app_root, docker, ["ok", "ok", "ok"])
    result = history(app_root, select="previous")
    assert result["selected"]["id"] == rids[1] and result["selected"]["git_sha"] == "sha1"


def test_only_failed_release_is_not_a_rollback_target(app_root, docker):
    rids = deployed(app_root, docker, ["failed", "ok"])
    result = history(app_root, select="previous")
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"no previous release to roll back to: expected a release that was live before "
        f"{rids[1]} (deploy.log)")
    assert HINT in result["msg"] and "\n" not in result["msg"]
    assert len(result["releases"]) == 2  # still listed


def test_previous_after_redeploying_older_content_is_the_release_live_before(app_root,
                                                                            docker):
    rids = deployed(app_root, docker, ["ok", "ok", "ok"], current=0)
    # then rids[1]'s content was redeployed, then rids[0]'s (older ids re-activated)
    with open(app_root / "deploy.log", "a", encoding="utf-8") as handle:
        for rid in (rids[1], rids[0]):
            handle.write(json.dumps({"release": rid, "result": "ok"}) + "\n")
    result = history(app_root, select="previous")
    assert result["current_release"] == rids[0]
    assert result["previous_release"] == rids[1] != rids[2]  # not the newest id
    assert result["selected"]["id"] == rids[1]


def test_select_by_id(app_root, docker):
    rids = deployed(app_root, docker, ["ok", "ok", "ok"])
    result = history(app_root, select=rids[0])
    assert "failed" not in result and result["selected"]["id"] == rids[0]


def test_select_failed_release_by_id_warns(app_root, docker):
    rids = deployed(app_root, docker, ["failed", "ok"])
    result = history(app_root, select=rids[0])
    assert result["selected"]["id"] == rids[0]
    assert any("never finished a deploy ok (last result: failed)" in w
               for w in warnings_of(result))


def test_previous_names_the_releases_it_passed_over(app_root, docker):
    """Three good releases, the middle one's image pruned: plain rollback.yml goes two
    releases back, and says so instead of only reporting success."""
    rids = deployed(app_root, docker, ["ok", "ok", "ok"], images=(0, 2))
    result = history(app_root, select="previous")
    assert result["selected"]["id"] == rids[0]
    assert [w for w in warnings_of(result) if "passing over" in w] == [
        f"rolling back to {rids[0]}, passing over the release(s) live after it that cannot be "
        f"rolled back to: {rids[1]} (its image {REPO}:{rids[1]} is gone, pruned?); to go back "
        "to one of them, deploy its source again"]


def test_select_unknown_id(app_root, docker):
    rids = deployed(app_root, docker, ["ok", "ok"])
    result = history(app_root, select="20991231T000000Z-ffffffffffff")
    assert result["failed"] is True
    assert result["msg"] == (f"unknown release 20991231T000000Z-ffffffffffff: expected one of "
                             f"{rids[1]}, {rids[0]}; {HINT}")


def test_select_release_without_image(app_root, docker):
    rids = deployed(app_root, docker, ["ok", "ok"], images=(1,))
    result = history(app_root, select=rids[0])
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"release {rids[0]} has no image {REPO}:{rids[0]} any more (pruned?): ")


def test_docker_failing_is_not_reported_as_missing_images(app_root, docker):
    deployed(app_root, docker, ["ok", "ok"])
    docker.state["inspect_error"] = {"rc": 1, "stderr": "Cannot connect to the Docker daemon"}
    docker.save()
    result = history(app_root)
    assert result["failed"] is True
    assert result["msg"].startswith("`docker image inspect` failed (exit 1): Cannot connect to "
                                    "the Docker daemon; ")


def test_empty_instance_and_check_mode(app_root, docker):
    result = run_module(release_history, {"app_root": str(app_root)}, check_mode=True)
    assert result["changed"] is False and result["releases"] == []
    assert result["current_release"] is None and result["previous_release"] is None
    assert docker.argvs == []


def test_missing_app_root(tmp_path, docker):
    result = history(tmp_path / "nope")
    assert result["failed"] is True and "is not a directory" in result["msg"]


def test_tags_read_differently_fall_back_to_one_inspect_per_tag(monkeypatch):
    calls = []

    def run(argv, timeout=None):
        calls.append(argv)
        if "{{json .RepoTags}} {{.Id}}" in argv:
            return 0, '["docker.io/library/r:a"] sha256:1\n', ""
        return 0, "sha256:1\n", ""

    monkeypatch.setattr(release_history.proc, "run", run)
    assert release_history.inspect_images(None, "docker", ["r:a"]) == {"r:a": "sha256:1"}
    assert len(calls) == 2 and calls[1][-1] == "r:a"
