"""Playwright in Debian's Chromium, with a page that records console errors and failed requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request
from sqlalchemy import Engine

from litesubs.models import User
from litesubs.services import accounts

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@dataclass
class PageProblems:
    """Console errors and failed requests seen by a page; a test fails if any remain."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        page.on("requestfailed", self._on_request_failed)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        # Navigating away aborts in-flight requests of the old page; that is not a failure of ours.
        if "ERR_ABORTED" not in failure:
            self.failed_requests.append(f"{request.method} {request.url}: {failure}")

    def all(self) -> list[str]:
        return self.console_errors + self.failed_requests


def sign_in_new_user(page: Page, *, base_url: str, engine: Engine, name: str = "Casey Creator") -> User:
    """A fresh account, signed in in this page's browser context by setting its session cookie."""
    user = accounts.register(
        name=name,
        email=f"{name.split()[0].lower()}-{secrets.token_hex(5)}@example.com",
        password=PASSWORD,
        engine=engine,
    )
    token = accounts.start_session(user_id=user.id, engine=engine)
    page.context.add_cookies([{"name": accounts.SESSION_COOKIE, "value": token, "url": base_url}])
    return user
