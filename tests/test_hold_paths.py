"""A hold's two paths on PostgreSQL keep the same books: the one-call fast paths (the server-side functions
`hold_place` and `hold_end`, migration 0015) and the general path (`ledger.transaction.change_credits` with the
rules in Python), as tests/test_ledger_paths.py does for the debit.

Hypothesis draws one sequence of grants (with and without expiry), debits, holds (some expiring within the
sequence), captures (of all or part, more than held, with and without a reason, an ASCII or other one), releases,
ends of ended holds, idempotency keys repeated across them (replays and conflicts), clock moves past expiries,
suspensions and reactivations; it runs on two customers of two creators (same low-balance threshold, both
subscribed to `credits.debited`), one through the fast paths and the other through the general path alone.
Every answer must match, and so must the ledgers, the lots, the holds (with the lots each took from), the
idempotency records and the webhook events (their data byte for byte, ids aside).
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from litesubs.models import Customer, utcnow
from litesubs.services import holds, webhooks
from litesubs.services.customers import reactivate_customer, suspend_customer
from litesubs.services.errors import DomainError
from litesubs.services.ledger import Actor, debit, grant
from tests.invariants import assert_invariants
from tests.ledger_factories import new_customer
from tests.paths import books_of, comparable

API_KEY = Actor("api_key", 5)
HOUR = timedelta(hours=1)
KEYS = st.none() | st.sampled_from(["k1", "k2", "k3"])
REASONS = st.sampled_from(["", "job 7", "café ✓", 'a "quote", \\ and\ttab'])
HOLD = st.integers(0, 5)  # which of the customer's holds, by order of placing

GRANT = st.tuples(st.just("grant"), st.integers(1, 40), st.none() | st.integers(1, 6).map(lambda hours: hours * HOUR))
operations = st.lists(
    st.one_of(
        GRANT,
        st.tuples(st.just("debit"), st.integers(1, 30), KEYS),
        st.tuples(st.just("hold"), st.integers(1, 30), st.tuples(KEYS, REASONS, st.sampled_from([600, 3 * 3600]))),
        st.tuples(st.just("hold"), st.integers(1, 30), st.tuples(KEYS, REASONS, st.just(900))),
        st.tuples(st.just("capture"), HOLD, st.tuples(KEYS, st.none() | st.integers(1, 35), st.none() | REASONS)),
        st.tuples(st.just("capture"), HOLD, st.tuples(KEYS, st.none(), st.none())),
        st.tuples(st.just("release"), HOLD, KEYS),
        st.tuples(st.just("wait"), st.integers(1, 4).map(lambda hours: hours * HOUR), st.none()),
        st.tuples(st.sampled_from(["suspend", "reactivate"]), st.none(), st.none()),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(  # a hold across lots of different expiries, part of it captured, the rest released by its expiry
    grants=[("grant", 10, HOUR), ("grant", 10, None), ("grant", 10, 2 * HOUR)],
    plan=[
        ("hold", 25, ("k1", "job 7", 600)),
        ("capture", 0, ("k2", 6, None)),
        ("capture", 0, ("k2", 6, None)),
        ("hold", 3, (None, "café ✓", 600)),
        ("wait", HOUR, None),
        ("release", 1, None),
        ("capture", 1, (None, 1, "")),
    ],
    threshold=None,
)
@given(grants=st.lists(GRANT, min_size=2, max_size=3), plan=operations, threshold=st.none() | st.integers(1, 50))
def test_the_hold_fast_paths_and_the_general_path_keep_the_samebooks_of(
    postgres_engine: Engine, grants: list[tuple], plan: list[tuple], threshold: int | None
) -> None:
    """Starting with a few grants, so that holds often take from several lots."""
    engine = postgres_engine
    fast, general = new_customer(engine), new_customer(engine)
    for customer in (fast, general):
        webhooks.set_low_balance_threshold(creator_id=customer.creator_id, threshold=threshold, engine=engine)
        webhooks.create_endpoint(
            creator_id=customer.creator_id,
            url="http://127.0.0.1:9/hooks",
            event_types=["credits.debited", "credits.low", "credits.depleted", "credits.expired"],
            allow_local=True,
            engine=engine,
        )
    placed: dict[int, list[int]] = {fast.id: [], general.id: []}
    now = utcnow()
    for operation, amount, extra in grants + plan:
        if operation == "wait":
            now += amount
            continue
        answers = []
        for customer, fast_path in ((fast, True), (general, False)):
            answer = _apply(engine, customer, placed[customer.id], operation, amount, extra, now, fast_path=fast_path)
            if isinstance(answer, holds.HoldSummary) and answer.id not in placed[customer.id]:
                placed[customer.id].append(answer.id)
            answers.append(comparable(engine, customer, answer))
        assert answers[0] == answers[1], (operation, amount, extra)

    assert books_of(engine, fast) == books_of(engine, general)
    for customer in (fast, general):
        assert_invariants(engine, customer.id)


def _apply(
    engine: Engine, customer: Customer, placed: list[int], operation: str, amount, extra, now, *, fast_path: bool
) -> object:
    ids = {"creator_id": customer.creator_id, "engine": engine, "now": now}
    try:
        if operation == "grant":
            expires_at = None if extra is None else now + extra
            return grant(**ids, customer_id=customer.id, amount=amount, actor=API_KEY, expires_at=expires_at)
        if operation == "debit":
            return debit(
                **ids, customer_id=customer.id, amount=amount, actor=API_KEY, reason="paths", idempotency_key=extra
            )
        if operation == "hold":
            key, reason, expires_in = extra
            return holds.place_hold(
                **ids,
                customer_id=customer.id,
                amount=amount,
                actor=API_KEY,
                reason=reason,
                expires_in=expires_in,
                idempotency_key=key,
                fast_path=fast_path,
            )
        if operation in ("capture", "release"):
            if not placed:
                return None
            hold_id = placed[amount % len(placed)]
            if operation == "release":
                return holds.release_hold(
                    **ids, hold_id=hold_id, actor=API_KEY, idempotency_key=extra, fast_path=fast_path
                )
            key, captured, reason = extra
            return holds.capture_hold(
                **ids,
                hold_id=hold_id,
                amount=captured,
                reason=reason,
                actor=API_KEY,
                idempotency_key=key,
                fast_path=fast_path,
            )
        change = suspend_customer if operation == "suspend" else reactivate_customer
        change(creator_id=customer.creator_id, customer_id=customer.id, engine=engine, now=now)
    except DomainError as error:
        return error
    return None
