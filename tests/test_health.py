"""`/api/health` says 503 when the database does not answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from litesubs.api.app import create_api
from litesubs.db import get_engine
from litesubs.settings import get_settings
from tests.conftest import use_database


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_database(monkeypatch, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    yield
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.mark.usefixtures("unreachable_database")
def test_health_is_503_when_the_database_is_down() -> None:
    with TestClient(create_api()) as client:
        response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable", "redis": "not_configured"}


def test_health_reports_redis_apart(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    use_database(monkeypatch, database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    with TestClient(create_api()) as client:
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok", "redis": "ok"}
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with TestClient(create_api()) as client:
        response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "unavailable"}
    get_settings.cache_clear()
