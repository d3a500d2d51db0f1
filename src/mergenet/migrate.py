"""Bring a database to the newest schema with the Alembic scripts shipped in the package.

The one path to the schema: ``mergenet coordinator up`` calls :func:`upgrade` on start and
every ``mergenet rewards …`` command that opens the ledger calls it too, so an operator never
runs Alembic by hand and no table is ever created outside a migration (a ledger table made
directly once broke the next ``coordinator up`` with "table reward_epochs already exists").
The same function sets up test databases (SQLite and PostgreSQL). It imports nothing of
mergenet, so any package may call it; the scripts in ``migrations/`` import the models.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on ``engine`` (idempotent)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
