"""Register, sign in and account settings: thin doors into `services.accounts`."""

from __future__ import annotations

import asyncio

import reflex as rx

from litesubs.models import User
from litesubs.services import accounts, email_verification, mail_preferences, password_reset
from litesubs.services.account_tokens import LinkRefused
from litesubs.services.errors import DomainError, InvalidRequest, RateLimited, Unauthorized
from litesubs.state.session import SessionState


class AuthFormState(SessionState):
    field_errors: dict[str, str] = {}
    form_error: str = ""
    show_password: bool = False

    def _next_path(self) -> str:
        return accounts.safe_next_path(self.router.url.query_parameters.get("next"), default=self._home())

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
        user = self._signed_in_user()
        if user is not None:
            self._remember(user)
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


class ForgotPasswordState(SessionState):
    """`/forgot-password`: one answer whether or not the address has an account."""

    sent_to: str = ""
    field_errors: dict[str, str] = {}
    form_error: str = ""

    @rx.event
    def open_form(self) -> None:
        self.sent_to, self.field_errors, self.form_error = "", {}, ""

    @rx.event
    def request_link(self, form: dict[str, str]) -> None:
        email = str(form.get("email", "")).strip()
        try:
            checked = accounts.checked_email(email)
            password_reset.request_reset(email=checked, client_key=self.router.session.client_ip)
        except InvalidRequest as error:
            self.field_errors, self.form_error = {"email": error.message}, ""
            return
        except DomainError as error:
            self.field_errors, self.form_error = {}, error.message
            return
        self.field_errors, self.form_error, self.sent_to = {}, "", checked


class ResetPasswordState(AuthFormState):
    """`/reset-password?token=...`: a new password from a mailed link, then signed in afresh."""

    link_problem: str = ""
    checked: bool = False

    def _token(self) -> str:
        return str(self.router.url.query_parameters.get("token", ""))

    @rx.event
    def check_link(self) -> None:
        self._clear()
        self.show_password, self.checked = False, False
        try:
            password_reset.check_link(token=self._token())
            self.link_problem = ""
        except LinkRefused as error:
            self.link_problem = error.message
        self.checked = True

    @rx.event
    def set_password(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        if form.get("new_password", "") != form.get("new_password_confirmation", ""):
            self.field_errors = {"new_password_confirmation": "The passwords do not match."}
            return None
        try:
            user = password_reset.reset_password(token=self._token(), new_password=form.get("new_password", ""))
        except LinkRefused as error:
            self.link_problem = error.message
            return None
        except DomainError as error:
            self._show(error)
            return None
        return [rx.toast.success("Your new password is set. You are signed in."), self._start_session(user)]


class VerifyEmailState(SessionState):
    """`/verify-email?token=...`: confirms an address; works signed in or not."""

    checked: bool = False
    problem: str = ""
    verified_email: str = ""
    changed: bool = False

    @rx.event
    def verify(self) -> None:
        self.checked, self.problem = False, ""
        try:
            verified = email_verification.verify(token=str(self.router.url.query_parameters.get("token", "")))
        except LinkRefused as error:
            self.problem = error.message
        else:
            self.verified_email, self.changed = verified.user.email, verified.changed_email
        self._remember(self._signed_in_user())
        self.checked = True


class AccountSettingsState(SessionState):
    field_errors: dict[str, str] = {}
    form_version: int = 0
    pending_email: str = ""
    sale_mail: bool = True
    low_balance_mail: bool = False
    low_balance_threshold: str = ""  # "" when no threshold is set: the low-balance mail cannot go out

    def _show_preferences(self, chosen: mail_preferences.MailPreferences) -> None:
        self.sale_mail, self.low_balance_mail = chosen.sale_mail, chosen.low_balance_mail
        threshold = chosen.low_balance_threshold
        self.low_balance_threshold = "" if threshold is None else f"{threshold:,}"

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        self.field_errors = {}
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.pending_email = email_verification.pending_change(user_id=user.id) or ""
        self._show_preferences(mail_preferences.preferences(user_id=user.id))
        return None

    @rx.event
    def change_email(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            self.pending_email = email_verification.request_change(
                user_id=user.id,
                password=form.get("email_password", ""),
                new_email=form.get("new_email", ""),
                client_key=self.router.session.client_ip,
            )
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            field = "email_password" if error.field == "password" else error.field
            self.field_errors = {field: error.message}
            return None
        except DomainError as error:
            self.field_errors = {"new_email": error.message}
            return None
        self.field_errors = {}
        self.form_version += 1
        return rx.toast.success(f"We sent a confirmation link to {self.pending_email}.")

    def _save_preferences(self, sale_mail: bool, low_balance_mail: bool) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            chosen = mail_preferences.set_preferences(
                user_id=user.id, sale_mail=bool(sale_mail), low_balance_mail=bool(low_balance_mail)
            )
        except Unauthorized:
            return self._login_redirect()
        self._show_preferences(chosen)
        return rx.toast.success("Mail settings saved.")

    @rx.event
    def set_sale_mail(self, on: bool) -> rx.event.EventSpec | None:
        return self._save_preferences(bool(on), self.low_balance_mail)

    @rx.event
    def set_low_balance_mail(self, on: bool) -> rx.event.EventSpec | None:
        return self._save_preferences(self.sale_mail, bool(on))

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
