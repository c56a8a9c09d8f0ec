"""Apply pending Alembic migrations; safe when several processes start at once."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from litesubs.db import make_engine, unavailable
from litesubs.settings import REPO_ROOT, get_settings

# Any fixed number: PostgreSQL advisory lock that serialises concurrent migrators.
_MIGRATION_LOCK_ID = 7_204_331


def alembic_config() -> Config:
    return Config(str(REPO_ROOT / "alembic.ini"))


def migrate(database_url: str | None = None) -> None:
    """Bring the database of `database_url` (default: DATABASE_URL) to the newest revision.

    Raises `DatabaseUnavailable` (one line) when the database cannot be reached, opened or written.
    """
    database_url = database_url or get_settings().database_url
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                connection.commit()
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                connection.commit()
    except OperationalError as error:  # unreachable, refused, unwritable: not a bug in a migration
        raise unavailable(database_url, error) from None
    finally:
        engine.dispose()
