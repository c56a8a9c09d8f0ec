"""Times as the viewer reads them: stored in UTC, shown in the browser's own time zone."""

from __future__ import annotations

import reflex as rx

DATE = "MMM D, YYYY"
DATE_TIME = "MMM D, YYYY, HH:mm"


def local_time(iso: rx.Var, *, date_only: bool = False, empty: str = "—") -> rx.Component:
    """An ISO 8601 moment (state holds `formatting.iso(...)`) in the viewer's time zone; `empty` for ""."""
    return rx.cond(
        iso != "",
        rx.moment(date=iso, format=DATE if date_only else DATE_TIME, local=True),
        rx.text(empty, as_="span"),
    )
