"""Tests of modules/traffic_switch.py: the zero-downtime switch, with a fake docker CLI, a real
HTTP server on 127.0.0.1 standing for the proxy's port, and the proxy's status file."""

from __future__ import annotations

import http.server
import json
import os

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import zero_downtime
from ansible_collections.atp.deploy.plugins.modules import traffic_switch

from .module_runner import FakeDocker, doc_spec_problems, run_module, serve_http

RID = "20261130T120000Z-aaaaaaaaaaaa"
OLD_RID = "20261129T120000Z-bbbbbbbbbbbb"
OLD = "automated-trading-platform-backend-aws-1"
NEW = "automated-trading-platform-backend-aws-2"


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def port():
    with serve_http(Health) as port:
        yield port


@pytest.fixture
def world(tmp_path, monkeypatch):
    app = tmp_path / "app"
    for rid in (RID, OLD_RID):
        (app / "releases" / rid).mkdir(parents=True)
    os.symlink(f"releases/{OLD_RID}", app / "current")
    pdir = app / "shared" / "proxy"
    pdir.mkdir(parents=True)
    docker = FakeDocker(tmp_path, monkeypatch)
    docker.add_container(id="old", name=OLD, ports=[])
    docker.add_container(id="new", name=NEW, ports=[], image_id="sha256:new")
    return {"app": app, "pdir": pdir, "docker": docker}


def args(world, port, **extra):
    return {"app_root": str(world["app"]), "release_id": RID, "port": port,
            "candidate": {"name": NEW, "upstream": f"{NEW}:8002"},
            "switch_timeout": 2, "drain_timeout": 1, "stop_timeout": 5, **extra}


def with_proxy(world, reported: str, active: dict | None = None):
    world["docker"].add_container(id="proxy", name=f"{OLD[:-2]}-proxy-1",
                                  service="backend-aws-proxy", ports=[8002])
    (world["pdir"] / "upstream").write_text(f"{OLD}:8002\n")
    (world["pdir"] / "status.json").write_text(json.dumps(
        {"upstream": reported, "active": active or {}}))


def test_documentation_matches_the_argument_spec():
    assert doc_spec_problems(traffic_switch) == []


def test_promote_moves_the_port_switches_current_and_stops_the_old_container(world, port):
    with_proxy(world, reported=f"{NEW}:8002")
    out = run_module(traffic_switch, args(world, port))
    assert out.get("failed") is not True, out
    assert out["switched"] and out["topology"] == "proxy"
    assert out["previous_upstream"] == f"{OLD}:8002" and out["upstream"] == f"{NEW}:8002"
    assert zero_downtime.read_upstream(str(world["pdir"] / "upstream")) == f"{NEW}:8002"
    assert os.readlink(world["app"] / "current") == f"releases/{RID}"
    assert out["stopped"] == [OLD] and out["gap_seconds"] == 0.0
    argvs = world["docker"].argvs
    assert ["stop", "-t", "5", OLD] in argvs and ["rm", "--force", OLD] in argvs
    assert not any(a[:1] == ["stop"] and NEW in a for a in argvs)


def test_open_connections_on_the_old_container_are_waited_for_bounded(world, port):
    with_proxy(world, reported=f"{NEW}:8002", active={f"{OLD}:8002": 2})
    out = run_module(traffic_switch, args(world, port, drain_timeout=1))
    assert out["switched"] and out["drained"]["open"] == 2 and out["drained"]["seconds"] >= 1


def test_a_switch_that_cannot_be_proven_goes_back_to_the_old_container(world, port):
    with_proxy(world, reported=f"{OLD}:8002")   # the proxy never takes the new upstream
    out = run_module(traffic_switch, args(world, port, switch_timeout=1))
    assert out["failed"] and "could not be proven" in out["msg"]
    assert "\n" not in out["msg"]
    assert zero_downtime.read_upstream(str(world["pdir"] / "upstream")) == f"{OLD}:8002"
    assert os.readlink(world["app"] / "current") == f"releases/{OLD_RID}"
    assert not any(a[:1] == ["stop"] for a in world["docker"].argvs)


def test_a_candidate_that_died_is_not_switched_to(world, port):
    with_proxy(world, reported=f"{NEW}:8002")
    state = world["docker"].load()
    for c in state["containers"]:
        if c["name"] == NEW:
            c["running"] = False
    world["docker"].save()
    out = run_module(traffic_switch, args(world, port))
    assert out["failed"] and "not running any more" in out["msg"]
    assert zero_downtime.read_upstream(str(world["pdir"] / "upstream")) == f"{OLD}:8002"


def test_discard_removes_a_candidate_but_never_the_serving_container(world, port):
    with_proxy(world, reported=f"{OLD}:8002")
    out = run_module(traffic_switch, args(world, port, action="discard"))
    assert out["removed"] == [NEW] and ["rm", "--force", NEW] in world["docker"].argvs
    out = run_module(traffic_switch, args(world, port, action="discard",
                                          candidate={"name": OLD, "upstream": f"{OLD}:8002"}))
    assert out["failed"] and "refusing to remove" in out["msg"]
    assert ["rm", "--force", OLD] not in world["docker"].argvs


def test_an_old_container_under_a_shell_pid1_gets_sigterm_on_its_app_first(world, port):
    """The real app runs `sh -c "sleep 10 && gunicorn ..."`: its PID 1 ignores docker stop's
    SIGTERM, so the app's processes get it directly (gunicorn stops gracefully at once)."""
    with_proxy(world, reported=f"{NEW}:8002")
    state = world["docker"].load()
    for c in state["containers"]:
        if c["name"] == OLD:
            c["cmd"] = ["sh", "-c", "sleep 10 && python3 -m gunicorn app.main:app"]
            c["stops_on_term"] = True
    world["docker"].save()
    out = run_module(traffic_switch, args(world, port))
    assert out["switched"] and out["terminated"] == [OLD] and out["stopped"] == [OLD]
    argvs = world["docker"].argvs
    term = ["exec", OLD, "sh", "-c", "kill -TERM -1 2>/dev/null; exit 0"]
    assert term in argvs and argvs.index(term) < argvs.index(["stop", "-t", "5", OLD])
    assert not any(a[:2] == ["exec", NEW] for a in argvs)


def test_an_exec_form_pid1_is_stopped_by_docker_stop_alone(world, port):
    with_proxy(world, reported=f"{NEW}:8002")
    out = run_module(traffic_switch, args(world, port))
    assert out["switched"] and "terminated" not in out
    assert not any(a[:1] == ["exec"] for a in world["docker"].argvs)


def test_converting_a_shell_pid1_container_that_holds_the_port_sigterms_its_app_first(world,
                                                                                      port):
    """The first zero-downtime deploy onto the hand-run topology: the old container publishes
    the port itself and runs the real app's `sh -c` command. Its app gets SIGTERM before
    docker stop, or the one gap of the conversion would last stop_timeout (then SIGKILL)."""
    state = world["docker"].load()
    for c in state["containers"]:
        if c["name"] == OLD:
            c.update(cmd=["sh", "-c", "sleep 10 && python3 -m gunicorn app.main:app"],
                     stops_on_term=True, ports=[port])
    state["services"] = {"backend-aws-proxy": {}}
    world["docker"].save()
    (world["pdir"] / "status.json").write_text(json.dumps(
        {"upstream": f"{NEW}:8002", "active": {}}))
    (world["app"] / "releases" / RID / "docker-compose.yml").write_text("services: {}\n")
    out = run_module(traffic_switch, args(world, port))
    assert out.get("failed") is not True, out
    assert out["switched"] and out["topology"] == "direct"
    assert out["terminated"] == [OLD]
    argvs = world["docker"].argvs
    term = ["exec", OLD, "sh", "-c", "kill -TERM -1 2>/dev/null; exit 0"]
    stop = ["stop", "-t", "5", OLD]
    assert term in argvs and stop in argvs and argvs.index(term) < argvs.index(stop)
    assert any(a[:1] == ["compose"] and "backend-aws-proxy" in a for a in argvs)
