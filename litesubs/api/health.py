"""`GET /api/health`: can this process serve? The database and (when configured) Redis, reported apart."""

from functools import lru_cache

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from litesubs.db import database_answers
from litesubs.settings import get_settings

router = APIRouter()


@lru_cache(maxsize=4)
def _redis_client(redis_url: str) -> redis.Redis:
    """One client (and its connection pool) per URL, so a health check does not open a new connection."""
    return redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)


def _redis_status() -> str:
    """'ok', 'unavailable', or 'not_configured' when Reflex keeps state in memory (one process)."""
    redis_url = get_settings().redis_url
    if redis_url is None:
        return "not_configured"
    try:
        _redis_client(redis_url).ping()
    except redis.RedisError:
        return "unavailable"
    return "ok"


@router.get("/api/health", include_in_schema=False)
def health() -> JSONResponse:
    checks = {"database": "ok" if database_answers() else "unavailable", "redis": _redis_status()}
    healthy = all(status in ("ok", "not_configured") for status in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", **checks}, status_code=200 if healthy else 503)
