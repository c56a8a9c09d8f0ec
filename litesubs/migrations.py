"""Apply pending Alembic migrations; safe when several processes start at once."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from litesubs.db import make_engine
from litesubs.settings import REPO_ROOT, get_settings

# Any fixed number: PostgreSQL advisory lock that serialises concurrent migrators.
_MIGRATION_LOCK_ID = 7_204_331


def alembic_config() -> Config:
    return Config(str(REPO_ROOT / "alembic.ini"))


def migrate(database_url: str | None = None) -> None:
    """Bring the database of `database_url` (default: DATABASE_URL) to the newest revision."""
    engine = make_engine(database_url or get_settings().database_url)
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
    finally:
        engine.dispose()
