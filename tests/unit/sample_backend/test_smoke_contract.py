"""The sample backend keeps the real app's smoke contract: the deploy's DEFAULT smoke checks
(roles/smoke_check/defaults/main.yml), judged by module_utils/smoke, pass against it with
credentials (as the sandbox inventory gives them) and fail for the right reason without."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.atp.deploy.plugins.module_utils import routes, smoke

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "roles" / "smoke_check" / "defaults" / "main.yml").read_text())


def sandbox_env_aws() -> dict:
    """deploy_env_aws of the sandbox inventory (group_vars/backend.yml or backend/*.yml)."""
    group_vars = REPO / "inventory" / "sandbox" / "group_vars"
    files = [*sorted((group_vars / "backend").glob("*.yml")), group_vars / "backend.yml"]
    merged: dict = {}
    for path in files:
        if path.is_file():
            merged.update(yaml.safe_load(path.read_text()) or {})
    return merged["deploy_env_aws"]


def judge_all(client, allow_unreachable: bool = False) -> dict:
    results = {}
    for raw in DEFAULTS["smoke_check_checks"]:
        check = smoke.normalize_check(raw)
        response = client.request(check["method"], check["path"], headers=check["headers"])
        answer = {"status": response.status_code, "body": response.text, "error": None,
                  "too_big": False, "timeout": 10}
        results[check["name"]] = smoke.judge(check, answer, 8002, allow_unreachable)
    openapi = client.get("/openapi.json")
    results["routes"] = smoke.judge_routes(
        {"status": openapi.status_code, "body": openapi.text, "error": None},
        list(routes.EXPECTED_ROUTES), 8002)
    return results


def test_default_checks_pass_with_the_sandbox_credentials(client, monkeypatch):
    for name, value in sandbox_env_aws().items():  # fake values, alias names
        monkeypatch.setenv(name, str(value))
    results = judge_all(client)
    assert all(r["ok"] and r["kind"] == "pass" for r in results.values()), \
        [r["line"] for r in results.values()]
    assert results["snapshot"]["line"].startswith("snapshot: ok, 17 positions, total ")
    assert results["health"]["line"] == "health: 200 ok"
    assert results["routes"]["line"].endswith("registered, 5/5 expected")


def test_default_checks_name_missing_credentials(client):
    results = judge_all(client, allow_unreachable=True)
    failed = {name: r for name, r in results.items() if not r["ok"]}
    assert list(failed) == ["snapshot"]  # every other route answers without credentials
    assert failed["snapshot"]["kind"] == "deterministic"
    assert failed["snapshot"]["line"] == ('snapshot: ok=false "Missing API credentials" '
                                          "(missing_env: EXCHANGE_CUSTOM_API_KEY, "
                                          "EXCHANGE_CUSTOM_API_SECRET)")


@pytest.mark.parametrize("allowed", [False, True])
def test_default_checks_and_an_unreachable_exchange(client, monkeypatch, allowed):
    monkeypatch.setenv("EXCHANGE_CUSTOM_API_KEY", "k")
    monkeypatch.setenv("EXCHANGE_CUSTOM_API_SECRET", "s")
    monkeypatch.setenv("FAKE_EXCHANGE_UNREACHABLE", "1")
    snapshot = judge_all(client, allow_unreachable=allowed)["snapshot"]
    assert snapshot["ok"] is allowed
    assert snapshot["kind"] == ("warning" if allowed else "transient")
    assert 'ok=false "Exchange unreachable: ConnectTimeout' in snapshot["line"]
