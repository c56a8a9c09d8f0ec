"""Sliding-window limits on attempts, shared by every app process through the `login_attempt` table.

A limit is a key (say the hash of an email, or of a client address) and how many attempts it allows
within the last WINDOW; a limit without a maximum only counts (see `recent_attempts`). `reserve` counts
and records in one transaction that locks the keys, so parallel requests, from however many processes,
cannot all slip under the limit before any of them is recorded; `release` takes back the attempts of
a request that turned out to be legitimate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func
from sqlmodel import Session, col, select

from litesubs.db import is_sqlite, read_session, write_session
from litesubs.models import LoginAttempt
from litesubs.services.errors import RateLimited

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Limit:
    """`max_attempts` per WINDOW under `key`; None: the attempts are recorded and counted, never refused."""

    key: str
    max_attempts: int | None


def limit_key(kind: str, value: str) -> str:
    """`kind:<SHA-256 of value>`: a fixed length, and no emails or addresses kept in the clear."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{digest}"


def reserve(limits: Sequence[Limit], *, action: str, now: datetime, engine: Engine | None = None) -> list[int]:
    """Record one attempt under every limit and return the new rows' ids; RateLimited if any limit is used up.

    A refused attempt is not recorded: it cost nothing, and the limit frees up one WINDOW after the
    attempts that did count, however hard a client keeps knocking. `action` names what is limited
    in the message ("sign-in attempts").
    """
    with write_session(engine) as session:
        _lock(session, [limit.key for limit in limits if limit.max_attempts is not None])
        wait = max((_seconds_until_free(session, limit, now) for limit in limits), default=0)
        if wait:
            raise RateLimited(f"Too many {action}. Try again in {_seconds(wait)}.", retry_after=wait)
        attempts = [LoginAttempt(key=limit.key, attempted_at=now) for limit in limits]
        session.add_all(attempts)
        _prune(session, now)
        session.flush()
        return [attempt.id for attempt in attempts if attempt.id is not None]


def recent_attempts(key: str, *, now: datetime, engine: Engine | None = None) -> int:
    """How many attempts `key` recorded within the last WINDOW."""
    with read_session(engine) as session:
        return session.exec(
            select(func.count()).where(LoginAttempt.key == key, LoginAttempt.attempted_at > now - WINDOW)
        ).one()


def release(attempt_ids: Sequence[int], *, engine: Engine | None = None) -> None:
    """Take back attempts recorded by `reserve`, so they no longer count."""
    with write_session(engine) as session:
        session.exec(delete(LoginAttempt).where(col(LoginAttempt.id).in_(attempt_ids)))


def _lock(session: Session, keys: Sequence[str]) -> None:
    """Serialise the requests that share a key until this transaction ends.

    PostgreSQL: a transaction-scoped advisory lock per key, taken in a fixed order so that two
    requests cannot deadlock. SQLite needs none: `write_session` already holds its one write lock.
    """
    if is_sqlite(session.get_bind()):
        return
    for lock_id in sorted(_lock_id(key) for key in keys):
        session.exec(select(func.pg_advisory_xact_lock(lock_id)))


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def _seconds_until_free(session: Session, limit: Limit, now: datetime) -> int:
    """0 when the limit has room now, else the whole seconds until enough of its attempts leave the window."""
    if limit.max_attempts is None:
        return 0
    recent = session.exec(
        select(LoginAttempt.attempted_at)
        .where(LoginAttempt.key == limit.key, LoginAttempt.attempted_at > now - WINDOW)
        .order_by(LoginAttempt.attempted_at)
    ).all()
    if len(recent) < limit.max_attempts:
        return 0
    frees_at = recent[len(recent) - limit.max_attempts] + WINDOW
    return max(1, math.ceil((frees_at - now).total_seconds()))


def _prune(session: Session, now: datetime) -> None:
    """Delete the attempts that no longer count, for every key at once.

    Running on every recorded attempt keeps the table at about one WINDOW of rows, so this scan
    stays cheap. SKIP LOCKED (PostgreSQL; SQLite has one writer anyway) lets two requests prune at
    the same time without waiting on, or deadlocking over, each other's rows.
    """
    expired = select(LoginAttempt.id).where(LoginAttempt.attempted_at <= now - WINDOW).with_for_update(skip_locked=True)
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.id).in_(expired)))


def _seconds(count: int) -> str:
    return "1 second" if count == 1 else f"{count} seconds"
