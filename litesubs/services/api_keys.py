"""API keys: how a creator's own software proves who it is to the HTTP API.

A key is `ls_` followed by 32 random bytes (256 bits) in URL-safe base64. The secret is shown to
the creator once; the database keeps only its SHA-256 and a short prefix to recognise it by. A
plain hash (not bcrypt) suffices because the secret is random, not a password, and keeps every API
call to one indexed lookup: the hash is compared by the database's unique index, so no timing of
ours depends on how much of a guess was right.

Each process remembers the keys it looked up for KEY_CACHE_SECONDS, so a busy API key costs one lookup a
second per process, not one per request. A key revoked, or an account deactivated, in another process
(or directly in the database) therefore stops working within that time on every process; revoking in
this process forgets the key here at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, or_, update
from sqlmodel import select

from litesubs.db import get_engine, read_connection, read_session, write_session
from litesubs.models import ApiKey, User, utcnow
from litesubs.services.errors import InvalidRequest, NotFound, Unauthorized

KEY_PREFIX = "ls_"
SECRET_BYTES = 32
VISIBLE_PREFIX_LENGTH = 10
NAME_MAX_LENGTH = 80
MAX_SECRET_LENGTH = 200
# `last_used_at` is recorded at most this often per key, so API calls are reads, not writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Built once, so SQLAlchemy neither builds nor compiles it per call. Each key comes with whether its creator's
# account is still active: a deactivated user's keys stop working too.
_BY_SECRET_HASHES = (
    select(*ApiKey.__table__.columns, User.is_active.label("creator_is_active"))
    .join(User, User.id == ApiKey.creator_id)
    .where(ApiKey.secret_hash.in_(bindparam("secret_hashes", expanding=True)))
)
# How long a process trusts what it last read about a key (revoked? its account active?).
KEY_CACHE_SECONDS = 1.0
# A key unused this long is forgotten rather than read again with the others.
FORGET_AFTER_SECONDS = 60.0
_MAX_REMEMBERED = 10_000


@dataclass
class _Remembered:
    key: ApiKey
    creator_is_active: bool
    read_at: float  # time.monotonic()
    used_at: float


# (engine, SHA-256 of the secret) -> what was read; plain dict operations, safe across threads.
_remembered: dict[tuple[Engine, str], _Remembered] = {}


def create_key(
    *, creator_id: int, name: str, engine: Engine | None = None, now: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key named `name` (1 to 80 characters) and its secret, which is never available again."""
    name = _check_name(name)
    secret = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    key = ApiKey(
        creator_id=creator_id,
        name=name,
        prefix=secret[:VISIBLE_PREFIX_LENGTH],
        secret_hash=_hash(secret),
        created_at=now or utcnow(),
    )
    with read_session(engine) as session:
        session.add(key)
        session.commit()
    return key, secret


def authenticate(*, secret: str | None, engine: Engine | None = None, now: datetime | None = None) -> ApiKey:
    """The live key whose secret this is; `Unauthorized` if missing, unknown, revoked, or a deactivated user's."""
    engine, now = engine or get_engine(), now or utcnow()
    digest = _secret_hash(secret)
    remembered = _recall(engine, digest)
    if remembered is None:
        remembered = _look_up(engine, digest)
    key = _live(remembered)
    if _use_unrecorded(key, now):
        _touch(engine, key, now)
    return key


def remembered_key(*, secret: str | None, engine: Engine | None = None, now: datetime | None = None) -> ApiKey | None:
    """`authenticate` without waiting on the database: the key if this process read it within the last second and
    its use needs no recording, `Unauthorized` as `authenticate` would; None when only `authenticate` can tell."""
    engine = engine or get_engine()
    remembered = _recall(engine, _secret_hash(secret))
    if remembered is None:
        return None
    key = _live(remembered)
    return None if _use_unrecorded(key, now or utcnow()) else key


def _secret_hash(secret: str | None) -> str:
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        raise Unauthorized("Send an API key as 'Authorization: Bearer ls_...'.")
    return _hash(secret)


def _recall(engine: Engine, digest: str) -> _Remembered | None:
    remembered, now = _remembered.get((engine, digest)), time.monotonic()
    if remembered is None or now - remembered.read_at > KEY_CACHE_SECONDS:
        return None
    remembered.used_at = now
    return remembered


def _look_up(engine: Engine, digest: str) -> _Remembered:
    """Read the key, and with it every key in use here that is past half its time: with many keys in use, one
    query a second or so reads them all, instead of one query per key."""
    read_at = time.monotonic()
    others = {
        known: remembered
        for (of, known), remembered in list(_remembered.items())
        if of is engine and read_at - remembered.read_at > KEY_CACHE_SECONDS / 2
    }
    for known, remembered in others.items():
        if read_at - remembered.used_at > FORGET_AFTER_SECONDS:
            _remembered.pop((engine, known), None)
    digests = [digest, *(known for known, r in others.items() if read_at - r.used_at <= FORGET_AFTER_SECONDS)]
    with read_connection(engine) as connection:
        rows = connection.execute(_BY_SECRET_HASHES, {"secret_hashes": list(dict.fromkeys(digests))}).all()
    if len(_remembered) >= _MAX_REMEMBERED:
        _remembered.clear()
    for known in digests:
        _remembered.pop((engine, known), None)
    for row in rows:
        fields = {column: value for column, value in row._mapping.items() if column != "creator_is_active"}
        used_at = others[row.secret_hash].used_at if row.secret_hash in others else read_at
        _remembered[(engine, row.secret_hash)] = _Remembered(ApiKey(**fields), row.creator_is_active, read_at, used_at)
    remembered = _remembered.get((engine, digest))
    if remembered is None:
        raise Unauthorized("This API key is not valid.")
    return remembered


def _live(remembered: _Remembered) -> ApiKey:
    if remembered.key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.")
    if not remembered.creator_is_active:
        raise Unauthorized("This API key's account has been deactivated.")
    return remembered.key


def _use_unrecorded(key: ApiKey, now: datetime) -> bool:
    return key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION


def list_keys(*, creator_id: int, engine: Engine | None = None) -> list[ApiKey]:
    """The creator's keys, newest first, revoked ones included."""
    statement = select(ApiKey).where(ApiKey.creator_id == creator_id).order_by(ApiKey.id.desc())
    with read_session(engine) as session:
        return list(session.exec(statement))


def revoke_key(*, creator_id: int, key_id: int, engine: Engine | None = None, now: datetime | None = None) -> ApiKey:
    """Revoke the creator's key at once (`NotFound` for anyone else's); revoking twice keeps the first time."""
    with write_session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.creator_id != creator_id:
            raise NotFound("No such API key.")
        if key.revoked_at is None:
            key.revoked_at = now or utcnow()
            session.add(key)
    _forget(key_id)
    return key


def _forget(key_id: int) -> None:
    """This process stops trusting what it remembers of the key (other processes within KEY_CACHE_SECONDS)."""
    for cache_key, remembered in list(_remembered.items()):
        if remembered.key.id == key_id:
            _remembered.pop(cache_key, None)


def _touch(engine: Engine | None, key: ApiKey, now: datetime) -> None:
    """Record the use in its own short write; the condition makes concurrent uses within a minute write once."""
    with write_session(engine) as session:
        session.exec(
            update(ApiKey)
            .where(
                ApiKey.id == key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=now)
        )
    key.last_used_at = now


def _check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidRequest("name", "Give the key a name, such as the app that will use it.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidRequest("name", f"Keep the name to {NAME_MAX_LENGTH} characters.")
    return name


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
