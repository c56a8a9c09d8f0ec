"""Mail: rendering, SMTP (plain, STARTTLS with login, implicit TLS), the log, and delivery through the outbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.db import write_session
from litesubs.models import OutboxMessage, utcnow
from litesubs.services import mail, outbox
from litesubs.services.mail import MailDeliverer, Message, Transport
from tests.mail_server import MailServer, self_signed_tls

FROM = "Litesubs <no-reply@litesubs.test>"


@pytest.fixture
def server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


def _message(to: str = "ann@example.com") -> Message:
    return mail.render(
        "password_reset",
        to=to,
        subject="Reset your Litesubs password",
        name="Ann <b>",
        email=to,
        reset_url=mail.link("/reset-password", token="abc"),
    )


def _deliver(engine: Engine, server: MailServer, *, now=None) -> int:
    deliverer = MailDeliverer(Transport(smtp_url=server.url, mail_from=FROM))
    return outbox.deliver_due({mail.EMAIL_KIND: deliverer}, engine=engine, now=now)


def test_a_mail_has_a_text_and_an_html_part_with_links_from_the_base_url() -> None:
    message = _message()
    assert "http://localhost:3000/reset-password?token=abc" in message.text
    assert "Hello Ann <b>," in message.text  # plain text is not HTML-escaped
    assert "Ann &lt;b&gt;" in message.html
    assert "Ann <b>" not in message.html
    assert 'href="http://localhost:3000/reset-password?token=abc"' in message.html
    assert "Litesubs" in message.html
    # No tracking: no images, no remote resources, nothing but links.
    assert "<img" not in message.html
    assert "src=" not in message.html


def test_smtp_delivers_both_parts(server: MailServer) -> None:
    Transport(smtp_url=server.url, mail_from=FROM).send(_message("bob@example.com"))
    (received,) = server.wait_for("bob@example.com")
    assert received.subject == "Reset your Litesubs password"
    assert received.message["From"] == FROM
    assert received.link_to("/reset-password") == "http://localhost:3000/reset-password?token=abc"
    assert "Choose a new password" in received.html


def test_starttls_with_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = self_signed_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our test certificate, and only it
    server = MailServer(tls=context, login=("mailer", "s3cret pass")).start()
    try:
        # The server refuses mail before STARTTLS and login: delivery proves both happened.
        url = server.url.replace("s3cret pass", "s3cret%20pass")
        Transport(smtp_url=url, mail_from=FROM).send(_message("tls@example.com"))
        server.wait_for("tls@example.com")
        with pytest.raises(Exception, match=r"535|uthentication"):
            Transport(smtp_url=url.replace("s3cret", "wrong"), mail_from=FROM).send(_message("no@example.com"))
    finally:
        server.stop()


def test_implicit_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = self_signed_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server = MailServer(tls=context, implicit_tls=True).start()
    try:
        assert server.url.startswith("smtps://")
        Transport(smtp_url=server.url, mail_from=FROM).send(_message("smtps@example.com"))
        server.wait_for("smtps@example.com")
    finally:
        server.stop()


def test_without_smtp_url_the_mail_goes_to_the_log_with_its_links(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="litesubs.services.mail"):
        Transport(smtp_url=None, mail_from=FROM).send(_message("log@example.com"))
    assert "To: log@example.com" in caplog.text
    assert "http://localhost:3000/reset-password?token=abc" in caplog.text


def test_queued_mail_is_sent_by_the_worker_once_and_then_forgets_its_text(
    fresh_engine: Engine, server: MailServer
) -> None:
    with write_session(fresh_engine) as session:
        row = mail.send_later(session, _message("queued@example.com"))
    assert server.mails == []  # queuing sends nothing: no request waits on SMTP
    assert _deliver(fresh_engine, server) == 1
    server.wait_for("queued@example.com")
    assert _deliver(fresh_engine, server) == 0
    assert len(server.to("queued@example.com")) == 1
    with Session(fresh_engine) as session:
        stored = session.get(OutboxMessage, row.id)
    assert stored.status == outbox.DELIVERED
    assert json.loads(stored.payload) == {
        "to": "queued@example.com",
        "subject": "Reset your Litesubs password",
        "text": "",
        "html": "",
    }


def test_a_mail_of_a_rolled_back_change_is_never_sent(fresh_engine: Engine, server: MailServer) -> None:
    def change_that_fails() -> None:
        with write_session(fresh_engine) as session:
            mail.send_later(session, _message("rolled-back@example.com"))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    _deliver(fresh_engine, server)
    assert server.to("rolled-back@example.com") == []


def test_smtp_down_then_back_the_mail_is_sent_after_all(fresh_engine: Engine, server: MailServer) -> None:
    server.stop()
    now = utcnow()
    with write_session(fresh_engine) as session:
        row = mail.send_later(session, _message("patient@example.com"), now=now)
    assert _deliver(fresh_engine, server, now=now) == 1
    with Session(fresh_engine) as session:
        stored = session.get(OutboxMessage, row.id)
    assert stored.status == outbox.PENDING
    assert stored.attempts == 1
    assert "Connection" in stored.last_error or "refused" in stored.last_error
    assert json.loads(stored.payload)["text"]  # kept for the retry
    server.start()
    assert _deliver(fresh_engine, server, now=now + timedelta(seconds=1)) == 0  # not due yet
    assert _deliver(fresh_engine, server, now=now + timedelta(seconds=10)) == 1
    (received,) = server.wait_for("patient@example.com")
    assert received.link_to("/reset-password").endswith("token=abc")
    with Session(fresh_engine) as session:
        assert session.get(OutboxMessage, row.id).status == outbox.DELIVERED


def test_a_recipient_the_server_refuses_for_good_is_not_retried(fresh_engine: Engine, server: MailServer) -> None:
    server.inbox.refused.add("gone@example.com")
    with write_session(fresh_engine) as session:
        row = mail.send_later(session, _message("gone@example.com"))
    assert _deliver(fresh_engine, server) == 1
    with Session(fresh_engine) as session:
        stored = session.get(OutboxMessage, row.id)
    assert stored.status == outbox.FAILED
    assert stored.attempts == 1
    assert "550" in stored.last_error
    assert server.to("gone@example.com") == []
