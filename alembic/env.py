"""Alembic environment: migrates the database of DATABASE_URL (or the connection it is given)."""

from alembic import context
from sqlmodel import SQLModel

import litesubs.models  # noqa: F401 - registers the tables on SQLModel.metadata
from litesubs.db import make_engine
from litesubs.settings import get_settings

target_metadata = SQLModel.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    with make_engine(get_settings().database_url).connect() as own_connection:
        run_migrations(own_connection)
