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
from typing import Any

from sqlalchemy import Engine, Insert, delete, update
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
    fingerprint = _request_hash(request)
    record = {"creator_id": creator_id, "key": key, "request_hash": fingerprint, "outcome": "", "created_at": now}
    # One round trip: a concurrent claim of the same key waits here until the other transaction ends.
    inserted = session.exec(
        _insert(session)
        .values(**record)
        .on_conflict_do_nothing(index_elements=["creator_id", "key"])
        .returning(IdempotencyRecord.id)
    ).first()
    if inserted is not None:
        return None
    earlier = session.exec(
        select(IdempotencyRecord).where(IdempotencyRecord.creator_id == creator_id, IdempotencyRecord.key == key)
    ).one()
    if earlier.request_hash != fingerprint:
        raise IdempotencyConflict()
    return json.loads(earlier.outcome)


def _insert(session: Session) -> Insert:
    """INSERT with ON CONFLICT for the session's database (both SQLite and PostgreSQL have it)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(IdempotencyRecord)


def remember(session: Session, *, creator_id: int, key: str, outcome: dict[str, Any]) -> None:
    """Store the outcome of the request that claimed `key` in this transaction."""
    session.exec(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.creator_id == creator_id, IdempotencyRecord.key == key)
        .values(outcome=json.dumps(outcome))
    )


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
