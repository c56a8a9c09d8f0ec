"""One-line builders for ledger tests: a creator's customer, a paid purchase's lot."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import Customer, LedgerEntry, Purchase
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, LedgerResult, grant_in_session, lock_customer
from tests.conftest import create_user
from tests.factories import make_pack

STRIPE = Actor("stripe", "evt_test")


def new_customer(engine: Engine) -> Customer:
    """A fresh creator with a fresh buyer as customer."""
    creator, buyer = create_user(engine, name="Creator"), create_user(engine, name="Buyer")
    return get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)


def buy(
    engine: Engine, customer: Customer, *, credits: int, now: datetime, expires_at: datetime | None = None
) -> LedgerResult:
    """A paid purchase of a fresh pack, fulfilled the way payments will: purchase and lot in one transaction."""
    pack = make_pack(engine, customer.creator_id, credits=str(credits))
    with write_session(engine) as session:
        purchase = Purchase(
            creator_id=customer.creator_id,
            buyer_id=customer.buyer_id,
            customer_id=customer.id,
            pack_id=pack.id,
            amount=pack.price_amount,
            currency=pack.currency,
            credits=credits,
            stripe_session_id=f"cs_test_{secrets.token_hex(8)}",
            status="paid",
            paid_at=now,
        )
        session.add(purchase)
        session.flush()
        locked = lock_customer(session, creator_id=customer.creator_id, customer_id=customer.id, now=now)
        return grant_in_session(
            session, locked, amount=credits, actor=STRIPE, now=now, expires_at=expires_at, purchase_id=purchase.id
        )


def entries_of(engine: Engine, customer_id: int) -> list[LedgerEntry]:
    """The customer's ledger, oldest first, read straight from the database."""
    with Session(engine) as session:
        statement = select(LedgerEntry).where(LedgerEntry.customer_id == customer_id).order_by(LedgerEntry.id)
        return list(session.exec(statement))


def balance_of(engine: Engine, customer_id: int) -> int:
    """The cached balance, read straight from the database (no lazy expiry)."""
    with Session(engine) as session:
        return session.get(Customer, customer_id).balance
