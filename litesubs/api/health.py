"""`GET /api/health`: is this process able to serve, and does its database answer?"""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from litesubs.db import database_answers

router = APIRouter()


@router.get("/api/health", include_in_schema=False)
def health() -> JSONResponse:
    database_ok = database_answers()
    return JSONResponse(
        {"status": "ok" if database_ok else "unavailable", "database": "ok" if database_ok else "unavailable"},
        status_code=200 if database_ok else 503,
    )
