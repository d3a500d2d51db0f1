"""Evaluations per minute with 1 vs 2 Celery workers fetching artifacts over HTTP.

One coordinator (the real app under uvicorn, SQLite, its artifact store holding the world's
base and the 8 contributors' deltas; no loop thread) serves artifacts; the same stream of
tasks — loop-style candidates on the base (single and multi recipes drawn by the loop's own
proposal functions with a fixed seed, over a few shared sample seeds) — is sent through
``CeleryEvaluationPool`` to 1 and then 2 fresh ``mergenet worker`` processes. Each run
first warms its workers (model fetched and loaded, a parent scored) with tasks not timed,
then times the stream from first submission to last result. Redis: a database of its own,
flushed between runs so no result of an earlier run is reused. Usage::

    python benchmarks/worker_throughput.py --tasks 32 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def serve(world: Any, root: Path) -> tuple[str, Any, Any, list[str]]:
    """A coordinator app on a free loopback port; (url, coordinator, server, delta shas)."""
    import socket

    import uvicorn

    from mergenet.config import Settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.protocol.hashes import sha256_file

    coord = Coordinator(
        Settings(data_dir=root / "data", database_url=None),
        CoordinatorSettings(base_dir=world.base_dir, dev_rows=world.dharma_path("dev"), workers=0),
    ).open()
    shas = []
    for name in world.contributor_names:
        copy = root / f"{name}.safetensors"
        shutil.copyfile(world.delta_path(name), copy)
        sha = sha256_file(copy)
        coord.store.put_delta(copy, sha)
        shas.append(sha)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(coord), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", coord, server, shas


def task_stream(parent: str, shas: list[str], n: int, sample_n: int, tag: str) -> list[Any]:
    """``n`` loop-style tasks: the loop's proposal functions, fixed seeds, 4 sample seeds."""
    import numpy as np

    from mergenet.coordinator import proposals
    from mergenet.coordinator.loop import default_strategies
    from mergenet.coordinator.settings import ProposalSettings
    from mergenet.protocol.evaluation import EvalTask, SampleSpec

    rng = np.random.default_rng(0)
    cfg = ProposalSettings()
    strategies = default_strategies()
    out = []
    for i in range(n):
        strategy = strategies[i % len(strategies)]
        if i % 2:
            recipe = proposals.single(strategy, parent, shas[i % len(shas)], rng, cfg)
        else:
            recipe = proposals.multi(strategy, parent, shas, rng, cfg)
        out.append(
            EvalTask(
                key=f"{tag}{i}",
                recipe=recipe.canonical().model_dump(mode="json"),
                sample=SampleSpec("dev", sample_n, 1000 + i % 4),
            )
        )
    return out


def run(pool: Any, tasks: list[Any], timeout: float) -> float:
    """Submit every task, wait for all outcomes; seconds taken (errors are fatal)."""
    started = time.perf_counter()
    for t in tasks:
        pool.submit(t)
    got: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(tasks):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(got)}/{len(tasks)} tasks done after {timeout:.0f}s")
        for o in pool.poll(1.0):
            if o.error is not None:
                raise RuntimeError(f"task {o.key} failed on a worker: {o.error}")
            got[o.key] = o
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=32, help="timed tasks per run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sample-n", type=int, default=16, help="rows per task (the loop's)")
    ap.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/12", help="a database only this uses"
    )
    args = ap.parse_args()

    import redis
    from rich.console import Console
    from rich.table import Table

    from mergenet.config import Settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world
    from mergenet.petals import procs
    from mergenet.workers.celery_app import make_app
    from mergenet.workers.celery_pool import CeleryEvaluationPool

    world = build_world(WorldSpec(), Settings().world_root)
    broker = redis.Redis.from_url(args.redis_url)
    root = Path(tempfile.mkdtemp(prefix="mergenet-throughput-"))
    url, coord, server, shas = serve(world, root)
    env = coord.worker_env(url)  # the env the coordinator's Celery pool sends
    from mergenet.coordinator.state import current_version

    with coord.factory() as s:
        base = current_version(s).hash
    rows = []
    load_before = os.getloadavg()[0]
    try:
        for n_workers in args.workers:
            broker.flushdb()
            pool = CeleryEvaluationPool(env, app=make_app(args.redis_url), capacity=n_workers)
            started = []
            try:
                for w in range(n_workers):
                    log = root / f"run{n_workers}-w{w}.log"
                    penv = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")}
                    argv = [
                        *(sys.executable, "-m", "mergenet.cli", "worker", "--coordinator", url),
                        *("--redis-url", args.redis_url, "--concurrency", "1"),
                        *("--cache-dir", str(root / f"cache-{n_workers}-{w}")),
                        *("--name", f"bench{n_workers}-{w}@%h"),
                    ]
                    proc = procs.spawn(argv, log, penv)
                    started.append(proc)
                    procs.wait_for_log(proc, log, r"ready\.", 120)
                warm = task_stream(base, shas, 2 * n_workers, args.sample_n, "warm")
                run(pool, warm, 600)
                timed = task_stream(base, shas, args.tasks, args.sample_n, "t")
                seconds = run(pool, timed, 1800)
                rows.append((n_workers, args.tasks, seconds, args.tasks / seconds * 60))
            finally:
                for proc in started:
                    procs.stop_group(proc.pid)
                pool.close()
    finally:
        broker.flushdb()
        server.should_exit = True
        coord.close()
        shutil.rmtree(root, ignore_errors=True)

    table = Table(
        title=f"mergenet worker over HTTP: {args.sample_n} rows per subject per task",
        caption=f"{os.cpu_count()} cores; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (it counts these workers and anything else running)",
    )
    for col in ("workers", "tasks", "seconds", "evaluations/min", "speed-up"):
        table.add_column(col, justify="right")
    one = rows[0][3] if rows else 1.0
    for n_workers, n, seconds, per_min in rows:
        table.add_row(
            str(n_workers), str(n), f"{seconds:.1f}", f"{per_min:.1f}", f"{per_min / one:.2f}×"
        )
    Console(width=100).print(table)


if __name__ == "__main__":
    main()
