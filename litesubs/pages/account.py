"""`/account`: name, email (verified before it replaces the old one), password, and the mail a creator sends."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
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


def _email_form() -> rx.Component:
    errors = AccountSettingsState.field_errors
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Email", size="4", as_="h2"),
                rx.hstack(
                    rx.text(SessionState.user_email, size="2", weight="medium"),
                    rx.cond(
                        SessionState.email_verified,
                        rx.badge("Confirmed", color_scheme="green", variant="soft", radius="full"),
                        rx.badge("Not confirmed yet", color_scheme="amber", variant="soft", radius="full"),
                    ),
                    align="center",
                    spacing="2",
                    wrap="wrap",
                ),
                rx.cond(
                    AccountSettingsState.pending_email != "",
                    rx.callout(
                        rx.text(
                            "Waiting for you to open the link we sent to ",
                            rx.text.strong(AccountSettingsState.pending_email),
                            ". Your email changes once you do.",
                        ),
                        icon="mail",
                        color_scheme="blue",
                        size="1",
                        data_testid="pending-email",
                    ),
                ),
                text_field("New email", "new_email", errors=errors, type="email", autocomplete="email"),
                text_field(
                    "Your password",
                    "email_password",
                    errors=errors,
                    type="password",
                    autocomplete="current-password",
                    hint="We mail a link to the new address; your email changes when you open it.",
                ),
                rx.button("Change email", type="submit"),
                spacing="3",
                align="start",
                width="100%",
            ),
            on_submit=AccountSettingsState.change_email,
            reset_on_submit=True,
            key=AccountSettingsState.form_version,
        ),
        size="3",
    )


def _mail_switch(
    label: str, hint: rx.Component | str, checked: rx.Var, on_change: rx.EventHandler, id: str
) -> rx.Component:
    return rx.hstack(
        rx.switch(id=id, checked=checked, on_change=on_change),
        rx.vstack(
            rx.el.label(label, html_for=id, class_name="text-sm font-medium"),
            rx.text(hint, size="1", color_scheme="gray"),
            spacing="0",
        ),
        align="start",
        spacing="3",
    )


def _mail_form() -> rx.Component:
    threshold = AccountSettingsState.low_balance_threshold
    return rx.card(
        rx.vstack(
            rx.heading("Mail to you and your buyers", size="4", as_="h2"),
            _mail_switch(
                "Email me about each sale",
                "A short mail with the pack, the amount and the buyer.",
                AccountSettingsState.sale_mail,
                AccountSettingsState.set_sale_mail,
                "sale-mail",
            ),
            _mail_switch(
                "Email my buyers when their credits run low",
                rx.cond(
                    threshold != "",
                    rx.fragment(
                        "Sent once when a balance falls below ",
                        threshold,
                        " credits, with a Buy again link to the pack they bought last.",
                    ),
                    rx.fragment(
                        "Set a low-balance threshold on the ",
                        rx.link("Webhooks", href=routes.WEBHOOKS),
                        " page first: the mail goes out when a balance falls below it.",
                    ),
                ),
                AccountSettingsState.low_balance_mail,
                AccountSettingsState.set_low_balance_mail,
                "low-balance-mail",
            ),
            spacing="4",
        ),
        size="3",
    )


def account_page() -> rx.Component:
    # The forms appear once the signed-in user is known, so the name field starts with their name.
    return app_page(
        "Account",
        when_loaded(
            SessionState.user_name != "",
            rx.grid(
                _name_form(),
                _email_form(),
                _password_form(),
                rx.cond(SessionState.is_creator, _mail_form()),
                columns=rx.breakpoints(initial="1", md="2"),
                spacing="4",
                align="start",
            ),
        ),
    )
