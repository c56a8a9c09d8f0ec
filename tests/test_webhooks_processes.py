"""The worker as processes run it: killed apps lose no event, stand-alone workers share the outbox.

1. The app (the production build, on PostgreSQL) commits changes whose events are not delivered yet —
   its embedded worker is off (LITESUBS_EMBEDDED_WORKER=0), so the moment between the change and the
   delivery lasts as long as the test wants — and is killed with SIGKILL. Started again, with its
   embedded worker on, it delivers every one of those events, signed, each once.
2. Two `python -m litesubs worker` processes on one PostgreSQL database share a backlog: every event
   arrives, and no delivery is sent by both (`FOR UPDATE SKIP LOCKED`).
3. Two on one SQLite database: one works, the other waits; stopping the first hands the work over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import make_engine
from litesubs.models import OutboxMessage, WebhookEvent
from litesubs.services import webhooks
from litesubs.services.api_keys import create_key
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from litesubs.settings import REPO_ROOT
from tests.app_server import start_app_server
from tests.conftest import ARTIFACTS, _require_postgres, create_user
from tests.databases import postgres_database, sqlite_database
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.browser  # starts the production build
DELIVERS = "This worker delivers for"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def subscribed_creator(engine: Engine, receiver: Receiver) -> tuple[int, int]:
    """A creator whose endpoint (every type, debits included) is the receiver; and one customer of theirs."""
    creator = create_user(engine, name="Creator")
    endpoint = webhooks.create_endpoint(
        creator_id=creator.id, url=receiver.url, event_types=list(webhooks.EVENT_TYPES), allow_local=True, engine=engine
    )
    receiver.verify_with(endpoint.secret)
    buyer = create_user(engine, name="Buyer")
    return creator.id, get_or_create_customer(creator_id=creator.id, buyer_id=buyer.id, engine=engine).id


def event_ids(engine: Engine, creator_id: int) -> list[str]:
    with Session(engine) as session:
        statement = select(WebhookEvent.id).where(WebhookEvent.creator_id == creator_id)
        return [f"evt_{event_id}" for event_id in session.exec(statement.order_by(WebhookEvent.id))]


def statuses(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(session.exec(select(OutboxMessage.status)))


def test_a_killed_app_delivers_its_events_after_restart(tmp_path: Path, receiver: Receiver) -> None:
    _require_postgres()
    with postgres_database() as url:
        engine = make_engine(url)
        creator_id, customer_id = subscribed_creator(engine, receiver)
        _key, secret = create_key(creator_id=creator_id, name="Backend", engine=engine)
        environment = {"LITESUBS_ALLOW_HTTP_WEBHOOKS": "1", "GRANIAN_WORKERS": "2"}
        server = start_app_server(
            url, ARTIFACTS / "webhooks-kill-1.log", tmp_path, {**environment, "LITESUBS_EMBEDDED_WORKER": "0"}
        )
        api = f"{server.base_url}/api/v1/customers/{customer_id}"
        headers = {"Authorization": f"Bearer {secret}"}
        try:
            assert httpx.post(f"{api}/credit", json={"amount": 10}, headers=headers, timeout=30).status_code == 200
            for _ in range(3):
                assert httpx.post(f"{api}/debit", json={"amount": 1}, headers=headers, timeout=30).status_code == 200
            time.sleep(1)
            assert receiver.received == []  # committed, not delivered
        finally:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
        expected = event_ids(engine, creator_id)
        assert len(expected) == 4  # credits.granted and 3 credits.debited

        restarted = start_app_server(url, ARTIFACTS / "webhooks-kill-2.log", tmp_path, environment)
        try:
            receiver.wait_for(4, timeout=20)
            time.sleep(1)  # nothing more arrives
        finally:
            restarted.stop()
        assert [request.webhook_id for request in receiver.verified()] == expected
        assert len(receiver.received) == 4
        assert receiver.types() == ["credits.granted"] + ["credits.debited"] * 3
        assert statuses(engine) == Counter({"delivered": 4})
        engine.dispose()


def start_worker(database_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "LITESUBS_ALLOW_HTTP_WEBHOOKS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "litesubs", "worker"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_until_delivered(engine: Engine, count: int) -> None:
    deadline = time.monotonic() + 30
    while statuses(engine)["delivered"] < count and time.monotonic() < deadline:
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def test_two_worker_processes_share_the_outbox_on_postgresql(receiver: Receiver) -> None:
    _require_postgres()
    with postgres_database() as url:
        engine = make_engine(url)
        creator_id, customer_id = subscribed_creator(engine, receiver)
        for amount in range(1, 61):
            grant(creator_id=creator_id, customer_id=customer_id, amount=amount, actor=Actor("system"), engine=engine)
        receiver.answer(200, times=60, hold_seconds=0.05)  # slow enough for both workers to get some
        workers = [start_worker(url, ARTIFACTS / f"webhooks-worker-{name}.log") for name in "AB"]
        try:
            wait_until_delivered(engine, 60)
        finally:
            for worker in workers:
                stop(worker)
        ids = [request.webhook_id for request in receiver.verified()]
        assert len(ids) == 60
        assert sorted(ids) == sorted(event_ids(engine, creator_id))  # each once
        assert statuses(engine) == Counter({"delivered": 60})
        assert all(worker.returncode == 0 for worker in workers)
        engine.dispose()


def test_on_sqlite_one_worker_process_works_and_another_takes_over(tmp_path: Path, receiver: Receiver) -> None:
    with sqlite_database(tmp_path) as url:
        engine = make_engine(url)
        creator_id, customer_id = subscribed_creator(engine, receiver)
        logs = [ARTIFACTS / f"webhooks-sqlite-worker-{number}.log" for number in (1, 2)]
        workers = [start_worker(url, log) for log in logs]
        try:
            grant(creator_id=creator_id, customer_id=customer_id, amount=1, actor=Actor("system"), engine=engine)
            wait_until_delivered(engine, 1)
            working = [DELIVERS in log.read_text() for log in logs]
            assert sorted(working) == [False, True]  # one works, the other waits
            stop(workers[working.index(True)])
            grant(creator_id=creator_id, customer_id=customer_id, amount=2, actor=Actor("system"), engine=engine)
            wait_until_delivered(engine, 2)
            assert DELIVERS in logs[working.index(False)].read_text()  # the other one took over
        finally:
            for worker in workers:
                if worker.poll() is None:
                    stop(worker)
        assert [request.event["data"]["delta"] for request in receiver.verified()] == [1, 2]
        assert statuses(engine) == Counter({"delivered": 2})
        engine.dispose()
