"""`python -m litesubs demo` builds a lived-in world that obeys every invariant."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.demo import DEMO_EMAIL, create_demo
from litesubs.models import Customer, User
from litesubs.services.overview import creator_overview
from tests.invariants import assert_invariants


@pytest.fixture
def fresh_engine(engine: Engine) -> Engine:
    with Session(engine) as session:
        if session.exec(select(User).where(User.email == DEMO_EMAIL)).first() is not None:
            pytest.fail("the demo creator must not exist before this test")
    return engine


def test_demo_data_is_consistent_and_alive(fresh_engine: Engine) -> None:
    summary = create_demo(customers=40, engine=fresh_engine)
    assert (summary.packs, summary.customers) == (4, 40)
    assert summary.purchases >= 40
    with Session(fresh_engine) as session:
        creator = session.exec(select(User).where(User.email == DEMO_EMAIL)).one()
        customer_ids = session.exec(select(Customer.id).where(Customer.creator_id == creator.id)).all()
    assert len(customer_ids) == 40
    for customer_id in customer_ids:
        assert_invariants(fresh_engine, customer_id)
    overview = creator_overview(creator_id=creator.id, engine=fresh_engine)
    assert overview.packs_sold == summary.purchases
    assert overview.credits_spent > 0
    assert any(point.amount > 0 for point in overview.chart)

    with pytest.raises(SystemExit, match="already exists"):
        create_demo(customers=1, engine=fresh_engine)
