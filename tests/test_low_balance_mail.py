"""The low-balance mail: off by default, once per crossing of the credits.low threshold, with "Buy again"."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.models import Pack, User
from litesubs.payments.checkout import pay_test_checkout, start_checkout
from litesubs.services import holds, webhooks
from litesubs.services.errors import InsufficientCredits
from litesubs.services.ledger import Actor, debit, grant
from litesubs.services.packs import set_pack_active
from litesubs.settings import get_settings
from tests.conftest import create_user
from tests.factories import make_pack
from tests.invariants import assert_invariants
from tests.mail_server import MailServer, deliver_mail_to, queued_mail_to
from tests.payments.records import customer_of

API_KEY = Actor("api_key", 1)
THRESHOLD = 20


@pytest.fixture(scope="module")
def server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _test_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _creator(engine: Engine, *, mail_on: bool = True) -> User:
    creator = create_user(engine, name="Lena Lowmark")
    with Session(engine) as session:
        row = session.get(User, creator.id)
        row.low_balance_mail = mail_on
        session.add(row)
        session.commit()
    webhooks.set_low_balance_threshold(creator_id=creator.id, threshold=THRESHOLD, engine=engine)
    return creator


def _bought(engine: Engine, creator: User) -> tuple[User, Pack, int]:
    """A buyer who paid for a 100-credit pack of `creator` (test mode): buyer, pack, customer id."""
    buyer = create_user(engine, name="Tom Topup", email=f"tom-{secrets.token_hex(5)}@example.com")
    pack = make_pack(engine, creator.id, name="Hundred", price="12.00", credits="100")
    session_id = start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine).rsplit("/", 1)[1]
    summary = pay_test_checkout(buyer_id=buyer.id, session_id=session_id, engine=engine)
    assert summary.status == "paid"
    return buyer, pack, customer_of(engine, creator_id=creator.id, buyer_id=buyer.id).id


def _low_mails(engine: Engine, buyer: User) -> list:
    return [row for row in queued_mail_to(engine, buyer.email) if "running low" in row.payload]


def test_crossing_the_threshold_mails_once_per_crossing_with_buy_again(
    fresh_engine: Engine, server: MailServer
) -> None:
    creator = _creator(fresh_engine)
    buyer, pack, customer_id = _bought(fresh_engine, creator)

    debit(
        creator_id=creator.id, customer_id=customer_id, amount=80, actor=API_KEY, engine=fresh_engine
    )  # 20: not below
    assert _low_mails(fresh_engine, buyer) == []
    debit(creator_id=creator.id, customer_id=customer_id, amount=5, actor=API_KEY, engine=fresh_engine)  # 15: crossed
    debit(creator_id=creator.id, customer_id=customer_id, amount=5, actor=API_KEY, engine=fresh_engine)  # 10: still low
    assert len(_low_mails(fresh_engine, buyer)) == 1

    deliver_mail_to(fresh_engine, buyer.email, server)
    received = next(m for m in server.wait_for(buyer.email, count=2) if "running low" in m.subject)
    assert received.subject == "Your credits with Lena Lowmark are running low"
    assert "down to 15 credits" in received.text
    assert received.link_to("/buy/") == f"http://localhost:3000/buy/{pack.public_id}?buy=1"
    assert "Buy again" in received.html
    assert "$12.00" in received.text

    # Back above the threshold, then below again: a second crossing, a second mail.
    grant(creator_id=creator.id, customer_id=customer_id, amount=50, actor=API_KEY, engine=fresh_engine)  # 60
    debit(creator_id=creator.id, customer_id=customer_id, amount=45, actor=API_KEY, engine=fresh_engine)  # 15
    assert len(_low_mails(fresh_engine, buyer)) == 2
    assert_invariants(fresh_engine, customer_id)


def test_a_hold_crossing_the_threshold_mails_as_a_debit_would(fresh_engine: Engine) -> None:
    """Held credits cannot be spent: placing a hold lowers the balance the mail watches (on PostgreSQL through the
    holds' hot path); capturing or releasing it does not mail again."""
    creator = _creator(fresh_engine)
    buyer, _pack, customer_id = _bought(fresh_engine, creator)
    hold = holds.place_hold(
        creator_id=creator.id, customer_id=customer_id, amount=85, actor=API_KEY, engine=fresh_engine
    )
    (row,) = _low_mails(fresh_engine, buyer)
    assert "15 credits" in row.payload
    holds.capture_hold(creator_id=creator.id, hold_id=hold.id, amount=5, actor=API_KEY, engine=fresh_engine)  # 95
    assert len(_low_mails(fresh_engine, buyer)) == 1
    assert_invariants(fresh_engine, customer_id)


def test_off_by_default_and_no_buy_again_for_a_pack_no_longer_on_sale(fresh_engine: Engine) -> None:
    quiet = _creator(fresh_engine, mail_on=False)
    buyer, _pack, customer_id = _bought(fresh_engine, quiet)
    debit(creator_id=quiet.id, customer_id=customer_id, amount=95, actor=API_KEY, engine=fresh_engine)
    assert _low_mails(fresh_engine, buyer) == []
    assert create_user(fresh_engine).low_balance_mail is False

    creator = _creator(fresh_engine)
    buyer, pack, customer_id = _bought(fresh_engine, creator)
    set_pack_active(creator_id=creator.id, pack_id=pack.id, active=False, engine=fresh_engine)
    debit(creator_id=creator.id, customer_id=customer_id, amount=95, actor=API_KEY, engine=fresh_engine)
    (row,) = _low_mails(fresh_engine, buyer)
    assert "/buy/" not in row.payload
    assert "down to 5 credits" in row.payload


def test_parallel_debits_crossing_together_mail_once(fresh_engine: Engine) -> None:
    creator = _creator(fresh_engine)
    buyer, _pack, customer_id = _bought(fresh_engine, creator)

    def spend(_: int) -> bool:
        try:
            debit(creator_id=creator.id, customer_id=customer_id, amount=7, actor=API_KEY, engine=fresh_engine)
        except InsufficientCredits:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        spent = sum(pool.map(spend, range(20)))
    assert spent == 14  # 100 credits, 7 at a time
    assert len(_low_mails(fresh_engine, buyer)) == 1
    assert_invariants(fresh_engine, customer_id)
