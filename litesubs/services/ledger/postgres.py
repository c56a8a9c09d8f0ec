"""The debit's fast path on PostgreSQL: the general path's rules (`transaction.change_credits` with
`transaction.spend_credits`) in as few round trips as the database allows, built once so that a debit costs
SQLAlchemy no compiling.

Start at `debit_in_two_statements`. It returns None, having changed nothing, whenever a case is rare enough
to leave to the general path (no such customer, a key used before, something due). `holds` places holds
with the same lock statement (`debit_statements`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal,
    update,
)
from sqlmodel import select

from litesubs.models import CreditLot, Customer, LedgerEntry
from litesubs.services import idempotency, webhooks
from litesubs.services.ledger.model import Cause, LedgerResult
from litesubs.services.ledger.rules import has_due_lots, lots_to_take, refusal_of, single_lot
from litesubs.services.ledger.transaction import ENTRY_COLUMNS, MOVE_BALANCE, entry_fields


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


def debit_in_two_statements(debit: Debit) -> dict[str, Any] | None:
    """`debit` in two statements and a commit, for the API's hot path: the rules of `change_credits`.

    The first statement claims the idempotency key and locks the customer; the second (which, under
    READ COMMITTED, sees everything committed before the lock was granted) takes from the lots, moves
    the balance, writes the ledger entry and stores the outcome for the key. Both are built once
    (`debit_statements`), so a debit costs SQLAlchemy no compiling. Returns the committed outcome,
    or None after changing nothing when the general path must decide: no such customer, a key used
    before, or a lot due to expire.
    """
    creator_id, customer_id, amount, cause = debit.creator_id, debit.customer_id, debit.amount, debit.cause
    key = cause.idempotency_key
    parameters = {"debit_creator_id": creator_id, "debit_customer_id": customer_id, "debit_amount": amount}
    if key is not None:
        parameters |= idempotency.claim_parameters(creator_id=creator_id, key=key, request=debit.request, now=cause.now)
    lock = debit_statements(with_key=key is not None)[0]
    with debit.engine.begin() as connection:
        customer = connection.execute(lock, parameters).first()
        if customer is None or has_due_lots(customer, cause.now):
            connection.rollback()
            return None
        refusal = refusal_of(customer, balance=customer.balance, amount=amount)
        if refusal is not None:
            if key is not None:
                connection.execute(
                    idempotency.REMEMBER,
                    idempotency.remember_parameters(creator_id=creator_id, key=key, outcome=refusal),
                )
            return refusal
        balance_after = customer.balance - amount
        fields = entry_fields(creator_id, customer_id, delta=-amount, balance_after=balance_after, cause=cause)
        parameters |= {f"entry_{column}": value for column, value in fields.items()}
        parameters |= {"move_customer_id": customer_id, "move_balance": balance_after, "move_now": cause.now}
        parameters |= {"remember_creator_id": creator_id, "remember_key": key}
        parameters["debit_created_at_text"] = cause.now.isoformat()
        watch = webhooks.Watch.of(customer)
        spend = debit_statements(with_key=key is not None, with_event=watch.sends_debits)[1]
        if watch.sends_debits:
            parameters |= webhooks.debited_event_parameters(fields)
        entry_id, lot_id = connection.execute(spend, parameters).one()
        webhooks.credits_changed(connection, [(entry_id, fields)], watch=watch.with_debits_recorded())
    result = LedgerResult(entry_id, customer_id, cause.kind, -amount, balance_after, lot_id, cause.now)
    return {"result": result.to_json()}


# The columns of a ledger entry that a `LedgerResult` repeats as they are (it adds `entry_id`, `lot_id` and the time).
_RESULT_COLUMNS = ("customer_id", "kind", "delta", "balance_after")


@cache
def debit_statements(*, with_key: bool, with_event: bool = False) -> tuple[Select, Select]:
    """The debit's two statements, with bind parameters named after `entry_fields` and the claim's.

    The lock: the customer's balance, status and next expiry (and what webhooks want of a debit),
    locked; with a key, only when the key was claimed (the claim runs before the lock, so a replay
    locks nothing). The spend, for a locked customer whose balance covers the amount: lots, balance,
    ledger entry, the key's outcome and, `with_event`, the `credits.debited` event in one statement,
    returning the entry's id and lot.
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
    taken = lots_to_take(bindparam("debit_customer_id"), bindparam("debit_amount", type_=BigInteger)).cte("taken")
    spent = (
        update(CreditLot)
        .where(CreditLot.id == taken.c.id)
        .values(remaining=CreditLot.remaining - taken.c.take)
        .returning(CreditLot.id)
        .cte("spent")
    )
    moved = MOVE_BALANCE.returning(Customer.id).cte("moved")
    only_lot = single_lot(taken)
    entry = (
        insert(LedgerEntry)
        .values({**{column: bindparam(f"entry_{column}") for column in ENTRY_COLUMNS}, "lot_id": only_lot})
        .returning(*(getattr(LedgerEntry, column) for column in ("id", "lot_id", *_RESULT_COLUMNS)))
        .cte("entry")
    )
    spend = select(entry.c.id, entry.c.lot_id).add_cte(spent, moved)
    if with_event:
        entry_values = {column: bindparam(f"entry_{column}") for column in ENTRY_COLUMNS}
        spend = spend.add_cte(webhooks.debited_event_cte(entry, entry_values))
    if not with_key:
        return lock, spend
    outcome = json_object(
        result=json_object(
            entry_id=entry.c.id,
            lot_id=entry.c.lot_id,
            **{column: entry.c[column] for column in _RESULT_COLUMNS},
            created_at=bindparam("debit_created_at_text", type_=Text),
        )
    )
    remembered = idempotency.REMEMBER.values(outcome=cast(select(outcome).scalar_subquery(), Text)).cte("remembered")
    return lock, spend.add_cte(remembered)


def json_object(**fields: ColumnElement[Any]) -> ColumnElement[Any]:
    """`json_build_object` of named SQL expressions."""
    return func.json_build_object(*(part for name, value in fields.items() for part in (literal(name, Text), value)))
