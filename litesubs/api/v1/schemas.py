"""What goes in and out of HTTP API v1: the OpenAPI document is generated from these models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from litesubs.models import LedgerEntry
from litesubs.services.cursors import CURSOR_PATTERN
from litesubs.services.customer_accounts import CustomerAccount, CustomerPage
from litesubs.services.holds import DEFAULT_EXPIRES_IN, ID_PREFIX, MAX_EXPIRES_IN, HoldEnding, HoldSummary
from litesubs.services.ledger import MAX_AMOUNT, MAX_REASON_LENGTH, LedgerResult
from litesubs.services.packs import PackSummary, pack_link
from litesubs.services.webhooks import ALL_EVENT_TYPES, EventPage

NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store a NUL character in text


def _unicode(text: str) -> str:
    """Text the databases can store: JSON may escape lone surrogates, which are not Unicode text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return text


def _whole_number(value: object) -> object:
    """JSON has one number type: 5.0 is the whole number 5 (JSON Schema agrees); 5.5, "5" and true are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Amount = Annotated[
    int,
    Field(strict=True, ge=1, le=MAX_AMOUNT, description="Whole credits, from 1 to 1,000,000,000.", examples=[10]),
    BeforeValidator(_whole_number),
]
Reason = Annotated[
    str,
    Field(
        max_length=MAX_REASON_LENGTH,
        pattern=NO_NUL,
        description="Why, in words; shown in the creator's ledger. No NUL characters.",
    ),
    AfterValidator(_unicode),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DebitRequest(_Request):
    amount: Amount
    reason: Reason = ""


class CreditRequest(_Request):
    amount: Amount
    reason: Reason = ""
    expires_at: Annotated[
        AwareDatetime | None,
        Field(description="When these credits expire (ISO 8601 with a time zone, in the future); never if absent."),
        AfterValidator(lambda moment: None if moment is None else _in_utc(moment)),
    ] = None


class HoldRequest(_Request):
    amount: Amount
    reason: Reason = ""
    expires_in: Annotated[
        int,
        Field(
            strict=True,
            ge=1,
            le=MAX_EXPIRES_IN,
            description="Seconds until the hold is released on its own if not captured or released, "
            "1 to 86,400 (a day).",
            examples=[900],
        ),
        BeforeValidator(_whole_number),
    ] = DEFAULT_EXPIRES_IN


class CaptureRequest(_Request):
    amount: Annotated[
        int | None,
        Field(
            strict=True,
            ge=1,
            le=MAX_AMOUNT,
            description="Credits to spend, at most the hold's amount; the rest goes back. Default: the whole hold.",
            examples=[7],
        ),
        BeforeValidator(_whole_number),
    ] = None
    reason: Annotated[Reason | None, Field(description="Why, in words; default: the hold's reason.")] = None


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable: unauthorized, customer_suspended, not_found, insufficient_credits, hold_closed, "
        "hold_exceeded, idempotency_conflict, invalid_request, rate_limited, method_not_allowed, internal_error."
    )
    message: str = Field(description="For people: what went wrong and what to do.")
    field: str | None = Field(default=None, description="With invalid_request: the offending field.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class _FromAttributes(BaseModel):
    """Built from a service's dataclass of the same field names: `Model.model_validate(summary)`."""

    model_config = ConfigDict(from_attributes=True)


class CustomerPublic(_FromAttributes):
    id: int
    email: str
    email_verified: bool = Field(
        description="Whether the buyer proved they own `email` by opening a link mailed to it: trust an "
        "email reference only when true."
    )
    name: str
    status: Literal["active", "suspended"]
    balance: int = Field(description="Credits the customer can spend now.")
    created_at: datetime


class LotPublic(_FromAttributes):
    """Credits granted at once; spent soonest-expiring first, never-expiring last."""

    id: int
    source: Literal["purchase", "grant"]
    granted: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime


class CustomerDetail(CustomerPublic):
    held: int = Field(description="Credits in active holds: out of `balance` until captured or released.")
    lots: list[LotPublic] = Field(description="Unexpired lots holding credits, in the order they will be spent.")

    @classmethod
    def of(cls, account: CustomerAccount) -> CustomerDetail:
        public = CustomerPublic.model_validate(account.customer)
        lots = [LotPublic.model_validate(lot) for lot in account.balance.lots]
        return cls(**public.model_dump(), held=account.balance.held, lots=lots)


class CustomerList(BaseModel):
    data: list[CustomerPublic] = Field(description="Newest customers first.")
    next_cursor: str | None = Field(
        pattern=CURSOR_PATTERN, description="Pass as `cursor` for the next page; null on the last page."
    )

    @classmethod
    def of(cls, page: CustomerPage) -> CustomerList:
        customers = [CustomerPublic.model_validate(customer) for customer in page.customers]
        return cls(data=customers, next_cursor=page.next_cursor)


TransactionKind = Literal[
    "purchase", "adjustment", "debit", "credit", "refund", "expiry", "hold", "capture", "release", "dispute"
]
ActorType = Literal["creator", "api_key", "stripe", "system", "buyer"]


class TransactionPublic(BaseModel):
    """One change of a customer's credits."""

    id: int
    customer_id: int
    kind: TransactionKind
    delta: int = Field(
        description="Credits added (positive) or taken (negative). A hold takes its amount; its capture gives "
        "back what it did not spend (0 if all), its release all of it."
    )
    balance_after: int
    reason: str
    actor: ActorType = Field(description="Who made the change.")
    hold_id: str | None = Field(description="With hold, capture and release: the hold (`hold_...`).")
    created_at: datetime

    @classmethod
    def of_entry(cls, entry: LedgerEntry) -> TransactionPublic:
        return cls(
            id=entry.id,
            customer_id=entry.customer_id,
            kind=entry.kind,
            delta=entry.delta,
            balance_after=entry.balance_after,
            reason=entry.reason,
            actor=entry.actor_type,
            hold_id=_hold_id(entry.hold_id),
            created_at=entry.created_at,
        )

    @classmethod
    def of_result(cls, result: LedgerResult, *, reason: str, **extra: Any) -> Self:
        """The change an API call just made (or replayed), which the API key made (`extra`: a subclass's fields)."""
        return cls(
            id=result.entry_id,
            customer_id=result.customer_id,
            kind=result.kind,
            delta=result.delta,
            balance_after=result.balance_after,
            reason=reason.strip(),
            actor="api_key",
            hold_id=_hold_id(result.hold_id),
            created_at=result.created_at,
            **extra,
        )


class TransactionList(BaseModel):
    data: list[TransactionPublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        pattern=CURSOR_PATTERN, description="Pass as `cursor` for the next page; null on the last page."
    )


def _hold_id(hold_id: int | None) -> str | None:
    return None if hold_id is None else f"{ID_PREFIX}{hold_id}"


class HoldPublic(BaseModel):
    """Credits reserved for work in progress: out of the balance until captured, released or expired."""

    id: str = Field(description="`hold_...`", examples=["hold_42"])
    customer_id: int
    amount: int = Field(description="Credits held.")
    captured: int = Field(description="Credits spent when the hold was captured; 0 otherwise.")
    status: Literal["active", "captured", "released", "expired"] = Field(
        description="`active` until captured, released, or `expired` (released on its own at `expires_at`)."
    )
    reason: str
    expires_at: datetime
    created_at: datetime
    ended_at: datetime | None = Field(description="When it was captured, released or expired.")

    @classmethod
    def of(cls, summary: HoldSummary) -> HoldPublic:
        fields = ("customer_id", "amount", "captured", "status", "reason", "expires_at", "created_at", "ended_at")
        return cls(id=summary.public_id, **{name: getattr(summary, name) for name in fields})


class HoldList(BaseModel):
    data: list[HoldPublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        pattern=CURSOR_PATTERN, description="Pass as `cursor` for the next page; null on the last page."
    )


class HoldTransaction(TransactionPublic):
    """The ledger entry that ended a hold (`capture` or `release`), with the hold as it is now."""

    hold: HoldPublic

    @classmethod
    def of_ending(cls, ending: HoldEnding) -> HoldTransaction:
        return cls.of_result(ending.transaction, reason=ending.reason, hold=HoldPublic.of(ending.hold))


class PackPublic(BaseModel):
    id: str = Field(description="The pack's public id, as in its link.")
    name: str
    description: str
    price_amount: int = Field(description="In minor units of `currency` (cents for USD).")
    currency: str
    credits: int
    expires_at: datetime | None
    status: Literal["active", "disabled", "expired"]
    url: str = Field(description="The link buyers open to buy the pack.")

    @classmethod
    def of(cls, summary: PackSummary) -> PackPublic:
        pack = summary.pack
        return cls(
            id=pack.public_id,
            name=pack.name,
            description=pack.description,
            price_amount=pack.price_amount,
            currency=pack.currency,
            credits=pack.credits,
            expires_at=pack.expires_at,
            status=summary.status,
            url=pack_link(pack.public_id),
        )


class PackList(BaseModel):
    data: list[PackPublic] = Field(description="Newest first.")


EventType = Literal[ALL_EVENT_TYPES]  # every name in webhooks.ALL_EVENT_TYPES


class EventPublic(BaseModel):
    """Something that happened, exactly as webhook endpoints receive it (the body of a delivery)."""

    id: str = Field(description="`evt_...`; also the `webhook-id` header of its deliveries.", examples=["evt_1042"])
    type: EventType
    created_at: datetime
    data: dict[str, Any] = Field(description="The ids and numbers of what happened; see the webhooks guide.")


class EventList(BaseModel):
    data: list[EventPublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")

    @classmethod
    def of(cls, page: EventPage) -> EventList:
        return cls(data=[EventPublic.model_validate(event) for event in page.events], next_cursor=page.next_cursor)
