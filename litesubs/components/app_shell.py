"""The frame of every signed-in page: navigation (sidebar on wide screens, menu on phones) and header."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.shell import brand
from litesubs.settings import get_settings
from litesubs.state.session import SessionState

NAV = [
    ("layout-dashboard", "Overview", routes.DASHBOARD),
    ("package", "Packs", routes.PACKS),
    ("users", "Customers", routes.CUSTOMERS),
    ("key-round", "API keys", routes.API_KEYS),
    ("webhook", "Webhooks", routes.WEBHOOKS),
    *([("banknote", "Get paid", routes.PAYOUTS)] if get_settings().platform_mode else []),
    ("wallet", "Wallet", routes.WALLET),
    ("settings", "Account", routes.SETTINGS),
]
# A user who never created a pack gets the buyer's app: their wallet and account, and a way to start selling.
BUYER_NAV = [
    ("wallet", "Wallet", routes.WALLET),
    ("settings", "Account", routes.SETTINGS),
]
START_SELLING = ("store", "Start selling", f"{routes.PACKS}?new=1")


def _nav_link(icon: str, label: str, href: str) -> rx.Component:
    active = SessionState.router.url.path == href.split("?")[0]
    return rx.link(
        rx.hstack(rx.icon(icon, size=18), rx.text(label, size="2", weight="medium"), align="center", spacing="3"),
        href=href,
        underline="none",
        color_scheme=rx.cond(active, "violet", "gray"),
        high_contrast=active,
        aria_current=rx.cond(active, "page", ""),
        class_name=rx.cond(
            active,
            "block rounded-lg px-3 py-2 bg-[var(--accent-a3)]",
            "block rounded-lg px-3 py-2 hover:bg-[var(--gray-a3)] transition-colors",
        ),
    )


def _user_box() -> rx.Component:
    return rx.vstack(
        rx.text(SessionState.user_name, size="2", weight="medium", trim="both"),
        rx.text(SessionState.user_email, size="1", color_scheme="gray", class_name="truncate max-w-[200px]"),
        rx.button(
            rx.icon("log-out", size=16), "Sign out", variant="soft", color_scheme="gray", on_click=SessionState.sign_out
        ),
        spacing="2",
    )


def _sidebar() -> rx.Component:
    return rx.box(
        rx.vstack(
            brand(),
            rx.el.nav(
                rx.cond(
                    SessionState.is_creator,
                    rx.vstack(*[_nav_link(*item) for item in NAV], spacing="1", width="100%"),
                    rx.vstack(
                        *[_nav_link(*item) for item in BUYER_NAV],
                        rx.separator(size="4", margin_y="0.5rem"),
                        _nav_link(*START_SELLING),
                        spacing="1",
                        width="100%",
                    ),
                ),
                aria_label="Main",
                class_name="w-full",
            ),
            rx.spacer(),
            _user_box(),
            spacing="6",
            height="100%",
            padding="1.25rem",
        ),
        class_name="hidden md:block sticky top-0 h-screen w-60 shrink-0 border-r border-[var(--gray-a4)]",
    )


def _menu_link(label: str, href: str) -> rx.Component:
    return rx.menu.item(rx.link(label, href=href, underline="none"))


def _verification_banner() -> rx.Component:
    """A quiet reminder until the user opens the link we mailed them; "Send again" mails a new one."""
    return rx.cond(
        (SessionState.user_name != "") & ~SessionState.email_verified,
        rx.callout(
            rx.hstack(
                rx.text(
                    "Please confirm your email address: open the link we sent to ",
                    rx.text.strong(SessionState.user_email),
                    ".",
                ),
                rx.button(
                    "Send again",
                    variant="ghost",
                    size="1",
                    on_click=SessionState.send_verification_again,
                ),
                align="center",
                spacing="3",
                wrap="wrap",
            ),
            icon="mail",
            color_scheme="gray",
            variant="surface",
            size="1",
            margin_bottom="1.5rem",
            data_testid="verification-banner",
        ),
    )


def _phone_bar() -> rx.Component:
    return rx.hstack(
        brand(),
        rx.spacer(),
        rx.color_mode.button(variant="ghost", aria_label="Toggle dark mode"),
        rx.menu.root(
            rx.menu.trigger(rx.icon_button(rx.icon("menu"), variant="soft", aria_label="Open menu")),
            rx.menu.content(
                rx.cond(
                    SessionState.is_creator,
                    rx.fragment(*[_menu_link(label, href) for _icon, label, href in NAV]),
                    rx.fragment(*[_menu_link(label, href) for _icon, label, href in [*BUYER_NAV, START_SELLING]]),
                ),
                rx.menu.separator(),
                rx.menu.item("Sign out", on_click=SessionState.sign_out, color="red"),
            ),
        ),
        align="center",
        padding="0.75rem 1rem",
        class_name="md:hidden sticky top-0 z-10 border-b border-[var(--gray-a4)] bg-[var(--color-background)]",
    )


def app_page(title: str, *children: rx.Component, actions: list[rx.Component] | None = None) -> rx.Component:
    """A signed-in page: shell, a title row with optional actions, then the content."""
    return rx.flex(
        _sidebar(),
        rx.box(
            _phone_bar(),
            rx.box(
                rx.hstack(
                    rx.heading(title, size="7", as_="h1"),
                    rx.spacer(),
                    *(actions or []),
                    rx.box(
                        rx.color_mode.button(variant="ghost", aria_label="Toggle dark mode"),
                        class_name="hidden md:block",
                    ),
                    align="center",
                    wrap="wrap",
                    spacing="3",
                    margin_bottom="1.5rem",
                ),
                _verification_banner(),
                *children,
                as_="main",
                class_name="ls-rise mx-auto w-full max-w-6xl px-4 py-6 md:px-8 md:py-8",
            ),
            class_name="min-w-0 flex-1",
        ),
        class_name="min-h-screen",
    )
