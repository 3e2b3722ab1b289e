"""FastAPI entry point: ``uvicorn app.main:app``. Every router in app/api is included here."""

from fastapi import FastAPI

from app.api.routes_dashboard import router as dashboard_router
from app.api.routes_diag import router as diag_router
from app.api.routes_health import router as health_router
from app.api.routes_portfolio import router as portfolio_router

app = FastAPI(title="automated-trading-platform (sample backend)", version="0.2.0")


@app.get("/ping_fast")
def ping_fast() -> dict:
    """Cheapest liveness answer (the real app's container healthcheck uses it)."""
    return {"ok": True}


app.include_router(health_router, prefix="/api", tags=["health"])
app.include_router(dashboard_router, prefix="/api", tags=["dashboard"])
app.include_router(portfolio_router, prefix="/api", tags=["portfolio"])
app.include_router(diag_router, prefix="/api", tags=["diagnostics"])
