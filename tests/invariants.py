"""DESIGN.md's credit invariants for one customer, checked on what the database holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, LedgerEntry

GRANT_KINDS = {"purchase", "credit", "adjustment"}


def assert_invariants(engine: Engine, customer_id: int, *, now: datetime | None = None) -> None:
    """Invariants 1 and 3 for the customer.

    With `now`, the customer was last read or written at `now`, so every lot due by then must
    already have expired: the balance is then exactly the sum of the unexpired lots' remaining.
    """
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        lots = {lot.id: lot for lot in session.exec(select(CreditLot).where(CreditLot.customer_id == customer_id))}
        entries = list(
            session.exec(select(LedgerEntry).where(LedgerEntry.customer_id == customer_id).order_by(LedgerEntry.id))
        )
    assert customer is not None

    # 1. balance == sum of (unexpired) lots' remaining == sum of ledger deltas; 0 <= remaining <= granted; balance >= 0
    assert customer.balance >= 0
    assert all(0 <= lot.remaining <= lot.granted for lot in lots.values())
    assert customer.balance == sum(lot.remaining for lot in lots.values())
    assert customer.balance == sum(entry.delta for entry in entries)
    if now is not None:
        due = [lot for lot in lots.values() if lot.expires_at is not None and lot.expires_at <= now]
        assert all(lot.remaining == 0 for lot in due), "a lot due by now still holds credits"

    # The customer's next_expiry_at is never later than the soonest expiry of a lot still holding credits.
    expiring = [lot.expires_at for lot in lots.values() if lot.remaining > 0 and lot.expires_at is not None]
    if expiring:
        assert customer.next_expiry_at is not None, "an expiring lot holds credits but next_expiry_at is unset"
        assert customer.next_expiry_at <= min(expiring), "next_expiry_at is later than the soonest expiry"

    # 3. every change of credits has exactly one entry: the entries chain from 0 to the balance, each with who and why
    balance = 0
    for entry in entries:
        assert entry.delta != 0
        balance += entry.delta
        assert entry.balance_after == balance >= 0
        assert entry.actor_type
        assert entry.creator_id == customer.creator_id
        assert entry.lot_id is None or entry.lot_id in lots
    assert balance == customer.balance

    # each lot was created by exactly one grant entry for its full amount; an expiry emptied its lot when due;
    # a won dispute gives back no more than its dispute took from the lot
    grants = [entry for entry in entries if entry.delta > 0 and entry.kind != "dispute"]
    assert all(entry.kind in GRANT_KINDS for entry in grants)
    for lot_id in {entry.lot_id for entry in entries if entry.kind == "dispute"}:
        assert lot_id is not None
        assert sum(entry.delta for entry in entries if entry.kind == "dispute" and entry.lot_id == lot_id) <= 0
    assert sorted(entry.lot_id for entry in grants) == sorted(lots)
    assert all(lots[entry.lot_id].granted == entry.delta for entry in grants)
    for entry in entries:
        if entry.kind == "expiry":
            lot = lots[entry.lot_id]
            assert lot.remaining == 0
            assert lot.expires_at is not None
            assert lot.expires_at <= entry.created_at
