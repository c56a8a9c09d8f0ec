"""`/register` and `/login`, both honouring `?next=` (local paths only)."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.forms import form_alert, text_field
from litesubs.components.shell import brand
from litesubs.state.auth import AuthFormState


def _with_next(path: str) -> rx.Var:
    """A link to `path` that carries the current `?next=` along (the server re-checks it on use)."""
    next_path = AuthFormState.router.url.query_parameters.get("next", "")
    return rx.cond(next_path != "", path + "?next=" + next_path.to(str), path)


def _card(title: str, subtitle: str, *children: rx.Component) -> rx.Component:
    return rx.center(
        rx.vstack(
            brand(),
            rx.card(
                rx.vstack(
                    rx.heading(title, size="6", as_="h1"),
                    rx.text(subtitle, color_scheme="gray", size="2"),
                    *children,
                    spacing="4",
                    width="100%",
                ),
                size="4",
                width="100%",
            ),
            align="center",
            spacing="5",
            width="100%",
            max_width="420px",
            class_name="ls-rise",
        ),
        min_height="100vh",
        padding="1rem",
        class_name="bg-[var(--gray-2)]",
    )


def _password_fields(*, autocomplete: str, confirm: bool) -> list[rx.Component]:
    kind = rx.cond(AuthFormState.show_password, "text", "password")
    fields = [
        text_field("Password", "password", errors=AuthFormState.field_errors, type=kind, autocomplete=autocomplete)
    ]
    if confirm:
        fields.append(
            text_field(
                "Confirm password",
                "password_confirmation",
                errors=AuthFormState.field_errors,
                type=kind,
                autocomplete=autocomplete,
            )
        )
    fields.append(
        rx.checkbox(
            "Show password",
            checked=AuthFormState.show_password,
            on_change=AuthFormState.toggle_password,
            size="2",
        )
    )
    return fields


def register_page() -> rx.Component:
    return _card(
        "Create your account",
        "One account to sell packs and to buy them.",
        form_alert(AuthFormState.form_error),
        rx.form(
            rx.vstack(
                text_field("Name", "name", errors=AuthFormState.field_errors, autocomplete="name"),
                text_field("Email", "email", errors=AuthFormState.field_errors, type="email", autocomplete="email"),
                *_password_fields(autocomplete="new-password", confirm=True),
                rx.text("At least 8 characters.", size="1", color_scheme="gray"),
                rx.button("Create account", type="submit", size="3", width="100%"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthFormState.register,
            reset_on_submit=False,
            width="100%",
        ),
        rx.text(
            "Already have an account? ",
            rx.link("Sign in", href=_with_next(routes.LOGIN)),
            size="2",
            align="center",
            width="100%",
        ),
    )


def login_page() -> rx.Component:
    return _card(
        "Sign in",
        "Welcome back to Litesubs.",
        form_alert(AuthFormState.form_error),
        rx.form(
            rx.vstack(
                text_field("Email", "email", errors=AuthFormState.field_errors, type="email", autocomplete="email"),
                *_password_fields(autocomplete="current-password", confirm=False),
                rx.button("Sign in", type="submit", size="3", width="100%"),
                spacing="3",
                width="100%",
            ),
            on_submit=AuthFormState.sign_in,
            reset_on_submit=False,
            width="100%",
        ),
        rx.text(
            "New here? ",
            rx.link("Create an account", href=_with_next(routes.REGISTER)),
            size="2",
            align="center",
            width="100%",
        ),
    )
