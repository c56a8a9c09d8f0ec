"""`/dashboard/customers` and one customer's page: thin doors into the customer directory and the ledger."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.formatting import count_of, format_count, iso
from litesubs.services import customer_directory as directory
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import DomainError, InvalidRequest, NotFound, Unauthorized
from litesubs.services.ledger import Actor, adjust, parse_credits
from litesubs.services.money import format_money
from litesubs.state.session import SessionState

ENTRY_PAGE = 25


def _spent(spent: dict[str, int]) -> str:
    return " · ".join(format_money(amount, code) for code, amount in spent.items()) or "—"


def _row(row: directory.CustomerRow) -> dict:
    return {
        "id": row.id,
        "href": f"{routes.CUSTOMERS}/{row.id}",
        "name": row.name,
        "email": row.email,
        "status": row.status,
        "balance": format_count(row.balance),
        "credits_purchased": format_count(row.credits_purchased),
        "spent": _spent(row.spent),
        "first_purchase": iso(row.first_purchase_at),
        "last_purchase": iso(row.last_purchase_at),
    }


class CustomersState(SessionState):
    rows: list[dict] = []
    total: int = 0
    page: int = 1
    pages: int = 1
    page_size: str = "25"  # a select's value
    search: str = ""
    sort: str = "last_purchase"
    descending: bool = True
    loaded: bool = False

    @rx.var
    def pager_label(self) -> str:
        return f"{count_of(self.total, 'customer')} · page {self.page:,} of {self.pages:,}"

    def _refresh(self) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            table = directory.list_customers(
                creator_id=user.id,
                search=self.search,
                sort=self.sort,
                descending=self.descending,
                page=self.page,
                page_size=int(self.page_size),
            )
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self.rows = [_row(row) for row in table.rows]
        self.total, self.pages, self.page = table.total, table.pages, min(table.page, table.pages)
        self.loaded = True
        return None

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        if self._page_user() is None:
            return self._login_redirect()
        return self._refresh()

    @rx.event
    def search_for(self, text: str) -> rx.event.EventSpec | None:
        self.search, self.page = str(text)[:200], 1
        return self._refresh()

    @rx.event
    def sort_by(self, column: str) -> rx.event.EventSpec | None:
        if column not in directory.SORTS:
            return None
        self.descending = not self.descending if column == self.sort else column not in ("name", "email")
        self.sort, self.page = column, 1
        return self._refresh()

    @rx.event
    def go_to_page(self, page: int) -> rx.event.EventSpec | None:
        self.page = max(1, min(int(page), self.pages))
        return self._refresh()

    @rx.event
    def set_page_size(self, size: str) -> rx.event.EventSpec | None:
        if size in {str(n) for n in directory.PAGE_SIZES}:
            self.page_size, self.page = size, 1
        return self._refresh()


class CustomerState(SessionState):
    """One customer of the signed-in creator. The id comes from the URL and is re-checked on every handler."""

    _customer_id: int = 0
    _cursor: str | None = None
    found: bool = True
    loaded: bool = False
    customer: dict = {}
    lots: list[dict] = []
    holds: list[dict] = []
    purchases: list[dict] = []
    entries: list[dict] = []
    has_more_entries: bool = False
    adjust_open: bool = False
    adjust_direction: str = "add"
    adjust_errors: dict[str, str] = {}
    adjust_key: int = 0

    def _load_file(self, creator_id: int) -> None:
        file = directory.customer_file(creator_id=creator_id, customer_id=self._customer_id)
        row = _row(file.row)
        self.customer = {**row, "balance_number": file.row.balance, "held": format_count(file.balance.held)}
        self.lots = [
            {
                "source": "Purchase" if lot.source == "purchase" else "Grant",
                "granted": format_count(lot.granted),
                "remaining": format_count(lot.remaining),
                "expires": iso(lot.expires_at),
                "created": iso(lot.created_at),
            }
            for lot in file.balance.lots
        ]
        self.holds = [
            {
                "amount": format_count(hold.amount),
                "reason": hold.reason or "—",
                "expires": iso(hold.expires_at),
                "created": iso(hold.created_at),
            }
            for hold in file.holds
        ]
        self.purchases = [
            {
                "pack": line.pack_name,
                "amount": format_money(line.amount, line.currency),
                "credits": format_count(line.credits),
                "status": line.status,
                "note": f"Refunded automatically: {line.refund_reason}" if line.refund_reason else "",
                "date": iso(line.paid_at or line.created_at),
            }
            for line in file.purchases
        ]

    def _load_entries(self, creator_id: int, *, more: bool) -> None:
        page, names, what = directory.customer_ledger(
            creator_id=creator_id,
            customer_id=self._customer_id,
            cursor=self._cursor if more else None,
            limit=ENTRY_PAGE,
        )
        rows = [
            {
                "when": iso(entry.created_at),
                "kind": what[entry.id],
                "delta": f"{entry.delta:+,}" if entry.delta else "0",
                "tone": "green" if entry.delta > 0 else "red" if entry.delta < 0 else "gray",
                "balance_after": format_count(entry.balance_after),
                "reason": entry.reason or "—",
                "who": names[entry.id],
            }
            for entry in page.entries
        ]
        self.entries = [*self.entries, *rows] if more else rows
        self._cursor, self.has_more_entries = page.next_cursor, page.next_cursor is not None

    def _reload(self, creator_id: int) -> None:
        self._load_file(creator_id)
        self._load_entries(creator_id, more=False)

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.adjust_open, self.loaded = False, False
        try:
            self._customer_id = int(self.router.page.params.get("customer_id", "0"))
            self._reload(user.id)
            self.found = True
        except (ValueError, NotFound):
            self.found, self.customer, self.entries = False, {}, []
        self.loaded = True
        return None

    @rx.event
    def more_entries(self) -> rx.event.EventSpec | None:
        try:
            self._load_entries(self._require_user().id, more=True)
        except Unauthorized:
            return self._login_redirect()
        return None

    @rx.event
    def open_adjust(self, direction: str) -> None:
        self.adjust_direction = "remove" if direction == "remove" else "add"
        self.adjust_errors = {}
        self.adjust_key += 1
        self.adjust_open = True

    @rx.event
    def set_adjust_open(self, is_open: bool) -> None:
        self.adjust_open = bool(is_open)

    @rx.event
    def adjust_credits(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            amount = parse_credits(str(form.get("amount", "")), field="amount")
            delta = -amount if self.adjust_direction == "remove" else amount
            result = adjust(
                creator_id=user.id,
                customer_id=self._customer_id,
                delta=delta,
                reason=str(form.get("reason", "")),
                actor=Actor("creator", user.id),
            )
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.adjust_errors = {"amount" if error.field == "delta" else error.field: error.message}
            return None
        except DomainError as error:
            self.adjust_errors = {"amount": error.message}
            return None
        self.adjust_open = False
        self._reload(user.id)
        return rx.toast.success(f"Balance is now {result.balance_after:,} credits.")

    @rx.event
    def set_suspended(self, suspended: bool) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            change = suspend_customer if suspended else reactivate_customer
            change(creator_id=user.id, customer_id=self._customer_id)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self._reload(user.id)
        return rx.toast.success("Customer suspended." if suspended else "Customer reactivated.")
