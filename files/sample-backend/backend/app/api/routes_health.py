"""Liveness endpoint used by the deploy tooling and the container healthcheck."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/health")
def health() -> dict:
    return {"status": "ok", "path": "/api/health"}
