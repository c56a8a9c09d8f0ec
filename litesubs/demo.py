"""`python -m litesubs demo`: a creator with packs and a few hundred customers whose history spans months.

Everything goes through the real services (checkout, the test-mode Pay button's fulfilment, the
ledger) with the clock moved back, so the data obeys every invariant and the dashboard looks lived in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from litesubs.db import get_engine
from litesubs.models import Customer, Pack, User, utcnow
from litesubs.payments.checkout import pay_test_checkout, start_checkout
from litesubs.services import accounts
from litesubs.services.errors import InsufficientCredits
from litesubs.services.ledger import Actor, debit
from litesubs.services.packs import PackFields, create_pack, set_pack_active
from litesubs.settings import get_settings

DEMO_EMAIL = "demo@litesubs.test"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - printed to the operator on purpose: a local demo account
FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Joan",
    "Guido",
    "Sophie",
    "Yukihiro",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Wirth",
    "Clarke",
    "Rossum",
]
PACKS = [
    # name, price, credits, expires in days from the first sale (None: never), description
    ("Starter: 100 API calls", "9.00", "100", None, "Try the API with 100 calls."),
    ("Pro: 1,000 API calls", "49.00", "1000", None, "For steady production use."),
    ("Coaching: 5 sessions", "180.00", "5", None, "Five one-hour coaching sessions."),
    ("Summer promo: 300 calls", "19.00", "300", 45, "Limited summer offer: credits expire at the end of summer."),
]


@dataclass(frozen=True)
class DemoSummary:
    email: str
    password: str
    packs: int
    customers: int
    purchases: int
    debits: int


def create_demo(*, customers: int = 300, seed: int = 7, engine: Engine | None = None) -> DemoSummary:
    """Fill the database with the demo creator's world; refuses if it already exists (run it once)."""
    if not get_settings().test_mode:
        raise SystemExit("litesubs: the demo runs in test mode only: unset STRIPE_SECRET_KEY and try again")
    engine = engine or get_engine()
    with Session(engine) as session:
        if session.exec(select(User).where(User.email == DEMO_EMAIL)).first() is not None:
            raise SystemExit(f"litesubs: demo data already exists: sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}")
    rng = random.Random(seed)
    now = utcnow()
    start = now - timedelta(days=120)
    creator = accounts.register(name="Nova Studio", email=DEMO_EMAIL, password=DEMO_PASSWORD, engine=engine)
    packs = _packs(engine, creator.id, start)
    buyers = _buyers(engine, customers, rng)
    purchases = debits = 0
    for buyer in buyers:
        when = start + timedelta(days=rng.uniform(0, 118))
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            pack = _pick_pack(rng, packs, when)
            if pack is None or when >= now:
                break
            url = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine, now=when)
            pay_test_checkout(buyer_id=buyer.id, session_id=url.rsplit("/", 1)[-1], engine=engine, now=when)
            purchases += 1
            debits += _spend_for_a_while(engine, rng, creator.id, pack, buyer.id, when, now)
            when += timedelta(days=rng.uniform(5, 40))
    set_pack_active(creator_id=creator.id, pack_id=packs[2].id, active=False, engine=engine)
    return DemoSummary(DEMO_EMAIL, DEMO_PASSWORD, len(packs), len(buyers), purchases, debits)


def _packs(engine: Engine, creator_id: int, start: datetime) -> list[Pack]:
    packs = []
    for name, price, credits, expires_in_days, description in PACKS:
        expires_on = (start + timedelta(days=expires_in_days)).date().isoformat() if expires_in_days else ""
        fields = PackFields(name=name, price=price, credits=credits, description=description, expires_on=expires_on)
        packs.append(create_pack(creator_id=creator_id, fields=fields, engine=engine, now=start))
    return packs


def _buyers(engine: Engine, count: int, rng: random.Random) -> list[User]:
    """Demo buyers share one password hash: hashing hundreds of bcrypt passwords would take minutes."""
    password_hash = accounts.hash_password(DEMO_PASSWORD)
    buyers = []
    with Session(engine, expire_on_commit=False) as session:
        for number in range(count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}.{number}@example.com".lower()
            buyers.append(User(name=f"{first} {last}", email=email, password_hash=password_hash))
        session.add_all(buyers)
        session.commit()
    return buyers


def _pick_pack(rng: random.Random, packs: list[Pack], when: datetime) -> Pack | None:
    open_packs = [pack for pack in packs if pack.expires_at is None or pack.expires_at > when]
    return rng.choices(open_packs, weights=[5, 2, 1, 3][: len(open_packs)])[0] if open_packs else None


def _spend_for_a_while(
    engine: Engine, rng: random.Random, creator_id: int, pack: Pack, buyer_id: int, bought_at: datetime, now: datetime
) -> int:
    """Usage after a purchase: a handful of debits over the following weeks, as the creator's software would."""
    customer_id = _customer_id(engine, creator_id, buyer_id)
    debits = 0
    when = bought_at
    for _ in range(rng.randint(0, 6)):
        when += timedelta(days=rng.uniform(0.5, 8))
        if when >= now:
            break
        amount = max(1, int(pack.credits * rng.uniform(0.02, 0.25)))
        try:
            debit(
                creator_id=creator_id,
                customer_id=customer_id,
                amount=amount,
                actor=Actor("system"),
                reason=rng.choice(["API usage", "Image generated", "Session booked", "Report exported"]),
                engine=engine,
                now=when,
            )
        except InsufficientCredits:
            break
        debits += 1
    return debits


def _customer_id(engine: Engine, creator_id: int, buyer_id: int) -> int:
    with Session(engine) as session:
        return session.exec(
            select(Customer.id).where(Customer.creator_id == creator_id, Customer.buyer_id == buyer_id)
        ).one()
