"""Holds racing on PostgreSQL: the customer's row lock decides, so no credit is held, spent or given back twice."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, event

from litesubs.models import Customer, utcnow
from litesubs.services import holds
from litesubs.services.errors import HoldClosed, InsufficientCredits
from litesubs.services.ledger import Actor, LedgerResult, get_balance
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of, new_customer
from tests.test_ledger_concurrency import api_debit, api_grant, outcome_counts, race

API_KEY = Actor("api_key", 1)


def _place(engine: Engine, customer: Customer, amount: int, **extra: object) -> holds.HoldSummary:
    return holds.place_hold(
        creator_id=customer.creator_id, customer_id=customer.id, amount=amount, actor=API_KEY, engine=engine, **extra
    )


def test_fifty_racing_holds_of_seven_on_a_hundred_exactly_fourteen_succeed(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    for amount in (40, 60):
        api_grant(engine, customer, amount)

    outcomes = race(50, lambda index: _place(engine, customer, 7, idempotency_key=f"hold-{index}"))

    assert outcome_counts(outcomes) == {"HoldSummary": 14, "InsufficientCredits": 36}
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    assert (view.balance, view.held) == (2, 98)
    assert all(isinstance(outcome, holds.HoldSummary | InsufficientCredits) for outcome in outcomes)
    assert_invariants(engine, customer.id)


def test_capture_and_release_racing_on_one_hold_exactly_one_wins(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 100)
    placed = [_place(engine, customer, 10) for _ in range(5)]
    ids = {"creator_id": customer.creator_id, "engine": engine, "actor": API_KEY}

    for hold in placed:

        def end(index: int, hold_id: int = hold.id) -> holds.HoldEnding:
            if index % 2:
                return holds.release_hold(**ids, hold_id=hold_id)
            return holds.capture_hold(**ids, hold_id=hold_id, amount=4)

        outcomes = race(20, end)
        assert outcome_counts(outcomes) == {"HoldEnding": 1, "HoldClosed": 19}
        winner = next(outcome for outcome in outcomes if isinstance(outcome, holds.HoldEnding))
        assert all(isinstance(outcome, holds.HoldEnding | HoldClosed) for outcome in outcomes)
        assert winner.hold.status in {"captured", "released"}

    spent = sum(4 for entry in entries_of(engine, customer.id) if entry.kind == "capture")
    assert balance_of(engine, customer.id) == 100 - spent
    assert_invariants(engine, customer.id)


def test_a_hundred_racing_captures_of_distinct_holds_plus_debits_keep_the_books_exact(
    postgres_engine: Engine,
) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    for amount in (300, 400, 500):
        api_grant(engine, customer, amount)
    placed = [_place(engine, customer, 6) for _ in range(100)]  # 600 held, 600 left to spend
    captures = {hold.id: random.randint(1, 6) for hold in placed}

    def work(index: int) -> holds.HoldEnding | LedgerResult:
        if index < 100:
            hold = placed[index]
            return holds.capture_hold(
                creator_id=customer.creator_id, hold_id=hold.id, amount=captures[hold.id], actor=API_KEY, engine=engine
            )
        return api_debit(engine, customer, 5, key=f"debit-{index}")

    outcomes = race(160, work)

    assert outcome_counts(outcomes) == {"HoldEnding": 100, "LedgerResult": 60}
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    assert view.held == 0
    assert view.balance == 1200 - sum(captures.values()) - 60 * 5
    assert_invariants(engine, customer.id)


def test_sweeps_and_reads_racing_over_due_holds_release_each_once(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 100)
    placed_at = utcnow() - timedelta(minutes=5)
    for _ in range(20):
        _place(engine, customer, 5, expires_in=60, now=placed_at)
    now = utcnow()

    def sweep_or_read(index: int) -> object:
        if index % 3 == 0:
            return holds.release_expired(now=now, engine=engine)
        if index % 3 == 1:
            return get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
        return api_debit(engine, customer, 1)

    race(30, sweep_or_read)

    releases = [entry for entry in entries_of(engine, customer.id) if entry.kind == "release"]
    assert len(releases) == 20
    assert len({entry.hold_id for entry in releases}) == 20
    assert balance_of(engine, customer.id) == 100 - 10  # ten debits of 1
    assert_invariants(engine, customer.id, now=now)


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs (BEGIN and COMMIT are not statements here)."""
    sent: list[str] = []

    def record(_connection, _cursor, statement, _parameters, _context, _many) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_placing_and_ending_a_hold_take_the_one_call_hot_path(postgres_engine: Engine) -> None:
    """Placing and capturing are one server-side call each in autocommit, as a debit is."""
    engine = postgres_engine
    customer = new_customer(engine)
    for amount in (5, 20):
        api_grant(engine, customer, amount)
    api_debit(engine, customer, 1, key="warm-up")  # connections and prepared statements exist already

    with statements_run(engine) as placing:
        hold = _place(engine, customer, 10, idempotency_key="hot-hold")
    with statements_run(engine) as capturing:
        ending = holds.capture_hold(
            creator_id=customer.creator_id,
            hold_id=hold.id,
            amount=6,
            actor=API_KEY,
            idempotency_key="hot-capture",
            engine=engine,
        )
    with statements_run(engine) as debiting:
        api_debit(engine, customer, 1, key="compare")

    assert len(debiting) == 1
    assert "ledger_debit(" in debiting[0]
    assert len(placing) == 1
    assert "hold_place(" in placing[0]
    assert len(capturing) == 1
    assert "hold_end(" in capturing[0]
    assert (ending.transaction.delta, ending.hold.captured) == (4, 6)
    assert balance_of(engine, customer.id) == 24 - 6 - 1
    replayed = holds.capture_hold(
        creator_id=customer.creator_id,
        hold_id=hold.id,
        amount=6,
        actor=API_KEY,
        idempotency_key="hot-capture",
        engine=engine,
    )
    assert replayed.replayed
    assert replayed.transaction == replace(ending.transaction, replayed=True)
    assert replayed.hold == replace(ending.hold, replayed=True)
    again = _place(engine, customer, 10, idempotency_key="hot-hold")
    assert again == replace(hold, replayed=True)
    assert_invariants(engine, customer.id)
