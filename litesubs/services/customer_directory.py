"""A creator's view of their customers: the searchable, sortable, paged table, one customer's file, CSV exports.

Built to stay fast at 100,000 customers: purchase totals are kept on the customer row, every sort
has an index, and only one page of rows is ever loaded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, func, literal_column
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, select

from litesubs.db import read_session
from litesubs.models import ApiKey, Customer, Hold, LedgerEntry, Pack, Purchase, User
from litesubs.services.errors import InvalidRequest
from litesubs.services.holds import HoldSummary, list_holds
from litesubs.services.ledger import MAX_PAGE_SIZE, CustomerBalance, LedgerPage, get_balance, list_entries

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "last_purchase": Customer.last_purchase_at,
    "balance": Customer.balance,
    "credits_purchased": Customer.credits_purchased,
    "first_purchase": Customer.first_purchase_at,
    "name": User.name,
    "email": User.email,
}
EXPORT_BATCH = 1000


@dataclass(frozen=True)
class CustomerRow:
    id: int
    name: str
    email: str
    status: str
    balance: int
    credits_purchased: int
    spent: dict[str, int]  # currency -> minor units, paid purchases
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None


@dataclass(frozen=True)
class CustomerTable:
    rows: list[CustomerRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class PurchaseLine:
    id: int
    pack_name: str
    amount: int
    currency: str
    credits: int
    status: str
    created_at: datetime
    paid_at: datetime | None
    refund_reason: str | None = None  # why Litesubs refunded a paid checkout it could not fulfil


@dataclass(frozen=True)
class CustomerFile:
    """Everything a creator sees about one customer."""

    row: CustomerRow
    balance: CustomerBalance
    purchases: list[PurchaseLine]
    holds: list[HoldSummary]  # active, newest first


def list_customers(
    *,
    creator_id: int,
    search: str = "",
    sort: str = "last_purchase",
    descending: bool = True,
    page: int = 1,
    page_size: int = 25,
    engine: Engine | None = None,
) -> CustomerTable:
    """One page of the creator's customers, searched by name or email, sorted by a column: an indexed one, or the
    balance, which no index names so that debits stay HOT updates (PostgreSQL sorts the creator's rows for it)."""
    if sort not in SORTS:
        raise InvalidRequest("sort", f"Sort by one of {', '.join(SORTS)}.")
    if page_size not in PAGE_SIZES:
        raise InvalidRequest("page_size", f"Show {', '.join(map(str, PAGE_SIZES))} rows a page.")
    page = max(1, int(page))
    offset = (page - 1) * page_size
    column = SORTS[sort]
    order = _order(column, descending=descending)
    own = select(Customer.id).where(Customer.creator_id == creator_id)
    with read_session(engine) as session:
        if search.strip() or column.table is not Customer.__table__:
            matching = _matching(creator_id, search)
            rows = session.exec(matching.order_by(*order).offset(offset).limit(page_size)).all()
            total = session.exec(select(func.count()).select_from(matching.subquery())).one()
        else:  # find the page's ids on the customer index alone, then join the buyers of those rows only
            page_ids = own.order_by(*order).offset(offset).limit(page_size)
            rows = session.exec(_matching(creator_id, "").where(Customer.id.in_(page_ids)).order_by(*order)).all()
            total = session.exec(select(func.count()).select_from(own.subquery())).one()
        spent = _spent(session, [customer.id for customer, _user in rows])
    return CustomerTable(
        rows=[_row(customer, user, spent.get(customer.id, {})) for customer, user in rows],
        total=int(total),
        page=page,
        page_size=page_size,
    )


def customer_file(*, creator_id: int, customer_id: int, engine: Engine | None = None) -> CustomerFile:
    """One customer of this creator (`NotFound` for anyone else's): balance, held credits, lots, active holds and
    purchases."""
    balance = get_balance(creator_id=creator_id, customer_id=customer_id, engine=engine)
    holds = list_holds(
        creator_id=creator_id, customer_id=customer_id, status="active", limit=MAX_PAGE_SIZE, engine=engine
    )
    with read_session(engine) as session:
        customer, user = session.exec(
            select(Customer, User).join(User, User.id == Customer.buyer_id).where(Customer.id == customer_id)
        ).one()
        purchases = session.exec(
            select(Purchase, Pack.name)
            .join(Pack, Pack.id == Purchase.pack_id)
            .where(Purchase.customer_id == customer_id)
            .order_by(Purchase.id.desc())
        ).all()
        spent = _spent(session, [customer_id])
    return CustomerFile(
        row=_row(customer, user, spent.get(customer_id, {})),
        balance=balance,
        purchases=[
            PurchaseLine(
                p.id, name, p.amount, p.currency, p.credits, p.status, p.created_at, p.paid_at, p.refund_reason
            )
            for p, name in purchases
        ],
        holds=list(holds.holds),
    )


def customer_ledger(
    *, creator_id: int, customer_id: int, cursor: str | None = None, limit: int = 25, engine: Engine | None = None
) -> tuple[LedgerPage, dict[int, str], dict[int, str]]:
    """A page of the customer's ledger, a readable name for who made each change, and what each change was."""
    page = list_entries(creator_id=creator_id, customer_id=customer_id, cursor=cursor, limit=limit, engine=engine)
    with read_session(engine) as session:
        names = actor_names(session, creator_id, page.entries)
        hold_ids = {entry.hold_id for entry in page.entries if entry.hold_id is not None}
        holds = {hold.id: hold for hold in session.exec(select(Hold).where(Hold.id.in_(hold_ids)))} if hold_ids else {}
    return page, names, {entry.id: _what(entry, holds.get(entry.hold_id)) for entry in page.entries}


_KINDS = {
    "purchase": "Purchase",
    "adjustment": "Adjustment",
    "debit": "Spent",
    "credit": "Granted",
    "refund": "Refunded",
    "expiry": "Expired",
    "dispute": "Disputed",
}


def _what(entry: LedgerEntry, hold: Hold | None) -> str:
    """A ledger entry in words; a hold's entries say how much it held, spent and gave back."""
    if hold is None:
        return _KINDS.get(entry.kind, entry.kind.capitalize())
    if entry.kind == "hold":
        return f"Held {hold.amount:,} credits"
    if entry.kind == "capture":
        return f"Captured {hold.captured:,} of {hold.amount:,} held; {hold.amount - hold.captured:,} back"
    if hold.status == "expired":
        return f"Hold expired: {hold.amount:,} credits back"
    return f"Released {hold.amount:,} held credits"


def actor_names(
    session: Session, creator_id: int, entries: tuple[LedgerEntry, ...] | list[LedgerEntry]
) -> dict[int, str]:
    """Entry id → who did it, in words: 'You', 'API key "backend"', 'Stripe', 'Buyer' (test checkout), 'Litesubs'."""
    key_ids = {int(e.actor_id) for e in entries if e.actor_type == "api_key" and (e.actor_id or "").isdigit()}
    keys = (
        dict(
            session.exec(
                select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(key_ids), ApiKey.creator_id == creator_id)
            ).all()
        )
        if key_ids
        else {}
    )
    labels = {"creator": "You", "stripe": "Stripe", "system": "Litesubs", "buyer": "Buyer"}
    return {
        e.id: f'API key "{keys.get(int(e.actor_id), "revoked")}"' if e.actor_type == "api_key" else labels[e.actor_type]
        for e in entries
    }


def export_customers_csv(*, creator_id: int, engine: Engine | None = None) -> Iterator[str]:
    """The creator's customers as CSV, streamed in batches so a large export never sits in memory."""
    yield _csv_line(
        ["id", "name", "email", "status", "balance", "credits_purchased", "first_purchase_at", "last_purchase_at"]
    )
    last_id = 0
    while True:
        with read_session(engine) as session:
            batch = session.exec(
                _matching(creator_id, "").where(Customer.id > last_id).order_by(Customer.id).limit(EXPORT_BATCH)
            ).all()
        if not batch:
            return
        for customer, user in batch:
            yield _csv_line(
                [
                    customer.id,
                    user.name,
                    user.email,
                    customer.status,
                    customer.balance,
                    customer.credits_purchased,
                    _iso(customer.first_purchase_at),
                    _iso(customer.last_purchase_at),
                ]
            )
        last_id = batch[-1][0].id


def export_ledger_csv(*, creator_id: int, engine: Engine | None = None) -> Iterator[str]:
    """Every ledger entry of the creator's customers, oldest first, streamed in batches."""
    yield _csv_line(
        [
            "id",
            "created_at",
            "customer_id",
            "email",
            "kind",
            "delta",
            "balance_after",
            "reason",
            "actor_type",
            "actor_id",
            "idempotency_key",
        ]
    )
    last_id = 0
    while True:
        with read_session(engine) as session:
            batch = session.exec(
                select(LedgerEntry, User.email)
                .join(Customer, Customer.id == LedgerEntry.customer_id)
                .join(User, User.id == Customer.buyer_id)
                .where(LedgerEntry.creator_id == creator_id, LedgerEntry.id > last_id)
                .order_by(LedgerEntry.id)
                .limit(EXPORT_BATCH)
            ).all()
        if not batch:
            return
        for entry, email in batch:
            yield _csv_line(
                [
                    entry.id,
                    _iso(entry.created_at),
                    entry.customer_id,
                    email,
                    entry.kind,
                    entry.delta,
                    entry.balance_after,
                    entry.reason,
                    entry.actor_type,
                    entry.actor_id or "",
                    entry.idempotency_key or "",
                ]
            )
        last_id = batch[-1][0].id


def _order(column: InstrumentedAttribute, *, descending: bool) -> list:
    """Walks one index (creator_id, column, id) forwards or backwards (for the balance, a sort in that order).
    Empty dates (NULL) go last when the newest come first; naming NULLS for a NOT NULL column would stop
    PostgreSQL from using the index."""
    if not column.nullable:
        return [column.desc(), Customer.id.desc()] if descending else [column.asc(), Customer.id.asc()]
    if descending:
        return [column.desc().nulls_last(), Customer.id.desc()]
    return [column.asc().nulls_first(), Customer.id.asc()]


def _matching(creator_id: int, search: str) -> Select:
    """The creator's (Customer, User) rows whose email or name contains `search` (case-insensitive)."""
    statement = select(Customer, User).join(User, User.id == Customer.buyer_id).where(Customer.creator_id == creator_id)
    term = "".join(character for character in search if character.isprintable()).strip().lower()
    if term:
        statement = statement.where(_SEARCH_TEXT.like(f"%{_escape_like(term)}%", escape="\\"))
    return statement


# Name and email as one text, apart by a unit separator that no printable search term holds: the expression
# of PostgreSQL's trigram index `ix_user_search_trgm` (migration 0006), so a search reads that one index.
_SEARCH_TEXT = func.lower(User.name).op("||")(literal_column("'\x1f'")).op("||")(User.email)


def _spent(session: Session, customer_ids: list[int]) -> dict[int, dict[str, int]]:
    if not customer_ids:
        return {}
    rows = session.exec(
        select(Purchase.customer_id, Purchase.currency, func.sum(Purchase.amount))
        .where(Purchase.customer_id.in_(customer_ids), Purchase.status == "paid")
        .group_by(Purchase.customer_id, Purchase.currency)
    ).all()
    spent: dict[int, dict[str, int]] = {}
    for customer_id, code, amount in rows:
        spent.setdefault(customer_id, {})[code] = int(amount)
    return spent


def _row(customer: Customer, user: User, spent: dict[str, int]) -> CustomerRow:
    return CustomerRow(
        id=customer.id,
        name=user.name,
        email=user.email,
        status=customer.status,
        balance=customer.balance,
        credits_purchased=customer.credits_purchased,
        spent=spent,
        first_purchase_at=customer.first_purchase_at,
        last_purchase_at=customer.last_purchase_at,
    )


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


# A spreadsheet reads a cell starting with one of these as a formula (OWASP's "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_line(values: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(value) for value in values])
    return buffer.getvalue()


def _inert(value: object) -> object:
    """Text that a spreadsheet shows as text: a leading `'` before what would start a formula, as OWASP advises.

    Numbers stay numbers (a negative delta is not a formula); only text, which buyers and callers choose, is guarded.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
