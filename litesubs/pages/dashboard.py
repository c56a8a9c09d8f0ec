"""`/dashboard`: the creator's overview."""

from __future__ import annotations

import reflex as rx

from litesubs.components.app_shell import app_page
from litesubs.state.session import SessionState


def dashboard_page() -> rx.Component:
    return app_page(
        "Overview",
        rx.card(
            rx.vstack(
                rx.heading("Welcome, ", SessionState.user_name, size="5", as_="h2"),
                rx.text("Your packs, customers and revenue will show here.", color_scheme="gray"),
                spacing="2",
            ),
            size="3",
        ),
    )
