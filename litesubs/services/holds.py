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
PostgreSQL placing and ending a hold first try a hot path of one server-side call each, like the debit's
(see "The hot paths on PostgreSQL" below), and leave the rare cases to that general path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Engine,
    bindparam,
    text,
)
from sqlmodel import Session, select

from litesubs.db import get_engine, read_connection, read_session, write_session
from litesubs.models import CreditLot, Customer, Hold, utcnow
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
from litesubs.services.ledger.postgres import call_in_one_trip
from litesubs.services.ledger.reads import read_current
from litesubs.services.ledger.rules import (
    SPENDING_ORDER,
    refusal_of,
    refusal_outcome,
)
from litesubs.services.ledger.transaction import (
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
    fast_path: bool = True,
) -> HoldSummary:
    """Reserve `amount` credits for `expires_in` seconds (1 to 86,400). Refused whole, changing nothing, if the
    customer is suspended or can spend fewer.

    `fast_path=False` runs the general path alone (tests/test_hold_paths.py compares the two)."""
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
    if fast_path and engine.dialect.name == "postgresql":
        placed = _Placing(engine, creator_id, customer_id, amount, expires_at, {**request, "customer_id": customer_id})
        outcome = _place_in_one_call(placed, cause)
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
    fast_path: bool = True,
) -> HoldEnding:
    """Spend `amount` of the hold (all of it by default) and give the rest back; the entry's reason is `reason`,
    or the hold's. `HoldExceeded` for more than the hold holds, `HoldClosed` once it has ended. `fast_path` as for
    `place_hold`."""
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
    return _end_hold(engine, ending, cause=cause, change=capture, fast_path=fast_path)


def release_hold(
    *,
    creator_id: int,
    hold_id: int,
    actor: Actor,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
    fast_path: bool = True,
) -> HoldEnding:
    """Give all of the hold's credits back. `HoldClosed` once it has ended. `fast_path` as for `place_hold`."""
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
    ending = _Ending(creator_id, hold_id, 0, RELEASED, request)
    return _end_hold(engine, ending, cause=cause, change=release, fast_path=fast_path)


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
    holds = read_current(
        creator_id=creator_id,
        customer_id=customer_id,
        read=lambda session: [HoldSummary.of(hold) for hold in session.exec(statement)],
        now=now or utcnow(),
        engine=engine,
    )
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
    engine: Engine | None,
    ending: _Ending,
    *,
    cause: Cause,
    change: Callable[[Session, Customer], HoldEnding],
    fast_path: bool,
) -> HoldEnding:
    """End the creator's hold (`NotFound` for anyone else's) in a ledger transaction on its customer: on
    PostgreSQL the hot path first, then the general path when it must decide. The idempotency key fingerprints
    the request without the customer, which the hold decides (and the hot path finds only under its lock)."""
    engine = engine or get_engine()
    if fast_path and engine.dialect.name == "postgresql":
        outcome = _end_in_one_call(engine, ending, cause=cause)
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
# Placing and ending a hold in one round trip each: the server-side functions `hold_place` and `hold_end`
# (migration 0015), called in autocommit as the debit's `ledger_debit` is (`ledger.postgres.call_in_one_trip`),
# claim the idempotency key, lock the customer and make every write, the key's outcome included, in one
# transaction. Each call returns its committed result, or a refusal's outcome (without a key), or None after
# changing nothing when the general path must decide: no such customer or hold, a key used before, something due
# (a lot or hold past its expiry, or a lot of the hold whose expiry passed), a refusal with a key, a placing that
# makes `credits.low` or `credits.depleted`, a lot of the hold that was taken back (refunded or disputed), a
# capture larger than the hold, or a capture's event whose reason only the database knows and is not ASCII.

_PLACE = text(
    "SELECT o_verdict AS verdict, o_hold_id AS hold_id, o_balance AS balance, o_status AS status"
    " FROM hold_place(:creator_id, :customer_id, :amount, :reason, :actor_type, :actor_id, :key, :request_hash,"
    " :now, :expires_at, :hold_json)"
)


@dataclass(frozen=True)
class _Placing:
    engine: Engine
    creator_id: int
    customer_id: int
    amount: int
    expires_at: datetime
    request: dict[str, Any]  # with the customer, as `change_credits` fingerprints it


def _place_in_one_call(placing: _Placing, cause: Cause) -> HoldSummary | dict[str, Any] | None:
    creator_id, customer_id, amount, key = (
        placing.creator_id,
        placing.customer_id,
        placing.amount,
        cause.idempotency_key,
    )
    summary = HoldSummary(0, customer_id, amount, 0, ACTIVE, cause.reason, placing.expires_at, cause.now, None)
    parameters = {
        **_call_parameters(creator_id, placing.request, cause),
        "customer_id": customer_id,
        "amount": amount,
        "reason": cause.reason,
        "expires_at": placing.expires_at,
        "hold_json": None if key is None else json.dumps(summary.to_json()),
    }
    row = call_in_one_trip(placing.engine, _PLACE, parameters)
    if row is None or row.verdict == "general":
        return None
    if row.verdict == "refused":
        return refusal_of(row, balance=row.balance, amount=amount)
    return replace(summary, id=row.hold_id)


_END = text(
    "SELECT o_verdict AS verdict, o_customer_id AS customer_id, o_entry_id AS entry_id, o_delta AS delta,"
    " o_balance AS balance, o_lot_id AS lot_id, o_amount AS amount, o_captured AS captured,"
    " o_hold_status AS hold_status, o_hold_reason AS hold_reason, o_reason AS reason, o_expires_at AS expires_at,"
    " o_created_at AS created_at"
    " FROM hold_end(:creator_id, :hold_id, :captured, :status, :reason, :reason_json, :actor_type, :actor_id,"
    " :actor_json, :key, :request_hash, :now, :now_text)"
)


def _end_in_one_call(engine: Engine, ending: _Ending, *, cause: Cause) -> HoldEnding | dict[str, Any] | None:
    reason = cause.reason or None  # None: the hold's
    parameters = {
        **_call_parameters(ending.creator_id, ending.request, cause),
        "hold_id": ending.hold_id,
        "captured": ending.captured,
        "status": ending.status,
        "reason": reason,
        "now_text": cause.now.isoformat(),
    }
    parameters |= webhooks.captured_event_parts(cause.actor.type, parameters["actor_id"], reason)
    row = call_in_one_trip(engine, _END, parameters)
    if row is None or row.verdict == "general":
        return None
    if row.verdict == "closed":
        return refusal_outcome(HoldClosed(_CLOSED[row.hold_status]))
    hold_id, now = ending.hold_id, cause.now
    transaction = LedgerResult(
        row.entry_id, row.customer_id, cause.kind, row.delta, row.balance, row.lot_id, now, hold_id
    )
    summary = HoldSummary(
        hold_id,
        row.customer_id,
        row.amount,
        row.captured,
        ending.status,
        row.hold_reason,
        row.expires_at,
        row.created_at,
        now,
    )
    return HoldEnding(transaction, row.reason, summary)


def _call_parameters(creator_id: int, request: dict[str, Any], cause: Cause) -> dict[str, Any]:
    """A hot path's parameters about who asks, when, and with which key (and its request's fingerprint)."""
    key, request_hash = cause.idempotency_key, None
    fields = entry_fields(creator_id, 0, delta=0, balance_after=0, cause=cause)
    if key is not None:
        claim = idempotency.claim_parameters(creator_id=creator_id, key=key, request=request, now=cause.now)
        request_hash = claim["claim_request_hash"]
    return {
        "creator_id": creator_id,
        "actor_type": fields["actor_type"],
        "actor_id": fields["actor_id"],
        "key": key,
        "request_hash": request_hash,
        "now": cause.now,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
