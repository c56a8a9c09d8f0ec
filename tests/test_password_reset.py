"""Forgotten passwords: the mail, the single-use link and its every way of going void, rate limits, the CLI."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import AccountToken, User, UserSession, utcnow
from litesubs.services import account_tokens, accounts, mail, outbox, password_reset
from litesubs.services.account_tokens import LinkRefused
from litesubs.services.errors import InvalidCredentials, InvalidRequest, RateLimited
from litesubs.services.mail import MailDeliverer, Transport
from litesubs.settings import REPO_ROOT
from tests.mail_server import MailServer

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


def _deliver(engine: Engine, server: MailServer, now: datetime | None = None) -> None:
    deliverer = MailDeliverer(Transport(smtp_url=server.url, mail_from="Litesubs <no-reply@litesubs.test>"))
    outbox.deliver_due({mail.EMAIL_KIND: deliverer}, engine=engine, now=now)


def _user(engine: Engine) -> User:
    email = f"reset-{secrets.token_hex(5)}@example.com"
    return accounts.register(name="Rae Reset", email=email, password=PASSWORD, engine=engine)


def _client() -> str:
    return f"client-{secrets.token_hex(4)}"


def _reset_token(engine: Engine, server: MailServer, user: User, *, count: int = 1, now=None) -> str:
    password_reset.request_reset(email=user.email.upper(), client_key=_client(), engine=engine, now=now)
    _deliver(engine, server, now)
    mails = [m for m in server.wait_for(user.email, count=count + 1) if "Reset" in m.subject]
    link = mails[-1].link_to("/reset-password")
    assert link.startswith("http://localhost:3000/reset-password?token=")
    return parse_qs(urlparse(link).query)["token"][0]


def _sign_in(engine: Engine, user: User, password: str) -> User:
    return accounts.authenticate(email=user.email, password=password, client_key=_client(), engine=engine)


def test_the_mailed_link_sets_a_new_password_once_and_signs_out_everywhere(
    fresh_engine: Engine, server: MailServer
) -> None:
    user = _user(fresh_engine)
    old_session = accounts.start_session(user_id=user.id, engine=fresh_engine)
    token = _reset_token(fresh_engine, server, user)
    with Session(fresh_engine) as session:
        stored = session.exec(select(AccountToken).where(AccountToken.user_id == user.id)).all()
    assert token not in {row.token_hash for row in stored}  # stored hashed
    assert account_tokens.token_hash(token) in {row.token_hash for row in stored}

    password_reset.check_link(token=token, engine=fresh_engine)
    password_reset.reset_password(token=token, new_password="a brand new secret", engine=fresh_engine)

    assert _sign_in(fresh_engine, user, "a brand new secret").id == user.id
    with pytest.raises(InvalidCredentials):
        _sign_in(fresh_engine, user, PASSWORD)
    assert accounts.user_for_token(token=old_session, engine=fresh_engine) is None
    with Session(fresh_engine) as session:
        assert session.get(User, user.id).email_verified_at is not None  # the link proved the mailbox
        live = session.exec(
            select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        ).all()
    assert live == []
    with pytest.raises(LinkRefused, match="already used"):
        password_reset.reset_password(token=token, new_password="yet another secret", engine=fresh_engine)
    assert _sign_in(fresh_engine, user, "a brand new secret").id == user.id


def test_unknown_addresses_get_the_same_answer_and_no_mail(fresh_engine: Engine, server: MailServer) -> None:
    address = f"nobody-{secrets.token_hex(4)}@example.com"
    assert password_reset.request_reset(email=address, client_key=_client(), engine=fresh_engine) is None
    _deliver(fresh_engine, server)
    assert server.to(address) == []


def test_an_expired_link_changes_nothing(fresh_engine: Engine, server: MailServer) -> None:
    user = _user(fresh_engine)
    issued = utcnow()
    token = _reset_token(fresh_engine, server, user, now=issued)
    later = issued + password_reset.LIFETIME + timedelta(seconds=1)
    with pytest.raises(LinkRefused, match="expired"):
        password_reset.check_link(token=token, engine=fresh_engine, now=later)
    with pytest.raises(LinkRefused, match="expired"):
        password_reset.reset_password(token=token, new_password="too late now", engine=fresh_engine, now=later)
    assert _sign_in(fresh_engine, user, PASSWORD).id == user.id


def test_a_newer_link_supersedes_the_older_one(fresh_engine: Engine, server: MailServer) -> None:
    user = _user(fresh_engine)
    first = _reset_token(fresh_engine, server, user)
    second = _reset_token(fresh_engine, server, user, count=2)
    with pytest.raises(LinkRefused, match="newer link"):
        password_reset.reset_password(token=first, new_password="from the old link", engine=fresh_engine)
    assert _sign_in(fresh_engine, user, PASSWORD).id == user.id
    password_reset.reset_password(token=second, new_password="from the new link", engine=fresh_engine)
    assert _sign_in(fresh_engine, user, "from the new link").id == user.id


def test_a_password_change_voids_the_link(fresh_engine: Engine, server: MailServer) -> None:
    user = _user(fresh_engine)
    token = _reset_token(fresh_engine, server, user)
    current = accounts.start_session(user_id=user.id, engine=fresh_engine)
    accounts.change_password(
        user_id=user.id,
        current_password=PASSWORD,
        new_password="changed by hand",
        current_token=current,
        engine=fresh_engine,
    )
    with pytest.raises(LinkRefused, match="password was changed"):
        password_reset.reset_password(token=token, new_password="attacker's choice", engine=fresh_engine)
    assert _sign_in(fresh_engine, user, "changed by hand").id == user.id


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 400])
def test_a_made_up_link_is_refused(fresh_engine: Engine, token: str) -> None:
    with pytest.raises(LinkRefused, match="not valid"):
        password_reset.reset_password(token=token, new_password="whatever it is", engine=fresh_engine)


def test_the_new_password_follows_the_registration_rules(fresh_engine: Engine, server: MailServer) -> None:
    user = _user(fresh_engine)
    token = _reset_token(fresh_engine, server, user)
    with pytest.raises(InvalidRequest) as refused:
        password_reset.reset_password(token=token, new_password="short", engine=fresh_engine)
    assert refused.value.field == "new_password"
    password_reset.check_link(token=token, engine=fresh_engine)  # still usable after a refused password


def test_requests_are_limited_per_address_and_per_client(fresh_engine: Engine) -> None:
    now = utcnow()
    address = f"limited-{secrets.token_hex(4)}@example.com"
    for _ in range(password_reset.REQUESTS_PER_ADDRESS):
        password_reset.request_reset(email=address, client_key=_client(), engine=fresh_engine, now=now)
    with pytest.raises(RateLimited, match="password reset requests"):
        password_reset.request_reset(email=address, client_key=_client(), engine=fresh_engine, now=now)
    client = _client()
    for index in range(password_reset.REQUESTS_PER_CLIENT):
        password_reset.request_reset(email=f"c{index}-{address}", client_key=client, engine=fresh_engine, now=now)
    with pytest.raises(RateLimited):
        password_reset.request_reset(email=f"other-{address}", client_key=client, engine=fresh_engine, now=now)


def test_an_account_gets_at_most_a_few_reset_mails_an_hour(fresh_engine: Engine) -> None:
    user = _user(fresh_engine)
    start = utcnow()
    for minute in range(password_reset.MAILS_PER_HOUR + 2):
        when = start + timedelta(minutes=minute)
        password_reset.request_reset(email=user.email, client_key=_client(), engine=fresh_engine, now=when)
    with Session(fresh_engine) as session:
        issued = session.exec(
            select(AccountToken).where(
                AccountToken.user_id == user.id, AccountToken.purpose == account_tokens.PASSWORD_RESET
            )
        ).all()
    assert len(issued) == password_reset.MAILS_PER_HOUR


def test_the_operator_command_prints_a_working_link(fresh_engine: Engine) -> None:
    user = _user(fresh_engine)
    result = subprocess.run(
        [sys.executable, "-m", "litesubs", "reset-link", user.email],
        cwd=REPO_ROOT,
        env={"DATABASE_URL": fresh_engine.url.render_as_string(hide_password=False), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip().splitlines()[-1]
    token = parse_qs(urlparse(link).query)["token"][0]
    password_reset.reset_password(token=token, new_password="set by the operator", engine=fresh_engine)
    assert _sign_in(fresh_engine, user, "set by the operator").id == user.id

    unknown = subprocess.run(
        [sys.executable, "-m", "litesubs", "reset-link", "nobody@example.com"],
        cwd=REPO_ROOT,
        env={"DATABASE_URL": fresh_engine.url.render_as_string(hide_password=False), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 1
    assert "No account has the email" in unknown.stderr
