"""Tests for release_manifest (shared controller/instance API)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import release_manifest as rm

from .tree_files import write_file


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    write_file(root, "docker-compose.yml", b"services: {}\n")
    write_file(root, "backend/app/main.py", b"print('hi')\n")
    write_file(root, "backend/entrypoint.sh", b"#!/bin/sh\n", 0o755)
    return root


def _manifest(root: Path) -> dict:
    rels = ["docker-compose.yml", "backend/app/main.py", "backend/entrypoint.sh"]
    return rm.build_manifest(str(root), rels)


def test_constants() -> None:
    assert rm.MANIFEST_NAME == ".release-manifest.json"


def test_file_entry_hash_size_mode(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 123)  # more than one 1 MiB chunk
    path = write_file(tmp_path, "big.bin", data)
    assert rm.file_entry(str(path)) == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": 0o644,
        "size": len(data),
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(0o600, 0o644), (0o644, 0o644), (0o700, 0o755), (0o744, 0o755), (0o645, 0o755)],
)
def test_file_entry_mode_normalized(tmp_path: Path, mode: int, expected: int) -> None:
    path = write_file(tmp_path, "f", b"", mode)
    assert rm.file_entry(str(path))["mode"] == expected


def test_build_manifest_sorted_posix(tree: Path) -> None:
    manifest = rm.build_manifest(
        str(tree), [os.path.join("backend", "app", "main.py"), "docker-compose.yml"]
    )
    assert manifest["format"] == 1
    assert list(manifest["files"]) == ["backend/app/main.py", "docker-compose.yml"]


def test_content_hash_canonical(tree: Path) -> None:
    manifest = _manifest(tree)
    canonical = json.dumps(manifest["files"], sort_keys=True, separators=(",", ":"))
    assert rm.content_hash(manifest) == hashlib.sha256(canonical.encode()).hexdigest()
    reordered = {"format": 1, "files": dict(reversed(list(manifest["files"].items())))}
    assert rm.content_hash(reordered) == rm.content_hash(manifest)


def test_content_hash_changes_with_content_and_mode(tree: Path) -> None:
    before = rm.content_hash(_manifest(tree))
    (tree / "docker-compose.yml").chmod(0o755)
    after_mode = rm.content_hash(_manifest(tree))
    (tree / "docker-compose.yml").write_bytes(b"services: {a: 1}\n")
    after_content = rm.content_hash(_manifest(tree))
    assert len({before, after_mode, after_content}) == 3


def test_verify_tree_ok_and_ignores_env(tree: Path) -> None:
    manifest = _manifest(tree)
    write_file(tree, ".env", b"SECRET='x'\n")
    write_file(tree, ".env.aws", b"AWS='x'\n")
    write_file(tree, rm.MANIFEST_NAME, b"{}")
    assert rm.verify_tree(str(tree), manifest) == []


def test_verify_tree_missing_extra_changed_mode(tree: Path) -> None:
    manifest = _manifest(tree)
    (tree / "docker-compose.yml").unlink()
    write_file(tree, "backend/app/stray.py", b"")
    (tree / "backend/app/main.py").write_bytes(b"print('changed')\n")
    (tree / "backend/entrypoint.sh").chmod(0o644)
    problems = rm.verify_tree(str(tree), manifest)
    assert "missing file: docker-compose.yml" in problems
    assert "extra file: backend/app/stray.py" in problems
    assert any(p.startswith("sha256 mismatch: backend/app/main.py") for p in problems)
    assert any(
        p.startswith("mode mismatch: backend/entrypoint.sh (expected 0755, found 0644)")
        for p in problems
    )
    assert len(problems) == 4


def test_verify_tree_custom_ignore(tree: Path) -> None:
    manifest = _manifest(tree)
    write_file(tree, ".env", b"")
    assert rm.verify_tree(str(tree), manifest, ignore=()) == ["extra file: .env"]


def test_verify_tree_symlink_in_place_of_file(tree: Path) -> None:
    manifest = _manifest(tree)
    target = tree / "docker-compose.yml"
    (tree / "copy.yml").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to("copy.yml")
    problems = rm.verify_tree(str(tree), manifest, ignore=("copy.yml",))
    assert problems == ["unexpected symlink (expected a regular file): docker-compose.yml"]


def test_verify_tree_bad_format_and_missing_root(tmp_path: Path) -> None:
    assert rm.verify_tree(str(tmp_path), {"format": 2, "files": {}})[0].startswith(
        "unsupported manifest format"
    )
    problems = rm.verify_tree(str(tmp_path / "nope"), {"format": 1, "files": {}})
    assert problems[0].startswith("release directory does not exist")
