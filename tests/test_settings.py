"""Configuration: defaults that just work, and one clear line for a bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from litesubs.settings import REPO_ROOT, SettingsError, load_settings, masked


def test_defaults_are_sqlite_in_the_repo_and_test_mode() -> None:
    settings = load_settings({})
    assert settings.database_url == f"sqlite:///{REPO_ROOT / 'litesubs.db'}"
    assert settings.base_url == "http://localhost:3000"
    assert settings.test_mode
    assert settings.redis_url is None


def test_mail_goes_to_the_log_by_default_and_comes_from_the_base_urls_host() -> None:
    assert load_settings({}).smtp_url is None
    assert load_settings({}).mail_from == "Litesubs <no-reply@localhost>"
    settings = load_settings(
        {
            "LITESUBS_BASE_URL": "https://credits.example.com",
            "LITESUBS_TEST_MODE": "1",
            "SMTP_URL": "smtps://mailer:s%40cret@smtp.example.com",
        }
    )
    assert settings.mail_from == "Litesubs <no-reply@credits.example.com>"
    assert settings.smtp_url == "smtps://mailer:s%40cret@smtp.example.com"
    assert "s%40cret" not in repr(settings)  # the password stays out of logs and error pages
    with pytest.raises(SettingsError) as refused:
        load_settings({"SMTP_URL": "smtp://mailer:hunter2@mail:notaport"})
    assert "hunter2" not in str(refused.value)


def test_postgres_urls_use_psycopg_3() -> None:
    settings = load_settings({"DATABASE_URL": "postgres://u:p@db:5432/ls"})
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/ls"


def test_stripe_mode_needs_key_and_webhook_secret() -> None:
    settings = load_settings({"STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"})
    assert not settings.test_mode
    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET is required"):
        load_settings({"STRIPE_SECRET_KEY": "sk_test_1"})


def test_the_embedded_worker_runs_and_webhooks_need_https_unless_told_otherwise() -> None:
    defaults = load_settings({})
    assert defaults.embedded_worker
    assert not defaults.allow_http_webhooks
    changed = load_settings({"LITESUBS_EMBEDDED_WORKER": "0", "LITESUBS_ALLOW_HTTP_WEBHOOKS": "1"})
    assert not changed.embedded_worker
    assert changed.allow_http_webhooks


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must start with"),
        ("LITESUBS_BASE_URL", "localhost:3000", "LITESUBS_BASE_URL must be an http(s) URL"),
        ("STRIPE_SECRET_KEY", "pk_test_1", "must be a Stripe secret key"),
        ("STRIPE_API_BASE", "ftp://stripe", "STRIPE_API_BASE must be an http(s) URL"),
        ("REDIS_URL", "http://redis", "REDIS_URL must start with redis://"),
        ("SMTP_URL", "http://mail:25", "SMTP_URL must look like smtp://"),
        ("SMTP_URL", "smtp://:25", "SMTP_URL must look like smtp://"),
        ("SMTP_URL", "smtp://mail:port", "SMTP_URL must look like smtp://"),
        ("MAIL_FROM", "no address here", "MAIL_FROM must be an address"),
        ("LITESUBS_EMBEDDED_WORKER", "maybe", "LITESUBS_EMBEDDED_WORKER must be 1 or 0"),
        ("LITESUBS_ALLOW_HTTP_WEBHOOKS", "yes please", "LITESUBS_ALLOW_HTTP_WEBHOOKS must be 1 or 0"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings({name: value, "STRIPE_WEBHOOK_SECRET": "whsec_1"})


def test_a_bad_value_stops_start_up_with_one_line_and_no_traceback() -> None:
    env = {**os.environ, "LITESUBS_BASE_URL": "not a url"}
    result = subprocess.run(
        [sys.executable, "-m", "litesubs", "check-config"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "litesubs: configuration error: LITESUBS_BASE_URL must be an http(s) URL such as https://example.com, "
        "got 'not a url'"
    ]
    assert "Traceback" not in result.stderr


def test_platform_mode_needs_the_platforms_key_and_takes_a_fee() -> None:
    stripe = {"STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1,whsec_2"}
    single_business = load_settings(stripe)
    assert (single_business.platform_mode, single_business.platform_fee_percent) == (False, Decimal(0))
    platform = load_settings({**stripe, "STRIPE_CONNECT": "1", "LITESUBS_PLATFORM_FEE_PERCENT": "2.5"})
    assert (platform.platform_mode, platform.platform_fee_percent) == (True, Decimal("2.5"))
    assert load_settings({**stripe, "STRIPE_CONNECT": "1"}).platform_fee_percent == Decimal(0)
    assert load_settings({**stripe, "STRIPE_CONNECT": "0"}).platform_mode is False


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STRIPE_CONNECT": "1"}, "STRIPE_CONNECT=1 needs STRIPE_SECRET_KEY, the secret key of your Stripe Connect"),
        ({"STRIPE_CONNECT": "maybe", "STRIPE_SECRET_KEY": "sk_test_1"}, "STRIPE_CONNECT must be 1 or 0, got 'maybe'"),
        (
            {"STRIPE_CONNECT": "1", "STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "50.5"},
            "LITESUBS_PLATFORM_FEE_PERCENT must be a number from 0 to 50 with at most two decimals, got '50.5'",
        ),
        (
            {"STRIPE_CONNECT": "1", "STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "-1"},
            "LITESUBS_PLATFORM_FEE_PERCENT must be a number from 0 to 50",
        ),
        (
            {"STRIPE_CONNECT": "1", "STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "2.555"},
            "with at most two decimals, got '2.555'",
        ),
        (
            {"STRIPE_CONNECT": "1", "STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "ten"},
            "got 'ten'",
        ),
        (
            {"STRIPE_CONNECT": "1", "STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "NaN"},
            "got 'NaN'",
        ),
        (
            {"STRIPE_SECRET_KEY": "sk_test_1", "LITESUBS_PLATFORM_FEE_PERCENT": "5"},
            "LITESUBS_PLATFORM_FEE_PERCENT applies only in platform mode: set STRIPE_CONNECT=1 too",
        ),
    ],
    ids=[
        "connect-without-key",
        "connect-not-a-flag",
        "fee-too-high",
        "fee-negative",
        "fee-three-decimals",
        "fee-word",
        "fee-nan",
        "fee-without-connect",
    ],
)
def test_a_bad_platform_set_up_is_refused_with_a_clear_message(variables: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings({"STRIPE_WEBHOOK_SECRET": "whsec_1", **variables})


def test_connect_without_a_key_stops_start_up_with_one_line() -> None:
    env = {**os.environ, "STRIPE_CONNECT": "1"}
    env.pop("STRIPE_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "litesubs", "check-config"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "litesubs: configuration error: STRIPE_CONNECT=1 needs STRIPE_SECRET_KEY, the secret key of your Stripe "
        "Connect platform"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://admin:hunter2secret@db:3306/ls"),
        ("REDIS_URL", "http://:hunter2secret@redis:6379/0"),
        ("LITESUBS_BASE_URL", "ftp://admin:hunter2secret@example.com"),
        ("STRIPE_API_BASE", "http://admin:hunter2secret@stripe.example.com"),
    ],
)
def test_configuration_errors_never_print_passwords(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value, "STRIPE_WEBHOOK_SECRET": "whsec_1"})
    assert "hunter2secret" not in str(raised.value)
    assert ":***@" in str(raised.value)


def test_masked_keeps_urls_without_a_password_as_they_are() -> None:
    assert masked("postgresql://ls@db/ls") == "postgresql://ls@db/ls"
    assert masked("postgresql://ls:pw@db:5432/ls?sslmode=require") == "postgresql://ls:***@db:5432/ls?sslmode=require"


def test_an_https_deploy_without_a_stripe_key_stops_unless_test_mode_is_intended() -> None:
    with pytest.raises(SettingsError, match="STRIPE_SECRET_KEY is not set") as raised:
        load_settings({"LITESUBS_BASE_URL": "https://credits.example.com"})
    assert "LITESUBS_TEST_MODE=1" in str(raised.value)
    assert load_settings({"LITESUBS_BASE_URL": "https://credits.example.com", "LITESUBS_TEST_MODE": "1"}).test_mode
    assert load_settings({"LITESUBS_BASE_URL": "http://localhost:3000"}).test_mode
    stripe = {"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}
    assert not load_settings({"LITESUBS_BASE_URL": "https://credits.example.com", **stripe}).test_mode


def test_the_https_deploy_without_a_key_stops_start_up_with_one_line() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STRIPE_", "LITESUBS_TEST_MODE"))}
    env["LITESUBS_BASE_URL"] = "https://credits.example.com"
    result = subprocess.run(
        [sys.executable, "-m", "litesubs", "check-config"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "STRIPE_SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("base", ["http://localhost:12111", "http://127.0.0.1:8080", "https://stripe.internal"])
def test_stripe_api_base_is_https_or_local(base: str) -> None:
    assert load_settings({"STRIPE_API_BASE": base}).stripe_api_base == base


def test_stripe_api_base_over_plain_http_elsewhere_is_refused() -> None:
    with pytest.raises(SettingsError, match="STRIPE_API_BASE must be an https URL unless it is on localhost"):
        load_settings({"STRIPE_API_BASE": "http://stripe.internal"})


def test_proxies_and_api_rate_limit_are_whole_numbers() -> None:
    settings = load_settings({"LITESUBS_TRUSTED_PROXIES": "1", "LITESUBS_API_RATE_LIMIT": "5"})
    assert (settings.trusted_proxies, settings.api_rate_limit) == (1, 5)
    assert (load_settings({}).trusted_proxies, load_settings({}).api_rate_limit) == (0, 100)
    with pytest.raises(SettingsError, match="LITESUBS_TRUSTED_PROXIES must be a whole number"):
        load_settings({"LITESUBS_TRUSTED_PROXIES": "-1"})
    with pytest.raises(SettingsError, match="LITESUBS_API_RATE_LIMIT must be a whole number"):
        load_settings({"LITESUBS_API_RATE_LIMIT": "0"})
