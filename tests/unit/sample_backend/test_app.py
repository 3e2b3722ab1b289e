"""Unit tests for the sample backend in files/sample-backend (FastAPI TestClient)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import BACKEND_DIR

SECRET = "s3cr3t-value-never-shown"
KEY = "key-value-not-shown"
MISSING_DETAIL = (
    "exchange credentials not resolved: set EXCHANGE_CUSTOM_API_KEY/EXCHANGE_CUSTOM_API_SECRET "
    "(aliases CRYPTO_COM_*, CRYPTOCOM_* accepted)"
)
EXPECTED_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/dashboard/state"),
    ("GET", "/api/portfolio/snapshot"),
    ("GET", "/api/portfolio/latest"),
    ("POST", "/api/portfolio/refresh"),
    ("GET", "/api/diagnostics/whoami"),
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


def test_snapshot_with_canonical_credentials(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    response = client.get("/api/portfolio/snapshot", params={"exchange": "CRYPTO_COM"})
    assert response.status_code == 200
    body = response.json()
    assert body["exchange"] == "CRYPTO_COM"
    assert len(body["assets"]) == 17 == body["asset_count"]
    assert len({a["currency"] for a in body["assets"]}) == 17
    assert body["credential_source"] == "EXCHANGE_CUSTOM_API_KEY"
    assert body["total_value_usd"] > 0
    assert body["total_value_usd"] == pytest.approx(
        body["total_collateral_usd"] - body["total_borrowed_usd"]
    )
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
    assert len(response.json()["assets"]) == 17
    assert response.json()["credential_source"] == f"{prefix}_API_KEY"


@pytest.mark.parametrize(
    "path,method",
    [
        ("/api/portfolio/snapshot", "get"),
        ("/api/portfolio/latest", "get"),
        ("/api/portfolio/refresh", "post"),
    ],
)
def test_portfolio_503_without_credentials(client, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 503
    assert response.json() == {"detail": MISSING_DETAIL}


def test_half_pair_does_not_count(client, monkeypatch):
    monkeypatch.setenv("EXCHANGE_CUSTOM_API_KEY", KEY)
    monkeypatch.setenv("CRYPTO_COM_API_SECRET", SECRET)
    assert client.get("/api/portfolio/snapshot").status_code == 503


def test_unknown_exchange_is_400(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    response = client.get("/api/portfolio/snapshot", params={"exchange": "BINANCE"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "BINANCE" in detail and "CRYPTO_COM" in detail


def test_latest_and_refresh(client, monkeypatch):
    set_creds(monkeypatch, "EXCHANGE_CUSTOM")
    refreshed = client.post("/api/portfolio/refresh")
    assert refreshed.status_code == 200
    latest = client.get("/api/portfolio/latest")
    assert latest.status_code == 200
    assert latest.json() == refreshed.json()
    # Credentials removed: the cached snapshot is no longer served.
    monkeypatch.delenv("EXCHANGE_CUSTOM_API_SECRET")
    assert client.get("/api/portfolio/latest").status_code == 503


def test_dashboard_state(client, monkeypatch):
    set_creds(monkeypatch, "CRYPTOCOM")
    body = client.get("/api/dashboard/state").json()
    assert body["portfolio_value_source"] == "derived_collateral_minus_borrowed"
    assert len(body["assets"]) == 17
    assert body["total_value_usd"] > 0
    assert body["credential_source"] == "CRYPTOCOM_API_KEY"
    assert body["errors"] == []


def test_dashboard_state_without_credentials(client):
    response = client.get("/api/dashboard/state")
    assert response.status_code == 200
    body = response.json()
    assert body["assets"] == [] and body["total_value_usd"] == 0.0
    assert body["portfolio_value_source"] == "derived_collateral_minus_borrowed"
    assert body["errors"] == [MISSING_DETAIL]


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
