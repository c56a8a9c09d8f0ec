"""Verified email addresses: a link mailed to the address proves the person reads it.

- After registration a verification mail goes out in the registration's transaction; the account
  works at once, and the pages show a quiet banner with "send again" until the link is opened.
- Changing the email needs the password and a link mailed to the new address: the account keeps
  its old address until that link is opened, and then has the new one, verified.
- A creator's software sees `email_verified` in the API's customer answer (`User.email_verified_at`).
- A user gets at most MAILS_PER_HOUR verification mails an hour; "send again" is rate limited too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from litesubs import routes
from litesubs.db import read_session, write_session
from litesubs.models import AccountToken, User, utcnow
from litesubs.services import account_tokens, accounts, mail, rate_limits
from litesubs.services.account_tokens import EMAIL_VERIFICATION, LinkRefused
from litesubs.services.errors import InvalidCredentials, InvalidRequest, NotFound

LIFETIME = timedelta(days=3)
MAILS_PER_HOUR = 5
RESENDS_PER_USER = 2  # per rate_limits.WINDOW, one minute
RESENDS_PER_CLIENT = 10
TOO_MANY_MAILS = "We sent several mails within the hour already. Check your inbox and spam folder, or try again later."
ADDRESS_TAKEN = "Another account uses this address now, so it cannot become yours."


@dataclass(frozen=True)
class Verified:
    """A link that was opened: whose, and whether it changed their address (else it confirmed it)."""

    user: User
    changed_email: bool


def queue_verification(session: Session, user: User, *, email: str, now: datetime) -> None:
    """Mail a verification link for `email` (the user's address, or the one they want), in the caller's transaction."""
    token = account_tokens.issue(
        session, user=user, purpose=EMAIL_VERIFICATION, email=email, lifetime=LIFETIME, now=now
    )
    message = mail.render(
        "verify_email",
        to=email,
        subject="Confirm your email address for Litesubs",
        name=user.name,
        email=email,
        change=email != user.email,
        verify_url=mail.link(routes.VERIFY_EMAIL, token=token),
        valid_days=LIFETIME.days,
    )
    mail.send_later(session, message, now=now)


def send_again(*, user_id: int, client_key: str, engine: Engine | None = None, now: datetime | None = None) -> None:
    """The banner's "send again": a new link for the user's current address (the older ones stop working)."""
    now = now or utcnow()
    rate_limits.reserve(
        [
            rate_limits.Limit(rate_limits.limit_key("verify-email-user", str(user_id)), RESENDS_PER_USER),
            rate_limits.Limit(rate_limits.limit_key("verify-email-client", client_key), RESENDS_PER_CLIENT),
        ],
        action="verification mails",
        now=now,
        engine=engine,
    )
    with write_session(engine) as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound()
        if user.email_verified_at is not None:
            return
        _check_hourly_cap(session, user, now, field="email")
        queue_verification(session, user, email=user.email, now=now)


def request_change(
    *,
    user_id: int,
    password: str,
    new_email: str,
    client_key: str,
    engine: Engine | None = None,
    now: datetime | None = None,
) -> str:
    """Mail a link to `new_email`; the address changes when it is opened. Returns the new address, normalised.

    The password is checked like a sign-in (and rate limited like one); InvalidRequest names the field.
    """
    now = now or utcnow()
    with read_session(engine) as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    if not new_email.strip():
        raise InvalidRequest(field="new_email", message="Enter the new email address.")
    try:
        address = accounts.checked_email(new_email)
    except InvalidRequest as error:
        raise InvalidRequest(field="new_email", message=error.message) from None
    try:
        accounts.authenticate(email=user.email, password=password, client_key=client_key, engine=engine, now=now)
    except InvalidCredentials:
        raise InvalidRequest(field="password", message="Your password is not correct.") from None
    if address == user.email:
        raise InvalidRequest(field="new_email", message="This is already your email address.")
    with write_session(engine) as session:
        if session.exec(select(User.id).where(User.email == address)).first() is not None:
            raise InvalidRequest(field="new_email", message=accounts.DUPLICATE_EMAIL)
        user = session.get(User, user_id)
        _check_hourly_cap(session, user, now, field="new_email")
        queue_verification(session, user, email=address, now=now)
    return address


def verify(*, token: str, engine: Engine | None = None, now: datetime | None = None) -> Verified:
    """Open a verification link: the address becomes the user's, verified. `LinkRefused` (nothing changed) otherwise."""
    now = now or utcnow()
    try:
        with write_session(engine) as session:
            row = account_tokens.usable(session, token=token, purpose=EMAIL_VERIFICATION, now=now, lock=True)
            user = session.get(User, row.user_id)
            if user is None or not user.is_active:
                raise LinkRefused(account_tokens.UNKNOWN)
            changed = row.email != user.email
            if changed and session.exec(select(User.id).where(User.email == row.email)).first() is not None:
                raise LinkRefused(ADDRESS_TAKEN)
            account_tokens.use(session, row, now=now)
            user.email, user.email_verified_at = row.email, now
            session.add(user)
    except IntegrityError:
        # Someone registered the address between the check and the commit: the unique index refused it.
        raise LinkRefused(ADDRESS_TAKEN) from None
    return Verified(user=user, changed_email=changed)


def pending_change(*, user_id: int, engine: Engine | None = None, now: datetime | None = None) -> str | None:
    """The new address the user asked for and has not confirmed yet (while its link still works), if any."""
    now = now or utcnow()
    with read_session(engine) as session:
        row = session.exec(
            select(AccountToken.email)
            .join(User, col(User.id) == AccountToken.user_id)
            .where(
                AccountToken.user_id == user_id,
                AccountToken.purpose == EMAIL_VERIFICATION,
                col(AccountToken.used_at).is_(None),
                col(AccountToken.superseded_at).is_(None),
                AccountToken.expires_at > now,
                AccountToken.email != User.email,
            )
        ).first()
    return row


def _check_hourly_cap(session: Session, user: User, now: datetime, *, field: str) -> None:
    since = now - timedelta(hours=1)
    if account_tokens.issued_since(session, user_id=user.id, purpose=EMAIL_VERIFICATION, since=since) >= MAILS_PER_HOUR:
        raise InvalidRequest(field=field, message=TOO_MANY_MAILS)
