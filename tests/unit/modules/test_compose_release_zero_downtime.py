"""Tests of compose_release with zero_downtime=true, with the fake `docker` first on PATH.

The new container's address is 127.0.0.1 (fake state ``candidate_ip``) and a real HTTP server
on 127.0.0.1 answers its health path: the server's port is the service's published AND target
port in the compose model the fake prints, and the module's `port`.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import time

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import zero_downtime
from ansible_collections.atp.deploy.plugins.module_utils.docker_cmd import OVERRIDE_NAME
from ansible_collections.atp.deploy.plugins.modules import compose_release

from .module_runner import install_release, run_module, serve_http
from .test_compose_release import PROJECT, REPO, backend_ups, compose_calls

OLD_NAME = f"{PROJECT}-backend-aws-1"
NEW_NAME = f"{PROJECT}-backend-aws-2"
PROXY_SERVICE = "backend-aws-proxy"


class Health(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def health():
    """A real HTTP server on 127.0.0.1 answering GET /api/health: (port, paths it was asked)."""
    seen: list[str] = []
    with serve_http(type("RecordingHealth", (Health,), {"seen": seen})) as port:
        yield port, seen


@pytest.fixture
def dead_port():
    """A port on 127.0.0.1 bound but not listening: connections are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def releases(app_root):
    old = install_release(app_root, {"docker-compose.yml": "old\n"}, "2026-11-01T00:00:00",
                          current=True)
    new = install_release(app_root)
    return old, new


def config_for(port: int, published: bool = True) -> dict:
    """The compose model (`config --format json`): backend-aws publishing port -> port."""
    svc: dict = {"image": REPO, "networks": {"default": None}, "profiles": ["aws"]}
    if published:
        svc["ports"] = [{"target": port, "published": str(port), "mode": "ingress",
                         "protocol": "tcp"}]
    return {"services": {"backend-aws": svc}}


def setup_docker(docker, port: int, published: bool = True, **state) -> None:
    docker.state["config"] = config_for(port, published)
    docker.state.update(state)
    docker.save()


def zd_compose(app_root, rid, port, **extra) -> dict:
    params = {"app_root": str(app_root), "release_id": rid, "git_sha": "abc123",
              "build_time": "2026-11-24T10:15:00Z", "zero_downtime": True, "port": port,
              "candidate_timeout": 5, "command_timeout": 30, "expected_routes": [], **extra}
    return run_module(compose_release, params)


def backend(docker) -> list[dict]:
    return [c for c in docker.load()["containers"] if c.get("service") == "backend-aws"]


def scale_ups(docker) -> list[list[str]]:
    return [a for a in docker.argvs if a[:1] == ["compose"] and "--scale" in a]


def override_doc(app_root, rid) -> tuple[str, dict]:
    text = (app_root / "releases" / rid / OVERRIDE_NAME).read_text()
    return text, json.loads(text.replace("!reset []", "[]"))


def test_the_release_starts_beside_the_serving_container_and_is_returned(
        app_root, releases, docker, health):
    port, seen = health
    old, new = releases
    setup_docker(docker, port)
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[port])
    before = time.time()
    result = zd_compose(app_root, new, port)
    assert "failed" not in result, result.get("msg")
    image_id = docker.load()["images"][f"{REPO}:{new}"]
    assert result["changed"] is True and result["built"] is True
    started_at = result["candidate"].pop("started_at")
    assert before <= started_at <= time.time()
    assert result["candidate"] == {"id": result["container_id"], "name": NEW_NAME,
                                   "url": f"http://127.0.0.1:{port}",
                                   "upstream": f"{NEW_NAME}:{port}",
                                   "health_url": f"http://127.0.0.1:{port}/api/health",
                                   "answering": True, "release_id": new,
                                   "service": "backend-aws"}
    assert result["old_containers"] == [OLD_NAME]
    assert result["topology"] == "direct"
    assert "/api/health" in seen                       # the candidate was really asked
    # what the deploy waited for, step by step (the summary's "waited" line)
    assert set(result["timings"]) == {"build", "route_gate", "dependencies", "candidate"}
    assert all(isinstance(v, float) and v >= 0 for v in result["timings"].values())

    # traffic is not switched: current, the old container as they were
    assert result["switched"] is False
    assert os.readlink(app_root / "current") == f"releases/{old}"
    containers = {c["name"]: c for c in backend(docker)}
    assert containers[OLD_NAME]["id"] == "c-old" and containers[OLD_NAME]["running"] is True
    assert containers[OLD_NAME]["image_id"] == "sha256:old"
    assert containers[NEW_NAME]["running"] is True
    assert containers[NEW_NAME]["image_id"] == image_id
    assert containers[NEW_NAME]["ports"] == []         # the override reset its host ports

    # the override: no host port for the app, the proxy takes the config's ports
    text, doc = override_doc(app_root, new)
    assert '"ports": !reset []' in text
    assert doc["services"]["backend-aws"]["ports"] == []
    assert doc["services"][PROXY_SERVICE]["ports"] == config_for(port)["services"][
        "backend-aws"]["ports"]
    assert doc["services"][PROXY_SERVICE]["image"] == f"{REPO}:proxy"
    assert docker.load()["images"][f"{REPO}:proxy"] == image_id
    pdir = app_root / "shared" / "proxy"
    assert (pdir / zero_downtime.SCRIPT_NAME).is_file()
    assert pdir.stat().st_uid == zero_downtime.PROXY_UID

    # started with one more container, never recreating or restarting anything
    (scale,) = scale_ups(docker)
    assert "--no-recreate" in scale and "--no-deps" in scale
    assert scale[scale.index("--scale") + 1] == "backend-aws=2" and scale[-1] == "backend-aws"
    assert [a for a in docker.argvs if a[:1] == ["compose"] and "up" in a] == [scale]
    (config,) = compose_calls(docker, "config")
    assert config["cwd"] == str(app_root / "releases" / new)
    assert not any("restart" in argv for argv in docker.argvs)
    assert not any(a[:1] in (["rm"], ["stop"]) for a in docker.argvs)


def test_a_candidate_that_exits_before_answering_is_removed(
        app_root, releases, docker, dead_port):
    old, new = releases
    setup_docker(docker, dead_port, candidate_exits=True)
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    result = zd_compose(app_root, new, dead_port)
    assert result.get("failed") is True
    assert "never received traffic" in result["msg"] and NEW_NAME in result["msg"]
    assert_candidate_discarded(app_root, docker, old, result)


def assert_candidate_discarded(app_root, docker, old: str, result: dict) -> None:
    """The new container removed; current, the old container and traffic as they were."""
    assert ["rm", "--force", NEW_NAME] in docker.argvs
    assert result["candidate"] is None and result["switched"] is False
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert [(c["id"], c["name"], c["running"]) for c in backend(docker)] == [
        ("c-old", OLD_NAME, True)]
    assert not any(a[:1] in (["rm"], ["stop"]) and OLD_NAME in a for a in docker.argvs)
    assert not any("restart" in argv for argv in docker.argvs)


def test_a_candidate_that_exits_while_waited_for_fails_fast_with_its_logs(
        app_root, releases, docker, dead_port):
    old, new = releases
    # running (with its address) at the first inspect after the scale-up, exited at the next
    setup_docker(docker, dead_port, candidate_exits=1,
                 logs={NEW_NAME: "booting\nImportError: no module named boom"})
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    started = time.monotonic()
    result = zd_compose(app_root, new, dead_port, candidate_timeout=60)
    assert time.monotonic() - started < 20          # failed fast, not at candidate_timeout
    assert result.get("failed") is True
    assert "never received traffic" in result["msg"]
    assert f"({NEW_NAME}) exited (code 1) before it answered " \
           f"http://127.0.0.1:{dead_port}/api/health" in result["msg"]
    assert "ImportError: no module named boom" in result["msg"]
    assert_candidate_discarded(app_root, docker, old, result)
    assert result["timings"]["candidate"] >= 0  # timed although it failed inside the step


def test_a_candidate_that_exited_at_once_is_reported_as_exited(
        app_root, releases, docker, dead_port):
    old, new = releases
    setup_docker(docker, dead_port, candidate_exits=True,
                 logs={NEW_NAME: "ImportError: no module named boom"})
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    result = zd_compose(app_root, new, dead_port)
    assert result.get("failed") is True
    assert "exited (code 1)" in result["msg"]
    assert "ImportError: no module named boom" in result["msg"]


def test_a_service_that_does_not_publish_the_port_is_refused_before_the_build(
        app_root, releases, docker, dead_port):
    old, new = releases
    setup_docker(docker, dead_port, published=False)
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    result = zd_compose(app_root, new, dead_port)
    assert result.get("failed") is True
    assert "\n" not in result["msg"]
    assert "deploy_zero_downtime=false" in result["msg"] and str(dead_port) in result["msg"]
    assert len(compose_calls(docker, "config")) == 1
    assert compose_calls(docker, "build") == [] and compose_calls(docker, "up") == []
    assert compose_calls(docker, "run") == []
    assert not (app_root / "releases" / new / OVERRIDE_NAME).exists()
    assert os.readlink(app_root / "current") == f"releases/{old}"
    assert [(c["id"], c["running"]) for c in backend(docker)] == [("c-old", True)]


def test_a_settled_proxy_topology_changes_nothing(app_root, docker, health):
    port, seen = health
    rid = install_release(app_root, current=True)
    ref = f"{REPO}:{rid}"
    setup_docker(docker, port)
    docker.state["images"][ref] = "sha256:release"
    docker.state["images"][f"{REPO}:proxy"] = "sha256:release"
    docker.save()
    docker.add_container(id="c-app", name=OLD_NAME, image=ref, image_id="sha256:release",
                         ports=[])
    docker.add_container(id="c-proxy", name=f"{PROJECT}-{PROXY_SERVICE}-1",
                         service=PROXY_SERVICE, image=f"{REPO}:proxy",
                         image_id="sha256:release", ports=[port])
    pdir = app_root / "shared" / "proxy"
    pdir.mkdir(parents=True)
    (pdir / zero_downtime.UPSTREAM_NAME).write_text(zero_downtime.upstream_text(OLD_NAME, port))
    result = zd_compose(app_root, rid, port)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False
    assert result["candidate"] is None and result["old_containers"] == []
    assert result["topology"] == "proxy" and result["recreated"] is False
    assert result["container_id"] == "c-app" and result["container_name"] == OLD_NAME
    assert result["route_gate"]["checked"] is False
    assert set(result["timings"]) == {"dependencies", "candidate"}  # no build, no gate
    assert backend_ups(docker) == [] and compose_calls(docker, "up") == []
    assert compose_calls(docker, "build") == []
    assert not any(a[:1] in (["rm"], ["stop"], ["tag"]) for a in docker.argvs)
    assert seen == []
    assert [(c["id"], c["running"]) for c in docker.load()["containers"]] == [
        ("c-app", True), ("c-proxy", True)]
