"""Accounts: registration, sign-in, sessions and profile changes. Free of Reflex; the sign-in pages call these.

Passwords are hashed with bcrypt. A session is a random token held in the browser's cookie; the
database keeps only its SHA-256, so reading the table does not let anyone sign in. A session ends
after SESSION_IDLE_LIFETIME without use, after SESSION_ABSOLUTE_LIFETIME in any case, or when revoked.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import unicodedata
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import unquote

import bcrypt
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from litesubs.db import read_session, write_session
from litesubs.models import User, UserSession, utcnow
from litesubs.services import email_verification, rate_limits
from litesubs.services.errors import InvalidCredentials, InvalidRequest, NotFound
from litesubs.settings import SettingsError

NAME_MAX_LENGTH = 120
EMAIL_MAX_LENGTH = 320
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_BYTES = 72  # bcrypt's limit: it reads no further (and bcrypt 5 refuses longer input)
DUPLICATE_EMAIL = "An account with this email already exists."

BCRYPT_ROUNDS_ENV = "LITESUBS_BCRYPT_ROUNDS"
DEFAULT_BCRYPT_ROUNDS = 12

# Per rate_limits.WINDOW (one minute). Failures are refused per (email, client) and per client only: counting
# them per email alone would let anyone lock a victim out. Per email they only slow sign-in down (`sign_in_delay`).
SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT = 10
SIGN_IN_ATTEMPTS_PER_CLIENT = 30
SIGN_IN_SLOWDOWN_AFTER = 10  # failures per email within the window before each further attempt waits
SIGN_IN_FIRST_DELAY_SECONDS = 0.25  # doubling with every further failure...
SIGN_IN_MAX_DELAY_SECONDS = 8.0  # ...up to this
REGISTRATIONS_PER_CLIENT = 20
PASSWORD_CHECKS_PER_USER = 5  # wrong current passwords on the account page: a stolen session guessing

SESSION_COOKIE = "litesubs_session"  # the browser holds only the random token, under this name
SESSION_IDLE_LIFETIME = timedelta(days=30)
SESSION_ABSOLUTE_LIFETIME = timedelta(days=90)
SESSION_REFRESH_INTERVAL = timedelta(minutes=1)  # extend the idle expiry at most this often: not a write per request

_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def register(
    *,
    name: str,
    email: str,
    password: str,
    client_key: str | None = None,
    engine: Engine | None = None,
    now: datetime | None = None,
) -> User:
    """Create an account and mail it a verification link; InvalidRequest names the field that breaks a rule.

    A client (`client_key`: its address, as the sign-in form gives it) may try REGISTRATIONS_PER_CLIENT
    times a minute, successes included; RateLimited beyond that.
    """
    if client_key is not None:
        limit = rate_limits.Limit(rate_limits.limit_key("register-client", client_key), REGISTRATIONS_PER_CLIENT)
        rate_limits.reserve([limit], action="registrations", now=now or utcnow(), engine=engine)
    user = User(
        name=_valid_name(name),
        email=_valid_email(email),
        password_hash=hash_password(_valid_password(password, field="password")),
    )
    try:
        with write_session(engine) as session:
            session.add(user)
            session.flush()
            email_verification.queue_verification(session, user, email=user.email, now=user.created_at)
    except IntegrityError:
        # Two registrations of one email can both get this far; the unique index lets only one in.
        if _user_by_email(user.email, engine) is None:
            raise
        raise InvalidRequest(field="email", message=DUPLICATE_EMAIL) from None
    return user


def authenticate(
    *, email: str, password: str, client_key: str, engine: Engine | None = None, now: datetime | None = None
) -> User:
    """The active user with this email and password, or InvalidCredentials with the same message whatever was wrong.

    Before the password is checked, the attempt is rate limited per (email, client) and per client
    (`client_key`: the client's address): RateLimited when either had too many recent attempts.
    Attempts per email are only counted, never refused, so no one can lock a victim out; the door
    waits `sign_in_delay` before calling this. Every attempt is recorded as it starts, so parallel
    requests see each other; a successful one is taken back, so only failures count, and people
    signing in from one shared address do not lock each other out.
    """
    email = _normalise_email(email)
    attempt_ids = rate_limits.reserve(
        _sign_in_limits(email, client_key), action="sign-in attempts", now=now or utcnow(), engine=engine
    )
    user = _user_by_email(email, engine) if _is_plausible_email(email) else None
    matches = _password_matches(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        raise InvalidCredentials()
    rate_limits.release(attempt_ids, engine=engine)
    return user


def sign_in_delay(*, email: str, engine: Engine | None = None, now: datetime | None = None) -> float:
    """Seconds to wait before trying to sign in as `email`: 0 until SIGN_IN_SLOWDOWN_AFTER recent failures,
    then doubling with each further one up to SIGN_IN_MAX_DELAY_SECONDS.

    The slow-down makes guessing one account's password from many addresses slow while its owner,
    who knows the password, still gets in.
    """
    key = rate_limits.limit_key("sign-in-email", _normalise_email(email))
    failures = rate_limits.recent_attempts(key, now=now or utcnow(), engine=engine)
    if failures < SIGN_IN_SLOWDOWN_AFTER:
        return 0.0
    return min(SIGN_IN_FIRST_DELAY_SECONDS * 2 ** (failures - SIGN_IN_SLOWDOWN_AFTER), SIGN_IN_MAX_DELAY_SECONDS)


def start_session(*, user_id: int, engine: Engine | None = None, now: datetime | None = None) -> str:
    """Sign the user in with a new random token for the browser's cookie: call it on every sign-in."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with write_session(engine) as session:
        session.add(
            UserSession(
                user_id=user_id,
                token_hash=_token_hash(token),
                created_at=now,
                last_seen_at=now,
                idle_expires_at=now + SESSION_IDLE_LIFETIME,
                absolute_expires_at=now + SESSION_ABSOLUTE_LIFETIME,
            )
        )
    return token


def user_for_token(*, token: str | None, engine: Engine | None = None, now: datetime | None = None) -> User | None:
    """The signed-in user, or None for a missing, unknown, expired or revoked token or an inactive user.

    Using a session pushes its idle expiry back (at most once per SESSION_REFRESH_INTERVAL).
    """
    if not token:
        return None
    now = now or utcnow()
    with read_session(engine) as session:
        row = session.exec(
            select(UserSession, User)
            .join(User, col(User.id) == UserSession.user_id)
            .where(UserSession.token_hash == _token_hash(token))
        ).first()
    if row is None:
        return None
    user_session, user = row
    if not _is_live(user_session, now) or not user.is_active:
        return None
    if now - user_session.last_seen_at >= SESSION_REFRESH_INTERVAL:
        _extend_session(user_session, now, engine)
    return user


def end_session(*, token: str | None, engine: Engine | None = None, now: datetime | None = None) -> None:
    """Sign out: revoke the token, so every tab and process holding it is signed out too."""
    if not token:
        return
    with write_session(engine) as session:
        session.exec(
            update(UserSession)
            .where(col(UserSession.token_hash) == _token_hash(token), col(UserSession.revoked_at).is_(None))
            .values(revoked_at=now or utcnow())
        )


def change_name(*, user_id: int, name: str, engine: Engine | None = None) -> User:
    name = _valid_name(name)
    with write_session(engine) as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound()
        user.name = name
    return user


def change_password(
    *,
    user_id: int,
    current_password: str,
    new_password: str,
    current_token: str,
    engine: Engine | None = None,
    now: datetime | None = None,
) -> None:
    """Replace the password and revoke the user's other sessions; the one holding `current_token` stays signed in.

    Wrong current passwords are limited to PASSWORD_CHECKS_PER_USER a minute (RateLimited beyond), so a
    stolen session cannot guess the password it would need.
    """
    now = now or utcnow()
    with read_session(engine) as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    limit = rate_limits.Limit(rate_limits.limit_key("password-check-user", str(user_id)), PASSWORD_CHECKS_PER_USER)
    attempt_ids = rate_limits.reserve([limit], action="password attempts", now=now, engine=engine)
    if not _password_matches(current_password, user.password_hash):
        raise InvalidRequest(field="current_password", message="Your current password is not correct.")
    rate_limits.release(attempt_ids, engine=engine)
    password_hash = hash_password(_valid_password(new_password, field="new_password"))
    with write_session(engine) as session:
        session.exec(update(User).where(col(User.id) == user_id).values(password_hash=password_hash))
        session.exec(
            update(UserSession)
            .where(
                col(UserSession.user_id) == user_id,
                col(UserSession.revoked_at).is_(None),
                col(UserSession.token_hash) != _token_hash(current_token),
            )
            .values(revoked_at=now)
        )


def checked_email(email: str) -> str:
    """The address normalised; InvalidRequest(email) when it cannot be one."""
    return _valid_email(email)


def new_password_hash(password: str, *, field: str) -> str:
    """The hash of a new password that meets the registration rules; InvalidRequest(`field`) otherwise."""
    return hash_password(_valid_password(password, field=field))


def safe_next_path(next: str | None, default: str) -> str:
    """`next` when it is a path on this site, else `default`: `?next=` must never send anyone elsewhere.

    Checked as given and once percent-decoded, in case a later step decodes it. No "//" (a
    scheme-relative URL), no backslash (browsers read it as "/"), nothing unprintable (browsers
    drop tabs and newlines, so "/\\t/evil.example" would become "//evil.example").
    """
    if next and _is_local_path(next) and _is_local_path(unquote(next)):
        return next
    return default


def _is_local_path(path: str) -> bool:
    return path.startswith("/") and "//" not in path and "\\" not in path and path.isprintable()


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequest(field="name", message="Enter your name.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidRequest(field="name", message=f"Use at most {NAME_MAX_LENGTH} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise InvalidRequest(field="name", message="Use letters, digits, spaces and punctuation only.")
    return name


def _valid_email(email: str) -> str:
    email = _normalise_email(email)
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidRequest(field="email", message=f"Use at most {EMAIL_MAX_LENGTH} characters.")
    if not _is_plausible_email(email):
        raise InvalidRequest(field="email", message="Enter an email address like name@example.com.")
    return email


def _is_plausible_email(email: str) -> bool:
    return bool(_EMAIL_SHAPE.fullmatch(email)) and email.isprintable()


def _normalise_email(email: str) -> str:
    return email.strip().lower()


def _valid_password(password: str, *, field: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidRequest(field=field, message=f"Use at least {PASSWORD_MIN_LENGTH} characters.")
    if len(_utf8(password)) > PASSWORD_MAX_BYTES:
        raise InvalidRequest(
            field=field,
            message=f"Use at most {PASSWORD_MAX_BYTES} bytes: {PASSWORD_MAX_BYTES} plain letters, digits or "
            "symbols, fewer with accented letters or emoji.",
        )
    return password


def hash_password(password: str) -> str:
    return bcrypt.hashpw(_utf8(password), bcrypt.gensalt(_bcrypt_rounds())).decode()


def _password_matches(password: str, password_hash: str | None) -> bool:
    """bcrypt's check, taking as long for an unknown user (no hash) as for a known one: no timing oracle on emails.

    A user without a bcrypt hash (such as "!") cannot sign in with any password.
    """
    stored = password_hash.encode() if password_hash and password_hash.startswith("$2") else None
    candidate = _utf8(password)
    matches = bcrypt.checkpw(candidate[:PASSWORD_MAX_BYTES], stored or _dummy_hash(_bcrypt_rounds()))
    return stored is not None and matches and len(candidate) <= PASSWORD_MAX_BYTES


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds))


def _bcrypt_rounds() -> int:
    """bcrypt's cost: 12 unless LITESUBS_BCRYPT_ROUNDS says otherwise.

    The variable exists for the test suite, which sets 4 so that its hundreds of hashes take
    milliseconds rather than minutes. Production leaves it unset.
    """
    raw = os.environ.get(BCRYPT_ROUNDS_ENV, "").strip()
    if not raw:
        return DEFAULT_BCRYPT_ROUNDS
    if not raw.isdigit() or not 4 <= int(raw) <= 31:
        raise SettingsError(f"{BCRYPT_ROUNDS_ENV} must be a whole number from 4 to 31, got {raw!r}")
    return int(raw)


def _utf8(text: str) -> bytes:
    """UTF-8, passing lone surrogates through (JSON can carry them) rather than failing on them."""
    return text.encode("utf-8", "surrogatepass")


def _sign_in_limits(email: str, client_key: str) -> list[rate_limits.Limit]:
    """Refused per (email, client) and per client; per email only counted, for `sign_in_delay`."""
    return [
        rate_limits.Limit(
            rate_limits.limit_key("sign-in-email-client", f"{email}\x00{client_key}"),
            SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT,
        ),
        rate_limits.Limit(rate_limits.limit_key("sign-in-client", client_key), SIGN_IN_ATTEMPTS_PER_CLIENT),
        rate_limits.Limit(rate_limits.limit_key("sign-in-email", email), None),
    ]


def _user_by_email(email: str, engine: Engine | None) -> User | None:
    with read_session(engine) as session:
        return session.exec(select(User).where(User.email == email)).first()


def _token_hash(token: str) -> str:
    return hashlib.sha256(_utf8(token)).hexdigest()


def _is_live(user_session: UserSession, now: datetime) -> bool:
    return (
        user_session.revoked_at is None
        and now < user_session.idle_expires_at
        and now < user_session.absolute_expires_at
    )


def _extend_session(user_session: UserSession, now: datetime, engine: Engine | None) -> None:
    with write_session(engine) as session:
        session.exec(
            update(UserSession)
            .where(col(UserSession.id) == user_session.id)
            .values(last_seen_at=now, idle_expires_at=now + SESSION_IDLE_LIFETIME)
        )
