"""Shared fixtures: migrated databases (SQLite and PostgreSQL), the running app, a browser, factories."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine
from sqlmodel import Session

from litesubs.db import get_engine, make_engine
from litesubs.models import User
from litesubs.settings import REPO_ROOT, get_settings
from tests.app_server import AppServer, start_app_server
from tests.browser import DESKTOP, PageProblems, launch_chromium
from tests.databases import postgres_database, postgres_reachable, sqlite_database
from tests.mail_server import MailServer

# bcrypt at its lowest cost, so the suite hashes in milliseconds (see litesubs/services/accounts.py).
os.environ.setdefault("LITESUBS_BCRYPT_ROUNDS", "4")

ARTIFACTS = REPO_ROOT / "test-artifacts"
ARTIFACTS.mkdir(exist_ok=True)

BACKENDS = ["sqlite", "postgresql"]


def _require_postgres() -> None:
    if postgres_reachable():
        return
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not reachable at TEST_DATABASE_URL; CI must test against it")
    pytest.skip("PostgreSQL is not reachable at TEST_DATABASE_URL")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, once per backend per test run; tests isolate themselves by fresh users."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield url
    else:
        _require_postgres()
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A migrated PostgreSQL database for tests that only make sense there (row-lock races)."""
    _require_postgres()
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def create_user(engine: Engine, *, name: str = "Test User", email: str | None = None) -> User:
    """A fresh user with a unique email (no real password: tests that sign in use the accounts service)."""
    user = User(email=email or f"user-{secrets.token_hex(6)}@example.com", name=name, password_hash="!")
    with Session(engine, expire_on_commit=False) as session:
        session.add(user)
        session.commit()
    return user


@pytest.fixture(scope="session")
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server that receives the running app's mail."""
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, mail_server: MailServer) -> Iterator[AppServer]:
    """The production build on a free port with a fresh SQLite database, once per test run; mail to `mail_server`.

    It trusts one proxy hop, as behind the README's reverse proxy: a browser context that sends
    X-Forwarded-For is that client; without the header, the client is the connection's address.
    """
    directory = tmp_path_factory.mktemp("app")
    with sqlite_database(directory) as url:
        environment = {
            # Webhook endpoints on 127.0.0.1 (the tests' receivers) are allowed, as `make run` allows them.
            "LITESUBS_ALLOW_HTTP_WEBHOOKS": "1",
            "SMTP_URL": mail_server.url,
            "MAIL_FROM": "Litesubs <no-reply@litesubs.test>",
            "LITESUBS_TRUSTED_PROXIES": "1",
        }
        server = start_app_server(url, ARTIFACTS / "app-server.log", directory, environment)
        yield server
        server.stop()


@pytest.fixture(scope="session")
def app_engine(app_server: AppServer) -> Iterator[Engine]:
    """The running app's database, for arranging and checking what the browser does."""
    engine = make_engine(app_server.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    """A fresh browser context (no cookies) whose page must end with no console errors or failed requests."""
    context = browser.new_context(base_url=app_server.base_url, viewport=DESKTOP, reduced_motion="reduce")
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    yield page
    context.close()
    assert problems.all() == [], f"browser problems: {problems.all()}"


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point this process's configured engine (what services use by default) at `url` for one test."""
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def app_database(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    """Services called without an engine (as the Reflex states call them) use the test database."""
    use_database(monkeypatch, database_url)
    yield database_url
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture(scope="module", params=BACKENDS)
def fresh_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database of its own for one test module, for tests that drain a whole table (the outbox)."""
    if request.param == "sqlite":
        context = sqlite_database(tmp_path_factory.mktemp("sqlite"))
    else:
        _require_postgres()
        context = postgres_database()
    with context as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()
