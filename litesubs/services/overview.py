"""The numbers on a creator's dashboard: revenue, packs sold, customers, credits sold vs spent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from litesubs.db import read_session
from litesubs.models import Customer, Hold, LedgerEntry, Pack, Purchase, utcnow

CHART_DAYS = 30
# What a sale earns its creator: the price paid, less the platform's fee (platform mode; 0 otherwise).
EARNED = Purchase.amount - Purchase.platform_fee


@dataclass(frozen=True)
class DailyRevenue:
    day: str  # YYYY-MM-DD (UTC)
    amount: int


@dataclass(frozen=True)
class Overview:
    revenue: dict[str, int]  # currency -> minor units earned after the platform fee, largest first
    packs_sold: int
    active_customers: int
    customers: int
    credits_sold: int
    credits_spent: int
    pack_count: int
    chart_currency: str | None
    chart: list[DailyRevenue]


def creator_overview(*, creator_id: int, engine: Engine | None = None, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    paid = (Purchase.creator_id == creator_id) & (Purchase.status == "paid")
    with read_session(engine) as session:
        revenue_rows = session.exec(
            select(Purchase.currency, func.sum(EARNED), func.count(), func.sum(Purchase.credits))
            .where(paid)
            .group_by(Purchase.currency)
            .order_by(func.sum(EARNED).desc())
        ).all()
        customers, active_customers = session.exec(
            select(func.count(), func.count().filter((Customer.balance > 0) & (Customer.status == "active"))).where(
                Customer.creator_id == creator_id
            )
        ).one()
        credits_spent = session.exec(
            select(func.coalesce(func.sum(-LedgerEntry.delta), 0)).where(
                LedgerEntry.creator_id == creator_id, LedgerEntry.kind == "debit"
            )
        ).one()
        credits_spent += session.exec(  # what captured holds spent
            select(func.coalesce(func.sum(Hold.captured), 0)).where(Hold.creator_id == creator_id)
        ).one()
        pack_count = session.exec(select(func.count()).where(Pack.creator_id == creator_id)).one()
        chart_currency = revenue_rows[0][0] if revenue_rows else None
        chart = _daily_revenue(session, creator_id, chart_currency, now) if chart_currency else []
    return Overview(
        revenue={code: int(amount) for code, amount, _count, _credits in revenue_rows},
        packs_sold=sum(int(count) for _code, _amount, count, _credits in revenue_rows),
        active_customers=int(active_customers),
        customers=int(customers),
        credits_sold=sum(int(credits) for _code, _amount, _count, credits in revenue_rows),
        credits_spent=int(credits_spent),
        pack_count=int(pack_count),
        chart_currency=chart_currency,
        chart=chart,
    )


def _daily_revenue(session: Session, creator_id: int, code: str, now: datetime) -> list[DailyRevenue]:
    """Revenue per UTC day for the last CHART_DAYS days, with the quiet days as zeros."""
    start = (now - timedelta(days=CHART_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = func.date(Purchase.paid_at)
    rows = session.exec(
        select(day, func.sum(EARNED))
        .where(
            Purchase.creator_id == creator_id,
            Purchase.status == "paid",
            Purchase.currency == code,
            Purchase.paid_at >= start,
        )
        .group_by(day)
    ).all()
    totals = {str(d): int(amount) for d, amount in rows}
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(CHART_DAYS)]
    return [DailyRevenue(d, totals.get(d, 0)) for d in days]
