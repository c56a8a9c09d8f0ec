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
    assert response.json() == {"status": "unavailable", "database": "unavailable"}
