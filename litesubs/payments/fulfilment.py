"""Fulfilment: turning a paid Checkout Session into credits exactly once, and a refund into credits taken back.

`fulfil_checkout` is the one way credits are bought. The webhook calls it with a verified event's
session, the success page with a session it retrieved from Stripe, the test-mode Pay button with
our own pending purchase. Whatever the order, number or concurrency of those calls, the buyer
gets the pack's credits once:

- Every call works in one transaction that holds the customer's lock (`ledger.lock_customer`)
  and reads the purchase again after taking it, so a second call sees what the first committed.
- The credit lot references its purchase and `credit_lot.purchase_id` is unique: the database
  refuses a second lot for the same purchase even if everything above were wrong.
- A payment that cannot be honoured as bought (amount or currency differ from the purchase, the
  pack expired before the payment completed, the customer was suspended meanwhile) marks the
  purchase `mismatch`, grants nothing and is logged; the creator refunds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import CreditLot, Customer, Pack, Purchase, User, utcnow
from litesubs.payments.connect import charge_account_of, platform_fee
from litesubs.services import webhooks
from litesubs.services.customers import SUSPENDED, get_or_create_customer_in_session
from litesubs.services.ledger import Actor, grant_in_session, lock_customer, take_back_lot
from litesubs.services.purchase_mail import purchase_paid, purchase_refunded

logger = logging.getLogger(__name__)

TEST_MODE_SESSION_PREFIX = "cs_testmode_"
PENDING, PAID, FAILED, REFUNDED, MISMATCH = "pending", "paid", "failed", "refunded", "mismatch"


@dataclass(frozen=True)
class FulfilmentResult:
    """What one call did with a Stripe object.

    `outcome` is one of: `granted` (credits granted by this call), `already_fulfilled` (an earlier
    call settled it), `unpaid` (the session is not paid: nothing done), `mismatch`, `failed`,
    `refunded`, `partial_refund` (not acted on), `not_ours` (no purchase of ours matches).
    """

    outcome: str
    purchase_id: int | None = None


@dataclass(frozen=True)
class _Order:
    """What a session says was bought, by whom, read from its metadata (which we wrote when creating it)."""

    pack: Pack
    buyer_id: int


# --- Checkout Sessions ----------------------------------------------------------------------


def fulfil_checkout(
    checkout: Mapping[str, Any], *, engine: Engine | None = None, now: datetime | None = None
) -> FulfilmentResult:
    """Grant the credits of a paid Checkout Session, once. `checkout` must come from Stripe (or our test mode)."""
    with write_session(engine) as session:
        return fulfil_checkout_in_session(session, checkout, now=now or utcnow())


def fulfil_checkout_in_session(session: Session, checkout: Mapping[str, Any], *, now: datetime) -> FulfilmentResult:
    """`fulfil_checkout` in the caller's transaction (the webhook records the event id in the same commit)."""
    if checkout.get("payment_status") != "paid":
        return FulfilmentResult("unpaid")
    order = _order_of(session, checkout)
    if order is None:
        logger.warning("Checkout Session %s names no pack and buyer of ours; ignored", checkout.get("id"))
        return FulfilmentResult("not_ours")
    customer = _lock_buyer(session, order, now=now)
    purchase = _purchase_of_session(session, checkout["id"])
    if purchase is not None and purchase.status in (PAID, REFUNDED, MISMATCH):
        return FulfilmentResult("already_fulfilled", purchase.id)
    purchase = purchase or _new_purchase(session, order, checkout["id"])
    purchase.customer_id = customer.id
    purchase.stripe_payment_intent_id = _id_of(checkout.get("payment_intent"))
    problem = _why_not_grantable(checkout, purchase, order.pack, customer, now=now)
    if problem is not None:
        logger.error("Checkout Session %s paid but not granted: %s", checkout["id"], problem)
        _settle(session, purchase, MISMATCH)
        return FulfilmentResult(MISMATCH, purchase.id)
    purchase.paid_at = now
    _settle(session, purchase, PAID)
    grant_in_session(
        session,
        customer,
        amount=purchase.credits,
        actor=_actor(checkout, order.buyer_id),
        now=now,
        reason=f"Bought {order.pack.name}",
        expires_at=order.pack.expires_at,
        purchase_id=purchase.id,
    )
    purchase_paid(session, purchase, customer, now=now)
    _count_purchase(session, customer, credits=purchase.credits, now=now)
    webhooks.purchase_completed(
        session, purchase, customer, pack_public_id=order.pack.public_id, pack_name=order.pack.name
    )
    return FulfilmentResult("granted", purchase.id)


def mark_failed(
    checkout: Mapping[str, Any], *, engine: Engine | None = None, now: datetime | None = None
) -> FulfilmentResult:
    """An asynchronous payment (a bank debit, say) failed: its pending purchase becomes `failed`."""
    with write_session(engine) as session:
        return mark_failed_in_session(session, checkout, now=now or utcnow())


def mark_failed_in_session(session: Session, checkout: Mapping[str, Any], *, now: datetime) -> FulfilmentResult:
    """`mark_failed` in the caller's transaction; a purchase already settled keeps its status."""
    purchase = _purchase_of_session(session, checkout["id"], for_update=True)
    if purchase is None:
        return FulfilmentResult("not_ours")
    if purchase.status != PENDING:
        return FulfilmentResult("already_fulfilled", purchase.id)
    _settle(session, purchase, FAILED)
    return FulfilmentResult(FAILED, purchase.id)


# --- Refunds --------------------------------------------------------------------------------


def refund_charge(
    charge: Mapping[str, Any], *, engine: Engine | None = None, now: datetime | None = None
) -> FulfilmentResult:
    """A fully refunded charge: take back what is left of its purchase's credits and mark it refunded, once."""
    with write_session(engine) as session:
        return refund_charge_in_session(session, charge, now=now or utcnow())


def refund_charge_in_session(session: Session, charge: Mapping[str, Any], *, now: datetime) -> FulfilmentResult:
    """`refund_charge` in the caller's transaction.

    A partial refund is logged and left alone: which credits it should cost is the creator's
    call, made by hand with an adjustment.
    """
    payment_intent_id = _id_of(charge.get("payment_intent"))
    purchase = _purchase_of_payment(session, payment_intent_id)
    if purchase is None:
        logger.warning("Refund of charge %s matches no purchase of ours; ignored", charge.get("id"))
        return FulfilmentResult("not_ours")
    if not charge.get("refunded"):
        logger.warning("Charge %s of purchase %s partly refunded; credits unchanged", charge.get("id"), purchase.id)
        return FulfilmentResult("partial_refund", purchase.id)
    if purchase.customer_id is None:
        logger.warning("Refund of charge %s for purchase %s that never settled; ignored", charge.get("id"), purchase.id)
        return FulfilmentResult("not_settled", purchase.id)
    customer = lock_customer(session, creator_id=purchase.creator_id, customer_id=purchase.customer_id, now=now)
    purchase = _purchase_of_payment(session, payment_intent_id)
    if purchase.status == REFUNDED:
        return FulfilmentResult("already_fulfilled", purchase.id)
    lot_id = session.exec(select(CreditLot.id).where(CreditLot.purchase_id == purchase.id)).first()
    taken_back = None
    if lot_id is not None:
        actor = Actor("stripe", charge.get("id"))
        taken_back = take_back_lot(session, customer, lot_id=lot_id, actor=actor, now=now, reason="Payment refunded")
    if purchase.status == PAID:  # the customer's purchase totals count paid purchases only
        customer.credits_purchased -= purchase.credits
        session.add(customer)
    purchase_refunded(session, purchase, customer, now=now)
    purchase.refunded_at = now
    _settle(session, purchase, REFUNDED)
    webhooks.purchase_refunded(session, purchase, customer, credits_taken_back=-taken_back.delta if taken_back else 0)
    return FulfilmentResult(REFUNDED, purchase.id)


# --- Reading and writing purchases ----------------------------------------------------------


def _order_of(session: Session, checkout: Mapping[str, Any]) -> _Order | None:
    metadata = checkout.get("metadata") or {}
    public_id, buyer_ref = metadata.get("pack_public_id"), str(metadata.get("buyer_id", ""))
    if not public_id or not buyer_ref.isdigit():
        return None
    pack = session.exec(select(Pack).where(Pack.public_id == public_id)).first()
    if pack is None or session.get(User, int(buyer_ref)) is None:
        return None
    return _Order(pack=pack, buyer_id=int(buyer_ref))


def _lock_buyer(session: Session, order: _Order, *, now: datetime) -> Customer:
    """The buyer's customer of the pack's creator (created now if this is their first payment), locked."""
    customer = get_or_create_customer_in_session(session, creator_id=order.pack.creator_id, buyer_id=order.buyer_id)
    return lock_customer(session, creator_id=order.pack.creator_id, customer_id=customer.id, now=now)


def _purchase_of_session(session: Session, session_id: str, *, for_update: bool = False) -> Purchase | None:
    statement = select(Purchase).where(Purchase.stripe_session_id == session_id)
    if for_update:
        statement = statement.with_for_update()
    return session.exec(statement.execution_options(populate_existing=True)).first()


def _purchase_of_payment(session: Session, payment_intent_id: str | None) -> Purchase | None:
    if payment_intent_id is None:
        return None
    statement = select(Purchase).where(Purchase.stripe_payment_intent_id == payment_intent_id)
    return session.exec(statement.execution_options(populate_existing=True)).first()


def _new_purchase(session: Session, order: _Order, session_id: str) -> Purchase:
    """The purchase row for a paid session whose pending row is missing (checkout start failed after Stripe)."""
    pack = order.pack
    account = charge_account_of(session, pack.creator_id)
    return Purchase(
        creator_id=pack.creator_id,
        buyer_id=order.buyer_id,
        pack_id=pack.id,
        amount=pack.price_amount,
        currency=pack.currency,
        credits=pack.credits,
        stripe_session_id=session_id,
        stripe_account_id=account,
        platform_fee=platform_fee(pack.price_amount) if account else 0,
    )


def _settle(session: Session, purchase: Purchase, status: str) -> None:
    purchase.status = status
    session.add(purchase)
    session.flush()


def _count_purchase(session: Session, customer: Customer, *, credits: int, now: datetime) -> None:
    """Keep the customer's purchase totals, on which the creator's customer table sorts and pages."""
    customer.credits_purchased += credits
    customer.first_purchase_at = customer.first_purchase_at or now
    customer.last_purchase_at = now
    session.add(customer)


def _why_not_grantable(
    checkout: Mapping[str, Any], purchase: Purchase, pack: Pack, customer: Customer, *, now: datetime
) -> str | None:
    paid = (checkout.get("amount_total"), str(checkout.get("currency", "")).upper())
    if paid != (purchase.amount, purchase.currency):
        return f"paid {paid[0]} {paid[1]}, expected {purchase.amount} {purchase.currency}"
    if pack.expires_at is not None and pack.expires_at <= now:
        return "the pack expired before the payment completed"
    if customer.status == SUSPENDED:
        return "the customer was suspended before the payment completed"
    return None


def _actor(checkout: Mapping[str, Any], buyer_id: int) -> Actor:
    """Stripe (naming the payment) for real payments; the buyer for the test-mode Pay button."""
    if checkout["id"].startswith(TEST_MODE_SESSION_PREFIX):
        return Actor("buyer", buyer_id)
    return Actor("stripe", _id_of(checkout.get("payment_intent")))


def _id_of(reference: str | Mapping[str, Any] | None) -> str | None:
    """A Stripe reference's id, whether Stripe sent the id or the expanded object."""
    if isinstance(reference, Mapping):
        return reference.get("id")
    return reference
