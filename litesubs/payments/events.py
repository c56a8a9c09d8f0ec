"""Verified Stripe events: each handled at most once, its id recorded in the same commit as its effect.

The event id is inserted into `stripe_event` first, inside the transaction that then applies the
event. A redelivery finds the id (a concurrent one waits on the primary key until the first
commits) and does nothing. If applying the event fails, the whole transaction rolls back, the id
with it, so Stripe's retry is processed rather than swallowed.

Before acting, `connect.event_is_from_its_account` checks the event came from the Stripe account its
object belongs to (platform mode: the purchase's creator's connected account); otherwise the event
is recorded and ignored (`other_account`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from litesubs.db import write_session
from litesubs.models import StripeEvent, utcnow
from litesubs.payments.connect import account_updated_in_session, event_is_from_its_account
from litesubs.payments.fulfilment import (
    fulfil_checkout_in_session,
    mark_failed_in_session,
    refund_charge_in_session,
)

logger = logging.getLogger(__name__)

HANDLERS = {
    "checkout.session.completed": fulfil_checkout_in_session,
    "checkout.session.async_payment_succeeded": fulfil_checkout_in_session,
    "checkout.session.async_payment_failed": mark_failed_in_session,
    "charge.refunded": refund_charge_in_session,
    "account.updated": account_updated_in_session,
}


def handle_event(event: Mapping[str, Any], *, engine: Engine | None = None, now: datetime | None = None) -> str:
    """Apply a verified event once; returns what happened: the handler's outcome, `duplicate` or `ignored`."""
    handler = HANDLERS.get(event["type"])
    if handler is None:
        return "ignored"
    now = now or utcnow()
    with write_session(engine) as session:
        if not _record_event(session, event, now=now):
            return "duplicate"
        if not event_is_from_its_account(session, event):
            logger.warning(
                "Event %s from account %s is not about that account's sales; ignored", event["id"], event.get("account")
            )
            return "other_account"
        return handler(session, event["data"]["object"], now=now).outcome


def _record_event(session: Session, event: Mapping[str, Any], *, now: datetime) -> bool:
    """Insert the event id in the caller's transaction; False when it was already processed."""
    try:
        with session.begin_nested():
            session.add(StripeEvent(id=event["id"], type=event["type"], created_at=now))
    except IntegrityError:
        return False
    return True
