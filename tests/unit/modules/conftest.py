"""Fixtures shared by the module tests: the fake docker CLI and an empty app_root."""

from __future__ import annotations

import pytest

from .module_runner import FakeDocker


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """A FakeDocker first on PATH (test_diagnose extends it with exec/logs)."""
    return FakeDocker(tmp_path, monkeypatch)


@pytest.fixture
def app_root(tmp_path):
    """tmp_path/app with empty releases/ and shared/ (test_release_unpack has its own)."""
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    (root / "shared").mkdir()
    return root
