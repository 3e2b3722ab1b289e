"""Tests of the compose_release module with a fake `docker` first on PATH."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.atp.deploy.plugins.module_utils.docker_cmd import OVERRIDE_NAME
from ansible_collections.atp.deploy.plugins.modules import compose_release

from .module_runner import FakeDocker, doc_spec_problems, install_release, run_module

REPO = "automated-trading-platform-backend-aws"
PROJECT = "automated-trading-platform"


@pytest.fixture
def releases(app_root):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    new = install_release(app_root)
    return old, new


def compose(app_root, rid, check_mode=False, **extra) -> dict:
    params = {"app_root": str(app_root), "release_id": rid, "git_sha": "abc123",
              "build_time": "2026-11-24T10:15:00Z", **extra}
    return run_module(compose_release, params, check_mode=check_mode)


def compose_calls(docker: FakeDocker, verb: str) -> list[dict]:
    return [c for c in docker.calls if c["argv"][:1] == ["compose"] and verb in c["argv"]]


def assert_never_restart(docker: FakeDocker) -> None:
    assert not any("restart" in argv for argv in docker.argvs)


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(compose_release) == []


def test_build_switch_and_up(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}")
    result = compose(app_root, new)
    assert "failed" not in result, result.get("msg")
    ref = f"{REPO}:{new}"
    image_id = docker.load()["images"][ref]
    assert result["changed"] is True and result["built"] is True
    assert result["switched"] is True and result["recreated"] is True
    assert result["release_id"] == new and result["previous_release"] == old
    assert result["image_ref"] == ref and result["image_id"] == image_id
    assert result["container_name"] == f"{PROJECT}-backend-aws-1"
    assert result["container_id"] != "c-old"
    assert os.readlink(app_root / "current") == f"releases/{new}"

    release_dir = str(app_root / "releases" / new)
    (build,) = compose_calls(docker, "build")
    assert build["cwd"] == release_dir
    assert build["argv"] == ["compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f",
                             OVERRIDE_NAME, "--profile", "aws", "build", "backend-aws"]
    (up,) = compose_calls(docker, "up")
    assert up["cwd"] == release_dir
    assert up["argv"][-4:] == ["up", "-d", "--no-build", "backend-aws"]
    assert_never_restart(docker)

    override = json.loads((app_root / "releases" / new / OVERRIDE_NAME).read_text())
    assert override == {"services": {"backend-aws": {"image": ref, "build": {"args": {
        "GIT_SHA": "abc123", "BUILD_TIME": "2026-11-24T10:15:00Z"}}}}}


def test_second_run_changes_nothing(app_root, releases, docker):
    _, new = releases
    compose(app_root, new)
    result = compose(app_root, new)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["built"] is False and result["switched"] is False
    assert result["recreated"] is False
    assert len(compose_calls(docker, "build")) == 1
    assert len(compose_calls(docker, "up")) == 2
    assert_never_restart(docker)


def test_existing_image_is_not_rebuilt(app_root, releases, docker):
    _, new = releases
    docker.state["images"][f"{REPO}:{new}"] = "sha256:prebuilt"
    docker.save()
    result = compose(app_root, new)
    assert result["built"] is False and result["image_id"] == "sha256:prebuilt"
    assert compose_calls(docker, "build") == []
    assert result["changed"] is True


def test_build_failure_shows_tail_and_touches_nothing(app_root, releases, docker):
    old, new = releases
    docker.add_container(id="c-old", image_id="sha256:old")
    lines = [f"#{i} step {i}" for i in range(50)] + ["ERROR: pip install failed"]
    docker.state["build"] = {"rc": 17, "output": "\n".join(lines)}
    docker.save()
    result = compose(app_root, new, build_log_lines=5)
    assert result["failed"] is True
    head, _, tail = result["msg"].partition("\n")
    assert head == (f"docker build for release {new} failed (exit 17); the running container "
                    "was not touched. Last lines:")
    assert tail.splitlines() == lines[-5:]
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert compose_calls(docker, "up") == []
    assert [c["id"] for c in docker.load()["containers"]] == ["c-old"]
    assert result["previous_release"] == old


def test_container_runs_wrong_image(app_root, releases, docker):
    _, new = releases
    docker.state["up"] = {"rc": 0, "wrong_image": "sha256:bogus"}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True
    image_id = docker.load()["images"][f"{REPO}:{new}"]
    assert result["msg"] == (f"container {PROJECT}-backend-aws-1 runs image sha256:bogus, "
                             f"expected {image_id} (release {new}); check the service's image "
                             "in the compose files")


def test_up_failure_reports_previous_for_rollback(app_root, releases, docker):
    old, new = releases
    docker.state["up"] = {"rc": 1, "output": "Error response from daemon: port is already "
                          "allocated"}
    docker.save()
    result = compose(app_root, new)
    assert result["failed"] is True and result["previous_release"] == old
    assert f"roll back with release_id={old}" in result["msg"]
    assert "port is already allocated" in result["msg"]


def test_rollback_to_previous_release(app_root, releases, docker):
    old, new = releases
    compose(app_root, new)
    result = compose(app_root, old)
    assert "failed" not in result, result.get("msg")
    assert result["previous_release"] == new and result["switched"] is True
    assert os.readlink(app_root / "current") == f"releases/{old}"


def test_check_mode_runs_nothing(app_root, releases, docker):
    old, new = releases
    result = compose(app_root, new, check_mode=True)
    assert result["changed"] is True
    assert result["would_build"] is True and result["would_activate"] is True
    assert result["built"] is False and result["switched"] is False
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert not (app_root / "releases" / new / OVERRIDE_NAME).exists()
    for argv in docker.argvs:
        assert argv[0] in ("ps", "inspect") or argv[:2] == ["image", "inspect"], argv


def test_check_mode_nothing_to_do(app_root, releases, docker):
    _, new = releases
    compose(app_root, new)
    result = compose(app_root, new, check_mode=True)
    assert result["changed"] is False
    assert result["would_build"] is False and result["would_activate"] is False


def test_release_not_unpacked(app_root, docker):
    rid = "20261124T101500Z-0123456789ab"
    result = compose(app_root, rid)
    assert result["failed"] is True
    assert result["msg"].startswith(f"release {rid} is not unpacked")
    assert docker.argvs == []


def test_bad_release_id(app_root, docker):
    result = compose(app_root, "latest")
    assert result["failed"] is True and "release_id must look like" in result["msg"]


def test_current_is_a_real_directory(app_root, docker):
    rid = install_release(app_root)
    (app_root / "current").mkdir()
    result = compose(app_root, rid)
    assert result["failed"] is True and "must be a symlink" in result["msg"]
    assert docker.argvs == []
