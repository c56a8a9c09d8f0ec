"""The frame of public pages: header with brand and actions, content, footer."""

import reflex as rx

from litesubs import routes


def brand() -> rx.Component:
    return rx.link(
        rx.hstack(
            rx.center(
                rx.icon("coins", size=18, color="white"),
                class_name="size-8 rounded-lg bg-gradient-to-br from-violet-500 to-indigo-600 shadow-sm",
            ),
            rx.text("Litesubs", weight="bold", size="4", high_contrast=True),
            align="center",
            spacing="2",
        ),
        href=routes.LANDING,
        underline="none",
        aria_label="Litesubs home",
    )


def header(*actions: rx.Component) -> rx.Component:
    return rx.box(
        rx.hstack(
            brand(),
            rx.spacer(),
            *actions,
            rx.color_mode.button(variant="ghost", aria_label="Toggle dark mode"),
            align="center",
            spacing="3",
            class_name="mx-auto max-w-6xl px-4 py-3",
        ),
        as_="header",
        class_name="sticky top-0 z-10 border-b border-[var(--gray-a4)] bg-[var(--color-background)]/80 backdrop-blur",
    )


def footer() -> rx.Component:
    return rx.box(
        rx.hstack(
            rx.text("© Litesubs — prepaid credit packs for creators", size="1", color_scheme="gray"),
            rx.spacer(),
            rx.link("API health", href="/api/health", size="1", color_scheme="gray"),
            class_name="mx-auto max-w-6xl px-4 py-6",
        ),
        as_="footer",
        class_name="border-t border-[var(--gray-a4)]",
    )


def public_page(*children: rx.Component, actions: list[rx.Component] | None = None) -> rx.Component:
    return rx.box(
        header(*(actions or [])),
        rx.box(*children, as_="main", class_name="flex-1"),
        footer(),
        class_name="flex min-h-screen flex-col",
    )
