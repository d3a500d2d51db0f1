"""Alembic environment for every mergenet table (coordinator state and the rewards ledger).

Imports each model module so ``Base.metadata`` is complete for autogenerate; the connection
(or URL) is handed in by :mod:`mergenet.migrate`, never read from an ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import mergenet.coordinator.models
import mergenet.rewards.models  # noqa: F401 - registers the ledger tables on Base
from mergenet.db import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url", ""))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
