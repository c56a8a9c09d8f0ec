"""Creators manage packs in the browser: create (and every validation error), toggle, copy link, edit, overview."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import Pack
from tests.app_server import AppServer
from tests.browser import PHONE, sign_in_new_user
from tests.conftest import ARTIFACTS, create_user
from tests.factories import make_pack, record_paid_purchase


def creator_packs(engine: Engine, creator_id: int) -> list[Pack]:
    with Session(engine) as session:
        return list(session.exec(select(Pack).where(Pack.creator_id == creator_id).order_by(Pack.id)))


def fill_pack_form(page: Page, **fields: str) -> None:
    dialog = page.get_by_role("dialog")
    for label, value in fields.items():
        if label == "Currency":
            dialog.get_by_label("Currency").select_option(value)
        else:
            dialog.get_by_label(label, exact=True).fill(value)


def test_create_a_pack_with_validation_then_see_it_everywhere(
    page: Page, app_server: AppServer, app_engine: Engine
) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    page.goto("/dashboard")
    expect(page.get_by_text("Create your first credit pack")).to_be_visible()
    page.get_by_role("link", name="Create your first pack").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="New pack")).to_be_visible()

    cases = [
        ({"Name": ""}, "Give the pack a name."),
        ({"Name": "Coaching", "Price": "0.20"}, "The lowest price Stripe accepts in USD is $0.50."),
        ({"Price": "1000000"}, "The highest price is $999,999.99."),
        ({"Price": "40", "Credits": "0"}, "Credits must be between 1 and 1,000,000,000."),
        ({"Credits": "50", "Expiry date (optional)": "2020-01-01"}, "The expiry date must be in the future."),
    ]
    for fields, message in cases:
        fill_pack_form(page, **fields)
        dialog.get_by_role("button", name="Create pack").click()
        expect(dialog.get_by_role("alert")).to_have_text(message)
    assert creator_packs(app_engine, creator.id) == []

    fill_pack_form(page, **{"Expiry date (optional)": "2099-06-30", "Currency": "EUR"})
    dialog.get_by_label("Description").fill("One hour of coaching per credit.")
    dialog.get_by_role("button", name="Create pack").click()
    expect(page.get_by_text("Pack created.", exact=False)).to_be_visible()
    card = page.get_by_test_id("pack-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Coaching")
    expect(card).to_contain_text("€40.00")
    expect(card).to_contain_text("Valid through Jun 30, 2099")
    [pack] = creator_packs(app_engine, creator.id)
    assert (pack.price_amount, pack.currency, pack.credits, pack.is_active) == (4000, "EUR", 50, True)
    page.screenshot(path=ARTIFACTS / "packs-desktop.png", full_page=True)

    page.goto("/dashboard")
    expect(page.get_by_test_id("stat-Revenue")).to_have_text("$0.00")
    expect(page.get_by_text("Sales will appear here", exact=False)).to_be_visible()


def test_toggle_copy_link_and_edit(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    pack = make_pack(app_engine, creator.id, name="API credits", price="9", credits="1000")
    page.goto("/dashboard/packs")
    card = page.get_by_test_id("pack-card")
    expect(card).to_contain_text("On sale")

    card.get_by_role("switch").click()
    expect(card).to_contain_text("Disabled")
    assert creator_packs(app_engine, creator.id)[0].is_active is False
    card.get_by_role("switch").click()
    # The switch's own label always reads "On sale": wait for the switch, which turns on once the server saved it.
    expect(card.get_by_role("switch")).to_be_checked()
    expect(card).not_to_contain_text("Disabled")
    assert creator_packs(app_engine, creator.id)[0].is_active is True

    card.get_by_role("button", name="Copy link").click()
    expect(page.get_by_text("Link copied to the clipboard.")).to_be_visible()
    link = f"{app_server.base_url}/buy/{pack.public_id}"
    assert page.evaluate("navigator.clipboard.readText()") == link
    expect(card).to_contain_text(link)
    card.get_by_role("button", name="QR code").click()
    expect(page.get_by_role("img", name="QR code for the pack link")).to_be_visible()
    page.keyboard.press("Escape")

    card.get_by_role("button", name="Edit API credits").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Price")).to_have_value("9.00")
    fill_pack_form(page, Name="API credits XL", Price="19.50", Credits="2500")
    dialog.get_by_role("button", name="Save changes").click()
    expect(card).to_contain_text("API credits XL")
    expect(card).to_contain_text("$19.50")
    stored = creator_packs(app_engine, creator.id)[0]
    assert (stored.name, stored.price_amount, stored.credits, stored.public_id) == (
        "API credits XL",
        1950,
        2500,
        pack.public_id,
    )

    record_paid_purchase(app_engine, stored, create_user(app_engine).id)
    page.reload()
    card.get_by_role("button", name="Edit API credits XL").click()
    expect(page.get_by_role("dialog")).to_contain_text("price and credits are fixed")
    fill_pack_form(page, Name="API credits (legacy)")
    page.get_by_role("dialog").get_by_role("button", name="Save changes").click()
    expect(card).to_contain_text("API credits (legacy)")
    expect(card).to_contain_text("$19.50")

    page.goto("/dashboard")
    expect(page.get_by_test_id("stat-Revenue")).to_have_text("$19.50")
    expect(page.get_by_test_id("stat-Packs sold")).to_have_text("1")
    page.screenshot(path=ARTIFACTS / "dashboard-overview-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "dashboard-overview-phone.png", full_page=True)
    page.goto("/dashboard/packs")
    expect(card).to_be_visible()
    page.screenshot(path=ARTIFACTS / "packs-phone.png", full_page=True)


def test_a_second_creator_never_sees_the_first_creators_packs(
    page: Page, app_server: AppServer, app_engine: Engine
) -> None:
    first = create_user(app_engine)
    make_pack(app_engine, first.id, name="First creator's secret pack")
    sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Second Creator")
    page.goto("/dashboard/packs")
    expect(page.get_by_text("No packs yet")).to_be_visible()
    expect(page.get_by_text("First creator's secret pack")).to_have_count(0)
    page.goto("/dashboard")
    expect(page.get_by_text(re.compile("Create your first credit pack"))).to_be_visible()
