"""Tests of the diagnose module's pure deciding logic (module_utils/diagnosis.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis as dg

SAMPLE_BACKEND = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"
RID = "20261124T101500Z-0123456789ab"
REF = f"automated-trading-platform-backend-aws:{RID}"
KEY, SECRET = "sandbox-fake-key-3f9a", "sandbox-fake-secret-c41d"


def healthy_facts(**changes) -> dict:
    facts = {
        "app_root": "/home/ubuntu/automated-trading-platform",
        "app_root_exists": True,
        "project_name": "automated-trading-platform",
        "service": "backend-aws",
        "port": 8002,
        "active_release": RID,
        "release_dir_ok": True,
        "releases": [RID],
        "git_sha": "d1c92e3e50bb" + "0" * 28,
        "git_sha_source": "deploy.log",
        "deploy_record": {"release": RID, "result": "ok", "operator": "ops",
                          "finished": "2026-11-24T10:16:00+00:00"},
        "release_image": {"ref": REF, "id": "sha256:release"},
        "docker_error": None,
        "containers": [{"id": "c1", "name": "atp-backend-aws-1", "image": REF,
                        "image_id": "sha256:release", "state": "running", "running": True,
                        "host_ports": [8002]}],
        "port_publishers": [{"id": "c1", "name": "atp-backend-aws-1", "image": REF}],
        "expected_routes": list(dg.DEFAULT_EXPECTED_ROUTES),
        "routes": {"atp-backend-aws-1": {"registered": list(dg.DEFAULT_EXPECTED_ROUTES),
                                         "missing": []}},
        "env_files": {".env": {"exists": True, "names": ["ENVIRONMENT"], "empty": []},
                      ".env.aws": {"exists": True, "names": ["EXCHANGE_CUSTOM_API_KEY",
                                                             "EXCHANGE_CUSTOM_API_SECRET"],
                                   "empty": []}},
        "credentials": {"alias": "EXCHANGE_CUSTOM_API_KEY",
                        "pair": ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"],
                        "partial": []},
        "disk": {"path": "/home/ubuntu", "total_mb": 1000, "used_mb": 240, "free_mb": 760,
                 "used_percent": 24},
        "disk_warn_percent": 90,
        "logs": {"atp-backend-aws-1": ["INFO started", "key=***"]},
        "deploy_log": [{"release": RID, "result": "ok", "git_sha": "d1c92e3e50bb",
                        "operator": "ops", "finished": "2026-11-24T10:16:00+00:00"}],
    }
    facts.update(copy.deepcopy(changes))
    return facts


def codes(found: list[dict]) -> list[str]:
    return [f["code"] for f in found]


# --------------------------------------------------------------------------- env files


def test_parse_env_text_reads_names_and_values_like_compose():
    text = textwrap.dedent("""\
        # Managed by Ansible (atp.deploy). Local edits are overwritten.
        ENVIRONMENT='aws'
        export PLAIN=value # a comment
        DOUBLE="a \\"quoted\\" value"
        EMPTY=''
        BARE
        bad-name=x
        not an assignment
        URL=http://host/#frag
        """)
    assert dg.parse_env_text(text) == [
        ("ENVIRONMENT", "aws"), ("PLAIN", "value"), ("DOUBLE", 'a "quoted" value'),
        ("EMPTY", ""), ("BARE", ""), ("URL", "http://host/#frag"),
    ]
    assert dg.parse_env_text("") == [] and dg.parse_env_text(None) == []


def test_merged_set_names_later_file_wins():
    merged = dg.merged_set_names([[("A", "1"), ("B", "x")], [("B", ""), ("C", " ")]])
    assert merged == {"A": True, "B": False, "C": False}


@pytest.mark.parametrize(("names", "alias"), [
    ({"EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET", "CRYPTO_COM_API_KEY",
      "CRYPTO_COM_API_SECRET"}, "EXCHANGE_CUSTOM_API_KEY"),
    ({"CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"}, "CRYPTO_COM_API_KEY"),
    ({"CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET", "EXCHANGE_CUSTOM_API_KEY"},
     "CRYPTOCOM_API_KEY"),
    ({"ENVIRONMENT"}, None),
    (set(), None),
])
def test_resolve_alias_order(names, alias):
    result = dg.resolve_alias(names)
    assert result["alias"] == alias
    if alias:
        assert result["pair"][0] == alias and result["pair"][1].endswith("_SECRET")
    else:
        assert result["pair"] is None


def test_resolve_alias_needs_both_halves_non_empty():
    result = dg.resolve_alias({"EXCHANGE_CUSTOM_API_KEY": True,
                               "EXCHANGE_CUSTOM_API_SECRET": False})
    assert result["alias"] is None
    assert result["partial"] == ["EXCHANGE_CUSTOM_API_KEY is set but "
                                 "EXCHANGE_CUSTOM_API_SECRET is missing or empty"]
    half = dg.resolve_alias({"CRYPTO_COM_API_SECRET"})
    assert half["partial"] == ["CRYPTO_COM_API_SECRET is set but CRYPTO_COM_API_KEY is "
                               "missing or empty"]


# --------------------------------------------------------------------------- masking


def test_masking_hides_every_env_value_but_not_tiny_plain_ones():
    pairs = [("EXCHANGE_CUSTOM_API_KEY", KEY), ("EXCHANGE_CUSTOM_API_SECRET", SECRET),
             ("ENVIRONMENT", "aws"), ("PORTFOLIO_DEBUG", "1"), ("DB_PASSWORD", "pw"),
             ("ATP_INSTANCE_ID", "i-0abc"), ("EMPTY", "")]
    secrets = dg.secrets_to_mask(pairs)
    assert KEY in secrets and SECRET in secrets and "pw" in secrets and "i-0abc" in secrets
    assert "aws" not in secrets and "1" not in secrets and "" not in secrets
    line = f"backend-aws key={KEY} secret={SECRET} pw=pw on i-0abc debug=1"
    masked = dg.mask_text(line, secrets)
    assert masked == "backend-aws key=*** secret=*** ***=*** on *** debug=1"


def test_masking_longest_first_and_json_escaped_forms():
    secrets = dg.secrets_to_mask([("API_TOKEN", "abcd"), ("OTHER_TOKEN", "abcdef\"gh")])
    assert dg.mask_text('x abcdef"gh y abcd', secrets) == "x *** y ***"
    assert dg.mask_text('{"t": "abcdef\\"gh"}', secrets) == '{"t": "***"}'
    assert dg.mask_text(None, secrets) == ""


def test_mask_data_walks_structures():
    data = {"error": f"boom {KEY}", "list": [KEY, 1, None], KEY: True}
    assert dg.mask_data(data, [KEY]) == {"error": "boom ***", "list": ["***", 1, None],
                                         "***": True}


# --------------------------------------------------------------------------- routes


def test_normalize_and_missing_routes():
    assert dg.normalize_route("get  /api/health/") == "GET /api/health"
    assert dg.normalize_route("GET /") == "GET /"
    for bad in ("/api/health", "GET api/health", "GET /a /b"):
        with pytest.raises(ValueError):
            dg.normalize_route(bad)
    registered = ["GET /api/health", "HEAD /api/health", "POST /api/portfolio/refresh"]
    assert dg.missing_routes(list(dg.DEFAULT_EXPECTED_ROUTES), registered) == [
        "GET /api/dashboard/state", "GET /api/portfolio/snapshot", "GET /api/portfolio/latest"]
    assert dg.missing_routes(["post /api/portfolio/refresh/"], registered) == []


def test_route_keys_from_probe_output():
    routes = [{"path": "/api/x/", "methods": ["get", "HEAD"]}, {"path": "/ws", "methods": []},
              {"path": "", "methods": ["GET"]}]
    assert dg.route_keys(routes) == ["ANY /ws", "GET /api/x", "HEAD /api/x"]


def test_parse_route_probe():
    out = f"noise printed on import\n{dg.ROUTE_MARK}" + json.dumps(
        {"routes": [{"path": "/a", "methods": ["GET"]}]}) + "\n"
    assert dg.parse_route_probe(out) == {"routes": [{"path": "/a", "methods": ["GET"]}]}
    assert dg.parse_route_probe(dg.ROUTE_MARK + '{"error": "x"}') == {"error": "x"}
    assert "no result" in dg.parse_route_probe("Traceback ...")["error"]
    assert "no result" in dg.parse_route_probe(dg.ROUTE_MARK + "{not json")["error"]


def run_probe(cwd: Path, target: str = "app.main:app") -> dict:
    module, _, attr = target.partition(":")
    proc = subprocess.run([sys.executable, "-c", dg.ROUTE_PROBE, module, attr], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return dg.parse_route_probe(proc.stdout)


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
    keys = dg.route_keys(result["routes"])
    assert {"GET /api/portfolio/snapshot", "POST /api/portfolio/refresh", "GET /api/health",
            "HEAD /api/health", "GET /openapi.json", "GET /v2/ping"} <= set(keys)
    assert not [k for k in keys if k.startswith("GET /loop/loop")]


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
    keys = dg.route_keys(result["routes"])
    assert dg.missing_routes(list(dg.DEFAULT_EXPECTED_ROUTES), keys) == []
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
    keys = dg.route_keys(run_probe(backend)["routes"])
    assert dg.missing_routes(list(dg.DEFAULT_EXPECTED_ROUTES), keys) == [
        "GET /api/portfolio/snapshot", "GET /api/portfolio/latest", "POST /api/portfolio/refresh"]


# --------------------------------------------------------------------------- git sha


def test_git_sha_prefers_successful_deploy_log_record():
    records = [{"release": RID, "git_sha": "aaa", "result": "ok"},
               {"release": "other", "git_sha": "bbb", "result": "ok"},
               {"release": RID, "git_sha": "ccc", "result": "failed"}]
    sha, source, record = dg.git_sha_for(RID, records)
    assert (sha, source, record["git_sha"]) == ("aaa", "deploy.log", "aaa")
    sha, source, _ = dg.git_sha_for(RID, records[1:])
    assert (sha, source) == ("ccc", "deploy.log")


def test_git_sha_good_record_is_the_release_models():
    """A good record is release_model.is_good: a rollback TO the release is, a deploy rolled
    back away from it (an error) is not, nor is a record without a result."""
    records = [{"release": RID, "git_sha": "aaa", "result": "rolled_back"},
               {"release": RID, "git_sha": "bbb", "result": "rolled_back", "error": "smoke"}]
    assert dg.git_sha_for(RID, records)[:2] == ("aaa", "deploy.log")
    records = [{"release": RID, "git_sha": "aaa", "result": "OK"},
               {"release": RID, "git_sha": "bbb"}]
    sha, _, record = dg.git_sha_for(RID, records)
    assert sha == "aaa" and record is records[0]
    # no good record at all: the newest record of the release still names the sha
    assert dg.git_sha_for(RID, records[1:])[:2] == ("bbb", "deploy.log")


def test_git_sha_falls_back_to_manifest_then_override():
    override = {"services": {"backend-aws": {"image": REF, "build": {"args": {
        "GIT_SHA": "ddd"}}}}}
    assert dg.git_sha_for(RID, [], {"git_sha": "mmm"}, override)[:2] == ("mmm",
                                                                         "release manifest")
    assert dg.git_sha_for(RID, [{"release": RID, "git_sha": "unknown"}], {}, override)[:2] == (
        "ddd", "compose override")
    assert dg.git_sha_for(RID, [], {}, {})[:2] == (None, None)
    assert dg.git_sha_for(None, [{"release": RID, "git_sha": "x"}]) == (None, None, None)


# --------------------------------------------------------------------------- findings


def test_healthy_has_no_findings():
    facts = healthy_facts()
    assert dg.findings(facts) == []
    lines = dg.summary_lines(facts, [])
    assert lines[0].startswith("no drift")
    text = "\n".join(lines)
    assert f"active release: {RID}, git d1c92e3e50bb" in text
    assert "the active release's image" in text
    assert "all 5 expected routes registered" in text
    assert "EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET resolves" in text
    assert "24% used" in text and "deploy log: last 1 record(s)" in text


def test_missing_routes_finding_names_them():
    facts = healthy_facts(routes={"atp-backend-aws-1": {
        "registered": ["GET /api/health"],
        "missing": ["GET /api/portfolio/snapshot", "POST /api/portfolio/refresh"]}})
    (found,) = dg.findings(facts)
    assert found["code"] == "missing_routes" and found["severity"] == "drift"
    assert "GET /api/portfolio/snapshot, POST /api/portfolio/refresh" in found["message"]
    assert "include_router" in found["message"] and "redeploy" in found["message"]
    assert dg.has_drift([found])
    assert "MISSING GET /api/portfolio/snapshot" in "\n".join(dg.summary_lines(facts, [found]))


def test_unreadable_routes_is_drift():
    facts = healthy_facts(routes={"atp-backend-aws-1": {"error": "importing app.main failed",
                                                        "registered": [], "missing": []}})
    assert codes(dg.findings(facts)) == ["routes_unreadable"]


def test_stale_image():
    facts = healthy_facts()
    facts["containers"][0].update(image="atp-backend-base:bookworm", image_id="sha256:base")
    (found,) = dg.findings(facts)
    assert found["code"] == "stale_image"
    assert "atp-backend-aws-1 runs image atp-backend-base:bookworm" in found["message"]
    assert REF in found["message"] and "ansible-playbook deploy.yml" in found["message"]
    assert "NOT the active release's image" in "\n".join(dg.summary_lines(facts, [found]))


def test_two_backend_containers_named():
    facts = healthy_facts()
    facts["containers"].append({"id": "c2", "name": "stray", "image": REF,
                                "image_id": "sha256:release", "state": "running",
                                "running": True, "host_ports": []})
    (found,) = dg.findings(facts)
    assert found["code"] == "duplicate_backend"
    assert "2 containers run as automated-trading-platform/backend-aws" in found["message"]
    assert "atp-backend-aws-1" in found["message"] and "stray" in found["message"]


def test_two_port_publishers_named():
    facts = healthy_facts()
    facts["port_publishers"].append({"id": "x", "name": "local-backend", "image": "other"})
    (found,) = dg.findings(facts)
    assert found["code"] == "port_conflict"
    assert "2 containers publish host port 8002" in found["message"]
    assert "atp-backend-aws-1" in found["message"] and "local-backend (other)" in found["message"]


def test_no_container_and_foreign_publisher():
    facts = healthy_facts(containers=[{"id": "c1", "name": "atp-backend-aws-1", "image": REF,
                                       "image_id": "sha256:release", "state": "exited",
                                       "running": False, "host_ports": []}],
                          port_publishers=[{"id": "x", "name": "squatter", "image": "nginx"}],
                          routes={}, logs={})
    found = dg.findings(facts)
    assert codes(found) == ["no_container", "port_foreign"]
    assert "found atp-backend-aws-1 (exited)" in found[0]["message"]
    assert "docker stop squatter" in found[1]["message"]
    assert "atp-backend-aws-1 is exited" in "\n".join(dg.summary_lines(facts, found))


def test_no_credentials_says_what_to_do():
    facts = healthy_facts(credentials={"alias": None, "pair": None, "partial": [
        "CRYPTO_COM_API_KEY is set but CRYPTO_COM_API_SECRET is missing or empty"]})
    (found,) = dg.findings(facts)
    assert found["code"] == "no_credentials" and found["severity"] == "drift"
    assert "EXCHANGE_CUSTOM_API_KEY and EXCHANGE_CUSTOM_API_SECRET" in found["message"]
    assert "CRYPTO_COM_API_SECRET is missing" in found["message"]
    assert "deploy_env_aws" in found["message"] and "redeploy" in found["message"]


def test_alias_env_missing_and_disk_are_warnings_only():
    facts = healthy_facts(credentials={"alias": "CRYPTO_COM_API_KEY",
                                       "pair": ["CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"],
                                       "partial": []})
    facts["env_files"][".env"] = {"exists": False, "names": [], "empty": []}
    facts["disk"]["used_percent"] = 95
    found = dg.findings(facts)
    assert sorted(codes(found)) == ["credential_alias", "disk_low", "env_file_missing"]
    assert not dg.has_drift(found)
    assert dg.summary_lines(facts, found)[0] == "0 drift finding(s), 3 warning(s)"


def test_release_problems():
    assert codes(dg.findings(healthy_facts(release_dir_ok=False))) == ["release_missing"]
    facts = healthy_facts(release_image={"ref": REF, "id": None})
    assert codes(dg.findings(facts)) == ["release_image_missing"]
    facts = healthy_facts(active_release=None, release_image={"ref": None, "id": None})
    assert codes(dg.findings(facts)) == ["no_release"]


def test_nothing_deployed_is_one_finding():
    facts = healthy_facts(app_root_exists=False, active_release=None, containers=[],
                          port_publishers=[], routes={}, logs={},
                          release_image={"ref": None, "id": None},
                          credentials={"alias": None, "pair": None, "partial": []})
    found = dg.findings(facts)
    assert codes(found) == ["no_release"] and "does not exist" in found[0]["message"]


def test_docker_down():
    facts = healthy_facts(docker_error="`docker ps` failed (exit 1): Cannot connect",
                          containers=[], port_publishers=[], routes={}, logs={},
                          release_image={"ref": REF, "id": None})
    found = dg.findings(facts)
    assert codes(found) == ["docker_unreachable"]
    assert "systemctl start docker" in found[0]["message"]


def test_markdown_report():
    facts = healthy_facts()
    facts["routes"]["atp-backend-aws-1"]["missing"] = ["GET /api/portfolio/latest"]
    found = dg.findings(facts)
    md = dg.markdown(facts, found)
    assert "## Verdict" in md and "**DRIFT** `missing_routes`" in md
    assert "- MISSING: `GET /api/portfolio/latest`" in md and "- ok: `GET /api/health`" in md
    assert "| atp-backend-aws-1 | running |" in md
    assert "key=***" in md and RID in md
    assert "No drift" in dg.markdown(healthy_facts(), [])
