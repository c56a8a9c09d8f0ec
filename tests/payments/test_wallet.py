"""The buyer's wallet: balances per creator with lots, purchases and recent entries, most recent activity first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from litesubs.models import Pack, User, utcnow
from litesubs.payments.checkout import pay_test_checkout
from litesubs.services.ledger import Actor, debit
from litesubs.services.wallet import RECENT_ENTRIES, wallet_for_buyer
from tests.conftest import create_user
from tests.factories import make_pack
from tests.payments.conftest import open_checkout

pytestmark = pytest.mark.usefixtures("payments_test_mode")

API_KEY = Actor("api_key", 1)


def buy(engine: Engine, pack: Pack, buyer: User, **when) -> None:
    pay_test_checkout(buyer_id=buyer.id, session_id=open_checkout(engine, pack, buyer), engine=engine, **when)


def test_a_new_buyer_has_an_empty_wallet(engine: Engine, buyer: User) -> None:
    assert wallet_for_buyer(buyer_id=buyer.id, engine=engine) == ()


def test_the_wallet_shows_each_creators_balance_lots_purchases_and_entries(
    engine: Engine, pack: Pack, buyer: User
) -> None:
    other_creator = create_user(engine, name="Cy Creator")
    forever = make_pack(engine, other_creator.id, name="Forever", price="5.00", currency="EUR", credits="20")
    now = utcnow()
    buy(engine, pack, buyer, now=now - timedelta(minutes=2))
    buy(engine, forever, buyer, now=now - timedelta(minutes=1))
    customer_id = wallet_for_buyer(buyer_id=buyer.id, engine=engine)[1].customer_id
    debit(
        creator_id=pack.creator_id, customer_id=customer_id, amount=30, actor=API_KEY, reason="API call", engine=engine
    )

    first, second = wallet_for_buyer(buyer_id=buyer.id, engine=engine)

    assert (first.creator_name, first.balance, first.status) == ("Ada Creator", 70, "active")
    assert [(lot.source, lot.granted, lot.remaining, lot.expires_at) for lot in first.lots] == [
        ("purchase", 100, 70, pack.expires_at)
    ]
    [purchase] = first.purchases
    assert (purchase.pack_name, purchase.amount, purchase.currency, purchase.credits, purchase.status) == (
        "Starter",
        900,
        "USD",
        100,
        "paid",
    )
    assert [(entry.kind, entry.delta, entry.balance_after, entry.reason) for entry in first.recent_entries] == [
        ("debit", -30, 70, "API call"),
        ("purchase", 100, 100, "Bought Starter"),
    ]
    assert (second.creator_name, second.balance, second.lots[0].expires_at) == ("Cy Creator", 20, None)
    assert [(p.pack_name, p.amount, p.currency) for p in second.purchases] == [("Forever", 500, "EUR")]


def test_only_the_ten_most_recent_entries_are_listed(engine: Engine, pack: Pack, buyer: User) -> None:
    buy(engine, pack, buyer)
    [account] = wallet_for_buyer(buyer_id=buyer.id, engine=engine)
    for amount in range(1, RECENT_ENTRIES + 2):
        debit(creator_id=pack.creator_id, customer_id=account.customer_id, amount=amount, actor=API_KEY, engine=engine)

    [account] = wallet_for_buyer(buyer_id=buyer.id, engine=engine)

    assert [entry.delta for entry in account.recent_entries] == [-amount for amount in range(RECENT_ENTRIES + 1, 1, -1)]


def test_expired_credits_leave_the_wallet(engine: Engine, pack: Pack, buyer: User) -> None:
    buy(engine, pack, buyer)

    [account] = wallet_for_buyer(buyer_id=buyer.id, engine=engine, now=pack.expires_at)

    assert (account.balance, account.lots) == (0, ())
    assert (account.recent_entries[0].kind, account.recent_entries[0].delta) == ("expiry", -100)


def test_checkouts_never_paid_are_not_in_the_wallet(engine: Engine, pack: Pack, buyer: User) -> None:
    open_checkout(engine, pack, buyer)

    assert wallet_for_buyer(buyer_id=buyer.id, engine=engine) == ()


def test_a_buyer_sees_only_their_own_wallet(engine: Engine, pack: Pack, buyer: User) -> None:
    buy(engine, pack, buyer)
    other_buyer = create_user(engine)

    assert wallet_for_buyer(buyer_id=other_buyer.id, engine=engine) == ()
    assert wallet_for_buyer(buyer_id=pack.creator_id, engine=engine) == ()
