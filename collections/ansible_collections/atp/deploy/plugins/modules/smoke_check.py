#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app's smoke contract, checked from the instance over HTTP in one call (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smoke_check
short_description: Check the backend against its smoke contract over HTTP, in one call (read-only)
description:
  - Runs every check of O(checks) and, when O(expected_routes) is set, compares them with the
    operations declared by C(/openapi.json) (read whole, up to O(max_body_bytes)). The whole set
    runs again every O(interval) seconds until all pass.
  - Only what can change is waited for. No answer (refused, timeout, reset), 502, 503, 504 and an
    unreachable exchange are retried until O(timeout). A wrong answer that waiting will not
    change (404, another status, a wrong value, missing keys, missing credentials, routes missing
    from C(/openapi.json)) seen O(identical_failures) times in a row ends the checks at once.
    With O(project_name) and O(service), a crashing container (exited, restarting, restarted
    twice) also ends them at once.
  - With C(contract=portfolio_snapshot) a check classifies an C(ok=false) answer by its reason.
    Credentials missing (message C(Missing API credentials), or a non-empty C(missing_env))
    always fails. A message or errors saying the exchange refused the credentials (HTTP 401,
    C(UNAUTHORIZED), Crypto.com's C(4010x) codes, an invalid key or signature, an IP not
    allowed) fails at once. Any other C(ok=false) with a message or errors means the exchange
    is unreachable, and is waited for. Both fail, unless O(allow_exchange_unreachable) is set,
    and then the check passes with a warning.
  - With O(project_name) and O(service), the service container's C(docker logs) are read
    from the start of the checks. Lines with C(ERROR), C(CRITICAL) or C(Traceback) are counted
    and reported as a rate a minute. The checks fail only when O(max_error_rate) is set and the
    rate goes above it.
  - >-
    Every check gives one line of what was seen in RV(summary), for example
    C(snapshot: ok, 17 positions, total 9386.94),
    C(snapshot: ok=false "Missing API credentials" (missing_env: ...)), C(health: 200 ok),
    C(routes: 112 registered, 5/5 expected), C(error log: 0.0/min (0 lines in 12s)).
    A failure is one line naming the check, what was seen and what to do.
  - Never changes anything; C(changed) is always false. Uses urllib only.
version_added: "1.0.0"
author: atp.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - atp.deploy.deploy_lock
options:
  base_url:
    description: Base URL of the backend, seen from the instance.
    type: str
    default: http://127.0.0.1:8002
  checks:
    description: HTTP checks, in the order they run and are reported.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name shown in the lines and results (default C(METHOD path)).
        type: str
      method:
        description: HTTP method.
        type: str
        choices: [GET, POST, PUT, PATCH, DELETE, HEAD]
        default: GET
      path:
        description: Path starting with C(/), query string included.
        type: str
        required: true
      expect_status:
        description:
          - Expected HTTP status. Use a code (V(200)), a list of codes (V([200, 403])), or
            V(any_but_5xx) for any answer that is not a server error.
          - Not set means V(200).
        type: raw
      expect_json:
        description:
          - "Dotted path -> value pairs the JSON body must hold, e.g. V({ok: true}) or
            V({totals.currency: USD}). A list item is addressed by its index
            (C(positions.0.asset))."
          - V(true) and V(false) match only JSON booleans.
        type: dict
      expect_json_keys:
        description: Dotted paths that must be present in the JSON body (C(totals.total_value_usd)).
        type: list
        elements: str
      timeout:
        description: Seconds one request of this check may take (default O(request_timeout)).
        type: float
      body:
        description: JSON body sent with POST, PUT and PATCH (V({}) when not set).
        type: raw
      headers:
        description: Extra request headers (name -> value). Values are never shown.
        type: dict
      contract:
        description:
          - Judge C(ok) by the app's contract. V(portfolio_snapshot) classifies an C(ok=false)
            answer by its reason (see the module description). With a contract, an C(ok)
            entry in O(checks[].expect_json) is judged by the contract.
        type: str
        choices: [portfolio_snapshot]
  expected_routes:
    description: Routes like C(GET /api/portfolio/snapshot) that C(/openapi.json) must declare.
    type: list
    elements: str
    default:
      - GET /api/health
      - GET /api/dashboard/state
      - GET /api/portfolio/snapshot
      - GET /api/portfolio/latest
      - POST /api/portfolio/refresh
  allow_exchange_unreachable:
    description:
      - An C(ok=false) snapshot that says the exchange is unreachable or refused the
        credentials passes with a warning instead of failing (for this deploy only). Missing
        credentials still fail.
    type: bool
    default: false
  timeout:
    description: Seconds to keep retrying what can change before failing.
    type: int
    default: 60
  interval:
    description: Seconds between attempts.
    type: float
    default: 2
  request_timeout:
    description: Seconds one request may take, for checks without their own O(checks[].timeout).
    type: float
    default: 10
  identical_failures:
    description: The same wrong answer seen this many times in a row ends the checks at once.
    type: int
    default: 3
  max_body_bytes:
    description: Largest body read (whole bodies are read and parsed); a larger one fails.
    type: int
    default: 33554432
  max_error_rate:
    description:
      - Fail when the service container logs more ERROR/CRITICAL/Traceback lines a minute
        during the checks than this. Not set means report only.
    type: float
  project_name:
    description:
      - Compose project of the service under test. With O(service), a failed attempt also
        looks at the service's container (the checks stop at once when it is crashing), and
        its error-log rate is reported.
    type: str
  service:
    description: Compose service under test (with O(project_name)).
    type: str
  app_root:
    description:
      - The app dir on the instance. Its env files' values (of every release) are masked in
        everything returned (bodies, log lines, messages), and the deploy lock file is
        C(<app_root>/.deploy.lock). Omitted, nothing is masked.
    type: path
  candidate:
    description:
      - "Zero-downtime: the new container as M(atp.deploy.compose_release) returned it with
        C(wait_candidate=false) (C(id), C(name), C(health_url), C(started_at), ...). Before the
        checks, wait until it answers C(health_url) 2xx/3xx; fail at once, with the last
        O(candidate_log_lines) lines of its log, when it exits or restarts, and after
        O(candidate_timeout) seconds without an answer. The caller then removes it (it never
        received traffic)."
      - Omitted, or with C(answering=true) (already waited for), the checks start at once.
    type: dict
  candidate_timeout:
    description: Seconds (at least 1) the new container may take to answer C(candidate.health_url).
    type: int
    default: 180
  candidate_log_lines:
    description: Lines of the new container's log shown when it failed to start.
    type: int
    default: 15
notes:
  - Supports check mode (it is read-only and runs the same way).
"""

EXAMPLES = r"""
- name: Smoke check the backend against its contract
  atp.deploy.smoke_check:
    checks:
      - name: health
        path: /api/health
        expect_json: {status: ok}
      - name: snapshot
        path: /api/portfolio/snapshot?exchange=CRYPTO_COM
        expect_json: {ok: true}
        expect_json_keys: [ok, as_of, exchange, positions, totals.total_value_usd]
        contract: portfolio_snapshot
        timeout: 20
      - name: latest
        path: /api/portfolio/latest
        expect_status: any_but_5xx
    expected_routes:
      - GET /api/portfolio/snapshot
    allow_exchange_unreachable: false
    timeout: 90
    project_name: automated-trading-platform
    service: backend-aws
"""

RETURN = r"""
results:
  description: One entry per check, plus C(routes) when expected_routes is set.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Check name.
      type: str
    ok:
      description: Whether the check passed (also true when it passed with a warning).
      type: bool
    kind:
      description: C(pass), C(warning), C(transient) (waiting may help) or C(deterministic).
      type: str
    status:
      description: HTTP status (null without an answer).
      type: int
    seen:
      description: What came back, in words (C(ok=false "Missing API credentials")).
      type: str
    hint:
      description: What to do about it (empty when ok).
      type: str
    warning:
      description: The warning of a check that passed with one (else empty).
      type: str
    line:
      description: The check's smoke line.
      type: str
    request:
      description: Method and path of the check (C(GET /api/health); empty for C(routes)).
      type: str
    identical:
      description: How many times in a row this wrong answer was seen (0 when ok).
      type: int
    body:
      description: First 300 characters of the body.
      type: str
summary:
  description: The smoke lines (one per check, then C(routes) and C(error log)), for the output.
  returned: always
  type: list
  elements: str
  sample: ["health: 200 ok", "snapshot: ok, 17 positions, total 9386.94", "latest: 200",
           "routes: 112 registered, 5/5 expected", "error log: 0.0/min (0 lines in 12s)"]
warning_lines:
  description: Checks that passed with a warning (exchange unreachable, allowed).
  returned: always
  type: list
  elements: str
missing_routes:
  description: Expected routes that /openapi.json does not declare.
  returned: always
  type: list
  elements: str
routes_registered:
  description: Operations declared by /openapi.json (null when it was not read).
  returned: always
  type: int
error_log:
  description: The container's error-log rate during the checks (null without project_name/service).
  returned: always
  type: dict
  contains:
    containers:
      description: Container names read.
      type: list
    lines:
      description: ERROR/CRITICAL/Traceback lines counted.
      type: int
    per_minute:
      description: Lines a minute over the window.
      type: float
    window_seconds:
      description: Seconds from the start of the checks to the read.
      type: float
    max_per_minute:
      description: The limit (null when only reported).
      type: float
    error:
      description: Why the logs could not be read (else null).
      type: str
stopped:
  description: How the checks ended, C(passed), C(identical) (a wrong answer repeated),
    C(timeout) or C(crashed).
  returned: always
  type: str
attempts:
  description: How many times the whole set ran.
  returned: always
  type: int
elapsed:
  description: Seconds spent on the checks (after the wait for O(candidate)).
  returned: always
  type: float
candidate_waited:
  description: Seconds this task waited for O(candidate) to answer its health URL.
  returned: when O(candidate) was waited for
  type: float
candidate_up:
  description: Seconds from the start of O(candidate) (C(started_at)) until it answered
    (the app's own start-up; part of it passed while this task's session opened).
  returned: when O(candidate) answered and has C(started_at)
  type: float
candidate_failed:
  description: true when O(candidate) exited, restarted or did not answer in time.
  returned: failure
  type: bool
candidate_failed_after:
  description: Seconds from the start of O(candidate) until it was given up on (exited,
    restarted, or O(candidate_timeout) passed).
  returned: when O(candidate) failed and has C(started_at)
  type: float
"""

import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import (  # noqa: E402
    deploy_lock,
    docker_cmd,
    docker_read,
    masking,
    proc,
    routes,
    smoke,
    zero_downtime,
)

DOCKER_TIMEOUT = 10.0
READ_CHUNK = 64 * 1024
BODY_METHODS = ("POST", "PUT", "PATCH")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def classify_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    return f"{type(reason).__name__}: {reason}"


def read_body(resp, limit: int) -> tuple[bytes, bool]:
    """The whole body, chunk by chunk, up to limit bytes -> (data, larger_than_limit)."""
    chunks, total = [], 0
    while True:
        chunk = resp.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return b"".join(chunks)[:limit], True


def request(base_url: str, method: str, path: str, body, headers: dict, timeout: float,
            max_body_bytes: int) -> dict:
    """-> {status, body, error, too_big, timeout}; error is 'refused', 'timeout', ... or None."""
    data = None
    sent = {"Accept": "application/json", **(headers or {})}
    if method in BODY_METHODS:
        data = json.dumps(body if body is not None else {}).encode()
        sent.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method,
                                 headers=sent)
    answer = {"status": None, "body": "", "error": None, "too_big": False, "timeout": timeout}
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            raw, too_big = read_body(resp, max_body_bytes)
            status = resp.status
    except urllib.error.HTTPError as exc:
        try:
            raw, too_big = read_body(exc, max_body_bytes) if exc.fp else (b"", False)
        except (OSError, ValueError) as inner:
            return {**answer, "error": classify_error(inner)}
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {**answer, "error": classify_error(exc)}
    return {**answer, "status": status, "body": raw.decode("utf-8", "replace"),
            "too_big": too_big}


def run_once(p: dict, checks: list[dict], expected_routes: list[str], port: int,
             deadline: float, first: bool) -> list[dict]:
    """One run of every check. After the first run, a request may not outlast the deadline
    by more than a second (the first run always gets each check's full timeout)."""
    results = []
    for check in checks:
        remaining = float("inf") if first else max(deadline - time.monotonic(), 1.0)
        timeout = min(check["timeout"] or p["request_timeout"], remaining)
        answer = request(p["base_url"], check["method"], check["path"], check["body"],
                         check["headers"], timeout, p["max_body_bytes"])
        results.append(smoke.judge(check, answer, port, p["allow_exchange_unreachable"],
                                   p["max_body_bytes"]))
    if expected_routes:
        remaining = float("inf") if first else max(deadline - time.monotonic(), 1.0)
        answer = request(p["base_url"], "GET", "/openapi.json", None, {},
                         min(p["request_timeout"], remaining), p["max_body_bytes"])
        results.append(smoke.judge_routes(answer, expected_routes, port, p["max_body_bytes"]))
    return results


ARGUMENT_SPEC = {
    "base_url": {"type": "str", "default": "http://127.0.0.1:8002"},
    "checks": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str"},
        "method": {"type": "str", "choices": list(smoke.METHODS), "default": "GET"},
        "path": {"type": "str", "required": True},
        "expect_status": {"type": "raw"},
        "expect_json": {"type": "dict"},
        # names of JSON keys, not secrets (validate-modules: no-log-needed)
        "expect_json_keys": {"type": "list", "elements": "str", "no_log": False},
        "timeout": {"type": "float"},
        "body": {"type": "raw"},
        "headers": {"type": "dict", "no_log": True},
        "contract": {"type": "str", "choices": list(smoke.CONTRACTS)},
    }},
    "expected_routes": {"type": "list", "elements": "str",
                        "default": list(routes.EXPECTED_ROUTES)},
    "allow_exchange_unreachable": {"type": "bool", "default": False},
    "timeout": {"type": "int", "default": 60},
    "interval": {"type": "float", "default": 2},
    "request_timeout": {"type": "float", "default": 10},
    "identical_failures": {"type": "int", "default": smoke.IDENTICAL_FAILURES},
    "max_body_bytes": {"type": "int", "default": smoke.MAX_BODY_BYTES},
    "max_error_rate": {"type": "float"},
    "project_name": {"type": "str"},
    "service": {"type": "str"},
    "app_root": {"type": "path"},
    "candidate": {"type": "dict"},
    "candidate_timeout": {"type": "int", "default": 180},
    "candidate_log_lines": {"type": "int", "default": 15},
    **deploy_lock.MODULE_ARGS,
}


def _docker(module: AnsibleModule, project: str | None, service: str | None) -> str | None:
    return module.get_bin_path("docker") if project and service else None


def crashed(module: AnsibleModule, project: str | None, service: str | None) -> str | None:
    """The crash line for the service's container, or None (also when docker cannot say)."""
    docker = _docker(module, project, service)
    if not docker:
        return None
    try:
        found = docker_read.containers(docker, DOCKER_TIMEOUT, project, service,
                                       retry_vanished=True)
    except docker_read.DockerReadError:
        return None
    return smoke.crash_verdict(found)


def read_error_log(module: AnsibleModule, project: str | None, service: str | None,
                   since: float, limit: float | None) -> dict | None:
    """ERROR/CRITICAL/Traceback lines the service's container logged since `since` (epoch)."""
    if not (project and service):
        return None
    log = {"containers": [], "lines": 0, "per_minute": 0.0, "window_seconds": 0.0,
           "max_per_minute": limit, "error": None}
    docker = _docker(module, project, service)
    if not docker:
        return {**log, "error": "docker not found on the instance"}
    try:
        found = docker_read.containers(docker, DOCKER_TIMEOUT, project, service,
                                       retry_vanished=True)
    except docker_read.DockerReadError as exc:
        return {**log, "error": str(exc)}
    if not found:
        return {**log, "error": f"no container of {project}/{service}"}
    lines = 0
    for container in found:
        rc, out, _err = proc.run(docker_cmd.logs_since(container["id"], since, docker),
                                 timeout=DOCKER_TIMEOUT, merge_stderr=True)
        if rc != 0:
            return {**log, "error": f"`docker logs {container['name']}` failed (exit {rc}): "
                                    f"{(out.strip().splitlines() or ['no output'])[-1]}"}
        lines += smoke.count_error_lines(out)
    window = max(time.time() - since, 0.0)
    return {**log, "containers": [c["name"] for c in found], "lines": lines,
            "per_minute": smoke.error_rate(lines, window), "window_seconds": round(window, 1)}


def wait_for_candidate(module: AnsibleModule, p: dict, base: dict) -> None:
    """Wait until the new container answers its health URL (the app starts while this
    task's session opens); fail with its log tail when it exits, restarts or stays silent."""
    cand = p["candidate"] or {}
    if cand.get("answering", False):
        return
    missing = [k for k in ("id", "name", "health_url") if not cand.get(k)]
    if missing or p["candidate_timeout"] < 1:
        module.fail_json(msg=f"candidate must be compose_release's candidate (id, name, "
                         f"health_url) and candidate_timeout >= 1, got keys "
                         f"{sorted(cand)} and {p['candidate_timeout']}; pass "
                         "compose_release_result.candidate", **base)
    docker = module.get_bin_path("docker")
    service = cand.get("service") or p["service"]

    def state() -> dict | None:
        if not docker or not p["project_name"] or not service:
            return {"running": True}  # docker cannot say: wait for the answer alone
        try:
            found = docker_read.containers(docker, DOCKER_TIMEOUT, p["project_name"], service,
                                           retry_vanished=True)
        except docker_read.DockerReadError:
            return {"running": True}
        return next((c for c in found if c["id"] == cand["id"]), None)

    start = time.monotonic()
    problem = zero_downtime.wait_answering(cand["health_url"], p["candidate_timeout"], state)
    base["candidate_waited"] = round(time.monotonic() - start, 1)
    if cand.get("started_at"):
        since_start = round(max(time.time() - float(cand["started_at"]), 0.0), 1)
        base["candidate_failed_after" if problem else "candidate_up"] = since_start
    if problem:
        lines = max(p["candidate_log_lines"], 1)
        tail = docker_read.log_tail(docker, cand["name"], lines, DOCKER_TIMEOUT) if docker else []
        release = cand.get("release_id") or "the release"
        module.fail_json(msg="\n".join([f"the new container of release {release} "
                                        f"({cand['name']}) {problem}",
                                        *(f"  {line}" for line in tail)]),
                         candidate_failed=True, **base)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    base = {"changed": False, "results": [], "summary": [], "warning_lines": [],
            "missing_routes": [], "routes_registered": None, "error_log": None,
            "stopped": "", "attempts": 0, "elapsed": 0.0}
    # A body or a log line can echo an env value: masked in everything returned.
    masking.protect(module, masking.for_release(p["app_root"]))
    deploy_lock.hold(module, deploy_lock.module_lock_file(p, p["app_root"]), p["lock_token"],
                     "smoke_check", base)
    url = urllib.parse.urlparse(p["base_url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        module.fail_json(msg=f"base_url must be like http://127.0.0.1:8002, got "
                         f"{p['base_url']!r}; fix base_url", **base)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        checks = [smoke.normalize_check(c) for c in p["checks"]]
        expected_routes = routes.normalize_all(p["expected_routes"])
    except (ValueError, TypeError) as exc:
        module.fail_json(msg=f"{exc}; fix the check (smoke_check_checks)", **base)
    if not checks and not expected_routes:
        module.fail_json(msg="nothing to check: expected checks or expected_routes, got "
                         "neither; pass at least one", **base)
    if p["max_body_bytes"] < 1024 or p["request_timeout"] <= 0:
        module.fail_json(msg=f"max_body_bytes must be >= 1024 and request_timeout > 0, got "
                         f"{p['max_body_bytes']} and {p['request_timeout']}; fix them", **base)

    if p["candidate"]:
        wait_for_candidate(module, p, base)

    interval = max(float(p["interval"]), 0.05)
    started_at = time.time()
    start = time.monotonic()
    deadline = start + max(int(p["timeout"]), 0)
    attempts, streaks, crash, stop = 0, {}, None, "timeout"
    while True:
        attempts += 1
        results = run_once(p, checks, expected_routes, port, deadline, attempts == 1)
        streaks = smoke.update_streaks(streaks, results)
        if all(r["ok"] for r in results):
            stop = "passed"
            break
        if smoke.settled(streaks, p["identical_failures"]):
            stop = "identical"
            break
        left = deadline - time.monotonic()
        if left <= 0:
            stop = "timeout"
            break
        crash = crashed(module, p["project_name"], p["service"])
        if crash:
            stop = "crashed"
            break
        time.sleep(min(interval, left))

    elapsed = round(time.monotonic() - start, 2)
    log = read_error_log(module, p["project_name"], p["service"], started_at,
                         p["max_error_rate"])
    for r in results:
        r["identical"] = streaks.get(r["name"], (None, 0))[1]
    routes_result = next((r for r in results
                          if r["name"] == smoke.ROUTES_CHECK and expected_routes),
                         None)
    warnings = [r["warning"] for r in results if r["warning"]]
    for text in warnings:
        module.warn(text)
    summary = [r["line"] for r in results] + ([smoke.error_log_line(log)] if log else [])
    keep = ("name", "ok", "kind", "status", "seen", "hint", "warning", "line", "identical",
            "request", "body")
    out = {"changed": False, "results": [{k: r[k] for k in keep} for r in results],
           "summary": summary, "warning_lines": warnings,
           "missing_routes": routes_result["missing"] if routes_result else [],
           "routes_registered": routes_result["registered"] if routes_result else None,
           "error_log": log, "stopped": stop, "attempts": attempts, "elapsed": elapsed,
           **{k: base[k] for k in ("candidate_waited", "candidate_up") if k in base}}
    failed = [r for r in results if not r["ok"]]
    log_failure = smoke.error_log_failure(log) if log else None
    if failed or log_failure:
        identical = {r["name"]: r["identical"] for r in failed}
        module.fail_json(msg=smoke.failure_message(failed, identical, stop, attempts, elapsed,
                                                   p["base_url"], crash, log_failure), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
