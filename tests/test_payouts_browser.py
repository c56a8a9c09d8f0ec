"""Platform mode in the browser: a creator connects Stripe on "Get paid", and buyers can pay only once Stripe is done.

The production build runs with STRIPE_CONNECT=1 against the fake Stripe of tests/stripe_server.py,
whose hosted pages (onboarding, Express dashboard, Checkout) are small pages linking back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from litesubs.db import make_engine
from litesubs.models import User
from tests.app_server import AppServer, start_app_server
from tests.browser import DESKTOP, PHONE, PageProblems, sign_in_new_user
from tests.conftest import ARTIFACTS
from tests.databases import sqlite_database
from tests.factories import make_pack
from tests.stripe_server import FakeStripe, start_stripe_server

pytestmark = pytest.mark.browser

API_KEY = "sk_test_platform_browser"
WEBHOOK_SECRETS = ("whsec_platform_account", "whsec_platform_connect")


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    stripe, server = start_stripe_server(API_KEY)
    yield stripe
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def platform_server(tmp_path_factory: pytest.TempPathFactory, fake_stripe: FakeStripe) -> Iterator[AppServer]:
    """The production build in platform mode (10 % fee) on a fresh SQLite database."""
    directory = tmp_path_factory.mktemp("platform-app")
    environment = {
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": ",".join(WEBHOOK_SECRETS),
        "STRIPE_API_BASE": fake_stripe.base_url,
        "STRIPE_CONNECT": "1",
        "LITESUBS_PLATFORM_FEE_PERCENT": "10",
    }
    with sqlite_database(directory) as url:
        server = start_app_server(url, ARTIFACTS / "platform-app-server.log", directory, environment)
        yield server
        server.stop()


@pytest.fixture(scope="module")
def platform_engine(platform_server: AppServer) -> Iterator[Engine]:
    engine = make_engine(platform_server.database_url)
    yield engine
    engine.dispose()


def _page(browser: Browser, server: AppServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url, viewport=DESKTOP, reduced_motion="reduce")
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    yield page
    context.close()
    assert problems.all() == [], f"browser problems: {problems.all()}"


@pytest.fixture
def creator_page(browser: Browser, platform_server: AppServer) -> Iterator[Page]:
    yield from _page(browser, platform_server)


@pytest.fixture
def buyer_page(browser: Browser, platform_server: AppServer) -> Iterator[Page]:
    yield from _page(browser, platform_server)


def account_updated(fake_stripe: FakeStripe, server: AppServer, described: dict) -> None:
    """Stripe tells the app through the Connect endpoint's webhook that the account changed."""
    event = fake_stripe.event("account.updated", described, account=described["id"])
    response = fake_stripe.deliver(f"{server.base_url}/api/stripe/webhook", event, secret=WEBHOOK_SECRETS[1])
    assert response.json() == {"received": True, "outcome": "updated"}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_a_creator_connects_stripe_and_buyers_can_pay_once_stripe_is_done(
    creator_page: Page,
    buyer_page: Page,
    platform_server: AppServer,
    platform_engine: Engine,
    fake_stripe: FakeStripe,
) -> None:
    page = creator_page
    creator: User = sign_in_new_user(page, base_url=platform_server.base_url, engine=platform_engine)
    pack = make_pack(platform_engine, creator.id, name="Studio hours", price="25", credits="10")

    # Sales are paused until the creator connects; the packs page says so and leads to Get paid.
    page.goto("/dashboard/packs")
    notice = page.get_by_test_id("sales-paused")
    expect(notice).to_contain_text("Sales are paused until you connect a Stripe account to get paid.")
    expect(page.get_by_test_id("pack-card")).to_contain_text("Studio hours")
    shot(page, "packs-sales-paused")
    notice.get_by_role("link", name="Get paid").click()
    expect(page).to_have_url(re.compile(r"/dashboard/payouts/?$"))
    expect(page.get_by_role("heading", name="Get paid")).to_be_visible()
    expect(page.get_by_role("link", name="Get paid").first).to_have_attribute("aria-current", "page")
    creator_nav = ["Overview", "Packs", "Customers", "API keys", "Webhooks", "Get paid", "Wallet", "Account"]
    expect(page.get_by_role("navigation").get_by_role("link")).to_have_text(creator_nav)
    expect(page.get_by_test_id("payout-state")).to_have_text("Not connected")
    expect(page.get_by_text("The platform keeps 10% of each sale; the rest is yours.")).to_be_visible()
    shot(page, "payouts-not-connected")

    # The buyer's pack page says the pack cannot be bought yet, with no Buy button.
    buyer_page.goto(f"/buy/{pack.public_id}")
    expect(buyer_page.get_by_role("heading", name="Studio hours")).to_be_visible()
    expect(buyer_page.get_by_role("alert")).to_have_text(
        "This pack can't be bought yet: its creator is still setting up payments. Check back soon."
    )
    expect(buyer_page.get_by_role("link", name="Create an account to buy")).to_have_count(0)
    shot(buyer_page, "pack-page-creator-not-ready")

    # Stripe refuses: the page says so in words and the creator can retry.
    fake_stripe.refuse_next("You can only create new accounts if you've signed up for Connect.")
    page.get_by_role("button", name="Connect with Stripe").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Stripe could not complete this: You can only create new accounts if you've signed up for Connect. "
        "Nothing changed; try again."
    )
    expect(page.get_by_test_id("payout-state")).to_have_text("Not connected")
    shot(page, "payouts-stripe-error")

    # Retry: off to Stripe's onboarding, and back before finishing it.
    page.get_by_role("button", name="Connect with Stripe").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Stripe onboarding for acct_"))).to_be_visible()
    account_id = fake_stripe.account_for(creator.email)["id"]
    page.get_by_role("link", name="Return to the platform").click()
    expect(page).to_have_url(re.compile(r"/dashboard/payouts/?\?onboarding=return$"))
    expect(page.get_by_test_id("payout-state")).to_have_text("Details needed")
    needed = page.get_by_test_id("still-needed")
    for item in ("Your business type", "A bank account for payouts", "Your date of birth"):
        expect(needed).to_contain_text(item)
    expect(page.get_by_role("alert")).to_have_count(0)
    shot(page, "payouts-details-needed")

    # An expired onboarding link (Stripe's refresh URL) goes straight back to Stripe with a new one.
    page.goto("/dashboard/payouts?onboarding=refresh")
    expect(page.get_by_role("heading", name=f"Stripe onboarding for {account_id}")).to_be_visible()

    # The creator finishes at Stripe and returns: the page re-reads the account, no webhook needed.
    fake_stripe.finish_onboarding(account_id)
    page.get_by_role("link", name="Return to the platform").click()
    expect(page.get_by_test_id("payout-state")).to_have_text("Ready to accept payments")
    shot(page, "payouts-ready")
    page.set_viewport_size(PHONE)
    shot(page, "payouts-ready-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name="Open Stripe dashboard").click()
    expect(page.get_by_role("heading", name=f"Stripe Express dashboard of {account_id}")).to_be_visible()

    page.goto("/dashboard/packs")
    expect(page.get_by_test_id("pack-card")).to_be_visible()
    expect(page.get_by_test_id("sales-paused")).to_have_count(0)

    # Stripe pauses payouts (account.updated): sales go on, the page says what Stripe wants.
    account_updated(fake_stripe, platform_server, fake_stripe.pause_payouts(account_id, ["external_account"]))
    page.goto("/dashboard/payouts")
    expect(page.get_by_test_id("payout-state")).to_have_text("Payouts paused")
    expect(page.get_by_test_id("still-needed")).to_have_text("A bank account for payouts")
    shot(page, "payouts-paused")

    # A buyer pays: the Checkout Session is a direct charge on the creator's account, with the 10 % fee.
    buyer_page.context.clear_cookies()
    sign_in_new_user(buyer_page, base_url=platform_server.base_url, engine=platform_engine, name="Bea Buyer")
    buyer_page.goto(f"/buy/{pack.public_id}")
    buyer_page.get_by_role("button", name="Buy for $25.00").click()
    expect(buyer_page.get_by_role("heading", name=re.compile(r"^Stripe Checkout cs_"))).to_be_visible()
    method, path, sent = fake_stripe.requests[-1]
    assert (method, path, fake_stripe.request_accounts[-1]) == ("POST", "/v1/checkout/sessions", account_id)
    assert sent["payment_intent_data"] == {"application_fee_amount": "250"}

    page.goto("/dashboard")
    expect(page.get_by_text("yours after the platform fee and refunds")).to_be_visible()
