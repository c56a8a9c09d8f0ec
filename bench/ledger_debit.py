"""`python -m bench.ledger_debit [--against DIR]`: what one `ledger.debit` costs on PostgreSQL, in process.

The debit's service call as the API makes it (its own Idempotency-Key each), spread over 1,000 customers and
all on one hot customer:

1. CPU per debit, one thread and one connection: microseconds of this process (the app) and of its
   PostgreSQL backend, apart, read from /proc as `bench.webhooks` does. This hardly moves when other work
   competes for the cores.
2. Debits a second at 1 and 32 threads (the 32 share the engine's pool, coalescing included).

With `--against DIR` (a checkout of other code, such as `git worktree add /tmp/before main`), each
measurement runs in a fresh process, alternating this code and DIR's (A/B), on one database migrated by
this code; figures are medians of the rounds. Without it, this code alone.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
LOADS = ("spread", "hot")
THREAD_COUNTS = (1, 32)
LABELS = {"app_us": "app CPU µs/debit", "pg_us": "PostgreSQL CPU µs/debit"}


def _setup(database_url: str) -> dict:
    """A creator with 1,000 customers holding 10⁹ credits each (as `bench.webhooks` builds them)."""
    from sqlalchemy import create_engine

    from bench.webhooks import build

    engine = create_engine(database_url)
    creator_id, customer_ids = build(engine)
    engine.dispose()
    return {"creator_id": creator_id, "customer_ids": customer_ids}


def _measure(database_url: str, world: dict, part: str, load: str, threads: int, count: int, seconds: float) -> dict:
    """One measurement, in this process, of whatever `litesubs` this process imports."""
    from sqlalchemy import create_engine, text

    from bench.webhooks import debits_per_second
    from litesubs.db import make_engine
    from litesubs.services import ledger

    ids, actor = world["customer_ids"], ledger.Actor("api_key", 1)

    def pick() -> int:
        return ids[0] if load == "hot" else ids[secrets.randbelow(len(ids))]

    def one(engine) -> None:
        ledger.debit(
            creator_id=world["creator_id"],
            customer_id=pick(),
            amount=1,
            actor=actor,
            idempotency_key=secrets.token_hex(12),
            engine=engine,
        )

    if part == "cpu":
        # One connection, so that one backend does all the database's work; otherwise as `make_engine` makes it.
        engine = create_engine(
            database_url, pool_size=1, max_overflow=0, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}
        )
        for _ in range(50):
            one(engine)  # warm up: the connection, prepared statements
        with engine.connect() as connection:
            backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        app, database = time.process_time(), _backend_cpu(backend)
        for _ in range(count):
            one(engine)
        app, database = time.process_time() - app, _backend_cpu(backend) - database
        engine.dispose()
        return {"app_us": app / count * 1e6, "pg_us": database / count * 1e6}
    engine = make_engine(database_url)
    rate = debits_per_second(engine, world["creator_id"], pick, threads=threads, seconds=seconds)
    engine.dispose()
    return {"per_second": rate}


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU a PostgreSQL backend used so far (user and system), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_in(tree: Path, job: dict) -> dict:
    """`_measure` in a fresh process importing `litesubs` (and `bench.webhooks`) from `tree`."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    output = subprocess.run(
        [sys.executable, __file__, "measure", json.dumps(job)],
        env=environment,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_debit")
    parser.add_argument("--against", type=Path, help="a checkout of the code to compare with (A/B)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--debits", type=int, default=2000, help="debits per CPU measurement")
    parser.add_argument("--seconds", type=float, default=5, help="duration of each throughput run")
    args = parser.parse_args()
    from bench.databases import bench_database

    trees = {"this": HERE} | ({"against": args.against.resolve()} if args.against else {})
    with bench_database() as database_url:
        world = _setup(database_url)
        jobs = [("cpu", load, 1) for load in LOADS] + [("rate", load, n) for n in THREAD_COUNTS for load in LOADS]
        results: dict[tuple, dict[str, list[dict]]] = {job: {name: [] for name in trees} for job in jobs}
        for _ in range(args.rounds):
            for job in jobs:
                for name, tree in trees.items():  # alternating: this, against, this, against, ...
                    part, load, threads = job
                    spec = {"database_url": database_url, "world": world, "part": part, "load": load}
                    spec |= {"threads": threads, "count": args.debits, "seconds": args.seconds}
                    results[job][name].append(_run_in(tree, spec))
    names = list(trees)
    print("| measure | load | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for (part, load, threads), by_tree in results.items():
        keys = ("app_us", "pg_us") if part == "cpu" else ("per_second",)
        for key in keys:
            label = LABELS.get(key, f"debits/s, {threads} threads")
            medians = [statistics.median(run[key] for run in by_tree[name]) for name in names]
            print(f"| {label} | {load} | " + " | ".join(f"{value:,.0f}" for value in medians) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["measure"]:  # one measurement, run by `_run_in`
        print(json.dumps(_measure(**json.loads(sys.argv[2]))))
    else:
        main()
