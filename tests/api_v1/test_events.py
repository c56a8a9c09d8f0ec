"""`GET /api/v1/events`: a receiver that was down catches up on the creator's events over the API."""

from __future__ import annotations

from collections.abc import Callable

from litesubs.services import webhooks
from litesubs.services.customers import suspend_customer
from tests.api_v1.conftest import Creator, assert_error


def test_events_are_listed_newest_first_in_pages_as_webhooks_deliver_them(creator: Creator) -> None:
    customer, buyer = creator.customer(credits=5)  # credits.granted
    creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 2, "reason": "Bonus"})
    suspend_customer(creator_id=creator.user.id, customer_id=customer.id, engine=creator.engine)

    first = creator.client.get("/events", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [event["type"] for event in page["data"]] == ["customer.suspended", "credits.granted"]
    suspended, granted = page["data"]
    assert suspended["id"].startswith("evt_")
    assert suspended["data"] == {"customer_id": customer.id, "buyer_email": buyer.email, "status": "suspended"}
    assert granted["data"]["delta"] == 2
    assert granted["data"]["reason"] == "Bonus"
    assert granted["data"]["actor"] == {"type": "api_key", "id": str(creator.key_id)}
    assert granted["data"]["balance_after"] == 7

    rest = creator.client.get("/events", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [event["type"] for event in rest["data"]] == ["credits.granted"]
    assert rest["next_cursor"] is None

    only = creator.client.get("/events", params={"type": "customer.suspended"}).json()
    assert [event["id"] for event in only["data"]] == [suspended["id"]]
    stored = webhooks.list_events(creator_id=creator.user.id, engine=creator.engine).events
    assert stored[0] == suspended  # the same payload a webhook delivery carries


def test_a_creator_sees_only_their_own_events(new_creator: Callable[[], Creator]) -> None:
    mine, theirs = new_creator(), new_creator()
    theirs.customer(credits=3)
    assert mine.client.get("/events").json() == {"data": [], "next_cursor": None}
    assert len(theirs.client.get("/events").json()["data"]) == 1


def test_bad_event_queries_are_refused_clearly(creator: Creator) -> None:
    assert_error(creator.client.get("/events", params={"type": "nope"}), 422, "invalid_request", field="type")
    assert_error(creator.client.get("/events", params={"limit": 0}), 422, "invalid_request", field="limit")
    assert_error(creator.client.get("/events", params={"cursor": "zzz"}), 422, "invalid_request", field="cursor")
    assert_error(creator.client.get("/events", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
