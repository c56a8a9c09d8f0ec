"""The whole product as two people use it, in real Chromium, with a screenshot of every page at two widths.

A creator registers, creates a pack and copies its link; a buyer opens the link signed out, registers,
comes back to the pack, pays in test mode and sees the credits; the creator finds the customer,
removes credits with a reason and creates an API key; the key spends credits over HTTP; the buyer's
wallet shows the new balance. Any console error or failed request in either browser fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.app_server import AppServer
from tests.browser import DESKTOP, PHONE, PageProblems
from tests.conftest import ARTIFACTS
from tests.test_auth_browser import register

SHOTS = ARTIFACTS / "journey"


def snap(page: Page, name: str) -> None:
    """The page as it is now at desktop width, then at phone width (full page each)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SHOTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=SHOTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def people(browser: Browser, app_server: AppServer) -> Iterator[tuple[Page, Page]]:
    problems = PageProblems()
    contexts: list[BrowserContext] = []
    pages = []
    for _ in range(2):
        context = browser.new_context(base_url=app_server.base_url, viewport=DESKTOP, reduced_motion="reduce")
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        problems.watch(page)
        contexts.append(context)
        pages.append(page)
    yield pages[0], pages[1]
    for context in contexts:
        context.close()
    assert problems.all() == [], f"browser problems: {problems.all()}"


def test_the_whole_product_as_a_creator_and_a_buyer(people: tuple[Page, Page], app_server: AppServer) -> None:
    creator, buyer = people

    # The creator arrives, registers and creates a pack.
    creator.goto("/")
    expect(creator.get_by_role("heading", level=1)).to_be_visible()
    snap(creator, "landing")
    creator.get_by_role("link", name="Get started").click()
    expect(creator.get_by_role("heading", name="Create your account")).to_be_visible()
    snap(creator, "register")
    register(creator, name="Nova Studio")
    expect(creator.get_by_text("Create your first credit pack")).to_be_visible()
    snap(creator, "dashboard-empty")
    creator.get_by_role("link", name="Create your first pack").click()
    dialog = creator.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("50 coaching credits")
    dialog.get_by_label("Description").fill("One credit per half hour of coaching.")
    dialog.get_by_label("Price", exact=True).fill("40")
    dialog.get_by_label("Credits", exact=True).fill("50")
    dialog.get_by_role("button", name="Create pack").click()
    card = creator.get_by_test_id("pack-card")
    expect(card).to_contain_text("50 coaching credits")
    card.get_by_role("button", name="Copy link").click()
    link = creator.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(rf"{re.escape(app_server.base_url)}/buy/[\w-]+", link)
    snap(creator, "packs")

    # The buyer opens the shared link signed out, registers, comes back and pays.
    buyer.goto(link)
    expect(buyer.get_by_role("heading", name="50 coaching credits")).to_be_visible()
    snap(buyer, "pack-page")
    buyer.get_by_role("link", name="Create an account to buy").click()
    email = register(buyer, name="Bea Buyer")
    expect(buyer.get_by_text("You're signed in. Complete your purchase below.")).to_be_visible()
    buyer.get_by_role("button", name="Buy for $40.00").click()
    expect(buyer.get_by_text("Test mode — no real payment")).to_be_visible()
    snap(buyer, "checkout")
    buyer.get_by_role("button", name="Pay $40.00").click()
    expect(buyer.get_by_test_id("new-balance")).to_have_text("50")
    snap(buyer, "checkout-success")
    buyer.get_by_role("link", name="Open my wallet").click()
    expect(buyer.get_by_test_id("wallet-balance")).to_have_text("50")
    snap(buyer, "wallet")

    # The creator sees the sale and the customer, and removes credits with a reason.
    creator.goto("/dashboard")
    expect(creator.get_by_test_id("stat-Revenue")).to_have_text("$40.00")
    snap(creator, "dashboard")
    creator.goto("/dashboard/customers")
    row = creator.get_by_role("row").filter(has_text="Bea Buyer")
    expect(row).to_contain_text(email)
    snap(creator, "customers")
    creator.get_by_role("link", name=re.compile("Bea Buyer")).click()
    creator.get_by_role("button", name="Remove credits").click()
    adjust = creator.get_by_role("dialog")
    adjust.get_by_label("Credits").fill("5")
    adjust.get_by_label("Reason").fill("Missed session on Monday")
    adjust.get_by_role("button", name="Remove credits").click()
    expect(creator.get_by_test_id("customer-balance")).to_have_text("45")
    snap(creator, "customer")

    # The creator creates an API key; their software spends credits with it.
    creator.goto("/dashboard/api-keys")
    creator.get_by_role("button", name="New API key").first.click()
    creator.get_by_role("dialog").get_by_label("Name").fill("Booking app")
    creator.get_by_role("dialog").get_by_role("button", name="Create key").click()
    secret_dialog = creator.get_by_role("dialog", name="Your new API key")
    secret_dialog.get_by_role("button", name="Copy key").click()
    secret = creator.evaluate("navigator.clipboard.readText()")
    assert secret.startswith("ls_")
    secret_dialog.get_by_role("button", name="Done").click()
    snap(creator, "api-keys")
    spent = httpx.post(
        f"{app_server.base_url}/api/v1/customers/{email}/debit",
        json={"amount": 3, "reason": "Session booked"},
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "journey-booking-1"},
    )
    assert (spent.status_code, spent.json()["balance_after"]) == (200, 42)

    # The buyer's wallet shows the new balance and what happened.
    buyer.reload()
    expect(buyer.get_by_test_id("wallet-balance")).to_have_text("42")
    expect(buyer.get_by_text("Missed session on Monday")).to_be_visible()
    expect(buyer.get_by_text("Session booked")).to_be_visible()
    snap(buyer, "wallet-after")
