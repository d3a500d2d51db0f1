"""kill -9 a real coordinator mid-loop, restart it: nothing accepted is lost, no version is
half-written, and the loop carries on from the database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import submit_world_deltas
from .server import CoordinatorProcess

pytestmark = [pytest.mark.world, pytest.mark.slow]


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _loop_evals(db: Path) -> int:
    return _rows(db, "select count(*) from evaluations")[0][0]


def _check_consistent(data_dir: Path, shas: list[str]) -> None:
    """Every version row has complete weights with the hash it is named by; every delta is
    stored; nothing half-written is visible outside the staging folder."""
    from mergenet.deltas.models import ModelSource

    db = data_dir / "mergenet.db"
    stored = {sha for (sha,) in _rows(db, "select sha256 from contributions")}
    assert stored == set(shas)
    for sha in shas:
        assert (data_dir / "artifacts" / "deltas" / sha[:2] / f"{sha}.safetensors").exists()
    for version_hash, path in _rows(db, "select hash, weights_path from versions"):
        folder = data_dir / "artifacts" / path
        assert ModelSource(folder).sha256() == version_hash
        assert (folder / "config.json").exists()


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_kill_9_mid_loop_then_restart(cworld: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = data / "mergenet.db"
    server = CoordinatorProcess(cworld, data, workers=1)
    server.start()
    shas: list[str] = []
    try:
        with server.client() as http:
            shas.extend(submit_world_deltas(http, cworld))
        # first crash: while contributions are still being scored
        assert _wait(lambda: _loop_evals(db) >= 3, 300)
        server.kill()
        _check_consistent(data, shas)
        before = _loop_evals(db)

        server.start()
        # second crash: in the evolutionary phase, with candidates queued or confirming
        assert _wait(lambda: _loop_evals(db) >= before + 12, 400), "loop did not resume"
        server.kill()
        _check_consistent(data, shas)
        pending = _rows(db, "select id from candidates where status in ('queued', 'confirming')")
        before = _loop_evals(db)

        server.start()
        assert _wait(lambda: _loop_evals(db) >= before + 4, 300), "loop did not resume"
        with server.client() as http:
            for sha in shas:
                assert http.get(f"/api/contributions/{sha}").json()["status"] == "scored"
            versions = http.get("/api/versions").json()
            assert versions[0]["parent_hash"] is None
        # candidates queued at the crash are picked up again, not forgotten
        assert _wait(
            lambda: all(
                _rows(db, f"select status from candidates where id = {cid}")[0][0]
                not in ("queued", "confirming")
                for (cid,) in pending
            ),
            300,
        )
        server.stop()
        _check_consistent(data, shas)
        assert not list((data / "artifacts" / "incoming").iterdir())
        assert _rows(db, "select count(*) from contributions where status = 'failed'")[0][0] == 0
    finally:
        server.stop()
