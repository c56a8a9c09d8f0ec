"""Disputes (chargebacks): a disputed purchase's credits are taken back at once and return if the creator wins.

`charge.dispute.created` takes back what is left of the purchase's credits (ledger kind `dispute`,
with Stripe's reason), so a buyer cannot spend credits whose money is being pulled back.
`charge.dispute.closed` with status `won` gives back what the dispute took, into the same lot, unless
that lot has expired meanwhile. Credits an active hold had out of the lot when the dispute opened stay
held: a capture spends them (they were reserved before the dispute, like a debit made before it), and
what the hold gives back is taken at once with another `dispute` entry, so a won dispute returns it too
(`ledger.take_back_lot`, `ledger.take_back_returned`, `ledger.give_back_disputed`). Each event is
applied once (see `events`), and a repeated `closed` finds nothing left to give back. The creator sees
both entries in the customer's ledger.

A dispute finds its purchase by payment intent, as the account gate (`connect.event_is_from_its_account`)
does, so a dispute from another creator's connected account never reaches these handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, Purchase
from litesubs.payments.fulfilment import FulfilmentResult
from litesubs.services.ledger import Actor, give_back_disputed, lock_customer, take_back_lot

logger = logging.getLogger(__name__)


def open_dispute_in_session(
    session: Session, dispute: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> FulfilmentResult:
    """`charge.dispute.created`: take back the remaining credits of the disputed purchase."""
    found = _disputed_lot(session, dispute, now=now)
    if found is None:
        return FulfilmentResult("not_ours")
    purchase, customer, lot_id = found
    if lot_id is not None:
        reason = f"Payment disputed: {_reason(dispute)}"
        take_back_lot(session, customer, lot_id=lot_id, actor=_actor(dispute), now=now, reason=reason, kind="dispute")
    return FulfilmentResult("disputed", purchase.id)


def close_dispute_in_session(
    session: Session, dispute: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> FulfilmentResult:
    """`charge.dispute.closed`: when the creator won, give back what the dispute took; otherwise nothing changes."""
    found = _disputed_lot(session, dispute, now=now)
    if found is None:
        return FulfilmentResult("not_ours")
    purchase, customer, lot_id = found
    if dispute.get("status") != "won":
        return FulfilmentResult("dispute_lost", purchase.id)
    if lot_id is not None:
        give_back_disputed(session, customer, lot_id=lot_id, actor=_actor(dispute), now=now, reason="Dispute won")
    return FulfilmentResult("dispute_won", purchase.id)


def _disputed_lot(
    session: Session, dispute: Mapping[str, Any], *, now: datetime
) -> tuple[Purchase, Customer, int | None] | None:
    """The disputed purchase, its customer (locked) and its credit lot (None if it never granted one)."""
    payment_intent = dispute.get("payment_intent")
    payment_intent_id = payment_intent.get("id") if isinstance(payment_intent, Mapping) else payment_intent
    purchase = None
    if payment_intent_id is not None:
        purchase = session.exec(select(Purchase).where(Purchase.stripe_payment_intent_id == payment_intent_id)).first()
    if purchase is None or purchase.customer_id is None:
        logger.warning("Dispute %s matches no settled purchase of ours; ignored", dispute.get("id"))
        return None
    customer = lock_customer(session, creator_id=purchase.creator_id, customer_id=purchase.customer_id, now=now)
    lot_id = session.exec(select(CreditLot.id).where(CreditLot.purchase_id == purchase.id)).first()
    return purchase, customer, lot_id


def _reason(dispute: Mapping[str, Any]) -> str:
    """Stripe's reason code in words: `product_not_received` -> 'product not received'."""
    reason = dispute.get("reason")
    return reason.replace("_", " ") if isinstance(reason, str) and reason else "no reason given"


def _actor(dispute: Mapping[str, Any]) -> Actor:
    return Actor("stripe", dispute.get("id"))
