"""kill -9 a real coordinator at points of one run (an upload in flight, contribution scoring,
epoch close, root publishing, a claim), restart it each time: nothing acknowledged is lost, no
version is half-written, nobody is paid twice, ``mergenet rewards reconcile`` exits 0 and the
loop resumes. The full run (20 kills, PostgreSQL, Celery, Redis/anvil/PostgreSQL restarts) is
``python benchmarks/chaos.py --kills 20 --infra``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.world, pytest.mark.slow, pytest.mark.chain]

POINTS = ("upload", "scoring", "epoch close", "root publish", "claim")


def test_kill_9_at_points_of_a_run(world: Any, tmp_path: Path) -> None:
    from chaos import Options, run_chaos, table
    from reliability_kit import WorldFiles

    opts = Options(
        points=POINTS,
        kills=len(POINTS),
        point_timeout=30,
        settle_s=150,
        initial_uploads=3,
        workers=1,
    )
    faults, results = run_chaos(WorldFiles.from_world(world), tmp_path, opts)
    print(table(faults), results)
    assert [f.what.split(": ", 1)[1] for f in faults] == list(POINTS)
    assert all(f.outcome.startswith("ok") for f in faults)
    assert results["acknowledged"] >= opts.initial_uploads
    assert results["reconcile_rc"] == 0
    assert results["failed"] == [], "a contribution failed scoring across the kills"
    assert results["evaluations"] > 0
