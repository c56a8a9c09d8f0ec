"""`/account`: change name and password."""

from __future__ import annotations

import reflex as rx

from litesubs.components.app_shell import app_page
from litesubs.components.forms import text_field
from litesubs.components.status import when_loaded
from litesubs.state.auth import AccountSettingsState
from litesubs.state.session import SessionState


def _name_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Profile", size="4", as_="h2"),
                text_field(
                    "Name",
                    "name",
                    errors=AccountSettingsState.field_errors,
                    autocomplete="name",
                    default_value=SessionState.user_name,
                ),
                rx.text("Email: ", rx.text.strong(SessionState.user_email), size="2", color_scheme="gray"),
                rx.button("Save name", type="submit"),
                spacing="3",
                align="start",
            ),
            on_submit=AccountSettingsState.change_name,
            reset_on_submit=False,
        ),
        size="3",
    )


def _password_form() -> rx.Component:
    errors = AccountSettingsState.field_errors
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Password", size="4", as_="h2"),
                text_field(
                    "Current password",
                    "current_password",
                    errors=errors,
                    type="password",
                    autocomplete="current-password",
                ),
                text_field("New password", "new_password", errors=errors, type="password", autocomplete="new-password"),
                text_field(
                    "Confirm new password",
                    "new_password_confirmation",
                    errors=errors,
                    type="password",
                    autocomplete="new-password",
                ),
                rx.button("Change password", type="submit"),
                spacing="3",
                align="start",
            ),
            on_submit=AccountSettingsState.change_password,
            reset_on_submit=True,
            key=AccountSettingsState.form_version,
        ),
        size="3",
    )


def account_page() -> rx.Component:
    # The forms appear once the signed-in user is known, so the name field starts with their name.
    return app_page(
        "Account",
        when_loaded(
            SessionState.user_name != "",
            rx.grid(_name_form(), _password_form(), columns=rx.breakpoints(initial="1", md="2"), spacing="4"),
        ),
    )
