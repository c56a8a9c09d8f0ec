"""Receipts, refund notices and "new sale" mails: one each per purchase, however often Stripe delivers the event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import Pack, User
from litesubs.payments.checkout import fulfil_session_id
from litesubs.payments.stripe_gateway import stripe_client
from litesubs.services.ledger import Actor, debit
from tests.mail_server import MailServer, deliver_mail_to, queued_mail_to
from tests.payments.conftest import WEBHOOK_SECRET, open_checkout
from tests.payments.records import purchase_of
from tests.stripe_server import FakeStripe

pytestmark = pytest.mark.usefixtures("stripe_mode")


@pytest.fixture(scope="module")
def server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


def _deliver(url: str, event: dict) -> str:
    return FakeStripe.deliver(url, event, secret=WEBHOOK_SECRET).json()["outcome"]


def _pay(engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User) -> str:
    """Pay for `pack`, with the webhook delivered three times and the success page opened in between."""
    session_id = open_checkout(engine, pack, buyer)
    event = fake_stripe.event("checkout.session.completed", fake_stripe.complete(session_id))
    assert _deliver(webhook_url, event) == "granted"
    assert _deliver(webhook_url, event) == "duplicate"
    fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)
    again = fake_stripe.event("checkout.session.completed", fake_stripe.complete(session_id))
    assert _deliver(webhook_url, again) == "already_fulfilled"
    return session_id


def test_a_paid_purchase_mails_one_receipt_and_one_sale_notice(
    engine: Engine,
    fake_stripe: FakeStripe,
    webhook_url: str,
    pack: Pack,
    buyer: User,
    creator: User,
    server: MailServer,
) -> None:
    session_id = _pay(engine, fake_stripe, webhook_url, pack, buyer)
    purchase = purchase_of(engine, session_id)

    assert len(queued_mail_to(engine, buyer.email)) == 1
    assert len(queued_mail_to(engine, creator.email)) == 1
    deliver_mail_to(engine, buyer.email, server)
    deliver_mail_to(engine, creator.email, server)
    (receipt,) = server.wait_for(buyer.email)
    assert receipt.subject == "Your receipt from Ada Creator: Starter"
    for detail in ("Ada Creator", "Starter", "100", "$9.00", f"Purchase id: {purchase.id}", "UTC"):
        assert detail in receipt.text
    assert receipt.link_to("/wallet") == "http://litesubs.test/wallet"
    assert "$9.00" in receipt.html
    assert "Open my wallet" in receipt.html
    (sale,) = server.wait_for(creator.email)
    assert sale.subject == "New sale: Starter for $9.00"
    assert buyer.email in sale.text
    assert sale.link_to("/dashboard/customers/") == f"http://litesubs.test/dashboard/customers/{purchase.customer_id}"
    assert "http://litesubs.test/account" in sale.links()


def test_a_creator_who_switched_sale_mails_off_gets_none(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User, creator: User
) -> None:
    with Session(engine) as session:
        row = session.get(User, creator.id)
        row.sale_mail = False
        session.add(row)
        session.commit()
    _pay(engine, fake_stripe, webhook_url, pack, buyer)
    assert len(queued_mail_to(engine, buyer.email)) == 1
    assert queued_mail_to(engine, creator.email) == []


def test_a_refund_mails_one_notice_with_the_credits_taken_back(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User, server: MailServer
) -> None:
    session_id = _pay(engine, fake_stripe, webhook_url, pack, buyer)
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
    assert _deliver(webhook_url, refunded) == "refunded"
    assert _deliver(webhook_url, refunded) == "duplicate"
    resent = fake_stripe.event("charge.refunded", fake_stripe.charge_of(session_id))
    assert _deliver(webhook_url, resent) == "already_fulfilled"

    assert len(queued_mail_to(engine, buyer.email)) == 2  # the receipt, then one refund notice
    deliver_mail_to(engine, buyer.email, server)
    notice = server.wait_for(buyer.email, count=2)[-1]
    assert notice.subject == "Refund from Ada Creator: Starter"
    assert "Credits taken back:  70" in notice.text
    assert "now 0 credits" in notice.text
    assert f"Purchase id:         {purchase.id}" in notice.text
