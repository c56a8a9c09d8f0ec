"""Many threads racing on one customer: no credit is spent twice, no key runs twice, nothing goes below zero.

On PostgreSQL the customer's row lock and the idempotency key's unique index do the work; the
last race runs on SQLite too, where the write transaction serialises it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import make_engine
from litesubs.models import CreditLot, Customer, LedgerEntry, utcnow
from litesubs.services.customers import get_or_create_customer, suspend_customer
from litesubs.services.errors import CustomerSuspended, DomainError, InsufficientCredits, NotFound
from litesubs.services.ledger import Actor, LedgerResult, batching, debit, grant, model, postgres, transaction
from tests.conftest import create_user
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of, new_customer

THREADS = 60
API_KEY = Actor("api_key", 1)
T = TypeVar("T")


def race(threads: int, attempt: Callable[[int], T]) -> list[T | DomainError]:
    """Run `attempt(i)` in `threads` threads released together; each gives its result or its domain error."""
    barrier = threading.Barrier(threads)

    def run(index: int) -> T | DomainError:
        barrier.wait()
        try:
            return attempt(index)
        except DomainError as error:
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def outcome_counts(outcomes: list) -> Counter:
    return Counter(type(outcome).__name__ for outcome in outcomes)


def api_grant(engine: Engine, customer: Customer, amount: int, key: str | None = None) -> LedgerResult:
    return grant(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=amount,
        actor=API_KEY,
        idempotency_key=key,
        engine=engine,
    )


def api_debit(engine: Engine, customer: Customer, amount: int, key: str | None = None) -> LedgerResult:
    return debit(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=amount,
        reason="API call",
        actor=API_KEY,
        idempotency_key=key,
        engine=engine,
    )


def test_racing_debits_spend_exactly_the_balance(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    for amount in (10, 15, 5):  # three lots, emptied one after the other
        api_grant(engine, customer, amount)

    outcomes = race(THREADS, lambda _: api_debit(engine, customer, 1))

    assert outcome_counts(outcomes) == {"LedgerResult": 30, "InsufficientCredits": 30}
    successes = [outcome for outcome in outcomes if isinstance(outcome, LedgerResult)]
    assert sorted(result.balance_after for result in successes) == list(range(30))
    assert balance_of(engine, customer.id) == 0
    entries = entries_of(engine, customer.id)
    assert sum(entry.delta for entry in entries) == 0
    assert [entry.kind for entry in entries].count("debit") == 30
    assert_invariants(engine, customer.id)


def test_racing_debits_of_different_sizes_never_overdraw(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 100)
    amounts = [1 + index % 7 for index in range(THREADS)]  # 234 credits asked for in all

    outcomes = race(THREADS, lambda index: api_debit(engine, customer, amounts[index]))

    spent = sum(amount for amount, outcome in zip(amounts, outcomes, strict=True) if isinstance(outcome, LedgerResult))
    refused = [
        amount for amount, outcome in zip(amounts, outcomes, strict=True) if not isinstance(outcome, LedgerResult)
    ]
    assert all(isinstance(outcome, LedgerResult | InsufficientCredits) for outcome in outcomes)
    assert balance_of(engine, customer.id) == 100 - spent >= 0
    assert min(refused) > 100 - spent, "a refused debit would have fitted in what was left"
    assert_invariants(engine, customer.id)


def test_racing_requests_with_one_idempotency_key_run_once(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 100)

    outcomes = race(THREADS, lambda _: api_debit(engine, customer, 5, key="order-42"))

    assert outcome_counts(outcomes) == {"LedgerResult": THREADS}
    assert len({(result.entry_id, result.balance_after, result.created_at) for result in outcomes}) == 1
    assert [result.replayed for result in outcomes].count(False) == 1
    assert balance_of(engine, customer.id) == 95
    assert [entry.delta for entry in entries_of(engine, customer.id)] == [100, -5]
    assert_invariants(engine, customer.id)


def test_racing_grants_with_one_key_for_different_customers_run_once(postgres_engine: Engine) -> None:
    engine = postgres_engine
    creator = create_user(engine)
    customers = [
        get_or_create_customer(creator_id=creator.id, buyer_id=create_user(engine).id, engine=engine) for _ in range(50)
    ]

    outcomes = race(len(customers), lambda index: api_grant(engine, customers[index], 3, key="promo"))

    assert outcome_counts(outcomes) == {"LedgerResult": 1, "IdempotencyConflict": 49}
    assert sorted(balance_of(engine, customer.id) for customer in customers) == [0] * 49 + [3]
    for customer in customers:
        assert_invariants(engine, customer.id)


def test_racing_retries_spend_each_job_once_on_both_databases(engine: Engine) -> None:
    customer = new_customer(engine)
    api_grant(engine, customer, 20)

    outcomes = race(THREADS, lambda index: api_debit(engine, customer, 1, key=f"job-{index % 30}"))  # each key twice

    assert outcome_counts(outcomes) == {"LedgerResult": 40, "InsufficientCredits": 20}
    results = [outcome for outcome in outcomes if isinstance(outcome, LedgerResult)]
    assert len({result.entry_id for result in results}) == 20
    assert [result.replayed for result in results].count(False) == 20
    assert balance_of(engine, customer.id) == 0
    assert_invariants(engine, customer.id)


def test_one_call_debits_racing_on_one_customer_and_spread_keep_the_books_exact(postgres_engine: Engine) -> None:
    """Debits through the one-call path (`ledger_debit`) from four engines, as from four processes (debits of
    one customer coalesce only within one), race on one hot customer and on ten others; some jobs are retried
    with their key. Every credit is spent once, no key runs twice, no refused debit would have fitted."""
    url = postgres_engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(4)]
    hot = new_customer(postgres_engine)
    creator = create_user(postgres_engine)
    spread = [
        get_or_create_customer(creator_id=creator.id, buyer_id=create_user(postgres_engine).id, engine=postgres_engine)
        for _ in range(10)
    ]
    grant(
        creator_id=hot.creator_id,
        customer_id=hot.id,
        amount=25,
        actor=API_KEY,
        expires_at=utcnow() + timedelta(days=1),
        engine=postgres_engine,
    )
    api_grant(postgres_engine, hot, 15)
    for customer in spread:
        api_grant(postgres_engine, customer, 3)

    def job(index: int) -> tuple[Customer, int, str]:
        number = index % 45  # the last 15 threads retry jobs 0 to 14
        customer = hot if number % 2 == 0 else spread[number % 10]
        return customer, 1 + number % 3, f"job-{number}"

    def attempt(index: int) -> LedgerResult:
        customer, amount, key = job(index)
        return api_debit(engines[index % 4], customer, amount, key=key)

    try:
        outcomes = race(THREADS, attempt)
    finally:
        for engine in engines:
            engine.dispose()

    assert all(isinstance(outcome, LedgerResult | InsufficientCredits) for outcome in outcomes)
    jobs = [job(index) for index in range(THREADS)]
    answers: dict[str, set] = {}
    for (_customer, _amount, key), outcome in zip(jobs, outcomes, strict=True):
        answers.setdefault(key, set()).add(outcome.entry_id if isinstance(outcome, LedgerResult) else outcome.message)
    assert all(len(answer) == 1 for answer in answers.values()), "a retried job got another answer"
    for customer, granted in ((hot, 40), *((other, 3) for other in spread)):
        mine = {
            key: (amount, outcome)
            for (owner, amount, key), outcome in zip(jobs, outcomes, strict=True)
            if owner is customer
        }
        spent = sum(amount for amount, outcome in mine.values() if isinstance(outcome, LedgerResult))
        refused = [amount for amount, outcome in mine.values() if isinstance(outcome, InsufficientCredits)]
        debited = [entry.idempotency_key for entry in entries_of(postgres_engine, customer.id) if entry.kind == "debit"]
        assert sorted(debited) == sorted(key for key, (_, outcome) in mine.items() if isinstance(outcome, LedgerResult))
        assert balance_of(postgres_engine, customer.id) == granted - spent >= 0
        assert all(amount > granted - spent for amount in refused), "a refused debit would have fitted"
        assert_invariants(postgres_engine, customer.id)


def test_debits_run_together_give_what_they_would_one_after_the_other(postgres_engine: Engine) -> None:
    """A batch of one customer's debits (as the hot path coalesces them) matches the same debits run in turn."""
    engine, now = postgres_engine, utcnow()
    together, alone = new_customer(engine), new_customer(engine)
    for customer in (together, alone):
        for amount, expires_at in ((10, now + timedelta(days=1)), (5, now + timedelta(days=2)), (20, None)):
            grant(
                creator_id=customer.creator_id,
                customer_id=customer.id,
                amount=amount,
                actor=API_KEY,
                expires_at=expires_at,
                engine=engine,
            )
        api_debit(engine, customer, 1, key="used-before")
    plan = [(3, None), (9, "k1"), (100, "big"), (9, "k1"), (4, None), (1, "used-before"), (30, None), (6, "k2")]

    def attempt(customer: Customer, amount: int, key: str | None) -> LedgerResult | DomainError:
        try:
            return api_debit(engine, customer, amount, key=key)
        except DomainError as error:
            return error

    one_by_one = [attempt(alone, amount, key) for amount, key in plan]
    batch = [
        postgres.Debit(
            engine,
            together.creator_id,
            together.id,
            amount,
            {"operation": "debit", "amount": amount, "reason": "API call", "customer_id": together.id},
            model.Cause("debit", API_KEY, "API call", utcnow(), key),
        )
        for amount, key in plan
    ]
    outcomes = batching.debit_together(batch)
    # Left to the general path: the key used before, and the key used earlier in the same batch.
    assert [index for index, outcome in enumerate(outcomes) if outcome is None] == [3, 5]
    in_batch = [
        attempt(together, amount, key) if outcome is None else _delivered_or_refused(outcome)
        for (amount, key), outcome in zip(plan, outcomes, strict=True)
    ]

    assert [_comparable(engine, together, o) for o in in_batch] == [_comparable(engine, alone, o) for o in one_by_one]
    assert [_comparable_entry(engine, together, e) for e in entries_of(engine, together.id)] == [
        _comparable_entry(engine, alone, e) for e in entries_of(engine, alone.id)
    ]
    assert [lot.remaining for lot in _lots(engine, together)] == [lot.remaining for lot in _lots(engine, alone)]
    for customer in (together, alone):
        assert_invariants(engine, customer.id)


def _delivered_or_refused(outcome: dict) -> LedgerResult | DomainError:
    try:
        return transaction.delivered(outcome, replayed=False)
    except DomainError as error:
        return error


def _lots(engine: Engine, customer: Customer) -> list[CreditLot]:
    with Session(engine) as session:
        return list(session.exec(select(CreditLot).where(CreditLot.customer_id == customer.id).order_by(CreditLot.id)))


def _lot_number(engine: Engine, customer: Customer, lot_id: int | None) -> int | None:
    return None if lot_id is None else [lot.id for lot in _lots(engine, customer)].index(lot_id)


def _comparable(engine: Engine, customer: Customer, outcome: LedgerResult | DomainError) -> tuple:
    if isinstance(outcome, DomainError):
        return (type(outcome).__name__, outcome.message)
    lot = _lot_number(engine, customer, outcome.lot_id)
    return (outcome.kind, outcome.delta, outcome.balance_after, lot, outcome.replayed)


def _comparable_entry(engine: Engine, customer: Customer, entry: LedgerEntry) -> tuple:
    return (
        entry.kind,
        entry.delta,
        entry.balance_after,
        _lot_number(engine, customer, entry.lot_id),
        entry.idempotency_key,
    )


# --- What a batch leaves to the general path ----------------------------------------------------


def _batch(engine: Engine, customer: Customer, plan: list[tuple[int, str | None]], *, now=None, customer_id=None):
    """Debits of one customer as the hot path coalesces them (`customer_id` may name one that does not exist)."""
    customer_id = customer.id if customer_id is None else customer_id
    return [
        postgres.Debit(
            engine,
            customer.creator_id,
            customer_id,
            amount,
            {"operation": "debit", "amount": amount, "reason": "API call", "customer_id": customer_id},
            model.Cause("debit", API_KEY, "API call", now or utcnow(), key),
        )
        for amount, key in plan
    ]


def test_a_batch_that_meets_a_due_lot_changes_nothing_and_the_general_path_expires_it_first(
    postgres_engine: Engine,
) -> None:
    engine, now = postgres_engine, utcnow()
    customer = new_customer(engine)
    grant(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=5,
        actor=API_KEY,
        expires_at=now + timedelta(hours=1),
        engine=engine,
    )
    api_grant(engine, customer, 10)
    later = now + timedelta(hours=2)

    outcomes = batching.debit_together(_batch(engine, customer, [(3, "due-1"), (4, None)], now=later))

    assert outcomes == [None, None]
    assert balance_of(engine, customer.id) == 15
    result = debit(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=3,
        actor=API_KEY,
        idempotency_key="due-1",
        now=later,
        engine=engine,
    )
    assert (result.balance_after, result.replayed) == (7, False)  # the 5 expired first, then 3 of the 10 spent
    assert [entry.kind for entry in entries_of(engine, customer.id)] == ["credit", "credit", "expiry", "debit"]
    assert_invariants(engine, customer.id, now=later)


def test_a_batch_for_a_customer_that_does_not_exist_claims_no_key(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 10)

    outcomes = batching.debit_together(_batch(engine, customer, [(1, "ghost-1"), (2, None)], customer_id=2**31 - 1))

    assert outcomes == [None, None]
    for _ in range(2):  # the key was not used up: the general path answers NotFound each time, never a replay
        with pytest.raises(NotFound):
            debit(
                creator_id=customer.creator_id,
                customer_id=2**31 - 1,
                amount=1,
                actor=API_KEY,
                idempotency_key="ghost-1",
                engine=engine,
            )
    assert balance_of(engine, customer.id) == 10


def test_a_suspended_customer_refuses_every_debit_of_a_batch_and_the_refusals_replay(postgres_engine: Engine) -> None:
    engine = postgres_engine
    customer = new_customer(engine)
    api_grant(engine, customer, 10)
    suspend_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)

    outcomes = batching.debit_together(_batch(engine, customer, [(1, "suspended-1"), (2, None), (3, "suspended-2")]))

    assert [outcome["refusal"] for outcome in outcomes] == ["customer_suspended"] * 3
    with pytest.raises(CustomerSuspended) as replayed:
        api_debit(engine, customer, 1, key="suspended-1")
    assert replayed.value.replayed
    assert balance_of(engine, customer.id) == 10
    assert [entry.kind for entry in entries_of(engine, customer.id)] == ["credit"]
    assert_invariants(engine, customer.id)
