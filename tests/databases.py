"""Throwaway test databases: a temporary SQLite file, or a PostgreSQL database we create and drop."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from litesubs.migrations import migrate

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_url() -> str:
    return "postgresql+psycopg://" + ADMIN_URL.split("://", 1)[1]


def postgres_reachable() -> bool:
    try:
        engine = create_engine(_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except OperationalError:
        return False
    return True


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / f'litesubs-{secrets.token_hex(4)}.db'}"
    migrate(url)
    yield url


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create `litesubs_test_<random>`, migrate it, and drop it afterwards (only the one we made)."""
    name = f"litesubs_test_{secrets.token_hex(6)}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
