"""Shared fixtures: migrated databases (SQLite and PostgreSQL) and small factories."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.db import make_engine
from litesubs.models import User
from tests.databases import postgres_database, postgres_reachable, sqlite_database

BACKENDS = ["sqlite", "postgresql"]


def _require_postgres() -> None:
    if postgres_reachable():
        return
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not reachable at TEST_DATABASE_URL; CI must test against it")
    pytest.skip("PostgreSQL is not reachable at TEST_DATABASE_URL")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, once per backend per test run; tests isolate themselves by fresh users."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield url
    else:
        _require_postgres()
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A migrated PostgreSQL database for tests that only make sense there (row-lock races)."""
    _require_postgres()
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def create_user(engine: Engine, *, name: str = "Test User", email: str | None = None) -> User:
    """A fresh user with a unique email (no real password: tests that sign in use the accounts service)."""
    user = User(email=email or f"user-{secrets.token_hex(6)}@example.com", name=name, password_hash="!")
    with Session(engine, expire_on_commit=False) as session:
        session.add(user)
        session.commit()
    return user
