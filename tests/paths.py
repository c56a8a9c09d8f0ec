"""Two customers' books made comparable, for the tests that run the same operations through the fast paths on
PostgreSQL and through the general path (tests/test_ledger_paths.py, tests/test_hold_paths.py): answers and what
the database holds, with ids replaced by numbers within each customer (ids differ between the two).
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, Hold, IdempotencyRecord, LedgerEntry, WebhookEvent
from litesubs.services import holds
from litesubs.services.errors import DomainError
from litesubs.services.ledger import LedgerResult


def comparable(engine: Engine, customer: Customer, answer: object) -> tuple | None:
    """An answer of the ledger or of holds (a result, a hold, an ending, a refusal) with ids numbered within the
    customer."""
    if answer is None:
        return None
    if isinstance(answer, DomainError):
        return (type(answer).__name__, answer.message, getattr(answer, "replayed", False))
    numbers = numbers_of(engine, customer)
    if isinstance(answer, LedgerResult):
        return _transaction(numbers, answer)
    if isinstance(answer, holds.HoldSummary):
        return _hold(numbers, answer)
    assert isinstance(answer, holds.HoldEnding)
    return (_transaction(numbers, answer.transaction), answer.reason, _hold(numbers, answer.hold), answer.replayed)


def _transaction(numbers: dict[str, dict[int, int]], result: LedgerResult) -> tuple:
    return (
        numbers["entries"][result.entry_id],
        result.kind,
        result.delta,
        result.balance_after,
        numbers["lots"].get(result.lot_id),
        result.created_at,
        numbers["holds"].get(result.hold_id),
        result.replayed,
    )


def _hold(numbers: dict[str, dict[int, int]], hold: holds.HoldSummary) -> tuple:
    fields = (hold.amount, hold.captured, hold.status, hold.reason, hold.expires_at, hold.created_at, hold.ended_at)
    return (numbers["holds"][hold.id], *fields, hold.replayed)


def numbers_of(engine: Engine, customer: Customer) -> dict[str, dict[int, int]]:
    """Each ledger entry's, lot's and hold's number within the customer (ids differ between the two customers)."""
    numbers = {}
    with Session(engine) as session:
        for name, model in (("entries", LedgerEntry), ("lots", CreditLot), ("holds", Hold)):
            ids = session.exec(select(model.id).where(model.customer_id == customer.id)).all()
            numbers[name] = {id_: n for n, id_ in enumerate(sorted(ids))}
    return numbers


def books_of(engine: Engine, customer: Customer) -> dict:
    """What the database holds for the customer, ids replaced by numbers within the customer."""
    numbers = numbers_of(engine, customer)
    entry_number, lot_number, hold_number = numbers["entries"], numbers["lots"], numbers["holds"]
    with Session(engine) as session:
        row = session.get(Customer, customer.id)
        entries = session.exec(
            select(LedgerEntry).where(LedgerEntry.customer_id == customer.id).order_by(LedgerEntry.id)
        ).all()
        lots = session.exec(select(CreditLot).where(CreditLot.customer_id == customer.id).order_by(CreditLot.id)).all()
        hold_rows = session.exec(select(Hold).where(Hold.customer_id == customer.id).order_by(Hold.id)).all()
        records = session.exec(
            select(IdempotencyRecord).where(IdempotencyRecord.creator_id == customer.creator_id)
        ).all()
        events = session.exec(
            select(WebhookEvent).where(WebhookEvent.creator_id == customer.creator_id).order_by(WebhookEvent.id)
        ).all()

    renumber = {"entry_id": entry_number, "lot_id": lot_number, "hold_id": hold_number}

    def outcome(value: object, name: str = "") -> object:
        """A stored outcome with ids renumbered and times as datetimes (both paths' texts of one moment)."""
        if isinstance(value, dict):
            numbered = {**renumber, "id": hold_number}
            return {
                key: numbered[key].get(item) if key in numbered else outcome(item, key)
                for key, item in value.items()
                if key != "customer_id"
            }
        if name in ("created_at", "expires_at", "ended_at") and value is not None:
            return datetime.fromisoformat(value)
        return value

    def data(text: str) -> str:
        """An event's data as stored, byte for byte but for the customer's and hold's ids and the buyer's email."""
        text = re.sub(r'"customer_id":\d+', '"customer_id":_', re.sub(r'"buyer_email":"[^"]*"', "", text))
        return re.sub(r'"hold_id":"hold_(\d+)"', lambda match: f'"hold_id":{hold_number[int(match[1])]}', text)

    return {
        "customer": (row.balance, row.held, row.status, row.next_expiry_at),
        "entries": [
            (
                entry.kind,
                entry.delta,
                entry.balance_after,
                lot_number.get(entry.lot_id),
                hold_number.get(entry.hold_id),
                entry.reason,
                entry.actor_type,
                entry.actor_id,
                entry.idempotency_key,
                entry.created_at,
            )
            for entry in entries
        ],
        "lots": [(lot.source, lot.granted, lot.remaining, lot.expires_at, lot.created_at) for lot in lots],
        "holds": [
            (
                hold.amount,
                hold.captured,
                hold.status,
                hold.reason,
                hold.expires_at,
                hold.created_at,
                hold.ended_at,
                [(lot_number[part["lot_id"]], part["amount"]) for part in hold.lots],
            )
            for hold in hold_rows
        ],
        "keys": sorted(
            ((record.key, record.created_at, outcome(json.loads(record.outcome))) for record in records), key=repr
        ),
        "events": [
            (event.type, data(event.data), entry_number.get(event.ledger_entry_id), event.created_at)
            for event in events
        ],
    }
