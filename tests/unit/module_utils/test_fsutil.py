"""Tests of module_utils/fsutil.py (atomic writes, symlink switch, owners, log lines)."""

from __future__ import annotations

import grp
import json
import os
import pwd
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import fsutil

UID, GID = os.getuid(), os.getgid()
USER, GROUP = pwd.getpwuid(UID).pw_name, grp.getgrgid(GID).gr_name


@pytest.mark.parametrize(("name", "ok"), [
    (".env", True), (".env.aws", True), ("app.env", True),
    (".", False), ("..", False), ("a/b", False), ("../x", False), ("", False), ("a b", False),
])
def test_is_plain_name(name, ok):
    assert fsutil.is_plain_name(name) is ok


def test_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert fsutil.sha256_file(str(path)) == want == fsutil.sha256_bytes(b"abc")


def test_nearest_existing_dir_and_free_mb(tmp_path):
    assert fsutil.nearest_existing_dir(str(tmp_path / "a" / "b")) == str(tmp_path)
    assert fsutil.nearest_existing_dir(str(tmp_path)) == str(tmp_path)
    assert fsutil.free_mb(str(tmp_path / "missing")) > 0


def test_resolve_owner():
    assert fsutil.resolve_owner(USER, GROUP) == (UID, GID)
    assert fsutil.resolve_owner(str(UID), str(GID)) == (UID, GID)
    with pytest.raises(KeyError, match="user 'no-such-user-xyz' does not exist"):
        fsutil.resolve_owner("no-such-user-xyz", GROUP)
    with pytest.raises(KeyError, match="group 'no-such-group-xyz' does not exist"):
        fsutil.resolve_owner(USER, "no-such-group-xyz")


@pytest.fixture
def work(tmp_path):
    """An empty directory of its own (tmp_path also holds the conftest's .home)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_makedirs_owned(work):
    target = work / "a" / "b" / "shared"
    created = fsutil.makedirs_owned(str(target), 0o750, UID, GID)
    assert created == [str(work / "a"), str(work / "a" / "b"), str(target)]
    assert os.stat(target).st_mode & 0o777 == 0o750
    assert os.stat(work / "a").st_mode & 0o777 == 0o755
    assert fsutil.makedirs_owned(str(target), 0o700, UID, GID) == []
    assert os.stat(target).st_mode & 0o777 == 0o750


def test_atomic_write_and_file_differs(work):
    path = str(work / "f")
    assert fsutil.file_differs(path, b"x", 0o600, UID, GID)
    fsutil.atomic_write(path, b"x", 0o600, UID, GID)
    assert Path(path).read_bytes() == b"x"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not fsutil.file_differs(path, b"x", 0o600, UID, GID)
    assert fsutil.file_differs(path, b"y", 0o600, UID, GID)
    assert fsutil.file_differs(path, b"x", 0o640, UID, GID)
    assert fsutil.file_differs(path, b"x", 0o600, UID + 1, GID)
    assert sorted(os.listdir(work)) == ["f"]
    os.mkdir(work / "d")
    assert fsutil.file_differs(str(work / "d"), b"", 0o600, None, None)


def test_atomic_write_cleans_up_on_error(work, monkeypatch):
    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write(str(work / "f"), b"x", 0o600)
    assert os.listdir(work) == []


def test_atomic_symlink(work):
    link = str(work / "current")
    assert fsutil.read_link_target(link) is None
    fsutil.atomic_symlink("releases/a", link)
    assert fsutil.read_link_target(link) == "releases/a"
    fsutil.atomic_symlink("releases/b", link, UID, GID)
    assert os.readlink(link) == "releases/b"
    assert sorted(os.listdir(work)) == ["current"]
    (work / "realdir").mkdir()
    with pytest.raises(ValueError, match="not a symlink"):
        fsutil.atomic_symlink("releases/a", str(work / "realdir"))


def test_chown_tree_does_not_follow_links(tmp_path):
    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "sub" / "f").write_text("x")
    os.symlink("/etc/passwd", tmp_path / "t" / "link")
    before = os.stat("/etc/passwd")
    fsutil.chown_tree(str(tmp_path / "t"), UID, GID)
    assert os.stat("/etc/passwd").st_uid == before.st_uid
    assert os.lstat(tmp_path / "t" / "sub" / "f").st_uid == UID


def test_append_json_line(tmp_path):
    path = str(tmp_path / "deploy.log")
    line, created = fsutil.append_json_line(path, {"b": 2, "a": 1})
    assert created and line == '{"a": 1, "b": 2}'
    assert os.stat(path).st_mode & 0o777 == 0o640
    _, created = fsutil.append_json_line(path, {"c": object.__name__})
    assert not created
    lines = Path(path).read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"a": 1, "b": 2}, {"c": "object"}]
    assert fsutil.json_line({"z": {1, 2}.__class__}) == '{"z": "<class \'set\'>"}'
