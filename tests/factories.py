"""One-line builders for objects tests need, written straight to the database."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import Customer, Pack, Purchase, utcnow
from litesubs.services.packs import PackFields, create_pack


def make_pack(engine: Engine, creator_id: int, **fields: str) -> Pack:
    values = {"name": "Starter", "price": "9.00", "credits": "100", **fields}
    return create_pack(creator_id=creator_id, fields=PackFields(**values), engine=engine)


def record_paid_purchase(
    engine: Engine, pack: Pack, buyer_id: int, *, paid_at: datetime | None = None, status: str = "paid"
) -> Purchase:
    """A purchase row as fulfilment leaves it (without the credits: for sales figures only)."""
    with Session(engine, expire_on_commit=False) as session:
        customer = Customer(creator_id=pack.creator_id, buyer_id=buyer_id)
        session.add(customer)
        session.flush()
        purchase = Purchase(
            creator_id=pack.creator_id,
            buyer_id=buyer_id,
            customer_id=customer.id,
            pack_id=pack.id,
            amount=pack.price_amount,
            currency=pack.currency,
            credits=pack.credits,
            stripe_session_id=f"cs_test_{secrets.token_hex(8)}",
            status=status,
            paid_at=paid_at or utcnow(),
        )
        session.add(purchase)
        session.commit()
    return purchase
