"""The creator's customer table, customer file and CSV exports."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import Customer, User, utcnow
from litesubs.services import customer_directory as directory
from litesubs.services import holds
from litesubs.services.api_keys import create_key, revoke_key
from litesubs.services.customers import get_or_create_customer
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.ledger import Actor, debit, grant
from tests.conftest import create_user
from tests.factories import make_pack, record_paid_purchase


def add_customer(
    engine: Engine, creator: User, *, name: str, email: str, balance: int = 0, days_ago: int = 0
) -> Customer:
    buyer = create_user(engine, name=name, email=email)
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    if balance:
        grant(
            creator_id=creator.id,
            customer_id=customer.id,
            amount=balance,
            actor=Actor("creator", creator.id),
            engine=engine,
        )
    with Session(engine, expire_on_commit=False) as session:
        stored = session.get(Customer, customer.id)
        stored.last_purchase_at = utcnow() - timedelta(days=days_ago)
        session.add(stored)
        session.commit()
    return stored


@pytest.fixture
def crowd(engine: Engine) -> tuple[User, list[Customer]]:
    creator = create_user(engine, name="Creator")
    tag = creator.email.split("@")[0]
    people = [
        add_customer(engine, creator, name="Ada Lovelace", email=f"ada-{tag}@example.com", balance=30, days_ago=3),
        add_customer(engine, creator, name="Alan Turing", email=f"alan-{tag}@example.org", balance=10, days_ago=1),
        add_customer(engine, creator, name="Grace 100%_Hopper", email=f"grace-{tag}@navy.mil", balance=20, days_ago=2),
    ]
    return creator, people


def test_search_sort_and_page(engine: Engine, crowd: tuple[User, list[Customer]]) -> None:
    creator, (ada, alan, grace) = crowd
    everyone = directory.list_customers(creator_id=creator.id, engine=engine)
    assert [row.id for row in everyone.rows] == [alan.id, grace.id, ada.id]
    assert (everyone.total, everyone.pages) == (3, 1)

    by_balance = directory.list_customers(creator_id=creator.id, sort="balance", descending=False, engine=engine)
    assert [row.balance for row in by_balance.rows] == [10, 20, 30]

    assert [r.id for r in directory.list_customers(creator_id=creator.id, search="EXAMPLE.", engine=engine).rows] == [
        alan.id,
        ada.id,
    ]
    assert [r.id for r in directory.list_customers(creator_id=creator.id, search="lovel", engine=engine).rows] == [
        ada.id
    ]
    assert [r.id for r in directory.list_customers(creator_id=creator.id, search="100%_", engine=engine).rows] == [
        grace.id
    ]
    assert directory.list_customers(creator_id=creator.id, search="%", engine=engine).total == 1

    second = directory.list_customers(
        creator_id=creator.id, sort="name", descending=False, page=2, page_size=25, engine=engine
    )
    assert (second.rows, second.total, second.page) == ([], 3, 2)


def test_search_matches_within_the_name_or_the_email_never_across_them(
    engine: Engine, crowd: tuple[User, list[Customer]]
) -> None:
    creator, (ada, _alan, _grace) = crowd
    email = directory.list_customers(creator_id=creator.id, search="ada-", engine=engine).rows[0].email

    def found(term: str) -> list[int]:
        return [row.id for row in directory.list_customers(creator_id=creator.id, search=term, engine=engine).rows]

    assert found("  LOVELACE ") == [ada.id]
    assert found(email.upper()) == [ada.id]
    assert found("lovelace" + email[:3]) == []  # the end of the name and the start of the email
    assert found("lovelace\x1f" + email[:3]) == []  # a pasted separator is no way across either
    assert found("love\x1flace") == [ada.id]  # control characters are dropped from the term


def test_bad_sort_or_page_size_is_refused(engine: Engine) -> None:
    creator = create_user(engine)
    with pytest.raises(InvalidRequest):
        directory.list_customers(creator_id=creator.id, sort="password_hash", engine=engine)
    with pytest.raises(InvalidRequest):
        directory.list_customers(creator_id=creator.id, page_size=10_000, engine=engine)


def test_a_creator_sees_only_their_own_customers(engine: Engine, crowd: tuple[User, list[Customer]]) -> None:
    _creator, (ada, _alan, _grace) = crowd
    other = create_user(engine)
    assert directory.list_customers(creator_id=other.id, engine=engine).total == 0
    with pytest.raises(NotFound):
        directory.customer_file(creator_id=other.id, customer_id=ada.id, engine=engine)
    with pytest.raises(NotFound):
        directory.customer_ledger(creator_id=other.id, customer_id=ada.id, engine=engine)
    assert list(directory.export_customers_csv(creator_id=other.id, engine=engine))[1:] == []


def test_customer_file_and_ledger_say_who_did_what(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine, name="Buyer One")
    pack = make_pack(engine, creator.id, price="12.00")
    purchase = record_paid_purchase(engine, pack, buyer.id)
    customer_id = purchase.customer_id
    grant(creator_id=creator.id, customer_id=customer_id, amount=5, actor=Actor("creator", creator.id), engine=engine)
    debit(
        creator_id=creator.id, customer_id=customer_id, amount=2, actor=Actor("system"), reason="nightly", engine=engine
    )

    file = directory.customer_file(creator_id=creator.id, customer_id=customer_id, engine=engine)
    assert (file.row.name, file.row.balance, file.row.spent) == ("Buyer One", 3, {"USD": 1200})
    assert [(p.pack_name, p.amount, p.status) for p in file.purchases] == [("Starter", 1200, "paid")]
    assert [lot.remaining for lot in file.balance.lots] == [3]

    page, names, what = directory.customer_ledger(creator_id=creator.id, customer_id=customer_id, engine=engine)
    assert [(e.kind, e.delta, names[e.id], what[e.id]) for e in page.entries] == [
        ("debit", -2, "Litesubs", "Spent"),
        ("credit", 5, "You", "Granted"),
    ]


def test_customer_file_shows_active_holds_and_the_ledger_says_what_each_hold_did(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    customer_id = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine).id
    api = Actor("api_key", 1)
    ids = {"creator_id": creator.id, "engine": engine}
    grant(**ids, customer_id=customer_id, amount=100, actor=api)
    now = utcnow() - timedelta(minutes=5)  # holds last 15 minutes by default
    captured, released, active = (
        holds.place_hold(**ids, customer_id=customer_id, amount=amount, actor=api, reason=reason, now=now)
        for amount, reason in ((30, "render"), (10, "batch"), (5, "upload"))
    )
    expiring = holds.place_hold(**ids, customer_id=customer_id, amount=7, actor=api, expires_in=60, now=now)
    holds.capture_hold(**ids, hold_id=captured.id, amount=12, actor=api, now=now)
    holds.release_hold(**ids, hold_id=released.id, actor=api, now=now)

    assert expiring.expires_at < utcnow()
    file = directory.customer_file(**ids, customer_id=customer_id)  # the expired hold went back on this read
    assert (file.balance.balance, file.balance.held) == (100 - 12 - 5, 5)
    assert [(hold.id, hold.amount, hold.reason) for hold in file.holds] == [(active.id, 5, "upload")]

    page, names, what = directory.customer_ledger(**ids, customer_id=customer_id)
    assert [what[entry.id] for entry in page.entries] == [
        "Hold expired: 7 credits back",
        "Released 10 held credits",
        "Captured 12 of 30 held; 18 back",
        "Held 7 credits",
        "Held 5 credits",
        "Held 10 credits",
        "Held 30 credits",
        "Granted",
    ]
    assert names[page.entries[0].id] == "Litesubs"


def test_exports_stream_every_row_as_csv(
    engine: Engine, crowd: tuple[User, list[Customer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    creator, people = crowd
    monkeypatch.setattr(directory, "EXPORT_BATCH", 2)
    chunks = directory.export_customers_csv(creator_id=creator.id, engine=engine)
    assert next(chunks).startswith("id,name,email")
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert sorted(int(row[0]) for row in rows) == sorted(c.id for c in people)
    assert {row[1] for row in rows} == {"Ada Lovelace", "Alan Turing", "Grace 100%_Hopper"}

    ledger = list(
        csv.DictReader(io.StringIO("".join(directory.export_ledger_csv(creator_id=creator.id, engine=engine))))
    )
    assert [int(row["delta"]) for row in ledger] == [30, 10, 20]
    assert {row["kind"] for row in ledger} == {"credit"}


def test_exports_neutralise_cells_a_spreadsheet_would_run_as_formulas(engine: Engine) -> None:
    creator = create_user(engine, name="Creator")
    tag = creator.email.split("@")[0]
    customer = add_customer(engine, creator, name='=HYPERLINK("http://evil.example","Bob")', email=f"b-{tag}@x.org")
    for reason, key in (("=1+1", "\tkey-1"), ("+1", "\rkey-2"), ("-2+3", "@key-3"), ("@SUM(A1)", "plain")):
        grant(
            creator_id=creator.id,
            customer_id=customer.id,
            amount=1,
            reason=reason,
            actor=Actor("creator", creator.id),
            idempotency_key=key,
            engine=engine,
        )
    debit(creator_id=creator.id, customer_id=customer.id, amount=2, actor=Actor("creator", creator.id), engine=engine)

    customers = list(
        csv.DictReader(io.StringIO("".join(directory.export_customers_csv(creator_id=creator.id, engine=engine))))
    )
    assert customers[0]["name"] == '\'=HYPERLINK("http://evil.example","Bob")'

    ledger = list(
        csv.DictReader(io.StringIO("".join(directory.export_ledger_csv(creator_id=creator.id, engine=engine))))
    )
    assert [row["reason"] for row in ledger] == ["'=1+1", "'+1", "'-2+3", "'@SUM(A1)", ""]
    assert [row["idempotency_key"] for row in ledger] == ["'\tkey-1", "'\rkey-2", "'@key-3", "plain", ""]
    assert [row["delta"] for row in ledger] == ["1", "1", "1", "1", "-2"]  # numbers are not text: left as they are


def test_the_ledger_says_who_made_each_change_in_words(engine: Engine) -> None:
    creator = create_user(engine, name="Creator")
    customer = add_customer(engine, creator, name="Ada", email=f"ada-{secrets.token_hex(4)}@example.com")
    backend, _secret = create_key(creator_id=creator.id, name="backend", engine=engine)
    retired, _secret = create_key(creator_id=creator.id, name="old script", engine=engine)
    revoke_key(creator_id=creator.id, key_id=retired.id, engine=engine)
    for actor in (
        Actor("creator", creator.id),
        Actor("api_key", backend.id),
        Actor("api_key", retired.id),
        Actor("stripe", "pi_test_1"),
        Actor("system"),
        Actor("buyer", customer.buyer_id),
    ):
        grant(creator_id=creator.id, customer_id=customer.id, amount=1, actor=actor, engine=engine)

    page, names, _what = directory.customer_ledger(creator_id=creator.id, customer_id=customer.id, engine=engine)

    assert [names[entry.id] for entry in reversed(page.entries)] == [
        "You",
        'API key "backend"',
        'API key "old script"',
        "Stripe",
        "Litesubs",
        "Buyer",
    ]
