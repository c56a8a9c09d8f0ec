"""Configuration from the environment, read and checked in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{REPO_ROOT / 'litesubs.db'}"
DEFAULT_BASE_URL = "http://localhost:3000"
MAXIMUM_PLATFORM_FEE_PERCENT = Decimal(50)
DEFAULT_API_RATE_LIMIT = 100
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message is one clear line."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    base_url: str
    stripe_secret_key: str | None
    stripe_webhook_secret: str | None
    stripe_api_base: str | None
    redis_url: str | None
    # Platform set-up (Stripe Connect): each creator is paid on a connected account of their own.
    stripe_connect: bool = False
    # The platform's share of each sale in platform mode, in percent (0 to 50, at most two decimals).
    platform_fee_percent: Decimal = Decimal(0)
    # How many reverse proxies in front of the app append to X-Forwarded-For (0: clients connect directly).
    trusted_proxies: int = 0
    # API v1 requests a second per key (bursts up to twice that).
    api_rate_limit: int = DEFAULT_API_RATE_LIMIT
    # Webhook endpoints may be plain http on this machine (localhost): for tests and `make run`.
    allow_http_webhooks: bool = False
    # The app process runs the background worker itself; 0 when `python -m litesubs worker` runs alone.
    embedded_worker: bool = True
    # Where mail goes (smtp://user:pass@host:587 with STARTTLS when offered, smtps:// implicit TLS); None: the log.
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "Litesubs <no-reply@localhost>"

    @property
    def test_mode(self) -> bool:
        """Without a Stripe key, payments run in the in-app test mode."""
        return self.stripe_secret_key is None

    @property
    def platform_mode(self) -> bool:
        """Stripe Connect: sales are direct charges on each creator's connected account."""
        return self.stripe_connect and not self.test_mode


def _optional(environ: dict[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def masked(url: str) -> str:
    """`url` with the password in it (if any) replaced by `***`, fit for messages and logs."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    credentials, _at, host = parsed.netloc.rpartition("@")
    user = credentials.split(":", 1)[0]
    return parsed._replace(netloc=f"{user}:***@{host}").geturl()


def _flag(environ: dict[str, str], name: str, *, default: bool) -> bool:
    value = _optional(environ, name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1 or 0, got {value!r}")


def _check_http_url(name: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{name} must be an http(s) URL such as https://example.com, got {masked(value)!r}")
    return value.rstrip("/")


def _check_stripe_api_base(value: str) -> str:
    """Another Stripe-compatible server: https, or plain http only on this machine (a test server)."""
    value = _check_http_url("STRIPE_API_BASE", value)
    parsed = urlparse(value)
    if parsed.scheme != "https" and parsed.hostname not in LOCAL_HOSTS:
        raise SettingsError(f"STRIPE_API_BASE must be an https URL unless it is on localhost, got {masked(value)!r}")
    return value


def _check_database_url(value: str) -> str:
    scheme = urlparse(value).scheme
    if scheme.startswith("postgres"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    if scheme.startswith("sqlite"):
        return value
    raise SettingsError(f"DATABASE_URL must start with sqlite:// or postgresql://, got {masked(value)!r}")


def _whole_number(environ: dict[str, str], name: str, *, default: int, lowest: int, highest: int) -> int:
    raw = _optional(environ, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not lowest <= int(raw) <= highest:
        raise SettingsError(f"{name} must be a whole number from {lowest} to {highest}, got {raw!r}")
    return int(raw)


def _check_payments_configured(env: dict[str, str], *, base_url: str, stripe_secret_key: str | None) -> None:
    """A public (https) deploy without a Stripe key would hand out packs through the test-mode checkout: stop."""
    if stripe_secret_key or not base_url.startswith("https://") or _optional(env, "LITESUBS_TEST_MODE") == "1":
        return
    raise SettingsError(
        "LITESUBS_BASE_URL is https but STRIPE_SECRET_KEY is not set, so packs would be given away in test mode; "
        "set the Stripe keys, or LITESUBS_TEST_MODE=1 if test mode is what you want"
    )


def _check_fee_percent(value: str | None) -> Decimal:
    """LITESUBS_PLATFORM_FEE_PERCENT: a number from 0 to 50 with at most two decimals (default 0)."""
    if value is None:
        return Decimal(0)
    problem = f"LITESUBS_PLATFORM_FEE_PERCENT must be a number from 0 to 50 with at most two decimals, got {value!r}"
    try:
        percent = Decimal(value.removesuffix("%").strip())
    except InvalidOperation:
        raise SettingsError(problem) from None
    if not percent.is_finite() or not 0 <= percent <= MAXIMUM_PLATFORM_FEE_PERCENT:
        raise SettingsError(problem)
    if percent != percent.quantize(Decimal("0.01")):
        raise SettingsError(problem)
    return percent


def _check_smtp_url(value: str) -> str:
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
        # The value is not repeated: it may hold a password.
        raise SettingsError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
    return value


def _check_mail_from(value: str) -> str:
    _name, address = parseaddr(value)
    if "@" not in address or any(char in value for char in "\r\n"):
        raise SettingsError(f"MAIL_FROM must be an address such as 'Litesubs <no-reply@example.com>', got {value!r}")
    return value


def _host_of(url: str) -> str:
    host = urlparse(url).hostname or "localhost"
    return host if "." in host or host == "localhost" else "localhost"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    stripe_secret_key = _optional(env, "STRIPE_SECRET_KEY")
    stripe_webhook_secret = _optional(env, "STRIPE_WEBHOOK_SECRET")
    if stripe_secret_key and not stripe_secret_key.startswith(("sk_", "rk_")):
        raise SettingsError("STRIPE_SECRET_KEY must be a Stripe secret key starting with sk_ or rk_")
    if stripe_secret_key and not stripe_webhook_secret:
        raise SettingsError("STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set (whsec_...)")
    stripe_connect = _flag(env, "STRIPE_CONNECT", default=False)
    if stripe_connect and not stripe_secret_key:
        raise SettingsError("STRIPE_CONNECT=1 needs STRIPE_SECRET_KEY, the secret key of your Stripe Connect platform")
    platform_fee_percent = _check_fee_percent(_optional(env, "LITESUBS_PLATFORM_FEE_PERCENT"))
    if platform_fee_percent and not stripe_connect:
        raise SettingsError("LITESUBS_PLATFORM_FEE_PERCENT applies only in platform mode: set STRIPE_CONNECT=1 too")
    api_base = _optional(env, "STRIPE_API_BASE")
    redis_url = _optional(env, "REDIS_URL")
    if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"REDIS_URL must start with redis:// or rediss://, got {masked(redis_url)!r}")
    base_url = _check_http_url("LITESUBS_BASE_URL", _optional(env, "LITESUBS_BASE_URL") or DEFAULT_BASE_URL)
    _check_payments_configured(env, base_url=base_url, stripe_secret_key=stripe_secret_key)
    smtp_url = _optional(env, "SMTP_URL")
    return Settings(
        database_url=_check_database_url(_optional(env, "DATABASE_URL") or DEFAULT_DATABASE_URL),
        base_url=base_url,
        stripe_secret_key=stripe_secret_key,
        stripe_webhook_secret=stripe_webhook_secret,
        stripe_api_base=_check_stripe_api_base(api_base) if api_base else None,
        redis_url=redis_url,
        stripe_connect=stripe_connect,
        platform_fee_percent=platform_fee_percent,
        trusted_proxies=_whole_number(env, "LITESUBS_TRUSTED_PROXIES", default=0, lowest=0, highest=10),
        api_rate_limit=_whole_number(
            env, "LITESUBS_API_RATE_LIMIT", default=DEFAULT_API_RATE_LIMIT, lowest=1, highest=1_000_000
        ),
        allow_http_webhooks=_flag(env, "LITESUBS_ALLOW_HTTP_WEBHOOKS", default=False),
        embedded_worker=_flag(env, "LITESUBS_EMBEDDED_WORKER", default=True),
        smtp_url=_check_smtp_url(smtp_url) if smtp_url else None,
        mail_from=_check_mail_from(_optional(env, "MAIL_FROM") or f"Litesubs <no-reply@{_host_of(base_url)}>"),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
