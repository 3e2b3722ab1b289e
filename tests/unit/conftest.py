"""Make the local atp.deploy collection importable as ansible_collections.atp.deploy."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS_DIR = os.path.abspath(
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "collections")
)


def _importable() -> bool:
    """True if the collection's module_utils import from COLLECTIONS_DIR."""
    try:
        module = importlib.import_module(
            "ansible_collections.atp.deploy.plugins.module_utils.release_manifest"
        )
    except ImportError:
        return False
    return os.path.abspath(module.__file__).startswith(COLLECTIONS_DIR + os.sep)


def _install_collection_finder() -> None:
    """Fall back to ansible-core's collection loader when a regular package shadows ours."""
    from ansible.utils.collection_loader._collection_finder import (
        _AnsibleCollectionFinder,
    )

    for name in [m for m in sys.modules if m == "ansible_collections" or
                 m.startswith("ansible_collections.")]:
        del sys.modules[name]
    _AnsibleCollectionFinder(paths=[COLLECTIONS_DIR])._install()


if COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, COLLECTIONS_DIR)
if not _importable():
    _install_collection_finder()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep git from reading user config or discovering repos above tmp_path."""
    home = tmp_path / ".home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def run_git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity; return stdout."""
    cmd = [
        "git",
        "-c", "user.name=Test",
        "-c", "user.email=test@example.invalid",
        "-c", "init.defaultBranch=main",
        "-c", "commit.gpgsign=false",
        "-C", str(repo),
        *args,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git():
    """The :func:`run_git` helper as a fixture."""
    return run_git


@pytest.fixture(autouse=True)
def _module_side_ansible(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests under tests/unit/modules run modules as on a target host.

    Importing any controller code (e.g. ansible.errors in the filter tests) flips
    ansible.module_utils._internal.is_controller to True for the whole process, after which
    AnsibleModule.warn() prints to the controller display instead of returning "warnings".
    Undo that, and start every module test with empty warning/deprecation lists.
    """
    modules_dir = Path(__file__).parent / "modules"
    if modules_dir not in Path(str(request.node.path)).parents:
        return
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings as ansible_warnings

    if hasattr(_internal, "is_controller"):
        monkeypatch.setattr(_internal, "is_controller", False)
    for name in ("_global_warnings", "_global_deprecations"):
        if hasattr(ansible_warnings, name):
            monkeypatch.setattr(ansible_warnings, name, type(getattr(ansible_warnings, name))())
