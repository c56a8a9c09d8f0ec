"""The creator's overview numbers: customers who can spend, and credits spent (debits only)."""

from __future__ import annotations

from sqlalchemy import Engine

from litesubs.services.customers import get_or_create_customer, suspend_customer
from litesubs.services.ledger import Actor, adjust, debit, grant
from litesubs.services.overview import creator_overview
from tests.conftest import create_user

API_KEY = Actor("api_key", 1)


def test_active_customers_hold_credits_and_are_not_suspended_and_credits_spent_count_debits_only(
    engine: Engine,
) -> None:
    creator, other_creator = create_user(engine), create_user(engine)
    holding, suspended, empty = (
        get_or_create_customer(creator_id=creator.id, buyer_id=create_user(engine).id, engine=engine) for _ in range(3)
    )
    someone_elses = get_or_create_customer(creator_id=other_creator.id, buyer_id=create_user(engine).id, engine=engine)
    for customer in (holding, suspended, empty, someone_elses):
        grant(creator_id=customer.creator_id, customer_id=customer.id, amount=10, actor=API_KEY, engine=engine)
    debit(creator_id=creator.id, customer_id=holding.id, amount=3, actor=API_KEY, engine=engine)
    debit(creator_id=creator.id, customer_id=empty.id, amount=10, actor=API_KEY, engine=engine)
    adjust(
        creator_id=creator.id,
        customer_id=holding.id,
        delta=-2,
        reason="Goodwill undone",
        actor=Actor("creator", creator.id),
        engine=engine,
    )
    debit(creator_id=other_creator.id, customer_id=someone_elses.id, amount=4, actor=API_KEY, engine=engine)
    suspend_customer(creator_id=creator.id, customer_id=suspended.id, engine=engine)

    overview = creator_overview(creator_id=creator.id, engine=engine)

    assert (overview.customers, overview.active_customers) == (3, 1)
    assert overview.credits_spent == 13  # the debits of 3 and 10; not the adjustment, not another creator's debit
    assert creator_overview(creator_id=other_creator.id, engine=engine).credits_spent == 4
