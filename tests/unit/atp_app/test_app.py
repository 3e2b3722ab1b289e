"""The fixture app's routes and contract (FastAPI TestClient on the host venv).

The database calls fail cleanly here (no DATABASE_URL, and psycopg2 may be missing): the
routes that need the db answer 503; everything else is served.
"""

from __future__ import annotations

import ast
import json
import logging
import sys
import types

import pytest

from .conftest import BACKEND_DIR

EXPECTED_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/ping_fast"),
    ("GET", "/api/dashboard/state"),
    ("GET", "/api/portfolio/snapshot"),
    ("GET", "/api/portfolio/latest"),
    ("POST", "/api/portfolio/refresh"),
    ("GET", "/api/diagnostics/whoami"),
    ("GET", "/api/config"),
}
# Routes only the dead router modules define.
DEAD_ONLY_ROUTES = {
    ("GET", "/api/portfolio/simple/health"),
    ("GET", "/api/dashboard/state-fixed"),
    ("GET", "/api/experimental/grid-bot"),
    ("POST", "/api/experimental/grid-bot/start"),
}
DEAD_MODULES = ("routes_portfolio_simple", "routes_dashboard_fixed", "routes_unused")
SNAPSHOT_KEYS = {"ok", "as_of", "exchange", "message", "missing_env", "positions", "totals",
                 "errors"}
POSITION_KEYS = {"asset", "free", "locked", "total", "price_usd", "value_usd", "source"}
TOTALS_KEYS = {"total_value_usd", "total_assets_usd", "total_borrowed_usd",
               "total_collateral_usd"}
KEY = "key-canary-1f2e"
SECRET = "secret-canary-9a8b"


def route_table(backend) -> set[tuple[str, str]]:
    main = backend("app.main")
    return {(method, route.path) for route in main._flat_routes()
            for method in (getattr(route, "methods", None) or ())}


# ------------------------------------------------------------------------- structure


def test_main_imports_and_includes_every_live_router_with_api_prefix() -> None:
    tree = ast.parse((BACKEND_DIR / "app/main.py").read_text())
    imported = {alias.asname: node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module
                and node.module.startswith(("app.api.routes_", "app.routers."))
                for alias in node.names}
    included = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "include_router"):
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            included[node.args[0].id] = kwargs
    assert 23 <= len(imported) <= 26, len(imported)
    assert set(included) == set(imported)
    assert all(kw["prefix"] == "/api" and kw["tags"] for kw in included.values())
    assert imported["config_router"] == "app.routers.config"
    assert not any(mod.endswith(DEAD_MODULES) for mod in imported.values())
    assert 520 <= len((BACKEND_DIR / "app/main.py").read_text().splitlines()) <= 620


def test_api_dir_has_dead_modules_and_stray_copies() -> None:
    api = BACKEND_DIR / "app/api"
    for name in DEAD_MODULES:
        assert (api / f"{name}.py").is_file()
    suffixes = {p.name.split(".py", 1)[1] for p in api.iterdir() if ".py." in p.name}
    assert {".bak", ".backup2", ".new", ".current"} <= suffixes
    assert len(list(api.glob("routes_*.py"))) >= 26


def test_more_than_100_routes_and_the_expected_ones(backend) -> None:
    routes = route_table(backend)
    assert len(routes) >= 110, len(routes)
    assert routes >= EXPECTED_ROUTES
    assert not routes & DEAD_ONLY_ROUTES


def test_openapi_is_larger_than_64_kib_and_lists_the_portfolio(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert len(response.content) > 64 * 1024
    paths = response.json()["paths"]
    assert "get" in paths["/api/portfolio/snapshot"] and "post" in paths["/api/portfolio/refresh"]


def test_import_does_not_touch_the_database(backend, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/x")
    database = backend("app.database")
    calls = []
    monkeypatch.setattr(database, "connection", lambda: calls.append(1))
    sys.modules.pop("app.main", None)
    backend("app.main")
    assert calls == []


# ------------------------------------------------------------------------ endpoints


def test_health_and_ping_fast(client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "path": "/api/health"}
    assert client.get("/ping_fast").status_code == 200


def test_snapshot_without_credentials(client) -> None:
    response = client.get("/api/portfolio/snapshot", params={"exchange": "CRYPTO_COM"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SNAPSHOT_KEYS
    assert body["ok"] is False
    assert body["message"] == "Missing API credentials"
    assert body["missing_env"] == ["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"]
    assert body["positions"] == [] and set(body["totals"]) == TOTALS_KEYS
    assert body["exchange"] == "CRYPTO_COM" and body["errors"]


def test_snapshot_names_only_the_missing_half(client, monkeypatch) -> None:
    monkeypatch.setenv("CRYPTO_COM_API_KEY", KEY)
    body = client.get("/api/portfolio/snapshot").json()
    assert body["ok"] is False and body["missing_env"] == ["EXCHANGE_CUSTOM_API_SECRET"]


@pytest.mark.parametrize("prefix", ["EXCHANGE_CUSTOM", "CRYPTO_COM", "CRYPTOCOM"])
def test_snapshot_with_credentials(client, set_creds, prefix) -> None:
    set_creds(prefix)
    response = client.get("/api/portfolio/snapshot")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SNAPSHOT_KEYS
    assert body["ok"] is True and body["missing_env"] == [] and body["errors"] == []
    assert len(body["positions"]) == 17
    assert all(set(p) == POSITION_KEYS for p in body["positions"])
    totals = body["totals"]
    assert totals["total_value_usd"] == 9386.94
    assert round(sum(p["value_usd"] for p in body["positions"]), 2) == totals["total_assets_usd"]
    assert round(totals["total_collateral_usd"] - totals["total_borrowed_usd"], 2) == 9386.94
    assert KEY not in response.text and SECRET not in response.text


def test_snapshot_exchange_unreachable(client, set_creds, monkeypatch) -> None:
    set_creds()
    monkeypatch.setenv("FAKE_EXCHANGE_MODE", "unreachable")
    response = client.get("/api/portfolio/snapshot")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["missing_env"] == []
    assert body["message"].startswith("Exchange unreachable: connection to api.crypto.com:443")
    assert body["errors"] and "timed out" in body["errors"][0]


def test_snapshot_auth_error_and_unknown_exchange(client, set_creds, monkeypatch) -> None:
    set_creds()
    monkeypatch.setenv("FAKE_EXCHANGE_MODE", "auth_error")
    body = client.get("/api/portfolio/snapshot").json()
    assert body["ok"] is False and body["message"].startswith("Exchange error:")
    monkeypatch.delenv("FAKE_EXCHANGE_MODE")
    response = client.get("/api/portfolio/snapshot", params={"exchange": "BINANCE"})
    assert response.status_code == 200
    assert response.json()["message"] == "Unsupported exchange: BINANCE"


def test_latest_answers_503_when_the_database_is_unusable(client, monkeypatch) -> None:
    response = client.get("/api/portfolio/latest")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unavailable: ")
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader:pw-canary-77@127.0.0.1:1/atp")
    response = client.get("/api/portfolio/latest")
    assert response.status_code == 503
    assert "pw-canary-77" not in response.text


def test_refresh_needs_the_admin_key_when_set(client, set_creds, monkeypatch) -> None:
    set_creds()
    assert client.post("/api/portfolio/refresh").status_code == 503  # no key set: db error
    monkeypatch.setenv("ADMIN_ACTIONS_KEY", "adm-canary")
    assert client.post("/api/portfolio/refresh").status_code == 403
    wrong = client.post("/api/portfolio/refresh", headers={"X-Admin-Key": "nope"})
    assert wrong.status_code == 403
    right = client.post("/api/portfolio/refresh", headers={"X-Admin-Key": "adm-canary"})
    assert right.status_code == 503 and right.json()["detail"].startswith("database unavailable")


def test_dashboard_state(client, set_creds) -> None:
    body = client.get("/api/dashboard/state").json()
    assert body["ok"] is False and body["asset_count"] == 0
    set_creds()
    body = client.get("/api/dashboard/state").json()
    assert body["ok"] is True and body["asset_count"] == 17
    assert body["total_value_usd"] == 9386.94
    assert body["portfolio_value_source"] == "derived_collateral_minus_borrowed"


@pytest.mark.parametrize(("env", "status"), [
    ({}, 404),
    ({"ENVIRONMENT": "aws", "PORTFOLIO_DEBUG": "0"}, 404),
    ({"PORTFOLIO_DEBUG": "1"}, 200),
    ({"ENVIRONMENT": "local"}, 200),
])
def test_whoami_gate(client, monkeypatch, set_creds, env, status) -> None:
    set_creds()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    response = client.get("/api/diagnostics/whoami")
    assert response.status_code == status
    assert KEY not in response.text and SECRET not in response.text
    if status == 200:
        assert response.json()["credential_source"] == "EXCHANGE_CUSTOM_API_KEY"


def test_static_get_routes_answer_and_never_show_secrets(client, backend, set_creds,
                                                         monkeypatch) -> None:
    set_creds()
    monkeypatch.setenv("PORTFOLIO_DEBUG", "1")
    monkeypatch.setenv("ADMIN_ACTIONS_KEY", "adm-canary")
    db_routes = {"/api/portfolio/latest", "/api/health/ready", "/api/diagnostics/db"}
    for method, path in sorted(route_table(backend)):
        if method != "GET" or "{" in path:
            continue
        response = client.get(path)
        expected = {503} if path in db_routes else {200}
        assert response.status_code in expected, (path, response.status_code, response.text)
        for secret in (KEY, SECRET, "adm-canary"):
            assert secret not in response.text, path


def test_path_routes_answer(client) -> None:
    assert client.get("/api/market/ticker/btc_usdt").json()["symbol"] == "BTC_USDT"
    assert client.get("/api/market/ticker/NOPE").status_code == 404
    assert client.get("/api/strategies/swing").status_code == 200
    assert client.put("/api/settings/theme", json={"value": "light"}).json()["value"] == "light"
    assert client.put("/api/settings/theme", json={}).status_code == 422


# ------------------------------------------------------------------------ db layer


class FakeDriver(types.ModuleType):
    """A psycopg2 stand-in: records SQL, returns canned rows, or fails like a bad password."""

    class Error(Exception):
        pass

    def __init__(self, fail: str | None = None) -> None:
        super().__init__("psycopg2")
        self.fail = fail
        self.sql: list[str] = []
        self.rows: list = []

    def connect(self, dsn, **kwargs):
        if self.fail:
            raise self.Error(self.fail)
        return FakeConn(self)


class FakeConn:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def cursor(self):
        return FakeCursor(self.driver)

    def close(self):
        pass


class FakeCursor(FakeConn):
    def execute(self, sql, params=None):
        self.driver.sql.append(" ".join(sql.split()))

    def fetchone(self):
        return self.driver.rows.pop(0)


def test_db_layer_round_trip_with_a_fake_driver(backend, monkeypatch) -> None:
    import datetime

    driver = FakeDriver()
    monkeypatch.setitem(sys.modules, "psycopg2", driver)
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader:pw@db:5432/atp")
    database = backend("app.database")
    snapshot = backend("app.services.portfolio_snapshot").build_snapshot()
    now = datetime.datetime(2025, 1, 6, tzinfo=datetime.UTC)
    driver.rows = [(7, now)]
    assert database.insert_snapshot(snapshot) == {"id": 7, "created_at": now.isoformat()}
    assert driver.sql[-1].startswith("INSERT INTO portfolio_snapshots")
    driver.rows = [(3,), (7, now, json.dumps(snapshot))]
    latest = database.latest_snapshot()
    assert latest["stored_snapshots"] == 3 and latest["snapshot"] == snapshot
    database.ensure_schema()
    assert driver.sql[-1].startswith("CREATE TABLE IF NOT EXISTS portfolio_snapshots")


def test_db_errors_name_the_reason_never_the_password(backend, monkeypatch, caplog) -> None:
    driver = FakeDriver(fail='FATAL: password authentication failed for user "trader" '
                             "(dsn postgresql://trader:pw-canary-77@db/atp)\nDETAIL: more")
    monkeypatch.setitem(sys.modules, "psycopg2", driver)
    monkeypatch.setenv("DATABASE_URL", "postgresql://trader:pw-canary-77@db:5432/atp")
    database = backend("app.database")
    with pytest.raises(database.DatabaseError) as info:
        database.ping()
    message = str(info.value)
    assert message.startswith("Error: FATAL: password authentication failed")
    assert "pw-canary-77" not in message and "DETAIL" not in message
    monitor = backend("app.services.signal_monitor")
    with caplog.at_level(logging.ERROR):
        assert monitor.run_once() is False
    assert any(r.levelname == "ERROR" and "database query failed" in r.getMessage()
               for r in caplog.records)
    assert "pw-canary-77" not in caplog.text


def test_monitor_interval_zero_disables_the_loop(backend, monkeypatch) -> None:
    monitor = backend("app.services.signal_monitor")
    monkeypatch.setenv("SIGNAL_MONITOR_INTERVAL_SECONDS", "0")
    assert monitor.start() is False


@pytest.mark.parametrize(("mode", "verdict", "kind"), [
    ("ok", "ok", "pass"), ("unreachable", "unreachable", "transient"),
    ("auth_error", "rejected", "deterministic")])
def test_the_smoke_check_judges_the_apps_own_snapshot_answers(client, set_creds, monkeypatch,
                                                              mode, verdict, kind) -> None:
    """What the fixture app really answers in each exchange mode, judged by the deploy's
    smoke check: an unreachable exchange is waited for, a refused key stops at once."""
    from ansible_collections.atp.deploy.plugins.module_utils import smoke

    set_creds()
    monkeypatch.setenv("FAKE_EXCHANGE_MODE", mode)
    response = client.get("/api/portfolio/snapshot", params={"exchange": "CRYPTO_COM"})
    check = smoke.normalize_check({
        "name": "snapshot", "path": "/api/portfolio/snapshot?exchange=CRYPTO_COM",
        "contract": "portfolio_snapshot",
        "expect_json_keys": ["ok", "as_of", "exchange", "positions", "totals.total_value_usd"]})
    answer = {"status": response.status_code, "body": response.text}
    assert smoke.classify_snapshot(response.json())[0] == verdict
    assert smoke.judge(check, answer, 8002)["kind"] == kind
