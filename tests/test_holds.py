"""Holds on SQLite and PostgreSQL: reserve credits, capture part, get the rest back, and expiry on its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.cli import main
from litesubs.models import CreditLot, Customer, Hold, utcnow
from litesubs.services import holds
from litesubs.services.customers import suspend_customer
from litesubs.services.errors import (
    CustomerSuspended,
    HoldClosed,
    HoldExceeded,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    NotFound,
)
from litesubs.services.ledger import Actor, debit, get_balance, grant, list_entries
from litesubs.services.overview import creator_overview
from litesubs.worker import Worker
from tests.conftest import use_database
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, buy, entries_of, new_customer

API_KEY = Actor("api_key", 7)


@pytest.fixture
def now() -> datetime:
    return utcnow().replace(microsecond=0)


def _customer_with(engine: Engine, now: datetime, *lots: tuple[int, timedelta | None]) -> tuple[Customer, list[int]]:
    """A fresh customer holding the given lots (credits, expires in), granted in this order."""
    customer = new_customer(engine)
    lot_ids = []
    for credits, expires_in in lots:
        expires_at = None if expires_in is None else now + expires_in
        result = grant(
            creator_id=customer.creator_id,
            customer_id=customer.id,
            amount=credits,
            actor=API_KEY,
            expires_at=expires_at,
            now=now,
            engine=engine,
        )
        lot_ids.append(result.lot_id)
    return customer, lot_ids


def _remaining(engine: Engine, lot_ids: list[int]) -> list[int]:
    with Session(engine) as session:
        lots = {lot.id: lot.remaining for lot in session.exec(select(CreditLot).where(CreditLot.id.in_(lot_ids)))}
    return [lots[lot_id] for lot_id in lot_ids]


def _hold(engine: Engine, customer: Customer, amount: int, now: datetime, **extra: object) -> holds.HoldSummary:
    arguments = {"actor": API_KEY, "reason": "render", "now": now, "engine": engine, **extra}
    return holds.place_hold(creator_id=customer.creator_id, customer_id=customer.id, amount=amount, **arguments)


def _ids(customer: Customer, engine: Engine) -> dict[str, object]:
    return {"creator_id": customer.creator_id, "engine": engine}


def test_a_hold_takes_credits_in_spending_order_and_counts_them_apart(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (50, None), (10, timedelta(days=2)), (5, timedelta(days=1)))
    hold = _hold(engine, customer, 12, now, expires_in=600)

    assert (hold.amount, hold.status, hold.captured, hold.reason) == (12, "active", 0, "render")
    assert hold.expires_at == now + timedelta(seconds=600)
    assert hold.public_id == f"hold_{hold.id}"
    assert _remaining(engine, lots) == [50, 3, 0]  # soonest expiry first
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
    assert (view.balance, view.held) == (53, 12)
    entry = entries_of(engine, customer.id)[-1]
    assert (entry.kind, entry.delta, entry.balance_after, entry.hold_id, entry.reason) == (
        "hold",
        -12,
        53,
        hold.id,
        "render",
    )
    assert_invariants(engine, customer.id, now=now)


def test_held_credits_cannot_be_spent(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (10, None))
    _hold(engine, customer, 8, now)
    with pytest.raises(InsufficientCredits):
        debit(creator_id=customer.creator_id, customer_id=customer.id, amount=3, actor=API_KEY, now=now, engine=engine)
    debit(creator_id=customer.creator_id, customer_id=customer.id, amount=2, actor=API_KEY, now=now, engine=engine)
    assert balance_of(engine, customer.id) == 0
    assert_invariants(engine, customer.id, now=now)


def test_a_hold_larger_than_the_balance_or_for_a_suspended_customer_changes_nothing(
    engine: Engine, now: datetime
) -> None:
    customer, lots = _customer_with(engine, now, (10, None))
    with pytest.raises(InsufficientCredits, match="10 credits, fewer than the 11"):
        _hold(engine, customer, 11, now)
    suspend_customer(creator_id=customer.creator_id, customer_id=customer.id, engine=engine)
    with pytest.raises(CustomerSuspended):
        _hold(engine, customer, 1, now)
    assert _remaining(engine, lots) == [10]
    assert [entry.kind for entry in entries_of(engine, customer.id)] == ["credit"]
    assert_invariants(engine, customer.id, now=now)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 5, "expires_in": 0}, "expires_in"),
        ({"amount": 5, "expires_in": 86_401}, "expires_in"),
        ({"amount": 5, "reason": "x" * 501}, "reason"),
    ],
)
def test_bad_hold_input_is_refused_by_field(engine: Engine, now: datetime, arguments: dict, field: str) -> None:
    customer, _lots = _customer_with(engine, now, (10, None))
    arguments = dict(arguments)
    amount = arguments.pop("amount")
    with pytest.raises(InvalidRequest) as refused:
        _hold(engine, customer, amount, now, **arguments)
    assert refused.value.field == field
    assert balance_of(engine, customer.id) == 10


def test_capturing_part_spends_it_and_gives_the_rest_back_to_the_same_lots(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (30, None), (6, timedelta(days=1)))
    hold = _hold(engine, customer, 20, now)
    assert _remaining(engine, lots) == [16, 0]

    ending = holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, amount=7, actor=API_KEY, now=now)

    # the capture spent the 6 of the soonest-expiring lot first and 1 more; 13 went back to the other lot
    assert _remaining(engine, lots) == [29, 0]
    assert (ending.hold.status, ending.hold.captured, ending.hold.ended_at) == ("captured", 7, now)
    assert (ending.transaction.kind, ending.transaction.delta, ending.transaction.balance_after) == ("capture", 13, 29)
    assert (ending.transaction.hold_id, ending.transaction.lot_id) == (hold.id, lots[0])
    assert entries_of(engine, customer.id)[-1].reason == "render"  # the hold's reason unless the capture gives one
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
    assert (view.balance, view.held) == (29, 0)
    assert_invariants(engine, customer.id, now=now)


def test_capturing_all_records_a_capture_that_gives_nothing_back(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (10, None))
    hold = _hold(engine, customer, 10, now)
    ending = holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, reason="done", actor=API_KEY, now=now)
    assert (ending.transaction.delta, ending.transaction.balance_after, ending.hold.captured) == (0, 0, 10)
    assert entries_of(engine, customer.id)[-1].reason == "done"
    assert_invariants(engine, customer.id, now=now)


def test_capturing_more_than_held_changes_nothing(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (30, None))
    hold = _hold(engine, customer, 10, now)
    with pytest.raises(HoldExceeded, match="holds 10 credits, fewer than the 11"):
        holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, amount=11, actor=API_KEY, now=now)
    assert holds.get_hold(**_ids(customer, engine), hold_id=hold.id, now=now).status == "active"
    assert _remaining(engine, lots) == [20]
    assert_invariants(engine, customer.id, now=now)


def test_a_hold_ends_once(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (30, None))
    hold = _hold(engine, customer, 10, now)
    ending = holds.release_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=now)
    assert (ending.transaction.kind, ending.transaction.delta, ending.hold.status) == ("release", 10, "released")
    assert _remaining(engine, lots) == [30]
    with pytest.raises(HoldClosed, match="already released"):
        holds.release_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=now)
    with pytest.raises(HoldClosed, match="already released"):
        holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=now)
    assert balance_of(engine, customer.id) == 30
    assert_invariants(engine, customer.id, now=now)


def test_retries_with_the_same_key_replay_the_first_answer(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (30, None))
    hold = _hold(engine, customer, 10, now, idempotency_key="hold-1")
    again = _hold(engine, customer, 10, now + timedelta(seconds=5), idempotency_key="hold-1")
    assert again == replace(hold, replayed=True)
    with pytest.raises(IdempotencyConflict):
        _hold(engine, customer, 11, now, idempotency_key="hold-1")

    capture = {**_ids(customer, engine), "hold_id": hold.id, "amount": 4, "actor": API_KEY, "idempotency_key": "cap"}
    first = holds.capture_hold(**capture, now=now)
    replayed = holds.capture_hold(**capture, now=now + timedelta(seconds=1))
    assert replayed.replayed
    assert replayed.transaction == replace(first.transaction, replayed=True)
    assert replayed.hold.captured == 4
    with pytest.raises(HoldClosed):  # a new key is a new request: the hold has ended
        holds.capture_hold(**{**capture, "idempotency_key": "cap-2"}, now=now)
    assert balance_of(engine, customer.id) == 26
    assert_invariants(engine, customer.id, now=now)


def test_credits_of_a_lot_that_expired_while_held_expire_when_given_back(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (5, timedelta(hours=1)), (20, None))
    hold = _hold(engine, customer, 10, now, expires_in=86_400)
    later = now + timedelta(hours=2)
    # the lot's expiry passed while all of its credits were held: nothing of it expires yet
    assert get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=later, engine=engine).balance == 15

    ending = holds.release_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=later)

    assert ending.transaction.delta == 10
    assert _remaining(engine, lots) == [0, 20]
    kinds = [(entry.kind, entry.delta, entry.lot_id) for entry in entries_of(engine, customer.id)[-2:]]
    assert kinds == [("release", 10, None), ("expiry", -5, lots[0])]
    assert balance_of(engine, customer.id) == 20
    assert_invariants(engine, customer.id, now=later)


def test_a_capture_spends_the_expired_lots_credits_first(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (5, timedelta(hours=1)), (20, None))
    hold = _hold(engine, customer, 10, now, expires_in=86_400)
    later = now + timedelta(hours=2)
    holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, amount=6, actor=API_KEY, now=later)
    assert _remaining(engine, lots) == [0, 19]
    assert "expiry" not in [entry.kind for entry in entries_of(engine, customer.id)]
    assert_invariants(engine, customer.id, now=later)


def test_an_expired_hold_gives_its_credits_back_on_the_next_read(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (10, None))
    hold = _hold(engine, customer, 8, now, expires_in=60)
    later = now + timedelta(seconds=60)  # due exactly at expires_at
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=later, engine=engine)
    assert (view.balance, view.held) == (10, 0)
    expired = holds.get_hold(**_ids(customer, engine), hold_id=hold.id, now=later)
    assert (expired.status, expired.captured, expired.ended_at) == ("expired", 0, later)
    entry = entries_of(engine, customer.id)[-1]
    assert (entry.kind, entry.delta, entry.actor_type, entry.reason) == ("release", 8, "system", "The hold expired.")
    with pytest.raises(HoldClosed, match="expired"):
        holds.capture_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=later)
    assert _remaining(engine, lots) == [10]
    assert_invariants(engine, customer.id, now=later)


@pytest.mark.parametrize("read", ["hold", "debit", "entries", "holds", "capture"])
def test_every_read_and_write_releases_a_due_hold_first(engine: Engine, now: datetime, read: str) -> None:
    customer, _lots = _customer_with(engine, now, (10, None))
    hold = _hold(engine, customer, 10, now, expires_in=60)
    later = now + timedelta(minutes=5)
    ids = {"creator_id": customer.creator_id, "engine": engine, "now": later}
    if read == "hold":
        holds.get_hold(**ids, hold_id=hold.id)
    elif read == "debit":  # on PostgreSQL the fast path sees the due hold and leaves it to the general path
        assert debit(**ids, customer_id=customer.id, amount=4, actor=API_KEY).balance_after == 6
    elif read == "entries":
        assert list_entries(**ids, customer_id=customer.id).entries[0].kind == "release"
    elif read == "holds":
        page = holds.list_holds(**ids, customer_id=customer.id)
        assert [(summary.id, summary.status) for summary in page.holds] == [(hold.id, "expired")]
    else:
        with pytest.raises(HoldClosed):
            holds.capture_hold(**ids, hold_id=hold.id, actor=API_KEY)
    assert holds.get_hold(**ids, hold_id=hold.id).status == "expired"
    assert_invariants(engine, customer.id, now=later)


def test_the_sweep_releases_every_due_hold(engine: Engine, now: datetime) -> None:
    first, _lots = _customer_with(engine, now, (10, None))
    second, _lots = _customer_with(engine, now, (10, None))
    due = [_hold(engine, first, 3, now, expires_in=60), _hold(engine, second, 4, now, expires_in=60)]
    lasting = _hold(engine, first, 5, now, expires_in=3_600)
    later = now + timedelta(minutes=2)
    sweep = holds.release_expired(now=later, engine=engine)
    assert (sweep.holds, sweep.credits) >= (2, 7)  # other tests' due holds in this database may go too
    assert [balance_of(engine, first.id), balance_of(engine, second.id)] == [5, 10]
    assert [
        holds.get_hold(**_ids(c, engine), hold_id=h.id, now=later).status
        for c, h in zip((first, second), due, strict=True)
    ] == ["expired", "expired"]
    assert holds.get_hold(**_ids(first, engine), hold_id=lasting.id, now=later).status == "active"
    assert holds.release_expired(now=later, engine=engine) == holds.HoldSweep(0, 0)
    for customer in (first, second):
        assert_invariants(engine, customer.id, now=later)


def test_the_workers_sweep_releases_due_holds_before_expiring_lots(engine: Engine, now: datetime) -> None:
    customer, lots = _customer_with(engine, now, (5, timedelta(hours=1)), (20, None))
    due = _hold(engine, customer, 10, now, expires_in=60)  # all 5 of the expiring lot, 5 of the other
    later = now + timedelta(hours=2)

    Worker(engine, deliverers={}).run_once(now=later)

    with Session(engine) as session:  # as the sweep left it, without a read that would release the hold itself
        swept = session.get(Customer, customer.id)
        hold_status = session.get(Hold, due.id).status
    assert (swept.balance, swept.held, hold_status) == (20, 0, "expired")
    assert _remaining(engine, lots) == [0, 20]
    kinds = [(entry.kind, entry.delta, entry.lot_id) for entry in entries_of(engine, customer.id)[-2:]]
    assert kinds == [("release", 10, None), ("expiry", -5, lots[0])]
    assert_invariants(engine, customer.id, now=later)


def test_expire_credits_command_releases_due_holds(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow() - timedelta(hours=1)
    customer, _lots = _customer_with(engine, now, (10, None))
    _hold(engine, customer, 6, now, expires_in=60)
    use_database(monkeypatch, database_url)
    assert main(["expire-credits"]) == 0
    out = capsys.readouterr().out
    assert "Released" in out
    assert balance_of(engine, customer.id) == 10
    assert_invariants(engine, customer.id)


def test_another_creators_hold_is_not_found(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (10, None))
    hold = _hold(engine, customer, 5, now)
    stranger, _lots = _customer_with(engine, now, (10, None))
    theirs = {"creator_id": stranger.creator_id, "engine": engine, "hold_id": hold.id, "now": now}
    with pytest.raises(NotFound):
        holds.get_hold(**theirs)
    with pytest.raises(NotFound):
        holds.capture_hold(**theirs, actor=API_KEY)
    with pytest.raises(NotFound):
        holds.release_hold(**theirs, actor=API_KEY)
    with pytest.raises(NotFound):
        holds.list_holds(creator_id=stranger.creator_id, customer_id=customer.id, engine=engine)
    assert balance_of(engine, customer.id) == 5


@pytest.mark.parametrize(
    "text", ["hold_", "hold_x", "42", "hold_0", "hold_99999999999", "hold_-1", "hold_\uff14\uff12"]
)
def test_malformed_hold_ids_are_not_found(text: str) -> None:
    with pytest.raises(NotFound):
        holds.parse_hold_id(text)


def test_holds_list_by_status_newest_first_a_page_at_a_time(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (100, None))
    placed = [_hold(engine, customer, 5, now) for _ in range(5)]
    holds.release_hold(**_ids(customer, engine), hold_id=placed[1].id, actor=API_KEY, now=now)
    ids = {"creator_id": customer.creator_id, "customer_id": customer.id, "engine": engine, "now": now}
    active = holds.list_holds(**ids, status="active", limit=3)
    assert [h.id for h in active.holds] == [placed[4].id, placed[3].id, placed[2].id]
    rest = holds.list_holds(**ids, status="active", limit=3, cursor=active.next_cursor)
    assert ([h.id for h in rest.holds], rest.next_cursor) == ([placed[0].id], None)
    assert [h.id for h in holds.list_holds(**ids, status="released").holds] == [placed[1].id]
    with pytest.raises(InvalidRequest):
        holds.list_holds(**ids, status="open")
    view = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
    assert (view.balance, view.held) == (80, 20)


def test_a_purchase_lot_can_be_held_and_released(engine: Engine, now: datetime) -> None:
    customer = new_customer(engine)
    lot = buy(engine, customer, credits=12, now=now).lot_id
    hold = _hold(engine, customer, 12, now)
    holds.release_hold(**_ids(customer, engine), hold_id=hold.id, actor=API_KEY, now=now)
    assert _remaining(engine, [lot]) == [12]
    assert_invariants(engine, customer.id, now=now)


def test_the_overview_counts_captured_credits_as_spent(engine: Engine, now: datetime) -> None:
    customer, _lots = _customer_with(engine, now, (50, None))
    debit(creator_id=customer.creator_id, customer_id=customer.id, amount=4, actor=API_KEY, now=now, engine=engine)
    captured, released = _hold(engine, customer, 10, now), _hold(engine, customer, 6, now)
    _hold(engine, customer, 3, now)  # still active: not spent
    holds.capture_hold(**_ids(customer, engine), hold_id=captured.id, amount=7, actor=API_KEY, now=now)
    holds.release_hold(**_ids(customer, engine), hold_id=released.id, actor=API_KEY, now=now)
    assert creator_overview(creator_id=customer.creator_id, engine=engine).credits_spent == 4 + 7
