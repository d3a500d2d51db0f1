"""The Celery app end to end on a real Redis and a real worker process.

Only the wiring is shown here (broker, JSON serialisation, task name, the coordinator's
worker code reached and its error reported inside the outcome); the Celery evaluation pool
and its crash tests are still to come (issue 7).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mergenet.petals import procs


@pytest.mark.redis
def test_a_real_worker_runs_the_coordinators_task_code(redis_url: str, tmp_path: Path) -> None:
    from mergenet.workers.celery_app import TASK_NAME, make_app

    env = {**os.environ, "MERGENET_REDIS_URL": redis_url}
    log = tmp_path / "worker.log"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "mergenet.workers.celery_app",
        "worker",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    worker = procs.spawn(argv, log, env)
    try:
        procs.wait_for_log(worker, log, r"ready\.", 60)
        app = make_app(redis_url)
        task = {
            "key": "c1:selection",
            "recipe": {"parent": "ab" * 32, "strategy": "linear", "contributions": []},
            "sample": {"rows": "dev", "n": 2, "seed": 0},
        }
        started = time.monotonic()
        out = app.send_task(TASK_NAME, args=[{"store_root": str(tmp_path)}, task]).get(timeout=60)
        assert time.monotonic() - started < 60
    finally:
        procs.stop_group(worker.pid)
    assert out["key"] == "c1:selection"
    assert out["result"] is None
    # the worker looked for the parent version in the store the task named
    assert f"versions/{'ab' * 32}" in out["error"]
    assert not procs.group_alive(worker.pid)
