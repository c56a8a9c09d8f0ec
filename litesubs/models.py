"""SQLModel tables: the data model of DESIGN.md, with the invariants enforced by the database too.

Times are timezone-aware UTC datetimes (SQLModel's UTCDateTime: `timestamptz` on PostgreSQL,
UTC without offset on SQLite); `utcnow()` makes them.
Money is an integer amount of minor units with its ISO currency.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# `hold.lots`: JSON, stored as jsonb on PostgreSQL (the hot paths read it with jsonb_to_recordset).
HOLD_LOTS_TYPE = JSON().with_variant(JSONB(), "postgresql")
# Free room left on each page of `customer` for a new version of a customer whose balance changed (a HOT update).
CUSTOMER_FILLFACTOR = 90
# Free room left on each page of `hold` for the new version of a hold when it ends (a HOT update).
HOLD_FILLFACTOR = 80


def utcnow() -> datetime:
    """Now, as the aware UTC datetime every table stores."""
    return datetime.now(UTC)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Column:
    return Column(Integer, ForeignKey(target, ondelete="RESTRICT"), nullable=nullable, index=index)


class User(SQLModel, table=True):
    """A person with an account; any user can be a creator and a buyer."""

    __tablename__ = "user"
    __table_args__ = (CheckConstraint("email = lower(email)", name="ck_user_email_normalised"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=120)
    password_hash: str = Field(max_length=80)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Set when the owner opened a verification link sent to `email`; a changed email starts unverified.
    email_verified_at: datetime | None = None
    # Mail the user chose: as a creator, a mail per sale (on by default) and a mail to buyers whose balance
    # falls below the low-balance threshold (off by default).
    sale_mail: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    low_balance_mail: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class AccountToken(SQLModel, table=True):
    """A single-use link sent by mail: a password reset, or the verification of an email address.

    The mail holds the random token, the database only its SHA-256. `email` is the address the mail
    went to (for a verification, the address being verified); `password_fingerprint` ties a reset to
    the password it replaces, so a changed password voids it.
    """

    __tablename__ = "account_token"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset', 'email_verification')", name="ck_account_token_purpose"),
        Index("ix_account_token_user_purpose", "user_id", "purpose", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=_fk("user.id", index=False))
    purpose: str = Field(max_length=32)
    token_hash: str = Field(max_length=64, unique=True)
    email: str = Field(max_length=320)
    password_fingerprint: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    superseded_at: datetime | None = None


class UserSession(SQLModel, table=True):
    """A sign-in: the browser holds the random token, the database only its SHA-256."""

    __tablename__ = "user_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=_fk("user.id"))
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    idle_expires_at: datetime
    absolute_expires_at: datetime
    revoked_at: datetime | None = None


class LoginAttempt(SQLModel, table=True):
    """One failed or throttled sign-in attempt, keyed by email or client, for rate limiting."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_time", "key", "attempted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400)
    attempted_at: datetime = Field(default_factory=utcnow)


class Pack(SQLModel, table=True):
    """A credit pack a creator sells through a shared link."""

    __tablename__ = "pack"
    __table_args__ = (
        CheckConstraint("price_amount > 0", name="ck_pack_price_positive"),
        CheckConstraint("credits > 0", name="ck_pack_credits_positive"),
        CheckConstraint("length(currency) = 3 AND currency = upper(currency)", name="ck_pack_currency_iso"),
    )

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=32, unique=True)
    creator_id: int = Field(sa_column=_fk("user.id"))
    name: str = Field(max_length=80)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    price_amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    credits: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime | None = None
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Customer(SQLModel, table=True):
    """The relationship between a creator and a buyer, with the cached credit balance."""

    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("creator_id", "buyer_id", name="uq_customer_creator_buyer"),
        CheckConstraint("balance >= 0", name="ck_customer_balance_non_negative"),
        CheckConstraint("held >= 0", name="ck_customer_held_non_negative"),
        CheckConstraint("status IN ('active', 'suspended')", name="ck_customer_status"),
        # The customer table's sorts: (creator, column, id) walked forwards or backwards, one page at a time.
        # Dates sort NULLS FIRST so that a backward walk lists the newest first and never-bought last.
        # No index names `balance`: every debit changes it, and on PostgreSQL an update that changes no indexed
        # column is HOT (no new index entries). The sort by balance sorts the creator's rows instead.
        Index("ix_customer_creator_credits_purchased", "creator_id", "credits_purchased", "id"),
        Index(
            "ix_customer_creator_last_purchase",
            "creator_id",
            "last_purchase_at",
            "id",
            postgresql_ops={"last_purchase_at": "NULLS FIRST"},
        ),
        Index(
            "ix_customer_creator_first_purchase",
            "creator_id",
            "first_purchase_at",
            "id",
            postgresql_ops={"first_purchase_at": "NULLS FIRST"},
        ),
        {"postgresql_with": {"fillfactor": CUSTOMER_FILLFACTOR}},
    )

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id", index=False))
    buyer_id: int = Field(sa_column=_fk("user.id"))
    status: str = Field(default="active", max_length=16)
    balance: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Credits in active holds: taken out of the lots and the balance until captured, released or expired.
    held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Purchase totals kept by fulfilment, so the customer table sorts and pages without aggregating.
    credits_purchased: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Never later than the soonest expiry among lots still holding credits and active holds (None: nothing
    # expires), so a charge can skip looking for due lots and holds when this is still in the future.
    next_expiry_at: datetime | None = None
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Purchase(SQLModel, table=True):
    """One Checkout Session (Stripe or test mode) for one pack by one buyer."""

    __tablename__ = "purchase"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="ck_purchase_amount_non_negative"),
        CheckConstraint("credits > 0", name="ck_purchase_credits_positive"),
        CheckConstraint("status IN ('pending', 'paid', 'failed', 'refunded', 'mismatch')", name="ck_purchase_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id"))
    buyer_id: int = Field(sa_column=_fk("user.id"))
    # Set when the checkout settles: a buyer who only opens a checkout is not a customer yet.
    customer_id: int | None = Field(default=None, sa_column=_fk("customer.id", nullable=True))
    pack_id: int = Field(sa_column=_fk("pack.id"))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    credits: int = Field(sa_column=Column(BigInteger, nullable=False))
    stripe_session_id: str = Field(max_length=255, unique=True)
    stripe_payment_intent_id: str | None = Field(default=None, max_length=255, index=True)
    # The connected account the session was created on (platform mode); None for the instance's own account.
    stripe_account_id: str | None = Field(default=None, max_length=255)
    # The platform's application fee on this sale, in the purchase's minor units (0 outside platform mode).
    platform_fee: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    status: str = Field(default="pending", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    paid_at: datetime | None = None
    refunded_at: datetime | None = None
    # Why Litesubs refunded a paid checkout it could not fulfil (None: not refunded by Litesubs).
    refund_reason: str | None = Field(default=None, max_length=500)


class CreditLot(SQLModel, table=True):
    """Credits granted at once (one purchase, or one grant), spent down over time."""

    __tablename__ = "credit_lot"
    __table_args__ = (
        CheckConstraint("granted > 0", name="ck_lot_granted_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= granted", name="ck_lot_remaining_in_range"),
        CheckConstraint("source IN ('purchase', 'grant')", name="ck_lot_source"),
        CheckConstraint("(source = 'purchase') = (purchase_id IS NOT NULL)", name="ck_lot_purchase_source"),
        CheckConstraint("taken_back IN ('refund', 'dispute')", name="ck_lot_taken_back"),
        Index(
            "ix_credit_lot_open",
            "customer_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(sa_column=_fk("customer.id"))
    source: str = Field(max_length=16)
    purchase_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("purchase.id"), nullable=True, unique=True)
    )
    granted: int = Field(sa_column=Column(BigInteger, nullable=False))
    remaining: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Why the lot's credits were taken back (`refund`, or `dispute` until one is won); None while they are the
    # customer's. Credits a hold gives back to such a lot are taken back at once (`ledger.take_back_returned`).
    taken_back: str | None = Field(default=None, max_length=16)


LEDGER_KINDS = (
    "purchase",
    "adjustment",
    "debit",
    "credit",
    "refund",
    "expiry",
    "hold",
    "capture",
    "release",
    "dispute",
)


class LedgerEntry(SQLModel, table=True):
    """One change of a customer's credits. Append-only: never updated, never deleted."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        # A capture that spends its whole hold returns nothing to the balance: its entry's delta is 0.
        CheckConstraint("delta <> 0 OR kind = 'capture'", name="ck_ledger_delta_non_zero"),
        CheckConstraint("balance_after >= 0", name="ck_ledger_balance_after_non_negative"),
        CheckConstraint(f"kind IN ({', '.join(repr(kind) for kind in LEDGER_KINDS)})", name="ck_ledger_kind"),
        CheckConstraint("actor_type IN ('creator', 'api_key', 'stripe', 'system', 'buyer')", name="ck_ledger_actor"),
        Index("ix_ledger_customer_id", "customer_id", "id"),
        Index("ix_ledger_creator_time", "creator_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id", index=False))
    customer_id: int = Field(sa_column=_fk("customer.id", index=False))
    lot_id: int | None = Field(default=None, sa_column=_fk("credit_lot.id", nullable=True, index=False))
    # The hold a `hold`, `capture` or `release` entry belongs to.
    hold_id: int | None = Field(default=None, sa_column=_fk("hold.id", nullable=True, index=False))
    delta: int = Field(sa_column=Column(BigInteger, nullable=False))
    balance_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=16)
    reason: str = Field(default="", max_length=500)
    actor_type: str = Field(max_length=16)
    actor_id: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class Hold(SQLModel, table=True):
    """Credits reserved for a customer by the creator's software until captured (spent), released or expired.

    Placing it takes `amount` from the lots in spending order (`lots` remembers which), so held credits can be
    neither spent nor expire; ending it spends `captured` and gives the rest back.

    No index names a column that ending a hold changes (`status`, `captured`, `ended_at`), so on PostgreSQL the
    ending is a HOT update (the table leaves room on each page for it). Active holds are found through their
    customer: `customer.held` says whether there are any, `customer.next_expiry_at` whether one may be due.
    """

    __tablename__ = "hold"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_hold_amount_positive"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="ck_hold_captured_in_range"),
        CheckConstraint("status IN ('active', 'captured', 'released', 'expired')", name="ck_hold_status"),
        CheckConstraint("(status = 'active') = (ended_at IS NULL)", name="ck_hold_ended"),
        Index("ix_hold_customer", "customer_id", "id"),
        {"postgresql_with": {"fillfactor": HOLD_FILLFACTOR}},
    )

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id", index=False))
    customer_id: int = Field(sa_column=_fk("customer.id", index=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    captured: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    status: str = Field(default="active", max_length=16)
    reason: str = Field(default="", max_length=500)
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    # How many credits came from which lot, `[{"lot_id": 3, "amount": 7}, ...]`: where they go back to when the
    # hold ends. In the hold's own row, so placing a hold writes one row, not one more per lot.
    lots: list[dict[str, int]] = Field(
        default_factory=list, sa_column=Column(HOLD_LOTS_TYPE, nullable=False, server_default="[]")
    )


class ApiKey(SQLModel, table=True):
    """A creator's API key; only its SHA-256 and a short visible prefix are stored."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id"))
    name: str = Field(max_length=80)
    prefix: str = Field(max_length=16)
    secret_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ConnectedAccount(SQLModel, table=True):
    """A creator's own Stripe account in platform mode (Stripe Connect, Express), as Stripe last described it.

    One per creator, created once: the creator's sales are direct charges on it. The flags and what
    Stripe still asks for follow `account.updated` events and re-reads when the creator returns from onboarding.
    """

    __tablename__ = "connected_account"

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="RESTRICT"), nullable=False, unique=True)
    )
    stripe_account_id: str = Field(max_length=255, unique=True)
    charges_enabled: bool = False
    payouts_enabled: bool = False
    details_submitted: bool = False
    # What Stripe still needs (its `requirements.currently_due` and `past_due`), as a JSON list of field names.
    requirements: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    disabled_reason: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StripeEvent(SQLModel, table=True):
    """A Stripe event already processed: inserting its id twice fails, so redelivery is a no-op."""

    __tablename__ = "stripe_event"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class IdempotencyRecord(SQLModel, table=True):
    """The stored outcome (JSON) of an operation that carried an idempotency key (kept >= 24 hours).

    Successes and business refusals are stored and replayed; malformed requests never get here.
    """

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("creator_id", "key", name="uq_idempotency_creator_key"),)

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id", index=False))
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class WebhookEndpoint(SQLModel, table=True):
    """A URL of the creator's own software that receives signed events (Standard Webhooks)."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id"))
    url: str = Field(max_length=2000)
    # The event types it receives, comma-separated with a comma at each end (",purchase.completed,credits.low,"),
    # so one LIKE in SQL tells whether it wants a type.
    event_types: str = Field(max_length=1000)
    secret: str = Field(max_length=120)
    # After a rotation the old secret signs too, until it expires.
    previous_secret: str | None = Field(default=None, max_length=120)
    previous_secret_expires_at: datetime | None = None
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=300)
    # Failing streak: since when deliveries fail, and how many deliveries in a row failed for good.
    failing_since: datetime | None = None
    failed_deliveries: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookSettings(SQLModel, table=True):
    """A creator's webhook settings that are not per endpoint."""

    __tablename__ = "webhook_settings"

    creator_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="RESTRICT"), primary_key=True))
    # `credits.low` is sent when a customer's balance falls below this; None: never.
    credits_low_threshold: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """Something that happened to a creator's data, written in the same transaction as the change itself.

    Its public id (`evt_<id>`, the `webhook-id` of its deliveries) is made from `id`, so the busiest
    writer of events, the debit, maintains no index of random strings. Until the worker has turned it
    into deliveries (one per subscribed endpoint), `dispatched` is false.
    """

    __tablename__ = "webhook_event"
    __table_args__ = (
        Index("ix_webhook_event_creator", "creator_id", "id"),
        # For listing one type; debits, the many, are listed by the index above and skip this one.
        Index(
            "ix_webhook_event_creator_type",
            "creator_id",
            "type",
            "id",
            postgresql_where=text("type <> 'credits.debited'"),
            sqlite_where=text("type <> 'credits.debited'"),
        ),
        Index(
            "ix_webhook_event_undispatched",
            "id",
            postgresql_where=text("NOT dispatched"),
            sqlite_where=text("NOT dispatched"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    creator_id: int = Field(sa_column=_fk("user.id", index=False))
    type: str = Field(max_length=40)
    data: str = Field(sa_column=Column(Text, nullable=False))
    # The ledger entry a `credits.*` event tells of (its `transaction_id`); no foreign key, to keep the debit lean.
    ledger_entry_id: int | None = None
    dispatched: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def public_id(self) -> str:
        return f"evt_{self.id}"


class OutboxMessage(SQLModel, table=True):
    """Something to send outward (a webhook delivery; later an email), delivered by the worker at least once.

    Written in the transaction of the change it reports; `pending` until delivered, retried on
    `next_attempt_at`. A worker holding it sets `leased_until`, after which another may take it over.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed', 'cancelled')", name="ck_outbox_status"),
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_outbox_endpoint", "webhook_endpoint_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    webhook_event_id: int | None = Field(default=None, sa_column=_fk("webhook_event.id", nullable=True, index=False))
    webhook_endpoint_id: int | None = Field(
        default=None, sa_column=_fk("webhook_endpoint.id", nullable=True, index=False)
    )
    # What a kind without rows of its own needs to send (an email's JSON).
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    leased_until: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
