"""smoke_check waiting for the new container (compose_release wait_candidate=false), with the
fake `docker` first on PATH and real HTTP servers on 127.0.0.1; compose_release returning the
container without waiting for it.

The deploy starts the new container in one SSM session and checks it in the next: the app's
start-up (the real one sleeps 10 s, then boots gunicorn) runs while that session opens.
"""

from __future__ import annotations

import http.server
import time

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import zero_downtime
from ansible_collections.atp.deploy.plugins.modules import smoke_check

from . import test_compose_release_zero_downtime as zd
from .module_runner import run_module, serve_http
from .test_compose_release_zero_downtime import (
    NEW_NAME,
    OLD_NAME,
    REPO,
    backend,
    setup_docker,
    zd_compose,
)

dead_port = zd.dead_port  # fixtures shared with the compose_release tests
releases = zd.releases
health = zd.health

PROJECT = "automated-trading-platform"
CHECKS = [{"name": "health", "path": "/api/health", "expect_status": 200}]


class SlowStart(http.server.BaseHTTPRequestHandler):
    """503 until `ready_at` (monotonic), then 200: an app that is still starting."""
    ready_at = 0.0

    def do_GET(self):
        ready = time.monotonic() >= self.ready_at
        self.send_response(200 if ready else 503)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_app():
    """A server answering 503 for its first 1.5 s, then 200: its port."""
    with serve_http(type("Slow", (SlowStart,), {"ready_at": time.monotonic() + 1.5})) as port:
        yield port


def candidate(port: int, started_at: float, **extra) -> dict:
    """What compose_release returns as candidate with wait_candidate=false."""
    return {"id": "c-new", "name": NEW_NAME, "url": f"http://127.0.0.1:{port}",
            "upstream": f"{NEW_NAME}:{port}", "health_url": f"http://127.0.0.1:{port}/api/health",
            "started_at": started_at, "answering": False, "release_id": "20261201T000000Z-abc",
            "service": "backend-aws", **extra}


def smoke(port: int, cand: dict, **extra) -> dict:
    return run_module(smoke_check, {
        "base_url": f"http://127.0.0.1:{port}", "checks": CHECKS, "expected_routes": [],
        "timeout": 5, "interval": 0.05, "project_name": PROJECT, "service": "backend-aws",
        "candidate": cand, "candidate_timeout": 20, "candidate_log_lines": 5, **extra})


def new_container(docker, **extra) -> dict:
    container = docker.add_container(id="c-new", name=NEW_NAME, image_id="sha256:new",
                                     ports=[])
    container.update(extra)
    docker.save()
    return container


def test_the_checks_wait_for_a_starting_container_then_pass(docker, slow_app):
    new_container(docker)
    started_at = time.time() - 3.0  # started 3 s ago, in the task before
    result = smoke(slow_app, candidate(slow_app, started_at))
    assert "failed" not in result, result.get("msg")
    assert 1.0 <= result["candidate_waited"] < 10
    # from the container's start: the 3 s before this task plus what this task waited
    assert result["candidate_up"] >= 3.0 + result["candidate_waited"] - 0.5
    assert result["summary"][0] == "health: 200"


def test_a_candidate_that_exits_fails_at_once_with_its_log(docker, dead_port):
    new_container(docker, exit_in=2, exit_code=1)
    docker.state.setdefault("logs", {})[NEW_NAME] = "booting\nImportError: no module named boom"
    docker.save()
    started = time.monotonic()
    result = smoke(dead_port, candidate(dead_port, time.time()))
    assert time.monotonic() - started < 10  # not candidate_timeout (20 s)
    assert result.get("failed") is True and result["candidate_failed"] is True
    first, *tail = result["msg"].splitlines()
    assert first == (f"the new container of release 20261201T000000Z-abc ({NEW_NAME}) exited "
                     f"(code 1) before it answered http://127.0.0.1:{dead_port}/api/health")
    assert tail == ["  booting", "  ImportError: no module named boom"]
    assert result["results"] == []  # the checks never ran


def test_a_candidate_that_restarts_fails_at_once(docker, dead_port):
    new_container(docker, restart_count=1)
    result = smoke(dead_port, candidate(dead_port, time.time()))
    assert result.get("failed") is True
    assert "restarted 1 time(s) before it answered" in result["msg"]


def test_a_candidate_that_stays_silent_fails_after_candidate_timeout(docker, dead_port):
    new_container(docker)
    started = time.monotonic()
    result = smoke(dead_port, candidate(dead_port, time.time()), candidate_timeout=1)
    assert 1.0 <= time.monotonic() - started < 8
    assert result.get("failed") is True
    assert "did not answer" in result["msg"] and "within 1s (deploy_candidate_timeout)" \
        in result["msg"] and "last: no answer" in result["msg"]


def test_a_candidate_already_answering_is_not_waited_for(docker, dead_port):
    new_container(docker, running=False, exit_code=1)  # would fail a wait at once
    result = smoke(dead_port, candidate(dead_port, time.time(), answering=True),
                   timeout=0)
    assert "candidate_waited" not in result
    assert result.get("failed") is True
    assert "before it answered" not in result["msg"]  # the checks ran, not the wait
    assert result["results"][0]["name"] == "health"


def test_a_candidate_without_its_health_url_is_refused(docker, dead_port):
    cand = candidate(dead_port, time.time())
    del cand["health_url"]
    result = smoke(dead_port, cand)
    assert result.get("failed") is True
    assert result["msg"].startswith("candidate must be compose_release's candidate (id, name, "
                                    "health_url)")
    assert "pass compose_release_result.candidate" in result["msg"]


def test_compose_release_returns_the_candidate_without_waiting(app_root, releases, docker,
                                                                dead_port):
    """wait_candidate=false: started and returned while its health does not answer yet;
    nothing removed (the smoke checks wait for it)."""
    old, new = releases
    setup_docker(docker, dead_port)
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    started = time.monotonic()
    result = zd_compose(app_root, new, dead_port, wait_candidate=False, candidate_timeout=60)
    assert "failed" not in result, result.get("msg")
    assert time.monotonic() - started < 10
    cand = result["candidate"]
    assert cand["name"] == NEW_NAME and cand["answering"] is False
    assert cand["health_url"] == f"http://127.0.0.1:{dead_port}/api/health"
    assert cand["release_id"] == new and cand["service"] == "backend-aws"
    assert {c["name"]: c["running"] for c in backend(docker)} == {OLD_NAME: True, NEW_NAME: True}
    assert not any(a[:1] == ["rm"] for a in docker.argvs)


def test_compose_release_still_removes_a_candidate_that_exited_at_once(app_root, releases,
                                                                       docker, dead_port):
    old, new = releases
    setup_docker(docker, dead_port, candidate_exits=True,
                 logs={NEW_NAME: "ImportError: no module named boom"})
    docker.add_container(id="c-old", image_id="sha256:old", image=f"{REPO}:{old}",
                         ports=[dead_port])
    result = zd_compose(app_root, new, dead_port, wait_candidate=False)
    assert result.get("failed") is True
    assert "exited (code 1)" in result["msg"] and "never received traffic" in result["msg"]
    assert ["rm", "--force", NEW_NAME] in docker.argvs


@pytest.mark.parametrize(("state", "expected"), [
    (None, "exited (code gone) before it answered"),
    ({"running": False, "exit_code": 137}, "exited (code 137) before it answered"),
    ({"running": True, "restart_count": 2}, "restarted 2 time(s) before it answered"),
])
def test_wait_answering_says_what_happened_to_the_container(dead_port, state, expected):
    problem = zero_downtime.wait_answering(f"http://127.0.0.1:{dead_port}/h", 30, lambda: state)
    assert problem.startswith(expected), problem


def test_wait_answering_returns_none_once_it_answers(slow_app):
    polls = []
    problem = zero_downtime.wait_answering(f"http://127.0.0.1:{slow_app}/h", 20,
                                           lambda: polls.append(1) or {"running": True},
                                           interval=0.1)
    assert problem is None
    assert len(polls) >= 5  # 503 for 1.5 s: the container was looked at between tries


def test_wait_answering_refuses_an_answer_from_a_restarted_container(health):
    """Answering, but its restart policy already brought it back once: not the run that was
    started (a crash between two looks would otherwise pass unseen)."""
    port, _seen = health
    problem = zero_downtime.wait_answering(f"http://127.0.0.1:{port}/api/health", 20,
                                           lambda: {"running": True, "restart_count": 1})
    assert problem == (f"restarted 1 time(s) before it answered "
                       f"http://127.0.0.1:{port}/api/health")


def test_a_failed_candidate_reports_no_start_up_time(docker, dead_port):
    """The summary's 'new container up' is only for a container that answered."""
    new_container(docker, running=False, exit_code=3)
    result = smoke(dead_port, candidate(dead_port, time.time() - 5))
    assert result.get("failed") is True and "exited (code 3)" in result["msg"]
    assert "candidate_up" not in result and result["candidate_waited"] >= 0
    assert result["candidate_failed_after"] >= 5.0  # since its start, the 5 s before this task

