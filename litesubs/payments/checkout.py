"""Buying a pack: who may buy, starting a checkout (Stripe or test mode), and what the buyer sees afterwards.

Starting a checkout records a `pending` purchase under the session id, in both modes, so the
success page and the test-mode checkout page can find it. Credits come only from
`fulfilment.fulfil_checkout`: the webhook, the success page (with a session it retrieved from
Stripe) and the test-mode Pay button all end there.

Every function that takes a session id also takes the signed-in buyer and answers `NotFound` for
anyone else's checkout: session ids travel in URLs and must not reveal another buyer's purchase.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs import routes
from litesubs.db import read_session, write_session
from litesubs.models import Customer, Pack, Purchase, User, utcnow
from litesubs.payments import connect
from litesubs.payments.fulfilment import TEST_MODE_SESSION_PREFIX, fulfil_checkout
from litesubs.payments.stripe_gateway import create_checkout_session, retrieve_checkout_session
from litesubs.services import rate_limits
from litesubs.services.customers import SUSPENDED
from litesubs.services.errors import CustomerSuspended, DomainError, NotFound, OwnPack, PackUnavailable
from litesubs.services.ledger import get_balance
from litesubs.services.packs import PublicPack, public_pack
from litesubs.settings import get_settings

NO_SUCH_CHECKOUT = "This checkout does not exist."
CHECKOUTS_PER_BUYER = 10  # per rate_limits.WINDOW (a minute): each Stripe checkout costs a call to Stripe


@dataclass(frozen=True)
class CheckoutSummary:
    """One checkout as its buyer sees it: on the test-mode checkout page and on the success page.

    `status` is the purchase's: pending, paid, failed, refunded or mismatch (paid but not granted:
    the creator has to look at it). `balance` is the buyer's balance with this creator now.
    """

    session_id: str
    status: str
    pack_public_id: str
    pack_name: str
    creator_name: str
    amount: int
    currency: str
    credits: int
    balance: int


# --- Who may buy ----------------------------------------------------------------------------


def purchase_blocker(*, buyer_id: int | None, pack: PublicPack, engine: Engine | None = None) -> str | None:
    """Why this buyer cannot buy this pack now, as the message to show; None when they can.

    A visitor who is not signed in (`buyer_id=None`) is only stopped by the pack's own state.
    """
    refusal = _refusal(buyer_id=buyer_id, pack=pack, engine=engine)
    return None if refusal is None else refusal.message


def _refusal(*, buyer_id: int | None, pack: PublicPack, engine: Engine | None) -> DomainError | None:
    if pack.status == "disabled":
        return PackUnavailable("This pack is not on sale right now.")
    if pack.status == "expired":
        return PackUnavailable("This pack has expired, so it can no longer be bought.")
    if not connect.creator_can_sell(creator_id=pack.creator_id, engine=engine):
        return PackUnavailable(connect.CANNOT_SELL_YET)
    if buyer_id is None:
        return None
    if buyer_id == pack.creator_id:
        return OwnPack("This is your own pack.")
    if _customer_status(engine, creator_id=pack.creator_id, buyer_id=buyer_id) == SUSPENDED:
        return CustomerSuspended("You can't buy from this creator right now.")
    return None


def _customer_status(engine: Engine | None, *, creator_id: int, buyer_id: int) -> str | None:
    statement = select(Customer.status).where(Customer.creator_id == creator_id, Customer.buyer_id == buyer_id)
    with read_session(engine) as session:
        return session.exec(statement).first()


# --- Starting a checkout --------------------------------------------------------------------


def start_checkout(*, buyer_id: int, public_id: str, engine: Engine | None = None, now: datetime | None = None) -> str:
    """Open a checkout for the pack and return the URL to send the buyer to.

    Stripe mode: a Stripe Checkout Session's page. Test mode: our own checkout page. Raises
    `NotFound`, `PackUnavailable`, `OwnPack`, `CustomerSuspended`, `RateLimited` (more than CHECKOUTS_PER_BUYER
    a minute) or (Stripe down) `PaymentUnavailable`.
    """
    now = now or utcnow()
    offer = public_pack(public_id=public_id, engine=engine, now=now)
    refusal = _refusal(buyer_id=buyer_id, pack=offer, engine=engine)
    if refusal is not None:
        raise refusal
    limit = rate_limits.Limit(rate_limits.limit_key("checkout-buyer", str(buyer_id)), CHECKOUTS_PER_BUYER)
    rate_limits.reserve([limit], action="checkouts started", now=now, engine=engine)
    settings = get_settings()
    with read_session(engine) as session:
        account = connect.charge_account_of(session, offer.creator_id)
    charge = _Charge(account, fee=connect.platform_fee(offer.price_amount))
    if settings.test_mode:
        session_id = TEST_MODE_SESSION_PREFIX + secrets.token_urlsafe(24)
        url = f"{settings.base_url}{routes.CHECKOUT}/{session_id}"
    else:
        checkout = _stripe_checkout(offer, buyer_id=buyer_id, charge=charge, engine=engine)
        session_id, url = checkout["id"], checkout["url"]
    _record_pending_purchase(engine, offer, buyer_id=buyer_id, session_id=session_id, charge=charge, now=now)
    return url


@dataclass(frozen=True)
class _Charge:
    """Where a sale is charged: the creator's connected account in platform mode (None: the instance's own),
    and the platform's fee on it in minor units."""

    account: str | None
    fee: int = 0


def _stripe_checkout(offer: PublicPack, *, buyer_id: int, charge: _Charge, engine: Engine | None) -> dict[str, Any]:
    base_url = get_settings().base_url
    with read_session(engine) as session:
        buyer = session.get(User, buyer_id)
    if buyer is None:
        raise NotFound("No such buyer.")
    return create_checkout_session(
        product_name=offer.name,
        product_description=f"{offer.credits:,} credits from {offer.creator_name}",
        amount=offer.price_amount,
        currency=offer.currency,
        buyer_id=buyer_id,
        buyer_email=buyer.email,
        pack_public_id=offer.public_id,
        success_url=f"{base_url}{routes.CHECKOUT_SUCCESS}?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base_url}{routes.BUY}/{offer.public_id}",
        stripe_account=charge.account,
        application_fee_amount=charge.fee or None,
    )


def _record_pending_purchase(
    engine: Engine | None, offer: PublicPack, *, buyer_id: int, session_id: str, charge: _Charge, now: datetime
) -> None:
    """The purchase on the terms the buyer was shown (and Stripe charges), pending until fulfilment.

    Its `created_at` is when the checkout began: fulfilment honours what was on sale at that moment.
    """
    with write_session(engine) as session:
        pack_id = session.exec(select(Pack.id).where(Pack.public_id == offer.public_id)).one()
        session.add(
            Purchase(
                creator_id=offer.creator_id,
                buyer_id=buyer_id,
                pack_id=pack_id,
                amount=offer.price_amount,
                currency=offer.currency,
                credits=offer.credits,
                stripe_session_id=session_id,
                stripe_account_id=charge.account,
                platform_fee=charge.fee,
                created_at=now,
            )
        )


# --- After the checkout ---------------------------------------------------------------------


def fulfil_session_id(
    *, buyer_id: int, session_id: str, engine: Engine | None = None, now: datetime | None = None
) -> CheckoutSummary:
    """For the success page: settle the buyer's checkout if it is paid, then show it with the new balance.

    Stripe mode retrieves the session from Stripe (never trusting the URL beyond its id), from the
    account it was created on, and fulfils it, so credits arrive even before the webhook. Test mode
    only reads our purchase: there, credits come from the Pay button.
    """
    if not get_settings().test_mode:
        checkout = retrieve_checkout_session(session_id, stripe_account=_account_charged(engine, buyer_id, session_id))
        if str((checkout.get("metadata") or {}).get("buyer_id")) != str(buyer_id):
            raise NotFound(NO_SUCH_CHECKOUT)
        fulfil_checkout(checkout, engine=engine, now=now)
    return _summary(engine, buyer_id=buyer_id, session_id=session_id, now=now)


def _account_charged(engine: Engine | None, buyer_id: int, session_id: str) -> str | None:
    """The connected account the buyer's checkout was created on (None: the instance's own account)."""
    statement = select(Purchase.stripe_account_id).where(
        Purchase.stripe_session_id == session_id, Purchase.buyer_id == buyer_id
    )
    with read_session(engine) as session:
        return session.exec(statement).first()


def get_test_checkout(
    *, buyer_id: int, session_id: str, engine: Engine | None = None, now: datetime | None = None
) -> CheckoutSummary:
    """What the test-mode checkout page shows; `NotFound` outside test mode and for anyone but the buyer."""
    _require_test_checkout(session_id)
    return _summary(engine, buyer_id=buyer_id, session_id=session_id, now=now)


def pay_test_checkout(
    *, buyer_id: int, session_id: str, engine: Engine | None = None, now: datetime | None = None
) -> CheckoutSummary:
    """Test mode's Pay button: fulfil the buyer's checkout exactly as a paid Stripe session would be."""
    _require_test_checkout(session_id)
    with read_session(engine) as session:
        purchase, pack = _owned_purchase(session, buyer_id=buyer_id, session_id=session_id)
    fulfil_checkout(
        {
            "id": session_id,
            "payment_status": "paid",
            "amount_total": purchase.amount,
            "currency": purchase.currency.lower(),
            "client_reference_id": str(buyer_id),
            "metadata": {"pack_public_id": pack.public_id, "buyer_id": str(buyer_id)},
            "payment_intent": None,
        },
        engine=engine,
        now=now,
    )
    return _summary(engine, buyer_id=buyer_id, session_id=session_id, now=now)


def cancel_test_checkout(*, buyer_id: int, session_id: str, engine: Engine | None = None) -> str:
    """Test mode's Cancel button: returns the pack's public id to go back to.

    The purchase stays pending, as a Stripe session stays open when its buyer leaves it: nothing
    was charged, and the wallet does not list pending purchases.
    """
    _require_test_checkout(session_id)
    with read_session(engine) as session:
        _purchase, pack = _owned_purchase(session, buyer_id=buyer_id, session_id=session_id)
    return pack.public_id


def _require_test_checkout(session_id: str) -> None:
    if not get_settings().test_mode or not session_id.startswith(TEST_MODE_SESSION_PREFIX):
        raise NotFound(NO_SUCH_CHECKOUT)


def _owned_purchase(session: Session, *, buyer_id: int, session_id: str) -> tuple[Purchase, Pack]:
    row = session.exec(
        select(Purchase, Pack)
        .join(Pack, Pack.id == Purchase.pack_id)
        .where(Purchase.stripe_session_id == session_id, Purchase.buyer_id == buyer_id)
    ).first()
    if row is None:
        raise NotFound(NO_SUCH_CHECKOUT)
    return row


def _summary(engine: Engine | None, *, buyer_id: int, session_id: str, now: datetime | None) -> CheckoutSummary:
    with read_session(engine) as session:
        purchase, pack = _owned_purchase(session, buyer_id=buyer_id, session_id=session_id)
        creator_name = session.get(User, purchase.creator_id).name
    balance = 0
    if purchase.customer_id is not None:
        account = get_balance(creator_id=purchase.creator_id, customer_id=purchase.customer_id, now=now, engine=engine)
        balance = account.balance
    return CheckoutSummary(
        session_id=session_id,
        status=purchase.status,
        pack_public_id=pack.public_id,
        pack_name=pack.name,
        creator_name=creator_name,
        amount=purchase.amount,
        currency=purchase.currency,
        credits=purchase.credits,
        balance=balance,
    )
