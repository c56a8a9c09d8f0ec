"""Verified emails: the mail after registration, send again, changing the address, and the API's `email_verified`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import User, utcnow
from litesubs.services import accounts, email_verification, mail, outbox
from litesubs.services.account_tokens import LinkRefused
from litesubs.services.customer_accounts import customer_account, page_customers
from litesubs.services.customers import get_or_create_customer
from litesubs.services.errors import InvalidRequest, RateLimited
from litesubs.services.mail import MailDeliverer, Transport
from tests.mail_server import MailServer, ReceivedMail

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


def _deliver(engine: Engine, server: MailServer) -> None:
    deliverer = MailDeliverer(Transport(smtp_url=server.url, mail_from="Litesubs <no-reply@litesubs.test>"))
    outbox.deliver_due({mail.EMAIL_KIND: deliverer}, engine=engine)


def _register(engine: Engine, name: str = "Vera Verify") -> User:
    email = f"{name.split()[0].lower()}-{secrets.token_hex(5)}@example.com"
    return accounts.register(name=name, email=email, password=PASSWORD, engine=engine)


def _token(received: ReceivedMail) -> str:
    return parse_qs(urlparse(received.link_to("/verify-email")).query)["token"][0]


def _user(engine: Engine, user_id: int) -> User:
    with Session(engine) as session:
        return session.get(User, user_id)


def test_registration_mails_a_link_that_verifies_the_address(fresh_engine: Engine, server: MailServer) -> None:
    user = _register(fresh_engine)
    assert user.email_verified_at is None
    _deliver(fresh_engine, server)
    (received,) = server.wait_for(user.email)
    assert received.subject == "Confirm your email address for Litesubs"
    assert "Welcome to Litesubs" in received.text

    verified = email_verification.verify(token=_token(received), engine=fresh_engine)

    assert (verified.user.id, verified.changed_email) == (user.id, False)
    assert _user(fresh_engine, user.id).email_verified_at is not None
    with pytest.raises(LinkRefused, match="already used"):
        email_verification.verify(token=_token(received), engine=fresh_engine)


def test_send_again_supersedes_the_first_link_and_is_rate_limited(fresh_engine: Engine, server: MailServer) -> None:
    user = _register(fresh_engine)
    client = f"client-{secrets.token_hex(4)}"
    now = utcnow()
    _deliver(fresh_engine, server)  # one mail at a time: the worker sends a batch in parallel, in any order
    for sent in range(email_verification.RESENDS_PER_USER):
        email_verification.send_again(user_id=user.id, client_key=client, engine=fresh_engine, now=now)
        server.wait_for(user.email, count=sent + 1)
        _deliver(fresh_engine, server)
    with pytest.raises(RateLimited):
        email_verification.send_again(user_id=user.id, client_key=client, engine=fresh_engine, now=now)
    first, *_middle, latest = server.wait_for(user.email, count=3)
    with pytest.raises(LinkRefused, match="newer link"):
        email_verification.verify(token=_token(first), engine=fresh_engine)
    email_verification.verify(token=_token(latest), engine=fresh_engine)
    # Once verified, "send again" sends nothing more.
    email_verification.send_again(
        user_id=user.id, client_key=client, engine=fresh_engine, now=now + timedelta(minutes=2)
    )
    _deliver(fresh_engine, server)
    assert len(server.to(user.email)) == 3


def test_an_expired_link_verifies_nothing(fresh_engine: Engine, server: MailServer) -> None:
    user = _register(fresh_engine)
    _deliver(fresh_engine, server)
    (received,) = server.wait_for(user.email)
    later = utcnow() + email_verification.LIFETIME + timedelta(minutes=1)
    with pytest.raises(LinkRefused, match="expired"):
        email_verification.verify(token=_token(received), engine=fresh_engine, now=later)
    assert _user(fresh_engine, user.id).email_verified_at is None


def test_changing_the_email_needs_the_password_and_the_new_address_verified(
    fresh_engine: Engine, server: MailServer
) -> None:
    user = _register(fresh_engine)
    new = f"new-{secrets.token_hex(5)}@example.com"
    client = f"client-{secrets.token_hex(4)}"
    with pytest.raises(InvalidRequest) as wrong:
        email_verification.request_change(
            user_id=user.id, password="not my password", new_email=new, client_key=client, engine=fresh_engine
        )
    assert wrong.value.field == "password"
    for bad, field in [("not an email", "new_email"), (user.email.upper(), "new_email"), ("", "new_email")]:
        with pytest.raises(InvalidRequest) as refused:
            email_verification.request_change(
                user_id=user.id, password=PASSWORD, new_email=bad, client_key=client, engine=fresh_engine
            )
        assert refused.value.field == field

    assert (
        email_verification.request_change(
            user_id=user.id, password=PASSWORD, new_email=new.upper(), client_key=client, engine=fresh_engine
        )
        == new
    )
    assert _user(fresh_engine, user.id).email == user.email  # unchanged until the new address is verified
    assert email_verification.pending_change(user_id=user.id, engine=fresh_engine) == new
    _deliver(fresh_engine, server)
    (received,) = server.wait_for(new)
    assert "You asked to use" in received.text

    verified = email_verification.verify(token=_token(received), engine=fresh_engine)

    assert verified.changed_email
    changed = _user(fresh_engine, user.id)
    assert (changed.email, changed.email_verified_at is not None) == (new, True)
    assert email_verification.pending_change(user_id=user.id, engine=fresh_engine) is None
    assert accounts.authenticate(email=new, password=PASSWORD, client_key=client, engine=fresh_engine).id == user.id


def test_an_address_taken_meanwhile_is_not_switched_to(fresh_engine: Engine, server: MailServer) -> None:
    user = _register(fresh_engine)
    wanted = f"wanted-{secrets.token_hex(5)}@example.com"
    email_verification.request_change(
        user_id=user.id, password=PASSWORD, new_email=wanted, client_key="c", engine=fresh_engine
    )
    accounts.register(name="Quick Taker", email=wanted, password=PASSWORD, engine=fresh_engine)
    _deliver(fresh_engine, server)
    change_mail = next(m for m in server.wait_for(wanted, count=2) if "You asked to use" in m.text)
    with pytest.raises(LinkRefused, match="Another account"):
        email_verification.verify(token=_token(change_mail), engine=fresh_engine)
    assert _user(fresh_engine, user.id).email == user.email


def test_the_api_says_whether_a_customer_email_is_verified(fresh_engine: Engine, server: MailServer) -> None:
    creator, buyer = _register(fresh_engine, "Cleo Creator"), _register(fresh_engine, "Bo Buyer")
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=fresh_engine)
    assert (
        customer_account(creator_id=creator.id, ref=buyer.email, engine=fresh_engine).customer.email_verified is False
    )
    _deliver(fresh_engine, server)
    email_verification.verify(token=_token(server.wait_for(buyer.email)[0]), engine=fresh_engine)
    assert customer_account(creator_id=creator.id, ref=customer.id, engine=fresh_engine).customer.email_verified
    [listed] = page_customers(creator_id=creator.id, engine=fresh_engine).customers
    assert listed.email_verified is True
