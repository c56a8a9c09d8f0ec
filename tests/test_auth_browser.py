"""Accounts in the browser: register, sign out, sign in, `next` round trips, protected pages."""

from __future__ import annotations

import re
import secrets

from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import make_engine
from litesubs.models import User
from litesubs.services import accounts
from tests.app_server import AppServer
from tests.browser import DESKTOP
from tests.conftest import ARTIFACTS

PASSWORD = "correct horse battery"


def fresh_email() -> str:
    return f"buyer-{secrets.token_hex(5)}@example.com"


def register(page: Page, *, name: str = "Ada Lovelace", email: str | None = None, password: str = PASSWORD) -> str:
    email = email or fresh_email()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Confirm password").fill(password)
    page.get_by_role("button", name="Create account").click()
    return email


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/?$"))


def stored_user(app_server: AppServer, email: str) -> User | None:
    with Session(make_engine(app_server.database_url)) as session:
        return session.exec(select(User).where(User.email == email)).first()


def test_register_sign_out_and_sign_in_again(page: Page, app_server: AppServer) -> None:
    page.goto("/register")
    page.screenshot(path=ARTIFACTS / "register-desktop.png", full_page=True)
    email = register(page, name="Grace Hopper")
    # Someone who has not created a pack starts in the buyer's app.
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    expect(page.get_by_role("heading", name="Wallet")).to_be_visible()
    user = stored_user(app_server, email)
    assert user is not None
    assert user.password_hash.startswith("$2")
    assert PASSWORD not in user.password_hash

    page.reload()
    expect(page.get_by_text("Grace Hopper")).to_be_visible()

    sign_out(page)
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/login/?\?next=%2Fdashboard(%2F)?$"))
    page.screenshot(path=ARTIFACTS / "login-desktop.png", full_page=True)
    sign_in(page, email.upper())
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    expect(page.get_by_role("heading", name="Welcome to Litesubs, Grace Hopper")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard-desktop.png", full_page=True)


def test_registration_errors_are_shown_next_to_the_field(page: Page) -> None:
    page.goto("/register")
    email = register(page)
    sign_out(page)
    page.goto("/register")
    register(page, email=email.upper())
    expect(page.get_by_text("An account with this email already exists.")).to_be_visible()
    register(page, password="short")
    expect(page.get_by_text(re.compile("at least 8 characters", re.IGNORECASE)).first).to_be_visible()
    expect(page).to_have_url(re.compile(r"/register/?$"))


def test_wrong_password_gives_one_generic_message(page: Page) -> None:
    page.goto("/register")
    email = register(page)
    sign_out(page)
    sign_in(page, email, "wrong password!")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    sign_in(page, fresh_email(), "wrong password!")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def test_next_round_trip_through_registration(page: Page) -> None:
    page.goto("/wallet")
    expect(page).to_have_url(re.compile(r"/login/?\?next=%2Fwallet(%2F)?$"))
    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/register/?\?next="))
    register(page)
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    expect(page.get_by_role("heading", name="Wallet")).to_be_visible()


def test_open_redirect_attempt_stays_on_site(page: Page, app_server: AppServer) -> None:
    page.goto("/register")
    email = register(page)
    sign_out(page)
    for evil in ("https://evil.example", "//evil.example", "/\\evil.example"):
        page.goto(f"/login?next={evil}")
        sign_in(page, email)
        expect(page).to_have_url(re.compile(rf"^{re.escape(app_server.base_url)}/wallet/?$"))
        expect(page.get_by_text("No credits yet")).to_be_visible()  # loaded: signing out cannot race its on_load
        sign_out(page)


def test_signing_out_in_one_tab_signs_out_every_tab(page: Page, app_engine: Engine) -> None:
    context: BrowserContext = page.context
    page.goto("/register")
    register(page)
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    other = context.new_page()
    other.goto("/account")
    expect(other.get_by_label("Name")).to_be_visible()
    [token] = [c["value"] for c in context.cookies() if c["name"] == accounts.SESSION_COOKIE]
    assert accounts.user_for_token(token=token, engine=app_engine) is not None

    sign_out(page)

    # The token is revoked server-side, so wherever it was used (this tab, a copied cookie) it is refused.
    assert accounts.user_for_token(token=token, engine=app_engine) is None
    other.reload()
    expect(other).to_have_url(re.compile(r"/login/?\?next=%2Faccount"))
    other.close()


def test_account_settings_change_name_and_password(page: Page) -> None:
    page.goto("/register")
    email = register(page, name="Old Name")
    expect(page).to_have_url(re.compile(r"/wallet/?$"))  # signed in before leaving the page
    page.goto("/account")
    page.get_by_label("Name").fill("New Name")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("Name saved.")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "account-desktop.png", full_page=True)

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill("a brand new password")
    page.get_by_label("Confirm new password").fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text(re.compile("current password", re.IGNORECASE)).first).to_be_visible()

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a brand new password")
    page.get_by_label("Confirm new password").fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed.", exact=False)).to_be_visible()

    sign_out(page)
    sign_in(page, email, "a brand new password")
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    expect(page.get_by_text("New Name")).to_be_visible()


def test_behind_a_proxy_an_attacker_is_stopped_and_cannot_lock_the_owner_out(
    browser: Browser, app_server: AppServer
) -> None:
    """The test app trusts one proxy hop (LITESUBS_TRUSTED_PROXIES=1): X-Forwarded-For names each client, as
    the README's reverse proxy would. Every request reaches the app from the same address, 127.0.0.1."""
    owner_email = fresh_email()
    accounts.register(name="Owner", email=owner_email, password=PASSWORD, engine=make_engine(app_server.database_url))
    attacker = _context_behind_proxy(browser, app_server, client="203.0.113.7")
    owner = _context_behind_proxy(browser, app_server, client="198.51.100.2")
    try:
        page = attacker.new_page()
        page.goto("/login")
        for attempt in range(accounts.SIGN_IN_ATTEMPTS_PER_EMAIL_AND_CLIENT):
            sign_in(page, owner_email, f"guess number {attempt}")
            expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
            page.get_by_label("Password", exact=True).fill("")
        sign_in(page, owner_email, "one more guess")
        expect(page.get_by_role("alert")).to_contain_text("Too many sign-in attempts.")
        page.screenshot(path=ARTIFACTS / "login-rate-limited.png", full_page=True)

        owners_page = owner.new_page()
        owners_page.goto("/login")
        sign_in(owners_page, owner_email)
        expect(owners_page).to_have_url(re.compile(r"/wallet/?$"))  # a buyer's app: Owner has no packs
        expect(owners_page.get_by_text("Owner", exact=True)).to_be_visible()
    finally:
        attacker.close()
        owner.close()


def _context_behind_proxy(browser: Browser, app_server: AppServer, *, client: str) -> BrowserContext:
    return browser.new_context(
        base_url=app_server.base_url, viewport=DESKTOP, extra_http_headers={"X-Forwarded-For": client}
    )
