"""The database: one declarative base, engine and session factory for every table.

Components (coordinator state, the rewards ledger) declare their models on ``Base`` so that
one set of Alembic migrations and one transaction can cover them together. It sits below both
(neither imports the other for it); the schema itself is created only by the migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


def utcnow() -> datetime:
    """The time stamps' default: aware UTC (every column is ``DateTime(timezone=True)``)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base shared by every mergenet table."""


POOL = {"pool_size": 20, "max_overflow": 20}
"""Connections per process: as many as Starlette's 40 request threads, so a burst of requests
waits on the database, not on the pool (15 connections gave pool timeouts under
benchmarks/load.py's 100 submitters and 200 viewers)."""


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL and foreign keys so crash behaviour matches PostgreSQL's."""
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")  # one connection, no pool
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **({} if in_memory else POOL),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **POOL)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
