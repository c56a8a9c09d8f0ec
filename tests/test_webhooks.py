"""Outgoing webhooks on SQLite and PostgreSQL: every event from its real cause, signed, retried, never lost.

Deliveries go over real HTTP to a local receiver (`tests/webhook_receiver.py`) that verifies each
signature with the `standardwebhooks` package. The outbox runs on a clock the tests move (`now=`),
so retries hours apart take no time.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from standardwebhooks import Webhook

from litesubs.db import write_session
from litesubs.models import LedgerEntry, OutboxMessage, User, WebhookEndpoint, WebhookEvent, utcnow
from litesubs.payments.fulfilment import fulfil_checkout, refund_charge
from litesubs.services import holds, ledger, outbox, webhooks
from litesubs.services.customers import get_or_create_customer, reactivate_customer, suspend_customer
from litesubs.services.errors import InsufficientCredits, InvalidRequest, NotFound
from litesubs.services.ledger import Actor
from litesubs.services.url_safety import UnsafeUrl
from litesubs.services.webhook_delivery import WebhookDeliverer
from tests.conftest import create_user
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of
from tests.webhook_receiver import Receiver, running_receiver

LOCAL = {webhooks.WEBHOOK_KIND: WebhookDeliverer(allow_local=True)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def deliver(engine: Engine, *, now: datetime | None = None, deliverers: dict = LOCAL) -> None:
    """As the worker does: dispatch new events, then run the outbox until nothing is due at `now`.

    The database is shared with other tests, whose events and deliveries this handles too: tests look
    at their own receiver and deliveries, not at how much was done.
    """
    while webhooks.dispatch_events(engine=engine):
        pass
    while outbox.deliver_due(deliverers, now=now, engine=engine):
        pass


def endpoint_for(engine: Engine, creator: User, receiver: Receiver, **options: object) -> WebhookEndpoint:
    endpoint = webhooks.create_endpoint(
        creator_id=creator.id, url=receiver.url, allow_local=True, engine=engine, **options
    )
    receiver.verify_with(endpoint.secret)
    return endpoint


def a_customer(engine: Engine, creator: User, *, credits: int = 0) -> int:
    buyer = create_user(engine, name="Buyer")
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    if credits:
        ledger.grant(creator_id=creator.id, customer_id=customer.id, amount=credits, actor=CREATOR, engine=engine)
    return customer.id


def events_of(engine: Engine, creator: User, event_type: str | None = None) -> list[WebhookEvent]:
    statement = select(WebhookEvent).where(WebhookEvent.creator_id == creator.id)
    if event_type:
        statement = statement.where(WebhookEvent.type == event_type)
    with Session(engine) as session:
        return list(session.exec(statement.order_by(WebhookEvent.id)))


def messages_of(engine: Engine, endpoint: WebhookEndpoint) -> list[OutboxMessage]:
    with Session(engine) as session:
        statement = select(OutboxMessage).where(OutboxMessage.webhook_endpoint_id == endpoint.id)
        return list(session.exec(statement.order_by(OutboxMessage.id)))


def endpoint_now(engine: Engine, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    with Session(engine) as session:
        return session.get(WebhookEndpoint, endpoint.id)


CREATOR = Actor("system")


# --- Every event from its cause ------------------------------------------------------------------


def test_every_event_type_is_produced_by_its_real_cause_and_arrives_signed(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine, name="Creator")
    endpoint = endpoint_for(engine, creator, receiver, event_types=list(webhooks.EVENT_TYPES))
    webhooks.set_low_balance_threshold(creator_id=creator.id, threshold=5, engine=engine)
    pack = make_pack(engine, creator.id, credits="10", price="4.00")
    buyer = create_user(engine, name="Buyer")
    payment = f"pi_{secrets.token_hex(6)}"
    checkout = {
        "id": f"cs_test_{secrets.token_hex(6)}",
        "payment_status": "paid",
        "amount_total": pack.price_amount,
        "currency": pack.currency.lower(),
        "metadata": {"pack_public_id": pack.public_id, "buyer_id": str(buyer.id)},
        "payment_intent": payment,
    }
    assert fulfil_checkout(checkout, engine=engine).outcome == "granted"  # purchase.completed
    customer_id = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine).id
    by = Actor("creator", creator.id)
    now = utcnow()
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=3, actor=by, engine=engine)  # granted
    ledger.grant(
        creator_id=creator.id,
        customer_id=customer_id,
        amount=2,
        actor=by,
        expires_at=now + timedelta(hours=1),
        engine=engine,
    )
    ledger.expire_due_credits(now=now + timedelta(hours=2), engine=engine)  # expired (2): 13 left
    ledger.adjust(creator_id=creator.id, customer_id=customer_id, delta=-4, reason="Fix", actor=by, engine=engine)
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=5, actor=by, engine=engine)  # 4: low
    suspend_customer(creator_id=creator.id, customer_id=customer_id, engine=engine)
    reactivate_customer(creator_id=creator.id, customer_id=customer_id, engine=engine)
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=4, actor=by, engine=engine)  # depleted
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=10, actor=by, engine=engine)
    refund = refund_charge({"id": "ch_1", "payment_intent": payment, "refunded": True}, engine=engine)
    assert refund.outcome == "refunded"  # the purchase's 10 were spent already: 0 taken back

    expected = [
        "purchase.completed",
        "credits.granted",
        "credits.granted",
        "credits.expired",
        "credits.adjusted",
        "credits.debited",
        "credits.low",
        "customer.suspended",
        "customer.reactivated",
        "credits.debited",
        "credits.depleted",
        "credits.granted",
        "purchase.refunded",
    ]
    assert [event.type for event in events_of(engine, creator)] == expected
    deliver(engine, now=now + timedelta(hours=3))  # the expiry happened 2 h ahead
    assert len(receiver.received) == len(expected)
    webhooks.send_test_event(creator_id=creator.id, endpoint_id=endpoint.id, engine=engine)
    deliver(engine)
    expected.append("webhook.test")
    assert set(expected) == set(webhooks.ALL_EVENT_TYPES)
    assert len(receiver.received) == len(expected)
    assert receiver.types() == expected  # every one verified, in the order they happened
    first = receiver.verified()[0]
    assert first.headers["webhook-version"] == webhooks.PAYLOAD_VERSION
    assert first.headers["content-type"] == "application/json"
    assert first.webhook_id == first.event["id"]
    assert first.webhook_id.startswith("evt_")
    completed = first.event["data"]
    assert completed["customer_id"] == customer_id
    assert completed["credits"] == 10
    assert completed["pack_id"] == pack.public_id
    assert completed["buyer_email"] == buyer.email
    assert completed["amount"] == pack.price_amount
    assert completed["balance_after"] == 10
    by_type = {request.event["type"]: request.event["data"] for request in receiver.verified()}
    assert by_type["credits.low"] == {
        "customer_id": customer_id,
        "balance": 4,
        "threshold": 5,
        "transaction_id": by_type["credits.low"]["transaction_id"],
    }
    assert by_type["credits.depleted"]["balance"] == 0
    debited = by_type["credits.debited"]  # on PostgreSQL written by the debit's own statement, built in SQL
    assert debited == {
        "customer_id": customer_id,
        "transaction_id": debited["transaction_id"],
        "delta": -4,
        "balance_after": 0,
        "reason": "",
        "actor": {"type": "creator", "id": str(creator.id)},
    }
    assert by_type["credits.adjusted"]["delta"] == -4
    assert by_type["credits.adjusted"]["reason"] == "Fix"
    assert by_type["purchase.refunded"]["credits_taken_back"] == 0
    assert all(message.status == "delivered" for message in messages_of(engine, endpoint))
    assert not any("whsec_" in request.body.decode() for request in receiver.received)


def test_credits_low_is_sent_once_per_crossing(engine: Engine) -> None:
    creator = create_user(engine)
    webhooks.set_low_balance_threshold(creator_id=creator.id, threshold=10, engine=engine)
    customer_id = a_customer(engine, creator, credits=20)
    for amount in (5, 6, 2, 1):  # 15, 9 (crossed), 7, 6: one event
        ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=amount, actor=CREATOR, engine=engine)
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=10, actor=CREATOR, engine=engine)  # 16
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=7, actor=CREATOR, engine=engine)  # 9 again
    low = events_of(engine, creator, "credits.low")
    assert [json.loads(event.data)["balance"] for event in low] == [9, 9]
    webhooks.set_low_balance_threshold(creator_id=creator.id, threshold=None, engine=engine)
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=9, actor=CREATOR, engine=engine)
    assert len(events_of(engine, creator, "credits.low")) == 2
    assert len(events_of(engine, creator, "credits.depleted")) == 1


def test_debits_make_events_only_for_an_endpoint_that_asked(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    customer_id = a_customer(engine, creator, credits=10)
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    endpoint = endpoint_for(engine, creator, receiver)  # the default: every type but credits.debited
    assert "credits.debited" not in webhooks.event_types_of(endpoint)
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    assert events_of(engine, creator, "credits.debited") == []
    webhooks.set_event_types(
        creator_id=creator.id, endpoint_id=endpoint.id, event_types=["credits.debited"], engine=engine
    )
    ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    assert len(events_of(engine, creator, "credits.debited")) == 1
    assert len(events_of(engine, creator, "credits.granted")) == 2  # kept for the API, not sent to this endpoint
    deliver(engine)
    assert receiver.types() == ["credits.debited"]


def test_a_change_that_rolls_back_or_is_refused_sends_nothing(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint_for(engine, creator, receiver, event_types=list(webhooks.EVENT_TYPES))
    customer_id = a_customer(engine, creator, credits=0)
    with pytest.raises(InsufficientCredits):
        ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)

    def grant_then_fail() -> None:
        with write_session(engine) as session:
            customer = ledger.lock_customer(session, creator_id=creator.id, customer_id=customer_id, now=utcnow())
            ledger.grant_in_session(session, customer, amount=5, actor=CREATOR, now=utcnow())
            raise RuntimeError("the rest of the transaction failed")

    with pytest.raises(RuntimeError):
        grant_then_fail()
    assert events_of(engine, creator) == []
    deliver(engine)
    assert receiver.received == []


# --- Holds -------------------------------------------------------------------------------------
# Placing a hold lowers the balance (held credits cannot be spent), so it may send credits.low and credits.depleted;
# a capture is the spend, so it sends credits.debited (to endpoints that asked) for what it spent; releasing
# sends nothing. On PostgreSQL these run on the holds' two-statement hot paths, on SQLite on the general path.


def test_a_capture_is_a_debit_of_what_it_spent_and_placing_or_releasing_spends_nothing(
    engine: Engine, receiver: Receiver
) -> None:
    creator = create_user(engine)
    customer_id = a_customer(engine, creator, credits=100)
    endpoint = endpoint_for(engine, creator, receiver, event_types=["credits.debited"])
    one = holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=30, actor=CREATOR, engine=engine)
    other = holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=20, actor=CREATOR, engine=engine)
    assert events_of(engine, creator, "credits.debited") == []
    ending = holds.capture_hold(
        creator_id=creator.id, hold_id=one.id, amount=12, reason="render", actor=CREATOR, engine=engine
    )
    holds.release_hold(creator_id=creator.id, hold_id=other.id, actor=CREATOR, engine=engine)
    assert ending.transaction.delta == 18  # the entry gives back what was not spent
    deliver(engine)
    [delivered] = [request.event for request in receiver.verified()]
    assert delivered["type"] == "credits.debited"
    assert delivered["data"] == {
        "customer_id": customer_id,
        "delta": -12,
        "balance_after": 68,  # 100 - 30 - 20 held, 18 of the first hold back
        "reason": "render",
        "actor": {"type": "system", "id": None},
        "hold_id": f"hold_{one.id}",
        "transaction_id": ending.transaction.entry_id,
    }
    assert len(messages_of(engine, endpoint)) == 1
    assert_invariants(engine, customer_id)


def test_a_capture_sends_no_debit_event_to_creators_who_did_not_ask(engine: Engine) -> None:
    creator = create_user(engine)
    customer_id = a_customer(engine, creator, credits=10)
    hold = holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=4, actor=CREATOR, engine=engine)
    holds.capture_hold(creator_id=creator.id, hold_id=hold.id, actor=CREATOR, engine=engine)
    assert events_of(engine, creator, "credits.debited") == []
    assert [event.type for event in events_of(engine, creator)] == ["credits.granted"]


def test_placing_a_hold_can_cross_the_low_threshold_and_deplete_the_balance(engine: Engine) -> None:
    creator = create_user(engine)
    webhooks.set_low_balance_threshold(creator_id=creator.id, threshold=10, engine=engine)
    customer_id = a_customer(engine, creator, credits=20)
    first = holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=12, actor=CREATOR, engine=engine)
    low = events_of(engine, creator, "credits.low")
    assert [json.loads(event.data) for event in low] == [{"customer_id": customer_id, "balance": 8, "threshold": 10}]
    assert low[0].ledger_entry_id is not None
    holds.release_hold(creator_id=creator.id, hold_id=first.id, actor=CREATOR, engine=engine)  # 20 again
    holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=20, actor=CREATOR, engine=engine)
    assert [json.loads(event.data)["balance"] for event in events_of(engine, creator, "credits.low")] == [8, 0]
    depleted = events_of(engine, creator, "credits.depleted")
    assert [json.loads(event.data) for event in depleted] == [{"customer_id": customer_id, "balance": 0}]
    assert_invariants(engine, customer_id)


# --- Retries ---------------------------------------------------------------------------------


def test_a_receiver_answering_500_gets_the_same_webhook_id_again(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=5)
    receiver.answer(500, body=b"database down")
    start = utcnow()
    deliver(engine, now=start)
    [message] = messages_of(engine, endpoint)
    assert message.status == "pending"
    assert message.attempts == 1
    assert message.last_status_code == 500
    assert message.last_response == "database down"
    assert timedelta(seconds=4.5) <= message.next_attempt_at - start <= timedelta(seconds=5.5)
    deliver(engine, now=start + timedelta(seconds=4))
    assert len(receiver.received) == 1  # not due yet
    deliver(engine, now=start + timedelta(seconds=6))
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first.verified
    assert second.verified
    assert first.webhook_id == second.webhook_id
    assert first.body == second.body
    [message] = messages_of(engine, endpoint)
    assert (message.status, message.attempts, message.last_status_code) == ("delivered", 2, 200)
    assert endpoint_now(engine, endpoint).failing_since is None


def test_retries_follow_the_schedule_honour_retry_after_and_then_give_up(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=5)
    receiver.answer(503, headers={"Retry-After": "600"})
    receiver.answer(500, times=20)
    now = utcnow()
    deliver(engine, now=now)
    [message] = messages_of(engine, endpoint)
    assert timedelta(seconds=599) <= message.next_attempt_at - now <= timedelta(seconds=601)  # not 5 s
    waits = []
    while message.status == "pending":
        waits.append(message.next_attempt_at - now)
        now = message.next_attempt_at
        deliver(engine, now=now)
        [message] = messages_of(engine, endpoint)
    assert message.status == "failed"
    assert message.attempts == 1 + len(outbox.RETRY_DELAYS)
    for wait, delay in zip(waits[1:], outbox.RETRY_DELAYS[1:], strict=True):
        assert delay * 0.9 <= wait <= delay * 1.1
    assert len({request.webhook_id for request in receiver.received}) == 1
    assert len(receiver.received) == 8
    endpoint = endpoint_now(engine, endpoint)
    assert endpoint.enabled
    assert endpoint.failed_deliveries == 1


def test_410_disables_the_endpoint_at_once_and_says_why(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    customer_id = a_customer(engine, creator, credits=5)
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    receiver.answer(410)
    deliver(engine)  # the second delivery is cancelled, never sent
    endpoint = endpoint_now(engine, endpoint)
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert [message.status for message in messages_of(engine, endpoint)] == ["failed", "cancelled"]
    ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
    deliver(engine)
    assert len(messages_of(engine, endpoint)) == 2  # a disabled endpoint gets no new deliveries
    assert len(receiver.received) == 1


def test_three_days_of_failures_disable_the_endpoint(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    receiver.answer(500, times=100)
    customer_id = a_customer(engine, creator, credits=5)  # an event now
    start = utcnow()
    deliver(engine, now=start)
    ledger.grant(
        creator_id=creator.id,
        customer_id=customer_id,
        amount=1,
        actor=CREATOR,
        now=start + timedelta(days=2, hours=23),
        engine=engine,
    )
    deliver(engine, now=start + timedelta(days=2, hours=23))
    assert endpoint_now(engine, endpoint).enabled
    deliver(engine, now=start + timedelta(days=3, hours=1))  # the newer delivery's retry, after 3 days failing
    endpoint = endpoint_now(engine, endpoint)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "Deliveries have failed for 3 days."


def test_fifty_deliveries_failing_in_a_row_disable_the_endpoint(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    customer_id = a_customer(engine, creator)
    receiver.answer(500, times=1000)
    now = utcnow()
    for _ in range(50):
        ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine, now=now)
    deliver(engine, now=now)
    for delay in outbox.RETRY_DELAYS:
        now += delay * 1.2
        deliver(engine, now=now)
    endpoint = endpoint_now(engine, endpoint)
    assert endpoint.failed_deliveries == 50
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "50 deliveries in a row failed."
    webhooks.set_enabled(creator_id=creator.id, endpoint_id=endpoint.id, enabled=True, engine=engine)
    endpoint = endpoint_now(engine, endpoint)
    assert endpoint.enabled
    assert endpoint.failed_deliveries == 0
    assert endpoint.disabled_reason is None


def test_a_worker_that_died_mid_delivery_is_taken_over_after_its_lease(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=5)
    while webhooks.dispatch_events(engine=engine):
        pass
    now = utcnow()

    def ours(messages: list[OutboxMessage]) -> list[OutboxMessage]:
        return [message for message in messages if message.webhook_endpoint_id == endpoint.id]

    [claimed] = ours(outbox.claim(kinds=list(LOCAL), now=now, limit=1000, engine=engine))  # taken, then vanished
    assert ours(outbox.claim(kinds=list(LOCAL), now=now + timedelta(seconds=30), limit=1000, engine=engine)) == []
    deliver(engine, now=now + outbox.LEASE + timedelta(seconds=1))
    assert len(receiver.verified()) == 1
    assert receiver.verified()[0].webhook_id == events_of(engine, creator)[0].public_id
    assert messages_of(engine, endpoint)[0].status == "delivered"
    outbox.settle(claimed, outbox.Attempt(False, error="late"), deliverer=LOCAL["webhook"], engine=engine)
    assert messages_of(engine, endpoint)[0].status == "delivered"  # a late outcome changes nothing


def test_resend_delivers_a_succeeded_event_again_with_its_id(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=5)
    deliver(engine)
    [delivery] = webhooks.list_deliveries(creator_id=creator.id, endpoint_id=endpoint.id, engine=engine)
    assert (delivery.event_type, delivery.status, delivery.last_status_code) == ("credits.granted", "delivered", 200)
    other = create_user(engine)
    with pytest.raises(NotFound):
        webhooks.resend(creator_id=other.id, delivery_id=delivery.id, engine=engine)
    webhooks.resend(creator_id=creator.id, delivery_id=delivery.id, engine=engine)
    deliver(engine)
    first, again = receiver.verified()
    assert first.webhook_id == again.webhook_id == delivery.event_id
    assert len(webhooks.list_deliveries(creator_id=creator.id, endpoint_id=endpoint.id, engine=engine)) == 2


def test_one_worker_sends_an_endpoints_events_in_the_order_they_happened(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint_for(engine, creator, receiver)
    customer_id = a_customer(engine, creator)
    for amount in range(1, 31):
        ledger.grant(creator_id=creator.id, customer_id=customer_id, amount=amount, actor=CREATOR, engine=engine)
    deliver(engine)
    assert [request.event["data"]["delta"] for request in receiver.verified()] == list(range(1, 31))


# --- Signing secrets -------------------------------------------------------------------------


def test_after_rotation_both_secrets_sign_for_24_hours(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    assert endpoint.secret.startswith("whsec_")
    assert len(endpoint.secret) > 40
    old = endpoint.secret
    rotated = webhooks.rotate_secret(creator_id=creator.id, endpoint_id=endpoint.id, engine=engine)
    assert rotated.secret != old
    now = utcnow()
    assert webhooks.signing_secrets(rotated, now=now) == [rotated.secret, old]
    assert webhooks.signing_secrets(rotated, now=now + timedelta(hours=24, seconds=1)) == [rotated.secret]
    a_customer(engine, creator, credits=1)
    deliver(engine)
    request = receiver.received[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated.secret):  # a receiver still on the old secret, and one already on the new
        assert Webhook(secret).verify(request.body, request.headers)["id"] == request.webhook_id
    with pytest.raises(NotFound):
        webhooks.rotate_secret(creator_id=create_user(engine).id, endpoint_id=endpoint.id, engine=engine)


# --- Safety ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://2130706433/hooks",  # 127.0.0.1 as one number
        "https://0.0.0.0/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://172.16.5.4/hooks",
        "https://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://100.64.0.1/hooks",
        "https://[fe80::1]/hooks",
        "http://example.com/hooks",  # plain http
        "ftp://example.com/hooks",
        "https://user:password@example.com/hooks",
        "https:///hooks",
        "not a url",
        "",
    ],
)
def test_endpoint_urls_reaching_private_addresses_are_refused(engine: Engine, url: str) -> None:
    creator = create_user(engine)
    with pytest.raises(UnsafeUrl) as refusal:
        webhooks.create_endpoint(creator_id=creator.id, url=url, allow_local=False, engine=engine)
    assert refusal.value.field == "url"
    assert refusal.value.message
    assert webhooks.list_endpoints(creator_id=creator.id, engine=engine) == []


def test_the_localhost_allowance_allows_loopback_and_nothing_else_private(engine: Engine) -> None:
    creator = create_user(engine)
    webhooks.create_endpoint(creator_id=creator.id, url="http://localhost:9/x", allow_local=True, engine=engine)
    for url in ("http://10.0.0.1/x", "https://169.254.169.254/x", "http://example.com/x"):
        with pytest.raises(UnsafeUrl):
            webhooks.create_endpoint(creator_id=creator.id, url=url, allow_local=True, engine=engine)


def test_the_address_is_checked_again_at_delivery(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=1)
    strict = {webhooks.WEBHOOK_KIND: WebhookDeliverer(allow_local=False)}
    deliver(engine, deliverers=strict)
    assert receiver.received == []
    [message] = messages_of(engine, endpoint)
    assert message.status == "pending"
    assert message.last_error.startswith("Not sent: ")


def test_redirects_are_not_followed_and_only_2_kb_of_an_answer_is_read(engine: Engine, receiver: Receiver) -> None:
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    a_customer(engine, creator, credits=1)
    receiver.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    now = utcnow()
    deliver(engine, now=now)
    [message] = messages_of(engine, endpoint)
    assert message.status == "pending"
    assert message.last_status_code == 302
    assert "redirect" in message.last_error
    assert len(receiver.received) == 1
    receiver.answer(200, body=b"x" * 100_000)
    deliver(engine, now=now + timedelta(minutes=1))
    [message] = messages_of(engine, endpoint)
    assert message.status == "delivered"
    assert len(message.last_response) == 2048


def test_endpoints_belong_to_their_creator(engine: Engine, receiver: Receiver) -> None:
    creator, other = create_user(engine), create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver)
    for change in (
        lambda: webhooks.set_enabled(creator_id=other.id, endpoint_id=endpoint.id, enabled=False, engine=engine),
        lambda: webhooks.delete_endpoint(creator_id=other.id, endpoint_id=endpoint.id, engine=engine),
        lambda: webhooks.send_test_event(creator_id=other.id, endpoint_id=endpoint.id, engine=engine),
        lambda: webhooks.list_deliveries(creator_id=other.id, endpoint_id=endpoint.id, engine=engine),
    ):
        with pytest.raises(NotFound):
            change()
    a_customer(engine, other, credits=3)  # the other creator's event goes to none of this creator's endpoints
    deliver(engine)
    assert receiver.received == []
    with pytest.raises(InvalidRequest):
        webhooks.create_endpoint(
            creator_id=creator.id, url=receiver.url, event_types=["nope"], allow_local=True, engine=engine
        )
    webhooks.delete_endpoint(creator_id=creator.id, endpoint_id=endpoint.id, engine=engine)
    assert webhooks.list_endpoints(creator_id=creator.id, engine=engine) == []


# --- Races on PostgreSQL ---------------------------------------------------------------------


def test_200_racing_debits_make_exactly_200_debit_events(postgres_engine: Engine, receiver: Receiver) -> None:
    """Through the hot path and its coalescing: one event per debit, none lost, none doubled."""
    engine = postgres_engine
    creator = create_user(engine)
    endpoint = endpoint_for(engine, creator, receiver, event_types=["credits.debited", "credits.depleted"])
    hot = a_customer(engine, creator, credits=150)
    spread = [a_customer(engine, creator, credits=10) for _ in range(5)]
    targets = [hot] * 150 + [customer for customer in spread for _ in range(10)]

    def spend(customer_id: int) -> int:
        key = secrets.token_hex(8)
        result = ledger.debit(
            creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, idempotency_key=key, engine=engine
        )
        return result.entry_id

    with ThreadPoolExecutor(max_workers=40) as pool:
        entry_ids = list(pool.map(spend, targets))
    assert len(set(entry_ids)) == 200
    debited = events_of(engine, creator, "credits.debited")
    assert len(debited) == 200
    assert sorted(event.ledger_entry_id for event in debited) == sorted(entry_ids)
    assert len(events_of(engine, creator, "credits.depleted")) == 6
    with Session(engine) as session:
        debits = session.exec(
            select(func.count()).where(LedgerEntry.creator_id == creator.id, LedgerEntry.kind == "debit")
        ).one()
    assert debits == 200
    while webhooks.dispatch_events(limit=50, engine=engine):
        pass
    assert len(messages_of(engine, endpoint)) == 206
    deliver(engine)
    assert len({request.webhook_id for request in receiver.verified()}) == 206


def test_racing_holds_and_captures_make_a_debit_event_each(postgres_engine: Engine, receiver: Receiver) -> None:
    """On the holds' hot paths: 60 holds placed and captured in parallel, racing 60 debits of the same customer."""
    engine = postgres_engine
    creator = create_user(engine)
    endpoint_for(engine, creator, receiver, event_types=["credits.debited"])
    customer_id = a_customer(engine, creator, credits=300)

    def hold_and_capture(index: int) -> tuple[int, int]:
        hold = holds.place_hold(creator_id=creator.id, customer_id=customer_id, amount=4, actor=CREATOR, engine=engine)
        amount, key = index % 4 + 1, secrets.token_hex(8)
        ending = holds.capture_hold(
            creator_id=creator.id, hold_id=hold.id, amount=amount, actor=CREATOR, idempotency_key=key, engine=engine
        )
        return ending.transaction.entry_id, amount

    def spend(_index: int) -> int:
        result = ledger.debit(creator_id=creator.id, customer_id=customer_id, amount=1, actor=CREATOR, engine=engine)
        return result.entry_id

    with ThreadPoolExecutor(max_workers=30) as pool:
        captures, debits = pool.map(hold_and_capture, range(60)), pool.map(spend, range(60))
        captured, debit_ids = dict(captures), list(debits)
    debited = {event.ledger_entry_id: json.loads(event.data) for event in events_of(engine, creator, "credits.debited")}
    assert len(debited) == 120
    assert {entry_id: -data["delta"] for entry_id, data in debited.items() if "hold_id" in data} == captured
    assert sorted(entry_id for entry_id, data in debited.items() if "hold_id" not in data) == sorted(debit_ids)
    assert balance_of(engine, customer_id) == 300 - sum(captured.values()) - 60
    assert_invariants(engine, customer_id)
