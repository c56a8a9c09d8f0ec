"""`python -m bench.webhooks`: what `credits.debited` costs a debit, on PostgreSQL.

The debit's service call (`ledger.debit`, the API's hot path, each call with its own
Idempotency-Key, as the API bench sends them), spread over 1,000 customers and all on one hot
customer: once with no webhook endpoint (A), once with one endpoint subscribed to `credits.debited`
(B: every debit also writes its event and its delivery in its own statement). Runs alternate
A, B, A, B, ... and each figure is the median of its runs.

1. CPU per debit, one thread: the CPU time of this process plus that of its PostgreSQL backend
   (read from /proc), per debit. On a machine whose cores the app and the database share, throughput
   is the inverse of this cost, and unlike throughput it hardly moves when other work competes for
   the cores (the machine this was written on is shared).
2. The same through the HTTP API (`POST /api/v1/customers/{id}/debit`, Granian serving our FastAPI app in
   this process, one client): CPU of this process (server and client) and of every PostgreSQL backend of
   the database, per request. This is what the API debit benchmark spends per request.
3. Debits a second from N threads for a few seconds (coalescing included), which a busy machine skews.

Delivery itself is the worker's, not the debit's: measured apart, as deliveries a second of one
worker to a local receiver.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, func, not_, text
from sqlmodel import Session, select

from bench.api import STARTING_CREDITS
from bench.databases import bench_database
from litesubs.db import get_engine, make_engine
from litesubs.models import OutboxMessage, User, WebhookEvent
from litesubs.services import ledger, webhooks
from litesubs.services.api_keys import create_key
from litesubs.services.customers import get_or_create_customer
from litesubs.services.webhook_delivery import WebhookDeliverer
from litesubs.settings import get_settings
from litesubs.worker import Worker
from tests.api_server import serve_api

CUSTOMERS = 1000
THREADS = (1, 8, 32)
ACTOR = ledger.Actor("api_key", 1)


def build(engine: Engine) -> tuple[int, list[int]]:
    creator = User(email="hooks-creator@example.com", name="Hooks", password_hash="!")
    with Session(engine, expire_on_commit=False) as session:
        buyers = [User(email=f"hooks-{n}@example.com", name=f"B{n}", password_hash="!") for n in range(CUSTOMERS)]
        session.add_all([creator, *buyers])
        session.commit()
    ids = []
    for buyer in buyers:
        customer = get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine)
        ledger.grant(
            creator_id=creator.id, customer_id=customer.id, amount=STARTING_CREDITS, actor=ACTOR, engine=engine
        )
        ids.append(customer.id)
    return creator.id, ids


def cpu_per_debit(engine: Engine, creator_id: int, pick: Callable[[], int], *, count: int) -> float:
    """Microseconds of CPU (this process and its one PostgreSQL backend) per debit, one debit after another."""
    with engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    before = time.process_time(), _backend_cpu(backend)
    for _ in range(count):
        ledger.debit(
            creator_id=creator_id,
            customer_id=pick(),
            amount=1,
            actor=ACTOR,
            idempotency_key=secrets.token_hex(12),
            engine=engine,
        )
    spent = (time.process_time() - before[0]) + (_backend_cpu(backend) - before[1])
    return spent / count * 1e6


def api_cpu_per_debit(
    base_url: str, secrets_: list[str], engine: Engine, customer_ids: list[int], *, count: int, check_pool: bool = True
) -> float:
    """Microseconds of CPU (this process: server and client; all the database's backends) per API debit."""
    backends = _database_backends(engine)
    before = time.process_time(), sum(_backend_cpu(pid) for pid in backends)
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=30) as client:
        for number in range(count):
            response = client.post(
                f"/customers/{customer_ids[number % len(customer_ids)]}/debit",
                json={"amount": 1},
                headers={
                    "Authorization": f"Bearer {secrets_[number % len(secrets_)]}",
                    "Idempotency-Key": secrets.token_hex(12),
                },
            )
            assert response.status_code == 200, response.text
    assert not check_pool or _database_backends(engine) == backends, "the pool grew during the measurement"
    spent = (time.process_time() - before[0]) + (sum(_backend_cpu(pid) for pid in backends) - before[1])
    return spent / count * 1e6


def _database_backends(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).scalars()
        )


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU a PostgreSQL backend used so far (user and system), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def debits_per_second(
    engine: Engine, creator_id: int, pick: Callable[[], int], *, threads: int, seconds: float
) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def run(index: int) -> None:
        while time.monotonic() < stop:
            ledger.debit(
                creator_id=creator_id,
                customer_id=pick(),
                amount=1,
                actor=ACTOR,
                idempotency_key=secrets.token_hex(12),
                engine=engine,
            )
            done[index] += 1

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.monotonic() - started)


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


PARTS = ("cpu", "api", "threads", "delivery")


@dataclass(frozen=True)
class World:
    engine: Engine
    database_url: str
    creator_id: int
    customer_ids: list[int]
    endpoint_id: int

    def subscribe(self, subscribed: bool) -> None:
        webhooks.set_enabled(
            creator_id=self.creator_id, endpoint_id=self.endpoint_id, enabled=subscribed, engine=self.engine
        )

    def loads(self) -> dict[str, Callable[[], int]]:
        ids = self.customer_ids
        return {"1,000 customers": lambda: ids[secrets.randbelow(len(ids))], "one hot customer": lambda: ids[0]}


def a_b(world: World, rounds: int, measure: Callable[[], float]) -> tuple[float, float, str]:
    """Medians of `measure` without (A) and with (B) the subscription, runs alternating; and the change."""
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for subscribed in (False, True):
            world.subscribe(subscribed)
            runs[subscribed].append(measure())
    off, on = statistics.median(runs[False]), statistics.median(runs[True])
    return off, on, f"{100 * (on - off) / off:+.1f} %"


def cpu_part(world: World, args: argparse.Namespace) -> None:
    # One connection, so that one backend does all the database's work.
    single = create_engine(world.engine.url, pool_size=1, max_overflow=0, connect_args={"options": "-c timezone=UTC"})
    print("| load | no endpoint, CPU µs per debit | credits.debited subscribed, CPU µs per debit | change |")
    print("|---|---|---|---|")
    for name, pick in world.loads().items():
        measure = lambda pick=pick: cpu_per_debit(single, world.creator_id, pick, count=args.debits)  # noqa: E731
        off, on, change = a_b(world, args.rounds * 2, measure)
        print(f"| {name} | {off:,.0f} | {on:,.0f} | {change} |")
    single.dispose()
    print()


def api_part(world: World, args: argparse.Namespace) -> None:
    keys = [create_key(creator_id=world.creator_id, name=f"bench {n}", engine=world.engine)[1] for n in range(16)]
    os.environ["DATABASE_URL"] = world.database_url
    get_settings.cache_clear()
    get_engine.cache_clear()
    with serve_api() as base_url:
        api_cpu_per_debit(base_url, keys, world.engine, world.customer_ids, count=200, check_pool=False)  # warm up
        measure = lambda: api_cpu_per_debit(base_url, keys, world.engine, world.customer_ids, count=args.debits)  # noqa: E731
        off, on, change = a_b(world, args.rounds * 2, measure)
    get_engine().dispose()
    print("| API debit, 1,000 customers, one client | no endpoint, CPU µs per request | subscribed | change |")
    print("|---|---|---|---|")
    print(f"| CPU of server, client and PostgreSQL | {off:,.0f} | {on:,.0f} | {change} |")
    print()


def threads_part(world: World, args: argparse.Namespace) -> None:
    print("| load | threads | no endpoint, debits/s | credits.debited subscribed, debits/s | change |")
    print("|---|---|---|---|---|")
    for threads in THREADS:
        for name, pick in world.loads().items():
            measure = lambda pick=pick, threads=threads: debits_per_second(  # noqa: E731
                world.engine, world.creator_id, pick, threads=threads, seconds=args.seconds
            )
            off, on, change = a_b(world, args.rounds, measure)
            print(f"| {name} | {threads} | {off:,.0f} | {on:,.0f} | {change} |")
    print()


def delivery_part(world: World, _args: argparse.Namespace) -> None:
    """Debits for a while, then one worker dispatching and delivering them to a local receiver."""
    world.subscribe(True)
    debits_per_second(world.engine, world.creator_id, world.loads()["1,000 customers"], threads=8, seconds=5)
    with Session(world.engine) as session:
        events = session.exec(select(func.count()).where(not_(WebhookEvent.dispatched))).one()
    worker = Worker(world.engine, deliverers={webhooks.WEBHOOK_KIND: WebhookDeliverer(allow_local=True)})
    started = time.monotonic()
    while time.monotonic() - started < 10 and worker.run_once():
        pass
    elapsed = time.monotonic() - started
    with Session(world.engine) as session:
        delivered = session.exec(select(func.count()).where(OutboxMessage.status == "delivered")).one()
    print(f"{events:,} events waiting; one worker delivered {delivered / elapsed:,.0f} webhooks a second.")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--seconds", type=float, default=5, help="duration of each throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--debits", type=int, default=1000, help="debits per CPU measurement")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # as the app server sets it (litesubs/litesubs.py)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    with bench_database() as database_url:
        engine = make_engine(database_url)
        creator_id, ids = build(engine)
        endpoint = webhooks.create_endpoint(
            creator_id=creator_id, url=url, event_types=["credits.debited"], allow_local=True, engine=engine
        )
        world = World(engine, database_url, creator_id, ids, endpoint.id)
        parts = {"cpu": cpu_part, "api": api_part, "threads": threads_part, "delivery": delivery_part}
        for name in args.parts.split(","):
            parts[name](world, args)
        engine.dispose()
    receiver.shutdown()


if __name__ == "__main__":
    main()
