"""Portfolio endpoints: the snapshot always answers 200 (``ok`` says whether it worked)."""

import hmac
import os

from fastapi import APIRouter, HTTPException, Query, Request

from app.services import portfolio_cache
from app.services.portfolio_snapshot import build_snapshot

router = APIRouter()

ADMIN_KEY_ENV = "ADMIN_ACTIONS_KEY"
ADMIN_KEY_HEADER = "X-Admin-Key"


@router.get("/portfolio/snapshot")
def portfolio_snapshot(exchange: str = Query("CRYPTO_COM")) -> dict:
    return build_snapshot(exchange)


@router.get("/portfolio/latest")
def portfolio_latest() -> dict:
    return portfolio_cache.get_latest()


@router.post("/portfolio/refresh")
def portfolio_refresh(request: Request) -> dict:
    """Admin action: with ADMIN_ACTIONS_KEY set, the X-Admin-Key header must carry it."""
    expected = (os.environ.get(ADMIN_KEY_ENV) or "").strip()
    given = request.headers.get(ADMIN_KEY_HEADER) or ""
    if expected and not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="Forbidden")
    return portfolio_cache.refresh()
