"""`/dashboard/payouts`: "Get paid" — the creator's own Stripe account in platform mode."""

from __future__ import annotations

import reflex as rx

from litesubs.components.app_shell import app_page
from litesubs.components.status import empty_state, when_loaded
from litesubs.state.payouts import PayoutsState

STATES = {
    "not_connected": ("Not connected", "gray"),
    "details_needed": ("Details needed", "amber"),
    "ready": ("Ready to accept payments", "green"),
    "payouts_paused": ("Payouts paused", "orange"),
}


def _badge() -> rx.Component:
    label = rx.match(PayoutsState.state, *[(key, text) for key, (text, _color) in STATES.items()], "")
    color = rx.match(PayoutsState.state, *[(key, color) for key, (_text, color) in STATES.items()], "gray")
    return rx.badge(label, color_scheme=color, variant="soft", radius="full", size="2", data_testid="payout-state")


def _still_needed(intro: str) -> rx.Component:
    return rx.vstack(
        rx.text(intro, size="2"),
        rx.el.ul(
            rx.foreach(PayoutsState.still_needed, lambda item: rx.el.li(item)),
            class_name="list-disc pl-6 text-sm space-y-1",
            data_testid="still-needed",
        ),
        spacing="2",
    )


def _onboarding_button(label: str) -> rx.Component:
    return rx.button(
        rx.cond(PayoutsState.busy, rx.spinner(size="2"), rx.icon("external-link", size=16)),
        label,
        size="3",
        on_click=PayoutsState.start_onboarding,
        disabled=PayoutsState.busy,
    )


def _dashboard_button(variant: str) -> rx.Component:
    return rx.button(
        rx.icon("layout-dashboard", size=16),
        "Open Stripe dashboard",
        size="3",
        variant=variant,
        on_click=PayoutsState.open_dashboard,
    )


def _explanation() -> rx.Component:
    return rx.match(
        PayoutsState.state,
        (
            "not_connected",
            rx.vstack(
                rx.text(
                    "Buyers pay you directly into a Stripe account of your own, and Stripe pays out to your bank. "
                    "Stripe asks who you are and where to send the money; it takes about five minutes.",
                    size="2",
                ),
                rx.text(
                    "Until then your packs can be created and shared, but not bought.", size="2", color_scheme="gray"
                ),
                rx.hstack(_onboarding_button("Connect with Stripe")),
                spacing="3",
            ),
        ),
        (
            "details_needed",
            rx.vstack(
                rx.cond(
                    PayoutsState.still_needed.length() > 0,
                    _still_needed("Stripe needs a few more details before buyers can pay you:"),
                    rx.text(
                        "Stripe is checking your details. This usually takes a few minutes; come back to this page "
                        "to see the result.",
                        size="2",
                    ),
                ),
                rx.text("Your packs can't be bought until then.", size="2", color_scheme="gray"),
                rx.hstack(
                    _onboarding_button("Continue with Stripe"),
                    rx.cond(PayoutsState.can_open_dashboard, _dashboard_button("soft")),
                    spacing="3",
                    wrap="wrap",
                ),
                spacing="3",
            ),
        ),
        (
            "ready",
            rx.vstack(
                rx.text(
                    "Buyers can pay for your packs, and Stripe pays the money out to your bank account on its "
                    "schedule. Refunds and disputes you handle in Stripe update your buyers' credits here.",
                    size="2",
                ),
                rx.hstack(_dashboard_button("solid")),
                spacing="3",
            ),
        ),
        (
            "payouts_paused",
            rx.vstack(
                _still_needed("Buyers can still pay you, but Stripe is holding your payouts until it gets:"),
                rx.hstack(
                    _onboarding_button("Update details with Stripe"),
                    _dashboard_button("soft"),
                    spacing="3",
                    wrap="wrap",
                ),
                spacing="3",
            ),
        ),
        rx.fragment(),
    )


def _setup_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.center(rx.icon("landmark", size=22), class_name="size-11 rounded-full bg-[var(--accent-a3)]"),
                rx.vstack(
                    rx.heading("Your Stripe account", size="4", as_="h2"),
                    rx.text("Where the money from your sales goes", size="2", color_scheme="gray"),
                    spacing="0",
                ),
                rx.spacer(),
                _badge(),
                align="center",
                width="100%",
                wrap="wrap",
                spacing="3",
            ),
            rx.divider(),
            _explanation(),
            rx.cond(PayoutsState.fee_note != "", rx.text(PayoutsState.fee_note, size="1", color_scheme="gray")),
            spacing="4",
            width="100%",
        ),
        size="3",
        max_width="720px",
    )


def _error() -> rx.Component:
    return rx.cond(
        PayoutsState.error != "",
        rx.callout(
            PayoutsState.error,
            icon="triangle-alert",
            color_scheme="red",
            role="alert",
            max_width="720px",
            margin_bottom="1rem",
        ),
    )


def payouts_page() -> rx.Component:
    return app_page(
        "Get paid",
        when_loaded(
            PayoutsState.loaded,
            rx.cond(
                PayoutsState.state == "unavailable",
                empty_state(
                    "landmark",
                    "Payments go to this instance's Stripe account",
                    "This Litesubs is not set up as a platform, so there is nothing to connect: sales are paid to "
                    "the Stripe account of whoever runs it.",
                ),
                rx.box(_error(), _setup_card()),
            ),
        ),
    )
