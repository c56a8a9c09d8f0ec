"""Fulfilment: turning a paid Checkout Session into credits exactly once, and a refund into credits taken back.

`fulfil_checkout` is the one way credits are bought. The webhook calls it with a verified event's
session, the success page with a session it retrieved from Stripe, the test-mode Pay button with
our own pending purchase. Whatever the order, number or concurrency of those calls, the buyer
gets the pack's credits once:

- Every call works in one transaction that holds the customer's lock (`ledger.lock_customer`)
  and reads the purchase again after taking it, so a second call sees what the first committed.
- The credit lot references its purchase and `credit_lot.purchase_id` is unique: the database
  refuses a second lot for the same purchase even if everything above were wrong.
- A checkout that began while the pack was on sale is honoured even if the pack was disabled or
  expired before the payment landed: the buyer saw it on sale. Credits of a pack that expired
  meanwhile last LATE_PAYMENT_GRACE from the payment, so they can be used.
- A paid checkout that cannot be fulfilled (amount or currency differ from the purchase, the
  checkout began after the pack expired, the customer was suspended meanwhile) grants nothing and
  is refunded through Stripe at once, with an idempotency key of its session: however often it is
  fulfilled again, one refund. The purchase becomes `refunded` with its `refund_reason`, which the
  creator sees on the customer's page. (`mismatch` is what older versions recorded instead.)
- A refund can reach us before the payment's `checkout.session.completed`: the purchase is then
  found through Stripe (the session of the payment) and marked refunded without credits, so the
  late completion grants nothing. The end state does not depend on the order of events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import CreditLot, Customer, Pack, Purchase, User, utcnow
from litesubs.payments.connect import charge_account_of, platform_fee, sale_is_on_account
from litesubs.payments.stripe_gateway import checkout_session_of_payment, refund_payment
from litesubs.services import webhooks
from litesubs.services.customers import SUSPENDED, get_or_create_customer_in_session
from litesubs.services.ledger import Actor, grant_in_session, lock_customer, take_back_lot
from litesubs.services.purchase_mail import purchase_paid, purchase_refunded
from litesubs.settings import get_settings

logger = logging.getLogger(__name__)

TEST_MODE_SESSION_PREFIX = "cs_testmode_"
PENDING, PAID, FAILED, REFUNDED, MISMATCH = "pending", "paid", "failed", "refunded", "mismatch"
LATE_PAYMENT_GRACE = timedelta(days=30)


@dataclass(frozen=True)
class FulfilmentResult:
    """What one call did with a Stripe object.

    `outcome` is one of: `granted` (credits granted by this call), `already_fulfilled` (an earlier
    call settled it), `unpaid` (the session is not paid: nothing done), `refunded_unfulfillable`
    (paid, cannot be fulfilled: refunded through Stripe), `failed`, `refunded`, `partial_refund`
    (not acted on), `not_ours` (no purchase of ours matches), and for disputes `disputed`,
    `dispute_won`, `dispute_lost`.
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


def fulfil_checkout_in_session(
    session: Session, checkout: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> FulfilmentResult:
    """`fulfil_checkout` in the caller's transaction (the webhook records the event id in the same commit).

    `account`, the Stripe account of the event (see `events`), is checked by the gate before this runs."""
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
    purchase = purchase or _new_purchase(session, order, checkout, now=now)
    purchase.customer_id = customer.id
    purchase.stripe_payment_intent_id = _id_of(checkout.get("payment_intent"))
    problem = _why_not_grantable(checkout, purchase, order.pack, customer)
    if problem is not None:
        logger.error("Checkout Session %s paid but not fulfillable, refunding it: %s", checkout["id"], problem)
        _refund_unfulfillable(session, purchase, reason=problem, now=now)
        return FulfilmentResult("refunded_unfulfillable", purchase.id)
    purchase.paid_at = now
    _settle(session, purchase, PAID)
    grant_in_session(
        session,
        customer,
        amount=purchase.credits,
        actor=_actor(checkout, order.buyer_id),
        now=now,
        reason=f"Bought {order.pack.name}",
        expires_at=_lot_expiry(order.pack, now=now),
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


def mark_failed_in_session(
    session: Session, checkout: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> FulfilmentResult:
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


def refund_charge_in_session(
    session: Session, charge: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> FulfilmentResult:
    """`refund_charge` in the caller's transaction; `account` is the Stripe account the refund happened on.

    A partial refund is logged and left alone: which credits it should cost is the creator's
    call, made by hand with an adjustment.
    """
    payment_intent_id = _id_of(charge.get("payment_intent"))
    purchase = _purchase_of_payment(session, payment_intent_id)
    if purchase is None:
        return _refund_before_fulfilment(session, charge, payment_intent_id, now=now, account=account)
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


def _refund_before_fulfilment(
    session: Session, charge: Mapping[str, Any], payment_intent_id: str | None, *, now: datetime, account: str | None
) -> FulfilmentResult:
    """A refund of a payment we have not fulfilled yet: find its checkout through Stripe, mark it refunded.

    The checkout is looked up on the account the refund happened on, and acted on only if its sale belongs
    to that account (`connect.sale_is_on_account`): the session's metadata alone could name anyone's pack.
    The purchase (made now if its pending row is missing) becomes `refunded` with no credits, so the
    `checkout.session.completed` still on its way finds it settled and grants nothing.
    """
    checkout = None
    if payment_intent_id is not None and not get_settings().test_mode:
        checkout = checkout_session_of_payment(payment_intent_id, stripe_account=account)
    order = None if checkout is None else _order_of(session, checkout)
    if order is None:
        logger.warning("Refund of charge %s matches no purchase of ours; ignored", charge.get("id"))
        return FulfilmentResult("not_ours")
    purchase = _purchase_of_session(session, checkout["id"])
    if not sale_is_on_account(session, purchase=purchase, creator_id=order.pack.creator_id, account=account):
        logger.warning(
            "Refund of charge %s on account %s is not that account's sale; ignored", charge.get("id"), account
        )
        return FulfilmentResult("other_account")
    customer = _lock_buyer(session, order, now=now)
    purchase = _purchase_of_session(session, checkout["id"])
    if purchase is not None and purchase.status in (PAID, REFUNDED, MISMATCH):  # settled while we looked
        return refund_charge_in_session(session, charge, now=now, account=account)
    purchase = purchase or _new_purchase(session, order, checkout, now=now)
    if not charge.get("refunded"):
        logger.warning("Charge %s of unfulfilled checkout %s partly refunded", charge.get("id"), checkout["id"])
        return FulfilmentResult("partial_refund", purchase.id)
    purchase.customer_id = customer.id
    purchase.stripe_payment_intent_id = payment_intent_id
    purchase.refunded_at = now
    _settle(session, purchase, REFUNDED)
    return FulfilmentResult(REFUNDED, purchase.id)


def _refund_unfulfillable(session: Session, purchase: Purchase, *, reason: str, now: datetime) -> None:
    """Give the money back for a paid checkout we cannot fulfil: once per checkout, however often we get here.

    The Stripe refund's idempotency key is the checkout's session id, stable across retries even when an
    earlier attempt rolled back. In test mode nothing was charged, so there is nothing to send back.
    """
    if purchase.stripe_payment_intent_id is not None and not get_settings().test_mode:
        refund_payment(
            purchase.stripe_payment_intent_id,
            idempotency_key=f"litesubs-refund-{purchase.stripe_session_id}",
            stripe_account=purchase.stripe_account_id,
        )
    purchase.refund_reason = reason
    purchase.refunded_at = now
    _settle(session, purchase, REFUNDED)


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


def _new_purchase(session: Session, order: _Order, checkout: Mapping[str, Any], *, now: datetime) -> Purchase:
    """The purchase row for a session whose pending row is missing (checkout start failed after Stripe).

    It began when Stripe created the session, and is charged on the account its creator sells on.
    """
    pack = order.pack
    account = charge_account_of(session, pack.creator_id)
    created = checkout.get("created")
    return Purchase(
        creator_id=pack.creator_id,
        buyer_id=order.buyer_id,
        pack_id=pack.id,
        amount=pack.price_amount,
        currency=pack.currency,
        credits=pack.credits,
        stripe_session_id=checkout["id"],
        stripe_account_id=account,
        platform_fee=platform_fee(pack.price_amount) if account else 0,
        created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else now,
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


def _why_not_grantable(checkout: Mapping[str, Any], purchase: Purchase, pack: Pack, customer: Customer) -> str | None:
    """Why this paid checkout cannot be fulfilled, in words for the creator; None when it can.

    Only what the buyer saw counts: a pack disabled or expired after the checkout began is honoured.
    """
    paid = (checkout.get("amount_total"), str(checkout.get("currency", "")).upper())
    if paid != (purchase.amount, purchase.currency):
        return f"Paid {paid[0]} {paid[1]} where the pack costs {purchase.amount} {purchase.currency}."
    if pack.expires_at is not None and pack.expires_at <= purchase.created_at:
        return "The checkout began after the pack had expired."
    if customer.status == SUSPENDED:
        return "The customer was suspended before the payment completed."
    return None


def _lot_expiry(pack: Pack, *, now: datetime) -> datetime | None:
    """The pack's expiry for its credits; if the pack expired while its buyer was paying, LATE_PAYMENT_GRACE."""
    if pack.expires_at is None or pack.expires_at > now:
        return pack.expires_at
    return now + LATE_PAYMENT_GRACE


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
