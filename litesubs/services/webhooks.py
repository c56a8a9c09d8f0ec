"""Outgoing webhooks: a creator's endpoints, and the events that tell their software what happened.

The rules:

- An event (`webhook_event`) is written in the same transaction as the change it reports: a crash
  never loses one, a change that rolled back never sends one. The worker then dispatches it
  (`dispatch_events`: one outbox message per enabled endpoint subscribed to its type at that moment,
  in one transaction with marking it dispatched) and delivers the messages (`webhook_delivery`).
  So a change writes one row, however many endpoints there are, and the debit's fast path does it
  inside its own server-side call (`debited_event_around_balance`).
- Events are kept for every creator, endpoint or not (the API lists them for catching up), except
  `credits.debited`, the high-volume one: written only while an enabled endpoint subscribes to it.
  Whether one does, and the creator's low-balance threshold, are read by the debit's own row-lock
  statement (`watch_columns`), so debits without subscribers cost nothing more.
- `credits.low` is sent when a change takes a balance from at or above the creator's threshold to
  below it (once per crossing); `credits.depleted` when a change takes a balance to 0.
- Every function that changes endpoints takes the creator and checks ownership (`NotFound` otherwise).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    String,
    bindparam,
    exists,
    insert,
    literal,
    not_,
    text,
    update,
)
from sqlmodel import Session, delete, select

from litesubs.db import get_engine, is_sqlite, read_session, write_session
from litesubs.models import (
    Customer,
    OutboxMessage,
    Purchase,
    User,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSettings,
    utcnow,
)
from litesubs.services import outbox
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.low_balance_mail import queue_low_balance_mail
from litesubs.services.url_safety import resolve_safe
from litesubs.settings import get_settings

PAYLOAD_VERSION = "2026-12-01"
WEBHOOK_KIND = "webhook"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every signing secret, not a secret
SECRET_BYTES = 32
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 10
MAX_PAGE_SIZE = 100
MAX_THRESHOLD = 1_000_000_000
MAX_ID = 2**31 - 1  # ids are 32-bit integers
DISPATCH_BATCH = 500

# The types an endpoint may subscribe to, with what each means (shown on the dashboard).
EVENT_TYPES: dict[str, str] = {
    "purchase.completed": "A buyer paid for a pack and got its credits.",
    "purchase.refunded": "A payment was refunded and its remaining credits taken back.",
    "credits.granted": "Free credits were granted (by hand or through the API).",
    "credits.debited": "Credits were spent. High volume: off unless you choose it.",
    "credits.adjusted": "You corrected a balance by hand.",
    "credits.expired": "Credits expired unused.",
    "credits.low": "A balance fell below your low-balance threshold.",
    "credits.depleted": "A balance reached 0.",
    "customer.suspended": "You suspended a customer.",
    "customer.reactivated": "You lifted a customer's suspension.",
}
TEST_EVENT = "webhook.test"
ALL_EVENT_TYPES = (*EVENT_TYPES, TEST_EVENT)
DEFAULT_EVENT_TYPES = tuple(name for name in EVENT_TYPES if name != "credits.debited")
# The ledger entry kinds that are events of their own; purchases and refunds are told by `purchase.*`.
_CREDIT_EVENTS = {
    "credit": "credits.granted",
    "debit": "credits.debited",
    "adjustment": "credits.adjusted",
    "expiry": "credits.expired",
    "capture": "credits.debited",  # a hold's capture spends; placing and releasing a hold spend nothing
}


# --- Endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliverySummary:
    """One delivery of an event to an endpoint, as the dashboard lists it."""

    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_response: str | None
    last_error: str | None
    next_attempt_at: datetime | None


def create_endpoint(
    *,
    creator_id: int,
    url: str,
    event_types: Sequence[str] | None = None,
    allow_local: bool | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> WebhookEndpoint:
    """A new enabled endpoint with a fresh signing secret; the URL must resolve to public addresses only."""
    allow_local = get_settings().allow_http_webhooks if allow_local is None else allow_local
    target = resolve_safe(url, allow_local=allow_local)
    types = _check_event_types(DEFAULT_EVENT_TYPES if event_types is None else event_types)
    now = now or utcnow()
    with write_session(engine) as session:
        count = len(session.exec(select(WebhookEndpoint.id).where(WebhookEndpoint.creator_id == creator_id)).all())
        if count >= MAX_ENDPOINTS:
            raise InvalidRequest("url", f"You can have up to {MAX_ENDPOINTS} endpoints; delete one first.")
        endpoint = WebhookEndpoint(
            creator_id=creator_id,
            url=target.url,
            event_types=_joined(types),
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
    return endpoint


def list_endpoints(*, creator_id: int, engine: Engine | None = None) -> list[WebhookEndpoint]:
    """The creator's endpoints, oldest first."""
    with read_session(engine) as session:
        return list(
            session.exec(
                select(WebhookEndpoint).where(WebhookEndpoint.creator_id == creator_id).order_by(WebhookEndpoint.id)
            )
        )


def event_types_of(endpoint: WebhookEndpoint) -> list[str]:
    return [name for name in endpoint.event_types.split(",") if name]


def set_event_types(
    *, creator_id: int, endpoint_id: int, event_types: Sequence[str], engine: Engine | None = None
) -> WebhookEndpoint:
    """Which event types the endpoint receives from now on (events already dispatched keep their deliveries)."""
    types = _check_event_types(event_types)
    with write_session(engine) as session:
        endpoint = _own_endpoint(session, creator_id, endpoint_id)
        endpoint.event_types, endpoint.updated_at = _joined(types), utcnow()
        session.add(endpoint)
    return endpoint


def rotate_secret(
    *, creator_id: int, endpoint_id: int, now: datetime | None = None, engine: Engine | None = None
) -> WebhookEndpoint:
    """A new signing secret; the old one keeps signing too for 24 hours, so receivers can switch without a gap."""
    now = now or utcnow()
    with write_session(engine) as session:
        endpoint = _own_endpoint(session, creator_id, endpoint_id)
        endpoint.previous_secret, endpoint.secret = endpoint.secret, new_secret()
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.updated_at = now
        session.add(endpoint)
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during its overlap."""
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def set_enabled(
    *, creator_id: int, endpoint_id: int, enabled: bool, now: datetime | None = None, engine: Engine | None = None
) -> WebhookEndpoint:
    """Disable (pending deliveries are cancelled) or enable again (with a clean failure streak)."""
    now = now or utcnow()
    with write_session(engine) as session:
        endpoint = _own_endpoint(session, creator_id, endpoint_id)
        if enabled:
            endpoint.enabled, endpoint.disabled_reason = True, None
            endpoint.failing_since, endpoint.failed_deliveries = None, 0
        else:
            disable_in_session(session, endpoint, reason="Disabled by you.", now=now)
        endpoint.updated_at = now
        session.add(endpoint)
    return endpoint


def disable_in_session(session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    """Disable a locked endpoint, saying why, and cancel its pending deliveries."""
    endpoint.enabled, endpoint.disabled_reason, endpoint.updated_at = False, reason, now
    session.add(endpoint)
    outbox.cancel_pending(session, OutboxMessage.webhook_endpoint_id == endpoint.id, reason="Endpoint disabled.")


def delete_endpoint(*, creator_id: int, endpoint_id: int, engine: Engine | None = None) -> WebhookEndpoint:
    """Delete the endpoint and its deliveries; the events stay (the API still lists them)."""
    with write_session(engine) as session:
        endpoint = _own_endpoint(session, creator_id, endpoint_id)
        session.exec(delete(OutboxMessage).where(OutboxMessage.webhook_endpoint_id == endpoint.id))
        session.delete(endpoint)
    return endpoint


def send_test_event(
    *, creator_id: int, endpoint_id: int, now: datetime | None = None, engine: Engine | None = None
) -> WebhookEvent:
    """A `webhook.test` event delivered to this endpoint only (even if disabled for other types)."""
    now = now or utcnow()
    with write_session(engine) as session:
        endpoint = _own_endpoint(session, creator_id, endpoint_id)
        if not endpoint.enabled:
            raise InvalidRequest("endpoint", "Enable the endpoint before sending it a test event.")
        data = {"endpoint_id": endpoint.id, "message": "Hello from Litesubs."}
        event = WebhookEvent(**_event_row(creator_id, TEST_EVENT, data, now=now), dispatched=True)  # for it alone
        session.add(event)
        session.flush()
        _deliver_to(session, event_id=event.id, endpoint_id=endpoint.id, now=now)
    return event


def resend(*, creator_id: int, delivery_id: int, now: datetime | None = None, engine: Engine | None = None) -> None:
    """Deliver a delivery's event to its endpoint again (also after a success), with the same `webhook-id`."""
    now = now or utcnow()
    with write_session(engine) as session:
        message = session.get(OutboxMessage, delivery_id) if _is_id(delivery_id) else None
        endpoint = None
        if message is not None and message.kind == WEBHOOK_KIND and message.webhook_endpoint_id is not None:
            endpoint = session.exec(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.id == message.webhook_endpoint_id, WebhookEndpoint.creator_id == creator_id
                )
            ).first()
        if endpoint is None:
            raise NotFound("No such delivery.")
        if not endpoint.enabled:
            raise InvalidRequest("endpoint", "Enable the endpoint before resending to it.")
        _deliver_to(session, event_id=message.webhook_event_id, endpoint_id=endpoint.id, now=now)


def list_deliveries(
    *, creator_id: int, endpoint_id: int, limit: int = 10, engine: Engine | None = None
) -> list[DeliverySummary]:
    """The endpoint's most recent deliveries, newest first."""
    with read_session(engine) as session:
        _own_endpoint(session, creator_id, endpoint_id, lock=False)
        rows = session.exec(
            select(OutboxMessage, WebhookEvent.type)
            .join(WebhookEvent, WebhookEvent.id == OutboxMessage.webhook_event_id)
            .where(OutboxMessage.webhook_endpoint_id == endpoint_id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        ).all()
    return [
        DeliverySummary(
            id=message.id,
            event_id=f"evt_{message.webhook_event_id}",
            event_type=event_type,
            status=message.status,
            attempts=message.attempts,
            created_at=message.created_at,
            last_attempt_at=message.last_attempt_at,
            last_status_code=message.last_status_code,
            last_response=message.last_response,
            last_error=message.last_error,
            next_attempt_at=message.next_attempt_at if message.status == outbox.PENDING else None,
        )
        for message, event_type in rows
    ]


def new_secret() -> str:
    """`whsec_` and the base64 of 32 random bytes, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _own_endpoint(session: Session, creator_id: int, endpoint_id: int, *, lock: bool = True) -> WebhookEndpoint:
    """The creator's endpoint (locked for a change), or `NotFound`: also for another creator's."""
    if not _is_id(endpoint_id):
        raise NotFound("No such webhook endpoint.")
    statement = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.creator_id == creator_id
    )
    endpoint = session.exec(statement.with_for_update() if lock else statement).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def _is_id(value: object) -> bool:
    """A row id the databases can compare (a browser may send any number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _check_event_types(event_types: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(event_types))
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest("event_types", f"Unknown event type: {unknown[0]}.")
    if not chosen:
        raise InvalidRequest("event_types", "Choose at least one event type.")
    return chosen


def _joined(event_types: Sequence[str]) -> str:
    return "," + ",".join(event_types) + ","


# --- Settings -------------------------------------------------------------------------------


def low_balance_threshold(*, creator_id: int, engine: Engine | None = None) -> int | None:
    with read_session(engine) as session:
        settings = session.get(WebhookSettings, creator_id)
    return None if settings is None else settings.credits_low_threshold


def set_low_balance_threshold(
    *, creator_id: int, threshold: int | None, now: datetime | None = None, engine: Engine | None = None
) -> None:
    """`credits.low` is sent when a balance falls below `threshold` credits (None: never)."""
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= MAX_THRESHOLD
    ):
        raise InvalidRequest(
            "threshold", f"Enter a whole number of credits from 1 to {MAX_THRESHOLD:,}, or leave it empty."
        )
    with write_session(engine) as session:
        settings = session.get(WebhookSettings, creator_id) or WebhookSettings(creator_id=creator_id)
        settings.credits_low_threshold, settings.updated_at = threshold, now or utcnow()
        session.add(settings)


# --- Events, written in the transaction of the change ---------------------------------------


@dataclass(frozen=True)
class Watch:
    """What the creator's webhooks want of a debit: `credits.debited` at all, and the low-balance threshold."""

    sends_debits: bool
    low_threshold: int | None

    @classmethod
    def of(cls, row: Any) -> Watch:
        """From a row that selected `watch_columns`."""
        return cls(bool(row.webhook_sends_debits), row.webhook_low_threshold)


def watch_columns(creator_id: ColumnElement[int]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Two columns for a statement that locks a customer of `creator_id`, read by `Watch.of`: one index probe each."""
    sends_debits = exists().where(
        WebhookEndpoint.creator_id == creator_id,
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.event_types.like("%,credits.debited,%"),
    )
    threshold = (
        select(WebhookSettings.credits_low_threshold).where(WebhookSettings.creator_id == creator_id).scalar_subquery()
    )
    return sends_debits.label("webhook_sends_debits"), threshold.label("webhook_low_threshold")


_WATCH = select(*watch_columns(bindparam("creator_id", type_=Integer)))


@dataclass(frozen=True)
class Captured:
    """What a hold's capture spent. Its ledger entry's delta is what came back to the balance (the credits left
    it when the hold was placed), so its `credits.debited` says what was spent instead, and names the hold."""

    hold_id: str  # public, `hold_...`
    credits: int


def with_capture(entry: Mapping[str, Any], captured: Captured | None) -> Mapping[str, Any]:
    """A ledger entry's columns for `credits_changed`, with what a capture spent."""
    return entry if captured is None else {**entry, "captured": captured}


def credits_changed(
    connection: Connection, changes: Sequence[tuple[int, Mapping[str, Any]]], *, watch: Watch | None = None
) -> None:
    """The events of ledger entries just written in this transaction: each an (entry id, entry columns) pair,
    a capture's with `with_capture`.

    A change that lowers the balance (a spend, placing a hold, an expiry, ...) may cross the low-balance threshold
    or reach 0: held credits cannot be spent, so the balance is what `credits.low` and `credits.depleted` watch.
    `watch` comes from the statement that locked the customer when it selected `watch_columns`;
    without it, it is read here when a change needs it (a spend).
    """
    events: list[dict[str, Any]] = []
    for entry_id, entry in changes:
        kind, delta, after, creator_id = entry["kind"], entry["delta"], entry["balance_after"], entry["creator_id"]
        event_type = _CREDIT_EVENTS.get(kind)
        if watch is None and (event_type == "credits.debited" or delta < 0):
            watch = Watch.of(connection.execute(_WATCH, {"creator_id": creator_id}).one())
        at = entry["created_at"]
        if event_type is not None and (event_type != "credits.debited" or watch.sends_debits):
            events.append(_event_row(creator_id, event_type, credits_data(entry), now=at, entry_id=entry_id))
        if delta < 0:
            customer, threshold = {"customer_id": entry["customer_id"]}, watch.low_threshold
            if threshold is not None and after < threshold <= after - delta:
                data = {**customer, "balance": after, "threshold": threshold}
                events.append(_event_row(creator_id, "credits.low", data, now=at, entry_id=entry_id))
                queue_low_balance_mail(
                    connection, creator_id=creator_id, customer_id=entry["customer_id"], balance=after, now=at
                )
            if after == 0:
                data = {**customer, "balance": 0}
                events.append(_event_row(creator_id, "credits.depleted", data, now=at, entry_id=entry_id))
    if events:
        _write_events(connection, events)


def credits_data(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` of a `credits.*` event about a ledger entry (its columns); `transaction_id` is added on reading."""
    data = {
        "customer_id": entry["customer_id"],
        "delta": entry["delta"],
        "balance_after": entry["balance_after"],
        "reason": entry["reason"],
        "actor": {"type": entry["actor_type"], "id": entry["actor_id"]},
    }
    captured: Captured | None = entry.get("captured")
    if captured is not None:
        data |= {"delta": -captured.credits, "hold_id": captured.hold_id}
    return data


def purchase_completed(
    session: Session, purchase: Purchase, customer: Customer, *, pack_public_id: str, pack_name: str
) -> None:
    """`purchase.completed` for a purchase just fulfilled in this transaction."""
    data = {
        **_purchase_data(session, purchase, customer),
        "pack_id": pack_public_id,
        "pack_name": pack_name,
        "credits": purchase.credits,
    }
    _write_events(
        session.connection(),
        [_event_row(purchase.creator_id, "purchase.completed", data, now=purchase.paid_at or utcnow())],
    )


def purchase_refunded(session: Session, purchase: Purchase, customer: Customer, *, credits_taken_back: int) -> None:
    """`purchase.refunded` for a purchase just refunded in this transaction."""
    data = {**_purchase_data(session, purchase, customer), "credits_taken_back": credits_taken_back}
    _write_events(
        session.connection(),
        [_event_row(purchase.creator_id, "purchase.refunded", data, now=purchase.refunded_at or utcnow())],
    )


def customer_status_changed(session: Session, customer: Customer, *, now: datetime) -> None:
    """`customer.suspended` or `customer.reactivated` for a status just changed in this transaction."""
    event_type = "customer.suspended" if customer.status == "suspended" else "customer.reactivated"
    data = {"customer_id": customer.id, "buyer_email": _email_of(session, customer.buyer_id), "status": customer.status}
    _write_events(session.connection(), [_event_row(customer.creator_id, event_type, data, now=now)])


def _purchase_data(session: Session, purchase: Purchase, customer: Customer) -> dict[str, Any]:
    return {
        "purchase_id": purchase.id,
        "customer_id": customer.id,
        "buyer_email": _email_of(session, purchase.buyer_id),
        "amount": purchase.amount,
        "currency": purchase.currency,
        "balance_after": customer.balance,
    }


def _email_of(session: Session, user_id: int) -> str | None:
    return session.exec(select(User.email).where(User.id == user_id)).first()


def _event_row(
    creator_id: int, event_type: str, data: Mapping[str, Any], *, now: datetime, entry_id: int | None = None
) -> dict[str, Any]:
    return {
        "creator_id": creator_id,
        "type": event_type,
        "data": _json(data),
        "ledger_entry_id": entry_id,
        "created_at": now,
    }


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def debited_event_around_balance(entry: Mapping[str, Any]) -> tuple[str, str]:
    """For the debit's fast path on PostgreSQL, whose function writes the `credits.debited` event itself: the
    event's `data` (of a debit's entry columns) before and after its `balance_after`, which only the database
    knows, so that the function writes exactly what `credits_changed` would."""
    data = _json(credits_data({**entry, "balance_after": 0}))
    before, after = data.split('"balance_after":0', 1)
    return before + '"balance_after":', after


def captured_event_parts(actor_type: str, actor_id: str | None, reason: str | None) -> dict[str, str | None]:
    """For a hold's ending on PostgreSQL, whose function writes a capture's `credits.debited` itself: the JSON of
    the event's actor and reason (None for the hold's reason, which only the database knows), as `credits_data`
    and `credits_changed` write them."""
    actor_json = _json({"type": actor_type, "id": actor_id})
    return {"actor_json": actor_json, "reason_json": None if reason is None else json.dumps(reason)}


_INSERT_EVENTS = insert(WebhookEvent)
_DELIVERY_COLUMNS = [
    "kind",
    "webhook_event_id",
    "webhook_endpoint_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
]
# One delivery per (event, enabled endpoint of its creator subscribed to its type), in event order.
_DISPATCH = insert(OutboxMessage).from_select(
    _DELIVERY_COLUMNS,
    select(
        literal(WEBHOOK_KIND, String),
        WebhookEvent.id,
        WebhookEndpoint.id,
        literal(outbox.PENDING, String),
        literal(0, Integer),
        WebhookEvent.created_at,
        WebhookEvent.created_at,
    )
    .join(WebhookEndpoint, WebhookEndpoint.creator_id == WebhookEvent.creator_id)
    .where(
        WebhookEvent.id.in_(bindparam("event_ids", expanding=True)),
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.event_types.like(literal("%,", String) + WebhookEvent.type + literal(",%", String)),
    )
    .order_by(WebhookEvent.id, WebhookEndpoint.id),
)


def _write_events(connection: Connection, events: list[dict[str, Any]]) -> None:
    """Insert the events, in one statement whatever their number; the worker dispatches them."""
    connection.execute(_INSERT_EVENTS, events)


def dispatch_events(*, limit: int = DISPATCH_BATCH, engine: Engine | None = None) -> int:
    """The worker's first step: turn new events into deliveries to the endpoints subscribed now; how many events.

    Events are taken oldest first; on PostgreSQL several workers skip each other's (`SKIP LOCKED`),
    so each event is dispatched once. The deliveries and the mark are one transaction.
    """
    engine = engine or get_engine()
    # `NOT dispatched`, as the partial index says it (PostgreSQL does not match `dispatched IS false` to it).
    undispatched = select(WebhookEvent.id).where(not_(WebhookEvent.dispatched)).order_by(WebhookEvent.id).limit(limit)
    with read_session(engine) as session:  # most polls find nothing: they take no lock
        if session.exec(undispatched.limit(1)).first() is None:
            return 0
    if not is_sqlite(engine):
        undispatched = undispatched.with_for_update(skip_locked=True)
    with write_session(engine) as session:
        event_ids = list(session.exec(undispatched))
        if event_ids:
            session.connection().execute(_DISPATCH, {"event_ids": event_ids})
            session.exec(update(WebhookEvent).where(WebhookEvent.id.in_(event_ids)).values(dispatched=True))
    return len(event_ids)


def _deliver_to(session: Session, *, event_id: int, endpoint_id: int, now: datetime) -> None:
    session.add(
        OutboxMessage(
            kind=WEBHOOK_KIND,
            webhook_event_id=event_id,
            webhook_endpoint_id=endpoint_id,
            next_attempt_at=now,
            created_at=now,
        )
    )


# --- Reading events -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventPage:
    """Events, newest first; pass `next_cursor` for the following page (None at the end)."""

    events: tuple[dict[str, Any], ...]
    next_cursor: str | None


def envelope(event: WebhookEvent) -> dict[str, Any]:
    """The event as receivers get it: the body of a delivery, and an item of `GET /api/v1/events`."""
    data = json.loads(event.data)
    if event.ledger_entry_id is not None:
        data["transaction_id"] = event.ledger_entry_id
    return {
        "id": event.public_id,
        "type": event.type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def list_events(
    *,
    creator_id: int,
    event_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    engine: Engine | None = None,
) -> EventPage:
    """The creator's events, newest first, optionally of one type."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"Ask for 1 to {MAX_PAGE_SIZE} events.")
    if event_type is not None and event_type not in ALL_EVENT_TYPES:
        raise InvalidRequest("type", f"Unknown event type: {event_type}.")
    statement = select(WebhookEvent).where(WebhookEvent.creator_id == creator_id)
    if event_type is not None:
        statement = statement.where(WebhookEvent.type == event_type)
        if event_type != "credits.debited":  # the very condition of the index of the other types, so it is used
            statement = statement.where(text("webhook_event.type <> 'credits.debited'"))
    if cursor is not None:
        statement = statement.where(WebhookEvent.id < decode_cursor(cursor))
    statement = statement.order_by(WebhookEvent.id.desc()).limit(limit + 1)
    with read_session(engine) as session:
        rows = list(session.exec(statement))
    page = tuple(envelope(event) for event in rows[:limit])
    return EventPage(events=page, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)
