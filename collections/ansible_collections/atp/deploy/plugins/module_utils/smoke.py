# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding logic of smoke_check (pure): judge one HTTP answer, give a hint for the operator."""

from __future__ import annotations

import json

BODY_LIMIT = 300
METHODS = ("GET", "POST")

HINT_NOT_FOUND = (
    "route not registered: the router exists but main.py does not include it, "
    "or the image is stale"
)
HINT_CREDENTIALS = "credentials not resolved: set EXCHANGE_CUSTOM_API_KEY/SECRET"
HINT_REFUSED = (
    "nothing listening on {port}: the container is not running or crashed on start (docker logs)"
)
HINT_TIMEOUT = "no answer within {timeout}s on {port}: the app is starting or hung (docker logs)"
HINT_UNAVAILABLE = "service unavailable: the app answered 503 (docker logs)"
HINT_SERVER_ERROR = "the app raised an error (docker logs for the traceback)"
HINT_ROUTES = (
    "routes missing from /openapi.json: {routes}; "
    "main.py does not include their router, or the image is stale"
)


def normalize_check(check: dict) -> dict:
    """Fill defaults of one check dict; ValueError with a clear reason on a bad check."""
    if not isinstance(check, dict):
        raise TypeError(f"a check must be a dict, got {type(check).__name__}")
    path = check.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"check {check.get('name')!r}: path must start with '/', got {path!r}")
    method = str(check.get("method") or "GET").upper()
    if method not in METHODS:
        raise ValueError(f"check {check.get('name')!r}: method must be GET or POST, got {method}")
    keys = check.get("expect_json_keys") or []
    if not isinstance(keys, list):
        raise TypeError(f"check {check.get('name')!r}: expect_json_keys must be a list")
    expect_json = check.get("expect_json") or {}
    if not isinstance(expect_json, dict):
        raise TypeError(f"check {check.get('name')!r}: expect_json must be a dict")
    return {
        "name": str(check.get("name") or f"{method} {path}"),
        "method": method,
        "path": path,
        "expect_status": int(check.get("expect_status") or 200),
        "expect_json": expect_json,
        "expect_json_keys": [str(k) for k in keys],
        "body": check.get("body"),
    }


def parse_route(route: str) -> tuple[str, str]:
    """'GET /api/x' -> ('GET', '/api/x'); ValueError otherwise."""
    parts = str(route).split()
    if len(parts) != 2 or not parts[1].startswith("/"):
        raise ValueError(f"expected route like 'GET /api/portfolio/snapshot', got {route!r}")
    return parts[0].upper(), parts[1]


def missing_routes(openapi: dict, expected_routes: list[str]) -> list[str]:
    """Expected 'METHOD /path' entries that /openapi.json does not declare."""
    paths = (openapi or {}).get("paths") or {}
    missing = []
    for route in expected_routes:
        method, path = parse_route(route)
        declared = {m.upper() for m in (paths.get(path) or {})}
        if method not in declared:
            missing.append(f"{method} {path}")
    return missing


def _parse_json(body: str):
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return None


def json_problems(body: str, expect_json: dict, expect_json_keys: list[str]) -> list[str]:
    if not expect_json and not expect_json_keys:
        return []
    value = _parse_json(body)
    if not isinstance(value, dict):
        return ["body is not a JSON object"]
    problems = []
    for key, want in expect_json.items():
        if key not in value:
            problems.append(f"key {key!r} missing (expected {want!r})")
        elif value[key] != want:
            problems.append(f"key {key!r} is {value[key]!r}, expected {want!r}")
    absent = [k for k in expect_json_keys if k not in value]
    if absent:
        problems.append(f"keys missing: {', '.join(absent)}")
    return problems


def is_not_found_body(body: str) -> bool:
    return _parse_json(body) == {"detail": "Not Found"}


def hint_for(check: dict, status: int | None, body: str, error: str | None, port: int,
             timeout: float = 0) -> str:
    """One-line hint for the operator, '' when there is nothing useful to say."""
    if error == "refused":
        return HINT_REFUSED.format(port=port)
    if error == "timeout":
        return HINT_TIMEOUT.format(port=port, timeout=timeout)
    if error:
        return f"request failed: {error}"
    if status == 404 and is_not_found_body(body):
        return HINT_NOT_FOUND
    if status == 503 and "snapshot" in check.get("path", ""):
        return HINT_CREDENTIALS
    if status == 503:
        return HINT_UNAVAILABLE
    if status is not None and status >= 500:
        return HINT_SERVER_ERROR
    return ""


def evaluate(check: dict, status: int | None, body: str, error: str | None, port: int,
             timeout: float = 0) -> dict:
    """Judge one answer -> {name, ok, status, body, hint}."""
    body = body or ""
    problems = []
    if error:
        problems.append(f"no HTTP answer ({error})")
    elif status != check["expect_status"]:
        problems.append(f"status {status}, expected {check['expect_status']}")
    else:
        problems.extend(json_problems(body, check["expect_json"], check["expect_json_keys"]))
    hint = "" if not problems else hint_for(check, status, body, error, port, timeout)
    if problems and not hint:
        hint = "; ".join(problems)
    elif problems:
        hint = f"{'; '.join(problems)}: {hint}"
    return {
        "name": check["name"],
        "ok": not problems,
        "status": status,
        "body": body[:BODY_LIMIT],
        "hint": hint,
    }


def routes_result(missing: list[str] | None, error: str | None, status: int | None,
                  body: str, port: int, timeout: float = 0) -> dict:
    """The pseudo-check 'openapi routes' -> {name, ok, status, body, hint, missing}."""
    check = {"path": "/openapi.json"}
    if error or status != 200 or missing is None:
        hint = hint_for(check, status, body, error, port, timeout)
        reason = f"no HTTP answer ({error})" if error else f"status {status}, expected 200"
        if status == 200 and missing is None:
            reason = "body is not an OpenAPI JSON document"
        return {
            "name": "openapi routes",
            "ok": False,
            "status": status,
            "body": (body or "")[:BODY_LIMIT],
            "hint": f"{reason}: {hint}" if hint else reason,
            "missing": [],
        }
    hint = HINT_ROUTES.format(routes=", ".join(missing)) if missing else ""
    return {
        "name": "openapi routes",
        "ok": not missing,
        "status": status,
        "body": "",
        "hint": hint,
        "missing": missing,
    }


def summary_line(result: dict) -> str:
    status = "" if result["status"] is None else f" (status {result['status']})"
    return f"{result['name']}: {result['hint'] or 'failed'}{status}"


CRASHED_STATES = ("exited", "dead", "restarting")


def crash_verdict(containers: list[dict], min_restarts: int = 2) -> str | None:
    """One line when the service's container is crashing, so the checks stop waiting.

    A container that exited, died, is restarting, or has restarted min_restarts times will not
    start answering: there is no point waiting out the smoke timeout (the deploy then rolls
    back sooner). None while it may still come up.
    """
    for c in containers:
        if c.get("state") in CRASHED_STATES or int(c.get("restart_count") or 0) >= min_restarts:
            return (f"container {c.get('name')} crashed on start (state {c.get('state')}, "
                    f"restarted {c.get('restart_count', 0)} times, last exit code "
                    f"{c.get('exit_code')}): the app fails at start-up; see docker logs "
                    f"{c.get('name')}")
    return None
