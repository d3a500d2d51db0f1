"""Scaled out end to end: ``mergenet coordinator up --pool celery`` on PostgreSQL and Redis,
two ``mergenet worker`` processes that fetch every artifact over HTTP, the world's eight
contributors submitting through the API, and the loop making progress as it does in-process.

Real everything: the coordinator and the workers are the shipped commands in their own
process groups; Redis is the machine's server at 127.0.0.1:6379 on a database number of its
own (flushed before and after); PostgreSQL is the ``test`` database at 127.0.0.1:5432 with a
private schema, dropped afterwards. The workers get no path to the coordinator's store: a
task names hashes, and the workers' caches must end up holding what they fetched.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.coordinator.conftest import PG_DSN, submit_world_deltas
from tests.coordinator.server import CoordinatorProcess

from mergenet.petals import procs
from mergenet.protocol.worker_auth import worker_secret

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.world,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

REDIS_DB = 11
"""This test's own Redis database number (nothing else in the suite uses 11)."""
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
BUDGET = 20
"""Loop evaluations after the 8 contribution scorings."""
MASTER_KEY = "e2e-operator-master-key-0123456789"
"""The coordinator's worker master key; each worker gets its secret derived from it."""
SAMPLE_N = 8
"""Rows per task and subject (the loop's default is 16): ~4 s per evaluation on a busy core."""


@pytest.fixture
def redis_db() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at 127.0.0.1:6379 ({exc})")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def pg_url() -> Any:
    """A private schema in the ``test`` database; the URL sets it as the search path."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_DSN)
    schema = f"celery_e2e_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is needed at 127.0.0.1:5432, database test ({exc})")
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def start_worker(name: str, coordinator_url: str, redis_url: str, tmp: Path):
    """One real ``mergenet worker`` in its own process group, with its own cache."""
    cache = tmp / f"{name}-cache"
    log = tmp / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")}
    env["MERGENET_CACHE_DIR"] = str(tmp / f"{name}-home-cache")  # nothing from ~/.cache
    secret = tmp / f"{name}.secret"  # issued by the operator (protocol.worker_auth)
    secret.write_text(worker_secret(MASTER_KEY.encode(), name))
    argv = [
        *(sys.executable, "-m", "mergenet.cli", "worker"),
        *("--coordinator", coordinator_url, "--redis-url", redis_url),
        *("--concurrency", "1", "--cache-dir", str(cache), "--name", f"{name}@%h"),
        *("--worker-id", name, "--secret-file", str(secret)),
    ]
    proc = procs.spawn(argv, log, env)
    procs.wait_for_log(proc, log, r"ready\.", 120)
    return proc, log, cache


def test_two_http_workers_drive_the_loop_on_postgres(
    world: Any, redis_db: str, pg_url: str, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    server = CoordinatorProcess(
        world,
        tmp_path / "data",
        workers=0,
        max_evaluations=BUDGET,
        extra_env={
            "MERGENET_REDIS_URL": redis_db,
            "MERGENET_COORDINATOR_SAMPLE_N": str(SAMPLE_N),
            "MERGENET_WORKER_MASTER_KEY": MASTER_KEY,
        },
        extra_args=("--pool", "celery", "--capacity", "2"),
    )
    server.env["MERGENET_DATABASE_URL"] = pg_url
    started = time.monotonic()
    workers: list[tuple[Any, Path, Path]] = []
    try:
        server.start()
        for name in ("w1", "w2"):
            workers.append(start_worker(name, server.url, redis_db, tmp_path))
        with server.client() as http:
            shas = submit_world_deltas(http, world)
            base = http.get("/api/versions/current").json()["hash"]

            def evaluations() -> list[dict[str, Any]]:
                return http.get("/api/history").json()["evaluations"]

            deadline = time.monotonic() + 360
            while time.monotonic() < deadline:
                loop_n = sum(e["purpose"] in ("selection", "confirmation") for e in evaluations())
                if loop_n >= BUDGET and "evaluations_in_flight 0" in http.get("/metrics").text:
                    break
                time.sleep(2)
            elapsed = time.monotonic() - started
            history = evaluations()
            loop_n = sum(e["purpose"] in ("selection", "confirmation") for e in history)
            assert loop_n >= BUDGET, f"{loop_n}/{BUDGET} loop evaluations after {elapsed:.0f}s"

            for sha in shas:
                c = http.get(f"/api/contributions/{sha}").json()
                assert c["status"] == "scored" and c["score"] is not None, c
            strategies = http.get("/api/strategies").json()
            h = strategies["current"]
            assert max(h.values()) - min(h.values()) > 1e-3, f"H(s) did not move: {h}"
            assert len(strategies["history"]) >= 2
            metrics = http.get("/metrics").text

        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                twice = conn.execute(
                    sa.text(
                        "SELECT candidate_id, purpose, sample_seed, count(*) FROM evaluations "
                        "GROUP BY candidate_id, purpose, sample_seed HAVING count(*) > 1"
                    )
                ).all()
                recorded = conn.execute(sa.text("SELECT count(*) FROM evaluations")).scalar()
                failed = conn.execute(
                    sa.text("SELECT id, error FROM candidates WHERE status = 'failed'")
                ).all()
        finally:
            engine.dispose()
        assert twice == [], f"(candidate, sample) recorded more than once: {twice}"
        assert recorded == len(history) >= BUDGET + len(shas)
        assert failed == [], f"evaluations failed on the workers: {failed}"
        assert "evaluations_in_flight 0" in metrics
        # honest workers' signed results are accepted and agree with the trusted re-runs
        log_text = server.log.read_text()
        assert "re-run on the trusted pool" not in log_text and "barred" not in log_text

        served = [log.read_text().count("succeeded in") for _, log, _ in workers]
        assert all(n > 0 for n in served), f"both workers took tasks: {served}"
        assert sum(served) >= recorded, (served, recorded)
        fetched = set()
        for _, _, cache in workers:
            assert (cache / "versions" / base / "model.safetensors").exists()
            assert not list(cache.rglob("*.jsonl")), "rows travel inside tasks, never fetched"
            fetched |= {p.name.split(".")[0] for p in (cache / "deltas").rglob("*.safetensors")}
        assert set(shas) <= fetched, "every contribution was fetched by some worker"
        print(
            f"\n{recorded} evaluations ({loop_n} loop) on 2 HTTP workers {served} "
            f"in {elapsed:.0f}s; H(s) {h}"
        )
    finally:
        for proc, _, _ in workers:
            procs.stop_group(proc.pid)
        server.stop()
    assert not [p.pid for p, _, _ in workers if procs.group_alive(p.pid)]
    assert server.proc is not None and not procs.group_alive(server.proc.pid)
