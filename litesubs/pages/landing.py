"""`/`: what Litesubs is, for whom, and how it works."""

from urllib.parse import quote

import reflex as rx

from litesubs import routes
from litesubs.components.shell import public_page
from litesubs.state.session import SessionState

# Someone who signs up here means to sell: after registering they land on the creator's overview.
SELLER_SIGN_UP = f"{routes.REGISTER}?next={quote(routes.DASHBOARD, safe='')}"

API_SAMPLE = """curl -X POST https://your-litesubs.example/api/v1/customers/ada@example.com/debit \\
  -H "Authorization: Bearer $LITESUBS_API_KEY" \\
  -H "Idempotency-Key: 6f1c0e2a-request-42" \\
  -H "Content-Type: application/json" \\
  -d '{"amount": 1, "reason": "1 image generated"}'

{"id": 981, "customer_id": 42, "kind": "debit", "delta": -1,
 "balance_after": 49, "reason": "1 image generated", "actor": "api_key", ...}"""

STEPS = [
    ("package", "Create a pack", "Name it, price it, choose how many credits it holds and when they expire."),
    ("share-2", "Share the link", "Every pack has its own link and QR code. Buyers pay with Stripe in a minute."),
    ("chart-line", "Get paid, track credits", "See every customer's balance, adjust by hand, spend through the API."),
]


def _step(number: int, icon: str, title: str, text: str) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.center(rx.icon(icon, size=20), class_name="size-10 rounded-full bg-[var(--accent-a3)]"),
                rx.badge(f"Step {number}", variant="soft", radius="full"),
                align="center",
                spacing="3",
            ),
            rx.heading(title, size="4", as_="h3"),
            rx.text(text, color_scheme="gray", size="2"),
            spacing="3",
        ),
        size="3",
        class_name="ls-rise transition-transform duration-300 hover:-translate-y-1",
    )


def _hero() -> rx.Component:
    return rx.vstack(
        rx.badge("Prepaid credits, paid with Stripe", variant="surface", radius="full", size="2"),
        rx.heading(
            "Sell credit packs. Let buyers spend them.",
            size=rx.breakpoints(initial="8", md="9"),
            as_="h1",
            align="center",
            class_name="max-w-3xl tracking-tight",
        ),
        rx.text(
            "Litesubs is for creators, coaches and API makers who sell in bundles: 50 coaching credits for $40, "
            "1,000 API calls for $9. No subscriptions, no billing cycles — a pack is bought once and spent over time.",
            size="4",
            color_scheme="gray",
            align="center",
            class_name="max-w-2xl",
        ),
        rx.hstack(
            rx.link(rx.button("Start selling", size="3"), href=SELLER_SIGN_UP),
            rx.link(rx.button("Open dashboard", size="3", variant="soft"), href=routes.DASHBOARD),
            spacing="3",
            wrap="wrap",
            justify="center",
        ),
        align="center",
        spacing="5",
        class_name="ls-rise mx-auto max-w-6xl px-4 pt-16 pb-12 md:pt-24",
    )


AUDIENCES = [
    ("graduation-cap", "Coaches and tutors", "Sell sessions in bundles and book them off as you go."),
    ("bot", "API and AI tools", "Prepaid usage: check and spend credits from your backend on every call."),
    ("users", "Communities and creators", "Tickets, downloads or reviews, sold as credits fans spend over time."),
]


def _audiences() -> rx.Component:
    return rx.box(
        rx.heading("Made for people who sell in bundles", size="6", as_="h2", class_name="mb-6"),
        rx.grid(
            *[
                rx.hstack(
                    rx.center(rx.icon(icon, size=18), class_name="size-9 shrink-0 rounded-lg bg-[var(--accent-a3)]"),
                    rx.vstack(rx.text(title, weight="bold"), rx.text(text, size="2", color_scheme="gray"), spacing="1"),
                    align="start",
                    spacing="3",
                )
                for icon, title, text in AUDIENCES
            ],
            columns=rx.breakpoints(initial="1", md="3"),
            spacing="5",
        ),
        class_name="mx-auto max-w-6xl px-4 py-12",
    )


def _steps() -> rx.Component:
    return rx.box(
        rx.heading("How it works", size="6", as_="h2", class_name="mb-6"),
        rx.grid(
            *[_step(i + 1, *step) for i, step in enumerate(STEPS)],
            columns=rx.breakpoints(initial="1", md="3"),
            spacing="4",
        ),
        class_name="mx-auto max-w-6xl px-4 py-12",
    )


def _api() -> rx.Component:
    return rx.grid(
        rx.vstack(
            rx.heading("Your software spends credits in one call", size="6", as_="h2"),
            rx.text(
                "Create an API key in the dashboard, then check and spend balances from your backend. Debits are "
                "idempotent and never take a balance below zero, even under heavy concurrency.",
                color_scheme="gray",
            ),
            spacing="3",
        ),
        rx.code_block(API_SAMPLE, language="bash", wrap_long_lines=True, class_name="rounded-xl text-sm"),
        columns=rx.breakpoints(initial="1", md="2"),
        spacing="6",
        align="center",
        class_name="mx-auto max-w-6xl px-4 py-12",
    )


def _payments_note() -> rx.Component:
    return rx.box(
        rx.callout(
            "Running without a Stripe key, Litesubs is in test mode: checkout is simulated in the app and no real "
            "payment is taken. Set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET to take real payments.",
            icon="info",
            variant="surface",
        ),
        class_name="mx-auto max-w-6xl px-4 pb-16",
    )


def landing() -> rx.Component:
    return public_page(
        _hero(),
        _audiences(),
        _steps(),
        _api(),
        _payments_note(),
        actions=[
            rx.cond(
                SessionState.user_name != "",
                rx.link(rx.button("Open dashboard"), href=routes.DASHBOARD),
                rx.hstack(
                    rx.link("Sign in", href=routes.LOGIN, weight="medium"),
                    rx.link(rx.button("Get started"), href=SELLER_SIGN_UP),
                    align="center",
                    spacing="3",
                ),
            )
        ],
    )
