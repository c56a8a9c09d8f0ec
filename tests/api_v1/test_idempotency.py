"""Idempotency-Key over HTTP: a retry returns the first response and changes nothing; another body is a conflict."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from litesubs.models import utcnow
from litesubs.services.idempotency import purge_idempotency_records
from tests.api_v1.conftest import Creator, assert_error, idempotency_key
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of


@pytest.mark.parametrize(("path", "body", "balance"), [("debit", {"amount": 3}, 7), ("credit", {"amount": 3}, 13)])
def test_a_retry_returns_the_first_response_marked_replayed_and_changes_nothing(
    creator: Creator, path: str, body: dict, balance: int
) -> None:
    customer, buyer = creator.customer(credits=10)
    headers = idempotency_key()

    first = creator.client.post(f"/customers/{customer.id}/{path}", json={**body, "reason": "job 1"}, headers=headers)
    again = creator.client.post(f"/customers/{customer.id}/{path}", json={**body, "reason": "job 1"}, headers=headers)
    by_email = creator.client.post(
        f"/customers/{buyer.email}/{path}", json={**body, "reason": "job 1"}, headers=headers
    )

    assert first.status_code == again.status_code == by_email.status_code == 200
    assert first.json() == again.json() == by_email.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == by_email.headers["Idempotent-Replayed"] == "true"
    assert balance_of(creator.engine, customer.id) == balance
    assert len(entries_of(creator.engine, customer.id)) == 2
    assert_invariants(creator.engine, customer.id)


def test_the_same_key_with_another_body_or_operation_is_a_conflict(creator: Creator) -> None:
    customer, _ = creator.customer(credits=10)
    other, _ = creator.customer(credits=10)
    headers = idempotency_key()
    creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 3}, headers=headers)

    for path, body in [
        (f"/customers/{customer.id}/debit", {"amount": 4}),
        (f"/customers/{customer.id}/debit", {"amount": 3, "reason": "different"}),
        (f"/customers/{customer.id}/credit", {"amount": 3}),
        (f"/customers/{other.id}/debit", {"amount": 3}),
    ]:
        assert_error(creator.client.post(path, json=body, headers=headers), 409, "idempotency_conflict")
    assert (balance_of(creator.engine, customer.id), balance_of(creator.engine, other.id)) == (7, 10)


def test_a_refusal_is_replayed_too_even_after_the_balance_grew(creator: Creator) -> None:
    customer, _ = creator.customer(credits=2)
    headers = idempotency_key()
    url = f"/customers/{customer.id}/debit"

    first = creator.client.post(url, json={"amount": 5}, headers=headers)
    creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 10})
    again = creator.client.post(url, json={"amount": 5}, headers=headers)

    assert_error(first, 409, "insufficient_credits")
    assert_error(again, 409, "insufficient_credits")
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert creator.client.post(url, json={"amount": 5}, headers=idempotency_key()).json()["balance_after"] == 7


def test_a_rejected_request_is_not_remembered_so_the_corrected_retry_uses_the_same_key(creator: Creator) -> None:
    customer, _ = creator.customer(credits=10)
    headers = idempotency_key()
    url = f"/customers/{customer.id}/credit"

    assert_error(creator.client.post(url, json={"amount": 0}, headers=headers), 422, "invalid_request", field="amount")
    past = {"amount": 1, "expires_at": "2001-01-01T00:00:00Z"}
    assert_error(creator.client.post(url, json=past, headers=headers), 422, "invalid_request", field="expires_at")
    corrected = creator.client.post(url, json={"amount": 1}, headers=headers)

    assert corrected.status_code == 200
    assert "Idempotent-Replayed" not in corrected.headers
    assert balance_of(creator.engine, customer.id) == 11


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_has_1_to_255_characters(creator: Creator, key: str) -> None:
    customer, _ = creator.customer(credits=10)
    response = creator.client.post(
        f"/customers/{customer.id}/debit", json={"amount": 1}, headers={"Idempotency-Key": key}
    )
    assert_error(response, 422, "invalid_request", field="Idempotency-Key")
    ok = creator.client.post(
        f"/customers/{customer.id}/debit", json={"amount": 1}, headers={"Idempotency-Key": "k" * 255}
    )
    assert ok.status_code == 200


def test_keys_belong_to_their_creator(creator: Creator, new_creator: Callable[[], Creator]) -> None:
    other = new_creator()
    mine, _ = creator.customer(credits=10)
    theirs, _ = other.customer(credits=10)
    headers = {"Idempotency-Key": "order-1"}

    assert creator.client.post(f"/customers/{mine.id}/debit", json={"amount": 1}, headers=headers).status_code == 200
    response = other.client.post(f"/customers/{theirs.id}/debit", json={"amount": 2}, headers=headers)

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers
    assert (balance_of(creator.engine, mine.id), balance_of(other.engine, theirs.id)) == (9, 8)


def test_records_are_kept_for_at_least_24_hours(creator: Creator) -> None:
    customer, _ = creator.customer(credits=10)
    headers = idempotency_key()
    url = f"/customers/{customer.id}/debit"
    creator.client.post(url, json={"amount": 1}, headers=headers)

    purge_idempotency_records(engine=creator.engine, now=utcnow() + timedelta(hours=23, minutes=59))
    assert creator.client.post(url, json={"amount": 1}, headers=headers).headers["Idempotent-Replayed"] == "true"
    assert balance_of(creator.engine, customer.id) == 9
