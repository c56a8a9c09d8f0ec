"""`/dashboard/customers` (the table) and `/dashboard/customers/[customer_id]` (one customer)."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from litesubs import routes
from litesubs.components.app_shell import app_page
from litesubs.components.forms import field_error, text_field
from litesubs.components.status import empty_state, status_badge, when_loaded
from litesubs.components.time import local_time
from litesubs.state.customers import CustomersState, CustomerState

CUSTOMER_STATUS = {"active": "Active", "suspended": "Suspended"}
COLUMNS = [
    ("Customer", "name"),
    ("Balance", "balance"),
    ("Credits bought", "credits_purchased"),
    ("Spent", None),
    ("First purchase", "first_purchase"),
    ("Last purchase", "last_purchase"),
    ("Status", None),
]


def _header_cell(label: str, sort: str | None) -> rx.Component:
    if sort is None:
        return rx.table.column_header_cell(rx.text(label, size="1", weight="bold"))
    arrow = rx.cond(
        CustomersState.sort == sort,
        rx.icon(rx.cond(CustomersState.descending, "arrow-down", "arrow-up"), size=14),
        rx.icon("arrow-up-down", size=14, opacity="0.4"),
    )
    return rx.table.column_header_cell(
        rx.button(
            label,
            arrow,
            variant="ghost",
            size="1",
            color_scheme="gray",
            high_contrast=True,
            class_name="font-bold",
            on_click=CustomersState.sort_by(sort),
            aria_label=f"Sort by {label.lower()}",
        ),
        aria_sort=rx.cond(
            CustomersState.sort == sort, rx.cond(CustomersState.descending, "descending", "ascending"), "none"
        ),
    )


def _customer_row(row: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(
            rx.link(
                rx.vstack(
                    rx.text(row["name"], weight="medium"),
                    rx.text(row["email"], size="1", color_scheme="gray"),
                    spacing="0",
                ),
                href=row["href"],
                underline="none",
                high_contrast=True,
            ),
        ),
        rx.table.cell(rx.text(row["balance"], weight="bold", class_name="tabular-nums")),
        rx.table.cell(row["credits_purchased"], class_name="tabular-nums"),
        rx.table.cell(row["spent"], class_name="tabular-nums"),
        rx.table.cell(local_time(row["first_purchase"], date_only=True)),
        rx.table.cell(local_time(row["last_purchase"], date_only=True)),
        rx.table.cell(status_badge(row["status"], CUSTOMER_STATUS)),
        align="center",
    )


def _download(label: str, href: str) -> rx.Component:
    """A plain link styled as a button: the browser downloads the streamed CSV (no client-side routing)."""
    return rx.button(
        rx.el.a(
            rx.icon("download", size=14),
            label,
            href=href,
            download=href.rsplit("/", 1)[-1],
            custom_attrs={"reloadDocument": True},
        ),
        as_child=True,
        variant="soft",
        color_scheme="gray",
    )


def _toolbar() -> rx.Component:
    return rx.hstack(
        rx.box(
            rx.el.label("Search customers", html_for="customer-search", class_name="sr-only"),
            rx.input(
                rx.input.slot(rx.icon("search", size=16)),
                id="customer-search",
                placeholder="Search by name or email",
                default_value=CustomersState.search,
                on_change=CustomersState.search_for.debounce(300),
                size="3",
                width="100%",
            ),
            class_name="w-full sm:w-80",
        ),
        rx.spacer(),
        _download("Customers CSV", "/api/exports/customers.csv"),
        _download("Ledger CSV", "/api/exports/ledger.csv"),
        wrap="wrap",
        spacing="3",
        width="100%",
        align="center",
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.text(CustomersState.pager_label, size="2", color_scheme="gray"),
        rx.spacer(),
        rx.select(
            ["25", "50", "100"],
            value=CustomersState.page_size,
            on_change=CustomersState.set_page_size,
            size="2",
            aria_label="Rows per page",
        ),
        rx.button(
            rx.icon("chevron-left", size=16),
            "Previous",
            variant="soft",
            disabled=CustomersState.page <= 1,
            on_click=CustomersState.go_to_page(CustomersState.page - 1),
        ),
        rx.button(
            "Next",
            rx.icon("chevron-right", size=16),
            variant="soft",
            disabled=CustomersState.page >= CustomersState.pages,
            on_click=CustomersState.go_to_page(CustomersState.page + 1),
        ),
        align="center",
        wrap="wrap",
        spacing="3",
        width="100%",
    )


def _table() -> rx.Component:
    return rx.vstack(
        rx.box(
            rx.table.root(
                rx.table.header(rx.table.row(*[_header_cell(label, sort) for label, sort in COLUMNS])),
                rx.table.body(rx.foreach(CustomersState.rows, _customer_row)),
                variant="surface",
                size="2",
                width="100%",
            ),
            width="100%",
            overflow_x="auto",
        ),
        rx.cond(
            (CustomersState.rows.length() == 0) & (CustomersState.search != ""),
            rx.text("No customer matches your search.", color_scheme="gray", padding="1rem"),
        ),
        _pager(),
        spacing="3",
        width="100%",
    )


def customers_page() -> rx.Component:
    return app_page(
        "Customers",
        when_loaded(
            CustomersState.loaded,
            rx.cond(
                (CustomersState.total == 0) & (CustomersState.search == ""),
                empty_state(
                    "users",
                    "No customers yet",
                    "Everyone who buys one of your packs shows up here with their balance.",
                    rx.link(rx.button("Share a pack link"), href=routes.PACKS),
                ),
                rx.vstack(_toolbar(), _table(), spacing="4", width="100%"),
            ),
        ),
    )


# --- One customer --------------------------------------------------------------------------------


def _adjust_dialog() -> rx.Component:
    removing = CustomerState.adjust_direction == "remove"
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(removing, "Remove credits", "Add credits")),
            rx.dialog.description(
                "Balance now: " + CustomerState.customer["balance"].to(str) + " credits. Every change is logged "
                "with your reason.",
                size="2",
                color_scheme="gray",
            ),
            rx.form(
                rx.vstack(
                    text_field(
                        "Credits", "amount", errors=CustomerState.adjust_errors, input_mode="numeric", placeholder="10"
                    ),
                    rx.vstack(
                        rx.el.label("Reason", html_for="reason", class_name="text-sm font-medium"),
                        rx.text_area(
                            id="reason",
                            name="reason",
                            placeholder="Why (the customer's ledger shows it)",
                            width="100%",
                            rows="2",
                            max_length=500,
                        ),
                        field_error(CustomerState.adjust_errors, "reason"),
                        spacing="1",
                        width="100%",
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button(
                            rx.cond(removing, "Remove credits", "Add credits"),
                            type="submit",
                            color_scheme=rx.cond(removing, "red", "violet"),
                        ),
                        justify="end",
                        spacing="3",
                        width="100%",
                    ),
                    spacing="4",
                    margin_top="1rem",
                ),
                on_submit=CustomerState.adjust_credits,
                reset_on_submit=False,
                key=CustomerState.adjust_key,
            ),
            max_width="460px",
        ),
        open=CustomerState.adjust_open,
        on_open_change=CustomerState.set_adjust_open,
    )


def _suspend_button() -> rx.Component:
    suspended = CustomerState.customer["status"] == "suspended"
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.cond(suspended, "Reactivate", "Suspend"),
                variant="soft",
                color_scheme=rx.cond(suspended, "green", "red"),
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title(rx.cond(suspended, "Reactivate this customer?", "Suspend this customer?")),
            rx.alert_dialog.description(
                rx.cond(
                    suspended,
                    "They can buy your packs again and their credits can be spent through the API.",
                    "They won't be able to buy your packs, and the API will refuse to spend their credits. "
                    "You can still adjust credits by hand.",
                ),
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(
                        rx.cond(suspended, "Reactivate", "Suspend customer"),
                        color_scheme=rx.cond(suspended, "green", "red"),
                        on_click=CustomerState.set_suspended(~suspended),
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
    )


def _simple_table(headers: list[str], rows: rx.Var, cells: Callable[[rx.Var], list[rx.Component]]) -> rx.Component:
    return rx.box(
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(rx.foreach(rows, lambda row: rx.table.row(*cells(row)))),
            variant="surface",
            size="1",
            width="100%",
        ),
        width="100%",
        overflow_x="auto",
    )


def _section(title: str, empty: str, rows: rx.Var, table: rx.Component) -> rx.Component:
    return rx.vstack(
        rx.heading(title, size="4", as_="h2"),
        rx.cond(rows.length() > 0, table, rx.text(empty, color_scheme="gray", size="2")),
        spacing="3",
        width="100%",
    )


def _customer_file() -> rx.Component:
    customer = CustomerState.customer
    return rx.vstack(
        rx.card(
            rx.flex(
                rx.vstack(
                    rx.hstack(
                        rx.heading(customer["name"], size="6", as_="h2"),
                        status_badge(customer["status"], CUSTOMER_STATUS),
                        align="center",
                        spacing="3",
                    ),
                    rx.text(customer["email"], color_scheme="gray"),
                    rx.text(
                        "Bought ",
                        customer["credits_purchased"],
                        " credits · spent ",
                        customer["spent"],
                        " · last purchase ",
                        local_time(customer["last_purchase"], date_only=True),
                        size="2",
                        color_scheme="gray",
                    ),
                    spacing="1",
                ),
                rx.spacer(),
                rx.hstack(
                    rx.vstack(
                        rx.text("Held", size="2", color_scheme="gray"),
                        rx.text(
                            customer["held"],
                            size="8",
                            weight="bold",
                            color_scheme="gray",
                            class_name="tabular-nums",
                            data_testid="customer-held",
                        ),
                        align="end",
                        spacing="0",
                    ),
                    rx.vstack(
                        rx.text("Balance", size="2", color_scheme="gray"),
                        rx.text(
                            customer["balance"],
                            size="8",
                            weight="bold",
                            class_name="tabular-nums",
                            data_testid="customer-balance",
                        ),
                        align="end",
                        spacing="0",
                    ),
                    spacing="6",
                    align="end",
                ),
                direction=rx.breakpoints(initial="column", sm="row"),
                gap="4",
                width="100%",
            ),
            rx.hstack(
                rx.button(rx.icon("plus", size=14), "Add credits", on_click=CustomerState.open_adjust("add")),
                rx.button(
                    rx.icon("minus", size=14),
                    "Remove credits",
                    variant="soft",
                    on_click=CustomerState.open_adjust("remove"),
                ),
                rx.spacer(),
                _suspend_button(),
                wrap="wrap",
                spacing="3",
                margin_top="1rem",
            ),
            size="3",
            width="100%",
        ),
        _section(
            "Unexpired credits",
            "No credits left.",
            CustomerState.lots,
            _simple_table(
                ["Source", "Granted", "Remaining", "Expires", "Added"],
                CustomerState.lots,
                lambda lot: [
                    rx.table.cell(lot["source"]),
                    rx.table.cell(lot["granted"]),
                    rx.table.cell(lot["remaining"]),
                    rx.table.cell(local_time(lot["expires"], empty="Never")),
                    rx.table.cell(local_time(lot["created"], date_only=True)),
                ],
            ),
        ),
        _section(
            "Active holds",
            "No active holds. Your software can reserve credits before long work through the API "
            "(POST /api/v1/customers/{id}/holds); they show here, out of the balance, until captured or released.",
            CustomerState.holds,
            _simple_table(
                ["Held", "Reason", "Expires", "Placed"],
                CustomerState.holds,
                lambda hold: [
                    rx.table.cell(hold["amount"], class_name="tabular-nums"),
                    rx.table.cell(hold["reason"]),
                    rx.table.cell(local_time(hold["expires"])),
                    rx.table.cell(local_time(hold["created"])),
                ],
            ),
        ),
        _section(
            "Purchases",
            "No purchases yet.",
            CustomerState.purchases,
            _simple_table(
                ["Pack", "Amount", "Credits", "Status", "Date", "Note"],
                CustomerState.purchases,
                lambda p: [
                    rx.table.cell(p["pack"]),
                    rx.table.cell(p["amount"]),
                    rx.table.cell(p["credits"]),
                    rx.table.cell(status_badge(p["status"], {})),
                    rx.table.cell(local_time(p["date"])),
                    rx.table.cell(rx.text(p["note"], size="2", color_scheme="gray")),
                ],
            ),
        ),
        _section(
            "Ledger",
            "No changes yet.",
            CustomerState.entries,
            _simple_table(
                ["When", "What", "Change", "Balance after", "Why", "Who"],
                CustomerState.entries,
                lambda e: [
                    rx.table.cell(local_time(e["when"]), white_space="nowrap"),
                    rx.table.cell(rx.badge(e["kind"], variant="surface")),
                    rx.table.cell(
                        rx.text(
                            e["delta"],
                            color_scheme=rx.cond(
                                e["tone"] == "green", "green", rx.cond(e["tone"] == "red", "red", "gray")
                            ),
                            weight="medium",
                            class_name="tabular-nums",
                        )
                    ),
                    rx.table.cell(e["balance_after"], class_name="tabular-nums"),
                    rx.table.cell(e["reason"]),
                    rx.table.cell(e["who"]),
                ],
            ),
        ),
        rx.cond(
            CustomerState.has_more_entries,
            rx.button("Show older entries", variant="soft", on_click=CustomerState.more_entries),
        ),
        _adjust_dialog(),
        spacing="5",
        width="100%",
    )


def customer_page() -> rx.Component:
    return app_page(
        "Customer",
        rx.link(
            rx.hstack(rx.icon("arrow-left", size=14), "All customers", align="center"),
            href=routes.CUSTOMERS,
            size="2",
            margin_bottom="1rem",
            display="inline-block",
        ),
        when_loaded(
            CustomerState.loaded,
            rx.cond(
                CustomerState.found,
                _customer_file(),
                empty_state(
                    "user-x",
                    "Customer not found",
                    "This customer does not exist or is not one of yours.",
                    rx.link(rx.button("Back to customers"), href=routes.CUSTOMERS),
                ),
            ),
        ),
    )
