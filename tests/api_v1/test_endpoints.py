"""Every endpoint of API v1 over HTTP: what it answers, what it changes, and every error it can give."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session

from litesubs.models import ApiKey, User, utcnow
from litesubs.services.api_keys import KEY_CACHE_SECONDS, revoke_key
from litesubs.services.customers import get_or_create_customer, suspend_customer
from litesubs.services.ledger import Actor, grant
from litesubs.services.packs import set_pack_active
from tests.api_v1.conftest import Creator, assert_error
from tests.conftest import use_database
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of

PLUS_TWO_HOURS = timezone(timedelta(hours=2))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Reading customers ---------------------------------------------------------------------------


def test_one_customer_by_id_or_by_email_with_balance_status_and_lots_in_spending_order(creator: Creator) -> None:
    soon = utcnow() + timedelta(days=3)
    customer, buyer = creator.customer(credits=7)
    creator.customer(credits=1)  # another customer of the same creator
    creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 5, "expires_at": iso(soon)})

    by_id = creator.client.get(f"/customers/{customer.id}")
    by_email = creator.client.get(f"/customers/{buyer.email.upper()}")

    assert by_id.status_code == 200
    assert by_id.json() == by_email.json()
    body = by_id.json()
    assert {key: body[key] for key in ("id", "email", "name", "status", "balance")} == {
        "id": customer.id,
        "email": buyer.email,
        "name": "Buyer",
        "status": "active",
        "balance": 12,
    }
    assert [(lot["source"], lot["granted"], lot["remaining"]) for lot in body["lots"]] == [
        ("grant", 5, 5),
        ("grant", 7, 7),
    ]
    assert datetime.fromisoformat(body["lots"][0]["expires_at"]) == soon
    assert body["lots"][1]["expires_at"] is None


def test_a_customer_email_is_marked_verified_once_the_buyer_confirmed_it(creator: Creator) -> None:
    customer, buyer = creator.customer()
    assert creator.client.get(f"/customers/{customer.id}").json()["email_verified"] is False
    with Session(creator.engine) as session:
        row = session.get(User, buyer.id)
        row.email_verified_at = utcnow()
        session.add(row)
        session.commit()
    assert creator.client.get(f"/customers/{buyer.email}").json()["email_verified"] is True
    [listed] = creator.client.get("/customers", params={"email": buyer.email}).json()["data"]
    assert listed["email_verified"] is True


def test_credits_whose_time_has_passed_are_not_in_any_balance(creator: Creator) -> None:
    customer, _ = creator.customer(credits=4)
    an_hour_ago = utcnow() - timedelta(hours=1)
    grant(
        creator_id=creator.user.id,
        customer_id=customer.id,
        amount=6,
        actor=Actor("creator", creator.user.id),
        expires_at=an_hour_ago,
        now=an_hour_ago - timedelta(hours=1),
        engine=creator.engine,
    )
    assert balance_of(creator.engine, customer.id) == 10  # nothing has expired the lot yet

    assert creator.client.get("/customers").json()["data"][0]["balance"] == 4
    assert creator.client.get(f"/customers/{customer.id}").json()["balance"] == 4
    assert balance_of(creator.engine, customer.id) == 4
    assert_invariants(creator.engine, customer.id, now=utcnow())


def test_list_customers_newest_first_in_pages_and_by_email(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    made = [creator.customer(credits=credits) for credits in (1, 2, 3, 4, 5)]
    new_creator().customer(credits=9)  # someone else's customer

    pages, cursor = [], None
    while True:
        response = creator.client.get("/customers", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        pages.append([(row["id"], row["balance"]) for row in response.json()["data"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    newest_first = [(customer.id, index + 1) for index, (customer, _buyer) in reversed(list(enumerate(made)))]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert [row["id"] for row in creator.client.get("/customers").json()["data"]] == [c for c, _ in newest_first]

    customer, buyer = made[2]
    found = creator.client.get("/customers", params={"email": f" {buyer.email.upper()} "}).json()
    assert [(row["id"], row["email"], row["balance"]) for row in found["data"]] == [(customer.id, buyer.email, 3)]
    assert found["next_cursor"] is None
    assert creator.client.get("/customers", params={"email": "nobody@example.com"}).json() == {
        "data": [],
        "next_cursor": None,
    }


def test_every_cursor_of_the_documented_shape_is_a_position_in_the_list(creator: Creator) -> None:
    """The OpenAPI document describes a cursor exactly (CURSOR_PATTERN); any such value is accepted, not only
    the ones the API handed out."""
    customer, _ = creator.customer(credits=1)
    creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 1})
    for path, first_id in (
        ("/customers", customer.id),
        (
            f"/customers/{customer.id}/transactions",
            creator.client.get(f"/customers/{customer.id}/transactions").json()["data"][-1]["id"],
        ),
    ):
        everything = creator.client.get(path, params={"cursor": "9999999999"})
        assert everything.status_code == 200
        assert everything.json()["data"] == creator.client.get(path).json()["data"]
        before_the_first = creator.client.get(path, params={"cursor": str(first_id)})
        assert before_the_first.json() == {"data": [], "next_cursor": None}
        assert creator.client.get(path, params={"cursor": "1"}).json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "x" * 101}, "cursor"),
        ({"cursor": "0"}, "cursor"),
        ({"cursor": "12345678901"}, "cursor"),
    ],
)
def test_bad_paging_is_422_naming_the_field(creator: Creator, params: dict, field: str) -> None:
    customer, _ = creator.customer(credits=1)
    assert_error(creator.client.get("/customers", params=params), 422, "invalid_request", field=field)
    assert_error(
        creator.client.get(f"/customers/{customer.id}/transactions", params=params), 422, "invalid_request", field=field
    )


def test_unknown_customers_are_404(creator: Creator) -> None:
    weird = ("a%0A", "%0A", "a%0D%0Ab", "%E9", "%ED%A0%80", "%20", "x%00y")  # newlines, bad UTF-8, blanks
    for ref in ("999999999", "99999999999999999999", "nobody@example.com", "%00", "0", *weird):
        assert_error(creator.client.get(f"/customers/{ref}"), 404, "not_found")
        assert_error(creator.client.get(f"/customers/{ref}/transactions"), 404, "not_found")
        assert_error(creator.client.post(f"/customers/{ref}/debit", json={"amount": 1}), 404, "not_found")
        assert_error(creator.client.post(f"/customers/{ref}/credit", json={"amount": 1}), 404, "not_found")


# --- Changing credits ----------------------------------------------------------------------------


def test_debit_spends_and_the_ledger_names_the_api_key(creator: Creator) -> None:
    customer, buyer = creator.customer(credits=10)

    response = creator.client.post(f"/customers/{buyer.email}/debit", json={"amount": 3, "reason": "  3 API calls "})

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("customer_id", "kind", "delta", "balance_after", "reason", "actor")} == {
        "customer_id": customer.id,
        "kind": "debit",
        "delta": -3,
        "balance_after": 7,
        "reason": "3 API calls",
        "actor": "api_key",
    }
    assert "Idempotent-Replayed" not in response.headers
    entry = entries_of(creator.engine, customer.id)[-1]
    assert (entry.id, entry.actor_type, entry.actor_id, entry.reason) == (
        body["id"],
        "api_key",
        str(creator.key_id),
        "3 API calls",
    )
    assert balance_of(creator.engine, customer.id) == 7
    assert_invariants(creator.engine, customer.id)


def test_debit_above_the_balance_is_409_and_spends_nothing(creator: Creator) -> None:
    customer, _ = creator.customer(credits=5)
    error = assert_error(
        creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 6}), 409, "insufficient_credits"
    )
    assert "5" in error["message"]
    assert balance_of(creator.engine, customer.id) == 5
    assert len(entries_of(creator.engine, customer.id)) == 1
    assert creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 5}).json()["balance_after"] == 0


def test_a_suspended_customer_cannot_spend_but_can_be_credited(creator: Creator) -> None:
    customer, _ = creator.customer(credits=5)
    suspend_customer(creator_id=creator.user.id, customer_id=customer.id, engine=creator.engine)

    assert_error(creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 1}), 403, "customer_suspended")
    assert balance_of(creator.engine, customer.id) == 5
    assert creator.client.get(f"/customers/{customer.id}").json()["status"] == "suspended"
    assert creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 1}).json()["balance_after"] == 6


def test_credit_grants_free_credits_that_may_expire(creator: Creator) -> None:
    customer, buyer = creator.customer()
    expires = utcnow().replace(microsecond=0) + timedelta(days=30)

    plain = creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 100, "reason": "Welcome"})
    expiring = creator.client.post(
        f"/customers/{buyer.email}/credit",
        json={"amount": 1_000_000_000, "expires_at": expires.astimezone(PLUS_TWO_HOURS).isoformat()},
    )

    assert plain.status_code == 200
    assert (plain.json()["kind"], plain.json()["delta"], plain.json()["balance_after"], plain.json()["reason"]) == (
        "credit",
        100,
        100,
        "Welcome",
    )
    assert expiring.json()["balance_after"] == 1_000_000_100
    lots = creator.client.get(f"/customers/{customer.id}").json()["lots"]
    assert [(lot["granted"], lot["expires_at"] and datetime.fromisoformat(lot["expires_at"])) for lot in lots] == [
        (1_000_000_000, expires),
        (100, None),
    ]
    assert_invariants(creator.engine, customer.id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 5, "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"amount": 5, "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"amount": 5, "expires_at": "next week"}, "expires_at"),
        ({"amount": 5, "expires_at": "9999-12-31T23:59:59-23:00"}, "expires_at"),
    ],
)
def test_credit_expiry_must_be_a_future_time_with_a_zone(creator: Creator, body: dict, field: str) -> None:
    customer, _ = creator.customer()
    assert_error(
        creator.client.post(f"/customers/{customer.id}/credit", json=body), 422, "invalid_request", field=field
    )
    assert entries_of(creator.engine, customer.id) == []


@pytest.mark.parametrize("path", ["debit", "credit"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 1_000_000_001}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": "5"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 1, "reason": "x" * 501}, "reason"),
        ({"amount": 1, "reason": "nul \x00 inside"}, "reason"),
        ({"amount": 1, "reason": 7}, "reason"),
        ({"amount": 1, "ammount": 1}, "ammount"),
        ([1], "body"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field_and_change_nothing(
    creator: Creator, path: str, body: object, field: str
) -> None:
    customer, _ = creator.customer(credits=5)
    assert_error(
        creator.client.post(f"/customers/{customer.id}/{path}", json=body), 422, "invalid_request", field=field
    )
    assert len(entries_of(creator.engine, customer.id)) == 1


def test_malformed_or_missing_json_is_422(creator: Creator) -> None:
    customer, _ = creator.customer(credits=5)
    url = f"/customers/{customer.id}/debit"
    headers = {"Content-Type": "application/json"}
    assert_error(
        creator.client.post(url, content=b'{"amount": 1', headers=headers), 422, "invalid_request", field="body"
    )
    assert_error(creator.client.post(url), 422, "invalid_request", field="body")
    assert_error(creator.client.post(url, content=b"amount=1"), 422, "invalid_request", field="body")


def test_the_largest_and_smallest_amounts_are_accepted(creator: Creator) -> None:
    customer, _ = creator.customer()
    assert creator.client.post(f"/customers/{customer.id}/credit", json={"amount": 1_000_000_000}).status_code == 200
    assert (
        creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 1}).json()["balance_after"]
        == 999_999_999
    )
    assert (
        creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 999_999_999}).json()["balance_after"]
        == 0
    )


# --- Transactions and packs ----------------------------------------------------------------------


def test_transactions_newest_first_in_pages(creator: Creator) -> None:
    customer, _ = creator.customer(credits=10)
    for amount in (1, 2, 3):
        creator.client.post(f"/customers/{customer.id}/debit", json={"amount": amount, "reason": f"use {amount}"})

    first = creator.client.get(f"/customers/{customer.id}/transactions", params={"limit": 3}).json()
    second = creator.client.get(
        f"/customers/{customer.id}/transactions", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()

    rows = first["data"] + second["data"]
    assert [(row["kind"], row["delta"], row["balance_after"], row["actor"]) for row in rows] == [
        ("debit", -3, 4, "api_key"),
        ("debit", -2, 7, "api_key"),
        ("debit", -1, 9, "api_key"),
        ("credit", 10, 10, "creator"),
    ]
    assert [row["id"] for row in rows] == [entry.id for entry in reversed(entries_of(creator.engine, customer.id))]
    assert rows[0]["reason"] == "use 3"
    assert second["next_cursor"] is None
    everything = creator.client.get(f"/customers/{customer.id}/transactions").json()
    assert (everything["data"], everything["next_cursor"]) == (rows, None)


def test_packs_are_the_creators_own_newest_first(creator: Creator, new_creator: Callable[[], Creator]) -> None:
    older = make_pack(creator.engine, creator.user.id, name="Starter", price="9.00", credits="100")
    newer = make_pack(creator.engine, creator.user.id, name="Pro", price="40", credits="1000", currency="EUR")
    set_pack_active(creator_id=creator.user.id, pack_id=older.id, active=False, engine=creator.engine)
    make_pack(creator.engine, new_creator().user.id, name="Someone else's")

    response = creator.client.get("/packs")

    assert response.status_code == 200
    assert [
        (p["id"], p["name"], p["price_amount"], p["currency"], p["credits"], p["status"])
        for p in response.json()["data"]
    ] == [
        (newer.public_id, "Pro", 4000, "EUR", 1000, "active"),
        (older.public_id, "Starter", 900, "USD", 100, "disabled"),
    ]
    assert response.json()["data"][0]["url"].endswith(f"/buy/{newer.public_id}")
    assert creator.client.get("/packs").json() == response.json()


def test_unknown_endpoints_and_methods_answer_in_the_error_format(creator: Creator) -> None:
    for path in ("/wallets", "", "/", "/customers/a%2Fb", "/customers//debit", "/customers/1/debit/%0A"):
        assert_error(creator.client.get(path), 404, "not_found")
    response = creator.client.put("/packs")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"
    response = creator.client.delete("/customers/42/holds")  # one route per method on this path: both named
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


# --- Who may ask ---------------------------------------------------------------------------------


def every_endpoint(ref: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("GET", "/customers", None),
        ("GET", f"/customers/{ref}", None),
        ("POST", f"/customers/{ref}/debit", {"amount": 1}),
        ("POST", f"/customers/{ref}/credit", {"amount": 1}),
        ("GET", f"/customers/{ref}/transactions", None),
        ("GET", "/packs", None),
    ]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic bHM6eA==", "Token ls_abc", "Bearer not-a-key", "Bearer ls_unknown", "ls_x"],
)
def test_requests_without_a_valid_key_are_401_and_change_nothing(creator: Creator, authorization: str | None) -> None:
    customer, _ = creator.customer(credits=5)
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=str(creator.client.base_url), headers=headers) as anonymous:
        for method, path, body in every_endpoint(str(customer.id)):
            response = anonymous.request(method, path, json=body)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    assert balance_of(creator.engine, customer.id) == 5


def test_a_revoked_key_is_401_at_once_while_the_creators_other_keys_work(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    customer, _ = creator.customer(credits=5)
    assert creator.client.get(f"/customers/{customer.id}").status_code == 200

    revoke_key(creator_id=creator.user.id, key_id=creator.key_id, engine=creator.engine)

    for method, path, body in every_endpoint(str(customer.id)):
        error = assert_error(creator.client.request(method, path, json=body), 401, "unauthorized")
        assert "revoked" in error["message"]
    assert balance_of(creator.engine, customer.id) == 5


def until_refused(client: httpx.Client, path: str, *, within: float) -> tuple[httpx.Response, float]:
    """Ask `path` until it answers 401 (at most `within` seconds); the 401 and how long it took."""
    started = time.monotonic()
    while (response := client.get(path)).status_code != 401 and time.monotonic() - started < within:
        time.sleep(0.05)
    return response, time.monotonic() - started


def test_a_deactivated_users_keys_are_401_within_a_second_or_two(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    """Deactivated in the database, as another process would: this process trusts what it read for at most
    KEY_CACHE_SECONDS."""
    customer, _ = creator.customer(credits=5)
    other = new_creator()
    assert creator.client.get(f"/customers/{customer.id}").status_code == 200

    with Session(creator.engine) as session:
        session.exec(update(User).where(User.id == creator.user.id).values(is_active=False))
        session.commit()

    refused, waited = until_refused(creator.client, f"/customers/{customer.id}", within=5)
    assert "deactivated" in assert_error(refused, 401, "unauthorized")["message"]
    assert waited <= KEY_CACHE_SECONDS + 1
    for method, path, body in every_endpoint(str(customer.id)):
        error = assert_error(creator.client.request(method, path, json=body), 401, "unauthorized")
        assert "deactivated" in error["message"]
    assert balance_of(creator.engine, customer.id) == 5
    assert other.client.get("/packs").status_code == 200


def test_a_key_revoked_by_another_process_is_401_within_a_second_or_two(creator: Creator) -> None:
    customer, _ = creator.customer(credits=5)
    assert creator.client.get(f"/customers/{customer.id}").status_code == 200

    with Session(creator.engine) as session:  # what revoking in another process leaves in the database
        session.exec(update(ApiKey).where(ApiKey.id == creator.key_id).values(revoked_at=utcnow()))
        session.commit()

    refused, waited = until_refused(creator.client, f"/customers/{customer.id}", within=5)
    assert "revoked" in assert_error(refused, 401, "unauthorized")["message"]
    assert waited <= KEY_CACHE_SECONDS + 1
    assert_error(creator.client.post(f"/customers/{customer.id}/debit", json={"amount": 1}), 401, "unauthorized")
    assert balance_of(creator.engine, customer.id) == 5


def test_another_creators_customers_are_404_by_id_and_by_email_and_untouched(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    customer, buyer = creator.customer(credits=5)
    intruder = new_creator()
    intruder.customer(credits=1)

    for ref in (str(customer.id), buyer.email):
        for method, path, body in every_endpoint(ref)[1:5]:
            assert_error(intruder.client.request(method, path, json=body), 404, "not_found")
    assert buyer.email not in [row["email"] for row in intruder.client.get("/customers").json()["data"]]
    assert intruder.client.get("/customers", params={"email": buyer.email}).json()["data"] == []
    assert balance_of(creator.engine, customer.id) == 5
    assert len(entries_of(creator.engine, customer.id)) == 1


def test_the_same_buyer_is_a_separate_customer_of_each_creator(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    other = new_creator()
    mine, buyer = creator.customer(credits=5)
    theirs = get_or_create_customer(creator_id=other.user.id, buyer_id=buyer.id, engine=other.engine)
    grant(
        creator_id=other.user.id,
        customer_id=theirs.id,
        amount=50,
        actor=Actor("creator", other.user.id),
        engine=other.engine,
    )

    assert creator.client.post(f"/customers/{buyer.email}/debit", json={"amount": 5}).json()["balance_after"] == 0
    assert other.client.get(f"/customers/{buyer.email}").json()["balance"] == 50
    assert (balance_of(creator.engine, mine.id), balance_of(other.engine, theirs.id)) == (0, 50)


# --- Failures of ours and unreadable bodies ------------------------------------------------------


def test_an_unexpected_failure_is_our_json_500_without_details(
    creator: Creator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database gone mid-flight: the caller gets the documented error body, the log gets the traceback."""
    use_database(monkeypatch, "postgresql://litesubs:hunter2secret@127.0.0.1:1/litesubs")

    with caplog.at_level("ERROR"):
        response = creator.client.get("/packs")

    error = assert_error(response, 500, "internal_error")
    assert error["message"] == "Something went wrong on our side. Try again shortly."
    assert "127.0.0.1" not in response.text
    assert "Traceback" not in response.text
    assert any(record.getMessage() == "API v1 request failed" and record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    "body", [b'{"amount": 1, "reason": "\xff\xfe"}', b"\xff\xfe{}", b'{"amount": 1, "reason": "caf\xe9"}']
)
def test_a_body_that_is_not_utf8_is_422_and_changes_nothing(creator: Creator, body: bytes) -> None:
    customer, _ = creator.customer(credits=5)
    for path in (f"/customers/{customer.id}/debit", f"/customers/{customer.id}/credit"):
        response = creator.client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert_error(response, 422, "invalid_request", field="body")
    assert balance_of(creator.engine, customer.id) == 5
