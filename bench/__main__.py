"""`make bench`: measure on PostgreSQL, print a table, save JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from bench.api import CLIENTS, build_world, check_books, measure, spent_credits
from bench.dashboard import customers_page_in_chromium, query_timings
from bench.databases import bench_database
from bench.holds import build_world as build_hold_world
from bench.holds import check_books as check_hold_books
from bench.holds import measure as measure_holds
from bench.load import LoadResult
from bench.scale import load_scale_data
from bench.wal import measure as measure_wal
from litesubs.db import make_engine

RESULTS = Path(__file__).resolve().parent / "results"
WAL_CUSTOMERS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the scale data set")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--only", choices=["api", "dashboard", "holds", "wal"], help="run one part only")
    parser.add_argument("--no-redis", action="store_true", help="API as `make serve` runs by default: one worker")
    parser.add_argument("--api-workers", type=int, help="Granian workers of the app (default: Reflex's choice)")
    parser.add_argument("--clients", help="comma-separated wrk connection counts (default 1,8,32,64)")
    parser.add_argument("--no-pgbench", action="store_true", help="measure the API only")
    args = parser.parse_args()
    os.environ.setdefault("LITESUBS_BCRYPT_ROUNDS", "4")
    report: dict = {"machine": _machine(), "started_at": datetime.now(UTC).isoformat()}

    with bench_database() as url:
        engine = make_engine(url)
        if args.only in (None, "api"):
            report["api"] = _api(url, engine, args)
        if args.only in (None, "dashboard"):
            report["dashboard"] = _dashboard(url, engine, args)
        if args.only in (None, "holds"):
            report["holds"] = _holds(url, engine)
        if args.only in (None, "wal"):
            report["wal"] = _wal(engine)
        engine.dispose()

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nSaved {path}")


def _api(url: str, engine: Engine, args: argparse.Namespace) -> dict:
    world = build_world(engine)
    results = measure(
        url,
        engine,
        world,
        seconds=args.seconds,
        redis_url=None if args.no_redis else args.redis_url,
        workers=args.api_workers,
        client_counts=tuple(int(n) for n in args.clients.split(",")) if args.clients else CLIENTS,
        pgbench=not args.no_pgbench,
    )
    debits = check_books(engine, world)
    assert debits == spent_credits(engine, world), "ledger debits and balances disagree"
    _print_table(
        "Throughput and latency (pgbench latency is the average)",
        ["load", "clients", "req/s", "p50 ms", "p99 ms", "errors", "app CPU µs/req", "database CPU µs/req"],
        [
            [
                r.name,
                r.clients,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.app_cpu_us or "",
                r.database_cpu_us or "",
            ]
            for r in results
        ],
    )
    ratios = _ratios(results)
    _print_table("Our API as a share of the database's own limit", ["clients", "comparison", "ratio"], ratios)
    print(f"Books checked: {debits:,} debits recorded, every balance == its lots == its ledger.")
    return {"results": [asdict(r) for r in results], "ratios": ratios, "debits_recorded": debits}


def _ratios(results: list[LoadResult]) -> list[list]:
    pairs = [
        ("API debit, 1,000 customers", "pgbench -N (simple update)"),
        ("API debit, 1,000 customers", "pgbench our debit SQL, 1,000 customers"),
        ("API debit, one hot customer", "pgbench -N (simple update)"),
        ("API debit, one hot customer", "pgbench our debit SQL, one hot customer"),
        ("API balance check", "pgbench -S (select only)"),
    ]
    by_key = {(r.name, r.clients): r.requests_per_second for r in results}
    return [
        [clients, f"{ours} / {theirs}", round(by_key[(ours, clients)] / by_key[(theirs, clients)], 3)]
        for clients in CLIENTS
        for ours, theirs in pairs
        if by_key.get((theirs, clients))
    ]


def _dashboard(url: str, engine: Engine, args: argparse.Namespace) -> list[dict]:
    data = load_scale_data(engine, customers=args.customers)
    print(f"Scale data: {data.customers:,} customers, {data.entries:,} ledger entries in {data.seconds:.1f} s")
    timings = [*query_timings(engine, data), customers_page_in_chromium(url, engine, data)]
    _print_table(
        "Dashboard at scale",
        ["query", "runs", "p50 ms", "p95 ms", "max ms"],
        [[t.name, t.runs, t.p50_ms, t.p95_ms, t.max_ms] for t in timings],
    )
    return [{"scale_data": asdict(data)}, *[asdict(t) for t in timings]]


def _holds(url: str, engine: Engine) -> list[dict]:
    world = build_hold_world(engine)
    results = measure_holds(url, engine, world)
    check_hold_books(engine, world)
    _print_table(
        "A hold + capture pair against a debit (median latencies; ratio of the medians, and of the means)",
        ["path", "clients", "debit ms", "hold + capture ms", "ratio", "ratio of means"],
        [[r.name, r.clients, r.debit_ms, r.pair_ms, r.ratio, r.mean_ratio] for r in results],
    )
    print(f"Books checked: {len(world.customers)} customers, every balance == its lots == its ledger, holds counted.")
    return [asdict(r) for r in results]


def _wal(engine: Engine) -> list[dict]:
    world = build_hold_world(engine, customers=WAL_CUSTOMERS)
    results = measure_wal(engine, world)
    check_hold_books(engine, world)
    tables = sorted({table for r in results for table, (updates, _hot) in r.updates.items() if updates})
    _print_table(
        "WAL per operation (this database only; full-page images apart) and HOT updates (HOT / all, per table)",
        ["operation", "count", "WAL bytes", "without FPI", "records", "FPIs", *tables],
        [
            [
                r.operation,
                r.count,
                r.wal_bytes,
                r.wal_bytes_without_fpi,
                r.records,
                r.full_page_images,
                *(f"{r.updates[table][1]} / {r.updates[table][0]}" for table in tables),
            ]
            for r in results
        ],
    )
    return [asdict(r) for r in results]


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _print_table(title: str, headers: list[str], rows: list[list]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


main()
