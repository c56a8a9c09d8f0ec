"""Concurrent calls for one key, run together: while one batch runs, the calls that arrive wait, and the
first of them then runs all of them as the next batch.

The ledger uses it for debits of one customer. Each debit holds the customer's row lock from its lock
statement to its commit; when many requests spend from one customer at once, they queue on that lock
and the customer's throughput is one transaction at a time. Batching the waiting debits of this process
into one transaction takes the lock and commits once for all of them, while each still gets its own
ledger entry and its own result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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
