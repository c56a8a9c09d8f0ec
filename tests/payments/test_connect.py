"""Platform mode (Stripe Connect): connecting, onboarding state, direct charges with the fee, and the account gate.

Stripe's side is the fake server in tests/stripe_server.py, driven through the real SDK; events are
signed as Stripe signs them (with the Connect endpoint's secret) and delivered over real HTTP.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from secrets import token_hex
from typing import Any

import httpx
import pytest
from reflex.state import State
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import ConnectedAccount, Pack, Purchase, StripeEvent, User
from litesubs.payments import connect
from litesubs.payments.checkout import fulfil_session_id, purchase_blocker, start_checkout
from litesubs.payments.stripe_gateway import create_checkout_session
from litesubs.services import accounts
from litesubs.services.errors import ConnectUnavailable, NotFound, PackUnavailable
from litesubs.services.overview import creator_overview
from litesubs.services.packs import list_packs, public_pack
from litesubs.state.payouts import PayoutsState
from tests.conftest import create_user
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.ledger_factories import balance_of
from tests.payments.conftest import BASE_URL, CONNECT_WEBHOOK_SECRET, WEBHOOK_SECRET, open_checkout
from tests.payments.records import customer_of, event_recorded, lots_of, purchase_of
from tests.stripe_server import FakeStripe

in_platform_mode = pytest.mark.usefixtures("platform_mode")
CONCURRENT_DELIVERIES = 10
PASSWORD = "correct horse battery"


def deliver(url: str, event: dict[str, Any], secret: str = CONNECT_WEBHOOK_SECRET) -> httpx.Response:
    return FakeStripe.deliver(url, event, secret=secret)


def connected(engine: Engine, fake_stripe: FakeStripe, creator: User) -> str:
    """The creator clicked Connect: their Express account's id (onboarding not finished)."""
    connect.start_onboarding(creator_id=creator.id, engine=engine)
    return fake_stripe.account_for(creator.email)["id"]


def ready(engine: Engine, fake_stripe: FakeStripe, creator: User) -> str:
    """The creator connected and finished Stripe's onboarding; their account takes charges."""
    account_id = connected(engine, fake_stripe, creator)
    fake_stripe.finish_onboarding(account_id)
    connect.refresh_from_stripe(creator_id=creator.id, engine=engine)
    return account_id


def completed(fake_stripe: FakeStripe, session_id: str, account: str | None) -> dict[str, Any]:
    return fake_stripe.event("checkout.session.completed", fake_stripe.complete(session_id), account=account)


def stored_account(engine: Engine, creator: User) -> ConnectedAccount | None:
    with Session(engine) as session:
        return session.exec(select(ConnectedAccount).where(ConnectedAccount.creator_id == creator.id)).first()


# --- Connecting and onboarding --------------------------------------------------------------


@in_platform_mode
def test_connecting_creates_an_express_account_and_sends_the_creator_to_stripes_onboarding(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    assert connect.payout_setup(creator_id=creator.id, engine=engine) == connect.PayoutSetup("not_connected")

    url = connect.start_onboarding(creator_id=creator.id, engine=engine)

    account = fake_stripe.account_for(creator.email)
    assert (account["type"], account["email"]) == ("express", creator.email)
    assert set(account["capabilities"]) == {"card_payments", "transfers"}
    method, path, sent = fake_stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/account_links")
    assert sent == {
        "account": account["id"],
        "type": "account_onboarding",
        "refresh_url": f"{BASE_URL}/dashboard/payouts?onboarding=refresh",
        "return_url": f"{BASE_URL}/dashboard/payouts?onboarding=return",
    }
    assert url.startswith(f"{fake_stripe.base_url}/setup/e/")
    setup = connect.payout_setup(creator_id=creator.id, engine=engine)
    assert (setup.state, setup.stripe_account_id, setup.can_sell) == ("details_needed", account["id"], False)
    assert setup.still_needed == (
        "Your business type",
        "A bank account for payouts",
        "Your date of birth",
        "Accepting Stripe's terms of service",
    )


@in_platform_mode
def test_connecting_again_continues_with_the_same_account(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    first = connected(engine, fake_stripe, creator)
    accounts_before = len(fake_stripe.accounts)

    connect.start_onboarding(creator_id=creator.id, engine=engine)

    assert len(fake_stripe.accounts) == accounts_before
    assert fake_stripe.requests[-1][2]["account"] == first
    assert stored_account(engine, creator).stripe_account_id == first


@in_platform_mode
def test_coming_back_from_onboarding_re_reads_the_account_from_stripe(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    account_id = connected(engine, fake_stripe, creator)

    fake_stripe.finish_onboarding(account_id)
    assert connect.payout_setup(creator_id=creator.id, engine=engine).state == "details_needed"  # no webhook yet
    assert connect.refresh_from_stripe(creator_id=creator.id, engine=engine).state == "ready"

    fake_stripe.pause_payouts(account_id, ["external_account"])
    paused = connect.refresh_from_stripe(creator_id=creator.id, engine=engine)
    assert (paused.state, paused.can_sell, paused.still_needed) == (
        "payouts_paused",
        True,
        ("A bank account for payouts",),
    )

    fake_stripe.ask_for(account_id, ["individual.verification.document", "individual.address.city"])
    needed = connect.refresh_from_stripe(creator_id=creator.id, engine=engine)
    assert (needed.state, needed.still_needed) == ("details_needed", ("An identity document", "Your address"))


@in_platform_mode
def test_a_stripe_error_while_connecting_is_shown_records_nothing_and_can_be_retried(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    fake_stripe.refuse_next("You can only create new accounts if you've signed up for Connect.")

    with pytest.raises(ConnectUnavailable) as refused:
        connect.start_onboarding(creator_id=creator.id, engine=engine)

    assert refused.value.message == (
        "Stripe could not complete this: You can only create new accounts if you've signed up for Connect. "
        "Nothing changed; try again."
    )
    assert stored_account(engine, creator) is None
    assert fake_stripe.account_for(creator.email) is None
    assert connect.start_onboarding(creator_id=creator.id, engine=engine).startswith(fake_stripe.base_url)
    assert stored_account(engine, creator).stripe_account_id == fake_stripe.account_for(creator.email)["id"]


@in_platform_mode
def test_a_failed_account_link_keeps_the_account_for_the_retry(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    account_id = connected(engine, fake_stripe, creator)
    fake_stripe.refuse_next("An error occurred with our connection to Stripe.")

    with pytest.raises(ConnectUnavailable, match="An error occurred with our connection to Stripe"):
        connect.start_onboarding(creator_id=creator.id, engine=engine)

    assert connect.start_onboarding(creator_id=creator.id, engine=engine).startswith(fake_stripe.base_url)
    assert fake_stripe.requests[-1][2]["account"] == account_id


@in_platform_mode
def test_the_express_dashboard_opens_once_stripe_has_the_creators_details(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    with pytest.raises(NotFound, match="Finish connecting with Stripe first"):
        connect.dashboard_link(creator_id=creator.id, engine=engine)
    account_id = connected(engine, fake_stripe, creator)
    with pytest.raises(NotFound, match="Finish connecting with Stripe first"):
        connect.dashboard_link(creator_id=creator.id, engine=engine)

    fake_stripe.finish_onboarding(account_id)
    connect.refresh_from_stripe(creator_id=creator.id, engine=engine)

    assert (
        connect.dashboard_link(creator_id=creator.id, engine=engine) == f"{fake_stripe.base_url}/express/{account_id}"
    )
    assert fake_stripe.requests[-1][:2] == ("POST", f"/v1/accounts/{account_id}/login_links")


@pytest.mark.usefixtures("stripe_mode")
def test_outside_platform_mode_there_is_nothing_to_connect(engine: Engine, creator: User) -> None:
    with pytest.raises(NotFound, match="STRIPE_CONNECT=1"):
        connect.start_onboarding(creator_id=creator.id, engine=engine)
    with pytest.raises(NotFound, match="STRIPE_CONNECT=1"):
        connect.payout_setup(creator_id=creator.id, engine=engine)
    assert connect.sales_pause_reason(creator_id=creator.id, engine=engine) is None


# --- account.updated ------------------------------------------------------------------------


@in_platform_mode
def test_the_state_follows_account_updated_events_from_the_account(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User
) -> None:
    account_id = connected(engine, fake_stripe, creator)

    event = fake_stripe.event("account.updated", fake_stripe.finish_onboarding(account_id), account=account_id)
    assert deliver(webhook_url, event).json() == {"received": True, "outcome": "updated"}
    assert connect.payout_setup(creator_id=creator.id, engine=engine).state == "ready"

    paused = fake_stripe.pause_payouts(account_id, ["tos_acceptance.date"])
    event = fake_stripe.event("account.updated", paused, account=account_id)
    assert deliver(webhook_url, event).json()["outcome"] == "updated"
    assert connect.payout_setup(creator_id=creator.id, engine=engine).state == "payouts_paused"


@in_platform_mode
def test_an_account_cannot_describe_another_account(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User
) -> None:
    victim = connected(engine, fake_stripe, creator)
    intruder = connected(engine, fake_stripe, create_user(engine, name="Mallory"))
    described = {**fake_stripe.accounts[victim], "charges_enabled": True, "payouts_enabled": True}

    from_intruder = fake_stripe.event("account.updated", described, account=intruder)
    from_platform = fake_stripe.event("account.updated", described)

    assert deliver(webhook_url, from_intruder).json()["outcome"] == "other_account"
    assert deliver(webhook_url, from_platform, secret=WEBHOOK_SECRET).json()["outcome"] == "other_account"
    assert connect.payout_setup(creator_id=creator.id, engine=engine).state == "details_needed"
    assert event_recorded(engine, from_intruder["id"])
    assert event_recorded(engine, from_platform["id"])


@in_platform_mode
def test_an_update_of_an_account_no_creator_has_is_acknowledged(fake_stripe: FakeStripe, webhook_url: str) -> None:
    stranger = fake_stripe.event("account.updated", {"id": "acct_unknown", "object": "account"}, account="acct_unknown")
    assert deliver(webhook_url, stranger).json() == {"received": True, "outcome": "not_ours"}


# --- Who may buy ----------------------------------------------------------------------------


@in_platform_mode
def test_a_creator_who_has_not_finished_onboarding_cannot_be_bought_from(
    engine: Engine, fake_stripe: FakeStripe, creator: User, pack: Pack, buyer: User
) -> None:
    for step in ("not connected", "connected"):
        offer = public_pack(public_id=pack.public_id, engine=engine)
        requests_before = len(fake_stripe.requests)
        assert purchase_blocker(buyer_id=None, pack=offer, engine=engine) == connect.CANNOT_SELL_YET, step
        assert purchase_blocker(buyer_id=buyer.id, pack=offer, engine=engine) == connect.CANNOT_SELL_YET, step
        with pytest.raises(PackUnavailable, match="its creator is still setting up payments"):
            start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)
        assert len(fake_stripe.requests) == requests_before, "no Checkout Session was created"
        connected(engine, fake_stripe, creator)
    assert connect.sales_pause_reason(creator_id=creator.id, engine=engine).startswith(
        "Sales are paused until Stripe has the details it needs to pay you."
    )
    with Session(engine) as session:
        assert session.exec(select(Purchase).where(Purchase.creator_id == creator.id)).first() is None


@in_platform_mode
def test_the_packs_page_says_why_sales_are_paused_until_the_account_takes_charges(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    assert connect.sales_pause_reason(creator_id=creator.id, engine=engine) == (
        "Sales are paused until you connect a Stripe account to get paid. You can still create and share packs."
    )
    account_id = ready(engine, fake_stripe, creator)
    assert connect.sales_pause_reason(creator_id=creator.id, engine=engine) is None
    fake_stripe.pause_payouts(account_id, ["external_account"])
    connect.refresh_from_stripe(creator_id=creator.id, engine=engine)
    assert connect.sales_pause_reason(creator_id=creator.id, engine=engine) is None  # sales go on, payouts wait


# --- Direct charges and the fee -------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "percent", "fee"),
    [(900, "12.5", 113), (999, "12.5", 125), (1000, "0", 0), (1, "50", 1), (50, "0.99", 0), (50, "1", 1)],
)
def test_the_platform_fee_is_rounded_half_up_to_a_whole_minor_unit(amount: int, percent: str, fee: int) -> None:
    assert connect.platform_fee(amount, Decimal(percent)) == fee


@in_platform_mode
def test_checkout_is_a_direct_charge_on_the_creators_account_with_the_platform_fee(
    engine: Engine, fake_stripe: FakeStripe, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)

    url = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)

    method, path, sent = fake_stripe.requests[-1]
    assert (method, path, fake_stripe.request_accounts[-1]) == ("POST", "/v1/checkout/sessions", account_id)
    assert sent["payment_intent_data"] == {"application_fee_amount": "113"}  # 12.5 % of $9.00, half up
    assert sent["metadata"] == {"pack_public_id": pack.public_id, "buyer_id": str(buyer.id)}
    session_id = url.rsplit("/", 1)[1]
    purchase = purchase_of(engine, session_id)
    assert (purchase.stripe_account_id, purchase.platform_fee, purchase.amount) == (account_id, 113, 900)


@in_platform_mode
def test_the_success_page_reads_the_session_from_the_creators_account(
    engine: Engine, fake_stripe: FakeStripe, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    session_id = open_checkout(engine, pack, buyer)
    fake_stripe.complete(session_id)

    summary = fulfil_session_id(buyer_id=buyer.id, session_id=session_id, engine=engine)

    assert fake_stripe.requests[-1][:2] == ("GET", f"/v1/checkout/sessions/{session_id}")
    assert fake_stripe.request_accounts[-1] == account_id
    assert (summary.status, summary.balance) == ("paid", 100)
    assert fake_stripe.charge_of(session_id)["application_fee_amount"] == 113


# --- The account gate on sales events -------------------------------------------------------


@in_platform_mode
def test_the_creators_account_webhook_credits_once_and_no_other_account_can(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    session_id = open_checkout(engine, pack, buyer)
    paid = fake_stripe.complete(session_id)
    impostors = [
        fake_stripe.event("checkout.session.completed", paid, account=intruder),
        fake_stripe.event("checkout.session.completed", paid),  # the platform's own account
    ]

    outcomes = [deliver(webhook_url, event).json()["outcome"] for event in impostors]

    assert outcomes == ["other_account", "other_account"]
    assert purchase_of(engine, session_id).status == "pending"
    assert all(event_recorded(engine, event["id"]) for event in impostors)

    genuine = fake_stripe.event("checkout.session.completed", paid, account=account_id)
    assert deliver(webhook_url, genuine).json()["outcome"] == "granted"
    assert deliver(webhook_url, genuine).json()["outcome"] == "duplicate"
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.platform_fee) == ("paid", 113)
    assert balance_of(engine, purchase.customer_id) == 100
    assert_invariants(engine, purchase.customer_id)


@in_platform_mode
def test_a_session_made_on_another_account_for_this_creators_pack_credits_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    """A creator cannot sell someone else's pack on their own account and have Litesubs grant its credits."""
    ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    forged = {
        "id": "cs_test_forged_on_another_account",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 900,
        "currency": "usd",
        "metadata": {"pack_public_id": pack.public_id, "buyer_id": str(buyer.id)},
        "payment_intent": "pi_test_forged",
    }

    event = fake_stripe.event("checkout.session.completed", forged, account=intruder)

    assert deliver(webhook_url, event).json()["outcome"] == "other_account"
    assert purchase_of(engine, forged["id"]) is None
    assert customer_of(engine, creator_id=creator.id, buyer_id=buyer.id) is None


@in_platform_mode
def test_refunds_from_the_creators_own_dashboard_take_back_credits_and_no_one_elses_can(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id, account_id))
    refunded = {**fake_stripe.charge_of(session_id), "refunded": True, "amount_refunded": 900}

    foreign = fake_stripe.event("charge.refunded", refunded, account=intruder)
    assert deliver(webhook_url, foreign).json()["outcome"] == "other_account"
    assert purchase_of(engine, session_id).status == "paid"

    own = fake_stripe.event("charge.refunded", refunded, account=account_id)
    assert deliver(webhook_url, own).json()["outcome"] == "refunded"
    purchase = purchase_of(engine, session_id)
    assert purchase.status == "refunded"
    assert balance_of(engine, purchase.customer_id) == 0
    assert [lot.remaining for lot in lots_of(engine, purchase.customer_id)] == [0]
    assert_invariants(engine, purchase.customer_id)


@in_platform_mode
def test_concurrent_deliveries_from_the_right_and_wrong_accounts_grant_exactly_once(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    intruders = [ready(engine, fake_stripe, create_user(engine, name=f"Mallory {i}")) for i in range(3)]
    session_id = open_checkout(engine, pack, buyer)
    paid = fake_stripe.complete(session_id)
    genuine = fake_stripe.event("checkout.session.completed", paid, account=account_id)
    events = [genuine] * CONCURRENT_DELIVERIES + [
        fake_stripe.event("checkout.session.completed", paid, account=intruders[i % 3])
        for i in range(CONCURRENT_DELIVERIES)
    ]

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        outcomes = Counter(
            response.json()["outcome"] for response in pool.map(lambda e: deliver(webhook_url, e), events)
        )

    assert outcomes == {"granted": 1, "duplicate": CONCURRENT_DELIVERIES - 1, "other_account": CONCURRENT_DELIVERIES}
    purchase = purchase_of(engine, session_id)
    assert balance_of(engine, purchase.customer_id) == 100
    assert len(lots_of(engine, purchase.customer_id)) == 1
    assert_invariants(engine, purchase.customer_id)


@pytest.mark.usefixtures("stripe_mode")
def test_in_single_business_mode_connect_events_move_no_credits(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, pack: Pack, buyer: User
) -> None:
    session_id = open_checkout(engine, pack, buyer)
    assert purchase_of(engine, session_id).stripe_account_id is None
    paid = fake_stripe.complete(session_id)

    from_connected = fake_stripe.event("checkout.session.completed", paid, account="acct_test_someone")
    assert deliver(webhook_url, from_connected, secret=WEBHOOK_SECRET).json()["outcome"] == "other_account"
    own = fake_stripe.event("checkout.session.completed", paid)
    assert deliver(webhook_url, own, secret=WEBHOOK_SECRET).json()["outcome"] == "granted"


# --- Revenue --------------------------------------------------------------------------------


@in_platform_mode
def test_revenue_is_what_the_creator_earns_after_the_platform_fee(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    for _ in range(2):
        deliver(webhook_url, completed(fake_stripe, open_checkout(engine, pack, buyer), account_id))

    overview = creator_overview(creator_id=creator.id, engine=engine)

    assert overview.revenue == {"USD": 2 * (900 - 113)}
    assert overview.chart[-1].amount == 2 * (900 - 113)
    assert [summary.revenue for summary in list_packs(creator_id=creator.id, engine=engine)] == [2 * (900 - 113)]


# --- Done when: sign-up to a paid sale on the creator's own account -------------------------


@in_platform_mode
def test_a_creator_goes_from_sign_up_to_a_paid_sale_on_their_own_connected_account(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str
) -> None:
    creator = accounts.register(
        name="Nia Creator", email=f"nia-{token_hex(4)}@example.com", password=PASSWORD, engine=engine
    )
    pack = make_pack(engine, creator.id, name="Coaching", price="40", credits="50")
    buyer = accounts.register(name="Bo Buyer", email=f"bo-{token_hex(4)}@example.com", password=PASSWORD, engine=engine)

    # Before onboarding is finished, the pack can be shared but not bought.
    with pytest.raises(PackUnavailable):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)
    onboarding = connect.start_onboarding(creator_id=creator.id, engine=engine)
    account_id = fake_stripe.account_for(creator.email)["id"]
    assert onboarding.startswith(fake_stripe.base_url)
    with pytest.raises(PackUnavailable):
        start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine)

    # The creator finishes onboarding at Stripe; Stripe tells us through the Connect webhook.
    update = fake_stripe.event("account.updated", fake_stripe.finish_onboarding(account_id), account=account_id)
    assert deliver(webhook_url, update).json()["outcome"] == "updated"

    session_id = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine).rsplit("/", 1)[1]
    assert fake_stripe.request_accounts[-1] == account_id
    paid = completed(fake_stripe, session_id, account_id)
    assert deliver(webhook_url, paid).json()["outcome"] == "granted"
    assert deliver(webhook_url, paid).json()["outcome"] == "duplicate"
    for other in ("acct_test_elsewhere", None):
        stray = fake_stripe.event("checkout.session.completed", fake_stripe.sessions[session_id], account=other)
        assert deliver(webhook_url, stray).json()["outcome"] == "other_account"

    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.amount, purchase.platform_fee) == ("paid", 4000, 500)  # 12.5 % of $40.00
    assert fake_stripe.charge_of(session_id)["application_fee_amount"] == 500
    assert balance_of(engine, purchase.customer_id) == 50
    assert creator_overview(creator_id=creator.id, engine=engine).revenue == {"USD": 3500}
    assert_invariants(engine, purchase.customer_id)
    with Session(engine) as session:
        recorded = session.exec(select(StripeEvent.id).where(StripeEvent.type == "checkout.session.completed"))
        assert {paid["id"]} <= set(recorded)


@in_platform_mode
def test_the_page_shows_the_last_known_state_and_stripes_reason_when_stripe_does_not_answer(
    engine: Engine, fake_stripe: FakeStripe, creator: User
) -> None:
    account_id = connected(engine, fake_stripe, creator)
    fake_stripe.finish_onboarding(account_id)
    fake_stripe.refuse_next("Rate limit exceeded.")

    setup, error = connect.setup_for_page(creator_id=creator.id, back_from_stripe=True, engine=engine)

    assert setup.state == "details_needed"
    assert error == "Stripe could not complete this: Rate limit exceeded. Nothing changed; try again."
    setup, error = connect.setup_for_page(creator_id=creator.id, back_from_stripe=True, engine=engine)
    assert (setup.state, error) == ("ready", "")


# --- The Get paid page's handlers -----------------------------------------------------------


def payouts_state(token: str) -> PayoutsState:
    """The handler's state as a browser tab holding `token` would have it."""
    state = State().get_substate(PayoutsState.get_full_name().split(".")[1:])
    state.session_token = token
    return state


@in_platform_mode
@pytest.mark.parametrize("handler", ["start_onboarding", "open_dashboard"])
def test_get_paid_handlers_refuse_a_forged_session_and_touch_nothing_at_stripe(
    fake_stripe: FakeStripe, handler: str
) -> None:
    requests_before = len(fake_stripe.requests)

    result = getattr(PayoutsState, handler).fn(payouts_state("forged-" + token_hex(16)))

    assert "/login" in str(result)
    assert len(fake_stripe.requests) == requests_before


@in_platform_mode
def test_a_stripe_refusal_on_connect_is_shown_on_the_page_and_the_creator_can_retry(
    fake_stripe: FakeStripe, creator: User
) -> None:
    state = payouts_state(accounts.start_session(user_id=creator.id))
    fake_stripe.refuse_next("Your platform needs approval.")

    assert PayoutsState.start_onboarding.fn(state) is None
    assert state.error == "Stripe could not complete this: Your platform needs approval. Nothing changed; try again."

    redirect = PayoutsState.start_onboarding.fn(state)
    assert fake_stripe.base_url in str(redirect)
    assert (state.error, state.busy) == ("", True)


@in_platform_mode
def test_the_gate_also_holds_for_disputes_of_a_creators_charge(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    """Disputes (handled by the payments hardening work) pass the same gate: only the charge's account may act."""
    account_id = ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id, account_id))
    charge = fake_stripe.charge_of(session_id)
    dispute = {
        "id": "dp_test_1",
        "object": "dispute",
        "charge": charge["id"],
        "payment_intent": charge["payment_intent"],
    }

    with Session(engine) as session:
        for account, allowed in ((account_id, True), (intruder, False), (None, False)):
            event = fake_stripe.event("charge.dispute.created", dispute, account=account)
            assert connect.event_is_from_its_account(session, event) is allowed, account


@in_platform_mode
def test_a_paid_session_whose_pending_purchase_is_missing_is_recorded_on_the_creators_account_with_the_fee(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    """Checkout start failed after Stripe made the session: the webhook still records where it was charged."""
    account_id = ready(engine, fake_stripe, creator)
    created = create_checkout_session(
        product_name=pack.name,
        product_description="100 credits",
        amount=pack.price_amount,
        currency=pack.currency,
        buyer_id=buyer.id,
        buyer_email=buyer.email,
        pack_public_id=pack.public_id,
        success_url=f"{BASE_URL}/checkout/success",
        cancel_url=f"{BASE_URL}/",
        stripe_account=account_id,
        application_fee_amount=113,
    )

    assert deliver(webhook_url, completed(fake_stripe, created["id"], account_id)).json()["outcome"] == "granted"

    purchase = purchase_of(engine, created["id"])
    assert (purchase.status, purchase.stripe_account_id, purchase.platform_fee) == ("paid", account_id, 113)


# --- Refunds before fulfilment, automatic refunds and disputes on connected accounts --------


def accounts_asked(fake_stripe: FakeStripe, method: str, path: str) -> list[str | None]:
    """The Stripe-Account header of each request made to `method path` (the fake serves the whole session)."""
    return [
        account
        for (made, to, _params), account in zip(fake_stripe.requests, fake_stripe.request_accounts, strict=True)
        if (made, to) == (method, path)
    ]


@in_platform_mode
def test_a_refund_before_fulfilment_is_looked_up_on_the_refunds_account_and_only_its_sale_is_refunded(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    session_id = open_checkout(engine, pack, buyer)
    paid = fake_stripe.complete(session_id)
    refunded = {**fake_stripe.charge_of(session_id), "refunded": True, "amount_refunded": 900}

    foreign = fake_stripe.event("charge.refunded", refunded, account=intruder)
    assert deliver(webhook_url, foreign).json()["outcome"] == "not_ours"  # Stripe shows Mallory no such checkout
    assert accounts_asked(fake_stripe, "GET", "/v1/checkout/sessions")[-1] == intruder
    assert purchase_of(engine, session_id).status == "pending"

    own = fake_stripe.event("charge.refunded", refunded, account=account_id)
    assert deliver(webhook_url, own).json()["outcome"] == "refunded"
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.stripe_account_id) == ("refunded", account_id)
    late = fake_stripe.event("checkout.session.completed", paid, account=account_id)
    assert deliver(webhook_url, late).json()["outcome"] == "already_fulfilled"
    assert balance_of(engine, purchase.customer_id) == 0
    assert lots_of(engine, purchase.customer_id) == []
    assert_invariants(engine, purchase.customer_id)


@in_platform_mode
def test_a_refund_on_another_account_of_a_checkout_naming_this_creators_pack_changes_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    """Mallory makes a session on her own account whose metadata names this creator's pack, then refunds it."""
    ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    forged = create_checkout_session(
        product_name=pack.name,
        product_description="100 credits",
        amount=pack.price_amount,
        currency=pack.currency,
        buyer_id=buyer.id,
        buyer_email=buyer.email,
        pack_public_id=pack.public_id,
        success_url=f"{BASE_URL}/checkout/success",
        cancel_url=f"{BASE_URL}/",
        stripe_account=intruder,
    )
    fake_stripe.complete(forged["id"])
    refunded = {**fake_stripe.charge_of(forged["id"]), "refunded": True, "amount_refunded": 900}

    event = fake_stripe.event("charge.refunded", refunded, account=intruder)

    assert deliver(webhook_url, event).json()["outcome"] == "other_account"
    assert purchase_of(engine, forged["id"]) is None
    assert customer_of(engine, creator_id=creator.id, buyer_id=buyer.id) is None


@in_platform_mode
def test_a_paid_checkout_that_cannot_be_fulfilled_is_refunded_on_the_creators_account(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    session_id = open_checkout(engine, pack, buyer)
    paid = fake_stripe.complete(session_id, amount_total=1)
    event = fake_stripe.event("checkout.session.completed", paid, account=account_id)

    assert deliver(webhook_url, event).json()["outcome"] == "refunded_unfulfillable"

    charge = fake_stripe.charge_of(session_id)
    assert (charge["refunded"], charge["amount_refunded"]) == (True, 1)
    assert (account_id, f"litesubs-refund-{session_id}") in fake_stripe.refunds_by_idempotency_key
    assert accounts_asked(fake_stripe, "POST", "/v1/refunds")[-1] == account_id
    purchase = purchase_of(engine, session_id)
    assert (purchase.status, purchase.stripe_account_id) == ("refunded", account_id)
    assert balance_of(engine, purchase.customer_id) == 0


@in_platform_mode
def test_a_dispute_from_the_creators_account_takes_back_credits_and_from_another_account_does_nothing(
    engine: Engine, fake_stripe: FakeStripe, webhook_url: str, creator: User, pack: Pack, buyer: User
) -> None:
    account_id = ready(engine, fake_stripe, creator)
    intruder = ready(engine, fake_stripe, create_user(engine, name="Mallory"))
    session_id = open_checkout(engine, pack, buyer)
    deliver(webhook_url, completed(fake_stripe, session_id, account_id))
    customer_id = purchase_of(engine, session_id).customer_id
    opened, won = fake_stripe.dispute(session_id), fake_stripe.dispute(session_id, status="won")

    for account in (intruder, None):
        event = fake_stripe.event("charge.dispute.created", opened, account=account)
        assert deliver(webhook_url, event).json()["outcome"] == "other_account"
    assert balance_of(engine, customer_id) == 100

    own = fake_stripe.event("charge.dispute.created", opened, account=account_id)
    assert deliver(webhook_url, own).json()["outcome"] == "disputed"
    assert balance_of(engine, customer_id) == 0

    foreign_win = fake_stripe.event("charge.dispute.closed", won, account=intruder)
    assert deliver(webhook_url, foreign_win).json()["outcome"] == "other_account"
    assert balance_of(engine, customer_id) == 0

    own_win = fake_stripe.event("charge.dispute.closed", won, account=account_id)
    assert deliver(webhook_url, own_win).json()["outcome"] == "dispute_won"
    assert balance_of(engine, customer_id) == 100
    assert_invariants(engine, customer_id)
