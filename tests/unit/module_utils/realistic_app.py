"""A checkout shaped like the real app (../shared/REAL-APP.md), small enough for unit tests.

``write_app(root)`` writes backend/app with a ~570-line main.py that imports 24 routers at
the top (one from ``app.routers.config``), has startup events, try/except around imports and
includes and includes every router with prefix ``/api`` near the end; 3 dead router modules
(an older "simple" variant, a "fixed" copy, an unused router); stray copies with other
suffixes; and the 9-service compose file with profiles local/aws.

``variant`` changes main.py the way the seed incident did:
- ``"seed"``: the ``include_router(portfolio_router, ...)`` line is gone (import kept);
- ``"shadowed"``: a later import rebinds ``portfolio_router`` before its include;
- ``"not_imported"``: neither the import nor the include of routes_portfolio is there.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

EXPECTED_ROUTES = [
    "GET /api/health",
    "GET /api/dashboard/state",
    "GET /api/portfolio/snapshot",
    "GET /api/portfolio/latest",
    "POST /api/portfolio/refresh",
]

# module -> (APIRouter prefix or None for none, [(method, path)])
ROUTERS: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
    "routes_health": (None, [("get", "/health"), ("get", "/health/db")]),
    "routes_dashboard": (None, [("get", "/dashboard/state"), ("get", "/dashboard/summary")]),
    "routes_portfolio": (None, [("get", "/portfolio/snapshot"), ("get", "/portfolio/latest"),
                                ("post", "/portfolio/refresh")]),
    "routes_diag": ("/diagnostics", [("get", "/whoami"), ("get", "/portfolio-reconciliation")]),
    "routes_orders": ("/orders", [("get", ""), ("post", "/cancel"), ("get", "/{order_id}")]),
    "routes_signals": (None, [("get", "/signals"), ("get", "/signals/{symbol}")]),
    "routes_market": ("/market", [("get", "/prices"), ("get", "/top-coins")]),
    "routes_watchlist": (None, [("get", "/watchlist"), ("put", "/watchlist/{symbol}")]),
    "routes_alerts": ("/alerts", [("get", ""), ("post", "/test"), ("delete", "/{alert_id}")]),
    "routes_trading": (None, [("post", "/trading/buy"), ("post", "/trading/sell")]),
    "routes_account": ("/account", [("get", "/balance"), ("get", "/history")]),
    "routes_monitoring": ("/monitoring", [("get", "/summary"), ("get", "/workflows")]),
    "routes_reports": (None, [("get", "/reports/daily"), ("get", "/reports/{day}")]),
    "routes_backtest": ("/backtest", [("post", "/run"), ("get", "/results")]),
    "routes_strategies": (None, [("get", "/strategies"), ("patch", "/strategies/{name}")]),
    "routes_telegram": ("/telegram", [("post", "/webhook"), ("get", "/status")]),
    "routes_admin": ("/admin", [("post", "/restart-workers"), ("get", "/env-keys")]),
    "routes_logs": (None, [("get", "/logs/tail")]),
    "routes_metrics": (None, [("get", "/metrics/latency"), ("get", "/metrics/errors")]),
    "routes_exchange": ("/exchange", [("get", "/status"), ("get", "/symbols")]),
    "routes_notifications": (None, [("get", "/notifications"), ("post", "/notifications/ack")]),
    "routes_settings": ("/settings", [("get", ""), ("put", "")]),
    "routes_debug": ("/debug", [("get", "/threads")]),
}
# Three modules main.py never includes, on purpose.
DEAD_ROUTERS: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
    "routes_dashboard_simple": (None, [("get", "/dashboard/state-simple")]),
    "routes_portfolio_fixed": (None, [("get", "/portfolio/snapshot"),
                                      ("get", "/portfolio/latest")]),
    "routes_unused": ("/unused", [("get", "/ping")]),
}
STRAYS = [
    "routes_portfolio.py.bak",
    "routes_dashboard.py.backup2",
    "routes_orders.py.new",
    "routes_market.py.current",
    "routes_signals.old.py",
]
# How main.py names each router (the real app: <topic>_router).
ALIASES = {m: m.removeprefix("routes_") + "_router" for m in ROUTERS}

COMPOSE = """\
# automated-trading-platform: one compose file, profiles local and aws.
x-backend-env: &backend-env
  DATABASE_URL: postgresql://trader:${POSTGRES_PASSWORD:-traderpass}@db:5432/atp
  ENVIRONMENT: aws
  PORTFOLIO_DEBUG: "0"
  TZ: UTC

services:
  db:
    build: ./docker/postgres
    container_name: postgres_hardened
    profiles: [local, aws]
    env_file:
      - .env
      - .env.aws
      - .env.db
    volumes:
      - postgres_data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U trader -d atp"]
      interval: 30s
      timeout: 5s
      retries: 5
    restart: always

  backend-dev:
    build: {context: ., dockerfile: backend/Dockerfile}
    profiles: [local]
    env_file: .env
    depends_on: [db]

  backend:
    build: {context: ., dockerfile: backend/Dockerfile}
    profiles: [local]
    env_file: [.env, .env.local]
    depends_on:
      - db
    ports: ["8002:8002"]

  backend-aws:
    build:
      context: .
      dockerfile: backend/Dockerfile.aws
      args:
        GIT_SHA: ${GIT_SHA:-unknown}
        BUILD_TIME: ${BUILD_TIME:-unknown}
    profiles: [aws]
    env_file:
      - .env
      - .env.aws
    environment:
      <<: *backend-env
    command: >-
      sh -c "sleep 10 && python -m gunicorn app.main:app -w 1
      -k uvicorn.workers.UvicornWorker -b 0.0.0.0:8002"
    ports: ["8002:8002"]
    restart: always
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8002/ping_fast"]
      interval: 120s
      start_period: 180s
    deploy:
      resources:
        limits: {memory: 1g}
    depends_on:
      db:
        condition: service_healthy

  market-updater:
    build: {context: ., dockerfile: backend/Dockerfile}
    profiles: [local]
    env_file: [.env]
    depends_on: {db: {condition: service_healthy}}

  market-updater-aws:
    build: {context: ., dockerfile: backend/Dockerfile.aws}
    profiles: [aws]
    env_file: [.env, .env.aws]
    depends_on:
      backend-aws:
        condition: service_healthy
      db:
        condition: service_started

  frontend:
    build: ./frontend
    profiles: [local]
    depends_on: [backend]

  frontend-aws:
    build: ./frontend
    profiles: [aws]
    env_file:
      - path: ./frontend/.env.production
        required: false
    depends_on:
      backend-aws: {condition: service_healthy}

  aws-backup:
    image: amazon/aws-cli:2.15.0
    profiles: [aws]
    env_file:
      - path: .env.aws
      - path: .env.backup
        required: false
    volumes: [postgres_data:/data:ro]

volumes:
  postgres_data: {}
"""


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def router_source(module: str, prefix: str | None, routes: list[tuple[str, str]]) -> str:
    """A router module the way the real app writes them."""
    arg = f'prefix="{prefix}", tags=["{module}"]' if prefix else f'tags=["{module}"]'
    lines = [
        f'"""{module}: endpoints of the trading platform."""',
        "",
        "import logging",
        "",
        "from fastapi import APIRouter, Depends, HTTPException, Query",
        "",
        "from app.database import get_db",
        "",
        "logger = logging.getLogger(__name__)",
        f"router = APIRouter({arg})",
        "",
    ]
    for index, (method, path) in enumerate(routes):
        lines += [
            "",
            f'@router.{method}("{path}")',
            f"def handler_{index}(limit: int = Query(50), db=Depends(get_db)) -> dict:",
            "    try:",
            f'        return {{"ok": True, "endpoint": "{path}", "limit": limit}}',
            "    except Exception as exc:  # the real app logs and re-raises as 500",
            '        logger.exception("handler failed")',
            "        raise HTTPException(status_code=500, detail=str(exc)) from exc",
            "",
        ]
    return "\n".join(lines) + "\n"


def main_source(variant: str = "good") -> str:
    """A ~570-line main.py in the real app's style."""
    imports = []
    for module in ROUTERS:
        if variant == "not_imported" and module == "routes_portfolio":
            continue
        if module == "routes_debug":
            continue  # imported in a try block below
        imports.append(f"from app.api.{module} import router as {ALIASES[module]}")
    head = [
        '"""automated-trading-platform backend: FastAPI entry point (gunicorn app.main:app)."""',
        "",
        "import asyncio",
        "import logging",
        "import os",
        "import time",
        "from datetime import datetime, timezone",
        "",
        "from fastapi import FastAPI, Request",
        "from fastapi.middleware.cors import CORSMiddleware",
        "from fastapi.responses import JSONResponse",
        "",
        "from app.core.config import settings",
        "from app.database import engine, get_db",
        "from app.services import portfolio_cache",
        *imports,
        "from app.routers.config import router as config_router",
        "",
        "try:",
        "    from app.api.routes_debug import router as debug_router",
        "except ImportError:  # optional in slim images",
        "    debug_router = None",
        "",
    ]
    if variant == "shadowed":
        head += [
            "# monitoring helpers (copy-pasted import: rebinds portfolio_router)",
            "from app.api.routes_monitoring import router as portfolio_router",
            "",
        ]
    head += [
        'logger = logging.getLogger("app.main")',
        'API_PREFIX = "/api"',
        "START_TIME = time.time()",
        "",
        'app = FastAPI(title="Automated Trading Platform", version=os.getenv("GIT_SHA", "dev"))',
        "app.add_middleware(",
        "    CORSMiddleware,",
        '    allow_origins=settings.CORS_ORIGINS.split(","),',
        "    allow_credentials=True,",
        '    allow_methods=["*"],',
        '    allow_headers=["*"],',
        ")",
        "",
        "",
        '@app.get("/ping_fast")',
        "def ping_fast() -> dict:",
        '    return {"ok": True}',
        "",
        "",
        '@app.on_event("startup")',
        "async def startup_event() -> None:",
        '    logger.info("startup: %s routers", len(app.router.routes))',
        "    try:",
        "        await asyncio.sleep(0)",
        "        portfolio_cache.warm_up()",
        "    except Exception:",
        '        logger.exception("portfolio cache warm-up failed")',
        "    # a local name that happens to match an imported router must not matter",
        "    portfolio_router = None",
        "    del portfolio_router",
        "",
        "",
        '@app.on_event("startup")',
        "async def start_background_workers() -> None:",
        '    if os.getenv("DISABLE_WORKERS") == "1":',
        "        return",
        "    try:",
        "        from app.services.signal_monitor import start_monitor",
        "",
        "        start_monitor()",
        "    except ImportError as exc:",
        '        logger.warning("signal monitor unavailable: %s", exc)',
        "",
        "",
        '@app.on_event("shutdown")',
        "async def shutdown_event() -> None:",
        "    engine.dispose()",
        "",
    ]
    filler = []
    for index in range(40):
        filler += [
            "",
            f"def _helper_{index:02d}(request: Request) -> JSONResponse:",
            f'    """Helper {index} kept from an older version of the app."""',
            "    started = datetime.now(timezone.utc)",
            "    try:",
            f'        payload = {{"helper": {index}, "path": request.url.path}}',
            "    except Exception as exc:",
            '        logger.error("helper failed: %s", exc)',
            '        payload = {"error": str(exc)}',
            '    payload["took_ms"] = (datetime.now(timezone.utc) - started).microseconds // 1000',
            "    return JSONResponse(payload)",
            "",
        ]
    includes = ["", "# ---- routers (every router is served under /api) ----", ""]
    for module in ROUTERS:
        alias = ALIASES[module]
        if module == "routes_debug":
            includes += [
                "if debug_router is not None:",
                "    app.include_router(debug_router, prefix=API_PREFIX, tags=[\"debug\"])",
            ]
        elif module == "routes_portfolio":
            if variant in ("seed", "not_imported"):
                continue
            includes += [
                "try:",
                f'    app.include_router({alias}, prefix="/api", tags=["portfolio"])',
                "except Exception as exc:  # never let one router take the app down",
                '    logger.error("portfolio router not included: %s", exc)',
            ]
        else:
            includes.append(f'app.include_router({alias}, prefix="/api")')
    includes += [
        'app.include_router(config_router, prefix="/api", tags=["config"])',
        "",
        'logger.info("app ready: %d routes", len(app.routes))',
    ]
    return "\n".join(head + filler + includes) + "\n"


def write_app(root: Path, variant: str = "good", compose: str = COMPOSE) -> Path:
    """Write the checkout under ``root`` and return it."""
    app = "backend/app"
    _write(root, "docker-compose.yml", compose)
    _write(root, f"{app}/__init__.py", "")
    _write(root, f"{app}/main.py", main_source(variant))
    _write(root, f"{app}/api/__init__.py", "")
    _write(root, f"{app}/routers/__init__.py", "")
    _write(root, f"{app}/core/__init__.py", "")
    _write(root, f"{app}/core/config.py", 'class settings:  # noqa: N801\n    CORS_ORIGINS = "*"\n')
    _write(root, f"{app}/database.py", "engine = None\n\n\ndef get_db():\n    yield None\n")
    _write(root, f"{app}/services/__init__.py", "")
    _write(root, f"{app}/services/portfolio_cache.py", "def warm_up():\n    return None\n")
    _write(root, f"{app}/services/portfolio_snapshot.py", "def snapshot():\n    return {}\n")
    _write(root, f"{app}/services/signal_monitor.py", "def start_monitor():\n    return None\n")
    _write(root, f"{app}/utils/__init__.py", "")
    _write(root, f"{app}/utils/credential_resolver.py", "def resolve():\n    return None\n")
    for module, (prefix, routes) in {**ROUTERS, **DEAD_ROUTERS}.items():
        _write(root, f"{app}/api/{module}.py", router_source(module, prefix, routes))
    _write(root, f"{app}/routers/config.py", router_source("config", "/config", [("get", "")]))
    for stray in STRAYS:
        module = stray.split(".")[0]
        prefix, routes = ROUTERS[module]
        _write(root, f"{app}/api/{stray}", router_source(module, prefix, routes))
    for rel in ("README.md", "docs/REPORT.md", "frontend/package.json", "scripts/deploy.sh"):
        _write(root, rel, "placeholder\n")
    _write(root, ".env.example", "POSTGRES_PASSWORD=\n")
    return root


def main_lines(variant: str = "good") -> int:
    """Number of lines of main.py."""
    return len(main_source(variant).splitlines())


def dedent(text: str) -> str:
    """textwrap.dedent re-exported for the tests."""
    return textwrap.dedent(text)
