"""The fixture generator: deterministic, realistic size, and variants that differ as described."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import git, import_backend, load_generator

gen = load_generator()

BACKUP_ENV_FILES = (".env.bak", ".env.bak3", ".env.local.bak2", ".env.bak.20250101")
EXAMPLE_ENV_FILES = (".env.example", ".env.local.example", ".env.prod.example")


def tracked(repo: Path) -> list[str]:
    return git(repo, "ls-files").splitlines()


def changed_files(repo: Path) -> list[str]:
    return git(repo, "diff", "--name-only", "HEAD~1", "HEAD").split()


def test_same_commit_sha_every_time(generated: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    again = gen.make_app(tmp_path / "again")
    elapsed = time.monotonic() - started
    assert gen.head_sha(again) == gen.head_sha(generated)
    assert git(again, "log", "--format=%an <%ae> %ad", "--date=iso-strict").strip() == (
        "ATP Fixture <fixture@atp.invalid> 2025-01-06T08:00:00+00:00")
    # Generous bound for loaded CI machines; an idle machine takes ~3 s.
    assert elapsed < 30, f"generation took {elapsed:.1f}s"


def test_tree_has_the_real_apps_size_and_shape(generated: Path) -> None:
    files = tracked(generated)
    total = sum((generated / f).stat().st_size for f in files)
    assert 1850 <= len(files) <= 2050, len(files)
    assert 13_000_000 <= total <= 17_500_000, total
    root_md = [f for f in files if "/" not in f and f.endswith(".md")]
    root_sh = [f for f in files if "/" not in f and f.endswith(".sh")]
    assert len(root_md) >= 300 and len(root_sh) >= 100
    for prefix, minimum in (("docs/", 200), ("frontend/src/", 200), ("frontend/public/", 100),
                            ("scripts/", 150), (".github/workflows/", 5)):
        assert sum(f.startswith(prefix) for f in files) >= minimum, prefix
    assert "frontend/package.json" in files
    # Executable scripts keep their mode in git.
    modes = {line.split("\t")[1]: line.split()[0] for line in
             git(generated, "ls-files", "-s", "--", "*.sh").splitlines()}
    assert len(modes) >= 200
    assert set(modes.values()) == {"100755"}, set(modes.values())


def test_backup_env_files_tracked_live_env_files_not(generated: Path) -> None:
    files = set(tracked(generated))
    for name in BACKUP_ENV_FILES + EXAMPLE_ENV_FILES:
        assert name in files, name
    for name in (".env", ".env.aws", ".env.db", ".env.local"):
        assert name not in files, name
    # The backups hold secret-looking values (each marked with "-canary-" for leak tests).
    for name in BACKUP_ENV_FILES:
        assert "-canary-" in (generated / name).read_text(), name


def test_good_tree_equals_the_skeleton_for_the_meaningful_parts(generated: Path) -> None:
    for rel in ("backend/app/main.py", "docker-compose.yml", "backend/Dockerfile.aws",
                "docker/postgres/docker-entrypoint.sh", ".env.bak"):
        assert (generated / rel).read_bytes() == (gen.SKELETON / rel).read_bytes(), rel
    assert not list(generated.rglob("__pycache__"))


def test_seed_variant_drops_only_the_include_line(clone) -> None:
    repo = clone()
    base = gen.head_sha(repo)
    sha = gen.commit_variant(repo, "seed")
    assert sha != base and git(repo, "rev-parse", "HEAD~1").strip() == base
    assert changed_files(repo) == ["backend/app/main.py"]
    main = (repo / "backend/app/main.py").read_text()
    assert "from app.api.routes_portfolio import router as portfolio_router" in main
    assert "include_router(portfolio_router" not in main
    assert main.count("app.include_router(") == 24


def test_seed_variant_serves_404_for_portfolio_while_health_is_200(clone, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    repo = clone()
    gen.commit_variant(repo, "seed")
    app = import_backend(repo / "backend", "app.main").app
    try:
        with TestClient(app) as client:
            assert client.get("/api/health").status_code == 200
            for method, path in (("GET", "/api/portfolio/snapshot"),
                                 ("GET", "/api/portfolio/latest"),
                                 ("POST", "/api/portfolio/refresh")):
                response = client.request(method, path)
                assert response.status_code == 404, path
                assert response.json() == {"detail": "Not Found"}
            assert client.get("/api/dashboard/state").status_code == 200
    finally:
        for mod in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
            del sys.modules[mod]


def test_build_fail_variant_adds_a_failing_run_after_cached_steps(clone) -> None:
    repo = clone()
    gen.commit_variant(repo, "build-fail")
    assert changed_files(repo) == ["backend/Dockerfile.aws"]
    lines = [line for line in (repo / "backend/Dockerfile.aws").read_text().splitlines()
             if line.split(" ", 1)[0] in ("FROM", "WORKDIR", "COPY", "RUN")]
    failing = next(i for i, line in enumerate(lines) if "import ccxt" in line)
    assert failing >= 4, lines[:failing]
    assert lines[failing].startswith("RUN ")


def test_import_error_variant_imports_a_module_that_does_not_exist(clone) -> None:
    repo = clone()
    gen.commit_variant(repo, "import-error")
    assert changed_files(repo) == ["backend/app/api/routes_portfolio.py"]
    text = (repo / "backend/app/api/routes_portfolio.py").read_text()
    assert "from app.services.portfolio_reconciler import" in text
    assert not (repo / "backend/app/services/portfolio_reconciler.py").exists()
    proc = subprocess.run([sys.executable, "-c", "import app.main"], cwd=repo / "backend",
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "No module named 'app.services.portfolio_reconciler'" in proc.stderr


def test_db_drift_variant_changes_only_the_db_service(clone) -> None:
    repo = clone()
    before = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    gen.commit_variant(repo, "db-drift")
    assert changed_files(repo) == ["docker-compose.yml"]
    after = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    assert after["db"] != before["db"]
    assert after["db"]["environment"]["TZ"] == "UTC"
    assert {k: v for k, v in after.items() if k != "db"} == {
        k: v for k, v in before.items() if k != "db"}


def test_good_next_is_a_new_good_release(clone) -> None:
    repo = clone()
    gen.commit_variant(repo, "good-next")
    assert sorted(changed_files(repo)) == ["CHANGELOG.md", "backend/app/__init__.py"]
    assert '__version__ = "2.14.4"' in (repo / "backend/app/__init__.py").read_text()


def test_moving_back_to_good_restores_the_good_tree(clone) -> None:
    repo = clone()
    good_tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
    for variant in ("seed", "build-fail", "import-error", "db-drift", "good-next"):
        gen.commit_variant(repo, variant)
        assert git(repo, "rev-parse", "HEAD^{tree}").strip() != good_tree, variant
    gen.commit_variant(repo, "good")
    assert git(repo, "rev-parse", "HEAD^{tree}").strip() == good_tree
    assert int(git(repo, "rev-list", "--count", "HEAD")) == 7


def test_same_variant_twice_makes_no_commit(clone) -> None:
    repo = clone()
    good = gen.head_sha(repo)
    assert gen.commit_variant(repo, "good") == good
    first = gen.commit_variant(repo, "seed")
    assert gen.commit_variant(repo, "seed") == first
    assert int(git(repo, "rev-list", "--count", "HEAD")) == 2


def test_variant_commits_are_deterministic(clone, tmp_path: Path) -> None:
    repo = clone()
    sha = gen.commit_variant(repo, "seed")
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "--local", str(repo), str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "reset", "-q", "--hard", "HEAD~1"], check=True)
    assert gen.commit_variant(other, "seed") == sha


def test_unknown_variant_and_non_empty_dest_are_refused(tmp_path: Path) -> None:
    with pytest.raises(gen.FixtureError, match="unknown variant 'nope': expected one of good"):
        gen.make_app(tmp_path / "x", "nope")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(gen.FixtureError, match="is not empty"):
        gen.make_app(tmp_path / "full")


def test_cli_prints_one_json_line(tmp_path: Path) -> None:
    import json

    proc = subprocess.run([sys.executable, str(gen.__file__), str(tmp_path / "cli"),
                           "--variant", "seed", "--no-bulk", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["variant"] == "seed" and len(info["sha"]) == 40
    assert 50 <= info["files"] <= 120 and info["bytes"] > 100_000
    proc = subprocess.run([sys.executable, str(gen.__file__), str(tmp_path / "cli"),
                           "--commit-variant", "good"], capture_output=True, text=True)
    assert proc.returncode == 0 and "variant=good" in proc.stdout


def test_generated_python_and_yaml_parse(generated: Path) -> None:
    for path in list((generated / "backend").rglob("*.py")) + list(
            (generated / "scripts").rglob("*.py")):
        ast.parse(path.read_text(), str(path))
    for path in (generated / ".github/workflows").glob("*.yml"):
        assert yaml.safe_load(path.read_text())["jobs"]
