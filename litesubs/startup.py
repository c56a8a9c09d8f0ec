"""What the app does once when it starts: check the configuration, then migrate the database."""

from __future__ import annotations

import os
import sys

from litesubs.settings import Settings, SettingsError, get_settings


def settings_or_exit() -> Settings:
    """The settings, or one clear line on stderr and exit status 2 (no traceback)."""
    try:
        return get_settings()
    except SettingsError as error:
        print(f"litesubs: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def migrate_on_start() -> None:
    """Lifespan task: apply pending migrations so a fresh database just works.

    A database that cannot be reached stops the process with one line and status 1: a traceback from
    deep inside the server's start-up would bury which database failed and why.
    """
    from litesubs.db import DatabaseUnavailable
    from litesubs.migrations import migrate

    try:
        migrate()
    except DatabaseUnavailable as error:
        print(f"litesubs: database error: {error}", file=sys.stderr, flush=True)
        os._exit(1)  # the server would catch SystemExit in its lifespan and print its own traceback
