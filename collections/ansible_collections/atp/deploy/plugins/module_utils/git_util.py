# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tiny git helpers for controller-side source checks (stdlib only)."""

from __future__ import annotations

import os
import subprocess

_NOT_A_REPO = "not a git repository"


class GitError(RuntimeError):
    """A git command failed for a reason other than 'not a repository'."""


def run_git(root: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``git -C root <args>`` with a stable, English, lock-free environment."""
    env = dict(os.environ, LC_ALL="C", LANGUAGE="C", GIT_OPTIONAL_LOCKS="0")
    # A deploy started from a git hook inherits the hook's repository variables: the checkout
    # is read as itself, never through another index, object store or work tree.
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                 "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR"):
        env.pop(name, None)
    return subprocess.run(
        ["git", "-C", root, *args],
        capture_output=True,
        env=env,
        check=False,
    )


def first_line(data: bytes) -> str:
    """First non-empty line of git output, decoded leniently."""
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def is_work_tree(root: str) -> bool:
    """True if ``root`` is inside a git work tree; GitError on unexpected git failures."""
    try:
        proc = run_git(root, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        return False
    if proc.returncode == 0:
        return proc.stdout.strip() == b"true"
    message = first_line(proc.stderr)
    if _NOT_A_REPO in message:
        return False
    raise GitError(f"git failed in {root}: {message}")


def git_output(root: str, *args: str) -> bytes:
    """Run git and return stdout; GitError (one line) on failure."""
    proc = run_git(root, *args)
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed in {root}: {first_line(proc.stderr)}")
    return proc.stdout


def split_z(data: bytes) -> list[str]:
    """Split NUL-separated git output into str paths (surrogateescape for odd bytes)."""
    return [os.fsdecode(item) for item in data.split(b"\0") if item]
