"""API v1 over real HTTP: the API served in this process (`tests/api_server.py`) on SQLite and PostgreSQL.

Each test gets fresh creators, each with an API key and an HTTP client that sends it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from litesubs.db import get_engine
from litesubs.models import Customer, User
from litesubs.services.api_keys import create_key
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from litesubs.settings import get_settings
from tests.api_server import serve_api
from tests.conftest import create_user, use_database

API_PREFIX = "/api/v1"


@pytest.fixture(scope="session")
def api_url() -> Iterator[str]:
    with serve_api() as url:
        yield url


@pytest.fixture
def served_database(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    """The API served in this process uses the test database (and lets its connections go afterwards).

    It trusts one proxy hop, so each creator's client is a client of its own (`client_address`): failed
    authentications are limited per client, and tests that fail on purpose must not limit each other.
    """
    monkeypatch.setenv("LITESUBS_TRUSTED_PROXIES", "1")
    use_database(monkeypatch, database_url)
    yield database_url
    get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


@dataclass
class Creator:
    """A creator with a live API key and a client that sends it to API v1."""

    user: User
    key_id: int
    secret: str
    client: httpx.Client
    engine: Engine

    def customer(self, *, credits: int = 0) -> tuple[Customer, User]:
        """A new buyer of this creator's, holding `credits` granted by the creator."""
        buyer = create_user(self.engine, name="Buyer")
        customer = get_or_create_customer(creator_id=self.user.id, buyer_id=buyer.id, engine=self.engine)
        if credits:
            grant(
                creator_id=self.user.id,
                customer_id=customer.id,
                amount=credits,
                actor=Actor("creator", self.user.id),
                engine=self.engine,
            )
        return customer, buyer


@pytest.fixture
def new_creator(served_database: str, api_url: str, engine: Engine) -> Iterator[Callable[[], Creator]]:
    """Make creators on demand: `new_creator()`; their clients close after the test."""
    clients: list[httpx.Client] = []

    def make() -> Creator:
        user = create_user(engine, name="Creator")
        key, secret = create_key(creator_id=user.id, name="Backend", engine=engine)
        headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-For": a_client_address()}
        client = httpx.Client(base_url=api_url + API_PREFIX, headers=headers, timeout=60)
        clients.append(client)
        return Creator(user=user, key_id=key.id, secret=secret, client=client, engine=engine)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def creator(new_creator: Callable[[], Creator]) -> Creator:
    return new_creator()


def a_client_address() -> str:
    """A random private address, as a proxy would report a client."""
    return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))


def idempotency_key() -> dict[str, str]:
    return {"Idempotency-Key": secrets.token_hex(16)}


def assert_error(response: httpx.Response, status: int, code: str, *, field: str | None = None) -> dict:
    """The response is our error body with this status and code (and field, for invalid_request)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error.get("field") == field
    return error
