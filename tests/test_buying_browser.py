"""The buyer's path in the browser, test mode: shared link → account → pack → checkout → wallet."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import Customer, Purchase, utcnow
from litesubs.services.customers import get_or_create_customer, suspend_customer
from litesubs.services.packs import set_pack_active
from tests.app_server import AppServer
from tests.browser import DESKTOP, PHONE, sign_in_new_user
from tests.conftest import ARTIFACTS, create_user
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.test_auth_browser import register


def test_a_visitor_on_a_shared_link_registers_pays_and_sees_credits(
    page: Page, browser: Browser, app_server: AppServer, app_engine: Engine
) -> None:
    creator = create_user(app_engine, name="Studio Nine")
    pack = make_pack(
        app_engine,
        creator.id,
        name="50 coaching credits",
        price="40",
        credits="50",
        description="One credit per half hour.",
        expires_on="2099-12-31",
    )

    page.goto(f"/buy/{pack.public_id}")
    expect(page.get_by_role("heading", name="50 coaching credits")).to_be_visible()
    expect(page.get_by_text("Studio Nine")).to_be_visible()
    expect(page.get_by_text("$40.00")).to_be_visible()
    expect(page.get_by_text("Credits valid through Dec 31, 2099")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "pack-page-desktop.png", full_page=True)
    page.get_by_role("link", name="Create an account to buy").click()
    email = register(page, name="Bea Buyer")
    expect(page).to_have_url(re.compile(rf"/buy/{pack.public_id}/?\?buy=1$"))
    expect(page.get_by_text("You're signed in. Complete your purchase below.")).to_be_visible()

    page.get_by_role("button", name="Buy for $40.00").click()
    expect(page).to_have_url(re.compile(r"/checkout/cs_testmode_"))
    expect(page.get_by_text("Test mode — no real payment")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "checkout-desktop.png", full_page=True)
    page.get_by_role("button", name="Pay $40.00").click()
    expect(page).to_have_url(re.compile(r"/checkout/success/?\?session_id=cs_testmode_"))
    expect(page.get_by_test_id("new-balance")).to_have_text("50")
    page.screenshot(path=ARTIFACTS / "checkout-success-desktop.png", full_page=True)

    page.get_by_role("link", name="Open my wallet").click()
    account = page.get_by_test_id("wallet-account")
    expect(account).to_contain_text("Studio Nine")
    expect(account.get_by_test_id("wallet-balance")).to_have_text("50")
    expect(account).to_contain_text("Purchase")
    page.screenshot(path=ARTIFACTS / "wallet-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "wallet-phone.png", full_page=True)

    with Session(app_engine) as session:
        customer = session.exec(select(Customer).where(Customer.creator_id == creator.id)).one()
        purchase = session.exec(select(Purchase).where(Purchase.customer_id == customer.id)).one()
    assert (customer.balance, customer.credits_purchased, purchase.status, purchase.amount) == (50, 50, "paid", 4000)
    assert_invariants(app_engine, customer.id)

    creator_context = browser.new_context(base_url=app_server.base_url, viewport=DESKTOP, reduced_motion="reduce")
    creator_page = creator_context.new_page()
    sign_in_as_existing(creator_page, app_server, app_engine, creator.id)
    creator_page.goto("/dashboard/customers")
    row = creator_page.get_by_role("row").filter(has_text="Bea Buyer")
    expect(row).to_contain_text(email)
    expect(row).to_contain_text("50")
    expect(row).to_contain_text("$40.00")
    creator_page.goto("/dashboard")
    expect(creator_page.get_by_test_id("stat-Revenue")).to_have_text("$40.00")
    creator_context.close()


def sign_in_as_existing(page: Page, app_server: AppServer, engine: Engine, user_id: int) -> None:
    from litesubs.services import accounts

    token = accounts.start_session(user_id=user_id, engine=engine)
    page.context.add_cookies([{"name": accounts.SESSION_COOKIE, "value": token, "url": app_server.base_url}])


def test_cancel_returns_to_the_pack_and_grants_nothing(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = create_user(app_engine)
    pack = make_pack(app_engine, creator.id, name="Cancel me")
    buyer = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Undecided Buyer")
    page.goto(f"/buy/{pack.public_id}")
    page.get_by_role("button", name="Buy for $9.00").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/buy/{pack.public_id}/?$"))
    page.goto("/wallet")
    expect(page.get_by_text("No credits yet")).to_be_visible()
    with Session(app_engine) as session:
        assert session.exec(select(Customer).where(Customer.buyer_id == buyer.id)).first() is None


def test_packs_that_cannot_be_bought_say_why(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = create_user(app_engine)
    disabled = make_pack(app_engine, creator.id, name="Old pack")
    set_pack_active(creator_id=creator.id, pack_id=disabled.id, active=False, engine=app_engine)
    suspended_at = make_pack(app_engine, creator.id, name="Members only")

    page.goto("/buy/no-such-pack-at-all")
    expect(page.get_by_text("Pack not found")).to_be_visible()
    page.goto(f"/buy/{disabled.public_id}")
    expect(page.get_by_role("alert")).to_have_text("This pack is not on sale right now.")
    expect(page.get_by_role("button", name=re.compile("Buy"))).to_have_count(0)

    buyer = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Suspended Buyer")
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=app_engine)
    suspend_customer(creator_id=creator.id, customer_id=customer.id, engine=app_engine)
    page.goto(f"/buy/{suspended_at.public_id}")
    expect(page.get_by_role("alert")).to_have_text("You can't buy from this creator right now.")


def test_an_expired_pack_and_the_creators_own_pack(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Owner Creator")
    own = make_pack(app_engine, creator.id, name="My own pack")
    page.goto(f"/buy/{own.public_id}")
    expect(page.get_by_text("This is your own pack.", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Buy for"))).to_have_count(0)

    soon = make_pack(
        app_engine,
        create_user(app_engine).id,
        name="Short-lived",
        expires_on=(utcnow() + timedelta(days=1)).date().isoformat(),
    )
    with Session(app_engine) as session:
        stored = session.get(type(soon), soon.id)
        stored.expires_at = utcnow() - timedelta(minutes=1)
        session.add(stored)
        session.commit()
    page.goto(f"/buy/{soon.public_id}")
    expect(page.get_by_role("alert")).to_have_text("This pack has expired, so it can no longer be bought.")


def test_another_buyer_cannot_open_someone_elses_checkout(
    page: Page, browser: Browser, app_server: AppServer, app_engine: Engine
) -> None:
    pack = make_pack(app_engine, create_user(app_engine).id, name="Private checkout")
    sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="First Buyer")
    page.goto(f"/buy/{pack.public_id}")
    page.get_by_role("button", name="Buy for $9.00").click()
    expect(page).to_have_url(re.compile(r"/checkout/cs_testmode_"))
    checkout_url = page.url

    other = browser.new_context(base_url=app_server.base_url, viewport=DESKTOP, reduced_motion="reduce")
    other_page = other.new_page()
    sign_in_new_user(other_page, base_url=app_server.base_url, engine=app_engine, name="Second Buyer")
    other_page.goto(checkout_url)
    expect(other_page.get_by_text("Checkout not found")).to_be_visible()
    expect(other_page.get_by_role("button", name=re.compile("Pay"))).to_have_count(0)
    other.close()
