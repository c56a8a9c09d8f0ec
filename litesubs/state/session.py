"""Who is signed in. The browser keeps only a random session token; every handler looks it up afresh."""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from litesubs import routes
from litesubs.models import User
from litesubs.services import accounts, email_verification, packs
from litesubs.services.errors import DomainError, Unauthorized
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
    # What the shell shows: the verification banner, and the creator's pages or the buyer's app.
    email_verified: bool = True
    is_creator: bool = False

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
        self.email_verified = user is None or user.email_verified_at is not None
        self.is_creator = user is not None and packs.is_creator(user_id=user.id)

    def _home(self) -> str:
        """Where a signed-in user starts: the dashboard for creators, the wallet for buyers."""
        return routes.DASHBOARD if self.is_creator else routes.WALLET

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
    def send_verification_again(self) -> rx.event.EventSpec:
        """The banner's "Send again": a new verification link to the signed-in user's address."""
        try:
            user = self._require_user()
            email_verification.send_again(user_id=user.id, client_key=self.router.session.client_ip)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        return rx.toast.success(f"We sent a new link to {user.email}.")

    @rx.event
    def sign_out(self) -> rx.event.EventSpec:
        if self.session_token:
            accounts.end_session(token=self.session_token)
        self.session_token = ""
        self._remember(None)
        return rx.redirect(routes.LOGIN)
