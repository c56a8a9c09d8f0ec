"""Debits of one customer that arrive together, run together in one transaction on PostgreSQL.

Each debit holds the customer's row lock from its lock to its commit; when many requests spend from one
customer at once, they queue on that lock and the customer's throughput is one transaction at a time.
`Coalescer` lets the debits of this process that wait meanwhile run as the next batch (`debit_together`),
which takes the lock and commits once for all of them while each still gets its own ledger entry,
idempotency record and result. A batch of one is the fast path's single debit (`postgres`).

Start at `DEBITS`, which `operations.debit` calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import insert

from litesubs.models import LedgerEntry
from litesubs.services import idempotency, webhooks
from litesubs.services.ledger.model import LedgerResult
from litesubs.services.ledger.postgres import Debit, debit_in_one_call, debit_lock
from litesubs.services.ledger.rules import has_due_lots, lot_of_each, lots_to_take, refusal_of
from litesubs.services.ledger.transaction import MOVE_BALANCE, TAKE_FROM_LOT, entry_fields

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Call(Generic[Request, Result]):
    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None
    error: BaseException | None = None
    batch: list[_Call[Request, Result]] | None = None  # set when this call is to run the next batch


class Coalescer(Generic[Request, Result]):
    """Runs `run_batch` on lists of requests for one key, one batch per key at a time, in arrival order.

    `run_batch` returns one result per request, in order; if it raises, every call of the batch raises it.
    A batch holds at most `max_batch` requests; the rest wait for the following one.
    """

    def __init__(self, run_batch: Callable[[list[Request]], list[Result]], *, max_batch: int = 64) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._waiting: dict[Hashable, list[_Call[Request, Result]]] = {}  # a key is here while its batch runs

    def run(self, key: Hashable, request: Request) -> Result:
        """The result of `request`, run alone or together with the other requests for `key` waiting now."""
        call: _Call[Request, Result] = _Call(request)
        with self._mutex:
            waiting = self._waiting.get(key)
            if waiting is None:
                self._waiting[key] = []
                call.batch = [call]
            else:
                waiting.append(call)
        if call.batch is None:
            call.done.wait()
        if call.batch is not None:
            self._run(key, call.batch)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def _run(self, key: Hashable, batch: list[_Call[Request, Result]]) -> None:
        try:
            results = self._run_batch([call.request for call in batch])
            for call, result in zip(batch, results, strict=True):
                call.result = result
        except BaseException as error:  # noqa: BLE001 - every caller of the batch gets the error
            for call in batch:
                call.error = error
        with self._mutex:
            waiting = self._waiting[key]
            following, rest = waiting[: self._max_batch], waiting[self._max_batch :]
            if following:
                self._waiting[key] = rest
            else:
                del self._waiting[key]
        for call in batch:
            call.batch = None
            call.done.set()
        if following:
            following[0].batch = following
            following[0].done.set()


def _run_debits(debits: list[Debit]) -> list[dict[str, Any] | None]:
    """The committed outcome of each debit (all of one customer), or None where the general path must decide."""
    return debit_together(debits) if len(debits) > 1 else [debit_in_one_call(debits[0])]


# Debits of one customer that arrive while another is running wait, then run together (see `coalescing`).
DEBITS: Coalescer[Debit, dict[str, Any] | None] = Coalescer(_run_debits)


def debit_together(debits: list[Debit]) -> list[dict[str, Any] | None]:
    """Several debits of one customer in one transaction, in order, as if one after the other.

    One lock and one commit for all; each debit still gets its own idempotency record, ledger entry and
    outcome. Statements cover the whole batch: the claims, the lock, the lots to take for the sum of the
    successful debits, and then the lot, balance, ledger and outcome writes. A debit whose key was used
    before (or earlier in the batch) gets None, as does every debit when the customer is not found or a
    lot is due: the general path decides those, one at a time.
    """
    engine, creator_id, customer_id = debits[0].engine, debits[0].creator_id, debits[0].customer_id
    now = max(debit.cause.now for debit in debits)
    outcomes: list[dict[str, Any] | None] = [None] * len(debits)
    claims = [(d.cause.idempotency_key, d.request, d.cause.now) for d in debits if d.cause.idempotency_key is not None]
    with engine.begin() as connection:
        claimed = idempotency.claim_all(connection, creator_id=creator_id, claims=claims) if claims else set()
        running = []
        for index, debit in enumerate(debits):
            key = debit.cause.idempotency_key
            if key is None or key in claimed:
                running.append(index)
                claimed.discard(key)
        lock = debit_lock(with_key=False)
        customer = connection.execute(lock, {"debit_creator_id": creator_id, "debit_customer_id": customer_id}).first()
        if customer is None or has_due_lots(customer, now):
            connection.rollback()
            return outcomes
        balance, spends = customer.balance, []
        for index in running:
            outcomes[index] = refusal_of(customer, balance=balance, amount=debits[index].amount)
            if outcomes[index] is None:
                balance -= debits[index].amount
                spends.append((index, balance))
        if spends:
            lots = connection.execute(lots_to_take(customer_id, customer.balance - balance)).all()
            connection.execute(TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in lots])
            connection.execute(
                MOVE_BALANCE, {"move_customer_id": customer_id, "move_balance": balance, "move_now": now}
            )
            lot_ids = lot_of_each(lots, [debits[index].amount for index, _after in spends])
            entries = [
                {
                    **entry_fields(
                        creator_id,
                        customer_id,
                        delta=-debits[index].amount,
                        balance_after=after,
                        cause=debits[index].cause,
                    ),
                    "lot_id": lot_id,
                }
                for (index, after), lot_id in zip(spends, lot_ids, strict=True)
            ]
            entry_ids = connection.execute(_INSERT_ENTRIES, entries).scalars().all()
            webhooks.credits_changed(
                connection, list(zip(entry_ids, entries, strict=True)), watch=webhooks.Watch.of(customer)
            )
            for (index, after), lot_id, entry_id in zip(spends, lot_ids, entry_ids, strict=True):
                debit = debits[index]
                result = LedgerResult(entry_id, customer_id, "debit", -debit.amount, after, lot_id, debit.cause.now)
                outcomes[index] = {"result": result.to_json()}
        remembered = [
            idempotency.remember_parameters(creator_id=creator_id, key=key, outcome=outcomes[index])
            for index in running
            if (key := debits[index].cause.idempotency_key) is not None
        ]
        if remembered:
            connection.execute(idempotency.REMEMBER, remembered)
    return outcomes


_INSERT_ENTRIES = insert(LedgerEntry).returning(LedgerEntry.id, sort_by_parameter_order=True)
