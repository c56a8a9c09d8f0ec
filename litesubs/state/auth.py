"""Register, sign in and account settings: thin doors into `services.accounts`."""

from __future__ import annotations

import asyncio

import reflex as rx

from litesubs import routes
from litesubs.models import User
from litesubs.services import accounts
from litesubs.services.errors import DomainError, InvalidRequest, RateLimited, Unauthorized
from litesubs.state.session import SessionState


class AuthFormState(SessionState):
    field_errors: dict[str, str] = {}
    form_error: str = ""
    show_password: bool = False

    def _next_path(self) -> str:
        return accounts.safe_next_path(self.router.url.query_parameters.get("next"), default=routes.DASHBOARD)

    def _show(self, error: DomainError) -> None:
        if isinstance(error, InvalidRequest):
            self.field_errors = {error.field: error.message}
            self.form_error = ""
        else:
            self.field_errors = {}
            self.form_error = error.message

    def _clear(self) -> None:
        self.field_errors = {}
        self.form_error = ""

    def _start_session(self, user: User) -> rx.event.EventSpec:
        """A new session token for every sign-in; then on to where the visitor was going."""
        self._clear()
        self.session_token = accounts.start_session(user_id=user.id)
        self._remember(user)
        return rx.redirect(self._next_path())

    @rx.event
    def open_form(self) -> rx.event.EventSpec | None:
        """`on_load` of /login and /register: a signed-in visitor goes straight on."""
        self._clear()
        self.show_password = False
        if self._signed_in_user() is not None:
            return rx.redirect(self._next_path())
        return None

    @rx.event
    def toggle_password(self, shown: bool) -> None:
        self.show_password = bool(shown)

    @rx.event
    def register(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        if form.get("password", "") != form.get("password_confirmation", form.get("password", "")):
            self.field_errors = {"password_confirmation": "The passwords do not match."}
            return None
        try:
            user = accounts.register(
                name=form.get("name", ""),
                email=form.get("email", ""),
                password=form.get("password", ""),
                client_key=self.router.session.client_ip,
            )
        except DomainError as error:
            self._show(error)
            return None
        return self._start_session(user)

    @rx.event
    async def sign_in(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        # An email under attack signs in slowly rather than not at all; the wait holds only this event.
        await asyncio.sleep(accounts.sign_in_delay(email=form.get("email", "")))
        try:
            user = accounts.authenticate(
                email=form.get("email", ""), password=form.get("password", ""), client_key=self.router.session.client_ip
            )
        except DomainError as error:
            self._show(error)
            return None
        return self._start_session(user)


class AccountSettingsState(SessionState):
    field_errors: dict[str, str] = {}
    form_version: int = 0

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        self.field_errors = {}
        return SessionState.require_sign_in

    @rx.event
    def change_name(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            user = accounts.change_name(user_id=user.id, name=form.get("name", ""))
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.field_errors = {error.field: error.message}
            return None
        self.field_errors = {}
        self._remember(user)
        return rx.toast.success("Name saved.")

    @rx.event
    def change_password(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        if form.get("new_password", "") != form.get("new_password_confirmation", ""):
            self.field_errors = {"new_password_confirmation": "The passwords do not match."}
            return None
        try:
            user = self._require_user()
            accounts.change_password(
                user_id=user.id,
                current_password=form.get("current_password", ""),
                new_password=form.get("new_password", ""),
                current_token=self.session_token,
            )
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.field_errors = {error.field: error.message}
            return None
        except RateLimited as error:
            self.field_errors = {"current_password": error.message}
            return None
        self.field_errors = {}
        self.form_version += 1
        return rx.toast.success("Password changed. Other devices were signed out.")
