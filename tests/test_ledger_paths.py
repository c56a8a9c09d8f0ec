"""The debit's two paths on PostgreSQL keep the same books: the one-call fast path (`ledger.postgres`, the
server-side function `ledger_debit`) and the general path (`ledger.transaction`, the rules in Python).

Hypothesis draws one sequence of grants (with and without expiry), debits (refused ones included, idempotency
keys repeated, with the same request and with another), clock moves past expiries, suspensions and
reactivations; it runs on two customers of two creators (same low-balance threshold, both subscribed to
`credits.debited`), debiting one through `ledger.debit` and the other through its general path alone. Every
answer must match, and so must the ledgers, the lots, the idempotency records and the webhook events.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from litesubs.models import Customer, utcnow
from litesubs.services import webhooks
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import DomainError
from litesubs.services.ledger import Actor, LedgerResult, debit, grant
from tests.invariants import assert_invariants
from tests.ledger_factories import new_customer
from tests.paths import books_of, comparable

API_KEY = Actor("api_key", 5)
HOUR = timedelta(hours=1)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 40), st.none() | st.integers(1, 6).map(lambda hours: hours * HOUR)),
        st.tuples(st.just("debit"), st.integers(1, 30), st.none() | st.sampled_from(["k1", "k2", "k3", "k4"])),
        st.tuples(st.just("debit"), st.integers(1, 30), st.none() | st.sampled_from(["k1", "k2", "k3", "k4"])),
        st.tuples(st.just("wait"), st.integers(1, 4).map(lambda hours: hours * HOUR), st.none()),
        st.tuples(st.sampled_from(["suspend", "reactivate"]), st.none(), st.none()),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=operations, threshold=st.none() | st.integers(1, 50))
def test_the_fast_path_and_the_general_path_keep_the_samebooks_of(
    postgres_engine: Engine, plan: list[tuple], threshold: int | None
) -> None:
    engine = postgres_engine
    fast, general = new_customer(engine), new_customer(engine)
    for customer in (fast, general):
        webhooks.set_low_balance_threshold(creator_id=customer.creator_id, threshold=threshold, engine=engine)
        webhooks.create_endpoint(
            creator_id=customer.creator_id,
            url="http://127.0.0.1:9/hooks",
            event_types=["credits.debited"],
            allow_local=True,
            engine=engine,
        )
    now = utcnow()
    for operation, amount, extra in plan:
        if operation == "wait":
            now += amount
            continue
        answers = [
            comparable(engine, customer, _apply(engine, customer, operation, amount, extra, now, fast_path=fast_path))
            for customer, fast_path in ((fast, True), (general, False))
        ]
        assert answers[0] == answers[1], (operation, amount, extra)

    assert books_of(engine, fast) == books_of(engine, general)
    for customer in (fast, general):
        assert_invariants(engine, customer.id)


def _apply(
    engine: Engine, customer: Customer, operation: str, amount: int | None, extra, now, *, fast_path: bool
) -> LedgerResult | DomainError | None:
    ids = {"creator_id": customer.creator_id, "customer_id": customer.id, "engine": engine}
    try:
        if operation == "grant":
            expires_at = None if extra is None else now + extra
            return grant(**ids, amount=amount, actor=API_KEY, expires_at=expires_at, now=now)
        if operation == "debit":
            return debit(
                **ids, amount=amount, actor=API_KEY, reason="paths", idempotency_key=extra, now=now, fast_path=fast_path
            )
        change = suspend_customer if operation == "suspend" else reactivate_customer
        change(**ids, now=now)
    except DomainError as error:
        return error
    return None
