"""routes: the one expected-routes default, parser and comparison every step uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from ansible_collections.atp.deploy.plugins.module_utils import routes

REPO = Path(__file__).resolve().parents[3]


def test_parse_normalizes_method_and_trailing_slash():
    assert routes.parse("GET  /api/health/") == ("GET", "/api/health")
    assert routes.parse("POST /") == ("POST", "/")
    assert routes.normalize(" DELETE /api/x//") == "DELETE /api/x"


@pytest.mark.parametrize("bad", ["/api/health", "GET api/health", "GET /a /b", "G3T /a",
                                 "FETCH /a", "GET /a?b=1", "GET /a#top", "", None, 3,
                                 ["GET", "/a"]])
def test_parse_refuses_what_is_not_method_path(bad):
    with pytest.raises(routes.RouteError, match=r"deploy_expected_routes item .* is not "
                                                r"'METHOD /path'.*e\.g\. 'GET /api/portfolio"):
        routes.parse(bad)


def test_normalize_all_keeps_order_and_drops_duplicates():
    assert routes.normalize_all(["GET /b", "GET /a/", "GET /b", "GET /a"]) == ["GET /b",
                                                                             "GET /a"]
    assert routes.normalize_all(None) == []


def test_keys_from_registered_routes():
    found = [("/api/health", ["GET", "HEAD"]), ("/api/items/", ["post"]), ("/ws", []),
             ("", ["GET"]), (None, None), ("/api/health", ["GET"])]
    assert routes.keys(found) == ["ANY /ws", "GET /api/health", "HEAD /api/health",
                                  "POST /api/items"]


def test_missing_compares_normalized_forms():
    registered = ["GET /api/health", "POST /api/items/", "ANY /ws"]
    assert routes.missing(["GET /api/health/", "POST /api/items", "GET /api/gone",
                           "GET /api/gone", "GET /ws"], registered) == ["GET /api/gone",
                                                                        "GET /ws"]
    assert routes.missing([], registered) == []
    with pytest.raises(routes.RouteError):
        routes.missing(["nope"], registered)


def test_the_default_is_the_app_contract():
    """docs/app-contract.md lists the same five routes as the default."""
    doc = (REPO / "docs/app-contract.md").read_text(encoding="utf-8")
    for route in routes.EXPECTED_ROUTES:
        assert route in doc
    assert all(routes.normalize(r) == r for r in routes.EXPECTED_ROUTES)


def _literal_route_lists(path: Path) -> list[int]:
    """Lines of list/tuple literals in a Python file that hold two or more of the default
    routes (a second copy of the default)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if len(values & set(routes.EXPECTED_ROUTES)) >= 2:
                hits.append(node.lineno)
    return hits


def test_one_default_in_the_collection_and_roles():
    """The default is written once: no other plugin holds a copy, no role default sets it."""
    plugins = REPO / "collections/ansible_collections/atp/deploy/plugins"
    copies = {str(p.relative_to(REPO)): lines for p in plugins.rglob("*.py")
              if p.name != "routes.py" and "doc_fragments" not in p.parts
              and (lines := _literal_route_lists(p))}
    assert copies == {}
    role_defaults = [str(p.relative_to(REPO)) for p in (REPO / "roles").glob("*/defaults/*.yml")
                     if "deploy_expected_routes" in (yaml.safe_load(p.read_text()) or {})]
    assert role_defaults == []
