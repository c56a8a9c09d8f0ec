"""Delivering webhook events: the outbox's deliverer for messages of kind `webhook`.

One attempt POSTs the event's JSON to the endpoint, signed the Standard Webhooks way (headers
`webhook-id` — the event's id, the same on every retry —, `webhook-timestamp`, `webhook-signature`,
plus `webhook-version`), with a 10 s timeout, following no redirect and reading at most 2 KB of the
answer. A 2xx answer is a success; anything else is retried on the outbox's schedule, honouring
Retry-After. The URL is checked again (`url_safety`) and the request goes to the address checked.

The endpoint keeps its failure streak: 410 Gone disables it at once; so does failing for 3 days,
or 50 deliveries in a row that failed for good. A success ends the streak. A delivery to a disabled
or deleted endpoint is cancelled.

Ordering: deliveries of one endpoint form one queue (`queue`). A worker makes the first attempts
of one endpoint's deliveries one at a time, in the order the events were created; a failed delivery
does not hold the later ones back, so a retry arrives after newer events. Several workers (on
PostgreSQL) may each hold a delivery of the same endpoint and send them at the same time. Receivers
that care about order compare `created_at`, and deduplicate by `webhook-id`.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, select
from standardwebhooks import Webhook

from litesubs.db import read_session
from litesubs.models import OutboxMessage, WebhookEndpoint, WebhookEvent, utcnow
from litesubs.services import outbox, webhooks
from litesubs.services.url_safety import UnsafeUrl, resolve_safe
from litesubs.settings import get_settings

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 2048
MAX_FAILING_TIME = timedelta(days=3)
MAX_FAILED_DELIVERIES = 50
USER_AGENT = "Litesubs-Webhooks/1"
MAX_CLIENTS = 256


def sign(secrets: list[str], *, msg_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets)


def body_of(event: WebhookEvent) -> str:
    return json.dumps(webhooks.envelope(event), separators=(",", ":"))


class WebhookDeliverer:
    """Sends webhook deliveries (see the module's docstring). `allow_local` as LITESUBS_ALLOW_HTTP_WEBHOOKS."""

    def __init__(self, *, allow_local: bool | None = None) -> None:
        self._allow_local = allow_local
        self._clients: dict[str, httpx.Client] = {}
        self._clients_lock = threading.Lock()

    def _client_for(self, host: str) -> httpx.Client:
        """One client (kept-alive connections, TLS context built once) per host name.

        Requests go to a checked IP address with the host name for TLS; a connection kept for one host
        name is never reused for another that resolves to the same address.
        """
        with self._clients_lock:
            client = self._clients.get(host)
            if client is None:
                if len(self._clients) >= MAX_CLIENTS:
                    for old in self._clients.values():
                        old.close()
                    self._clients.clear()
                client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)
                self._clients[host] = client
            return client

    def queue(self, message: OutboxMessage) -> object:
        return message.webhook_endpoint_id

    def deliver(self, message: OutboxMessage, *, engine: Engine) -> outbox.Attempt:
        with read_session(engine) as session:
            found = session.exec(
                select(WebhookEndpoint, WebhookEvent)
                .join(WebhookEvent, WebhookEvent.creator_id == WebhookEndpoint.creator_id)
                .where(WebhookEndpoint.id == message.webhook_endpoint_id, WebhookEvent.id == message.webhook_event_id)
            ).first()
        endpoint, event = found or (None, None)
        if endpoint is None or event is None or not endpoint.enabled:
            return outbox.Attempt(False, error="The endpoint was disabled or deleted.", cancelled=True)
        allow_local = get_settings().allow_http_webhooks if self._allow_local is None else self._allow_local
        try:
            target = resolve_safe(endpoint.url, allow_local=allow_local)
        except UnsafeUrl as refusal:
            return outbox.Attempt(False, error=f"Not sent: {refusal.message}")
        now = utcnow()  # the signature's time is the real one, whatever clock the outbox runs on
        body = body_of(event)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
            "webhook-id": event.public_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(
                webhooks.signing_secrets(endpoint, now=now), msg_id=event.public_id, timestamp=now, body=body
            ),
            "webhook-version": webhooks.PAYLOAD_VERSION,
        }
        return _post(
            self._client_for(target.host), target.pinned_url(), body=body, headers=headers, tls_name=target.host
        )

    def settled(self, session: Session, message: OutboxMessage, attempt: outbox.Attempt, *, now: datetime) -> None:
        if attempt.cancelled:
            return
        if attempt.delivered:  # the streak ends; one statement, which changes (and locks) nothing in the usual case
            session.exec(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id == message.webhook_endpoint_id,
                    or_(WebhookEndpoint.failing_since.is_not(None), WebhookEndpoint.failed_deliveries != 0),
                )
                .values(failing_since=None, failed_deliveries=0)
            )
            return
        endpoint = session.exec(
            select(WebhookEndpoint).where(WebhookEndpoint.id == message.webhook_endpoint_id).with_for_update()
        ).first()
        if endpoint is None or not endpoint.enabled:
            return
        endpoint.failing_since = endpoint.failing_since or now
        if message.status == outbox.FAILED:
            endpoint.failed_deliveries += 1
        reason = _why_disable(endpoint, attempt, now=now)
        if reason is not None:
            webhooks.disable_in_session(session, endpoint, reason=reason, now=now)
        session.add(endpoint)


def _why_disable(endpoint: WebhookEndpoint, attempt: outbox.Attempt, *, now: datetime) -> str | None:
    if attempt.status_code == 410:
        return "The endpoint answered 410 Gone, which asks us to stop sending."
    if endpoint.failed_deliveries >= MAX_FAILED_DELIVERIES:
        return f"{MAX_FAILED_DELIVERIES} deliveries in a row failed."
    if endpoint.failing_since is not None and now - endpoint.failing_since >= MAX_FAILING_TIME:
        return "Deliveries have failed for 3 days."
    return None


def _post(client: httpx.Client, url: str, *, body: str, headers: dict[str, str], tls_name: str) -> outbox.Attempt:
    try:
        with client.stream(
            "POST", url, content=body.encode(), headers=headers, extensions={"sni_hostname": tls_name}
        ) as response:
            excerpt = _read_at_most(response, MAX_RESPONSE_BYTES)
    except httpx.TimeoutException:
        return outbox.Attempt(False, error=f"No answer within {TIMEOUT_SECONDS} s.")
    except httpx.HTTPError as error:
        return outbox.Attempt(False, error=f"Could not connect: {error}"[:300])
    if 200 <= response.status_code < 300:
        return outbox.Attempt(True, status_code=response.status_code, response=excerpt)
    return outbox.Attempt(
        False,
        status_code=response.status_code,
        response=excerpt,
        error=_failure_of(response.status_code),
        retry_after=_retry_after(response.headers.get("retry-after")),
        final=response.status_code == 410,
    )


def _read_at_most(response: httpx.Response, limit: int) -> str:
    """The start of the answer's body, decoded leniently; the rest is never read."""
    received = b""
    for chunk in response.iter_raw():
        received += chunk
        if len(received) >= limit:
            break
    return received[:limit].decode("utf-8", errors="replace")


def _failure_of(status_code: int) -> str:
    if 300 <= status_code < 400:
        return f"Answered {status_code} (a redirect, which is not followed): point the endpoint at the final URL."
    return f"Answered {status_code}."


def _retry_after(value: str | None) -> timedelta | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - utcnow(), timedelta(0))
