"""`/dashboard/packs`: the creator's packs, the pack form, the switch and the share link."""

from __future__ import annotations

import reflex as rx
import segno

from litesubs.formatting import format_count, input_date, last_valid_day
from litesubs.payments import connect
from litesubs.services import packs
from litesubs.services.errors import DomainError, InvalidRequest, Unauthorized
from litesubs.services.money import CURRENCIES, DEFAULT_CURRENCY, decimal_text, format_money
from litesubs.state.session import SessionState

EMPTY_FORM = {"name": "", "description": "", "price": "", "currency": DEFAULT_CURRENCY, "credits": "", "expires_on": ""}


def _row(summary: packs.PackSummary) -> dict:
    pack = summary.pack
    link = packs.pack_link(pack.public_id)
    return {
        "id": pack.id,
        "name": pack.name,
        "description": pack.description,
        "price": format_money(pack.price_amount, pack.currency),
        "credits": format_count(pack.credits),
        "expiry": f"Valid through {last_valid_day(pack.expires_at)}" if pack.expires_at else "Never expires",
        "status": summary.status,
        "active": pack.is_active,
        "sold": format_count(summary.sold),
        "locked": summary.sold > 0,
        "revenue": format_money(summary.revenue, pack.currency),
        "link": link,
        "qr": segno.make(link, error="m").svg_data_uri(scale=4, border=2),
        "form": {
            "name": pack.name,
            "description": pack.description,
            "price": decimal_text(pack.price_amount, pack.currency),
            "currency": pack.currency,
            "credits": str(pack.credits),
            "expires_on": input_date(pack.expires_at),
        },
    }


class PacksState(SessionState):
    packs: list[dict] = []
    loaded: bool = False
    form_open: bool = False
    editing_id: int = 0
    editing_locked: bool = False
    form_values: dict[str, str] = EMPTY_FORM
    field_errors: dict[str, str] = {}
    form_key: int = 0
    currencies: list[str] = list(CURRENCIES)
    # Platform mode, account not ready: why buyers can't pay yet (empty when they can).
    sales_paused: str = ""

    def _reload(self, creator_id: int) -> None:
        self.packs = [_row(summary) for summary in packs.list_packs(creator_id=creator_id)]
        self.is_creator = self.is_creator or bool(self.packs)  # a first pack turns the creator's dashboard on
        self.loaded = True

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self._reload(user.id)
        self.sales_paused = connect.sales_pause_reason(creator_id=user.id) or ""
        if self.router.url.query_parameters.get("new") == "1" and not self.packs:
            self.open_create()
        return None

    @rx.event
    def open_create(self) -> None:
        self.editing_id, self.editing_locked = 0, False
        self.form_values = dict(EMPTY_FORM)
        self._show_form()

    def _show_form(self) -> None:
        self.field_errors = {}
        self.form_key += 1
        self.form_open = True

    @rx.event
    def open_edit(self, pack_id: int) -> None:
        row = next((row for row in self.packs if row["id"] == pack_id), None)
        if row is None:
            return
        self.editing_id, self.editing_locked = row["id"], row["locked"]
        self.form_values = dict(row["form"])
        self._show_form()

    @rx.event
    def set_form_open(self, is_open: bool) -> None:
        self.form_open = bool(is_open)

    @rx.event
    def save(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        # A sold pack's form has no price fields: its terms come from the values loaded server-side.
        submitted = {name: str(value) for name, value in form.items() if name in EMPTY_FORM and value is not None}
        self.form_values = {**self.form_values, **submitted}
        fields = packs.PackFields(**self.form_values)
        try:
            user = self._require_user()
            if self.editing_id:
                packs.update_pack(creator_id=user.id, pack_id=self.editing_id, fields=fields)
            else:
                packs.create_pack(creator_id=user.id, fields=fields)
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.field_errors = {error.field: error.message}
            return None
        except DomainError as error:
            return rx.toast.error(error.message)
        message = "Pack saved." if self.editing_id else "Pack created. Share its link to start selling."
        self.field_errors = {}
        self.form_open = False
        self._reload(user.id)
        return rx.toast.success(message)

    @rx.event
    def set_active(self, pack_id: int, active: bool) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            pack = packs.set_pack_active(creator_id=user.id, pack_id=int(pack_id), active=bool(active))
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self._reload(user.id)
        return rx.toast.success(f"{pack.name} is {'on sale' if pack.is_active else 'disabled'}.")
