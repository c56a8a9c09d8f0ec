"""Many requests at once on one customer through HTTP: exactly the credits there are are spent, once each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api_v1.conftest import Creator
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of

REQUESTS = 120
CREDITS = 100
WORKERS = 40


def post_all(creator: Creator, url: str, bodies: list[dict], headers: list[dict[str, str]]) -> list[httpx.Response]:
    """Send every request at once from WORKERS threads, each with its own connection."""

    def send(index: int) -> httpx.Response:
        with httpx.Client(base_url=str(creator.client.base_url), headers=creator.client.headers, timeout=120) as client:
            return client.post(url, json=bodies[index], headers=headers[index])

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(send, range(len(bodies))))


def test_concurrent_debits_spend_exactly_the_balance(creator: Creator) -> None:
    customer, _ = creator.customer(credits=CREDITS)
    bodies = [{"amount": 1, "reason": f"call {index}"} for index in range(REQUESTS)]
    headers = [{"Idempotency-Key": f"call-{index}"} for index in range(REQUESTS)]

    responses = post_all(creator, f"/customers/{customer.id}/debit", bodies, headers)

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == CREDITS
    assert statuses.count(409) == REQUESTS - CREDITS
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"insufficient_credits"}
    assert sorted(r.json()["balance_after"] for r in responses if r.status_code == 200) == list(range(CREDITS))
    assert balance_of(creator.engine, customer.id) == 0
    assert len([entry for entry in entries_of(creator.engine, customer.id) if entry.kind == "debit"]) == CREDITS
    assert_invariants(creator.engine, customer.id)


def test_concurrent_retries_of_one_request_spend_once(creator: Creator) -> None:
    customer, _ = creator.customer(credits=CREDITS)
    count = 40

    responses = post_all(
        creator, f"/customers/{customer.id}/debit", [{"amount": 7}] * count, [{"Idempotency-Key": "the-one"}] * count
    )

    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    assert [r.headers.get("Idempotent-Replayed") for r in responses].count(None) == 1
    assert balance_of(creator.engine, customer.id) == CREDITS - 7
    assert_invariants(creator.engine, customer.id)
