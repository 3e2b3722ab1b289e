"""Fixtures for the sample backend (files/sample-backend/backend is the import root)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BACKEND_DIR = Path(__file__).resolve().parents[3] / "files" / "sample-backend" / "backend"

# Every variable the app reads; cleared before each test so the host env cannot leak in.
APP_ENV_VARS = (
    "EXCHANGE_CUSTOM_API_KEY",
    "EXCHANGE_CUSTOM_API_SECRET",
    "CRYPTO_COM_API_KEY",
    "CRYPTO_COM_API_SECRET",
    "CRYPTOCOM_API_KEY",
    "CRYPTOCOM_API_SECRET",
    "ENVIRONMENT",
    "PORTFOLIO_DEBUG",
    "ATP_INSTANCE_ID",
    "ATP_GIT_SHA",
    "ATP_BUILD_TIME",
    "ADMIN_ACTIONS_KEY",
    "FAKE_EXCHANGE_UNREACHABLE",
)


def _import_backend(name: str):
    """Import ``name`` from the sample backend, even if another ``app`` package was loaded."""
    if str(BACKEND_DIR) not in sys.path:
        sys.path.insert(0, str(BACKEND_DIR))
    loaded = sys.modules.get("app")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(BACKEND_DIR)):
        for mod in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
            del sys.modules[mod]
        sys.path.remove(str(BACKEND_DIR))
        sys.path.insert(0, str(BACKEND_DIR))
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in APP_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    _import_backend("app.services.portfolio_cache").reset()
    yield monkeypatch
    _import_backend("app.services.portfolio_cache").reset()


@pytest.fixture
def backend():
    """Return an importer for sample-backend modules, e.g. ``backend("app.main")``."""
    return _import_backend


@pytest.fixture
def client(backend):
    from fastapi.testclient import TestClient

    with TestClient(backend("app.main").app) as test_client:
        yield test_client
