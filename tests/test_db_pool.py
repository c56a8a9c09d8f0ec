"""PostgreSQL connections from the pool: tried before use only after sitting idle, replaced when found dead."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from litesubs import db
from litesubs.db import make_engine


@pytest.fixture
def pool(postgres_engine: Engine) -> Engine:
    engine = make_engine(postgres_engine.url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_back_from_use_goes_out_again_untried(pool: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    real_ping = pool.dialect.do_ping
    monkeypatch.setattr(pool.dialect, "do_ping", lambda connection: pings.append(connection) or real_ping(connection))
    first = backend_pid(pool)
    assert [backend_pid(pool) for _ in range(5)] == [first] * 5
    assert pings == []


def test_a_connection_the_server_dropped_while_idle_is_replaced(
    pool: Engine, postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = backend_pid(pool)
    with postgres_engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar_one()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    replaced = backend_pid(pool)
    assert replaced != dropped
