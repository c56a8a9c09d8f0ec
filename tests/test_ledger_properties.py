"""Random sequences of ledger operations and clock moves, checked against a tiny model after every step.

Hypothesis drives grants, purchases, debits, adjustments, refunds, suspensions, idempotent retries,
clock moves, reads and expiry sweeps on one customer. After each step the database must hold every
invariant of DESIGN.md (`assert_invariants`) and exactly the lots and balance of the model, which
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
from litesubs.models import CreditLot, utcnow
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import CustomerSuspended, DomainError, IdempotencyConflict, InsufficientCredits
from litesubs.services.ledger import (
    Actor,
    LedgerResult,
    adjust,
    debit,
    expire_due_credits,
    get_balance,
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


class Model:
    """The ledger's rules restated: lots, spending order, expiry."""

    def __init__(self) -> None:
        self.lots: dict[int, ModelLot] = {}
        self.suspended = False

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots.values())

    def expire(self, now: datetime) -> None:
        for lot in self.lots.values():
            if lot.expires_at is not None and lot.expires_at <= now:
                lot.remaining = 0

    def spending_order(self) -> list[ModelLot]:
        open_lots = [lot for lot in self.lots.values() if lot.remaining > 0]
        never = datetime.max.replace(tzinfo=open_lots[0].created_at.tzinfo) if open_lots else None
        return sorted(open_lots, key=lambda lot: (lot.expires_at or never, lot.created_at, lot.id))

    def spend(self, amount: int) -> None:
        for lot in self.spending_order():
            taken = min(amount, lot.remaining)
            lot.remaining -= taken
            amount -= taken


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

    def _call(
        self, operation: Callable[..., LedgerResult], keyed: bool, **arguments: Any
    ) -> LedgerResult | DomainError:
        arguments = {**self.ids, "now": self.now, **arguments}
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
        self.model.lots[result.lot_id] = ModelLot(result.lot_id, amount, self._expires_at(expires_in), self.now, bought)

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
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        lot = data.draw(st.sampled_from([lot for lot in self.model.lots.values() if lot.bought]))
        self._touch()
        with write_session(self.engine) as session:
            locked = lock_customer(
                session, creator_id=self.customer.creator_id, customer_id=self.customer.id, now=self.now
            )
            result = take_back_lot(session, locked, lot_id=lot.id, actor=STRIPE, now=self.now, reason="refunded")
        had = lot.remaining
        lot.remaining = 0
        if had == 0:
            assert result is None
        else:
            assert (result.kind, result.delta, result.balance_after) == ("refund", -had, self.model.balance)

    @rule()
    def toggle_suspension(self) -> None:
        change = reactivate_customer if self.model.suspended else suspend_customer
        assert change(**self.ids, now=self.now).status == ("active" if self.model.suspended else "suspended")
        self.model.suspended = not self.model.suspended

    @rule(hours=st.integers(min_value=1, max_value=24), read=st.sampled_from([None, "balance", "entries"]))
    def move_clock(self, hours: int, read: str | None) -> None:
        """Time passes; maybe someone reads the customer (which expires what fell due)."""
        self.now += timedelta(hours=hours)
        if read is None:
            return
        self._touch()
        if read == "balance":
            view = get_balance(**self.ids, now=self.now)
            assert view.balance == self.model.balance
            assert [(lot.id, lot.remaining) for lot in view.lots] == [
                (lot.id, lot.remaining) for lot in self.model.spending_order()
            ]
        else:
            page = list_entries(**self.ids, limit=100, now=self.now)
            assert [entry.id for entry in page.entries] == [
                entry.id for entry in reversed(entries_of(self.engine, self.customer.id))
            ]

    @rule()
    def sweep(self) -> None:
        self._touch()
        expire_due_credits(now=self.now, engine=self.engine)

    @precondition(lambda self: self.keyed)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same key with the same request: the first outcome again, and nothing changes."""
        operation, arguments, first = data.draw(st.sampled_from(self.keyed))
        again = attempt(lambda: operation(**arguments))
        if isinstance(first, LedgerResult):
            assert again == replace(first, replayed=True)
        else:
            assert (type(again), again.message) == (type(first), first.message)

    @precondition(lambda self: self.keyed)
    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """The same key with another request: a conflict, and nothing changes."""
        operation, arguments, _first = data.draw(st.sampled_from(self.keyed))
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


def test_random_ledger_histories_keep_every_invariant(engine: Engine) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(engine),
        settings=settings(max_examples=40, stateful_step_count=25, deadline=None, database=None),
    )
