"""Tests of the smoke_check module against a real local http.server in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import smoke
from ansible_collections.atp.deploy.plugins.modules import smoke_check

from .module_runner import doc_spec_problems, run_module

OPENAPI = {"openapi": "3.1.0", "paths": {
    "/health": {"get": {}},
    "/api/portfolio/snapshot": {"get": {}},
    "/api/echo": {"post": {}},
}}


class App:
    """Routes: path -> (status, body) or a callable(app) -> (status, body)."""

    def __init__(self):
        self.routes = {
            "/health": (200, {"status": "ok", "version": "1"}),
            "/api/portfolio/snapshot": (200, {"positions": [], "total": 0}),
            "/openapi.json": (200, OPENAPI),
        }
        self.hits: dict[str, int] = {}
        self.posted: list = []

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        self.hits[path] = self.hits.get(path, 0) + 1
        if method == "POST" and path == "/api/echo":
            self.posted.append(json.loads(body or b"null"))
            return 200, {"echo": self.posted[-1]}
        route = self.routes.get(path)
        if route is None:
            return 404, {"detail": "Not Found"}
        return route(self) if callable(route) else route


@pytest.fixture
def server():
    app = App()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            status, body = app.answer(method, self.path, self.rfile.read(length))
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply("GET")

        def do_POST(self):
            self._reply("POST")

        def log_message(self, *_args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    app.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield app
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HEALTH = {"name": "health", "path": "/health", "expect_json": {"status": "ok"}}
SNAPSHOT = {"name": "snapshot", "path": "/api/portfolio/snapshot",
            "expect_json_keys": ["positions", "total"]}


def run(base_url, checks=(), routes=(), timeout=5, interval=0.1) -> dict:
    return run_module(smoke_check, {"base_url": base_url, "checks": list(checks),
                                    "expected_routes": list(routes), "timeout": timeout,
                                    "interval": interval})


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(smoke_check) == []


def test_all_checks_pass(server):
    result = run(server.base_url, [HEALTH, SNAPSHOT], ["GET /api/portfolio/snapshot"])
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False and result["attempts"] == 1
    assert result["missing_routes"] == []
    assert [r["name"] for r in result["results"]] == ["health", "snapshot", "openapi routes"]
    first = result["results"][0]
    assert first["ok"] is True and first["status"] == 200 and first["hint"] == ""
    assert json.loads(first["body"]) == {"status": "ok", "version": "1"}


def test_post_check_sends_json(server):
    check = {"name": "echo", "method": "POST", "path": "/api/echo", "body": {"x": 1},
             "expect_json": {"echo": {"x": 1}}}
    result = run(server.base_url, [check])
    assert "failed" not in result and server.posted == [{"x": 1}]


def test_404_not_found_hint(server):
    result = run(server.base_url, [{"name": "orders", "path": "/api/orders"}], timeout=0)
    assert result["failed"] is True
    (only,) = result["results"]
    assert only["status"] == 404 and only["body"] == '{"detail": "Not Found"}'
    assert smoke.HINT_NOT_FOUND in only["hint"]
    assert result["msg"].splitlines()[1].startswith("orders: status 404, expected 200: route")


def test_503_snapshot_credentials_hint(server):
    server.routes["/api/portfolio/snapshot"] = (503, {"detail": "no credentials"})
    result = run(server.base_url, [HEALTH, SNAPSHOT], timeout=0)
    assert result["failed"] is True
    snap = result["results"][1]
    assert snap["ok"] is False and snap["status"] == 503
    assert "credentials not resolved: set EXCHANGE_CUSTOM_API_KEY/SECRET" in snap["hint"]
    assert result["results"][0]["ok"] is True
    lines = result["msg"].splitlines()
    assert lines[0].startswith("1 of 2 smoke checks failed against")
    assert len(lines) == 2 and lines[1].startswith("snapshot:")


def test_openapi_missing_routes(server):
    routes = ["GET /api/portfolio/snapshot", "GET /api/orders", "POST /health"]
    result = run(server.base_url, [HEALTH], routes, timeout=0)
    assert result["failed"] is True
    assert result["missing_routes"] == ["GET /api/orders", "POST /health"]
    openapi = result["results"][-1]
    assert openapi["name"] == "openapi routes" and openapi["ok"] is False
    assert "GET /api/orders, POST /health" in openapi["hint"]


def test_retries_until_ready(server):
    def warming(app):
        return (200, {"status": "ok"}) if app.hits["/health"] >= 3 else (503, "starting")

    server.routes["/health"] = warming
    result = run(server.base_url, [HEALTH], timeout=10, interval=0.05)
    assert "failed" not in result, result.get("msg")
    assert result["attempts"] == 3 and server.hits["/health"] == 3


def test_connection_refused_hint_and_bounded_timeout():
    port = free_port()
    started = time.monotonic()
    result = run(f"http://127.0.0.1:{port}", [HEALTH], ["GET /health"], timeout=1, interval=0.2)
    elapsed = time.monotonic() - started
    assert result["failed"] is True
    assert elapsed < 5 and result["attempts"] >= 2
    hint = result["results"][0]["hint"]
    assert f"nothing listening on {port}: the container is not running or crashed on start " \
           "(docker logs)" in hint
    assert result["results"][0]["status"] is None


def test_json_expectation_mismatch(server):
    server.routes["/health"] = (200, {"status": "degraded"})
    result = run(server.base_url, [HEALTH], timeout=0)
    assert result["failed"] is True
    assert result["results"][0]["hint"] == "key 'status' is 'degraded', expected 'ok'"


def test_bad_options(server):
    result = run(server.base_url, [{"path": "health"}])
    assert result["failed"] is True and "path must start with '/'" in result["msg"]
    result = run(server.base_url, [], ["GET"])
    assert result["failed"] is True and "expected route like" in result["msg"]
    result = run(server.base_url)
    assert result["failed"] is True and "nothing to check" in result["msg"]
    result = run("ftp://x", [HEALTH])
    assert result["failed"] is True and "base_url must be like" in result["msg"]


def test_a_crashing_container_ends_the_checks_before_the_timeout(docker):
    docker.state["containers"] = [{
        "id": "c1", "name": "atp-backend-aws-1", "image": "repo:rel", "image_id": "sha256:x",
        "running": False, "status": "restarting", "restart_count": 3, "exit_code": 1,
        "project": "atp", "service": "backend-aws", "ports": []}]
    docker.save()
    started = time.monotonic()
    result = run_module(smoke_check, {
        "base_url": f"http://127.0.0.1:{free_port()}", "checks": [HEALTH], "timeout": 30,
        "interval": 0.1, "project_name": "atp", "service": "backend-aws"})
    assert result["failed"] is True
    assert time.monotonic() - started < 10  # not the 30 s timeout
    assert result["msg"].splitlines()[1].startswith(
        "container atp-backend-aws-1 crashed on start (state restarting, restarted 3 times")


def test_a_container_still_starting_is_waited_for(docker):
    docker.state["containers"] = [{
        "id": "c1", "name": "atp-backend-aws-1", "image": "repo:rel", "image_id": "sha256:x",
        "running": True, "project": "atp", "service": "backend-aws", "ports": [8002]}]
    docker.save()
    result = run_module(smoke_check, {
        "base_url": f"http://127.0.0.1:{free_port()}", "checks": [HEALTH], "timeout": 1,
        "interval": 0.2, "project_name": "atp", "service": "backend-aws"})
    assert result["failed"] is True and result["attempts"] >= 3
    assert "atp-backend-aws-1 crashed on start" not in result["msg"]
