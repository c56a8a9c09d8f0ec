"""The Webhooks page's handlers are doors anyone can knock on, with any arguments: each re-loads the user from
the session token and lets the service check that the endpoint or delivery is theirs."""

from __future__ import annotations

import secrets

import pytest
from reflex.state import State

from litesubs.services import accounts, webhooks
from litesubs.state.webhooks import WebhooksState

PASSWORD = "a long enough password"


def webhooks_state(token: str) -> WebhooksState:
    state = State().get_substate(WebhooksState.get_full_name().split(".")[1:])
    state.session_token = token
    return state


def someone(name: str) -> int:
    email = f"{name.lower()}-{secrets.token_hex(5)}@example.com"
    return accounts.register(name=name, email=email, password=PASSWORD).id


def test_another_creators_endpoint_and_wild_ids_are_refused_and_nothing_changes(app_database: str) -> None:
    owner, intruder = someone("Owner"), someone("Intruder")
    endpoint = webhooks.create_endpoint(creator_id=owner, url="http://127.0.0.1:9/hooks", allow_local=True)
    webhooks.send_test_event(creator_id=owner, endpoint_id=endpoint.id)
    [delivery] = webhooks.list_deliveries(creator_id=owner, endpoint_id=endpoint.id)
    state = webhooks_state(accounts.start_session(user_id=intruder))

    for wild in (endpoint.id, 2**63, -1, 0):
        for call in (
            lambda endpoint_id: WebhooksState.rotate.fn(state, endpoint_id),
            lambda endpoint_id: WebhooksState.set_enabled.fn(state, endpoint_id, False),
            lambda endpoint_id: WebhooksState.send_test.fn(state, endpoint_id),
            lambda endpoint_id: WebhooksState.delete.fn(state, endpoint_id),
        ):
            assert "No such webhook endpoint." in str(call(wild))
    for wild in (str(endpoint.id), str(2**63), "-1", "x"):
        form = {"endpoint_id": wild, "credits.debited": "on"}
        assert "No such webhook endpoint." in str(WebhooksState.change_events.fn(state, form))
    for wild in (delivery.id, 2**63, -5):
        assert "No such delivery." in str(WebhooksState.resend.fn(state, wild))

    [stored] = webhooks.list_endpoints(creator_id=owner)
    assert (stored.secret, stored.enabled, stored.event_types) == (endpoint.secret, True, endpoint.event_types)
    assert len(webhooks.list_deliveries(creator_id=owner, endpoint_id=endpoint.id)) == 1
    WebhooksState.load.fn(state)
    assert state.endpoints == []  # the intruder's page lists only their own (none)


@pytest.mark.parametrize("token", ["", "forged-" + secrets.token_urlsafe(32)])
def test_without_a_valid_session_nothing_happens(app_database: str, token: str) -> None:
    owner = someone("Owner")
    state = webhooks_state(token)
    result = WebhooksState.create.fn(state, {"url": "http://127.0.0.1:9/x", "purchase.completed": "on"})
    assert "/login" in str(result)
    assert "/login" in str(WebhooksState.save_threshold.fn(state, {"threshold": "5"}))
    assert webhooks.list_endpoints(creator_id=owner) == []
