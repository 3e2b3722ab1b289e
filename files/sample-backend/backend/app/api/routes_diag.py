"""Diagnostics. ``whoami`` is always registered but answers 404 unless enabled by
``ENVIRONMENT=local`` or ``PORTFOLIO_DEBUG=1``. It reports identity only, never secrets."""

import os
import socket

from fastapi import APIRouter, HTTPException

from app.utils.credential_resolver import resolve_exchange_credentials

router = APIRouter()

SERVICE_NAME = "backend-aws"


def _environment() -> str:
    return os.environ.get("ENVIRONMENT", "").strip() or "aws"


def diagnostics_enabled() -> bool:
    debug = os.environ.get("PORTFOLIO_DEBUG", "").strip().lower()
    return _environment().lower() == "local" or debug in ("1", "true", "yes")


@router.get("/diagnostics/whoami")
def whoami() -> dict:
    if not diagnostics_enabled():
        raise HTTPException(status_code=404, detail="Not Found")
    credentials = resolve_exchange_credentials()
    return {
        "service": SERVICE_NAME,
        "environment": _environment(),
        "instance_id": os.environ.get("ATP_INSTANCE_ID") or None,
        "hostname": socket.gethostname(),
        "git_sha": os.environ.get("ATP_GIT_SHA") or "unknown",
        "build_time": os.environ.get("ATP_BUILD_TIME") or "unknown",
        "credential_source": credentials.source if credentials else None,
    }
