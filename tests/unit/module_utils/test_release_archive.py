"""Tests for release_archive: file selection and deterministic archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_archive as ra
from ansible_collections.atp.deploy.plugins.module_utils import release_manifest as rm

from .tree_files import write_file


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_file(root, "docker-compose.yml", b"services: {}\n")
    write_file(root, "backend/app/main.py", b"app = None\n")
    write_file(root, "backend/app/api/routes_portfolio.py", b"router = None\n")
    write_file(root, "backend/run.sh", b"#!/bin/sh\nexec uvicorn\n", 0o755)
    write_file(root, ".env.example", b"EXCHANGE_CUSTOM_API_KEY=\n")
    write_file(root, ".env", b"EXCHANGE_CUSTOM_API_KEY=secret\n")
    write_file(root, ".env.prod", b"X=1\n")
    write_file(root, "backend/app/__pycache__/main.cpython-311.pyc", b"\0")
    write_file(root, "backend/app/api/old.pyc", b"\0")
    write_file(root, "backend/.venv/bin/python", b"")
    write_file(root, "frontend/node_modules/x/index.js", b"")
    write_file(root, "secrets/key.pem", b"KEY")
    write_file(root, "backend/.main.py.swp", b"")
    write_file(root, ".DS_Store", b"")
    return root


SHIPPED = [
    ".env.example",
    "backend/app/api/routes_portfolio.py",
    "backend/app/main.py",
    "backend/run.sh",
    "docker-compose.yml",
]


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        (".env", True),
        (".env.aws", True),
        ("backend/.env.local", True),
        (".env.example", False),
        ("backend/.env.production.example", False),
        ("a/__pycache__/b.py", True),
        ("a/b.pyc", True),
        ("secrets/x", True),
        ("app/secrets.py", False),
        (".git/config", True),
        ("x.swp", True),
        ("venv/lib/x.py", True),
        ("backend/app/main.py", False),
    ],
)
def test_is_excluded(rel: str, excluded: bool) -> None:
    assert ra.is_excluded(rel) is excluded


def test_example_kept_unless_pattern_targets_it() -> None:
    assert ra.is_excluded("x.example", ("*.example",))
    assert ra.is_excluded(".env.example", (".env.example",))


def test_select_files_walk(src: Path) -> None:
    assert ra.select_files(str(src)) == SHIPPED


def test_select_files_custom_excludes(src: Path) -> None:
    selected = ra.select_files(str(src), excludes=[".env", ".env.*", "*.pyc", "__pycache__"])
    assert "secrets/key.pem" in selected
    assert "backend/app/api/old.pyc" not in selected


def test_select_files_git(src: Path, git) -> None:
    git(src, "init", "-q")
    (src / ".gitignore").write_text("ignored.txt\nbuild/\n")
    write_file(src, "ignored.txt")
    write_file(src, "build/out.py")
    write_file(src, "backend/app/gone.py")
    git(src, "add", ".gitignore", "docker-compose.yml", "backend/app/main.py")
    git(src, "add", "backend/app/gone.py")
    git(src, "add", "-f", ".env")  # tracked by mistake: still never shipped
    git(src, "commit", "-qm", "init")
    (src / "backend/app/gone.py").unlink()  # tracked, deleted in the work tree
    selected = ra.select_files(str(src))
    assert selected == sorted([*SHIPPED, ".gitignore"])


def test_select_files_git_subdir_root(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    write_file(repo, "outside.txt")
    write_file(repo, "app/docker-compose.yml")
    write_file(repo, "app/backend/app/main.py")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    write_file(repo, "app/backend/new.py")
    assert ra.select_files(str(repo / "app")) == [
        "backend/app/main.py",
        "backend/new.py",
        "docker-compose.yml",
    ]


def test_select_files_nested_repo(tmp_path: Path, git) -> None:
    outer = tmp_path / "outer"
    write_file(outer, "docker-compose.yml")
    git(outer, "init", "-q")
    inner = outer / "backend"
    write_file(inner, "app/main.py")
    write_file(inner, "ignored.log")
    (inner / ".gitignore").write_text("*.log\n")
    git(inner, "init", "-q")
    assert ra.select_files(str(outer)) == [
        "backend/.gitignore",
        "backend/app/main.py",
        "docker-compose.yml",
    ]


def test_symlink_outside_refused(src: Path, tmp_path: Path) -> None:
    write_file(tmp_path, "elsewhere.py")
    (src / "backend/app/linked.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ra.ReleaseArchiveError, match=r"symlink backend/app/linked\.py points "
                       r"outside the source tree"):
        ra.select_files(str(src))


def test_symlink_dotdot_escape_refused(src: Path, tmp_path: Path) -> None:
    write_file(tmp_path, "elsewhere.py")
    (src / "backend/esc.py").symlink_to("../../elsewhere.py")
    with pytest.raises(ra.ReleaseArchiveError, match=r"backend/esc\.py"):
        ra.select_files(str(src))


def test_symlink_inside_archived_as_regular_file(src: Path, tmp_path: Path) -> None:
    (src / "backend/app/alias.py").symlink_to("main.py")
    selected = ra.select_files(str(src))
    assert "backend/app/alias.py" in selected
    out = ra.build_archive(str(src), selected, str(tmp_path / "out" / "a.tar.gz"))
    with tarfile.open(out["path"]) as tar:
        member = tar.getmember("backend/app/alias.py")
        assert member.isreg()
        assert tar.extractfile(member).read() == b"app = None\n"


@pytest.mark.parametrize(
    ("target", "message"),
    [("backend/app", "points to a directory"), ("nowhere", "is broken"),
     (".env", "points to excluded file .env")],
)
def test_symlink_refusals(src: Path, target: str, message: str) -> None:
    (src / "link").symlink_to(src / target)
    with pytest.raises(ra.ReleaseArchiveError, match=message) as info:
        ra.select_files(str(src))
    assert "symlink link " in str(info.value)


def test_select_files_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ra.ReleaseArchiveError, match="does not exist"):
        ra.select_files(str(tmp_path / "missing"))


def test_stale_manifest_in_source_is_not_shipped(src: Path) -> None:
    write_file(src, rm.MANIFEST_NAME, b"{}")
    assert rm.MANIFEST_NAME not in ra.select_files(str(src))


# --------------------------------------------------------------------------- archive


def _build(src: Path, dest: Path) -> dict:
    return ra.build_archive(str(src), ra.select_files(str(src)), str(dest))


def test_archive_deterministic(src: Path, tmp_path: Path) -> None:
    first = _build(src, tmp_path / "a" / "x.tar.gz")
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = _build(src, tmp_path / "b" / "x.tar.gz")
    assert Path(first["path"]).read_bytes() == Path(second["path"]).read_bytes()
    assert first["sha256"] == second["sha256"]
    assert first["content_hash"] == second["content_hash"]


def test_archive_changes_with_content(src: Path, tmp_path: Path) -> None:
    first = _build(src, tmp_path / "a.tar.gz")
    (src / "docker-compose.yml").write_bytes(b"services: {api: {}}\n")
    second = _build(src, tmp_path / "b.tar.gz")
    assert first["sha256"] != second["sha256"]
    assert first["content_hash"] != second["content_hash"]


def test_archive_layout(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    data = Path(result["path"]).read_bytes()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["size"] == len(data)
    assert result["file_count"] == len(SHIPPED)
    assert result["reused"] is False
    assert data[3] & 0x08 == 0  # gzip FNAME flag unset
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [rm.MANIFEST_NAME, *SHIPPED]
        for member in members:
            assert member.isreg()
            assert (member.mtime, member.uid, member.gid) == (946684800, 0, 0)
            assert (member.uname, member.gname) == ("root", "root")
        assert tar.getmember("backend/run.sh").mode == 0o755
        assert tar.getmember("docker-compose.yml").mode == 0o644
        raw_manifest = tar.extractfile(rm.MANIFEST_NAME).read()
    manifest = json.loads(raw_manifest)
    assert raw_manifest == (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode()
    assert manifest == rm.build_manifest(str(src), SHIPPED)
    assert rm.content_hash(manifest) == result["content_hash"]


def test_archive_extracts_and_verifies(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    dest = tmp_path / "release"
    with tarfile.open(result["path"]) as tar:
        tar.extractall(dest, filter="data")
    manifest = json.loads((dest / rm.MANIFEST_NAME).read_text())
    assert rm.verify_tree(str(dest), manifest) == []


def test_archive_reused_and_no_temp_left(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "x.tar.gz"
    first = _build(src, dest)
    inode = dest.stat().st_ino
    second = _build(src, dest)
    assert second["reused"] is True
    assert dest.stat().st_ino == inode
    assert first["sha256"] == second["sha256"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["x.tar.gz"]


def test_archive_replaces_corrupt_cache(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x.tar.gz"
    dest.write_bytes(b"garbage")
    result = _build(src, dest)
    assert result["reused"] is False
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == result["sha256"]


def test_archive_detects_change_after_manifest(src: Path, tmp_path: Path) -> None:
    files = ra.select_files(str(src))
    manifest = rm.build_manifest(str(src), files)
    (src / "docker-compose.yml").write_bytes(b"services: {}\r")  # same size, new content
    with pytest.raises(ra.ReleaseArchiveError, match=r"docker-compose\.yml changed"):
        ra.build_archive(str(src), files, str(tmp_path / "x.tar.gz"), manifest=manifest)
    assert list(tmp_path.glob("*.tar.gz")) == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/./b", rm.MANIFEST_NAME])
def test_archive_rejects_unsafe_paths(src: Path, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ra.ReleaseArchiveError):
        ra.build_archive(str(src), [bad], str(tmp_path / "x.tar.gz"))


def test_archive_rejects_missing_file(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ra.ReleaseArchiveError, match=r"nope\.py does not exist"):
        ra.build_archive(str(src), ["nope.py"], str(tmp_path / "x.tar.gz"))


def test_gzip_stream_is_plain(src: Path, tmp_path: Path) -> None:
    result = _build(src, tmp_path / "out.tar.gz")
    with gzip.open(result["path"]) as handle:
        assert handle.read(512)[:len(rm.MANIFEST_NAME)] == rm.MANIFEST_NAME.encode()
