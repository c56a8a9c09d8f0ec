"""Payments fixtures: a local Stripe-compatible server, the API over real HTTP, and Stripe or test mode.

Services read the mode from `get_settings()`; the fixtures set the environment and clear the
cached settings and engine, so the webhook served in this process sees the same configuration.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from litesubs.db import get_engine
from litesubs.models import Pack, User
from litesubs.payments.checkout import start_checkout
from litesubs.settings import Settings, get_settings
from tests.api_server import serve_api
from tests.conftest import create_user
from tests.factories import make_pack
from tests.stripe_server import FakeStripe, start_stripe_server

BASE_URL = "http://litesubs.test"
API_KEY = "sk_test_litesubs"
WEBHOOK_SECRET = "whsec_litesubs_test"
CONNECT_WEBHOOK_SECRET = "whsec_litesubs_connect_test"
STRIPE_VARIABLES = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")
PLATFORM_VARIABLES = ("STRIPE_CONNECT", "LITESUBS_PLATFORM_FEE_PERCENT")
PLATFORM_FEE_PERCENT = "12.5"


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    stripe, server = start_stripe_server(API_KEY)
    yield stripe
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def api_url() -> Iterator[str]:
    with serve_api() as url:
        yield url


@pytest.fixture
def webhook_url(api_url: str) -> str:
    return f"{api_url}/api/stripe/webhook"


def _configure(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> Settings:
    for name in STRIPE_VARIABLES + PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    _forget_configuration()
    return get_settings()


def _forget_configuration() -> None:
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def stripe_mode(monkeypatch: pytest.MonkeyPatch, database_url: str, fake_stripe: FakeStripe) -> Iterator[Settings]:
    """Stripe mode against the fake server, on the test database."""
    yield _configure(
        monkeypatch,
        {
            "DATABASE_URL": database_url,
            "LITESUBS_BASE_URL": BASE_URL,
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake_stripe.base_url,
        },
    )
    _forget_configuration()


@pytest.fixture
def platform_mode(monkeypatch: pytest.MonkeyPatch, database_url: str, fake_stripe: FakeStripe) -> Iterator[Settings]:
    """Platform mode (Stripe Connect) against the fake server: the account endpoint's and the Connect endpoint's
    webhook secrets both accepted, a 12.5 % platform fee."""
    yield _configure(
        monkeypatch,
        {
            "DATABASE_URL": database_url,
            "LITESUBS_BASE_URL": BASE_URL,
            "STRIPE_SECRET_KEY": API_KEY,
            "STRIPE_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},{CONNECT_WEBHOOK_SECRET}",
            "STRIPE_API_BASE": fake_stripe.base_url,
            "STRIPE_CONNECT": "1",
            "LITESUBS_PLATFORM_FEE_PERCENT": PLATFORM_FEE_PERCENT,
        },
    )
    _forget_configuration()


@pytest.fixture
def payments_test_mode(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Settings]:
    """No Stripe key: the in-app test-mode checkout, on the test database."""
    yield _configure(monkeypatch, {"DATABASE_URL": database_url, "LITESUBS_BASE_URL": BASE_URL})
    _forget_configuration()


@pytest.fixture
def creator(engine: Engine) -> User:
    return create_user(engine, name="Ada Creator")


@pytest.fixture
def buyer(engine: Engine) -> User:
    return create_user(engine, name="Bob Buyer")


@pytest.fixture
def pack(engine: Engine, creator: User) -> Pack:
    return make_pack(engine, creator.id, name="Starter", price="9.00", credits="100", expires_on="2099-12-31")


def open_checkout(engine: Engine, pack: Pack, buyer: User) -> str:
    """Start a checkout as the Buy button does; the session id (Stripe's, or test mode's own)."""
    return start_checkout(buyer_id=buyer.id, public_id=pack.public_id, engine=engine).rsplit("/", 1)[1]
