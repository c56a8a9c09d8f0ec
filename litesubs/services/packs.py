"""Credit packs: create, edit, enable/disable, list with sales, and the public view behind a shared link.

Price and credits are fixed once a pack has a paid sale: the shared link keeps meaning what buyers paid
for, and revenue per pack stays comparable. A new price is a new pack. An open checkout does not fix
them: its purchase row holds the terms its buyer saw, and fulfilment honours those.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from litesubs.db import read_session
from litesubs.models import Pack, Purchase, User, utcnow
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.ledger import parse_credits
from litesubs.services.money import currency, parse_price
from litesubs.settings import get_settings

NAME_MAX_LENGTH = 80
DESCRIPTION_MAX_LENGTH = 2000


@dataclass(frozen=True)
class PackFields:
    """What a creator types into the pack form, as text; `validated` turns it into typed values."""

    name: str
    price: str
    credits: str
    currency: str = "USD"
    description: str = ""
    expires_on: str = ""  # YYYY-MM-DD or empty: never expires


@dataclass(frozen=True)
class PackSummary:
    pack: Pack
    sold: int
    revenue: int
    status: str  # active | disabled | expired


@dataclass(frozen=True)
class PublicPack:
    """What anyone holding the link may see."""

    public_id: str
    name: str
    description: str
    price_amount: int
    currency: str
    credits: int
    expires_at: datetime | None
    creator_id: int
    creator_name: str
    status: str


def pack_status(pack: Pack, now: datetime | None = None) -> str:
    if pack.expires_at is not None and pack.expires_at <= (now or utcnow()):
        return "expired"
    return "active" if pack.is_active else "disabled"


def pack_link(public_id: str) -> str:
    """The absolute link a creator shares: `LITESUBS_BASE_URL/buy/<public_id>`."""
    return f"{get_settings().base_url}/buy/{public_id}"


def create_pack(
    *, creator_id: int, fields: PackFields, engine: Engine | None = None, now: datetime | None = None
) -> Pack:
    values = _validated(fields, now or utcnow())
    pack = Pack(creator_id=creator_id, public_id=secrets.token_urlsafe(12), **values)
    with read_session(engine) as session:
        session.add(pack)
        session.commit()
    return pack


def update_pack(
    *, creator_id: int, pack_id: int, fields: PackFields, engine: Engine | None = None, now: datetime | None = None
) -> Pack:
    now = now or utcnow()
    values = _validated(fields, now)
    with read_session(engine) as session:
        pack = _owned_pack(session, creator_id, pack_id)
        terms_changed = (values["price_amount"], values["currency"], values["credits"]) != (
            pack.price_amount,
            pack.currency,
            pack.credits,
        )
        if terms_changed and _sold(session, pack.id) > 0:
            raise InvalidRequest(
                "price", "This pack has sales, so its price and credits are fixed. Create a new pack instead."
            )
        for name, value in values.items():
            setattr(pack, name, value)
        pack.updated_at = now
        session.add(pack)
        session.commit()
    return pack


def set_pack_active(*, creator_id: int, pack_id: int, active: bool, engine: Engine | None = None) -> Pack:
    with read_session(engine) as session:
        pack = _owned_pack(session, creator_id, pack_id)
        pack.is_active = active
        pack.updated_at = utcnow()
        session.add(pack)
        session.commit()
    return pack


def list_packs(*, creator_id: int, engine: Engine | None = None, now: datetime | None = None) -> list[PackSummary]:
    """The creator's packs, newest first, each with paid sales and revenue (after the platform fee, if any)."""
    sales = (
        select(
            Purchase.pack_id,
            func.count().label("sold"),
            func.coalesce(func.sum(Purchase.amount - Purchase.platform_fee), 0).label("revenue"),
        )
        .where(Purchase.creator_id == creator_id, Purchase.status == "paid")
        .group_by(Purchase.pack_id)
        .subquery()
    )
    query = (
        select(Pack, func.coalesce(sales.c.sold, 0), func.coalesce(sales.c.revenue, 0))
        .outerjoin(sales, sales.c.pack_id == Pack.id)
        .where(Pack.creator_id == creator_id)
        .order_by(Pack.created_at.desc(), Pack.id.desc())
    )
    with read_session(engine) as session:
        rows = session.exec(query).all()
    return [PackSummary(pack, int(sold), int(revenue), pack_status(pack, now)) for pack, sold, revenue in rows]


def is_creator(*, user_id: int, engine: Engine | None = None) -> bool:
    """Whether the user ever created a pack: such a user gets the creator's dashboard, others the buyer's app."""
    with read_session(engine) as session:
        return session.exec(select(Pack.id).where(Pack.creator_id == user_id).limit(1)).first() is not None


def public_pack(*, public_id: str, engine: Engine | None = None, now: datetime | None = None) -> PublicPack:
    """The pack behind a shared link, whatever its state (the page says why it cannot be bought)."""
    with read_session(engine) as session:
        row = session.exec(
            select(Pack, User.name).join(User, User.id == Pack.creator_id).where(Pack.public_id == public_id)
        ).first()
    if row is None:
        raise NotFound("This pack does not exist. Check the link you were given.")
    pack, creator_name = row
    return PublicPack(
        public_id=pack.public_id,
        name=pack.name,
        description=pack.description,
        price_amount=pack.price_amount,
        currency=pack.currency,
        credits=pack.credits,
        expires_at=pack.expires_at,
        creator_id=pack.creator_id,
        creator_name=creator_name,
        status=pack_status(pack, now),
    )


def _owned_pack(session: Session, creator_id: int, pack_id: int) -> Pack:
    pack = session.get(Pack, pack_id)
    if pack is None or pack.creator_id != creator_id:
        raise NotFound("This pack does not exist.")
    return pack


def _sold(session: Session, pack_id: int) -> int:
    """Checkouts that were paid (refunded ones too): an open or failed checkout does not freeze the terms."""
    return session.exec(
        select(func.count()).where(Purchase.pack_id == pack_id, Purchase.status.in_(_PAID_STATUSES))
    ).one()


_PAID_STATUSES = ("paid", "refunded", "mismatch")


def _validated(fields: PackFields, now: datetime) -> dict:
    code = currency(fields.currency).code
    return {
        "name": _name(fields.name),
        "description": _description(fields.description),
        "currency": code,
        "price_amount": parse_price(fields.price, code),
        "credits": parse_credits(fields.credits, field="credits"),
        "expires_at": _expiry(fields.expires_on, now),
    }


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequest("name", "Give the pack a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidRequest("name", f"Keep the name to {NAME_MAX_LENGTH} characters.")
    return name


def _description(description: str) -> str:
    description = description.strip()
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidRequest("description", f"Keep the description to {DESCRIPTION_MAX_LENGTH} characters.")
    return description


def _expiry(expires_on: str, now: datetime) -> datetime | None:
    """A date means 'valid through that day' (UTC): the pack and its credits expire at the next midnight."""
    if not expires_on.strip():
        return None
    try:
        day = date.fromisoformat(expires_on.strip())
    except ValueError:
        raise InvalidRequest("expires_on", "Enter a date such as 2027-12-31.") from None
    expires_at = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    if expires_at <= now:
        raise InvalidRequest("expires_on", "The expiry date must be in the future.")
    return expires_at
