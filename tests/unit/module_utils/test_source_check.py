"""Tests for source_check: required files, router inclusion, git state."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import source_check as sc

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


def test_seed_bug_router_never_included(app: Path) -> None:
    """The failed manual deploy: routes_portfolio existed, main.py never included it."""
    _main(
        app,
        """\
        from fastapi import FastAPI
        from app.api.routes_health import router as health_router

        app = FastAPI()
        app.include_router(health_router)
        """,
    )
    assert _problems(app) == [
        (
            "router 'router' defined in backend/app/api/routes_portfolio.py:3 is never included "
            "by backend/app/main.py: add app.include_router(...) for it "
            '(an unincluded router answers 404 {"detail":"Not Found"})'
        )
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
        # list variable + loop
        """\
        from app.api import routes_portfolio, routes_health
        ROUTERS = [routes_portfolio.router, routes_health.router]
        for r in ROUTERS:
            app.include_router(r)
        """,
    ],
)
def test_included_forms(app: Path, main: str) -> None:
    _main(app, main)
    assert _problems(app) == []


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
    problems = _problems(app)
    assert len(problems) == 1
    assert "routes_portfolio.py:3 is never included" in problems[0]


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
    assert _problems(app) == []


def test_included_routers_returns_refs(app: Path) -> None:
    _main(app, "from app.api.routes_portfolio import router\napp.include_router(router)\n")
    included = sc.included_routers(str(app / "backend/app/main.py"), str(app / "backend/app"))
    assert ("app.api.routes_portfolio", "router") in included
    assert ("app.api.routes_health", "router") not in included


AGGREGATE = """\
from fastapi import APIRouter
from app.api import routes_portfolio
from .routes_health import router as health_router

api_router = APIRouter(prefix="/api")
api_router.include_router(routes_portfolio.router)
api_router.include_router(health_router)
"""


def test_aggregate_router_included(app: Path) -> None:
    _write(app, "backend/app/api/router.py", AGGREGATE)
    _main(app, "from app.api.router import api_router\napp.include_router(api_router)\n")
    assert _problems(app) == []


def test_aggregate_router_not_included_flags_everything(app: Path) -> None:
    _write(app, "backend/app/api/router.py", AGGREGATE)
    _main(app, "from fastapi import FastAPI\napp = FastAPI()\n")
    problems = _problems(app)
    assert len(problems) == 3
    assert any("'api_router' defined in backend/app/api/router.py:5" in p for p in problems)


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
    assert _problems(app) == []


def test_syntax_error_in_router_file(app: Path) -> None:
    _write(app, "backend/app/api/routes_broken.py", "router = APIRouter(\n")
    _main(app, "from app.api import routes_portfolio, routes_health\n"
               "app.include_router(routes_portfolio.router)\n"
               "app.include_router(routes_health.router)\n")
    problems = _problems(app)
    assert len(problems) == 1
    assert problems[0].startswith("syntax error in backend/app/api/routes_broken.py:1: ")


def test_syntax_error_in_main_is_the_only_line(app: Path) -> None:
    _main(app, "from app.api import routes_portfolio\napp.include_router(\n")
    problems = _problems(app)
    assert len(problems) == 1
    assert problems[0].startswith("syntax error in backend/app/main.py:")
    assert "\n" not in problems[0]


def test_main_missing_and_api_missing(tmp_path: Path, app: Path) -> None:
    assert _problems(app)[0].startswith("backend/app/main.py does not exist")
    _main(tmp_path / "bare", "app = 1\n")
    assert _problems(tmp_path / "bare") == []


def test_check_routers_reports_included_flags(app: Path) -> None:
    _main(app, "from app.api.routes_health import router\napp.include_router(router)\n")
    result = sc.check_routers(str(app))
    flags = {r.module: r.ref in result.included for r in result.routers}
    assert flags == {"app.api.routes_health": True, "app.api.routes_portfolio": False}


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
