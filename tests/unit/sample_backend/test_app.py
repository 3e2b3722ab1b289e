"""Unit tests for the sample backend in files/sample-backend (FastAPI TestClient)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import BACKEND_DIR

SECRET = "s3cr3t-value-never-shown"
KEY = "key-value-not-shown"
EXPECTED_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/dashboard/state"),
    ("GET", "/api/portfolio/snapshot"),
    ("GET", "/api/portfolio/latest"),
    ("POST", "/api/portfolio/refresh"),
    ("GET", "/api/diagnostics/whoami"),
    ("GET", "/ping_fast"),
}


def set_creds(monkeypatch, prefix: str, key: str = KEY, secret: str = SECRET) -> None:
    monkeypatch.setenv(f"{prefix}_API_KEY", key)
    monkeypatch.setenv(f"{prefix}_API_SECRET", secret)


def test_health_body_is_exact(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "path": "/api/health"}


def route_table(app) -> set[tuple[str, str]]:
    """(method, path) of every route. Newer FastAPI keeps included routers nested in
    ``app.routes`` and offers ``iter_route_contexts`` to flatten them; 0.92 is already flat."""
    import fastapi.routing

    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(iter_contexts(app.routes)) if iter_contexts else app.routes
    return {
        (method, route.path)
        for route in routes
        for method in (getattr(route, "methods", None) or ())
    }


def test_all_routes_registered_and_in_openapi(client, backend):
    registered = route_table(backend("app.main").app)
    assert registered >= EXPECTED_ROUTES
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in EXPECTED_ROUTES:
        assert method.lower() in paths[path]


def test_main_includes_every_router_module():
    """Mirror of the deploy tooling's static check: each APIRouter module is included."""
    main_src = (BACKEND_DIR / "app" / "main.py").read_text()
    tree = ast.parse(main_src)
    imported = {
        (node.module, alias.asname)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == "router"
    }
    included = {
        call.args[0].id
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and getattr(call.func, "attr", None) == "include_router"
        and isinstance(call.args[0], ast.Name)
    }
    for module in sorted(Path(BACKEND_DIR / "app" / "api").glob("*.py")):
        if "APIRouter()" not in module.read_text():
            continue
        dotted = f"app.api.{module.stem}"
        names = [asname for mod, asname in imported if mod == dotted]
        assert names and names[0] in included, f"{dotted} router not included by main.py"


SNAPSHOT_KEYS = {"ok", "as_of", "exchange", "message", "missing_env", "positions", "totals",
                 "errors"}
POSITION_KEYS = {"asset", "free", "locked", "total", "price_usd", "value_usd", "source"}
TOTALS_KEYS = {"total_value_usd", "total_assets_usd", "total_borrowed_usd",
               "total_collateral_usd"}
CANONICAL = ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]


def test_ping_fast(client):
    response = client.get("/ping_fast")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_snapshot_with_canonical_credentials(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    response = client.get("/api/portfolio/snapshot", params={"exchange": "CRYPTO_COM"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SNAPSHOT_KEYS
    assert body["ok"] is True and body["exchange"] == "CRYPTO_COM"
    assert body["message"] == "" and body["missing_env"] == [] and body["errors"] == []
    assert len(body["positions"]) == 17
    assert len({p["asset"] for p in body["positions"]}) == 17
    for position in body["positions"]:
        assert set(position) == POSITION_KEYS
        assert position["total"] == pytest.approx(position["free"] + position["locked"])
        assert position["value_usd"] == pytest.approx(position["total"] * position["price_usd"],
                                                      abs=0.01)
    totals = body["totals"]
    assert set(totals) == TOTALS_KEYS and totals["total_value_usd"] > 0
    assert totals["total_value_usd"] == pytest.approx(
        totals["total_collateral_usd"] - totals["total_borrowed_usd"])
    assert totals["total_assets_usd"] == pytest.approx(
        sum(p["value_usd"] for p in body["positions"]), abs=0.05)
    assert body["as_of"]
    assert SECRET not in response.text and KEY not in response.text


def test_snapshot_is_deterministic(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    first = client.get("/api/portfolio/snapshot").json()
    second = client.get("/api/portfolio/snapshot").json()
    first.pop("as_of"), second.pop("as_of")
    assert first == second


@pytest.mark.parametrize("prefix", ["CRYPTO_COM", "CRYPTOCOM"])
def test_snapshot_with_alias_credentials(client, monkeypatch, prefix):
    set_creds(monkeypatch, prefix)
    response = client.get("/api/portfolio/snapshot?exchange=CRYPTO_COM")
    assert response.status_code == 200
    assert response.json()["ok"] is True and len(response.json()["positions"]) == 17


def test_snapshot_without_credentials_is_200_ok_false(client):
    response = client.get("/api/portfolio/snapshot?exchange=CRYPTO_COM")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SNAPSHOT_KEYS
    assert body["ok"] is False and body["message"] == "Missing API credentials"
    assert body["missing_env"] == CANONICAL
    assert body["positions"] == [] and set(body["totals"]) == TOTALS_KEYS
    assert body["totals"]["total_value_usd"] == 0.0


def test_missing_env_names_only_what_is_missing(client, monkeypatch):
    monkeypatch.setenv("EXCHANGE_CUSTOM_API_KEY", KEY)
    monkeypatch.setenv("CRYPTO_COM_API_SECRET", SECRET)  # half pairs do not count
    body = client.get("/api/portfolio/snapshot").json()
    assert body["ok"] is False and body["missing_env"] == ["EXCHANGE_CUSTOM_API_SECRET"]
    assert KEY not in str(body) and SECRET not in str(body)


def test_unreachable_exchange(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    monkeypatch.setenv("FAKE_EXCHANGE_UNREACHABLE", "1")
    response = client.get("/api/portfolio/snapshot")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["message"].startswith("Exchange unreachable: ")
    assert body["missing_env"] == [] and body["errors"] and body["positions"] == []


def test_unknown_exchange_is_ok_false(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    response = client.get("/api/portfolio/snapshot", params={"exchange": "BINANCE"})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and "BINANCE" in body["message"] and "CRYPTO_COM" in body["message"]


def test_latest_and_refresh(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    refreshed = client.post("/api/portfolio/refresh")
    assert refreshed.status_code == 200 and refreshed.json()["ok"] is True
    latest = client.get("/api/portfolio/latest")
    assert latest.status_code == 200
    assert latest.json() == refreshed.json()  # the kept snapshot, same as_of
    # Credentials removed: the kept snapshot is no longer served.
    monkeypatch.delenv("EXCHANGE_CUSTOM_API_SECRET")
    gone = client.get("/api/portfolio/latest")
    assert gone.status_code == 200 and gone.json()["ok"] is False
    assert gone.json()["missing_env"] == ["EXCHANGE_CUSTOM_API_SECRET"]


def test_latest_without_anything_kept_builds_one(client, monkeypatch):
    assert client.get("/api/portfolio/latest").json()["ok"] is False
    set_creds(monkeypatch, "CRYPTOCOM")
    body = client.get("/api/portfolio/latest").json()
    assert body["ok"] is True and len(body["positions"]) == 17


def test_refresh_needs_the_admin_key_when_set(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    monkeypatch.setenv("ADMIN_ACTIONS_KEY", "admin-secret-value")
    for headers in ({}, {"X-Admin-Key": "wrong"}):
        response = client.post("/api/portfolio/refresh", headers=headers)
        assert response.status_code == 403 and response.json() == {"detail": "Forbidden"}
        assert "admin-secret-value" not in response.text
    ok = client.post("/api/portfolio/refresh", headers={"X-Admin-Key": "admin-secret-value"})
    assert ok.status_code == 200 and ok.json()["ok"] is True


def test_dashboard_state(client, monkeypatch):
    set_creds(monkeypatch, "CRYPTOCOM")
    response = client.get("/api/dashboard/state")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["errors"] == []
    assert len(body["portfolio"]["positions"]) == 17
    assert body["portfolio"]["totals"]["total_value_usd"] > 0


def test_dashboard_state_without_credentials(client):
    response = client.get("/api/dashboard/state")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["portfolio"]["positions"] == []
    assert body["errors"] == ["Missing API credentials"]


def test_whoami_404_by_default(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    monkeypatch.setenv("ENVIRONMENT", "aws")
    response = client.get("/api/diagnostics/whoami")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("flag", [("PORTFOLIO_DEBUG", "1"), ("ENVIRONMENT", "local")])
def test_whoami_enabled(client, monkeypatch, flag):
    set_creds(monkeypatch, "CRYPTO_COM")
    monkeypatch.setenv(*flag)
    monkeypatch.setenv("ATP_INSTANCE_ID", "i-0123456789abcdef0")
    monkeypatch.setenv("ATP_GIT_SHA", "abc1234")
    response = client.get("/api/diagnostics/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "backend-aws"
    assert body["instance_id"] == "i-0123456789abcdef0"
    assert body["git_sha"] == "abc1234"
    assert body["hostname"]
    assert body["credential_source"] == "CRYPTO_COM_API_KEY"
    assert set(body) == {
        "service",
        "environment",
        "instance_id",
        "hostname",
        "git_sha",
        "build_time",
        "credential_source",
    }
    assert SECRET not in response.text and KEY not in response.text


def test_whoami_without_credentials_or_instance(client, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_DEBUG", "1")
    body = client.get("/api/diagnostics/whoami").json()
    assert body["credential_source"] is None
    assert body["instance_id"] is None
    assert body["environment"] == "aws"


def test_resolver_precedence(backend):
    resolve = backend("app.utils.credential_resolver").resolve_exchange_credentials
    env = {
        "EXCHANGE_CUSTOM_API_KEY": "k1",
        "EXCHANGE_CUSTOM_API_SECRET": "s1",
        "CRYPTO_COM_API_KEY": "k2",
        "CRYPTO_COM_API_SECRET": "s2",
        "CRYPTOCOM_API_KEY": "k3",
        "CRYPTOCOM_API_SECRET": "s3",
    }
    creds = resolve(env)
    assert (creds.key, creds.secret, creds.source) == ("k1", "s1", "EXCHANGE_CUSTOM_API_KEY")
    env["EXCHANGE_CUSTOM_API_SECRET"] = "  "  # blank counts as missing
    assert resolve(env).source == "CRYPTO_COM_API_KEY"
    del env["CRYPTO_COM_API_KEY"]
    assert resolve(env).source == "CRYPTOCOM_API_KEY"
    env["CRYPTOCOM_API_KEY"] = ""
    assert resolve(env) is None
    assert resolve({}) is None


def test_resolver_reads_os_environ(backend, monkeypatch):
    resolve = backend("app.utils.credential_resolver").resolve_exchange_credentials
    assert resolve() is None
    set_creds(monkeypatch, "CRYPTOCOM")
    assert resolve().source == "CRYPTOCOM_API_KEY"


def test_repr_hides_secret(backend):
    module = backend("app.utils.credential_resolver")
    creds = module.resolve_exchange_credentials(
        {"EXCHANGE_CUSTOM_API_KEY": KEY, "EXCHANGE_CUSTOM_API_SECRET": SECRET}
    )
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert SECRET not in text
        assert KEY not in text
        assert "EXCHANGE_CUSTOM_API_KEY" in text


def test_fake_exchange_requires_credentials(backend):
    fake = backend("app.services.fake_exchange")
    with pytest.raises(fake.ExchangeAuthError):
        fake.fetch_balances(None)


def test_missing_canonical_env(backend):
    module = backend("app.utils.credential_resolver")
    assert module.missing_canonical_env({}) == CANONICAL
    assert module.missing_canonical_env({"EXCHANGE_CUSTOM_API_KEY": " "}) == CANONICAL
    assert module.missing_canonical_env({"EXCHANGE_CUSTOM_API_KEY": "k",
                                         "EXCHANGE_CUSTOM_API_SECRET": "s"}) == []
