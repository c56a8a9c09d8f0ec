"""The hot routes (`litesubs/api/v1/hot.py`) answer exactly as the FastAPI routes they stand in front of.

Each request is sent twice: as clients usually send it, which the hot route serves, and with a variation
it leaves to FastAPI (a `charset` on the JSON content type; a second space after `Bearer`), which FastAPI
reads the same way. Status, error body, the headers a client reads and the shape of the answer must agree.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx

from litesubs.services.customers import suspend_customer
from tests.api_v1.conftest import Creator
from tests.ledger_factories import balance_of

JSON = "application/json"
READ_HEADERS = ("content-type", "idempotent-replayed", "retry-after", "www-authenticate")


def both_ways(creator: Creator, method: str, path: str, *, body: dict | None = None, **headers: str) -> list:
    """The answer of the hot route and of FastAPI to one request (each with its own Idempotency-Key suffix)."""
    usual = {"Content-Type": JSON, "Authorization": f"Bearer {creator.secret}"}
    left_to_fastapi = (
        {"Content-Type": f"{JSON}; charset=utf-8", "Authorization": f"Bearer {creator.secret}"}
        if method == "POST"
        else {"Authorization": f"Bearer  {creator.secret}"}
    )
    content = None if body is None else httpx.Request("POST", "/", json=body).content
    return [
        creator.client.request(method, path, content=content, headers={**variant, **headers})
        for variant in (usual, left_to_fastapi)
    ]


def assert_same(responses: list[httpx.Response], *, ignore: tuple[str, ...] = ()) -> dict:
    hot, fastapi = responses
    assert hot.status_code == fastapi.status_code, (hot.text, fastapi.text)
    assert {name: hot.headers.get(name) for name in READ_HEADERS} == {
        name: fastapi.headers.get(name) for name in READ_HEADERS
    }
    assert int(hot.headers["content-length"]) == len(hot.content)
    shape = [{key: value for key, value in r.json().items() if key not in ignore} for r in responses]
    assert shape[0] == shape[1]
    return hot.json()


def test_a_debit_and_its_replay_answer_as_the_route_does(creator: Creator) -> None:
    customer, _ = creator.customer(credits=100)
    path = f"/customers/{customer.id}/debit"
    key = secrets.token_hex(8)
    first = [r.json() for r in both_ways(creator, "POST", path, body={"amount": 3, "reason": "job"})]
    assert [answer["balance_after"] for answer in first] == [97, 94]
    assert set(first[0]) == set(first[1])

    hot, fastapi = both_ways(creator, "POST", path, body={"amount": 5}, **{"Idempotency-Key": key})
    assert (hot.status_code, fastapi.status_code) == (200, 200)
    assert fastapi.headers["idempotent-replayed"] == "true"  # the same key and body: the first answer again
    assert fastapi.json() == hot.json()
    assert_same(both_ways(creator, "POST", path, body={"amount": 5}, **{"Idempotency-Key": key}))
    assert balance_of(creator.engine, customer.id) == 89


def test_refusals_of_a_debit_answer_as_the_route_does(creator: Creator, new_creator: Callable[[], Creator]) -> None:
    customer, _ = creator.customer(credits=2)
    path = f"/customers/{customer.id}/debit"
    assert assert_same(both_ways(creator, "POST", path, body={"amount": 3}))["error"]["code"] == "insufficient_credits"
    key = secrets.token_hex(8)
    creator.client.post(path, json={"amount": 1}, headers={"Idempotency-Key": key})
    conflict = both_ways(creator, "POST", path, body={"amount": 2}, **{"Idempotency-Key": key})
    assert assert_same(conflict)["error"]["code"] == "idempotency_conflict"
    invalid = assert_same(both_ways(creator, "POST", path, body={"amount": 0}))
    assert invalid["error"]["field"] == "amount"
    assert assert_same(both_ways(creator, "POST", path, body={"amount": 1, "extra": 1}))["error"]["field"]

    intruder = new_creator()
    assert assert_same(both_ways(intruder, "POST", path, body={"amount": 1}))["error"]["code"] == "not_found"
    suspend_customer(creator_id=creator.user.id, customer_id=customer.id, engine=creator.engine)
    assert assert_same(both_ways(creator, "POST", path, body={"amount": 1}))["error"]["code"] == "customer_suspended"
    assert balance_of(creator.engine, customer.id) == 1


def test_a_customer_answers_as_the_route_does(creator: Creator, new_creator: Callable[[], Creator]) -> None:
    customer, buyer = creator.customer(credits=7)
    found = assert_same(both_ways(creator, "GET", f"/customers/{customer.id}"))
    assert (found["id"], found["balance"]) == (customer.id, 7)
    assert assert_same(both_ways(creator, "GET", f"/customers/{buyer.email}"))["id"] == customer.id
    assert assert_same(both_ways(new_creator(), "GET", f"/customers/{customer.id}"))["error"]["code"] == "not_found"
    assert assert_same(both_ways(creator, "GET", "/customers/" + "9" * 30))["error"]["code"] == "not_found"
