"""HTTP routers; every ``APIRouter`` here is included by ``app.main``."""
