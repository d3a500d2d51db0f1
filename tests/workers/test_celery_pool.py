"""``CeleryEvaluationPool`` with two real Celery worker processes on a real Redis.

Tasks carry recipes; the workers rebuild candidates from a store folder they share (the
world's base and two contributors' deltas) and score them. A worker killed (SIGKILL, the
whole process group) in the middle of a task: the task is handed to the other worker after
the visibility timeout, and the pool reports it once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mergenet.petals import procs
from mergenet.protocol.evaluation import EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.hashes import sha256_file

VISIBILITY = 15  # seconds; above one task's time here (~5-10 s), so no healthy task restarts
PARENT = "0" * 64


@pytest.fixture(scope="module")
def store(world, tmp_path_factory) -> tuple[WorkerEnv, list[str]]:
    """A store folder laid out as the coordinator's (versions/, deltas/), by symlinks."""
    root = tmp_path_factory.mktemp("store")
    (root / "versions").mkdir()
    (root / "versions" / PARENT).symlink_to(world.base_dir)
    shas = []
    for name in ("alice", "bob"):
        sha = sha256_file(world.delta_path(name))
        (root / "deltas" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (root / "deltas" / sha[:2] / f"{sha}.safetensors").symlink_to(world.delta_path(name))
        shas.append(sha)
    env = WorkerEnv(store_root=str(root), row_sets={"dev": str(world.dharma_path("dev"))})
    return env, shas


def start_worker(name: str, redis_url: str, log: Path):
    env = {
        **os.environ,
        "MERGENET_REDIS_URL": redis_url,
        "MERGENET_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "MERGENET_CELERY_RESTORE_INTERVAL": "1",
        "OMP_NUM_THREADS": "1",
    }
    argv = [
        *(sys.executable, "-m", "celery", "--app", "mergenet.workers.celery_app", "worker"),
        *("--hostname", f"{name}@%h", "--concurrency", "1", "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    proc = procs.spawn(argv, log, env)
    procs.wait_for_log(proc, log, r"ready\.", 90)
    return proc


@pytest.fixture
def workers(redis_url, tmp_path):
    """Two workers for one test (a later test must not find them taking its tasks)."""
    started = []
    try:
        for name in ("w1", "w2"):
            log = tmp_path / f"{name}.log"
            started.append((start_worker(name, redis_url, log), log))
        yield started
    finally:
        for proc, _ in started:
            procs.stop_group(proc.pid)
        assert not [p.pid for p, _ in started if procs.group_alive(p.pid)]


@pytest.fixture(scope="module")
def pool(store, redis_url):
    from mergenet.workers.celery_app import CelerySettings, make_app
    from mergenet.workers.celery_pool import CeleryEvaluationPool

    app = make_app(redis_url, CelerySettings(visibility_timeout=VISIBILITY, restore_interval=1))
    p = CeleryEvaluationPool(store[0], app=app, capacity=2)
    yield p
    p.close()


def task(key: str, sha: str, seed: int) -> EvalTask:
    recipe = {"parent": PARENT, "strategy": "task_arithmetic", "contributions": [{"sha256": sha}]}
    return EvalTask(key=key, recipe=recipe, sample=SampleSpec("dev", 4, seed))


def collect(pool, n: int, timeout: float) -> list:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += pool.poll(1.0)
    return out


@pytest.mark.redis
def test_two_workers_score_candidates_from_recipes(pool, workers, store) -> None:
    _, shas = store
    pool.submit(task("alice", shas[0], seed=1))
    pool.submit(task("bob", shas[1], seed=1))
    pool.submit(task("bob", shas[1], seed=1))  # the same task twice is one task
    assert pool.in_flight() == 2
    outcomes = {o.key: o for o in collect(pool, 2, 120)}
    assert set(outcomes) == {"alice", "bob"} and pool.in_flight() == 0
    for o in outcomes.values():
        assert o.error is None, o.error
        assert o.relative_distance > 0
    a, b = outcomes["alice"], outcomes["bob"]
    assert a.parent_result == b.parent_result, "same parent, same sample: same parent scores"
    assert a.result != b.result
    served = [log.read_text().count("mergenet.evaluate[") for _, log in workers]
    assert all(n > 0 for n in served), f"both workers took tasks: {served}"


@pytest.mark.redis
def test_a_task_whose_worker_dies_finishes_elsewhere_and_is_reported_once(
    pool, redis_url, store, tmp_path
) -> None:
    _, shas = store
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    victim = start_worker("victim", redis_url, logs[0])
    try:
        pool.submit(task("crash", shas[0], seed=2))
        procs.wait_for_log(victim, logs[0], r"Task mergenet\.evaluate\[crash:\w+\] received", 60)
        os.killpg(victim.pid, signal.SIGKILL)  # no warm shutdown: the task is lost mid-run
        procs.stop_group(victim.pid)
        survivor = start_worker("survivor", redis_url, logs[1])
        try:
            outcomes = collect(pool, 1, VISIBILITY + 90)
            more = pool.poll(2.0)
        finally:
            procs.stop_group(survivor.pid)
    finally:
        procs.stop_group(victim.pid)
    assert [o.key for o in outcomes] == ["crash"] and more == []
    assert outcomes[0].error is None, outcomes[0].error
    assert "succeeded" in logs[1].read_text()
    assert "succeeded" not in logs[0].read_text()
