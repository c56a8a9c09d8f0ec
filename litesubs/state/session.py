"""Who is signed in. The browser keeps only a random session token; every handler looks it up afresh."""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from litesubs import routes
from litesubs.models import User
from litesubs.services import accounts
from litesubs.services.errors import Unauthorized
from litesubs.settings import get_settings

SESSION_COOKIE_MAX_AGE = int(accounts.SESSION_IDLE_LIFETIME.total_seconds())


class SessionState(rx.State):
    session_token: str = rx.Cookie(
        "",
        name=accounts.SESSION_COOKIE,
        same_site="lax",
        max_age=SESSION_COOKIE_MAX_AGE,
        secure=get_settings().base_url.startswith("https://"),
    )
    user_name: str = ""
    user_email: str = ""

    def _signed_in_user(self) -> User | None:
        if not self.session_token:
            return None
        return accounts.user_for_token(token=self.session_token)

    def _require_user(self) -> User:
        """The signed-in user, loaded from the session token now; raises `Unauthorized` otherwise."""
        user = self._signed_in_user()
        if user is None:
            raise Unauthorized("Your session has ended. Sign in again.")
        return user

    def _page_user(self) -> User | None:
        """For a protected page's `on_load`: the signed-in user, remembered for the shell; None means redirect."""
        user = self._signed_in_user()
        self._remember(user)
        return user

    def _remember(self, user: User | None) -> None:
        self.user_name = user.name if user else ""
        self.user_email = user.email if user else ""

    def _login_redirect(self) -> rx.event.EventSpec:
        url = self.router.url
        here = url.path + (f"?{url.query}" if url.query else "")
        return rx.redirect(f"{routes.LOGIN}?next={quote(here, safe='')}")

    @rx.event
    def require_sign_in(self) -> rx.event.EventSpec | None:
        """`on_load` of protected pages: a signed-out visitor goes to the login page and comes back."""
        if self._page_user() is None:
            return self._login_redirect()
        return None

    @rx.event
    def load_viewer(self) -> None:
        """`on_load` of public pages: know who is looking, if anyone."""
        self._remember(self._signed_in_user())

    @rx.event
    def sign_out(self) -> rx.event.EventSpec:
        if self.session_token:
            accounts.end_session(token=self.session_token)
        self.session_token = ""
        self._remember(None)
        return rx.redirect(routes.LOGIN)
