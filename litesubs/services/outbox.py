"""The outbox: everything sent outward (webhook deliveries; emails later) as rows the worker delivers.

The rules, from DESIGN.md ("Outbound"):

- A message is written in the same transaction as the change it reports (or, for webhooks, the
  event it comes from is, and the worker dispatches it into messages: `webhooks.dispatch_events`),
  so a crash never loses one and a change that rolled back never sends one. No request waits on
  its delivery. An email is `enqueue`d in its change's transaction.
- The worker (`litesubs.worker`) claims due messages and hands each to the deliverer of its `kind`
  (the worker's `DELIVERERS`: a webhook's, an email's). Claiming sets a lease: a claimed message is
  not claimed again until the lease ends, so a worker that dies mid-delivery (killed, say) leaves it
  to be taken over afterwards. On PostgreSQL the claim skips rows another worker is claiming
  (`FOR UPDATE SKIP LOCKED`), so any number of workers share the work and no message is sent by two
  at once; on SQLite one worker runs.
- Delivery is at least once: a message delivered whose outcome could not be recorded (a crash in
  between) is delivered again. Receivers deduplicate by the message's stable id.
- A failed attempt is retried after `RETRY_DELAYS` (with jitter; a receiver's Retry-After makes it
  wait at least that long); after the last retry the message is `failed`. Times come from `now`
  parameters, so tests move the clock instead of sleeping.
- Messages are claimed oldest first. A deliverer may say messages belong to one receiver
  (`Deliverer.queue`): a worker sends those one at a time, in the order they were created.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, and_, or_, true, update
from sqlmodel import Session, select

from litesubs.db import get_engine, is_sqlite, read_session, write_session
from litesubs.models import OutboxMessage, utcnow

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
# Waits after the 1st, 2nd, ... failed attempt; after the last one the message has failed for good.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.1  # each wait is its delay ±10 %, so a receiver that was down is not hit by every retry at once
MAX_RETRY_AFTER = timedelta(hours=10)
# Longer than any delivery may take (a webhook's timeout is 10 s), so a lease ends only when its worker is gone.
LEASE = timedelta(seconds=60)
CLAIM_BATCH = 20
PARALLEL_QUEUES = 4
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt did: delivered, or failed (retried unless `final`), with what the receiver said."""

    delivered: bool
    status_code: int | None = None
    response: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None
    final: bool = False  # no retry: the receiver is gone (410) or the message can no longer be sent
    cancelled: bool = False  # not sent at all, and never will be (its receiver was disabled or deleted)


class Deliverer(Protocol):
    """Sends one kind of message. `deliver` runs outside any transaction; `settled` inside the one recording it."""

    def queue(self, message: OutboxMessage) -> object:
        """Messages with the same queue go to the same receiver: a worker sends them one at a time, in order."""
        ...

    def deliver(self, message: OutboxMessage, *, engine: Engine) -> Attempt: ...

    def settled(self, session: Session, message: OutboxMessage, attempt: Attempt, *, now: datetime) -> None:
        """Bookkeeping of the deliverer's own (a webhook endpoint's failure streak), in the same transaction."""
        ...


def enqueue(session: Session, *, kind: str, payload: str, now: datetime) -> OutboxMessage:
    """A message of `kind` carrying `payload`, due now, in the caller's transaction."""
    message = OutboxMessage(kind=kind, payload=payload, next_attempt_at=now, created_at=now)
    session.add(message)
    session.flush()
    return message


def retry_at(attempts: int, *, now: datetime, retry_after: timedelta | None = None) -> datetime | None:
    """When to try again after `attempts` failed attempts, or None when that was the last one.

    The delay of the schedule with jitter, or the receiver's Retry-After (up to `MAX_RETRY_AFTER`) if longer.
    """
    if attempts > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


def claim(
    *,
    kinds: Sequence[str] | None = None,
    now: datetime | None = None,
    limit: int = CLAIM_BATCH,
    engine: Engine | None = None,
) -> list[OutboxMessage]:
    """Lease up to `limit` due messages (of `kinds`, default all), oldest first, to this worker to deliver and settle.

    A worker claims only the kinds it can deliver, so one of an older version leaves a new kind alone.
    """
    now = now or utcnow()
    engine = engine or get_engine()
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.kind.in_(kinds) if kinds is not None else true(),
            OutboxMessage.status == PENDING,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until <= now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    with read_session(engine) as session:  # most polls find nothing: they take no lock
        if session.exec(due.limit(1)).first() is None:
            return []
    if not is_sqlite(engine):
        due = due.with_for_update(skip_locked=True)
    with write_session(engine) as session:
        ids = list(session.exec(due))
        if not ids:
            return []
        session.exec(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(leased_until=now + LEASE))
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)))


def settle(
    message: OutboxMessage,
    attempt: Attempt,
    *,
    deliverer: Deliverer | None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> None:
    """Record an attempt on a message this worker claimed: delivered, retried later, failed or cancelled.

    The lease ends. An outcome arriving after the message was settled otherwise (another worker took
    it over when the lease ran out) changes nothing.
    """
    now = now or utcnow()
    values: dict[str, object] = {"leased_until": None}
    if attempt.cancelled:
        values |= {"status": CANCELLED, "last_error": _shorten(attempt.error)}
    else:
        values |= {
            "attempts": message.attempts + 1,
            "last_attempt_at": now,
            "last_status_code": attempt.status_code,
            "last_response": attempt.response,
            "last_error": _shorten(attempt.error),
        }
        if attempt.delivered:
            values |= {"status": DELIVERED, "delivered_at": now}
        else:
            retry = None if attempt.final else retry_at(message.attempts + 1, now=now, retry_after=attempt.retry_after)
            values |= {"status": FAILED} if retry is None else {"next_attempt_at": retry}
    with write_session(engine) as session:
        recorded = session.exec(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.status == PENDING)
            .values(**values)
        )
        if recorded.rowcount == 0:
            return
        for name, value in values.items():
            setattr(message, name, value)
        if deliverer is not None:
            deliverer.settled(session, message, attempt, now=now)


def deliver_due(
    deliverers: Mapping[str, Deliverer], *, now: datetime | None = None, engine: Engine | None = None
) -> int:
    """Claim the due messages, deliver each with the deliverer of its kind, record each outcome; how many.

    Messages of one queue go one after the other in order; different queues in parallel.
    """
    engine = engine or get_engine()
    messages = claim(kinds=list(deliverers), now=now, engine=engine)
    queues: dict[tuple[str, object], list[OutboxMessage]] = {}
    for message in messages:
        key = (message.kind, deliverers[message.kind].queue(message))
        queues.setdefault(key, []).append(message)

    def run(queue: Sequence[OutboxMessage]) -> None:
        for message in queue:
            deliverer = deliverers[message.kind]
            attempt = deliverer.deliver(message, engine=engine)
            settle(message, attempt, deliverer=deliverer, now=now or utcnow(), engine=engine)

    if len(queues) == 1:
        run(next(iter(queues.values())))
    elif queues:
        with ThreadPoolExecutor(max_workers=PARALLEL_QUEUES, thread_name_prefix="outbox") as pool:
            list(pool.map(run, queues.values()))
    return len(messages)


def cancel_pending(session: Session, condition: object, *, reason: str) -> None:
    """Cancel the pending messages matching `condition` (SQL on `OutboxMessage`), in the caller's transaction."""
    session.exec(
        update(OutboxMessage)
        .where(and_(OutboxMessage.status == PENDING, condition))
        .values(status=CANCELLED, last_error=reason, leased_until=None)
    )


def _shorten(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_LENGTH]
