"""Accounts service: registration rules, sign-in with rate limits, sessions, profile changes, `?next=`."""

from __future__ import annotations

import hashlib
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import bcrypt
import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from litesubs.models import LoginAttempt, User, UserSession, utcnow
from litesubs.services import accounts, rate_limits
from litesubs.services.errors import DomainError, InvalidCredentials, InvalidRequest, NotFound, RateLimited
from litesubs.settings import SettingsError
from tests.conftest import create_user

PASSWORD = "correct horse battery"
WRONG = "wrong password"


def _email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


def _client() -> str:
    return f"client-{secrets.token_hex(6)}"


def _register(engine: Engine, *, email: str | None = None, password: str = PASSWORD) -> User:
    return accounts.register(name="Ada", email=email or _email(), password=password, engine=engine)


def _stored_user(engine: Engine, email: str) -> User | None:
    with Session(engine) as session:
        return session.exec(select(User).where(User.email == email)).first()


def _stored_session(engine: Engine, token: str) -> UserSession:
    with Session(engine) as session:
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        return session.exec(select(UserSession).where(UserSession.token_hash == token_hash)).one()


def _deactivate(engine: Engine, user: User) -> None:
    with Session(engine) as session:
        stored = session.get(User, user.id)
        assert stored is not None
        stored.is_active = False
        session.commit()


def _sign_in(engine: Engine, email: str, password: str, *, client: str | None = None, now=None) -> User:
    return accounts.authenticate(email=email, password=password, client_key=client or _client(), engine=engine, now=now)


# Registration


def test_register_normalises_and_hashes_with_bcrypt(engine: Engine) -> None:
    local = f"Ada.L-{secrets.token_hex(4)}"
    user = accounts.register(name="  Ada Lovelace ", email=f"  {local}@Example.COM ", password=PASSWORD, engine=engine)

    stored = _stored_user(engine, f"{local.lower()}@example.com")
    assert stored is not None
    assert stored.id == user.id
    assert stored.name == "Ada Lovelace"
    assert stored.is_active
    assert stored.password_hash.startswith("$2b$04$")  # bcrypt, at the test suite's cost
    assert PASSWORD not in stored.password_hash
    assert bcrypt.checkpw(PASSWORD.encode(), stored.password_hash.encode())


def test_register_accepts_the_limits(engine: Engine) -> None:
    user = accounts.register(name="n" * 120, email=_email(), password="é" * 36, engine=engine)
    assert len(user.name) == 120
    assert _sign_in(engine, user.email, "é" * 36).id == user.id
    assert _register(engine, password="8 chars!").id is not None


ADDRESS_SHAPE = "Enter an email address like name@example.com."


@pytest.mark.parametrize(
    ("name", "email", "password", "field", "message"),
    [
        ("   ", None, PASSWORD, "name", "Enter your name."),
        ("n" * 121, None, PASSWORD, "name", "Use at most 120 characters."),
        ("Ada\nLovelace", None, PASSWORD, "name", "Use letters, digits, spaces and punctuation only."),
        ("Ada", "", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "no-at-sign.example.com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada@localhost", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada@.example.com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada@example..com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada@example.", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "a da@example.com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada@@example.com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "ada\u200b@example.com", PASSWORD, "email", ADDRESS_SHAPE),
        ("Ada", "a" * 309 + "@example.com", PASSWORD, "email", "Use at most 320 characters."),
        ("Ada", None, "7 chars", "password", "Use at least 8 characters."),
        ("Ada", None, "x" * 73, "password", "Use at most 72 bytes"),
        ("Ada", None, "é" * 37, "password", "Use at most 72 bytes"),
    ],
)
def test_register_refuses_input_that_breaks_a_rule(
    engine: Engine, name: str, email: str | None, password: str, field: str, message: str
) -> None:
    email = _email() if email is None else email
    with pytest.raises(InvalidRequest) as error:
        accounts.register(name=name, email=email, password=password, engine=engine)
    assert error.value.field == field
    assert error.value.message.startswith(message)
    assert _stored_user(engine, email.strip().lower()) is None


def test_email_is_unique_whatever_its_case(engine: Engine) -> None:
    email = _email()
    _register(engine, email=email)
    with pytest.raises(InvalidRequest) as error:
        _register(engine, email=f" {email.upper()} ")
    assert error.value.field == "email"
    assert error.value.message == "An account with this email already exists."


def test_simultaneous_registrations_of_one_email_make_one_account(engine: Engine) -> None:
    email = _email()

    def attempt(_: int) -> str:
        try:
            _register(engine, email=email)
        except InvalidRequest as error:
            return error.message
        return "created"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    assert outcomes.count("created") == 1
    assert outcomes.count(accounts.DUPLICATE_EMAIL) == 5


def test_bcrypt_cost_comes_from_the_environment(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITESUBS_BCRYPT_ROUNDS", "5")
    assert _register(engine).password_hash.startswith("$2b$05$")
    monkeypatch.delenv("LITESUBS_BCRYPT_ROUNDS")
    assert _register(engine).password_hash.startswith("$2b$12$")
    monkeypatch.setenv("LITESUBS_BCRYPT_ROUNDS", "many")
    with pytest.raises(SettingsError, match="LITESUBS_BCRYPT_ROUNDS must be a whole number from 4 to 31"):
        _register(engine)


# Sign-in


def test_sign_in_with_the_right_password_in_any_case(engine: Engine) -> None:
    user = _register(engine)
    assert _sign_in(engine, f"  {user.email.upper()}", PASSWORD).id == user.id


def _inactive_user_email(engine: Engine) -> str:
    user = _register(engine)
    _deactivate(engine, user)
    return user.email


@pytest.mark.parametrize(
    ("make_email", "password"),
    [
        pytest.param(lambda engine: _register(engine).email, WRONG, id="wrong password"),
        pytest.param(lambda engine: _email(), PASSWORD, id="unknown email"),
        pytest.param(_inactive_user_email, PASSWORD, id="inactive user"),
        pytest.param(lambda engine: create_user(engine).email, "!", id="user without a password"),
        pytest.param(lambda engine: _register(engine, password="p" * 72).email, "p" * 73, id="beyond 72 bytes"),
        pytest.param(lambda engine: "\ud800@example.com", "\ud800" * 8, id="lone surrogates"),
        pytest.param(lambda engine: "", "", id="empty"),
    ],
)
def test_every_failed_sign_in_gets_one_generic_error(engine: Engine, make_email, password: str) -> None:
    email = make_email(engine)
    with pytest.raises(InvalidCredentials) as error:
        _sign_in(engine, email, password)
    assert isinstance(error.value, DomainError)
    assert (error.value.code, error.value.status) == ("invalid_credentials", 401)
    assert error.value.message == "Wrong email or password."


def test_unknown_email_costs_a_bcrypt_check_too(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing oracle: without the dummy check an unknown email would answer about ten times faster."""
    monkeypatch.setenv("LITESUBS_BCRYPT_ROUNDS", "10")
    known = _register(engine).email
    unknown = _email()
    _sign_in(engine, known, PASSWORD)  # warm up: connections, the dummy hash at this cost

    def timed(email: str) -> float:
        started = time.perf_counter()
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, email, WRONG)
        return time.perf_counter() - started

    # Alternated, so a burst of load on a busy machine slows both alike; the fastest of five of each.
    timings: dict[str, list[float]] = {known: [], unknown: []}
    for _ in range(5):
        for email in (known, unknown):
            timings[email].append(timed(email))
    assert min(timings[unknown]) > 0.5 * min(timings[known])


# Rate limits


def test_sign_in_is_limited_per_email_and_client_before_the_password_is_checked(engine: Engine) -> None:
    email, client, now = _register(engine).email, _client(), utcnow()
    for _ in range(accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT):
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, email, WRONG, client=client, now=now)

    with pytest.raises(RateLimited) as error:
        _sign_in(engine, email.upper(), PASSWORD, client=client, now=now + timedelta(seconds=20))
    assert error.value.retry_after == 40
    assert error.value.message == "Too many sign-in attempts. Try again in 40 seconds."
    assert (error.value.code, error.value.status) == ("rate_limited", 429)

    assert _sign_in(engine, email, PASSWORD, client=_client(), now=now + timedelta(seconds=20)).email == email
    assert _sign_in(engine, email, PASSWORD, client=client, now=now + timedelta(minutes=1)).email == email


def test_failures_from_many_clients_never_lock_the_owner_out_but_slow_sign_in_down(engine: Engine) -> None:
    email, now = _register(engine).email, utcnow()
    assert accounts.sign_in_delay(email=email, engine=engine, now=now) == 0
    delays = []
    for _ in range(3 * accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT):
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, email, WRONG, client=_client(), now=now)
        delays.append(accounts.sign_in_delay(email=email.upper(), engine=engine, now=now))

    assert delays[: accounts.SIGN_IN_SLOWDOWN_AFTER - 1] == [0] * (accounts.SIGN_IN_SLOWDOWN_AFTER - 1)
    growing = delays[accounts.SIGN_IN_SLOWDOWN_AFTER - 1 :]
    assert growing[:4] == [0.25, 0.5, 1.0, 2.0]
    assert growing[-1] == accounts.SIGN_IN_MAX_DELAY_SECONDS
    assert _sign_in(engine, email, PASSWORD, client=_client(), now=now).email == email
    assert accounts.sign_in_delay(email=email, engine=engine, now=now + timedelta(minutes=1)) == 0


def test_sign_in_is_limited_per_client(engine: Engine) -> None:
    client, now = _client(), utcnow()
    for _ in range(accounts.SIGN_IN_ATTEMPTS_PER_CLIENT):
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, _email(), WRONG, client=client, now=now)

    user = _register(engine)
    with pytest.raises(RateLimited):
        _sign_in(engine, user.email, PASSWORD, client=client, now=now)
    assert _sign_in(engine, user.email, PASSWORD, client=_client(), now=now).id == user.id
    assert _sign_in(engine, user.email, PASSWORD, client=client, now=now + timedelta(seconds=60)).id == user.id


def test_registration_is_limited_per_client(engine: Engine) -> None:
    client, now = _client(), utcnow()
    for _ in range(accounts.REGISTRATIONS_PER_CLIENT):
        accounts.register(name="Ada", email=_email(), password=PASSWORD, client_key=client, engine=engine, now=now)
    email = _email()
    with pytest.raises(RateLimited, match="Too many registrations"):
        accounts.register(name="Ada", email=email, password=PASSWORD, client_key=client, engine=engine, now=now)
    assert _stored_user(engine, email) is None
    accounts.register(name="Ada", email=email, password=PASSWORD, client_key=_client(), engine=engine, now=now)
    assert _stored_user(engine, email) is not None


def test_wrong_current_passwords_are_limited_per_user(engine: Engine) -> None:
    user, now = _register(engine), utcnow()
    token = accounts.start_session(user_id=user.id, engine=engine)

    def change(current: str, moment) -> None:
        accounts.change_password(
            user_id=user.id,
            current_password=current,
            new_password="a new password",
            current_token=token,
            engine=engine,
            now=moment,
        )

    for _ in range(accounts.PASSWORD_CHECKS_PER_USER):
        with pytest.raises(InvalidRequest):
            change(WRONG, now)
    with pytest.raises(RateLimited, match="Too many password attempts"):
        change(PASSWORD, now)
    change(PASSWORD, now + timedelta(minutes=1))
    assert _sign_in(engine, user.email, "a new password").id == user.id


def test_the_window_slides_and_refused_attempts_do_not_count(engine: Engine) -> None:
    email, client, start = _email(), _client(), utcnow()
    for second in range(10):
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, email, WRONG, client=client, now=start + timedelta(seconds=second))
    for second in (10, 30, 59):
        with pytest.raises(RateLimited) as error:
            _sign_in(engine, email, WRONG, client=client, now=start + timedelta(seconds=second))
        assert error.value.retry_after == 60 - second

    later = start + timedelta(seconds=60)  # the first attempt has left the window, the refusals never entered it
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, email, WRONG, client=client, now=later)
    with pytest.raises(RateLimited) as error:
        _sign_in(engine, email, WRONG, client=client, now=later)
    assert error.value.message == "Too many sign-in attempts. Try again in 1 second."


def test_successful_sign_ins_do_not_count(engine: Engine) -> None:
    user, client, now = _register(engine), _client(), utcnow()
    for _ in range(3 * accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT):
        _sign_in(engine, user.email, PASSWORD, client=client, now=now)
    for _ in range(accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT - 1):
        with pytest.raises(InvalidCredentials):
            _sign_in(engine, user.email, WRONG, client=client, now=now)
    _sign_in(engine, user.email, PASSWORD, client=client, now=now)
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, user.email, WRONG, client=client, now=now)
    with pytest.raises(RateLimited):
        _sign_in(engine, user.email, PASSWORD, client=client, now=now)


def test_parallel_attempts_cannot_slip_past_the_limit(engine: Engine) -> None:
    email, client, now = _register(engine).email, _client(), utcnow()

    def attempt(_: int) -> str:
        try:
            _sign_in(engine, email, WRONG, client=client, now=now)
        except DomainError as error:
            return error.code
        return "signed in"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(24)))
    assert outcomes.count("invalid_credentials") == accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT
    assert outcomes.count("rate_limited") == 24 - accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT


def test_attempts_that_no_longer_count_are_pruned(engine: Engine) -> None:
    email, client, start = _email(), _client(), utcnow()
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, email, WRONG, client=client, now=start)
    keys = [
        rate_limits.limit_key("sign-in-email", email),
        rate_limits.limit_key("sign-in-client", client),
        rate_limits.limit_key("sign-in-email-client", f"{email}\x00{client}"),
    ]

    def rows() -> int:
        with Session(engine) as session:
            return session.exec(select(func.count()).where(col(LoginAttempt.key).in_(keys))).one()

    assert rows() == 3
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, _email(), WRONG, now=start + timedelta(seconds=30))
    assert rows() == 3
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, _email(), WRONG, now=start + timedelta(seconds=60))
    assert rows() == 0


# Sessions


def test_a_session_token_is_random_and_stored_only_hashed(engine: Engine) -> None:
    user = _register(engine)
    token = accounts.start_session(user_id=user.id, engine=engine)
    assert len(token) >= 43  # 32 random bytes, url-safe base64

    stored = _stored_session(engine, token)
    assert stored.user_id == user.id
    assert token not in stored.model_dump_json()
    found = accounts.user_for_token(token=token, engine=engine)
    assert found is not None
    assert found.id == user.id


def test_every_sign_in_gets_a_new_token(engine: Engine) -> None:
    user = _register(engine)
    tokens = {accounts.start_session(user_id=user.id, engine=engine) for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert accounts.user_for_token(token=token, engine=engine) is not None


@pytest.mark.parametrize("token", [None, "", "not-a-token", "\ud800"])
def test_missing_or_unknown_token_is_nobody(engine: Engine, token: str | None) -> None:
    assert accounts.user_for_token(token=token, engine=engine) is None


def test_idle_expiry_slides_with_use_but_at_most_once_a_minute(engine: Engine) -> None:
    user, start = _register(engine), utcnow()
    token = accounts.start_session(user_id=user.id, engine=engine, now=start)

    assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(seconds=30)) is not None
    assert _stored_session(engine, token).last_seen_at == start  # no write within the first minute

    used = start + timedelta(days=29)
    assert accounts.user_for_token(token=token, engine=engine, now=used) is not None
    stored = _stored_session(engine, token)
    assert (stored.last_seen_at, stored.idle_expires_at) == (used, used + timedelta(days=30))

    assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(days=58)) is not None


def test_an_unused_session_expires_after_30_days(engine: Engine) -> None:
    user, start = _register(engine), utcnow()
    token = accounts.start_session(user_id=user.id, engine=engine, now=start)
    assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(days=30)) is None
    assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(days=1)) is not None


def test_a_session_ends_after_90_days_however_much_it_is_used(engine: Engine) -> None:
    user, start = _register(engine), utcnow()
    token = accounts.start_session(user_id=user.id, engine=engine, now=start)
    for day in (20, 40, 60, 80):
        assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(days=day)) is not None
    assert accounts.user_for_token(token=token, engine=engine, now=start + timedelta(days=90)) is None


def test_signing_out_revokes_the_token_everywhere_and_only_that_token(engine: Engine) -> None:
    user = _register(engine)
    token, other = (accounts.start_session(user_id=user.id, engine=engine) for _ in range(2))

    accounts.end_session(token=token, engine=engine)
    accounts.end_session(token=token, engine=engine)
    accounts.end_session(token=None, engine=engine)

    assert accounts.user_for_token(token=token, engine=engine) is None
    assert _stored_session(engine, token).revoked_at is not None
    assert accounts.user_for_token(token=other, engine=engine) is not None


def test_an_inactive_user_is_signed_out(engine: Engine) -> None:
    user = _register(engine)
    token = accounts.start_session(user_id=user.id, engine=engine)
    _deactivate(engine, user)
    assert accounts.user_for_token(token=token, engine=engine) is None


# Profile changes


def test_change_name(engine: Engine) -> None:
    user = _register(engine)
    assert accounts.change_name(user_id=user.id, name="  Grace Hopper ", engine=engine).name == "Grace Hopper"
    assert _stored_user(engine, user.email).name == "Grace Hopper"

    with pytest.raises(InvalidRequest) as error:
        accounts.change_name(user_id=user.id, name=" ", engine=engine)
    assert (error.value.field, error.value.message) == ("name", "Enter your name.")
    with pytest.raises(NotFound):
        accounts.change_name(user_id=2**31 - 1, name="Nobody", engine=engine)


@pytest.mark.parametrize(
    ("current", "new", "field", "message"),
    [
        (WRONG, "a new password", "current_password", "Your current password is not correct."),
        (PASSWORD, "short", "new_password", "Use at least 8 characters."),
        (PASSWORD, "x" * 73, "new_password", "Use at most 72 bytes"),
    ],
)
def test_change_password_refusals_change_nothing(
    engine: Engine, current: str, new: str, field: str, message: str
) -> None:
    user = _register(engine)
    token, other = (accounts.start_session(user_id=user.id, engine=engine) for _ in range(2))
    with pytest.raises(InvalidRequest) as error:
        accounts.change_password(
            user_id=user.id, current_password=current, new_password=new, current_token=token, engine=engine
        )
    assert error.value.field == field
    assert error.value.message.startswith(message)
    assert _sign_in(engine, user.email, PASSWORD).id == user.id
    assert accounts.user_for_token(token=other, engine=engine) is not None


def test_change_password_signs_out_every_other_session(engine: Engine) -> None:
    user, bystander = _register(engine), _register(engine)
    current, other = (accounts.start_session(user_id=user.id, engine=engine) for _ in range(2))
    bystanders = accounts.start_session(user_id=bystander.id, engine=engine)

    accounts.change_password(
        user_id=user.id, current_password=PASSWORD, new_password="a new password", current_token=current, engine=engine
    )

    assert _sign_in(engine, user.email, "a new password").id == user.id
    with pytest.raises(InvalidCredentials):
        _sign_in(engine, user.email, PASSWORD)
    assert accounts.user_for_token(token=current, engine=engine) is not None
    assert accounts.user_for_token(token=other, engine=engine) is None
    assert accounts.user_for_token(token=bystanders, engine=engine) is not None


# ?next=


@pytest.mark.parametrize(
    "next_path",
    ["/dashboard", "/dashboard?x=1", "/dashboard/customers/12#ledger", "/buy/AbC_-9", "/wallet?next=%2Fdashboard"],
)
def test_local_next_paths_are_kept(next_path: str) -> None:
    assert accounts.safe_next_path(next_path, "/home") == next_path


@pytest.mark.parametrize(
    "next_path",
    [
        None,
        "",
        "dashboard",
        "https://evil.example",
        "http://evil.example/dashboard",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/\t/evil.example",
        "/\n/evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
        "/\u202e/evil",
        " /dashboard",
    ],
)
def test_other_next_values_fall_back_to_the_default(next_path: str | None) -> None:
    assert accounts.safe_next_path(next_path, "/home") == "/home"
