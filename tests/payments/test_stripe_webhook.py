"""`POST /api/stripe/webhook` over real HTTP: signatures, exactly-once fulfilment, mismatches, failures, refunds.

Stripe's side is the fake server in tests/stripe_server.py, driven through the real SDK; events
are signed as Stripe signs them and delivered to the API served in this process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import CreditLot, Customer, Pack, User
from litesubs.payments.checkout import fulfil_session_id
from litesubs.payments.stripe_gateway import create_checkout_session, stripe_client
from litesubs.services.customer_directory import customer_ledger
from litesubs.services.customers import get_or_create_customer
from litesubs.services.errors import InsufficientCredits
from litesubs.services.ledger import Actor, debit
from litesubs.services.packs import set_pack_active
from litesubs.settings import get_settings
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of
from tests.payments.conftest import STRIPE_VARIABLES, WEBHOOK_SECRET, open_checkout
from tests.payments.records import event_recorded, lots_of, lots_of_purchase, purchase_of
from tests.stripe_server import FakeStripe

pytestmark = pytest.mark.usefixtures("stripe_mode")

CONCURRENT_DELIVERIES = 10


def deliver(url: str, event: dict[str, Any], **signing: Any) -> httpx.Response:
    return FakeStripe.deliver(url, event, secret=signing.pop("secret", WEBHOOK_SECRET), **signing)


def completed(fake_stripe: FakeStripe, session_id: str, **how: Any) -> dict[str, Any]:
    return fake_stripe.event("checkout.session.completed", fake_stripe.complete(session_id, **how))


def untouched(engine: Engine, session_id: str, event_id: str) -> bool:
    purchase = purchase_of(engine, session_id)
    return (
        purchase.status == "pending"
        and lots_of_purchase(engine, purchase.id) == []
        and not event_recorded(engine, event_id)
    )


def customer_row(engine: Engine, customer_id: int) -> Customer:
    with Session(engine) as session:
        return session.get(Customer, customer_id)


# --- Signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "message"),
    [
        ({"secret": "whsec_forged"}, "The Stripe-Signature header is missing, wrong or too old."),
        ({"secret": None}, "The Stripe-Signature header is missing, wrong or too old."),
        ({"timestamp": int(time.time()) - 600}, "The Stripe-Signature header is missing, wrong or too old."),
    ],
    ids=["forged", "missing", "stale"],
)
def test_an_event_without_a_valid_recent_signature_is_refused_and_changes_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User, signing: dict, message: str
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)

    response = deliver(webhook_url, event, **signing)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid_signature", "message": message}}
    assert untouched(engine, session_id, event["id"])


def test_a_body_changed_after_signing_is_refused(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)
    signature = FakeStripe.sign('{"id": "evt_other"}', WEBHOOK_SECRET)

    response = httpx.post(webhook_url, json=event, headers={"Stripe-Signature": signature})

    assert response.status_code == 400
    assert untouched(engine, session_id, event["id"])


def test_webhooks_are_refused_when_stripe_is_not_configured(
    monkeypatch: pytest.MonkeyPatch, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    for name in STRIPE_VARIABLES:
        monkeypatch.delenv(name)
    get_settings.cache_clear()

    response = deliver(webhook_url, fake_stripe.event("checkout.session.completed", {"id": "cs_test_x"}))

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Stripe webhooks are not configured on this server."


def test_while_rolling_the_secret_both_the_old_and_the_new_one_are_accepted(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", f"whsec_new_one, {WEBHOOK_SECRET}")
    get_settings.cache_clear()
    old_session, new_session = open_checkout(engine, pack, buyer), open_checkout(engine, pack, buyer)

    assert deliver(webhook_url, completed(fake_stripe, old_session)).status_code == 200
    assert deliver(webhook_url, completed(fake_stripe, new_session), secret="whsec_new_one").status_code == 200
    assert deliver(webhook_url, completed(fake_stripe, new_session), secret="whsec_retired").status_code == 400
    assert (purchase_of(engine, old_session).status, purchase_of(engine, new_session).status) == ("paid", "paid")


# --- Fulfilment -----------------------------------------------------------------------------


def test_a_paid_checkout_grants_the_packs_credits(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)

    response = deliver(webhook_url, event)

    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "granted"})
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.stripe_payment_intent_id) == ("paid", event["data"]["object"]["payment_intent"])
    [lot] = lots_of(engine, purchase.customer_id)
    assert (lot.source, lot.purchase_id, lot.granted, lot.expires_at) == ("purchase", purchase.id, 100, pack.expires_at)
    [entry] = entries_of(engine, purchase.customer_id)
    assert (entry.kind, entry.delta, entry.actor_type) == ("purchase", 100, "stripe")
    customer = customer_row(engine, purchase.customer_id)
    assert (customer.balance, customer.credits_purchased, customer.last_purchase_at) == (100, 100, purchase.paid_at)
    assert event_recorded(engine, event["id"])
    assert_invariants(engine, purchase.customer_id)


def test_the_same_event_delivered_concurrently_grants_once(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)

    outcomes = deliver_together(CONCURRENT_DELIVERIES, lambda _: deliver(webhook_url, event))

    assert outcomes == Counter({"granted": 1, "duplicate": CONCURRENT_DELIVERIES - 1})
    assert_granted_once(engine, session_id)


def test_different_deliveries_of_one_payment_racing_the_success_page_grant_once(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """Distinct events (completed, async succeeded, resent) and the success page, all at once: the lock decides."""
    session_id = open_checkout(engine, pack, buyer)
    paid = fake_stripe.complete(session_id)
    events = [fake_stripe.event("checkout.session.completed", paid) for _ in range(CONCURRENT_DELIVERIES - 1)]

    def attempt(index: int) -> httpx.Response | str:
        if index == len(events):
            return fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine).status
        return deliver(webhook_url, events[index])

    outcomes = deliver_together(CONCURRENT_DELIVERIES, attempt)

    assert outcomes["paid"] == 1  # the success page; it or one of the deliveries granted
    assert outcomes["granted"] + outcomes["already_fulfilled"] == len(events)
    assert_granted_once(engine, session_id)


def test_a_first_payment_to_a_new_creator_makes_one_customer_under_concurrent_deliveries(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """No pending purchase and no customer yet (the checkout was created straight at Stripe): both are made once."""
    created = create_checkout_session(
        product_name=pack.name,
        product_description="100 credits",
        amount=pack.price_amount,
        currency=pack.currency,
        buyer_id=buyer.id,
        buyer_email=buyer.email,
        pack_public_id=pack.public_id,
        success_url="http://litesubs.test/checkout/success",
        cancel_url="http://litesubs.test/",
    )
    paid = fake_stripe.complete(created["id"])
    events = [fake_stripe.event("checkout.session.completed", paid) for _ in range(CONCURRENT_DELIVERIES)]

    outcomes = deliver_together(CONCURRENT_DELIVERIES, lambda index: deliver(webhook_url, events[index]))

    assert outcomes == Counter({"granted": 1, "already_fulfilled": CONCURRENT_DELIVERIES - 1})
    assert_granted_once(engine, created["id"])


def test_completed_arriving_after_the_success_page_changes_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)
    assert fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine).balance == 100

    response = deliver(webhook_url, event)

    assert response.json() == {"received": True, "outcome": "already_fulfilled"}
    assert_granted_once(engine, session_id)


def test_a_redelivered_event_does_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)
    deliver(webhook_url, event)

    response = deliver(webhook_url, event)

    assert response.json() == {"received": True, "outcome": "duplicate"}
    assert_granted_once(engine, session_id)


@pytest.mark.parametrize(
    ("paid", "reason"),
    [
        ({"amount_total": 1}, "Paid 1 USD where the pack costs 900 USD."),
        ({"currency": "eur"}, "Paid 900 EUR where the pack costs 900 USD."),
    ],
    ids=["amount", "currency"],
)
def test_a_payment_that_differs_from_the_pack_is_refunded_once_and_grants_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User, paid: dict, reason: str
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id, **paid)
    again = fake_stripe.event("checkout.session.completed", fake_stripe.sessions[session_id])

    outcomes = deliver_together(CONCURRENT_DELIVERIES, lambda i: deliver(webhook_url, event if i % 2 else again))

    assert outcomes == Counter({"refunded_unfulfillable": 1, "already_fulfilled": 1, "duplicate": 8})
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.refund_reason) == ("refunded", reason)
    assert lots_of(engine, purchase.customer_id) == []
    assert balance_of(engine, purchase.customer_id) == 0
    charge = fake_stripe.charge_of(session_id)
    assert (charge["refunded"], charge["amount_refunded"]) == (True, charge["amount"])
    # a retry gets this one back
    refund = fake_stripe.refunds_by_idempotency_key[(None, f"litesubs-refund-{session_id}")]
    assert refund["payment_intent"] == purchase.stripe_payment_intent_id

    assert fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine).status == "refunded"
    refunded = fake_stripe.event("charge.refunded", charge)
    assert deliver(webhook_url, refunded).json()["outcome"] == "already_fulfilled"
    assert refund_requests(fake_stripe, purchase.stripe_payment_intent_id) == 1
    assert lots_of(engine, purchase.customer_id) == []


def test_a_refund_that_stripe_cannot_make_yet_is_retried_until_it_is_made(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """Stripe unreachable for the automatic refund: 500, nothing recorded, and Stripe's retry refunds once."""
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id, amount_total=1)
    charge = fake_stripe.charge_of(session_id)
    with fake_stripe.lock:
        del fake_stripe.charges[charge["id"]]  # Stripe does not know the payment for now

    assert deliver(webhook_url, event).status_code == 500
    assert untouched(engine, session_id, event["id"])

    with fake_stripe.lock:
        fake_stripe.charges[charge["id"]] = charge
    assert deliver(webhook_url, event).json()["outcome"] == "refunded_unfulfillable"
    assert fake_stripe.charge_of(session_id)["refunded"]
    assert purchase_of(engine, session_id).status == "refunded"


def test_an_unpaid_completed_session_grants_nothing_until_its_payment_succeeds(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)

    response = deliver(webhook_url, completed(fake_stripe, session_id, paid=False))

    assert response.json() == {"received": True, "outcome": "unpaid"}
    purchase = purchase_of(engine, session_id)
    assert purchase.status == "pending"
    assert lots_of_purchase(engine, purchase.id) == []

    succeeded = fake_stripe.event("checkout.session.async_payment_succeeded", fake_stripe.pay_later(session_id))
    assert deliver(webhook_url, succeeded).json()["outcome"] == "granted"
    assert_granted_once(engine, session_id)


def test_a_failed_asynchronous_payment_marks_the_purchase_failed(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    unpaid = fake_stripe.complete(session_id, paid=False)

    response = deliver(webhook_url, fake_stripe.event("checkout.session.async_payment_failed", unpaid))

    assert response.json() == {"received": True, "outcome": "failed"}
    purchase = purchase_of(engine, session_id)
    assert purchase.status == "failed"
    assert lots_of_purchase(engine, purchase.id) == []


def test_a_late_failure_event_never_undoes_a_paid_purchase(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id))

    failed = fake_stripe.event("checkout.session.async_payment_failed", fake_stripe.sessions[session_id])

    assert deliver(webhook_url, failed).json()["outcome"] == "already_fulfilled"
    assert_granted_once(engine, session_id)


def test_an_event_whose_processing_fails_is_not_swallowed(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """The event id is recorded in the same commit as its effect: after a failure, Stripe's retry is processed.

    The failure is the database's own: a stray credit lot already holds the purchase's id, so the
    grant breaks `credit_lot.purchase_id`'s uniqueness and the whole transaction rolls back.
    """
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)
    purchase = purchase_of(engine, session_id)
    customer = get_or_create_customer(creator_id=pack.creator_id, buyer_id=buyer.id, engine=engine)
    with Session(engine) as session:
        stray = CreditLot(customer_id=customer.id, source="purchase", purchase_id=purchase.id, granted=1, remaining=0)
        session.add(stray)
        session.commit()
        stray_id = stray.id

    assert deliver(webhook_url, event).status_code == 500
    assert not event_recorded(engine, event["id"])
    assert purchase_of(engine, session_id).status == "pending"

    with Session(engine) as session:
        session.delete(session.get(CreditLot, stray_id))
        session.commit()
    assert deliver(webhook_url, event).json()["outcome"] == "granted"
    assert_granted_once(engine, session_id)


def test_a_checkout_that_is_not_ours_is_acknowledged_and_ignored(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    foreign = {"id": "cs_test_foreign", "object": "checkout.session", "payment_status": "paid", "metadata": {}}
    event = fake_stripe.event("checkout.session.completed", foreign)

    response = deliver(webhook_url, event)

    assert (response.status_code, response.json()["outcome"]) == (200, "not_ours")
    assert purchase_of(engine, "cs_test_foreign") is None


def test_a_failed_payment_of_a_checkout_that_is_not_ours_is_acknowledged(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    foreign = {"id": "cs_test_foreign_failed", "object": "checkout.session", "payment_status": "unpaid"}
    event = fake_stripe.event("checkout.session.async_payment_failed", foreign)

    response = deliver(webhook_url, event)

    assert (response.status_code, response.json()["outcome"]) == (200, "not_ours")
    assert purchase_of(engine, "cs_test_foreign_failed") is None
    assert event_recorded(engine, event["id"])


def test_event_types_we_do_not_handle_are_acknowledged_without_a_trace(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    event = fake_stripe.event("customer.created", {"id": "cus_test_1", "object": "customer"})

    response = deliver(webhook_url, event)

    assert (response.status_code, response.json()) == (200, {"received": True, "outcome": "ignored"})
    assert not event_recorded(engine, event["id"])


# --- Refunds --------------------------------------------------------------------------------


def test_a_refund_takes_back_the_remaining_credits_once(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id))
    purchase = purchase_of(engine, session_id)
    debit(
        creator_id=pack.creator_id,
        customer_id=purchase.customer_id,
        amount=30,
        actor=Actor("api_key", 1),
        engine=engine,
    )
    stripe_client().v1.refunds.create({"payment_intent": purchase.stripe_payment_intent_id})
    refunded = fake_stripe.event("charge.refunded", fake_stripe.charge_of(session_id))

    assert deliver(webhook_url, refunded).json()["outcome"] == "refunded"
    assert deliver(webhook_url, refunded).json()["outcome"] == "duplicate"
    resent = fake_stripe.event("charge.refunded", fake_stripe.charge_of(session_id))
    assert deliver(webhook_url, resent).json()["outcome"] == "already_fulfilled"

    purchase = purchase_of(engine, session_id)
    assert purchase.status == "refunded"
    [lot] = lots_of(engine, purchase.customer_id)
    assert (lot.granted, lot.remaining) == (100, 0)
    kinds = [(entry.kind, entry.delta, entry.actor_type) for entry in entries_of(engine, purchase.customer_id)]
    assert kinds == [("purchase", 100, "stripe"), ("debit", -30, "api_key"), ("refund", -70, "stripe")]
    assert customer_row(engine, purchase.customer_id).credits_purchased == 0
    assert_invariants(engine, purchase.customer_id)


def test_a_partial_refund_leaves_the_credits_alone(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id))
    purchase = purchase_of(engine, session_id)
    stripe_client().v1.refunds.create({"payment_intent": purchase.stripe_payment_intent_id, "amount": 100})

    response = deliver(webhook_url, fake_stripe.event("charge.refunded", fake_stripe.charge_of(session_id)))

    assert response.json()["outcome"] == "partial_refund"
    assert purchase_of(engine, session_id).status == "paid"
    assert balance_of(engine, purchase.customer_id) == 100


# --- Events in any order -------------------------------------------------------------------


ORDERS = {
    "refund first": ["refunded", "completed"],
    "refund between completion and its redelivery": ["completed", "refunded", "completed"],
    "refund before an async success": ["unpaid", "refunded", "succeeded", "completed"],
    "refund redelivered before completion": ["refunded", "refunded", "completed", "succeeded"],
    "completion first": ["completed", "refunded", "refunded"],
}


@pytest.mark.parametrize("order", ORDERS.values(), ids=ORDERS.keys())
def test_a_refunded_purchase_holds_no_credits_whatever_the_order_of_events(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User, order: list[str]
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    unpaid = fake_stripe.complete(session_id, paid=False)
    paid = fake_stripe.pay_later(session_id)
    stripe_client().v1.refunds.create({"payment_intent": paid["payment_intent"]})
    events = {
        "unpaid": lambda: fake_stripe.event("checkout.session.completed", unpaid),
        "completed": lambda: fake_stripe.event("checkout.session.completed", paid),
        "succeeded": lambda: fake_stripe.event("checkout.session.async_payment_succeeded", paid),
        "refunded": lambda: fake_stripe.event("charge.refunded", fake_stripe.charge_of(session_id)),
    }

    for name in order:
        assert deliver(webhook_url, events[name]()).status_code == 200
    summary = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)

    purchase = purchase_of(engine, session_id)
    assert (purchase.status, summary.status, summary.balance) == ("refunded", "refunded", 0)
    assert [lot.remaining for lot in lots_of_purchase(engine, purchase.id)] in ([], [0])
    assert balance_of(engine, purchase.customer_id) == 0
    assert customer_row(engine, purchase.customer_id).credits_purchased == 0
    assert_invariants(engine, purchase.customer_id)


def test_a_refund_of_a_payment_that_is_not_ours_is_acknowledged(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    charge = {"id": "ch_test_foreign", "object": "charge", "payment_intent": "pi_test_foreign", "refunded": True}

    response = deliver(webhook_url, fake_stripe.event("charge.refunded", charge))

    assert (response.status_code, response.json()["outcome"]) == (200, "not_ours")


# --- Disputes -------------------------------------------------------------------------------


def test_a_dispute_takes_back_the_remaining_credits_and_winning_it_gives_them_back(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id))
    customer_id = purchase_of(engine, session_id).customer_id
    debit(creator_id=pack.creator_id, customer_id=customer_id, amount=30, actor=Actor("api_key", 1), engine=engine)

    opened = fake_stripe.event("charge.dispute.created", fake_stripe.dispute(session_id, reason="product_not_received"))
    assert deliver(webhook_url, opened).json()["outcome"] == "disputed"
    assert balance_of(engine, customer_id) == 0
    with pytest.raises(InsufficientCredits):
        debit(creator_id=pack.creator_id, customer_id=customer_id, amount=1, actor=Actor("api_key", 1), engine=engine)

    won = fake_stripe.dispute(session_id, status="won")
    assert deliver(webhook_url, fake_stripe.event("charge.dispute.closed", won)).json()["outcome"] == "dispute_won"
    assert deliver(webhook_url, fake_stripe.event("charge.dispute.closed", won)).json()["outcome"] == "dispute_won"

    assert balance_of(engine, customer_id) == 70
    entries = [(e.kind, e.delta, e.reason, e.actor_type) for e in entries_of(engine, customer_id)]
    assert entries == [
        ("purchase", 100, "Bought Starter", "stripe"),
        ("debit", -30, "", "api_key"),
        ("dispute", -70, "Payment disputed: product not received", "stripe"),
        ("dispute", 70, "Dispute won", "stripe"),
    ]
    page, _names, words = customer_ledger(creator_id=pack.creator_id, customer_id=customer_id, engine=engine)
    assert [entry.kind for entry in page.entries][:2] == ["dispute", "dispute"]  # on the creator's customer page
    assert [words[entry.id] for entry in page.entries][:2] == ["Disputed", "Disputed"]
    assert_invariants(engine, customer_id)


def test_a_lost_dispute_keeps_the_credits_taken(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id))
    customer_id = purchase_of(engine, session_id).customer_id
    deliver(webhook_url, fake_stripe.event("charge.dispute.created", fake_stripe.dispute(session_id)))

    lost = fake_stripe.event("charge.dispute.closed", fake_stripe.dispute(session_id, status="lost"))

    assert deliver(webhook_url, lost).json()["outcome"] == "dispute_lost"
    assert balance_of(engine, customer_id) == 0
    assert [(e.kind, e.delta) for e in entries_of(engine, customer_id)] == [("purchase", 100), ("dispute", -100)]
    assert_invariants(engine, customer_id)


# --- Malformed events -----------------------------------------------------------------------


MALFORMED = {
    "no data.object": {"data": {}},
    "data.object not an object": {"data": {"object": "cs_test_1"}},
    "data.object without id": {"data": {"object": {"object": "checkout.session", "payment_status": "paid"}}},
    "no event id": {"id": None},
    "no type": {"type": None},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_event_of_unexpected_shape_is_answered_400_and_logged(
    engine: Engine,
    fake_stripe: FakeStripe,
    webhook_url: str,
    pack: Pack,
    buyer: User,
    change: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = {**completed(fake_stripe, session_id), **change}

    with caplog.at_level("WARNING"):
        response = deliver(webhook_url, event)

    if change == {"type": None}:  # no type we handle: acknowledged like any other type we ignore
        assert (response.status_code, response.json()["outcome"]) == (200, "ignored")
    else:
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_event"
        assert any("Stripe event" in record.getMessage() for record in caplog.records)
    assert untouched(engine, session_id, event["id"] or "evt_none")


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe"], ids=["text", "array", "string", "bytes"]
)
def test_a_signed_body_that_is_not_a_json_object_is_answered_400(webhook_url: str, body: bytes) -> None:
    signature = FakeStripe.sign(body.decode("latin-1"), WEBHOOK_SECRET)
    response = httpx.post(webhook_url, content=body, headers={"Stripe-Signature": signature}, timeout=30)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_signature", "malformed_event")


def test_a_body_over_1_mb_is_refused_before_it_is_read(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    event = completed(fake_stripe, session_id)
    event["data"]["object"]["padding"] = "x" * (1024 * 1024)

    response = deliver(webhook_url, event)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert untouched(engine, session_id, event["id"])

    chunked = httpx.post(webhook_url, content=iter([b"{" + b" " * (1024 * 1024), b"}"]), timeout=30)
    assert chunked.status_code == 413


# --- Honouring what the buyer saw -----------------------------------------------------------


def test_a_checkout_begun_while_on_sale_is_honoured_after_the_pack_was_disabled(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    set_pack_active(creator_id=pack.creator_id, pack_id=pack.id, active=False, engine=engine)

    assert deliver(webhook_url, completed(fake_stripe, session_id)).json()["outcome"] == "granted"
    assert_granted_once(engine, session_id)


# --- Helpers --------------------------------------------------------------------------------


def deliver_together(count: int, attempt) -> Counter:
    """Run `attempt(i)` in `count` threads released at once; count the outcomes each reported."""
    barrier = threading.Barrier(count)

    def run(index: int) -> str:
        barrier.wait()
        result = attempt(index)
        if isinstance(result, httpx.Response):
            assert result.status_code == 200, result.text
            return result.json()["outcome"]
        return result

    with ThreadPoolExecutor(max_workers=count) as pool:
        return Counter(pool.map(run, range(count)))


def refund_requests(fake_stripe: FakeStripe, payment_intent_id: str) -> int:
    return sum(
        1
        for method, path, params in fake_stripe.requests
        if (method, path) == ("POST", "/v1/refunds") and params.get("payment_intent") == payment_intent_id
    )


def assert_granted_once(engine: Engine, session_id: str) -> None:
    purchase = purchase_of(engine, session_id)
    assert purchase.status == "paid"
    customer = customer_row(engine, purchase.customer_id)
    [lot] = lots_of(engine, customer.id)
    assert (lot.purchase_id, lot.granted) == (purchase.id, purchase.credits)
    assert [(entry.kind, entry.delta) for entry in entries_of(engine, customer.id)] == [("purchase", purchase.credits)]
    assert (customer.balance, customer.credits_purchased) == (purchase.credits, purchase.credits)
    assert_invariants(engine, customer.id)
