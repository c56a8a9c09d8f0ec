"""Scale data: one creator with 100,000 customers and 1,000,000 ledger entries, bulk-loaded with COPY.

Every customer gets one purchase lot and nine debits (ten ledger entries), written so that the
invariants of DESIGN.md hold: lot remaining == balance == sum of deltas, balance_after chains.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from litesubs.models import utcnow
from litesubs.services import accounts
from litesubs.services.packs import PackFields, create_pack

FIRST = ["ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances", "edsger", "radia", "tim"]
LAST = ["lovelace", "turing", "hopper", "torvalds", "hamilton", "ritchie", "liskov", "thompson", "allen", "dijkstra"]
ENTRIES_PER_CUSTOMER = 10


@dataclass(frozen=True)
class ScaleData:
    creator_id: int
    customers: int
    entries: int
    seconds: float


def load_scale_data(engine: Engine, *, customers: int = 100_000, seed: int = 11) -> ScaleData:
    started = time.perf_counter()
    creator = accounts.register(
        name="Big Creator", email=f"big-{seed}@example.com", password="bench-password", engine=engine
    )
    fields = PackFields(name="Bulk", price="10.00", credits="1000")
    pack = create_pack(creator_id=creator.id, fields=fields, engine=engine)
    rng = random.Random(seed)
    now = utcnow()
    connection = engine.raw_connection()
    with connection.cursor() as cursor:  # ids above everything already there, one base for every table
        tables = " UNION ALL ".join(f'SELECT max(id) FROM "{table}"' for table in TABLES)
        cursor.execute(f"SELECT coalesce(max(m), 0) + 1 FROM ({tables}) AS ids(m)")
        first_id = cursor.fetchone()[0]
    rows = _generate(rng, creator.id, pack.id, customers, now, first_id=first_id)
    try:
        with connection.cursor() as cursor:
            for table, columns in TABLES.items():
                with cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                    for row in rows[table]:
                        copy.write_row(row)
            for table in TABLES:
                sequence = f"pg_get_serial_sequence('\"{table}\"', 'id')"
                cursor.execute(f'SELECT setval({sequence}, (SELECT max(id) FROM "{table}"))')
            cursor.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return ScaleData(creator.id, customers, customers * ENTRIES_PER_CUSTOMER, time.perf_counter() - started)


TABLES = {
    "user": ["id", "email", "name", "password_hash", "is_active", "created_at"],
    "customer": [
        "id",
        "creator_id",
        "buyer_id",
        "status",
        "balance",
        "credits_purchased",
        "first_purchase_at",
        "last_purchase_at",
        "created_at",
        "updated_at",
    ],
    "purchase": [
        "id",
        "creator_id",
        "buyer_id",
        "customer_id",
        "pack_id",
        "amount",
        "currency",
        "credits",
        "stripe_session_id",
        "status",
        "created_at",
        "paid_at",
    ],
    "credit_lot": ["id", "customer_id", "source", "purchase_id", "granted", "remaining", "expires_at", "created_at"],
    "ledger_entry": [
        "id",
        "creator_id",
        "customer_id",
        "lot_id",
        "delta",
        "balance_after",
        "kind",
        "reason",
        "actor_type",
        "actor_id",
        "created_at",
    ],
}


def _generate(
    rng: random.Random, creator_id: int, pack_id: int, customers: int, now: datetime, *, first_id: int
) -> dict[str, list]:
    rows: dict[str, list] = {table: [] for table in TABLES}
    entry_id = first_id
    for n in range(customers):
        row_id = first_id + n
        bought = now - timedelta(days=rng.uniform(1, 365))
        email = f"{rng.choice(FIRST)}.{rng.choice(LAST)}.{n}@example.com"
        rows["user"].append((row_id, email, email.split("@")[0].replace(".", " ").title(), "!", True, bought))
        granted = 1000
        debits = [rng.randint(1, 60) for _ in range(ENTRIES_PER_CUSTOMER - 1)]
        balance = granted - sum(debits)
        rows["customer"].append((row_id, creator_id, row_id, "active", balance, granted, bought, bought, bought, now))
        rows["purchase"].append(
            (
                row_id,
                creator_id,
                row_id,
                row_id,
                pack_id,
                1000,
                "USD",
                granted,
                f"cs_bench_{row_id}",
                "paid",
                bought,
                bought,
            )
        )
        rows["credit_lot"].append((row_id, row_id, "purchase", row_id, granted, balance, None, bought))
        running = granted
        rows["ledger_entry"].append(
            (entry_id, creator_id, row_id, row_id, granted, running, "purchase", "", "stripe", None, bought)
        )
        when = bought
        for amount in debits:
            entry_id += 1
            running -= amount
            when = min(now, when + timedelta(hours=rng.uniform(1, 200)))
            rows["ledger_entry"].append(
                (entry_id, creator_id, row_id, row_id, -amount, running, "debit", "usage", "system", None, when)
            )
        entry_id += 1
    return rows
