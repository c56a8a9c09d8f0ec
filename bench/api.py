"""The debit and balance APIs over HTTP against the production build, next to pgbench on the same database."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from bench.cpu import CpuMeter
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


def measure(
    database_url: str,
    engine: Engine,
    world: ApiWorld,
    *,
    seconds: int,
    redis_url: str | None,
    workers: int | None = None,
    client_counts: tuple[int, ...] = CLIENTS,
    pgbench: bool = True,
) -> list[LoadResult]:
    """The API under wrk (with CPU per request of the app and the database), then pgbench on the same database.

    Without `redis_url` the app runs as `make serve` does by default: one worker, state and limits in memory.
    """
    database = libpq_url(database_url)
    init_pgbench(database)
    spread, hot = (world.first_customer, world.last_customer), (world.first_customer, world.first_customer)
    results: list[LoadResult] = []
    environment = {"REDIS_URL": redis_url or ""} | ({"GRANIAN_WORKERS": str(workers)} if workers else {})
    with tempfile.TemporaryDirectory() as work_dir:
        server = start_app_server(database_url, Path(work_dir) / "server.log", Path(work_dir), extra_env=environment)
        meter = CpuMeter(engine, server.process.pid)
        try:
            results.append(_idle(meter, seconds))
            for count in client_counts:
                common = {"keys": world.keys, "clients": count, "seconds": seconds}
                for name, mode, customers in (
                    ("API debit, 1,000 customers", "debit", spread),
                    ("API debit, one hot customer", "debit", hot),
                    ("API balance check", "balance", spread),
                ):
                    meter.start()
                    result = run_wrk(name, server.base_url, mode=mode, customers=customers, **common)
                    app, database_cpu = meter.stop()
                    per_request = 1e6 / max(result.completed, 1)
                    results.append(
                        dataclasses.replace(
                            result,
                            app_cpu_us=round(app * per_request),
                            database_cpu_us=round(database_cpu * per_request),
                        )
                    )
        finally:
            server.stop()
    if not pgbench:
        return results
    for clients in client_counts:
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


def _idle(meter: CpuMeter, seconds: int) -> LoadResult:
    """What the app and the database spend with no request at all (the background worker's polling, say):
    CPU µs per second, in the CPU columns of a row with no requests."""
    meter.start()
    time.sleep(seconds)
    app, database = meter.stop()
    return LoadResult(
        "app idle (CPU µs per second)",
        0,
        0.0,
        0.0,
        0.0,
        0,
        0,
        round(app * 1e6 / seconds),
        round(database * 1e6 / seconds),
    )


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
