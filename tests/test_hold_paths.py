"""A hold's two paths on PostgreSQL keep the same books: the one-call fast paths (the server-side functions
`hold_place` and `hold_end`, migration 0015) and the general path (`ledger.transaction.change_credits` with the
rules in Python), as tests/test_ledger_paths.py does for the debit.

Hypothesis draws one sequence of grants (with and without expiry), debits, holds (some expiring within the
sequence), captures (of all or part, more than held, with and without a reason, an ASCII or other one), releases,
ends of ended holds, idempotency keys repeated across them (replays and conflicts), clock moves past expiries,
suspensions and reactivations; it runs on two customers of two creators (same low-balance threshold, both
subscribed to `credits.debited`), one through the fast paths and the other through the general path alone.
Every answer must match, and so must the ledgers, the lots, the holds (with the lots each took from), the
idempotency records and the webhook events (their data byte for byte, ids aside).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, Hold, IdempotencyRecord, LedgerEntry, WebhookEvent, utcnow
from litesubs.services import holds, webhooks
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import DomainError
from litesubs.services.ledger import Actor, LedgerResult, debit, grant
from tests.invariants import assert_invariants
from tests.ledger_factories import new_customer

API_KEY = Actor("api_key", 5)
HOUR = timedelta(hours=1)
KEYS = st.none() | st.sampled_from(["k1", "k2", "k3"])
REASONS = st.sampled_from(["", "job 7", "café ✓", 'a "quote", \\ and\ttab'])
HOLD = st.integers(0, 5)  # which of the customer's holds, by order of placing

GRANT = st.tuples(st.just("grant"), st.integers(1, 40), st.none() | st.integers(1, 6).map(lambda hours: hours * HOUR))
operations = st.lists(
    st.one_of(
        GRANT,
        st.tuples(st.just("debit"), st.integers(1, 30), KEYS),
        st.tuples(st.just("hold"), st.integers(1, 30), st.tuples(KEYS, REASONS, st.sampled_from([600, 3 * 3600]))),
        st.tuples(st.just("hold"), st.integers(1, 30), st.tuples(KEYS, REASONS, st.just(900))),
        st.tuples(st.just("capture"), HOLD, st.tuples(KEYS, st.none() | st.integers(1, 35), st.none() | REASONS)),
        st.tuples(st.just("capture"), HOLD, st.tuples(KEYS, st.none(), st.none())),
        st.tuples(st.just("release"), HOLD, KEYS),
        st.tuples(st.just("wait"), st.integers(1, 4).map(lambda hours: hours * HOUR), st.none()),
        st.tuples(st.sampled_from(["suspend", "reactivate"]), st.none(), st.none()),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(  # a hold across lots of different expiries, part of it captured, the rest released by its expiry
    grants=[("grant", 10, HOUR), ("grant", 10, None), ("grant", 10, 2 * HOUR)],
    plan=[
        ("hold", 25, ("k1", "job 7", 600)),
        ("capture", 0, ("k2", 6, None)),
        ("capture", 0, ("k2", 6, None)),
        ("hold", 3, (None, "café ✓", 600)),
        ("wait", HOUR, None),
        ("release", 1, None),
        ("capture", 1, (None, 1, "")),
    ],
    threshold=None,
)
@given(grants=st.lists(GRANT, min_size=2, max_size=3), plan=operations, threshold=st.none() | st.integers(1, 50))
def test_the_hold_fast_paths_and_the_general_path_keep_the_same_books(
    postgres_engine: Engine, grants: list[tuple], plan: list[tuple], threshold: int | None
) -> None:
    """Starting with a few grants, so that holds often take from several lots."""
    engine = postgres_engine
    fast, general = new_customer(engine), new_customer(engine)
    for customer in (fast, general):
        webhooks.set_low_balance_threshold(creator_id=customer.creator_id, threshold=threshold, engine=engine)
        webhooks.create_endpoint(
            creator_id=customer.creator_id,
            url="http://127.0.0.1:9/hooks",
            event_types=["credits.debited", "credits.low", "credits.depleted", "credits.expired"],
            allow_local=True,
            engine=engine,
        )
    placed: dict[int, list[int]] = {fast.id: [], general.id: []}
    now = utcnow()
    for operation, amount, extra in grants + plan:
        if operation == "wait":
            now += amount
            continue
        answers = []
        for customer, fast_path in ((fast, True), (general, False)):
            answer = _apply(engine, customer, placed[customer.id], operation, amount, extra, now, fast_path=fast_path)
            if isinstance(answer, holds.HoldSummary) and answer.id not in placed[customer.id]:
                placed[customer.id].append(answer.id)
            answers.append(_comparable(engine, customer, answer))
        assert answers[0] == answers[1], (operation, amount, extra)

    assert _books(engine, fast) == _books(engine, general)
    for customer in (fast, general):
        assert_invariants(engine, customer.id)


def _apply(
    engine: Engine, customer: Customer, placed: list[int], operation: str, amount, extra, now, *, fast_path: bool
) -> object:
    ids = {"creator_id": customer.creator_id, "engine": engine, "now": now}
    try:
        if operation == "grant":
            expires_at = None if extra is None else now + extra
            return grant(**ids, customer_id=customer.id, amount=amount, actor=API_KEY, expires_at=expires_at)
        if operation == "debit":
            return debit(
                **ids, customer_id=customer.id, amount=amount, actor=API_KEY, reason="paths", idempotency_key=extra
            )
        if operation == "hold":
            key, reason, expires_in = extra
            return holds.place_hold(
                **ids,
                customer_id=customer.id,
                amount=amount,
                actor=API_KEY,
                reason=reason,
                expires_in=expires_in,
                idempotency_key=key,
                fast_path=fast_path,
            )
        if operation in ("capture", "release"):
            if not placed:
                return None
            hold_id = placed[amount % len(placed)]
            if operation == "release":
                return holds.release_hold(
                    **ids, hold_id=hold_id, actor=API_KEY, idempotency_key=extra, fast_path=fast_path
                )
            key, captured, reason = extra
            return holds.capture_hold(
                **ids,
                hold_id=hold_id,
                amount=captured,
                reason=reason,
                actor=API_KEY,
                idempotency_key=key,
                fast_path=fast_path,
            )
        change = suspend_customer if operation == "suspend" else reactivate_customer
        change(creator_id=customer.creator_id, customer_id=customer.id, engine=engine, now=now)
    except DomainError as error:
        return error
    return None


def _comparable(engine: Engine, customer: Customer, answer: object) -> tuple | None:
    if answer is None:
        return None
    if isinstance(answer, DomainError):
        return (type(answer).__name__, answer.message, getattr(answer, "replayed", False))
    numbers = _numbers(engine, customer)
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


def _numbers(engine: Engine, customer: Customer) -> dict[str, dict[int, int]]:
    """Each ledger entry's, lot's and hold's number within the customer (ids differ between the two customers)."""
    numbers = {}
    with Session(engine) as session:
        for name, model in (("entries", LedgerEntry), ("lots", CreditLot), ("holds", Hold)):
            ids = session.exec(select(model.id).where(model.customer_id == customer.id)).all()
            numbers[name] = {id_: n for n, id_ in enumerate(sorted(ids))}
    return numbers


def _books(engine: Engine, customer: Customer) -> dict:
    """What the database holds for the customer, ids replaced by numbers within the customer."""
    numbers = _numbers(engine, customer)
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
