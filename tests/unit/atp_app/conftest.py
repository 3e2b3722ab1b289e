"""Fixtures for the realistic fixture app (tests/fixtures/atp_app) and its generator."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
SKELETON = FIXTURES_DIR / "atp_app"
BACKEND_DIR = SKELETON / "backend"

# Every variable the app reads that could leak in from the host; cleared for each test.
APP_ENV_VARS = (
    "EXCHANGE_CUSTOM_API_KEY", "EXCHANGE_CUSTOM_API_SECRET", "CRYPTO_COM_API_KEY",
    "CRYPTO_COM_API_SECRET", "CRYPTOCOM_API_KEY", "CRYPTOCOM_API_SECRET", "ENVIRONMENT",
    "PORTFOLIO_DEBUG", "DATABASE_URL", "ADMIN_ACTIONS_KEY", "FAKE_EXCHANGE_MODE",
    "MAINTENANCE_MODE", "RUN_TELEGRAM", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "LOG_LEVEL",
    "ATP_GIT_SHA", "ATP_BUILD_TIME", "TRADING_CONFIG_PATH", "CORS_ORIGINS",
)


def load_generator():
    name = "atp_fixture_make_atp_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES_DIR / "make_atp_app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def import_backend(backend_dir: Path, name: str):
    """Import ``name`` from the ``app`` package under ``backend_dir`` (any other ``app``
    package loaded before, e.g. the sample backend's, is dropped first)."""
    root = str(backend_dir)
    loaded = sys.modules.get("app")
    if loaded is None or not str(getattr(loaded, "__file__", "")).startswith(root + "/"):
        for mod in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
            del sys.modules[mod]
        while root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
        importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for name in APP_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNAL_MONITOR_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("DB_INIT_ATTEMPTS", "1")
    monkeypatch.setenv("TRADING_CONFIG_PATH", "/nonexistent/trading_config.json")
    yield monkeypatch


@pytest.fixture
def backend():
    """Importer for skeleton backend modules, e.g. ``backend("app.main")``; caches reset."""
    def _import(name: str):
        return import_backend(BACKEND_DIR, name)

    _import("app.services.portfolio_cache").reset()
    _import("app.services.demo_store").reset()
    yield _import
    _import("app.services.portfolio_cache").reset()


@pytest.fixture
def client(backend):
    from fastapi.testclient import TestClient

    with TestClient(backend("app.main").app) as test_client:
        yield test_client


@pytest.fixture
def set_creds(monkeypatch: pytest.MonkeyPatch):
    def _set(prefix: str = "EXCHANGE_CUSTOM", key: str = "key-canary-1f2e",
             secret: str = "secret-canary-9a8b") -> None:
        monkeypatch.setenv(f"{prefix}_API_KEY", key)
        monkeypatch.setenv(f"{prefix}_API_SECRET", secret)
    return _set


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good checkout per session (generation takes a few seconds)."""
    dest = tmp_path_factory.mktemp("atp") / "automated-trading-platform"
    return load_generator().make_app(dest)


@pytest.fixture(scope="session")
def generated_light(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good checkout without the generated bulk (the skeleton only): fast to clone."""
    dest = tmp_path_factory.mktemp("atp-light") / "automated-trading-platform"
    return load_generator().make_app(dest, bulk=False)


@pytest.fixture
def clone(generated_light: Path, tmp_path: Path):
    """A fresh clone of the light good checkout."""
    def _clone() -> Path:
        dest = tmp_path / "clone"
        if dest.exists():
            shutil.rmtree(dest)
        subprocess.run(["git", "clone", "-q", "--local", str(generated_light), str(dest)],
                       check=True, capture_output=True)
        return dest
    return _clone
