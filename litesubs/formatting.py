"""How dates and numbers read on every page (money lives in services/money.py)."""

from __future__ import annotations

from datetime import datetime, timedelta


def iso(moment: datetime | None) -> str:
    """What a page needs to show a moment in the viewer's time zone (components/time.py); "" for none."""
    return moment.isoformat() if moment else ""


def format_date(moment: datetime | None, *, empty: str = "—") -> str:
    """'Dec 31, 2026' (UTC)."""
    return moment.strftime("%b %-d, %Y") if moment else empty


def last_valid_day(expires_at: datetime | None) -> str:
    """Packs expire at the midnight after the chosen day; show that chosen day ('Valid through ...')."""
    return format_date(expires_at - timedelta(microseconds=1)) if expires_at else ""


def input_date(expires_at: datetime | None) -> str:
    """The YYYY-MM-DD an expiry date input shows for a stored expiry."""
    return (expires_at - timedelta(microseconds=1)).date().isoformat() if expires_at else ""


def format_count(number: int) -> str:
    return f"{number:,}"


def count_of(number: int, noun: str) -> str:
    """'1 customer', '1,200 customers': the number with thousands separators and the noun in its number."""
    return f"{number:,} {noun if number == 1 else noun + 's'}"
