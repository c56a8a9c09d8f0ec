"""`/dashboard`: the creator's overview."""

from __future__ import annotations

import reflex as rx

from litesubs import routes
from litesubs.components.app_shell import app_page
from litesubs.components.status import empty_state, when_loaded
from litesubs.state.dashboard import DashboardState


def _stat_card(icon: str, label: str, value: rx.Var, note: rx.Var | str = "") -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(rx.icon(icon, size=16), rx.text(label, size="2"), color_scheme="gray", align="center"),
            rx.text(value, size="7", weight="bold", class_name="tabular-nums", data_testid=f"stat-{label}"),
            rx.text(note, size="1", color_scheme="gray"),
            spacing="1",
        ),
        size="2",
    )


def _chart() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Revenue, last 30 days", size="4", as_="h2"),
                rx.spacer(),
                rx.badge(DashboardState.chart_currency, variant="soft"),
                width="100%",
            ),
            rx.cond(
                DashboardState.chart.length() > 0,
                rx.recharts.bar_chart(
                    rx.recharts.bar(data_key="revenue", fill="var(--accent-9)", radius=[4, 4, 0, 0], name="Revenue"),
                    rx.recharts.x_axis(data_key="day", tick_line=False, interval="preserveStartEnd"),
                    rx.recharts.y_axis(width=48, tick_line=False),
                    rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                    rx.recharts.graphing_tooltip(),
                    data=DashboardState.chart,
                    width="100%",
                    height=260,
                ),
                rx.center(
                    rx.text("Sales will appear here once buyers pay for a pack.", color_scheme="gray"),
                    height="200px",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        size="3",
        width="100%",
    )


def _overview() -> rx.Component:
    return rx.vstack(
        rx.grid(
            _stat_card("banknote", "Revenue", DashboardState.revenue, DashboardState.revenue_note),
            _stat_card("shopping-bag", "Packs sold", DashboardState.packs_sold),
            _stat_card(
                "users",
                "Active customers",
                DashboardState.active_customers,
                "with credits left, of " + DashboardState.customers.to(str),
            ),
            _stat_card(
                "coins",
                "Credits spent",
                DashboardState.credits_spent,
                "of " + DashboardState.credits_sold.to(str) + " sold",
            ),
            columns=rx.breakpoints(initial="1", sm="2", lg="4"),
            spacing="4",
            width="100%",
        ),
        _chart(),
        spacing="4",
        width="100%",
    )


def dashboard_page() -> rx.Component:
    return app_page(
        "Overview",
        when_loaded(
            DashboardState.loaded,
            rx.cond(
                DashboardState.pack_count > 0,
                _overview(),
                empty_state(
                    "sparkles",
                    "Welcome to Litesubs, " + DashboardState.user_name.to(str),
                    "Create your first credit pack: name it, price it, then share its link. Sales and credits "
                    "show up here.",
                    rx.link(
                        rx.button(rx.icon("plus", size=16), "Create your first pack"), href=routes.PACKS + "?new=1"
                    ),
                ),
            ),
        ),
    )
