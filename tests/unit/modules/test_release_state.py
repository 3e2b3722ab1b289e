"""Tests of the release_state module with a fake `docker` first on PATH."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible_collections.atp.deploy.plugins.modules import release_state

from .module_runner import (
    FakeDocker,
    doc_spec_problems,
    install_release,
    run_module,
    warnings_of,
)

REPO = "automated-trading-platform-backend-aws"
READ_ONLY = {"info", "ps", "inspect", ("compose", "version"), ("image", "inspect")}


@pytest.fixture
def docker(tmp_path, monkeypatch):
    return FakeDocker(tmp_path, monkeypatch)


@pytest.fixture
def app_root(tmp_path):
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    (root / "shared").mkdir()
    return root


def content_hash_of(rid: str) -> str:
    return rid[-12:] + "0" * 52


def state(app_root, content_hash="ab" * 32, **extra) -> dict:
    return run_module(release_state, {"app_root": str(app_root), "content_hash": content_hash,
                                      **extra})


def assert_read_only(docker: FakeDocker) -> None:
    for argv in docker.argvs:
        assert argv[0] in READ_ONLY or tuple(argv[:2]) in READ_ONLY, argv


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(release_state) == []


def test_fresh_instance_plans_everything(tmp_path, docker):
    result = state(tmp_path / "absent-app-root")
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["plan"] == {"upload": True, "release_id": None, "env": False, "build": True,
                              "activate": True}
    assert result["docker_version"] == "26.1.5" and result["compose_version"] == "2.26.1"
    assert result["releases"] == [] and result["current_release"] is None
    assert result["previous_release"] is None and result["existing_release"] is None
    assert result["image"] == {"ref": None, "exists": False, "id": None}
    assert result["containers"] == [] and result["port_publishers"] == []
    assert result["free_mb"] > 0
    assert_read_only(docker)


def test_everything_in_place_plans_nothing(app_root, docker):
    rid = install_release(app_root, current=True)
    docker.state["images"][f"{REPO}:{rid}"] = "sha256:rel"
    docker.save()
    docker.add_container(id="c1", image_id="sha256:rel", image=f"{REPO}:{rid}")
    env = b"A=1\n"
    (app_root / "shared" / ".env").write_bytes(env)
    result = state(app_root, content_hash_of(rid),
                   env_digests={".env": hashlib.sha256(env).hexdigest()})
    assert result["plan"] == {"upload": False, "release_id": rid, "env": False, "build": False,
                              "activate": False}
    assert result["current_release"] == rid and result["existing_release"] == rid
    assert result["image"] == {"ref": f"{REPO}:{rid}", "exists": True, "id": "sha256:rel"}
    assert result["containers"] == [{
        "id": "c1", "name": "automated-trading-platform-backend-aws-1",
        "image": f"{REPO}:{rid}", "image_id": "sha256:rel", "state": "running",
        "running": True}]
    assert result["env_in_sync"] is True and result["env_files"] == {".env": True}
    assert result["releases"] == [{"id": rid, "content_hash": rid[-12:], "complete": True,
                                   "partial": False}]
    assert_read_only(docker)


def test_release_on_disk_not_current_image_missing_stale_container(app_root, docker):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    rid = install_release(app_root)
    docker.add_container(image_id="sha256:old")
    result = state(app_root, content_hash_of(rid))
    assert result["plan"] == {"upload": False, "release_id": rid, "env": False, "build": True,
                              "activate": True}
    assert result["current_release"] == old
    assert result["previous_release"] is None


def test_env_out_of_sync(app_root, docker):
    (app_root / "shared" / ".env").write_text("A=1\n")
    result = state(app_root, env_digests={".env": "0" * 64, ".env.aws": "1" * 64})
    assert result["plan"]["env"] is True and result["plan"]["activate"] is True
    assert result["env_in_sync"] is False
    assert result["env_files"] == {".env": False, ".env.aws": False}


def test_partial_and_foreign_dirs(app_root, docker):
    rid = install_release(app_root)
    (app_root / "releases" / (rid + ".partial")).mkdir()
    (app_root / "releases" / "notes").mkdir()
    no_manifest = "20261125T000000Z-" + rid[-12:]
    (app_root / "releases" / no_manifest).mkdir()
    result = state(app_root, content_hash_of(rid))
    assert [(r["id"], r["complete"], r["partial"]) for r in result["releases"]] == [
        (rid, True, False), (rid, False, True), (no_manifest, False, False)]
    assert result["existing_release"] == rid


def test_previous_release_from_deploy_log(app_root, docker):
    first = install_release(app_root, {"a": "1\n"}, "2026-11-01T00:00:00")
    second = install_release(app_root, {"a": "2\n"}, "2026-11-02T00:00:00")
    third = install_release(app_root, {"a": "3\n"}, "2026-11-03T00:00:00", current=True)
    log = [{"release": first, "result": "ok"}, {"release": second, "result": "failed"},
           {"release": third, "result": "ok"}]
    (app_root / "deploy.log").write_text("".join(json.dumps(r) + "\n" for r in log))
    assert state(app_root)["previous_release"] == first
    (app_root / "deploy.log").unlink()
    assert state(app_root)["previous_release"] == second


def test_two_port_publishers_warn(app_root, docker):
    docker.add_container(id="c1", image_id="sha256:a")
    docker.add_container(id="c2", name="stray-backend", image="old:latest", project="other",
                         service="web", image_id="sha256:b")
    result = state(app_root)
    assert [c["id"] for c in result["containers"]] == ["c1"]
    assert [p["name"] for p in result["port_publishers"]] == [
        "automated-trading-platform-backend-aws-1", "stray-backend"]
    assert any("2 containers publish host port 8002" in w for w in warnings_of(result))


def test_docker_engine_down(app_root, docker):
    docker.state["info"] = {"rc": 1, "stderr": "Cannot connect to the Docker daemon at "
                            "unix:///var/run/docker.sock. Is the docker daemon running?\nmore"}
    docker.save()
    result = state(app_root)
    assert result["failed"] is True
    assert result["msg"] == (
        "docker engine not reachable on the instance: `docker info` failed: Cannot connect to "
        "the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?; "
        "start docker (systemctl start docker)")


@pytest.mark.parametrize(("compose", "seen"), [
    ({"rc": 0, "version": "2.17.3"}, "gave: Docker Compose version v2.17.3;"),
    ({"rc": 1}, "gave: docker: unknown command: docker compose;"),
])
def test_compose_v2_required(app_root, docker, compose, seen):
    docker.state["compose"] = compose
    docker.save()
    result = state(app_root)
    assert result["failed"] is True
    assert result["msg"].startswith("docker compose v2 >= 2.18 required on the instance")
    assert seen in result["msg"]
    assert "\n" not in result["msg"]


def test_app_root_problems(tmp_path, docker):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = state(afile)
    assert result["failed"] is True and "is a file" in result["msg"]
    result = state(tmp_path / "no" / "such" / "root")
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_low_disk(app_root, docker):
    result = state(app_root, min_free_mb=10**12)
    assert result["failed"] is True
    assert "not enough free disk" in result["msg"] and "expected >= 1000000000000 MiB" in \
        result["msg"]


def test_bad_inputs(app_root, docker):
    result = state(app_root, content_hash="xyz")
    assert result["failed"] is True and "content_hash must be a sha256 hex" in result["msg"]
    result = state(app_root, env_digests={"../.env": "0" * 64})
    assert result["failed"] is True and "plain file names" in result["msg"]


def test_check_mode_same_answer(app_root, docker):
    result = run_module(release_state, {"app_root": str(app_root), "content_hash": "ab" * 32},
                        check_mode=True)
    assert result["changed"] is False and result["plan"]["upload"] is True
