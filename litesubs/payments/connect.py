"""Platform mode (Stripe Connect): each creator is paid on a Stripe account of their own.

A creator connects once: we create an Express connected account for them and send them through
Stripe's hosted onboarding (an Account Link whose return and refresh URLs come back to "Get paid").
What we know of the account (can it take charges, can it be paid out, what Stripe still asks for)
follows `account.updated` events and is re-read from Stripe when the creator comes back from
onboarding, so the page is right even when a webhook is late.

A creator's sales are direct charges on their account, so every Stripe event about a sale comes from
that account (Connect events carry `account`). `event_is_from_its_account` is the gate at the entry
of event handling: an event is acted on only when it comes from the account the purchase was charged
on. One creator's account can never fulfil, refund or dispute another creator's purchase.

In single-business and test mode nothing here applies: sales go to the instance's own account.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from litesubs import routes
from litesubs.db import read_session, write_session
from litesubs.models import ConnectedAccount, Pack, Purchase, User, utcnow
from litesubs.payments import stripe_gateway
from litesubs.services.errors import ConnectUnavailable, NotFound
from litesubs.settings import get_settings

logger = logging.getLogger(__name__)

NOT_CONNECTED, DETAILS_NEEDED, READY, PAYOUTS_PAUSED = "not_connected", "details_needed", "ready", "payouts_paused"
NOT_A_PLATFORM = "Get paid is only used when this instance runs as a platform (STRIPE_CONNECT=1)."
CANNOT_SELL_YET = "This pack can't be bought yet: its creator is still setting up payments. Check back soon."

# What Stripe's requirement names ask for, in plain words; matched on the name's start, first match wins.
REQUIREMENT_WORDS: list[tuple[str, str]] = [
    ("external_account", "A bank account for payouts"),
    ("tos_acceptance", "Accepting Stripe's terms of service"),
    ("business_type", "Your business type"),
    ("business_profile.url", "Your website"),
    ("business_profile.mcc", "Your industry"),
    ("business_profile.product_description", "A description of what you sell"),
    ("business_profile", "Details about your business"),
    ("individual.verification", "An identity document"),
    ("individual.id_number", "Your ID number"),
    ("individual.ssn_last_4", "The last 4 digits of your SSN"),
    ("individual.dob", "Your date of birth"),
    ("individual.address", "Your address"),
    ("individual.first_name", "Your name"),
    ("individual.last_name", "Your name"),
    ("individual.email", "Your email address"),
    ("individual.phone", "Your phone number"),
    ("individual", "Details about you"),
    ("company.verification", "A document about your company"),
    ("company", "Details about your company"),
    ("representative", "Details about your company's representative"),
    ("owners", "Details about your company's owners"),
    ("directors", "Details about your company's directors"),
    ("settings.payments.statement_descriptor", "The name buyers see on their statements"),
]


@dataclass(frozen=True)
class PayoutSetup:
    """Where a creator stands with getting paid, as the Get paid page shows it.

    `state`: not_connected, details_needed (Stripe needs more before the account can take
    charges; `still_needed` says what), ready, or payouts_paused (sales work, Stripe holds payouts).
    """

    state: str
    stripe_account_id: str | None = None
    still_needed: tuple[str, ...] = ()
    details_submitted: bool = False

    @property
    def can_sell(self) -> bool:
        return self.state in (READY, PAYOUTS_PAUSED)


@dataclass(frozen=True)
class AccountUpdate:
    """What an `account.updated` event did: `updated`, or `not_ours` (no creator has this account)."""

    outcome: str


# --- Fees -----------------------------------------------------------------------------------


def platform_fee(amount: int, percent: Decimal | None = None) -> int:
    """The platform's share of a sale of `amount` minor units, rounded half up to a whole minor unit."""
    percent = get_settings().platform_fee_percent if percent is None else percent
    return int((Decimal(amount) * percent / 100).to_integral_value(ROUND_HALF_UP))


# --- Reading a creator's set-up -------------------------------------------------------------


def payout_setup(*, creator_id: int, engine: Engine | None = None) -> PayoutSetup:
    """The creator's set-up as we last heard it from Stripe."""
    _require_platform()
    with read_session(engine) as session:
        return _setup_of(_account_of(session, creator_id))


def setup_for_page(
    *, creator_id: int, back_from_stripe: bool = False, engine: Engine | None = None
) -> tuple[PayoutSetup, str]:
    """The set-up the Get paid page shows, and an error message ("" when none).

    Re-read from Stripe when the creator comes back from onboarding or is not ready yet (a webhook
    may be late); when Stripe does not answer, the last known set-up with Stripe's reason.
    """
    setup = payout_setup(creator_id=creator_id, engine=engine)
    if setup.state == NOT_CONNECTED or (setup.state == READY and not back_from_stripe):
        return setup, ""
    try:
        return refresh_from_stripe(creator_id=creator_id, engine=engine), ""
    except ConnectUnavailable as error:
        return setup, error.message


def fee_note() -> str:
    """What the platform keeps of each sale, in words for the creator ("" when nothing)."""
    percent = get_settings().platform_fee_percent
    return f"The platform keeps {percent.normalize():f}% of each sale; the rest is yours." if percent else ""


def sales_pause_reason(*, creator_id: int, engine: Engine | None = None) -> str | None:
    """Why the creator's packs cannot be bought now (platform mode, account not ready); None when they can."""
    if not get_settings().platform_mode:
        return None
    setup = payout_setup(creator_id=creator_id, engine=engine)
    if setup.can_sell:
        return None
    if setup.state == NOT_CONNECTED:
        return "Sales are paused until you connect a Stripe account to get paid. You can still create and share packs."
    return "Sales are paused until Stripe has the details it needs to pay you. You can still create and share packs."


def creator_can_sell(*, creator_id: int, engine: Engine | None = None) -> bool:
    """Whether buyers can pay this creator now: always outside platform mode, else once their account takes charges."""
    if not get_settings().platform_mode:
        return True
    with read_session(engine) as session:
        return _setup_of(_account_of(session, creator_id)).can_sell


def charge_account_of(session: Session, creator_id: int) -> str | None:
    """The Stripe account a sale of this creator is charged on: theirs in platform mode, None (ours) otherwise."""
    if not get_settings().platform_mode:
        return None
    account = _account_of(session, creator_id)
    return account.stripe_account_id if account else None


# --- Connecting and onboarding --------------------------------------------------------------


def start_onboarding(*, creator_id: int, engine: Engine | None = None) -> str:
    """The URL of Stripe's hosted onboarding for the creator, creating their Express account on first use.

    Raises `ConnectUnavailable` (Stripe refused or did not answer; nothing is recorded, the creator
    can retry) or `NotFound` outside platform mode.
    """
    _require_platform()
    account_id = _connected_account_id(creator_id, engine)
    page = f"{get_settings().base_url}{routes.PAYOUTS}"
    return stripe_gateway.create_onboarding_link(
        stripe_account=account_id, refresh_url=f"{page}?onboarding=refresh", return_url=f"{page}?onboarding=return"
    )


def refresh_from_stripe(*, creator_id: int, engine: Engine | None = None, now: datetime | None = None) -> PayoutSetup:
    """Re-read the creator's account from Stripe and keep what it says (after onboarding, or when a webhook is late)."""
    _require_platform()
    with read_session(engine) as session:
        account = _account_of(session, creator_id)
    if account is None:
        return PayoutSetup(NOT_CONNECTED)
    described = stripe_gateway.retrieve_account(account.stripe_account_id)
    with write_session(engine) as session:
        account = _apply(session, described, now=now or utcnow())
        return _setup_of(account)


def dashboard_link(*, creator_id: int, engine: Engine | None = None) -> str:
    """A sign-in URL for the creator's Stripe Express dashboard; `NotFound` before they finished onboarding."""
    setup = payout_setup(creator_id=creator_id, engine=engine)
    if setup.stripe_account_id is None or not setup.details_submitted:
        raise NotFound("Finish connecting with Stripe first; your Stripe dashboard opens once Stripe has your details.")
    return stripe_gateway.create_dashboard_link(setup.stripe_account_id)


def _connected_account_id(creator_id: int, engine: Engine | None) -> str:
    """The creator's connected account, created at Stripe and recorded now if they have none yet.

    Two simultaneous first clicks may both create an account at Stripe; the unique creator column
    keeps the first recorded one and the other stays unused.
    """
    with read_session(engine) as session:
        account = _account_of(session, creator_id)
        creator = session.get(User, creator_id)
    if account is not None:
        return account.stripe_account_id
    if creator is None:
        raise NotFound("No such creator.")
    created = stripe_gateway.create_express_account(email=creator.email, creator_id=creator_id)
    try:
        with write_session(engine) as session:
            session.add(ConnectedAccount(creator_id=creator_id, stripe_account_id=created["id"]))
            _apply(session, created, now=utcnow())
    except IntegrityError:
        logger.warning("Creator %s connected twice at once; Stripe account %s left unused", creator_id, created["id"])
        with read_session(engine) as session:
            return _account_of(session, creator_id).stripe_account_id
    return created["id"]


# --- Webhook events -------------------------------------------------------------------------


def account_updated_in_session(
    session: Session, described: Mapping[str, Any], *, now: datetime, account: str | None = None
) -> AccountUpdate:
    """`account.updated`: keep what Stripe now says about a creator's connected account."""
    if _apply(session, described, now=now) is None:
        return AccountUpdate("not_ours")
    return AccountUpdate("updated")


def event_is_from_its_account(session: Session, event: Mapping[str, Any]) -> bool:
    """Whether a verified event may act: it comes from the account its object belongs to.

    Connect events carry `account` (the connected account they happened on); the platform's own
    events carry none. An account event must describe the account it came from. An event about a
    sale must come from the account the purchase was charged on (its creator's in platform mode,
    the instance's own otherwise); for a session whose purchase we never recorded, from the
    account its pack's creator sells on. Events about nothing of ours pass: the handler ignores them.
    """
    source = event.get("account")
    thing = event["data"]["object"]
    if thing.get("object") == "account":
        return source is not None and thing.get("id") == source
    purchase = _purchase_of(session, thing)
    creator_id = None if purchase is not None else _creator_named_by(session, thing)
    if purchase is None and creator_id is None:
        return True
    return sale_is_on_account(session, purchase=purchase, creator_id=creator_id, account=source)


def sale_is_on_account(
    session: Session, *, purchase: Purchase | None, creator_id: int | None, account: str | None
) -> bool:
    """Whether a sale belongs to the Stripe account `account` (None: the instance's own): the purchase's if we
    recorded it, else the account the creator sells on. Handlers that find a purchase some other way than the
    gate (`event_is_from_its_account`) ask this once they have it."""
    if purchase is not None:
        return purchase.stripe_account_id == account
    return creator_id is not None and charge_account_of(session, creator_id) == account


def _purchase_of(session: Session, thing: Mapping[str, Any]) -> Purchase | None:
    """The purchase a Checkout Session, charge, refund or dispute is about, if any."""
    if thing.get("object") == "checkout.session":
        statement = select(Purchase).where(Purchase.stripe_session_id == thing.get("id"))
        return session.exec(statement).first()
    payment_intent = thing.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    if not payment_intent:
        return None
    return session.exec(select(Purchase).where(Purchase.stripe_payment_intent_id == payment_intent)).first()


def _creator_named_by(session: Session, thing: Mapping[str, Any]) -> int | None:
    """The creator whose pack a Checkout Session's metadata names (we wrote it when creating the session)."""
    public_id = (thing.get("metadata") or {}).get("pack_public_id")
    if thing.get("object") != "checkout.session" or not public_id:
        return None
    return session.exec(select(Pack.creator_id).where(Pack.public_id == public_id)).first()


# --- Records --------------------------------------------------------------------------------


def _require_platform() -> None:
    if not get_settings().platform_mode:
        raise NotFound(NOT_A_PLATFORM)


def _account_of(session: Session, creator_id: int) -> ConnectedAccount | None:
    statement = select(ConnectedAccount).where(ConnectedAccount.creator_id == creator_id)
    return session.exec(statement.execution_options(populate_existing=True)).first()


def _apply(session: Session, described: Mapping[str, Any], *, now: datetime) -> ConnectedAccount | None:
    """Copy Stripe's description of an account onto our record of it; None when no creator has that account."""
    statement = select(ConnectedAccount).where(ConnectedAccount.stripe_account_id == described.get("id"))
    account = session.exec(statement.with_for_update()).first()
    if account is None:
        return None
    requirements = described.get("requirements") or {}
    due = list(dict.fromkeys([*(requirements.get("past_due") or []), *(requirements.get("currently_due") or [])]))
    account.charges_enabled = bool(described.get("charges_enabled"))
    account.payouts_enabled = bool(described.get("payouts_enabled"))
    account.details_submitted = bool(described.get("details_submitted"))
    account.requirements = json.dumps(due)
    account.disabled_reason = requirements.get("disabled_reason")
    account.updated_at = now
    session.add(account)
    session.flush()
    return account


def _setup_of(account: ConnectedAccount | None) -> PayoutSetup:
    if account is None:
        return PayoutSetup(NOT_CONNECTED)
    if not account.charges_enabled:
        state = DETAILS_NEEDED
    elif not account.payouts_enabled:
        state = PAYOUTS_PAUSED
    else:
        state = READY
    return PayoutSetup(
        state=state,
        stripe_account_id=account.stripe_account_id,
        still_needed=requirement_words(json.loads(account.requirements)),
        details_submitted=account.details_submitted,
    )


def requirement_words(names: list[str]) -> tuple[str, ...]:
    """Stripe's requirement names (`individual.dob.day`, ...) as plain words, each said once."""
    words = []
    for name in names:
        said = next((text for prefix, text in REQUIREMENT_WORDS if name.startswith(prefix)), None)
        words.append(said or name.rsplit(".", 1)[-1].replace("_", " ").capitalize())
    return tuple(dict.fromkeys(words))
