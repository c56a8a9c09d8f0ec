"""What a debit (and a hold + capture pair) writes to PostgreSQL's WAL, and which of its updates are HOT.

Issue 21 asks for `customer.balance` to stay out of every index, so that a debit's update of its customer is a HOT
update (no new index entries, less WAL, less for VACUUM). This measures it on a throwaway database: a creator
with 1,000 customers, debits one after another in this process (`ledger.debit` with an idempotency key, as the
API calls it), spread over the customers, then hold + capture pairs the same way.

- WAL: the records between two WAL positions that touch this database's relations, and the commit records of
  their transactions, read with `pg_walinspect` (PostgreSQL 15's contrib), so other databases' writes on a
  shared server are not counted. Full-page images (the first change of a page after a checkpoint) come apart:
  how many there are depends on when the last checkpoint ran, the rest does not.
- HOT: `pg_stat_user_tables`' updates and HOT updates per table over the same operations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, text

from bench.holds import HoldWorld, in_process_operations

OPERATIONS = 2000
WINDOW = 100
WARM_UP = 200
TABLES = ("customer", "credit_lot", "hold", "ledger_entry", "idempotency_record")

# This database's WAL between two positions, in one pass grouped by transaction: records that name one of its
# relations (block references read "rel <tablespace>/<database>/<relation>"), and the commit records of the
# transactions that wrote them.
_WAL = text(
    """
    SELECT coalesce(sum(records), 0), coalesce(sum(bytes), 0), coalesce(sum(fpi_bytes), 0), coalesce(sum(fpis), 0)
    FROM (
        SELECT
            bool_or(ours) AS touched,
            count(*) FILTER (WHERE ours OR commit) AS records,
            sum(record_length) FILTER (WHERE ours OR commit) AS bytes,
            sum(fpi_length) FILTER (WHERE ours) AS fpi_bytes,
            count(*) FILTER (WHERE ours AND fpi_length > 0) AS fpis
        FROM (
            SELECT xid, record_length, fpi_length, resource_manager = 'Transaction' AS commit,
                coalesce(block_ref LIKE '%/' || :database || '/%', false) AS ours
            FROM pg_get_wal_records_info(CAST(:start AS pg_lsn), CAST(:end AS pg_lsn))
        ) AS records
        GROUP BY xid
    ) AS transactions
    WHERE touched
    """
)
_UPDATES = text(
    "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname IN :tables"
).bindparams(bindparam("tables", value=list(TABLES), expanding=True))


@dataclass(frozen=True)
class WalResult:
    operation: str
    count: int
    wal_bytes: float  # per operation, full-page images included
    wal_bytes_without_fpi: float  # per operation, full-page images left out
    records: float  # WAL records per operation
    full_page_images: int  # over the whole run
    updates: dict[str, tuple[int, int]]  # table -> (updates, HOT updates) per run


def measure(engine: Engine, world: HoldWorld) -> list[WalResult]:
    with engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_walinspect"))
    one_debit, one_pair = in_process_operations(engine, world, prefix="wal")
    return [_written(engine, "debit", one_debit), _written(engine, "hold + capture", one_pair)]


def _written(engine: Engine, name: str, operation: Callable[[], None]) -> WalResult:
    """`OPERATIONS` runs of `operation`, their WAL read after every `WINDOW` of them: short reads, done before a
    checkpoint can recycle the segments they need."""
    for _ in range(WARM_UP):
        operation()
    before_updates = _updates(engine)
    totals = [0, 0, 0, 0]  # records, bytes, bytes of full-page images, full-page images
    with engine.connect() as connection:
        database = connection.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar()
    for _ in range(OPERATIONS // WINDOW):
        with engine.connect() as connection:
            start = connection.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar()
        for _ in range(WINDOW):
            operation()
        with engine.connect() as connection:
            end = connection.execute(text("SELECT pg_current_wal_flush_lsn()")).scalar()
            window = connection.execute(_WAL, {"start": start, "end": end, "database": str(database)}).one()
        totals = [total + int(part) for total, part in zip(totals, window, strict=True)]
    after_updates = _updates(engine)
    records, size, fpi_size, fpis = totals
    updates = {
        table: (after_updates[table][0] - before_updates[table][0], after_updates[table][1] - before_updates[table][1])
        for table in TABLES
    }
    return WalResult(
        operation=name,
        count=OPERATIONS,
        wal_bytes=round(size / OPERATIONS),
        wal_bytes_without_fpi=round((size - fpi_size) / OPERATIONS),
        records=round(records / OPERATIONS, 1),
        full_page_images=fpis,
        updates=updates,
    )


def _updates(engine: Engine) -> dict[str, tuple[int, int]]:
    """Updates and HOT updates so far per table. Backends report their counts when their connection closes (or
    within a second), so the pool's connections are closed first."""
    engine.dispose()
    time.sleep(0.5)
    with engine.connect() as connection:
        rows = connection.execute(_UPDATES).all()
    return {table: (updates, hot) for table, updates, hot in rows} | {
        table: (0, 0) for table in TABLES if table not in {row[0] for row in rows}
    }
