"""A creator's customers as the creator's own software sees them through the API: one customer by id or
buyer email with balance and lots, or every customer a page at a time with a cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, false, func
from sqlmodel import Session, select

from litesubs.db import read_connection, read_session
from litesubs.models import CreditLot, Customer, User, utcnow
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.customers import parse_ref
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.ledger import MAX_PAGE_SIZE, CustomerBalance, get_balance


@dataclass(frozen=True)
class CustomerSummary:
    """A customer as the creator's software sees it through the API."""

    id: int
    email: str
    email_verified: bool
    name: str
    status: str
    balance: int
    created_at: datetime


@dataclass(frozen=True)
class CustomerPage:
    """Customers, newest first; pass `next_cursor` to get the following page (None at the end)."""

    customers: list[CustomerSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class CustomerAccount:
    customer: CustomerSummary
    balance: CustomerBalance


def page_customers(
    *,
    creator_id: int,
    email: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> CustomerPage:
    """Every customer of the creator (or the one with this buyer email), newest first, `limit` (1 to 100) a page.

    Balances leave out credits whose time has passed but which no read or write has expired yet.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"Ask for 1 to {MAX_PAGE_SIZE} customers.")
    statement = select(Customer, User).join(User, User.id == Customer.buyer_id).where(Customer.creator_id == creator_id)
    if email is not None:
        # No email holds a NUL, and PostgreSQL refuses to compare one.
        statement = statement.where(User.email == email.strip().lower() if "\x00" not in email else false())
    if cursor is not None:
        statement = statement.where(Customer.id < decode_cursor(cursor))
    with read_session(engine) as session:
        rows = session.exec(statement.order_by(Customer.id.desc()).limit(limit + 1)).all()
        due = _due_credits(session, [customer.id for customer, _user in rows], now or utcnow())
    summaries = [
        _summary(customer, user, balance=customer.balance - due.get(customer.id, 0)) for customer, user in rows
    ]
    if len(summaries) <= limit:
        return CustomerPage(customers=summaries, next_cursor=None)
    return CustomerPage(customers=summaries[:limit], next_cursor=encode_cursor(summaries[limit - 1].id))


def customer_account(*, creator_id: int, ref: int | str, engine: Engine | None = None) -> CustomerAccount:
    """The creator's customer addressed by id or buyer email (`NotFound` otherwise), with balance and open lots."""
    parsed = parse_ref(ref)
    statement = _ACCOUNT_BY_ID if isinstance(parsed, int) else _ACCOUNT_BY_EMAIL
    with read_connection(engine) as connection:
        customer = connection.execute(statement, {"creator_id": creator_id, "ref": parsed}).first()
    if customer is None:
        raise NotFound("No such customer.")
    balance = get_balance(creator_id=creator_id, customer_id=customer.id, engine=engine)
    summary = CustomerSummary(
        id=customer.id,
        email=customer.email,
        email_verified=customer.email_verified_at is not None,
        name=customer.name,
        status=balance.status,
        balance=balance.balance,
        created_at=customer.created_at,
    )
    return CustomerAccount(customer=summary, balance=balance)


# The API's customer look-ups, built once: by id, or by the buyer's normalised email.
_ACCOUNT = (
    select(Customer.id, Customer.created_at, User.email, User.email_verified_at, User.name)
    .join(User, User.id == Customer.buyer_id)
    .where(Customer.creator_id == bindparam("creator_id"))
)
_ACCOUNT_BY_ID = _ACCOUNT.where(Customer.id == bindparam("ref"))
_ACCOUNT_BY_EMAIL = _ACCOUNT.where(User.email == bindparam("ref"))


def _summary(customer: Customer, user: User, *, balance: int, status: str | None = None) -> CustomerSummary:
    return CustomerSummary(
        id=customer.id,
        email=user.email,
        email_verified=user.email_verified_at is not None,
        name=user.name,
        status=status or customer.status,
        balance=balance,
        created_at=customer.created_at,
    )


def _due_credits(session: Session, customer_ids: list[int], now: datetime) -> dict[int, int]:
    """Customer id → credits still held by lots whose expiry has passed (the next read or write expires them)."""
    if not customer_ids:
        return {}
    rows = session.exec(
        select(CreditLot.customer_id, func.sum(CreditLot.remaining))
        .where(CreditLot.customer_id.in_(customer_ids), CreditLot.remaining > 0, CreditLot.expires_at <= now)
        .group_by(CreditLot.customer_id)
    ).all()
    return {customer_id: int(credits) for customer_id, credits in rows}
