"""Mail: messages rendered from templates, queued in the outbox, sent by the worker through SMTP (or the log).

The rules, from DESIGN.md ("Outbound") and the mail issue:

- A mail is rendered when the change it reports happens and queued with `send_later` in that
  change's transaction: a crash never loses it, a change that rolled back never sends it, and no
  request waits for the SMTP server. The worker sends it (`MailDeliverer`) and retries failed
  sends on the outbox's schedule.
- Every mail has a plain-text part and an HTML part in the product's look (Jinja2 templates in
  `litesubs/templates/mail/`), no tracking pixels or remote images, and links built from
  LITESUBS_BASE_URL.
- `SMTP_URL` says where mail goes: `smtp://` (STARTTLS when the server offers it; plain for a local
  sink), `smtps://` (TLS from the start), with optional `user:password@`. Without it each mail is
  written to the server log with its links, so a local instance still works.
- A mail's text holds single-use links (a password reset): once delivered, or failed for good,
  its outbox row keeps only the recipient and subject.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlparse

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Connection, Engine, insert
from sqlmodel import Session

from litesubs.models import OutboxMessage, utcnow
from litesubs.services import outbox
from litesubs.settings import get_settings

logger = logging.getLogger(__name__)

EMAIL_KIND = "email"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
SMTP_TIMEOUT_SECONDS = 20
PRODUCT = "Litesubs"


@dataclass(frozen=True)
class Message:
    """One mail to one recipient: both parts rendered."""

    to: str
    subject: str
    text: str
    html: str


def render(template: str, *, to: str, subject: str, **context: Any) -> Message:
    """`<template>.txt` and `<template>.html` with `context`, plus `subject`, `product` and `base_url`."""
    context = {"subject": subject, "product": PRODUCT, "base_url": get_settings().base_url, **context}
    environment = _environment()
    return Message(
        to=to,
        subject=subject,
        text=environment.get_template(f"{template}.txt").render(context).strip() + "\n",
        html=environment.get_template(f"{template}.html").render(context),
    )


def link(path: str, **query: str) -> str:
    """An absolute link into the app, from LITESUBS_BASE_URL (mail has no page to be relative to)."""
    url = get_settings().base_url + path
    return f"{url}?{urlencode(query)}" if query else url


def send_later(session: Session, message: Message, *, now: datetime | None = None) -> OutboxMessage:
    """Queue `message` in the caller's transaction; the worker sends it once the transaction commits."""
    return outbox.enqueue(session, kind=EMAIL_KIND, payload=json.dumps(asdict(message)), now=now or utcnow())


def send_later_on(connection: Connection, message: Message, *, now: datetime) -> None:
    """`send_later` for code that works on a Connection (the ledger's hot paths), in its transaction."""
    connection.execute(
        insert(OutboxMessage).values(
            kind=EMAIL_KIND,
            payload=json.dumps(asdict(message)),
            status=outbox.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def message_of(row: OutboxMessage) -> Message:
    """The mail an outbox row carries."""
    return Message(**json.loads(row.payload or "{}"))


@dataclass(frozen=True)
class Transport:
    """Where mail goes: an SMTP server, or the log when `smtp_url` is None."""

    smtp_url: str | None
    mail_from: str

    @classmethod
    def configured(cls) -> Transport:
        settings = get_settings()
        return cls(smtp_url=settings.smtp_url, mail_from=settings.mail_from)

    def send(self, message: Message) -> None:
        """Send now; smtplib's exceptions (and OSError) when the server is down or refuses."""
        email = self._email(message)
        if self.smtp_url is None:
            logger.warning(
                "SMTP_URL is not set, so this mail was not sent; here it is.\nTo: %s\nSubject: %s\n\n%s",
                message.to,
                message.subject,
                message.text,
            )
            return
        url = urlparse(self.smtp_url)
        host, secure = url.hostname or "localhost", url.scheme == "smtps"
        port = url.port or (465 if secure else 25)
        context = ssl.create_default_context()
        if secure:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            client.ehlo()
            if not secure and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(email)

    def _email(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.mail_from
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(domain=parseaddr(self.mail_from)[1].rpartition("@")[2] or None)
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.text)
        email.add_alternative(message.html, subtype="html")
        return email


class MailDeliverer:
    """The outbox's deliverer of mail (`EMAIL_KIND`): one SMTP session per mail, any order."""

    def __init__(self, transport: Transport | None = None) -> None:
        self._transport = transport

    def queue(self, message: OutboxMessage) -> object:
        return message.id

    def deliver(self, message: OutboxMessage, *, engine: Engine) -> outbox.Attempt:
        transport = self._transport or Transport.configured()
        try:
            transport.send(message_of(message))
        except smtplib.SMTPRecipientsRefused as error:
            # The server will never take this address (5xx); a temporary refusal (4xx) is retried.
            codes = [code for code, _reason in error.recipients.values()]
            return outbox.Attempt(False, error=f"Recipient refused: {error.recipients}", final=min(codes) >= 500)
        except (smtplib.SMTPException, OSError) as error:
            return outbox.Attempt(False, error=f"{type(error).__name__}: {error}")
        return outbox.Attempt(True)

    def settled(self, session: Session, message: OutboxMessage, attempt: outbox.Attempt, *, now: datetime) -> None:
        """Once it will not be sent again, forget the mail's text: it may hold a single-use link."""
        if message.status != outbox.PENDING:
            mail = message_of(message)
            message.payload = json.dumps({"to": mail.to, "subject": mail.subject, "text": "", "html": ""})
            session.add(message)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["thousands"] = lambda value: f"{value:,}"  # 1,000
    return environment
