# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app's routes, one definition for every step that names them (stdlib only).

``deploy_expected_routes`` is checked four times: in the checkout (source_preflight), in the
new image (the route gate of compose_release), in the running app's ``/openapi.json``
(smoke_check) and in the serving container (diagnose). All four use this module: the same
default (``EXPECTED_ROUTES``, docs/app-contract.md), the same ``METHOD /path`` parsing and the
same comparison, so a route that passes one check cannot be spelled differently for another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# The real app's endpoint contract (../shared/REAL-APP.md, docs/app-contract.md): what every
# step checks when the operator sets no deploy_expected_routes.
EXPECTED_ROUTES: tuple[str, ...] = (
    "GET /api/health",
    "GET /api/dashboard/state",
    "GET /api/portfolio/snapshot",
    "GET /api/portfolio/latest",
    "POST /api/portfolio/refresh",
)
ANY = "ANY"  # a registered route without methods (a websocket, a mount)

_ENTRY_RE = re.compile(r"^\s*(\S+)\s+(\S+)\s*$")

# The route walk both in-container programs run (route_gate.PROGRAM in the new image,
# diagnosis_routes.ROUTE_PROBE in the serving container), so the gate and diagnose can never
# see different routes in the same app. It follows anything nested: objects with `.routes`
# (Mount, sub-apps, routers) and newer FastAPI's included-router objects (`original_router` +
# `include_context.prefix`), and hands each leaf to `leaf(found, prefix, path, methods, route)`.
# Python 3.6+ syntax (the image's Python is not ours to choose); bounded depth and count.
WALK_PROGRAM = r'''
def walk_routes(routes, prefix, depth, found, seen, leaf):
    if depth > 25 or len(found) > 5000:
        return
    try:
        routes = list(routes or [])
    except Exception:
        return
    for route in routes:
        if id(route) in seen:
            continue
        seen.add(id(route))
        path = getattr(route, "path", None)
        path = path if isinstance(path, str) else ""
        inner = getattr(route, "original_router", None)
        if inner is not None and hasattr(inner, "routes"):
            ctx = getattr(route, "include_context", None)
            walk_routes(inner.routes, prefix + str(getattr(ctx, "prefix", "") or ""), depth + 1,
                        found, seen, leaf)
            continue
        methods = getattr(route, "methods", None)
        try:
            sub = getattr(route, "routes", None)
        except Exception:
            sub = None
        if sub is not None and not methods:
            walk_routes(sub, prefix + path, depth + 1, found, seen, leaf)
            continue
        leaf(found, prefix, path, methods, route)
'''


class RouteError(ValueError):
    """An expected route that is not 'METHOD /path' (one line, names the item)."""


def parse(entry: object) -> tuple[str, str]:
    """``'GET /api/health/'`` -> ``('GET', '/api/health')``; RouteError otherwise.

    METHOD is one of HTTP_METHODS (upper case, as the app contract writes it), the path
    starts with ``/`` and has no query string or fragment; a trailing slash is dropped
    (FastAPI registers ``/x`` for ``/x/``).
    """
    match = _ENTRY_RE.match(entry) if isinstance(entry, str) else None
    method, path = match.groups() if match else ("", "")
    if method not in HTTP_METHODS or not path.startswith("/") or any(c in path for c in "?#"):
        raise RouteError(
            f"deploy_expected_routes item {entry!r} is not 'METHOD /path': expected METHOD "
            f"one of {'|'.join(HTTP_METHODS)} and a path starting with '/' without a query "
            "string, e.g. 'GET /api/portfolio/snapshot'")
    return method, _strip(path)


def normalize(entry: object) -> str:
    """``'GET /api/health/'`` -> ``'GET /api/health'``; RouteError otherwise."""
    method, path = parse(entry)
    return f"{method} {path}"


def normalize_all(entries: Iterable[object] | None) -> list[str]:
    """Expected routes normalized and de-duplicated, in the order given; RouteError."""
    out: list[str] = []
    for entry in entries or []:
        key = normalize(entry)
        if key not in out:
            out.append(key)
    return out


def keys(registered: Iterable[tuple[object, Iterable[object] | None]]) -> list[str]:
    """``[(path, methods), ...]`` as the app registered them -> sorted unique ``METHOD /path``
    (``ANY /path`` for a route without methods); entries without a path are skipped."""
    out = set()
    for path, methods in registered or []:
        path = str(path or "")
        if not path:
            continue
        for method in methods or [ANY]:
            out.add(f"{str(method).upper()} {_strip(path)}")
    return sorted(out)


def missing(expected: Iterable[object] | None, registered: Iterable[str]) -> list[str]:
    """Expected routes (normalized, in their order) that ``registered`` (``METHOD /path``
    strings, e.g. from keys()) does not hold; RouteError for a malformed expected entry."""
    have = set()
    for key in registered or []:
        method, _sep, path = str(key).partition(" ")
        if path:
            have.add(f"{method.upper()} {_strip(path)}")
    return [key for key in normalize_all(expected) if key not in have]


def _strip(path: str) -> str:
    """``/api/x/`` -> ``/api/x``; ``/`` stays."""
    if len(path) > 1:
        return path.rstrip("/") or "/"
    return path
