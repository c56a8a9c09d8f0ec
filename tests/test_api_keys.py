"""API keys: created with a secret shown once, authenticated by hash, listed and revoked by their owner only."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session

from litesubs.models import ApiKey, utcnow
from litesubs.services import api_keys
from litesubs.services.api_keys import authenticate, create_key, list_keys, remembered_key, revoke_key
from litesubs.services.errors import InvalidRequest, NotFound, Unauthorized
from tests.conftest import create_user


def stored(engine: Engine, key_id: int) -> ApiKey:
    with Session(engine) as session:
        return session.get(ApiKey, key_id)


def test_a_new_key_has_a_long_random_secret_of_which_only_hash_and_prefix_are_stored(engine: Engine) -> None:
    creator = create_user(engine)
    key, secret = create_key(creator_id=creator.id, name="  Backend  ", engine=engine)
    _other, other_secret = create_key(creator_id=creator.id, name="Backend", engine=engine)

    assert secret.startswith("ls_")
    assert len(secret) == 3 + 43  # 32 random bytes in URL-safe base64: 256 bits
    assert secret != other_secret
    row = stored(engine, key.id)
    assert (row.name, row.creator_id, row.prefix) == ("Backend", creator.id, secret[:10])
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(value) for value in row.model_dump().values()}
    assert (row.last_used_at, row.revoked_at) == (None, None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Give the key a name, such as the app that will use it."),
        ("   ", "Give the key a name, such as the app that will use it."),
        ("x" * 81, "Keep the name to 80 characters."),
    ],
)
def test_a_key_needs_a_name_of_1_to_80_characters(engine: Engine, name: str, message: str) -> None:
    creator = create_user(engine)
    with pytest.raises(InvalidRequest) as refused:
        create_key(creator_id=creator.id, name=name, engine=engine)
    assert (refused.value.field, refused.value.message) == ("name", message)
    assert list_keys(creator_id=creator.id, engine=engine) == []
    key, _secret = create_key(creator_id=creator.id, name="x" * 80, engine=engine)
    assert key.name == "x" * 80


def test_authenticate_finds_the_key_and_records_its_use_at_most_once_a_minute(engine: Engine) -> None:
    creator = create_user(engine)
    key, secret = create_key(creator_id=creator.id, name="Backend", engine=engine)
    first = utcnow()

    assert authenticate(secret=secret, engine=engine, now=first).id == key.id
    assert stored(engine, key.id).last_used_at == first
    authenticate(secret=secret, engine=engine, now=first + timedelta(seconds=59))
    assert stored(engine, key.id).last_used_at == first
    later = first + timedelta(seconds=61)
    assert authenticate(secret=secret, engine=engine, now=later).creator_id == creator.id
    assert stored(engine, key.id).last_used_at == later


@pytest.mark.parametrize("secret", [None, "", "ls_", "ls_unknown-secret", "sk_live_abc", "ls_" + "a" * 300])
def test_missing_malformed_and_unknown_secrets_are_unauthorized(engine: Engine, secret: str | None) -> None:
    create_key(creator_id=create_user(engine).id, name="Backend", engine=engine)
    with pytest.raises(Unauthorized):
        authenticate(secret=secret, engine=engine)


def test_a_revoked_key_is_unauthorized_at_once_and_revoking_again_keeps_the_first_time(engine: Engine) -> None:
    creator = create_user(engine)
    key, secret = create_key(creator_id=creator.id, name="Backend", engine=engine)
    authenticate(secret=secret, engine=engine)
    revoked_at = utcnow()

    assert revoke_key(creator_id=creator.id, key_id=key.id, engine=engine, now=revoked_at).revoked_at == revoked_at
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(secret=secret, engine=engine)
    revoke_key(creator_id=creator.id, key_id=key.id, engine=engine, now=revoked_at + timedelta(hours=1))
    assert stored(engine, key.id).revoked_at == revoked_at


def test_a_creator_lists_and_revokes_only_their_own_keys(engine: Engine) -> None:
    owner, intruder = create_user(engine), create_user(engine)
    older, _ = create_key(creator_id=owner.id, name="Older", engine=engine)
    newer, secret = create_key(creator_id=owner.id, name="Newer", engine=engine)
    create_key(creator_id=intruder.id, name="Intruder's", engine=engine)

    assert [key.id for key in list_keys(creator_id=owner.id, engine=engine)] == [newer.id, older.id]
    with pytest.raises(NotFound):
        revoke_key(creator_id=intruder.id, key_id=newer.id, engine=engine)
    with pytest.raises(NotFound):
        revoke_key(creator_id=owner.id, key_id=10**9, engine=engine)
    assert stored(engine, newer.id).revoked_at is None
    assert authenticate(secret=secret, engine=engine).id == newer.id


def test_a_key_read_within_a_second_is_not_read_again_and_after_that_it_is(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = create_user(engine)
    key, secret = create_key(creator_id=creator.id, name="Backend", engine=engine)
    statements: list[str] = []

    def count(_connection, _cursor, statement: str, *_args: object) -> None:
        if "FROM api_key JOIN" in statement:
            statements.append(statement)

    monkeypatch.setattr(api_keys, "KEY_CACHE_SECONDS", 0.3)
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert authenticate(secret=secret, engine=engine).id == key.id  # read, and its first use recorded
        read = len(statements)
        assert read == 1
        assert remembered_key(secret=secret, engine=engine).id == key.id
        assert authenticate(secret=secret, engine=engine).id == key.id
        assert len(statements) == read

        time.sleep(0.35)
        assert remembered_key(secret=secret, engine=engine) is None  # only the database can tell now
        assert authenticate(secret=secret, engine=engine).id == key.id
        assert len(statements) == read + 1
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_keys_in_use_are_read_again_together_in_one_query(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    creator = create_user(engine)
    secrets_ = [create_key(creator_id=creator.id, name=f"Backend {n}", engine=engine)[1] for n in range(5)]
    lookups: list[str] = []

    def count(_connection, _cursor, statement: str, *_args: object) -> None:
        if "FROM api_key JOIN" in statement:
            lookups.append(statement)

    monkeypatch.setattr(api_keys, "KEY_CACHE_SECONDS", 0.3)
    for secret in secrets_:
        authenticate(secret=secret, engine=engine)
    event.listen(engine, "before_cursor_execute", count)
    try:
        time.sleep(0.35)
        for secret in secrets_:
            authenticate(secret=secret, engine=engine)
        assert len(lookups) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
