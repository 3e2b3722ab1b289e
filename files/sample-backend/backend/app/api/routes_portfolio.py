"""Portfolio snapshot endpoints."""

from fastapi import APIRouter, HTTPException, Query

from app.services import portfolio_cache
from app.services.portfolio_snapshot import (
    CredentialsNotResolvedError,
    UnsupportedExchangeError,
    build_snapshot,
)

router = APIRouter()


@router.get("/portfolio/snapshot")
def portfolio_snapshot(exchange: str = Query("CRYPTO_COM")) -> dict:
    try:
        return build_snapshot(exchange)
    except UnsupportedExchangeError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except CredentialsNotResolvedError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


@router.get("/portfolio/latest")
def portfolio_latest() -> dict:
    try:
        return portfolio_cache.get_latest()
    except CredentialsNotResolvedError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


@router.post("/portfolio/refresh")
def portfolio_refresh() -> dict:
    try:
        return portfolio_cache.refresh()
    except CredentialsNotResolvedError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
