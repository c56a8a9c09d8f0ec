"""Scale-out: app processes sharing one PostgreSQL database and one Redis, as the README deploys them.

One module-scoped cluster: processes A and B, each the production build (`reflex run --env prod
--single-port`) with two granian workers, Reflex's Redis state manager and a frontend directory of
its own (as `make serve` gives each port), started in parallel on one fresh PostgreSQL database.

They run in Stripe mode against the fake Stripe of tests/stripe_server.py. That is the production
configuration, and it is the cheapest honest way to make purchases over plain HTTP: a checkout is
opened by the same `start_checkout` the Buy button calls, paid at (fake) Stripe, and fulfilled by a
signed `checkout.session.completed` webhook POSTed to the app, exactly as Stripe does it. Test
mode's Pay button is a Reflex event over the websocket, which a stream of HTTP requests cannot
drive. In the browser, Playwright plays Stripe's hosted checkout page on the fake Stripe's host, and
the buyer comes back to our success page, which asks (fake) Stripe whether the session is paid.

1. Both processes at once: a buyer signed in once buys through A's pages and sees the wallet on B
   (and the other way round) while API debits go alternately to A and B, some with one
   Idempotency-Key sent to both.
2. Crash: A is SIGKILLed in the middle of a stream of debits and webhooks, with four of them held
   halfway through their transactions (the test holds their customer's row lock), and started again
   on its work directory. Every answered success is in the ledger once, no refusal is, unanswered
   requests are applied whole or not at all (a webhook caught inside its transaction not at all), and
   retrying them (same Idempotency-Key, same event) applies each exactly once.
3. Graceful stop: after SIGTERM the process refuses new connections at once, finishes the requests
   it had accepted (twelve waiting inside the database, two still sending their bodies) and exits,
   with a browser tab and an idle keep-alive connection still open. It has no deadline of its own:
   Reflex starts granian without `workers_kill_timeout`, so a client that never finishes its request
   would hold it; the README leaves that bound to the supervisor's stop timeout.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import Connection, Engine, text
from sqlmodel import Session, select

from litesubs.api.v1.errors import REPLAYED_HEADER
from litesubs.db import get_engine, make_engine
from litesubs.models import CreditLot, Customer, LedgerEntry, Pack, Purchase, StripeEvent, User
from litesubs.payments.checkout import start_checkout
from litesubs.services.api_keys import create_key
from litesubs.services.customers import get_or_create_customer
from litesubs.services.ledger import Actor, grant
from litesubs.settings import get_settings
from tests.app_server import AppServer, start_app_server
from tests.browser import DESKTOP, PageProblems, sign_in_new_user
from tests.conftest import ARTIFACTS, _require_postgres, create_user, use_database
from tests.databases import postgres_database
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.stripe_server import FakeStripe, start_stripe_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
STRIPE_KEY = "sk_test_scale_out"
WEBHOOK_SECRET = "whsec_scale_out"
PROCESSES = ("A", "B")

pytestmark = pytest.mark.browser


# --- The cluster --------------------------------------------------------------------------------


def _require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}; CI must test the Redis state manager")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")


@dataclass
class Cluster:
    """App processes by name on one database, one Redis and one fake Stripe; each keeps its work directory."""

    database_url: str
    engine: Engine
    stripe: FakeStripe
    work_dirs: dict[str, Path]
    servers: dict[str, AppServer] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    def environment(self) -> dict[str, str]:
        return {
            "REDIS_URL": REDIS_URL,
            "GRANIAN_WORKERS": "2",
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.stripe.base_url,
        }

    def start(self, name: str) -> AppServer:
        """Start process `name` (again), reusing its work directory, and check it reports both stores healthy."""
        self.starts[name] += 1
        log = ARTIFACTS / f"scale-out-{name}-{self.starts[name]}.log"
        server = start_app_server(self.database_url, log, self.work_dirs[name], self.environment())
        self.servers[name] = server
        health = httpx.get(f"{server.base_url}/api/health", timeout=10).json()
        assert health == {"status": "ok", "database": "ok", "redis": "ok"}, health
        return server

    def running(self, name: str) -> AppServer:
        """Process `name`, started again if an earlier test stopped it."""
        server = self.servers[name]
        return server if server.process.poll() is None else self.start(name)

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A and B, started in parallel (each builds its own frontend), on a fresh PostgreSQL database."""
    _require_postgres()
    _require_redis()
    stripe, stripe_server = start_stripe_server(STRIPE_KEY)
    with postgres_database() as url:
        engine = make_engine(url)
        work_dirs = {name: tmp_path_factory.mktemp(f"scale-out-{name}") for name in PROCESSES}
        cluster = Cluster(database_url=url, engine=engine, stripe=stripe, work_dirs=work_dirs)
        try:
            with ThreadPoolExecutor(max_workers=len(PROCESSES)) as pool:
                list(pool.map(cluster.start, PROCESSES))
            yield cluster
        finally:
            cluster.stop_all()
            engine.dispose()
    stripe_server.shutdown()
    stripe_server.server_close()


@dataclass(frozen=True)
class Shop:
    """A creator with a pack and an API key, made through the services."""

    creator: User
    pack: Pack
    secret: str
    engine: Engine

    def customer(self, *, credits: int) -> tuple[Customer, User]:
        """A new buyer of this creator's, holding `credits` granted by the creator."""
        buyer = create_user(self.engine, name="Buyer")
        customer = get_or_create_customer(creator_id=self.creator.id, buyer_id=buyer.id, engine=self.engine)
        grant(
            creator_id=self.creator.id,
            customer_id=customer.id,
            amount=credits,
            actor=Actor("creator", self.creator.id),
            engine=self.engine,
        )
        return customer, buyer


def new_shop(engine: Engine, *, price: str, credits: str) -> Shop:
    creator = create_user(engine, name="Studio Nine")
    pack = make_pack(engine, creator.id, name="Scale pack", price=price, credits=credits, expires_on="2099-12-31")
    _key, secret = create_key(creator_id=creator.id, name="Backend", engine=engine)
    return Shop(creator=creator, pack=pack, secret=secret, engine=engine)


# --- Requests and what their clients saw --------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a client saw: a status with its JSON body, or no response at all (`status` None)."""

    status: int | None
    body: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500


def send(request: Callable[[], httpx.Response]) -> Outcome:
    """Send as a well-behaved client: after a 429, wait Retry-After and send the same request again."""
    while True:
        try:
            response = request()
        except httpx.TransportError:
            return Outcome(None)
        if response.status_code != 429:
            return Outcome(response.status_code, response.json(), response.headers.get(REPLAYED_HEADER) == "true")
        time.sleep(int(response.headers["Retry-After"]))


class Request(Protocol):
    def send(self, base_url: str) -> Outcome: ...


@dataclass(frozen=True)
class Debit:
    """`POST /api/v1/customers/{id}/debit` with its Idempotency-Key."""

    secret: str
    customer_id: int
    amount: int
    key: str

    def send(self, base_url: str) -> Outcome:
        return send(
            lambda: httpx.post(
                f"{base_url}/api/v1/customers/{self.customer_id}/debit",
                json={"amount": self.amount, "reason": "scale-out"},
                headers={"Authorization": f"Bearer {self.secret}", "Idempotency-Key": self.key},
                timeout=30,
            )
        )


@dataclass(frozen=True, eq=False)
class Delivery:
    """Stripe POSTing an event to the webhook, signed with `secret` (a forged one when it is not ours).

    Compared by identity: each stands for one event, and sets of them need a hash the event dict has not.
    """

    event: dict[str, Any]
    secret: str = WEBHOOK_SECRET

    @property
    def session_id(self) -> str:
        return self.event["data"]["object"]["id"]

    def send(self, base_url: str) -> Outcome:
        return send(lambda: FakeStripe.deliver(f"{base_url}/api/stripe/webhook", self.event, secret=self.secret))


def send_all(jobs: list[tuple[Request, str]], *, threads: int, pace: float = 0) -> list[Outcome]:
    """Send every request to its base URL from `threads` threads, each waiting `pace` seconds before sending."""

    def one(job: tuple[Request, str]) -> Outcome:
        time.sleep(pace)
        return job[0].send(job[1])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, jobs))


# --- What the database holds --------------------------------------------------------------------


def debit_entries(engine: Engine, creator_id: int) -> dict[str, list[LedgerEntry]]:
    """The creator's debit entries by idempotency key."""
    statement = select(LedgerEntry).where(LedgerEntry.creator_id == creator_id, LedgerEntry.kind == "debit")
    entries: dict[str, list[LedgerEntry]] = {}
    with Session(engine) as session:
        for entry in session.exec(statement.order_by(LedgerEntry.id)):
            entries.setdefault(entry.idempotency_key, []).append(entry)
    return entries


@dataclass(frozen=True)
class Fulfilment:
    status: str
    lots: int
    event_recorded: bool


FULFILLED = Fulfilment("paid", 1, True)
UNTOUCHED = Fulfilment("pending", 0, False)


def fulfilment_of(engine: Engine, delivery: Delivery) -> Fulfilment:
    """The purchase's status, how many credit lots it granted, and whether its event was recorded."""
    with Session(engine) as session:
        purchase = session.exec(select(Purchase).where(Purchase.stripe_session_id == delivery.session_id)).one()
        lots = session.exec(select(CreditLot).where(CreditLot.purchase_id == purchase.id)).all()
        recorded = session.get(StripeEvent, delivery.event["id"]) is not None
    return Fulfilment(purchase.status, len(lots), recorded)


def balances(engine: Engine, creator_id: int) -> dict[int, int]:
    with Session(engine) as session:
        customers = session.exec(select(Customer).where(Customer.creator_id == creator_id)).all()
    return {customer.id: customer.balance for customer in customers}


def assert_books_balance(engine: Engine, creator_id: int) -> None:
    """DESIGN.md's invariants for every customer of the creator."""
    for customer_id in balances(engine, creator_id):
        assert_invariants(engine, customer_id)


# Sessions waiting for the lock held by :pid, directly or behind another waiter (row lock waiters queue).
WAITERS = """
WITH RECURSIVE waiting(pid) AS (
    SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))
    UNION
    SELECT activity.pid FROM pg_stat_activity activity JOIN waiting ON waiting.pid = ANY(pg_blocking_pids(activity.pid))
)
SELECT count(*) FROM waiting
"""


@dataclass
class RowLock:
    """The customer's row lock, held in an open transaction: changes of the customer wait inside their handlers."""

    connection: Connection
    pid: int

    @classmethod
    def take(cls, engine: Engine, *customer_ids: int) -> RowLock:
        """Lock these customers' rows. Requests that wait here are in PostgreSQL, one per customer and process:
        debits of one customer in one process wait for each other in the process (`services.ledger.batching`)."""
        connection = engine.connect()
        connection.execute(
            text("SELECT id FROM customer WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"), {"ids": list(customer_ids)}
        )
        return cls(connection, connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def wait_for_waiters(self, engine: Engine, count: int) -> None:
        """Until `count` requests wait for this lock: accepted and halfway through their transactions."""
        query = text(WAITERS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query, {"pid": self.pid}).scalar_one() >= count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{count} requests did not come to wait for the lock")

    def release(self) -> None:
        self.connection.close()  # rolls the transaction back


# --- 1. Two processes at once -------------------------------------------------------------------

API_CUSTOMERS = 3
API_CREDITS = 90
UNIQUE_DEBITS = 150  # amounts 1, 2, 3 in turn: 300 credits asked of 270, so some must be refused
REPEATED_DEBITS = 8  # each sent to A and to B at the same moment with one Idempotency-Key
UI_TIMEOUT = 15_000  # ms: four app workers, Chromium and a request stream share two cores


def stripe_page(stripe: FakeStripe) -> re.Pattern[str]:
    return re.compile(re.escape(f"{stripe.base_url}/c/pay/") + r"cs_test_\w+$")


def hosted_checkout(stripe: FakeStripe) -> Callable[[Route], None]:
    """Stripe's hosted checkout page, served by Playwright on the fake Stripe's host: a Pay link to our success page."""

    def serve(route: Route) -> None:
        session_id = route.request.url.rsplit("/", 1)[1]
        session = stripe.sessions[session_id]
        back = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        route.fulfill(
            content_type="text/html",
            body='<!doctype html><title>Stripe Checkout</title><link rel="icon" href="data:,">'
            f'<a href="{back}">Pay ${session["amount_total"] / 100:.2f}</a>',
        )

    return serve


def buy_through(
    page: Page, server: AppServer, shop: Shop, stripe: FakeStripe, *, webhook_to: AppServer, webhook_first: bool
) -> Delivery:
    """Buy the pack on `server`'s pages and pay at Stripe, whose webhook reaches `webhook_to`.

    Two processes fulfil the one purchase, the success page on `server` and the webhook on the
    other, in the order `webhook_first` says; whichever comes second finds it done.
    """
    page.goto(f"{server.base_url}/buy/{shop.pack.public_id}")
    page.get_by_role("button", name="Buy for $9.00").click()
    expect(page).to_have_url(stripe_page(stripe), timeout=UI_TIMEOUT)
    session_id = page.url.rsplit("/", 1)[1]
    delivery = Delivery(stripe.event("checkout.session.completed", stripe.complete(session_id)))
    if webhook_first:
        assert delivery.send(webhook_to.base_url).body == {"received": True, "outcome": "granted"}
    page.get_by_role("link", name="Pay $9.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=UI_TIMEOUT)
    assert page.url.startswith(f"{server.base_url}/checkout/success")
    if not webhook_first:
        assert delivery.send(webhook_to.base_url).body == {"received": True, "outcome": "already_fulfilled"}
    assert fulfilment_of(shop.engine, delivery) == FULFILLED
    return delivery


def expect_wallet(page: Page, server: AppServer, balance: str) -> None:
    """The signed-in buyer's wallet on `server` shows `balance` credits with the shop's creator."""
    page.goto(f"{server.base_url}/wallet")
    account = page.get_by_test_id("wallet-account")
    expect(account).to_contain_text("Studio Nine", timeout=UI_TIMEOUT)
    expect(account.get_by_test_id("wallet-balance")).to_have_text(balance, timeout=UI_TIMEOUT)


def debit_stream(
    shop: Shop, customers: list[Customer], servers: tuple[AppServer, AppServer]
) -> list[tuple[Debit, str]]:
    """Unique debits alternately to A and B, and now and then one debit sent to both at once."""
    jobs: list[tuple[Debit, str]] = []
    every = UNIQUE_DEBITS // REPEATED_DEBITS
    for index in range(UNIQUE_DEBITS):
        customer_id = customers[index % len(customers)].id
        jobs.append((Debit(shop.secret, customer_id, 1 + index % 3, f"spend-{index}"), servers[index % 2].base_url))
        if index % every == 0 and index // every < REPEATED_DEBITS:
            twice = Debit(shop.secret, customer_id, 2, f"twice-{index}")
            jobs += [(twice, server.base_url) for server in servers]
    return jobs


def outcomes_by_debit(jobs: list[tuple[Debit, str]], outcomes: list[Outcome]) -> dict[Debit, list[Outcome]]:
    by_debit: dict[Debit, list[Outcome]] = {}
    for (debit, _url), outcome in zip(jobs, outcomes, strict=True):
        by_debit.setdefault(debit, []).append(outcome)
    return by_debit


def assert_each_debit_once(engine: Engine, shop: Shop, by_debit: dict[Debit, list[Outcome]]) -> tuple[int, int]:
    """Every answered debit is one entry (a success) or none (a refusal); (successes, credits spent)."""
    entries = debit_entries(engine, shop.creator.id)
    spent = 0
    for debit, outcomes in by_debit.items():
        first = outcomes[0]
        assert all(outcome.status == first.status and outcome.body == first.body for outcome in outcomes)
        assert [outcome.replayed for outcome in outcomes].count(False) == 1, debit
        if first.succeeded:
            assert [(entry.id, entry.delta) for entry in entries.pop(debit.key)] == [(first.body["id"], -debit.amount)]
            spent += debit.amount
        else:
            assert (first.status, first.body["error"]["code"]) == (409, "insufficient_credits")
    assert entries == {}, "debits in the ledger that no request asked for"
    return sum(outcomes[0].succeeded for outcomes in by_debit.values()), spent


def test_two_processes_sell_and_spend_at_once_behind_one_sign_in(cluster: Cluster, browser: Browser) -> None:
    a, b = cluster.running("A"), cluster.running("B")
    engine, stripe = cluster.engine, cluster.stripe
    shop = new_shop(engine, price="9.00", credits="100")
    customers = [shop.customer(credits=API_CREDITS)[0] for _ in range(API_CUSTOMERS)]
    jobs = debit_stream(shop, customers, (a, b))
    context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce")
    context.route(stripe_page(stripe), hosted_checkout(stripe))
    on_a, on_b, problems = context.new_page(), context.new_page(), PageProblems()
    problems.watch(on_a)
    problems.watch(on_b)
    # One sign-in: a cookie is per host, not per port, so A and B both receive it.
    buyer = sign_in_new_user(on_a, base_url=a.base_url, engine=engine, name="Bea Buyer")

    with ThreadPoolExecutor(max_workers=1) as background:
        stream = background.submit(send_all, jobs, threads=4, pace=0.08)
        first = buy_through(on_a, a, shop, stripe, webhook_to=b, webhook_first=False)
        expect(on_a.get_by_test_id("new-balance")).to_have_text("100")
        expect_wallet(on_b, b, "100")
        second = buy_through(on_b, b, shop, stripe, webhook_to=a, webhook_first=True)
        expect(on_b.get_by_test_id("new-balance")).to_have_text("200")
        expect_wallet(on_a, a, "200")
        outcomes = stream.result()

    # The buyer's credits spent through one process show in the wallet on the other.
    wallet = customer_of_buyer(engine, shop, buyer)
    by_debit = outcomes_by_debit(jobs, outcomes)
    for debit, server, page, other, balance in (
        (Debit(shop.secret, wallet, 30, "wallet-on-a"), a, on_b, b, "170"),
        (Debit(shop.secret, wallet, 20, "wallet-on-b"), b, on_a, a, "150"),
    ):
        by_debit[debit] = [debit.send(server.base_url)]
        expect_wallet(page, other, balance)
    context.close()
    assert problems.all() == [], f"browser problems: {problems.all()}"

    assert [purchase.stripe_session_id for purchase in purchases_of(engine, shop)] == [
        first.session_id,
        second.session_id,
    ]
    successes, spent = assert_each_debit_once(engine, shop, by_debit)
    assert 0 < successes < len(by_debit), "the stream asks for more credits than there are: some must be refused"
    assert sum(balances(engine, shop.creator.id).values()) == API_CUSTOMERS * API_CREDITS + 200 - spent
    assert_books_balance(engine, shop.creator.id)


def customer_of_buyer(engine: Engine, shop: Shop, buyer: User) -> int:
    with Session(engine) as session:
        statement = select(Customer.id).where(Customer.creator_id == shop.creator.id, Customer.buyer_id == buyer.id)
        return session.exec(statement).one()


def purchases_of(engine: Engine, shop: Shop) -> list[Purchase]:
    with Session(engine) as session:
        return list(session.exec(select(Purchase).where(Purchase.pack_id == shop.pack.id).order_by(Purchase.id)))


# --- 2. A crash in the middle of a stream ---------------------------------------------------------

CRASH_CUSTOMERS = 4
CRASH_CREDITS = 40
CRASH_PURCHASES = 20
CRASH_DEBITS = 180


@pytest.fixture
def checkouts_here(monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> Iterator[None]:
    """This process configured like the servers, so `start_checkout` here opens checkouts as their Buy button does."""
    for name, value in cluster.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LITESUBS_BASE_URL", cluster.running("A").base_url)
    use_database(monkeypatch, cluster.database_url)
    yield
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


def paid_checkout(cluster: Cluster, shop: Shop, buyer: User, *, secret: str = WEBHOOK_SECRET) -> Delivery:
    """A checkout opened as the Buy button opens it and paid at Stripe; Stripe's event for it, not yet delivered."""
    url = start_checkout(buyer_id=buyer.id, public_id=shop.pack.public_id, engine=cluster.engine)
    completed = cluster.stripe.complete(url.rsplit("/", 1)[1])
    return Delivery(cluster.stripe.event("checkout.session.completed", completed), secret=secret)


def crash_stream(
    cluster: Cluster, shop: Shop, customers: list[tuple[Customer, User]], busy: list[tuple[Customer, User]]
) -> tuple[list[Request], list[Request]]:
    """Debits (a few far too large) and paid checkouts' webhooks (a few forged) in a fixed random order.

    Early in the stream, a debit of each of the two busy customers and two webhooks of the first,
    whose rows the test holds locked: those are the requests the kill will catch halfway. Returns
    (stream, those).
    """
    stream: list[Request] = [
        Debit(shop.secret, customers[index % len(customers)][0].id, 1 + index % 2, f"crash-{index}")
        for index in range(CRASH_DEBITS)
    ]
    stream += [Debit(shop.secret, customer.id, 10_000, f"too-much-{customer.id}") for customer, _ in customers]
    buyers = [buyer for _, buyer in customers]
    stream += [paid_checkout(cluster, shop, buyers[index % len(buyers)]) for index in range(CRASH_PURCHASES)]
    stream += [paid_checkout(cluster, shop, buyer, secret="whsec_forged") for buyer in buyers]
    random.Random(2024).shuffle(stream)
    caught: list[Request] = [Debit(shop.secret, customer.id, 1, f"caught-{customer.id}") for customer, _ in busy]
    caught += [paid_checkout(cluster, shop, busy[0][1]) for _ in range(2)]
    for position, request in enumerate(caught, start=1):
        stream.insert(position * 10, request)
    return stream, caught


def stream_and_kill(
    server: AppServer, requests: list[Request], *, kill_after: int, engine: Engine, caught: RowLock, waiting: int
) -> list[Outcome]:
    """Send the requests to `server` from eight threads; SIGKILL all its processes mid-stream.

    The kill comes once `kill_after` requests are answered and `waiting` requests wait for the
    `caught` row lock: accepted, inside their transactions (a debit's idempotency key claimed, a
    webhook's event id recorded, neither applied yet), and never to be answered.
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(request.send, server.base_url) for request in requests]
        for done, _future in enumerate(as_completed(futures), start=1):
            if done == kill_after:
                break
        caught.wait_for_waiters(engine, waiting)
        os.killpg(server.process.pid, signal.SIGKILL)
        outcomes = [future.result() for future in futures]
    assert server.process.wait(timeout=30) == -signal.SIGKILL
    return outcomes


def debit_applied(entries: dict[str, list[LedgerEntry]], debit: Debit, outcome: Outcome) -> bool:
    """Its entries (taken out of `entries`): one if it succeeded, none if refused, at most one if unanswered."""
    found = [(entry.id, entry.delta) for entry in entries.pop(debit.key, [])]
    if outcome.succeeded:
        assert found == [(outcome.body["id"], -debit.amount)], debit
    elif outcome.refused:
        assert found == [], debit
    else:
        assert found[1:] == [], debit
        assert all(delta == -debit.amount for _id, delta in found), debit
    return bool(found)


def event_applied(engine: Engine, delivery: Delivery, outcome: Outcome) -> bool:
    """The event's purchase is fulfilled once if it succeeded, untouched if refused, one or the other if unanswered."""
    fulfilment = fulfilment_of(engine, delivery)
    if outcome.succeeded:
        assert fulfilment == FULFILLED, delivery.session_id
    elif outcome.refused:
        assert fulfilment == UNTOUCHED, delivery.session_id
    else:
        assert fulfilment in (FULFILLED, UNTOUCHED), delivery.session_id
    return fulfilment == FULFILLED


def assert_all_or_nothing(engine: Engine, shop: Shop, requests: list[Request], outcomes: list[Outcome]) -> set[Request]:
    """Each request is applied once or not at all, as its answer says; returns those applied."""
    entries = debit_entries(engine, shop.creator.id)
    applied = {
        request
        for request, outcome in zip(requests, outcomes, strict=True)
        if (
            debit_applied(entries, request, outcome)
            if isinstance(request, Debit)
            else event_applied(engine, request, outcome)
        )
    }
    assert entries == {}, "debits in the ledger that no request asked for"
    assert_books_balance(engine, shop.creator.id)
    return applied


def assert_retry_is_exactly_once(request: Request, first: Outcome, again: Outcome, *, applied: bool) -> None:
    """A debit applied or refused before is answered the same again; an event applied before is a duplicate."""
    if isinstance(request, Delivery):
        if request.secret != WEBHOOK_SECRET:
            assert again.status == 400, request.session_id
        else:
            outcome = "duplicate" if applied else "granted"
            assert again.body == {"received": True, "outcome": outcome}, request.session_id
    elif applied or first.status is not None:
        assert again.replayed, request
        assert again.succeeded == applied, request
        assert first.status is None or (again.status, again.body) == (first.status, first.body), request
    else:
        assert again.status in (200, 409), request
        assert not (again.succeeded and again.replayed), request


def test_a_process_killed_mid_stream_loses_nothing_and_doubles_nothing(cluster: Cluster, checkouts_here: None) -> None:
    engine = cluster.engine
    shop = new_shop(engine, price="5.00", credits="10")
    customers = [shop.customer(credits=CRASH_CREDITS) for _ in range(CRASH_CUSTOMERS)]
    busy = [shop.customer(credits=CRASH_CREDITS) for _ in range(2)]
    requests, caught = crash_stream(cluster, shop, customers, busy)

    lock = RowLock.take(engine, *(customer.id for customer, _ in busy))
    try:
        outcomes = stream_and_kill(
            cluster.running("A"),
            requests,
            kill_after=len(requests) // 3,
            engine=engine,
            caught=lock,
            waiting=len(caught),
        )
    finally:
        lock.release()
    restarted = cluster.start("A")

    assert sum(outcome.status is not None for outcome in outcomes) >= len(requests) // 3
    applied = assert_all_or_nothing(engine, shop, requests, outcomes)
    assert [outcomes[requests.index(request)].status for request in caught] == [None] * len(caught)
    # A webhook caught inside its transaction never commits. A debit is one statement in autocommit on PostgreSQL
    # (`ledger_debit`): caught waiting for the row lock, it completes on the server once the lock is free, whole,
    # like a request whose answer was lost after its commit; the retries below replay it.
    caught_and_applied = applied.intersection(caught)
    assert not any(isinstance(request, Delivery) for request in caught_and_applied), "a webhook killed halfway"

    again = send_all([(request, restarted.base_url) for request in requests], threads=8)
    for request, first, second in zip(requests, outcomes, again, strict=True):
        assert_retry_is_exactly_once(request, first, second, applied=request in applied)
    assert_all_or_nothing(engine, shop, requests, again)
    debited = sum(r.amount for r, o in zip(requests, again, strict=True) if isinstance(r, Debit) and o.succeeded)
    purchased = sum(isinstance(r, Delivery) and o.succeeded for r, o in zip(requests, again, strict=True))
    assert purchased == CRASH_PURCHASES + 2
    balance = (CRASH_CUSTOMERS + len(busy)) * CRASH_CREDITS + purchased * 10 - debited
    assert sum(balances(engine, shop.creator.id).values()) == balance


# --- 3. Graceful stop -----------------------------------------------------------------------------

HELD_DEBITS = 12
EXIT_SECONDS = 15  # after the last accepted request is answered; it took under a second here


class SlowUpload:
    """A debit whose body arrives in two parts: the server has accepted the request but not read all of it."""

    def __init__(self, server: AppServer, debit: Debit) -> None:
        address = urlsplit(server.base_url)
        self.body = json.dumps({"amount": debit.amount, "reason": "slow upload"}).encode()
        self.socket = socket.create_connection((address.hostname, address.port), timeout=60)
        head = (
            f"POST /api/v1/customers/{debit.customer_id}/debit HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer {debit.secret}\r\nIdempotency-Key: {debit.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        )
        self.socket.sendall(head.encode() + self.body[:5])

    def send_rest(self) -> None:
        self.socket.sendall(self.body[5:])

    def status(self) -> int:
        """The answer's status code (the connection closes after it)."""
        response = b""
        while chunk := self.socket.recv(65536):
            response += chunk
        self.socket.close()
        return int(response.split(b" ", 2)[1])


def probe_until_refused(server: AppServer, debit_of: Callable[[int], Debit]) -> list[tuple[Debit, Outcome]]:
    """Debits to a stopping server until one finds its door shut: its connection refused, so it never started."""
    probes: list[tuple[Debit, Outcome]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        debit = debit_of(len(probes))
        try:
            response = httpx.post(
                f"{server.base_url}/api/v1/customers/{debit.customer_id}/debit",
                json={"amount": debit.amount, "reason": "scale-out"},
                headers={"Authorization": f"Bearer {debit.secret}", "Idempotency-Key": debit.key},
                timeout=30,
            )
        except httpx.ConnectError:
            probes.append((debit, Outcome(None)))
            return probes
        probes.append((debit, Outcome(response.status_code, response.json())))
        time.sleep(0.05)
    raise AssertionError("a server given SIGTERM kept accepting connections for 10 s")


def exits_within(process: subprocess.Popen, seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_sigterm_finishes_accepted_requests_refuses_new_ones_and_exits(cluster: Cluster, browser: Browser) -> None:
    server = cluster.running("B")
    shop = new_shop(cluster.engine, price="9.00", credits="100")
    busy = [shop.customer(credits=1000)[0] for _ in range(HELD_DEBITS)]
    (other, _) = shop.customer(credits=1000)
    held = [Debit(shop.secret, customer.id, 1, f"held-{customer.id}") for customer in busy]
    slow = [Debit(shop.secret, busy[0].id, 2, f"slow-{index}") for index in range(2)]
    tab = browser.new_page()
    with tab.expect_websocket() as websocket:
        tab.goto(f"{server.base_url}/")
    tab.wait_for_timeout(500)
    assert not websocket.value.is_closed()  # a live websocket, which must not hold up the stop
    idle = httpx.Client(base_url=server.base_url)
    assert idle.get("/api/health").status_code == 200  # its connection stays open, idle

    lock = RowLock.take(cluster.engine, *(customer.id for customer in busy))
    with ThreadPoolExecutor(max_workers=HELD_DEBITS) as pool:
        try:
            uploads = [SlowUpload(server, debit) for debit in slow]
            answers = [pool.submit(debit.send, server.base_url) for debit in held]
            lock.wait_for_waiters(cluster.engine, HELD_DEBITS)
            os.killpg(server.process.pid, signal.SIGTERM)  # as AppServer.stop, and systemd, stop a service
            probes = probe_until_refused(server, lambda index: Debit(shop.secret, other.id, 1, f"probe-{index}"))
            assert server.process.poll() is None, "the server exited with requests in flight"
            for upload in uploads:
                upload.send_rest()
        finally:
            lock.release()  # the held debits go on
        outcomes = [answer.result() for answer in answers]
    slow_statuses = [upload.status() for upload in uploads]
    exited = exits_within(server.process, EXIT_SECONDS)  # with a browser tab and an idle connection still open
    tab.close()
    idle.close()

    assert [outcome.status for outcome in outcomes] == [200] * HELD_DEBITS
    assert slow_statuses == [200] * len(slow)
    assert exited, f"still running {EXIT_SECONDS} s after its last request was answered"
    assert server.process.returncode == 0
    started = [probe for probe, outcome in probes if outcome.status is not None]
    assert [outcome.status for _probe, outcome in probes] == [200] * len(started) + [None]
    entries = debit_entries(cluster.engine, shop.creator.id)
    assert {key: len(found) for key, found in entries.items()} == {debit.key: 1 for debit in held + slow + started}
    assert_books_balance(cluster.engine, shop.creator.id)
