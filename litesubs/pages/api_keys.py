"""`/dashboard/api-keys`: create, copy (once) and revoke API keys; how to call the API with one."""

from __future__ import annotations

import reflex as rx

from litesubs.api.v1 import PREFIX
from litesubs.components.app_shell import app_page
from litesubs.components.forms import text_field
from litesubs.components.status import empty_state, status_badge, when_loaded
from litesubs.components.time import local_time
from litesubs.services.api_keys import NAME_MAX_LENGTH
from litesubs.state.api_keys import ApiKeysState

KEY_STATUS = {"active": "Active", "revoked": "Revoked"}
DOCS_URL = f"{PREFIX}/docs"
WIDE_ONLY = "hidden md:table-cell"  # phones skip the creation date so the status and Revoke stay in view


def _new_key_button() -> rx.Component:
    return rx.button(rx.icon("plus", size=16), "New API key", on_click=ApiKeysState.open_create)


def _create_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("New API key"),
            rx.dialog.description(
                "Name it after the program that will use it, so you know which key to revoke later.",
                size="2",
                color_scheme="gray",
            ),
            rx.form(
                rx.vstack(
                    text_field(
                        "Name",
                        "name",
                        errors=ApiKeysState.create_errors,
                        placeholder="Production backend",
                        max_length=NAME_MAX_LENGTH,
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button("Create key", type="submit"),
                        justify="end",
                        width="100%",
                        spacing="3",
                    ),
                    spacing="4",
                    margin_top="1rem",
                ),
                on_submit=ApiKeysState.create,
                reset_on_submit=False,
                key=ApiKeysState.create_form_key,
            ),
            max_width="480px",
        ),
        open=ApiKeysState.create_open,
        on_open_change=ApiKeysState.set_create_open,
    )


def _secret_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Your new API key"),
            rx.dialog.description(
                rx.text.strong(ApiKeysState.new_key_name),
                " can now call the API. Keep the key secret, like a password.",
                size="2",
            ),
            rx.vstack(
                rx.callout(
                    "Copy it now: it won't be shown again. If you lose it, revoke it and create a new one.",
                    icon="triangle-alert",
                    color_scheme="amber",
                    size="1",
                    width="100%",
                ),
                rx.box(
                    rx.code(ApiKeysState.new_secret, size="2", variant="ghost", class_name="break-all"),
                    padding="0.75rem",
                    width="100%",
                    class_name="rounded-[var(--radius-3)] bg-[var(--gray-a3)]",
                    data_testid="new-api-key",
                ),
                rx.hstack(
                    rx.button(
                        rx.icon("copy", size=14),
                        "Copy key",
                        on_click=[rx.set_clipboard(ApiKeysState.new_secret), rx.toast.success("API key copied.")],
                    ),
                    rx.dialog.close(rx.button("Done", variant="soft", color_scheme="gray")),
                    justify="end",
                    width="100%",
                    spacing="3",
                ),
                spacing="4",
                margin_top="1rem",
            ),
            max_width="560px",
        ),
        open=ApiKeysState.secret_open,
        on_open_change=ApiKeysState.set_secret_open,
    )


def _revoke_button(key: rx.Var) -> rx.Component:
    name = key["name"].to(str)
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button("Revoke", size="1", variant="soft", color_scheme="red", aria_label="Revoke " + name)
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Revoke " + name + "?"),
            rx.alert_dialog.description(
                "Programs using this key get 401 Unauthorized from the next request on. This can't be undone."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Revoke key", color_scheme="red", on_click=ApiKeysState.revoke(key["id"]))
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
    )


def _key_row(key: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.text(key["name"], weight="medium")),
        rx.table.cell(rx.code(key["prefix"], variant="ghost")),
        rx.table.cell(local_time(key["created"]), class_name=WIDE_ONLY),
        rx.table.cell(local_time(key["last_used"], empty="Never"), data_testid="last-used"),
        rx.table.cell(status_badge(key["status"], KEY_STATUS)),
        rx.table.cell(rx.cond(key["status"] == "active", _revoke_button(key), rx.fragment())),
        align="center",
        data_testid="api-key-row",
    )


def _keys_table() -> rx.Component:
    headers = [("Name", ""), ("Key", ""), ("Created", WIDE_ONLY), ("Last used", ""), ("Status", ""), ("", "")]
    return rx.box(
        rx.table.root(
            rx.table.header(
                rx.table.row(*[rx.table.column_header_cell(header, class_name=shown) for header, shown in headers])
            ),
            rx.table.body(rx.foreach(ApiKeysState.keys, _key_row)),
            variant="surface",
            width="100%",
        ),
        width="100%",
        overflow_x="auto",
    )


def _keys() -> rx.Component:
    return rx.cond(
        ApiKeysState.keys.length() > 0,
        _keys_table(),
        when_loaded(
            ApiKeysState.loaded,
            empty_state(
                "key-round",
                "No API keys yet",
                "Create a key to let your own software check balances and spend credits.",
                _new_key_button(),
            ),
        ),
    )


def _example() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Call the API", size="4", as_="h2"),
            rx.text(
                "Put your key in LITESUBS_API_KEY, then read a customer's balance and spend one credit. "
                "Send a fresh Idempotency-Key with every spend: a retry with the same key never spends twice.",
                size="2",
                color_scheme="gray",
            ),
            rx.code_block(ApiKeysState.example, language="bash", width="100%", wrap_long_lines=True),
            rx.hstack(
                rx.button(
                    rx.icon("copy", size=14),
                    "Copy example",
                    variant="soft",
                    on_click=[rx.set_clipboard(ApiKeysState.example), rx.toast.success("Example copied.")],
                ),
                rx.link(
                    rx.hstack(rx.icon("book-open", size=14), "API reference", align="center", spacing="2"),
                    href=DOCS_URL,
                    is_external=True,
                ),
                align="center",
                spacing="4",
            ),
            spacing="3",
            width="100%",
        ),
        size="3",
        width="100%",
    )


def api_keys_page() -> rx.Component:
    return app_page(
        "API keys",
        rx.vstack(_keys(), _example(), spacing="5", width="100%"),
        _create_dialog(),
        _secret_dialog(),
        actions=[_new_key_button()],
    )
