"""Tests of module_utils/route_gate.py: the in-image program (run for real with this Python
against the sample backend and broken copies of it) and the pure comparison."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import route_gate as rg
from ansible_collections.atp.deploy.plugins.module_utils import routes

SAMPLE_BACKEND = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"
EXPECTED = ["GET /api/health", "GET /api/dashboard/state", "GET /api/portfolio/snapshot",
            "GET /api/portfolio/latest", "POST /api/portfolio/refresh"]


@pytest.fixture
def backend(tmp_path):
    dest = tmp_path / "backend"
    shutil.copytree(SAMPLE_BACKEND, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def run_program(where: Path, target: str = "app.main:app", env: dict | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    module, attr = rg.parse_app_import(target)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", rg.PROGRAM, module, attr], cwd=where,
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


# --------------------------------------------------------------------------- the program


def test_program_lists_the_sample_routes_after_what_the_app_printed(backend):
    main = backend / "app" / "main.py"
    main.write_text("print('starting up, ATP_ROUTE_GATE_RESULT= is not at line start')\n"
                    + main.read_text())
    done = run_program(backend)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("starting up")
    parsed = rg.parse_output(done.stdout)
    keys = rg.route_keys(parsed["routes"])
    assert set(EXPECTED) <= set(keys)
    assert "GET /openapi.json" in keys and "GET /api/diagnostics/whoami" in keys
    verdict = rg.evaluate(done.returncode, done.stdout, EXPECTED)
    assert verdict["ok"] is True and verdict["verdict"] == "passed"
    assert verdict["missing"] == [] and verdict["routes"] == len(keys)


def test_program_follows_mounts_and_nested_routers(backend):
    (backend / "app" / "extra.py").write_text(
        "from fastapi import APIRouter, FastAPI\n"
        "from app.main import app\n"
        "inner = APIRouter()\n"
        "@inner.get('/deep/')\n"
        "def deep():\n    return {}\n"
        "outer = APIRouter()\n"
        "outer.include_router(inner, prefix='/inner')\n"
        "app.include_router(outer, prefix='/api/outer')\n"
        "sub = FastAPI()\n"
        "@sub.post('/hook')\n"
        "def hook():\n    return {}\n"
        "app.mount('/sub', sub)\n")
    done = run_program(backend, "app.extra:app")
    keys = rg.route_keys(rg.parse_output(done.stdout)["routes"])
    assert "GET /api/outer/inner/deep" in keys
    assert "POST /sub/hook" in keys
    assert "GET /api/health" in keys


def test_program_reports_a_missing_module_with_its_traceback(backend):
    main = backend / "app" / "main.py"
    main.write_text(main.read_text().replace("routes_health import", "routes_healthz import"))
    done = run_program(backend)
    assert done.returncode == 0
    verdict = rg.evaluate(done.returncode, done.stdout, EXPECTED)
    assert verdict["verdict"] == "import_failed" and verdict["ok"] is False
    assert verdict["detail"][-1] == "ModuleNotFoundError: No module named 'app.api.routes_healthz'"
    assert 2 <= len(verdict["detail"]) <= rg.TRACEBACK_LINES
    assert verdict["error"].startswith("importing app.main:app failed: ModuleNotFoundError")
    lineno = main.read_text().splitlines().index(
        "from app.api.routes_healthz import router as health_router") + 1
    assert verdict["detail"][:2] == [
        f'  File "{backend}/app/main.py", line {lineno}, in <module>',
        "    from app.api.routes_healthz import router as health_router"]
    assert not any("importlib" in line or "<frozen" in line for line in verdict["detail"])


def test_program_shows_a_syntax_error_in_a_router_without_carets(backend):
    health = backend / "app" / "api" / "routes_health.py"
    health.write_text(health.read_text() + "\ndef broken(:\n    pass\n")
    done = run_program(backend, env={"PWD": str(backend), "OLDPWD": str(backend)})
    detail = rg.evaluate(0, done.stdout, [])["detail"]
    assert detail[-1] == "SyntaxError: invalid syntax"
    assert f'  File "{backend}/app/api/routes_health.py", line' in "\n".join(detail)
    assert "    def broken(:" in detail
    assert not any(set(line.strip()) <= set("^~") for line in detail)


def test_program_masks_secret_env_values_and_url_passwords(backend):
    main = backend / "app" / "main.py"
    main.write_text("import os\nraise SystemExit('db postgresql://atp:' + "
                    "os.environ['DB_PASSWORD'] + '@db/atp token ' + os.environ['API_TOKEN'])\n")
    done = run_program(backend, env={"DB_PASSWORD": "hunter2-long", "API_TOKEN": "tok-9876",
                                     "SHORT_KEY": "ab"})
    assert "hunter2-long" not in done.stdout and "tok-9876" not in done.stdout
    verdict = rg.evaluate(0, done.stdout, [])
    assert verdict["detail"][-1] == "SystemExit: db postgresql://atp:***@db/atp token ***"


def test_program_exits_even_when_the_app_leaves_threads_running(backend):
    main = backend / "app" / "main.py"
    main.write_text("import threading, time\n"
                    "threading.Thread(target=time.sleep, args=(600,)).start()\n"
                    + main.read_text())
    done = run_program(backend, timeout=30)
    assert rg.evaluate(done.returncode, done.stdout, EXPECTED)["ok"] is True


def test_program_rejects_an_attribute_without_routes(backend):
    done = run_program(backend, "app.main:FastAPI")
    verdict = rg.evaluate(0, done.stdout, [])
    assert verdict["verdict"] == "import_failed"
    assert verdict["detail"] == ["app.main:FastAPI is a type, not an ASGI app with routes"]
    done = run_program(backend, "app.main:__name__")
    assert rg.evaluate(0, done.stdout, [])["detail"] == [
        "app.main:__name__ is a str, not an ASGI app with routes"]


# --------------------------------------------------------------------------- pure parts


def test_parse_app_import():
    assert rg.parse_app_import("app.main:app") == ("app.main", "app")
    assert rg.parse_app_import(" backend.app.main:application ") == ("backend.app.main",
                                                                     "application")
    for bad in ("app.main", "app/main.py:app", "app.main:app()", "", ":app", "app.:app"):
        with pytest.raises(rg.GateConfigError, match="app_import must look like"):
            rg.parse_app_import(bad)


def test_route_keys_and_missing():
    found = [["/api/health", ["GET", "HEAD"]], ["/api/items/", ["post"]], ["/ws", []],
             ["", ["GET"]], "junk", ["/api/health", ["GET"]]]
    keys = rg.route_keys(found)
    assert keys == ["ANY /ws", "GET /api/health", "HEAD /api/health", "POST /api/items"]
    assert routes.missing(["GET /api/health", "POST /api/items/", "GET /api/gone",
                           "GET /api/gone"], keys) == ["GET /api/gone"]


def test_parse_output():
    assert rg.parse_output("noise\n" + rg.MARK + json.dumps({"routes": [["/a", ["GET"]]]})) == {
        "routes": [["/a", ["GET"]]]}
    assert rg.parse_output(rg.MARK + json.dumps({"error": "boom", "traceback": ["a", 1]})) == {
        "error": "boom", "traceback": ["a", "1"]}
    assert rg.parse_output("no marker at all") is None
    assert rg.parse_output(rg.MARK + "{not json") is None
    assert rg.parse_output(rg.MARK + json.dumps({"other": 1})) is None
    assert rg.parse_output("  " + rg.MARK + json.dumps({"routes": []})) is None


def test_evaluate_verdicts():
    out = rg.MARK + json.dumps({"routes": [["/api/health", ["GET"]]]})
    assert rg.evaluate(0, out, ["GET /api/health"])["verdict"] == "passed"
    missing = rg.evaluate(0, out, ["GET /api/health", "GET /api/portfolio/snapshot"])
    assert missing["verdict"] == "missing_routes" and missing["ok"] is False
    assert missing["missing"] == ["GET /api/portfolio/snapshot"] and missing["routes"] == 1
    timeout = rg.evaluate(124, "importing...\nconnecting to postgresql://u:pw@db/x", [],
                          timed_out=True)
    assert timeout["verdict"] == "timeout"
    assert timeout["detail"] == ["importing...", "connecting to postgresql://u:***@db/x"]
    none = rg.evaluate(1, "Error response from daemon: No such image: repo:rel", [])
    assert none["verdict"] == "no_result"
    assert none["detail"] == ["Error response from daemon: No such image: repo:rel"]


def test_failure_messages():
    untouched = "the running container was not touched and current still points at R0"
    missing = {"verdict": "missing_routes", "missing": ["GET /a", "POST /b"], "routes": 7,
               "detail": []}
    msg = rg.failure_message(missing, "R1", "app.main:app", untouched)
    assert msg == ("route gate for release R1: app.main:app does not register 2 expected "
                   "route(s): GET /a, POST /b (7 routes registered); the running container was "
                   "not touched and current still points at R0; include the router(s) in the "
                   "app (app.include_router) or correct deploy_expected_routes, then re-run")
    failed = {"verdict": "import_failed", "detail": ["Traceback ...", "NameError: x"]}
    assert rg.failure_message(failed, "R1", "app.main:app", untouched).splitlines()[1:] == [
        "Traceback ...", "NameError: x"]
    timeout = {"verdict": "timeout", "detail": []}
    assert rg.failure_message(timeout, "R1", "app.main:app", untouched, timeout=5,
                              oneoff="p-s-route-gate-ab").startswith(
        "route gate for release R1: importing app.main:app did not finish within 5s")
    none = {"verdict": "no_result", "detail": ["boom"]}
    assert rg.failure_message(none, "R1", "app.main:app", untouched, rc=1).endswith(
        "check the compose file and env files the service needs. Last lines:\nboom")


def test_oneoff_name():
    assert rg.oneoff_name("automated-trading-platform", "backend-aws", "0a1b2c3d") == (
        "automated-trading-platform-backend-aws-route-gate-0a1b2c3d")
    assert rg.oneoff_name("my proj", "svc/x", "ff") == "my-proj-svc-x-route-gate-ff"
