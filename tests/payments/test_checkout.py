"""Buying a pack: who may buy, the Stripe Checkout Session, the success page, and test mode's own checkout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from litesubs.models import Pack, User
from litesubs.payments.checkout import (
    CHECKOUTS_PER_BUYER,
    cancel_test_checkout,
    fulfil_session_id,
    get_test_checkout,
    pay_test_checkout,
    purchase_blocker,
    start_checkout,
)
from litesubs.payments.fulfilment import LATE_PAYMENT_GRACE
from litesubs.services.customer_directory import customer_file
from litesubs.services.customers import get_or_create_customer, suspend_customer
from litesubs.services.errors import (
    CustomerSuspended,
    InvalidRequest,
    NotFound,
    OwnPack,
    PackUnavailable,
    PaymentUnavailable,
    RateLimited,
)
from litesubs.services.packs import PackFields, public_pack, set_pack_active, update_pack
from litesubs.settings import Settings, get_settings
from tests.conftest import create_user
from tests.invariants import assert_invariants
from tests.ledger_factories import entries_of
from tests.payments.conftest import BASE_URL, open_checkout
from tests.payments.records import customer_of, lots_of, lots_of_purchase, purchase_of
from tests.stripe_server import FakeStripe

in_stripe_mode = pytest.mark.usefixtures("stripe_mode")
in_test_mode = pytest.mark.usefixtures("payments_test_mode")


def session_id_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# --- Who may buy ----------------------------------------------------------------------------


@in_test_mode
def test_anyone_may_buy_an_active_pack(engine: Engine, pack: Pack, buyer: User) -> None:
    offer = public_pack(public_id=pack.public_id, engine=engine)
    assert purchase_blocker(buyer_id=buyer.id, pack=offer, engine=engine) is None
    assert purchase_blocker(buyer_id=None, pack=offer, engine=engine) is None


@in_test_mode
def test_a_disabled_pack_cannot_be_bought(engine: Engine, pack: Pack, buyer: User) -> None:
    set_pack_active(creator_id=pack.creator_id, pack_id=pack.id, active=False, engine=engine)
    offer = public_pack(public_id=pack.public_id, engine=engine)

    with pytest.raises(PackUnavailable, match=r"^This pack is not on sale right now\.$"):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)
    assert purchase_blocker(buyer_id=None, pack=offer, engine=engine) == "This pack is not on sale right now."
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None


@in_test_mode
def test_an_expired_pack_cannot_be_bought(engine: Engine, pack: Pack, buyer: User) -> None:
    after_expiry = pack.expires_at + timedelta(seconds=1)
    offer = public_pack(public_id=pack.public_id, engine=engine, now=after_expiry)
    message = "This pack has expired, so it can no longer be bought."

    with pytest.raises(PackUnavailable, match=f"^{message}$"):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine, now=after_expiry)
    assert purchase_blocker(buyer_id=buyer.id, pack=offer, engine=engine) == message


@in_test_mode
def test_a_creator_cannot_buy_their_own_pack(engine: Engine, pack: Pack) -> None:
    offer = public_pack(public_id=pack.public_id, engine=engine)

    with pytest.raises(OwnPack, match=r"^This is your own pack\.$"):
        start_checkout(buyer_id=pack.creator_id, public_id=pack.public_id, engine=engine)
    assert purchase_blocker(buyer_id=pack.creator_id, pack=offer, engine=engine) == "This is your own pack."


@in_test_mode
def test_a_suspended_customer_cannot_start_a_checkout(engine: Engine, pack: Pack, buyer: User) -> None:
    customer = get_or_create_customer(creator_id=pack.creator_id, buyer_id=buyer.id, engine=engine)
    suspend_customer(creator_id=pack.creator_id, customer_id=customer.id, engine=engine)
    offer = public_pack(public_id=pack.public_id, engine=engine)
    message = "You can't buy from this creator right now."

    with pytest.raises(CustomerSuspended, match=f"^{message}$"):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)
    assert purchase_blocker(buyer_id=buyer.id, pack=offer, engine=engine) == message
    assert purchase_blocker(buyer_id=None, pack=offer, engine=engine) is None


@in_test_mode
def test_a_missing_pack_is_not_found(engine: Engine, buyer: User) -> None:
    with pytest.raises(NotFound):
        start_checkout(buyer_id=buyer.id, public_id="no-such-pack", engine=engine)


# --- Stripe mode ----------------------------------------------------------------------------


@in_stripe_mode
def test_the_checkout_session_sells_the_pack_to_the_buyer(
    engine: Engine, fake_stripe: FakeStripe, pack: Pack, buyer: User
) -> None:
    url = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)

    session = fake_stripe.sessions[session_id_of(url)]
    assert url == session["url"]
    method, path, sent = fake_stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert sent == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "900",
                    "product_data": {"name": "Starter", "description": "100 credits from Ada Creator"},
                },
            }
        ],
        "client_reference_id": str(buyer.id),
        "customer_email": buyer.email,
        "metadata": {"pack_public_id": pack.public_id, "buyer_id": str(buyer.id)},
        "success_url": f"{BASE_URL}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{BASE_URL}/buy/{pack.public_id}",
    }
    purchase = purchase_of(engine, session["id"])
    assert (purchase.status, purchase.amount, purchase.currency, purchase.credits) == ("pending", 900, "USD", 100)
    assert lots_of_purchase(engine, purchase.id) == []


@in_stripe_mode
def test_the_success_page_fulfils_a_paid_session_once(
    engine: Engine, fake_stripe: FakeStripe, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    fake_stripe.complete(session_id)

    first = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)
    again = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert first == again
    assert (first.status, first.balance, first.credits, first.pack_name, first.creator_name) == (
        "paid",
        100,
        100,
        "Starter",
        "Ada Creator",
    )
    purchase = purchase_of(engine, session_id)
    [lot] = lots_of(engine, purchase.customer_id)
    assert (lot.source, lot.purchase_id, lot.granted, lot.expires_at) == ("purchase", purchase.id, 100, pack.expires_at)
    [entry] = entries_of(engine, purchase.customer_id)
    assert (entry.kind, entry.delta, entry.actor_type, entry.actor_id) == (
        "purchase",
        100,
        "stripe",
        purchase.stripe_payment_intent_id,
    )
    assert_invariants(engine, purchase.customer_id)


@in_stripe_mode
def test_the_success_page_grants_nothing_before_payment(
    engine: Engine, fake_stripe: FakeStripe, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    fake_stripe.complete(session_id, paid=False)

    summary = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert (summary.status, summary.balance) == ("pending", 0)
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None


@in_stripe_mode
def test_the_success_page_shows_a_checkout_only_to_its_buyer(
    engine: Engine, fake_stripe: FakeStripe, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    fake_stripe.complete(session_id)
    someone_else = create_user(engine)

    with pytest.raises(NotFound):
        fulfil_session_id(buyer_id=someone_else.id, session_id=session_id, engine=engine)
    with pytest.raises(NotFound):
        fulfil_session_id(buyer_id=buyer.id, session_id="cs_test_unknown", engine=engine)
    assert purchase_of(engine, session_id).status == "pending"


@in_stripe_mode
def test_stripe_out_of_reach_is_a_clear_error_and_records_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, stripe_mode: Settings, pack: Pack, buyer: User
) -> None:
    monkeypatch.setattr("stripe.max_network_retries", 0)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9")  # the discard port: nothing listens
    get_settings.cache_clear()

    with pytest.raises(PaymentUnavailable, match=r"^Payments are unavailable right now\. Try again in a minute\.$"):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None


# --- Test mode ------------------------------------------------------------------------------


@in_test_mode
def test_test_mode_opens_our_own_checkout_page(engine: Engine, pack: Pack, buyer: User) -> None:
    url = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)

    assert url.startswith(f"{BASE_URL}/checkout/cs_testmode_")
    summary = get_test_checkout(buyer_id=buyer.id, session_id=session_id_of(url), engine=engine)
    assert (summary.pack_name, summary.creator_name, summary.amount, summary.currency, summary.credits) == (
        "Starter",
        "Ada Creator",
        900,
        "USD",
        100,
    )
    assert (summary.status, summary.balance, summary.pack_public_id) == ("pending", 0, pack.public_id)


@in_test_mode
def test_pay_fulfils_the_test_checkout_once(engine: Engine, pack: Pack, buyer: User) -> None:
    session_id = open_checkout(engine, pack, buyer)

    paid = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)
    pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert (paid.status, paid.balance) == ("paid", 100)
    assert fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine) == paid
    purchase = purchase_of(engine, session_id)
    [lot] = lots_of(engine, purchase.customer_id)
    assert (lot.purchase_id, lot.remaining, lot.expires_at) == (purchase.id, 100, pack.expires_at)
    [entry] = entries_of(engine, purchase.customer_id)
    assert (entry.kind, entry.delta, entry.actor_type, entry.actor_id) == ("purchase", 100, "buyer", str(buyer.id))
    assert_invariants(engine, purchase.customer_id)


@in_test_mode
def test_a_buyer_who_only_opens_a_checkout_is_not_a_customer_yet(engine: Engine, pack: Pack, buyer: User) -> None:
    session_id = open_checkout(engine, pack, buyer)
    cancel_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None
    assert purchase_of(engine, session_id).customer_id is None

    pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)
    customer = customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id)
    assert (customer.balance, purchase_of(engine, session_id).customer_id) == (pack.credits, customer.id)


@in_test_mode
def test_cancel_goes_back_to_the_pack_and_grants_nothing(engine: Engine, pack: Pack, buyer: User) -> None:
    session_id = open_checkout(engine, pack, buyer)

    assert cancel_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine) == pack.public_id

    summary = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)
    assert (summary.status, summary.balance) == ("pending", 0)
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None


@in_test_mode
def test_another_buyer_can_neither_see_nor_pay_nor_cancel_a_test_checkout(
    engine: Engine, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    intruder = create_user(engine)

    for action in (get_test_checkout, pay_test_checkout, cancel_test_checkout, fulfil_session_id):
        with pytest.raises(NotFound, match=r"^This checkout does not exist\.$"):
            action(buyer_id=intruder.id, session_id=session_id, engine=engine)

    purchase = purchase_of(engine, session_id)
    assert purchase.status == "pending"
    assert lots_of_purchase(engine, purchase.id) == []
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=buyer.id) is None
    assert customer_of(engine, creator_id=pack.creator_id, buyer_id=intruder.id) is None


def test_the_test_checkout_is_closed_in_stripe_mode(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, payments_test_mode: Settings, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_now_live")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_now_live")
    get_settings.cache_clear()

    for action in (get_test_checkout, pay_test_checkout, cancel_test_checkout):
        with pytest.raises(NotFound):
            action(buyer_id=buyer.id, session_id=session_id, engine=engine)
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, lots_of_purchase(engine, purchase.id)) == ("pending", [])


@in_test_mode
def test_a_checkout_begun_before_the_pack_expired_is_honoured_with_usable_credits(
    engine: Engine, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    paid_at = pack.expires_at + timedelta(hours=1)

    late = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine, now=paid_at)

    assert (late.status, late.balance) == ("paid", 100)
    [lot] = lots_of_purchase(engine, purchase_of(engine, session_id).id)
    assert (lot.remaining, lot.expires_at) == (100, paid_at + LATE_PAYMENT_GRACE)


@in_test_mode
def test_a_checkout_begun_before_the_pack_was_disabled_is_honoured(engine: Engine, pack: Pack, buyer: User) -> None:
    session_id = open_checkout(engine, pack, buyer)
    set_pack_active(creator_id=pack.creator_id, pack_id=pack.id, active=False, engine=engine)

    paid = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert (paid.status, paid.balance) == ("paid", 100)


@in_test_mode
def test_a_customer_suspended_during_checkout_gets_no_credits_and_the_purchase_says_why(
    engine: Engine, pack: Pack, buyer: User
) -> None:
    customer = get_or_create_customer(creator_id=pack.creator_id, buyer_id=buyer.id, engine=engine)  # bought before
    session_id = open_checkout(engine, pack, buyer)
    suspend_customer(creator_id=pack.creator_id, customer_id=customer.id, engine=engine)

    paid = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert (paid.status, paid.balance) == ("refunded", 0)
    purchase = purchase_of(engine, session_id)
    assert purchase.refund_reason == "The customer was suspended before the payment completed."
    assert lots_of(engine, customer.id) == []
    [line] = customer_file(creator_id=pack.creator_id, customer_id=customer.id, engine=engine).purchases
    assert (line.status, line.refund_reason) == ("refunded", purchase.refund_reason)
    assert_invariants(engine, customer.id, now=datetime.now(UTC))


@in_test_mode
def test_an_open_checkout_does_not_freeze_the_packs_terms_but_a_paid_one_does(
    engine: Engine, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    open_checkout(engine, pack, create_user(engine))  # abandoned

    update_pack(
        creator_id=pack.creator_id, pack_id=pack.id, fields=_terms(pack, price="12.00", credits="150"), engine=engine
    )

    paid = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)
    assert (paid.status, paid.amount, paid.credits, paid.balance) == ("paid", 900, 100, 100)  # what the buyer saw
    with pytest.raises(InvalidRequest, match="This pack has sales"):
        update_pack(creator_id=pack.creator_id, pack_id=pack.id, fields=_terms(pack, price="15.00"), engine=engine)


@in_test_mode
def test_buying_is_rate_limited_per_buyer(engine: Engine, pack: Pack, buyer: User) -> None:
    now = datetime.now(UTC)
    for _ in range(CHECKOUTS_PER_BUYER):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine, now=now)
    with pytest.raises(RateLimited, match="Too many checkouts started"):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine, now=now)
    start_checkout(buyer_id=create_user(engine).id, public_id=pack.public_id, engine=engine, now=now)
    start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine, now=now + timedelta(minutes=1))


def _terms(pack: Pack, *, price: str, credits: str = "100") -> PackFields:
    return PackFields(
        name=pack.name, description="", price=price, currency=pack.currency, credits=credits, expires_on="2099-12-31"
    )


@in_stripe_mode
@pytest.mark.parametrize("failure", ["unreachable", "refused key"])
def test_stripe_failing_on_the_success_page_is_a_clear_error_and_changes_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, fake_stripe: FakeStripe, pack: Pack, buyer: User, failure: str
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    fake_stripe.complete(session_id)
    monkeypatch.setattr("stripe.max_network_retries", 0)
    if failure == "unreachable":
        monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9")  # the discard port: nothing listens
    else:
        monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_not_the_accounts_key")  # Stripe answers 401
    get_settings.cache_clear()

    with pytest.raises(PaymentUnavailable, match=r"^Payments are unavailable right now\. Try again in a minute\.$"):
        fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, lots_of_purchase(engine, purchase.id)) == ("pending", [])
