"""`/register` and `/login` (both honouring `?next=`, local paths only), `/forgot-password`, `/reset-password`
and `/verify-email`."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.forms import form_alert, text_field
from litesubs.components.shell import brand
from litesubs.state.auth import AuthFormState, ForgotPasswordState, ResetPasswordState, VerifyEmailState


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


def _password_fields(
    *,
    autocomplete: str,
    confirm: bool,
    state: type[AuthFormState] = AuthFormState,
    label: str = "Password",
    name: str = "password",
) -> list[rx.Component]:
    kind = rx.cond(state.show_password, "text", "password")
    fields = [text_field(label, name, errors=state.field_errors, type=kind, autocomplete=autocomplete)]
    if confirm:
        fields.append(
            text_field(
                f"Confirm {label.lower()}",
                f"{name}_confirmation",
                errors=state.field_errors,
                type=kind,
                autocomplete=autocomplete,
            )
        )
    fields.append(
        rx.checkbox(
            "Show password",
            checked=state.show_password,
            on_change=state.toggle_password,
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
                rx.link("Forgot password?", href=routes.FORGOT_PASSWORD, size="2"),
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


def forgot_password_page() -> rx.Component:
    sent = rx.vstack(
        rx.callout(
            rx.text(
                "If an account uses ",
                rx.text.strong(ForgotPasswordState.sent_to),
                ", we sent it a link to choose a new password. It works for one hour. "
                "Check your spam folder if nothing arrives within a few minutes.",
            ),
            icon="mail-check",
            color_scheme="green",
            width="100%",
            role="status",
        ),
        rx.link(rx.button("Back to sign in", variant="soft", size="3", width="100%"), href=routes.LOGIN, width="100%"),
        spacing="4",
        width="100%",
    )
    ask = rx.form(
        rx.vstack(
            text_field("Email", "email", errors=ForgotPasswordState.field_errors, type="email", autocomplete="email"),
            rx.button("Send me a link", type="submit", size="3", width="100%"),
            spacing="3",
            width="100%",
        ),
        on_submit=ForgotPasswordState.request_link,
        reset_on_submit=False,
        width="100%",
    )
    return _card(
        "Forgot your password?",
        "Enter the email of your account and we'll mail you a link to choose a new password.",
        form_alert(ForgotPasswordState.form_error),
        rx.cond(ForgotPasswordState.sent_to != "", sent, ask),
        rx.text("Remembered it? ", rx.link("Sign in", href=routes.LOGIN), size="2", align="center", width="100%"),
    )


def _link_problem(message: rx.Var, again_label: str | rx.Var, again_href: str | rx.Var) -> rx.Component:
    return rx.vstack(
        rx.callout(message, icon="triangle-alert", color_scheme="amber", role="alert", width="100%"),
        rx.link(rx.button(again_label, size="3", width="100%"), href=again_href, width="100%"),
        spacing="4",
        width="100%",
    )


def reset_password_page() -> rx.Component:
    form = rx.form(
        rx.vstack(
            *_password_fields(
                autocomplete="new-password",
                confirm=True,
                state=ResetPasswordState,
                label="New password",
                name="new_password",
            ),
            rx.text(
                "At least 8 characters. You will be signed out on every other device.", size="1", color_scheme="gray"
            ),
            rx.button("Set new password", type="submit", size="3", width="100%"),
            spacing="3",
            width="100%",
        ),
        on_submit=ResetPasswordState.set_password,
        reset_on_submit=False,
        width="100%",
    )
    return _card(
        "Choose a new password",
        "Then you're signed in with it.",
        form_alert(ResetPasswordState.form_error),
        rx.cond(
            ResetPasswordState.checked,
            rx.cond(
                ResetPasswordState.link_problem != "",
                _link_problem(ResetPasswordState.link_problem, "Ask for a new link", routes.FORGOT_PASSWORD),
                form,
            ),
            rx.center(rx.spinner(size="3"), padding="2rem", width="100%"),
        ),
    )


def verify_email_page() -> rx.Component:
    signed_in = VerifyEmailState.user_name != ""
    done = rx.vstack(
        rx.callout(
            rx.text(
                rx.cond(VerifyEmailState.changed, "Your account's email is now ", "Thank you: "),
                rx.text.strong(VerifyEmailState.verified_email),
                rx.cond(VerifyEmailState.changed, ", confirmed.", " is confirmed."),
            ),
            icon="circle-check",
            color_scheme="green",
            role="status",
            width="100%",
        ),
        rx.cond(
            signed_in,
            rx.link(
                rx.button("Continue", size="3", width="100%"),
                href=rx.cond(VerifyEmailState.is_creator, routes.DASHBOARD, routes.WALLET),
                width="100%",
            ),
            rx.link(rx.button("Sign in", size="3", width="100%"), href=routes.LOGIN, width="100%"),
        ),
        spacing="4",
        width="100%",
    )
    return _card(
        "Confirm your email",
        "A link we mailed you proves the address is yours.",
        rx.cond(
            VerifyEmailState.checked,
            rx.cond(
                VerifyEmailState.problem != "",
                _link_problem(
                    VerifyEmailState.problem,
                    rx.cond(signed_in, "Go to my account", "Sign in"),
                    rx.cond(signed_in, routes.SETTINGS, routes.LOGIN),
                ),
                done,
            ),
            rx.center(rx.spinner(size="3"), padding="2rem", width="100%"),
        ),
    )
