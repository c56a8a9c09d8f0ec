"""The buyer's wallet: their credits with each creator, the lots they will spend, purchases and recent changes.

Only the buyer's own customers appear, each read through `ledger.get_balance`, so lots whose time
has passed are expired (with their ledger entries) before the wallet shows a balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, select

from litesubs.db import read_session
from litesubs.models import Customer, LedgerEntry, Pack, Purchase, User, utcnow
from litesubs.services.ledger import LotSummary, get_balance

RECENT_ENTRIES = 10


@dataclass(frozen=True)
class WalletPurchase:
    purchase_id: int
    pack_name: str
    amount: int
    currency: str
    credits: int
    status: str  # paid | refunded | failed | mismatch (paid, not granted: the creator will sort it out)
    created_at: datetime
    paid_at: datetime | None


@dataclass(frozen=True)
class WalletEntry:
    created_at: datetime
    kind: str  # purchase | adjustment | debit | credit | refund | expiry | hold | capture | release
    delta: int
    balance_after: int
    reason: str


@dataclass(frozen=True)
class BuyAgain:
    """A pack the buyer paid for before that is still on sale: one click back into checkout."""

    public_id: str
    name: str
    price_amount: int
    currency: str
    credits: int


@dataclass(frozen=True)
class WalletAccount:
    """The buyer's credits with one creator: lots in spending order, purchases and entries newest first."""

    creator_id: int
    creator_name: str
    customer_id: int
    status: str  # active | suspended
    balance: int
    lots: tuple[LotSummary, ...]
    purchases: tuple[WalletPurchase, ...]
    recent_entries: tuple[WalletEntry, ...]
    last_activity_at: datetime
    buy_again: tuple[BuyAgain, ...] = ()


def wallet_for_buyer(
    *, buyer_id: int, engine: Engine | None = None, now: datetime | None = None
) -> tuple[WalletAccount, ...]:
    """The buyer's accounts, most recent activity first.

    A creator appears once the buyer has a purchase that went beyond checkout (pending ones are
    abandoned or still processing) or any change of credits.
    """
    now = now or utcnow()
    with read_session(engine) as session:
        customers = session.exec(
            select(Customer, User.name).join(User, User.id == Customer.creator_id).where(Customer.buyer_id == buyer_id)
        ).all()
    accounts = [_account(engine, customer, creator_name, now=now) for customer, creator_name in customers]
    shown = [account for account in accounts if account.purchases or account.recent_entries]
    return tuple(sorted(shown, key=lambda account: (account.last_activity_at, account.customer_id), reverse=True))


def _account(engine: Engine | None, customer: Customer, creator_name: str, *, now: datetime) -> WalletAccount:
    balance = get_balance(creator_id=customer.creator_id, customer_id=customer.id, now=now, engine=engine)
    with read_session(engine) as session:
        purchases = _purchases(session, customer.id)
        entries = _recent_entries(session, customer.id)
        buy_again = _packs_on_sale(session, customer.id, now)
    activity = [customer.created_at] + [p.created_at for p in purchases] + [e.created_at for e in entries]
    return WalletAccount(
        creator_id=customer.creator_id,
        creator_name=creator_name,
        customer_id=customer.id,
        status=balance.status,
        balance=balance.balance,
        lots=balance.lots,
        purchases=purchases,
        recent_entries=entries,
        last_activity_at=max(activity),
        buy_again=buy_again,
    )


def _purchases(session: Session, customer_id: int) -> tuple[WalletPurchase, ...]:
    rows = session.exec(
        select(Purchase, Pack.name)
        .join(Pack, Pack.id == Purchase.pack_id)
        .where(Purchase.customer_id == customer_id, Purchase.status != "pending")
        .order_by(Purchase.created_at.desc(), Purchase.id.desc())
    ).all()
    return tuple(
        WalletPurchase(
            purchase_id=purchase.id,
            pack_name=pack_name,
            amount=purchase.amount,
            currency=purchase.currency,
            credits=purchase.credits,
            status=purchase.status,
            created_at=purchase.created_at,
            paid_at=purchase.paid_at,
        )
        for purchase, pack_name in rows
    )


def _packs_on_sale(session: Session, customer_id: int, now: datetime) -> tuple[BuyAgain, ...]:
    """The packs this customer paid for that are still on sale, the most recently bought first."""
    last_bought = func.max(Purchase.id).label("last_bought")
    rows = session.exec(
        select(Pack, last_bought)
        .join(Purchase, Purchase.pack_id == Pack.id)
        .where(
            Purchase.customer_id == customer_id,
            Purchase.status == "paid",
            Pack.is_active.is_(True),
            or_(Pack.expires_at.is_(None), Pack.expires_at > now),
        )
        .group_by(Pack.id)
        .order_by(last_bought.desc())
    ).all()
    return tuple(
        BuyAgain(
            public_id=pack.public_id,
            name=pack.name,
            price_amount=pack.price_amount,
            currency=pack.currency,
            credits=pack.credits,
        )
        for pack, _last in rows
    )


def _recent_entries(session: Session, customer_id: int) -> tuple[WalletEntry, ...]:
    entries = session.exec(
        select(LedgerEntry)
        .where(LedgerEntry.customer_id == customer_id)
        .order_by(LedgerEntry.id.desc())
        .limit(RECENT_ENTRIES)
    ).all()
    return tuple(
        WalletEntry(
            created_at=entry.created_at,
            kind=entry.kind,
            delta=entry.delta,
            balance_after=entry.balance_after,
            reason=entry.reason,
        )
        for entry in entries
    )
