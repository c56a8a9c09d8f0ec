"""State handlers are doors anyone can knock on: each one re-loads the user from the session token."""

from __future__ import annotations

import secrets

import pytest
from reflex.state import State
from sqlmodel import Session

from litesubs.db import get_engine
from litesubs.models import User
from litesubs.services import accounts
from litesubs.state.auth import AccountSettingsState

PASSWORD = "a long enough password"


def account_settings(token: str) -> AccountSettingsState:
    """The handler's state as a browser tab holding `token` would have it."""
    root = State()
    state = root.get_substate(AccountSettingsState.get_full_name().split(".")[1:])
    state.session_token = token
    return state


def stored_name(user_id: int) -> str:
    with Session(get_engine()) as session:
        return session.get(User, user_id).name


@pytest.fixture
def user(app_database: str) -> User:
    return accounts.register(name="Original", email=f"u-{secrets.token_hex(5)}@example.com", password=PASSWORD)


@pytest.mark.parametrize("token", ["", "forged-" + secrets.token_urlsafe(32)])
def test_missing_or_forged_token_is_refused_and_changes_nothing(user: User, token: str) -> None:
    state = account_settings(token)
    result = AccountSettingsState.change_name.fn(state, {"name": "Hijacked"})
    assert "/login" in str(result)
    assert stored_name(user.id) == "Original"


def test_revoked_token_is_refused(user: User) -> None:
    token = accounts.start_session(user_id=user.id)
    accounts.end_session(token=token)
    result = AccountSettingsState.change_password.fn(
        account_settings(token),
        {"current_password": PASSWORD, "new_password": "x" * 12, "new_password_confirmation": "x" * 12},
    )
    assert "/login" in str(result)
    assert accounts.authenticate(email=user.email, password=PASSWORD, client_key="test").id == user.id


def test_a_valid_token_is_accepted(user: User) -> None:
    state = account_settings(accounts.start_session(user_id=user.id))
    AccountSettingsState.change_name.fn(state, {"name": "Renamed"})
    assert stored_name(user.id) == "Renamed"
    assert state.user_name == "Renamed"
