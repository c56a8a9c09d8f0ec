"""State handlers are doors anyone can knock on: each one re-loads the user from the session token."""

from __future__ import annotations

import secrets

import pytest
from reflex.state import State
from sqlmodel import Session

from litesubs.db import get_engine
from litesubs.models import Customer, User
from litesubs.services import accounts, email_verification
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from litesubs.state.auth import AccountSettingsState
from litesubs.state.customers import CustomerState

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


def test_customer_handlers_refuse_another_creators_customer_id(app_database: str) -> None:
    """A forged customer id in the state reaches the service, which refuses it: nothing changes."""
    owner = accounts.register(name="Owner", email=f"o-{secrets.token_hex(5)}@example.com", password=PASSWORD)
    buyer = accounts.register(name="Buyer", email=f"b-{secrets.token_hex(5)}@example.com", password=PASSWORD)
    intruder = accounts.register(name="Intruder", email=f"i-{secrets.token_hex(5)}@example.com", password=PASSWORD)
    customer = get_or_create_customer(creator_id=owner.id, buyer_id=buyer.id)
    grant(creator_id=owner.id, customer_id=customer.id, amount=10, actor=Actor("creator", owner.id))

    state = State().get_substate(CustomerState.get_full_name().split(".")[1:])
    state.session_token = accounts.start_session(user_id=intruder.id)
    state._customer_id = customer.id
    CustomerState.adjust_credits.fn(state, {"amount": "10", "reason": "steal"})
    CustomerState.set_suspended.fn(state, True)
    assert state.adjust_errors == {"amount": "No such customer."}
    with Session(get_engine()) as session:
        stored = session.get(Customer, customer.id)
        assert (stored.balance, stored.status) == (10, "active")


def test_email_and_mail_settings_handlers_refuse_a_forged_token(user: User) -> None:
    state = account_settings("forged-" + secrets.token_urlsafe(32))
    result = AccountSettingsState.change_email.fn(
        state, {"new_email": f"x-{secrets.token_hex(4)}@example.com", "email_password": PASSWORD}
    )
    assert "/login" in str(result)
    assert "/login" in str(AccountSettingsState.set_sale_mail.fn(state, False))
    assert "/login" in str(AccountSettingsState.send_verification_again.fn(state))
    with Session(get_engine()) as session:
        stored = session.get(User, user.id)
    assert (stored.sale_mail, stored.email) == (True, user.email)
    assert email_verification.pending_change(user_id=user.id) is None
