"""Idempotency keys: an operation that carries a key runs at most once per creator.

The first request claims the key by inserting its record inside the operation's own transaction
and stores its outcome there before committing, so a record is never seen half done. A
concurrent request with the same key waits on the unique index until that transaction ends, then
reads the complete outcome. The same key with the same request replays that outcome; with a
different request it is an `IdempotencyConflict`. Records are kept at least 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, Insert, bindparam, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import IdempotencyRecord, utcnow
from litesubs.services.errors import IdempotencyConflict, InvalidRequest

MAX_KEY_LENGTH = 255
MIN_RETENTION = timedelta(hours=24)


def check_key(key: str) -> str:
    """The key as given, if it has 1 to 255 characters."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest("idempotency_key", f"An idempotency key has 1 to {MAX_KEY_LENGTH} characters.")
    return key


def claim(
    session: Session, *, creator_id: int, key: str, request: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    """Claim `key` for `request` in the caller's transaction.

    Returns None when the key is new: the caller does the work and then calls `remember`. Returns
    the stored outcome when the same request came before; raises `IdempotencyConflict` when a
    different request used the key.
    """
    parameters = claim_parameters(creator_id=creator_id, key=key, request=request, now=now)
    # One round trip: a concurrent claim of the same key waits here until the other transaction ends.
    if session.connection().execute(claim_statement(session.get_bind().dialect.name), parameters).first():
        return None
    earlier = session.exec(
        select(IdempotencyRecord).where(IdempotencyRecord.creator_id == creator_id, IdempotencyRecord.key == key)
    ).one()
    if earlier.request_hash != parameters["claim_request_hash"]:
        raise IdempotencyConflict()
    return json.loads(earlier.outcome)


@cache
def claim_statement(dialect: str) -> Insert:
    """The INSERT that claims a new key, returning the record's id, or no row when the key was claimed before.

    Built once; its parameters come from `claim_parameters`. `claim` runs it alone, and the ledger's
    debit on PostgreSQL in the statement that locks the customer.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(IdempotencyRecord)
        .values({column: bindparam(f"claim_{column}") for column in _CLAIM_COLUMNS})
        .on_conflict_do_nothing(index_elements=["creator_id", "key"])
        .returning(IdempotencyRecord.id)
    )


def claim_parameters(*, creator_id: int, key: str, request: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The parameters of `claim_statement`: named apart from any column, as SQLAlchemy sets columns named in them."""
    record = _new_record(creator_id=creator_id, key=key, request=request, now=now)
    return {f"claim_{column}": value for column, value in record.items()}


def _new_record(*, creator_id: int, key: str, request: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A claimed key's record (`_CLAIM_COLUMNS`), its outcome still to come."""
    values = (creator_id, key, _request_hash(request), "", now)
    return dict(zip(_CLAIM_COLUMNS, values, strict=True))


_CLAIM_COLUMNS = ("creator_id", "key", "request_hash", "outcome", "created_at")


def remember(session: Session, *, creator_id: int, key: str, outcome: dict[str, Any]) -> None:
    """Store the outcome of the request that claimed `key` in this transaction."""
    session.connection().execute(REMEMBER, remember_parameters(creator_id=creator_id, key=key, outcome=outcome))


# Stores an outcome (parameters from `remember_parameters`); built once, and run for many keys at once too.
REMEMBER = (
    update(IdempotencyRecord)
    .where(
        IdempotencyRecord.creator_id == bindparam("remember_creator_id"),
        IdempotencyRecord.key == bindparam("remember_key"),
    )
    .values(outcome=bindparam("remember_outcome"))
)


def remember_parameters(*, creator_id: int, key: str, outcome: dict[str, Any]) -> dict[str, Any]:
    return {"remember_creator_id": creator_id, "remember_key": key, "remember_outcome": json.dumps(outcome)}


def claim_all(
    connection: Connection, *, creator_id: int, claims: list[tuple[str, dict[str, Any], datetime]]
) -> set[str]:
    """Claim several new keys, each (key, request, now), in one PostgreSQL statement; returns the keys claimed.

    A key claimed before, or twice in `claims`, is claimed at most once (its first time in `claims`).
    """
    rows = [_new_record(creator_id=creator_id, key=key, request=request, now=now) for key, request, now in claims]
    statement = (
        postgresql.insert(IdempotencyRecord)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["creator_id", "key"])
        .returning(IdempotencyRecord.key)
    )
    return set(connection.execute(statement).scalars())


def purge_idempotency_records(
    *, older_than: timedelta = MIN_RETENTION, engine: Engine | None = None, now: datetime | None = None
) -> int:
    """Delete records older than `older_than` (at least 24 hours); returns how many went."""
    if older_than < MIN_RETENTION:
        raise ValueError("Idempotency records are kept at least 24 hours.")
    cutoff = (now or utcnow()) - older_than
    with write_session(engine) as session:
        result = session.exec(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount


def _request_hash(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
