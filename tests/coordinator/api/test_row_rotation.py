"""Without a chain the coordinator reveals its row secret and opens the next epoch every
``row_epoch_seconds``; no secret is ever logged."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.coordinator.api.conftest import tiny_base

from mergenet.config import Settings
from mergenet.coordinator import models as m
from mergenet.coordinator.runtime import Coordinator
from mergenet.coordinator.settings import CoordinatorSettings


def test_rows_rotate_on_a_timer_without_a_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rows = tmp_path / "dev.jsonl"
    rows.write_text('{"input": "1+1=\\nAnswer:", "output": "2", "subject": "add"}\n')
    settings = CoordinatorSettings(
        base_dir=tiny_base(tmp_path / "base"), dev_rows=rows, workers=0, row_epoch_seconds=0.2
    )
    coord = Coordinator(Settings(data_dir=tmp_path / "data", database_url=None), settings).open()
    try:
        coord.start_loop()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with coord.factory() as s:
                epochs = list(s.scalars(select(m.RowEpoch).order_by(m.RowEpoch.number)))
            if len(epochs) >= 3:
                break
            time.sleep(0.1)
    finally:
        coord.close()
    assert len(epochs) >= 3 and [e.number for e in epochs] == list(range(1, len(epochs) + 1))
    assert all(e.revealed_at is not None for e in epochs[:-1])
    with coord.factory() as s:
        current = s.scalars(select(m.RowEpoch).where(m.RowEpoch.revealed_at.is_(None))).all()
    assert len(current) == 1
    assert current[0].secret not in caplog.text
    assert all(e.secret not in caplog.text for e in epochs)
