"""Operator commands: `python -m litesubs <command>`."""

from __future__ import annotations

import argparse
import sys

from litesubs.db import DatabaseUnavailable, check_database
from litesubs.settings import SettingsError, get_settings, masked


def _migrate(_args: argparse.Namespace) -> int:
    from litesubs.migrations import migrate

    migrate()
    print("Database is up to date.")
    return 0


def _check_config(_args: argparse.Namespace) -> int:
    """The settings parse, the database answers, and so does Redis when REDIS_URL is set."""
    settings = get_settings()
    check_database(settings.database_url)
    if settings.redis_url is not None:
        import redis

        try:
            redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
        except redis.RedisError as error:
            print(f"litesubs: Redis at {masked(settings.redis_url)} does not answer: {error}", file=sys.stderr)
            return 1
    mode = "test mode (no real payments)" if settings.test_mode else "Stripe"
    redis_state = "answers" if settings.redis_url else "not configured"
    print(
        f"Configuration OK: database {settings.database_url.split('://', 1)[0]} answers, Redis {redis_state}, "
        f"payments: {mode}."
    )
    return 0


def _expire_credits(_args: argparse.Namespace) -> int:
    from litesubs.services.holds import release_expired
    from litesubs.services.ledger import expire_due_credits

    released = release_expired()  # first: what a hold gives back to an expired lot expires with it
    expired = expire_due_credits()
    print(f"Released {released.holds} expired holds of {released.credits} credits.")
    print(f"Expired {expired.lots} lots holding {expired.credits} credits.")
    return 0


def _purge_idempotency_records(_args: argparse.Namespace) -> int:
    from litesubs.services.idempotency import purge_idempotency_records

    print(f"Deleted {purge_idempotency_records()} idempotency records older than 24 hours.")
    return 0


def _reset_link(args: argparse.Namespace) -> int:
    from litesubs.services.account_tokens import LinkRefused
    from litesubs.services.password_reset import LIFETIME, reset_link

    try:
        link = reset_link(email=args.email)
    except LinkRefused as error:
        print(f"litesubs: {error.message}", file=sys.stderr)
        return 1
    hours = int(LIFETIME.total_seconds() // 3600)
    print(f"Reset link for {args.email.strip().lower()} (works once, for {hours} hour; earlier links stop working):")
    print(link)
    return 0


def _worker(_args: argparse.Namespace) -> int:
    import logging

    from litesubs.worker import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_forever()
    return 0


def _demo(_args: argparse.Namespace) -> int:
    from litesubs.demo import create_demo
    from litesubs.migrations import migrate

    migrate()
    summary = create_demo()
    print(
        f"Demo ready: {summary.packs} packs, {summary.customers} customers, {summary.purchases} purchases, "
        f"{summary.debits} debits.\nSign in at /login as {summary.email} with password {summary.password}"
    )
    return 0


COMMANDS = {
    "migrate": (_migrate, "apply pending database migrations"),
    "check-config": (_check_config, "validate the configuration and check that the database and Redis answer"),
    "expire-credits": (_expire_credits, "release every expired hold and expire every credit lot whose time has passed"),
    "purge-idempotency-records": (_purge_idempotency_records, "delete idempotency records older than 24 hours"),
    "reset-link": (_reset_link, "print a password reset link for EMAIL, for when mail does not arrive"),
    "worker": (_worker, "deliver webhooks and sweep expiries (with LITESUBS_EMBEDDED_WORKER=0 in the app)"),
    "demo": (_demo, "fill the database with a demo creator, packs and a few hundred customers"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litesubs", description="Litesubs operator commands")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "reset-link":
            command.add_argument("email", help="the account's email address")
    args = parser.parse_args(argv)
    try:
        get_settings()
        return COMMANDS[args.command][0](args)
    except SettingsError as error:
        print(f"litesubs: configuration error: {error}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(f"litesubs: database error: {error}", file=sys.stderr)
        return 1
