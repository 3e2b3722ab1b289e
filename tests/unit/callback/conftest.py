"""Callback tests never append to the repository's own reports/deploys.jsonl."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATP_DEPLOY_HISTORY", str(tmp_path / "default-history.jsonl"))
