"""Holds through API v1 over HTTP: hold, capture part, get the rest back; every error; retries; other creators."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from litesubs.models import utcnow
from litesubs.services import holds
from litesubs.services.customers import suspend_customer
from litesubs.services.ledger import Actor
from tests.api_v1.conftest import Creator, assert_error, idempotency_key
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of


def test_hold_capture_part_and_get_the_rest_back(creator: Creator) -> None:
    customer, buyer = creator.customer(credits=100)
    before = utcnow()

    placed = creator.client.post(
        f"/customers/{buyer.email}/holds",
        json={"amount": 30, "reason": "video render", "expires_in": 600},
        headers=idempotency_key(),
    )

    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["id"].startswith("hold_")
    assert {key: hold[key] for key in ("customer_id", "amount", "captured", "status", "reason", "ended_at")} == {
        "customer_id": customer.id,
        "amount": 30,
        "captured": 0,
        "status": "active",
        "reason": "video render",
        "ended_at": None,
    }
    created = datetime.fromisoformat(hold["created_at"])
    assert before <= created <= utcnow()
    assert datetime.fromisoformat(hold["expires_at"]) == created + timedelta(seconds=600)
    detail = creator.client.get(f"/customers/{customer.id}").json()
    assert (detail["balance"], detail["held"]) == (70, 30)
    assert creator.client.get(f"/holds/{hold['id']}").json() == hold

    captured = creator.client.post(f"/holds/{hold['id']}/capture", json={"amount": 12, "reason": "rendered 12 s"})

    assert captured.status_code == 200, captured.text
    body = captured.json()
    assert {key: body[key] for key in ("customer_id", "kind", "delta", "balance_after", "reason", "actor")} == {
        "customer_id": customer.id,
        "kind": "capture",
        "delta": 18,
        "balance_after": 88,
        "reason": "rendered 12 s",
        "actor": "api_key",
    }
    assert body["hold_id"] == hold["id"]
    assert (body["hold"]["status"], body["hold"]["captured"]) == ("captured", 12)
    detail = creator.client.get(f"/customers/{customer.id}").json()
    assert (detail["balance"], detail["held"]) == (88, 0)
    transactions = creator.client.get(f"/customers/{customer.id}/transactions").json()["data"]
    assert [(t["kind"], t["delta"], t["hold_id"]) for t in transactions[:2]] == [
        ("capture", 18, hold["id"]),
        ("hold", -30, hold["id"]),
    ]
    assert transactions[0]["id"] == body["id"]
    assert_invariants(creator.engine, customer.id)


def test_capture_without_a_body_spends_the_whole_hold_and_release_gives_all_back(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=20)
    first = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 5}).json()
    second = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 8, "reason": "batch"}).json()
    assert first["expires_at"] > first["created_at"]

    whole = creator.client.post(f"/holds/{first['id']}/capture")
    assert whole.status_code == 200, whole.text
    assert (whole.json()["delta"], whole.json()["hold"]["captured"]) == (0, 5)

    released = creator.client.post(f"/holds/{second['id']}/release")
    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["kind"], body["delta"], body["balance_after"], body["reason"]) == ("release", 8, 15, "batch")
    assert body["hold"]["status"] == "released"
    assert balance_of(creator.engine, customer.id) == 15
    assert_invariants(creator.engine, customer.id)


def test_a_hold_above_the_balance_is_409_and_for_a_suspended_customer_403(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=10)
    assert_error(
        creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 11}), 409, "insufficient_credits"
    )
    suspend_customer(creator_id=creator.user.id, customer_id=customer.id, engine=creator.engine)
    assert_error(creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 1}), 403, "customer_suspended")
    assert [entry.kind for entry in entries_of(creator.engine, customer.id)] == ["credit"]


def test_capturing_more_than_held_is_409_and_an_ended_hold_is_closed(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=10)
    hold = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 6}).json()

    assert_error(creator.client.post(f"/holds/{hold['id']}/capture", json={"amount": 7}), 409, "hold_exceeded")
    assert creator.client.get(f"/holds/{hold['id']}").json()["status"] == "active"
    assert balance_of(creator.engine, customer.id) == 4

    assert creator.client.post(f"/holds/{hold['id']}/release").status_code == 200
    assert_error(creator.client.post(f"/holds/{hold['id']}/release"), 409, "hold_closed")
    assert_error(creator.client.post(f"/holds/{hold['id']}/capture", json={"amount": 1}), 409, "hold_closed")
    assert balance_of(creator.engine, customer.id) == 10
    assert_invariants(creator.engine, customer.id)


def test_a_retry_with_the_same_key_replays_the_first_answer_even_after_the_hold_ended(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=50)
    key = idempotency_key()
    placed = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 20}, headers=key)
    again = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 20}, headers=key)
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, placed.json(), "true")
    assert "Idempotent-Replayed" not in placed.headers
    assert_error(
        creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 21}, headers=key),
        409,
        "idempotency_conflict",
    )

    hold_id, capture_key = placed.json()["id"], idempotency_key()
    captured = creator.client.post(f"/holds/{hold_id}/capture", json={"amount": 3}, headers=capture_key)
    replayed = creator.client.post(f"/holds/{hold_id}/capture", json={"amount": 3}, headers=capture_key)
    assert (replayed.status_code, replayed.json()) == (200, captured.json())
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert_error(creator.client.post(f"/holds/{hold_id}/capture", json={"amount": 3}), 409, "hold_closed")

    release_key = idempotency_key()
    closed = creator.client.post(f"/holds/{hold_id}/release", headers=release_key)
    assert_error(closed, 409, "hold_closed")
    closed_again = creator.client.post(f"/holds/{hold_id}/release", headers=release_key)
    assert_error(closed_again, 409, "hold_closed")
    assert closed_again.headers["Idempotent-Replayed"] == "true"
    assert balance_of(creator.engine, customer.id) == 47
    assert_invariants(creator.engine, customer.id)


def test_an_expired_hold_gives_its_credits_back_on_its_own(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=10)
    an_hour_ago = utcnow() - timedelta(hours=1)
    expired = holds.place_hold(
        creator_id=creator.user.id,
        customer_id=customer.id,
        amount=9,
        actor=Actor("api_key", creator.key_id),
        expires_in=60,
        now=an_hour_ago,
        engine=creator.engine,
    )
    hold_id = expired.public_id
    assert balance_of(creator.engine, customer.id) == 1  # nothing has released it yet

    detail = creator.client.get(f"/customers/{customer.id}").json()
    assert (detail["balance"], detail["held"]) == (10, 0)
    hold = creator.client.get(f"/holds/{hold_id}").json()
    assert (hold["status"], hold["captured"]) == ("expired", 0)
    assert_error(creator.client.post(f"/holds/{hold_id}/capture"), 409, "hold_closed")
    release = creator.client.get(f"/customers/{customer.id}/transactions").json()["data"][0]
    assert (release["kind"], release["delta"], release["actor"], release["hold_id"]) == (
        "release",
        9,
        "system",
        hold_id,
    )
    assert_invariants(creator.engine, customer.id, now=utcnow())


def test_list_a_customers_holds_by_status_in_pages(creator: Creator) -> None:
    customer, buyer = creator.customer(credits=100)
    made = [creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 5}).json() for _ in range(3)]
    creator.client.post(f"/holds/{made[0]['id']}/release")

    active = creator.client.get(f"/customers/{buyer.email}/holds", params={"status": "active", "limit": 1}).json()
    assert [hold["id"] for hold in active["data"]] == [made[2]["id"]]
    rest = creator.client.get(
        f"/customers/{customer.id}/holds", params={"status": "active", "cursor": active["next_cursor"]}
    ).json()
    assert ([hold["id"] for hold in rest["data"]], rest["next_cursor"]) == ([made[1]["id"]], None)
    every = creator.client.get(f"/customers/{customer.id}/holds").json()["data"]
    assert [(hold["id"], hold["status"]) for hold in every] == [
        (made[2]["id"], "active"),
        (made[1]["id"], "active"),
        (made[0]["id"], "released"),
    ]
    assert_error(
        creator.client.get(f"/customers/{customer.id}/holds", params={"status": "open"}),
        422,
        "invalid_request",
        field="status",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 5, "expires_in": 0}, "expires_in"),
        ({"amount": 5, "expires_in": 86_401}, "expires_in"),
        ({"amount": 5, "expires_in": "600"}, "expires_in"),
        ({"amount": 5, "reason": "x" * 501}, "reason"),
        ({"amount": 5, "colour": "red"}, "colour"),
    ],
)
def test_bad_hold_bodies_are_422_naming_the_field_and_change_nothing(creator: Creator, body: dict, field: str) -> None:
    customer, _buyer = creator.customer(credits=10)
    response = creator.client.post(f"/customers/{customer.id}/holds", json=body)
    assert_error(response, 422, "invalid_request", field=field)
    assert balance_of(creator.engine, customer.id) == 10


def test_bad_capture_bodies_are_422(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=10)
    hold = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 6}).json()
    for body, field in (({"amount": 0}, "amount"), ({"amount": "3"}, "amount"), ({"reason": "\x00"}, "reason")):
        assert_error(
            creator.client.post(f"/holds/{hold['id']}/capture", json=body), 422, "invalid_request", field=field
        )
    assert creator.client.get(f"/holds/{hold['id']}").json()["status"] == "active"


def test_another_creators_holds_and_malformed_ids_are_404(creator: Creator, new_creator: Callable[[], Creator]) -> None:
    customer, buyer = creator.customer(credits=10)
    hold = creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 4}).json()
    stranger = new_creator()
    for hold_id in (hold["id"], "hold_999999999", "hold_x", "42", "hold_99999999999999"):
        assert_error(stranger.client.get(f"/holds/{hold_id}"), 404, "not_found")
        assert_error(stranger.client.post(f"/holds/{hold_id}/capture"), 404, "not_found")
        assert_error(stranger.client.post(f"/holds/{hold_id}/release"), 404, "not_found")
    assert_error(stranger.client.post(f"/customers/{customer.id}/holds", json={"amount": 1}), 404, "not_found")
    assert_error(stranger.client.get(f"/customers/{buyer.email}/holds"), 404, "not_found")
    assert creator.client.get(f"/holds/{hold['id']}").json()["status"] == "active"
    assert balance_of(creator.engine, customer.id) == 6


def test_concurrent_holds_over_http_never_hold_more_than_the_balance(creator: Creator) -> None:
    customer, _buyer = creator.customer(credits=100)

    def hold(_index: int) -> int:
        return creator.client.post(f"/customers/{customer.id}/holds", json={"amount": 7}).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(hold, range(25)))
    assert sorted(statuses) == [201] * 14 + [409] * 11
    assert creator.client.get(f"/customers/{customer.id}").json()["held"] == 98
    assert_invariants(creator.engine, customer.id)
