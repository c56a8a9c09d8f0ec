"""Forgotten passwords: a mail with a single-use link, then a new password and a fresh sign-in.

- Asking gives the same answer whether or not the address has an account, so nobody learns who
  has one. Requests are rate limited per address and per client; an account gets at most
  MAILS_PER_HOUR reset mails an hour, however the requests are spread.
- The link holds a random token, stored hashed, good for LIFETIME, once. It is void once used,
  once the password changes by any route (it names the password it replaces), once the email
  changes, or once a newer one is issued.
- Setting the new password follows the registration rules, revokes every session of the user and
  marks the email verified (the link proves the person reads that mailbox).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from litesubs import routes
from litesubs.db import read_session, write_session
from litesubs.models import AccountToken, User, UserSession, utcnow
from litesubs.services import account_tokens, accounts, mail, rate_limits
from litesubs.services.account_tokens import PASSWORD_RESET, LinkRefused

LIFETIME = timedelta(hours=1)
MAILS_PER_HOUR = 5
REQUESTS_PER_ADDRESS = 3  # per rate_limits.WINDOW, one minute
REQUESTS_PER_CLIENT = 10
REPLACED_SINCE = "Your password was changed after this link was sent, so it no longer works. Ask for a new one."
EMAIL_CHANGED = "Your account's email changed after this link was sent, so it no longer works. Ask for a new one."


def request_reset(*, email: str, client_key: str, engine: Engine | None = None, now: datetime | None = None) -> None:
    """Mail a reset link if `email` has an active account; the same outcome (None) either way.

    RateLimited when the address or the client asked too often: that says nothing about the account.
    """
    now = now or utcnow()
    address = email.strip().lower()
    rate_limits.reserve(
        [
            rate_limits.Limit(rate_limits.limit_key("password-reset-email", address), REQUESTS_PER_ADDRESS),
            rate_limits.Limit(rate_limits.limit_key("password-reset-client", client_key), REQUESTS_PER_CLIENT),
        ],
        action="password reset requests",
        now=now,
        engine=engine,
    )
    with write_session(engine) as session:
        user = session.exec(select(User).where(User.email == address, col(User.is_active).is_(True))).first()
        if user is None or _mails_this_hour(session, user, now) >= MAILS_PER_HOUR:
            return
        token = _issue(session, user, now)
        mail.send_later(session, _reset_mail(user, token), now=now)


def reset_link(*, email: str, engine: Engine | None = None, now: datetime | None = None) -> str:
    """A reset link for the operator to hand over when mail is broken (`python -m litesubs reset-link`)."""
    now = now or utcnow()
    with write_session(engine) as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
        if user is None:
            raise LinkRefused(f"No account has the email {email.strip()!r}.")
        return _link(_issue(session, user, now))


def check_link(*, token: str, engine: Engine | None = None, now: datetime | None = None) -> None:
    """`LinkRefused` with the reason when the link cannot set a password, so the page says so before asking."""
    with read_session(engine) as session:
        _usable(session, token, now or utcnow())


def reset_password(*, token: str, new_password: str, engine: Engine | None = None, now: datetime | None = None) -> User:
    """Set the new password, use up the link and sign the user out everywhere; the caller signs them in afresh.

    `LinkRefused` (nothing changed) for a link that cannot be used; InvalidRequest(new_password) for a
    password that breaks the registration rules.
    """
    now = now or utcnow()
    password_hash = accounts.new_password_hash(new_password, field="new_password")
    with write_session(engine) as session:
        row, user = _usable(session, token, now, lock=True)
        account_tokens.use(session, row, now=now)
        user.password_hash = password_hash
        user.email_verified_at = user.email_verified_at or now
        session.add(user)
        session.exec(
            update(UserSession)
            .where(col(UserSession.user_id) == user.id, col(UserSession.revoked_at).is_(None))
            .values(revoked_at=now)
        )
    return user


def _usable(session: Session, token: str, now: datetime, *, lock: bool = False) -> tuple[AccountToken, User]:
    row = account_tokens.usable(session, token=token, purpose=PASSWORD_RESET, now=now, lock=lock)
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise LinkRefused(account_tokens.UNKNOWN)
    if row.password_fingerprint != account_tokens.password_fingerprint(user.password_hash):
        raise LinkRefused(REPLACED_SINCE)
    if row.email != user.email:
        raise LinkRefused(EMAIL_CHANGED)
    return row, user


def _issue(session: Session, user: User, now: datetime) -> str:
    return account_tokens.issue(
        session,
        user=user,
        purpose=PASSWORD_RESET,
        email=user.email,
        lifetime=LIFETIME,
        now=now,
        password_fingerprint=account_tokens.password_fingerprint(user.password_hash),
    )


def _mails_this_hour(session: Session, user: User, now: datetime) -> int:
    return account_tokens.issued_since(session, user_id=user.id, purpose=PASSWORD_RESET, since=now - timedelta(hours=1))


def _link(token: str) -> str:
    return mail.link(routes.RESET_PASSWORD, token=token)


def _reset_mail(user: User, token: str) -> mail.Message:
    return mail.render(
        "password_reset",
        to=user.email,
        subject="Reset your Litesubs password",
        name=user.name,
        email=user.email,
        reset_url=_link(token),
    )
