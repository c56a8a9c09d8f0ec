"""What a hold + capture pair costs against a debit, on PostgreSQL: in-process and over HTTP.

The target (issue 18): a hold followed by its capture costs at most twice a debit. Both are measured the way
the API runs them: each with its own Idempotency-Key, spread over 100 customers, the capture spending part
of the hold and giving the rest back. Each client alternates one debit and one pair, so that a busy machine
slows both alike. Afterwards every customer's books are checked.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from litesubs.db import get_engine
from litesubs.services import api_keys, holds
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, debit, grant
from litesubs.settings import get_settings
from tests.api_server import serve_api
from tests.conftest import create_user
from tests.invariants import assert_invariants

CUSTOMERS = 100
STARTING_CREDITS = 1_000_000_000
OPERATIONS = 1000
WARM_UP = 20
HTTP_CLIENTS = (1, 8)
KEYS = 32


@dataclass(frozen=True)
class HoldWorld:
    creator_id: int
    key_id: int
    secrets: list[str]  # the load is spread over them, so that the per-key rate limit is not what is measured
    customers: list[int]


@dataclass(frozen=True)
class PairResult:
    name: str
    clients: int
    debit_ms: float  # median latency of a debit
    pair_ms: float  # median latency of a hold and then its capture
    ratio: float  # pair / debit, medians
    mean_ratio: float  # pair / debit, means


def build_world(engine: Engine, *, customers: int = CUSTOMERS) -> HoldWorld:
    """A creator with API keys and `customers` customers holding a billion credits each."""
    creator = create_user(engine, name="Holds Creator")
    made = [api_keys.create_key(creator_id=creator.id, name=f"bench holds {n}", engine=engine) for n in range(KEYS)]
    ids = []
    for _ in range(customers):
        buyer = create_user(engine, name="Holds Buyer")
        customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
        grant(
            creator_id=creator.id,
            customer_id=customer.id,
            amount=STARTING_CREDITS,
            actor=Actor("system"),
            engine=engine,
        )
        ids.append(customer.id)
    return HoldWorld(creator.id, made[0][0].id, [secret for _key, secret in made], ids)


def measure(database_url: str, engine: Engine, world: HoldWorld) -> list[PairResult]:
    results = [_in_process(engine, world)]
    os.environ["DATABASE_URL"] = database_url  # the API served in this process uses the bench database
    get_settings.cache_clear()
    get_engine.cache_clear()
    with serve_api() as base_url:
        results += [_over_http(base_url, world, clients=clients) for clients in HTTP_CLIENTS]
    get_engine().dispose()
    return results


def check_books(engine: Engine, world: HoldWorld) -> None:
    for customer_id in world.customers:
        assert_invariants(engine, customer_id)


def _in_process(engine: Engine, world: HoldWorld) -> PairResult:
    """Service calls in this process, one after the other: the database work and our Python, no HTTP."""
    return _alternating("in-process (service calls)", [in_process_operations(engine, world, prefix="in-process")])


def in_process_operations(
    engine: Engine, world: HoldWorld, *, prefix: str
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A debit of 1 credit, and a hold of 10 then its capture of 7, as service calls: each call with its own
    idempotency key (`prefix` keeps them apart from other runs), the customers taken in turn."""
    actor, keys, customers = Actor("api_key", world.key_id), itertools.count(), itertools.cycle(world.customers)

    def one_debit() -> None:
        debit(
            creator_id=world.creator_id,
            customer_id=next(customers),
            amount=1,
            actor=actor,
            reason="bench",
            idempotency_key=f"{prefix}-debit-{next(keys)}",
            engine=engine,
        )

    def one_pair() -> None:
        hold = holds.place_hold(
            creator_id=world.creator_id,
            customer_id=next(customers),
            amount=10,
            actor=actor,
            reason="bench",
            idempotency_key=f"{prefix}-hold-{next(keys)}",
            engine=engine,
        )
        holds.capture_hold(
            creator_id=world.creator_id,
            hold_id=hold.id,
            amount=7,
            actor=actor,
            idempotency_key=f"{prefix}-capture-{next(keys)}",
            engine=engine,
        )

    return one_debit, one_pair


def _over_http(base_url: str, world: HoldWorld, *, clients: int) -> PairResult:
    """The API served by Granian in this process, `clients` httpx clients each waiting for its answers."""
    keys, customers, secrets = itertools.count(), itertools.cycle(world.customers), itertools.cycle(world.secrets)

    def headers(kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {next(secrets)}", "Idempotency-Key": f"http-{clients}-{kind}-{next(keys)}"}

    def operations(client: httpx.Client) -> tuple[Callable[[], None], Callable[[], None]]:
        def one_debit() -> None:
            response = client.post(
                f"/customers/{next(customers)}/debit", json={"amount": 1, "reason": "bench"}, headers=headers("debit")
            )
            response.raise_for_status()

        def one_pair() -> None:
            placed = client.post(
                f"/customers/{next(customers)}/holds", json={"amount": 10, "reason": "bench"}, headers=headers("hold")
            )
            placed.raise_for_status()
            hold_id = placed.json()["id"]
            client.post(f"/holds/{hold_id}/capture", json={"amount": 7}, headers=headers("capture")).raise_for_status()

        return one_debit, one_pair

    pool = [httpx.Client(base_url=f"{base_url}/api/v1", timeout=60) for _ in range(clients)]
    try:
        return _alternating("over HTTP", [operations(client) for client in pool])
    finally:
        for client in pool:
            client.close()


def _alternating(name: str, clients: list[tuple[Callable[[], None], Callable[[], None]]]) -> PairResult:
    """Each client alternates one debit and one hold + capture pair, timing each, `OPERATIONS` times after a
    warm-up: both kinds see the same load at the same moments, even on a busy machine."""

    def run(operations: tuple[Callable[[], None], Callable[[], None]]) -> list[tuple[float, float]]:
        one_debit, one_pair = operations
        for _ in range(WARM_UP):
            one_debit()
            one_pair()
        timings = []
        for _ in range(OPERATIONS // len(clients)):
            started = time.perf_counter()
            one_debit()
            debited = time.perf_counter()
            one_pair()
            timings.append(((debited - started) * 1000, (time.perf_counter() - debited) * 1000))
        return timings

    with ThreadPoolExecutor(max_workers=len(clients)) as executor:
        timings = [timing for client in executor.map(run, clients) for timing in client]
    debits, pairs = [debit_ms for debit_ms, _ in timings], [pair_ms for _, pair_ms in timings]
    debit_ms, pair_ms = statistics.median(debits), statistics.median(pairs)
    return PairResult(
        name=name,
        clients=len(clients),
        debit_ms=round(debit_ms, 2),
        pair_ms=round(pair_ms, 2),
        ratio=round(pair_ms / debit_ms, 2),
        mean_ratio=round(statistics.mean(pairs) / statistics.mean(debits), 2),
    )
