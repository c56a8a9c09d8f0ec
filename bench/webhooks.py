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
2. Debits a second from N threads for a few seconds (coalescing included), which a busy machine skews.

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, text
from sqlmodel import Session, select

from bench.api import STARTING_CREDITS
from bench.databases import bench_database
from litesubs.db import make_engine
from litesubs.models import OutboxMessage, User, WebhookEvent
from litesubs.services import ledger, outbox, webhooks
from litesubs.services.customers import get_or_create_customer
from litesubs.services.webhook_delivery import WebhookDeliverer

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--debits", type=int, default=1000, help="debits per CPU measurement")
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
        loads = {"1,000 customers": lambda: ids[secrets.randbelow(len(ids))], "one hot customer": lambda: ids[0]}
        # One connection, so that one backend does all the database's work of the single-thread runs.
        single = create_engine(engine.url, pool_size=1, max_overflow=0, connect_args={"options": "-c timezone=UTC"})
        print("| load | no endpoint, CPU µs per debit | credits.debited subscribed, CPU µs per debit | change |")
        print("|---|---|---|---|")
        for name, pick in loads.items():
            costs: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds * 2):
                for subscribed in (False, True):
                    webhooks.set_enabled(
                        creator_id=creator_id, endpoint_id=endpoint.id, enabled=subscribed, engine=engine
                    )
                    costs[subscribed].append(cpu_per_debit(single, creator_id, pick, count=args.debits))
            off, on = statistics.median(costs[False]), statistics.median(costs[True])
            print(f"| {name} | {off:,.0f} | {on:,.0f} | {100 * (on - off) / off:+.1f} % |")
        single.dispose()
        print()
        print("| load | threads | no endpoint, debits/s | credits.debited subscribed, debits/s | change |")
        print("|---|---|---|---|---|")
        for threads in THREADS:
            for name, pick in loads.items():
                runs: dict[bool, list[float]] = {False: [], True: []}
                for _ in range(args.rounds):
                    for subscribed in (False, True):
                        webhooks.set_enabled(
                            creator_id=creator_id, endpoint_id=endpoint.id, enabled=subscribed, engine=engine
                        )
                        rate = debits_per_second(engine, creator_id, pick, threads=threads, seconds=args.seconds)
                        runs[subscribed].append(rate)
                off, on = statistics.median(runs[False]), statistics.median(runs[True])
                print(f"| {name} | {threads} | {off:,.0f} | {on:,.0f} | {100 * (on - off) / off:+.1f} % |")
        with Session(engine) as session:
            events = session.exec(select(func.count()).select_from(WebhookEvent)).one()
            pending = session.exec(select(func.count()).where(OutboxMessage.status == "pending")).one()
        print(f"\n{events:,} events written; delivering {pending:,} pending deliveries with one worker ...")
        webhooks.set_enabled(creator_id=creator_id, endpoint_id=endpoint.id, enabled=True, engine=engine)
        with Session(engine) as session:  # re-enabling cancelled nothing new: queue them again for delivery
            session.exec(
                OutboxMessage.__table__.update()
                .where(OutboxMessage.status == "cancelled")
                .values(status="pending", last_error=None)
            )
            session.commit()
        deliverers = {webhooks.WEBHOOK_KIND: WebhookDeliverer(allow_local=True)}
        started, delivered = time.monotonic(), 0
        while time.monotonic() - started < 10 and (made := outbox.deliver_due(deliverers, engine=engine)):
            delivered += made
        print(f"One worker delivered {delivered / (time.monotonic() - started):,.0f} webhooks a second.")
        engine.dispose()
    receiver.shutdown()


if __name__ == "__main__":
    main()
