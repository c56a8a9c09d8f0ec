"""`/dashboard/webhooks`: endpoints that receive signed events, their deliveries, and how to verify them."""

from __future__ import annotations

import reflex as rx

from litesubs.components.app_shell import app_page
from litesubs.components.forms import field_error, text_field
from litesubs.components.status import empty_state, status_badge, when_loaded
from litesubs.components.time import local_time
from litesubs.services.webhooks import DEFAULT_EVENT_TYPES, EVENT_TYPES, PAYLOAD_VERSION
from litesubs.state.webhooks import WebhooksState

DELIVERY_STATUS = {"pending": "Retrying", "delivered": "Delivered", "failed": "Failed", "cancelled": "Cancelled"}
WIDE_ONLY = "hidden md:table-cell"
VERIFY_EXAMPLE = f"""# pip install standardwebhooks
import os
from standardwebhooks import Webhook, WebhookVerificationError

# The endpoint's signing secret, whsec_...
webhook = Webhook(os.environ["LITESUBS_WEBHOOK_SECRET"])

def receive(body: bytes, headers: dict[str, str]) -> int:
    try:
        # Checks webhook-signature and webhook-timestamp.
        event = webhook.verify(body, headers)
    except WebhookVerificationError:
        return 400  # forged or too old: ignore it
    # event["id"] == headers["webhook-id"], the same on
    # every retry: skip ids you have handled already.
    if event["type"] == "purchase.completed":
        customer_id = event["data"]["customer_id"]
        ...
    # Anything but 2xx is retried: 5 s, 5 min, 30 min,
    # 2 h, 5 h, 10 h, 10 h later.
    return 200

# Headers also carry webhook-version: {PAYLOAD_VERSION}"""


def _add_button() -> rx.Component:
    return rx.button(rx.icon("plus", size=16), "Add endpoint", on_click=WebhooksState.open_create)


def _event_choice(name: str, checked: bool | rx.Var = False) -> rx.Component:
    return rx.el.label(
        rx.el.input(
            type="checkbox",
            name=name,
            default_checked=checked,
            class_name="mt-1 size-4 accent-[var(--accent-9)]",
        ),
        rx.box(
            rx.code(name, variant="ghost", size="2"),
            rx.text(EVENT_TYPES[name], size="1", color_scheme="gray", as_="div"),
        ),
        class_name="flex items-start gap-2 cursor-pointer",
    )


def _create_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Add a webhook endpoint"),
            rx.dialog.description(
                "Litesubs POSTs signed JSON to this URL whenever one of the chosen events happens.",
                size="2",
                color_scheme="gray",
            ),
            rx.form(
                rx.vstack(
                    text_field(
                        "Endpoint URL",
                        "url",
                        errors=WebhooksState.create_errors,
                        type="url",
                        placeholder="https://example.com/litesubs/webhooks",
                        hint="An https URL on the public internet.",
                    ),
                    rx.el.fieldset(
                        rx.el.legend("Events to send", class_name="text-sm font-medium mb-2"),
                        rx.grid(
                            *[_event_choice(name, name in DEFAULT_EVENT_TYPES) for name in EVENT_TYPES],
                            columns="2",
                            spacing="3",
                        ),
                        field_error(WebhooksState.create_errors, "event_types"),
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button("Add endpoint", type="submit"),
                        justify="end",
                        width="100%",
                        spacing="3",
                    ),
                    spacing="4",
                    margin_top="1rem",
                ),
                on_submit=WebhooksState.create,
                reset_on_submit=False,
                key=WebhooksState.create_form_key,
            ),
            max_width="640px",
        ),
        open=WebhooksState.create_open,
        on_open_change=WebhooksState.set_create_open,
    )


def _threshold_card() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Low-balance alert", size="4", as_="h2"),
                rx.text(
                    "Send credits.low when a customer's balance falls below this many credits "
                    "(once each time it crosses). Leave it empty to never send it.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.hstack(
                    rx.box(
                        text_field(
                            "Threshold (credits)",
                            "threshold",
                            errors=WebhooksState.threshold_errors,
                            placeholder="Off",
                            default_value=WebhooksState.threshold,
                            input_mode="numeric",
                        ),
                        width="16rem",
                    ),
                    rx.button("Save", type="submit", variant="soft", size="3"),
                    align="end",
                    spacing="3",
                ),
                spacing="3",
            ),
            on_submit=WebhooksState.save_threshold,
            reset_on_submit=False,
            key=WebhooksState.threshold_form_key,
        ),
        size="3",
        width="100%",
    )


def _events_dialog(endpoint: rx.Var) -> rx.Component:
    chosen = endpoint["event_list"].to(list[str])
    return rx.dialog.root(
        rx.dialog.trigger(
            rx.button(
                rx.icon("list-checks", size=14),
                "Events",
                size="1",
                variant="soft",
                on_click=WebhooksState.open_events(endpoint["id"]),
            )
        ),
        rx.dialog.content(
            rx.dialog.title("Events to send"),
            rx.dialog.description(
                rx.text("To ", rx.code(endpoint["url"], class_name="break-all")), size="2", color_scheme="gray"
            ),
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="endpoint_id", value=endpoint["id"].to(str)),
                    rx.grid(
                        *[_event_choice(name, chosen.contains(name)) for name in EVENT_TYPES], columns="2", spacing="3"
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button("Save events", type="submit"),
                        justify="end",
                        width="100%",
                        spacing="3",
                    ),
                    spacing="4",
                    margin_top="1rem",
                ),
                on_submit=WebhooksState.change_events,
                reset_on_submit=False,
            ),
            max_width="640px",
        ),
        open=WebhooksState.events_endpoint == endpoint["id"],
        on_open_change=WebhooksState.close_events,
    )


def _delete_button(endpoint: rx.Var) -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(rx.icon("trash-2", size=14), "Delete", size="1", variant="soft", color_scheme="red")
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete this endpoint?"),
            rx.alert_dialog.description(
                rx.text("It stops receiving events and its delivery history goes. ", rx.code(endpoint["url"]))
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Delete endpoint", color_scheme="red", on_click=WebhooksState.delete(endpoint["id"]))
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
    )


def _delivery_row(delivery: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.code(delivery["event_type"], variant="ghost")),
        rx.table.cell(local_time(delivery["created"]), class_name=WIDE_ONLY),
        rx.table.cell(delivery["attempts"]),
        rx.table.cell(status_badge(delivery["status"], DELIVERY_STATUS)),
        rx.table.cell(rx.text(delivery["outcome"], size="1", class_name="break-all line-clamp-2 max-w-xs")),
        rx.table.cell(
            rx.button(
                "Resend",
                size="1",
                variant="soft",
                on_click=WebhooksState.resend(delivery["id"]),
                aria_label="Resend " + delivery["event_type"].to(str),
            )
        ),
        align="center",
        data_testid="delivery-row",
    )


def _deliveries(endpoint: rx.Var) -> rx.Component:
    deliveries = endpoint["deliveries"].to(list[dict])
    headers = [("Event", ""), ("Time", WIDE_ONLY), ("Attempts", ""), ("Status", ""), ("Last answer", ""), ("", "")]
    return rx.cond(
        deliveries.length() > 0,
        rx.box(
            rx.table.root(
                rx.table.header(
                    rx.table.row(*[rx.table.column_header_cell(title, class_name=shown) for title, shown in headers])
                ),
                rx.table.body(rx.foreach(endpoint["deliveries"], _delivery_row)),
                variant="surface",
                size="1",
                width="100%",
            ),
            width="100%",
            overflow_x="auto",
        ),
        rx.text("No deliveries yet. Send a test event to see one here.", size="2", color_scheme="gray"),
    )


def _endpoint_card(endpoint: rx.Var) -> rx.Component:
    enabled = endpoint["enabled"].to(bool)
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.code(endpoint["url"], size="3", variant="ghost", class_name="break-all"),
                rx.cond(
                    enabled,
                    rx.badge("Enabled", color_scheme="green", variant="soft", radius="full"),
                    rx.badge("Disabled", color_scheme="gray", variant="soft", radius="full"),
                ),
                rx.spacer(),
                rx.button(
                    rx.icon("send", size=14),
                    "Send test event",
                    size="1",
                    variant="soft",
                    disabled=~enabled,
                    on_click=WebhooksState.send_test(endpoint["id"]),
                ),
                rx.cond(
                    enabled,
                    rx.button(
                        "Disable",
                        size="1",
                        variant="soft",
                        color_scheme="gray",
                        on_click=WebhooksState.set_enabled(endpoint["id"], False),
                    ),
                    rx.button(
                        "Enable", size="1", variant="soft", on_click=WebhooksState.set_enabled(endpoint["id"], True)
                    ),
                ),
                _events_dialog(endpoint),
                _delete_button(endpoint),
                align="center",
                wrap="wrap",
                spacing="2",
                width="100%",
            ),
            rx.cond(
                enabled,
                rx.fragment(),
                rx.callout(
                    "Not sending: " + endpoint["disabled_reason"].to(str) + " Fix the receiver, then enable it again.",
                    icon="circle-pause",
                    color_scheme="amber",
                    size="1",
                    width="100%",
                ),
            ),
            rx.text(rx.text.strong("Events: "), endpoint["event_types"], size="2", color_scheme="gray"),
            rx.vstack(
                rx.el.label("Signing secret", class_name="text-sm font-medium"),
                rx.hstack(
                    rx.box(
                        rx.code(endpoint["secret"], size="2", variant="ghost", class_name="break-all"),
                        padding="0.5rem 0.75rem",
                        class_name="rounded-[var(--radius-3)] bg-[var(--gray-a3)] min-w-[16rem] flex-1",
                        data_testid="signing-secret",
                    ),
                    rx.button(
                        rx.icon("copy", size=14),
                        "Copy",
                        size="2",
                        variant="soft",
                        on_click=[rx.set_clipboard(endpoint["secret"]), rx.toast.success("Signing secret copied.")],
                    ),
                    rx.button(
                        rx.icon("refresh-cw", size=14),
                        "Rotate",
                        size="2",
                        variant="soft",
                        color_scheme="gray",
                        on_click=WebhooksState.rotate(endpoint["id"]),
                    ),
                    align="center",
                    wrap="wrap",
                    spacing="2",
                    width="100%",
                ),
                rx.cond(
                    endpoint["previous_secret_until"] != "",
                    rx.text(
                        "The previous secret also signs until ",
                        local_time(endpoint["previous_secret_until"]),
                        ".",
                        size="1",
                        color_scheme="gray",
                    ),
                ),
                spacing="1",
                width="100%",
            ),
            rx.heading("Recent deliveries", size="3", as_="h3", margin_top="0.5rem"),
            _deliveries(endpoint),
            spacing="3",
            width="100%",
        ),
        size="3",
        width="100%",
        data_testid="webhook-endpoint",
    )


def _endpoints() -> rx.Component:
    return rx.cond(
        WebhooksState.endpoints.length() > 0,
        rx.vstack(rx.foreach(WebhooksState.endpoints, _endpoint_card), spacing="4", width="100%"),
        when_loaded(
            WebhooksState.loaded,
            empty_state(
                "webhook",
                "No webhook endpoints yet",
                "Add your server's URL and Litesubs will tell it, signed, when a pack is bought, "
                "refunded, or a customer runs low — no polling.",
                _add_button(),
            ),
        ),
    )


def _verify_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Verify deliveries in Python", size="4", as_="h2"),
            rx.text(
                "Each delivery is a POST of the event's JSON with the Standard Webhooks headers webhook-id, "
                "webhook-timestamp and webhook-signature. Check them before trusting the body.",
                size="2",
                color_scheme="gray",
            ),
            rx.code_block(VERIFY_EXAMPLE, language="python", width="100%", wrap_long_lines=True),
            rx.button(
                rx.icon("copy", size=14),
                "Copy example",
                variant="soft",
                on_click=[rx.set_clipboard(VERIFY_EXAMPLE), rx.toast.success("Example copied.")],
            ),
            spacing="3",
            width="100%",
        ),
        size="3",
        width="100%",
    )


def webhooks_page() -> rx.Component:
    return app_page(
        "Webhooks",
        rx.vstack(_endpoints(), _threshold_card(), _verify_card(), spacing="5", width="100%"),
        _create_dialog(),
        actions=[
            rx.button(rx.icon("refresh-cw", size=16), "Refresh", variant="soft", on_click=WebhooksState.refresh),
            _add_button(),
        ],
    )
