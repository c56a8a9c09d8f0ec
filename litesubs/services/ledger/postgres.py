"""The debit's fast path on PostgreSQL: the general path's rules (`transaction.change_credits` with
`transaction.spend_credits`) in one round trip.

Start at `debit_in_one_call`: it calls the server-side function `ledger_debit` (created by migration 0014) in
autocommit, so the key's claim, the customer's lock, the lots, the balance, the ledger entry, its
`credits.debited` event and the key's outcome are one statement and one transaction, with no BEGIN or COMMIT
of their own. The function follows `rules` and leaves every rare case to the general path (no such customer,
a key used before, something due, a refusal with a key, a debit that makes `credits.low` or
`credits.depleted`), having written nothing. tests/test_ledger_paths.py checks that both paths keep the same
books. `call_in_one_trip` calls such a function (holds' too). `debit_lock` is the statement that claims a key
and locks a customer, for batches (`batching`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Engine, Integer, Row, Select, TextClause, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from litesubs.models import Customer
from litesubs.services import idempotency, webhooks
from litesubs.services.ledger.model import Cause, LedgerResult
from litesubs.services.ledger.rules import refusal_of
from litesubs.services.ledger.transaction import entry_fields


@dataclass(frozen=True)
class Debit:
    """One call of `debit`, checked, waiting to run on PostgreSQL alone or with others of its customer.

    `request` is what its idempotency key fingerprints, the customer included.
    """

    engine: Engine
    creator_id: int
    customer_id: int
    amount: int
    request: dict[str, Any]
    cause: Cause


# The SQLSTATE with which `ledger_debit` leaves a debit whose key it claimed to the general path (rolling back).
LEFT_TO_GENERAL_PATH = "LS001"

_CALL = text(
    "SELECT o_verdict AS verdict, o_entry_id AS entry_id, o_lot_id AS lot_id, o_balance AS balance,"
    " o_status AS status FROM ledger_debit(:creator_id, :customer_id, :amount, :reason, :actor_type, :actor_id,"
    " :key, :request_hash, :now, :now_text, :event_head, :event_tail)"
)


def debit_in_one_call(debit: Debit) -> dict[str, Any] | None:
    """`debit` in one round trip: the committed outcome (a result, or a refusal made without a key), or None
    when the general path must decide, nothing having changed."""
    creator_id, customer_id, amount, cause = debit.creator_id, debit.customer_id, debit.amount, debit.cause
    key = cause.idempotency_key
    fields = entry_fields(creator_id, customer_id, delta=-amount, balance_after=0, cause=cause)
    event_head, event_tail = webhooks.debited_event_around_balance(fields)
    request_hash = None
    if key is not None:
        claim = idempotency.claim_parameters(creator_id=creator_id, key=key, request=debit.request, now=cause.now)
        request_hash = claim["claim_request_hash"]
    parameters = {
        "creator_id": creator_id,
        "customer_id": customer_id,
        "amount": amount,
        "reason": cause.reason,
        "actor_type": fields["actor_type"],
        "actor_id": fields["actor_id"],
        "key": key,
        "request_hash": request_hash,
        "now": cause.now,
        "now_text": cause.now.isoformat(),
        "event_head": event_head,
        "event_tail": event_tail,
    }
    row = call_in_one_trip(debit.engine, _CALL, parameters)
    if row is None or row.verdict == "general":
        return None
    if row.verdict == "refused":
        return refusal_of(row, balance=row.balance, amount=amount)
    result = LedgerResult(row.entry_id, customer_id, cause.kind, -amount, row.balance, row.lot_id, cause.now)
    return {"result": result.to_json()}


def call_in_one_trip(engine: Engine, call: TextClause, parameters: dict[str, Any]) -> Row | None:
    """The row of a fast path's server-side function (`ledger_debit`, `hold_place`, `hold_end`), called in
    autocommit so that it is one transaction with no BEGIN or COMMIT of its own; None when the function left the
    general path to decide after claiming a key (SQLSTATE `LEFT_TO_GENERAL_PATH`, everything rolled back)."""
    try:
        with engine.connect() as connection:
            return connection.execution_options(isolation_level="AUTOCOMMIT").execute(call, parameters).one()
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == LEFT_TO_GENERAL_PATH:
            return None
        raise


@cache
def debit_lock(*, with_key: bool) -> Select:
    """The statement that locks a customer for a spend: its balance, status and next expiry (and what webhooks
    want of a debit: `webhooks.watch_columns`), with parameters `debit_creator_id` and `debit_customer_id`.

    With a key (the parameters of `idempotency.claim_parameters`), it first claims the key and locks only when
    the claim succeeded, so a replay locks nothing.
    """
    lock = (
        select(
            Customer.balance,
            Customer.status,
            Customer.next_expiry_at,
            *webhooks.watch_columns(bindparam("debit_creator_id", type_=Integer)),
        )
        .where(Customer.id == bindparam("debit_customer_id"), Customer.creator_id == bindparam("debit_creator_id"))
        .with_for_update()
    )
    if with_key:
        claim = idempotency.claim_statement("postgresql").cte("claim")
        lock = lock.where(select(claim.c.id).exists())
    return lock
