"""Form pieces: every field has a visible label tied to its input, and its error right beneath."""

from __future__ import annotations

import reflex as rx


def field_error(errors: rx.Var, name: str) -> rx.Component:
    return rx.cond(
        errors.contains(name),
        rx.text(errors[name], size="1", color_scheme="red", role="alert", id=f"{name}-error"),
    )


def text_field(
    label: str,
    name: str,
    *,
    errors: rx.Var,
    type: str = "text",
    autocomplete: str = "off",
    placeholder: str = "",
    default_value: str | rx.Var = "",
    hint: str = "",
    **input_props,
) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, class_name="text-sm font-medium"),
        rx.input(
            id=name,
            name=name,
            type=type,
            auto_complete=autocomplete,
            placeholder=placeholder,
            default_value=default_value,
            size="3",
            width="100%",
            aria_invalid=errors.contains(name),
            **input_props,
        ),
        rx.text(hint, size="1", color_scheme="gray") if hint else rx.fragment(),
        field_error(errors, name),
        spacing="1",
        width="100%",
    )


def form_alert(message: rx.Var) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle-alert", color_scheme="red", role="alert", width="100%"),
    )
