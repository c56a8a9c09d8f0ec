"""Customers: the relationship between a creator and a buyer (one per pair), and its status.

A customer's credits belong to `litesubs.services.ledger`; this module creates, finds, locks and
suspends the relationship itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from litesubs.db import read_session, write_session
from litesubs.models import Customer, User, utcnow
from litesubs.services import webhooks
from litesubs.services.errors import CustomerSuspended, NotFound

ACTIVE = "active"
SUSPENDED = "suspended"
MAX_ID = 2**31 - 1  # ids are 32-bit integers


def get_or_create_customer(*, creator_id: int, buyer_id: int, engine: Engine | None = None) -> Customer:
    """The creator's customer for this buyer, created on first use."""
    with write_session(engine) as session:
        return get_or_create_customer_in_session(session, creator_id=creator_id, buyer_id=buyer_id)


def get_or_create_customer_in_session(session: Session, *, creator_id: int, buyer_id: int) -> Customer:
    """Like `get_or_create_customer`, in the caller's transaction (payment fulfilment creates more in the same commit).

    Safe against a concurrent creation of the same pair: our insert then fails at the unique
    constraint (inside a savepoint, so the caller's transaction goes on) and we read the other one.
    """
    existing = _customer_of_pair(session, creator_id=creator_id, buyer_id=buyer_id)
    if existing is not None:
        return existing
    customer = Customer(creator_id=creator_id, buyer_id=buyer_id)
    try:
        with session.begin_nested():
            session.add(customer)
    except IntegrityError:
        customer = _customer_of_pair(session, creator_id=creator_id, buyer_id=buyer_id)
        if customer is None:
            raise  # not the pair's uniqueness: a user that does not exist
    return customer


def customer_id_of(*, creator_id: int, ref: int | str, engine: Engine | None = None) -> int:
    """The id of the customer `ref` names, for an operation that locks the customer anyway.

    A numeric reference is its own answer without a query: the lock that follows checks that the
    customer is this creator's (`NotFound` otherwise). An email is looked up.
    """
    parsed = parse_ref(ref)
    if isinstance(parsed, int):
        return parsed
    return find_customer(creator_id=creator_id, ref=parsed, engine=engine).id


def find_customer(*, creator_id: int, ref: int | str, engine: Engine | None = None) -> Customer:
    """The creator's customer addressed by its id or by the buyer's email; `NotFound` otherwise.

    Its `balance` is the cached one: `ledger.get_balance` first expires what is due.
    """
    parsed = parse_ref(ref)
    statement = select(Customer).where(Customer.creator_id == creator_id)
    if isinstance(parsed, int):
        statement = statement.where(Customer.id == parsed)
    else:
        statement = statement.join(User, User.id == Customer.buyer_id).where(User.email == parsed)
    with read_session(engine) as session:
        customer = session.exec(statement).first()
    if customer is None:
        raise NotFound("No such customer.")
    return customer


def parse_ref(ref: int | str) -> int | str:
    """A customer reference as the database compares it: an id, or a normalised email; `NotFound` if it cannot be."""
    if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
        if not 0 < int(ref) <= MAX_ID:
            raise NotFound("No such customer.")  # the databases refuse to compare a larger number
        return int(ref)
    if "\x00" in ref:
        raise NotFound("No such customer.")  # no email holds a NUL, and PostgreSQL refuses to compare one
    return ref.strip().lower()


def suspend_customer(
    *, creator_id: int, customer_id: int, engine: Engine | None = None, now: datetime | None = None
) -> Customer:
    """Suspend: the customer can no longer spend or buy; the creator can still adjust credits by hand."""
    return _set_status(engine, creator_id=creator_id, customer_id=customer_id, status=SUSPENDED, now=now)


def reactivate_customer(
    *, creator_id: int, customer_id: int, engine: Engine | None = None, now: datetime | None = None
) -> Customer:
    """Lift a suspension."""
    return _set_status(engine, creator_id=creator_id, customer_id=customer_id, status=ACTIVE, now=now)


def ensure_active(customer: Customer) -> None:
    """Raise `CustomerSuspended` unless the customer may spend and buy."""
    if customer.status == SUSPENDED:
        raise CustomerSuspended()


def lock_customer_row(session: Session, *, creator_id: int, customer_id: int) -> Customer:
    """The creator's customer, locked until the caller's transaction ends; `NotFound` otherwise.

    A row lock on PostgreSQL; on SQLite the caller's `write_session` already holds the database's
    write lock. The row is read afresh even if the session had loaded it before the lock.
    Before changing credits use `ledger.lock_customer`, which also expires what is due.
    """
    statement = (
        select(Customer)
        .where(Customer.id == customer_id, Customer.creator_id == creator_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    customer = session.exec(statement).first()
    if customer is None:
        raise NotFound("No such customer.")
    return customer


def _set_status(
    engine: Engine | None, *, creator_id: int, customer_id: int, status: str, now: datetime | None
) -> Customer:
    with write_session(engine) as session:
        customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
        if customer.status != status:
            customer.status = status
            customer.updated_at = now or utcnow()
            session.add(customer)
            webhooks.customer_status_changed(session, customer, now=customer.updated_at)
    return customer


def _customer_of_pair(session: Session, *, creator_id: int, buyer_id: int) -> Customer | None:
    statement = select(Customer).where(Customer.creator_id == creator_id, Customer.buyer_id == buyer_id)
    return session.exec(statement).first()
