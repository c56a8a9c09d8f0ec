"""Operator commands as an operator runs them: `python -m litesubs migrate` and `purge-idempotency-records`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect
from sqlmodel import Session, SQLModel, select

from litesubs.models import IdempotencyRecord, utcnow
from tests.conftest import create_user


def litesubs(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litesubs", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_migrate_creates_every_table_in_a_fresh_database_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    for _ in range(2):
        result = litesubs("migrate", database_url=url)
        assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "Database is up to date.", "")

    engine = create_engine(url)
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_purge_deletes_idempotency_records_older_than_24_hours_only(engine: Engine, database_url: str) -> None:
    creator = create_user(engine)
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        old = IdempotencyRecord(
            creator_id=creator.id, key="old", request_hash="x", outcome="{}", created_at=now - timedelta(hours=25)
        )
        recent = IdempotencyRecord(
            creator_id=creator.id, key="recent", request_hash="x", outcome="{}", created_at=now - timedelta(hours=23)
        )
        session.add_all([old, recent])
        session.commit()

    result = litesubs("purge-idempotency-records", database_url=database_url)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"Deleted [1-9]\d* idempotency records older than 24 hours\.", result.stdout.strip())
    with Session(engine) as session:
        kept = session.exec(select(IdempotencyRecord.key).where(IdempotencyRecord.creator_id == creator.id)).all()
    assert kept == ["recent"]
