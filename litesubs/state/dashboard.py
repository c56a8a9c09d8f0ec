"""`/dashboard`: the signed-in creator's numbers."""

from __future__ import annotations

from datetime import date

import reflex as rx

from litesubs.formatting import format_count
from litesubs.services.money import CURRENCIES, format_money
from litesubs.services.overview import creator_overview
from litesubs.settings import get_settings
from litesubs.state.session import SessionState


class DashboardState(SessionState):
    loaded: bool = False
    revenue: str = ""
    revenue_note: str = "paid, after refunds"
    packs_sold: str = "0"
    active_customers: str = "0"
    customers: str = "0"
    credits_sold: str = "0"
    credits_spent: str = "0"
    pack_count: int = 0
    chart_currency: str = ""
    chart: list[dict] = []

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        overview = creator_overview(creator_id=user.id)
        self.revenue_note = (
            "yours after the platform fee and refunds" if get_settings().platform_mode else "paid, after refunds"
        )
        self.revenue = " · ".join(format_money(amount, code) for code, amount in overview.revenue.items()) or "$0.00"
        self.packs_sold = format_count(overview.packs_sold)
        self.active_customers = format_count(overview.active_customers)
        self.customers = format_count(overview.customers)
        self.credits_sold = format_count(overview.credits_sold)
        self.credits_spent = format_count(overview.credits_spent)
        self.pack_count = overview.pack_count
        self.chart_currency = overview.chart_currency or ""
        scale = 10 ** CURRENCIES[overview.chart_currency].exponent if overview.chart_currency else 1
        self.chart = [
            {"day": date.fromisoformat(point.day).strftime("%b %-d"), "revenue": point.amount / scale}
            for point in overview.chart
        ]
        self.loaded = True
        return None
