"""Dashboard state (only the portfolio part in this sample)."""

from fastapi import APIRouter

from app.services import portfolio_cache

router = APIRouter()


@router.get("/dashboard/state")
def dashboard_state() -> dict:
    return portfolio_cache.get_dashboard_state()
