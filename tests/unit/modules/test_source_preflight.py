"""Tests for the source_preflight module, run in-process with patched module args."""

from __future__ import annotations

import hashlib
import json
import tarfile
import textwrap
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible_collections.atp.deploy.plugins.module_utils import release_manifest as rm
from ansible_collections.atp.deploy.plugins.modules import source_preflight
from module_utils import realistic_app as ra

MAIN_OK = """\
from fastapi import FastAPI
from app.api.routes_portfolio import router as portfolio_router

app = FastAPI()
app.include_router(portfolio_router, prefix="/api")
"""

COMPOSE = """\
services:
  backend-aws:
    profiles: [aws]
    build: {context: ., dockerfile: backend/Dockerfile.aws}
    env_file: [.env, .env.aws]
    depends_on: {db: {condition: service_healthy}}
  db:
    image: postgres:15
    container_name: postgres_hardened
    profiles: [local, aws]
    env_file: [.env, .env.db]
"""

ROUTES = ["GET /api/portfolio/snapshot"]

FILES = {
    "docker-compose.yml": COMPOSE,
    "backend/app/__init__.py": "",
    "backend/app/main.py": MAIN_OK,
    "backend/app/api/__init__.py": "",
    "backend/app/api/routes_portfolio.py": (
        "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n\n"
        '@router.get("/portfolio/snapshot")\ndef snapshot():\n    return {}\n'
    ),
    "backend/app/utils/credential_resolver.py": "def resolve():\n    return None\n",
    "backend/app/services/portfolio_snapshot.py": "def snapshot():\n    return {}\n",
}


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _warnings(result: dict) -> list[str]:
    """Warning texts (ansible-core >= 2.19 serializes them as WarningSummary dicts)."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for rel, text in FILES.items():
        _write(root, rel, text)
    _write(root, ".env", "EXCHANGE_CUSTOM_API_KEY=not-shipped\n")
    return root


@pytest.fixture
def repo(checkout: Path, git) -> Path:
    git(checkout, "init", "-q")
    git(checkout, "add", "-A", "--", ".", ":!.env")
    git(checkout, "commit", "-qm", "init")
    return checkout


@pytest.fixture
def run_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run source_preflight.main() with args; return (failed, result dict)."""
    from ansible.module_utils.common import warnings as ansible_warnings

    def _run(**args: object) -> tuple[bool, dict]:
        args.setdefault("artifact_dir", str(tmp_path / "artifacts"))
        args.setdefault("expected_routes", ROUTES)
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", payload)
        if hasattr(basic, "_ANSIBLE_PROFILE"):
            monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        for name in ("_global_warnings", "_global_deprecations"):
            if hasattr(ansible_warnings, name):
                monkeypatch.setattr(ansible_warnings, name, type(getattr(ansible_warnings, name))())
        with pytest.raises(SystemExit) as info:
            source_preflight.main()
        result = json.loads(capsys.readouterr().out)
        assert (info.value.code != 0) == bool(result.get("failed"))
        return bool(result.get("failed")), result

    return _run


def test_success(repo: Path, run_module, git) -> None:
    failed, result = run_module(src_dir=str(repo), require_clean_git=True)
    assert not failed, result
    assert result["changed"] is False
    assert result["src_dir"] == str(repo)
    assert result["git_sha"] == git(repo, "rev-parse", "HEAD").strip()
    assert result["git_dirty"] is False
    assert result["untracked"] == [] and result["modified"] == []
    assert result["routers"] == [
        {
            "module": "app.api.routes_portfolio",
            "name": "router",
            "file": "backend/app/api/routes_portfolio.py",
            "line": 3,
            "included": True,
            "prefix": "",
            "routes": ["GET /portfolio/snapshot"],
        }
    ]
    assert result["router_warnings"] == []
    assert result["routes_found"] == {"GET /api/portfolio/snapshot": "routes_portfolio.router"}
    assert result["compose"] == {
        "file": "docker-compose.yml",
        "service": "backend-aws",
        "profile": "aws",
        "dependencies": [
            {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}
        ],
        "env_files": [".env", ".env.db", ".env.aws"],
        "optional_env_files": [],
        "all_env_files": [".env", ".env.aws", ".env.db"],
        "environment": {},
    }
    assert result["file_count"] == len(FILES)
    archive = Path(result["archive_path"])
    assert archive.name == result["content_hash"] + ".tar.gz"
    assert archive.parent == repo.parent / "artifacts"
    data = archive.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result["archive_sha256"]
    assert len(data) == result["archive_size"]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == rm.MANIFEST_NAME
    assert ".env" not in names
    assert result["excluded_secrets"] == [".env"]  # untracked, not ignored: named, not shipped
    assert _warnings(result) == [
        "1 secret file(s) in the checkout left out of the release archive (never shipped, never "
        "read): .env; the instance's env comes from deploy_env / deploy_env_aws: list them in "
        ".gitignore (git rm --cached those that are tracked)"]


def test_rerun_is_identical_and_reused(repo: Path, run_module) -> None:
    _, first = run_module(src_dir=str(repo))
    _, second = run_module(src_dir=str(repo), _ansible_check_mode=True)
    assert first["archive_reused"] is False
    assert second["archive_reused"] is True
    assert second["changed"] is False
    for key in ("content_hash", "archive_sha256", "archive_size", "archive_path"):
        assert first[key] == second[key]


def test_src_dir_missing(tmp_path: Path, run_module) -> None:
    missing = tmp_path / "nope"
    failed, result = run_module(src_dir=str(missing))
    assert failed
    assert result["msg"] == (
        f"backend_src_dir '{missing}' does not exist: expected an app checkout holding "
        "docker-compose.yml and backend/; pass -e backend_src_dir=<path>"
    )


def test_src_dir_is_a_file(checkout: Path, run_module) -> None:
    failed, result = run_module(src_dir=str(checkout / "docker-compose.yml"))
    assert failed
    assert "is not a directory" in result["msg"]


def test_required_file_missing(checkout: Path, run_module) -> None:
    (checkout / "backend/app/utils/credential_resolver.py").unlink()
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert "backend/app/utils/credential_resolver.py" in result["msg"]
    assert "\n" not in result["msg"]
    assert not (checkout.parent / "artifacts").exists()


SEED_MAIN = MAIN_OK.replace('app.include_router(portfolio_router, prefix="/api")\n', "")


def test_seed_router_imported_not_included_fails(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/main.py", SEED_MAIN)
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert result["msg"] == (
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py as portfolio_router but never included: "
        "GET /api/portfolio/snapshot would answer 404; add app.include_router(portfolio_router) "
        "in backend/app/main.py"
    )
    assert not (checkout.parent / "artifacts").exists()


def test_several_problems_one_line_each(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/api/routes_dashboard.py",
           'from fastapi import APIRouter\nrouter = APIRouter()\n\n'
           '@router.get("/dashboard/state")\ndef state():\n    return {}\n')
    _write(checkout, "backend/app/main.py", SEED_MAIN)
    failed, result = run_module(
        src_dir=str(checkout), expected_routes=[*ROUTES, "GET /dashboard/state"]
    )
    assert failed
    problems = result["msg"].split(" | ")
    assert len(problems) == 2
    assert problems[0].startswith(
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py")
    assert problems[1].startswith("routes_dashboard.router (backend/app/api/routes_dashboard.py:2)")


def test_dead_router_is_a_warning_line(repo: Path, run_module, git) -> None:
    _write(repo, "backend/app/api/routes_unused.py",
           'from fastapi import APIRouter\nrouter = APIRouter()\n\n'
           '@router.get("/unused")\ndef unused():\n    return {}\n')
    _write(repo, "backend/app/api/routes_portfolio.py.bak", "router = APIRouter(\n")
    git(repo, "add", "-A", "--", ".", ":!.env")
    git(repo, "commit", "-qm", "dead router")
    failed, result = run_module(src_dir=str(repo), require_clean_git=True)
    assert not failed, result
    assert result["router_warnings"] == [
        "routes_unused.router (backend/app/api/routes_unused.py:2, 1 route) is never included by "
        "main.py and no expected route depends on it: dead code, deploying anyway"
    ]
    # printed by the role, not as Ansible warnings (the one warning names the untracked .env)
    assert [w for w in _warnings(result) if "secret file(s)" not in w] == []


def test_skip_router_check_ships_with_warning(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/main.py", SEED_MAIN)
    failed, result = run_module(src_dir=str(checkout), skip_router_check=True)
    assert not failed, result
    assert result["routers"][0]["included"] is False
    warnings = _warnings(result)
    assert len(warnings) == 3  # the router line, "not a git checkout", the .env left out
    assert warnings[0].startswith(
        "deploy_skip_router_check=true, shipping anyway (the route gate in the built image "
        "still runs): routes_portfolio.router (backend/app/api/routes_portfolio.py:3) "
        "is imported by main.py"
    )
    assert Path(result["archive_path"]).is_file()


@pytest.mark.parametrize("item", ["GET api/health", "get /api/health", "GET /x?y=1"])
def test_malformed_expected_route_fails_first(tmp_path: Path, run_module, item: str) -> None:
    failed, result = run_module(src_dir=str(tmp_path / "nope"), expected_routes=[item])
    assert failed
    assert result["msg"].startswith(f"deploy_expected_routes item '{item}' is not 'METHOD /path'")


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ({"service": "backend"}, "service 'backend' (deploy_service) is not in docker-compose.yml: "
                                 "its services are backend-aws, db;"),
        ({"profile": "local"}, "service 'backend-aws' is not enabled under profile 'local'"),
        ({"compose_file": "compose.yaml"}, "compose file compose.yaml not found: "),
    ],
)
def test_compose_problems_fail_before_the_archive(
    checkout: Path, run_module, args: dict, msg: str
) -> None:
    failed, result = run_module(src_dir=str(checkout), **args)
    assert failed
    assert result["msg"].startswith(msg)
    assert "\n" not in result["msg"]
    assert not (checkout.parent / "artifacts").exists()


def test_env_file_escaping_the_checkout_fails(checkout: Path, run_module) -> None:
    _write(checkout, "docker-compose.yml", COMPOSE.replace(".env.db]", "../shared/.env.db]"))
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert result["msg"].startswith(
        "service 'db' env_file '../shared/.env.db' escapes the checkout"
    )


def test_realistic_app(tmp_path: Path, run_module) -> None:
    good = ra.write_app(tmp_path / "good")
    failed, result = run_module(src_dir=str(good), expected_routes=ra.EXPECTED_ROUTES)
    assert not failed, result
    assert len(result["router_warnings"]) == 3
    assert result["compose"]["dependencies"] == [
        {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}
    ]
    assert result["compose"]["env_files"] == [".env", ".env.aws", ".env.db"]
    seed = ra.write_app(tmp_path / "seed", "seed")
    failed, result = run_module(src_dir=str(seed), expected_routes=ra.EXPECTED_ROUTES)
    assert failed
    assert result["msg"].startswith(
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:10) "
        "is imported by main.py as portfolio_router but never included: "
        "GET /api/portfolio/snapshot, GET /api/portfolio/latest, POST /api/portfolio/refresh "
        "would answer 404"
    )


def test_syntax_error_fails(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/api/routes_portfolio.py", "router = (\n")
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert result["msg"].startswith("syntax error in backend/app/api/routes_portfolio.py:")


def test_untracked_file_warns(repo: Path, run_module) -> None:
    _write(repo, "backend/app/api/routes_new.py", "x = 1\n")
    failed, result = run_module(src_dir=str(repo))
    assert not failed, result
    assert result["git_dirty"] is True
    assert result["untracked"] == ["backend/app/api/routes_new.py"]
    assert any("routes_new.py" in w and "not committed" in w for w in _warnings(result))
    assert result["file_count"] == len(FILES) + 1


def test_require_clean_git_fails(repo: Path, run_module) -> None:
    for index in range(12):
        _write(repo, f"backend/extra_{index:02d}.py", "x = 1\n")
    _write(repo, "docker-compose.yml", COMPOSE + "# changed\n")
    failed, result = run_module(src_dir=str(repo), require_clean_git=True)
    assert failed
    msg = result["msg"]
    assert msg.startswith(f"13 file(s) not committed in {repo}: backend/extra_00.py, ")
    assert msg.endswith(
        "(first 10): commit them or pass -e deploy_require_clean_git=false"
    )
    assert "docker-compose.yml" not in msg  # 11th and later entries are cut


def test_require_clean_git_ignores_excluded_files(repo: Path, run_module) -> None:
    _write(repo, "backend/app/__pycache__/main.cpython-311.pyc", "x")
    failed, result = run_module(src_dir=str(repo), require_clean_git=True)
    assert not failed, result


def test_not_git_warns_and_clean_required_fails(checkout: Path, run_module) -> None:
    failed, result = run_module(src_dir=str(checkout))
    assert not failed
    assert result["git_sha"] == "unknown"
    assert any("not a git checkout" in w for w in _warnings(result))
    failed, result = run_module(src_dir=str(checkout), require_clean_git=True)
    assert failed
    assert "not inside a git work tree" in result["msg"]


def test_symlink_outside_fails(checkout: Path, tmp_path: Path, run_module) -> None:
    (tmp_path / "outside.py").write_text("x = 1\n")
    (checkout / "backend/app/link.py").symlink_to(tmp_path / "outside.py")
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert result["msg"].startswith("symlink backend/app/link.py points outside the source tree")


def test_custom_required_files(checkout: Path, run_module) -> None:
    failed, result = run_module(src_dir=str(checkout), required_files=["Makefile"])
    assert failed
    assert "Makefile" in result["msg"]


def test_documentation_is_valid_yaml() -> None:
    import yaml

    doc = yaml.safe_load(source_preflight.DOCUMENTATION)
    assert doc["module"] == "source_preflight"
    assert set(doc["options"]) == set(source_preflight.ARGUMENT_SPEC)
    for name, spec in source_preflight.ARGUMENT_SPEC.items():
        assert doc["options"][name].get("default") == spec.get("default"), name
    texts = [doc["short_description"], *doc["description"], *doc["notes"]]
    for option in doc["options"].values():
        desc = option["description"]
        texts.extend(desc if isinstance(desc, list) else [desc])
    assert all(isinstance(text, str) for text in texts)
    returned = yaml.safe_load(source_preflight.RETURN)
    assert {"src_dir", "git_sha", "routers", "archive_sha256", "router_warnings",
            "compose", "routes_found"} <= set(returned)
    assert set(returned["compose"]["contains"]) == {
        "file", "service", "profile", "dependencies", "env_files", "optional_env_files",
        "all_env_files", "environment",
    }
    yaml.safe_load(source_preflight.EXAMPLES)


# --------------------------------------------------------------------------- the fixture app


def _load_fixture_maker():
    """tests/fixtures/make_atp_app.py (not a package) as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "fixtures" / "make_atp_app.py"
    spec = importlib.util.spec_from_file_location("make_atp_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def atp_app(tmp_path_factory: pytest.TempPathFactory):
    """One generated ~1,900-file checkout of the fixture app, shared by the tests below."""
    maker = _load_fixture_maker()
    repo = maker.make_app(tmp_path_factory.mktemp("atp") / "automated-trading-platform")
    return maker, repo


def test_fixture_app_good_ships_with_three_warnings(atp_app, run_module) -> None:
    import time

    maker, repo = atp_app
    maker.commit_variant(repo, "good")
    started = time.perf_counter()
    failed, result = run_module(src_dir=str(repo), expected_routes=ra.EXPECTED_ROUTES,
                                require_clean_git=True)
    elapsed = time.perf_counter() - started
    assert not failed, result
    assert result["file_count"] > 1800
    assert len(result["router_warnings"]) == 3, result["router_warnings"]
    assert all("is never included by main.py" in w for w in result["router_warnings"])
    assert set(result["routes_found"]) == set(ra.EXPECTED_ROUTES)
    assert result["compose"]["service"] == "backend-aws"
    assert result["compose"]["dependencies"] == [
        {"name": "db", "condition": "service_healthy", "container_name": "postgres_hardened"}
    ]
    assert result["compose"]["env_files"] == [".env", ".env.aws", ".env.db"]
    assert not any(".py." in r["file"] for r in result["routers"])
    # the whole preflight (git status, router check, compose, a 15 MB archive) stays quick
    assert elapsed < 60, elapsed
    started = time.perf_counter()
    check = source_preflight.check_routers(str(repo), "backend/app/main.py", ra.EXPECTED_ROUTES)
    assert time.perf_counter() - started < 3.0
    assert check.problems == []


def test_fixture_app_seed_is_stopped_naming_the_portfolio_routes(
    atp_app, run_module, tmp_path: Path
) -> None:
    maker, repo = atp_app
    maker.commit_variant(repo, "seed")
    try:
        failed, result = run_module(src_dir=str(repo), expected_routes=ra.EXPECTED_ROUTES,
                                    artifact_dir=str(tmp_path / "seed-artifacts"))
    finally:
        maker.commit_variant(repo, "good")
    assert failed
    assert result["msg"].startswith(
        "routes_portfolio.router (backend/app/api/routes_portfolio.py:22) "
        "is imported by main.py as portfolio_router but never included: "
        "GET /api/portfolio/snapshot, GET /api/portfolio/latest, POST /api/portfolio/refresh "
        "would answer 404; add app.include_router(portfolio_router, prefix=\"/api\")"
    )
    assert " | " not in result["msg"]  # the dead routers are not failures
    assert not (tmp_path / "seed-artifacts").exists()
