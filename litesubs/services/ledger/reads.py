"""The ledger's reads: a customer's balance with its lots (`get_balance`) and its ledger (`list_entries`).

Both read without a lock in the common case; only when a lot or hold may be due do they take the customer's
lock and expire it first, so what they show is never out of date (`read_current`, which `holds` reads through
too). Start at `get_balance`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Row, bindparam
from sqlmodel import Session, select

from litesubs.db import read_connection, read_session, write_session
from litesubs.models import CreditLot, Customer, LedgerEntry, utcnow
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.ledger.model import MAX_PAGE_SIZE, CustomerBalance, LedgerPage, LotSummary
from litesubs.services.ledger.rules import SPENDING_ORDER, has_due_lots
from litesubs.services.ledger.transaction import lock_customer

T = TypeVar("T")


def get_balance(
    *, creator_id: int, customer_id: int, now: datetime | None = None, engine: Engine | None = None
) -> CustomerBalance:
    """The customer's balance, held credits, status and unexpired lots (in spending order), after expiring what is due.

    Balance checks are frequent and rarely find a lot or hold due, so they read first, without a lock, in one
    statement (one snapshot of customer and lots); only when something is due do they take the lock and expire it.
    """
    now = now or utcnow()
    with read_connection(engine) as connection:
        rows = connection.execute(_BALANCE, {"customer_id": customer_id, "creator_id": creator_id}).all()
    if not rows:
        raise NotFound("No such customer.")
    if not has_due_lots(rows[0], now):
        lots = [row for row in rows if row.id is not None]
        return _balance_of(customer_id, rows[0], lots=lots)
    with write_session(engine) as session:
        customer = lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=now)
        return _balance_of(customer.id, customer, lots=_open_lots(session, customer.id))


def _balance_of(customer_id: int, customer: Customer | Row, *, lots: Iterable[Any]) -> CustomerBalance:
    """The balance with its open lots, given in spending order (lot rows or `CreditLot`s)."""
    summaries = tuple(
        LotSummary(
            id=lot.id,
            source=lot.source,
            granted=lot.granted,
            remaining=lot.remaining,
            expires_at=lot.expires_at,
            created_at=lot.created_at,
        )
        for lot in lots
    )
    return CustomerBalance(
        customer_id=customer_id, balance=customer.balance, held=customer.held, status=customer.status, lots=summaries
    )


def list_entries(
    *,
    creator_id: int,
    customer_id: int,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerPage:
    """The customer's ledger, newest first, `limit` (1 to 100) entries a page, after expiring what is due.

    Like `get_balance`, a plain read; the customer is locked only when a lot may be due.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"Ask for 1 to {MAX_PAGE_SIZE} entries.")
    statement = select(LedgerEntry).where(LedgerEntry.customer_id == customer_id)
    if cursor is not None:
        statement = statement.where(LedgerEntry.id < decode_cursor(cursor))
    statement = statement.order_by(LedgerEntry.id.desc()).limit(limit + 1)
    entries = read_current(
        creator_id=creator_id,
        customer_id=customer_id,
        read=lambda session: tuple(session.exec(statement)),
        now=now or utcnow(),
        engine=engine,
    )
    if len(entries) <= limit:
        return LedgerPage(entries=entries, next_cursor=None)
    return LedgerPage(entries=entries[:limit], next_cursor=encode_cursor(entries[limit - 1].id))


def read_current(
    *, creator_id: int, customer_id: int, read: Callable[[Session], T], now: datetime, engine: Engine | None
) -> T:
    """`read` of the customer's rows as they are at `now` (`NotFound` for anyone else's customer): a plain read,
    unless a lot or hold of the customer is due; then under the customer's lock, after expiring it, so the read
    shows its expiry or release."""
    with read_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.id == customer_id, Customer.creator_id == creator_id)
        ).first()
        if customer is None:
            raise NotFound("No such customer.")
        if not has_due_lots(customer, now):
            return read(session)
    with write_session(engine) as session:
        lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=now)
        return read(session)


# `get_balance`'s read: the customer's balance, held credits, status and next expiry, with its open lots in
# spending order.
_BALANCE = (
    select(
        Customer.balance,
        Customer.held,
        Customer.status,
        Customer.next_expiry_at,
        *(
            getattr(CreditLot, column)
            for column in ("id", "source", "granted", "remaining", "expires_at", "created_at")
        ),
    )
    .select_from(Customer)
    .outerjoin(CreditLot, (CreditLot.customer_id == Customer.id) & (CreditLot.remaining > 0))
    .where(Customer.id == bindparam("customer_id"), Customer.creator_id == bindparam("creator_id"))
    .order_by(*SPENDING_ORDER)
)


def _open_lots(session: Session, customer_id: int) -> list[CreditLot]:
    """The customer's lots that still hold credits, in spending order.

    Soonest expiry first, never-expiring lots last, older first on ties (id breaks equal times).
    """
    statement = (
        select(CreditLot)
        .where(CreditLot.customer_id == customer_id, CreditLot.remaining > 0)
        .order_by(*SPENDING_ORDER)
        .execution_options(populate_existing=True)
    )
    return list(session.exec(statement))
