"""Holds: credits reserved before work whose cost is known only at its end, then captured (spent) or released.

The rules (issue 18), on top of the ledger's (`ledger`):

- Placing a hold takes its amount from the lots in the spending order, like a debit: the balance (what can
  be spent or held now) drops, the customer's `held` rises by as much, and one `hold` entry records it. It
  is refused whole when the balance is lower (`InsufficientCredits`) or the customer is suspended.
  `HeldCredits` rows remember how much came from which lot.
- A hold ends once. A capture spends part or all of it (`HoldExceeded` for more than it holds) and gives
  the rest back: one `capture` entry whose delta is what came back (0 when all was spent). A release gives
  everything back: one `release` entry. Ending an ended hold is `HoldClosed`. Captured credits are the
  ones from the lots first in spending order; the rest goes back to the lots it came from, and what goes
  back to a lot whose expiry passed meanwhile expires at once (that lot's `expiry` entry).
- A hold not ended by its `expires_at` is released by the system (status `expired`, a `release` entry):
  lazily whenever the ledger next reads or writes the customer (`ledger.expire_due_lots` calls
  `end_due_holds`), and for the whole database by `release_expired` (the worker's sweep, and
  `python -m litesubs expire-credits`). The customer's `next_expiry_at` is never later than an active
  hold's expiry, so debits (the fast path included) notice a due hold without a query.
- A suspended customer's holds can still be captured or released: the credits were reserved before.

Each operation is one ledger transaction (`ledger._change_credits`): the customer locked, what fell due
expired first, at most once per idempotency key; refusals are stored and replayed like the ledger's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, select

from litesubs.db import read_session, write_session
from litesubs.models import CreditLot, Customer, HeldCredits, Hold, utcnow
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.customers import MAX_ID, ensure_active, lock_customer_row
from litesubs.services.errors import HoldClosed, HoldExceeded, InvalidRequest, NotFound
from litesubs.services.ledger import (
    _SPENDING_ORDER,
    MAX_PAGE_SIZE,
    SYSTEM,
    Actor,
    LedgerResult,
    _Cause,
    _change_credits,
    _check_amount,
    _check_reason,
    _give_back_to_lots,
    _has_due_lots,
    _record,
    _take_from_lots,
    expire_due_lots,
    lock_customer,
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
        data = asdict(self)
        del data["replayed"]
        return {**data, **{name: _iso(data[name]) for name in ("expires_at", "created_at", "ended_at")}}

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
    amount, reason = _check_amount(amount), _check_reason(reason)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidRequest("expires_in", f"A hold lasts a whole number of seconds from 1 to {MAX_EXPIRES_IN:,}.")
    cause = _Cause("hold", actor, reason, now, idempotency_key)

    def hold_credits(session: Session, customer: Customer) -> HoldSummary:
        ensure_active(customer)
        taken = _take_from_lots(session, customer, amount)
        hold = Hold(
            creator_id=creator_id,
            customer_id=customer.id,
            amount=amount,
            reason=reason,
            expires_at=now + timedelta(seconds=expires_in),
            created_at=now,
        )
        session.add(hold)
        session.flush()
        session.connection().execute(
            insert(HeldCredits), [{"hold_id": hold.id, "lot_id": lot_id, "amount": take} for lot_id, take in taken]
        )
        customer.held += amount
        if customer.next_expiry_at is None or hold.expires_at < customer.next_expiry_at:
            customer.next_expiry_at = hold.expires_at
        lot_id = taken[0].id if len(taken) == 1 else None
        _record(session, customer, delta=-amount, lot_id=lot_id, cause=replace(cause, hold_id=hold.id))
        return HoldSummary.of(hold)

    request = {"operation": "hold", "amount": amount, "reason": reason, "expires_in": expires_in}
    return _change_credits(
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
    amount = None if amount is None else _check_amount(amount)
    reason = None if reason is None else _check_reason(reason)
    cause = _Cause("capture", actor, reason or "", now, idempotency_key)

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
    return _end_hold(engine, creator_id, hold_id, request=request, cause=cause, change=capture)


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
    cause = _Cause("release", actor, "", now, idempotency_key)

    def release(session: Session, customer: Customer) -> HoldEnding:
        hold = _open_hold(session, hold_id)
        ending = _end(session, customer, hold, captured=0, status=RELEASED, cause=replace(cause, reason=hold.reason))
        expire_due_lots(session, customer, now=now)
        return ending

    request = {"operation": "release", "hold_id": hold_id}
    return _end_hold(engine, creator_id, hold_id, request=request, cause=cause, change=release)


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
        holds = None if _has_due_lots(customer, now) else [HoldSummary.of(hold) for hold in session.exec(statement)]
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
            select(Hold.customer_id, Hold.creator_id).where(Hold.status == ACTIVE, Hold.expires_at <= now).distinct()
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
    cause = _Cause("release", SYSTEM, "The hold expired.", now)
    return [_end(session, customer, hold, captured=0, status=EXPIRED, cause=cause) for hold in due]


# --- The rules ------------------------------------------------------------------------------


def _end_hold(engine: Engine | None, creator_id: int, hold_id: int, **change: Any) -> HoldEnding:
    """End the creator's hold (`NotFound` for anyone else's) in a ledger transaction on its customer."""
    with read_session(engine) as session:
        customer_id = session.exec(
            select(Hold.customer_id).where(Hold.id == hold_id, Hold.creator_id == creator_id)
        ).first()
    if customer_id is None:
        raise NotFound("No such hold.")
    return _change_credits(engine, creator_id=creator_id, customer_id=customer_id, result_type=HoldEnding, **change)


def _open_hold(session: Session, hold_id: int) -> Hold:
    """The hold, read after the customer's lock (so no other change of it can be under way); `HoldClosed` if it
    has ended, which includes its expiry having just released it."""
    hold = session.exec(select(Hold).where(Hold.id == hold_id).execution_options(populate_existing=True)).one()
    if hold.status != ACTIVE:
        raise HoldClosed(_CLOSED[hold.status])
    return hold


def _end(session: Session, customer: Customer, hold: Hold, *, captured: int, status: str, cause: _Cause) -> HoldEnding:
    """End the hold: keep `captured` of its credits (those first in spending order), give the rest back to their
    lots, and record it in one entry whose delta is what came back."""
    held = session.exec(
        select(HeldCredits.lot_id, HeldCredits.amount, CreditLot.expires_at)
        .join(CreditLot, CreditLot.id == HeldCredits.lot_id)
        .where(HeldCredits.hold_id == hold.id)
        .order_by(*_SPENDING_ORDER)
    ).all()
    back, to_keep = [], captured
    for lot_id, amount, expires_at in held:
        kept = min(amount, to_keep)
        to_keep -= kept
        if amount > kept:
            back.append((lot_id, amount - kept, expires_at))
    _give_back_to_lots(session, customer, back)
    hold.status, hold.captured, hold.ended_at = status, captured, cause.now
    customer.held -= hold.amount
    session.add(hold)
    returned = sum(amount for _lot_id, amount, _expires_at in back)
    lot_id = back[0][0] if len(back) == 1 else None
    entry = _record(session, customer, delta=returned, lot_id=lot_id, cause=replace(cause, hold_id=hold.id))
    return HoldEnding(transaction=entry, reason=cause.reason, hold=HoldSummary.of(hold))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
