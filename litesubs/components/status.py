"""Small shared pieces: status badges and empty states."""

from __future__ import annotations

import reflex as rx

STATUS_COLORS = {
    "active": "green",
    "paid": "green",
    "delivered": "green",
    "disabled": "gray",
    "pending": "amber",
    "expired": "orange",
    "suspended": "red",
    "failed": "red",
    "refunded": "blue",
    "mismatch": "red",
}
STATUS_LABELS = {"active": "On sale", "disabled": "Disabled", "expired": "Expired"}


def status_badge(status: rx.Var, labels: dict[str, str] | None = None) -> rx.Component:
    label = rx.match(status, *[(key, text) for key, text in (labels or STATUS_LABELS).items()], status)
    color = rx.match(status, *[(key, color) for key, color in STATUS_COLORS.items()], "gray")
    return rx.badge(label, color_scheme=color, variant="soft", radius="full")


def empty_state(icon: str, title: str, text: str, *actions: rx.Component) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.center(rx.icon(icon, size=28), class_name="size-14 rounded-full bg-[var(--accent-a3)]"),
            rx.heading(title, size="5", as_="h2"),
            rx.text(text, color_scheme="gray", align="center", class_name="max-w-md"),
            *actions,
            align="center",
            spacing="3",
            padding="2.5rem 1rem",
        ),
        size="3",
    )


def when_loaded(loaded: rx.Var, content: rx.Component) -> rx.Component:
    """`content` once the page's data has arrived; a spinner until then."""
    return rx.cond(loaded, content, rx.center(rx.spinner(size="3"), padding="4rem"))
