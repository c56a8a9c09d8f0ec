"""Customers: one per creator and buyer, found by id or email, suspended and reactivated by their creator."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from litesubs.db import write_session
from litesubs.models import Customer
from litesubs.services.customers import (
    find_customer,
    get_or_create_customer,
    get_or_create_customer_in_session,
    reactivate_customer,
    suspend_customer,
)
from litesubs.services.errors import NotFound
from tests.conftest import create_user


def customers_of_pair(engine: Engine, creator_id: int, buyer_id: int) -> int:
    with Session(engine) as session:
        statement = select(func.count()).where(Customer.creator_id == creator_id, Customer.buyer_id == buyer_id)
        return session.exec(statement).one()


def test_a_creator_has_one_customer_per_buyer(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    first = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    again = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    reverse = get_or_create_customer(creator_id=buyer.id, buyer_id=creator.id, engine=engine)

    assert first.id == again.id != reverse.id
    assert (first.status, first.balance) == ("active", 0)
    assert customers_of_pair(engine, creator.id, buyer.id) == 1


def test_creating_the_same_customer_at_once_makes_one(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    threads = 20
    barrier = threading.Barrier(threads)

    def create() -> int:
        barrier.wait()
        return get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine).id

    with ThreadPoolExecutor(max_workers=threads) as pool:
        ids = list(pool.map(lambda _: create(), range(threads)))

    assert len(set(ids)) == 1
    assert customers_of_pair(engine, creator.id, buyer.id) == 1


def test_a_customer_created_in_a_failed_transaction_does_not_stay(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)

    def create_then_fail() -> None:
        with write_session(engine) as session:
            get_or_create_customer_in_session(session, creator_id=creator.id, buyer_id=buyer.id)
            raise RuntimeError("payment fulfilment failed later in the transaction")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert customers_of_pair(engine, creator.id, buyer.id) == 0


def test_a_customer_is_found_by_id_or_by_the_buyers_email(engine: Engine) -> None:
    creator = create_user(engine)
    buyer = create_user(engine, email="ada.lovelace@example.com")
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)

    for ref in (customer.id, str(customer.id), "ada.lovelace@example.com", " Ada.Lovelace@Example.COM "):
        assert find_customer(creator_id=creator.id, ref=ref, engine=engine).id == customer.id


def test_another_creators_customer_is_not_found(engine: Engine) -> None:
    creator, stranger, buyer = create_user(engine), create_user(engine), create_user(engine)
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
    get_or_create_customer(creator_id=stranger.id, buyer_id=create_user(engine).id, engine=engine)

    for ref in (customer.id, buyer.email, "nobody@example.com", "12x", "²", 10**9):
        with pytest.raises(NotFound):
            find_customer(creator_id=stranger.id, ref=ref, engine=engine)


def test_a_creator_suspends_and_reactivates_a_customer(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)

    assert suspend_customer(creator_id=creator.id, customer_id=customer.id, engine=engine).status == "suspended"
    assert suspend_customer(creator_id=creator.id, customer_id=customer.id, engine=engine).status == "suspended"
    assert find_customer(creator_id=creator.id, ref=customer.id, engine=engine).status == "suspended"
    assert reactivate_customer(creator_id=creator.id, customer_id=customer.id, engine=engine).status == "active"
    assert find_customer(creator_id=creator.id, ref=customer.id, engine=engine).status == "active"
