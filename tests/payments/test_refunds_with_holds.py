"""Refunds and disputes of a purchase whose credits are partly held: what a hold gives back to the refunded or
disputed lot is taken back at once, so a refunded purchase ends holding no credits (SQLite and PostgreSQL).

Stripe's side is the fake server in tests/stripe_server.py; events are signed and delivered over real HTTP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from litesubs.models import Pack, User, utcnow
from litesubs.services import holds
from litesubs.services.errors import InsufficientCredits
from litesubs.services.ledger import Actor, debit, get_balance, grant
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of, entries_of
from tests.payments.conftest import WEBHOOK_SECRET, open_checkout
from tests.payments.records import lots_of, purchase_of
from tests.stripe_server import FakeStripe

pytestmark = pytest.mark.usefixtures("stripe_mode")

API_KEY = Actor("api_key", 7)
CONCURRENT_PURCHASES = 8


def deliver(url: str, event: dict[str, Any]) -> httpx.Response:
    return FakeStripe.deliver(url, event, secret=WEBHOOK_SECRET)


def bought(engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User) -> tuple[str, int]:
    """A paid and fulfilled purchase of the 100-credit pack: its session id and customer id."""
    session_id = open_checkout(engine, pack, buyer)
    event = fake_stripe.event("checkout.session.completed", fake_stripe.complete(session_id))
    assert deliver(webhook_url, event).json()["outcome"] == "granted"
    return session_id, purchase_of(engine, session_id).customer_id


def refund(fake_stripe: FakeStripe, webhook_url: str, session_id: str) -> str:
    charge = {**fake_stripe.charge_of(session_id), "refunded": True, "amount_refunded": 900}
    return deliver(webhook_url, fake_stripe.event("charge.refunded", charge)).json()["outcome"]


def dispute(fake_stripe: FakeStripe, webhook_url: str, session_id: str, status: str = "needs_response") -> str:
    event_type = "charge.dispute.created" if status == "needs_response" else "charge.dispute.closed"
    event = fake_stripe.event(event_type, fake_stripe.dispute(session_id, status=status))
    return deliver(webhook_url, event).json()["outcome"]


def hold(engine: Engine, pack: Pack, customer_id: int, amount: int, **extra: Any) -> holds.HoldSummary:
    return holds.place_hold(
        creator_id=pack.creator_id, customer_id=customer_id, amount=amount, actor=API_KEY, engine=engine, **extra
    )


def release(engine: Engine, pack: Pack, hold_id: int) -> holds.HoldEnding:
    return holds.release_hold(creator_id=pack.creator_id, hold_id=hold_id, actor=API_KEY, engine=engine)


def capture(engine: Engine, pack: Pack, hold_id: int, amount: int) -> holds.HoldEnding:
    return holds.capture_hold(creator_id=pack.creator_id, hold_id=hold_id, amount=amount, actor=API_KEY, engine=engine)


def tail(engine: Engine, customer_id: int, count: int) -> list[tuple[str, int]]:
    return [(entry.kind, entry.delta) for entry in entries_of(engine, customer_id)[-count:]]


def test_released_credits_of_a_refunded_purchase_are_taken_back_at_once(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    held = hold(engine, pack, customer_id, 40)

    assert refund(fake_stripe, webhook_url, session_id) == "refunded"
    assert balance_of(engine, customer_id) == 0

    ending = release(engine, pack, held.id)

    assert ending.transaction.delta == 40
    assert tail(engine, customer_id, 3) == [("refund", -60), ("release", 40), ("refund", -40)]
    assert entries_of(engine, customer_id)[-1].reason == "Payment refunded: credits a hold gave back"
    assert balance_of(engine, customer_id) == 0
    assert [lot.remaining for lot in lots_of(engine, customer_id)] == [0]
    with pytest.raises(InsufficientCredits):
        debit(creator_id=pack.creator_id, customer_id=customer_id, amount=1, actor=API_KEY, engine=engine)
    assert_invariants(engine, customer_id)


def test_a_capture_after_the_refund_spends_what_it_captures_and_the_rest_is_taken_back(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """The hold spans the refunded lot and a later grant: only what goes back to the refunded lot is taken."""
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    grant(creator_id=pack.creator_id, customer_id=customer_id, amount=10, actor=API_KEY, engine=engine)
    held = hold(engine, pack, customer_id, 110)
    assert refund(fake_stripe, webhook_url, session_id) == "refunded"
    assert tail(engine, customer_id, 1) == [("hold", -110)]  # nothing left in the lot to take back yet

    capture(engine, pack, held.id, 30)

    assert tail(engine, customer_id, 2) == [("capture", 80), ("refund", -70)]
    assert balance_of(engine, customer_id) == 10  # the grant's credits, back and spendable
    assert sorted(lot.remaining for lot in lots_of(engine, customer_id)) == [0, 10]
    debit(creator_id=pack.creator_id, customer_id=customer_id, amount=10, actor=API_KEY, engine=engine)
    assert_invariants(engine, customer_id)


def test_a_hold_that_expires_after_the_refund_gives_nothing_back_to_spend(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    hold(engine, pack, customer_id, 100, expires_in=60)
    assert refund(fake_stripe, webhook_url, session_id) == "refunded"
    later = utcnow() + timedelta(minutes=5)

    view = get_balance(creator_id=pack.creator_id, customer_id=customer_id, now=later, engine=engine)

    assert (view.balance, view.held) == (0, 0)
    assert tail(engine, customer_id, 2) == [("release", 100), ("refund", -100)]
    assert_invariants(engine, customer_id, now=later)


def test_held_credits_released_during_a_dispute_are_taken_and_a_won_dispute_gives_all_back(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    held = hold(engine, pack, customer_id, 40)
    assert dispute(fake_stripe, webhook_url, session_id) == "disputed"

    release(engine, pack, held.id)

    assert tail(engine, customer_id, 3) == [("dispute", -60), ("release", 40), ("dispute", -40)]
    assert balance_of(engine, customer_id) == 0
    assert dispute(fake_stripe, webhook_url, session_id, "won") == "dispute_won"
    assert tail(engine, customer_id, 1) == [("dispute", 100)]
    assert balance_of(engine, customer_id) == 100
    debit(creator_id=pack.creator_id, customer_id=customer_id, amount=100, actor=API_KEY, engine=engine)
    assert_invariants(engine, customer_id)


def test_credits_captured_during_a_dispute_stay_spent_and_a_won_dispute_gives_back_the_rest(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    held = hold(engine, pack, customer_id, 40)
    assert dispute(fake_stripe, webhook_url, session_id) == "disputed"

    capture(engine, pack, held.id, 25)

    assert tail(engine, customer_id, 2) == [("capture", 15), ("dispute", -15)]
    assert dispute(fake_stripe, webhook_url, session_id, "won") == "dispute_won"
    assert balance_of(engine, customer_id) == 75
    # the lot is the customer's again: a new hold of it gives back into it for good
    again = hold(engine, pack, customer_id, 75)
    release(engine, pack, again.id)
    assert balance_of(engine, customer_id) == 75
    assert_invariants(engine, customer_id)


def test_a_lost_dispute_keeps_taking_back_what_holds_give_back(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id, customer_id = bought(engine, fake_stripe, webhook_url, pack, buyer)
    held = hold(engine, pack, customer_id, 50)
    assert dispute(fake_stripe, webhook_url, session_id) == "disputed"
    assert dispute(fake_stripe, webhook_url, session_id, "lost") == "dispute_lost"

    release(engine, pack, held.id)

    assert tail(engine, customer_id, 2) == [("release", 50), ("dispute", -50)]
    assert balance_of(engine, customer_id) == 0
    assert_invariants(engine, customer_id)


def test_refunds_racing_releases_end_with_nothing_to_spend_whichever_comes_first(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    """Each purchase's refund webhook and its hold's release, all at once: the order decides only the entries."""
    purchases = [bought(engine, fake_stripe, webhook_url, pack, buyer) for _ in range(CONCURRENT_PURCHASES)]
    customer_id = purchases[0][1]
    held = [hold(engine, pack, customer_id, 30) for _ in purchases]
    jobs = [lambda s=session_id: refund(fake_stripe, webhook_url, s) for session_id, _ in purchases]
    jobs += [lambda h=summary: release(engine, pack, h.id) for summary in held]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        outcomes = list(pool.map(lambda job: job(), jobs))

    assert outcomes[:CONCURRENT_PURCHASES] == ["refunded"] * CONCURRENT_PURCHASES
    assert balance_of(engine, customer_id) == 0
    assert all(lot.remaining == 0 for lot in lots_of(engine, customer_id))
    kinds = [entry.kind for entry in entries_of(engine, customer_id)]
    assert kinds.count("release") == CONCURRENT_PURCHASES
    assert_invariants(engine, customer_id)
