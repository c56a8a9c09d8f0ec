"""What the ledger speaks in: who changes credits (`Actor`), why (`Cause`), what a change returns
(`LedgerResult`), what a read returns (`CustomerBalance`, `LedgerPage`), and the checks of its input.

Start here to learn the words; the operations that use them are in `operations` and `reads`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from litesubs.models import LedgerEntry
from litesubs.services.errors import InvalidRequest

MAX_AMOUNT = 1_000_000_000


MAX_REASON_LENGTH = 500


MAX_PAGE_SIZE = 100


ACTOR_TYPES = ("creator", "api_key", "stripe", "system", "buyer")


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
class Cause:
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


def check_amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
        raise InvalidRequest("amount", f"The amount is a whole number of credits from 1 to {MAX_AMOUNT:,}.")
    return amount


def check_reason(reason: str, *, required: bool = False) -> str:
    if not isinstance(reason, str):
        raise InvalidRequest("reason", "The reason is text.")
    reason = reason.strip()
    if required and not reason:
        raise InvalidRequest("reason", "Say why the credits change.")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest("reason", f"The reason has at most {MAX_REASON_LENGTH} characters.")
    return reason


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
        raise InvalidRequest("expires_at", "The expiry is a date and time with a time zone.")
    if expires_at <= now:
        raise InvalidRequest("expires_at", "The expiry must be in the future.")
    return expires_at.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
