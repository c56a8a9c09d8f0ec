"""The API keys page's handlers are doors anyone can knock on: each reloads the user; the service checks ownership."""

from __future__ import annotations

import secrets

from reflex.state import State

from litesubs.models import User
from litesubs.services import accounts
from litesubs.services.api_keys import authenticate, create_key, list_keys
from litesubs.state.api_keys import ApiKeysState

PASSWORD = "a long enough password"


def register(name: str) -> User:
    return accounts.register(name=name, email=f"{name.lower()}-{secrets.token_hex(5)}@example.com", password=PASSWORD)


def tab_of(user: User | None) -> ApiKeysState:
    """The state as a browser tab signed in as `user` (or signed out) would have it."""
    state = State().get_substate(ApiKeysState.get_full_name().split(".")[1:])
    state.session_token = accounts.start_session(user_id=user.id) if user else ""
    return state


def test_revoking_another_creators_key_is_refused_and_the_key_keeps_working(app_database: str) -> None:
    owner, intruder = register("Owner"), register("Intruder")
    key, secret = create_key(creator_id=owner.id, name="Backend")

    result = ApiKeysState.revoke.fn(tab_of(intruder), key.id)

    assert "No such API key." in str(result)
    assert authenticate(secret=secret).id == key.id


def test_signed_out_tabs_are_sent_to_sign_in_and_create_nothing(app_database: str) -> None:
    owner = register("Owner")
    key, secret = create_key(creator_id=owner.id, name="Backend")
    tab = tab_of(None)

    assert "/login" in str(ApiKeysState.create.fn(tab, {"name": "Sneaky"}))
    assert "/login" in str(ApiKeysState.revoke.fn(tab, key.id))
    assert [k.name for k in list_keys(creator_id=owner.id)] == ["Backend"]
    assert authenticate(secret=secret).id == key.id
    assert tab.new_secret == ""


def test_the_secret_is_shown_once_and_forgotten_when_its_dialog_closes(app_database: str) -> None:
    owner = register("Owner")
    tab = tab_of(owner)

    ApiKeysState.create.fn(tab, {"name": "Backend"})
    shown = tab.new_secret
    assert authenticate(secret=shown).creator_id == owner.id
    assert [row["prefix"] for row in tab.keys] == [shown[:10] + "…"]

    ApiKeysState.set_secret_open.fn(tab, False)
    assert tab.new_secret == ""
    assert shown not in str(tab.dict())
