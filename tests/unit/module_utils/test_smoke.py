"""Tests of module_utils/smoke.py: judging answers against the app's smoke contract."""

from __future__ import annotations

import json

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import smoke

PORT = 8002


def check(**kwargs) -> dict:
    return smoke.normalize_check({"path": "/x", **kwargs})


def answer(status=200, body="", error=None, too_big=False, timeout=10.0) -> dict:
    if not isinstance(body, str):
        body = json.dumps(body)
    return {"status": status, "body": body, "error": error, "too_big": too_big,
            "timeout": timeout}


SNAPSHOT_CHECK = check(name="snapshot", path="/api/portfolio/snapshot?exchange=CRYPTO_COM",
                       expect_json={"ok": True},
                       expect_json_keys=["ok", "as_of", "exchange", "positions",
                                         "totals.total_value_usd"],
                       contract="portfolio_snapshot")


def snapshot(ok=True, message="", missing_env=(), errors=(), positions=17, total=9386.94):
    return {"ok": ok, "as_of": "2026-01-01T00:00:00+00:00", "exchange": "CRYPTO_COM",
            "message": message, "missing_env": list(missing_env),
            "positions": [{"asset": f"A{i}", "total": 1} for i in range(positions)],
            "totals": {"total_value_usd": total, "total_assets_usd": total,
                       "total_borrowed_usd": 0.0, "total_collateral_usd": total},
            "errors": list(errors)}


# --------------------------------------------------------------------------- normalize

def test_normalize_check_defaults():
    assert smoke.normalize_check({"path": "/health"}) == {
        "name": "GET /health", "method": "GET", "path": "/health", "expect_status": [200],
        "expect_json": {}, "expect_json_keys": [], "body": None, "headers": {},
        "timeout": None, "contract": None}


@pytest.mark.parametrize("given,expected", [
    (200, [200]), ("404", [404]), ([200, 403], [200, 403]), (None, [200]),
    ("any_but_5xx", smoke.ANY_BUT_5XX), ("ANY_BUT_5XX", smoke.ANY_BUT_5XX)])
def test_expect_status_forms(given, expected):
    assert check(expect_status=given)["expect_status"] == expected


@pytest.mark.parametrize("bad,match", [
    ({"path": "health"}, "must start with '/'"),
    ({"path": "/x", "method": "TRACE"}, "method must be one of"),
    ({"path": "/x", "expect_status": "ok"}, "expect_status must be a status code"),
    ({"path": "/x", "expect_status": True}, "expect_status must be a status code"),
    ({"path": "/x", "expect_status": 999}, "is not an HTTP status"),
    ({"path": "/x", "expect_status": []}, "empty list"),
    ({"path": "/x", "timeout": 0}, "timeout must be a number of seconds > 0"),
    ({"path": "/x", "timeout": "soon"}, "timeout must be a number of seconds > 0"),
    ({"path": "/x", "contract": "orders"}, "contract must be one of portfolio_snapshot"),
])
def test_normalize_check_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        smoke.normalize_check(bad)


@pytest.mark.parametrize("bad", [{"path": "/x", "expect_json": [1]},
                                 {"path": "/x", "expect_json_keys": "a"},
                                 {"path": "/x", "headers": ["X-A: 1"]}, "nope"])
def test_normalize_check_type_errors(bad):
    with pytest.raises(TypeError):
        smoke.normalize_check(bad)


def test_per_check_options_kept():
    c = check(method="post", timeout="2.5", headers={"X-Admin-Key": "k"}, body={"a": 1})
    assert (c["method"], c["timeout"], c["headers"], c["body"]) == (
        "POST", 2.5, {"X-Admin-Key": "k"}, {"a": 1})


def test_lookup_nested_and_indexed():
    doc = {"ok": True, "totals": {"total_value_usd": 1.5, "inner": {"x": None}},
           "positions": [{"asset": "BTC"}], "a.b": 7}
    assert smoke.lookup(doc, "totals.total_value_usd") == 1.5
    assert smoke.lookup(doc, "totals.inner.x") is None  # present, null
    assert smoke.lookup(doc, "positions.0.asset") == "BTC"
    assert smoke.lookup(doc, "a.b") == 7  # a key with a dot, found whole
    for absent in ("totals.nope", "positions.1.asset", "positions.x", "ok.deeper", "zzz"):
        assert smoke.lookup(doc, absent) is smoke._MISSING


def test_booleans_are_not_numbers():
    assert smoke.same_value(True, True) and smoke.same_value(1, 1.0)
    assert not smoke.same_value(True, 1) and not smoke.same_value(0, False)
    assert not smoke.same_value("true", True)


def test_json_problems_nested():
    doc = {"status": "ok", "totals": {"total_value_usd": 5}}
    assert smoke.json_problems(doc, {"totals.total_value_usd": 5}, ["totals.total_value_usd"]) \
        == []
    assert smoke.json_problems(doc, {"status": "down", "totals.currency": "USD"},
                               ["positions", "totals.total_value_usd", "totals.x"]) == [
        'status="ok" (expected "down")', 'totals.currency missing (expected "USD")',
        "keys missing: positions, totals.x"]


# --------------------------------------------------------------------------- judge: status

def test_pass_lines():
    health = check(name="health", expect_json={"status": "ok"})
    result = smoke.judge(health, answer(200, {"status": "ok", "path": "/api/health"}), PORT)
    assert (result["ok"], result["kind"], result["line"]) == (True, "pass", "health: 200 ok")
    latest = check(name="latest", expect_status="any_but_5xx")
    assert smoke.judge(latest, answer(200, {"x": 1}), PORT)["line"] == "latest: 200"
    assert smoke.judge(latest, answer(404, {"detail": "no rows"}), PORT)["ok"] is True


def test_not_5xx():
    latest = check(name="latest", expect_status="any_but_5xx")
    result = smoke.judge(latest, answer(500, "Internal Server Error"), PORT)
    assert result["ok"] is False and result["kind"] == "deterministic"
    assert result["line"] == "latest: 500 Internal Server Error (expected any status but 5xx)"
    assert result["hint"] == smoke.HINT_SERVER_ERROR
    assert smoke.judge(latest, answer(503, ""), PORT)["kind"] == "transient"


def test_status_list():
    admin = check(name="refresh", method="POST", expect_status=[200, 403])
    assert smoke.judge(admin, answer(403, {"detail": "Forbidden"}), PORT)["ok"] is True
    bad = smoke.judge(admin, answer(401, {"detail": "no"}), PORT)
    assert bad["seen"] == '401 {"detail":"no"} (expected 200 or 403)'
    assert bad["hint"] == smoke.HINT_REFUSED_REQUEST


def test_404_is_deterministic_with_route_hint():
    result = smoke.judge(SNAPSHOT_CHECK, answer(404, {"detail": "Not Found"}), PORT)
    assert result["kind"] == "deterministic" and result["status"] == 404
    assert result["seen"] == '404 {"detail":"Not Found"} (expected 200)'
    assert result["hint"] == smoke.HINT_NOT_FOUND
    assert result["body"] == '{"detail": "Not Found"}'


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_are_transient(status):
    result = smoke.judge(SNAPSHOT_CHECK, answer(status, "starting"), PORT)
    assert result["kind"] == "transient" and f"status {status}" in result["hint"]


def test_no_answer_is_transient():
    refused = smoke.judge(SNAPSHOT_CHECK, answer(None, error="refused"), PORT)
    assert refused["kind"] == "transient" and refused["status"] is None
    assert refused["seen"] == "no answer (refused)"
    assert refused["hint"] == smoke.HINT_REFUSED.format(port=PORT)
    slow = smoke.judge(SNAPSHOT_CHECK, answer(None, error="timeout", timeout=2.5), PORT)
    assert "no answer within 2.5s on 8002" in slow["hint"]
    other = smoke.judge(SNAPSHOT_CHECK, answer(None, error="boom"), PORT)
    assert other["hint"] == "request failed: boom"


def test_too_big_and_not_json():
    big = smoke.judge(SNAPSHOT_CHECK, answer(200, "{", too_big=True), PORT, max_body_bytes=2048)
    assert big["kind"] == "deterministic" and big["seen"] == "200, body larger than 2048 bytes"
    html = smoke.judge(SNAPSHOT_CHECK, answer(200, "<html>proxy</html>\nmore"), PORT)
    assert html["seen"] == "200 body is not JSON: <html>proxy</html>"
    assert html["hint"] == smoke.HINT_NOT_JSON


def test_body_truncated_in_results_and_lines():
    result = smoke.judge(check(name="x"), answer(500, "x" * 1000), PORT)
    assert len(result["body"]) == smoke.BODY_LIMIT
    assert len(result["seen"]) < 150


def test_wrong_value_and_missing_keys_are_deterministic():
    health = check(name="health", expect_json={"status": "ok"}, expect_json_keys=["a.b"])
    result = smoke.judge(health, answer(200, {"status": "degraded"}), PORT)
    assert result["kind"] == "deterministic"
    assert result["line"] == 'health: 200 status="degraded" (expected "ok"), keys missing: a.b'


# --------------------------------------------------------------------------- contract

def test_snapshot_ok_line():
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, snapshot()), PORT)
    assert result["ok"] is True and result["kind"] == "pass"
    assert result["line"] == "snapshot: ok, 17 positions, total 9386.94"


def test_snapshot_credentials_missing_always_fails():
    body = snapshot(ok=False, message="Missing API credentials", positions=0, total=0,
                    missing_env=["EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET"])
    for allow in (False, True):
        result = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT, allow)
        assert result["ok"] is False and result["kind"] == "deterministic"
        assert result["line"] == ('snapshot: ok=false "Missing API credentials" (missing_env: '
                                  'EXCHANGE_CUSTOM_API_KEY, EXCHANGE_CUSTOM_API_SECRET)')
        assert "EXCHANGE_CUSTOM_API_KEY, EXCHANGE_CUSTOM_API_SECRET" in result["hint"]


def test_snapshot_missing_env_alone_means_credentials():
    body = snapshot(ok=False, message="cannot start", missing_env=["EXCHANGE_KEY"])
    verdict, seen, _hint = smoke.classify_snapshot(body)
    assert verdict == "credentials"
    assert seen == 'ok=false "cannot start" (missing_env: EXCHANGE_KEY)'
    assert smoke.classify_snapshot(snapshot(ok=False, message="missing api credentials"))[0] \
        == "credentials"


def test_snapshot_unreachable_fails_unless_allowed():
    body = snapshot(ok=False, message="Exchange unreachable", positions=0,
                    errors=["ConnectTimeout: api.crypto.com", "retry 3/3 failed", "third",
                            "fourth"])
    refused = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT)
    assert refused["ok"] is False and refused["kind"] == "transient"  # the exchange may come back
    assert refused["seen"] == ('ok=false "Exchange unreachable" (errors: ConnectTimeout: '
                               'api.crypto.com; retry 3/3 failed (+2 more))')
    assert "deploy_allow_exchange_unreachable=true" in refused["hint"]
    allowed = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT, allow_exchange_unreachable=True)
    assert allowed["ok"] is True and allowed["kind"] == "warning"
    assert allowed["line"].startswith('snapshot: WARNING ok=false "Exchange unreachable"')
    assert allowed["warning"].endswith(smoke.WARNING_UNREACHABLE)


def test_snapshot_errors_already_in_the_message_are_not_repeated():
    body = snapshot(ok=False, message="Exchange unreachable: ConnectTimeout x",
                    errors=["ConnectTimeout x", "second"])
    assert smoke.classify_snapshot(body)[1] == ('ok=false "Exchange unreachable: ConnectTimeout '
                                                'x" (errors: second)')


def test_snapshot_errors_without_message_are_unreachable():
    verdict, seen, _ = smoke.classify_snapshot(snapshot(ok=False, errors=["dns failure"]))
    assert verdict == "unreachable" and seen == "ok=false (errors: dns failure)"


def test_snapshot_ok_false_without_reason_fails_even_if_allowed():
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, snapshot(ok=False)), PORT, True)
    assert result["ok"] is False and result["kind"] == "deterministic"
    assert result["hint"] == smoke.HINT_NO_REASON


def test_snapshot_without_boolean_ok():
    body = {"assets": [], "total_value_usd": 1}  # the old sample's shape
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT)
    assert result["ok"] is False and result["kind"] == "deterministic"
    assert result["seen"] == ("200 ok missing (expected true), keys missing: ok, as_of, "
                              "exchange, positions, totals.total_value_usd")
    assert result["hint"] == smoke.HINT_NO_OK
    no_keys = check(name="s", contract="portfolio_snapshot")
    assert smoke.judge(no_keys, answer(200, {"ok": "yes"}), PORT)["seen"] == 'ok="yes"'
    assert smoke.judge(no_keys, answer(200, [1]), PORT)["seen"] == "body is list, not a JSON object"


def test_snapshot_ok_but_keys_missing():
    body = snapshot()
    del body["totals"]["total_value_usd"]
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT)
    assert result["ok"] is False
    assert result["seen"] == ("ok, 17 positions, total ?, but keys missing: "
                              "totals.total_value_usd")


def test_unreachable_with_missing_keys_is_not_excused():
    body = snapshot(ok=False, message="timeout")
    del body["positions"]
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT, True)
    assert result["ok"] is False and result["kind"] == "deterministic"
    assert result["seen"] == 'ok=false "timeout", keys missing: positions'


def test_without_contract_ok_false_is_a_plain_wrong_value():
    plain = check(name="s", expect_json={"ok": True})
    result = smoke.judge(plain, answer(200, snapshot(ok=False, message="x")), PORT, True)
    assert result["ok"] is False and result["seen"] == "200 ok=false (expected true)"


# --------------------------------------------------------------------------- routes

def openapi(n: int) -> dict:
    paths = {f"/api/r{i}": {"get": {"summary": "x" * 200}} for i in range(n)}
    paths["/api/health"] = {"get": {}, "parameters": []}  # not an operation
    paths["/api/portfolio/refresh"] = {"post": {}, "options": {}}
    return {"openapi": "3.1.0", "paths": paths}


def test_routes_pass_line():
    doc = openapi(110)
    result = smoke.judge_routes(answer(200, doc), ["GET /api/health",
                                                   "POST /api/portfolio/refresh"], PORT)
    assert result["ok"] is True and result["registered"] == 113
    assert result["line"] == "routes: 113 registered, 2/2 expected"


def test_routes_missing_are_deterministic():
    result = smoke.judge_routes(answer(200, openapi(3)),
                                ["GET /api/health", "GET /api/portfolio/snapshot",
                                 "GET /api/portfolio/refresh"], PORT)
    assert result["kind"] == "deterministic"
    assert result["missing"] == ["GET /api/portfolio/snapshot", "GET /api/portfolio/refresh"]
    assert result["line"] == ("routes: 6 registered, 1/3 expected, missing GET "
                              "/api/portfolio/snapshot, GET /api/portfolio/refresh")
    assert "main.py does not include their router" in result["hint"]


def test_routes_answer_problems():
    routes = ["GET /api/health"]
    assert smoke.judge_routes(answer(None, error="refused"), routes, PORT)["kind"] == "transient"
    nf = smoke.judge_routes(answer(404, {"detail": "Not Found"}), routes, PORT)
    assert nf["kind"] == "deterministic" and nf["hint"] == smoke.HINT_NO_OPENAPI
    html = smoke.judge_routes(answer(200, "<html>"), routes, PORT)
    assert html["seen"] == "/openapi.json is not an OpenAPI document: <html>"
    big = smoke.judge_routes(answer(200, "{", too_big=True), routes, PORT, 4096)
    assert big["seen"] == "/openapi.json larger than 4096 bytes"


def test_missing_routes():
    doc = {"paths": {"/api/portfolio/snapshot": {"get": {}}, "/api/orders": {"post": {}}}}
    assert smoke.missing_routes(doc, ["GET /api/portfolio/snapshot", "POST /api/orders"]) == []
    assert smoke.missing_routes(doc, ["GET /api/orders", "GET /api/nope"]) == [
        "GET /api/orders", "GET /api/nope"]
    assert smoke.missing_routes({}, ["GET /x"]) == ["GET /x"]


# --------------------------------------------------------------------------- streaks

def result_of(kind, seen="x", name="snapshot", status=404):
    return {"name": name, "kind": kind, "status": status, "seen": seen}


def test_identical_deterministic_answers_settle():
    streaks = {}
    for _ in range(2):
        streaks = smoke.update_streaks(streaks, [result_of("deterministic")])
    assert smoke.settled(streaks, 3) == []
    streaks = smoke.update_streaks(streaks, [result_of("deterministic")])
    assert smoke.settled(streaks, 3) == ["snapshot"]


def test_a_different_or_transient_answer_restarts_the_count():
    streaks = {}
    for seen in ("a", "a", "b", "b"):
        streaks = smoke.update_streaks(streaks, [result_of("deterministic", seen)])
    assert streaks["snapshot"][1] == 2
    streaks = smoke.update_streaks(streaks, [result_of("transient")])
    assert streaks["snapshot"] == (None, 0)
    for _ in range(5):
        streaks = smoke.update_streaks(streaks, [result_of("transient")])
    assert smoke.settled(streaks) == []


# --------------------------------------------------------------------------- error log

def test_count_error_lines():
    text = "\n".join([
        "INFO:     127.0.0.1 - GET /api/health 200",
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "2026-01-01 CRITICAL db down",
        "[2026-01-01 00:00:00 +0000] [7] [ERROR] Worker failed",
        "WARNING: no errors here, an error_count of 0, TERRORS",
    ])
    assert smoke.count_error_lines(text) == 4
    assert smoke.count_error_lines("") == 0


def test_error_rate_and_lines():
    assert smoke.error_rate(0, 12) == 0.0
    assert smoke.error_rate(11, 60) == 11.0
    assert smoke.error_rate(3, 0.2) == 180.0  # a window under a second counts as one second
    log = {"containers": ["b-1"], "lines": 132, "per_minute": 659.3, "window_seconds": 12.01,
           "max_per_minute": None, "error": None}
    assert smoke.error_log_line(log) == "error log: 659.3/min (132 lines in 12s)"
    assert smoke.error_log_line({**log, "window_seconds": 0.44}).endswith("in 0.4s)")
    assert smoke.error_log_failure(log) is None  # report only
    limited = {**log, "max_per_minute": 10.0}
    assert smoke.error_log_line(limited).endswith("-- above the limit 10.0/min")
    failure = smoke.error_log_failure(limited)
    assert failure.startswith("659.3 ERROR/CRITICAL/Traceback lines a minute from b-1")
    assert "expected at most 10.0: see docker logs b-1" in failure
    assert smoke.error_log_failure({**limited, "per_minute": 10.0}) is None
    assert smoke.error_log_line({**log, "error": "no container of p/s"}) == \
        "error log: not read (no container of p/s)"


# --------------------------------------------------------------------------- messages

def test_failure_message_one_check():
    result = smoke.judge(SNAPSHOT_CHECK, answer(200, snapshot(
        ok=False, message="Missing API credentials", missing_env=["EXCHANGE_CUSTOM_API_KEY"])),
        PORT)
    msg = smoke.failure_message([result], {"snapshot": 3}, "identical", 3, 4.2,
                                "http://127.0.0.1:8002")
    assert "\n" not in msg
    assert msg.startswith('smoke check "snapshot" failed: ok=false "Missing API credentials" '
                          "(missing_env: EXCHANGE_CUSTOM_API_KEY) (3 identical answers): the "
                          "app has no exchange credentials: set EXCHANGE_CUSTOM_API_KEY")
    assert msg.endswith("-- 3 attempts in 4.2s against http://127.0.0.1:8002 (a wrong answer "
                        "repeated, waiting would not change it)")


def test_failure_message_several_and_crash_and_log():
    a = smoke.judge(check(name="health"), answer(None, error="refused"), PORT)
    b = smoke.judge_routes(answer(None, error="refused"), ["GET /x"], PORT)
    msg = smoke.failure_message([a, b], {}, "crashed", 2, 1.0, "http://h:1",
                                crash="container c crashed on start (...)",
                                log_failure="99 ERROR/CRITICAL/Traceback lines a minute")
    assert "\n" not in msg
    assert msg.startswith('container c crashed on start (...); 3 smoke checks failed: "health": '
                          "no answer (refused): nothing listening on 8002")
    assert '; "routes": /openapi.json: no answer (refused)' in msg
    assert '; "error log": 99 ERROR/CRITICAL/Traceback lines a minute' in msg
    assert msg.endswith("(the container is crashing)")


def test_crash_verdict_stops_waiting_only_for_a_crashing_container():
    up = {"name": "b-1", "state": "running", "restart_count": 0, "exit_code": 0}
    assert smoke.crash_verdict([up]) is None
    assert smoke.crash_verdict([{**up, "restart_count": 1}]) is None  # may still come up
    assert smoke.crash_verdict([]) is None
    for crashed in ({**up, "state": "restarting", "restart_count": 1, "exit_code": 1},
                    {**up, "state": "exited", "exit_code": 3},
                    {**up, "restart_count": 2}):
        line = smoke.crash_verdict([crashed])
        assert line.startswith("container b-1 crashed on start") and "docker logs b-1" in line


@pytest.mark.parametrize(("message", "errors"), [
    ("Exchange error: exchange rejected the API key (code 40101 UNAUTHORIZED)", []),
    ("Exchange error", ["HTTP 401 Unauthorized"]),
    ("Exchange error: status 401", []),
    ("Exchange error: 401 Client Error for url https://api.crypto.com/v2/private", []),
    ("Exchange error: 40103 IP_ILLEGAL", []),
    ("Exchange error: INVALID_API_KEY", []),
    ("Exchange error: invalid signature", []),
])
def test_credentials_the_exchange_refuses_fail_at_once_unless_allowed(message, errors):
    """The fixture's FAKE_EXCHANGE_MODE=auth_error wording and the real exchange's codes:
    waiting will not change a refused key, so the checks stop at once (not after
    smoke_timeout) with advice about the key, not the network."""
    body = snapshot(ok=False, message=message, positions=0, errors=errors)
    assert smoke.classify_snapshot(body)[0] == "rejected"
    refused = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT)
    assert refused["ok"] is False and refused["kind"] == "deterministic"
    assert refused["hint"] == smoke.HINT_REJECTED and "IP allow-list" in refused["hint"]
    allowed = smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT, allow_exchange_unreachable=True)
    assert allowed["ok"] is True and allowed["kind"] == "warning"
    assert allowed["line"].endswith(f"-- {smoke.WARNING_REJECTED}")


@pytest.mark.parametrize("message", ["Exchange unreachable: ConnectTimeout api.crypto.com",
                                     "Exchange error: 502 Bad Gateway", "timeout after 4 s",
                                     "Exchange error: 503 Service Unavailable after 401 ms",
                                     "Exchange error: timeout (request id 7f-401-a)"])
def test_an_exchange_that_is_only_unreachable_is_still_waited_for(message):
    body = snapshot(ok=False, message=message, positions=0)
    assert smoke.classify_snapshot(body)[0] == "unreachable"
    assert smoke.judge(SNAPSHOT_CHECK, answer(200, body), PORT)["kind"] == "transient"
