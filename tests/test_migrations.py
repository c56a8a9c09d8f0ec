"""The schema comes only from Alembic, and the database itself guards the invariants."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from litesubs.db import make_engine
from litesubs.migrations import alembic_config, migrate
from litesubs.models import Customer, Hold, User, utcnow
from litesubs.services.holds import place_hold
from litesubs.services.ledger import SYSTEM, grant
from tests.conftest import create_user
from tests.databases import postgres_database, sqlite_database
from tests.ledger_factories import new_customer


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrating_twice_is_a_no_op(database_url: str, engine: Engine) -> None:
    def state() -> tuple[str | None, dict[str, list[str]]]:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        inspector = inspect(engine)
        return revision, {table: sorted(c["name"] for c in inspector.get_columns(table)) for table in tables()}

    def tables() -> list[str]:
        return sorted(inspect(engine).get_table_names())

    migrate(database_url)
    before = state()
    migrate(database_url)
    assert state() == before
    assert before[0] == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_email_must_be_stored_normalised(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(User(email="Mixed@Example.com", name="x", password_hash="!"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_customer_pair_is_unique_and_balance_never_negative(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    with Session(engine) as session:
        session.add(Customer(creator_id=creator.id, buyer_id=buyer.id))
        session.commit()
        session.add(Customer(creator_id=creator.id, buyer_id=buyer.id))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Customer(creator_id=buyer.id, buyer_id=creator.id, balance=-1))
        with pytest.raises(IntegrityError):
            session.commit()


def test_migrations_match_the_models(engine: Engine) -> None:
    """The models and the migrations describe the same schema (PostgreSQL-only search indexes aside)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    postgres_only = {"ix_user_search_trgm"}
    # Indexes with PostgreSQL-only column options (NULLS FIRST) read back as expressions: an index
    # that is both "removed" and "added" under the same name is the same index.
    reread = {d[1].name for d in differences if d[0] == "add_index"} & {
        d[1].name for d in differences if d[0] == "remove_index"
    }
    remaining = [
        d for d in differences if not (d[0] in ("add_index", "remove_index") and d[1].name in reread | postgres_only)
    ]
    assert remaining == []


def test_the_disputes_revision_downgrades_and_upgrades_again(database_url: str, tmp_path: Path) -> None:
    """0010 (disputes) down: the dispute kind and taken_back go; up again to head, they are back.

    On a fresh database of the same backend: the shared one holds other tests' rows (disputes among them).
    """
    fresh = sqlite_database(tmp_path) if database_url.startswith("sqlite") else postgres_database()
    with fresh as url:
        engine = make_engine(url)

        def columns(table: str) -> set[str]:
            return {column["name"] for column in inspect(engine).get_columns(table)}

        _migrate(engine, "downgrade", "0009")
        assert "taken_back" not in columns("credit_lot")
        assert "refund_reason" not in columns("purchase")
        _migrate(engine, "upgrade", "head")
        assert "taken_back" in columns("credit_lot")
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        engine.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_hold_lots_revision_moves_which_lots_a_hold_took_from_both_ways(database_url: str, tmp_path: Path) -> None:
    """0012 keeps a hold's lots in its own row: down to 0011 they become `hold_lot` rows again, and up again they
    come back into `hold.lots`; the hold indexes go back and forth with them."""
    fresh = sqlite_database(tmp_path) if database_url.startswith("sqlite") else postgres_database()
    with fresh as url:
        engine = make_engine(url)
        customer = new_customer(engine)
        for credits, expires_in in ((4, timedelta(days=1)), (10, None)):
            grant(
                creator_id=customer.creator_id,
                customer_id=customer.id,
                amount=credits,
                actor=SYSTEM,
                expires_at=None if expires_in is None else utcnow() + expires_in,
                engine=engine,
            )
        placed = [
            place_hold(
                creator_id=customer.creator_id, customer_id=customer.id, amount=amount, actor=SYSTEM, engine=engine
            )
            for amount in (6, 3)
        ]
        with Session(engine) as session:
            before = {hold.id: sorted(map(_lot_pair, hold.lots)) for hold in session.exec(select(Hold))}
        assert [len(before[hold.id]) for hold in placed] == [2, 1]

        _migrate(engine, "downgrade", "0011")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT hold_id, lot_id, amount FROM hold_lot ORDER BY lot_id")).all()
        assert {
            hold_id: sorted((lot, amount) for h, lot, amount in rows if h == hold_id) for hold_id in before
        } == before
        assert "lots" not in {column["name"] for column in inspect(engine).get_columns("hold")}
        assert {index["name"] for index in inspect(engine).get_indexes("hold")} == {
            "ix_hold_customer_status",
            "ix_hold_active_expiry",
        }

        _migrate(engine, "upgrade", "head")
        with Session(engine) as session:
            after = {hold.id: sorted(map(_lot_pair, hold.lots)) for hold in session.exec(select(Hold))}
        assert after == before
        assert "hold_lot" not in inspect(engine).get_table_names()
        assert {index["name"] for index in inspect(engine).get_indexes("hold")} == {"ix_hold_customer"}
        engine.dispose()


def _lot_pair(part: dict[str, int]) -> tuple[int, int]:
    return part["lot_id"], part["amount"]


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    with engine.connect() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)
        connection.commit()
