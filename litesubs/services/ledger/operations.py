"""The ledger's operations that change credits: `grant`, `debit`, `adjust` and `expire_due_credits`, each one
transaction (`transaction.change_credits`); and, for payments, the same work in the caller's transaction
(`grant_in_session`, `take_back_lot`, `take_back_returned`, `give_back_disputed`) on a customer locked with
`lock_customer`.

Start at `debit`: it checks its input, then on PostgreSQL tries the fast path (`batching`, `postgres`) and
otherwise, or when the fast path leaves the case to it, runs the general path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from litesubs.db import get_engine, write_session
from litesubs.models import CreditLot, Customer, LedgerEntry, utcnow
from litesubs.services import idempotency
from litesubs.services.customers import ensure_active, lock_customer_row
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.ledger.batching import DEBITS
from litesubs.services.ledger.model import (
    MAX_AMOUNT,
    SYSTEM,
    Actor,
    Cause,
    ExpirySummary,
    LedgerResult,
    check_amount,
    check_expiry,
    check_reason,
    iso,
)
from litesubs.services.ledger.postgres import Debit
from litesubs.services.ledger.transaction import (
    add_lot,
    change_credits,
    delivered,
    empty_lot,
    expire_due_lots,
    record,
    spend_credits,
)


def grant(
    *,
    creator_id: int,
    customer_id: int,
    amount: int,
    actor: Actor,
    reason: str = "",
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerResult:
    """Give the customer `amount` free credits (ledger kind `credit`) in a new lot, optionally expiring."""
    now = now or utcnow()
    amount, reason, expires_at = check_amount(amount), check_reason(reason), check_expiry(expires_at, now)
    cause = Cause("credit", actor, reason, now, idempotency_key)
    return change_credits(
        engine,
        creator_id=creator_id,
        customer_id=customer_id,
        request={"operation": "grant", "amount": amount, "reason": reason, "expires_at": iso(expires_at)},
        cause=cause,
        change=lambda session, customer: add_lot(session, customer, amount, expires_at=expires_at, cause=cause),
    )


def debit(
    *,
    creator_id: int,
    customer_id: int,
    amount: int,
    actor: Actor,
    reason: str = "",
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
    fast_path: bool = True,
) -> LedgerResult:
    """Spend `amount` credits. Refused whole, changing nothing, if the customer is suspended or has fewer.

    On PostgreSQL the fast path (`batching`, `postgres`) runs it, leaving rare cases to the general path;
    `fast_path=False` runs the general path alone (tests/test_ledger_paths.py compares the two).
    """
    now = now or utcnow()
    amount, reason = check_amount(amount), check_reason(reason)
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    cause = Cause("debit", actor, reason, now, idempotency_key)
    request = {"operation": "debit", "amount": amount, "reason": reason}
    engine = engine or get_engine()
    if fast_path and engine.dialect.name == "postgresql":
        hot = Debit(engine, creator_id, customer_id, amount, {**request, "customer_id": customer_id}, cause)
        outcome = DEBITS.run((engine, creator_id, customer_id), hot)
        if outcome is not None:
            return delivered(outcome, replayed=False)

    def spend(session: Session, customer: Customer) -> LedgerResult:
        ensure_active(customer)
        return spend_credits(session, customer, amount, cause=cause)

    return change_credits(
        engine, creator_id=creator_id, customer_id=customer_id, request=request, cause=cause, change=spend
    )


def adjust(
    *,
    creator_id: int,
    customer_id: int,
    delta: int,
    reason: str,
    actor: Actor,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerResult:
    """A creator's manual correction, up (a new lot) or down (spent in the usual order), with a required reason.

    Works on suspended customers too. Taking away more than the balance is refused whole.
    """
    now = now or utcnow()
    if isinstance(delta, bool) or not isinstance(delta, int) or not 1 <= abs(delta) <= MAX_AMOUNT:
        raise InvalidRequest("delta", f"Add or remove a whole number of credits from 1 to {MAX_AMOUNT:,}.")
    reason, expires_at = check_reason(reason, required=True), check_expiry(expires_at, now)
    if delta < 0 and expires_at is not None:
        raise InvalidRequest("expires_at", "Only added credits can expire.")
    cause = Cause("adjustment", actor, reason, now, idempotency_key)

    def correct(session: Session, customer: Customer) -> LedgerResult:
        if delta > 0:
            return add_lot(session, customer, delta, expires_at=expires_at, cause=cause)
        return spend_credits(session, customer, -delta, cause=cause)

    return change_credits(
        engine,
        creator_id=creator_id,
        customer_id=customer_id,
        request={"operation": "adjust", "delta": delta, "reason": reason, "expires_at": iso(expires_at)},
        cause=cause,
        change=correct,
    )


def expire_due_credits(*, now: datetime | None = None, engine: Engine | None = None) -> ExpirySummary:
    """Expire every due lot in the database, one transaction per customer (the operator command)."""
    now = now or utcnow()
    with write_session(engine) as session:
        due = session.exec(
            select(Customer.id, Customer.creator_id)
            .join(CreditLot, CreditLot.customer_id == Customer.id)
            .where(CreditLot.remaining > 0, CreditLot.expires_at <= now)
            .distinct()
        ).all()
    expired: list[LedgerResult] = []
    for customer_id, creator_id in due:
        with write_session(engine) as session:
            customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
            expired += expire_due_lots(session, customer, now=now)
    return ExpirySummary(lots=len(expired), credits=-sum(result.delta for result in expired))


def grant_in_session(
    session: Session,
    customer: Customer,
    *,
    amount: int,
    actor: Actor,
    now: datetime,
    reason: str = "",
    expires_at: datetime | None = None,
    purchase_id: int | None = None,
) -> LedgerResult:
    """Grant credits to a customer locked with `lock_customer`.

    With `purchase_id` the lot is the purchase's (source `purchase`, ledger kind `purchase`) and a
    suspended customer is refused (`CustomerSuspended`); otherwise it is a free grant (`credit`).
    """
    amount, reason, expires_at = check_amount(amount), check_reason(reason), check_expiry(expires_at, now)
    if purchase_id is not None:
        ensure_active(customer)
    kind = "credit" if purchase_id is None else "purchase"
    return add_lot(
        session,
        customer,
        amount,
        expires_at=expires_at,
        purchase_id=purchase_id,
        cause=Cause(kind, actor, reason, now),
    )


def take_back_lot(
    session: Session,
    customer: Customer,
    *,
    lot_id: int,
    actor: Actor,
    now: datetime,
    reason: str = "",
    kind: str = "refund",
) -> LedgerResult | None:
    """Take back what is left of one lot (a refunded or disputed purchase: `kind` `refund` or `dispute`) from a
    customer locked with `lock_customer`, and mark the lot taken back: credits of it that an active hold has
    out now are taken back too when the hold gives them back (`take_back_returned`).

    Returns None, recording nothing, when the lot has nothing left.
    """
    lot = _lot_of(session, customer, lot_id)
    lot.taken_back = kind
    session.add(lot)
    if lot.remaining == 0:
        return None
    return empty_lot(session, customer, lot, cause=Cause(kind, actor, check_reason(reason), now))


def take_back_returned(session: Session, customer: Customer, *, lot_ids: Iterable[int], now: datetime) -> None:
    """Take back at once what a hold just gave back to lots whose credits were taken back (refunded or disputed),
    one entry per lot of the kind that took it (`refund` or `dispute`): a refunded purchase ends holding no
    credits, as an expired lot does (`expire_due_lots`). The caller has recorded the hold's ending first."""
    lot_ids = list(lot_ids)
    if not lot_ids:
        return
    lots = session.exec(
        select(CreditLot)
        .where(CreditLot.id.in_(lot_ids), CreditLot.taken_back.is_not(None), CreditLot.remaining > 0)
        .order_by(CreditLot.id)
        .execution_options(populate_existing=True)
    ).all()
    for lot in lots:
        reason = _TAKEN_BACK_REASONS[lot.taken_back]
        empty_lot(session, customer, lot, cause=Cause(lot.taken_back, SYSTEM, reason, now))


_TAKEN_BACK_REASONS = {
    "refund": "Payment refunded: credits a hold gave back",
    "dispute": "Payment disputed: credits a hold gave back",
}


def give_back_disputed(
    session: Session, customer: Customer, *, lot_id: int, actor: Actor, now: datetime, reason: str = ""
) -> LedgerResult | None:
    """A won dispute: the lot is the customer's again, and what disputes took from it (`dispute` entries, those
    of credits a hold gave back during the dispute included) returns to it, for a customer locked with
    `lock_customer`. Credits a hold captured during the dispute stay spent, as debits made before it do.
    Returns None, recording nothing, when nothing was taken or the lot has expired meanwhile: its credits
    would have expired too.
    """
    lot = _lot_of(session, customer, lot_id)
    if lot.taken_back == "dispute":
        lot.taken_back = None
        session.add(lot)
    amount = min(_lot_disputed_credits(session, lot_id=lot.id), lot.granted - lot.remaining)
    if amount <= 0 or (lot.expires_at is not None and lot.expires_at <= now):
        return None
    lot.remaining += amount
    session.add(lot)
    if lot.expires_at is not None and (customer.next_expiry_at is None or lot.expires_at < customer.next_expiry_at):
        customer.next_expiry_at = lot.expires_at
    return record(session, customer, delta=amount, lot_id=lot.id, cause=Cause("dispute", actor, reason, now))


def _lot_disputed_credits(session: Session, *, lot_id: int) -> int:
    """How many credits disputes took from this lot and have not given back yet."""
    taken = session.exec(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
            LedgerEntry.lot_id == lot_id, LedgerEntry.kind == "dispute"
        )
    ).one()
    return -int(taken)


def _lot_of(session: Session, customer: Customer, lot_id: int) -> CreditLot:
    lot = session.exec(
        select(CreditLot)
        .where(CreditLot.id == lot_id, CreditLot.customer_id == customer.id)
        .execution_options(populate_existing=True)
    ).first()
    if lot is None:
        raise NotFound("No such credit lot.")
    return lot
