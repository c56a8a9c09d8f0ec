"""`/wallet`: the buyer's balances per creator."""

from __future__ import annotations

import reflex as rx

from litesubs.components.app_shell import app_page


def wallet_page() -> rx.Component:
    return app_page(
        "Wallet",
        rx.card(
            rx.vstack(
                rx.heading("No credits yet", size="4", as_="h2"),
                rx.text("Credits you buy from a creator's pack link show here.", color_scheme="gray"),
                spacing="2",
            ),
            size="3",
        ),
    )
