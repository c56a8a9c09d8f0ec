"""What the app does once when it starts: check the configuration, then migrate the database."""

from __future__ import annotations

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
    """Lifespan task: apply pending migrations so a fresh database just works."""
    from litesubs.migrations import migrate

    migrate()
