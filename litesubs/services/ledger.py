"""The credit ledger: how a customer's credits are granted, spent, adjusted, refunded and expire.

Credits live in lots (one per purchase or grant). The rules, from DESIGN.md:

- Every change of credits is one transaction that locks the customer (a row lock on PostgreSQL;
  on SQLite the write transaction holds the database lock), first expires the lots whose time has
  passed, then writes the lots, the cached balance and exactly one ledger entry together. So at
  every commit: balance == sum of unexpired lots' remaining == sum of ledger deltas >= 0.
- Spending takes from the soonest-expiring lot first, never-expiring lots last, older lots first
  on ties. A debit larger than the balance is refused whole and changes nothing.
- A suspended customer cannot spend or buy; the creator can still adjust credits by hand.
- A lot expires when its `expires_at` is not in the future; its remaining credits leave with one
  `expiry` entry. This happens lazily whenever the customer is read or written, and for the whole
  database through `expire_due_credits` (`python -m litesubs expire-credits`).
- An operation carrying an idempotency key runs at most once per creator (see `idempotency`).
- Holds (`holds`) reserve credits: a hold takes them from the lots like a spend (so the balance is what can
  be spent or held now, and `held` counts the rest apart) and gives what it does not spend back to the same
  lots. A hold past its expiry is released like a lot expires: lazily, and by a sweep. `holds` builds on
  this module's pieces: `_change_credits`, `lock_customer`, `_take_from_lots`, `_give_back_to_lots`, `_record`,
  and for its own hot paths the debit's lock statement and statement parts (`_lots_to_take`, `_single_lot`).

`grant`, `debit`, `adjust`, `get_balance` and `list_entries` are each one transaction, except that on
PostgreSQL concurrent debits of one customer may share one (see "The debit's hot path" below).
`lock_customer`, `grant_in_session` and `take_back_lot` do the same work in the caller's
transaction, for payment fulfilment, which writes its purchase in the same commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Engine,
    Integer,
    Row,
    ScalarSelect,
    Select,
    Text,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    update,
)
from sqlmodel import Session, select

from litesubs.db import get_engine, read_connection, read_session, write_session
from litesubs.models import CreditLot, Customer, Hold, LedgerEntry, utcnow
from litesubs.services import idempotency, webhooks
from litesubs.services.coalescing import Coalescer
from litesubs.services.cursors import decode_cursor, encode_cursor
from litesubs.services.customers import ensure_active, lock_customer_row
from litesubs.services.errors import (
    CustomerSuspended,
    DomainError,
    HoldClosed,
    HoldExceeded,
    InsufficientCredits,
    InvalidRequest,
    NotFound,
)

MAX_AMOUNT = 1_000_000_000
MAX_REASON_LENGTH = 500
MAX_PAGE_SIZE = 100
ACTOR_TYPES = ("creator", "api_key", "stripe", "system", "buyer")

# Business refusals: stored with an idempotency key and replayed, unlike malformed requests.
_REFUSALS: dict[str, type[DomainError]] = {
    refusal.code: refusal for refusal in (InsufficientCredits, CustomerSuspended, HoldClosed, HoldExceeded)
}


@dataclass(frozen=True)
class Actor:
    """Who changed credits: a creator, an API key, Stripe, the system or a buyer, and their id."""

    type: str
    id: int | str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"Unknown actor type {self.type!r}")


SYSTEM = Actor("system")


@dataclass(frozen=True)
class LedgerResult:
    """One change of credits as its ledger entry records it; `replayed` when an idempotency key returned it again."""

    entry_id: int
    customer_id: int
    kind: str
    delta: int
    balance_after: int
    lot_id: int | None
    created_at: datetime
    hold_id: int | None = None
    replayed: bool = False

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerResult:
        return cls(
            entry_id=entry.id,
            customer_id=entry.customer_id,
            kind=entry.kind,
            delta=entry.delta,
            balance_after=entry.balance_after,
            lot_id=entry.lot_id,
            created_at=entry.created_at,
            hold_id=entry.hold_id,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["replayed"]
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> LedgerResult:
        return cls(**{**data, "created_at": datetime.fromisoformat(data["created_at"])}, replayed=replayed)


@dataclass(frozen=True)
class LotSummary:
    id: int
    source: str
    granted: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class CustomerBalance:
    """A customer's balance (what can be spent or held now), credits in active holds, and unexpired lots, in the
    order they will be spent."""

    customer_id: int
    balance: int
    held: int
    status: str
    lots: tuple[LotSummary, ...]


@dataclass(frozen=True)
class LedgerPage:
    """Ledger entries, newest first; pass `next_cursor` to get the following page (None at the end)."""

    entries: tuple[LedgerEntry, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ExpirySummary:
    lots: int
    credits: int


@dataclass(frozen=True)
class _Cause:
    """What a ledger entry records besides the numbers: the kind of change, who made it, why, and when."""

    kind: str
    actor: Actor
    reason: str
    now: datetime
    idempotency_key: str | None = None
    hold_id: int | None = None


def parse_credits(text: str, *, field: str = "amount") -> int:
    """A whole number of credits as a person types it ('1,000' is fine), from 1 to 1,000,000,000."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    if not (cleaned.isascii() and cleaned.isdigit()):
        raise InvalidRequest(field, "Enter a whole number of credits, such as 100.")
    if not 1 <= int(cleaned) <= MAX_AMOUNT:
        raise InvalidRequest(field, f"Credits must be between 1 and {MAX_AMOUNT:,}.")
    return int(cleaned)


# --- Operations, each one transaction -------------------------------------------------------


def grant(
    *,
    creator_id: int,
    customer_id: int,
    amount: int,
    actor: Actor,
    reason: str = "",
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerResult:
    """Give the customer `amount` free credits (ledger kind `credit`) in a new lot, optionally expiring."""
    now = now or utcnow()
    amount, reason, expires_at = _check_amount(amount), _check_reason(reason), _check_expiry(expires_at, now)
    cause = _Cause("credit", actor, reason, now, idempotency_key)
    return _change_credits(
        engine,
        creator_id=creator_id,
        customer_id=customer_id,
        request={"operation": "grant", "amount": amount, "reason": reason, "expires_at": _iso(expires_at)},
        cause=cause,
        change=lambda session, customer: _add_lot(session, customer, amount, expires_at=expires_at, cause=cause),
    )


def debit(
    *,
    creator_id: int,
    customer_id: int,
    amount: int,
    actor: Actor,
    reason: str = "",
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerResult:
    """Spend `amount` credits. Refused whole, changing nothing, if the customer is suspended or has fewer."""
    now = now or utcnow()
    amount, reason = _check_amount(amount), _check_reason(reason)
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    cause = _Cause("debit", actor, reason, now, idempotency_key)
    request = {"operation": "debit", "amount": amount, "reason": reason}
    engine = engine or get_engine()
    if engine.dialect.name == "postgresql":
        hot = _Debit(engine, creator_id, customer_id, amount, {**request, "customer_id": customer_id}, cause)
        outcome = _DEBITS.run((engine, creator_id, customer_id), hot)
        if outcome is not None:
            return _delivered(outcome, replayed=False)

    def spend(session: Session, customer: Customer) -> LedgerResult:
        ensure_active(customer)
        return _spend(session, customer, amount, cause=cause)

    return _change_credits(
        engine, creator_id=creator_id, customer_id=customer_id, request=request, cause=cause, change=spend
    )


def adjust(
    *,
    creator_id: int,
    customer_id: int,
    delta: int,
    reason: str,
    actor: Actor,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerResult:
    """A creator's manual correction, up (a new lot) or down (spent in the usual order), with a required reason.

    Works on suspended customers too. Taking away more than the balance is refused whole.
    """
    now = now or utcnow()
    if isinstance(delta, bool) or not isinstance(delta, int) or not 1 <= abs(delta) <= MAX_AMOUNT:
        raise InvalidRequest("delta", f"Add or remove a whole number of credits from 1 to {MAX_AMOUNT:,}.")
    reason, expires_at = _check_reason(reason, required=True), _check_expiry(expires_at, now)
    if delta < 0 and expires_at is not None:
        raise InvalidRequest("expires_at", "Only added credits can expire.")
    cause = _Cause("adjustment", actor, reason, now, idempotency_key)

    def correct(session: Session, customer: Customer) -> LedgerResult:
        if delta > 0:
            return _add_lot(session, customer, delta, expires_at=expires_at, cause=cause)
        return _spend(session, customer, -delta, cause=cause)

    return _change_credits(
        engine,
        creator_id=creator_id,
        customer_id=customer_id,
        request={"operation": "adjust", "delta": delta, "reason": reason, "expires_at": _iso(expires_at)},
        cause=cause,
        change=correct,
    )


def get_balance(
    *, creator_id: int, customer_id: int, now: datetime | None = None, engine: Engine | None = None
) -> CustomerBalance:
    """The customer's balance, held credits, status and unexpired lots (in spending order), after expiring what is due.

    Balance checks are frequent and rarely find a lot or hold due, so they read first, without a lock, in one
    statement (one snapshot of customer and lots); only when something is due do they take the lock and expire it.
    """
    now = now or utcnow()
    with read_connection(engine) as connection:
        rows = connection.execute(_BALANCE, {"customer_id": customer_id, "creator_id": creator_id}).all()
    if not rows:
        raise NotFound("No such customer.")
    if not _has_due_lots(rows[0], now):
        lots = [row for row in rows if row.id is not None]
        return _balance_of(customer_id, rows[0], lots=lots)
    with write_session(engine) as session:
        customer = lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=now)
        return _balance_of(customer.id, customer, lots=_open_lots(session, customer.id))


def _balance_of(customer_id: int, customer: Customer | Row, *, lots: Iterable[Any]) -> CustomerBalance:
    """The balance with its open lots, given in spending order (lot rows or `CreditLot`s)."""
    summaries = tuple(
        LotSummary(
            id=lot.id,
            source=lot.source,
            granted=lot.granted,
            remaining=lot.remaining,
            expires_at=lot.expires_at,
            created_at=lot.created_at,
        )
        for lot in lots
    )
    return CustomerBalance(
        customer_id=customer_id, balance=customer.balance, held=customer.held, status=customer.status, lots=summaries
    )


def list_entries(
    *,
    creator_id: int,
    customer_id: int,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
    engine: Engine | None = None,
) -> LedgerPage:
    """The customer's ledger, newest first, `limit` (1 to 100) entries a page, after expiring what is due.

    Like `get_balance`, a plain read; the customer is locked only when a lot may be due.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"Ask for 1 to {MAX_PAGE_SIZE} entries.")
    statement = select(LedgerEntry).where(LedgerEntry.customer_id == customer_id)
    if cursor is not None:
        statement = statement.where(LedgerEntry.id < decode_cursor(cursor))
    statement = statement.order_by(LedgerEntry.id.desc()).limit(limit + 1)
    now = now or utcnow()
    with read_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.id == customer_id, Customer.creator_id == creator_id)
        ).first()
        if customer is None:
            raise NotFound("No such customer.")
        entries = None if _has_due_lots(customer, now) else tuple(session.exec(statement))
    if entries is None:  # a lot is due: expire it under the lock first, so the page shows its expiry entry
        with write_session(engine) as session:
            lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=now)
            entries = tuple(session.exec(statement))
    if len(entries) <= limit:
        return LedgerPage(entries=entries, next_cursor=None)
    return LedgerPage(entries=entries[:limit], next_cursor=encode_cursor(entries[limit - 1].id))


def expire_due_credits(*, now: datetime | None = None, engine: Engine | None = None) -> ExpirySummary:
    """Expire every due lot in the database, one transaction per customer (the operator command)."""
    now = now or utcnow()
    with write_session(engine) as session:
        due = session.exec(
            select(Customer.id, Customer.creator_id)
            .join(CreditLot, CreditLot.customer_id == Customer.id)
            .where(CreditLot.remaining > 0, CreditLot.expires_at <= now)
            .distinct()
        ).all()
    expired: list[LedgerResult] = []
    for customer_id, creator_id in due:
        with write_session(engine) as session:
            customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
            expired += expire_due_lots(session, customer, now=now)
    return ExpirySummary(lots=len(expired), credits=-sum(result.delta for result in expired))


# --- The same work in the caller's transaction ----------------------------------------------


def lock_customer(session: Session, *, creator_id: int, customer_id: int, now: datetime) -> Customer:
    """Lock the creator's customer for the rest of the caller's transaction and expire its due lots.

    Call this before any other change of the customer's credits in the same transaction.
    """
    customer = lock_customer_row(session, creator_id=creator_id, customer_id=customer_id)
    expire_due_lots(session, customer, now=now)
    return customer


def grant_in_session(
    session: Session,
    customer: Customer,
    *,
    amount: int,
    actor: Actor,
    now: datetime,
    reason: str = "",
    expires_at: datetime | None = None,
    purchase_id: int | None = None,
) -> LedgerResult:
    """Grant credits to a customer locked with `lock_customer`.

    With `purchase_id` the lot is the purchase's (source `purchase`, ledger kind `purchase`) and a
    suspended customer is refused (`CustomerSuspended`); otherwise it is a free grant (`credit`).
    """
    amount, reason, expires_at = _check_amount(amount), _check_reason(reason), _check_expiry(expires_at, now)
    if purchase_id is not None:
        ensure_active(customer)
    kind = "credit" if purchase_id is None else "purchase"
    return _add_lot(
        session,
        customer,
        amount,
        expires_at=expires_at,
        purchase_id=purchase_id,
        cause=_Cause(kind, actor, reason, now),
    )


def take_back_lot(
    session: Session,
    customer: Customer,
    *,
    lot_id: int,
    actor: Actor,
    now: datetime,
    reason: str = "",
    kind: str = "refund",
) -> LedgerResult | None:
    """Take back what is left of one lot (a refunded or disputed purchase: `kind` `refund` or `dispute`) from a
    customer locked with `lock_customer`, and mark the lot taken back: credits of it that an active hold has
    out now are taken back too when the hold gives them back (`take_back_returned`).

    Returns None, recording nothing, when the lot has nothing left.
    """
    lot = _lot_of(session, customer, lot_id)
    lot.taken_back = kind
    session.add(lot)
    if lot.remaining == 0:
        return None
    return _empty_lot(session, customer, lot, cause=_Cause(kind, actor, _check_reason(reason), now))


def take_back_returned(session: Session, customer: Customer, *, lot_ids: Iterable[int], now: datetime) -> None:
    """Take back at once what a hold just gave back to lots whose credits were taken back (refunded or disputed),
    one entry per lot of the kind that took it (`refund` or `dispute`): a refunded purchase ends holding no
    credits, as an expired lot does (`expire_due_lots`). The caller has recorded the hold's ending first."""
    lot_ids = list(lot_ids)
    if not lot_ids:
        return
    lots = session.exec(
        select(CreditLot)
        .where(CreditLot.id.in_(lot_ids), CreditLot.taken_back.is_not(None), CreditLot.remaining > 0)
        .order_by(CreditLot.id)
        .execution_options(populate_existing=True)
    ).all()
    for lot in lots:
        reason = _TAKEN_BACK_REASONS[lot.taken_back]
        _empty_lot(session, customer, lot, cause=_Cause(lot.taken_back, SYSTEM, reason, now))


_TAKEN_BACK_REASONS = {
    "refund": "Payment refunded: credits a hold gave back",
    "dispute": "Payment disputed: credits a hold gave back",
}


def give_back_disputed(
    session: Session, customer: Customer, *, lot_id: int, actor: Actor, now: datetime, reason: str = ""
) -> LedgerResult | None:
    """A won dispute: the lot is the customer's again, and what disputes took from it (`dispute` entries, those
    of credits a hold gave back during the dispute included) returns to it, for a customer locked with
    `lock_customer`. Credits a hold captured during the dispute stay spent, as debits made before it do.
    Returns None, recording nothing, when nothing was taken or the lot has expired meanwhile: its credits
    would have expired too.
    """
    lot = _lot_of(session, customer, lot_id)
    if lot.taken_back == "dispute":
        lot.taken_back = None
        session.add(lot)
    amount = min(_lot_disputed_credits(session, lot_id=lot.id), lot.granted - lot.remaining)
    if amount <= 0 or (lot.expires_at is not None and lot.expires_at <= now):
        return None
    lot.remaining += amount
    session.add(lot)
    if lot.expires_at is not None and (customer.next_expiry_at is None or lot.expires_at < customer.next_expiry_at):
        customer.next_expiry_at = lot.expires_at
    return _record(session, customer, delta=amount, lot_id=lot.id, cause=_Cause("dispute", actor, reason, now))


def _lot_disputed_credits(session: Session, *, lot_id: int) -> int:
    """How many credits disputes took from this lot and have not given back yet."""
    taken = session.exec(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
            LedgerEntry.lot_id == lot_id, LedgerEntry.kind == "dispute"
        )
    ).one()
    return -int(taken)


def _lot_of(session: Session, customer: Customer, lot_id: int) -> CreditLot:
    lot = session.exec(
        select(CreditLot)
        .where(CreditLot.id == lot_id, CreditLot.customer_id == customer.id)
        .execution_options(populate_existing=True)
    ).first()
    if lot is None:
        raise NotFound("No such credit lot.")
    return lot


def expire_due_lots(session: Session, customer: Customer, *, now: datetime) -> list[LedgerResult]:
    """Expire what fell due for the locked customer: first its holds past their expiry give their credits back
    (see `holds`), then its lots whose time has come lose what they hold, one `expiry` entry per lot.

    Returns the expiry entries. Skipped without a query while `customer.next_expiry_at` is in the future (or unset).
    """
    if not _has_due_lots(customer, now):
        return []
    if customer.held:
        from litesubs.services import holds  # holds builds on this module; only a due hold needs it back

        holds.end_due_holds(session, customer, now=now)
    due = session.exec(
        select(CreditLot)
        .where(CreditLot.customer_id == customer.id, CreditLot.remaining > 0, CreditLot.expires_at <= now)
        .order_by(CreditLot.expires_at, CreditLot.id)
        .execution_options(populate_existing=True)
    )
    cause = _Cause("expiry", SYSTEM, "Credits expired.", now)
    expired = [_empty_lot(session, customer, lot, cause=cause) for lot in due.all()]
    soonest_lot = select(func.min(CreditLot.expires_at)).where(
        CreditLot.customer_id == customer.id, CreditLot.remaining > 0
    )
    soonest_hold = select(func.min(Hold.expires_at)).where(Hold.customer_id == customer.id, Hold.status == "active")
    expiries = session.exec(soonest_lot).one(), session.exec(soonest_hold).one() if customer.held else None
    customer.next_expiry_at = min((moment for moment in expiries if moment is not None), default=None)
    session.add(customer)
    return expired


# --- The rules ------------------------------------------------------------------------------


_SPENDING_ORDER = (CreditLot.expires_at.asc().nulls_last(), CreditLot.created_at, CreditLot.id)


# `get_balance`'s read: the customer's balance, held credits, status and next expiry, with its open lots in
# spending order.
_BALANCE = (
    select(
        Customer.balance,
        Customer.held,
        Customer.status,
        Customer.next_expiry_at,
        *(
            getattr(CreditLot, column)
            for column in ("id", "source", "granted", "remaining", "expires_at", "created_at")
        ),
    )
    .select_from(Customer)
    .outerjoin(CreditLot, (CreditLot.customer_id == Customer.id) & (CreditLot.remaining > 0))
    .where(Customer.id == bindparam("customer_id"), Customer.creator_id == bindparam("creator_id"))
    .order_by(*_SPENDING_ORDER)
)


def _has_due_lots(customer: Customer | Row, now: datetime) -> bool:
    """Whether a lot or hold may be due: `next_expiry_at` is never later than the soonest expiry of a lot holding
    credits or of an active hold."""
    return customer.next_expiry_at is not None and customer.next_expiry_at <= now


def _open_lots(session: Session, customer_id: int) -> list[CreditLot]:
    """The customer's lots that still hold credits, in spending order.

    Soonest expiry first, never-expiring lots last, older first on ties (id breaks equal times).
    """
    statement = (
        select(CreditLot)
        .where(CreditLot.customer_id == customer_id, CreditLot.remaining > 0)
        .order_by(*_SPENDING_ORDER)
        .execution_options(populate_existing=True)
    )
    return list(session.exec(statement))


def _add_lot(
    session: Session,
    customer: Customer,
    amount: int,
    *,
    expires_at: datetime | None,
    cause: _Cause,
    purchase_id: int | None = None,
) -> LedgerResult:
    lot = CreditLot(
        customer_id=customer.id,
        source="grant" if purchase_id is None else "purchase",
        purchase_id=purchase_id,
        granted=amount,
        remaining=amount,
        expires_at=expires_at,
        created_at=cause.now,
    )
    session.add(lot)
    session.flush()
    if expires_at is not None and (customer.next_expiry_at is None or expires_at < customer.next_expiry_at):
        customer.next_expiry_at = expires_at
    return _record(session, customer, delta=amount, lot_id=lot.id, cause=cause)


def _spend(session: Session, customer: Customer, amount: int, *, cause: _Cause) -> LedgerResult:
    """Take `amount` from the open lots in spending order: one entry, naming the lot if only one was touched."""
    taken = _take_from_lots(session, customer, amount)
    return _record(session, customer, delta=-amount, lot_id=taken[0].id if len(taken) == 1 else None, cause=cause)


def _take_from_lots(session: Session, customer: Customer, amount: int) -> list[Row]:
    """Take `amount` from the open lots in spending order, refused whole if the balance is lower: rows of
    (id, take). The caller records the change (`_record`)."""
    if amount > customer.balance:
        raise _insufficient(customer.balance, amount)
    taken = session.exec(_lots_to_take(customer.id, amount)).all()
    session.connection().execute(_TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in taken])
    return list(taken)


def _give_back_to_lots(
    session: Session, customer: Customer, credits: Iterable[tuple[int, int, datetime | None]]
) -> None:
    """Put credits taken earlier back into their lots: (lot id, credits, the lot's expiry) each. The caller records
    the change (`_record`), then calls `take_back_returned`, which takes back what went back to a refunded or
    disputed lot, and `expire_due_lots`, which expires what went back to a lot whose time passed."""
    credits = list(credits)
    if not credits:
        return
    session.connection().execute(_TAKE_FROM_LOT, [{"lot_id": lot_id, "take": -back} for lot_id, back, _ in credits])
    for _lot_id, _back, expires_at in credits:
        if expires_at is not None and (customer.next_expiry_at is None or expires_at < customer.next_expiry_at):
            customer.next_expiry_at = expires_at


def _lots_to_take(customer_id: int | ColumnElement[int], amount: int | ColumnElement[int]) -> Select:
    """Which open lots a spend of `amount` takes from, and how much from each: rows of (id, take), in spending order.

    Lots are emptied in spending order until `amount` is reached; the caller knows the balance covers it.
    """
    earlier = func.sum(CreditLot.remaining).over(order_by=_SPENDING_ORDER, rows=(None, -1))
    lots = (
        select(CreditLot.id, CreditLot.remaining, func.coalesce(earlier, 0).label("earlier"))
        .where(CreditLot.customer_id == customer_id, CreditLot.remaining > 0)
        .subquery("open_lots")
    )
    still_needed = amount - lots.c.earlier
    take = case((lots.c.remaining < still_needed, lots.c.remaining), else_=still_needed)
    return select(lots.c.id, take.label("take")).where(lots.c.earlier < amount).order_by(lots.c.earlier)


def _insufficient(balance: int, amount: int) -> InsufficientCredits:
    return InsufficientCredits(f"The customer has {balance:,} credits, fewer than the {amount:,} asked for.")


def _empty_lot(session: Session, customer: Customer, lot: CreditLot, *, cause: _Cause) -> LedgerResult:
    taken = lot.remaining
    lot.remaining = 0
    session.add(lot)
    return _record(session, customer, delta=-taken, lot_id=lot.id, cause=cause)


def _record(
    session: Session,
    customer: Customer,
    *,
    delta: int,
    lot_id: int | None,
    cause: _Cause,
    captured: webhooks.Captured | None = None,
) -> LedgerResult:
    """Move the cached balance by `delta` and write the one ledger entry that says who did it and why, with its
    events (`webhooks.credits_changed`; a hold's capture passes what it spent, its `credits.debited`)."""
    customer.balance += delta
    customer.updated_at = cause.now
    fields = _entry_fields(customer.creator_id, customer.id, delta=delta, balance_after=customer.balance, cause=cause)
    entry = LedgerEntry(**fields, lot_id=lot_id, hold_id=cause.hold_id)
    session.add(customer)
    session.add(entry)
    session.flush()
    webhooks.credits_changed(session.connection(), [(entry.id, webhooks.with_capture(fields, captured))])
    return LedgerResult.of(entry)


# A ledger entry's columns but its lot, in the order `_entry_fields` gives them.
_ENTRY_COLUMNS = (
    "creator_id",
    "customer_id",
    "delta",
    "balance_after",
    "kind",
    "reason",
    "actor_type",
    "actor_id",
    "idempotency_key",
    "created_at",
)


def _entry_fields(
    creator_id: int, customer_id: int, *, delta: int, balance_after: int, cause: _Cause
) -> dict[str, Any]:
    """A ledger entry's columns but its lot (`_ENTRY_COLUMNS`), with their values."""
    actor_id = None if cause.actor.id is None else str(cause.actor.id)
    values = (creator_id, customer_id, delta, balance_after, cause.kind, cause.reason, cause.actor.type, actor_id)
    return dict(zip(_ENTRY_COLUMNS, (*values, cause.idempotency_key, cause.now), strict=True))


# --- One transaction, at most once per idempotency key --------------------------------------


def _change_credits(
    engine: Engine | None,
    *,
    creator_id: int,
    customer_id: int,
    request: dict[str, Any],
    cause: _Cause,
    change: Callable[[Session, Customer], Outcome],
    result_type: type[Outcome] = LedgerResult,  # type: ignore[assignment]
    fingerprint_customer: bool = True,
) -> Outcome:
    """Run `change` on the locked, up-to-date customer in one transaction, once per idempotency key.

    A business refusal is committed like a success (with its idempotency record and any expiry that
    was due) and raised after the commit; replaying a key raises the stored refusal again, marked `replayed`.
    `change` returns a `LedgerResult`, or another `result_type` that stores and replays the same way (holds).
    The key fingerprints `request` with the customer, unless `request` names something that has only one
    customer (a hold) and `fingerprint_customer` is False.
    """
    key = cause.idempotency_key
    with write_session(engine) as session:
        outcome = None
        if key is not None:
            if fingerprint_customer:
                request = {**request, "customer_id": customer_id}
            outcome = idempotency.claim(
                session, creator_id=creator_id, key=idempotency.check_key(key), request=request, now=cause.now
            )
        replayed = outcome is not None
        if outcome is None:
            customer = lock_customer(session, creator_id=creator_id, customer_id=customer_id, now=cause.now)
            outcome = _outcome_of(change, session, customer)
            if key is not None:
                idempotency.remember(session, creator_id=creator_id, key=key, outcome=outcome)
    return _delivered(outcome, replayed=replayed, result_type=result_type)


class _Stored(Protocol):
    """A change's result as an idempotency record stores it and a replay returns it."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> Self: ...


Outcome = TypeVar("Outcome", bound=_Stored)


def _delivered(
    outcome: dict[str, Any],
    *,
    replayed: bool,
    result_type: type[Outcome] = LedgerResult,  # type: ignore[assignment]
) -> Outcome:
    """The committed outcome of a change: its result, or its refusal raised (both marked `replayed` if so)."""
    if "refusal" in outcome:
        refusal = _REFUSALS[outcome["refusal"]](outcome["message"])
        refusal.replayed = replayed
        raise refusal
    return result_type.from_json(outcome["result"], replayed=replayed)


def _outcome_of(change: Callable[[Session, Customer], _Stored], session: Session, customer: Customer) -> dict[str, Any]:
    try:
        return {"result": change(session, customer).to_json()}
    except tuple(_REFUSALS.values()) as refusal:
        return _refusal_outcome(refusal)


def _refusal_outcome(refusal: DomainError) -> dict[str, Any]:
    return {"refusal": refusal.code, "message": refusal.message}


# --- The debit's hot path on PostgreSQL -----------------------------------------------------


@dataclass(frozen=True)
class _Debit:
    """One call of `debit`, checked, waiting to run on PostgreSQL alone or with others of its customer.

    `request` is what its idempotency key fingerprints, the customer included.
    """

    engine: Engine
    creator_id: int
    customer_id: int
    amount: int
    request: dict[str, Any]
    cause: _Cause


def _run_debits(debits: list[_Debit]) -> list[dict[str, Any] | None]:
    """The committed outcome of each debit (all of one customer), or None where the general path must decide."""
    return _debit_together(debits) if len(debits) > 1 else [_debit_in_two_statements(debits[0])]


# Debits of one customer that arrive while another is running wait, then run together (see `coalescing`).
_DEBITS: Coalescer[_Debit, dict[str, Any] | None] = Coalescer(_run_debits)


def _debit_in_two_statements(debit: _Debit) -> dict[str, Any] | None:
    """`debit` in two statements and a commit, for the API's hot path: the rules of `_change_credits`.

    The first statement claims the idempotency key and locks the customer; the second (which, under
    READ COMMITTED, sees everything committed before the lock was granted) takes from the lots, moves
    the balance, writes the ledger entry and stores the outcome for the key. Both are built once
    (`_debit_statements`), so a debit costs SQLAlchemy no compiling. Returns the committed outcome,
    or None after changing nothing when the general path must decide: no such customer, a key used
    before, or a lot due to expire.
    """
    creator_id, customer_id, amount, cause = debit.creator_id, debit.customer_id, debit.amount, debit.cause
    key = cause.idempotency_key
    parameters = {"debit_creator_id": creator_id, "debit_customer_id": customer_id, "debit_amount": amount}
    if key is not None:
        parameters |= idempotency.claim_parameters(creator_id=creator_id, key=key, request=debit.request, now=cause.now)
    lock = _debit_statements(with_key=key is not None)[0]
    with debit.engine.begin() as connection:
        customer = connection.execute(lock, parameters).first()
        if customer is None or _has_due_lots(customer, cause.now):
            connection.rollback()
            return None
        refusal = _refusal_of(customer, balance=customer.balance, amount=amount)
        if refusal is not None:
            if key is not None:
                connection.execute(
                    idempotency.REMEMBER,
                    idempotency.remember_parameters(creator_id=creator_id, key=key, outcome=refusal),
                )
            return refusal
        balance_after = customer.balance - amount
        fields = _entry_fields(creator_id, customer_id, delta=-amount, balance_after=balance_after, cause=cause)
        parameters |= {f"entry_{column}": value for column, value in fields.items()}
        parameters |= {"move_customer_id": customer_id, "move_balance": balance_after, "move_now": cause.now}
        parameters |= {"remember_creator_id": creator_id, "remember_key": key}
        parameters["debit_created_at_text"] = cause.now.isoformat()
        watch = webhooks.Watch.of(customer)
        spend = _debit_statements(with_key=key is not None, with_event=watch.sends_debits)[1]
        if watch.sends_debits:
            parameters |= webhooks.debited_event_parameters(fields)
        entry_id, lot_id = connection.execute(spend, parameters).one()
        webhooks.credits_changed(connection, [(entry_id, fields)], watch=watch.with_debits_recorded())
    result = LedgerResult(entry_id, customer_id, cause.kind, -amount, balance_after, lot_id, cause.now)
    return {"result": result.to_json()}


def _refusal_of(customer: Row, *, balance: int, amount: int) -> dict[str, Any] | None:
    """The refusal outcome of spending `amount` from a locked customer holding `balance`, or None if it may."""
    try:
        ensure_active(customer)
        if amount > balance:
            raise _insufficient(balance, amount)
    except (InsufficientCredits, CustomerSuspended) as refusal:
        return _refusal_outcome(refusal)
    return None


# The columns of a ledger entry that a `LedgerResult` repeats as they are (it adds `entry_id`, `lot_id` and the time).
_RESULT_COLUMNS = ("customer_id", "kind", "delta", "balance_after")


@cache
def _debit_statements(*, with_key: bool, with_event: bool = False) -> tuple[Select, Select]:
    """The debit's two statements, with bind parameters named after `_entry_fields` and the claim's.

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
    taken = _lots_to_take(bindparam("debit_customer_id"), bindparam("debit_amount", type_=BigInteger)).cte("taken")
    spent = (
        update(CreditLot)
        .where(CreditLot.id == taken.c.id)
        .values(remaining=CreditLot.remaining - taken.c.take)
        .returning(CreditLot.id)
        .cte("spent")
    )
    moved = _MOVE_BALANCE.returning(Customer.id).cte("moved")
    single_lot = _single_lot(taken)
    entry = (
        insert(LedgerEntry)
        .values({**{column: bindparam(f"entry_{column}") for column in _ENTRY_COLUMNS}, "lot_id": single_lot})
        .returning(*(getattr(LedgerEntry, column) for column in ("id", "lot_id", *_RESULT_COLUMNS)))
        .cte("entry")
    )
    spend = select(entry.c.id, entry.c.lot_id).add_cte(spent, moved)
    if with_event:
        entry_values = {column: bindparam(f"entry_{column}") for column in _ENTRY_COLUMNS}
        spend = spend.add_cte(webhooks.debited_event_cte(entry, entry_values))
    if not with_key:
        return lock, spend
    outcome = _json_object(
        result=_json_object(
            entry_id=entry.c.id,
            lot_id=entry.c.lot_id,
            **{column: entry.c[column] for column in _RESULT_COLUMNS},
            created_at=bindparam("debit_created_at_text", type_=Text),
        )
    )
    remembered = idempotency.REMEMBER.values(outcome=cast(select(outcome).scalar_subquery(), Text)).cte("remembered")
    return lock, spend.add_cte(remembered)


def _single_lot(taken: CTE) -> ScalarSelect[int | None]:
    """The one lot a spend took from (rows of id and take), or NULL where it took from several."""
    return select(case((func.count() == 1, func.min(taken.c.id)))).select_from(taken).scalar_subquery()


def _debit_together(debits: list[_Debit]) -> list[dict[str, Any] | None]:
    """Several debits of one customer in one transaction, in order, as if one after the other.

    One lock and one commit for all; each debit still gets its own idempotency record, ledger entry and
    outcome. Statements cover the whole batch: the claims, the lock, the lots to take for the sum of the
    successful debits, and then the lot, balance, ledger and outcome writes. A debit whose key was used
    before (or earlier in the batch) gets None, as does every debit when the customer is not found or a
    lot is due: the general path decides those, one at a time.
    """
    engine, creator_id, customer_id = debits[0].engine, debits[0].creator_id, debits[0].customer_id
    now = max(debit.cause.now for debit in debits)
    outcomes: list[dict[str, Any] | None] = [None] * len(debits)
    claims = [(d.cause.idempotency_key, d.request, d.cause.now) for d in debits if d.cause.idempotency_key is not None]
    with engine.begin() as connection:
        claimed = idempotency.claim_all(connection, creator_id=creator_id, claims=claims) if claims else set()
        running = []
        for index, debit in enumerate(debits):
            key = debit.cause.idempotency_key
            if key is None or key in claimed:
                running.append(index)
                claimed.discard(key)
        lock = _debit_statements(with_key=False)[0]
        customer = connection.execute(lock, {"debit_creator_id": creator_id, "debit_customer_id": customer_id}).first()
        if customer is None or _has_due_lots(customer, now):
            connection.rollback()
            return outcomes
        balance, spends = customer.balance, []
        for index in running:
            outcomes[index] = _refusal_of(customer, balance=balance, amount=debits[index].amount)
            if outcomes[index] is None:
                balance -= debits[index].amount
                spends.append((index, balance))
        if spends:
            lots = connection.execute(_lots_to_take(customer_id, customer.balance - balance)).all()
            connection.execute(_TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in lots])
            connection.execute(
                _MOVE_BALANCE, {"move_customer_id": customer_id, "move_balance": balance, "move_now": now}
            )
            lot_ids = _lot_of_each(lots, [debits[index].amount for index, _after in spends])
            entries = [
                {
                    **_entry_fields(
                        creator_id,
                        customer_id,
                        delta=-debits[index].amount,
                        balance_after=after,
                        cause=debits[index].cause,
                    ),
                    "lot_id": lot_id,
                }
                for (index, after), lot_id in zip(spends, lot_ids, strict=True)
            ]
            entry_ids = connection.execute(_INSERT_ENTRIES, entries).scalars().all()
            webhooks.credits_changed(
                connection, list(zip(entry_ids, entries, strict=True)), watch=webhooks.Watch.of(customer)
            )
            for (index, after), lot_id, entry_id in zip(spends, lot_ids, entry_ids, strict=True):
                debit = debits[index]
                result = LedgerResult(entry_id, customer_id, "debit", -debit.amount, after, lot_id, debit.cause.now)
                outcomes[index] = {"result": result.to_json()}
        remembered = [
            idempotency.remember_parameters(creator_id=creator_id, key=key, outcome=outcomes[index])
            for index in running
            if (key := debits[index].cause.idempotency_key) is not None
        ]
        if remembered:
            connection.execute(idempotency.REMEMBER, remembered)
    return outcomes


def _lot_of_each(lots: list[Row], amounts: list[int]) -> list[int | None]:
    """For spends of `amounts`, one after the other, from `lots` (rows of id and take, in spending order, taking
    their sum): the one lot each spend took from, or None where it took from several."""
    left = [lot.take for lot in lots]
    position, single = 0, []
    for amount in amounts:
        touched = []
        while amount > 0:
            taken = min(amount, left[position])
            left[position] -= taken
            amount -= taken
            touched.append(lots[position].id)
            if left[position] == 0:
                position += 1
        single.append(touched[0] if len(touched) == 1 else None)
    return single


_TAKE_FROM_LOT = (
    update(CreditLot)
    .where(CreditLot.id == bindparam("lot_id"))
    .values(remaining=CreditLot.remaining - bindparam("take", type_=BigInteger))
)
_MOVE_BALANCE = (
    update(Customer)
    .where(Customer.id == bindparam("move_customer_id"))
    .values(balance=bindparam("move_balance"), updated_at=bindparam("move_now"))
)
_INSERT_ENTRIES = insert(LedgerEntry).returning(LedgerEntry.id, sort_by_parameter_order=True)


def _json_object(**fields: ColumnElement[Any]) -> ColumnElement[Any]:
    """`json_build_object` of named SQL expressions."""
    return func.json_build_object(*(part for name, value in fields.items() for part in (literal(name, Text), value)))


# --- Checking input -------------------------------------------------------------------------


def _check_amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
        raise InvalidRequest("amount", f"The amount is a whole number of credits from 1 to {MAX_AMOUNT:,}.")
    return amount


def _check_reason(reason: str, *, required: bool = False) -> str:
    if not isinstance(reason, str):
        raise InvalidRequest("reason", "The reason is text.")
    reason = reason.strip()
    if required and not reason:
        raise InvalidRequest("reason", "Say why the credits change.")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest("reason", f"The reason has at most {MAX_REASON_LENGTH} characters.")
    return reason


def _check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
        raise InvalidRequest("expires_at", "The expiry is a date and time with a time zone.")
    if expires_at <= now:
        raise InvalidRequest("expires_at", "The expiry must be in the future.")
    return expires_at.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
