"""Tests of module_utils/smoke.py (judging smoke-check answers and hints)."""

from __future__ import annotations

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import smoke

SNAPSHOT = smoke.normalize_check({"name": "snapshot", "path": "/api/portfolio/snapshot"})


def test_normalize_check_defaults_and_errors():
    assert smoke.normalize_check({"path": "/health"}) == {
        "name": "GET /health", "method": "GET", "path": "/health", "expect_status": 200,
        "expect_json": {}, "expect_json_keys": [], "body": None}
    assert smoke.normalize_check({"path": "/x", "method": "post"})["method"] == "POST"
    with pytest.raises(ValueError, match="must start with '/'"):
        smoke.normalize_check({"path": "health"})
    with pytest.raises(ValueError, match="GET or POST"):
        smoke.normalize_check({"path": "/x", "method": "DELETE"})
    with pytest.raises(TypeError):
        smoke.normalize_check({"path": "/x", "expect_json": [1]})
    with pytest.raises(TypeError):
        smoke.normalize_check({"path": "/x", "expect_json_keys": "a"})
    with pytest.raises(TypeError):
        smoke.normalize_check("nope")


def test_parse_route():
    assert smoke.parse_route("get /api/x") == ("GET", "/api/x")
    for bad in ("GET", "GET api/x", "GET /a /b"):
        with pytest.raises(ValueError, match="expected route like"):
            smoke.parse_route(bad)


def test_missing_routes():
    doc = {"paths": {"/api/portfolio/snapshot": {"get": {}}, "/api/orders": {"post": {}}}}
    assert smoke.missing_routes(doc, ["GET /api/portfolio/snapshot", "POST /api/orders"]) == []
    assert smoke.missing_routes(doc, ["GET /api/orders", "GET /api/nope"]) == [
        "GET /api/orders", "GET /api/nope"]
    assert smoke.missing_routes({}, ["GET /x"]) == ["GET /x"]


def test_json_problems():
    body = '{"status": "ok", "positions": []}'
    assert smoke.json_problems(body, {"status": "ok"}, ["positions"]) == []
    assert smoke.json_problems(body, {"status": "down"}, []) == [
        "key 'status' is 'ok', expected 'down'"]
    assert smoke.json_problems(body, {"x": 1}, ["y", "z"]) == [
        "key 'x' missing (expected 1)", "keys missing: y, z"]
    assert smoke.json_problems("[]", {}, ["a"]) == ["body is not a JSON object"]
    assert smoke.json_problems("not json", {}, []) == []


def test_hint_not_found_route():
    hint = smoke.hint_for(SNAPSHOT, 404, '{"detail":"Not Found"}', None, 8002)
    assert hint == smoke.HINT_NOT_FOUND
    assert smoke.hint_for(SNAPSHOT, 404, "<html>", None, 8002) == ""


def test_hint_503_snapshot_vs_other():
    assert smoke.hint_for(SNAPSHOT, 503, "", None, 8002) == smoke.HINT_CREDENTIALS
    other = smoke.normalize_check({"path": "/health"})
    assert smoke.hint_for(other, 503, "", None, 8002) == smoke.HINT_UNAVAILABLE
    assert smoke.hint_for(other, 500, "", None, 8002) == smoke.HINT_SERVER_ERROR


def test_hint_connection_errors():
    assert smoke.hint_for(SNAPSHOT, None, "", "refused", 8002) == (
        "nothing listening on 8002: the container is not running or crashed on start "
        "(docker logs)")
    assert "no answer within 5s on 8002" in smoke.hint_for(SNAPSHOT, None, "", "timeout", 8002, 5)
    assert smoke.hint_for(SNAPSHOT, None, "", "boom", 8002) == "request failed: boom"


def test_evaluate_ok_and_failures():
    ok = smoke.evaluate(SNAPSHOT, 200, '{"a": 1}', None, 8002)
    assert ok == {"name": "snapshot", "ok": True, "status": 200, "body": '{"a": 1}', "hint": ""}
    nf = smoke.evaluate(SNAPSHOT, 404, '{"detail":"Not Found"}', None, 8002)
    assert nf["ok"] is False and nf["hint"].startswith("status 404, expected 200: route not")
    refused = smoke.evaluate(SNAPSHOT, None, "", "refused", 8002)
    assert refused["status"] is None and "nothing listening on 8002" in refused["hint"]
    check = smoke.normalize_check({"path": "/h", "expect_json": {"status": "ok"}})
    bad = smoke.evaluate(check, 200, '{"status": "down"}', None, 8002)
    assert bad["ok"] is False and bad["hint"] == "key 'status' is 'down', expected 'ok'"


def test_evaluate_truncates_body():
    result = smoke.evaluate(SNAPSHOT, 500, "x" * 1000, None, 8002)
    assert len(result["body"]) == smoke.BODY_LIMIT


def test_routes_result():
    good = smoke.routes_result([], None, 200, "{}", 8002)
    assert good["ok"] is True and good["hint"] == ""
    missing = smoke.routes_result(["GET /a"], None, 200, "{}", 8002)
    assert missing["ok"] is False and "routes missing from /openapi.json: GET /a" in missing["hint"]
    refused = smoke.routes_result(None, "refused", None, "", 8002)
    assert "nothing listening on 8002" in refused["hint"]
    not_json = smoke.routes_result(None, None, 200, "<html>", 8002)
    assert not_json["hint"] == "body is not an OpenAPI JSON document"
    nf = smoke.routes_result(None, None, 404, "", 8002)
    assert nf["hint"] == "status 404, expected 200"


def test_summary_line():
    line = smoke.summary_line({"name": "x", "hint": "h", "status": 503})
    assert line == "x: h (status 503)"
    assert smoke.summary_line({"name": "x", "hint": "", "status": None}) == "x: failed"


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
