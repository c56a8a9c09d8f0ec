"""Single-use links sent by mail: the token in the link, its SHA-256 in `account_token`.

A token is good for one `purpose` (password reset, email verification) until it expires, is used,
or is superseded by a newer one of the same purpose for the same user. Every refusal says which of
these happened, so the page can tell the person what to do next.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from litesubs.models import AccountToken, User
from litesubs.services.errors import InvalidRequest

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a password
EMAIL_VERIFICATION = "email_verification"

UNKNOWN = "This link is not valid. Check that you opened the whole link from the mail, or ask for a new one."
USED = "This link was already used. Ask for a new one if you need it."
EXPIRED = "This link has expired. Ask for a new one."
SUPERSEDED = "A newer link was sent after this one: use the link in the latest mail."


class LinkRefused(InvalidRequest):
    """A link that cannot be used (unknown, used, expired or superseded); the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(field="token", message=message)


def issue(
    session: Session,
    *,
    user: User,
    purpose: str,
    email: str,
    lifetime: timedelta,
    now: datetime,
    password_fingerprint: str | None = None,
) -> str:
    """A new token for `user`, in the caller's transaction; the user's earlier unused ones of `purpose` are void."""
    session.exec(
        update(AccountToken)
        .where(
            col(AccountToken.user_id) == user.id,
            col(AccountToken.purpose) == purpose,
            col(AccountToken.used_at).is_(None),
            col(AccountToken.superseded_at).is_(None),
        )
        .values(superseded_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=token_hash(token),
            email=email,
            password_fingerprint=password_fingerprint,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def usable(session: Session, *, token: str, purpose: str, now: datetime, lock: bool = False) -> AccountToken:
    """The unused, unexpired, latest token of `purpose` (locked with `lock`, to use it); `LinkRefused` otherwise."""
    statement = select(AccountToken).where(
        AccountToken.token_hash == token_hash(token), AccountToken.purpose == purpose
    )
    if lock:
        statement = statement.with_for_update()
    row = session.exec(statement.execution_options(populate_existing=True)).first() if token else None
    if row is None:
        raise LinkRefused(UNKNOWN)
    if row.used_at is not None:
        raise LinkRefused(USED)
    if row.superseded_at is not None:
        raise LinkRefused(SUPERSEDED)
    if row.expires_at <= now:
        raise LinkRefused(EXPIRED)
    return row


def use(session: Session, row: AccountToken, *, now: datetime) -> None:
    row.used_at = now
    session.add(row)


def issued_since(session: Session, *, user_id: int, purpose: str, since: datetime) -> int:
    """How many tokens of `purpose` the user was sent since `since` (to cap mails per hour)."""
    return session.exec(
        select(func.count())
        .select_from(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.created_at > since)
    ).one()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def password_fingerprint(password_hash: str) -> str:
    """Names the password a reset replaces without storing its hash twice: any change of password voids the reset."""
    return hashlib.sha256(password_hash.encode()).hexdigest()
