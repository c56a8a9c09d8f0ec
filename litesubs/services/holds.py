"""Holds: credits reserved before work whose cost is known only at its end, then captured (spent) or released.

The rules (issue 18), on top of the ledger's (`ledger`):

- Placing a hold takes its amount from the lots in the spending order, like a debit: the balance (what can
  be spent or held now) drops, the customer's `held` rises by as much, and one `hold` entry records it. It
  is refused whole when the balance is lower (`InsufficientCredits`) or the customer is suspended.
  The hold's `lots` remember how much came from which lot.
- A hold ends once. A capture spends part or all of it (`HoldExceeded` for more than it holds) and gives
  the rest back: one `capture` entry whose delta is what came back (0 when all was spent). A release gives
  everything back: one `release` entry. Ending an ended hold is `HoldClosed`. Captured credits are the
  ones from the lots first in spending order; the rest goes back to the lots it came from, and what goes
  back to a lot whose expiry passed meanwhile expires at once (that lot's `expiry` entry). What goes back to
  a lot whose purchase was refunded or disputed meanwhile is taken back at once (a `refund` or `dispute`
  entry, `ledger.take_back_returned`): such credits can be captured, never spent again.
- A hold not ended by its `expires_at` is released by the system (status `expired`, a `release` entry):
  lazily whenever the ledger next reads or writes the customer (`ledger.expire_due_lots` calls
  `end_due_holds`), and for the whole database by `release_expired` (the worker's sweep, and
  `python -m litesubs expire-credits`). The customer's `next_expiry_at` is never later than an active
  hold's expiry, so debits (the fast path included) notice a due hold without a query, and the sweep finds
  the customers whose holds may be due (holding some, `next_expiry_at` passed) without an index on holds'
  status, which would keep ending a hold from being a HOT update on PostgreSQL.
- A suspended customer's holds can still be captured or released: the credits were reserved before.

Each operation is one ledger transaction (`ledger.transaction.change_credits`): the customer locked, what fell due
expired first, at most once per idempotency key; refusals are stored and replayed like the ledger's. On
PostgreSQL placing and ending a hold first try a hot path of two prebuilt statements, like the debit's
(see "The hot paths on PostgreSQL" below), and leave the rare cases to that general path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Engine,
    Integer,
    Select,
    TableValuedAlias,
    Text,
    bindparam,
    cast,
    column,
    func,
    insert,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlmodel import Session, select

from litesubs.db import get_engine, read_connection, read_session, write_session
from litesubs.models import CreditLot, Customer, Hold, LedgerEntry, utcnow
from litesubs.services import idempotency, webhooks
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.customers import MAX_ID, ensure_active, lock_customer_row
from litesubs.services.errors import HoldClosed, HoldExceeded, InvalidRequest, NotFound
from litesubs.services.ledger import (
    MAX_PAGE_SIZE,
    SYSTEM,
    Actor,
    LedgerResult,
    expire_due_lots,
    lock_customer,
    take_back_returned,
)
from litesubs.services.ledger.model import Cause, check_amount, check_reason
from litesubs.services.ledger.postgres import debit_lock, json_object
from litesubs.services.ledger.rules import (
    SPENDING_ORDER,
    has_due_lots,
    lots_to_take,
    refusal_of,
    refusal_outcome,
    single_lot,
)
from litesubs.services.ledger.transaction import (
    ENTRY_COLUMNS,
    change_credits,
    delivered,
    entry_fields,
    give_back_to_lots,
    record,
    take_from_lots,
)

ACTIVE, CAPTURED, RELEASED, EXPIRED = "active", "captured", "released", "expired"
STATUSES = (ACTIVE, CAPTURED, RELEASED, EXPIRED)
DEFAULT_EXPIRES_IN = 900
MAX_EXPIRES_IN = 86_400
ID_PREFIX = "hold_"
_CLOSED = {
    CAPTURED: "This hold was already captured.",
    RELEASED: "This hold was already released.",
    EXPIRED: "This hold expired and its credits went back.",
}


@dataclass(frozen=True)
class HoldSummary:
    """A hold as the creator's software sees it; `replayed` when an idempotency key returned it again."""

    id: int
    customer_id: int
    amount: int
    captured: int
    status: str
    reason: str
    expires_at: datetime
    created_at: datetime
    ended_at: datetime | None
    replayed: bool = False

    @property
    def public_id(self) -> str:
        return f"{ID_PREFIX}{self.id}"

    @classmethod
    def of(cls, hold: Hold) -> HoldSummary:
        fields = ("id", "customer_id", "amount", "captured", "status", "reason", "expires_at", "created_at", "ended_at")
        return cls(**{field: getattr(hold, field) for field in fields})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "amount": self.amount,
            "captured": self.captured,
            "status": self.status,
            "reason": self.reason,
            "expires_at": self.expires_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "ended_at": _iso(self.ended_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> HoldSummary:
        times = {name: _moment(data[name]) for name in ("expires_at", "created_at", "ended_at")}
        return cls(**{**data, **times}, replayed=replayed)


@dataclass(frozen=True)
class HoldEnding:
    """How a hold ended: the ledger entry that recorded it (`capture` or `release`) with its reason, and the hold
    as it is now."""

    transaction: LedgerResult
    reason: str
    hold: HoldSummary
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"transaction": self.transaction.to_json(), "reason": self.reason, "hold": self.hold.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> HoldEnding:
        transaction = LedgerResult.from_json(data["transaction"], replayed=replayed)
        return cls(transaction, data["reason"], HoldSummary.from_json(data["hold"], replayed=replayed), replayed)


@dataclass(frozen=True)
class HoldPage:
    """Holds, newest first; pass `next_cursor` to get the following page (None at the end)."""

    holds: tuple[HoldSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class HoldSweep:
    holds: int
    credits: int


def parse_hold_id(public_id: str) -> int:
    """The hold's id from its public id (`hold_42`); `NotFound` for anything else."""
    digits = public_id.removeprefix(ID_PREFIX) if public_id.startswith(ID_PREFIX) else ""
    if not (digits.isascii() and digits.isdigit()) or not 0 < int(digits) <= MAX_ID:
        raise NotFound("No such hold.")
    return int(digits)


# --- Operations, each one transaction -------------------------------------------------------


def place_hold(
    *,
    creator_id: int,
    customer_id: int,
    amount: int,
    actor: Actor,
    reason: str = "",
    expires_in: int = DEFAULT_EXPIRES_IN,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> HoldSummary:
    """Reserve `amount` credits for `expires_in` seconds (1 to 86,400). Refused whole, changing nothing, if the
    customer is suspended or can spend fewer."""
    now = now or utcnow()
    amount, reason = check_amount(amount), check_reason(reason)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidRequest("expires_in", f"A hold lasts a whole number of seconds from 1 to {MAX_EXPIRES_IN:,}.")
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    cause = Cause("hold", actor, reason, now, idempotency_key)
    expires_at = now + timedelta(seconds=expires_in)
    request = {"operation": "hold", "amount": amount, "reason": reason, "expires_in": expires_in}
    engine = engine or get_engine()
    if engine.dialect.name == "postgresql":
        placed = _Placing(engine, creator_id, customer_id, amount, expires_at, {**request, "customer_id": customer_id})
        outcome = _place_in_two_statements(placed, cause)
        if isinstance(outcome, HoldSummary):
            return outcome
        if outcome is not None:
            delivered(outcome, replayed=False)  # raises the refusal

    def hold_credits(session: Session, customer: Customer) -> HoldSummary:
        ensure_active(customer)
        taken = take_from_lots(session, customer, amount)
        hold = Hold(
            creator_id=creator_id,
            customer_id=customer.id,
            amount=amount,
            reason=reason,
            expires_at=expires_at,
            created_at=now,
            lots=[{"lot_id": lot_id, "amount": int(take)} for lot_id, take in taken],  # PostgreSQL's sums: numeric
        )
        session.add(hold)
        session.flush()
        customer.held += amount
        if customer.next_expiry_at is None or hold.expires_at < customer.next_expiry_at:
            customer.next_expiry_at = hold.expires_at
        lot_id = taken[0].id if len(taken) == 1 else None
        record(session, customer, delta=-amount, lot_id=lot_id, cause=replace(cause, hold_id=hold.id))
        return HoldSummary.of(hold)

    return change_credits(
        engine,
        creator_id=creator_id,
        customer_id=customer_id,
        request=request,
        cause=cause,
        change=hold_credits,
        result_type=HoldSummary,
    )


def capture_hold(
    *,
    creator_id: int,
    hold_id: int,
    actor: Actor,
    amount: int | None = None,
    reason: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> HoldEnding:
    """Spend `amount` of the hold (all of it by default) and give the rest back; the entry's reason is `reason`,
    or the hold's. `HoldExceeded` for more than the hold holds, `HoldClosed` once it has ended."""
    now = now or utcnow()
    amount = None if amount is None else check_amount(amount)
    reason = None if reason is None else check_reason(reason)
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    cause = Cause("capture", actor, reason or "", now, idempotency_key)

    def capture(session: Session, customer: Customer) -> HoldEnding:
        hold = _open_hold(session, hold_id)
        spent = hold.amount if amount is None else amount
        if spent > hold.amount:
            raise HoldExceeded(f"The hold holds {hold.amount:,} credits, fewer than the {spent:,} to capture.")
        ending = _end(
            session, customer, hold, captured=spent, status=CAPTURED, cause=replace(cause, reason=reason or hold.reason)
        )
        expire_due_lots(session, customer, now=now)
        return ending

    request = {"operation": "capture", "hold_id": hold_id, "amount": amount, "reason": reason}
    ending = _Ending(creator_id, hold_id, amount, CAPTURED, request)
    return _end_hold(engine, ending, cause=cause, change=capture)


def release_hold(
    *,
    creator_id: int,
    hold_id: int,
    actor: Actor,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> HoldEnding:
    """Give all of the hold's credits back. `HoldClosed` once it has ended."""
    now = now or utcnow()
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    cause = Cause("release", actor, "", now, idempotency_key)

    def release(session: Session, customer: Customer) -> HoldEnding:
        hold = _open_hold(session, hold_id)
        ending = _end(session, customer, hold, captured=0, status=RELEASED, cause=replace(cause, reason=hold.reason))
        expire_due_lots(session, customer, now=now)
        return ending

    request = {"operation": "release", "hold_id": hold_id}
    return _end_hold(engine, _Ending(creator_id, hold_id, 0, RELEASED, request), cause=cause, change=release)


def get_hold(
    *, creator_id: int, hold_id: int, now: datetime | None = None, engine: Engine | None = None
) -> HoldSummary:
    """The creator's hold (`NotFound` for anyone else's); one past its expiry is released first."""
    now = now or utcnow()
    with read_session(engine) as session:
        hold = session.exec(select(Hold).where(Hold.id == hold_id, Hold.creator_id == creator_id)).first()
    if hold is None:
        raise NotFound("No such hold.")
    if hold.status == ACTIVE and hold.expires_at <= now:
        with write_session(engine) as session:
            lock_customer(session, creator_id=creator_id, customer_id=hold.customer_id, now=now)
            hold = session.exec(select(Hold).where(Hold.id == hold_id)).one()
    return HoldSummary.of(hold)


def list_holds(
    *,
    creator_id: int,
    customer_id: int,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> HoldPage:
    """The customer's holds, newest first, optionally only those of one `status`, `limit` (1 to 100) a page.

    Like the ledger's reads, a plain read; the customer is locked only when a hold or lot may be due.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"Ask for 1 to {MAX_PAGE_SIZE} holds.")
    if status is not None and status not in STATUSES:
        raise InvalidRequest("status", f"The status is one of {', '.join(STATUSES)}.")
    statement = select(Hold).where(Hold.customer_id == customer_id)
    if status is not None:
        statement = statement.where(Hold.status == status)
    if cursor is not None:
        statement = statement.where(Hold.id < decode_cursor(cursor))
    statement = statement.order_by(Hold.id.desc()).limit(limit + 1)
    now = now or utcnow()
    with read_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.id == customer_id, Customer.creator_id == creator_id)
        ).first()
        if customer is None:
            raise NotFound("No such customer.")
        holds = None if has_due_lots(customer, now) else [HoldSummary.of(hold) for hold in session.exec(statement)]
    if holds is None:  # something is due: release and expire it under the lock first
        with write_session(engine) as session:
            lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=now)
            holds = [HoldSummary.of(hold) for hold in session.exec(statement)]
    if len(holds) <= limit:
        return HoldPage(holds=tuple(holds), next_cursor=None)
    return HoldPage(holds=tuple(holds[:limit]), next_cursor=encode_cursor(holds[limit - 1].id))


def release_expired(*, now: datetime | None = None, engine: Engine | None = None) -> HoldSweep:
    """Release every active hold past its expiry in the database, one transaction per customer (the worker's
    sweep and `python -m litesubs expire-credits`)."""
    now = now or utcnow()
    with read_session(engine) as session:
        due = session.exec(
            select(Customer.id, Customer.creator_id).where(Customer.held > 0, Customer.next_expiry_at <= now)
        ).all()
    ended: list[HoldEnding] = []
    for customer_id, creator_id in due:
        with write_session(engine) as session:
            customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
            ended += end_due_holds(session, customer, now=now)
            expire_due_lots(session, customer, now=now)
    return HoldSweep(holds=len(ended), credits=sum(ending.hold.amount for ending in ended))


# --- The same work in the caller's transaction ----------------------------------------------


def end_due_holds(session: Session, customer: Customer, *, now: datetime) -> list[HoldEnding]:
    """Release the locked customer's active holds past their expiry (status `expired`, a `release` entry each).

    The caller then expires due lots (`ledger.expire_due_lots`), which takes what went back to an expired lot.
    """
    due = session.exec(
        select(Hold)
        .where(Hold.customer_id == customer.id, Hold.status == ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.expires_at, Hold.id)
        .execution_options(populate_existing=True)
    ).all()
    cause = Cause("release", SYSTEM, "The hold expired.", now)
    return [_end(session, customer, hold, captured=0, status=EXPIRED, cause=cause) for hold in due]


# --- The rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ending:
    """A capture (`captured` credits, None for all) or a release (0) of the creator's hold, checked; `request`
    is what its idempotency key fingerprints, without the customer."""

    creator_id: int
    hold_id: int
    captured: int | None
    status: str
    request: dict[str, Any]


def _end_hold(
    engine: Engine | None, ending: _Ending, *, cause: Cause, change: Callable[[Session, Customer], HoldEnding]
) -> HoldEnding:
    """End the creator's hold (`NotFound` for anyone else's) in a ledger transaction on its customer: on
    PostgreSQL the hot path first, then the general path when it must decide. The idempotency key fingerprints
    the request without the customer, which the hold decides (and the hot path finds only under its lock)."""
    engine = engine or get_engine()
    if engine.dialect.name == "postgresql":
        outcome = _end_in_two_statements(engine, ending, cause=cause)
        if isinstance(outcome, HoldEnding):
            return outcome
        if outcome is not None:
            delivered(outcome, replayed=False)  # raises the refusal
    with read_connection(engine) as connection:
        customer_id = connection.execute(
            _HOLDS_CUSTOMER, {"hold_id": ending.hold_id, "creator_id": ending.creator_id}
        ).scalar()
    if customer_id is None:
        raise NotFound("No such hold.")
    return change_credits(
        engine,
        creator_id=ending.creator_id,
        customer_id=customer_id,
        request=ending.request,
        cause=cause,
        change=change,
        result_type=HoldEnding,
        fingerprint_customer=False,
    )


_HOLDS_CUSTOMER = select(Hold.customer_id).where(
    Hold.id == bindparam("hold_id"), Hold.creator_id == bindparam("creator_id")
)


def _open_hold(session: Session, hold_id: int) -> Hold:
    """The hold, read after the customer's lock (so no other change of it can be under way); `HoldClosed` if it
    has ended, which includes its expiry having just released it."""
    hold = session.exec(select(Hold).where(Hold.id == hold_id).execution_options(populate_existing=True)).one()
    if hold.status != ACTIVE:
        raise HoldClosed(_CLOSED[hold.status])
    return hold


def _end(session: Session, customer: Customer, hold: Hold, *, captured: int, status: str, cause: Cause) -> HoldEnding:
    """End the hold: keep `captured` of its credits (those first in spending order), give the rest back to their
    lots, and record it in one entry whose delta is what came back."""
    amounts = {part["lot_id"]: part["amount"] for part in hold.lots}
    lots = session.exec(
        select(CreditLot.id, CreditLot.expires_at).where(CreditLot.id.in_(amounts)).order_by(*SPENDING_ORDER)
    ).all()
    back, to_keep = [], captured
    for lot_id, expires_at in lots:
        amount = amounts[lot_id]
        kept = min(amount, to_keep)
        to_keep -= kept
        if amount > kept:
            back.append((lot_id, amount - kept, expires_at))
    give_back_to_lots(session, customer, back)
    hold.status, hold.captured, hold.ended_at = status, captured, cause.now
    customer.held -= hold.amount
    session.add(hold)
    returned = sum(amount for _lot_id, amount, _expires_at in back)
    lot_id = back[0][0] if len(back) == 1 else None
    spent = webhooks.Captured(f"{ID_PREFIX}{hold.id}", captured) if status == CAPTURED else None
    entry = record(
        session, customer, delta=returned, lot_id=lot_id, cause=replace(cause, hold_id=hold.id), captured=spent
    )
    take_back_returned(session, customer, lot_ids=[lot_id for lot_id, _amount, _expires_at in back], now=cause.now)
    return HoldEnding(transaction=entry, reason=cause.reason, hold=HoldSummary.of(hold))


# --- The hot paths on PostgreSQL ------------------------------------------------------------
#
# Placing and ending a hold in two statements and a commit, built once: the first claims the idempotency key and
# locks the customer (the debit's own lock statement, for placing), the second, which under READ COMMITTED sees
# everything committed before the lock was granted, makes every write, the key's outcome included. Each returns
# its committed result, or a refusal's outcome, or None after changing nothing when the general path must
# decide: no such customer or hold, a key used before, something due (a lot or hold past its expiry, or a lot
# of the hold whose expiry passed), a lot of the hold that was taken back (refunded or disputed), a capture
# larger than the hold, or a hold that ended while this waited.


@dataclass(frozen=True)
class _Placing:
    engine: Engine
    creator_id: int
    customer_id: int
    amount: int
    expires_at: datetime
    request: dict[str, Any]  # with the customer, as `change_credits` fingerprints it


def _place_in_two_statements(placing: _Placing, cause: Cause) -> HoldSummary | dict[str, Any] | None:
    creator_id, customer_id, amount = placing.creator_id, placing.customer_id, placing.amount
    key = cause.idempotency_key
    parameters = {"debit_creator_id": creator_id, "debit_customer_id": customer_id, "debit_amount": amount}
    if key is not None:
        parameters |= idempotency.claim_parameters(
            creator_id=creator_id, key=key, request=placing.request, now=cause.now
        )
    lock = debit_lock(with_key=key is not None)
    with placing.engine.begin() as connection:
        customer = _compiled(lock).first(connection, parameters)
        if customer is None or has_due_lots(customer, cause.now):
            connection.rollback()
            return None
        refusal = refusal_of(customer, balance=customer.balance, amount=amount)
        if refusal is not None:
            _remember(connection, creator_id, key, refusal)
            return refusal
        balance_after = customer.balance - amount
        fields = entry_fields(creator_id, customer_id, delta=-amount, balance_after=balance_after, cause=cause)
        parameters |= {f"entry_{column}": value for column, value in fields.items()}
        parameters |= {"hold_expires_at": placing.expires_at, "hold_balance": balance_after}
        if key is not None:
            summary = HoldSummary(0, customer_id, amount, 0, ACTIVE, cause.reason, placing.expires_at, cause.now, None)
            parameters |= {
                "remember_creator_id": creator_id,
                "remember_key": key,
                "hold_json": json.dumps(summary.to_json()),
            }
        hold_id, entry_id = _compiled(_place_statement(with_key=key is not None)).first(connection, parameters)
        webhooks.credits_changed(connection, [(entry_id, fields)], watch=webhooks.Watch.of(customer))
    return HoldSummary(hold_id, customer_id, amount, 0, ACTIVE, cause.reason, placing.expires_at, cause.now, None)


@cache
def _place_statement(*, with_key: bool) -> Select:
    """Placing's second statement, after `ledger.postgres.debit_lock` (and with its parameter names): lots, hold
    (with which lots it took from), balance, ledger entry and the key's outcome (`hold_json` with the new id),
    returning the hold's id and the entry's."""
    taken = lots_to_take(bindparam("debit_customer_id"), bindparam("debit_amount", type_=BigInteger)).cte("taken")
    spent = (
        update(CreditLot)
        .where(CreditLot.id == taken.c.id)
        .values(remaining=CreditLot.remaining - taken.c.take)
        .returning(CreditLot.id)
        .cte("spent")
    )
    placed = (
        insert(Hold)
        .values(
            creator_id=bindparam("entry_creator_id"),
            customer_id=bindparam("entry_customer_id"),
            amount=bindparam("debit_amount", type_=BigInteger),
            captured=0,
            status=ACTIVE,
            reason=bindparam("entry_reason"),
            expires_at=bindparam("hold_expires_at"),
            created_at=bindparam("entry_created_at"),
            lots=select(func.jsonb_agg(func.jsonb_build_object("lot_id", taken.c.id, "amount", taken.c.take)))
            .select_from(taken)
            .scalar_subquery(),
        )
        .returning(Hold.id)
        .cte("placed")
    )
    moved = (
        update(Customer)
        .where(Customer.id == bindparam("debit_customer_id"))
        .values(
            balance=bindparam("hold_balance", type_=BigInteger),
            held=Customer.held + bindparam("debit_amount", type_=BigInteger),
            next_expiry_at=func.least(Customer.next_expiry_at, bindparam("hold_expires_at")),
            updated_at=bindparam("entry_created_at"),
        )
        .returning(Customer.id)
        .cte("moved")
    )
    columns = {column: bindparam(f"entry_{column}") for column in ENTRY_COLUMNS}
    entry = (
        insert(LedgerEntry)
        .values({**columns, "lot_id": single_lot(taken), "hold_id": select(placed.c.id).scalar_subquery()})
        .returning(LedgerEntry.id)
        .cte("entry")
    )
    place = select(placed.c.id, entry.c.id.label("entry_id")).join_from(placed, entry, true()).add_cte(spent, moved)
    if not with_key:
        return place
    with_id = cast(json_object(id=placed.c.id), JSONB)
    outcome = json_object(result=cast(bindparam("hold_json", type_=Text), JSONB).op("||")(with_id))
    remembered = idempotency.REMEMBER.values(outcome=cast(select(outcome).scalar_subquery(), Text)).cte("remembered")
    return place.add_cte(remembered)


def _end_in_two_statements(engine: Engine, ending: _Ending, *, cause: Cause) -> HoldEnding | dict[str, Any] | None:
    creator_id, key = ending.creator_id, cause.idempotency_key
    parameters = {"debit_creator_id": creator_id, "end_hold_id": ending.hold_id}
    if key is not None:
        parameters |= idempotency.claim_parameters(
            creator_id=creator_id, key=key, request=ending.request, now=cause.now
        )
    lock, end = _end_statements(with_key=key is not None)
    with engine.begin() as connection:
        hold = _compiled(lock).first(connection, parameters)
        captured = None if hold is None else ending.captured if ending.captured is not None else hold.amount
        if (
            hold is None
            or has_due_lots(hold, cause.now)
            or (hold.soonest_lot_expiry is not None and hold.soonest_lot_expiry <= cause.now)
            or (hold.hold_status == ACTIVE and captured > hold.amount)
        ):
            connection.rollback()
            return None
        customer_id = parameters["debit_customer_id"] = hold.customer_id
        if hold.hold_status != ACTIVE:  # read before the lock, but an ended hold stays ended
            refusal = refusal_outcome(HoldClosed(_CLOSED[hold.hold_status]))
            _remember(connection, creator_id, key, refusal)
            return refusal
        reason = cause.reason or hold.reason
        summary = HoldSummary(
            ending.hold_id,
            customer_id,
            hold.amount,
            captured,
            ending.status,
            hold.reason,
            hold.expires_at,
            hold.created_at,
            cause.now,
        )
        fields = entry_fields(creator_id, customer_id, delta=0, balance_after=0, cause=replace(cause, reason=reason))
        parameters |= {f"entry_{column}": fields[column] for column in _END_ENTRY_COLUMNS}
        parameters |= {"end_captured": captured, "end_status": ending.status, "end_amount": hold.amount}
        if key is not None:
            parameters |= {
                "remember_creator_id": creator_id,
                "remember_key": key,
                "end_hold_json": json.dumps(summary.to_json()),
                "end_reason": reason,
                "end_created_at_text": cause.now.isoformat(),
            }
        entry = _compiled(end).first(connection, parameters)
        if entry is None:  # the hold ended, or one of its lots was taken back, while this waited for the lock
            connection.rollback()
            return None
        if ending.status == CAPTURED:
            fields |= {"delta": entry.delta, "balance_after": entry.balance_after}
            captured_event = webhooks.Captured(f"{ID_PREFIX}{ending.hold_id}", captured)
            webhooks.credits_changed(
                connection, [(entry.id, webhooks.with_capture(fields, captured_event))], watch=webhooks.Watch.of(hold)
            )
    transaction = LedgerResult(
        entry.id, customer_id, cause.kind, entry.delta, entry.balance_after, entry.lot_id, cause.now, ending.hold_id
    )
    return HoldEnding(transaction, reason, summary)


# An ending's entry columns that come as parameters; its delta and balance come from the statement.
_END_ENTRY_COLUMNS = tuple(column for column in ENTRY_COLUMNS if column not in ("delta", "balance_after"))


@cache
def _end_statements(*, with_key: bool) -> tuple[Select, Select]:
    """An ending's two statements.

    The lock: the hold's customer (found through the creator's hold) with its balance, status and next expiry,
    locked, with the hold's amount, status, reason and times, the soonest expiry of the lots it took from and
    what webhooks want of a capture (with a key, only when the key was claimed).

    The end, for an active hold none of whose lots was taken back (else no row; a refund or dispute may have
    committed while this waited for the lock, and the general path takes such credits back again): which of
    its credits go back (those after the captured ones in spending order), the lots, the hold, balance and held
    credits, the ledger entry and the key's outcome, returning the entry's id, delta, balance and lot.
    """
    hold_id = bindparam("end_hold_id")
    held = _held_lots()
    soonest = select(func.min(CreditLot.expires_at)).where(CreditLot.id == held.c.lot_id).scalar_subquery()
    lock = (
        select(
            Customer.id.label("customer_id"),
            Customer.balance,
            Customer.status,
            Customer.next_expiry_at,
            Hold.amount,
            Hold.status.label("hold_status"),
            Hold.reason,
            Hold.expires_at,
            Hold.created_at,
            soonest.label("soonest_lot_expiry"),
            *webhooks.watch_columns(bindparam("debit_creator_id", type_=Integer)),
        )
        .join(Hold, Hold.customer_id == Customer.id)
        .where(Hold.id == hold_id, Hold.creator_id == bindparam("debit_creator_id"))
        .with_for_update(of=Customer)
    )
    if with_key:
        claim = idempotency.claim_statement("postgresql").cte("claim")
        lock = lock.where(select(claim.c.id).exists())

    captured = bindparam("end_captured", type_=BigInteger)
    earlier = func.sum(held.c.amount).over(order_by=SPENDING_ORDER, rows=(None, -1))
    pieces = (
        select(held.c.lot_id, held.c.amount, CreditLot.expires_at, func.coalesce(earlier, 0).label("earlier"))
        .select_from(Hold)
        .join(held, true())
        .join(CreditLot, CreditLot.id == held.c.lot_id)
        .where(Hold.id == hold_id)
        .subquery("pieces")
    )
    kept = func.least(pieces.c.amount, func.greatest(0, captured - pieces.c.earlier))
    back = (
        select(pieces.c.lot_id.label("id"), (pieces.c.amount - kept).label("back"), pieces.c.expires_at)
        .where(pieces.c.amount > kept)
        .cte("back")
    )
    from_taken_back_lot = (
        select(CreditLot.id).where(CreditLot.id == held.c.lot_id, CreditLot.taken_back.is_not(None)).exists()
    )
    ended = (
        update(Hold)
        .where(Hold.id == hold_id, Hold.status == ACTIVE, ~from_taken_back_lot)
        .values(status=bindparam("end_status"), captured=captured, ended_at=bindparam("entry_created_at"))
        .returning(Hold.id)
        .cte("ended")
    )
    happened = select(ended.c.id).exists()
    given = (
        update(CreditLot)
        .where(CreditLot.id == back.c.id, happened)
        .values(remaining=CreditLot.remaining + back.c.back)
        .returning(CreditLot.id)
        .cte("given")
    )
    returned = select(func.coalesce(func.sum(back.c.back), 0)).scalar_subquery()
    moved = (
        update(Customer)
        .where(Customer.id == bindparam("debit_customer_id"), happened)
        .values(
            balance=Customer.balance + returned,
            held=Customer.held - bindparam("end_amount", type_=BigInteger),
            next_expiry_at=func.least(Customer.next_expiry_at, select(func.min(back.c.expires_at)).scalar_subquery()),
            updated_at=bindparam("entry_created_at"),
        )
        .returning(Customer.balance)
        .cte("moved")
    )
    entry_columns = LedgerEntry.__table__.c
    values = [bindparam(f"entry_{column}", type_=entry_columns[column].type) for column in _END_ENTRY_COLUMNS]
    entry = (
        insert(LedgerEntry)
        .from_select(
            [*_END_ENTRY_COLUMNS, "delta", "balance_after", "lot_id", "hold_id"],
            select(*values, returned, moved.c.balance, single_lot(back), hold_id),
        )
        .returning(LedgerEntry.id, LedgerEntry.delta, LedgerEntry.balance_after, LedgerEntry.lot_id)
        .cte("entry")
    )
    end = select(entry.c.id, entry.c.delta, entry.c.balance_after, entry.c.lot_id).add_cte(given)
    if not with_key:
        return lock, end
    transaction = json_object(
        entry_id=entry.c.id,
        customer_id=bindparam("entry_customer_id", type_=BigInteger),
        kind=bindparam("entry_kind", type_=Text),
        delta=entry.c.delta,
        balance_after=entry.c.balance_after,
        lot_id=entry.c.lot_id,
        created_at=bindparam("end_created_at_text", type_=Text),
        hold_id=hold_id,
    )
    outcome = json_object(
        result=json_object(
            transaction=transaction,
            reason=bindparam("end_reason", type_=Text),
            hold=cast(bindparam("end_hold_json", type_=Text), JSON),
        )
    )
    # Only when the hold ended: otherwise no row comes back and the caller rolls back, the key's claim with it.
    remembered = (
        idempotency.REMEMBER.values(outcome=cast(select(outcome).scalar_subquery(), Text))
        .where(select(entry.c.id).exists())
        .cte("remembered")
    )
    return lock, end.add_cte(remembered)


def _held_lots() -> TableValuedAlias:
    """The lots a hold took from, as rows of (lot_id, amount) of the `hold` row in the enclosing query."""
    return (
        func.jsonb_to_recordset(Hold.lots)
        .table_valued(column("lot_id", Integer), column("amount", BigInteger))
        .render_derived("held", with_types=True)
    )


@dataclass(frozen=True)
class _Compiled:
    """A hot path's statement compiled once for psycopg and run on the transaction's own driver connection.

    SQLAlchemy's work per call (the cache key of a large statement, parameter processing, result set-up) cost
    about as much Python as the rest of a hold's hot path; these statements take only plain values (aware
    datetimes, numbers, text) that psycopg adapts itself.
    """

    sql: str
    defaults: dict[str, Any]  # the statement's own values (literals it was built with)

    def first(self, connection: Connection, parameters: dict[str, Any]) -> Any:
        """The first row, with its columns as attributes, or None. SQLAlchemy's cursor events still see the
        statement (tracing, and the tests that count a hot path's statements)."""
        parameters = self.defaults | parameters
        with connection.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
            connection.dispatch.before_cursor_execute(connection, cursor, self.sql, parameters, None, False)
            row = cursor.execute(self.sql, parameters).fetchone()
            connection.dispatch.after_cursor_execute(connection, cursor, self.sql, parameters, None, False)
        return row


@cache
def _compiled(statement: Select) -> _Compiled:
    compiled = statement.compile(dialect=_PSYCOPG)
    own = {name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required}
    return _Compiled(str(compiled), own)


_PSYCOPG = psycopg_dialect()


def _remember(connection: Connection, creator_id: int, key: str | None, outcome: dict[str, Any]) -> None:
    if key is not None:
        connection.execute(
            idempotency.REMEMBER, idempotency.remember_parameters(creator_id=creator_id, key=key, outcome=outcome)
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
