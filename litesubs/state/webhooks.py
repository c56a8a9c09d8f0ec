"""`/dashboard/webhooks`: the creator's endpoints, their recent deliveries, and the low-balance threshold.

Each handler loads the signed-in creator afresh and passes their id to the service, which checks
that the endpoint or delivery is theirs. The signing secrets shown are the creator's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

import reflex as rx

from litesubs.formatting import iso
from litesubs.models import WebhookEndpoint, utcnow
from litesubs.services import webhooks
from litesubs.services.errors import DomainError, InvalidRequest, NotFound, Unauthorized
from litesubs.services.ledger import parse_credits
from litesubs.services.webhooks import DeliverySummary
from litesubs.state.session import SessionState

RECENT_DELIVERIES = 10
MAX_RESPONSE_SHOWN = 200


class DeliveryRow(TypedDict):
    id: int
    event_type: str
    event_id: str
    created: str
    attempts: int
    status: str
    outcome: str


class EndpointRow(TypedDict):
    id: int
    url: str
    enabled: bool
    disabled_reason: str
    event_types: str
    event_list: list[str]
    secret: str
    previous_secret_until: str
    deliveries: list[DeliveryRow]


def _outcome(delivery: DeliverySummary) -> str:
    """What the receiver answered last, in a few words."""
    parts = []
    if delivery.last_status_code is not None:
        parts.append(f"HTTP {delivery.last_status_code}")
    if delivery.last_error and (delivery.last_status_code is None or delivery.status != "delivered"):
        parts.append(delivery.last_error)
    if delivery.last_response:
        parts.append(f"“{delivery.last_response[:MAX_RESPONSE_SHOWN]}”")
    if not parts:
        return "Not tried yet"
    return " · ".join(parts)


def _delivery_row(delivery: DeliverySummary) -> DeliveryRow:
    return {
        "id": delivery.id,
        "event_type": delivery.event_type,
        "event_id": delivery.event_id,
        "created": iso(delivery.created_at),
        "attempts": delivery.attempts,
        "status": delivery.status,
        "outcome": _outcome(delivery),
    }


def _endpoint_row(endpoint: WebhookEndpoint, deliveries: list[DeliverySummary]) -> EndpointRow:
    overlap = endpoint.previous_secret_expires_at if len(webhooks.signing_secrets(endpoint, now=utcnow())) > 1 else None
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or "",
        "event_types": ", ".join(webhooks.event_types_of(endpoint)),
        "event_list": webhooks.event_types_of(endpoint),
        "secret": endpoint.secret,
        "previous_secret_until": iso(overlap),
        "deliveries": [_delivery_row(delivery) for delivery in deliveries],
    }


class WebhooksState(SessionState):
    endpoints: list[EndpointRow] = []
    loaded: bool = False
    create_open: bool = False
    create_errors: dict[str, str] = {}
    create_form_key: int = 0
    threshold: str = ""
    threshold_errors: dict[str, str] = {}
    threshold_form_key: int = 0
    events_endpoint: int = 0  # whose event-type dialog is open (0: none); only decides what is shown

    def _reload(self, creator_id: int) -> None:
        self.endpoints = [
            _endpoint_row(
                endpoint,
                webhooks.list_deliveries(creator_id=creator_id, endpoint_id=endpoint.id, limit=RECENT_DELIVERIES),
            )
            for endpoint in webhooks.list_endpoints(creator_id=creator_id)
        ]
        threshold = webhooks.low_balance_threshold(creator_id=creator_id)
        self.threshold = "" if threshold is None else str(threshold)
        self.loaded = True

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.create_open, self.threshold_errors, self.events_endpoint = False, {}, 0
        self._reload(user.id)
        self.threshold_form_key += 1
        return None

    @rx.event
    def refresh(self) -> rx.event.EventSpec | None:
        try:
            self._reload(self._require_user().id)
        except Unauthorized:
            return self._login_redirect()
        return None

    @rx.event
    def open_create(self) -> None:
        self.create_errors = {}
        self.create_form_key += 1
        self.create_open = True

    @rx.event
    def set_create_open(self, is_open: bool) -> None:
        self.create_open = bool(is_open)

    @rx.event
    def create(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        chosen = [name for name in webhooks.EVENT_TYPES if form.get(name) == "on"]
        try:
            user = self._require_user()
            webhooks.create_endpoint(creator_id=user.id, url=str(form.get("url", "")), event_types=chosen)
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.create_errors = {error.field: error.message}
            return None
        self.create_open = False
        self._reload(user.id)
        return rx.toast.success("Endpoint added. Send it a test event to check your receiver.")

    @rx.event
    def open_events(self, endpoint_id: int) -> None:
        self.events_endpoint = int(endpoint_id) if str(endpoint_id).isdigit() else 0

    @rx.event
    def close_events(self, is_open: bool) -> None:
        if not is_open:
            self.events_endpoint = 0

    @rx.event
    def change_events(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        """The event-type form of one endpoint: its id comes from the form, and the service checks it is theirs."""
        chosen = [name for name in webhooks.EVENT_TYPES if form.get(name) == "on"]
        endpoint_id = str(form.get("endpoint_id", ""))
        try:
            user = self._require_user()
            if not endpoint_id.isdigit():
                raise NotFound("No such webhook endpoint.")
            webhooks.set_event_types(creator_id=user.id, endpoint_id=int(endpoint_id), event_types=chosen)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self.events_endpoint = 0
        self._reload(user.id)
        return rx.toast.success("Event types saved.")

    @rx.event
    def save_threshold(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        text = str(form.get("threshold", "")).strip()
        try:
            user = self._require_user()
            threshold = parse_credits(text, field="threshold") if text else None
            webhooks.set_low_balance_threshold(creator_id=user.id, threshold=threshold)
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.threshold_errors = {"threshold": error.message}
            return None
        self.threshold_errors = {}
        self.threshold = "" if threshold is None else str(threshold)
        if threshold is None:
            return rx.toast.success("Low-balance alerts are off.")
        return rx.toast.success(f"credits.low is sent when a balance falls below {threshold:,} credits.")

    @rx.event
    def send_test(self, endpoint_id: int) -> rx.event.EventSpec | None:
        return self._act(
            lambda creator_id: webhooks.send_test_event(creator_id=creator_id, endpoint_id=int(endpoint_id)),
            "Test event queued: it appears under Recent deliveries in a moment.",
        )

    @rx.event
    def rotate(self, endpoint_id: int) -> rx.event.EventSpec | None:
        return self._act(
            lambda creator_id: webhooks.rotate_secret(creator_id=creator_id, endpoint_id=int(endpoint_id)),
            "New secret made. The old one keeps signing too for 24 hours: switch your receiver meanwhile.",
        )

    @rx.event
    def set_enabled(self, endpoint_id: int, enabled: bool) -> rx.event.EventSpec | None:
        return self._act(
            lambda creator_id: webhooks.set_enabled(
                creator_id=creator_id, endpoint_id=int(endpoint_id), enabled=bool(enabled)
            ),
            "Endpoint enabled." if enabled else "Endpoint disabled: its pending deliveries are cancelled.",
        )

    @rx.event
    def delete(self, endpoint_id: int) -> rx.event.EventSpec | None:
        return self._act(
            lambda creator_id: webhooks.delete_endpoint(creator_id=creator_id, endpoint_id=int(endpoint_id)),
            "Endpoint deleted.",
        )

    @rx.event
    def resend(self, delivery_id: int) -> rx.event.EventSpec | None:
        return self._act(
            lambda creator_id: webhooks.resend(creator_id=creator_id, delivery_id=int(delivery_id)),
            "Queued again, with the same webhook-id.",
        )

    def _act(self, change: Callable[[int], object], done: str) -> rx.event.EventSpec | None:
        """Who is asking, one service call with their id, then the page reloaded (or the refusal in words)."""
        try:
            user = self._require_user()
            change(user.id)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self._reload(user.id)
        return rx.toast.success(done)
