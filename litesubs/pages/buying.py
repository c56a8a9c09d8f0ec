"""The buyer's pages: `/buy/[public_id]`, `/checkout/[session_id]` (test mode), `/checkout/success`, `/wallet`."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.app_shell import app_page
from litesubs.components.shell import public_page
from litesubs.components.status import empty_state, status_badge, when_loaded
from litesubs.components.time import local_time
from litesubs.state.buying import BuyState, CheckoutSuccessState, TestCheckoutState, WalletState
from litesubs.state.session import SessionState

PACK_STATES = {"active": "On sale", "disabled": "Not on sale", "expired": "Expired"}


def _viewer_actions() -> list[rx.Component]:
    return [
        rx.cond(
            SessionState.user_name != "",
            rx.link(rx.button("My wallet", variant="soft"), href=routes.WALLET),
            rx.link("Sign in", href=routes.LOGIN, weight="medium"),
        )
    ]


def _centered(*children: rx.Component) -> rx.Component:
    return rx.center(
        rx.box(*children, width="100%", max_width="480px", class_name="ls-rise"), padding="3rem 1rem", width="100%"
    )


def _buy_actions() -> rx.Component:
    pack = BuyState.pack
    signed_out = rx.vstack(
        rx.link(
            rx.button("Create an account to buy", size="3", width="100%"), href=pack["register_href"], width="100%"
        ),
        rx.text(
            "Already have an account? ", rx.link("Sign in to buy", href=pack["login_href"]), size="2", align="center"
        ),
        spacing="3",
        width="100%",
        align="center",
    )
    signed_in = rx.vstack(
        rx.cond(
            BuyState.prompt,
            rx.callout(
                "You're signed in. Complete your purchase below.",
                icon="circle-check",
                color_scheme="green",
                size="1",
                width="100%",
            ),
        ),
        rx.button(
            rx.cond(BuyState.busy, rx.spinner(size="2"), rx.icon("credit-card", size=18)),
            "Buy for " + pack["price"].to(str),
            size="3",
            width="100%",
            on_click=BuyState.buy,
            disabled=BuyState.busy,
        ),
        rx.cond(
            BuyState.test_mode,
            rx.text("Test mode: no real payment is taken.", size="1", color_scheme="gray", align="center"),
            rx.text("You'll pay securely with Stripe.", size="1", color_scheme="gray", align="center"),
        ),
        spacing="3",
        width="100%",
    )
    return rx.cond(
        BuyState.own_pack,
        rx.callout("This is your own pack. Share its link with your buyers.", icon="info", width="100%"),
        rx.cond(
            BuyState.blocker != "",
            rx.callout(BuyState.blocker, icon="ban", color_scheme="amber", width="100%", role="alert"),
            rx.cond(SessionState.user_name != "", signed_in, signed_out),
        ),
    )


def _pack_card() -> rx.Component:
    pack = BuyState.pack
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("From ", rx.text.strong(pack["creator_name"]), size="2", color_scheme="gray"),
                rx.spacer(),
                status_badge(pack["status"], PACK_STATES),
                width="100%",
            ),
            rx.heading(pack["name"], size="7", as_="h1"),
            rx.cond(pack["description"] != "", rx.text(pack["description"], color_scheme="gray")),
            rx.hstack(
                rx.text(pack["price"], size="8", weight="bold", class_name="tabular-nums"),
                rx.text("for " + pack["credits"].to(str) + " credits", size="4", color_scheme="gray"),
                align="baseline",
                spacing="2",
                wrap="wrap",
            ),
            rx.cond(pack["expiry"] != "", rx.text(pack["expiry"], size="2", color_scheme="gray")),
            rx.text(
                "One payment, no subscription. Credits land in your wallet right away.", size="2", color_scheme="gray"
            ),
            rx.divider(),
            _buy_actions(),
            spacing="4",
            width="100%",
        ),
        size="4",
        width="100%",
    )


def buy_page() -> rx.Component:
    return public_page(
        _centered(
            when_loaded(
                BuyState.loaded,
                rx.cond(
                    BuyState.found,
                    _pack_card(),
                    empty_state(
                        "link-2-off", "Pack not found", "This pack does not exist. Check the link you were given."
                    ),
                ),
            )
        ),
        actions=_viewer_actions(),
    )


def _checkout_not_found() -> rx.Component:
    return empty_state(
        "circle-x",
        "Checkout not found",
        "This checkout does not exist or is not yours.",
        rx.link(rx.button("Open my wallet"), href=routes.WALLET),
    )


def test_checkout_page() -> rx.Component:
    summary = TestCheckoutState.checkout
    return public_page(
        _centered(
            when_loaded(
                TestCheckoutState.loaded,
                rx.cond(
                    TestCheckoutState.found,
                    rx.card(
                        rx.vstack(
                            rx.callout(
                                "Test mode — no real payment", icon="flask-conical", color_scheme="amber", width="100%"
                            ),
                            rx.heading("Checkout", size="6", as_="h1"),
                            rx.data_list.root(
                                rx.data_list.item(rx.data_list.label("Pack"), rx.data_list.value(summary["pack_name"])),
                                rx.data_list.item(
                                    rx.data_list.label("From"), rx.data_list.value(summary["creator_name"])
                                ),
                                rx.data_list.item(
                                    rx.data_list.label("Credits"), rx.data_list.value(summary["credits"])
                                ),
                                rx.data_list.item(
                                    rx.data_list.label("Total"),
                                    rx.data_list.value(rx.text(summary["price"], weight="bold")),
                                ),
                            ),
                            rx.cond(
                                summary["status"] == "pending",
                                rx.hstack(
                                    rx.button(
                                        "Cancel",
                                        variant="soft",
                                        color_scheme="gray",
                                        size="3",
                                        on_click=TestCheckoutState.cancel,
                                    ),
                                    rx.button(
                                        "Pay " + summary["price"].to(str),
                                        size="3",
                                        on_click=TestCheckoutState.pay,
                                        disabled=TestCheckoutState.paying,
                                        flex="1",
                                    ),
                                    width="100%",
                                    spacing="3",
                                ),
                                rx.vstack(
                                    rx.text("This checkout is ", rx.text.strong(summary["status"]), "."),
                                    rx.link(rx.button("Open my wallet"), href=routes.WALLET),
                                ),
                            ),
                            rx.text(
                                "Set STRIPE_SECRET_KEY to take real payments with Stripe.",
                                size="1",
                                color_scheme="gray",
                            ),
                            spacing="4",
                            width="100%",
                        ),
                        size="4",
                        width="100%",
                    ),
                    _checkout_not_found(),
                ),
            )
        ),
        actions=_viewer_actions(),
    )


def checkout_success_page() -> rx.Component:
    summary = CheckoutSuccessState.checkout
    paid = rx.vstack(
        rx.center(rx.icon("circle-check", size=40, color="var(--green-9)")),
        rx.heading("Payment received", size="6", as_="h1", align="center"),
        rx.text(
            summary["credits"].to(str) + " credits from " + summary["creator_name"].to(str) + " are yours.",
            align="center",
            color_scheme="gray",
        ),
        rx.vstack(
            rx.text("Your balance with " + summary["creator_name"].to(str), size="2", color_scheme="gray"),
            rx.text(summary["balance"], size="9", weight="bold", class_name="tabular-nums", data_testid="new-balance"),
            align="center",
            spacing="0",
        ),
        rx.link(rx.button("Open my wallet", size="3", width="100%"), href=routes.WALLET, width="100%"),
        spacing="4",
        align="center",
        width="100%",
    )
    waiting = rx.vstack(
        rx.heading("Payment processing", size="6", as_="h1"),
        rx.text(
            "We haven't received the payment confirmation yet. Your credits appear in your wallet as soon as it "
            "arrives.",
            color_scheme="gray",
        ),
        rx.cond(summary.contains("message"), rx.text(summary["message"], color_scheme="gray", size="2")),
        rx.link(rx.button("Open my wallet", size="3"), href=routes.WALLET),
        spacing="4",
    )
    return public_page(
        _centered(
            when_loaded(
                CheckoutSuccessState.loaded,
                rx.cond(
                    CheckoutSuccessState.found,
                    rx.card(rx.cond(summary["status"] == "paid", paid, waiting), size="4", width="100%"),
                    _checkout_not_found(),
                ),
            )
        ),
        actions=_viewer_actions(),
    )


def _wallet_account(account: rx.Var) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.vstack(
                    rx.heading(account["creator_name"], size="5", as_="h2"),
                    rx.cond(
                        account["status"] == "suspended",
                        rx.badge("Suspended by the creator", color_scheme="red", variant="soft"),
                    ),
                    spacing="1",
                ),
                rx.spacer(),
                rx.vstack(
                    rx.text(
                        account["balance"],
                        size="8",
                        weight="bold",
                        class_name="tabular-nums",
                        data_testid="wallet-balance",
                    ),
                    rx.text("credits", size="1", color_scheme="gray"),
                    align="end",
                    spacing="0",
                ),
                width="100%",
                align="start",
            ),
            rx.cond(
                account["buy_again"].length() > 0,
                rx.flex(
                    rx.foreach(
                        account["buy_again"],
                        lambda pack: rx.button(
                            rx.cond(
                                WalletState.buying == pack["public_id"],
                                rx.spinner(size="1"),
                                rx.icon("rotate-cw", size=14),
                            ),
                            "Buy again: ",
                            pack["name"],
                            rx.text(" · ", pack["label"], weight="regular", color_scheme="gray"),
                            variant="soft",
                            size="2",
                            on_click=WalletState.buy_again(pack["public_id"]),
                            disabled=WalletState.buying != "",
                            # Long pack names wrap on a phone instead of running off the card.
                            class_name="h-auto min-h-8 py-1 whitespace-normal text-left",
                        ),
                    ),
                    gap="2",
                    wrap="wrap",
                    data_testid="buy-again",
                ),
            ),
            rx.cond(
                account["lots"].length() > 0,
                rx.vstack(
                    rx.foreach(
                        account["lots"],
                        lambda lot: rx.hstack(
                            rx.icon("coins", size=14),
                            rx.text(
                                lot["remaining"],
                                " of ",
                                lot["granted"],
                                " · ",
                                lot["source"],
                                " · ",
                                rx.cond(
                                    lot["expires_at"] != "",
                                    rx.fragment("expires ", local_time(lot["expires_at"])),
                                    "never expires",
                                ),
                                size="2",
                            ),
                            align="center",
                            spacing="2",
                        ),
                    ),
                    spacing="1",
                ),
            ),
            rx.tabs.root(
                rx.tabs.list(rx.tabs.trigger("Activity", value="activity"), rx.tabs.trigger("Purchases", value="buys")),
                rx.tabs.content(
                    rx.vstack(
                        rx.foreach(
                            account["entries"],
                            lambda e: rx.hstack(
                                rx.vstack(
                                    rx.text(e["what"], size="2", weight="medium"),
                                    rx.text(local_time(e["when"]), " ", e["reason"], size="1", color_scheme="gray"),
                                    spacing="0",
                                ),
                                rx.spacer(),
                                rx.text(
                                    e["delta"],
                                    color_scheme=rx.cond(e["positive"], "green", "red"),
                                    weight="medium",
                                    class_name="tabular-nums",
                                ),
                                width="100%",
                                align="center",
                            ),
                        ),
                        spacing="3",
                        padding_top="0.75rem",
                    ),
                    value="activity",
                ),
                rx.tabs.content(
                    rx.vstack(
                        rx.foreach(
                            account["purchases"],
                            lambda p: rx.hstack(
                                rx.vstack(
                                    rx.text(p["pack_name"], size="2", weight="medium"),
                                    rx.text(
                                        local_time(p["date"], date_only=True),
                                        " · ",
                                        p["credits"],
                                        " credits",
                                        size="1",
                                        color_scheme="gray",
                                    ),
                                    spacing="0",
                                ),
                                rx.spacer(),
                                status_badge(p["status"], {}),
                                rx.text(p["price"], size="2", class_name="tabular-nums"),
                                width="100%",
                                align="center",
                            ),
                        ),
                        spacing="3",
                        padding_top="0.75rem",
                    ),
                    value="buys",
                ),
                default_value="activity",
                width="100%",
            ),
            spacing="4",
            width="100%",
        ),
        size="3",
        data_testid="wallet-account",
    )


def wallet_page() -> rx.Component:
    return app_page(
        "Wallet",
        when_loaded(
            WalletState.loaded,
            rx.cond(
                WalletState.accounts.length() > 0,
                rx.grid(
                    rx.foreach(WalletState.accounts, _wallet_account),
                    columns=rx.breakpoints(initial="1", lg="2"),
                    spacing="4",
                ),
                empty_state(
                    "wallet", "No credits yet", "When you buy a pack from a creator's link, your credits show up here."
                ),
            ),
        ),
    )
