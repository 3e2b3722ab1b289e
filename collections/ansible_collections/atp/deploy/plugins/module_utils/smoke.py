# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding logic of smoke_check (pure, stdlib only): judge HTTP answers against the app's
smoke contract, say what was seen in one line, decide whether waiting longer can help.

A check (see normalize_check) asserts a status (an int, a list, or "any_but_5xx"), values at
dotted JSON paths (expect_json), keys present at dotted paths (expect_json_keys) and, with
``contract: portfolio_snapshot``, classifies an ``ok: false`` answer by its reason.

Every judged answer has a kind:
  pass           the check passed
  warning        passed, with a warning (exchange unreachable or credentials rejected,
                 allowed for this deploy)
  transient      can change by waiting: no answer, 502/503/504, exchange unreachable
  deterministic  a wrong answer that waiting will not change (404, wrong value, missing keys,
                 credentials missing or rejected by the exchange, ...): seen N times in a row,
                 the checks stop at once.
"""

from __future__ import annotations

import json
import re

from ansible_collections.atp.deploy.plugins.module_utils import routes

BODY_LIMIT = 300  # characters of a body kept in the results
SEEN_BODY_LIMIT = 100  # characters of a body quoted in a line
MAX_BODY_BYTES = 32 * 1024 * 1024
IDENTICAL_FAILURES = 3
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
ANY_BUT_5XX = "any_but_5xx"
CONTRACT_PORTFOLIO_SNAPSHOT = "portfolio_snapshot"
CONTRACTS = (CONTRACT_PORTFOLIO_SNAPSHOT,)
TRANSIENT_STATUSES = (502, 503, 504)
CREDENTIALS_MESSAGE = "missing api credentials"
# An ok=false reason that says the exchange refused the credentials (an HTTP 401, Crypto.com's
# 4010x codes such as 40101 "not authenticated" or 40103 "IP illegal", an invalid key or
# signature): waiting will not change it, unlike an unreachable exchange.
REJECTED = re.compile(
    r"(?:\b(?:http|status|code|error)[ :=]*401\b|\b401 (?:client error|unauthori[sz]ed)\b)"
    r"|\b(?:4010\d|unauthori[sz]ed|not authenticated|authentication (?:failed|error)"
    r"|invalid[ _-]?(?:api[ _-]?)?key|invalid[ _-]?signature|bad[ _-]?signature"
    r"|ip[ _-]?illegal|not whitelisted|ip (?:address )?not allowed)\b", re.I)
ROUTES_CHECK = "routes"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

PASS, WARNING, TRANSIENT, DETERMINISTIC = "pass", "warning", "transient", "deterministic"

HINT_NOT_FOUND = (
    "route not registered: the router exists but main.py does not include it, "
    "or the image is stale"
)
HINT_REFUSED = (
    "nothing listening on {port}: the container is not running or crashed on start (docker logs)"
)
HINT_TIMEOUT = (
    "no answer within {timeout}s on {port}: the app is starting or hung (docker logs); "
    "a slow route can get its own timeout in its check"
)
HINT_UNAVAILABLE = "the app is not ready (status {status}): docker logs"
HINT_SERVER_ERROR = "the app raised an error: docker logs for the traceback"
HINT_REFUSED_REQUEST = "the route refused the request: give the check the headers it needs"
HINT_TOO_BIG = "raise the check's limit (smoke_check_max_body_bytes) or check the route"
HINT_NOT_JSON = "the route does not answer JSON: check the path (a proxy or an error page?)"
HINT_CREDENTIALS = (
    "the app has no exchange credentials: set {names} in the env files (deploy_env_aws) "
    "and deploy again"
)
HINT_UNREACHABLE = (
    "the app could not reach the exchange: check the instance's outbound network and the "
    "exchange's status; to deploy anyway, pass -e deploy_allow_exchange_unreachable=true"
)
HINT_REJECTED = (
    "the exchange refused the app's credentials: check the key and secret in the env files "
    "(deploy_env_aws or Parameter Store) and the key's IP allow-list (the instance's public "
    "address); to deploy anyway, pass -e deploy_allow_exchange_unreachable=true"
)
HINT_NO_REASON = "the app answered ok=false without message, errors or missing_env: docker logs"
HINT_NO_OK = "the answer has no boolean 'ok': is this the portfolio snapshot route?"
HINT_ROUTES = (
    "not in /openapi.json: main.py does not include their router, or the image is stale"
)
HINT_NO_OPENAPI = (
    "the app serves no OpenAPI document at /openapi.json: set deploy_expected_routes: [] "
    "to skip the route check"
)
WARNING_UNREACHABLE = (
    "exchange unreachable, allowed for this deploy (deploy_allow_exchange_unreachable=true)"
)
WARNING_REJECTED = (
    "credentials rejected by the exchange, allowed for this deploy "
    "(deploy_allow_exchange_unreachable=true)"
)

ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


# --------------------------------------------------------------------------- checks

def _expect_status(name: str, value):
    """int, digit string, list of those, or "any_but_5xx" -> list[int] or ANY_BUT_5XX."""
    if value is None or value == "":
        return [200]
    if isinstance(value, str) and value.strip().lower() == ANY_BUT_5XX:
        return ANY_BUT_5XX
    items = value if isinstance(value, list) else [value]
    codes = []
    for item in items:
        if isinstance(item, bool) or not (
                isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit())):
            raise ValueError(f"check {name!r}: expect_status must be a status code, a list of "
                             f"them or {ANY_BUT_5XX!r}, got {value!r}")
        code = int(item)
        if not 100 <= code <= 599:
            raise ValueError(f"check {name!r}: expect_status {code} is not an HTTP status")
        codes.append(code)
    if not codes:
        raise ValueError(f"check {name!r}: expect_status is an empty list")
    return codes


def normalize_check(check: dict) -> dict:
    """Fill the defaults of one check; ValueError/TypeError with a clear reason on a bad one."""
    if not isinstance(check, dict):
        raise TypeError(f"a check must be a dict, got {type(check).__name__}")
    path = check.get("path")
    method = str(check.get("method") or "GET").upper()
    name = str(check.get("name") or f"{method} {path}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"check {name!r}: path must start with '/', got {path!r}")
    if method not in METHODS:
        raise ValueError(f"check {name!r}: method must be one of {', '.join(METHODS)}, "
                         f"got {method}")
    keys = check.get("expect_json_keys") or []
    if not isinstance(keys, list):
        raise TypeError(f"check {name!r}: expect_json_keys must be a list of (dotted) keys")
    expect_json = check.get("expect_json") or {}
    if not isinstance(expect_json, dict):
        raise TypeError(f"check {name!r}: expect_json must be a dict of (dotted) key: value")
    headers = check.get("headers") or {}
    if not isinstance(headers, dict):
        raise TypeError(f"check {name!r}: headers must be a dict of name: value")
    timeout = check.get("timeout")
    if timeout is not None:
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            timeout = -1.0
        if timeout <= 0:
            raise ValueError(f"check {name!r}: timeout must be a number of seconds > 0, "
                             f"got {check.get('timeout')!r}")
    contract = check.get("contract") or None
    if contract is not None and contract not in CONTRACTS:
        raise ValueError(f"check {name!r}: contract must be one of {', '.join(CONTRACTS)}, "
                         f"got {contract!r}")
    return {
        "name": name,
        "method": method,
        "path": path,
        "expect_status": _expect_status(name, check.get("expect_status")),
        "expect_json": {str(k): v for k, v in expect_json.items()},
        "expect_json_keys": [str(k) for k in keys],
        "body": check.get("body"),
        "headers": {str(k): str(v) for k, v in headers.items()},
        "timeout": timeout,
        "contract": contract,
    }


# --------------------------------------------------------------------------- JSON

_MISSING = object()


def lookup(doc, path: str):
    """Value at a dotted path ('totals.total_value_usd', 'positions.0.asset'), or _MISSING.

    A key that itself contains dots is found when it is a key of the object as a whole.
    """
    if isinstance(doc, dict) and path in doc:
        return doc[path]
    current = doc
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def same_value(want, got) -> bool:
    """Equality where true is not 1 and false is not 0 (JSON booleans stay booleans)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and want is got
    return want == got


def show(value, limit: int = SEEN_BODY_LIMIT) -> str:
    """A value as compact JSON for a line (true, "ok", 17), cut at limit characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse_json(body: str):
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return _MISSING


def json_problems(doc, expect_json: dict, expect_json_keys: list[str],
                  skip: tuple = ()) -> list[str]:
    """What the JSON document lacks: 'status="degraded" (expected "ok")', 'keys missing: a'."""
    problems = []
    for key, want in expect_json.items():
        if key in skip:
            continue
        got = lookup(doc, key)
        if got is _MISSING:
            problems.append(f"{key} missing (expected {show(want)})")
        elif not same_value(want, got):
            problems.append(f"{key}={show(got)} (expected {show(want)})")
    absent = [k for k in expect_json_keys if lookup(doc, k) is _MISSING]
    if absent:
        problems.append(f"keys missing: {', '.join(absent)}")
    return problems


def body_excerpt(body: str) -> str:
    """The body for a line: compact JSON or the first line of text, short."""
    doc = _parse_json(body)
    if doc is not _MISSING:
        return show(doc)
    first = (body or "").strip().splitlines()[0] if (body or "").strip() else ""
    return first if len(first) <= SEEN_BODY_LIMIT else first[:SEEN_BODY_LIMIT - 3] + "..."


# --------------------------------------------------------------------------- contracts

def _strings(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)] if value not in (None, "", [], {}) else []


def _number(value) -> str:
    if isinstance(value, bool) or value is _MISSING or value is None:
        return "?"
    if isinstance(value, (int, float)):
        return f"{value:.2f}"
    return str(value)


def classify_snapshot(doc) -> tuple[str, str, str]:
    """The portfolio snapshot contract -> (verdict, seen, hint).

    verdict: "ok"; "credentials" (message "Missing API credentials" or a non-empty missing_env:
    always fails); "rejected" (the message or errors say the exchange refused the credentials,
    REJECTED: fails at once unless allowed); "unreachable" (any other ok=false with a message
    or errors: waited for, fails unless allowed); "no_reason" (ok=false, nothing said);
    "no_ok" (no boolean ok).
    """
    if not isinstance(doc, dict):
        return "no_ok", f"body is {type(doc).__name__}, not a JSON object", HINT_NO_OK
    ok = doc.get("ok")
    if ok is True:
        positions = doc.get("positions")
        count = len(positions) if isinstance(positions, list) else "?"
        total = _number(lookup(doc, "totals.total_value_usd"))
        return "ok", f"ok, {count} positions, total {total}", ""
    if ok is not False:
        return "no_ok", f"ok={show(ok) if 'ok' in doc else 'missing'}", HINT_NO_OK
    message = str(doc.get("message") or "").strip()
    missing_env = _strings(doc.get("missing_env"))
    errors = [e for e in _strings(doc.get("errors")) if e not in message]  # said once
    seen = f"ok=false {show(message)}" if message else "ok=false"
    if missing_env:
        seen += f" (missing_env: {', '.join(missing_env)})"
    if errors:
        more = f" (+{len(errors) - 2} more)" if len(errors) > 2 else ""
        seen += f" (errors: {'; '.join(show(e, 80).strip(chr(34)) for e in errors[:2])}{more})"
    if missing_env or CREDENTIALS_MESSAGE in message.lower():
        names = ", ".join(missing_env) or "the exchange API key and secret"
        return "credentials", seen, HINT_CREDENTIALS.format(names=names)
    if any(REJECTED.search(text) for text in [message, *errors]):
        return "rejected", seen, HINT_REJECTED
    if message or errors:
        return "unreachable", seen, HINT_UNREACHABLE
    return "no_reason", seen, HINT_NO_REASON


# --------------------------------------------------------------------------- judging

def _status_ok(expect, status: int) -> bool:
    if expect == ANY_BUT_5XX:
        return not 500 <= status <= 599
    return status in expect


def _expected_text(expect) -> str:
    if expect == ANY_BUT_5XX:
        return "any status but 5xx"
    return " or ".join(str(c) for c in expect)


def status_hint(status: int, body: str) -> str:
    if status == 404 and _parse_json(body) == {"detail": "Not Found"}:
        return HINT_NOT_FOUND
    if status in (401, 403):
        return HINT_REFUSED_REQUEST
    if status in TRANSIENT_STATUSES:
        return HINT_UNAVAILABLE.format(status=status)
    if 500 <= status <= 599:
        return HINT_SERVER_ERROR
    return ""


def error_hint(error: str, port: int, timeout: float) -> str:
    if error == "refused":
        return HINT_REFUSED.format(port=port)
    if error == "timeout":
        return HINT_TIMEOUT.format(port=port, timeout=_seconds(timeout))
    return f"request failed: {error}"


def _seconds(value: float) -> str:
    return f"{value:g}"


def _result(check: dict, kind: str, status, body: str, seen: str, hint: str = "",
            line: str = "", warning: str = "") -> dict:
    ok = kind in (PASS, WARNING)
    return {
        "name": check["name"],
        "ok": ok,
        "kind": kind,
        "status": status,
        "seen": seen,
        "hint": hint,
        "warning": warning,
        "line": line or f"{check['name']}: {seen}",
        "request": f"{check['method']} {check['path']}" if "path" in check else "",
        "body": (body or "")[:BODY_LIMIT],
    }


def judge(check: dict, answer: dict, port: int, allow_exchange_unreachable: bool = False,
          max_body_bytes: int = MAX_BODY_BYTES) -> dict:
    """Judge one answer {status, body, error, too_big, timeout} of a normalized check.

    -> {name, ok, kind, status, seen, hint, warning, line, body}: `seen` says what came back,
    `line` is the smoke line ('snapshot: ok, 17 positions, total 9386.94').
    """
    status, body, error = answer.get("status"), answer.get("body") or "", answer.get("error")
    name = check["name"]
    if error:
        return _result(check, TRANSIENT, None, "", f"no answer ({error})",
                       error_hint(error, port, answer.get("timeout") or 0))
    if answer.get("too_big"):
        return _result(check, DETERMINISTIC, status, body,
                       f"{status}, body larger than {max_body_bytes} bytes", HINT_TOO_BIG)
    expect = check["expect_status"]
    if not _status_ok(expect, status):
        excerpt = body_excerpt(body)
        seen = f"{status}{' ' + excerpt if excerpt else ''} (expected {_expected_text(expect)})"
        kind = TRANSIENT if status in TRANSIENT_STATUSES else DETERMINISTIC
        return _result(check, kind, status, body, seen, status_hint(status, body))
    contract = check["contract"]
    if not (check["expect_json"] or check["expect_json_keys"] or contract):
        return _result(check, PASS, status, body, str(status))
    doc = _parse_json(body)
    if doc is _MISSING:
        excerpt = body_excerpt(body)
        return _result(check, DETERMINISTIC, status, body,
                       f"{status} body is not JSON{': ' + excerpt if excerpt else ''}",
                       HINT_NOT_JSON)
    verdict, contract_seen, contract_hint = ("ok", "", "")
    if contract == CONTRACT_PORTFOLIO_SNAPSHOT:
        verdict, contract_seen, contract_hint = classify_snapshot(doc)
    # With a contract, `ok` is judged by the contract (its reason decides), not by expect_json.
    skip = ("ok",) if contract and verdict != "no_ok" else ()
    problems = json_problems(doc, check["expect_json"], check["expect_json_keys"], skip)
    if verdict == "ok":
        if problems:
            seen = f"{status} {', '.join(problems)}"
            if contract_seen:
                seen = f"{contract_seen}, but {', '.join(problems)}"
            return _result(check, DETERMINISTIC, status, body, seen,
                           "the answer does not have the shape the check expects")
        line = f"{name}: {contract_seen}" if contract_seen else f"{name}: {status} ok"
        return _result(check, PASS, status, body, contract_seen or f"{status} ok", line=line)
    if verdict == "no_ok" and problems:
        return _result(check, DETERMINISTIC, status, body, f"{status} {', '.join(problems)}",
                       contract_hint)
    seen = contract_seen + (f", {', '.join(problems)}" if problems else "")
    if verdict in ("unreachable", "rejected") and allow_exchange_unreachable and not problems:
        why = WARNING_REJECTED if verdict == "rejected" else WARNING_UNREACHABLE
        return _result(check, WARNING, status, body, seen, contract_hint,
                       line=f"{name}: WARNING {seen} -- {why}",
                       warning=f"{name}: {seen} -- {why}")
    kind = TRANSIENT if verdict == "unreachable" and not problems else DETERMINISTIC
    return _result(check, kind, status, body, seen, contract_hint)


# --------------------------------------------------------------------------- routes

def openapi_operations(doc) -> set[tuple[str, str]] | None:
    """{(METHOD, path)} declared by an OpenAPI document, None when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        return None
    ops = set()
    for path, item in doc["paths"].items():
        if isinstance(item, dict):
            ops.update((m.upper(), str(path)) for m in item if str(m).lower() in HTTP_METHODS)
    return ops


def _missing(ops: set, expected_routes: list[str]) -> list[str]:
    return routes.missing(expected_routes, [f"{m} {p}" for m, p in ops])


def missing_routes(openapi: dict, expected_routes: list[str]) -> list[str]:
    """Expected 'METHOD /path' entries that the OpenAPI document does not declare."""
    return _missing(openapi_operations(openapi) or set(), expected_routes)


def judge_routes(answer: dict, expected_routes: list[str], port: int,
                 max_body_bytes: int = MAX_BODY_BYTES) -> dict:
    """The pseudo-check 'routes': /openapi.json against expected_routes.

    -> judge()'s keys plus registered (operations declared, or None) and missing (list).
    """
    check = {"name": ROUTES_CHECK}
    status, body, error = answer.get("status"), answer.get("body") or "", answer.get("error")
    base = {"registered": None, "missing": []}
    if error:
        return {**_result(check, TRANSIENT, None, "", f"/openapi.json: no answer ({error})",
                          error_hint(error, port, answer.get("timeout") or 0)), **base}
    if answer.get("too_big"):
        return {**_result(check, DETERMINISTIC, status, "",
                          f"/openapi.json larger than {max_body_bytes} bytes", HINT_TOO_BIG),
                **base}
    if status != 200:
        excerpt = body_excerpt(body)
        seen = f"/openapi.json {status}{' ' + excerpt if excerpt else ''} (expected 200)"
        kind = TRANSIENT if status in TRANSIENT_STATUSES else DETERMINISTIC
        hint = HINT_NO_OPENAPI if status == 404 else status_hint(status, body)
        return {**_result(check, kind, status, body, seen, hint), **base}
    ops = openapi_operations(_parse_json(body))
    if ops is None:
        excerpt = body_excerpt(body)
        return {**_result(check, DETERMINISTIC, status, body,
                          f"/openapi.json is not an OpenAPI document"
                          f"{': ' + excerpt if excerpt else ''}", HINT_NO_OPENAPI), **base}
    missing = _missing(ops, expected_routes)
    found = len(expected_routes) - len(missing)
    seen = f"{len(ops)} registered, {found}/{len(expected_routes)} expected"
    if missing:
        seen += f", missing {', '.join(missing)}"
        result = _result(check, DETERMINISTIC, status, "", seen, HINT_ROUTES)
    else:
        result = _result(check, PASS, status, "", seen)
    return {**result, "registered": len(ops), "missing": missing}


# --------------------------------------------------------------------------- retrying

def signature(result: dict) -> tuple:
    """What makes two answers identical (the time in a body does not)."""
    return (result["kind"], result["status"], result["seen"])


def update_streaks(streaks: dict, results: list[dict]) -> dict:
    """streaks: name -> (signature, count) of consecutive identical deterministic failures."""
    updated = {}
    for r in results:
        if r["kind"] != DETERMINISTIC:
            updated[r["name"]] = (None, 0)
            continue
        sig = signature(r)
        last, count = streaks.get(r["name"], (None, 0))
        updated[r["name"]] = (sig, count + 1 if last == sig else 1)
    return updated


def settled(streaks: dict, limit: int = IDENTICAL_FAILURES) -> list[str]:
    """Names of checks whose deterministic wrong answer was seen `limit` times in a row."""
    return [name for name, (_sig, count) in streaks.items() if count >= max(limit, 1)]


# --------------------------------------------------------------------------- error log

def count_error_lines(text: str) -> int:
    """Lines with ERROR, CRITICAL or a traceback header."""
    return sum(1 for line in (text or "").splitlines() if ERROR_LINE.search(line))


def error_rate(lines: int, seconds: float) -> float:
    """Lines per minute over a window (at least one second)."""
    return round(lines * 60.0 / max(float(seconds), 1.0), 1)


def _window(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{round(seconds)}s"


def error_log_line(log: dict) -> str:
    """'error log: 0.0/min (0 lines in 12s)', or why it could not be read."""
    if log.get("error"):
        return f"error log: not read ({log['error']})"
    line = (f"error log: {log['per_minute']}/min ({log['lines']} lines in "
            f"{_window(log['window_seconds'])})")
    limit = log.get("max_per_minute")
    if limit is not None and log["per_minute"] > limit:
        line += f" -- above the limit {limit}/min"
    return line


def error_log_failure(log: dict) -> str | None:
    """The failure text when the error-log rate is above its limit, else None."""
    limit = log.get("max_per_minute")
    if log.get("error") or limit is None or log["per_minute"] <= limit:
        return None
    names = ", ".join(log.get("containers") or []) or "the service's container"
    return (f"{log['per_minute']} ERROR/CRITICAL/Traceback lines a minute from {names} during "
            f"the checks ({log['lines']} in {_window(log['window_seconds'])}), expected at most "
            f"{limit}: see docker logs {names}")


# --------------------------------------------------------------------------- messages

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


def failure_text(result: dict, identical: int = 0) -> str:
    """'ok=false "Missing API credentials" (3 identical answers): <hint> [GET /path]'."""
    text = result["seen"]
    if identical > 1:
        text += f" ({identical} identical answers)"
    if result.get("hint"):
        text += f": {result['hint']}"
    if result.get("request"):
        text += f" [{result['request']}]"
    return text


def failure_message(failed: list[dict], identical: dict, stop: str, attempts: int,
                    elapsed: float, base_url: str, crash: str | None = None,
                    log_failure: str | None = None) -> str:
    """One line: what failed (what was seen, what to do), then how the checks ended."""
    parts = [(r["name"], failure_text(r, identical.get(r["name"], 0))) for r in failed]
    if log_failure:
        parts.append(("error log", log_failure))
    if len(parts) == 1:
        text = f'smoke check "{parts[0][0]}" failed: {parts[0][1]}'
    else:
        text = f"{len(parts)} smoke checks failed: " + "; ".join(
            f'"{name}": {what}' for name, what in parts)
    if crash:
        text = f"{crash}; {text}"
    tail = {"identical": "a wrong answer repeated, waiting would not change it",
            "timeout": "no pass before smoke_timeout",
            "crashed": "the container is crashing",
            "passed": "the checks passed"}.get(stop, stop)
    return f"{text} -- {attempts} attempts in {elapsed}s against {base_url} ({tail})"
