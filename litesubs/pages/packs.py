"""`/dashboard/packs`: create, edit, enable and share packs."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.app_shell import app_page
from litesubs.components.forms import field_error, text_field
from litesubs.components.status import empty_state, status_badge, when_loaded
from litesubs.state.packs import PacksState

ERRORS = PacksState.field_errors
VALUES = PacksState.form_values


def _terms_fields() -> rx.Component:
    """Price, currency and credits: editable until the pack sells, then shown as fixed."""
    editable = rx.vstack(
        rx.hstack(
            rx.box(
                text_field(
                    "Price",
                    "price",
                    errors=ERRORS,
                    placeholder="9.00",
                    default_value=VALUES["price"],
                    input_mode="decimal",
                ),
                flex="1",
            ),
            rx.vstack(
                rx.el.label("Currency", html_for="currency", class_name="text-sm font-medium"),
                rx.el.select(
                    rx.foreach(PacksState.currencies, lambda code: rx.el.option(code, value=code)),
                    id="currency",
                    name="currency",
                    default_value=VALUES["currency"],
                    class_name="rt-reset h-10 rounded-[var(--radius-3)] border border-[var(--gray-a7)] "
                    "bg-[var(--color-surface)] px-3 text-[var(--gray-12)]",
                ),
                field_error(ERRORS, "currency"),
                spacing="1",
            ),
            align="start",
            width="100%",
        ),
        text_field(
            "Credits",
            "credits",
            errors=ERRORS,
            placeholder="100",
            default_value=VALUES["credits"],
            input_mode="numeric",
        ),
        spacing="3",
        width="100%",
    )
    fixed = rx.vstack(
        rx.callout(
            "This pack has sales, so its price and credits are fixed. Create a new pack for a new price.",
            icon="lock",
            size="1",
            variant="surface",
        ),
        rx.text(
            VALUES["price"] + " " + VALUES["currency"].to(str) + " for " + VALUES["credits"].to(str) + " credits",
            size="2",
            weight="medium",
        ),
        field_error(ERRORS, "price"),
        width="100%",
    )
    return rx.cond(PacksState.editing_locked, fixed, editable)


def _pack_form() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(PacksState.editing_id == 0, "New pack", "Edit pack")),
            rx.dialog.description("Buyers see these details on the pack's page.", size="2", color_scheme="gray"),
            rx.form(
                rx.vstack(
                    text_field(
                        "Name",
                        "name",
                        errors=ERRORS,
                        placeholder="50 coaching credits",
                        default_value=VALUES["name"],
                        max_length=80,
                    ),
                    rx.vstack(
                        rx.el.label("Description", html_for="description", class_name="text-sm font-medium"),
                        rx.text_area(
                            id="description",
                            name="description",
                            default_value=VALUES["description"],
                            placeholder="What the credits are for (optional)",
                            width="100%",
                            rows="3",
                        ),
                        field_error(ERRORS, "description"),
                        spacing="1",
                        width="100%",
                    ),
                    _terms_fields(),
                    text_field(
                        "Expiry date (optional)",
                        "expires_on",
                        errors=ERRORS,
                        type="date",
                        default_value=VALUES["expires_on"],
                        hint="After this day the pack can't be bought and its credits expire.",
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button(rx.cond(PacksState.editing_id == 0, "Create pack", "Save changes"), type="submit"),
                        justify="end",
                        width="100%",
                        spacing="3",
                    ),
                    spacing="4",
                    margin_top="1rem",
                ),
                on_submit=PacksState.save,
                reset_on_submit=False,
                key=PacksState.form_key,
            ),
            max_width="520px",
        ),
        open=PacksState.form_open,
        on_open_change=PacksState.set_form_open,
    )


def _share(pack: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.code(pack["link"], size="1", class_name="truncate", variant="ghost"),
            align="center",
            width="100%",
            class_name="min-w-0 overflow-hidden",
        ),
        rx.hstack(
            rx.button(
                rx.icon("copy", size=14),
                "Copy link",
                size="2",
                variant="soft",
                on_click=[rx.set_clipboard(pack["link"]), rx.toast.success("Link copied to the clipboard.")],
            ),
            rx.popover.root(
                rx.popover.trigger(
                    rx.button(rx.icon("qr-code", size=14), "QR code", size="2", variant="soft", color_scheme="gray")
                ),
                rx.popover.content(
                    rx.image(
                        src=pack["qr"],
                        alt="QR code for the pack link",
                        width="200px",
                        height="200px",
                        class_name="bg-white rounded",
                    ),
                ),
            ),
            spacing="2",
            wrap="wrap",
        ),
        spacing="2",
        width="100%",
    )


def _stat(label: str, value: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"), rx.text(value, size="3", weight="bold"), spacing="0"
    )


def _pack_card(pack: rx.Var) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.vstack(
                    rx.heading(pack["name"], size="4", as_="h2"),
                    rx.text(pack["expiry"], size="1", color_scheme="gray"),
                    spacing="1",
                    class_name="min-w-0",
                ),
                rx.spacer(),
                status_badge(pack["status"]),
                align="start",
                width="100%",
            ),
            rx.hstack(
                _stat("Price", pack["price"]),
                _stat("Credits", pack["credits"]),
                _stat("Sold", pack["sold"]),
                _stat("Revenue", pack["revenue"]),
                spacing="5",
                wrap="wrap",
            ),
            rx.divider(),
            _share(pack),
            rx.hstack(
                rx.el.label(
                    rx.hstack(
                        rx.switch(
                            checked=pack["active"],
                            on_change=lambda checked: PacksState.set_active(pack["id"], checked),
                            disabled=pack["status"] == "expired",
                        ),
                        rx.text(
                            rx.cond(pack["status"] == "expired", "Expired: edit the date to sell again", "On sale"),
                            size="2",
                        ),
                        align="center",
                        spacing="2",
                    ),
                ),
                rx.spacer(),
                rx.button(
                    rx.icon("pencil", size=14),
                    "Edit",
                    size="2",
                    variant="ghost",
                    on_click=PacksState.open_edit(pack["id"]),
                    aria_label="Edit " + pack["name"].to(str),
                ),
                align="center",
                width="100%",
            ),
            spacing="4",
        ),
        size="3",
        data_testid="pack-card",
    )


def _sales_paused_notice() -> rx.Component:
    return rx.cond(
        PacksState.sales_paused != "",
        rx.callout.root(
            rx.callout.icon(rx.icon("circle-pause")),
            rx.callout.text(
                PacksState.sales_paused, " ", rx.link("Get paid", href=routes.PAYOUTS, weight="bold"), " →"
            ),
            color_scheme="amber",
            role="status",
            margin_bottom="1rem",
            data_testid="sales-paused",
        ),
    )


def packs_page() -> rx.Component:
    return app_page(
        "Packs",
        _sales_paused_notice(),
        rx.cond(
            PacksState.packs.length() > 0,
            rx.grid(
                rx.foreach(PacksState.packs, _pack_card),
                columns=rx.breakpoints(initial="1", md="2", xl="3"),
                spacing="4",
            ),
            when_loaded(
                PacksState.loaded,
                empty_state(
                    "package",
                    "No packs yet",
                    "Create a pack, share its link, and buyers can pay for credits in a minute.",
                    rx.button(rx.icon("plus", size=16), "New pack", on_click=PacksState.open_create),
                ),
            ),
        ),
        _pack_form(),
        actions=[rx.button(rx.icon("plus", size=16), "New pack", on_click=PacksState.open_create)],
    )
