"""DESIGN.md's credit invariants for one customer, checked on what the database holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, Hold, LedgerEntry

GRANT_KINDS = {"purchase", "credit", "adjustment"}
HOLD_ENDINGS = {"capture", "release"}  # entries that give a hold's credits back (capture: what it did not spend)


def assert_invariants(engine: Engine, customer_id: int, *, now: datetime | None = None) -> None:
    """Invariants 1 and 3 for the customer, holds counted apart.

    With `now`, the customer was last read or written at `now`, so every lot and hold due by then
    must already have expired: the balance is then exactly the sum of the unexpired lots' remaining.
    """
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        lots = {lot.id: lot for lot in session.exec(select(CreditLot).where(CreditLot.customer_id == customer_id))}
        entries = list(
            session.exec(select(LedgerEntry).where(LedgerEntry.customer_id == customer_id).order_by(LedgerEntry.id))
        )
        holds = {hold.id: hold for hold in session.exec(select(Hold).where(Hold.customer_id == customer_id))}
    assert customer is not None

    # 1. balance == sum of (unexpired) lots' remaining == sum of ledger deltas; 0 <= remaining <= granted; balance >= 0
    assert customer.balance >= 0
    assert all(0 <= lot.remaining <= lot.granted for lot in lots.values())
    assert all(lot.remaining == 0 for lot in lots.values() if lot.taken_back), "a refunded or disputed lot has credits"
    assert customer.balance == sum(lot.remaining for lot in lots.values())
    assert customer.balance == sum(entry.delta for entry in entries)
    active = [hold for hold in holds.values() if hold.status == "active"]
    active_ids = {hold.id for hold in active}
    if now is not None:
        due = [lot for lot in lots.values() if lot.expires_at is not None and lot.expires_at <= now]
        assert all(lot.remaining == 0 for lot in due), "a lot due by now still holds credits"
        assert all(hold.expires_at > now for hold in active), "a hold due by now is still active"

    # Held credits, counted apart: held == sum of the active holds; each hold came from lots that had them, and
    # an active hold's credits are out of its lots (a lot's remaining plus what active holds took <= granted).
    assert customer.held == sum(hold.amount for hold in active) >= 0
    held_credits = [(hold.id, part["lot_id"], part["amount"]) for hold in holds.values() for part in hold.lots]
    assert all(amount > 0 for _hold_id, _lot_id, amount in held_credits)
    assert all(len({part["lot_id"] for part in hold.lots}) == len(hold.lots) for hold in holds.values())
    for hold in holds.values():
        assert hold.amount == sum(part["amount"] for part in hold.lots)
        assert 0 <= hold.captured <= hold.amount
        assert (hold.status == "captured") == (hold.captured > 0)
        assert (hold.status == "active") == (hold.ended_at is None)
    for lot in lots.values():
        taken = sum(amount for hold_id, lot_id, amount in held_credits if lot_id == lot.id and hold_id in active_ids)
        assert lot.remaining + taken <= lot.granted
    assert all(lot_id in lots for _hold_id, lot_id, _amount in held_credits)

    # next_expiry_at is never later than the soonest expiry of a lot still holding credits or of an active hold.
    expiring = [lot.expires_at for lot in lots.values() if lot.remaining > 0 and lot.expires_at is not None]
    expiring += [hold.expires_at for hold in active]
    if expiring:
        assert customer.next_expiry_at is not None, "an expiring lot or hold holds credits but next_expiry_at is unset"
        assert customer.next_expiry_at <= min(expiring), "next_expiry_at is later than the soonest expiry"

    # 3. every change of credits has exactly one entry: the entries chain from 0 to the balance, each with who and why
    balance = 0
    for entry in entries:
        assert entry.delta != 0 or entry.kind == "capture"
        balance += entry.delta
        assert entry.balance_after == balance >= 0
        assert entry.actor_type
        assert entry.creator_id == customer.creator_id
        assert entry.lot_id is None or entry.lot_id in lots
    assert balance == customer.balance

    # each lot was created by exactly one grant entry for its full amount; an expiry emptied its lot when due;
    # a won dispute gives back no more than its dispute took from the lot
    assert all(entry.kind in GRANT_KINDS | HOLD_ENDINGS | {"dispute"} for entry in entries if entry.delta > 0)
    grants = [entry for entry in entries if entry.kind in GRANT_KINDS and entry.delta > 0]
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

    # each hold took its credits with one `hold` entry and, once ended, gave back what it did not spend with one
    # `capture` or `release` entry; no other entry names a hold
    for hold in holds.values():
        own = [entry for entry in entries if entry.hold_id == hold.id]
        assert [(entry.kind, entry.delta) for entry in own[:1]] == [("hold", -hold.amount)]
        endings = [(entry.kind, entry.delta) for entry in own[1:]]
        if hold.status == "active":
            assert endings == []
        else:
            kind = "capture" if hold.status == "captured" else "release"
            assert endings == [(kind, hold.amount - hold.captured)]
    assert all(entry.hold_id in holds for entry in entries if entry.kind in {"hold"} | HOLD_ENDINGS)
