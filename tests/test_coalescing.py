"""The coalescer: calls for one key that arrive while a batch runs are run together next, in order."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from litesubs.services.ledger.batching import Coalescer


class Recorder:
    """A batch runner that records its batches and holds the first one until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def __call__(self, requests: list[str]) -> list[str]:
        self.batches.append(list(requests))
        if len(self.batches) == 1:
            self.first_started.set()
            self.release_first.wait(timeout=10)
        if "boom" in requests:
            raise RuntimeError("batch failed")
        return [request.upper() for request in requests]


def wait_for_waiting(coalescer: Coalescer, key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(coalescer._waiting.get(key, [])) < count:
        assert time.monotonic() < deadline, "the calls never queued"
        time.sleep(0.001)


def test_calls_arriving_during_a_batch_run_together_next_in_order_each_with_its_result() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(coalescer.run, "customer", "a")
        assert recorder.first_started.wait(timeout=10)
        queued = []
        for request in "bcdef":
            queued.append(pool.submit(coalescer.run, "customer", request))
            wait_for_waiting(coalescer, "customer", len(queued))  # arrival order is known
        other_key = pool.submit(coalescer.run, "another customer", "z")
        assert other_key.result(timeout=10) == "Z"  # other keys do not wait
        recorder.release_first.set()
        assert first.result(timeout=10) == "A"
        assert [future.result(timeout=10) for future in queued] == list("BCDEF")
    assert recorder.batches == [["a"], ["z"], ["b", "c", "d", "e", "f"]]
    assert coalescer._waiting == {}


def test_a_failing_batch_fails_each_of_its_calls_and_the_next_batch_still_runs() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(coalescer.run, "k", "a")
        assert recorder.first_started.wait(timeout=10)
        queued = []
        for request in ["boom", "b", "c"]:
            queued.append(pool.submit(coalescer.run, "k", request))
            wait_for_waiting(coalescer, "k", len(queued))
        recorder.release_first.set()
        assert first.result(timeout=10) == "A"
        for future in queued[:2]:
            with pytest.raises(RuntimeError, match="batch failed"):
                future.result(timeout=10)
        assert queued[2].result(timeout=10) == "C"
    assert recorder.batches == [["a"], ["boom", "b"], ["c"]]  # at most max_batch at once
    assert coalescer._waiting == {}
