"""Engine and sessions: SQLite by default, PostgreSQL (psycopg 3) through DATABASE_URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlmodel import Session

from litesubs.settings import get_settings

# A PostgreSQL connection that sat in the pool this long is tried (one round trip) before use, so one the server
# dropped meanwhile (a restart, say) is replaced instead of failing a request. A busy pool's connections come
# back within milliseconds and go out again untried: SQLAlchemy's `pool_pre_ping` tries every checkout.
PING_AFTER_IDLE_SECONDS = 2.0


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(database_url: str) -> Engine:
    """An engine tuned for our workload.

    On SQLite, pysqlite's own transaction handling is switched off so that we emit BEGIN
    ourselves: plain transactions are deferred, and `write_session` begins IMMEDIATE, which takes
    the database write lock up front (SQLite's equivalent of locking the customer row).
    """
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    engine = create_engine(database_url, pool_size=20, max_overflow=20, connect_args={"options": "-c timezone=UTC"})
    event.listen(engine, "connect", _note_idle_since)
    event.listen(engine, "checkin", _note_idle_since)
    event.listen(engine, "checkout", lambda connection, record, _proxy: _ping_if_idle(engine, connection, record))
    return engine


def _note_idle_since(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine, dbapi_connection, record) -> None:
    """Try a connection that was idle a while; `DisconnectionError` makes the pool replace it and try again."""
    if time.monotonic() - record.info.get("idle_since", float("-inf")) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        engine.dialect.do_ping(dbapi_connection)
    except engine.dialect.loaded_dbapi.Error as error:
        raise DisconnectionError(str(error)) from error


def _configure_sqlite_connection(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite_transaction(connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get("litesubs_write") else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured DATABASE_URL."""
    return make_engine(get_settings().database_url)


@contextmanager
def read_session(engine: Engine | None = None) -> Iterator[Session]:
    """A session for reads and ordinary writes; the caller commits."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose transaction takes the write lock at BEGIN on SQLite.

    Balance changes use it together with `SELECT ... FOR UPDATE` on the customer row, which is
    the lock on PostgreSQL. The block commits on success and rolls back on error.
    """
    bind = (engine or get_engine()).execution_options(litesubs_write=True)
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_connection(engine: Engine | None = None) -> Iterator[Connection]:
    """A connection for the API's hot reads: one statement each, built once, without the ORM.

    On PostgreSQL it runs in autocommit, sparing the BEGIN and ROLLBACK round trips around a read
    that is one statement anyway (under READ COMMITTED each statement has its own snapshot).
    """
    engine = engine or get_engine()
    with engine.connect() as connection:
        yield connection if is_sqlite(engine) else connection.execution_options(isolation_level="AUTOCOMMIT")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message is one line naming which one and what failed."""


def unavailable(database_url: str, error: DBAPIError) -> DatabaseUnavailable:
    """`error` said in one line: which database (never its password), where, and the driver's first line."""
    url = make_url(database_url)
    reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
    reason = reason.removeprefix("connection failed: ")
    if url.get_backend_name() == "sqlite":
        where = f"the SQLite database {url.database}"
    else:
        where = (
            f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} (database {url.database}, user {url.username})"
        )
    return DatabaseUnavailable(f"cannot use {where}: {reason}")


def check_database(database_url: str) -> None:
    """Connect and run a trivial query; `DatabaseUnavailable` in one line if that fails."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise unavailable(database_url, error) from None
    finally:
        engine.dispose()


def database_answers(engine: Engine | None = None) -> bool:
    """True when a trivial query succeeds; used by the health check."""
    try:
        with (engine or get_engine()).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return False
    return True
