"""Creators manage customers in the browser: table, customer page, adjustments, suspension, exports, isolation."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import CreditLot, Customer, User, utcnow
from litesubs.payments.checkout import pay_test_checkout, start_checkout
from litesubs.services import holds
from litesubs.services.api_keys import create_key
from litesubs.services.customers import suspend_customer
from litesubs.services.errors import CustomerSuspended
from litesubs.services.ledger import Actor, debit, grant, lock_customer, take_back_lot
from tests.app_server import AppServer
from tests.browser import PHONE, sign_in_new_user
from tests.conftest import ARTIFACTS, create_user
from tests.factories import make_pack, record_paid_purchase
from tests.invariants import assert_invariants


def add_buyer(engine: Engine, creator: User, name: str, credits: int) -> Customer:
    buyer = create_user(engine, name=name)
    purchase = record_paid_purchase(engine, make_pack(engine, creator.id), buyer.id)
    grant(creator_id=creator.id, customer_id=purchase.customer_id, amount=credits, actor=Actor("system"), engine=engine)
    with Session(engine) as session:
        return session.get(Customer, purchase.customer_id)


def balance_of(engine: Engine, customer_id: int) -> int:
    with Session(engine) as session:
        return session.get(Customer, customer_id).balance


def test_table_search_sort_and_open_a_customer(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    page.goto("/dashboard/customers")
    expect(page.get_by_text("No customers yet")).to_be_visible()
    for name, credits in (("Ada Lovelace", 30), ("Alan Turing", 10), ("Grace Hopper", 20)):
        add_buyer(app_engine, creator, name, credits)
    page.reload()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(4)
    page.get_by_role("button", name="Sort by balance").click()
    expect(rows.nth(1)).to_contain_text("Ada Lovelace")
    page.get_by_role("button", name="Sort by balance").click()
    expect(rows.nth(1)).to_contain_text("Alan Turing")
    page.screenshot(path=ARTIFACTS / "customers-desktop.png", full_page=True)

    expect(page.get_by_text("3 customers · page 1 of 1")).to_be_visible()
    page.get_by_label("Search customers").fill("grace")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("Grace Hopper")
    expect(page.get_by_text("1 customer · page 1 of 1")).to_be_visible()
    page.get_by_label("Search customers").fill("nobody-like-this")
    expect(page.get_by_text("No customer matches your search.")).to_be_visible()
    page.get_by_label("Search customers").fill("")
    expect(rows).to_have_count(4)

    page.get_by_role("link", name=re.compile("Grace Hopper")).click()
    expect(page).to_have_url(re.compile(r"/dashboard/customers/\d+/?$"))
    expect(page.get_by_test_id("customer-balance")).to_have_text("20")
    expect(page.get_by_role("heading", name="Grace Hopper")).to_be_visible()
    expect(page.get_by_text("Starter")).to_be_visible()
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "customer-phone.png", full_page=True)


def test_adjust_credits_with_a_reason(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    customer = add_buyer(app_engine, creator, "Ada Lovelace", 5)
    page.goto(f"/dashboard/customers/{customer.id}")
    expect(page.get_by_test_id("customer-balance")).to_have_text("5")

    page.get_by_role("button", name="Remove credits").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Credits").fill("6")
    dialog.get_by_label("Reason").fill("Refund for a missed session")
    dialog.get_by_role("button", name="Remove credits").click()
    expect(dialog.get_by_role("alert")).to_have_text("The customer has 5 credits, fewer than the 6 asked for.")
    dialog.get_by_label("Credits").fill("2")
    dialog.get_by_label("Reason").fill("")
    dialog.get_by_role("button", name="Remove credits").click()
    expect(dialog.get_by_role("alert")).to_have_text("Say why the credits change.")
    dialog.get_by_label("Credits").fill("abc")
    dialog.get_by_label("Reason").fill("Missed session")
    dialog.get_by_role("button", name="Remove credits").click()
    expect(dialog.get_by_role("alert")).to_have_text("Enter a whole number of credits, such as 100.")
    assert balance_of(app_engine, customer.id) == 5

    dialog.get_by_label("Credits").fill("2")
    dialog.get_by_role("button", name="Remove credits").click()
    expect(page.get_by_test_id("customer-balance")).to_have_text("3")
    ledger_row = page.get_by_role("row").filter(has_text="Missed session")
    expect(ledger_row).to_contain_text("-2")
    expect(ledger_row).to_contain_text("You")

    page.get_by_role("button", name="Add credits").click()
    dialog.get_by_label("Credits").fill("1,000")
    dialog.get_by_label("Reason").fill("Welcome bonus")
    dialog.get_by_role("button", name="Add credits").click()
    expect(page.get_by_test_id("customer-balance")).to_have_text("1,003")
    assert balance_of(app_engine, customer.id) == 1003
    assert_invariants(app_engine, customer.id)
    page.screenshot(path=ARTIFACTS / "customer-desktop.png", full_page=True)

    page.goto("/dashboard/customers")
    expect(page.get_by_role("row").filter(has_text="Ada Lovelace")).to_contain_text("1,003")


def test_suspend_and_reactivate_with_confirmation(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    customer = add_buyer(app_engine, creator, "Mallory", 10)
    page.goto(f"/dashboard/customers/{customer.id}")
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("won't be able to buy your packs")
    page.get_by_role("button", name="Suspend customer").click()
    expect(page.get_by_text("Suspended").first).to_be_visible()
    with pytest.raises(CustomerSuspended):
        debit(creator_id=creator.id, customer_id=customer.id, amount=1, actor=Actor("api_key", 1), engine=app_engine)

    page.goto("/dashboard/customers")
    expect(page.get_by_role("row").filter(has_text="Mallory")).to_contain_text("Suspended")
    page.get_by_role("link", name=re.compile("Mallory")).click()
    page.get_by_role("button", name="Reactivate").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Reactivate").click()
    expect(page.get_by_role("button", name="Suspend")).to_be_visible()
    debit(creator_id=creator.id, customer_id=customer.id, amount=1, actor=Actor("api_key", 1), engine=app_engine)
    assert balance_of(app_engine, customer.id) == 9


def test_csv_exports_are_the_creators_own(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    customer = add_buyer(app_engine, creator, "Export Me", 7)
    page.goto("/dashboard/customers")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Customers CSV").click()
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("id,name,email")
    assert f"{customer.id},Export Me," in text
    assert len(text.splitlines()) == 2

    ledger = page.request.get("/api/exports/ledger.csv")
    assert ledger.status == 200
    assert ledger.headers["content-type"].startswith("text/csv")
    assert len(ledger.text().splitlines()) == 2

    anonymous = httpx.get(f"{app_server.base_url}/api/exports/customers.csv")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_a_second_creator_cannot_see_or_change_the_first_creators_customers(
    page: Page, app_server: AppServer, app_engine: Engine
) -> None:
    first = create_user(app_engine)
    customer = add_buyer(app_engine, first, "Private Person", 12)
    sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Other Creator")
    page.goto("/dashboard/customers")
    expect(page.get_by_text("No customers yet")).to_be_visible()
    page.goto(f"/dashboard/customers/{customer.id}")
    expect(page.get_by_text("Customer not found")).to_be_visible()
    expect(page.get_by_text("Private Person")).to_have_count(0)
    export = page.request.get("/api/exports/customers.csv").text()
    assert "Private Person" not in export
    assert balance_of(app_engine, customer.id) == 12


def test_the_customer_page_shows_held_credits_active_holds_and_hold_entries_in_words(
    page: Page, app_server: AppServer, app_engine: Engine
) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    customer = add_buyer(app_engine, creator, "Hold Tester", 100)
    page.goto(f"/dashboard/customers/{customer.id}")
    expect(page.get_by_text("No active holds.")).to_be_visible()
    expect(page.get_by_test_id("customer-held")).to_have_text("0")

    key, _secret = create_key(creator_id=creator.id, name="Render farm", engine=app_engine)
    api = Actor("api_key", key.id)
    ids = {"creator_id": creator.id, "customer_id": customer.id, "actor": api, "engine": app_engine}
    render = holds.place_hold(**ids, amount=30, reason="Video render")
    holds.place_hold(**ids, amount=8, reason="Nightly batch", expires_in=3_600)
    ids.pop("customer_id")
    holds.capture_hold(**ids, hold_id=render.id, amount=12)
    page.reload()

    expect(page.get_by_test_id("customer-balance")).to_have_text("80")
    expect(page.get_by_test_id("customer-held")).to_have_text("8")
    active_holds = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Placed"))
    expect(active_holds.get_by_role("row")).to_have_count(2)  # the header and the one active hold
    expect(active_holds.get_by_role("row").nth(1)).to_contain_text("8")
    expect(active_holds.get_by_role("row").nth(1)).to_contain_text("Nightly batch")
    capture_row = page.get_by_role("row").filter(has_text="Captured 12 of 30 held; 18 back")
    expect(capture_row).to_contain_text("+18")
    expect(capture_row).to_contain_text('API key "Render farm"')
    expect(page.get_by_role("row").filter(has_text="Held 30 credits")).to_contain_text("-30")
    expect(page.get_by_role("row").filter(has_text="Held 8 credits")).to_contain_text("Nightly batch")
    page.screenshot(path=ARTIFACTS / "customer-holds-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "customer-holds-phone.png", full_page=True)
    assert_invariants(app_engine, customer.id)


def test_the_customer_page_shows_automatic_refunds_with_their_reason_and_disputes(
    page: Page, app_server: AppServer, app_engine: Engine
) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    customer = add_buyer(app_engine, creator, "Dora Disputer", 40)
    pack = make_pack(app_engine, creator.id, name="Coaching")
    checkout_url = start_checkout(buyer_id=customer.buyer_id, public_id=pack.public_id, engine=app_engine)
    suspend_customer(creator_id=creator.id, customer_id=customer.id, engine=app_engine)
    pay_test_checkout(buyer_id=customer.buyer_id, session_id=checkout_url.rsplit("/", 1)[1], engine=app_engine)
    with write_session(app_engine) as session:  # a chargeback on the first purchase, as charge.dispute.created does
        locked = lock_customer(session, creator_id=creator.id, customer_id=customer.id, now=utcnow())
        lot_id = session.exec(select(CreditLot.id).where(CreditLot.customer_id == customer.id)).first()
        take_back_lot(
            session,
            locked,
            lot_id=lot_id,
            actor=Actor("stripe", "dp_test_1"),
            now=utcnow(),
            reason="Payment disputed: fraudulent",
            kind="dispute",
        )

    page.goto(f"/dashboard/customers/{customer.id}")

    expect(
        page.get_by_text("Refunded automatically: The customer was suspended before the payment completed.")
    ).to_be_visible()
    expect(page.get_by_role("cell", name="Payment disputed: fraudulent")).to_be_visible()
    expect(page.get_by_role("cell", name="Disputed", exact=True)).to_be_visible()
    page.screenshot(path=ARTIFACTS / "customer-refunds-and-disputes.png", full_page=True)
    assert_invariants(app_engine, customer.id)
