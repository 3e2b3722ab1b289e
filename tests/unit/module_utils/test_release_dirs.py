"""Tests for release_dirs: reading releases/ and deploy.log."""

from __future__ import annotations

import json

from ansible_collections.atp.deploy.plugins.module_utils import release_dirs
from ansible_collections.atp.deploy.plugins.module_utils.release_manifest import MANIFEST_NAME

A = "20261124T101500Z-aaaaaaaaaaaa"
B = "20261125T101500Z-bbbbbbbbbbbb"


def test_read_releases_sorted_and_skips_non_releases(tmp_path):
    releases = tmp_path / "releases"
    for name in (B, A, A + ".partial", "notes"):
        (releases / name).mkdir(parents=True)
    (releases / A / MANIFEST_NAME).write_text("{}")
    (releases / "20261126T101500Z-cccccccccccc").write_text("a file, not a release dir")
    found = release_dirs.read_releases(str(tmp_path))
    assert [(r["id"], r["partial"], r["complete"]) for r in found] == [
        (A, False, True), (A, True, False), (B, False, False)]


def test_read_releases_without_releases_dir(tmp_path):
    assert release_dirs.read_releases(str(tmp_path / "missing")) == []
    (tmp_path / "releases").write_text("not a directory")
    assert release_dirs.read_releases(str(tmp_path)) == []


def test_release_entries_pair_dir_entries(tmp_path):
    (tmp_path / A).mkdir()
    [(entry, described)] = release_dirs.release_entries(str(tmp_path))
    assert entry.name == A and described["id"] == A


def test_read_deploy_log(tmp_path):
    log = tmp_path / "deploy.log"
    assert release_dirs.read_deploy_log(str(log)) == []
    log.write_text(json.dumps({"release": A, "result": "ok"}) + "\nnot json\n")
    assert release_dirs.read_deploy_log(str(log)) == [{"release": A, "result": "ok"}]
