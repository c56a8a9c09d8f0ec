"""A real SMTP server for tests (aiosmtpd on a free local port) that keeps every mail it receives."""

from __future__ import annotations

import email
import re
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import OutboxMessage
from litesubs.services import mail, outbox
from litesubs.services.mail import MailDeliverer, Transport
from tests.app_server import free_port

LINK = re.compile(r"https?://[^\s<>\"]+")


@dataclass(frozen=True)
class ReceivedMail:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()

    def links(self) -> list[str]:
        return LINK.findall(self.text)

    def link_to(self, path: str) -> str:
        """The first link of the plain-text part whose path starts with `path`."""
        return next(link for link in self.links() if path in link)


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []
        self.refused: set[str] = set()  # recipients answered with a permanent 550
        self.changed = threading.Condition()

    async def handle_RCPT(
        self, _server: SMTP, _session: object, envelope: Envelope, address: str, _options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: object, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=default)
        with self.changed:
            self.mails.append(ReceivedMail(to=list(envelope.rcpt_tos), message=message))
            self.changed.notify_all()
        return "250 Message accepted for delivery"


class MailServer:
    """`start`/`stop` (the port stays the same), `url` for SMTP_URL, `wait_for` a mail to an address."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.inbox = _Inbox()
        self._tls, self._implicit_tls, self._login = tls, implicit_tls, login
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        scheme = "smtps" if self._implicit_tls else "smtp"
        credentials = f"{self._login[0]}:{self._login[1]}@" if self._login else ""
        return f"{scheme}://{credentials}localhost:{self.port}"

    def start(self) -> MailServer:
        options: dict[str, object] = {}
        if self._tls is not None and not self._implicit_tls:
            options.update(tls_context=self._tls, require_starttls=True)
        if self._login is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=self._tls if self._implicit_tls else None,
            server_hostname="localhost",
            ready_timeout=10,
            **options,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def mails(self) -> list[ReceivedMail]:
        return list(self.inbox.mails)

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.inbox.mails if address in mail.to]

    def wait_for(self, address: str, *, count: int = 1, timeout: float = 20) -> list[ReceivedMail]:
        """The mails to `address` once there are `count` of them; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.inbox.changed:
            while len(self.to(address)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.to(address))} mails to {address} after {timeout}s, expected {count}"
                self.inbox.changed.wait(left)
        return self.to(address)

    def _authenticate(self, _server: SMTP, _session: object, _envelope: Envelope, mechanism: str, auth_data: object):
        expected = self._login
        ok = (
            isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == expected
        )
        return AuthResult(success=ok, handled=False)


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for "localhost" and the certificate file a client must trust (SSL_CERT_FILE)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def queued_mail_to(engine: Engine, address: str) -> list[OutboxMessage]:
    """The outbox's mail rows to `address`, oldest first (any status)."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == mail.EMAIL_KIND).order_by(OutboxMessage.id)
        ).all()
    return [row for row in rows if mail.message_of(row).to == address]


def deliver_mail_to(engine: Engine, address: str, server: MailServer) -> int:
    """Deliver the pending mail to `address` as the worker would, leaving every other outbox row alone.

    Tests that share a database with others (whose rows a full `outbox.deliver_due` would take) use this.
    """
    deliverer = MailDeliverer(Transport(smtp_url=server.url, mail_from="Litesubs <no-reply@litesubs.test>"))
    pending = [row for row in queued_mail_to(engine, address) if row.status == outbox.PENDING]
    for row in pending:
        outbox.settle(row, deliverer.deliver(row, engine=engine), deliverer=deliverer, engine=engine)
    return len(pending)
