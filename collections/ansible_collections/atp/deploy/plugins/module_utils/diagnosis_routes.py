# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose: the routes registered INSIDE a running backend container (stdlib only).

The module runs :data:`ROUTE_PROBE` with the container's own Python (``docker exec <container>
python3 -c ROUTE_PROBE <module> <attr>``), reads its one result line with
:func:`parse_route_probe` and compares it with the expected routes through :mod:`routes` (the
same parsing and comparison as every other route check of the deploy).
"""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.module_utils import routes

ROUTE_MARK = "ATP_DIAGNOSE_ROUTES="

# Runs INSIDE the backend container. It imports the app the way uvicorn does and walks
# app.routes with routes.WALK_PROGRAM (the walk of the route gate: both see the same routes).
# Prints one line: ROUTE_MARK + JSON. Python 3.6+ syntax (the container's Python is not ours to
# choose).
_PROBE_BODY = r'''
import importlib, json, os, sys
def leaf(found, prefix, path, methods, route):
    if path or methods:
        found.append({"path": prefix + path,
                      "methods": sorted(str(m).upper() for m in (methods or ())),
                      "name": str(getattr(route, "name", "") or ""),
                      "kind": type(route).__name__})
def probe(module_name, attr):
    for path in (os.getcwd(), "/app"):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        app = getattr(importlib.import_module(module_name), attr)
    except BaseException as exc:
        return {"error": "importing %s:%s failed: %s: %s"
                % (module_name, attr, type(exc).__name__, str(exc)[:300])}
    found = []
    walk_routes(getattr(app, "routes", None), "", 0, found, set(), leaf)
    return {"routes": found}
try:
    out = probe(sys.argv[1], sys.argv[2])
except BaseException as exc:
    out = {"error": "route probe failed: %s: %s" % (type(exc).__name__, str(exc)[:300])}
sys.stdout.write("\n" + MARK + json.dumps(out) + "\n")
'''
ROUTE_PROBE = f"MARK = {ROUTE_MARK!r}\n" + routes.WALK_PROGRAM + _PROBE_BODY


def parse_route_probe(stdout: str | None) -> dict:
    """Output of ROUTE_PROBE -> {routes: [{path, methods, name, kind}]} or {error: str}."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(ROUTE_MARK):
            try:
                data = json.loads(line[len(ROUTE_MARK):])
            except ValueError:
                break
            if isinstance(data, dict) and ("routes" in data or "error" in data):
                return data
            break
    return {"error": "the route probe printed no result"}


def registered(probe_routes: list[dict] | None) -> list[str]:
    """The probe's routes -> sorted unique ``METHOD /path`` (``ANY /path`` without methods)."""
    return routes.keys((r.get("path"), r.get("methods")) for r in probe_routes or []
                       if isinstance(r, dict))


def compare(expected: list[str], probe_routes: list[dict] | None) -> dict:
    """{registered, missing}: what the container registers and which expected routes (already
    normalized, their order kept) it does not."""
    keys = registered(probe_routes)
    return {"registered": keys, "missing": routes.missing(expected, keys)}
