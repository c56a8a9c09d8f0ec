"""The ledger's rules, each written once: the spending order, which lots a spend takes from and the one
lot it names, when something may be due, and which spends are refused.

Every path that spends uses these: the general path (`transaction`), the PostgreSQL fast path
(`postgres`, whose server-side function follows the same order) and batches (`batching`). Read this
module first to know what a debit does; read the others to see how it gets done fast.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, case, func
from sqlmodel import select

from litesubs.models import CreditLot, Customer
from litesubs.services.customers import ensure_active
from litesubs.services.errors import CustomerSuspended, DomainError, HoldClosed, HoldExceeded, InsufficientCredits

SPENDING_ORDER = (CreditLot.expires_at.asc().nulls_last(), CreditLot.created_at, CreditLot.id)


def lots_to_take(customer_id: int | ColumnElement[int], amount: int | ColumnElement[int]) -> Select:
    """Which open lots a spend of `amount` takes from, and how much from each: rows of (id, take), in spending order.

    Lots are emptied in spending order until `amount` is reached; the caller knows the balance covers it.
    """
    earlier = func.sum(CreditLot.remaining).over(order_by=SPENDING_ORDER, rows=(None, -1))
    lots = (
        select(CreditLot.id, CreditLot.remaining, func.coalesce(earlier, 0).label("earlier"))
        .where(CreditLot.customer_id == customer_id, CreditLot.remaining > 0)
        .subquery("open_lots")
    )
    still_needed = amount - lots.c.earlier
    take = case((lots.c.remaining < still_needed, lots.c.remaining), else_=still_needed)
    return select(lots.c.id, take.label("take")).where(lots.c.earlier < amount).order_by(lots.c.earlier)


def lot_of_each(lots: list[Row], amounts: list[int]) -> list[int | None]:
    """For spends of `amounts`, one after the other, from `lots` (rows of id and take, in spending order, taking
    their sum): the one lot each spend took from, or None where it took from several."""
    left = [lot.take for lot in lots]
    position, single = 0, []
    for amount in amounts:
        touched = []
        while amount > 0:
            taken = min(amount, left[position])
            left[position] -= taken
            amount -= taken
            touched.append(lots[position].id)
            if left[position] == 0:
                position += 1
        single.append(touched[0] if len(touched) == 1 else None)
    return single


def has_due_lots(customer: Customer | Row, now: datetime) -> bool:
    """Whether a lot or hold may be due: `next_expiry_at` is never later than the soonest expiry of a lot holding
    credits or of an active hold."""
    return customer.next_expiry_at is not None and customer.next_expiry_at <= now


# Business refusals: stored with an idempotency key and replayed, unlike malformed requests.
REFUSALS: dict[str, type[DomainError]] = {
    refusal.code: refusal for refusal in (InsufficientCredits, CustomerSuspended, HoldClosed, HoldExceeded)
}


def refusal_of(customer: Row, *, balance: int, amount: int) -> dict[str, Any] | None:
    """The refusal outcome of spending `amount` from a locked customer holding `balance`, or None if it may."""
    try:
        ensure_active(customer)
        if amount > balance:
            raise insufficient(balance, amount)
    except (InsufficientCredits, CustomerSuspended) as refusal:
        return refusal_outcome(refusal)
    return None


def refusal_outcome(refusal: DomainError) -> dict[str, Any]:
    return {"refusal": refusal.code, "message": refusal.message}


def insufficient(balance: int, amount: int) -> InsufficientCredits:
    return InsufficientCredits(f"The customer has {balance:,} credits, fewer than the {amount:,} asked for.")
