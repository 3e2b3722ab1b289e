"""diagnose's drift rules (module_utils/diagnosis_rules.py): each rule alone, then together."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import diagnosis_rules as dr
from ansible_collections.atp.deploy.plugins.module_utils import routes

RID = "20261124T101500Z-0123456789ab"
REF = f"automated-trading-platform-backend-aws:{RID}"
NAME = "atp-backend-aws-1"


def healthy_facts(**changes) -> dict:
    """The facts of an instance without drift (the report tests use them too)."""
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
        "containers": [{"id": "c1", "name": NAME, "image": REF,
                        "image_id": "sha256:release", "state": "running", "running": True,
                        "host_ports": [8002]}],
        "port_publishers": [{"id": "c1", "name": NAME, "image": REF}],
        "proxy": {"ids": [], "names": [], "upstream": None},
        "expected_routes": list(routes.EXPECTED_ROUTES),
        "routes": {NAME: {"registered": list(routes.EXPECTED_ROUTES), "missing": []}},
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
        "logs": {NAME: ["INFO started", "key=***"]},
        "deploy_log": [{"release": RID, "result": "ok", "git_sha": "d1c92e3e50bb",
                        "operator": "ops", "finished": "2026-11-24T10:16:00+00:00"}],
    }
    facts.update(copy.deepcopy(changes))
    return facts


def codes(found: list[dict]) -> list[str]:
    return [f["code"] for f in found]


def container(cid: str, name: str, running: bool = True, image_id: str = "sha256:release",
              image: str = REF) -> dict:
    return {"id": cid, "name": name, "image": image, "image_id": image_id,
            "state": "running" if running else "exited", "running": running, "host_ports": []}


def _stale(facts: dict) -> None:
    facts["containers"][0].update(image="atp-backend-base:bookworm", image_id="sha256:base")
    facts["containers"].append(container("c2", "stray", image_id="sha256:other"))


def _env_missing(facts: dict) -> None:
    facts["env_files"][".env"]["exists"] = False


# rule -> (facts that trigger it, findings expected, a word of the message; facts close to
# triggering it that do not). Every rule of RULES has one entry (test_every_rule_is_tested).
CASES = {
    dr.rule_docker_unreachable: (
        dict(docker_error="`docker ps` failed (exit 1): Cannot connect", containers=[],
             port_publishers=[], routes={}),
        1, "sudo systemctl start docker",
        dict(docker_error="")),
    dr.rule_no_release: (
        dict(active_release=None), 1, "no active release",
        dict(release_dir_ok=False)),
    dr.rule_release_missing: (
        dict(release_dir_ok=False), 1, ".release-manifest.json is missing",
        dict(release_dir_ok=False, app_root_exists=False)),
    dr.rule_release_image_missing: (
        dict(release_image={"ref": REF, "id": None}), 1, f"{REF}, does not exist",
        dict(release_image={"ref": REF, "id": None}, docker_error="daemon down")),
    dr.rule_no_container: (
        dict(containers=[container("c1", NAME, running=False)]), 1, f"found {NAME} (exited)",
        dict(containers=[], app_root_exists=False)),
    dr.rule_duplicate_backend: (
        dict(containers=[container("c1", NAME), container("c2", "stray")]), 1,
        f"2 containers run as automated-trading-platform/backend-aws: {NAME} ({REF}), stray",
        dict(containers=[container("c1", NAME), container("c2", "stray", running=False)])),
    dr.rule_stale_image: (
        _stale, 2, "runs image atp-backend-base:bookworm (base), not",
        dict(containers=[container("c1", NAME, image_id="sha256:base")],
             release_image={"ref": REF, "id": None})),
    dr.rule_proxy_upstream: (
        dict(proxy={"ids": ["p1"], "names": ["proxy-1"], "upstream": "gone-1:8002"}), 1,
        "the proxy proxy-1 on port 8002 forwards to gone-1:8002",
        dict(proxy={"ids": ["p1"], "names": ["proxy-1"], "upstream": f"{NAME}:8002"})),
    dr.rule_port_conflict: (
        dict(port_publishers=[{"id": "c1", "name": NAME, "image": REF},
                              {"id": "x", "name": "local-backend", "image": "other"}]), 1,
        "2 containers publish host port 8002",
        dict(port_publishers=[{"id": "x", "name": "local-backend", "image": "other"}])),
    dr.rule_port_foreign: (
        dict(port_publishers=[{"id": "x", "name": "squatter", "image": "nginx"}]), 1,
        "docker stop squatter",
        dict(port_publishers=[{"id": "p1", "name": "proxy-1", "image": "proxy"}],
             proxy={"ids": ["p1"], "names": ["proxy-1"], "upstream": f"{NAME}:8002"})),
    dr.rule_routes_unreadable: (
        dict(routes={NAME: {"error": "importing app.main:app failed", "registered": [],
                            "missing": []}}), 1, f"docker logs {NAME}",
        dict(routes={NAME: {"registered": [], "missing": ["GET /api/health"]}})),
    dr.rule_missing_routes: (
        dict(routes={NAME: {"registered": ["GET /api/health"],
                            "missing": ["GET /api/portfolio/snapshot",
                                        "POST /api/portfolio/refresh"]}}), 1,
        "GET /api/portfolio/snapshot, POST /api/portfolio/refresh (requests answer 404)",
        dict(routes={NAME: {"error": "boom", "registered": [], "missing": ["GET /x"]}})),
    dr.rule_env_file_missing: (
        _env_missing, 1, "/home/ubuntu/automated-trading-platform/shared/.env is missing",
        dict(app_root_exists=False, env_files={".env": {"exists": False}})),
    dr.rule_no_credentials: (
        dict(credentials={"alias": None, "pair": None, "partial": [
            "CRYPTO_COM_API_KEY is set but CRYPTO_COM_API_SECRET is missing or empty"]}), 1,
        "need EXCHANGE_CUSTOM_API_KEY and EXCHANGE_CUSTOM_API_SECRET both non-empty (or a "
        "CRYPTO_COM_API_*/CRYPTOCOM_API_* pair) (CRYPTO_COM_API_KEY is set but",
        dict(app_root_exists=False, credentials={"alias": None, "pair": None,
                                                 "partial": []})),
    dr.rule_credential_alias: (
        dict(credentials={"alias": "CRYPTO_COM_API_KEY",
                          "pair": ["CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"],
                          "partial": []}), 1,
        "only through the alias CRYPTO_COM_API_KEY/CRYPTO_COM_API_SECRET, not "
        "EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET",
        dict(credentials={"alias": None, "pair": None, "partial": []}, env_files={})),
    dr.rule_disk_low: (
        dict(disk={"path": "/home/ubuntu", "used_percent": 95, "free_mb": 300}), 1,
        "the filesystem of /home/ubuntu is 95% full (300 MiB free)",
        dict(disk={"path": "/home/ubuntu", "used_percent": 89, "free_mb": 300})),
}
WARNINGS = {"env_file_missing", "credential_alias", "disk_low"}


def _facts(change) -> dict:
    if callable(change):
        facts = healthy_facts()
        change(facts)
        return facts
    return healthy_facts(**change)


def _code(rule) -> str:
    return rule.__name__.removeprefix("rule_")


@pytest.mark.parametrize("rule", dr.RULES, ids=_code)
def test_rule_triggers(rule):
    trigger, count, words, _near_miss = CASES[rule]
    found = rule(_facts(trigger))
    assert codes(found) == [_code(rule)] * count
    assert words in found[0]["message"], found[0]["message"]
    severity = dr.WARNING if _code(rule) in WARNINGS else dr.DRIFT
    assert {f["severity"] for f in found} == {severity}
    assert all("\n" not in f["message"] for f in found)


@pytest.mark.parametrize("rule", dr.RULES, ids=_code)
def test_rule_stays_quiet(rule):
    _trigger, _count, _words, near_miss = CASES[rule]
    assert rule(healthy_facts()) == []
    assert rule(_facts(near_miss)) == []
    assert rule({}) == [] or _code(rule) == "no_release"


def test_every_rule_is_tested_and_named_after_its_code():
    assert set(CASES) == set(dr.RULES) and len(dr.RULES) == len(set(dr.RULES))
    assert all(r.__name__.startswith("rule_") for r in dr.RULES)


def test_nothing_at_all_is_no_release():
    assert codes(dr.findings({})) == ["no_release"]
    assert "None does not exist" in dr.rule_no_release({})[0]["message"]


# --------------------------------------------------------------------------- all rules together


def test_healthy_has_no_findings():
    assert dr.findings(healthy_facts()) == []
    assert not dr.has_drift([])


def test_findings_follow_the_rule_order():
    facts = healthy_facts(release_image={"ref": REF, "id": None},
                          port_publishers=[{"id": "x", "name": "squatter", "image": "nginx"}],
                          disk={"path": "/", "used_percent": 99, "free_mb": 1})
    facts["env_files"][".env"]["exists"] = False
    assert codes(dr.findings(facts)) == ["release_image_missing", "port_foreign",
                                         "env_file_missing", "disk_low"]


def test_release_problems():
    assert codes(dr.findings(healthy_facts(release_dir_ok=False))) == ["release_missing"]
    facts = healthy_facts(release_image={"ref": REF, "id": None})
    assert codes(dr.findings(facts)) == ["release_image_missing"]
    facts = healthy_facts(active_release=None, release_image={"ref": None, "id": None})
    assert codes(dr.findings(facts)) == ["no_release"]


def test_nothing_deployed_is_one_finding():
    facts = healthy_facts(app_root_exists=False, active_release=None, containers=[],
                          port_publishers=[], routes={}, logs={},
                          release_image={"ref": None, "id": None},
                          credentials={"alias": None, "pair": None, "partial": []})
    found = dr.findings(facts)
    assert codes(found) == ["no_release"] and "does not exist" in found[0]["message"]


def test_docker_down():
    facts = healthy_facts(docker_error="`docker ps` failed (exit 1): Cannot connect",
                          containers=[], port_publishers=[], routes={}, logs={},
                          release_image={"ref": REF, "id": None})
    assert codes(dr.findings(facts)) == ["docker_unreachable"]


def test_no_container_and_foreign_publisher():
    facts = healthy_facts(containers=[container("c1", NAME, running=False)],
                          port_publishers=[{"id": "x", "name": "squatter", "image": "nginx"}],
                          routes={}, logs={})
    assert codes(dr.findings(facts)) == ["no_container", "port_foreign"]


def test_warnings_only_are_not_drift():
    facts = healthy_facts(credentials={"alias": "CRYPTO_COM_API_KEY",
                                       "pair": ["CRYPTO_COM_API_KEY", "CRYPTO_COM_API_SECRET"],
                                       "partial": []})
    facts["env_files"][".env"] = {"exists": False, "names": [], "empty": []}
    facts["disk"]["used_percent"] = 95
    found = dr.findings(facts)
    assert codes(found) == ["env_file_missing", "credential_alias", "disk_low"]
    assert not dr.has_drift(found)
    assert dr.has_drift(dr.findings(healthy_facts(release_dir_ok=False)))
