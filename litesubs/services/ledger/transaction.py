"""One change of credits: one transaction with the customer locked and what fell due expired first, writing
the lots, the cached balance and exactly one ledger entry together, at most once per idempotency key.

`change_credits` is the general path every operation takes (and `holds` builds on it); the pieces below it
(`lock_customer`, `take_from_lots`, `give_back_to_lots`, `record`, ...) are the steps a change is made of,
for a customer locked in the caller's transaction. Start at `change_credits`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import BigInteger, Engine, Row, bindparam, func, update
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import CreditLot, Customer, Hold, LedgerEntry
from litesubs.services import idempotency, webhooks
from litesubs.services.customers import lock_customer_row
from litesubs.services.ledger.model import SYSTEM, Cause, LedgerResult
from litesubs.services.ledger.rules import REFUSALS, has_due_lots, insufficient, lots_to_take, refusal_outcome


def change_credits(
    engine: Engine | None,
    *,
    creator_id: int,
    customer_id: int,
    request: dict[str, Any],
    cause: Cause,
    change: Callable[[Session, Customer], Outcome],
    result_type: type[Outcome] = LedgerResult,  # type: ignore[assignment]
    fingerprint_customer: bool = True,
) -> Outcome:
    """Run `change` on the locked, up-to-date customer in one transaction, once per idempotency key.

    A business refusal is committed like a success (with its idempotency record and any expiry that
    was due) and raised after the commit; replaying a key raises the stored refusal again, marked `replayed`.
    `change` returns a `LedgerResult`, or another `result_type` that stores and replays the same way (holds).
    The key fingerprints `request` with the customer, unless `request` names something that has only one
    customer (a hold) and `fingerprint_customer` is False.
    """
    key = cause.idempotency_key
    with write_session(engine) as session:
        outcome = None
        if key is not None:
            if fingerprint_customer:
                request = {**request, "customer_id": customer_id}
            outcome = idempotency.claim(
                session, creator_id=creator_id, key=idempotency.check_key(key), request=request, now=cause.now
            )
        replayed = outcome is not None
        if outcome is None:
            customer = lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=cause.now)
            outcome = _outcome_of(change, session, customer)
            if key is not None:
                idempotency.remember(session, creator_id=creator_id, key=key, outcome=outcome)
    return delivered(outcome, replayed=replayed, result_type=result_type)


class Stored(Protocol):
    """A change's result as an idempotency record stores it and a replay returns it."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> Self: ...


Outcome = TypeVar("Outcome", bound=Stored)


def delivered(
    outcome: dict[str, Any],
    *,
    replayed: bool,
    result_type: type[Outcome] = LedgerResult,  # type: ignore[assignment]
) -> Outcome:
    """The committed outcome of a change: its result, or its refusal raised (both marked `replayed` if so)."""
    if "refusal" in outcome:
        refusal = REFUSALS[outcome["refusal"]](outcome["message"])
        refusal.replayed = replayed
        raise refusal
    return result_type.from_json(outcome["result"], replayed=replayed)


def _outcome_of(change: Callable[[Session, Customer], Stored], session: Session, customer: Customer) -> dict[str, Any]:
    try:
        return {"result": change(session, customer).to_json()}
    except tuple(REFUSALS.values()) as refusal:
        return refusal_outcome(refusal)


def lock_customer(session: Session, *, creator_id: int, customer_id: int, now: datetime) -> Customer:
    """Lock the creator's customer for the rest of the caller's transaction and expire its due lots.

    Call this before any other change of the customer's credits in the same transaction.
    """
    customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
    expire_due_lots(session, customer, now=now)
    return customer


def expire_due_lots(session: Session, customer: Customer, *, now: datetime) -> list[LedgerResult]:
    """Expire what fell due for the locked customer: first its holds past their expiry give their credits back
    (see `holds`), then its lots whose time has come lose what they hold, one `expiry` entry per lot.

    Returns the expiry entries. Skipped without a query while `customer.next_expiry_at` is in the future (or unset).
    """
    if not has_due_lots(customer, now):
        return []
    if customer.held:
        from litesubs.services import holds  # holds builds on this module; only a due hold needs it back

        holds.end_due_holds(session, customer, now=now)
    due = session.exec(
        select(CreditLot)
        .where(CreditLot.customer_id == customer.id, CreditLot.remaining > 0, CreditLot.expires_at <= now)
        .order_by(CreditLot.expires_at, CreditLot.id)
        .execution_options(populate_existing=True)
    )
    cause = Cause("expiry", SYSTEM, "Credits expired.", now)
    expired = [empty_lot(session, customer, lot, cause=cause) for lot in due.all()]
    soonest_lot = select(func.min(CreditLot.expires_at)).where(
        CreditLot.customer_id == customer.id, CreditLot.remaining > 0
    )
    soonest_hold = select(func.min(Hold.expires_at)).where(Hold.customer_id == customer.id, Hold.status == "active")
    expiries = session.exec(soonest_lot).one(), session.exec(soonest_hold).one() if customer.held else None
    customer.next_expiry_at = min((moment for moment in expiries if moment is not None), default=None)
    session.add(customer)
    return expired


def add_lot(
    session: Session,
    customer: Customer,
    amount: int,
    *,
    expires_at: datetime | None,
    cause: Cause,
    purchase_id: int | None = None,
) -> LedgerResult:
    lot = CreditLot(
        customer_id=customer.id,
        source="grant" if purchase_id is None else "purchase",
        purchase_id=purchase_id,
        granted=amount,
        remaining=amount,
        expires_at=expires_at,
        created_at=cause.now,
    )
    session.add(lot)
    session.flush()
    if expires_at is not None and (customer.next_expiry_at is None or expires_at < customer.next_expiry_at):
        customer.next_expiry_at = expires_at
    return record(session, customer, delta=amount, lot_id=lot.id, cause=cause)


def spend_credits(session: Session, customer: Customer, amount: int, *, cause: Cause) -> LedgerResult:
    """Take `amount` from the open lots in spending order: one entry, naming the lot if only one was touched."""
    taken = take_from_lots(session, customer, amount)
    return record(session, customer, delta=-amount, lot_id=taken[0].id if len(taken) == 1 else None, cause=cause)


def take_from_lots(session: Session, customer: Customer, amount: int) -> list[Row]:
    """Take `amount` from the open lots in spending order, refused whole if the balance is lower: rows of
    (id, take). The caller records the change (`record`)."""
    if amount > customer.balance:
        raise insufficient(customer.balance, amount)
    taken = session.exec(lots_to_take(customer.id, amount)).all()
    session.connection().execute(TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in taken])
    return list(taken)


def give_back_to_lots(
    session: Session, customer: Customer, credits: Iterable[tuple[int, int, datetime | None]]
) -> None:
    """Put credits taken earlier back into their lots: (lot id, credits, the lot's expiry) each. The caller records
    the change (`record`), then calls `take_back_returned`, which takes back what went back to a refunded or
    disputed lot, and `expire_due_lots`, which expires what went back to a lot whose time passed."""
    credits = list(credits)
    if not credits:
        return
    session.connection().execute(TAKE_FROM_LOT, [{"lot_id": lot_id, "take": -back} for lot_id, back, _ in credits])
    for _lot_id, _back, expires_at in credits:
        if expires_at is not None and (customer.next_expiry_at is None or expires_at < customer.next_expiry_at):
            customer.next_expiry_at = expires_at


def empty_lot(session: Session, customer: Customer, lot: CreditLot, *, cause: Cause) -> LedgerResult:
    taken = lot.remaining
    lot.remaining = 0
    session.add(lot)
    return record(session, customer, delta=-taken, lot_id=lot.id, cause=cause)


def record(
    session: Session,
    customer: Customer,
    *,
    delta: int,
    lot_id: int | None,
    cause: Cause,
    captured: webhooks.Captured | None = None,
) -> LedgerResult:
    """Move the cached balance by `delta` and write the one ledger entry that says who did it and why, with its
    events (`webhooks.credits_changed`; a hold's capture passes what it spent, its `credits.debited`)."""
    customer.balance += delta
    customer.updated_at = cause.now
    fields = entry_fields(customer.creator_id, customer.id, delta=delta, balance_after=customer.balance, cause=cause)
    entry = LedgerEntry(**fields, lot_id=lot_id, hold_id=cause.hold_id)
    session.add(customer)
    session.add(entry)
    session.flush()
    webhooks.credits_changed(session.connection(), [(entry.id, webhooks.with_capture(fields, captured))])
    return LedgerResult.of(entry)


# A ledger entry's columns but its lot, in the order `entry_fields` gives them.
ENTRY_COLUMNS = (
    "creator_id",
    "customer_id",
    "delta",
    "balance_after",
    "kind",
    "reason",
    "actor_type",
    "actor_id",
    "idempotency_key",
    "created_at",
)


def entry_fields(creator_id: int, customer_id: int, *, delta: int, balance_after: int, cause: Cause) -> dict[str, Any]:
    """A ledger entry's columns but its lot (`ENTRY_COLUMNS`), with their values."""
    actor_id = None if cause.actor.id is None else str(cause.actor.id)
    values = (creator_id, customer_id, delta, balance_after, cause.kind, cause.reason, cause.actor.type, actor_id)
    return dict(zip(ENTRY_COLUMNS, (*values, cause.idempotency_key, cause.now), strict=True))


TAKE_FROM_LOT = (
    update(CreditLot)
    .where(CreditLot.id == bindparam("lot_id"))
    .values(remaining=CreditLot.remaining - bindparam("take", type_=BigInteger))
)


MOVE_BALANCE = (
    update(Customer)
    .where(Customer.id == bindparam("move_customer_id"))
    .values(balance=bindparam("move_balance"), updated_at=bindparam("move_now"))
)
