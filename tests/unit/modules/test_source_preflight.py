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

MAIN_OK = """\
from fastapi import FastAPI
from app.api.routes_portfolio import router as portfolio_router

app = FastAPI()
app.include_router(portfolio_router)
"""

FILES = {
    "docker-compose.yml": "services:\n  backend: {build: ./backend}\n",
    "backend/app/__init__.py": "",
    "backend/app/main.py": MAIN_OK,
    "backend/app/api/__init__.py": "",
    "backend/app/api/routes_portfolio.py": (
        "from fastapi import APIRouter\n\nrouter = APIRouter()\n"
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
        }
    ]
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
    assert _warnings(result) == []


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


def test_router_not_included_fails(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/main.py", "from fastapi import FastAPI\napp = FastAPI()\n")
    failed, result = run_module(src_dir=str(checkout))
    assert failed
    assert result["msg"].startswith(
        "router 'router' defined in backend/app/api/routes_portfolio.py:3 is never included"
    )
    assert "\n" not in result["msg"]


def test_skip_router_check_ships_with_warning(checkout: Path, run_module) -> None:
    _write(checkout, "backend/app/main.py", "from fastapi import FastAPI\napp = FastAPI()\n")
    failed, result = run_module(src_dir=str(checkout), skip_router_check=True)
    assert not failed, result
    assert result["routers"][0]["included"] is False
    assert any("never included" in w for w in _warnings(result))
    assert Path(result["archive_path"]).is_file()


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
    _write(repo, "docker-compose.yml", "services: {}\n")
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
    assert {"src_dir", "git_sha", "routers", "archive_sha256"} <= set(returned)
    yaml.safe_load(source_preflight.EXAMPLES)
