"""diagnose's in-container route probe and its comparison (module_utils/diagnosis_routes.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_routes as dr
from ansible_collections.atp.deploy.plugins.module_utils import route_gate, routes

SAMPLE_BACKEND = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"


def test_the_probe_program_names_its_mark_once():
    """The mark is written once (ROUTE_MARK) and handed to the program; Python 3.6 syntax."""
    assert dr.ROUTE_PROBE.count(dr.ROUTE_MARK) == 1
    assert dr.ROUTE_PROBE.startswith(f"MARK = {dr.ROUTE_MARK!r}\n")
    compile(dr.ROUTE_PROBE, "<probe>", "exec")
    assert "f\"" not in dr.ROUTE_PROBE and "f'" not in dr.ROUTE_PROBE


def test_registered_keys_from_probe_output():
    found = [{"path": "/api/x/", "methods": ["get", "HEAD"]}, {"path": "/ws", "methods": []},
             {"path": "", "methods": ["GET"]}, "not a route"]
    assert dr.registered(found) == ["ANY /ws", "GET /api/x", "HEAD /api/x"]
    assert dr.registered(None) == []


def test_compare_uses_the_shared_route_comparison():
    found = [{"path": "/api/health", "methods": ["GET", "HEAD"]},
             {"path": "/api/portfolio/refresh/", "methods": ["POST"]}]
    result = dr.compare(list(routes.EXPECTED_ROUTES), found)
    assert result == {"registered": ["GET /api/health", "HEAD /api/health",
                                     "POST /api/portfolio/refresh"],
                      "missing": ["GET /api/dashboard/state", "GET /api/portfolio/snapshot",
                                  "GET /api/portfolio/latest"]}
    assert dr.compare(["POST /api/portfolio/refresh"], found)["missing"] == []
    assert dr.compare([], None) == {"registered": [], "missing": []}


def test_parse_route_probe():
    out = f"noise printed on import\n{dr.ROUTE_MARK}" + json.dumps(
        {"routes": [{"path": "/a", "methods": ["GET"]}]}) + "\n"
    assert dr.parse_route_probe(out) == {"routes": [{"path": "/a", "methods": ["GET"]}]}
    assert dr.parse_route_probe(dr.ROUTE_MARK + '{"error": "x"}') == {"error": "x"}
    assert "no result" in dr.parse_route_probe("Traceback ...")["error"]
    assert "no result" in dr.parse_route_probe(dr.ROUTE_MARK + "{not json")["error"]


def run_probe(cwd: Path, target: str = "app.main:app") -> dict:
    module, _, attr = target.partition(":")
    proc = subprocess.run([sys.executable, "-c", dr.ROUTE_PROBE, module, attr], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return dr.parse_route_probe(proc.stdout)


FAKE_APP = '''
print("import side effect")
class Route:
    def __init__(self, path, methods, name=""):
        self.path, self.methods, self.name = path, set(methods), name
class Mount:
    def __init__(self, path, routes):
        self.path, self._routes = path, routes
    @property
    def routes(self):
        return list(self._routes)
class Router:
    def __init__(self, routes):
        self.routes = routes
class Ctx:
    def __init__(self, prefix):
        self.prefix = prefix
class IncludedRouter:          # newer FastAPI: no path, no routes, the router inside
    def __init__(self, router, prefix):
        self.original_router, self.include_context = router, Ctx(prefix)
class Broken:
    @property
    def routes(self):
        raise RuntimeError("boom")
inner = Router([Route("/snapshot", ["GET"]), Route("/refresh", ["POST"])])
nested = Router([IncludedRouter(inner, "/portfolio"), Route("/health", ["GET", "HEAD"])])
class App:
    pass
app = App()
app.routes = [Route("/openapi.json", ["GET"]), IncludedRouter(nested, "/api"),
              Mount("/v2", [Route("/ping", ["GET"])]), Broken()]
app.routes.append(Mount("/loop", app.routes))
'''


def test_route_probe_walks_nested_routers(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text(FAKE_APP)
    result = run_probe(tmp_path)
    assert "error" not in result, result
    keys = dr.registered(result["routes"])
    assert {"GET /api/portfolio/snapshot", "POST /api/portfolio/refresh", "GET /api/health",
            "HEAD /api/health", "GET /openapi.json", "GET /v2/ping"} <= set(keys)
    assert not [k for k in keys if k.startswith("GET /loop/loop")]


def test_diagnose_and_the_route_gate_see_the_same_routes(tmp_path):
    """One walk (routes.WALK_PROGRAM) in both in-container programs: the routes diagnose
    reads in the serving container are those the gate read in the image."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text(FAKE_APP)
    probed = dr.registered(run_probe(tmp_path)["routes"])
    gate = subprocess.run([sys.executable, "-c", route_gate.PROGRAM, "app.main", "app"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert gate.returncode == 0, gate.stderr
    gated = route_gate.route_keys(route_gate.parse_output(gate.stdout)["routes"])
    assert probed == gated and "GET /api/portfolio/snapshot" in gated


def test_route_probe_reports_import_errors(tmp_path):
    result = run_probe(tmp_path)
    assert result["error"].startswith("importing app.main:app failed: ModuleNotFoundError")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text("raise RuntimeError('bad config')\n")
    assert "RuntimeError: bad config" in run_probe(tmp_path)["error"]
    assert "has no attribute" in run_probe(tmp_path, "app:nothing")["error"]


def test_route_probe_against_the_sample_backend():
    pytest.importorskip("fastapi")
    result = run_probe(SAMPLE_BACKEND)
    assert "error" not in result, result
    keys = dr.registered(result["routes"])
    assert routes.missing(routes.EXPECTED_ROUTES, keys) == []
    assert "GET /api/diagnostics/whoami" in keys


def test_route_probe_sees_an_unincluded_router(tmp_path):
    """The seed's 404: routes_portfolio.py exists, main.py never includes its router."""
    pytest.importorskip("fastapi")
    import shutil

    backend = tmp_path / "backend"
    shutil.copytree(SAMPLE_BACKEND, backend)
    main = backend / "app" / "main.py"
    main.write_text("\n".join(line for line in main.read_text().splitlines()
                              if "include_router(portfolio_router" not in line) + "\n")
    keys = dr.registered(run_probe(backend)["routes"])
    assert routes.missing(routes.EXPECTED_ROUTES, keys) == [
        "GET /api/portfolio/snapshot", "GET /api/portfolio/latest", "POST /api/portfolio/refresh"]
