"""Tests of module_utils/git_util.py against real git in tmp_path repos (no network).

The autouse ``_isolated_git`` fixture (tests/unit/conftest.py) keeps git from reading user
config and from finding a repository above tmp_path; the ``git`` fixture commits with a fixed
identity (``-c user.name``/``-c user.email``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.atp.deploy.plugins.module_utils import git_util
from ansible_collections.atp.deploy.plugins.module_utils.git_util import GitError


@pytest.fixture
def repo(tmp_path: Path, git) -> Path:
    """A work tree with one commit (a.txt) and a sub directory."""
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """A directory outside any repository (GIT_CEILING_DIRECTORIES stops at tmp_path)."""
    path = tmp_path / "plain"
    path.mkdir()
    return path


# --------------------------------------------------------------------------- run_git


def test_run_git_runs_in_root_and_never_raises_on_failure(repo: Path, plain: Path) -> None:
    ok = git_util.run_git(str(repo / "sub"), "rev-parse", "--show-prefix")
    assert isinstance(ok, subprocess.CompletedProcess)
    assert (ok.returncode, ok.stdout) == (0, b"sub/\n")  # -C root: relative to sub, bytes out
    bad = git_util.run_git(str(plain), "rev-parse", "HEAD")
    assert bad.returncode == 128 and b"not a git repository" in bad.stderr


def test_run_git_environment_is_english_and_lock_free(
        plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A shell alias prints the environment git's children see: what run_git passed.
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    monkeypatch.setenv("ATP_TEST_KEPT", "yes")
    proc = git_util.run_git(str(plain), "-c", "alias.showenv=!env", "showenv")
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split("=", 1) for line in os.fsdecode(proc.stdout).splitlines()
               if "=" in line)
    assert env["LC_ALL"] == "C"
    assert env["LANGUAGE"] == "C"
    assert env["GIT_OPTIONAL_LOCKS"] == "0"
    assert env["ATP_TEST_KEPT"] == "yes"  # the rest of the caller's environment is passed on


def test_run_git_ignores_git_dir_and_work_tree_of_the_caller(
        repo: Path, plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    # With GIT_DIR honoured, git would call any directory a work tree of that repo.
    assert git_util.is_work_tree(str(plain)) is False
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    top = git_util.git_output(str(repo), "rev-parse", "--show-toplevel")
    assert top.rstrip(b"\n") == os.fsencode(str(repo))
    # The caller's own environment is left as it was.
    assert os.environ["GIT_DIR"] == str(repo / ".git")
    assert os.environ["GIT_WORK_TREE"] == str(elsewhere)


# --------------------------------------------------------------------------- is_work_tree


def test_is_work_tree_true_at_the_top_and_below(repo: Path) -> None:
    assert git_util.is_work_tree(str(repo)) is True
    assert git_util.is_work_tree(str(repo / "sub")) is True


def test_is_work_tree_true_for_a_fresh_repo_without_commits(tmp_path: Path, git) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    assert git_util.is_work_tree(str(fresh)) is True


def test_is_work_tree_false_outside_a_repository(plain: Path) -> None:
    assert git_util.is_work_tree(str(plain)) is False


def test_is_work_tree_false_where_git_answers_false(repo: Path, tmp_path: Path, git) -> None:
    # rev-parse exits 0 but prints "false": inside .git, and in a bare repository.
    assert git_util.is_work_tree(str(repo / ".git")) is False
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    assert git_util.is_work_tree(str(tmp_path / "bare.git")) is False


def test_is_work_tree_false_when_git_is_not_installed(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_util.is_work_tree(str(repo)) is False


def test_is_work_tree_raises_one_line_on_other_git_failures(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(GitError) as info:
        git_util.is_work_tree(missing)
    assert str(info.value) == (f"git failed in {missing}: fatal: cannot change to "
                               f"'{missing}': No such file or directory")


def test_git_error_is_a_runtime_error() -> None:
    assert issubclass(GitError, RuntimeError)


# --------------------------------------------------------------------------- git_output


def test_git_output_returns_raw_stdout(repo: Path, git) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert git_util.git_output(str(repo), "rev-parse", "HEAD") == head.encode()
    listing = git_util.git_output(str(repo), "ls-files", "-z")
    assert listing == b"a.txt\0sub/b.txt\0"


def test_git_output_failure_names_the_subcommand_and_first_stderr_line(repo: Path) -> None:
    # git prints a second line ("Use '--' to separate paths ..."): only the first is kept.
    with pytest.raises(GitError) as info:
        git_util.git_output(str(repo), "log", "no-such-rev")
    assert str(info.value) == (
        f"git log failed in {repo}: fatal: ambiguous argument 'no-such-rev': unknown revision "
        "or path not in the working tree.")


def test_git_output_failure_with_silent_git(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        git_util.git_output(str(repo), "rev-parse", "--verify", "--quiet", "no-such-rev")
    assert str(info.value) == f"git rev-parse failed in {repo}: "


# --------------------------------------------------------------------------- first_line


@pytest.mark.parametrize(("data", "want"), [
    (b"", ""),
    (b"\n \n\t\n", ""),
    (b"one\ntwo\n", "one"),
    (b"\n\n  fatal: x  \nmore\n", "fatal: x"),
    (b"\r\nwarning: crlf\r\n", "warning: crlf"),
    (b"caf\xe9 bad utf-8\n", "caf\ufffd bad utf-8"),
])
def test_first_line(data: bytes, want: str) -> None:
    assert git_util.first_line(data) == want


# --------------------------------------------------------------------------- split_z


@pytest.mark.parametrize(("data", "want"), [
    (b"", []),
    (b"\0", []),
    (b"a\0b c\0", ["a", "b c"]),
    (b"a\0\0b", ["a", "b"]),
    (b"new\nline\0", ["new\nline"]),
])
def test_split_z(data: bytes, want: list[str]) -> None:
    assert git_util.split_z(data) == want


def test_split_z_keeps_odd_bytes_round_trippable() -> None:
    [name] = git_util.split_z(b"caf\xe9.txt\0")
    assert name == "caf\udce9.txt"
    assert os.fsencode(name) == b"caf\xe9.txt"


def test_split_z_on_real_git_names(tmp_path: Path, git) -> None:
    root = tmp_path / "names"
    root.mkdir()
    raw = [b"plain.txt", b"with space.txt", b"new\nline.txt", b"caf\xe9.txt"]
    for name in raw:
        (root / os.fsdecode(name)).write_bytes(b"x")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "odd names")
    names = git_util.split_z(git_util.git_output(str(root), "ls-files", "-z"))
    assert sorted(os.fsencode(n) for n in names) == sorted(raw)
    assert all((root / n).is_file() for n in names)


def test_an_inherited_index_file_is_ignored(tmp_path, monkeypatch):
    """A deploy started from a git hook (GIT_INDEX_FILE set to the hook's index) still sees
    the checkout's own committed files."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "a"], check=True)
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere.index"))
    assert git_util.git_output(str(repo), "ls-files").split() == [b"a.txt"]
