"""What payments left in the database, read straight from it."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.models import CreditLot, Customer, Purchase, StripeEvent


def purchase_of(engine: Engine, session_id: str) -> Purchase | None:
    with Session(engine) as session:
        return session.exec(select(Purchase).where(Purchase.stripe_session_id == session_id)).first()


def customer_of(engine: Engine, *, creator_id: int, buyer_id: int) -> Customer | None:
    with Session(engine) as session:
        statement = select(Customer).where(Customer.creator_id == creator_id, Customer.buyer_id == buyer_id)
        return session.exec(statement).first()


def lots_of(engine: Engine, customer_id: int) -> list[CreditLot]:
    assert customer_id is not None, "no customer: use lots_of_purchase, which cannot pass vacuously"
    with Session(engine) as session:
        return list(session.exec(select(CreditLot).where(CreditLot.customer_id == customer_id).order_by(CreditLot.id)))


def event_recorded(engine: Engine, event_id: str) -> bool:
    with Session(engine) as session:
        return session.get(StripeEvent, event_id) is not None


def lots_of_purchase(engine: Engine, purchase_id: int) -> list[CreditLot]:
    """The credit lots a purchase granted (at most one), whether or not it has a customer yet."""
    with Session(engine) as session:
        return list(session.exec(select(CreditLot).where(CreditLot.purchase_id == purchase_id)))
