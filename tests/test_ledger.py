"""The credit ledger's rules, one by one, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from litesubs.db import make_engine, write_session
from litesubs.models import CreditLot, Customer, IdempotencyRecord, utcnow
from litesubs.services.customers import get_or_create_customer, reactivate_customer, suspend_customer
from litesubs.services.errors import (
    CustomerSuspended,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    NotFound,
)
from litesubs.services.idempotency import purge_idempotency_records
from litesubs.services.ledger import (
    MAX_AMOUNT,
    Actor,
    LedgerResult,
    adjust,
    debit,
    expire_due_credits,
    get_balance,
    grant,
    grant_in_session,
    list_entries,
    lock_customer,
    take_back_lot,
)
from litesubs.settings import REPO_ROOT
from tests.conftest import create_user
from tests.databases import postgres_database, sqlite_database
from tests.invariants import assert_invariants
from tests.ledger_factories import STRIPE, balance_of, buy, entries_of, new_customer

API_KEY = Actor("api_key", 7)
T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def customer(engine: Engine) -> Customer:
    return new_customer(engine)


def creator_of(customer: Customer) -> Actor:
    return Actor("creator", customer.creator_id)


def give(engine: Engine, customer: Customer, amount: int, *, now: datetime = T0, expires_at=None, **kwargs):
    return grant(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=amount,
        actor=kwargs.pop("actor", API_KEY),
        expires_at=expires_at,
        now=now,
        engine=engine,
        **kwargs,
    )


def spend(engine: Engine, customer: Customer, amount: int, *, now: datetime = T0, **kwargs) -> LedgerResult:
    return debit(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        amount=amount,
        actor=kwargs.pop("actor", API_KEY),
        now=now,
        engine=engine,
        **kwargs,
    )


def correct(engine: Engine, customer: Customer, delta: int, *, reason: str = "Goodwill", now: datetime = T0, **kwargs):
    return adjust(
        creator_id=customer.creator_id,
        customer_id=customer.id,
        delta=delta,
        reason=reason,
        actor=creator_of(customer),
        now=now,
        engine=engine,
        **kwargs,
    )


def remaining_by_lot(engine: Engine, customer: Customer) -> dict[int, int]:
    with Session(engine) as session:
        lots = session.exec(select(CreditLot).where(CreditLot.customer_id == customer.id))
        return {lot.id: lot.remaining for lot in lots}


def ledger_state(engine: Engine, customer: Customer) -> tuple:
    """Everything a refused operation must leave untouched."""
    entries = [(entry.id, entry.delta) for entry in entries_of(engine, customer.id)]
    return balance_of(engine, customer.id), remaining_by_lot(engine, customer), entries


# --- Granting ---------------------------------------------------------------------------------


def test_grant_adds_a_lot_and_one_credit_entry(engine: Engine, customer: Customer) -> None:
    result = give(engine, customer, 40, reason=" Welcome bonus ", expires_at=T0 + 30 * DAY)

    assert result.kind == "credit"
    assert (result.delta, result.balance_after, result.customer_id, result.replayed) == (40, 40, customer.id, False)
    assert result.created_at == T0
    [entry] = entries_of(engine, customer.id)
    assert (entry.id, entry.lot_id, entry.kind, entry.reason) == (
        result.entry_id,
        result.lot_id,
        "credit",
        "Welcome bonus",
    )
    assert (entry.actor_type, entry.actor_id) == ("api_key", "7")
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=T0, engine=engine)
    [lot] = view.lots
    assert (view.balance, view.status) == (40, "active")
    assert (lot.id, lot.source, lot.granted, lot.remaining) == (result.lot_id, "grant", 40, 40)
    assert lot.expires_at == T0 + 30 * DAY
    assert_invariants(engine, customer.id, now=T0)


def test_grant_without_a_clock_uses_the_current_time(engine: Engine, customer: Customer) -> None:
    before = utcnow()
    result = grant(creator_id=customer.creator_id, customer_id=customer.id, amount=1, actor=API_KEY, engine=engine)
    assert before <= result.created_at <= utcnow()


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1, True, 1.5, "3", None])
def test_amounts_must_be_whole_numbers_from_1_to_a_billion(engine: Engine, customer: Customer, amount) -> None:
    give(engine, customer, 10)
    before = ledger_state(engine, customer)
    for operation in (give, spend):
        with pytest.raises(InvalidRequest) as error:
            operation(engine, customer, amount)
        assert error.value.field == "amount"
    assert ledger_state(engine, customer) == before


def test_a_balance_may_grow_past_the_largest_amount(engine: Engine, customer: Customer) -> None:
    give(engine, customer, MAX_AMOUNT)
    result = give(engine, customer, MAX_AMOUNT)
    assert result.balance_after == 2 * MAX_AMOUNT
    assert spend(engine, customer, MAX_AMOUNT).balance_after == MAX_AMOUNT
    assert_invariants(engine, customer.id, now=T0)


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [(T0, "now is not the future"), (T0 - DAY, "past"), (datetime(2031, 1, 1), "no time zone"), ("2031-01-01", "text")],
)
def test_expiry_must_be_an_aware_time_in_the_future(engine: Engine, customer: Customer, expires_at, reason) -> None:
    with pytest.raises(InvalidRequest) as error:
        give(engine, customer, 5, expires_at=expires_at)
    assert error.value.field == "expires_at", reason
    assert ledger_state(engine, customer) == (0, {}, [])


def test_reasons_are_at_most_500_characters(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5, reason="x" * 500)
    with pytest.raises(InvalidRequest) as error:
        give(engine, customer, 5, reason="x" * 501)
    assert error.value.field == "reason"
    assert balance_of(engine, customer.id) == 5


def test_a_purchase_grant_makes_a_purchase_lot_in_the_callers_transaction(engine: Engine, customer: Customer) -> None:
    result = buy(engine, customer, credits=50, now=T0, expires_at=T0 + 10 * DAY)

    assert (result.kind, result.delta, result.balance_after) == ("purchase", 50, 50)
    [entry] = entries_of(engine, customer.id)
    assert (entry.actor_type, entry.actor_id, entry.reason) == ("stripe", "evt_test", "")
    with Session(engine) as session:
        lot = session.get(CreditLot, result.lot_id)
    assert (lot.source, lot.granted, lot.expires_at) == ("purchase", 50, T0 + 10 * DAY)
    assert lot.purchase_id is not None
    assert_invariants(engine, customer.id, now=T0)


def test_a_grant_in_a_transaction_that_fails_leaves_nothing(engine: Engine, customer: Customer) -> None:
    def fulfil_then_fail() -> None:
        with write_session(engine) as session:
            locked = lock_customer(session, creator_id=customer.creator_id, customer_id=customer.id, now=T0)
            grant_in_session(session, locked, amount=5, actor=STRIPE, now=T0)
            raise RuntimeError("the purchase could not be written")

    with pytest.raises(RuntimeError):
        fulfil_then_fail()
    assert ledger_state(engine, customer) == (0, {}, [])


def test_a_suspended_customer_cannot_buy(engine: Engine, customer: Customer) -> None:
    suspend_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    with pytest.raises(CustomerSuspended):
        buy(engine, customer, credits=50, now=T0)
    assert ledger_state(engine, customer) == (0, {}, [])


# --- Spending -----------------------------------------------------------------------------------


def test_spending_takes_the_soonest_expiring_lot_first_and_never_expiring_last(
    engine: Engine, customer: Customer
) -> None:
    forever = give(engine, customer, 10, now=T0).lot_id
    late = give(engine, customer, 10, now=T0, expires_at=T0 + 20 * DAY).lot_id
    soon_newer = give(engine, customer, 10, now=T0 + timedelta(hours=1), expires_at=T0 + 5 * DAY).lot_id
    soon_older = give(engine, customer, 10, now=T0, expires_at=T0 + 5 * DAY).lot_id
    now = T0 + timedelta(hours=2)
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
    assert [lot.id for lot in view.lots] == [soon_older, soon_newer, late, forever]

    spend(engine, customer, 4, now=now)
    assert remaining_by_lot(engine, customer) == {soon_older: 6, soon_newer: 10, late: 10, forever: 10}
    spend(engine, customer, 21, now=now)
    assert remaining_by_lot(engine, customer) == {soon_older: 0, soon_newer: 0, late: 5, forever: 10}
    spend(engine, customer, 10, now=now)
    assert remaining_by_lot(engine, customer) == {soon_older: 0, soon_newer: 0, late: 0, forever: 5}
    assert_invariants(engine, customer.id, now=now)


def test_never_expiring_lots_are_spent_oldest_first(engine: Engine, customer: Customer) -> None:
    newer = give(engine, customer, 5, now=T0 + DAY).lot_id
    older = give(engine, customer, 5, now=T0).lot_id
    spend(engine, customer, 3, now=T0 + DAY)
    assert remaining_by_lot(engine, customer) == {older: 2, newer: 5}


def test_a_debit_has_one_entry_naming_its_lot_only_when_it_touched_one(engine: Engine, customer: Customer) -> None:
    first = give(engine, customer, 5, expires_at=T0 + DAY).lot_id
    give(engine, customer, 5)

    within = spend(engine, customer, 3, reason="one call", idempotency_key="call-1")
    across = spend(engine, customer, 4, reason="two calls")

    assert (within.kind, within.delta, within.balance_after, within.lot_id) == ("debit", -3, 7, first)
    assert (across.delta, across.balance_after, across.lot_id) == (-4, 3, None)
    entries = entries_of(engine, customer.id)
    assert [entry.kind for entry in entries] == ["credit", "credit", "debit", "debit"]
    assert (entries[2].reason, entries[2].idempotency_key) == ("one call", "call-1")
    assert entries[3].idempotency_key is None
    assert_invariants(engine, customer.id, now=T0)


def test_a_debit_larger_than_the_balance_fails_whole_and_changes_nothing(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5, expires_at=T0 + DAY)
    give(engine, customer, 5)
    before = ledger_state(engine, customer)

    with pytest.raises(InsufficientCredits) as error:
        spend(engine, customer, 11)

    assert error.value.code == "insufficient_credits"
    assert error.value.status == 409
    assert ledger_state(engine, customer) == before
    assert spend(engine, customer, 10).balance_after == 0
    with pytest.raises(InsufficientCredits):
        spend(engine, customer, 1)
    assert_invariants(engine, customer.id, now=T0)


def test_a_suspended_customer_cannot_spend_but_the_creator_can_still_adjust(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 10)
    suspended = suspend_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine, now=T0)
    assert suspended.status == "suspended"
    before = ledger_state(engine, customer)

    with pytest.raises(CustomerSuspended) as error:
        spend(engine, customer, 1)
    assert error.value.status == 403
    assert ledger_state(engine, customer) == before

    assert correct(engine, customer, -4, reason="Chargeback").balance_after == 6
    assert correct(engine, customer, 2, reason="Apology").balance_after == 8
    assert give(engine, customer, 1, actor=creator_of(customer)).balance_after == 9
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=T0, engine=engine)
    assert (view.status, view.balance) == ("suspended", 9)

    reactivate_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    assert spend(engine, customer, 9).balance_after == 0
    assert_invariants(engine, customer.id, now=T0)


# --- Manual adjustments -------------------------------------------------------------------------


def test_an_adjustment_up_adds_a_lot_and_down_spends_in_the_usual_order(engine: Engine, customer: Customer) -> None:
    soon = give(engine, customer, 5, expires_at=T0 + DAY).lot_id
    added = correct(engine, customer, 7, reason="Missed session", expires_at=T0 + 9 * DAY)
    removed = correct(engine, customer, -6, reason="Double booking")

    assert (added.kind, added.delta, added.balance_after) == ("adjustment", 7, 12)
    assert (removed.kind, removed.delta, removed.balance_after, removed.lot_id) == ("adjustment", -6, 6, None)
    assert remaining_by_lot(engine, customer) == {soon: 0, added.lot_id: 6}
    with Session(engine) as session:
        assert session.get(CreditLot, added.lot_id).source == "grant"
    entries = entries_of(engine, customer.id)
    assert [(entry.reason, entry.actor_type) for entry in entries[1:]] == [
        ("Missed session", "creator"),
        ("Double booking", "creator"),
    ]
    assert entries[1].actor_id == str(customer.creator_id)
    assert_invariants(engine, customer.id, now=T0)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, None])
def test_an_adjustment_needs_a_reason(engine: Engine, customer: Customer, reason) -> None:
    with pytest.raises(InvalidRequest) as error:
        correct(engine, customer, 5, reason=reason)
    assert error.value.field == "reason"
    assert ledger_state(engine, customer) == (0, {}, [])


@pytest.mark.parametrize("delta", [0, MAX_AMOUNT + 1, -MAX_AMOUNT - 1, 2.0, False])
def test_an_adjustment_is_a_non_zero_whole_number(engine: Engine, customer: Customer, delta) -> None:
    with pytest.raises(InvalidRequest) as error:
        correct(engine, customer, delta)
    assert error.value.field == "delta"


def test_only_added_credits_can_expire(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5)
    with pytest.raises(InvalidRequest) as error:
        correct(engine, customer, -1, expires_at=T0 + DAY)
    assert error.value.field == "expires_at"


def test_an_adjustment_down_never_takes_the_balance_below_zero(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 3)
    before = ledger_state(engine, customer)
    with pytest.raises(InsufficientCredits):
        correct(engine, customer, -4)
    assert ledger_state(engine, customer) == before


# --- Refunds ------------------------------------------------------------------------------------


def test_taking_back_a_lot_removes_what_is_left_of_it(engine: Engine, customer: Customer) -> None:
    bought = buy(engine, customer, credits=10, now=T0)
    give(engine, customer, 5, expires_at=T0 + DAY)
    spend(engine, customer, 7)  # 5 from the expiring grant, 2 from the purchase

    with write_session(engine) as session:
        locked = lock_customer(session, creator_id=customer.creator_id, customer_id=customer.id, now=T0)
        refund = take_back_lot(session, locked, lot_id=bought.lot_id, actor=STRIPE, now=T0, reason="Refunded")
    assert (refund.kind, refund.delta, refund.balance_after, refund.lot_id) == ("refund", -8, 0, bought.lot_id)

    with write_session(engine) as session:
        locked = lock_customer(session, creator_id=customer.creator_id, customer_id=customer.id, now=T0)
        assert take_back_lot(session, locked, lot_id=bought.lot_id, actor=STRIPE, now=T0) is None
    assert len(entries_of(engine, customer.id)) == 4
    assert_invariants(engine, customer.id, now=T0)


def test_only_the_customers_own_lot_can_be_taken_back(engine: Engine, customer: Customer) -> None:
    other = new_customer(engine)
    theirs = give(engine, other, 5).lot_id
    with write_session(engine) as session:
        locked = lock_customer(session, creator_id=customer.creator_id, customer_id=customer.id, now=T0)
        with pytest.raises(NotFound):
            take_back_lot(session, locked, lot_id=theirs, actor=STRIPE, now=T0)
    assert balance_of(engine, other.id) == 5


# --- Expiry -------------------------------------------------------------------------------------


def test_reading_the_balance_expires_due_lots_with_one_entry_each(engine: Engine, customer: Customer) -> None:
    first = give(engine, customer, 10, expires_at=T0 + DAY).lot_id
    second = give(engine, customer, 4, expires_at=T0 + 2 * DAY).lot_id
    kept = give(engine, customer, 3).lot_id
    spend(engine, customer, 6)

    at_boundary = T0 + 2 * DAY  # a lot whose expires_at is now has expired
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=at_boundary, engine=engine)

    assert view.balance == 3
    assert [lot.id for lot in view.lots] == [kept]
    expiries = [entry for entry in entries_of(engine, customer.id) if entry.kind == "expiry"]
    assert [(entry.lot_id, entry.delta, entry.balance_after) for entry in expiries] == [(first, -4, 7), (second, -4, 3)]
    assert all((entry.actor_type, entry.created_at) == ("system", at_boundary) for entry in expiries)
    assert remaining_by_lot(engine, customer) == {first: 0, second: 0, kept: 3}
    assert_invariants(engine, customer.id, now=at_boundary)

    get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=at_boundary + DAY, engine=engine)
    assert len(entries_of(engine, customer.id)) == 6, "an expired lot expires once"


def test_a_lot_just_before_its_expiry_is_still_spendable(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5, expires_at=T0 + DAY)
    assert spend(engine, customer, 5, now=T0 + DAY - timedelta(microseconds=1)).balance_after == 0


def test_a_spent_lot_expires_without_an_entry(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5, expires_at=T0 + DAY)
    spend(engine, customer, 5)
    get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=T0 + 2 * DAY, engine=engine)
    assert [entry.kind for entry in entries_of(engine, customer.id)] == ["credit", "debit"]


@pytest.mark.parametrize("operation", ["debit", "grant", "adjust", "list_entries"])
def test_any_read_or_write_of_the_customer_expires_due_lots_first(
    engine: Engine, customer: Customer, operation: str
) -> None:
    give(engine, customer, 5, expires_at=T0 + DAY)
    later = T0 + 2 * DAY
    if operation == "debit":
        with pytest.raises(InsufficientCredits):
            spend(engine, customer, 1, now=later)
    elif operation == "grant":
        assert give(engine, customer, 2, now=later).balance_after == 2
    elif operation == "adjust":
        with pytest.raises(InsufficientCredits):
            correct(engine, customer, -5, now=later)
    else:
        page = list_entries(creator_id=customer.creator_id, customer_id=customer.id, now=later, engine=engine)
        assert [entry.kind for entry in page.entries] == ["expiry", "credit"]
    assert [entry.kind for entry in entries_of(engine, customer.id)][:2] == ["credit", "expiry"]
    assert_invariants(engine, customer.id, now=later)


def test_expire_due_credits_sweeps_every_customer(engine: Engine) -> None:
    alice, bob, carol = new_customer(engine), new_customer(engine), new_customer(engine)
    give(engine, alice, 10, expires_at=T0 + DAY)
    give(engine, alice, 3, expires_at=T0 + DAY)
    give(engine, bob, 7, expires_at=T0 + 2 * DAY)
    give(engine, bob, 1)
    give(engine, carol, 4, expires_at=T0 + 9 * DAY)
    later = T0 + 3 * DAY

    summary = expire_due_credits(now=later, engine=engine)

    # the database is shared with other tests: their due lots may be swept too
    assert summary.lots >= 3
    assert summary.credits >= 20
    assert [balance_of(engine, c.id) for c in (alice, bob, carol)] == [0, 1, 4]
    for each in (alice, bob, carol):
        assert_invariants(engine, each.id, now=later)
    assert expire_due_credits(now=later, engine=engine).lots == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty migrated database of its own, so a whole-database command can be counted exactly."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path) as url:
            yield url
    else:
        with postgres_database() as url:
            yield url


def test_the_expire_credits_command_expires_every_due_lot(fresh_database_url: str) -> None:
    fresh = make_engine(fresh_database_url)
    try:
        past = utcnow() - 10 * DAY
        first, second = new_customer(fresh), new_customer(fresh)
        give(fresh, first, 10, now=past, expires_at=past + DAY)
        give(fresh, first, 5, now=past, expires_at=past + 2 * DAY)
        spend(fresh, first, 2, now=past)
        give(fresh, second, 6, now=past, expires_at=past + DAY)
        give(fresh, second, 9, now=past)

        command = [sys.executable, "-m", "litesubs", "expire-credits"]
        environment = {**os.environ, "DATABASE_URL": fresh_database_url}
        done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)

        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "Released 0 expired holds of 0 credits.",
            "Expired 3 lots holding 19 credits.",
        ]
        assert [balance_of(fresh, first.id), balance_of(fresh, second.id)] == [0, 9]
        assert_invariants(fresh, first.id, now=utcnow())
        assert_invariants(fresh, second.id, now=utcnow())
    finally:
        fresh.dispose()


# --- Reading ------------------------------------------------------------------------------------


def test_the_ledger_lists_newest_first_in_pages(engine: Engine, customer: Customer) -> None:
    ids = [give(engine, customer, n).entry_id for n in range(1, 8)]
    seen, cursor = [], None
    while True:
        page = list_entries(
            creator_id=customer.creator_id, customer_id=customer.id, limit=3, cursor=cursor, now=T0, engine=engine
        )
        seen.append([entry.id for entry in page.entries])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    exact = list_entries(creator_id=customer.creator_id, customer_id=customer.id, limit=7, now=T0, engine=engine)
    assert exact.next_cursor is None
    assert [entry.delta for entry in exact.entries] == [7, 6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(("limit", "cursor", "field"), [(0, None, "limit"), (101, None, "limit"), (10, "!!", "cursor")])
def test_a_bad_page_request_names_its_field(engine: Engine, customer: Customer, limit, cursor, field) -> None:
    with pytest.raises(InvalidRequest) as error:
        list_entries(creator_id=customer.creator_id, customer_id=customer.id, limit=limit, cursor=cursor, engine=engine)
    assert error.value.field == field


@pytest.mark.parametrize("cursor", ["", "MA", "LTE", "eHl6", "%%%%"])
def test_a_forged_cursor_is_refused(engine: Engine, customer: Customer, cursor: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        list_entries(creator_id=customer.creator_id, customer_id=customer.id, cursor=cursor, engine=engine)
    assert error.value.field == "cursor"


# --- Ownership ----------------------------------------------------------------------------------


def test_a_creator_reaches_only_their_own_customers(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5)
    stranger = new_customer(engine).creator_id
    before = ledger_state(engine, customer)
    mine = {"creator_id": stranger, "customer_id": customer.id, "engine": engine}
    attempts = [
        lambda: grant(**mine, amount=1, actor=API_KEY),
        lambda: debit(**mine, amount=1, actor=API_KEY),
        lambda: adjust(**mine, delta=-1, reason="x", actor=Actor("creator", stranger)),
        lambda: get_balance(**mine),
        lambda: list_entries(**mine),
        lambda: suspend_customer(**mine),
        lambda: reactivate_customer(**mine),
        lambda: debit(creator_id=customer.creator_id, customer_id=10**9, amount=1, actor=API_KEY, engine=engine),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert ledger_state(engine, customer) == before


# --- Idempotency --------------------------------------------------------------------------------


def test_a_repeated_key_with_the_same_request_returns_the_first_result(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 10)
    first = spend(engine, customer, 4, reason="job 1", idempotency_key="k1")
    spend(engine, customer, 1)
    again = spend(engine, customer, 4, reason="job 1", idempotency_key="k1", now=T0 + DAY)

    assert not first.replayed
    assert again.replayed
    assert again == replace(first, replayed=True)
    assert balance_of(engine, customer.id) == 5
    assert [entry.delta for entry in entries_of(engine, customer.id)] == [10, -4, -1]

    granted = give(engine, customer, 3, expires_at=T0 + DAY, idempotency_key="k2")
    assert give(engine, customer, 3, expires_at=T0 + DAY, idempotency_key="k2").entry_id == granted.entry_id
    fixed = correct(engine, customer, -2, reason="fix", idempotency_key="k3")
    assert correct(engine, customer, -2, reason="fix", idempotency_key="k3").entry_id == fixed.entry_id
    assert balance_of(engine, customer.id) == 6
    assert_invariants(engine, customer.id, now=T0)


def test_a_repeated_key_with_another_request_is_a_conflict(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 10, idempotency_key="k")
    same_creator = get_or_create_customer(
        creator_id=customer.creator_id, buyer_id=create_user(engine).id, engine=engine
    )
    before = ledger_state(engine, customer)
    conflicts = [
        lambda: give(engine, customer, 11, idempotency_key="k"),
        lambda: give(engine, customer, 10, reason="other", idempotency_key="k"),
        lambda: give(engine, customer, 10, expires_at=T0 + DAY, idempotency_key="k"),
        lambda: spend(engine, customer, 10, idempotency_key="k"),
        lambda: correct(engine, customer, 10, idempotency_key="k"),
        lambda: give(engine, same_creator, 10, idempotency_key="k"),
    ]
    for attempt in conflicts:
        with pytest.raises(IdempotencyConflict) as error:
            attempt()
        assert error.value.status == 409
    assert ledger_state(engine, customer) == before


def test_keys_belong_to_one_creator(engine: Engine, customer: Customer) -> None:
    other = new_customer(engine)
    give(engine, customer, 10, idempotency_key="shared")
    assert give(engine, other, 20, idempotency_key="shared").balance_after == 20
    assert (balance_of(engine, customer.id), balance_of(engine, other.id)) == (10, 20)


def test_a_refusal_is_stored_and_replayed(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 3)
    with pytest.raises(InsufficientCredits) as first:
        spend(engine, customer, 5, idempotency_key="big")
    give(engine, customer, 10)
    with pytest.raises(InsufficientCredits) as again:
        spend(engine, customer, 5, idempotency_key="big")
    assert again.value.message == first.value.message
    assert balance_of(engine, customer.id) == 13

    suspend_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    with pytest.raises(CustomerSuspended):
        spend(engine, customer, 1, idempotency_key="while-suspended")
    reactivate_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    with pytest.raises(CustomerSuspended):
        spend(engine, customer, 1, idempotency_key="while-suspended")
    assert spend(engine, customer, 1, idempotency_key="after").balance_after == 12


def test_an_invalid_request_is_not_stored_so_a_corrected_retry_can_reuse_the_key(
    engine: Engine, customer: Customer
) -> None:
    give(engine, customer, 10)
    with pytest.raises(InvalidRequest):
        spend(engine, customer, 0, idempotency_key="fix-me")
    with pytest.raises(NotFound):
        debit(
            creator_id=customer.creator_id,
            customer_id=10**9,
            amount=1,
            actor=API_KEY,
            idempotency_key="fix-me",
            engine=engine,
        )
    assert spend(engine, customer, 2, idempotency_key="fix-me").balance_after == 8


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_has_1_to_255_characters(engine: Engine, customer: Customer, key: str) -> None:
    give(engine, customer, 10)
    with pytest.raises(InvalidRequest) as error:
        spend(engine, customer, 1, idempotency_key=key)
    assert error.value.field == "idempotency_key"
    assert spend(engine, customer, 1, idempotency_key="k" * 255).balance_after == 9


def test_idempotency_records_are_kept_at_least_a_day(engine: Engine, customer: Customer) -> None:
    old_time, recent_time = T0 - 3 * DAY, T0 - timedelta(hours=23)
    give(engine, customer, 1, idempotency_key="old", now=old_time)
    give(engine, customer, 1, idempotency_key="recent", now=recent_time)

    with pytest.raises(ValueError, match="24 hours"):
        purge_idempotency_records(older_than=timedelta(hours=23), engine=engine, now=T0)
    assert purge_idempotency_records(engine=engine, now=T0) >= 1

    with Session(engine) as session:
        keys = session.exec(
            select(IdempotencyRecord.key).where(IdempotencyRecord.creator_id == customer.creator_id)
        ).all()
    assert keys == ["recent"]
    assert not give(engine, customer, 1, idempotency_key="old").replayed
    assert give(engine, customer, 1, idempotency_key="recent", now=recent_time).replayed


def test_a_replay_needs_no_write_of_its_own(engine: Engine, customer: Customer) -> None:
    give(engine, customer, 5)
    spend(engine, customer, 2, idempotency_key="once")
    with Session(engine) as session:
        updated_at = session.get(Customer, customer.id).updated_at
        records = session.exec(select(func.count()).select_from(IdempotencyRecord)).one()
    spend(engine, customer, 2, idempotency_key="once", now=T0 + DAY)
    with Session(engine) as session:
        assert session.get(Customer, customer.id).updated_at == updated_at
        assert session.exec(select(func.count()).select_from(IdempotencyRecord)).one() == records
