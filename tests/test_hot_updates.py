"""On PostgreSQL, a debit's update of its customer and a hold's ending change no indexed column: HOT updates.

A HOT update writes no index entries (less WAL, less for VACUUM to clean). It needs an update that leaves every
indexed column as it was, and room on the row's page; a fresh database has both, so every such update counts.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, inspect, text

from litesubs.db import make_engine
from litesubs.services import holds
from tests.databases import postgres_database
from tests.ledger_factories import new_customer
from tests.test_ledger_concurrency import API_KEY, api_debit, api_grant

UPDATES = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = :table")


def test_debits_and_hold_endings_are_hot_updates(postgres_engine: Engine) -> None:
    with postgres_database() as url:
        engine = make_engine(url)
        customer = new_customer(engine)
        api_grant(engine, customer, 100)
        before = _updates(engine, "customer", expected=None)
        for key in ("a", "b", "c", "d", "e"):
            api_debit(engine, customer, 1, key=key)
        expected = (before[0] + 5, before[1] + 5)
        assert _updates(engine, "customer", expected=expected) == expected

        for amount in (3, 4, 5):
            hold = holds.place_hold(
                creator_id=customer.creator_id, customer_id=customer.id, amount=amount, actor=API_KEY, engine=engine
            )
            holds.capture_hold(creator_id=customer.creator_id, hold_id=hold.id, amount=2, actor=API_KEY, engine=engine)
        assert _updates(engine, "hold", expected=(3, 3)) == (3, 3)
        engine.dispose()

    assert not any("balance" in index["column_names"] for index in inspect(postgres_engine).get_indexes("customer"))
    hold_indexes = inspect(postgres_engine).get_indexes("hold")
    assert not any({"status", "captured", "ended_at"} & set(index["column_names"]) for index in hold_indexes)


def _updates(engine: Engine, table: str, *, expected: tuple[int, int] | None) -> tuple[int, int]:
    """The table's (updates, HOT updates) so far: once they are `expected`, or after 10 s (None: once two reads
    agree). A backend reports its counts when its connection closes, so the pool's connections close first."""
    engine.dispose()
    deadline, seen = time.monotonic() + 10, None
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            now = tuple(connection.execute(UPDATES, {"table": table}).one())
        if now == (expected or seen):
            return now
        seen = now
        time.sleep(0.3)
    return seen
