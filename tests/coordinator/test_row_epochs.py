"""Row epochs: epoch 1 opens on first use, rotate reveals and opens the next, the secret
matches its commitment, and the migration creates the table (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from mergenet.coordinator import models as m
from mergenet.coordinator.row_epochs import (
    commitment_of,
    current_row_epoch,
    epoch_secret,
    revealed,
    rotate,
    secret_of,
)
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.migrate import downgrade, upgrade


def test_open_rotate_reveal(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = make_engine(db_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        first = current_row_epoch(s)
        assert first.number == 1 and first.revealed_at is None
        assert commitment_of(secret_of(first)) == first.commitment
        assert len(secret_of(first)) == 32
        assert current_row_epoch(s).number == 1
        assert revealed(s, 1) is None
        secret1 = first.secret
    with transaction(factory) as s:
        closed, opened = rotate(s)
        assert (closed.number, opened.number) == (1, 2)
        assert closed.secret == secret1 and opened.secret != secret1
    with transaction(factory) as s:
        assert current_row_epoch(s).number == 2
        one = revealed(s, 1)
        assert one is not None and one.revealed_at is not None
        assert revealed(s, 2) is None and revealed(s, 99) is None
        assert epoch_secret(s, 2).hex() == current_row_epoch(s).secret
        open_secret = current_row_epoch(s).secret
        assert s.scalar(sa.select(sa.func.count()).select_from(m.RowEpoch)) == 2
    assert open_secret not in caplog.text and secret1 not in caplog.text
    engine.dispose()


def test_migration_adds_and_removes_the_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    cols = {c["name"] for c in sa.inspect(engine).get_columns("evaluations")}
    assert {"row_epoch", "rows_label"} <= cols
    assert "row_epochs" in sa.inspect(engine).get_table_names()
    downgrade(engine, "0001")
    assert "row_epochs" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    engine.dispose()
