"""A creator adds a webhook endpoint in the browser; a buyer pays in test mode; the creator's receiver gets the
signed `purchase.completed` from the app's own embedded worker within about a second, and the page shows it.

The app under test runs with LITESUBS_ALLOW_HTTP_WEBHOOKS=1 (tests/conftest.py), so a receiver on
127.0.0.1 is allowed; other private addresses are still refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from litesubs.services import webhooks
from tests.app_server import AppServer
from tests.browser import DESKTOP, PHONE, PageProblems, sign_in_new_user
from tests.conftest import ARTIFACTS
from tests.factories import make_pack
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def test_add_an_endpoint_buy_and_see_the_signed_event_arrive(
    page: Page, browser: Browser, app_server: AppServer, app_engine: Engine, receiver: Receiver
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Wendy Webhook")
    pack = make_pack(app_engine, creator.id, name="Hook pack", price="5.00", credits="20")

    page.goto("/dashboard/webhooks")
    expect(page.get_by_role("heading", name="No webhook endpoints yet")).to_be_visible()
    expect(page.locator("pre")).to_contain_text("webhook.verify(body, headers)")
    page.screenshot(path=ARTIFACTS / "webhooks-empty.png", full_page=True)

    page.get_by_role("button", name="Add endpoint").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("purchase.completed")).to_be_checked()
    expect(dialog.get_by_label("credits.debited")).not_to_be_checked()
    dialog.get_by_label("Endpoint URL").fill("http://169.254.169.254/latest/meta-data/")
    dialog.get_by_role("button", name="Add endpoint").click()
    expect(dialog.get_by_role("alert")).to_contain_text("link-local address")
    page.screenshot(path=ARTIFACTS / "webhooks-refused-url.png")
    dialog.get_by_label("Endpoint URL").fill(receiver.url)
    dialog.get_by_label("credits.debited").check()
    dialog.get_by_role("button", name="Add endpoint").click()
    expect(dialog).to_be_hidden()

    card = page.get_by_test_id("webhook-endpoint")
    expect(card).to_contain_text(receiver.url)
    expect(card).to_contain_text("Enabled")
    expect(card).to_contain_text("credits.debited")
    secret = card.get_by_test_id("signing-secret").inner_text().strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    card.get_by_role("button", name="Copy", exact=True).click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    receiver.verify_with(secret)

    buyer_context = browser.new_context(base_url=app_server.base_url, viewport=DESKTOP, reduced_motion="reduce")
    buyer_page = buyer_context.new_page()
    buyer_problems = PageProblems()
    buyer_problems.watch(buyer_page)
    sign_in_new_user(buyer_page, base_url=app_server.base_url, engine=app_engine, name="Bob Buyer")
    buyer_page.goto(f"/buy/{pack.public_id}")
    buyer_page.get_by_role("button", name="Buy for $5.00").click()
    pay = buyer_page.get_by_role("button", name="Pay $5.00")
    expect(pay).to_be_visible()
    paid_at = time.monotonic()
    pay.click()
    [delivery] = receiver.wait_for(1, timeout=10)
    arrived_after = time.monotonic() - paid_at
    expect(buyer_page.get_by_role("link", name="Open my wallet")).to_be_visible()
    buyer_context.close()
    assert buyer_problems.all() == []

    assert delivery.verified
    event = delivery.event
    assert event["type"] == "purchase.completed"
    assert event["data"]["credits"] == 20
    assert event["data"]["pack_name"] == "Hook pack"
    assert delivery.webhook_id == event["id"]
    # From the click on Pay (a browser round trip, the payment's transaction) to the receiver: about a second.
    assert arrived_after < 3, arrived_after

    page.get_by_role("button", name="Refresh").click()
    row = card.get_by_test_id("delivery-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("purchase.completed")
    expect(row).to_contain_text("Delivered")
    expect(row).to_contain_text("HTTP 200")

    card.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("Test event queued")).to_be_visible()
    receiver.wait_for(2)
    assert receiver.types() == ["purchase.completed", "webhook.test"]
    row.filter(has_text="purchase.completed").get_by_role("button", name="Resend purchase.completed").click()
    receiver.wait_for(3)
    assert receiver.verified()[2].webhook_id == delivery.webhook_id
    page.get_by_role("button", name="Refresh").click()
    expect(row).to_have_count(3)

    threshold = page.get_by_label("Threshold (credits)")
    threshold.fill("lots")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="whole number")).to_be_visible()
    threshold.fill("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("falls below 5 credits")).to_be_visible()
    assert webhooks.low_balance_threshold(creator_id=creator.id, engine=app_engine) == 5

    card.get_by_role("button", name="Events").click()
    events = page.get_by_role("dialog", name="Events to send")
    expect(events.get_by_label("credits.debited")).to_be_checked()
    events.get_by_label("credits.debited").uncheck()
    events.get_by_role("button", name="Save events").click()
    expect(events).to_be_hidden()
    expect(card).not_to_contain_text("credits.debited")
    [stored] = webhooks.list_endpoints(creator_id=creator.id, engine=app_engine)
    assert "credits.debited" not in webhooks.event_types_of(stored)

    card.get_by_role("button", name="Rotate").click()
    expect(card).to_contain_text("The previous secret also signs until")
    new_secret = card.get_by_test_id("signing-secret").inner_text().strip()
    assert new_secret != secret
    page.screenshot(path=ARTIFACTS / "webhooks-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "webhooks-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)

    card.get_by_role("button", name="Disable").click()
    expect(card).to_contain_text("Not sending: Disabled by you.")
    expect(card.get_by_role("button", name="Send test event")).to_be_disabled()
    card.get_by_role("button", name="Enable").click()
    expect(card).not_to_contain_text("Not sending")

    card.get_by_role("button", name="Delete").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("heading", name="No webhook endpoints yet")).to_be_visible()
    assert webhooks.list_endpoints(creator_id=creator.id, engine=app_engine) == []
