#!/usr/bin/python
# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP smoke checks of the backend, retried until they pass or a deadline, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smoke_check
short_description: Check the backend over HTTP until all checks pass or a deadline (read-only)
description:
  - Runs every check of I(checks) and, when I(expected_routes) is set, compares them with the
    paths and methods of C(/openapi.json). Retries the whole set every I(interval) seconds
    until all pass or I(timeout) seconds have passed.
  - Each failing check gets a hint (route not registered, credentials not resolved, nothing
    listening, missing routes, ...).
  - Never changes anything; C(changed) is always false. Uses urllib only.
version_added: "1.0.0"
author: atp.deploy contributors
options:
  base_url:
    description: Base URL of the backend, seen from the instance.
    type: str
    default: http://127.0.0.1:8002
  checks:
    description: HTTP checks.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name shown in results (default C(METHOD path)).
        type: str
      method:
        description: HTTP method.
        type: str
        choices: [GET, POST]
        default: GET
      path:
        description: Path starting with C(/).
        type: str
        required: true
      expect_status:
        description: Expected HTTP status.
        type: int
        default: 200
      expect_json:
        description: Key -> value pairs the JSON object body must contain.
        type: dict
      expect_json_keys:
        description: Keys the JSON object body must contain.
        type: list
        elements: str
      body:
        description: JSON body sent with POST.
        type: raw
  expected_routes:
    description: Routes like C(GET /api/portfolio/snapshot) that C(/openapi.json) must declare.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to keep retrying before failing.
    type: int
    default: 60
  interval:
    description: Seconds between attempts.
    type: float
    default: 2
  project_name:
    description:
      - Compose project of the service under test. With O(service), a failed attempt also
        looks at the service's container, and the checks stop at once when it is crashing
        (exited, restarting, restarted twice) instead of waiting out O(timeout).
    type: str
  service:
    description: Compose service under test (with O(project_name)).
    type: str
notes:
  - Supports check mode (it is read-only and runs the same way).
"""

EXAMPLES = r"""
- name: Smoke check the backend
  atp.deploy.smoke_check:
    checks:
      - name: health
        path: /health
        expect_json: {status: ok}
      - name: portfolio snapshot
        path: /api/portfolio/snapshot
        expect_json_keys: [positions]
    expected_routes:
      - GET /api/portfolio/snapshot
    timeout: 90
"""

RETURN = r"""
results:
  description: One entry per check (plus C(openapi routes) when expected_routes is set).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Check name.
      type: str
    ok:
      description: Whether the check passed.
      type: bool
    status:
      description: HTTP status (null without an answer).
      type: int
    body:
      description: First 300 characters of the body.
      type: str
    hint:
      description: What is wrong and what to look at (empty when ok).
      type: str
missing_routes:
  description: Expected routes that /openapi.json does not declare.
  returned: always
  type: list
  elements: str
attempts:
  description: How many times the whole set ran.
  returned: always
  type: int
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.atp.deploy.plugins.module_utils import docker_read, smoke  # noqa: E402

REQUEST_TIMEOUT = 10.0


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


def request(base_url: str, method: str, path: str, body, timeout: float):
    """-> (status, text, error); error is 'refused', 'timeout', ... or None."""
    data = None
    headers = {"Accept": "application/json"}
    if method == "POST":
        data = json.dumps(body if body is not None else {}).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method,
                                 headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(64 * 1024).decode("utf-8", "replace"), None
    except urllib.error.HTTPError as exc:
        text = exc.read(64 * 1024).decode("utf-8", "replace") if exc.fp else ""
        return exc.code, text, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, "", classify_error(exc)


def run_once(base_url: str, checks: list[dict], expected_routes: list[str], port: int,
             request_timeout: float) -> list[dict]:
    results = []
    for check in checks:
        status, text, error = request(base_url, check["method"], check["path"], check["body"],
                                      request_timeout)
        results.append(smoke.evaluate(check, status, text, error, port, request_timeout))
    if expected_routes:
        status, text, error = request(base_url, "GET", "/openapi.json", None, request_timeout)
        missing = None
        if status == 200:
            try:
                doc = json.loads(text)
                missing = smoke.missing_routes(doc, expected_routes) if isinstance(doc, dict) \
                    else None
            except ValueError:
                missing = None
        results.append(smoke.routes_result(missing, error, status, text, port, request_timeout))
    return results


ARGUMENT_SPEC = {
    "base_url": {"type": "str", "default": "http://127.0.0.1:8002"},
    "checks": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str"},
        "method": {"type": "str", "choices": ["GET", "POST"], "default": "GET"},
        "path": {"type": "str", "required": True},
        "expect_status": {"type": "int", "default": 200},
        "expect_json": {"type": "dict"},
        "expect_json_keys": {"type": "list", "elements": "str"},
        "body": {"type": "raw"},
    }},
    "expected_routes": {"type": "list", "elements": "str", "default": []},
    "timeout": {"type": "int", "default": 60},
    "interval": {"type": "float", "default": 2},
    "project_name": {"type": "str"},
    "service": {"type": "str"},
}


def crashed(module: AnsibleModule, project: str | None, service: str | None) -> str | None:
    """The crash line for the service's container, or None (also when docker cannot say)."""
    docker = module.get_bin_path("docker") if project and service else None
    if not docker:
        return None
    try:
        found = docker_read.containers(docker, REQUEST_TIMEOUT, project, service,
                                       retry_vanished=True)
    except docker_read.DockerReadError:
        return None
    return smoke.crash_verdict(found)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    base = {"changed": False, "results": [], "missing_routes": [], "attempts": 0, "elapsed": 0.0}
    url = urllib.parse.urlparse(p["base_url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        module.fail_json(msg=f"base_url must be like http://127.0.0.1:8002, got "
                         f"{p['base_url']!r}; fix base_url", **base)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        checks = [smoke.normalize_check(c) for c in p["checks"]]
        routes = list(p["expected_routes"])
        for route in routes:
            smoke.parse_route(route)
    except (ValueError, TypeError) as exc:
        module.fail_json(msg=f"{exc}; fix the module options", **base)
    if not checks and not routes:
        module.fail_json(msg="nothing to check: expected checks or expected_routes, got "
                         "neither; pass at least one", **base)

    interval = max(float(p["interval"]), 0.05)
    start = time.monotonic()
    deadline = start + max(int(p["timeout"]), 0)
    attempts = 0
    crash = None
    while True:
        attempts += 1
        remaining = max(deadline - time.monotonic(), 0.5)
        results = run_once(p["base_url"], checks, routes, port, min(REQUEST_TIMEOUT, remaining))
        left = deadline - time.monotonic()
        if all(r["ok"] for r in results) or left <= 0:
            break
        crash = crashed(module, p["project_name"], p["service"])
        if crash:
            break
        time.sleep(min(interval, left))

    elapsed = round(time.monotonic() - start, 2)
    missing = next((r.get("missing", []) for r in results if r["name"] == "openapi routes"), [])
    clean = [{k: r[k] for k in ("name", "ok", "status", "body", "hint")} for r in results]
    out = {"changed": False, "results": clean, "missing_routes": missing, "attempts": attempts,
               "elapsed": elapsed}
    failed = [r for r in results if not r["ok"]]
    if failed:
        lines = "\n".join([crash] * bool(crash) + [smoke.summary_line(r) for r in failed])
        module.fail_json(msg=f"{len(failed)} of {len(results)} smoke checks failed against "
                         f"{p['base_url']} after {attempts} attempts ({elapsed}s):\n{lines}",
                         **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
