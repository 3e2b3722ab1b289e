"""Tests of the env_files module, for real on tmp_path."""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest
from ansible_collections.atp.deploy.plugins.modules import env_files

from .module_runner import doc_spec_problems, run_module

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
SECRET = "EXCHANGE_CUSTOM_API_KEY=very-secret-value\n"


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "app" / "shared"


def args(dest, files, **extra) -> dict:
    return {"dest": str(dest), "files": files, "owner": USER, "group": GROUP, **extra}


def test_documentation_matches_argument_spec():
    assert doc_spec_problems(env_files) == []


def test_creates_dir_and_files(dest):
    (dest.parent).mkdir()
    result = run_module(env_files, args(dest, {".env": SECRET, ".env.aws": "A=1\n"}))
    assert result["changed"] is True and result["dest_created"] is True
    assert result["files"] == {".env": True, ".env.aws": True}
    assert os.stat(dest).st_mode & 0o777 == 0o750
    assert (dest / ".env").read_text() == SECRET
    assert os.stat(dest / ".env").st_mode & 0o777 == 0o600
    assert os.stat(dest / ".env").st_uid == os.getuid()
    assert sorted(os.listdir(dest)) == [".env", ".env.aws"]


def test_result_never_contains_contents(dest):
    result = run_module(env_files, args(dest, {".env": SECRET}))
    assert "very-secret-value" not in json.dumps(result)


def test_second_run_unchanged_then_only_changed_file(dest):
    files = {".env": SECRET, ".env.aws": "A=1\n"}
    run_module(env_files, args(dest, files))
    again = run_module(env_files, args(dest, files))
    assert again["changed"] is False and again["files"] == {".env": False, ".env.aws": False}
    inode = os.stat(dest / ".env").st_ino
    changed = run_module(env_files, args(dest, {**files, ".env.aws": "A=2\n"}))
    assert changed["changed"] is True
    assert changed["files"] == {".env": False, ".env.aws": True}
    assert (dest / ".env.aws").read_text() == "A=2\n"
    assert os.stat(dest / ".env").st_ino == inode


def test_mode_difference_rewrites(dest):
    run_module(env_files, args(dest, {".env": SECRET}))
    os.chmod(dest / ".env", 0o644)
    result = run_module(env_files, args(dest, {".env": SECRET}))
    assert result["files"] == {".env": True}
    assert os.stat(dest / ".env").st_mode & 0o777 == 0o600
    result = run_module(env_files, args(dest, {".env": SECRET}, mode="0640"))
    assert result["changed"] is True and os.stat(dest / ".env").st_mode & 0o777 == 0o640


def test_other_files_left_alone(dest):
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_text("keep")
    run_module(env_files, args(dest, {".env": SECRET}))
    assert (dest / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["../x", "a/b", ".", "..", "/etc/passwd", ""])
def test_bad_names_rejected(dest, name):
    result = run_module(env_files, args(dest, {name: SECRET}))
    assert result["failed"] is True
    assert "file names must be plain names like .env or .env.aws" in result["msg"]
    assert not dest.exists()


def test_bad_mode_and_owner(dest):
    result = run_module(env_files, args(dest, {".env": SECRET}, mode="rw"))
    assert result["failed"] is True and "mode must be an octal string" in result["msg"]
    result = run_module(env_files, args(dest, {".env": SECRET}, owner="no-such-user-xyz"))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_dest_is_a_file(dest):
    dest.parent.mkdir(parents=True)
    dest.write_text("oops")
    result = run_module(env_files, args(dest, {".env": SECRET}))
    assert result["failed"] is True and "must be a directory" in result["msg"]


def test_check_mode_reports_and_writes_nothing(dest):
    result = run_module(env_files, args(dest, {".env": SECRET}), check_mode=True)
    assert result["changed"] is True and result["files"] == {".env": True}
    assert not dest.exists()
    run_module(env_files, args(dest, {".env": SECRET}))
    result = run_module(env_files, args(dest, {".env": "NEW=1\n"}), check_mode=True)
    assert result["changed"] is True and (dest / ".env").read_text() == SECRET
