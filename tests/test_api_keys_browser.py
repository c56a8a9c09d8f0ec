"""A creator makes an API key in the browser, copies it once, uses it over HTTP, sees it used, and revokes it."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from litesubs.models import User, utcnow
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from tests.app_server import AppServer
from tests.browser import PHONE, sign_in_new_user
from tests.conftest import ARTIFACTS, create_user


def a_customer_with_credits(engine: Engine, creator: User, credits: int) -> User:
    buyer = create_user(engine, name="Bea Buyer")
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    grant(
        creator_id=creator.id,
        customer_id=customer.id,
        amount=credits,
        actor=Actor("creator", creator.id),
        engine=engine,
    )
    return buyer


def test_create_copy_use_and_revoke_a_key(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine)
    buyer = a_customer_with_credits(app_engine, creator, 10)
    api = f"{app_server.base_url}/api/v1"

    page.goto("/dashboard/api-keys")
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()
    example = page.locator("pre")
    expect(example).to_contain_text(f'curl "{api}/customers/{buyer.email}"')
    expect(example).to_contain_text(f'curl -X POST "{api}/customers/{buyer.email}/debit"')

    page.get_by_role("button", name="New API key").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_role("alert")).to_have_text("Give the key a name, such as the app that will use it.")
    dialog.get_by_label("Name").fill("Backend")
    dialog.get_by_role("button", name="Create key").click()

    secret_dialog = page.get_by_role("dialog", name="Your new API key")
    expect(secret_dialog).to_contain_text("it won't be shown again")
    secret = page.get_by_test_id("new-api-key").inner_text().strip()
    assert re.fullmatch(r"ls_[A-Za-z0-9_-]{43}", secret)
    secret_dialog.get_by_role("button", name="Copy key").click()
    expect(page.get_by_text("API key copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.screenshot(path=ARTIFACTS / "api-keys-secret.png")
    secret_dialog.get_by_role("button", name="Done").click()
    expect(secret_dialog).to_be_hidden()
    assert secret not in page.content()

    row = page.get_by_test_id("api-key-row")
    expect(row).to_have_count(1)
    for text in ("Backend", secret[:10] + "…", "Never", "Active"):
        expect(row).to_contain_text(text)

    headers = {"Authorization": f"Bearer {secret}"}
    customer = httpx.get(f"{api}/customers/{buyer.email}", headers=headers)
    assert (customer.status_code, customer.json()["balance"]) == (200, 10)
    debit = httpx.post(
        f"{api}/customers/{buyer.email}/debit", json={"amount": 3, "reason": "Browser test"}, headers=headers
    )
    assert (debit.status_code, debit.json()["balance_after"]) == (200, 7)

    page.reload()
    expect(row.get_by_test_id("last-used")).to_contain_text(str(utcnow().year))
    page.screenshot(path=ARTIFACTS / "api-keys-desktop.png", full_page=True)

    row.get_by_role("button", name="Revoke Backend").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("401 Unauthorized")
    confirm.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("button", name="Revoke Backend")).to_have_count(0)
    refused = httpx.get(f"{api}/customers/{buyer.email}", headers=headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")

    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "api-keys-phone.png", full_page=True)


def test_the_api_reference_renders_offline(page: Page, app_server: AppServer) -> None:
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name=re.compile("Litesubs API"))).to_be_visible()
    expect(page.get_by_text("/customers/{ref}/debit", exact=True)).to_be_visible()
    page.screenshot(path=ARTIFACTS / "api-docs.png")
