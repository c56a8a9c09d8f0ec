"""The debit and balance APIs over HTTP against the production build, next to pgbench on the same database."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from bench.databases import libpq_url
from bench.load import LoadResult, init_pgbench, run_pgbench, run_wrk
from litesubs.models import Customer, LedgerEntry, User
from litesubs.services import accounts, api_keys
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from tests.app_server import start_app_server
from tests.invariants import assert_invariants

CLIENTS = (1, 8, 32, 64)
SPREAD_CUSTOMERS = 1000
KEYS = 64
STARTING_CREDITS = 1_000_000_000


@dataclass(frozen=True)
class ApiWorld:
    creator_id: int
    keys: list[str]
    first_customer: int
    last_customer: int


def build_world(engine: Engine) -> ApiWorld:
    """A creator with API keys and 1,000 customers holding a billion credits each (contiguous ids)."""
    creator = accounts.register(
        name="API Creator", email="api-creator@example.com", password="bench-pass", engine=engine
    )
    keys = [api_keys.create_key(creator_id=creator.id, name=f"bench {n}", engine=engine)[1] for n in range(KEYS)]
    with Session(engine, expire_on_commit=False) as session:
        buyers = [
            User(email=f"api-buyer-{n}@example.com", name=f"Buyer {n}", password_hash="!")
            for n in range(SPREAD_CUSTOMERS)
        ]
        session.add_all(buyers)
        session.commit()
    ids = []
    for buyer in buyers:
        customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
        grant(
            creator_id=creator.id,
            customer_id=customer.id,
            amount=STARTING_CREDITS,
            actor=Actor("system"),
            engine=engine,
        )
        ids.append(customer.id)
    assert ids == list(range(ids[0], ids[0] + len(ids))), "bench customers must have contiguous ids"
    return ApiWorld(creator.id, keys, ids[0], ids[-1])


def measure(database_url: str, engine: Engine, world: ApiWorld, *, seconds: int, redis_url: str) -> list[LoadResult]:
    database = libpq_url(database_url)
    init_pgbench(database)
    spread, hot = (world.first_customer, world.last_customer), (world.first_customer, world.first_customer)
    results: list[LoadResult] = []
    with tempfile.TemporaryDirectory() as work_dir:
        server = start_app_server(
            database_url, Path(work_dir) / "server.log", Path(work_dir), extra_env={"REDIS_URL": redis_url}
        )
        try:
            for clients in CLIENTS:
                common = {"keys": world.keys, "clients": clients, "seconds": seconds}
                results += [
                    run_wrk("API debit, 1,000 customers", server.base_url, mode="debit", customers=spread, **common),
                    run_wrk("API debit, one hot customer", server.base_url, mode="debit", customers=hot, **common),
                    run_wrk("API balance check", server.base_url, mode="balance", customers=spread, **common),
                ]
        finally:
            server.stop()
    for clients in CLIENTS:
        debit_script = ["-f", str(Path(__file__).resolve().parent / "pgbench_debit.sql")]
        defines = {"creator": world.creator_id}
        results += [
            run_pgbench("pgbench -N (simple update)", database, clients=clients, seconds=seconds, script=["-N"]),
            run_pgbench("pgbench -S (select only)", database, clients=clients, seconds=seconds, script=["-S"]),
            run_pgbench(
                "pgbench our debit SQL, 1,000 customers",
                database,
                clients=clients,
                seconds=seconds,
                script=debit_script,
                defines={**defines, "lo": spread[0], "hi": spread[1]},
            ),
            run_pgbench(
                "pgbench our debit SQL, one hot customer",
                database,
                clients=clients,
                seconds=seconds,
                script=debit_script,
                defines={**defines, "lo": hot[0], "hi": hot[1]},
            ),
        ]
    return results


def check_books(engine: Engine, world: ApiWorld) -> int:
    """Every bench customer's balance, lots and ledger still add up; returns the debits recorded."""
    for customer_id in range(world.first_customer, world.last_customer + 1):
        assert_invariants(engine, customer_id)
    with Session(engine) as session:
        return len(
            session.exec(
                select(LedgerEntry.id).where(LedgerEntry.creator_id == world.creator_id, LedgerEntry.kind == "debit")
            ).all()
        )


def spent_credits(engine: Engine, world: ApiWorld) -> int:
    with Session(engine) as session:
        balances = session.exec(select(Customer.balance).where(Customer.creator_id == world.creator_id)).all()
    return SPREAD_CUSTOMERS * STARTING_CREDITS - sum(balances)
