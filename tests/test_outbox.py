"""The outbox on its own, as the email work will use it: a kind of message, enqueued in the transaction of its
change, delivered by its kind's deliverer, retried on the schedule, never delivered for a rolled-back change."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import OutboxMessage, utcnow
from litesubs.services import outbox


@dataclass
class Postbox:
    """A deliverer for a kind of message of the tests' own ("note"): records what it was given, fails on demand."""

    failures: int = 0
    sent: list[dict] = field(default_factory=list)
    settled_with: list[str] = field(default_factory=list)

    def queue(self, message: OutboxMessage) -> object:
        return message.id

    def deliver(self, message: OutboxMessage, *, engine: Engine) -> outbox.Attempt:
        if self.failures:
            self.failures -= 1
            return outbox.Attempt(False, error="mail server said no", retry_after=timedelta(minutes=1))
        self.sent.append(json.loads(message.payload))
        return outbox.Attempt(True)

    def settled(self, session: object, message: OutboxMessage, attempt: outbox.Attempt, *, now: datetime) -> None:
        self.settled_with.append(message.status)


def note(engine: Engine, text: str, *, fail_after: bool = False) -> None:
    with write_session(engine) as session:
        outbox.enqueue(session, kind="note", payload=json.dumps({"text": text}), now=utcnow())
        if fail_after:
            raise RuntimeError("the change failed after writing its message")


def status_of(engine: Engine, text: str) -> OutboxMessage:
    with Session(engine) as session:
        messages = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "note")).all()
    return next(message for message in messages if json.loads(message.payload)["text"] == text)


def test_a_message_kind_of_its_own_is_delivered_and_retried(engine: Engine) -> None:
    postbox = Postbox(failures=1)
    text = secrets.token_hex(4)
    note(engine, text)
    now = utcnow()
    outbox.deliver_due({"other": Postbox()}, now=now, engine=engine)  # a worker that cannot send notes
    assert (status_of(engine, text).status, status_of(engine, text).attempts) == ("pending", 0)
    while outbox.deliver_due({"note": postbox}, now=now, engine=engine):
        pass
    message = status_of(engine, text)
    assert (message.status, message.attempts, message.last_error) == ("pending", 1, "mail server said no")
    assert message.next_attempt_at - now >= timedelta(minutes=1)  # Retry-After beat the 5 s of the schedule
    while outbox.deliver_due({"note": postbox}, now=now + timedelta(minutes=2), engine=engine):
        pass
    assert status_of(engine, text).status == "delivered"
    assert {"text": text} in postbox.sent
    assert postbox.settled_with[-1] == "delivered"


def test_a_message_of_a_change_that_rolled_back_never_exists(engine: Engine) -> None:
    text = secrets.token_hex(4)
    with pytest.raises(RuntimeError):
        note(engine, text, fail_after=True)
    with pytest.raises(StopIteration):
        status_of(engine, text)


def test_the_retry_schedule_ends() -> None:
    now = utcnow()
    waits = [outbox.retry_at(attempts, now=now) for attempts in range(1, 9)]
    assert waits[-1] is None  # after the 8th attempt: failed for good
    for wait, delay in zip(waits[:-1], outbox.RETRY_DELAYS, strict=True):
        assert delay * 0.9 <= wait - now <= delay * 1.1
    assert outbox.retry_at(1, now=now, retry_after=timedelta(days=5)) - now == outbox.MAX_RETRY_AFTER
