"""Tests for source_check: required files, router inclusion, git state."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import source_check as sc

from . import realistic_app as ra

ROUTES_PORTFOLIO = """\
from fastapi import APIRouter

router = APIRouter(prefix="/api/portfolio")


@router.get("/snapshot")
def snapshot():
    return {}
"""

ROUTES_HEALTH = """\
import fastapi

router = fastapi.APIRouter()
"""


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A minimal app checkout with two routers and an empty main.py."""
    root = tmp_path / "checkout"
    _write(root, "docker-compose.yml", "services: {}\n")
    _write(root, "backend/app/__init__.py", "")
    _write(root, "backend/app/api/__init__.py", "")
    _write(root, "backend/app/api/routes_portfolio.py", ROUTES_PORTFOLIO)
    _write(root, "backend/app/api/routes_health.py", ROUTES_HEALTH)
    return root


def _main(root: Path, text: str) -> None:
    _write(root, "backend/app/main.py", text)


def _problems(root: Path) -> list[str]:
    return sc.unincluded_routers(str(root))


# --------------------------------------------------------------------------- files


def test_missing_files(app: Path) -> None:
    (app / "backend/app/utils").mkdir(parents=True)
    required = ["docker-compose.yml", "backend/app/utils", "backend/app/nope.py"]
    assert sc.missing_files(str(app), required) == ["backend/app/utils", "backend/app/nope.py"]


# --------------------------------------------------------------------------- routers


def test_find_routers(app: Path) -> None:
    _write(
        app,
        "backend/app/api/v1/extra.py",
        """\
        from fastapi import APIRouter as R
        from fastapi import APIRouter

        a: APIRouter = APIRouter()
        b = c = R(tags=["x"])
        try:
            d = APIRouter()
        except Exception:
            pass

        def factory():
            inner = APIRouter()
            return inner

        class Holder:
            attr = APIRouter()
        """,
    )
    _write(app, "backend/app/api/__init__.py", "from fastapi import APIRouter\napi = APIRouter()\n")
    routers = sc.find_routers(str(app / "backend/app/api"))
    found = {(r.module, r.name, r.line) for r in routers}
    assert found == {
        ("app.api", "api", 2),
        ("app.api.routes_health", "router", 3),
        ("app.api.routes_portfolio", "router", 3),
        ("app.api.v1.extra", "a", 4),
        ("app.api.v1.extra", "b", 5),
        ("app.api.v1.extra", "c", 5),
        ("app.api.v1.extra", "d", 7),
    }
    portfolio = next(r for r in routers if r.module == "app.api.routes_portfolio")
    assert Path(portfolio.file) == app / "backend/app/api/routes_portfolio.py"


def test_find_routers_syntax_error_raises_or_collects(app: Path) -> None:
    _write(app, "backend/app/api/broken.py", "def oops(:\n")
    with pytest.raises(sc.SourceCheckError, match="syntax error in"):
        sc.find_routers(str(app / "backend/app/api"))
    errors: list[SyntaxError] = []
    routers = sc.find_routers(str(app / "backend/app/api"), errors=errors)
    assert len(routers) == 2
    assert len(errors) == 1


PORTFOLIO_ROUTES = ["GET /api/portfolio/snapshot"]


def _result(root: Path, expected: list[str] | None = None) -> sc.RouterCheck:
    return sc.check_routers(str(root), expected_routes=expected or [])


def test_router_routes_and_prefix_are_read(app: Path) -> None:
    _write(
        app,
        "backend/app/api/routes_misc.py",
        """\
        from fastapi import APIRouter

        PREFIX = "/misc"
        router = APIRouter(prefix=PREFIX + "/v1", tags=["misc"])
        dynamic = APIRouter(prefix=settings.PREFIX)

        @router.get("/a")
        @router.post(path="/a")
        def a():
            return {}

        @router.api_route("/b", methods=["PUT", "patch"])
        def b():
            return {}

        def c():
            return {}

        router.add_api_route("/c", c)
        router.add_api_route(f"{PREFIX}/d", c, methods=["DELETE"])

        @dynamic.get(compute_path())
        def d():
            return {}
        """,
    )
    routers = {r.name: r for r in sc.find_routers(str(app / "backend/app/api"))
               if r.module == "app.api.routes_misc"}
    assert routers["router"].prefix == "/misc/v1"
    assert routers["router"].routes == (
        sc.Route("GET", "/a"), sc.Route("POST", "/a"), sc.Route("PUT", "/b"),
        sc.Route("PATCH", "/b"), sc.Route("GET", "/c"), sc.Route("DELETE", "/misc/d"),
    )
    assert routers["dynamic"].prefix is None
    assert routers["dynamic"].routes == (sc.Route("GET", None),)


def test_never_imported_router_is_a_warning(app: Path) -> None:
    """Dead code (never imported, serves nothing expected) never stops a deploy."""
    _main(
        app,
        """\
        from fastapi import FastAPI
        from app.api.routes_health import router as health_router

        app = FastAPI()
        app.include_router(health_router)
        """,
    )
    result = _result(app)
    assert result.problems == []
    assert result.warnings == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3, 1 route) is never "
        "included by main.py and no expected route depends on it: dead code, deploying anyway"
    ]


def test_never_imported_router_serving_an_expected_route_fails(app: Path) -> None:
    """Rule (b): the router serving an expected route is not included."""
    _main(
        app,
        """\
        from fastapi import FastAPI
        from app.api.routes_health import router as health_router

        app = FastAPI()
        app.include_router(health_router)
        """,
    )
    result = _result(app, ["GET /api/portfolio/snapshot", "GET /api/health"])
    assert result.problems == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) serves "
        "GET /api/portfolio/snapshot but main.py never includes it: those routes would answer "
        "404; add 'from app.api.routes_portfolio import router as portfolio_router' and "
        "app.include_router(portfolio_router) to backend/app/main.py"
    ]
    # GET /api/health is served by no router found statically: a warning, not a failure
    assert result.warnings == [
        "GET /api/health (deploy_expected_routes) is served by no router found statically "
        "under backend/app: the route gate in the built image decides"
    ]


@pytest.mark.parametrize(
    "main",
    [
        # from-import with alias
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as health_router
        app.include_router(portfolio_router, prefix="")
        app.include_router(health_router)
        """,
        # relative from-import, keyword argument
        """\
        from .api.routes_portfolio import router
        from .api import routes_health
        app.include_router(router=router)
        app.include_router(routes_health.router)
        """,
        # package import + attribute
        """\
        from app.api import routes_portfolio, routes_health
        app.include_router(routes_portfolio.router)
        app.include_router(routes_health.router)
        """,
        # import as
        """\
        import app.api.routes_portfolio as rp
        import app.api.routes_health
        from fastapi import FastAPI
        api = FastAPI()
        api.include_router(rp.router)
        api.include_router(app.api.routes_health.router)
        """,
        # conditional include and include inside a function
        """\
        import os
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as health_router
        if os.environ.get("PORTFOLIO", "1") == "1":
            app.include_router(portfolio_router)

        def create_app():
            application = FastAPI()
            application.include_router(health_router)
            return application
        """,
        # loop over routers
        """\
        from app.api import routes_portfolio, routes_health
        for r in (routes_portfolio.router, routes_health.router):
            app.include_router(r)
        """,
        # list variable + loop with prefixes
        """\
        from app.api import routes_portfolio, routes_health
        ROUTERS = [(routes_portfolio.router, "/x"), (routes_health.router, "/y")]
        for r, prefix in ROUTERS:
            app.include_router(r, prefix=prefix)
        """,
        # dict of routers + comprehension
        """\
        from app.api import routes_portfolio, routes_health
        ROUTERS = {"p": routes_portfolio.router, "h": routes_health.router}
        [app.include_router(r) for r in ROUTERS.values()]
        """,
        # try/except fallback binding keeps the imported router
        """\
        try:
            from app.api.routes_portfolio import router as portfolio_router
        except ImportError:
            portfolio_router = None
        from app.api.routes_health import router as health_router
        if portfolio_router is not None:
            app.include_router(portfolio_router)
        app.include_router(health_router)
        """,
        # a function-local name equal to an imported router does not shadow it
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as health_router

        @app.on_event("startup")
        async def startup():
            portfolio_router = None
            for health_router in []:
                pass

        app.include_router(portfolio_router)
        app.include_router(health_router)
        """,
    ],
)
def test_included_forms(app: Path, main: str) -> None:
    _main(app, main)
    result = _result(app)
    assert result.problems == []
    assert result.warnings == []
    assert result.included == {("app.api.routes_portfolio", "router"),
                               ("app.api.routes_health", "router")}


def test_seed_import_without_include_fails(app: Path) -> None:
    """Rule (a): the seed -- the import is there, the include_router line is gone."""
    _main(
        app,
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as health_router
        app.include_router(health_router, prefix="/api")
        """,
    )
    assert _result(app).problems == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py as portfolio_router but never "
        "included: its routes GET /api/api/portfolio/snapshot would answer 404; add "
        'app.include_router(portfolio_router, prefix="/api") in backend/app/main.py'
    ]
    assert _result(app, PORTFOLIO_ROUTES).problems == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py as portfolio_router but never "
        "included: GET /api/portfolio/snapshot would answer 404; add "
        'app.include_router(portfolio_router, prefix="/api") in backend/app/main.py'
    ]


def test_module_import_attribute_without_include_fails(app: Path) -> None:
    _main(
        app,
        """\
        from app.api import routes_portfolio, routes_health
        app.include_router(routes_health.router)
        logger.info("portfolio routes: %d", len(routes_portfolio.router.routes))
        """,
    )
    problems = _result(app).problems
    assert len(problems) == 1
    assert problems[0].startswith(
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py as routes_portfolio.router but never "
        "included"
    )


def test_shadowed_import_is_flagged(app: Path) -> None:
    """Included 'by name', but a later import rebinds the name to another router."""
    _main(
        app,
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as portfolio_router
        app.include_router(portfolio_router)
        """,
    )
    assert _result(app, PORTFOLIO_ROUTES).problems == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py as portfolio_router but never included "
        "(main.py:2 rebinds portfolio_router before the include_router at line 3): "
        "GET /api/portfolio/snapshot would answer 404; import it as routes_portfolio_router "
        "(a name nothing rebinds) and add app.include_router(routes_portfolio_router) in "
        "backend/app/main.py"
    ]


def test_include_before_shadowing_counts(app: Path) -> None:
    _main(
        app,
        """\
        from app.api.routes_portfolio import router
        app.include_router(router)
        from app.api.routes_health import router
        app.include_router(router)
        """,
    )
    assert _result(app, PORTFOLIO_ROUTES).problems == []


def test_included_routers_returns_refs(app: Path) -> None:
    _main(app, "from app.api.routes_portfolio import router\napp.include_router(router)\n")
    included = sc.included_routers(str(app / "backend/app/main.py"), str(app / "backend/app"))
    assert ("app.api.routes_portfolio", "router") in included
    assert ("app.api.routes_health", "router") not in included


AGGREGATE = """\
from fastapi import APIRouter
from app.api import routes_portfolio
from .routes_health import router as health_router

api_router = APIRouter(prefix="/v1")
api_router.include_router(routes_portfolio.router)
api_router.include_router(health_router)
"""


def test_aggregate_router_included_with_prefixes(app: Path) -> None:
    _write(app, "backend/app/api/router.py", AGGREGATE)
    _main(app, "from app.api.router import api_router\n"
               'app.include_router(api_router, prefix="/x")\n')
    result = _result(app, ["GET /x/v1/api/portfolio/snapshot"])
    assert result.problems == [] and result.warnings == []
    assert result.served == {"GET /x/v1/api/portfolio/snapshot": "routes_portfolio.router"}


def test_aggregate_router_not_included_warns_for_each(app: Path) -> None:
    _write(app, "backend/app/api/router.py", AGGREGATE)
    _main(app, "from fastapi import FastAPI\napp = FastAPI()\n")
    result = _result(app)
    assert result.problems == []
    assert len(result.warnings) == 3
    assert any(w.startswith("router.api_router (backend/app/api/router.py:5, 0 routes)")
               for w in result.warnings)


def test_aggregate_transitive_and_reexport(app: Path) -> None:
    _write(
        app,
        "backend/app/api/v1/__init__.py",
        """\
        from fastapi import APIRouter
        from app.api.routes_portfolio import router as portfolio_router

        v1 = APIRouter()
        v1.include_router(portfolio_router)
        """,
    )
    _write(
        app,
        "backend/app/api/__init__.py",
        """\
        from fastapi import APIRouter
        from app.api.v1 import v1
        from .routes_health import router as health

        root = APIRouter()
        root.include_router(v1)
        """,
    )
    _main(
        app,
        """\
        from app.api import root, health
        app.include_router(root)
        app.include_router(health)
        """,
    )
    result = _result(app, ["GET /api/portfolio/snapshot"])
    assert result.problems == [] and result.warnings == []


def test_includes_in_a_helper_module_main_imports(app: Path) -> None:
    """``register_routers(app)`` in a module main.py imports counts as including."""
    _write(
        app,
        "backend/app/api/registry.py",
        """\
        from app.api import routes_health, routes_portfolio

        ROUTERS = [routes_health.router, routes_portfolio.router]

        def register_routers(application, prefix="/api"):
            for router in ROUTERS:
                application.include_router(router, prefix=prefix)
        """,
    )
    _main(app, "from app.api.registry import register_routers\nregister_routers(app)\n")
    result = _result(app, ["GET /api/portfolio/snapshot"])
    assert result.problems == [] and result.warnings == []
    assert result.served == {"GET /api/portfolio/snapshot": "routes_portfolio.router"}


def test_router_passed_to_another_call_is_a_warning(app: Path) -> None:
    _write(app, "backend/app/plugins.py", "def mount_all(app, routers):\n    pass\n")
    _main(
        app,
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.plugins import mount_all
        mount_all(app, [portfolio_router])
        logger.info("loaded %s", portfolio_router)
        """,
    )
    result = _result(app, PORTFOLIO_ROUTES)
    assert result.problems == []
    assert result.warnings[1] == (
        "routes_portfolio.router is passed to mount_all() at main.py:3, not to include_router: "
        "whether it is included cannot be seen statically; the route gate in the built image "
        "decides"
    )


def test_import_inside_a_function_is_not_rule_a(app: Path) -> None:
    """Only module-level imports make "main.py imports it but never includes it"."""
    _main(
        app,
        """\
        def debug_routes():
            from app.api.routes_portfolio import router
            from app.api import routes_health
            return router.routes + routes_health.router.routes
        """,
    )
    result = _result(app)
    assert result.problems == []
    assert len(result.warnings) == 2


def test_logging_a_router_does_not_hide_the_seed(app: Path) -> None:
    _main(
        app,
        """\
        from app.api.routes_portfolio import router as portfolio_router
        logger.info("portfolio router: %s", portfolio_router)
        print(f"{portfolio_router.prefix}")
        """,
    )
    assert len(_result(app, PORTFOLIO_ROUTES).problems) == 1


def test_app_level_route_in_main_counts(app: Path) -> None:
    _main(app, '@app.get("/api/health")\ndef health():\n    return {}\n')
    result = _result(app, ["GET /api/health"])
    assert result.served == {"GET /api/health": "main.py"}
    assert result.problems == []


def test_prefix_mismatch_is_not_served(app: Path) -> None:
    """Included under another prefix: the expected route is not served by it."""
    _main(
        app,
        """\
        from app.api.routes_portfolio import router as portfolio_router
        from app.api.routes_health import router as health_router
        app.include_router(portfolio_router, prefix="/v2")
        app.include_router(health_router)
        """,
    )
    result = _result(app, PORTFOLIO_ROUTES)
    assert result.served == {}
    assert result.problems == []  # no never-included router serves it
    assert result.warnings == [
        "GET /api/portfolio/snapshot (deploy_expected_routes) is served by no router found "
        "statically under backend/app: the route gate in the built image decides"
    ]


@pytest.mark.parametrize(
    ("prefix_src", "expected"),
    [
        ('ROOT = "/root"\napp.include_router(portfolio_router, prefix=ROOT)',
         "GET /root/api/portfolio/snapshot"),
        ('app.include_router(portfolio_router, prefix=f"/{VERSION}")',
         "GET /v7/api/portfolio/snapshot"),
        ("app.include_router(portfolio_router, prefix=settings.PREFIX)",
         "GET /x/api/portfolio/snapshot"),
    ],
)
def test_prefix_literals_and_unknown_prefixes(app: Path, prefix_src: str, expected: str) -> None:
    _main(app, "from app.api.routes_portfolio import router as portfolio_router\n"
               'VERSION = "v7"\n' + prefix_src + "\n")
    result = _result(app, [expected])
    assert result.problems == []
    assert result.served == {expected: "routes_portfolio.router"}


def test_path_params_and_trailing_slash_match(app: Path) -> None:
    _write(app, "backend/app/api/routes_items.py",
           'from fastapi import APIRouter\nrouter = APIRouter()\n\n'
           '@router.get("/items/{item_id}/")\ndef item(item_id: int):\n    return {}\n')
    _main(app, "from app.api.routes_items import router\napp.include_router(router)\n")
    result = _result(app, ["GET /items/{id}"])
    assert result.served == {"GET /items/{id}": "routes_items.router"}


def test_router_outside_api_dir_is_checked(app: Path) -> None:
    _write(app, "backend/app/routers/__init__.py", "")
    _write(app, "backend/app/routers/config.py",
           'from fastapi import APIRouter\nrouter = APIRouter(prefix="/config")\n\n'
           '@router.get("")\ndef config():\n    return {}\n')
    _main(app, "from app.routers.config import router as config_router\n")
    assert _result(app, ["GET /api/config"]).problems == [
        "config.router (backend/app/routers/config.py:2) "
        "is imported by main.py as config_router but never included: its routes "
        "GET /config would answer 404; add app.include_router(config_router) in "
        "backend/app/main.py"
    ]
    _main(app, "from app.routers.config import router as config_router\n"
               'app.include_router(config_router, prefix="/api")\n')
    result = _result(app, ["GET /api/config"])
    assert result.problems == []
    assert result.served == {"GET /api/config": "config.router"}


def test_stray_copies_are_not_modules(app: Path) -> None:
    for name in ("routes_portfolio.py.bak", "routes_portfolio.py.backup2",
                 "routes_portfolio.py.new", "routes_portfolio.py.current",
                 "routes_portfolio.old.py", "routes-portfolio.py"):
        _write(app, f"backend/app/api/{name}", ROUTES_PORTFOLIO + "def broken(:\n")
    _write(app, "backend/app/api-old/routes_x.py", ROUTES_PORTFOLIO)
    _main(app, "from app.api import routes_portfolio, routes_health\n"
               "app.include_router(routes_portfolio.router)\n"
               "app.include_router(routes_health.router)\n")
    result = _result(app)
    assert result.problems == [] and result.warnings == []
    assert {r.file for r in result.routers} == {
        str(app / "backend/app/api/routes_portfolio.py"),
        str(app / "backend/app/api/routes_health.py"),
    }


def test_syntax_error_in_an_imported_module_fails(app: Path) -> None:
    _write(app, "backend/app/api/routes_broken.py", "router = APIRouter(\n")
    _main(app, "from app.api import routes_portfolio, routes_health, routes_broken\n"
               "app.include_router(routes_portfolio.router)\n"
               "app.include_router(routes_health.router)\n")
    problems = _result(app).problems
    assert len(problems) == 1
    assert problems[0].startswith("syntax error in backend/app/api/routes_broken.py:1: ")


def test_syntax_error_in_a_dead_module_is_a_warning(app: Path) -> None:
    _write(app, "backend/app/api/routes_broken.py", "router = APIRouter(\n")
    _main(app, "from app.api import routes_portfolio, routes_health\n"
               "app.include_router(routes_portfolio.router)\n"
               "app.include_router(routes_health.router)\n")
    result = _result(app)
    assert result.problems == []
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("syntax error in backend/app/api/routes_broken.py:1: ")
    assert result.warnings[0].endswith("main.py does not import it, deploying anyway")


def test_syntax_error_in_main_is_the_only_line(app: Path) -> None:
    _main(app, "from app.api import routes_portfolio\napp.include_router(\n")
    problems = _result(app, PORTFOLIO_ROUTES).problems
    assert len(problems) == 1
    assert problems[0].startswith("syntax error in backend/app/main.py:")
    assert "\n" not in problems[0]


def test_missing_imported_module_fails(app: Path) -> None:
    """The seed's first cause: routes_portfolio.py imported by main.py but not in git."""
    (app / "backend/app/api/routes_portfolio.py").unlink()
    _main(app, "from app.api.routes_portfolio import router as portfolio_router\n"
               "try:\n    from app.api.routes_optional import router as optional_router\n"
               "except ImportError:\n    optional_router = None\n"
               "app.include_router(portfolio_router)\n")
    assert _result(app).problems == [
        "backend/app/main.py:1 imports app.api.routes_portfolio, but "
        "backend/app/api/routes_portfolio.py is not in the checkout: the app cannot start; "
        "add (and commit) the file or fix the import"
    ]


def test_main_missing_and_api_missing(tmp_path: Path, app: Path) -> None:
    assert _problems(app)[0].startswith("backend/app/main.py does not exist")
    _main(tmp_path / "bare", "app = 1\n")
    assert _problems(tmp_path / "bare") == []


def test_check_routers_reports_included_flags(app: Path) -> None:
    _main(app, "from app.api.routes_health import router\napp.include_router(router)\n")
    result = sc.check_routers(str(app))
    flags = {r.module: r.ref in result.included for r in result.routers}
    assert flags == {"app.api.routes_health": True, "app.api.routes_portfolio": False}


@pytest.mark.parametrize(
    "item",
    ["get /api/health", "GET api/health", "FETCH /api/x", "GET", "GET /a /b",
     "GET /api/portfolio/snapshot?exchange=CRYPTO_COM", "", 42, None],
)
def test_malformed_expected_route_is_named(app: Path, item: object) -> None:
    with pytest.raises(sc.SourceCheckError) as info:
        sc.check_routers(str(app), expected_routes=["GET /api/health", item])
    msg = str(info.value)
    assert msg.startswith(f"deploy_expected_routes item {item!r} is not 'METHOD /path'")
    assert "GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS" in msg
    assert "\n" not in msg


def test_expected_routes_parse_and_deduplicate() -> None:
    assert sc.parse_expected_routes(["GET /a", " POST  /b ", "GET /a", "OPTIONS /"]) == [
        ("GET", "/a"), ("POST", "/b"), ("OPTIONS", "/"),
    ]


# --------------------------------------------------------------------------- realistic app


@pytest.fixture
def real_app(tmp_path: Path):
    def make(variant: str = "good") -> Path:
        return ra.write_app(tmp_path / variant, variant)

    return make


def test_realistic_good_app_passes_with_three_warnings(real_app) -> None:
    root = real_app()
    assert ra.main_lines() > 550
    result = _result(root, ra.EXPECTED_ROUTES)
    assert result.problems == []
    assert len(result.warnings) == 3
    for dead in ra.DEAD_ROUTERS:
        assert sum(w.startswith(f"{dead}.router (backend/app/api/{dead}.py:") for w in
                   result.warnings) == 1
    fixed = next(w for w in result.warnings if w.startswith("routes_portfolio_fixed"))
    assert "duplicate routes of routes_portfolio.router" in fixed
    assert result.served == {
        "GET /api/health": "routes_health.router",
        "GET /api/dashboard/state": "routes_dashboard.router",
        "GET /api/portfolio/snapshot": "routes_portfolio.router",
        "GET /api/portfolio/latest": "routes_portfolio.router",
        "POST /api/portfolio/refresh": "routes_portfolio.router",
    }
    assert len(result.routers) == len(ra.ROUTERS) + len(ra.DEAD_ROUTERS) + 1
    assert ("app.routers.config", "router") in result.included
    assert ("app.api.routes_debug", "router") in result.included
    assert not any(".py." in r.file or ".old." in r.file for r in result.routers)


def test_realistic_seed_fails_naming_the_portfolio_routes(real_app) -> None:
    result = _result(real_app("seed"), ra.EXPECTED_ROUTES)
    assert result.problems == [
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:10) "
        "is imported by main.py as portfolio_router but never "
        "included: GET /api/portfolio/snapshot, GET /api/portfolio/latest, "
        "POST /api/portfolio/refresh would answer 404; add "
        'app.include_router(portfolio_router, prefix="/api") in backend/app/main.py'
    ]
    assert len(result.warnings) == 3


def test_realistic_shadowed_seed_fails(real_app) -> None:
    problems = _result(real_app("shadowed"), ra.EXPECTED_ROUTES).problems
    assert len(problems) == 1
    assert "rebinds portfolio_router before the include_router" in problems[0]
    assert "GET /api/portfolio/snapshot" in problems[0]


def test_realistic_not_imported_fails_once(real_app) -> None:
    problems = _result(real_app("not_imported"), ra.EXPECTED_ROUTES).problems
    assert len(problems) == 1
    assert problems[0].startswith(
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:10) serves "
        "GET /api/portfolio/snapshot, GET /api/portfolio/latest, POST /api/portfolio/refresh "
        "but main.py never includes it (also never included: routes_portfolio_fixed.router)"
    )


def test_realistic_check_is_fast(real_app) -> None:
    root = real_app()
    started = time.perf_counter()
    for _ in range(3):
        _result(root, ra.EXPECTED_ROUTES)
    assert (time.perf_counter() - started) / 3 < 1.0


# --------------------------------------------------------------------------- git


def test_git_state_not_a_repo(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert sc.git_state(str(tmp_path / "plain")) == {
        "is_git": False,
        "sha": "unknown",
        "dirty": False,
        "untracked": [],
        "modified": [],
    }


def test_git_state_no_commits(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    _write(repo, "a.txt", "a")
    git(repo, "init", "-q")
    state = sc.git_state(str(repo))
    assert state["is_git"] is True
    assert state["sha"] == "unknown"
    assert state["untracked"] == ["a.txt"]
    assert state["dirty"] is True


def test_git_state_clean_untracked_ignored_modified(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    _write(repo, "a.txt", "a")
    _write(repo, "b.txt", "b")
    _write(repo, "old name.txt", "rename me")
    _write(repo, ".gitignore", "*.log\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert sc.git_state(str(repo)) == {
        "is_git": True,
        "sha": sha,
        "dirty": False,
        "untracked": [],
        "modified": [],
    }
    _write(repo, "debug.log", "ignored")
    _write(repo, "new dir/new file.py", "x")
    _write(repo, "a.txt", "changed")
    (repo / "b.txt").unlink()
    git(repo, "mv", "old name.txt", "new name.txt")
    state = sc.git_state(str(repo))
    assert state["untracked"] == ["new dir/new file.py"]
    assert state["modified"] == ["a.txt", "b.txt", "new name.txt"]
    assert state["dirty"] is True


def test_git_state_subdir_root(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    _write(repo, "outside.txt", "x")
    _write(repo, "deploy/app/docker-compose.yml", "x")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    _write(repo, "outside.txt", "changed")
    _write(repo, "stray.txt", "x")
    root = repo / "deploy/app"
    assert sc.git_state(str(root))["dirty"] is False
    _write(root, "backend/new.py", "x")
    _write(root, "docker-compose.yml", "changed")
    state = sc.git_state(str(root))
    assert state["untracked"] == ["backend/new.py"]
    assert state["modified"] == ["docker-compose.yml"]
    assert len(state["sha"]) == 40
