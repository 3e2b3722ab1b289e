"""Tests of the smoke_check module against a real local http.server (127.0.0.1) in a thread.

The default checks are read from roles/smoke_check/defaults/main.yml, so the role's defaults
are tested against an app that keeps the real contract.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from ansible_collections.atp.deploy.plugins.module_utils import routes, smoke
from ansible_collections.atp.deploy.plugins.modules import smoke_check

from .module_runner import FakeDocker, doc_spec_problems, run_module, warnings_of

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[3] / "roles" / "smoke_check"
                           / "defaults" / "main.yml").read_text())
CHECKS = DEFAULTS["smoke_check_checks"]
ROUTES = list(routes.EXPECTED_ROUTES)
SNAPSHOT_PATH = "/api/portfolio/snapshot?exchange=CRYPTO_COM"
ADMIN_KEY = "admin-key-value-never-shown"


def openapi(extra: int) -> dict:
    """The expected routes plus `extra` more, each with a long description (real-app sized)."""
    paths: dict = {}
    for route in ROUTES:
        method, path = route.split()
        paths.setdefault(path, {})[method.lower()] = {"summary": route}
    for i in range(extra):
        paths[f"/api/generated/route_{i:04d}/{{item_id}}"] = {"get": {
            "summary": f"route {i}", "description": "d" * 400,
            "parameters": [{"name": "item_id", "in": "path", "required": True}]}}
    return {"openapi": "3.1.0", "info": {"title": "atp"}, "paths": paths}


def snapshot(ok=True, message="", missing_env=(), errors=()) -> dict:
    positions = [] if not ok else [
        {"asset": f"A{i}", "free": 1.0, "locked": 0.0, "total": 1.0, "price_usd": 1.0,
         "value_usd": 1.0, "source": "balance"} for i in range(17)]
    total = 9386.94 if ok else 0.0
    return {"ok": ok, "as_of": time.strftime("%Y-%m-%dT%H:%M:%S+00:00"),  # changes each time
            "exchange": "CRYPTO_COM", "message": message, "missing_env": list(missing_env),
            "positions": positions,
            "totals": {"total_value_usd": total, "total_assets_usd": total + 2500.0,
                       "total_borrowed_usd": 2500.0, "total_collateral_usd": total + 2500.0},
            "errors": list(errors)}


MISSING_CREDENTIALS = {"message": "Missing API credentials", "ok": False,
                       "missing_env": ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]}


class App:
    """Routes: path (with query) -> (status, body) or a callable(app, headers) -> (status, body)."""

    def __init__(self):
        self.routes = {
            "/api/health": (200, {"status": "ok", "path": "/api/health"}),
            "/ping_fast": (200, {"ok": True}),
            SNAPSHOT_PATH: lambda app, headers: (200, snapshot()),
            "/api/portfolio/latest": (200, {"ok": True, "snapshot": None}),
            "/api/dashboard/state": (200, {"portfolio": {}}),
            "/openapi.json": (200, openapi(107)),
        }
        self.hits: dict[str, int] = {}
        self.posted: list = []
        self.headers: list = []

    def answer(self, method: str, path: str, body: bytes, headers) -> tuple[int, object]:
        self.hits[path] = self.hits.get(path, 0) + 1
        self.headers.append(dict(headers))
        if method == "POST" and path == "/api/portfolio/refresh":
            if headers.get("X-Admin-Key") != ADMIN_KEY:
                return 403, {"detail": "Forbidden"}
            self.posted.append(json.loads(body or b"null"))
            return 200, {"refreshed": self.posted[-1]}
        route = self.routes.get(path)
        if route is None:
            return 404, {"detail": "Not Found"}
        return route(self, headers) if callable(route) else route


@pytest.fixture
def server():
    app = App()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            status, body = app.answer(method, self.path, self.rfile.read(length), self.headers)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a per-check timeout test)
                pass

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


def run(base_url, checks=(), routes=(), timeout=5, interval=0.05, **extra) -> dict:
    return run_module(smoke_check, {"base_url": base_url, "checks": list(checks),
                                    "expected_routes": list(routes), "timeout": timeout,
                                    "interval": interval, **extra})


def by_name(result: dict) -> dict:
    return {r["name"]: r for r in result["results"]}


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(smoke_check) == []


# --------------------------------------------------------------------------- the contract

def test_role_defaults_pass_against_the_real_contract(server):
    result = run(server.base_url, CHECKS, ROUTES)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is False and result["attempts"] == 1
    assert result["stopped"] == "passed" and result["warning_lines"] == []
    assert result["summary"] == [
        "health: 200 ok",
        "ping_fast: 200",
        "snapshot: ok, 17 positions, total 9386.94",
        "latest: 200",
        "dashboard: 200",
        "routes: 112 registered, 5/5 expected",
    ]
    assert result["routes_registered"] == 112 and result["missing_routes"] == []
    assert result["error_log"] is None  # no project/service given
    first = result["results"][0]
    assert (first["ok"], first["kind"], first["status"], first["hint"], first["identical"]) \
        == (True, "pass", 200, "", 0)


def test_the_old_sample_shape_fails_the_defaults(server):
    server.routes[SNAPSHOT_PATH] = (200, {"assets": [], "total_value_usd": 1.0})
    started = time.monotonic()
    result = run(server.base_url, CHECKS, ROUTES, timeout=30)
    assert result["failed"] is True and time.monotonic() - started < 5
    assert "snapshot: 200 ok missing (expected true), keys missing: ok, as_of" in \
        result["summary"][2]


def test_missing_credentials_fail_with_that_reason_after_three_identical_answers(server):
    server.routes[SNAPSHOT_PATH] = lambda app, headers: (200, snapshot(**MISSING_CREDENTIALS))
    started = time.monotonic()
    result = run(server.base_url, CHECKS, ROUTES, timeout=60, allow_exchange_unreachable=True)
    elapsed = time.monotonic() - started
    assert result["failed"] is True and result["stopped"] == "identical"
    assert elapsed < 5 and result["attempts"] == 3 and server.hits[SNAPSHOT_PATH] == 3
    line = ('snapshot: ok=false "Missing API credentials" (missing_env: EXCHANGE_CUSTOM_API_KEY, '
            "EXCHANGE_CUSTOM_API_SECRET)")
    assert line in result["summary"]
    msg = result["msg"]
    assert "\n" not in msg
    assert msg.startswith('smoke check "snapshot" failed: ok=false "Missing API credentials" '
                          "(missing_env: EXCHANGE_CUSTOM_API_KEY, EXCHANGE_CUSTOM_API_SECRET) "
                          "(3 identical answers): the app has no exchange credentials")
    assert by_name(result)["snapshot"]["identical"] == 3


def test_unreachable_exchange_fails_by_default(server):
    body = {"ok": False, "message": "Exchange unreachable: ConnectTimeout",
            "errors": ["ConnectTimeout api.crypto.com"]}
    server.routes[SNAPSHOT_PATH] = lambda app, headers: (200, snapshot(**body))
    result = run(server.base_url, CHECKS, ROUTES, timeout=1, interval=0.1)
    assert result["failed"] is True
    assert result["stopped"] == "timeout" and result["attempts"] >= 3  # waited: it can change
    assert result["summary"][2] == ('snapshot: ok=false "Exchange unreachable: ConnectTimeout" '
                                    "(errors: ConnectTimeout api.crypto.com)")
    assert "-e deploy_allow_exchange_unreachable=true" in result["msg"]
    assert result["msg"].endswith("(no pass before smoke_timeout)")


def test_unreachable_exchange_is_a_warning_when_allowed(server):
    body = {"ok": False, "message": "Exchange unreachable: ConnectTimeout"}
    server.routes[SNAPSHOT_PATH] = lambda app, headers: (200, snapshot(**body))
    result = run(server.base_url, CHECKS, ROUTES, allow_exchange_unreachable=True)
    assert "failed" not in result, result.get("msg")
    line = ('snapshot: WARNING ok=false "Exchange unreachable: ConnectTimeout" -- '
            f"{smoke.WARNING_UNREACHABLE}")
    assert result["summary"][2] == line
    assert result["warning_lines"] == [line.replace("WARNING ", "")]
    assert any("Exchange unreachable" in w for w in warnings_of(result))
    assert by_name(result)["snapshot"]["kind"] == "warning"


def test_nested_values_and_keys(server):
    check = {"name": "snap", "path": SNAPSHOT_PATH,
             "expect_json": {"totals.total_borrowed_usd": 2500.0, "positions.0.asset": "A0"},
             "expect_json_keys": ["totals.total_value_usd", "positions.16.source"]}
    assert "failed" not in run(server.base_url, [check])
    check["expect_json_keys"] = ["totals.total_value_usd", "totals.fees_usd"]
    check["expect_json"] = {"totals.total_borrowed_usd": 0}
    result = run(server.base_url, [check], timeout=30)
    assert result["failed"] is True and result["stopped"] == "identical"
    assert result["summary"] == ["snap: 200 totals.total_borrowed_usd=2500.0 (expected 0), "
                                 "keys missing: totals.fees_usd"]


def test_not_5xx(server):
    latest = next(c for c in CHECKS if c["name"] == "latest")
    server.routes["/api/portfolio/latest"] = (404, {"detail": "no snapshot yet"})
    assert run(server.base_url, [latest])["summary"] == ["latest: 404"]
    server.routes["/api/portfolio/latest"] = (500, "Internal Server Error")
    result = run(server.base_url, [latest], timeout=30)
    assert result["failed"] is True and result["attempts"] == 3
    assert result["summary"] == ["latest: 500 Internal Server Error (expected any status but 5xx)"]
    assert "the app raised an error" in result["msg"]


def test_post_with_headers_and_body_and_secret_header_never_shown(server):
    refresh = {"name": "refresh", "method": "POST", "path": "/api/portfolio/refresh",
               "headers": {"X-Admin-Key": ADMIN_KEY}, "body": {"force": True},
               "expect_json": {"refreshed.force": True}}
    result = run(server.base_url, [refresh])
    assert "failed" not in result, result.get("msg")
    assert server.posted == [{"force": True}]
    assert server.headers[-1]["X-Admin-Key"] == ADMIN_KEY
    assert ADMIN_KEY not in json.dumps(result)
    forbidden = run(server.base_url, [{**refresh, "headers": {}, "expect_status": 403,
                                       "expect_json": {}}])
    assert forbidden["summary"] == ["refresh: 403"]


# --------------------------------------------------------------------------- whole bodies

def test_a_200_kb_openapi_document_parses(server):
    server.routes["/openapi.json"] = (200, openapi(450))
    size = len(json.dumps(server.routes["/openapi.json"][1]))
    assert size > 200 * 1024
    result = run(server.base_url, [], ROUTES)
    assert "failed" not in result, result.get("msg")
    assert result["summary"] == ["routes: 455 registered, 5/5 expected"]


def test_a_body_over_the_limit_fails_with_a_clear_reason(server):
    server.routes["/openapi.json"] = (200, openapi(30))
    result = run(server.base_url, [], ROUTES, timeout=30, max_body_bytes=4096)
    assert result["failed"] is True and result["stopped"] == "identical"
    assert result["summary"] == ["routes: /openapi.json larger than 4096 bytes"]
    assert "smoke_check_max_body_bytes" in result["msg"]


def test_missing_routes_are_named(server):
    doc = openapi(10)
    del doc["paths"]["/api/portfolio/snapshot"]
    server.routes["/openapi.json"] = (200, doc)
    result = run(server.base_url, [], ROUTES, timeout=30)
    assert result["failed"] is True and result["missing_routes"] == ["GET /api/portfolio/snapshot"]
    assert result["summary"] == ["routes: 14 registered, 4/5 expected, missing GET "
                                 "/api/portfolio/snapshot"]


# --------------------------------------------------------------------------- retrying

def test_a_deterministic_404_stops_after_three_tries(server):
    del server.routes[SNAPSHOT_PATH]
    started = time.monotonic()
    result = run(server.base_url, CHECKS, ROUTES, timeout=90, interval=0.2)
    elapsed = time.monotonic() - started
    assert result["failed"] is True and result["stopped"] == "identical"
    assert result["attempts"] == 3 and elapsed < 5  # not the 90 s
    msg = result["msg"]
    assert msg.startswith('smoke check "snapshot" failed: 404 {"detail":"Not Found"} (expected '
                          "200) (3 identical answers): route not registered")
    assert "[GET /api/portfolio/snapshot?exchange=CRYPTO_COM] -- 3 attempts in" in msg
    assert "\n" not in msg


def test_answers_that_can_change_are_retried_until_ready(server):
    def warming(app, headers):
        hits = app.hits["/api/health"]
        return (200, {"status": "ok"}) if hits >= 5 else (503 if hits % 2 else 502, "starting")

    server.routes["/api/health"] = warming
    result = run(server.base_url, CHECKS[:1], timeout=10)
    assert "failed" not in result, result.get("msg")
    assert result["attempts"] == 5


def test_different_wrong_answers_are_not_identical(server):
    def changing(app, headers):
        return 200, {"status": f"starting-{app.hits['/api/health']}"}

    server.routes["/api/health"] = changing
    result = run(server.base_url, CHECKS[:1], timeout=1, interval=0.1)
    assert result["failed"] is True and result["stopped"] == "timeout"
    assert result["attempts"] > 3


def test_connection_refused_is_retried_until_the_timeout():
    port = free_port()
    started = time.monotonic()
    result = run(f"http://127.0.0.1:{port}", CHECKS[:1], ["GET /api/health"], timeout=1,
                 interval=0.2)
    assert result["failed"] is True and result["stopped"] == "timeout"
    assert time.monotonic() - started < 5 and result["attempts"] >= 3
    health = result["results"][0]
    assert health["status"] is None and health["kind"] == "transient"
    assert f"nothing listening on {port}" in health["hint"]
    assert result["msg"].startswith('2 smoke checks failed: "health": no answer (refused)')


def test_per_check_timeout(server):
    def slow(app, headers):
        time.sleep(2.0)
        return 200, {"status": "ok"}

    server.routes["/api/slow"] = slow
    quick = {"name": "quick", "path": "/api/slow", "timeout": 0.2}
    patient = {"name": "patient", "path": "/api/slow", "timeout": 5}
    started = time.monotonic()
    result = run(server.base_url, [quick], timeout=0, request_timeout=5)
    assert time.monotonic() - started < 1.8  # gave up after 0.2 s, not the route's 2 s
    assert result["failed"] is True
    assert result["summary"] == ["quick: no answer (timeout)"]
    assert "no answer within 0.2s" in result["msg"]
    # The first run gives a check its whole timeout, whatever is left of smoke_timeout.
    assert "failed" not in run(server.base_url, [patient], timeout=0, request_timeout=0.1)


# --------------------------------------------------------------------------- options

def test_bad_options(server):
    cases = [
        ([{"path": "health"}], [], "path must start with '/'"),
        ([{"path": "/x", "expect_status": "sometimes"}], [], "expect_status must be"),
        ([], ["GET"], "is not 'METHOD /path'"),
        ([], [], "nothing to check"),
    ]
    for checks, expected, text in cases:
        result = run(server.base_url, checks, expected)
        assert result["failed"] is True and text in result["msg"], result["msg"]
    result = run("ftp://x", CHECKS[:1])
    assert result["failed"] is True and "base_url must be like" in result["msg"]
    result = run(server.base_url, CHECKS[:1], max_body_bytes=10)
    assert result["failed"] is True and "max_body_bytes must be >= 1024" in result["msg"]


# --------------------------------------------------------------------------- docker

LOGS_EXTENSION = '''
import sys as _sys
FAKE_MAIN = main
def main(argv):
    if argv[:1] != ["logs"]:
        return FAKE_MAIN(argv)
    record(argv)
    state = load()
    logs = state.get("logs", {}).get(argv[-1])
    if logs is None:
        print("Error response from daemon: No such container: " + argv[-1], file=_sys.stderr)
        return 1
    _sys.stdout.write(logs.get("stdout", ""))
    _sys.stderr.write(logs.get("stderr", ""))
    return 0
'''


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """module_runner's FakeDocker plus `docker logs` (stdout and stderr from the state)."""
    fake = FakeDocker(tmp_path, monkeypatch)
    script = tmp_path / "fakebin" / "docker"
    head, sep, tail = script.read_text().rpartition('\nif __name__ == "__main__":')
    script.write_text(head + "\n" + LOGS_EXTENSION + sep + tail)
    fake.state["logs"] = {}
    fake.save()
    return fake


def container(**kwargs) -> dict:
    return {"id": "c1", "name": "atp-backend-aws-1", "image": "repo:rel", "image_id": "sha256:x",
            "running": True, "project": "atp", "service": "backend-aws", "ports": [8002],
            **kwargs}


ERROR_LOG = {
    "stdout": "INFO: GET /api/health 200\nINFO: GET /ping_fast 200\n"
              "ERROR: db call failed: password authentication failed\n",
    "stderr": "Traceback (most recent call last):\n  File x\nERROR: Exception in ASGI app\n"
              "[CRITICAL] worker timeout\nWARNING: slow\n",
}


def test_error_log_rate_is_reported(server, docker):
    docker.state["containers"] = [container()]
    docker.state["logs"]["c1"] = ERROR_LOG
    docker.save()
    before = int(time.time())
    result = run(server.base_url, CHECKS, ROUTES, project_name="atp", service="backend-aws")
    assert "failed" not in result, result.get("msg")
    log = result["error_log"]
    assert log["lines"] == 4 and log["containers"] == ["atp-backend-aws-1"]
    # 4 lines over the checks' window (a window under a second counts as one second).
    assert log["per_minute"] == pytest.approx(smoke.error_rate(4, log["window_seconds"]),
                                              rel=0.1)
    assert log["per_minute"] <= 240.0 and log["window_seconds"] < 5
    assert log["max_per_minute"] is None and log["error"] is None
    assert result["summary"][-1] == (f"error log: {log['per_minute']}/min (4 lines in "
                                     f"{log['window_seconds']:.1f}s)")
    logs_call = next(a for a in docker.argvs if a[0] == "logs")
    assert logs_call[:2] == ["logs", "--since"] and logs_call[-1] == "c1"
    assert before - 1 <= int(logs_call[2]) <= int(time.time())


def test_error_log_rate_above_the_limit_fails(server, docker):
    docker.state["containers"] = [container()]
    docker.state["logs"]["c1"] = ERROR_LOG
    docker.save()
    result = run(server.base_url, CHECKS, ROUTES, project_name="atp", service="backend-aws",
                 max_error_rate=10)
    assert result["failed"] is True and result["stopped"] == "passed"
    rate = result["error_log"]["per_minute"]
    assert rate > 10
    assert result["summary"][-1].startswith(f"error log: {rate}/min (4 lines in ")
    assert result["summary"][-1].endswith("s) -- above the limit 10.0/min")
    assert result["msg"].startswith(f'smoke check "error log" failed: {rate} ERROR/CRITICAL/'
                                    "Traceback lines a minute from atp-backend-aws-1")
    quiet = {"stdout": "INFO: all good\n", "stderr": ""}
    docker.state["logs"]["c1"] = quiet
    docker.save()
    result = run(server.base_url, CHECKS, ROUTES, project_name="atp", service="backend-aws",
                 max_error_rate=10)
    assert "failed" not in result and result["error_log"]["per_minute"] == 0.0


def test_error_log_that_cannot_be_read_is_said_not_fatal(server, docker):
    result = run(server.base_url, CHECKS[:1], project_name="atp", service="backend-aws")
    assert "failed" not in result
    assert result["summary"][-1] == "error log: not read (no container of atp/backend-aws)"
    docker.state["containers"] = [container()]  # no logs for c1: docker logs fails
    docker.save()
    result = run(server.base_url, CHECKS[:1], project_name="atp", service="backend-aws",
                 max_error_rate=1)
    assert "failed" not in result
    assert result["summary"][-1].startswith("error log: not read (`docker logs atp-backend-aws-1`"
                                            " failed (exit 1): Error response from daemon")


def test_a_crashing_container_ends_the_checks_before_the_timeout(docker):
    docker.state["containers"] = [container(running=False, status="restarting",
                                            restart_count=3, exit_code=1)]
    docker.state["logs"]["c1"] = {"stdout": "", "stderr": "Traceback (most recent call last):\n"}
    docker.save()
    started = time.monotonic()
    result = run(f"http://127.0.0.1:{free_port()}", CHECKS[:1], timeout=30, interval=0.1,
                 project_name="atp", service="backend-aws")
    assert result["failed"] is True and result["stopped"] == "crashed"
    assert time.monotonic() - started < 10  # not the 30 s timeout
    assert result["msg"].startswith(
        "container atp-backend-aws-1 crashed on start (state restarting, restarted 3 times")
    assert 'smoke check "health" failed: no answer (refused)' in result["msg"]
    assert result["error_log"]["lines"] == 1


def test_a_container_still_starting_is_waited_for(docker):
    docker.state["containers"] = [container()]
    docker.state["logs"]["c1"] = {"stdout": "", "stderr": ""}
    docker.save()
    result = run(f"http://127.0.0.1:{free_port()}", CHECKS[:1], timeout=1, interval=0.2,
                 project_name="atp", service="backend-aws")
    assert result["failed"] is True and result["attempts"] >= 3
    assert "atp-backend-aws-1 crashed on start" not in result["msg"]
    assert result["stopped"] == "timeout"
