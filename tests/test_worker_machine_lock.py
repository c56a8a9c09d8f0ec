"""Embedded workers on PostgreSQL: of one machine's app processes, one polls the outbox; another takes over when it
stops, and every message is delivered."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, event

from litesubs.db import make_engine
from litesubs.worker import IDLE_POLL_SECONDS, Worker
from tests.test_outbox import Postbox, note, status_of


def eventually(condition: Callable[[], bool], *, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_embedded_worker_per_machine_polls_and_another_takes_over(postgres_engine: Engine) -> None:
    """Each worker has an engine of its own (as each app process has), so what each asks the database is counted."""
    url = postgres_engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url), make_engine(url)]
    statements = [0, 0]
    for n, engine in enumerate(engines):
        event.listen(engine, "before_cursor_execute", lambda *_args, n=n: statements.__setitem__(n, statements[n] + 1))
    boxes = [Postbox(), Postbox()]
    workers = [
        Worker(engine, deliverers={"note": box}, one_per_machine=True)
        for engine, box in zip(engines, boxes, strict=True)
    ]
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(10 * IDLE_POLL_SECONDS)
        assert sorted(count > 0 for count in statements) == [False, True], statements  # one polls, one waits
        working = statements.index(max(statements))
        first = secrets.token_hex(4)
        note(postgres_engine, first)
        assert eventually(lambda: status_of(postgres_engine, first).status == "delivered")
        assert {"text": first} in boxes[working].sent

        workers[working].stop()
        threads[working].join(timeout=10)
        then = secrets.token_hex(4)
        note(postgres_engine, then)
        assert eventually(lambda: status_of(postgres_engine, then).status == "delivered")
        assert {"text": then} in boxes[1 - working].sent
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=10)
        for engine in engines:
            engine.dispose()
