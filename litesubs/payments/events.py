"""Verified Stripe events: each handled at most once, its id recorded in the same commit as its effect.

The event id is inserted into `stripe_event` first, inside the transaction that then applies the
event. A redelivery finds the id (a concurrent one waits on the primary key until the first
commits) and does nothing. If applying the event fails, the whole transaction rolls back, the id
with it, so Stripe's retry is processed rather than swallowed.

Before acting, `connect.event_is_from_its_account` checks the event came from the Stripe account its
object belongs to (platform mode: the purchase's creator's connected account); otherwise the event
is recorded and ignored (`other_account`). Every handler is given that account (`account`, None for
the platform's own events): one that asks Stripe about the object asks on it, and one that finds its
purchase another way than the gate checks it with `connect.sale_is_on_account`.
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
from litesubs.payments.disputes import close_dispute_in_session, open_dispute_in_session
from litesubs.payments.fulfilment import (
    fulfil_checkout_in_session,
    mark_failed_in_session,
    refund_charge_in_session,
)
from litesubs.services.errors import MalformedEvent

logger = logging.getLogger(__name__)

HANDLERS = {
    "checkout.session.completed": fulfil_checkout_in_session,
    "checkout.session.async_payment_succeeded": fulfil_checkout_in_session,
    "checkout.session.async_payment_failed": mark_failed_in_session,
    "charge.refunded": refund_charge_in_session,
    "account.updated": account_updated_in_session,
    "charge.dispute.created": open_dispute_in_session,
    "charge.dispute.closed": close_dispute_in_session,
}


def handle_event(event: Mapping[str, Any], *, engine: Engine | None = None, now: datetime | None = None) -> str:
    """Apply a verified event once; returns what happened: the handler's outcome, `duplicate` or `ignored`.

    Raises `MalformedEvent` (logged) for an event without the shape its type promises: answered 400, so a
    correctly signed but unexpected body never becomes a 500 that Stripe retries for days.
    """
    handler = HANDLERS.get(_text(event, "type"))
    if handler is None:
        return "ignored"
    data_object = _object_of(event)
    now = now or utcnow()
    with write_session(engine) as session:
        if not _record_event(session, event, now=now):
            return "duplicate"
        if not event_is_from_its_account(session, event):
            logger.warning(
                "Event %s from account %s is not about that account's sales; ignored", event["id"], event.get("account")
            )
            return "other_account"
        return handler(session, data_object, now=now, account=event.get("account")).outcome


def _object_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's `data.object`, checked for what every handler relies on: ids that are text."""
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, Mapping) else None
    problem = None
    if _text(event, "id") is None:
        problem = "no event id"
    elif not isinstance(data_object, Mapping):
        problem = "no data.object"
    elif _text(data_object, "id") is None:
        problem = "data.object has no id"
    if problem is not None:
        logger.warning("Stripe event %r of type %s ignored: %s", event.get("id"), event.get("type"), problem)
        raise MalformedEvent(f"The {event.get('type')} event has {problem}.")
    return data_object


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


def _record_event(session: Session, event: Mapping[str, Any], *, now: datetime) -> bool:
    """Insert the event id in the caller's transaction; False when it was already processed."""
    try:
        with session.begin_nested():
            session.add(StripeEvent(id=event["id"], type=event["type"], created_at=now))
    except IntegrityError:
        return False
    return True
