"""Random sequences of ledger operations and clock moves, checked against a tiny model after every step.

Hypothesis drives grants, purchases, debits, adjustments, refunds and disputes (opened and won, also of
lots with credits in active holds), holds (placed, captured, released, expiring), suspensions, idempotent
retries, clock moves, reads and expiry sweeps on one customer. After each step the database must hold every
invariant of DESIGN.md (`assert_invariants`) and exactly the lots, holds and balance of the model, which
restates the rules in a few lines of plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import CreditLot, Customer, Hold, utcnow
from litesubs.services import holds
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import (
    CustomerSuspended,
    DomainError,
    HoldClosed,
    HoldExceeded,
    IdempotencyConflict,
    InsufficientCredits,
)
from litesubs.services.ledger import (
    Actor,
    LedgerResult,
    adjust,
    debit,
    expire_due_credits,
    get_balance,
    give_back_disputed,
    grant,
    list_entries,
    lock_customer,
    take_back_lot,
)
from tests.invariants import assert_invariants
from tests.ledger_factories import STRIPE, balance_of, buy, entries_of, new_customer

API_KEY = Actor("api_key", 3)
HOUR = 3600
amounts = st.integers(min_value=1, max_value=60)
# Whole hours, so that the clock often lands exactly on an expiry (a lot is expired at its `expires_at`).
expiries = st.none() | st.integers(min_value=1, max_value=48).map(lambda hours: hours * HOUR)  # seconds from now
keys = st.booleans()  # whether the call carries a (fresh) idempotency key


@dataclass
class ModelLot:
    id: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    bought: bool
    granted: int = 0
    taken_back: str | None = None  # `refund` or `dispute` once its purchase was refunded or (until won) disputed
    disputed: int = 0  # credits disputes took from it and have not given back


@dataclass
class ModelHold:
    amount: int
    taken: dict[int, int]  # lot id -> credits taken from it
    expires_at: datetime
    status: str = "active"
    captured: int = 0


class Model:
    """The ledger's rules restated: lots, spending order, holds, expiry."""

    def __init__(self) -> None:
        self.lots: dict[int, ModelLot] = {}
        self.holds: dict[int, ModelHold] = {}
        self.suspended = False

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots.values())

    @property
    def held(self) -> int:
        return sum(hold.amount for hold in self.holds.values() if hold.status == "active")

    def expire(self, now: datetime) -> None:
        """Due holds give their credits back, then due lots lose what they hold (given-back credits too)."""
        for hold in self.holds.values():
            if hold.status == "active" and hold.expires_at <= now:
                self.end(hold, captured=0, status="expired")
        for lot in self.lots.values():
            if lot.expires_at is not None and lot.expires_at <= now:
                lot.remaining = 0

    def _order(self, lot: ModelLot) -> tuple:
        return (lot.expires_at is None, lot.expires_at or lot.created_at, lot.created_at, lot.id)

    def spending_order(self) -> list[ModelLot]:
        return sorted((lot for lot in self.lots.values() if lot.remaining > 0), key=self._order)

    def spend(self, amount: int) -> dict[int, int]:
        taken = {}
        for lot in self.spending_order():
            if amount == 0:
                break
            taken[lot.id] = min(amount, lot.remaining)
            lot.remaining -= taken[lot.id]
            amount -= taken[lot.id]
        return taken

    def end(self, hold: ModelHold, *, captured: int, status: str) -> int:
        """Keep `captured` of the hold's credits, those of its lots first in spending order; give the rest back,
        where what goes back to a refunded or disputed lot is taken back at once: returns how much was."""
        taken_back = 0
        for lot in sorted((self.lots[lot_id] for lot_id in hold.taken), key=self._order):
            kept = min(captured, hold.taken[lot.id])
            captured -= kept
            lot.remaining += hold.taken[lot.id] - kept
            if lot.taken_back is not None:
                taken_back += self.take_back(lot, lot.taken_back)
        hold.status = status
        return taken_back

    def take_back(self, lot: ModelLot, kind: str) -> int:
        """A refund or dispute of the lot's purchase (or credits given back to it after one): all it has left."""
        had, lot.remaining, lot.taken_back = lot.remaining, 0, kind
        if kind == "dispute":
            lot.disputed += had
        return had

    def win_dispute(self, lot: ModelLot, now: datetime) -> int:
        """The lot is the customer's again; what disputes took returns unless the lot has expired."""
        lot.taken_back = None
        back = min(lot.disputed, lot.granted - lot.remaining)
        if back <= 0 or (lot.expires_at is not None and lot.expires_at <= now):
            return 0
        lot.remaining += back
        lot.disputed -= back
        return back


def attempt(call: Callable[[], LedgerResult]) -> LedgerResult | DomainError:
    try:
        return call()
    except DomainError as error:
        return error


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.customer = new_customer(engine)
        self.ids = {"creator_id": self.customer.creator_id, "customer_id": self.customer.id, "engine": engine}
        self.now = utcnow().replace(microsecond=0)
        self.touched_at = self.now  # when the ledger last saw this customer: lots due by then have expired
        self.model = Model()
        self.keyed: list[tuple[Callable[..., LedgerResult], dict[str, Any], LedgerResult | DomainError]] = []

    # --- helpers -------------------------------------------------------------------------------

    def _touch(self) -> None:
        """The ledger is about to read or write the customer at `now`: due lots expire first."""
        self.model.expire(self.now)
        self.touched_at = self.now

    def _call(self, operation: Callable[..., Any], keyed: bool, **arguments: Any) -> Any:
        arguments = {**self.ids, "now": self.now, **arguments}
        if operation in (holds.capture_hold, holds.release_hold):
            del arguments["customer_id"]
        if keyed:
            arguments["idempotency_key"] = f"key-{len(self.keyed)}"
        outcome = attempt(lambda: operation(**arguments))
        if keyed:
            self.keyed.append((operation, arguments, outcome))
        return outcome

    def _expect(self, outcome: LedgerResult | DomainError, refusal: type[DomainError] | None) -> None:
        if refusal is not None:
            assert isinstance(outcome, refusal), outcome
        else:
            assert isinstance(outcome, LedgerResult), outcome
            assert outcome.balance_after == self.model.balance

    def _add_lot(self, result: LedgerResult, amount: int, expires_in: int | None, *, bought: bool = False) -> None:
        expires_at = self._expires_at(expires_in)
        self.model.lots[result.lot_id] = ModelLot(result.lot_id, amount, expires_at, self.now, bought, granted=amount)

    def _expires_at(self, expires_in: int | None) -> datetime | None:
        return None if expires_in is None else self.now + timedelta(seconds=expires_in)

    # --- rules ---------------------------------------------------------------------------------

    @rule(amount=amounts, expires_in=expiries, keyed=keys)
    def grant(self, amount: int, expires_in: int | None, keyed: bool) -> None:
        self._touch()
        outcome = self._call(
            grant, keyed, amount=amount, actor=API_KEY, reason="bonus", expires_at=self._expires_at(expires_in)
        )
        assert isinstance(outcome, LedgerResult), outcome
        self._add_lot(outcome, amount, expires_in)
        self._expect(outcome, None)

    @rule(amount=amounts, expires_in=expiries)
    def purchase(self, amount: int, expires_in: int | None) -> None:
        def fulfil() -> LedgerResult:
            expires_at = self._expires_at(expires_in)
            return buy(self.engine, self.customer, credits=amount, now=self.now, expires_at=expires_at)

        if self.model.suspended:  # refused: fulfilment's whole transaction rolls back, lazy expiry included
            assert isinstance(attempt(fulfil), CustomerSuspended)
            return
        self._touch()
        result = fulfil()
        self._add_lot(result, amount, expires_in, bought=True)
        self._expect(result, None)

    @rule(amount=st.integers(min_value=1, max_value=40), keyed=keys)
    def debit(self, amount: int, keyed: bool) -> None:
        self._touch()
        outcome = self._call(debit, keyed, amount=amount, actor=API_KEY, reason="usage")
        if self.model.suspended:
            refusal = CustomerSuspended
        elif amount > self.model.balance:
            refusal = InsufficientCredits
        else:
            refusal = None
            self.model.spend(amount)
        self._expect(outcome, refusal)

    @rule(
        delta=st.integers(min_value=-60, max_value=60).filter(bool),
        expires_in=expiries,
        keyed=keys,
    )
    def adjust(self, delta: int, expires_in: int | None, keyed: bool) -> None:
        self._touch()
        expires_at = self._expires_at(expires_in) if delta > 0 else None
        creator = Actor("creator", self.customer.creator_id)
        outcome = self._call(adjust, keyed, delta=delta, reason="by hand", actor=creator, expires_at=expires_at)
        refusal = None
        if delta > 0:
            self._add_lot(outcome, delta, expires_in)
        elif -delta > self.model.balance:
            refusal = InsufficientCredits
        else:
            self.model.spend(-delta)
        self._expect(outcome, refusal)

    @precondition(lambda self: any(lot.bought for lot in self.model.lots.values()))
    @rule(data=st.data(), kind=st.sampled_from(["refund", "dispute"]))
    def refund(self, data: st.DataObject, kind: str) -> None:
        """A refund or a dispute of a purchase, whose lot may have credits out in active holds."""
        lot = data.draw(st.sampled_from([lot for lot in self.model.lots.values() if lot.bought]))
        self._touch()
        with write_session(self.engine) as session:
            locked = lock_customer(
                session, creator_id=self.customer.creator_id, customer_id=self.customer.id, now=self.now
            )
            result = take_back_lot(session, locked, lot_id=lot.id, actor=STRIPE, now=self.now, reason=kind, kind=kind)
        had = self.model.take_back(lot, kind)
        if had == 0:
            assert result is None
        else:
            assert (result.kind, result.delta, result.balance_after) == (kind, -had, self.model.balance)

    @precondition(lambda self: any(lot.taken_back == "dispute" for lot in self.model.lots.values()))
    @rule(data=st.data())
    def win_dispute(self, data: st.DataObject) -> None:
        lot = data.draw(st.sampled_from([lot for lot in self.model.lots.values() if lot.taken_back == "dispute"]))
        self._touch()
        with write_session(self.engine) as session:
            locked = lock_customer(
                session, creator_id=self.customer.creator_id, customer_id=self.customer.id, now=self.now
            )
            result = give_back_disputed(session, locked, lot_id=lot.id, actor=STRIPE, now=self.now, reason="won")
        back = self.model.win_dispute(lot, self.now)
        if back == 0:
            assert result is None
        else:
            assert (result.kind, result.delta, result.balance_after) == ("dispute", back, self.model.balance)

    @rule(amount=st.integers(min_value=1, max_value=40), expires_in=st.sampled_from([60, 3600, 86_400]), keyed=keys)
    def place_hold(self, amount: int, expires_in: int, keyed: bool) -> None:
        self._touch()
        outcome = self._call(holds.place_hold, keyed, amount=amount, actor=API_KEY, reason="job", expires_in=expires_in)
        if self.model.suspended:
            assert isinstance(outcome, CustomerSuspended), outcome
        elif amount > self.model.balance:
            assert isinstance(outcome, InsufficientCredits), outcome
        else:
            assert isinstance(outcome, holds.HoldSummary), outcome
            expires_at = self.now + timedelta(seconds=expires_in)
            self.model.holds[outcome.id] = ModelHold(amount, self.model.spend(amount), expires_at)
            assert (outcome.amount, outcome.status, outcome.expires_at) == (amount, "active", expires_at)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), part=st.none() | st.integers(min_value=1, max_value=45), keyed=keys)
    def capture_hold(self, data: st.DataObject, part: int | None, keyed: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)))
        self._touch()
        outcome = self._call(holds.capture_hold, keyed, hold_id=hold_id, amount=part, actor=API_KEY, reason="done")
        hold = self.model.holds[hold_id]
        captured = hold.amount if part is None else part
        if hold.status != "active":
            assert isinstance(outcome, HoldClosed), outcome
        elif captured > hold.amount:
            assert isinstance(outcome, HoldExceeded), outcome
        else:
            before = self.model.balance
            taken_back = self.model.end(hold, captured=captured, status="captured")
            hold.captured = captured
            assert isinstance(outcome, holds.HoldEnding), outcome
            assert outcome.transaction.delta == self.model.balance - before + taken_back == hold.amount - captured
            self.model.expire(self.now)  # credits given back to a lot whose time passed expire at once
            assert outcome.hold.captured == captured

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), keyed=keys)
    def release_hold(self, data: st.DataObject, keyed: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)))
        self._touch()
        outcome = self._call(holds.release_hold, keyed, hold_id=hold_id, actor=API_KEY)
        hold = self.model.holds[hold_id]
        if hold.status != "active":
            assert isinstance(outcome, HoldClosed), outcome
        else:
            self.model.end(hold, captured=0, status="released")
            self.model.expire(self.now)
            assert isinstance(outcome, holds.HoldEnding), outcome
            assert (outcome.transaction.delta, outcome.hold.status) == (hold.amount, "released")

    @rule()
    def toggle_suspension(self) -> None:
        change = reactivate_customer if self.model.suspended else suspend_customer
        assert change(**self.ids, now=self.now).status == ("active" if self.model.suspended else "suspended")
        self.model.suspended = not self.model.suspended

    @rule(hours=st.integers(min_value=1, max_value=24), read=st.sampled_from([None, "balance", "entries", "holds"]))
    def move_clock(self, hours: int, read: str | None) -> None:
        """Time passes; maybe someone reads the customer (which expires what fell due)."""
        self.now += timedelta(hours=hours)
        if read is None:
            return
        self._touch()
        if read == "balance":
            view = get_balance(**self.ids, now=self.now)
            assert (view.balance, view.held) == (self.model.balance, self.model.held)
            assert [(lot.id, lot.remaining) for lot in view.lots] == [
                (lot.id, lot.remaining) for lot in self.model.spending_order()
            ]
        elif read == "holds":
            page = holds.list_holds(**self.ids, status="active", now=self.now)
            active = sorted((hold_id for hold_id, hold in self.model.holds.items() if hold.status == "active"))
            assert [summary.id for summary in page.holds] == active[::-1]
        else:
            page = list_entries(**self.ids, limit=100, now=self.now)
            assert [entry.id for entry in page.entries] == [
                entry.id for entry in reversed(entries_of(self.engine, self.customer.id))
            ]

    @rule()
    def sweep(self) -> None:
        """What `python -m litesubs expire-credits` (and the worker) does: release due holds, expire due lots."""
        self._touch()
        holds.release_expired(now=self.now, engine=self.engine)
        expire_due_credits(now=self.now, engine=self.engine)

    @precondition(lambda self: self.keyed)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same key with the same request: the first outcome again, and nothing changes."""
        operation, arguments, first = data.draw(st.sampled_from(self.keyed))
        again = attempt(lambda: operation(**arguments))
        if isinstance(first, holds.HoldEnding):
            assert again == replace(
                first,
                transaction=replace(first.transaction, replayed=True),
                hold=replace(first.hold, replayed=True),
                replayed=True,
            )
            assert again.replayed
        elif isinstance(first, LedgerResult | holds.HoldSummary):
            assert again == replace(first, replayed=True)
        else:
            assert (type(again), again.message) == (type(first), first.message)

    @precondition(lambda self: any("reason" in arguments for _operation, arguments, _first in self.keyed))
    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """The same key with another request: a conflict, and nothing changes."""
        with_reason = [keyed for keyed in self.keyed if "reason" in keyed[1]]
        operation, arguments, _first = data.draw(st.sampled_from(with_reason))
        changed = {**arguments, "reason": arguments["reason"] + " (edited)"}
        assert isinstance(attempt(lambda: operation(**changed)), IdempotencyConflict)

    # --- after every step ----------------------------------------------------------------------

    @invariant()
    def database_matches_the_rules_and_the_model(self) -> None:
        assert_invariants(self.engine, self.customer.id, now=self.touched_at)
        with Session(self.engine) as session:
            lots = session.exec(select(CreditLot).where(CreditLot.customer_id == self.customer.id))
            assert {lot.id: lot.remaining for lot in lots} == {
                lot.id: lot.remaining for lot in self.model.lots.values()
            }
        assert balance_of(self.engine, self.customer.id) == self.model.balance
        with Session(self.engine) as session:
            assert session.get(Customer, self.customer.id).held == self.model.held
            stored = session.exec(select(Hold).where(Hold.customer_id == self.customer.id))
            assert {hold.id: (hold.status, hold.captured) for hold in stored} == {
                hold_id: (hold.status, hold.captured) for hold_id, hold in self.model.holds.items()
            }


def test_random_ledger_histories_keep_every_invariant(engine: Engine) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(engine),
        settings=settings(max_examples=40, stateful_step_count=25, deadline=None, database=None),
    )
