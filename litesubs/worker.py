"""The background worker: delivers the outbox and sweeps due holds and expiries.

It is embedded in the app by default (`embedded_worker`, from the app's lifespan), so `make run`
needs nothing more, and runs alone as `python -m litesubs worker`; LITESUBS_EMBEDDED_WORKER=0 turns
the embedded one off. On PostgreSQL any number of workers, in any number of processes, share the
outbox (`outbox.claim` skips what another is claiming). Of the embedded workers of one machine (each
of the server's worker processes starts one) only one works per database, as on SQLite: each
candidate takes an exclusive lock on a file (on SQLite next to the database, else in the temporary
directory), and the others wait to take it over, should its holder stop. An idle worker polls, and
five processes polling cost more CPU than the polls of one. Nothing a worker holds outlives it: a
stopped worker's messages are taken up again where it left off (`outbox.LEASE`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, make_url

from litesubs.db import get_engine, is_sqlite
from litesubs.models import utcnow
from litesubs.services import holds, ledger, mail, outbox, webhooks
from litesubs.services.mail import MailDeliverer
from litesubs.services.webhook_delivery import WebhookDeliverer
from litesubs.settings import get_settings

logger = logging.getLogger(__name__)

# Who delivers each kind of outbox message.
DELIVERERS: dict[str, outbox.Deliverer] = {webhooks.WEBHOOK_KIND: WebhookDeliverer(), mail.EMAIL_KIND: MailDeliverer()}
IDLE_POLL_SECONDS = 0.3  # an event reaches its receiver well within a second
ERROR_PAUSE_SECONDS = 5
EXPIRY_SWEEP_EVERY = timedelta(minutes=1)


class Worker:
    """The worker's loop, for one database. `run` until `stop`; `run_once` for one round (tests)."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        deliverers: dict[str, outbox.Deliverer] | None = None,
        one_per_machine: bool = False,
    ) -> None:
        self.engine = engine or get_engine()
        self.deliverers = DELIVERERS if deliverers is None else deliverers
        self.one_per_machine = one_per_machine
        self._stopping = threading.Event()
        self._last_sweep: datetime | None = None

    def run_once(self, *, now: datetime | None = None) -> int:
        """Sweep due expiries (at most once a minute: holds past their expiry give their credits back, then due lots
        expire, taking what went back to an expired lot), turn new events into deliveries, deliver what is due.

        Returns how much it did (events dispatched and messages tried).
        """
        now = now or utcnow()
        if self._last_sweep is None or now - self._last_sweep >= EXPIRY_SWEEP_EVERY:
            holds.release_expired(now=now, engine=self.engine)
            ledger.expire_due_credits(now=now, engine=self.engine)
            self._last_sweep = now
        dispatched = webhooks.dispatch_events(engine=self.engine)
        return dispatched + outbox.deliver_due(self.deliverers, now=now, engine=self.engine)

    def run(self) -> None:
        """Work until `stop`: without pause while there is work, polling every 0.3 s when there is none."""
        with _Turns(self.engine, self._stopping, one_per_machine=self.one_per_machine) as turns:
            for _ in turns:
                try:
                    pause = 0 if self.run_once() else IDLE_POLL_SECONDS
                except Exception:
                    logger.exception("Worker round failed (is the database up?); trying again in 5 s")
                    pause = ERROR_PAUSE_SECONDS
                if pause and self._stopping.wait(pause):
                    return

    def stop(self) -> None:
        self._stopping.set()


class _Turns:
    """Rounds of work until stopped; on SQLite only while this worker holds the database's worker lock."""

    def __init__(self, engine: Engine, stopping: threading.Event, *, one_per_machine: bool) -> None:
        self._path = _lock_path(engine) if is_sqlite(engine) else None
        if one_per_machine and self._path is None:
            self._path = _machine_lock_path(engine)
        self._stopping = stopping
        self._file: IO[str] | None = None

    def __enter__(self) -> Iterator[None]:
        return self._rounds()

    def __exit__(self, *_exc: object) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock

    def _rounds(self) -> Iterator[None]:
        while not self._stopping.is_set():
            if self._path is not None and self._file is None and not self._take_lock():
                self._stopping.wait(1)
                continue
            yield

    def _take_lock(self) -> bool:
        handle = self._path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        logger.info("This worker delivers for %s; other workers of this database wait", self._path.stem)
        return True


def _lock_path(engine: Engine) -> Path | None:
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".worker-lock")


def _machine_lock_path(engine: Engine) -> Path:
    """A lock file of this machine for the database: one embedded worker of all the app's processes works."""
    database = engine.url.render_as_string(hide_password=True)
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"litesubs-{digest}.worker-lock"


def run_forever() -> None:
    """`python -m litesubs worker`: work until SIGINT or SIGTERM, finishing the round under way."""
    worker = Worker()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda _signal, _frame: worker.stop())
    logger.info("Litesubs worker started")
    worker.run()
    logger.info("Litesubs worker stopped")


@asynccontextmanager
async def embedded_worker() -> AsyncIterator[None]:
    """App lifespan task: a worker thread in this app process, unless LITESUBS_EMBEDDED_WORKER=0."""
    if not get_settings().embedded_worker:
        yield
        return
    worker = Worker(one_per_machine=True)
    thread = threading.Thread(target=worker.run, name="litesubs-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=15)
