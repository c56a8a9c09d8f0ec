"""Mail in the browser, against the running app whose worker sends to a real local SMTP server.

Forgot password → mail → link → new password → signed in; refused links (used, expired, superseded)
that change nothing; register → verification mail → banner gone; changing the email; the buyer's
app with Buy again and the switch to the creator's dashboard; the receipt after paying.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import timedelta
from urllib.parse import urlparse

from playwright.sync_api import Page, expect
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import User, utcnow
from litesubs.services import accounts, password_reset
from litesubs.services.errors import InvalidCredentials
from tests.app_server import AppServer
from tests.browser import PASSWORD, PHONE, sign_in_new_user
from tests.conftest import ARTIFACTS, create_user
from tests.factories import make_pack
from tests.mail_server import MailServer, ReceivedMail, queued_mail_to
from tests.test_auth_browser import register, sign_in, sign_out


def _user(engine: Engine, name: str = "Mona Mailer") -> User:
    email = f"{name.split()[0].lower()}-{secrets.token_hex(5)}@example.com"
    return accounts.register(name=name, email=email, password=PASSWORD, engine=engine)


def _mail(mail_server: MailServer, address: str, subject: str, *, count: int = 1) -> ReceivedMail:
    """The `count`-th mail to `address` whose subject contains `subject`, once it arrived."""
    for _ in range(3):
        matching = [m for m in mail_server.wait_for(address) if subject in m.subject]
        if len(matching) >= count:
            return matching[count - 1]
        mail_server.wait_for(address, count=len(mail_server.to(address)) + 1)
    raise AssertionError(f"no mail {subject!r} #{count} to {address}")


def _path(link: str, app_server: AppServer) -> str:
    assert link.startswith(app_server.base_url), link  # links are built from LITESUBS_BASE_URL
    return link.removeprefix(app_server.base_url)


def _path_of(link: str) -> str:
    """The path and query of a link in a mail the test process itself queued (its own LITESUBS_BASE_URL)."""
    parts = urlparse(link)
    return f"{parts.path}?{parts.query}"


def _can_sign_in(engine: Engine, email: str, password: str) -> bool:
    try:
        accounts.authenticate(email=email, password=password, client_key=secrets.token_hex(4), engine=engine)
    except InvalidCredentials:
        return False
    return True


def test_forgot_password_mail_link_new_password_sign_in(
    page: Page, app_server: AppServer, app_engine: Engine, mail_server: MailServer
) -> None:
    user = _user(app_engine)
    page.goto("/login")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page).to_have_url(re.compile(r"/forgot-password/?$"))
    page.screenshot(path=ARTIFACTS / "forgot-password-desktop.png", full_page=True)
    page.get_by_label("Email").fill(user.email.upper())
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("status")).to_contain_text(f"If an account uses {user.email}, we sent it a link")
    page.screenshot(path=ARTIFACTS / "forgot-password-sent-desktop.png", full_page=True)

    received = _mail(mail_server, user.email, "Reset your Litesubs password")
    page.goto(_path(received.link_to("/reset-password"), app_server))
    page.get_by_label("New password", exact=True).fill("a fresh secret here")
    page.get_by_label("Confirm new password").fill("a different one")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_text("The passwords do not match.")).to_be_visible()
    page.get_by_label("Confirm new password").fill("a fresh secret here")
    page.screenshot(path=ARTIFACTS / "reset-password-desktop.png", full_page=True)
    page.get_by_role("button", name="Set new password").click()

    expect(page).to_have_url(re.compile(r"/wallet/?$"))  # signed in afresh, in the buyer's app
    expect(page.get_by_text("Mona Mailer")).to_be_visible()
    assert _can_sign_in(app_engine, user.email, "a fresh secret here")
    assert not _can_sign_in(app_engine, user.email, PASSWORD)
    sign_out(page)
    sign_in(page, user.email, "a fresh secret here")
    expect(page).to_have_url(re.compile(r"/wallet/?$"))


def test_used_expired_and_superseded_links_say_so_and_change_nothing(
    page: Page, app_server: AppServer, app_engine: Engine, mail_server: MailServer
) -> None:
    late = _user(app_engine, "Tess Tardy")
    long_ago = utcnow() - timedelta(hours=2)
    password_reset.request_reset(email=late.email, client_key="browser-test", engine=app_engine, now=long_ago)
    expired = _mail(mail_server, late.email, "Reset")
    user = _user(app_engine, "Lars Linkman")
    # One after the other: the worker sends mails in parallel, so they may arrive in any order.
    password_reset.request_reset(email=user.email, client_key="browser-test", engine=app_engine)
    superseded = _mail(mail_server, user.email, "Reset", count=1)
    password_reset.request_reset(email=user.email, client_key="browser-test", engine=app_engine)
    latest = _mail(mail_server, user.email, "Reset", count=2)

    page.goto(_path_of(superseded.link_to("/reset-password")))
    expect(page.get_by_role("alert")).to_have_text(
        "A newer link was sent after this one: use the link in the latest mail."
    )
    expect(page.get_by_label("New password", exact=True)).to_have_count(0)
    page.screenshot(path=ARTIFACTS / "reset-password-superseded-desktop.png", full_page=True)

    page.goto(_path_of(expired.link_to("/reset-password")))
    expect(page.get_by_role("alert")).to_contain_text("This link has expired.")
    expect(page.get_by_role("link", name="Ask for a new link")).to_be_visible()
    assert _can_sign_in(app_engine, late.email, PASSWORD)

    page.goto(_path_of(latest.link_to("/reset-password")))
    page.get_by_label("New password", exact=True).fill("used exactly once")
    page.get_by_label("Confirm new password").fill("used exactly once")
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    sign_out(page)

    page.goto(_path_of(latest.link_to("/reset-password")))
    expect(page.get_by_role("alert")).to_contain_text("This link was already used.")
    expect(page.get_by_label("New password", exact=True)).to_have_count(0)
    assert _can_sign_in(app_engine, user.email, "used exactly once")


def test_register_verification_link_and_the_banner_is_gone(
    page: Page, app_server: AppServer, mail_server: MailServer
) -> None:
    page.goto("/register")
    email = register(page, name="Vic Verify")
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    banner = page.get_by_test_id("verification-banner")
    expect(banner).to_contain_text(f"open the link we sent to {email}")
    expect(page.get_by_text("No credits yet")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "verification-banner-desktop.png", full_page=True)
    first = _mail(mail_server, email, "Confirm your email")

    banner.get_by_role("button", name="Send again").click()
    expect(page.get_by_text(f"We sent a new link to {email}.")).to_be_visible()
    second = _mail(mail_server, email, "Confirm your email", count=2)

    page.goto(_path(first.link_to("/verify-email"), app_server))
    expect(page.get_by_role("alert")).to_contain_text("A newer link was sent")
    page.goto(_path(second.link_to("/verify-email"), app_server))
    expect(page.get_by_role("status")).to_have_text(f"Thank you: {email} is confirmed.")
    page.screenshot(path=ARTIFACTS / "verify-email-desktop.png", full_page=True)
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/wallet/?$"))
    expect(page.get_by_role("heading", name="Wallet")).to_be_visible()
    expect(page.get_by_test_id("verification-banner")).to_have_count(0)


def test_changing_the_email_on_the_account_page(
    page: Page, app_server: AppServer, app_engine: Engine, mail_server: MailServer
) -> None:
    user = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Eve Change")
    new = f"eve-new-{secrets.token_hex(4)}@example.com"
    page.goto("/account")
    page.get_by_label("New email").fill(new)
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Change email").click()
    expect(page.get_by_text("Your password is not correct.")).to_be_visible()
    page.get_by_label("New email").fill(new)
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Change email").click()
    expect(page.get_by_test_id("pending-email")).to_contain_text(f"open the link we sent to {new}")
    page.screenshot(path=ARTIFACTS / "account-email-change-desktop.png", full_page=True)
    with Session(app_engine) as session:
        assert session.get(User, user.id).email == user.email  # not before the new address is confirmed

    received = _mail(mail_server, new, "Confirm your email")
    page.goto(_path(received.link_to("/verify-email"), app_server))
    expect(page.get_by_role("status")).to_have_text(f"Your account's email is now {new}, confirmed.")
    page.goto("/account")
    expect(page.get_by_text(new).first).to_be_visible()
    expect(page.get_by_text("Confirmed", exact=True)).to_be_visible()
    expect(page.get_by_test_id("pending-email")).to_have_count(0)
    with Session(app_engine) as session:
        assert session.get(User, user.id).email == new


def test_buyers_app_buy_again_receipt_and_start_selling(
    page: Page, app_server: AppServer, app_engine: Engine, mail_server: MailServer
) -> None:
    creator = create_user(app_engine, name="Pia Packmaker")
    pack = make_pack(app_engine, creator.id, name="Forty credits", price="8.00", credits="40")
    buyer = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Ben Buyer")

    page.goto(f"/buy/{pack.public_id}")
    page.get_by_role("button", name=re.compile("Buy for")).click()
    page.get_by_role("button", name=re.compile("^Pay")).click()
    page.get_by_role("link", name="Open my wallet").click()
    expect(page.get_by_test_id("wallet-balance")).to_have_text("40")
    receipt = _mail(mail_server, buyer.email, "Your receipt from Pia Packmaker")
    assert "Forty credits" in receipt.text
    assert "$8.00" in receipt.text
    assert _path(receipt.link_to("/wallet"), app_server) == "/wallet"
    mail_page = page.context.new_page()
    mail_page.set_content(receipt.html)  # the HTML part as a mail program shows it: no remote resources at all
    mail_page.screenshot(path=ARTIFACTS / "mail-receipt.png", full_page=True)
    mail_page.close()

    # The buyer's app: wallet, account and "Start selling"; no creator pages.
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link")).to_have_text(["Wallet", "Account", "Start selling"])
    page.screenshot(path=ARTIFACTS / "wallet-buy-again-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=ARTIFACTS / "wallet-buy-again-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_test_id("buy-again").get_by_role("button", name=re.compile("Buy again: Forty credits")).click()
    expect(page).to_have_url(re.compile(r"/checkout/cs_testmode_"))
    expect(page.get_by_text("Forty credits").first).to_be_visible()

    # Creating a first pack turns the creator's dashboard on.
    page.goto("/wallet")
    page.get_by_role("navigation").get_by_role("link", name="Start selling").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("My first pack")
    dialog.get_by_label("Price", exact=True).fill("5")
    dialog.get_by_label("Credits", exact=True).fill("10")
    dialog.get_by_role("button", name="Create pack").click()
    expect(page.get_by_test_id("pack-card")).to_contain_text("My first pack")
    # The creator's sidebar in test mode: Webhooks, and no "Get paid" (platform mode only), no "Start selling".
    creator_nav = ["Overview", "Packs", "Customers", "API keys", "Webhooks", "Wallet", "Account"]
    expect(page.get_by_role("navigation").get_by_role("link")).to_have_text(creator_nav)
    page.screenshot(path=ARTIFACTS / "creator-sidebar-test-mode.png", full_page=True)
    sign_out(page)
    sign_in(page, buyer.email)
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))


def test_a_creator_switches_sale_mails_off(page: Page, app_server: AppServer, app_engine: Engine) -> None:
    creator = sign_in_new_user(page, base_url=app_server.base_url, engine=app_engine, name="Sol Seller")
    make_pack(app_engine, creator.id)
    page.goto("/account")
    switch = page.get_by_role("switch", name="Email me about each sale")
    expect(switch).to_be_checked()
    expect(page.get_by_text("Set a low-balance threshold on the")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "account-mail-settings-desktop.png", full_page=True)
    switch.click()
    expect(page.get_by_text("Mail settings saved.")).to_be_visible()
    expect(switch).not_to_be_checked()
    with Session(app_engine) as session:
        assert session.get(User, creator.id).sale_mail is False
    page.reload()
    expect(page.get_by_role("switch", name="Email me about each sale")).not_to_be_checked()


def test_smtp_down_the_apps_worker_sends_the_mail_once_it_is_back(app_engine: Engine, mail_server: MailServer) -> None:
    user = _user(app_engine, "Dora Downtime")
    _mail(mail_server, user.email, "Confirm your email")
    mail_server.stop()
    try:
        password_reset.request_reset(email=user.email, client_key="smtp-down-test", engine=app_engine)
        deadline = time.monotonic() + 15
        while not (
            failed := [
                row for row in queued_mail_to(app_engine, user.email) if row.attempts >= 1 and row.status == "pending"
            ]
        ):
            assert time.monotonic() < deadline, "the worker did not try to send while SMTP was down"
            time.sleep(0.2)
        assert "Connection refused" in failed[0].last_error or "Errno" in failed[0].last_error
    finally:
        mail_server.start()
    received = _mail(mail_server, user.email, "Reset your Litesubs password")
    assert "/reset-password?token=" in received.text
    deadline = time.monotonic() + 10  # the worker records the delivery just after the server took the mail
    while (row := next(r for r in queued_mail_to(app_engine, user.email) if r.id == failed[0].id)).status == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (row.status, row.attempts) == ("delivered", 2)
